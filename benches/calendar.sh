#!/usr/bin/env bash
# Benchmark (not a test): GET /api/v1/calendar/range over a year and over a month for a
# board with EVENTS weekly recurring events (Europe/Berlin, so a year's expansion crosses
# two DST changes). Starts a release server (benches/servers.sh) on a fresh database
# seeded by SQL, times RUNS sequential reads with curl (total time and response size),
# then a short wrk run for throughput.
#   benches/calendar.sh                      # defaults below
#   EVENTS=200 RUNS=50 benches/calendar.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-1000}
RUNS=${RUNS:-20}
CONNS=${CONNS:-4}
DURATION=${DURATION:-15s}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

INSTANCES=1
# shellcheck source=benches/servers.sh
source benches/servers.sh
command -v wrk >/dev/null 2>&1 || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db"
server_pid=$pidlist
curl -fsS -H "Authorization: Bearer $TOKEN" "$servers/api/v1/users/me" >/dev/null # provisions the org

psql "$DATABASE_URL" -q <<SQL
WITH org AS (SELECT active_organization_id AS id FROM users WHERE clerk_user_id = 'local-auth-user'),
gw AS (INSERT INTO gateways (id, organization_id, name) SELECT gen_random_uuid(), id, 'bench gateway' FROM org RETURNING id, organization_id)
INSERT INTO boards (id, organization_id, name, slug, description, gateway_id)
SELECT gen_random_uuid(), organization_id, 'Calendar board', 'calendar-board', 'bench', id FROM gw;
INSERT INTO calendar_events (id, organization_id, board_id, title, event_type, starts_at, ends_at,
                             recurrence_rule, timezone)
SELECT gen_random_uuid(), b.organization_id, b.id, 'Weekly ' || n, 'meeting',
       timestamptz '2026-01-05 08:00+00' + (n % 120) * interval '30 minutes',
       timestamptz '2026-01-05 08:30+00' + (n % 120) * interval '30 minutes',
       'FREQ=WEEKLY;BYDAY=' || (ARRAY['MO','TU','WE','TH','FR'])[1 + n % 5], 'Europe/Berlin'
FROM boards b, generate_series(1, $EVENTS) n;
ANALYZE;
SQL

base="$servers/api/v1/calendar/range"
for span in "year start=2026-01-01T00:00:00Z&end=2027-01-01T00:00:00Z" "month start=2026-03-01T00:00:00Z&end=2026-04-01T00:00:00Z"; do
  name=${span%% *}; url="$base?${span#* }"
  occurrences=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$url" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')
  echo "== GET /calendar/range over a $name: $EVENTS weekly events (Europe/Berlin) → $occurrences occurrences; $RUNS sequential reads"
  for _ in $(seq 1 "$RUNS"); do
    curl -fsS -o /dev/null -w '%{time_total} %{size_download}\n' -H "Authorization: Bearer $TOKEN" "$url"
  done | sort -n | awk '{ t[NR] = $1; size = $2 } END {
    printf "median %.1f ms, p90 %.1f ms, max %.1f ms; %.2f MB per answer\n",
      t[int(NR/2)+1]*1000, t[int(NR*0.9)]*1000, t[NR]*1000, size/1e6 }'
  echo "-- under load ($CONNS connections, $DURATION)"
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$url" |
    grep -E 'Requests/sec|50%|90%|99%|Non-2xx|Socket errors'
done
awk '/VmRSS/ {print "server RSS after load: " $2 " kB"}' "/proc/$server_pid/status"
