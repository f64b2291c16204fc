-- Board memory and board-group memory (domain.md §A13, §A14). Each entry takes the next
-- feed number of its board (`boards.feed_seq`, shared with the board's other streams) or of
-- its group (`board_groups.feed_seq`) under that row's lock, so a memory stream resumes
-- exactly after the last number a client saw.
ALTER TABLE board_groups ADD COLUMN feed_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE board_memory (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    content          text NOT NULL,
    tags             jsonb,
    is_chat          boolean NOT NULL DEFAULT false,
    source           text,
    feed_seq         bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX board_memory_org_idx ON board_memory (organization_id);
CREATE INDEX board_memory_list_idx ON board_memory (board_id, created_at DESC);
CREATE INDEX board_memory_chat_idx ON board_memory (board_id, is_chat, created_at DESC);
CREATE UNIQUE INDEX board_memory_feed_idx ON board_memory (board_id, feed_seq);

CREATE TABLE board_group_memory (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_group_id   uuid NOT NULL REFERENCES board_groups (id) ON DELETE CASCADE,
    content          text NOT NULL,
    tags             jsonb,
    is_chat          boolean NOT NULL DEFAULT false,
    source           text,
    feed_seq         bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX board_group_memory_org_idx ON board_group_memory (organization_id);
CREATE INDEX board_group_memory_list_idx ON board_group_memory (board_group_id, created_at DESC);
CREATE INDEX board_group_memory_chat_idx ON board_group_memory (board_group_id, is_chat, created_at DESC);
CREATE UNIQUE INDEX board_group_memory_feed_idx ON board_group_memory (board_group_id, feed_seq);
