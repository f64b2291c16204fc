-- Issue 28, the hot paths.
--
-- 1. What instances keep in memory (src/domain/memos.rs) hears every change to it: these
-- triggers notify `mc_cache` in the changing transaction, so the notification comes at its
-- commit, from whichever writer made it.
CREATE FUNCTION mc_principals_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mc_cache', 'principals');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_principals AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION mc_principals_changed();
CREATE TRIGGER organization_members_principals
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organization_members
    FOR EACH STATEMENT EXECUTE FUNCTION mc_principals_changed();
-- Only the columns a principal carries: the event counters change on every event.
CREATE TRIGGER organizations_principals
    AFTER UPDATE OF name, created_at, updated_at OR DELETE OR TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION mc_principals_changed();

CREATE FUNCTION mc_gateway_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mc_cache', 'gateway:' || OLD.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER gateways_relay_identity AFTER UPDATE OF relay_token_hash, organization_id ON gateways
    FOR EACH ROW
    WHEN (OLD.relay_token_hash IS DISTINCT FROM NEW.relay_token_hash
          OR OLD.organization_id IS DISTINCT FROM NEW.organization_id)
    EXECUTE FUNCTION mc_gateway_changed();
CREATE TRIGGER gateways_gone AFTER DELETE ON gateways
    FOR EACH ROW EXECUTE FUNCTION mc_gateway_changed();

-- An organization's board list: any change to one of its boards (its counters no longer
-- live here, see 2.).
CREATE FUNCTION mc_boards_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('mc_cache', 'boards:' || OLD.organization_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('mc_cache', 'boards:' || NEW.organization_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER boards_list AFTER INSERT OR UPDATE OR DELETE ON boards
    FOR EACH ROW EXECUTE FUNCTION mc_boards_changed();

-- 2. A board's feed and sync numbers leave `boards` for a narrow table of their own: every
-- task write bumps them, and on the wide `boards` rows those updates bloated the table
-- that every board read scans (GET /boards fell to a third after ~13,000 task writes). A
-- board's row here appears with its first number (writers upsert it).
CREATE TABLE board_seqs (
    board_id  uuid PRIMARY KEY REFERENCES boards (id) ON DELETE CASCADE,
    feed_seq  bigint NOT NULL DEFAULT 0,
    sync_seq  bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);

INSERT INTO board_seqs (board_id, feed_seq, sync_seq)
SELECT id, feed_seq, sync_seq FROM boards WHERE feed_seq > 0 OR sync_seq > 0;

-- During a rolling update the previous release still bumps `boards.feed_seq`/`sync_seq`:
-- its bump goes to `board_seqs` and its RETURNING reads the number from there, so both
-- releases hand out one sequence. To be dropped, with those columns, by a later release.
CREATE FUNCTION boards_seq_compat() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO board_seqs AS s (board_id, feed_seq, sync_seq)
    VALUES (NEW.id, NEW.feed_seq - OLD.feed_seq, NEW.sync_seq - OLD.sync_seq)
    ON CONFLICT (board_id) DO UPDATE
        SET feed_seq = s.feed_seq + EXCLUDED.feed_seq, sync_seq = s.sync_seq + EXCLUDED.sync_seq
    RETURNING s.feed_seq, s.sync_seq INTO NEW.feed_seq, NEW.sync_seq;
    RETURN NEW;
END
$$;

CREATE TRIGGER boards_seq_compat BEFORE UPDATE OF feed_seq, sync_seq ON boards
    FOR EACH ROW
    WHEN (NEW.feed_seq IS DISTINCT FROM OLD.feed_seq OR NEW.sync_seq IS DISTINCT FROM OLD.sync_seq)
    EXECUTE FUNCTION boards_seq_compat();
