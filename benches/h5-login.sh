#!/usr/bin/env bash
# Benchmark (not a test): H5 login throughput with the server's argon2id parameters
# (19 MiB, 2 passes, 1 lane). Starts a release server on a fresh database, registers one
# user, then runs wrk posting valid logins for DURATION with CONNS connections.
#   benches/h5-login.sh
#   CONNS=32 DURATION=30s benches/h5-login.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-16}
DURATION=${DURATION:-15s}
PORT=${PORT:-18081}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

eval "$(scripts/provision)"
command -v wrk >/dev/null 2>&1 || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
cargo build --release --locked --bin mission-control >&2

db=mc_bench_$$
psql "$MC_PG_ADMIN_URL" -qc "CREATE DATABASE $db"
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  psql "$MC_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  rm -rf "$work"
}
trap cleanup EXIT

env -i PATH="$PATH" AUTH_MODE=local LOCAL_AUTH_TOKEN=$TOKEN DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db" \
  REDIS_URL="$MC_REDIS_URL" DB_AUTO_MIGRATE=true LOG_LEVEL=warn \
  target/release/mission-control serve --bind 127.0.0.1:$PORT &
server_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
org=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/organizations/me" | sed -E 's/.*"id":"([^"]+)".*/\1/')
body="{\"organization_id\":\"$org\",\"username\":\"bench\",\"password\":\"bench-password\"}"
curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$PORT/api/v1/h5/auth/register"

cat > "$work/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
echo "== POST /api/v1/h5/auth/login ($CONNS connections, $DURATION, $(nproc) cores)"
wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$work/login.lua" "http://127.0.0.1:$PORT/api/v1/h5/auth/login" |
  grep -E 'Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors'
echo "server RSS after load: $(awk '/VmRSS/ {print $2 " kB"}' "/proc/$server_pid/status")"
