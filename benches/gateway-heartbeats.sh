#!/usr/bin/env bash
# Benchmark (not a test): HTTP heartbeats one instance sustains from GATEWAYS simulated
# gateways. Starts a release server on a fresh database, issues a registration token,
# registers the gateways with gateway-sim, then sends heartbeats with CONCURRENCY in
# flight for DURATION seconds and prints gateway-sim's JSON report.
#   benches/gateway-heartbeats.sh
#   GATEWAYS=1000 CONCURRENCY=128 DURATION=30 benches/gateway-heartbeats.sh
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAYS=${GATEWAYS:-1000}
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-15}
PORT=${PORT:-18082}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

eval "$(scripts/provision)"
cargo build --release --locked --bin mission-control --bin gateway-sim >&2
ulimit -n 65536 2>/dev/null || true

db=mc_bench_$$
psql "$MC_PG_ADMIN_URL" -qc "CREATE DATABASE $db"
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  psql "$MC_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
}
trap cleanup EXIT

env -i PATH="$PATH" AUTH_MODE=local LOCAL_AUTH_TOKEN=$TOKEN DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db" \
  REDIS_URL="$MC_REDIS_URL" DB_AUTO_MIGRATE=true LOG_LEVEL=warn \
  target/release/mission-control serve --bind 127.0.0.1:$PORT &
server_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
auth=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
org=$(curl -fsS "${auth[@]}" "http://127.0.0.1:$PORT/api/v1/organizations/me" | sed -E 's/.*"id":"([^"]+)".*/\1/')
reg=$(curl -fsS "${auth[@]}" -d '{"label":"bench"}' "http://127.0.0.1:$PORT/api/v1/gateway-registry/tokens" |
  sed -E 's/.*"registration_token":"([^"]+)".*/\1/')

echo "server RSS before: $(awk '/VmRSS/ {print $2 " kB"}' "/proc/$server_pid/status")" >&2
target/release/gateway-sim bench-heartbeat --server "http://127.0.0.1:$PORT" --org "$org" \
  --registration-token "$reg" --name bench --gateways "$GATEWAYS" --concurrency "$CONCURRENCY" --duration-secs "$DURATION"
echo "server RSS after: $(awk '/VmRSS/ {print $2 " kB"}' "/proc/$server_pid/status")" >&2
