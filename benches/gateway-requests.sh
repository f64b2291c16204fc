#!/usr/bin/env bash
# Benchmark (not a test): requests to a gateway over its relay link. Starts INSTANCES
# release servers on a fresh database and the shared Redis, links one simulated gateway
# (gateway-sim, which answers every rpc.request) to the LAST instance, and runs wrk on the
# FIRST against GET /api/v1/gateways/sessions?board_id=… (each call records a request,
# wakes the link, the gateway answers, the answer is recorded and handed back), then
# against POST /api/v1/agent/boards/{id}/agents/{id}/nudge (a queued sessions.send).
#   benches/gateway-requests.sh                 # one instance
#   INSTANCES=2 benches/gateway-requests.sh     # the answer crosses instances over Redis
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=${INSTANCES:-1}
CONNS=${CONNS:-32}
DURATION=${DURATION:-15s}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

command -v wrk >/dev/null 2>&1 || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
# shellcheck source=benches/servers.sh
. benches/servers.sh
cargo build --release --locked --bin gateway-sim >&2
first=${urls[0]}
last=${urls[$((INSTANCES - 1))]}
auth=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\\1/"; }

org=$(curl -fsS "${auth[@]}" "$first/api/v1/organizations/me" | json_field id)
registration=$(curl -fsS "${auth[@]}" -d '{"label":"bench"}' "$first/api/v1/gateway-registry/tokens" | json_field registration_token)
target/release/gateway-sim run --server "$last" --org "$org" --registration-token "$registration" --name bench-office >/dev/null 2>&1 &
pids+=($!)
gateway=""
for _ in $(seq 1 100); do
  gateway=$(curl -fsS "${auth[@]}" "$first/api/v1/gateways" | grep -o '"id":"[^"]*","organization_id":"[^"]*","name":"bench-office"' | json_field id || true)
  [ -n "$gateway" ] && [ "$(curl -fsS "${auth[@]}" "$first/api/v1/gateways/$gateway/connections" | grep -o '"is_connected":true')" ] && break
  sleep 0.1
done
board=$(curl -fsS "${auth[@]}" -d "{\"name\":\"Bench\",\"slug\":\"bench\",\"description\":\"b\",\"gateway_id\":\"$gateway\"}" "$first/api/v1/boards" | json_field id)
lead=$(curl -fsS "${auth[@]}" -d "{\"name\":\"Lead\",\"board_id\":\"$board\"}" "$first/api/v1/agents")
lead_id=$(echo "$lead" | json_field id)
lead_token=$(echo "$lead" | json_field agent_token)
worker_id=$(curl -fsS "${auth[@]}" -d "{\"name\":\"Worker\",\"board_id\":\"$board\"}" "$first/api/v1/agents" | json_field id)
psql "${MC_PG_ADMIN_URL%/*}/$db" -qc "UPDATE agents SET is_board_lead = true WHERE id = '$lead_id'"

# Both calls must work before they are loaded.
curl -fsS -H "Authorization: Bearer $TOKEN" "$first/api/v1/gateways/sessions?board_id=$board" >/dev/null
nudge="$first/api/v1/agent/boards/$board/agents/$worker_id/nudge"
curl -sS -H "X-Agent-Token: $lead_token" -H 'Content-Type: application/json' -d '{"message":"status?"}' "$nudge"; echo

echo "== GET /api/v1/gateways/sessions ($INSTANCES instance(s), $CONNS connections, $DURATION)"
wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" \
  "$first/api/v1/gateways/sessions?board_id=$board" | grep -E "Requests/sec|Non-2xx|50%|99%|Socket errors"
echo "== POST nudge ($CONNS connections, $DURATION)"
wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s <(printf 'wrk.method = "POST"\nwrk.body = "{\\"message\\": \\"status?\\"}"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-Agent-Token"] = "%s"\n' "$lead_token") \
  "$first/api/v1/agent/boards/$board/agents/$worker_id/nudge" | grep -E "Requests/sec|Non-2xx|50%|99%|Socket errors"
sleep 3
psql "${MC_PG_ADMIN_URL%/*}/$db" -Atc "SELECT method, status, count(*) FROM gateway_commands GROUP BY 1, 2 ORDER BY 1, 2"
