// The gateway, as the page sees it: every call goes through `call`, which adds
// the token, reads the gateway's JSON errors and turns them into ApiError.
// The token lives in this closure only (never in storage): a reload logs out.

export class ApiError extends Error {
  constructor({ status, code, message, requestId = null, retryAfter = null, errors = [] }) {
    super(message);
    this.status = status;        // 0: the gateway could not be reached
    this.code = code;            // the gateway's `error`, e.g. "invalid_token"
    this.requestId = requestId;  // to quote to support
    this.retryAfter = retryAfter; // seconds, from Retry-After
    this.errors = errors;        // 422: [{ pointer: "/amount", message }]
  }
}

function retryAfterSeconds(value) {
  if (!value) return null;
  const secs = Number(value);
  if (Number.isFinite(secs)) return Math.max(0, Math.ceil(secs));
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export function createGateway(base) {
  let token = null;
  let onExpired = () => {};

  async function call(method, path, { body, headers = {}, auth = true } = {}) {
    const h = { Accept: 'application/json', ...headers };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (auth && token) h.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(base + path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError({
        status: 0,
        code: 'network_error',
        message: 'The service could not be reached. Check your connection and try again.',
      });
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    const requestId = res.headers.get('X-Request-Id') || data?.request_id || null;
    if (!res.ok) {
      const err = new ApiError({
        status: res.status,
        code: data?.error ?? `http_${res.status}`,
        message: data?.message ?? res.statusText,
        requestId,
        retryAfter: retryAfterSeconds(res.headers.get('Retry-After')),
        errors: Array.isArray(data?.errors) ? data.errors : [],
      });
      if (res.status === 401 && auth) {
        token = null;
        onExpired(err);
      }
      throw err;
    }
    return { status: res.status, data, headers: res.headers, requestId };
  }

  return {
    get loggedIn() { return token !== null; },
    onExpired(fn) { onExpired = fn; },
    logout() { token = null; },

    async login(username, password, session) {
      const r = await call('POST', '/auth/token', {
        body: { username, password, tokenexp: session },
        auth: false,
      });
      token = r.data.token;
      return r.data;
    },

    statement(account, cursor) {
      const q = new URLSearchParams({ limit: '10' });
      if (cursor) q.set('cursor', cursor);
      return call('GET', `/api/accounts/${encodeURIComponent(account)}/statement?${q}`);
    },

    // The same `key` for a retry of the same payment: the gateway then answers
    // with the first result (Idempotent-Replayed: true) instead of paying twice.
    pay(order, key) {
      return call('POST', '/api/payments', { body: order, headers: { 'Idempotency-Key': key } });
    },

    quote(request) {
      return call('POST', '/api/loans/quote', { body: request });
    },
  };
}
