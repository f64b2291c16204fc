-- What agents post (domain.md §B1, §E1): system events, proactive suggestions and
-- knowledge entries. Unlike the reference (no ON DELETE clauses, so deleting a board or
-- agent with such rows failed), each reference says what happens when its target goes:
-- events and suggestions are about their board and go with it; the agent, task, event or
-- user they name is only a pointer and is cleared. Knowledge outlives the board, group
-- and agent it came from (it becomes the organization's).

CREATE TABLE agent_events (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id         uuid REFERENCES boards (id) ON DELETE CASCADE,
    agent_id         uuid REFERENCES agents (id) ON DELETE SET NULL,
    task_id          uuid REFERENCES tasks (id) ON DELETE SET NULL,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_events_org_type_idx ON agent_events (organization_id, event_type);
CREATE INDEX agent_events_created_idx ON agent_events (created_at);
CREATE INDEX agent_events_board_idx ON agent_events (board_id);
CREATE INDEX agent_events_agent_idx ON agent_events (agent_id);
CREATE INDEX agent_events_task_idx ON agent_events (task_id);

CREATE TABLE agent_suggestions (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id             uuid REFERENCES boards (id) ON DELETE CASCADE,
    agent_id             uuid REFERENCES agents (id) ON DELETE SET NULL,
    suggestion_type      text NOT NULL,
    title                text NOT NULL,
    description          text,
    confidence           double precision NOT NULL DEFAULT 0.5,
    priority             text NOT NULL DEFAULT 'medium',
    status               text NOT NULL DEFAULT 'pending',
    payload              jsonb,
    source_event_id      uuid REFERENCES agent_events (id) ON DELETE SET NULL,
    resolved_by_user_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    resolved_at          timestamptz,
    expires_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_suggestions_org_status_idx ON agent_suggestions (organization_id, status, created_at DESC);
CREATE INDEX agent_suggestions_org_created_idx ON agent_suggestions (organization_id, created_at DESC);
CREATE INDEX agent_suggestions_board_idx ON agent_suggestions (board_id);
CREATE INDEX agent_suggestions_agent_idx ON agent_suggestions (agent_id);
CREATE INDEX agent_suggestions_source_event_idx ON agent_suggestions (source_event_id);
CREATE INDEX agent_suggestions_resolved_by_idx ON agent_suggestions (resolved_by_user_id);

-- search_vector is the reference trigger's weighting (title A, content B, category C),
-- computed by the database so no writer can forget it. embedding is filled by the
-- knowledge base's embedding provider, when one is configured.
CREATE TABLE knowledge_entries (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id         uuid REFERENCES boards (id) ON DELETE SET NULL,
    board_group_id   uuid REFERENCES board_groups (id) ON DELETE SET NULL,
    agent_id         uuid REFERENCES agents (id) ON DELETE SET NULL,
    title            text NOT NULL,
    content          text NOT NULL,
    category         text,
    tags             jsonb NOT NULL DEFAULT '[]',
    source_type      text,
    source_ref       jsonb,
    is_pinned        boolean NOT NULL DEFAULT false,
    search_vector    tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(title, '')), 'A')
        || setweight(to_tsvector('english', coalesce(content, '')), 'B')
        || setweight(to_tsvector('english', coalesce(category, '')), 'C')
    ) STORED,
    embedding        vector(1536),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_entries_org_idx ON knowledge_entries (organization_id, is_pinned DESC, created_at DESC);
CREATE INDEX knowledge_entries_org_category_idx ON knowledge_entries (organization_id, category);
CREATE INDEX knowledge_entries_board_idx ON knowledge_entries (board_id);
CREATE INDEX knowledge_entries_board_group_idx ON knowledge_entries (board_group_id);
CREATE INDEX knowledge_entries_agent_idx ON knowledge_entries (agent_id);
CREATE INDEX knowledge_entries_search_idx ON knowledge_entries USING gin (search_vector);
-- HNSW rather than the reference's IVFFlat: it needs no training rows, so it is right
-- from the first entry on.
CREATE INDEX knowledge_entries_embedding_idx ON knowledge_entries USING hnsw (embedding vector_cosine_ops);

CREATE TABLE knowledge_documents (
    id                  uuid PRIMARY KEY,
    knowledge_entry_id  uuid NOT NULL REFERENCES knowledge_entries (id) ON DELETE CASCADE,
    file_name           text NOT NULL,
    file_type           text,
    file_size_bytes     bigint,
    storage_url         text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_documents_entry_idx ON knowledge_documents (knowledge_entry_id);
