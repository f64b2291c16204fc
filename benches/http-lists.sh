#!/usr/bin/env bash
# Benchmark (not a test): GET /api/v1/boards and GET /api/v1/boards/{id}/tasks under
# concurrent load on loopback. Starts a release server on a fresh database seeded with
# BOARDS boards of TASKS tasks each (by SQL, so seeding is not what is measured), then
# runs wrk against both endpoints and reports requests/s, latency percentiles and the
# server's memory. Bounded: each wrk run lasts DURATION and the script stops the server.
#   benches/http-lists.sh            # defaults below
#   BOARDS=50 TASKS=500 CONNS=128 DURATION=30s benches/http-lists.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BOARDS=${BOARDS:-20}
TASKS=${TASKS:-200}
CONNS=${CONNS:-64}
DURATION=${DURATION:-15s}
PORT=${PORT:-18080}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

eval "$(scripts/provision)"
command -v wrk >/dev/null 2>&1 || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
cargo build --release --locked --bin mission-control >&2

db=mc_bench_$$
psql "$MC_PG_ADMIN_URL" -qc "CREATE DATABASE $db"
DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db"
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  psql "$MC_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
}
trap cleanup EXIT

env -i PATH="$PATH" AUTH_MODE=local LOCAL_AUTH_TOKEN=$TOKEN DATABASE_URL="$DATABASE_URL" \
  REDIS_URL="$MC_REDIS_URL" DB_AUTO_MIGRATE=true LOG_LEVEL=warn \
  target/release/mission-control serve --bind 127.0.0.1:$PORT &
server_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/users/me" >/dev/null # provisions the org

psql "$DATABASE_URL" -q <<SQL
WITH org AS (SELECT active_organization_id AS id FROM users WHERE clerk_user_id = 'local-auth-user'),
gw AS (INSERT INTO gateways (id, organization_id, name) SELECT gen_random_uuid(), id, 'bench gateway' FROM org RETURNING id, organization_id)
INSERT INTO agents (id, organization_id, board_id, gateway_id, name) SELECT gen_random_uuid(), organization_id, NULL, id, 'main' FROM gw;
INSERT INTO boards (id, organization_id, name, slug, description, gateway_id)
SELECT gen_random_uuid(), g.organization_id, 'Board ' || n, 'board-' || n, 'bench', g.id
FROM gateways g, generate_series(1, $BOARDS) n;
INSERT INTO tasks (id, organization_id, board_id, title, status, priority, created_at)
SELECT gen_random_uuid(), b.organization_id, b.id, 'Task ' || n, (ARRAY['inbox','in_progress','review','done'])[1 + n % 4],
       (ARRAY['low','medium','high'])[1 + n % 3], now() - n * interval '1 minute'
FROM boards b, generate_series(1, $TASKS) n;
ANALYZE;
SQL
board=$(psql "$DATABASE_URL" -Atc "SELECT id FROM boards ORDER BY name LIMIT 1")

rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$server_pid/status"; }
echo "server RSS after seeding: $(rss)"
for path in "/api/v1/boards" "/api/v1/boards/$board/tasks" "/api/v1/boards/$board/tasks?limit=20"; do
  echo "== GET $path ($BOARDS boards x $TASKS tasks, $CONNS connections, $DURATION)"
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$path" |
    grep -E 'Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors'
done
echo "server RSS after load: $(rss)"
