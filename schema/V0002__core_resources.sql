-- Core admin resources: invites and per-board access, gateways, board groups, boards,
-- agents, tasks with dependencies, approvals, activity, tags and task custom fields.
-- Every tenant table carries organization_id so that every query can filter on it.

CREATE TABLE gateways (
    id                       uuid PRIMARY KEY,
    organization_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                     text NOT NULL,
    url                      text NOT NULL DEFAULT '',
    -- The admin-entered gateway token of the reference API (kept for its shapes; this
    -- server never dials gateways: they connect to it).
    token                    text,
    workspace_root           text NOT NULL DEFAULT '',
    status                   text NOT NULL DEFAULT 'pending',
    last_heartbeat_at        timestamptz,
    connection_info          jsonb,
    auto_registered          boolean NOT NULL DEFAULT false,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateways_org_idx ON gateways (organization_id, created_at);
CREATE INDEX gateways_status_idx ON gateways (status);

CREATE TABLE board_groups (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             text NOT NULL,
    slug             text NOT NULL,
    description      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX board_groups_org_idx ON board_groups (organization_id, lower(name));
CREATE INDEX board_groups_slug_idx ON board_groups (organization_id, slug);

CREATE TABLE boards (
    id                                         uuid PRIMARY KEY,
    organization_id                            uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                                       text NOT NULL,
    slug                                       text NOT NULL DEFAULT '',
    description                                text NOT NULL DEFAULT '',
    gateway_id                                 uuid REFERENCES gateways (id) ON DELETE SET NULL,
    board_group_id                             uuid REFERENCES board_groups (id) ON DELETE SET NULL,
    board_type                                 text NOT NULL DEFAULT 'goal',
    objective                                  text,
    success_metrics                            jsonb,
    target_date                                timestamptz,
    goal_confirmed                             boolean NOT NULL DEFAULT false,
    goal_source                                text,
    require_approval_for_done                  boolean NOT NULL DEFAULT true,
    require_review_before_done                 boolean NOT NULL DEFAULT false,
    block_status_changes_with_pending_approval boolean NOT NULL DEFAULT false,
    only_lead_can_change_status                boolean NOT NULL DEFAULT false,
    max_agents                                 integer NOT NULL DEFAULT 1 CHECK (max_agents >= 0),
    created_at                                 timestamptz NOT NULL DEFAULT now(),
    updated_at                                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX boards_org_name_idx ON boards (organization_id, lower(name), created_at DESC);
CREATE INDEX boards_gateway_idx ON boards (gateway_id);
CREATE INDEX boards_group_idx ON boards (board_group_id);

CREATE TABLE organization_invites (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    invited_email        text NOT NULL,
    token                text NOT NULL UNIQUE,
    role                 text NOT NULL DEFAULT 'member',
    all_boards_read      boolean NOT NULL DEFAULT false,
    all_boards_write     boolean NOT NULL DEFAULT false,
    created_by_user_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    accepted_by_user_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    accepted_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX organization_invites_org_idx ON organization_invites (organization_id, created_at DESC);
CREATE INDEX organization_invites_email_idx ON organization_invites (lower(invited_email));

CREATE TABLE organization_board_access (
    id                      uuid PRIMARY KEY,
    organization_member_id  uuid NOT NULL REFERENCES organization_members (id) ON DELETE CASCADE,
    board_id                uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    can_read                boolean NOT NULL DEFAULT true,
    can_write               boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_member_id, board_id)
);
CREATE INDEX organization_board_access_board_idx ON organization_board_access (board_id);

CREATE TABLE organization_invite_board_access (
    id                      uuid PRIMARY KEY,
    organization_invite_id  uuid NOT NULL REFERENCES organization_invites (id) ON DELETE CASCADE,
    board_id                uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    can_read                boolean NOT NULL DEFAULT true,
    can_write               boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_invite_id, board_id)
);

CREATE TABLE agents (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- NULL: the gateway-main agent of its gateway.
    board_id             uuid REFERENCES boards (id) ON DELETE CASCADE,
    gateway_id           uuid NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    status               text NOT NULL DEFAULT 'provisioning',
    openclaw_session_id  text,
    heartbeat_config     jsonb,
    identity_profile     jsonb,
    identity_template    text,
    soul_template        text,
    provision_requested_at timestamptz,
    provision_action     text,
    delete_requested_at  timestamptz,
    last_seen_at         timestamptz,
    is_board_lead        boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_org_idx ON agents (organization_id, created_at DESC);
CREATE INDEX agents_board_idx ON agents (board_id);
CREATE INDEX agents_gateway_idx ON agents (gateway_id);
CREATE INDEX agents_board_name_idx ON agents (board_id, lower(name));
CREATE INDEX agents_gateway_name_idx ON agents (gateway_id, lower(name));

CREATE TABLE tasks (
    id                       uuid PRIMARY KEY,
    organization_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id                 uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    title                    text NOT NULL,
    description              text,
    status                   text NOT NULL DEFAULT 'inbox' CHECK (status IN ('inbox', 'in_progress', 'review', 'done')),
    priority                 text NOT NULL DEFAULT 'medium',
    due_at                   timestamptz,
    in_progress_at           timestamptz,
    previous_in_progress_at  timestamptz,
    created_by_user_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    assigned_agent_id        uuid REFERENCES agents (id) ON DELETE SET NULL,
    auto_created             boolean NOT NULL DEFAULT false,
    auto_reason              text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_board_created_idx ON tasks (board_id, created_at DESC);
CREATE INDEX tasks_board_status_idx ON tasks (board_id, status, created_at DESC);
CREATE INDEX tasks_board_assignee_idx ON tasks (board_id, assigned_agent_id, created_at DESC);
CREATE INDEX tasks_assignee_idx ON tasks (assigned_agent_id);
CREATE INDEX tasks_org_idx ON tasks (organization_id);

CREATE TABLE task_dependencies (
    id                  uuid PRIMARY KEY,
    board_id            uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    task_id             uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on_task_id  uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, depends_on_task_id),
    CHECK (task_id <> depends_on_task_id)
);
CREATE INDEX task_dependencies_board_idx ON task_dependencies (board_id);
CREATE INDEX task_dependencies_depends_on_idx ON task_dependencies (depends_on_task_id);

CREATE TABLE approvals (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    -- The primary (first) linked task; the links table holds them all.
    task_id          uuid REFERENCES tasks (id) ON DELETE SET NULL,
    agent_id         uuid REFERENCES agents (id) ON DELETE SET NULL,
    action_type      text NOT NULL,
    payload          jsonb,
    confidence       double precision NOT NULL,
    rubric_scores    jsonb,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz
);
CREATE INDEX approvals_board_idx ON approvals (board_id, created_at DESC);
CREATE INDEX approvals_board_status_idx ON approvals (board_id, status);
CREATE INDEX approvals_task_idx ON approvals (task_id);

CREATE TABLE approval_task_links (
    id           uuid PRIMARY KEY,
    approval_id  uuid NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (approval_id, task_id)
);
CREATE INDEX approval_task_links_task_idx ON approval_task_links (task_id);

-- Unlike the reference, events carry their organization and board, so feeds need no
-- join through tasks and task-less events stay visible.
CREATE TABLE activity_events (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id         uuid REFERENCES boards (id) ON DELETE CASCADE,
    event_type       text NOT NULL,
    message          text,
    agent_id         uuid REFERENCES agents (id) ON DELETE SET NULL,
    task_id          uuid REFERENCES tasks (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_events_org_idx ON activity_events (organization_id, created_at DESC);
CREATE INDEX activity_events_board_idx ON activity_events (board_id, created_at DESC);
CREATE INDEX activity_events_type_idx ON activity_events (event_type, created_at);
CREATE INDEX activity_events_agent_idx ON activity_events (agent_id, created_at DESC);
CREATE INDEX activity_events_task_comment_idx ON activity_events (task_id, created_at) WHERE event_type = 'task.comment';

CREATE TABLE tags (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             text NOT NULL,
    slug             text NOT NULL,
    color            text NOT NULL DEFAULT '9e9e9e',
    description      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, slug)
);

CREATE TABLE tag_assignments (
    id          uuid PRIMARY KEY,
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tag_id      uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, tag_id)
);
CREATE INDEX tag_assignments_tag_idx ON tag_assignments (tag_id);

CREATE TABLE task_custom_field_definitions (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    field_key         text NOT NULL,
    label             text NOT NULL,
    field_type        text NOT NULL DEFAULT 'text'
        CHECK (field_type IN ('text', 'text_long', 'integer', 'decimal', 'boolean', 'date', 'date_time', 'url', 'json')),
    ui_visibility     text NOT NULL DEFAULT 'always' CHECK (ui_visibility IN ('always', 'if_set', 'hidden')),
    validation_regex  text,
    description       text,
    required          boolean NOT NULL DEFAULT false,
    default_value     jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, field_key)
);

CREATE TABLE board_task_custom_fields (
    id                               uuid PRIMARY KEY,
    board_id                         uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    task_custom_field_definition_id  uuid NOT NULL REFERENCES task_custom_field_definitions (id) ON DELETE CASCADE,
    created_at                       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (board_id, task_custom_field_definition_id)
);
CREATE INDEX board_task_custom_fields_definition_idx ON board_task_custom_fields (task_custom_field_definition_id);

CREATE TABLE task_custom_field_values (
    id                               uuid PRIMARY KEY,
    task_id                          uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    task_custom_field_definition_id  uuid NOT NULL REFERENCES task_custom_field_definitions (id) ON DELETE RESTRICT,
    value                            jsonb,
    created_at                       timestamptz NOT NULL DEFAULT now(),
    updated_at                       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, task_custom_field_definition_id)
);
CREATE INDEX task_custom_field_values_definition_idx ON task_custom_field_values (task_custom_field_definition_id);
