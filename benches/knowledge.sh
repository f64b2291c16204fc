#!/usr/bin/env bash
# Benchmark (not a test): the knowledge base on a release server (benches/servers.sh) with an
# OpenAI-compatible embedding stand-in on loopback (benches/embedding-stub.py, DIMS dims).
#   1. Ingest: INGEST entries created through the API (CONCURRENCY in flight), each embedded
#      by the background worker through the stand-in: entries/s from the first request to the
#      last embedding written.
#   2. ENTRIES more entries (deterministic: setseed) with DIMS-dimension vectors clustered in
#      topics and subtopics, 20 words each from a 1,000-word vocabulary, 10 categories spread
#      over every topic, written by SQL; the HNSW index rebuilt as the server builds it.
#   3. SEARCHES hybrid searches (two words each, a category filter on half of them) and as
#      many semantic ones through the API, CONCURRENCY in flight: p50 / p95 / p99.
#   4. recall@10 of the HNSW search (the server's settings: ef_search 200, iterative scans)
#      against exact search, with a category filter (10 % of the rows), over 50 queries.
#   benches/knowledge.sh                                   # 100,000 entries, 384 dims
#   ENTRIES=20000 DIMS=768 benches/knowledge.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ENTRIES=${ENTRIES:-100000}
INGEST=${INGEST:-2000}
SEARCHES=${SEARCHES:-800}
CONCURRENCY=${CONCURRENCY:-16}
DIMS=${DIMS:-384}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789
STUB_PORT=18180
MODEL=bench-$DIMS

python3 benches/embedding-stub.py "$STUB_PORT" "$DIMS" &
stub=$!
store=$(mktemp -d)
INSTANCES=1
EXTRA_ENV="EMBEDDING_PROVIDER=openai EMBEDDING_API_KEY=bench EMBEDDING_MODEL=$MODEL
  EMBEDDING_BASE_URL=http://127.0.0.1:$STUB_PORT/v1 KNOWLEDGE_STORAGE_DIR=$store"
# shellcheck source=benches/servers.sh
source benches/servers.sh
trap 'kill $stub 2>/dev/null || true; rm -rf "$store"; cleanup' EXIT
DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db"
curl -fsS -H "Authorization: Bearer $TOKEN" "$servers/api/v1/users/me" >/dev/null # provisions the org
sql() { psql "$DATABASE_URL" -qtA -c "$1"; }
percentiles() { sort -n | awk '{a[NR] = $1 * 1000} END {printf "p50 %.1f ms, p95 %.1f ms, p99 %.1f ms (%d requests)\n", a[int(NR * 0.5)], a[int(NR * 0.95)], a[int(NR * 0.99)], NR}'; }

# Curl config files: one transfer per block (`next`), each with its own body.
requests() { # path, count, kind (entry | hybrid | semantic)
  python3 - "$servers$1" "$2" "$3" "$TOKEN" <<'PY'
import json, random, sys
url, count, kind, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
random.seed(7)
words = lambda n: " ".join(f"w{random.randrange(1000)}" for _ in range(n))
for i in range(count):
    if i:
        print("next")
    if kind == "entry":
        body = {"title": f"Ingested {i}", "content": words(20), "category": f"c{i % 10}"}
    else:
        body = {"query": words(2), "mode": kind, "limit": 10}
        if i % 2:
            body["category"] = f"c{i % 10}"
    print(f'url = "{url}"\nheader = "Authorization: Bearer {token}"\nheader = "Content-Type: application/json"')
    print(f"data = {json.dumps(json.dumps(body))}\noutput = \"/dev/null\"\nwrite-out = \"%{{time_total}}\\n\"")
PY
}

# 1. Ingest through the API and the embedding worker.
config=$(mktemp)
requests /api/v1/knowledge "$INGEST" entry >"$config"
echo "ingesting $INGEST entries…" >&2
start=$(date +%s.%N)
curl -sS --parallel --parallel-max "$CONCURRENCY" -K "$config" >/dev/null
for _ in $(seq 1 1200); do
  [ "$(sql "SELECT count(*) FROM knowledge_entries WHERE embed_due_at IS NOT NULL")" = 0 ] && break
  sleep 0.1
done
end=$(date +%s.%N)
echo "ingest: $(sql "SELECT count(*) FROM knowledge_entries WHERE embedding IS NOT NULL") entries created and embedded in $(echo "$end - $start" | bc) s: $(echo "$INGEST / ($end - $start)" | bc) entries/s"

# 2. The bulk, by SQL, with clustered vectors (100 centres, noise around each).
echo "writing $ENTRIES entries with $DIMS-dimension vectors…" >&2
psql "$DATABASE_URL" -q <<SQL
SELECT setseed(0.42);
-- 100 topics of 10 subtopics each (1,000 entries per topic, 100 per subtopic): a vector is
-- its topic, plus half its subtopic's offset, plus a little noise of its own.
CREATE TABLE bench_centres AS
  SELECT c, (SELECT array_agg(random() - 0.5) FROM generate_series(1, $DIMS) WHERE c >= 0) AS v
  FROM generate_series(0, 999) c;
DROP INDEX IF EXISTS knowledge_entries_embedding_${DIMS}_idx;
INSERT INTO knowledge_entries (id, organization_id, title, content, category, search_extra,
    embedding, embedding_model, embedding_dims, embed_due_at)
  SELECT gen_random_uuid(), (SELECT id FROM organizations LIMIT 1), 'Bulk ' || n,
         (SELECT string_agg('w' || floor(random() * 1000)::int, ' ') FROM generate_series(1, 20) WHERE n > 0),
         'c' || ((n / 1000) % 10), '',
         (SELECT array_agg(topic.v[i] + 0.5 * sub.v[i] + (random() - 0.5) * 0.2) FROM generate_series(1, $DIMS) i)::vector,
         '$MODEL', $DIMS, NULL
  FROM generate_series(1, $ENTRIES) n
  JOIN bench_centres topic ON topic.c = n % 100
  JOIN bench_centres sub ON sub.c = 100 + (n / 100) % 900;
SQL
start=$(date +%s.%N)
psql "$DATABASE_URL" -q -c "SET maintenance_work_mem = '1GB'" -c "CREATE INDEX knowledge_entries_embedding_${DIMS}_idx
  ON knowledge_entries USING hnsw ((embedding::vector($DIMS)) vector_cosine_ops) WHERE embedding_dims = $DIMS" -c "ANALYZE knowledge_entries"
echo "HNSW index over $(sql "SELECT count(*) FROM knowledge_entries") entries built in $(echo "$(date +%s.%N) - $start" | bc) s"

# 3. Searches through the API.
for mode in hybrid semantic keyword; do
  requests /api/v1/knowledge/search "$SEARCHES" "$mode" >"$config"
  curl -sS --parallel --parallel-max "$CONCURRENCY" -K "$config" | percentiles | sed "s/^/$mode search, $CONCURRENCY in flight: /"
done
rm -f "$config"

# 4. recall@10 against exact search, with a category filter.
psql "$DATABASE_URL" -qtA <<SQL
SELECT setseed(0.7);
CREATE TEMP TABLE queries AS
  SELECT q, (SELECT array_agg(topic.v[i] + 0.5 * sub.v[i] + (random() - 0.5) * 0.2) FROM generate_series(1, $DIMS) i)::vector($DIMS) AS v
  FROM generate_series(1, 50) q
  JOIN bench_centres topic ON topic.c = (q * 37) % 100
  JOIN bench_centres sub ON sub.c = 100 + (q * 53) % 900;
CREATE FUNCTION pg_temp.nearest(query vector, exact boolean) RETURNS SETOF uuid LANGUAGE plpgsql AS \$\$
BEGIN
  PERFORM set_config('enable_indexscan', (NOT exact)::text, true);
  PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
  PERFORM set_config('hnsw.ef_search', '200', true);
  -- Dynamic: planned on each call, under the settings just made.
  RETURN QUERY EXECUTE 'SELECT id FROM knowledge_entries
    WHERE category = ''c3'' AND embedding_dims = $DIMS AND embedding_model = ''$MODEL''
    ORDER BY embedding::vector($DIMS) <=> \$1 LIMIT 10' USING query;
END \$\$;
SELECT format('recall@10 (HNSW against exact, category filter = 10 %% of rows, 50 queries): %s',
              round(avg(found)::numeric / 10, 3))
FROM (SELECT q, (SELECT count(*) FROM pg_temp.nearest(v, false) a WHERE a IN (SELECT * FROM pg_temp.nearest(v, true))) AS found
      FROM queries) r;
SQL
awk '/VmRSS/ {print "server RSS: " $2 " kB"}' "/proc/$pidlist/status"
