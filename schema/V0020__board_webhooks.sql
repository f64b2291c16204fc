-- Inbound board webhooks (domain.md §A15). Unlike the reference, every webhook has a
-- secret: the ingest checks an HMAC-SHA256 of the body with it. It is kept in clear
-- because the server must recompute the HMAC; it is only ever answered at creation
-- and rotation.
CREATE TABLE board_webhooks (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id        uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    agent_id        uuid REFERENCES agents (id) ON DELETE SET NULL,
    description     text NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    secret          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX board_webhooks_board_idx ON board_webhooks (board_id, created_at DESC);
CREATE INDEX board_webhooks_agent_idx ON board_webhooks (agent_id);

CREATE TABLE board_webhook_payloads (
    id           uuid PRIMARY KEY,
    board_id     uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    webhook_id   uuid NOT NULL REFERENCES board_webhooks (id) ON DELETE CASCADE,
    payload      jsonb,
    headers      jsonb,
    source_ip    text,
    content_type text,
    -- Not yet handed to an agent: the gateway relay picks these up (no RPC here).
    delivered_at timestamptz,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX board_webhook_payloads_webhook_idx ON board_webhook_payloads (webhook_id, received_at DESC);
CREATE INDEX board_webhook_payloads_board_idx ON board_webhook_payloads (board_id);

-- Guided board set-up (domain.md §A20): one conversation per start.
CREATE TABLE board_onboarding_sessions (
    id          uuid PRIMARY KEY,
    board_id    uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    session_key text NOT NULL,
    status      text NOT NULL DEFAULT 'active',
    messages    jsonb,
    draft_goal  jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX board_onboarding_sessions_board_idx ON board_onboarding_sessions (board_id, updated_at DESC);
