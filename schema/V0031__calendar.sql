-- M11 shared calendar (domain.md §D). Unlike the reference, both tables carry the
-- organization (its events lack it in the model, its schedules in the table), events keep
-- the IANA zone their recurrence is expanded in, and ranges are checked by the database.
CREATE TABLE calendar_events (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id           uuid REFERENCES boards (id) ON DELETE CASCADE,
    title              text NOT NULL,
    description        text,
    event_type         text NOT NULL DEFAULT 'milestone',
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz,
    is_all_day         boolean NOT NULL DEFAULT false,
    recurrence_rule    text,
    timezone           text NOT NULL DEFAULT 'UTC',
    event_metadata     jsonb,
    created_by_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at IS NULL OR ends_at >= starts_at)
);
CREATE INDEX calendar_events_org_start ON calendar_events (organization_id, starts_at);
CREATE INDEX calendar_events_board ON calendar_events (board_id);

CREATE TABLE task_schedules (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    task_id         uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    agent_id        uuid REFERENCES agents (id) ON DELETE SET NULL,
    board_id        uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    scheduled_start timestamptz NOT NULL,
    scheduled_end   timestamptz NOT NULL,
    actual_start    timestamptz,
    actual_end      timestamptz,
    status          text NOT NULL DEFAULT 'planned',
    estimated_hours double precision,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (scheduled_end > scheduled_start)
);
CREATE INDEX task_schedules_agent_time ON task_schedules (agent_id, scheduled_start, scheduled_end);
CREATE INDEX task_schedules_org_time ON task_schedules (organization_id, scheduled_start);
CREATE INDEX task_schedules_task ON task_schedules (task_id);
