# Sourced by the benchmarks: starts INSTANCES release servers on one fresh database and
# the shared Redis, and sets `servers` (comma-separated URLs) and `pidlist`; everything is
# stopped and dropped on exit. Expects TOKEN and, optionally, EXTRA_ENV (VAR=value ...).
eval "$(scripts/provision)"
# PROFILE=debug runs the debug build (quick to build; its numbers are not comparable).
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release --locked --bin mission-control --bin mc-load >&2
else
  cargo build --locked --bin mission-control --bin mc-load >&2
fi
# Thousands of sockets need thousands of descriptors on each side: raise the soft limit to
# the hard one (raising the hard limit needs CAP_SYS_RESOURCE, which containers often lack).
ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n)" >&2

db=mc_bench_$$
psql "$MC_PG_ADMIN_URL" -qc "CREATE DATABASE $db"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql "$MC_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
}
trap cleanup EXIT

env -i PATH="$PATH" DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db" target/$PROFILE/mission-control migrate >/dev/null
urls=()
for i in $(seq 1 "$INSTANCES"); do
  port=$((18090 + i))
  # shellcheck disable=SC2086 # EXTRA_ENV is a list of assignments
  env -i PATH="$PATH" AUTH_MODE=local LOCAL_AUTH_TOKEN="$TOKEN" DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db" \
    REDIS_URL="$MC_REDIS_URL" LOG_LEVEL=warn WS_MAX_CONNECTIONS_PER_INSTANCE=50000 ${EXTRA_ENV:-} \
    target/$PROFILE/mission-control serve --bind 127.0.0.1:$port &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
done
servers=$(IFS=,; echo "${urls[*]}")
pidlist=$(IFS=,; echo "${pids[*]}")
