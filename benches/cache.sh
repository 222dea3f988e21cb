#!/usr/bin/env bash
# Question: how much does a cache HIT save over the same route uncached, and how do
# both compare with nginx proxying the same service? One run, side by side:
# requests/s and p99 from `wrk -t1 -c32 -d10s --latency` against
#   1. fingate, route with `cache: { ttl: 1h }` (every request after the first is a HIT)
#   2. fingate, the same upstream route without a cache
#   3. nginx 1 worker, proxy_pass with upstream keep-alive to the same service
# fingate runs with `threads: 1` and nginx with one worker, access logs off in both.
# Release build of this tree. Usage: [ROUNDS=3] benches/cache.sh [duration, default 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages "${BUILD_PACKAGES[@]}" "${BENCH_PACKAGES[@]}"

DURATION=${1:-10s}
MOCK_PORT=${MOCK_PORT:-19111}
GW_PORT=${GW_PORT:-19080}
ADMIN_PORT=${ADMIN_PORT:-19901}
NGINX_PORT=${NGINX_PORT:-19090}

cargo build --release --locked -p fingate -p services-mock --bins >&2
BIN=target/release
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_http() { # URL
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "no answer from $1" >&2
  return 1
}

"$BIN/services-mock" accounts --listen "127.0.0.1:$MOCK_PORT" --name a >"$tmp/mock.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/health"

cat >"$tmp/gateway.yaml" <<YAML
listen: [{ address: 127.0.0.1:$GW_PORT }]
admin: { address: 127.0.0.1:$ADMIN_PORT }
threads: 1
upstreams:
  a: { targets: [127.0.0.1:$MOCK_PORT] }
routes:
  - name: fx-cached
    match: { path: "/cached/fx/{pair}", methods: [GET] }
    upstream: a
    rewrite: { strip_prefix: /cached }
    filters: [ { cache: { ttl: 1h } } ]
  - name: fx-uncached
    match: { path: "/api/fx/{pair}", methods: [GET] }
    upstream: a
    rewrite: { strip_prefix: /api }
YAML
FINGATE_LOG=warn "$BIN/fingate" run -c "$tmp/gateway.yaml" >"$tmp/fingate.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz"

mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  upstream svc { server 127.0.0.1:$MOCK_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /api/ {
      proxy_pass http://svc/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
nginx -p "$tmp/nginx" -c "$tmp/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/api/fx/EUR-USD"

ROUNDS=${ROUNDS:-3}
declare -A URL=(
  [hit]="http://127.0.0.1:$GW_PORT/cached/fx/EUR-USD"
  [uncached]="http://127.0.0.1:$GW_PORT/api/fx/EUR-USD"
  [nginx]="http://127.0.0.1:$NGINX_PORT/api/fx/EUR-USD"
)
declare -A LABEL=(
  [hit]="fingate, cache HIT (/cached/fx/EUR-USD)"
  [uncached]="fingate, same route uncached (/api/fx/EUR-USD)"
  [nginx]="nginx proxy_pass (/api/fx/EUR-USD)"
)
TARGETS=(hit uncached nginx)

for t in "${TARGETS[@]}"; do # first answers (the cached route's second one on is a HIT), warm-up
  curl -fsS -o /dev/null "${URL[$t]}"
  curl -fsS -o /dev/null "${URL[$t]}"
  wrk -t1 -c32 -d2s "${URL[$t]}" >/dev/null
done

# The machine is shared: rounds alternate the targets so a burst of outside load
# hits all of them alike, and the table reports each target's median round.
for round in $(seq 1 "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    out=$(wrk -t1 -c32 -d"$DURATION" --latency "${URL[$t]}")
    if grep -q "Non-2xx" <<<"$out"; then echo "$t: non-2xx answers" >&2; exit 1; fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    echo "$rps $p99" >>"$tmp/rounds-$t"
    echo "round $round $t: $rps req/s, p99 $p99" >&2
  done
done

median() { # FILE COLUMN -> the median round's value of that column
  local n; n=$(wc -l <"$1")
  if [ "$2" = 1 ]; then sort -g -k1,1 "$1"; else
    # p99 values carry units (us, ms, s): compare in microseconds
    awk '{v=$2; u=1; if (v ~ /ms$/) u=1000; else if (v ~ /us$/) u=1; else if (v ~ /s$/) u=1000000;
          sub(/[a-z]+$/, "", v); print v*u, $2}' "$1" | sort -g -k1,1 | awk '{print "x", $2}'
  fi | sed -n "$(( (n + 1) / 2 ))p" | awk -v c="$2" '{print $c}'
}

echo
echo "wrk -t1 -c32 -d$DURATION --latency, median of $ROUNDS alternating rounds, $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| target | requests/s | p99 |"
echo "|---|---|---|"
for t in "${TARGETS[@]}"; do
  printf '| %s | %s | %s |\n' "${LABEL[$t]}" "$(median "$tmp/rounds-$t" 1)" "$(median "$tmp/rounds-$t" 2)"
done
echo
hits=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^fingate_cache_lookups_total\{result="hit",route="fx-cached"\}/ {print $2}')
awk -v h="$(median "$tmp/rounds-hit" 1)" -v u="$(median "$tmp/rounds-uncached" 1)" -v n="$hits" \
  'BEGIN { printf "hit / uncached throughput: %.2fx (%s cache hits counted)\n", h / u, n }'
