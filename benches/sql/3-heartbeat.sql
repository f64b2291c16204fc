-- A heartbeat alone in its batch (BEGIN, the batch statement, COMMIT)
BEGIN;
WITH b AS (SELECT * FROM unnest(ARRAY[:gateway]::uuid[], ARRAY['online']::text[], ARRAY[NULL]::jsonb[]) AS b(id, status, metrics)), locked AS MATERIALIZED (SELECT g.id, g.status FROM gateways g WHERE g.id = ANY(ARRAY[:gateway]::uuid[]) ORDER BY g.id FOR NO KEY UPDATE), stamped AS (UPDATE gateways g SET status = b.status, last_heartbeat_at = now(), updated_at = now(), connection_info = CASE WHEN b.metrics IS NULL THEN g.connection_info ELSE COALESCE(g.connection_info, '{}'::jsonb) || jsonb_build_object('metrics', b.metrics) END FROM b JOIN locked l ON l.id = b.id WHERE g.id = b.id RETURNING g.id, l.status AS was, b.status) SELECT id, was FROM stamped WHERE was <> status;
COMMIT;
