-- H5 chat: one session per (user, agent), and every message, stored before it is routed,
-- so that a client that reconnects can ask for everything after the last message it saw.

CREATE TABLE h5_chat_sessions (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    h5_user_id       uuid NOT NULL REFERENCES h5_users (id) ON DELETE CASCADE,
    agent_id         uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    gateway_id       uuid NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    -- The reference's key, `h5:{h5_user_id}:{agent_id}`, which gateways echo in replies.
    session_key      text NOT NULL UNIQUE,
    status           text NOT NULL DEFAULT 'active',
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (h5_user_id, agent_id)
);
CREATE INDEX h5_chat_sessions_user_idx ON h5_chat_sessions (h5_user_id, last_message_at DESC);
CREATE INDEX h5_chat_sessions_gateway_idx ON h5_chat_sessions (gateway_id);

CREATE TABLE h5_chat_messages (
    id                 uuid PRIMARY KEY,
    -- Global delivery order: "everything after message X" is `seq > X.seq`.
    seq                bigserial NOT NULL UNIQUE,
    session_id         uuid NOT NULL REFERENCES h5_chat_sessions (id) ON DELETE CASCADE,
    h5_user_id         uuid NOT NULL REFERENCES h5_users (id) ON DELETE CASCADE,
    agent_id           uuid NOT NULL,
    role               text NOT NULL CHECK (role IN ('user', 'assistant')),
    -- The sender's frame id: a resent frame is stored once.
    client_message_id  text,
    content            jsonb NOT NULL,
    extra              jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, role, client_message_id)
);
CREATE INDEX h5_chat_messages_user_seq_idx ON h5_chat_messages (h5_user_id, seq);
CREATE INDEX h5_chat_messages_session_seq_idx ON h5_chat_messages (session_id, seq DESC);
