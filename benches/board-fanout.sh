#!/usr/bin/env bash
# Benchmark (not a test): board sync fan-out. Starts INSTANCES (1 or 2) release servers
# on one fresh database and the shared Redis; mc-load opens SUBSCRIBERS board sockets
# spread over the instances and changes a task RATE times a second over REST for DURATION
# seconds: the write's own answer, time from the request to each delivery and to the first
# and last delivery of each change, missing deliveries and sequence gaps.
#   benches/board-fanout.sh                         # two instances, defaults below
#   INSTANCES=1 SUBSCRIBERS=2000 benches/board-fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=${INSTANCES:-2}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
BOARDS=${BOARDS:-1}
RATE=${RATE:-5}
DURATION=${DURATION:-20}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

# shellcheck source=benches/servers.sh
. benches/servers.sh

echo "== board: $SUBSCRIBERS subscribers over $INSTANCES instance(s), $RATE changes/s for ${DURATION}s" >&2
target/release/mc-load board --servers "$servers" --token "$TOKEN" --pid "$pidlist" \
  --subscribers "$SUBSCRIBERS" --boards "$BOARDS" --rate "$RATE" --duration-secs "$DURATION"
