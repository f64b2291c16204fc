#!/usr/bin/env bash
# Benchmark (not a test): agent-token authentication with AGENTS agents in the database.
# Starts a release server on a fresh database, creates one agent through the API (its
# token is what wrk sends), adds the other agents with tokens of their own by SQL, then
# runs wrk against GET /api/v1/agent/healthz (authentication, presence check, answer) and
# GET /api/v1/agent/boards/{id}/tasks for CONNS connections and DURATION each.
#   benches/agent-auth.sh                 # 10,000 agents
#   AGENTS=100000 CONNS=128 benches/agent-auth.sh
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=1
AGENTS=${AGENTS:-10000}
CONNS=${CONNS:-64}
DURATION=${DURATION:-15s}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

command -v wrk >/dev/null 2>&1 || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
# shellcheck source=benches/servers.sh
. benches/servers.sh
api=${urls[0]}
auth=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\\1/"; }

gateway=$(curl -fsS "${auth[@]}" -d '{"name":"bench","url":"wss://gw","workspace_root":"/srv"}' "$api/api/v1/gateways" | json_field id)
board=$(curl -fsS "${auth[@]}" -d "{\"name\":\"Bench\",\"slug\":\"bench\",\"description\":\"b\",\"gateway_id\":\"$gateway\"}" "$api/api/v1/boards" | json_field id)
agent_token=$(curl -fsS "${auth[@]}" -d "{\"name\":\"Bencher\",\"board_id\":\"$board\"}" "$api/api/v1/agents" | json_field agent_token)
for i in $(seq 1 20); do curl -fsS "${auth[@]}" -d "{\"title\":\"task $i\"}" "$api/api/v1/boards/$board/tasks" >/dev/null; done
psql "${MC_PG_ADMIN_URL%/*}/$db" -q <<SQL
INSERT INTO agents (id, organization_id, board_id, gateway_id, name, token_lookup, token_hash)
SELECT gen_random_uuid(), b.organization_id, b.id, b.gateway_id, 'agent ' || n,
       md5(random()::text || n)::text, decode(md5(random()::text), 'hex')
FROM boards b, generate_series(2, $AGENTS) n;
ANALYZE agents;
SQL
echo "agents with tokens: $(psql "${MC_PG_ADMIN_URL%/*}/$db" -Atc "SELECT count(*) FROM agents WHERE token_lookup IS NOT NULL")"

for path in "/api/v1/agent/healthz" "/api/v1/agent/boards/$board/tasks?limit=20"; do
  echo "== GET $path ($CONNS connections, $DURATION)"
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "X-Agent-Token: $agent_token" "$api$path" |
    grep -E 'Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors'
done
echo "server RSS: $(awk '/VmRSS/ {print $2 " kB"}' "/proc/${pids[0]}/status")"
