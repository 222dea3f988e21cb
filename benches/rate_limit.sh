#!/usr/bin/env bash
# What does a Redis-backed rate limit cost, and are refusals cheap?
#
# One gateway (threads: 1, release build) in front of services-mock, one Redis, three
# routes measured one after another with wrk:
#   open     — no filter
#   allowed  — rate_limit in Redis with a huge limit (every request is a Redis decision)
#   refused  — rate_limit of 1 per hour (every request after the first is a 429)
# and the Redis EVALSHA calls each run made (INFO commandstats delta).
#
# Usage: cargo build --release --bins && benches/rate_limit.sh [duration] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-32}
BIN=target/release
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(pick_port); MOCK_PORT=$(pick_port); GW_PORT=$(pick_port); ADMIN_PORT=$(pick_port)
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & PIDS+=($!)
"$BIN/services-mock" accounts --listen "127.0.0.1:$MOCK_PORT" --name a >/dev/null & PIDS+=($!)
cat > "$TMP/gateway.yaml" <<YAML
listen: [{ address: '127.0.0.1:$GW_PORT' }]
admin: { address: '127.0.0.1:$ADMIN_PORT' }
threads: 1
store: { backend: redis, url: 'redis://127.0.0.1:$REDIS_PORT/0', timeout: 50ms }
upstreams:
  svc: { targets: ['127.0.0.1:$MOCK_PORT'] }
routes:
  - { name: open, match: { prefix: /_mock/echo/open }, upstream: svc }
  - name: allowed
    match: { prefix: /_mock/echo/allowed }
    upstream: svc
    filters: [ { rate_limit: { key: ip, limit: 1000000000, per: 1s } } ]
  - name: refused
    match: { prefix: /_mock/echo/refused }
    upstream: svc
    filters: [ { rate_limit: { key: ip, limit: 1, per: 1h } } ]
YAML
"$BIN/fingate" run -c "$TMP/gateway.yaml" >"$TMP/gateway.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && break; sleep 0.1
done
calls() { redis-cli -p "$REDIS_PORT" INFO commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p' | tr -d '\r' | grep . || echo 0; }

echo "| route | requests/s | p99 | statuses | Redis EVALSHA calls |"
echo "|---|---|---|---|---|"
for route in open allowed refused; do
  url="http://127.0.0.1:$GW_PORT/_mock/echo/$route"
  curl -s -o /dev/null "$url"   # warm up (and use up the refused route's one request)
  before=$(calls)
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$url")
  after=$(calls)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "| $route | $rps | $p99 | $total requests, ${non2xx:-0} non-2xx | $((after - before)) |"
done
