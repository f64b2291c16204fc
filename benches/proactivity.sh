#!/usr/bin/env bash
# Benchmark (not a test): system events from commit to evaluation and suggestion, with RULES
# rules in the organization, on a release server (benches/servers.sh) with its rule engine.
# EVENTS tasks are created through the API by CONCURRENCY curl clients; each `task.created`
# event is tested against every rule on `task.created` (each rule matches the titles of 1%
# of the tasks; cooldown 1 s). Latencies are read from PostgreSQL: `evaluated_at` and the
# suggestion's `created_at` against the event's `created_at` (its commit, within a ms).
#   benches/proactivity.sh                 # 100 rules, 2,000 events
#   RULES=100 EVENTS=5000 CONCURRENCY=16 benches/proactivity.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RULES=${RULES:-100}
EVENTS=${EVENTS:-2000}
CONCURRENCY=${CONCURRENCY:-8}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

INSTANCES=1
# shellcheck source=benches/servers.sh
source benches/servers.sh
DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db"
curl -fsS -H "Authorization: Bearer $TOKEN" "$servers/api/v1/users/me" >/dev/null # provisions the org

board=$(psql "$DATABASE_URL" -qtA <<SQL
INSERT INTO gateways (id, organization_id, name, status) SELECT gen_random_uuid(), id, 'gw', 'online' FROM organizations;
INSERT INTO boards (id, organization_id, name, slug, description, gateway_id, require_approval_for_done)
  SELECT gen_random_uuid(), g.organization_id, 'Board', 'board', 'bench', g.id, false FROM gateways g;
INSERT INTO proactive_rules (id, organization_id, name, trigger_event, conditions, action_type, action_config, cooldown_seconds)
  SELECT gen_random_uuid(), o.id, 'Rule ' || n, 'task.created',
         jsonb_build_object('rules', jsonb_build_array(jsonb_build_object('field', 'title', 'op', 'eq', 'value', 'T' || n))),
         'create_suggestion', jsonb_build_object('title', 'Saw T' || n), 1
  FROM organizations o, generate_series(1, $RULES - 6) n;
SELECT id FROM boards LIMIT 1;
SQL
)
echo "creating $EVENTS tasks with $RULES rules ($CONCURRENCY clients)…" >&2
start=$(date +%s.%N)
seq 1 "$EVENTS" | xargs -P "$CONCURRENCY" -I{} sh -c \
  "n={}; curl -fsS -o /dev/null -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' \
     -d \"{\\\"title\\\": \\\"T\$(( n % 100 ))\\\"}\" $servers/api/v1/boards/$board/tasks"
end=$(date +%s.%N)
echo "tasks created in $(echo "$end - $start" | bc) s" >&2
for _ in $(seq 1 120); do
  left=$(psql "$DATABASE_URL" -qtA -c "SELECT count(*) FROM agent_events WHERE evaluated_at IS NULL")
  [ "$left" = 0 ] && break
  sleep 0.5
done
psql "$DATABASE_URL" -qtA <<'SQL'
SELECT format('events %s, evaluated in %s s: %s events/s from the first commit to the last evaluation',
              count(*), round(extract(epoch FROM max(evaluated_at) - min(created_at))::numeric, 2),
              round(count(*) / extract(epoch FROM max(evaluated_at) - min(created_at))::numeric))
  FROM agent_events WHERE event_type = 'task.created';
SELECT format('commit → evaluated: p50 %s ms, p99 %s ms, max %s ms',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), round(max(ms)::numeric, 1))
  FROM (SELECT extract(epoch FROM evaluated_at - created_at) * 1000 AS ms FROM agent_events
        WHERE event_type = 'task.created') l;
SELECT format('commit → suggestion: %s suggestions, p50 %s ms, p99 %s ms',
              count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1))
  FROM (SELECT extract(epoch FROM s.created_at - e.created_at) * 1000 AS ms
        FROM agent_suggestions s JOIN agent_events e ON e.id = s.source_event_id) l;
SQL
awk '/VmRSS/ {print "server RSS: " $2 " kB"}' "/proc/$pidlist/status"
