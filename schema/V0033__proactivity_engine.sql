-- The proactivity engine (domain.md §B): rules, which events were evaluated, what an
-- accepted suggestion did, and the deployment's clock for the cron ticks.

CREATE TABLE proactive_rules (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- A rule of a board only sees that board's events; it goes with the board.
    board_id          uuid REFERENCES boards (id) ON DELETE CASCADE,
    name              text NOT NULL,
    description       text,
    trigger_event     text NOT NULL,
    conditions        jsonb NOT NULL DEFAULT '{}',
    action_type       text NOT NULL,
    action_config     jsonb NOT NULL DEFAULT '{}',
    is_enabled        boolean NOT NULL DEFAULT true,
    is_builtin        boolean NOT NULL DEFAULT false,
    cooldown_seconds  integer NOT NULL DEFAULT 3600,
    last_fired_at     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- What the engine reads per event: the enabled rules of the organization for its type.
CREATE INDEX proactive_rules_trigger_idx ON proactive_rules (organization_id, trigger_event) WHERE is_enabled;
CREATE INDEX proactive_rules_org_created_idx ON proactive_rules (organization_id, created_at);
CREATE INDEX proactive_rules_board_idx ON proactive_rules (board_id);
-- Builtin rules are seeded once per organization (by name).
CREATE UNIQUE INDEX proactive_rules_builtin_name ON proactive_rules (organization_id, name) WHERE is_builtin;

-- The builtin rules (§B6), with the reference's names, conditions, texts and cooldowns.
CREATE FUNCTION seed_builtin_rules(org uuid) RETURNS void LANGUAGE sql AS $$
  INSERT INTO proactive_rules (id, organization_id, name, description, trigger_event, conditions,
                               action_type, action_config, is_builtin, cooldown_seconds, created_at, updated_at)
  SELECT gen_random_uuid(), org, r.name, r.description, r.trigger_event, r.conditions::jsonb,
         'create_suggestion', r.action_config::jsonb, true, r.cooldown,
         -- Listed in the reference's order (oldest first).
         now() + r.position * interval '1 microsecond', now() + r.position * interval '1 microsecond'
    FROM (VALUES
      ('Overdue Task Alert', 'Alert when tasks pass their due date.', 'cron.daily',
       '{"rules": [{"field": "has_overdue_tasks", "op": "eq", "value": true}]}',
       '{"suggestion_type": "deadline_alert", "title": "Overdue tasks detected", "description": "One or more tasks are past their due date.", "confidence": 0.95, "priority": "high"}',
       86400, 1),
      ('Stale Review Detection', 'Detect tasks stuck in review for over 24 hours.', 'cron.hourly',
       '{"rules": [{"field": "stale_review_count", "op": "gt", "value": 0}]}',
       '{"suggestion_type": "quality_concern", "title": "Stale review tasks", "description": "Tasks have been in review for more than 24 hours.", "confidence": 0.80, "priority": "medium"}',
       3600, 2),
      ('WIP Limit Warning', 'Warn when too many tasks are in progress on a board.', 'task.status_changed',
       '{"rules": [{"field": "wip_exceeded", "op": "eq", "value": true}]}',
       '{"suggestion_type": "workload_rebalance", "title": "WIP limit exceeded", "description": "Too many tasks are in progress simultaneously.", "confidence": 0.75, "priority": "medium"}',
       3600, 3),
      ('Unblocking Opportunity', 'Suggest picking up tasks a completed task unblocked.', 'task.status_changed',
       '{"rules": [{"field": "new_status", "op": "eq", "value": "done"}, {"field": "has_dependents", "op": "eq", "value": true}]}',
       '{"suggestion_type": "task_reassign", "title": "Downstream tasks now unblocked", "description": "A completed task has freed up dependent tasks for assignment.", "confidence": 0.85, "priority": "medium"}',
       1800, 4),
      ('Idle Agent Detection', 'Detect agents without work for over an hour.', 'agent.heartbeat',
       '{"rules": [{"field": "idle_minutes", "op": "gte", "value": 60}]}',
       '{"suggestion_type": "task_reassign", "title": "Idle agent detected", "description": "An agent has been idle for more than 1 hour.", "confidence": 0.70, "priority": "low"}',
       3600, 5),
      ('Auto Follow-up', 'Suggest a follow-up for completed tasks that ask for one.', 'task.status_changed',
       '{"rules": [{"field": "new_status", "op": "eq", "value": "done"}, {"field": "needs_followup", "op": "eq", "value": true}]}',
       '{"suggestion_type": "task_create", "title": "Consider a follow-up task", "description": "The completed task may benefit from a follow-up.", "confidence": 0.60, "priority": "low"}',
       7200, 6)
    ) AS r(name, description, trigger_event, conditions, action_config, cooldown, position)
   ORDER BY r.position
  ON CONFLICT (organization_id, name) WHERE is_builtin DO NOTHING;
$$;

-- Every organization has them, whichever path created it.
CREATE FUNCTION seed_builtin_rules_of_new_org() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM seed_builtin_rules(NEW.id);
  RETURN NEW;
END $$;
CREATE TRIGGER organizations_builtin_rules AFTER INSERT ON organizations
  FOR EACH ROW EXECUTE FUNCTION seed_builtin_rules_of_new_org();
SELECT seed_builtin_rules(id) FROM organizations;

-- An event is evaluated once: the engine stamps it in the transaction that writes what its
-- rules produced. Events posted before the engine existed count as evaluated.
ALTER TABLE agent_events ADD COLUMN evaluated_at timestamptz;
UPDATE agent_events SET evaluated_at = created_at;
CREATE INDEX agent_events_unevaluated_idx ON agent_events (created_at) WHERE evaluated_at IS NULL;

-- What accepting a suggestion did (or why it could not).
ALTER TABLE agent_suggestions ADD COLUMN action_result jsonb;
CREATE INDEX agent_suggestions_pending_expiry_idx ON agent_suggestions (expires_at) WHERE status = 'pending';

-- One row: the deployment's id (naming its event stream in Redis, so deployments sharing
-- a Redis do not read each other's events) and the last hourly and daily tick, claimed by
-- one instance each.
CREATE TABLE proactivity_clock (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    deployment_id  uuid NOT NULL DEFAULT gen_random_uuid(),
    hourly_at      timestamptz NOT NULL DEFAULT date_trunc('hour', now(), 'UTC'),
    daily_at       timestamptz NOT NULL DEFAULT date_trunc('day', now(), 'UTC')
);
INSERT INTO proactivity_clock DEFAULT VALUES;

-- Producers: an agent's heartbeat events are spaced (the latest is looked up per agent),
-- and an agent not heard from is recorded offline once until it is heard again.
CREATE INDEX agent_events_agent_type_created_idx ON agent_events (agent_id, event_type, created_at DESC);
ALTER TABLE agents ADD COLUMN offline_event_at timestamptz;
CREATE INDEX agents_last_seen_idx ON agents (last_seen_at);
