-- Pipelines (domain.md §C) as durable runs: the reference's three tables, plus what a run
-- needs to survive its instance (a lease), to wait (deadlines, retries), to be capped
-- (queued runs) and to start by itself (schedules, events). docs/pipelines.md.

CREATE TABLE pipelines (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    board_id         uuid REFERENCES boards (id) ON DELETE SET NULL,
    name             text NOT NULL,
    description      text,
    pipeline_type    text NOT NULL DEFAULT 'general',
    stages           jsonb NOT NULL DEFAULT '[]',
    trigger_config   jsonb,
    is_active        boolean NOT NULL DEFAULT true,
    -- The next firing of a `schedule` trigger (UTC); NULL for the other triggers. Moved
    -- forward in the transaction that starts the run, so each firing happens once.
    next_fire_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pipelines_org_created_idx ON pipelines (organization_id, created_at DESC);
CREATE INDEX pipelines_board_idx ON pipelines (board_id);
CREATE INDEX pipelines_due_idx ON pipelines (next_fire_at) WHERE next_fire_at IS NOT NULL;
-- Event triggers: the active pipelines of an organization waiting for an event type.
CREATE INDEX pipelines_event_idx ON pipelines (organization_id, (trigger_config ->> 'event_type'))
    WHERE trigger_config ->> 'trigger_type' = 'event';

CREATE TABLE pipeline_runs (
    id                 uuid PRIMARY KEY,
    pipeline_id        uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    input_data         jsonb,
    current_stage_id   text,
    status             text NOT NULL DEFAULT 'running'
        CHECK (status IN ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    stage_results      jsonb NOT NULL DEFAULT '{}',
    -- What the holder of the run does next with the current stage: 'enter' it, 'wait' for
    -- its task, approval or advance, or 'call' its webhook; NULL when queued or ended.
    phase              text CHECK (phase IN ('enter', 'wait', 'call')),
    -- The instance holding the run (its PipelineRun actor), while that instance's lease in
    -- pipeline_holders lasts.
    lease_owner        text,
    -- When the current stage times out, and when its holder must look at it again (the
    -- deadline, or a webhook's next attempt).
    stage_deadline     timestamptz,
    wake_at            timestamptz,
    -- Moves from one stage to the next so far (counted by every move, condition stages
    -- included): a loop is bounded, and each visit of a stage has its own number.
    steps              integer NOT NULL DEFAULT 0,
    started_by_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    -- The system event that started the run (event triggers): one run per event.
    trigger_event_id   uuid,
    started_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pipeline_runs_pipeline_idx ON pipeline_runs (pipeline_id, created_at DESC);
CREATE INDEX pipeline_runs_org_idx ON pipeline_runs (organization_id);
-- The cap counts an organization's active runs; queued ones start oldest first.
CREATE INDEX pipeline_runs_active_idx ON pipeline_runs (organization_id, status, created_at)
    WHERE status IN ('queued', 'running', 'paused');
-- The runs an instance holds; runs of no instance, or of one whose lease expired, are
-- taken over.
CREATE INDEX pipeline_runs_owner_idx ON pipeline_runs (lease_owner, created_at) WHERE status IN ('running', 'paused');
CREATE UNIQUE INDEX pipeline_runs_trigger_event ON pipeline_runs (pipeline_id, trigger_event_id)
    WHERE trigger_event_id IS NOT NULL;

-- One lease per instance that holds runs, renewed every few seconds: one row written per
-- renewal however many runs the instance holds.
CREATE TABLE pipeline_holders (
    instance_id  text PRIMARY KEY,
    lease_until  timestamptz NOT NULL
);

-- What a stage created and waits for: its task (ai_task) or its approval (approval). A stage
-- entered again (a loop) gets a row per visit, so there is no UNIQUE (run, stage).
CREATE TABLE pipeline_stage_tasks (
    id               uuid PRIMARY KEY,
    pipeline_run_id  uuid NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
    stage_id         text NOT NULL,
    task_id          uuid REFERENCES tasks (id) ON DELETE CASCADE,
    approval_id      uuid REFERENCES approvals (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((task_id IS NULL) <> (approval_id IS NULL))
);
CREATE INDEX pipeline_stage_tasks_run_idx ON pipeline_stage_tasks (pipeline_run_id);
CREATE INDEX pipeline_stage_tasks_task_idx ON pipeline_stage_tasks (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX pipeline_stage_tasks_approval_idx ON pipeline_stage_tasks (approval_id) WHERE approval_id IS NOT NULL;

-- Every change of what a run does wakes its holder, on whichever instance: a NOTIFY is sent
-- at COMMIT only, so a holder never reads a change that may still roll back. Lease renewals
-- touch none of these columns and stay quiet.
CREATE FUNCTION pipeline_runs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('mc_pipeline_runs',
    NEW.id::text || ' ' || coalesce(NEW.lease_owner, '') || ' ' || NEW.status || ' ' || coalesce(NEW.phase, ''));
  RETURN NULL;
END $$;
CREATE TRIGGER pipeline_runs_changed
    AFTER INSERT OR UPDATE OF status, phase, current_stage_id, stage_results, wake_at ON pipeline_runs
    FOR EACH ROW EXECUTE FUNCTION pipeline_runs_notify();
