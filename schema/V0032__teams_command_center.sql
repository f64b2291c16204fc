-- M13 teams (domain.md §F1), and the order of agent events for the command center's
-- forward cursor: each event takes its organization's next number under the organization
-- row's lock, so numbers follow commit order and a reader resuming after the last number
-- it saw neither skips nor repeats an event.
CREATE TABLE agent_teams (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id        uuid REFERENCES boards (id) ON DELETE SET NULL,
    name            text NOT NULL,
    description     text,
    team_type       text NOT NULL DEFAULT 'custom',
    config          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_teams_org ON agent_teams (organization_id, created_at);
CREATE INDEX agent_teams_board ON agent_teams (board_id);

CREATE TABLE agent_team_members (
    id           uuid PRIMARY KEY,
    team_id      uuid NOT NULL REFERENCES agent_teams (id) ON DELETE CASCADE,
    agent_id     uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    role_in_team text NOT NULL DEFAULT 'member',
    capabilities jsonb NOT NULL DEFAULT '[]',
    joined_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, agent_id)
);
CREATE INDEX agent_team_members_agent ON agent_team_members (agent_id);

ALTER TABLE organizations ADD COLUMN agent_event_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE agent_events ADD COLUMN seq bigint;
UPDATE agent_events e SET seq = n.seq
  FROM (SELECT id, row_number() OVER (PARTITION BY organization_id ORDER BY created_at, id) AS seq
          FROM agent_events) n
 WHERE e.id = n.id;
UPDATE organizations o SET agent_event_seq = m.seq
  FROM (SELECT organization_id, max(seq) AS seq FROM agent_events GROUP BY organization_id) m
 WHERE o.id = m.organization_id;
ALTER TABLE agent_events ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX agent_events_org_seq ON agent_events (organization_id, seq);
-- The command center's figures read an organization's tasks by creation and by status,
-- and an agent's by status; these replace the single-column indexes they start with.
CREATE INDEX tasks_org_created_idx ON tasks (organization_id, created_at);
CREATE INDEX tasks_org_status_updated_idx ON tasks (organization_id, status, updated_at);
CREATE INDEX tasks_assignee_status_idx ON tasks (assigned_agent_id, status);
DROP INDEX tasks_org_idx;
DROP INDEX tasks_assignee_idx;
