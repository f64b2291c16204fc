-- Skills marketplace (domain.md §A17): the organization's skill catalog, its packs, and
-- which skills were asked to be installed on which gateway.
CREATE TABLE marketplace_skills (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL,
    description     text,
    category        text,
    risk            text,
    source          text,
    source_url      text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, source_url)
);

CREATE TABLE skill_packs (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL,
    description     text,
    source_url      text NOT NULL CHECK (source_url LIKE 'https://github.com/%/%'),
    branch          text NOT NULL DEFAULT 'main',
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, source_url)
);

-- The install is recorded when it is requested; the gateway's outcome is not awaited.
CREATE TABLE gateway_installed_skills (
    id         uuid PRIMARY KEY,
    gateway_id uuid NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    skill_id   uuid NOT NULL REFERENCES marketplace_skills (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, skill_id)
);
CREATE INDEX gateway_installed_skills_skill_idx ON gateway_installed_skills (skill_id);
