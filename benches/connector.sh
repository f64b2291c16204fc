#!/usr/bin/env bash
# Benchmark (not a test): a gateway behind mc-connector against the same gateway dialled
# directly. Starts `gateway-sim openclaw` (an OpenClaw gateway that answers at once), one
# release server, and a release mc-connector attaching the simulator; then:
#   calls - CALLS sequential live calls (GET /api/v1/gateways/sessions?board_id=…, one
#           sessions.list on the gateway each) through the connector's tunnel, and through
#           a direct connection to the same simulator: the tunnel's overhead per call;
#   busy  - H5 round trips through the connector gateway at RATE msg/s for DURATION s
#           (mc-load h5 --gateway-id), with the connector's RSS and CPU meanwhile.
#   benches/connector.sh
#   CALLS=500 RATE=500 DURATION=30 benches/connector.sh
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=1
CALLS=${CALLS:-300}
RATE=${RATE:-200}
DURATION=${DURATION:-20}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789
SIM_TOKEN=sim-token-0123456789abcdefghij
SIM_PORT=18789
EXTRA_ENV="H5_LOGIN_MAX_FAILURES_PER_IP=100000"
cargo build --release --locked --bin gateway-sim --bin mc-connector >&2
# shellcheck source=benches/servers.sh
. benches/servers.sh
api=${servers%%,*}
work=$(mktemp -d)
target/release/gateway-sim openclaw --listen "127.0.0.1:$SIM_PORT" --token "$SIM_TOKEN" --hot-reload-ms 0 \
  >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$SIM_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

admin() { curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

org=$(admin "$api/api/v1/organizations/me" | json "['id']")
registration=$(admin -X POST "$api/api/v1/gateway-registry/tokens" -d '{"label":"bench"}' | json "['registration_token']")
env -i PATH="$PATH" MC_URL="$api" MC_ORGANIZATION_ID="$org" MC_REGISTRATION_TOKEN="$registration" \
  MC_GATEWAY_NAME=attached OPENCLAW_URL="ws://127.0.0.1:$SIM_PORT" OPENCLAW_TOKEN="$SIM_TOKEN" \
  MC_WORKSPACE_ROOT=/tmp/mc-bench-workspaces MC_CONNECTOR_STATE="$work/state.json" LOG_LEVEL=warn \
  target/release/mc-connector 2>"$work/connector.log" &
connector=$!
pids+=("$connector")
for _ in $(seq 1 100); do [ -s "$work/state.json" ] && break; sleep 0.1; done
attached=$(json "['gateway_id']" <"$work/state.json")
direct=$(admin -X POST "$api/api/v1/gateways" -d "{\"name\":\"direct\",\"url\":\"ws://127.0.0.1:$SIM_PORT/direct\",\"token\":\"$SIM_TOKEN\",\"workspace_root\":\"/tmp/mc-bench-workspaces\"}" | json "['id']")
for gateway in "$attached" "$direct"; do
  for _ in $(seq 1 300); do
    [ "$(admin "$api/api/v1/gateways/$gateway" | json ".get('connection_state')")" = connected ] && break
    sleep 0.1
  done
done
board() { admin -X POST "$api/api/v1/boards" -d "{\"name\":\"$1\",\"slug\":\"$1\",\"description\":\"bench\",\"gateway_id\":\"$2\"}" | json "['id']"; }
attached_board=$(board attached "$attached")
direct_board=$(board direct "$direct")

# p50, p95, p99 and mean of one call, in ms, over CALLS sequential calls.
calls() {
  for _ in $(seq 1 "$CALLS"); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" \
      "$api/api/v1/gateways/sessions?board_id=$1"
  done | sort -n | awk '{ v[NR] = $1 * 1000; s += $1 * 1000 }
    END { printf "p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, mean %.2f ms over %d calls\n",
          v[int(NR*0.5)], v[int(NR*0.95)], v[int(NR*0.99)], s / NR, NR }'
}
calls "$direct_board" >/dev/null   # warm both paths
calls "$attached_board" >/dev/null
echo "== calls: direct:         $(calls "$direct_board")" >&2
echo "== calls: via mc-connector: $(calls "$attached_board")" >&2

# The connector's CPU (user + system, clock ticks) and RSS.
cpu() { awk '{ print $14 + $15 }' "/proc/$connector/stat"; }
rss() { awk '/VmRSS/ { print $2 }' "/proc/$connector/status"; }
echo "== busy: $RATE msg/s for ${DURATION}s through mc-connector (RSS before: $(rss) kB)" >&2
ticks=$(getconf CLK_TCK)
before=$(cpu)
peak=0
( while kill -0 "$connector" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$work/peak"; sleep 0.5; done ) &
sampler=$!
target/release/mc-load h5 --servers "$servers" --token "$TOKEN" --pid "$pidlist" \
  --users 100 --gateways 1 --rate "$RATE" --duration-secs "$DURATION" --gateway-id "$attached"
after=$(cpu)
kill "$sampler" 2>/dev/null || true
echo "== connector: CPU $(awk -v t=$((after - before)) -v hz="$ticks" -v d="$DURATION" \
  'BEGIN { printf "%.1f%% of one core", 100 * t / hz / d }') during the load (counted over ${DURATION}s), \
RSS $(rss) kB after, peak $(cat "$work/peak" 2>/dev/null || rss) kB" >&2
rm -rf "$work"
