// The page: log in, statement, payment, loan quote — each a card that calls
// the gateway and shows its answers, errors included, the way a person needs.

import { createGateway } from './api.js';
import { formatMinor, toMinor } from './money.js';

const $ = (sel, root = document) => root.querySelector(sel);

const config = await (await fetch('/config.json')).json();
const gw = createGateway(config.gateway);
$('#gateway-url').textContent = config.gateway;

// ---- views ---------------------------------------------------------------

// Nothing of one login stays for the next: results, errors, countdowns.
function reset() {
  for (const [box, timer] of timers) {
    clearTimeout(timer);
    box.textContent = '';
  }
  timers.clear();
  for (const button of document.querySelectorAll('button[data-wait]')) {
    delete button.dataset.wait;
    button.disabled = false;
  }
  for (const box of document.querySelectorAll('.error')) box.textContent = '';
  for (const input of document.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  for (const el of ['#pay-result', '#pay-retry', '#quote-result', '#statement-table', '#statement-more']) {
    $(el).hidden = true;
  }
  $('#statement-balance').textContent = '';
  attempt = null;
  cursor = null;
}

function showLogin(note = '') {
  reset();
  $('#app-view').hidden = true;
  $('#who').hidden = true;
  $('#login-view').hidden = false;
  $('#login-note').textContent = note;
  $('#login-form [name=password]').value = '';
  $('#login-form [name=password]').focus();
}

function showApp(username) {
  $('#login-view').hidden = true;
  $('#app-view').hidden = false;
  $('#who').hidden = false;
  $('#who-name').textContent = username;
}

gw.onExpired(() => showLogin('Your session has expired. Please log in again.'));

$('#logout').addEventListener('click', () => {
  gw.logout();
  showLogin('You are logged out.');
});

// ---- errors --------------------------------------------------------------

const timers = new Map();

// Shows `err` in `box` (and, for 422, beside the fields of `form`).
function showError(box, err, { form = null, button = null } = {}) {
  clearTimeout(timers.get(box));
  box.textContent = '';
  if (err.status === 429) {
    countdown(box, err.retryAfter ?? 1, button);
    return;
  }
  if (err.status === 422 && form && err.errors.length) {
    let placed = 0;
    for (const e of err.errors) {
      const slot = form.querySelector(`[data-for="${CSS.escape(e.pointer)}"]`);
      if (!slot) continue;
      slot.textContent = e.message;
      const input = form.querySelector(`[name="${CSS.escape(e.pointer.slice(1))}"]`);
      input?.setAttribute('aria-invalid', 'true');
      placed += 1;
    }
    box.textContent = placed === err.errors.length
      ? 'Please correct the highlighted fields.'
      : err.errors.map((e) => `${e.pointer || 'body'}: ${e.message}`).join('; ');
    return;
  }
  if (err.status >= 500) {
    box.append('Something went wrong on our side. If you contact support, quote request id ');
    const id = document.createElement('code');
    id.className = 'request-id';
    id.textContent = err.requestId ?? 'unknown';
    box.append(id, '.');
    return;
  }
  if (err.status === 403) {
    box.textContent = `You are not allowed to do this with this login (${err.code}).`;
    return;
  }
  box.textContent = err.message;
}

// "Too many requests. Try again in 12 s." counting down; `button` waits with it.
function countdown(box, seconds, button) {
  let left = seconds;
  if (button) {
    button.disabled = true;
    button.dataset.wait = 'true';
  }
  const tick = () => {
    if (left <= 0) {
      box.textContent = '';
      timers.delete(box);
      if (button) {
        delete button.dataset.wait;
        button.disabled = false;
      }
      return;
    }
    box.textContent = `Too many requests. Try again in ${left} s.`;
    box.dataset.retryIn = String(left);
    left -= 1;
    timers.set(box, setTimeout(tick, 1000));
  };
  tick();
}

function clearErrors(form, box) {
  box.textContent = '';
  for (const slot of form.querySelectorAll('.error.field')) slot.textContent = '';
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
}

// Runs `work` with `button` disabled (a countdown may keep it so after).
async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    if (!button.dataset.wait) button.disabled = false;
  }
}

// ---- log in --------------------------------------------------------------

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const box = $('[data-for=form]', form);
  const button = $('button[type=submit]', form);
  box.textContent = '';
  const username = form.username.value.trim();
  await busy(button, async () => {
    try {
      await gw.login(username, form.password.value, config.session);
      showApp(username);
    } catch (err) {
      if (err.status === 401) box.textContent = 'Wrong username or password.';
      else showError(box, err, { button });
    }
  });
});

// ---- statement -----------------------------------------------------------

let cursor = null;

async function loadStatement(account, more) {
  const box = $('[data-for=statement]');
  const table = $('#statement-table');
  const body = $('tbody', table);
  const button = more ? $('#statement-more') : $('#statement-form button');
  box.textContent = '';
  await busy(button, async () => {
    try {
      const r = await gw.statement(account, more ? cursor : null);
      if (!more) body.replaceChildren();
      for (const t of r.data.transactions) {
        const row = document.createElement('tr');
        const cells = [t.date, t.description, formatMinor(t.amount, r.data.currency),
          formatMinor(t.balance_after, r.data.currency)];
        cells.forEach((text, i) => {
          const td = document.createElement('td');
          td.textContent = text;
          if (i >= 2) td.className = 'num';
          if (i === 2 && t.amount < 0) td.classList.add('neg');
          row.append(td);
        });
        body.append(row);
      }
      table.hidden = false;
      cursor = r.data.next_cursor ?? null;
      $('#statement-more').hidden = cursor === null;
      $('#statement-balance').textContent = `${r.data.account_id} · ${r.data.currency} · ${body.rows.length} transactions shown`;
    } catch (err) {
      showError(box, err, { button });
    }
  });
}

$('#statement-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  loadStatement(ev.currentTarget.account.value.trim(), false);
});
$('#statement-more').addEventListener('click', () => {
  loadStatement($('#statement-form').account.value.trim(), true);
});

// ---- payment -------------------------------------------------------------

// The attempt being made: a retry sends the same order with the same key.
let attempt = null;

async function send() {
  const form = $('#pay-form');
  const box = $('[data-for=pay]', form);
  const result = $('#pay-result');
  const button = $('button[type=submit]', form);
  clearErrors(form, box);
  result.hidden = true;
  await busy(button, async () => {
    try {
      const r = await gw.pay(attempt.order, attempt.key);
      const p = r.data;
      result.textContent = `Payment ${p.id} ${p.status}: ${formatMinor(p.amount, p.currency)} from ${p.from_account} to ${p.to_account}.`;
      if (r.headers.get('Idempotent-Replayed') === 'true') {
        const badge = document.createElement('span');
        badge.className = 'replayed';
        badge.textContent = 'replayed';
        result.append(' ', badge, ' Already made: this is its first answer, nothing was paid twice.');
      }
      result.hidden = false;
    } catch (err) {
      showError(box, err, { form, button });
    } finally {
      $('#pay-retry').hidden = false;
    }
  });
}

$('#pay-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const box = $('[data-for=pay]', form);
  clearErrors(form, box);
  const currency = form.currency.value.trim().toUpperCase();
  const amount = toMinor(form.amount.value, currency);
  if (amount === null) {
    $('[data-for="/amount"]', form).textContent = 'Enter an amount like 25.00.';
    form.amount.setAttribute('aria-invalid', 'true');
    return;
  }
  const order = {
    from_account: form.from_account.value.trim(),
    to_account: form.to_account.value.trim(),
    amount,
    currency,
  };
  const reference = form.reference.value.trim();
  if (reference) order.reference = reference;
  // A new payment, a new key; `Retry` below keeps it.
  attempt = { order, key: crypto.randomUUID() };
  send();
});

$('#pay-retry').addEventListener('click', () => {
  if (attempt) send();
});

// ---- loan quote ----------------------------------------------------------

$('#quote-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const box = $('[data-for=quote]', form);
  const button = $('button[type=submit]', form);
  box.textContent = '';
  const request = {
    principal: toMinor(form.principal.value, 'EUR'),
    annual_rate_bps: Math.round(Number(form.rate.value) * 100),
    months: Number(form.months.value),
  };
  await busy(button, async () => {
    try {
      const q = (await gw.quote(request)).data;
      const money = (v) => formatMinor(v, q.currency);
      $('#quote-summary').textContent = `${q.months} payments of ${money(q.installment)}; total interest ${money(q.total_interest)}.`;
      const body = $('#quote-table tbody');
      body.replaceChildren();
      for (const s of q.schedule) {
        const row = document.createElement('tr');
        [String(s.n), money(s.payment), money(s.interest), money(s.principal), money(s.balance_after)]
          .forEach((text, i) => {
            const td = document.createElement('td');
            td.textContent = text;
            if (i > 0) td.className = 'num';
            row.append(td);
          });
        body.append(row);
      }
      $('#quote-result').hidden = false;
    } catch (err) {
      showError(box, err, { button });
    }
  });
});

showLogin();
