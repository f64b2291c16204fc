-- Gateway self-registration: admin-issued registration tokens, relay tokens, and the
-- history of gateway status transitions.

CREATE TABLE gateway_registration_tokens (
    id                  uuid PRIMARY KEY,
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    token_hash          text NOT NULL UNIQUE,
    label               text,
    created_by_user_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    revoked_at          timestamptz
);
CREATE INDEX gateway_registration_tokens_org_idx ON gateway_registration_tokens (organization_id, created_at DESC);

-- The relay token is shown once, at registration; only its SHA-256 is kept.
ALTER TABLE gateways ADD COLUMN relay_token_hash text;
ALTER TABLE gateways ADD COLUMN registration_token_id uuid REFERENCES gateway_registration_tokens (id) ON DELETE SET NULL;

CREATE TABLE gateway_status_events (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    gateway_id       uuid NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    from_status      text NOT NULL,
    to_status        text NOT NULL,
    reason           text NOT NULL,
    instance_id      text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateway_status_events_gateway_idx ON gateway_status_events (gateway_id, created_at DESC);
-- The offline sweep looks for online gateways whose last heartbeat is too old.
CREATE INDEX gateways_online_heartbeat_idx ON gateways (last_heartbeat_at) WHERE status = 'online';
