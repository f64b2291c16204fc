#!/usr/bin/env bash
# Benchmark (not a test): gateways we dial over OpenClaw's protocol. Starts `gateway-sim
# openclaw` and INSTANCES release servers on one fresh database, then runs mc-load:
#   calls - H5 round trips through ONE simulated gateway connection at RATE msg/s for
#           DURATION s (each is a chat.send call and a chat run's events on that connection);
#   dial  - GATEWAYS simulated gateways created by URL: time until all are connected and their
#           main agents provisioned, and the servers' memory per gateway;
#   real  - with MC_OPENCLAW_URL set (eval "$(scripts/openclaw start)"): H5 round trips through
#           the real gateway and its stub model, REAL_RATE msg/s for REAL_DURATION s.
#   benches/openclaw.sh
#   INSTANCES=2 GATEWAYS=500 benches/openclaw.sh
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=${INSTANCES:-1}
RATE=${RATE:-500}
DURATION=${DURATION:-20}
GATEWAYS=${GATEWAYS:-1000}
REAL_RATE=${REAL_RATE:-2}
REAL_DURATION=${REAL_DURATION:-30}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789
SIM_TOKEN=sim-token-0123456789abcdefghij
SIM_PORT=18789

EXTRA_ENV="H5_LOGIN_MAX_FAILURES_PER_IP=100000 GATEWAY_RPC_TIMEOUT_SECONDS=30"
cargo build --release --locked --bin gateway-sim >&2
# shellcheck source=benches/servers.sh
. benches/servers.sh
target/release/gateway-sim openclaw --listen "127.0.0.1:$SIM_PORT" --token "$SIM_TOKEN" --hot-reload-ms 0 \
  >/dev/null 2>&1 &
sim=$!
pids+=("$sim")
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$SIM_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "== calls: one gateway connection, $RATE msg/s for ${DURATION}s" >&2
target/release/mc-load h5 --servers "$servers" --token "$TOKEN" --pid "$pidlist" \
  --users 100 --gateways 1 --rate "$RATE" --duration-secs "$DURATION" \
  --openclaw "ws://127.0.0.1:$SIM_PORT" --openclaw-token "$SIM_TOKEN"
echo "== dial: $GATEWAYS gateways over $INSTANCES instance(s)" >&2
target/release/mc-load dial --servers "$servers" --token "$TOKEN" --pid "${pidlist}" \
  --gateways "$GATEWAYS" --openclaw "ws://127.0.0.1:$SIM_PORT" --openclaw-token "$SIM_TOKEN"
if [ -n "${MC_OPENCLAW_URL:-}" ]; then
  echo "== real: the OpenClaw gateway at $MC_OPENCLAW_URL, $REAL_RATE msg/s for ${REAL_DURATION}s" >&2
  target/release/mc-load h5 --servers "$servers" --token "$TOKEN" --pid "$pidlist" \
    --users 10 --gateways 1 --rate "$REAL_RATE" --duration-secs "$REAL_DURATION" \
    --openclaw "$MC_OPENCLAW_URL" --openclaw-one --openclaw-token "$MC_OPENCLAW_TOKEN" \
    --workspace-root "$MC_OPENCLAW_DIR/workspaces/bench"
fi
