#!/usr/bin/env bash
# Benchmark (not a test): the H5 chat relay. Starts INSTANCES (1 or 2) release servers on
# one fresh database and the shared Redis, then runs mc-load:
#   h5   - USERS chat sockets spread over the instances, GATEWAYS gateways linked to the last one,
#          RATE messages/s for DURATION s: round trip H5 -> gateway -> H5 and losses;
#   idle - SOCKETS idle H5 sockets on the first instance: memory per socket.
#   benches/h5-relay.sh                      # two instances, defaults below
#   INSTANCES=1 RATE=3000 benches/h5-relay.sh
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=${INSTANCES:-2}
USERS=${USERS:-200}
GATEWAYS=${GATEWAYS:-4}
RATE=${RATE:-1000}
DURATION=${DURATION:-20}
SOCKETS=${SOCKETS:-10000}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

eval "$(scripts/provision)"
cargo build --release --locked --bin mission-control --bin mc-load >&2
# 10,000 sockets need 10,000 descriptors on each side: raise the soft limit to the hard
# one (raising the hard limit needs CAP_SYS_RESOURCE, which containers often lack).
ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n)" >&2

db=mc_bench_$$
psql "$MC_PG_ADMIN_URL" -qc "CREATE DATABASE $db"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
  psql "$MC_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
}
trap cleanup EXIT

env -i PATH="$PATH" DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db" target/release/mission-control migrate >/dev/null
servers=()
for i in $(seq 1 "$INSTANCES"); do
  port=$((18090 + i))
  env -i PATH="$PATH" AUTH_MODE=local LOCAL_AUTH_TOKEN=$TOKEN DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db" \
    REDIS_URL="$MC_REDIS_URL" LOG_LEVEL=warn WS_MAX_CONNECTIONS_PER_INSTANCE=50000 \
    H5_LOGIN_MAX_FAILURES_PER_IP=100000 target/release/mission-control serve --bind 127.0.0.1:$port &
  pids+=($!)
  servers+=("http://127.0.0.1:$port")
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
done
list=$(IFS=,; echo "${servers[*]}")
pidlist=$(IFS=,; echo "${pids[*]}")

echo "== h5: $USERS users over $INSTANCES instance(s), $RATE msg/s for ${DURATION}s" >&2
target/release/mc-load h5 --servers "$list" --token "$TOKEN" --pid "$pidlist" \
  --users "$USERS" --gateways "$GATEWAYS" --rate "$RATE" --duration-secs "$DURATION"
echo "== idle: $SOCKETS sockets on ${servers[0]}" >&2
target/release/mc-load idle --servers "${servers[0]}" --token "$TOKEN" --pid "${pids[0]}" \
  --sockets "$SOCKETS" --users 100 --hold-secs 5
