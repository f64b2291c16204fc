-- H5 (mobile) end users, their refresh tokens and their assignments to agents.

CREATE TABLE h5_users (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    username         text NOT NULL CHECK (char_length(username) BETWEEN 2 AND 64),
    email            text CHECK (char_length(email) <= 255),
    phone            text CHECK (char_length(phone) <= 32),
    password_hash    text NOT NULL,
    display_name     text CHECK (char_length(display_name) <= 128),
    avatar_url       text CHECK (char_length(avatar_url) <= 512),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    last_login_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, username)
);
CREATE INDEX h5_users_org_created_idx ON h5_users (organization_id, created_at DESC);
CREATE INDEX h5_users_org_status_idx ON h5_users (organization_id, status);

-- Single-use refresh tokens. A family is one login's chain of rotations: presenting a
-- revoked member of a family means it was stolen, and revokes the whole family.
CREATE TABLE h5_refresh_tokens (
    id           uuid PRIMARY KEY,
    h5_user_id   uuid NOT NULL REFERENCES h5_users (id) ON DELETE CASCADE,
    family_id    uuid NOT NULL,
    token_hash   text NOT NULL UNIQUE,
    expires_at   timestamptz NOT NULL,
    revoked      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX h5_refresh_tokens_user_idx ON h5_refresh_tokens (h5_user_id);
CREATE INDEX h5_refresh_tokens_family_idx ON h5_refresh_tokens (family_id);

CREATE TABLE h5_user_agent_assignments (
    id           uuid PRIMARY KEY,
    h5_user_id   uuid NOT NULL REFERENCES h5_users (id) ON DELETE CASCADE,
    agent_id     uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    board_id     uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    role         text NOT NULL DEFAULT 'user' CHECK (char_length(role) <= 32),
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    assigned_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    UNIQUE (h5_user_id, agent_id)
);
CREATE INDEX h5_assignments_agent_idx ON h5_user_agent_assignments (agent_id);
CREATE INDEX h5_assignments_board_idx ON h5_user_agent_assignments (board_id);
