#!/usr/bin/env bash
# Benchmark (not a test): the H5 chat relay. Starts INSTANCES (1 or 2) release servers on
# one fresh database and the shared Redis, then runs mc-load:
#   h5   - USERS chat sockets spread over the instances, GATEWAYS gateways linked to the last one,
#          RATE messages/s for DURATION s: round trip H5 -> gateway -> H5 and losses;
#   idle - SOCKETS idle H5 sockets spread over the instances: memory per socket.
#   benches/h5-relay.sh                      # two instances, defaults below
#   INSTANCES=1 RATE=3000 benches/h5-relay.sh
#   KILL_AFTER=5 benches/h5-relay.sh         # kill -9 the first instance 5 s into the h5 run
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=${INSTANCES:-2}
USERS=${USERS:-200}
GATEWAYS=${GATEWAYS:-4}
RATE=${RATE:-1000}
DURATION=${DURATION:-20}
SOCKETS=${SOCKETS:-10000}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

EXTRA_ENV="H5_LOGIN_MAX_FAILURES_PER_IP=100000"
# shellcheck source=benches/servers.sh
. benches/servers.sh

echo "== h5: $USERS users over $INSTANCES instance(s), $RATE msg/s for ${DURATION}s" >&2
target/release/mc-load h5 --servers "$servers" --token "$TOKEN" --pid "$pidlist" \
  --users "$USERS" --gateways "$GATEWAYS" --rate "$RATE" --duration-secs "$DURATION" \
  ${KILL_AFTER:+--kill-pid "${pids[0]}" --kill-after-secs "$KILL_AFTER"}
[ -z "${KILL_AFTER:-}" ] || { echo "== idle skipped: an instance was killed" >&2; exit 0; }
echo "== idle: $SOCKETS sockets over $INSTANCES instance(s)" >&2
target/release/mc-load idle --servers "$servers" --token "$TOKEN" --pid "$pidlist" \
  --sockets "$SOCKETS" --users 100 --hold-secs 5
