-- Knowledge search done right (domain.md §E, docs/knowledge.md): full text in the
-- deployment's language (KNOWLEDGE_SEARCH_LANGUAGE, not a hard-coded 'english'), Chinese
-- (and Japanese, Korean) text by character bigrams, and embeddings of whatever dimension the
-- configured model has, filled by a background worker.

DROP INDEX knowledge_entries_embedding_idx;
DROP INDEX knowledge_entries_search_idx;
ALTER TABLE knowledge_entries DROP COLUMN search_vector;
-- Any dimension: each model's vectors get an HNSW index of their own (created by the
-- worker, on `embedding::vector(n)` for the rows with `embedding_dims = n`).
ALTER TABLE knowledge_entries ALTER COLUMN embedding TYPE vector;

ALTER TABLE knowledge_entries
    -- The text search configuration the entry is indexed with (the setting when written).
    ADD COLUMN search_config regconfig NOT NULL DEFAULT 'english',
    -- CJK characters and bigrams of title, category and content as ASCII tokens
    -- (`cjk` + hex code points): PostgreSQL has no Chinese parser, and these index the same
    -- under any locale.
    ADD COLUMN search_extra text NOT NULL DEFAULT '',
    ADD COLUMN embedding_model text,
    ADD COLUMN embedding_dims integer,
    -- When the worker should embed the entry (again); NULL: its embedding is current.
    ADD COLUMN embed_due_at timestamptz DEFAULT now(),
    ADD COLUMN embed_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN embed_error text,
    -- Bumped when the embedded text changes: an embedding computed from an older text is
    -- not written over a newer one.
    ADD COLUMN embed_version integer NOT NULL DEFAULT 0;

ALTER TABLE knowledge_entries ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector(search_config, coalesce(title, '')), 'A')
    || setweight(to_tsvector(search_config, coalesce(content, '')), 'B')
    || setweight(to_tsvector(search_config, coalesce(category, '')), 'C')
    || setweight(to_tsvector('simple', search_extra), 'B')
) STORED;
CREATE INDEX knowledge_entries_search_idx ON knowledge_entries USING gin (search_vector);
CREATE INDEX knowledge_entries_embed_due_idx ON knowledge_entries (embed_due_at) WHERE embed_due_at IS NOT NULL;

-- The configuration named KNOWLEDGE_SEARCH_LANGUAGE, or `simple` when the database has none
-- of that name (the server says so at start).
CREATE FUNCTION knowledge_search_config(name text) RETURNS regconfig LANGUAGE sql STABLE AS $$
  SELECT coalesce((SELECT c.oid::regconfig FROM pg_ts_config c WHERE c.cfgname = name ORDER BY c.oid LIMIT 1),
                  'simple'::regconfig)
$$;

-- Uploaded documents: the object's key in the store (NULL for a document recorded by URL,
-- the reference's form), and the text extracted from it, in chunks searchable as part of
-- their entry.
ALTER TABLE knowledge_documents ADD COLUMN storage_key text;
ALTER TABLE knowledge_documents ADD COLUMN extracted_chars integer;
CREATE TABLE knowledge_chunks (
    id                  uuid PRIMARY KEY,
    knowledge_entry_id  uuid NOT NULL REFERENCES knowledge_entries (id) ON DELETE CASCADE,
    document_id         uuid NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    position            integer NOT NULL,
    content             text NOT NULL,
    search_config       regconfig NOT NULL DEFAULT 'english',
    search_extra        text NOT NULL DEFAULT '',
    search_vector       tsvector GENERATED ALWAYS AS (
        to_tsvector(search_config, content) || to_tsvector('simple', search_extra)
    ) STORED
);
CREATE INDEX knowledge_chunks_entry_idx ON knowledge_chunks (knowledge_entry_id);
CREATE INDEX knowledge_chunks_document_idx ON knowledge_chunks (document_id);
CREATE INDEX knowledge_chunks_search_idx ON knowledge_chunks USING gin (search_vector);
