-- Agent capabilities (domain.md §F1), and the order of the agents stream.
CREATE TABLE agent_capabilities (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id        uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    capability      text NOT NULL CHECK (length(capability) BETWEEN 1 AND 128),
    proficiency     text NOT NULL DEFAULT 'standard' CHECK (length(proficiency) BETWEEN 1 AND 32),
    metadata        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, capability)
);
CREATE INDEX agent_capabilities_org_capability_idx ON agent_capabilities (organization_id, capability);

-- Every agent write takes its organization's next agent feed number, so the agents stream
-- resumes exactly after the last number a client saw. A trigger stamps it, so no writer can
-- forget to; it is deferred to commit so the organization's counter is the last lock a
-- transaction takes and is held only while it commits: numbers follow commit order and no
-- transaction waits on the counter while holding a row another committer needs.
ALTER TABLE organizations ADD COLUMN agent_feed_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN feed_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX agents_feed_idx ON agents (organization_id, feed_seq);

CREATE FUNCTION agents_stamp_feed_seq() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    UPDATE organizations SET agent_feed_seq = agent_feed_seq + 1
     WHERE id = NEW.organization_id RETURNING agent_feed_seq INTO next_seq;
    UPDATE agents SET feed_seq = next_seq WHERE id = NEW.id AND next_seq IS NOT NULL;
    RETURN NULL;
END
$$;

-- The stamp's own update (trigger depth 1) queues no further stamp.
CREATE CONSTRAINT TRIGGER agents_feed_seq AFTER INSERT OR UPDATE ON agents
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (pg_trigger_depth() = 0)
    EXECUTE FUNCTION agents_stamp_feed_seq();
