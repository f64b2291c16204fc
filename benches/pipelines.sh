#!/usr/bin/env bash
# Benchmark (not a test): pipeline runs on two release instances (benches/servers.sh).
#   1. RUNS runs of a one-stage `manual` pipeline started through the API (one curl process,
#      CONCURRENCY requests in flight, spread over both instances): requests per second, and
#      runs per second from the first commit to the last run paused at its stage (the holder
#      took it, its actor entered the stage).
#   2. With all RUNS paused (a PipelineRun actor each): each instance's RSS growth per run it
#      holds.
#   3. kill -9 of the first instance: time until the other holds every run, and until every
#      taken run has been stepped by its new actor.
#   benches/pipelines.sh                       # 1,000 runs, 16 in flight, 6 s leases
#   RUNS=2000 CONCURRENCY=32 LEASE=15 benches/pipelines.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1000}
CONCURRENCY=${CONCURRENCY:-16}
LEASE=${LEASE:-6}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

INSTANCES=2
EXTRA_ENV="PIPELINE_MAX_CONCURRENT_RUNS=100000 PIPELINE_LEASE_SECONDS=$LEASE"
# shellcheck source=benches/servers.sh
source benches/servers.sh
DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db"
IFS=, read -r -a urls <<<"$servers"
IFS=, read -r -a pid_of <<<"$pidlist"
auth=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
curl -fsS "${auth[@]}" "${urls[0]}/api/v1/users/me" >/dev/null # provisions the org
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
sql() { psql "$DATABASE_URL" -qtA -c "$1"; }

pipeline=$(curl -fsS "${auth[@]}" -d '{"name": "bench", "stages": [{"id": "wait", "type": "manual"}]}' \
  "${urls[0]}/api/v1/pipelines" | jq -r .id)
echo "pipeline $pipeline" >&2
sleep 1
before=("$(rss "${pid_of[0]}")" "$(rss "${pid_of[1]}")")

requests=$(mktemp)
for n in $(seq 1 "$RUNS"); do
  printf 'url = "%s/api/v1/pipelines/%s/run"\noutput = "/dev/null"\n' "${urls[$((n % 2))]}" "$pipeline"
done >"$requests"
echo "starting $RUNS runs ($CONCURRENCY in flight)…" >&2
start=$(date +%s.%N)
# One body for every request (a `data` line per URL would be joined into one body).
curl -fsS --parallel --parallel-max "$CONCURRENCY" "${auth[@]}" -d '{}' -K "$requests"
end=$(date +%s.%N)
rm -f "$requests"
for _ in $(seq 1 600); do
  [ "$(sql "SELECT count(*) FROM pipeline_runs WHERE status = 'paused'")" = "$RUNS" ] && break
  sleep 0.1
done
echo "API: $RUNS runs in $(echo "$end - $start" | bc) s: $(echo "$RUNS / ($end - $start)" | bc) requests/s"
sql "SELECT format('started: %s runs paused at their stage, %s runs/s from the first commit to the last entry',
                   count(*), round(count(*) / extract(epoch FROM max(updated_at) - min(created_at))::numeric))
       FROM pipeline_runs WHERE status = 'paused'"
sleep $((LEASE / 3 + 1))
for i in 0 1; do
  echo "instance $((i + 1)): RSS ${before[$i]} → $(rss "${pid_of[$i]}") kB"
done
sql "SELECT format('runs per holder: %s', string_agg(n::text, ' + ')) FROM
       (SELECT count(*) AS n FROM pipeline_runs WHERE status = 'paused' GROUP BY lease_owner) c"
total_before=$((before[0] + before[1]))
total_after=$(($(rss "${pid_of[0]}") + $(rss "${pid_of[1]}")))
echo "both instances: +$((total_after - total_before)) kB for $RUNS paused runs: $(((total_after - total_before) * 1024 / RUNS)) bytes per run actor (RSS, allocator slack included)"

survivor_rss=$(rss "${pid_of[1]}")
kill -9 "${pid_of[0]}"
killed=$(date +%s.%N)
echo "kill -9 of instance 1 ($(sql "SELECT count(*) FROM pipeline_runs r WHERE status = 'paused'") paused runs on two instances)…" >&2
for _ in $(seq 1 1200); do
  [ "$(sql "SELECT count(DISTINCT lease_owner) FROM pipeline_runs WHERE status = 'paused'")" = 1 ] && break
  sleep 0.05
done
taken=$(date +%s.%N)
echo "takeover: every run held by the survivor $(echo "$taken - $killed" | bc) s after the kill (lease $LEASE s)"
# A taken run's actor steps it (a locked read of the run) and sleeps until its deadline; the
# survivor's memory then holds every actor.
sleep 2
echo "survivor RSS: $survivor_rss → $(rss "${pid_of[1]}") kB with all $RUNS runs"
