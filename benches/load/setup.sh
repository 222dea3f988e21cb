# Sourced by benches/load/run, memory and latency: builds (unless SKIP_BUILD=1),
# picks free loopback ports, writes every contender's config under a temp dir and
# starts the origin, the store and each scenario's proxy, pinned and prioritised,
# then checks that each scenario really applies what it claims. Everything stops
# when the sourcing script exits.
#
# Set before sourcing: SCENARIOS (a space-separated list), CONNECTIONS, STREAMS;
# optionally MAX_CLIENT_CONNECTIONS (nginx, HAProxy) and FINGATE_EXTRA (top-level YAML added to
# every fingate config). Env read here: REQUEST, PRIO, COMPARE, SKIP_BUILD, KEEP.
# Gives: PORT, PID, WORK, PRIO_CMD, LOAD_CORE, PROXY_CORE, REQUEST_PATH, url,
# tls_kind, request_headers (sets REQ_HEADERS, wrk/curl -H arguments), cpu_ticks,
# kernel_ticks.
BIN=${CARGO_TARGET_DIR:-target}/release
LOAD_CORE=0 PROXY_CORE=1
PRIO_MODE=none PRIO_CMD=()
if [ "$(id -u)" -eq 0 ]; then
  PRIO_MODE=${PRIO:-nice}
  case $PRIO_MODE in rt) PRIO_CMD=(chrt -f 10) ;; nice) PRIO_CMD=(nice -n -15) ;; esac
fi
read -r -a SCENARIOS <<< "$SCENARIOS"
[ -n "${COMPARE:-}" ] && SCENARIOS+=(bare-pingora@B fingate@B)
source benches/load/request.sh
# tls_kind SCENARIO: https, h2, handshake or resume for a TLS scenario, else nothing.
tls_kind() {
  case ${1%@B} in *-https|*-h2|*-handshake|*-resume) echo "${1%@B}" | sed 's/.*-//' ;; esac
}
TLS_SCENARIOS=()
for s in "${SCENARIOS[@]}"; do [ -n "$(tls_kind "$s")" ] && TLS_SCENARIOS+=("$s"); done

if [ -z "${SKIP_BUILD:-}" ]; then
  echo "==> building (release)" >&2
  cargo build --release --locked --workspace --bins --example bare_pingora
fi

WORK=$(mktemp -d /tmp/fingate-load.XXXXXX)
declare -A PID PORT
cleanup() {
  trap - EXIT INT TERM
  # SIGINT stops Pingora (and fingate) at once; SIGTERM is nginx's fast shutdown and
  # HAProxy's hard stop (HAProxy ignores SIGINT in -db mode).
  for name in "${!PID[@]}"; do
    case $name in nginx*|origin|otlp|haproxy*) kill -TERM "${PID[$name]}" 2>/dev/null || true ;;
                  *)            kill -INT  "${PID[$name]}" 2>/dev/null || true ;; esac
  done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports, one per name (the kernel picks them; a tiny race is acceptable).
names=(origin redis otlp "${SCENARIOS[@]}")
for s in "${SCENARIOS[@]}"; do [[ $s == fingate* ]] && names+=("$s-admin"); done
# A TLS fingate keeps the plain listener of the `fingate` scenario: `$s-plain`.
for s in "${TLS_SCENARIOS[@]}"; do [[ $s == fingate* ]] && names+=("$s-plain"); done
read -r -a ports < <(python3 -c '
import socket, sys; ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))' ${#names[@]})
for name in "${names[@]}"; do PORT[$name]=${ports[0]}; ports=("${ports[@]:1}"); done

# nginx_conf NAME SERVER_BLOCK_BODY: a self-contained nginx config under $WORK (no
# root paths), one worker, keep-alive on both sides.
nginx_conf() {
  local name=$1 body=$2 dir=$WORK/$1
  mkdir -p "$dir/tmp"
  cat > "$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections ${MAX_CLIENT_CONNECTIONS:-4096}; }
http {
  client_body_temp_path $dir/tmp/body; proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi; uwsgi_temp_path $dir/tmp/uwsgi; scgi_temp_path $dir/tmp/scgi;
  keepalive_timeout 60s;
$body
}
EOF
}

# The origin: a fixed JSON answer; never closes a kept-alive connection. Its
# connection count (stub_status) tells how many upstream connections a proxy opened.
nginx_conf origin "
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:${PORT[origin]};
    location = /_origin_status { stub_status; }
    location / { default_type application/json; return 200 '{\"ok\":true}'; } }"

# (a) nginx as the reverse proxy. keepalive_requests 1000 = fingate's default
# limits.max_requests_per_connection; upstream connections are reused without limit,
# as Pingora's pool does.
# nginx_proxy IDLE: the proxying part, keeping up to IDLE upstream connections.
nginx_proxy() { echo "
  log_format json escape=json '{\"request_id\":\"\$request_id\",\"method\":\"\$request_method\",'
    '\"path\":\"\$uri\",\"status\":\$status,\"duration_ms\":\$request_time,\"upstream\":\"\$upstream_addr\"}';
  access_log /dev/null json;
  upstream origin { server 127.0.0.1:${PORT[origin]}; keepalive $1; keepalive_requests 1000000; }"; }
NGINX_LOCATION="location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
[ -n "${PORT[nginx]:-}" ] && nginx_conf nginx "$(nginx_proxy 64)
  keepalive_requests 1000;
  server { listen 127.0.0.1:${PORT[nginx]};
    $NGINX_LOCATION }"

# The TLS scenarios' certificate: a test CA and an ECDSA P-256 leaf for localhost
# and 127.0.0.1, both valid two days.
TLS=$WORK/tls
if [ ${#TLS_SCENARIOS[@]} -gt 0 ]; then
  mkdir -p "$TLS"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$TLS/ca.key" -out "$TLS/ca.pem" -days 2 \
    -subj "/CN=fingate load test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2> "$TLS/openssl.log"
  openssl req "${ec[@]}" -keyout "$TLS/leaf.key" -out "$TLS/leaf.csr" -subj "/CN=localhost" 2>> "$TLS/openssl.log"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" > "$TLS/leaf.ext"
  openssl x509 -req -in "$TLS/leaf.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
    -days 2 -extfile "$TLS/leaf.ext" -out "$TLS/leaf.pem" 2>> "$TLS/openssl.log"
  # The -handshake rows: wrk keeps a connection's TLS session across its reconnects
  # (SSL_shutdown, SSL_clear, SSL_connect) and so resumes it; this shim drops it.
  cat > "$TLS/noresume.c" <<'C'
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
extern void *dlsym(void *handle, const char *symbol);
#define RTLD_NEXT ((void *)-1l)
int SSL_clear(SSL *s) {
  static int (*clear)(SSL *);
  static int (*set_session)(SSL *, SSL_SESSION *);
  if (!clear) {
    clear = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    set_session = (int (*)(SSL *, SSL_SESSION *))dlsym(RTLD_NEXT, "SSL_set_session");
  }
  set_session(s, 0);
  return clear(s);
}
C
  cc -O2 -shared -fPIC -o "$TLS/noresume.so" "$TLS/noresume.c"
fi

# (f) nginx with TLS: the same proxying, the same certificate as fingate, TLS 1.2 and
# 1.3, h2 and http/1.1 by ALPN (nginx 1.22 spells `http2 on` as `listen ... http2`),
# the server's suite order (fingate's rustls: AES-256-GCM, AES-128-GCM, ChaCha20),
# a 256-session cache and no stateless tickets, as fingate. HTTP/2 streams per
# connection are not limited (Pingora does not limit them; in nginx
# keepalive_requests also counts them). With HTTP/2, CONNECTIONS x STREAMS requests
# are in flight: nginx keeps that many upstream connections idle, else it closes
# and reopens one for a third of the requests (`keepalive 64`: 18k connections in
# 4 s, and twice the CPU per request). Pingora keeps up to 128 idle
# (upstream_keepalive_pool_size, not configurable in fingate) and reopens one for
# about 5 % of the requests there.
nginx_tls_conf() {
  local name=$1 requests=1000 idle=64
  if [ "$(tls_kind "$name")" = h2 ]; then
    requests=1000000 idle=$((CONNECTIONS * STREAMS > 64 ? CONNECTIONS * STREAMS : 64))
  fi
  nginx_conf "$name" "$(nginx_proxy "$idle")
  keepalive_requests $requests;
  server { listen 127.0.0.1:${PORT[$name]} ssl http2;
    ssl_certificate $TLS/leaf.pem; ssl_certificate_key $TLS/leaf.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256;
    ssl_session_cache builtin:256; ssl_session_tickets off;
    $NGINX_LOCATION }"
}

# (c) fingate, one prefix route, no filters; (d) the same plus every filter there is.
# (g) A TLS scenario's fingate: the same, plus a TLS listener (the one loaded).
# fingate_conf NAME GLOBAL_FILTERS [ROUTE_FILTERS [STORE]]
fingate_conf() {
  local name=$1 filters=$2 route_filters=${3:-} store=${4:-"{ backend: memory }"}
  local listen="{ address: \"127.0.0.1:${PORT[$1]}\" }"
  [ -n "$(tls_kind "$name")" ] && listen="{ address: \"127.0.0.1:${PORT[$name-plain]}\" },
  { address: \"127.0.0.1:${PORT[$name]}\", tls: { certs: [{ cert: $TLS/leaf.pem, key: $TLS/leaf.key }] } }"
  cat > "$WORK/$name.yaml" <<EOF
listen: [$listen]
admin: { address: "127.0.0.1:${PORT[$name-admin]}" }
threads: 1
store: $store
${FINGATE_EXTRA:-}
upstreams:
  origin: { targets: ["127.0.0.1:${PORT[origin]}"] }
$filters
routes:
  - name: api
    match: { prefix: /api }
    upstream: origin
$route_filters
EOF
}
# (e) a payment order POSTed from a page: `cors` and `validate` against the shipped
# payment schema, as global filters; `fingate-post` is the same POST, no filters.
POLICIES="filters:
  - cors: { origins: [https://app.example.com], headers: [Authorization, Content-Type, Idempotency-Key] }
  - validate: { json_schema: $PWD/examples/schemas/payment.json }"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"from_account":"ACC-1001","to_account":"ACC-2001","amount":2500,"currency":"EUR","reference":"rent"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Origin"] = "https://app.example.com"
LUA
# (f) the same POST with `idempotency` on the route: a fresh key per request (each
# claimed, forwarded detached, stored, the answer relayed), or one key for all (every
# request after the first is answered from the store). Records live 2s: at ~20k keys
# a second the memory store stays under its cap of 100,000 records.
IDEMPOTENCY="    filters:
      - idempotency: { required: true, ttl: 2s }"
REPLAY="    filters:
      - idempotency: { required: true, ttl: 1h }"
sed -e 's/^wrk.headers\["Origin"\].*//' "$WORK/post.lua" > "$WORK/replay.lua"
echo 'wrk.headers["Idempotency-Key"] = "one-key-for-all"' >> "$WORK/replay.lua"
cat "$WORK/replay.lua" > "$WORK/idem.lua"
cat >> "$WORK/idem.lua" <<'LUA'
-- A fresh key per request: a random prefix per wrk run (warm-up and measured runs
-- must not share keys) and a counter.
local f = io.open("/dev/urandom", "rb")
local prefix = f:read(8):gsub(".", function(c) return string.format("%02x", c:byte()) end)
f:close()
local n = 0
request = function()
  n = n + 1
  wrk.headers["Idempotency-Key"] = prefix .. "-" .. n
  return wrk.format()
end
LUA
# Tracing: spans exported to benches/load/otlp_sink.py (started on core 0 when a
# scenario exports).
trace_section() {
  local ratio=$1
  printf 'tracing: { otlp_endpoint: "http://127.0.0.1:%s/v1/traces", sample_ratio: %s }' "${PORT[otlp]}" "$ratio"
}
REDIS_STORE="{ backend: redis, url: \"redis://127.0.0.1:${PORT[redis]}/0\" }"
FILTERS="filters:
  - request_id: {}
  - headers:
      request:
        set: { X-Forwarded-Proto: http, X-Gateway: fingate }
        remove: [X-Debug]
      response:
        set: { X-Content-Type-Options: nosniff, Cache-Control: no-store }
        remove: [Server]"

# (h) The chain users run: a token check (HS256 with exp, iss and aud), a rate limit
# per token subject and the access log, on fingate, HAProxy and the Express.js
# design. The limit is never reached here: each request is counted and allowed.
CHAIN_LIMIT=100000000
CHAIN_AUTH="auth:
  issuer: $JWT_ISSUER
  audience: $JWT_AUDIENCE
  keys: [{ id: main, algorithm: HS256, secret: \"$JWT_SECRET\" }]"
CHAIN="    filters:
      - jwt: {}
      - rate_limit: { key: consumer, limit: $CHAIN_LIMIT, per: 1m }"

# haproxy_conf NAME [chain]: one thread, kept-alive connections on both sides, an
# HTTP log line per request to stdout (sent to /dev/null, as nginx's). With `chain`:
# jwt_verify (HS256) and the exp, iss and aud claims, then a stick table counting
# requests per `sub` over 60 s.
haproxy_conf() {
  local name=$1 rules=""
  if [ "${2:-}" = chain ]; then
    rules="
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.alg) -m str HS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,\"$JWT_SECRET\") -m int 1 }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str $JWT_ISSUER }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str $JWT_AUDIENCE }
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('\$.sub')
  http-request track-sc0 var(txn.sub) table per_sub
  http-request deny deny_status 429 if { sc_http_req_rate(0,per_sub) gt $CHAIN_LIMIT }"
  fi
  mkdir -p "$WORK/$name"
  cat > "$WORK/$name/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn ${MAX_CLIENT_CONNECTIONS:-4096}
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend gateway
  bind 127.0.0.1:${PORT[$name]}$rules
  default_backend origin
backend per_sub
  stick-table type string len 64 size 100k expire 60s store http_req_rate(60s)
backend origin
  http-reuse always
  server origin 127.0.0.1:${PORT[origin]} maxconn 256
EOF
}

# start NAME CORE CMD...: run in the background pinned to CORE; stdout to /dev/null.
start() {
  local name=$1 core=$2; shift 2
  "${PRIO_CMD[@]}" taskset -c "$core" "$@" > /dev/null 2> "$WORK/$name.stderr" &
  PID[$name]=$!
}

# url SCENARIO: where its load goes. TLS goes to `localhost` (wrk and h2load
# connect to the first address that answers: 127.0.0.1), so that the clients send
# a name as SNI, as real ones do. An IP address as SNI is not allowed (RFC 6066):
# nginx ignores it, fingate (rustls) ignores it and logs a warning per handshake.
url() {
  if [ -n "$(tls_kind "$1")" ]; then
    echo "https://localhost:${PORT[$1]}$REQUEST_PATH"
  else
    echo "http://127.0.0.1:${PORT[$1]}$REQUEST_PATH"
  fi
}

# Ready when it answers 200 (TLS: over HTTP/2 for -h2 scenarios, else HTTP/1.1,
# with the certificate checked against the test CA).
wait_ready() {
  local name=$1 curl=(curl -fsS -o /dev/null) want=""
  request_headers "$name"; curl+=("${REQ_HEADERS[@]}")
  case $(tls_kind "$name") in
    "") ;;
    h2) curl+=(--cacert "$TLS/ca.pem" --http2 -w '%{http_version}') want=2 ;;
    *) curl+=(--cacert "$TLS/ca.pem" --http1.1 -w '%{http_version}') want=1.1 ;;
  esac
  for _ in $(seq 1 100); do
    if got=$("${curl[@]}" "$(url "$name")" 2>/dev/null); then
      [ "$got" = "$want" ] && return 0
      echo "$name answered over HTTP/$got, not HTTP/$want" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "$name did not come up:" >&2; cat "$WORK/$name.stderr" >&2; exit 1
}

# tls_facts SCENARIO: what a client without ALPN (as wrk) negotiates, the session
# tickets sent over one request, and whether the server resumes that session.
tls_facts() {
  local name=$1 client=(openssl s_client -connect "127.0.0.1:${PORT[$1]}" -servername localhost
                        -CAfile "$TLS/ca.pem" -verify_return_error -ign_eof) out first key tickets resumed=no
  local request="GET $REQUEST_PATH HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
  out=$(printf "$request" | "${client[@]}" -msg -sess_out "$TLS/$name.session" 2>&1 || true)
  tickets=$(grep -c 'NewSessionTicket' <<< "$out" || true)
  first=$(grep -m1 -E '^(New|Reused), ' <<< "$out" || echo "no handshake")
  key=$(sed -n 's/^Peer Temp Key: //p;s/^Server Temp Key: //p' <<< "$out" | head -1)
  printf "$request" | "${client[@]}" -sess_in "$TLS/$name.session" 2>/dev/null | grep -q '^Reused, ' && resumed=yes
  echo "$name: ${first%,} (${key:-?}), $tickets session tickets, resumes: $resumed"
}

start origin $LOAD_CORE nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log"
wait_ready origin
# express_install: the Express.js gateway's npm packages, as locked.
express_install() {
  ensure_packages node:nodejs npm:npm
  [ -d benches/express-gateway/node_modules ] || (cd benches/express-gateway && npm ci --no-audit --no-fund >&2)
}

if [[ " ${SCENARIOS[*]} " == *-redis* || " ${SCENARIOS[*]} " == *express* ]]; then
  ensure_packages redis-server:redis-server
  "${PRIO_CMD[@]}" taskset -c $LOAD_CORE redis-server --port "${PORT[redis]}" --bind 127.0.0.1 \
    --save "" --appendonly no > "$WORK/redis.log" 2>&1 &
  PID[redis]=$!
  for _ in $(seq 1 100); do redis-cli -p "${PORT[redis]}" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
fi
if [[ " ${SCENARIOS[*]} " == *fingate+trace-* ]]; then
  "${PRIO_CMD[@]}" taskset -c $LOAD_CORE python3 benches/load/otlp_sink.py "${PORT[otlp]}" 2> "$WORK/otlp.log" &
  PID[otlp]=$!
fi
for s in "${SCENARIOS[@]}"; do
  bin=$BIN; [[ $s == *@B ]] && bin=$COMPARE
  case $s in
    nginx) start nginx $PROXY_CORE nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" ;;
    nginx-*) [ -n "$(tls_kind "$s")" ] || { echo "unknown scenario $s" >&2; exit 2; }
             nginx_tls_conf "$s"; start "$s" $PROXY_CORE nginx -p "$WORK/$s" -c "$WORK/$s/nginx.conf" -e "$WORK/$s/error.log" ;;
    bare-pingora*) start "$s" $PROXY_CORE "$bin/$([[ $s == *@B ]] || echo examples/)bare_pingora" \
                     "127.0.0.1:${PORT[$s]}" "127.0.0.1:${PORT[origin]}" 1 ;;
    haproxy) haproxy_conf "$s"; start "$s" $PROXY_CORE haproxy -db -f "$WORK/$s/haproxy.cfg" ;;
    haproxy+chain) haproxy_conf "$s" chain; start "$s" $PROXY_CORE haproxy -db -f "$WORK/$s/haproxy.cfg" ;;
    express+chain) express_install
                   start "$s" $PROXY_CORE env PORT="${PORT[$s]}" ORIGIN="http://127.0.0.1:${PORT[origin]}" \
                     REDIS_URL="redis://127.0.0.1:${PORT[redis]}/0" JWT_SECRET="$JWT_SECRET" \
                     JWT_ISSUER="$JWT_ISSUER" JWT_AUDIENCE="$JWT_AUDIENCE" RATE_LIMIT=$CHAIN_LIMIT \
                     node benches/express-gateway/server.js ;;
    fingate*)
      store="" global="" route=""
      [[ $s == *-redis* ]] && store=$REDIS_STORE
      case ${s%@B} in
        fingate+filters) global=$FILTERS ;;
        fingate+policies) global=$POLICIES ;;
        fingate+idem*) route=$IDEMPOTENCY ;;
        fingate+replay*) route=$REPLAY ;;
        fingate+chain*) global=$CHAIN_AUTH route=$CHAIN ;;
        fingate+propagate) global="tracing: {}" ;;
        fingate+trace-*) global=$(trace_section "${s#fingate+trace-}") ;;
      esac
      fingate_conf "$s" "$global" "$route" ${store:+"$store"}
      # `-nolog`: the access log off.
      log=(); [[ $s == *-nolog* ]] && log=(env FINGATE_LOG=info,fingate::access=off)
      start "$s" $PROXY_CORE "${log[@]}" "$bin/fingate" run -c "$WORK/$s.yaml" ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
for s in "${SCENARIOS[@]}"; do wait_ready "$s"; done
: > "$WORK/tls-facts.txt"
for s in "${TLS_SCENARIOS[@]}"; do tls_facts "$s" | tee -a "$WORK/tls-facts.txt" >&2; done
# The policies must really run: an allowed origin is answered with CORS headers,
# and a body against the schema is refused.
if [ -n "${PORT[fingate+policies]:-}" ]; then
  p="http://127.0.0.1:${PORT[fingate+policies]}$REQUEST_PATH"
  curl -fsS -D - -o /dev/null -H 'Origin: https://app.example.com' -H 'Content-Type: application/json' \
    -d '{"from_account":"ACC-1001","to_account":"ACC-2001","amount":2500,"currency":"EUR"}' "$p" \
    | grep -qi '^access-control-allow-origin: https://app.example.com' \
    && [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"amount":-1}' "$p")" = 422 ] \
    || { echo "the policies scenario does not apply cors and validate" >&2; exit 1; }
fi
# Idempotency must really apply: a key's second request is a replay.
for s in "${SCENARIOS[@]}"; do
  [[ $s == fingate+idem* || $s == fingate+replay* ]] || continue
  p="http://127.0.0.1:${PORT[$s]}$REQUEST_PATH" k="check-$RANDOM$RANDOM"
  for _ in 1 2; do
    curl -fsS -D - -o /dev/null -H "Idempotency-Key: $k" -H 'Content-Type: application/json' -d '{}' "$p"
  done | grep -qi '^idempotent-replayed: true' \
    || { echo "the $s scenario does not apply idempotency" >&2; exit 1; }
done
# The chains must really check: no token is 401, the token is 200.
for s in "${SCENARIOS[@]}"; do
  chain "$s" || continue
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$(url "$s")")" = 401 ] \
    || { echo "the $s scenario does not check tokens" >&2; exit 1; }
done
# The filters must really run: the response carries what the headers filter set.
if [ -n "${PORT[fingate+filters]:-}" ]; then
  curl -fsSI "http://127.0.0.1:${PORT[fingate+filters]}$REQUEST_PATH" | grep -qi '^x-content-type-options: nosniff' \
    || { echo "the filters scenario does not apply its filters" >&2; exit 1; }
fi

# seconds DURATION: a wrk-style duration (10s, 2m, 1h) in whole seconds.
seconds() { case $1 in *ms) echo 1 ;; *s) echo "${1%s}" ;; *m) echo $(( ${1%m} * 60 )) ;; *h) echo $(( ${1%h} * 3600 )) ;; *) echo "$1" ;; esac; }

# CPU clock ticks (utime+stime) of a process and its children (nginx's worker).
# stat_ticks PID I...: fields I... of proc(5)'s stat (counted from 0 after
# "pid (comm) "), summed over PID and its children.
stat_ticks() {
  local pid=$1 total=0 p stat i; shift
  for p in "$pid" $(pgrep -P "$pid"); do
    stat=$(< "/proc/$p/stat"); stat=${stat##*) }   # drop "pid (comm) ": comm may hold spaces
    read -r -a f <<< "$stat"
    for i in "$@"; do total=$((total + f[i])); done
  done
  echo $total
}
# cpu_ticks PID: user + kernel CPU (fields 14 and 15 of proc(5)).
cpu_ticks() { stat_ticks "$1" 11 12; }
# kernel_ticks PID: the kernel's part (stime).
kernel_ticks() { stat_ticks "$1" 12; }
