-- Gateways we dial ourselves (OpenClaw's operator protocol): the deployment's device key,
-- who holds each gateway's one connection, and what that connection is doing.

-- One row: the Ed25519 seed every instance signs with, created by the first instance that
-- needs it (unless GATEWAY_DEVICE_KEY sets it). Never returned by the API.
CREATE TABLE gateway_device_identity (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seed       bytea NOT NULL CHECK (length(seed) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Exactly one instance holds a gateway's connection: every chat event of a gateway reaches
-- every operator connection, so two holders would deliver each reply twice. The holder
-- renews the lease; another instance takes it once it has expired.
CREATE TABLE gateway_leases (
    gateway_id  uuid PRIMARY KEY REFERENCES gateways (id) ON DELETE CASCADE,
    instance_id text NOT NULL,
    expires_at  timestamptz NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT now()
);

-- The connection as the admin sees it. state: connecting, connected, pairing_required,
-- auth_failed, protocol_mismatch, missing_scopes, unreachable, error.
ALTER TABLE gateways ADD COLUMN connection_state text;
ALTER TABLE gateways ADD COLUMN connection_message text;
ALTER TABLE gateways ADD COLUMN connection_changed_at timestamptz;
ALTER TABLE gateways ADD COLUMN pairing_request_id text;
ALTER TABLE gateways ADD COLUMN gateway_protocol integer;
ALTER TABLE gateways ADD COLUMN gateway_version text;
-- Returned by a gateway once our device is paired; sent instead of the shared token.
ALTER TABLE gateways ADD COLUMN device_token text;
