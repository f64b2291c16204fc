#!/usr/bin/env bash
# Benchmark (not a test): HTTP heartbeats from GATEWAYS registered gateways. Starts
# INSTANCES release servers on a fresh database and the shared Redis; mc-load registers the
# gateways through the registry, then sends heartbeats (RATE per second, or as fast as
# CONCURRENCY in flight allows when RATE=0) for DURATION seconds, round-robin over the
# instances, and prints its JSON report: accepted per second, latency percentiles, errors.
#   benches/gateway-heartbeats.sh                       # one instance, saturating
#   INSTANCES=2 RATE=1000 benches/gateway-heartbeats.sh
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=${INSTANCES:-1}
GATEWAYS=${GATEWAYS:-1000}
RATE=${RATE:-0}
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-15}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

# shellcheck source=benches/servers.sh
. benches/servers.sh

echo "== heartbeat: $GATEWAYS gateways over $INSTANCES instance(s), rate $RATE/s, $CONCURRENCY in flight, ${DURATION}s" >&2
target/release/mc-load heartbeat --servers "$servers" --token "$TOKEN" --pid "$pidlist" \
  --gateways "$GATEWAYS" --rate "$RATE" --concurrency "$CONCURRENCY" --duration-secs "$DURATION"
