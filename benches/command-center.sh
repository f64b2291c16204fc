#!/usr/bin/env bash
# Benchmark (not a test): each command-center read for an organization with AGENTS agents
# and TASKS tasks (and 10 other organizations of the same size beside it, which must not
# count), on a release server (benches/servers.sh); RUNS sequential reads each, by curl.
#   benches/command-center.sh                 # 1,000 agents, 100,000 tasks
#   AGENTS=200 TASKS=20000 benches/command-center.sh
set -euo pipefail
cd "$(dirname "$0")/.."

AGENTS=${AGENTS:-1000}
TASKS=${TASKS:-100000}
OTHERS=${OTHERS:-10}
RUNS=${RUNS:-20}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789

INSTANCES=1
# shellcheck source=benches/servers.sh
source benches/servers.sh
DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db"
curl -fsS -H "Authorization: Bearer $TOKEN" "$servers/api/v1/users/me" >/dev/null # provisions the org

echo "seeding $((OTHERS + 1)) organizations of $AGENTS agents and $TASKS tasks…" >&2
psql "$DATABASE_URL" -q <<SQL
INSERT INTO organizations (id, name) SELECT gen_random_uuid(), 'Other ' || n FROM generate_series(1, $OTHERS) n;
INSERT INTO gateways (id, organization_id, name, status) SELECT gen_random_uuid(), id, 'gw', 'online' FROM organizations;
INSERT INTO boards (id, organization_id, name, slug, description, gateway_id)
  SELECT gen_random_uuid(), g.organization_id, 'Board', 'board', 'bench', g.id FROM gateways g;
INSERT INTO agents (id, organization_id, board_id, gateway_id, name, status, last_seen_at)
  SELECT gen_random_uuid(), b.organization_id, b.id, b.gateway_id, 'Agent ' || n, 'online',
         now() - (n % 120) * interval '1 minute'
  FROM boards b, generate_series(1, $AGENTS) n;
INSERT INTO tasks (id, organization_id, board_id, title, status, assigned_agent_id, created_at, updated_at, in_progress_at)
  SELECT gen_random_uuid(), a.organization_id, a.board_id, 'Task', (ARRAY['inbox','in_progress','review','done'])[1 + n % 4],
         a.id, now() - (n % 30) * interval '1 day', now() - (n % 10) * interval '1 day', now()
  FROM agents a, generate_series(1, $TASKS / $AGENTS) n;
WITH a AS (SELECT id, organization_id, row_number() OVER (PARTITION BY organization_id ORDER BY id) AS k FROM agents),
e AS (SELECT a.organization_id, a.id AS agent_id, a.k, n,
             row_number() OVER (PARTITION BY a.organization_id ORDER BY a.k, n) AS seq
      FROM a, generate_series(1, 20) n)
INSERT INTO agent_events (id, organization_id, agent_id, event_type, payload, seq, created_at)
  SELECT gen_random_uuid(), e.organization_id, e.agent_id, 'agent.message',
         jsonb_build_object('target_agent_id', t.id::text), e.seq, now() - e.n * interval '1 hour'
  FROM e JOIN a t ON t.organization_id = e.organization_id AND t.k = ((e.k + e.n * 37) % $AGENTS) + 1;
UPDATE organizations o SET agent_event_seq = (SELECT max(seq) FROM agent_events e WHERE e.organization_id = o.id);
ANALYZE;
SQL

for path in overview agent-status communication-graph resource-allocation "live-activity?limit=50" "live-activity?after=19000&limit=200"; do
  url="$servers/api/v1/command-center/$path"
  for _ in $(seq 1 "$RUNS"); do
    curl -fsS -o /dev/null -w '%{time_total} %{size_download}\n' -H "Authorization: Bearer $TOKEN" "$url"
  done | sort -n | awk -v p="$path" '{ t[NR] = $1; size = $2 } END {
    printf "%-40s median %7.1f ms  p90 %7.1f ms  %8.1f kB\n", p, t[int(NR/2)+1]*1000, t[int(NR*0.9)]*1000, size/1000 }'
done
awk '/VmRSS/ {print "server RSS: " $2 " kB"}' "/proc/$pidlist/status"
