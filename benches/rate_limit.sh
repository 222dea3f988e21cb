#!/usr/bin/env bash
# What does a Redis-backed rate limit cost, and are refusals cheap?
#
# One gateway (threads: 1, release build) in front of services-mock, one Redis, three
# routes measured one after another with wrk:
#   open     — no filter
#   allowed  — rate_limit in Redis with a huge limit (every request is a Redis decision),
#              all requests on one key (`ip`): concurrent ones share a script call
#   spread   — the same limit keyed by `header:X-Client`, every request a different
#              client (wrk script), so no two decisions can share a call: one
#              EVALSHA per request, the worst case
#   refused  — rate_limit of 1 per hour (every request after the first is a 429)
# and the Redis EVALSHA calls each run made (INFO commandstats delta).
#
# The routes are measured in interleaved rounds and the median of each is shown, so a
# burst of background load on a shared machine does not land on one route only.
#
# Usage: cargo build --release --bins && benches/rate_limit.sh [duration] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-32}
ROUNDS=${3:-3}
BIN=target/release
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(pick_port); MOCK_PORT=$(pick_port); GW_PORT=$(pick_port); ADMIN_PORT=$(pick_port)
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & PIDS+=($!)
REDIS_PID=$!
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
  - name: spread
    match: { prefix: /_mock/echo/spread }
    upstream: svc
    filters: [ { rate_limit: { key: 'header:X-Client', limit: 1000000000, per: 1s } } ]
  - name: refused
    match: { prefix: /_mock/echo/refused }
    upstream: svc
    filters: [ { rate_limit: { key: ip, limit: 1, per: 1h } } ]
YAML
"$BIN/fingate" run -c "$TMP/gateway.yaml" >"$TMP/gateway.log" 2>&1 & PIDS+=($!)
GW_PID=$!
# CPU time (user + system, in clock ticks) a process has used so far: on a shared,
# busy machine this is steadier than requests/s.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && break; sleep 0.1
done
calls() { redis-cli -p "$REDIS_PORT" INFO commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p' | tr -d '\r' | grep . || echo 0; }

# A different X-Client on every request (per wrk thread; one thread here).
cat > "$TMP/spread.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, { ["X-Client"] = "client-" .. n })
end
LUA
ROUTES="open allowed spread refused"
for route in $ROUTES; do
  # Warm up; on the refused route this uses up its one request and gets the first 429.
  curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/_mock/echo/$route"
  curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/_mock/echo/$route"
done
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f\n", v}'; }
for round in $(seq "$ROUNDS"); do
  for route in $ROUTES; do
    before=$(calls); g0=$(ticks "$GW_PID"); r0=$(ticks "$REDIS_PID")
    script=(); [ "$route" = spread ] && script=(-s "$TMP/spread.lua")
    out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${script[@]}" "http://127.0.0.1:$GW_PORT/_mock/echo/$route")
    after=$(calls); g1=$(ticks "$GW_PID"); r1=$(ticks "$REDIS_PID")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    # CPU µs per request: gateway, and gateway + Redis.
    gw_us=$(( (g1 - g0) * 1000000 / HZ / total )); all_us=$(( (g1 - g0 + r1 - r0) * 1000000 / HZ / total ))
    echo "$route $rps $p99 $total ${non2xx:-0} $((after - before)) $gw_us $all_us" >>"$TMP/runs"
    echo "round $round $route: $rps req/s, p99 $p99 ms, $total requests, ${non2xx:-0} non-2xx, $((after - before)) EVALSHA, CPU/request: gateway $gw_us µs, gateway+redis $all_us µs" >&2
  done
done
echo "| route | requests/s (median of $ROUNDS) | p99 ms (median) | CPU µs per request: gateway / gateway+Redis (median) | non-2xx / requests (all rounds) | Redis EVALSHA calls (all rounds) |"
echo "|---|---|---|---|---|---|"
median() { sort -g | awk -v n="$ROUNDS" '{a[NR]=$1} END {print a[int((n+1)/2)]}'; }
for route in $ROUTES; do
  awk -v r="$route" '$1==r' "$TMP/runs" | sort -k2 -g | awk -v n="$ROUNDS" '
    { rps[NR]=$2; p[NR]=$3; req+=$4; bad+=$5; ev+=$6; name=$1 }
    END { m=int((n+1)/2); printf "%s %s %s %d %d %d\n", name, rps[m], 0, req, bad, ev }' >"$TMP/row"
  p99=$(awk -v r="$route" '$1==r {print $3}' "$TMP/runs" | median)
  gw=$(awk -v r="$route" '$1==r {print $7}' "$TMP/runs" | median)
  all=$(awk -v r="$route" '$1==r {print $8}' "$TMP/runs" | median)
  read -r name rps _ req bad ev <"$TMP/row"
  echo "| $name | $rps | $p99 | $gw / $all | $bad / $req | $ev |"
done
