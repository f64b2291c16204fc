-- Requests Mission Control sends to a gateway over its relay link (agent provisioning,
-- template syncs, messages to agent sessions, session reads). Every request is recorded
-- before it is sent, so one made while the gateway is offline waits here for its link.
CREATE TABLE gateway_commands (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    gateway_id      uuid NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    agent_id        uuid REFERENCES agents(id) ON DELETE SET NULL,
    board_id        uuid REFERENCES boards(id) ON DELETE SET NULL,
    method          text NOT NULL,
    params          jsonb NOT NULL DEFAULT '{}',
    -- pending: not sent yet; sent: on the link, no answer yet; done / failed: answered
    -- (or given up); timeout: a caller stopped waiting.
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    -- NULL: GATEWAY_COMMAND_MAX_ATTEMPTS at the time it is sent.
    max_attempts    integer,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- The instance whose caller waits for the answer (NULL: nobody waits).
    reply_to        text,
    result          jsonb,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz
);

CREATE INDEX gateway_commands_due ON gateway_commands (gateway_id, next_attempt_at)
    WHERE status IN ('pending', 'sent');
CREATE INDEX gateway_commands_recent ON gateway_commands (gateway_id, created_at DESC);
CREATE INDEX gateway_commands_agent ON gateway_commands (agent_id) WHERE agent_id IS NOT NULL;

-- Each send and each answer, for operators.
CREATE TABLE gateway_command_attempts (
    id          bigserial PRIMARY KEY,
    command_id  uuid NOT NULL REFERENCES gateway_commands(id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    outcome     text NOT NULL,
    detail      text,
    instance_id text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateway_command_attempts_command ON gateway_command_attempts (command_id, id);

-- The token a gateway holds for an agent, minted when a provisioning request is sent to it,
-- beside the one shown to whoever created or rotated the agent: each holder's rotation
-- replaces only its own. A table of its own, so minting one never locks the agent's row
-- against the requests being recorded for it (nor counts as a change of the agent).
CREATE TABLE agent_gateway_tokens (
    agent_id   uuid PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    lookup     text NOT NULL UNIQUE,
    hash       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
