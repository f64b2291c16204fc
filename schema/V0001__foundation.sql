-- Extensions every later migration may rely on: vector search (knowledge base) and
-- trigram search (fuzzy name lookups).
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (btrim(name) <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Names are unique case-insensitively in the reference's code, checked by lookups on lower(name).
CREATE INDEX organizations_lower_name_idx ON organizations (lower(name));

CREATE TABLE users (
    id                      uuid PRIMARY KEY,
    clerk_user_id           text NOT NULL UNIQUE,
    email                   text,
    name                    text,
    preferred_name          text,
    pronouns                text,
    timezone                text,
    notes                   text,
    context                 text,
    is_super_admin          boolean NOT NULL DEFAULT false,
    active_organization_id  uuid REFERENCES organizations (id) ON DELETE SET NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_lower_email_idx ON users (lower(email));
CREATE INDEX users_active_organization_idx ON users (active_organization_id);

CREATE TABLE organization_members (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role              text NOT NULL DEFAULT 'member',
    all_boards_read   boolean NOT NULL DEFAULT false,
    all_boards_write  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, user_id)
);
-- "my memberships, oldest first" is the provisioning lookup.
CREATE INDEX organization_members_user_idx ON organization_members (user_id, created_at);
CREATE INDEX organization_members_role_idx ON organization_members (organization_id, role);
