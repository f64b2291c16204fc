//! Pipeline runs as actors (docs/pipelines.md): `PipelineRuns`, one per instance, holds
//! runs through the instance's lease and keeps a `PipelineRun` actor for each run it holds;
//! the run actor drives its run's state machine (`domain::pipelines::holder`), all of whose
//! state is in PostgreSQL.
//!
//! Wake-ups come from PostgreSQL itself: every change of a run sends a NOTIFY at commit
//! (`pipeline_runs_changed`), which `PipelineRuns` hears on a connection of its own and
//! hands to the run's actor (or takes the run, when nobody holds it). A lost notification
//! costs at most one tick: each tick renews the lease, reconciles the runs held here with
//! the actors, takes runs whose holder died, fires due schedules and starts queued runs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::Semaphore;

use uuid::Uuid;

use super::board_events::BoardEvents;
use crate::db::PgPool;
use crate::domain::pipelines::holder::{self, Effects, Limits, Next, WebhookCall};
use crate::domain::pipelines::{records, triggers};

const CHANNEL: &str = "mc_pipeline_runs";
/// Runs taken over per tick.
const CLAIM_BATCH: i64 = 200;
/// A run whose step failed (the database away) is tried again after this.
const RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct PipelineDeps {
    pub db: PgPool,
    pub database: tokio_postgres::Config,
    pub instance_id: String,
    pub limits: Limits,
    pub board_events: BoardEvents,
    /// Steps under way at once on this instance: a thousand runs taken over together wait
    /// their turn here, not in the pool's queue ahead of the HTTP requests.
    pub steps: Arc<Semaphore>,
}

pub struct PipelineRuns {
    deps: PipelineDeps,
    /// The run actors here, with when each was started.
    runs: HashMap<Uuid, (Addr<PipelineRun>, Instant)>,
    ticking: bool,
    promote_due: bool,
}

impl PipelineRuns {
    pub fn new(deps: PipelineDeps) -> PipelineRuns {
        PipelineRuns {
            deps,
            runs: HashMap::new(),
            ticking: false,
            promote_due: false,
        }
    }

    fn spawn_run(&mut self, run_id: Uuid, ctx: &mut Context<Self>) {
        if self.runs.get(&run_id).is_some_and(|(a, _)| a.connected()) {
            return;
        }
        let run = PipelineRun {
            run_id,
            deps: self.deps.clone(),
            owner: ctx.address(),
            busy: false,
            dirty: false,
            timer: None,
        };
        self.runs.insert(run_id, (run.start(), Instant::now()));
    }

    /// The periodic work (see the module doc).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking {
            return;
        }
        self.ticking = true;
        let began = Instant::now();
        let deps = self.deps.clone();
        let work = async move {
            let conn = deps.db.get().await.map_err(|e| e.to_string())?;
            let me = deps.instance_id.as_str();
            holder::renew(&*conn, me, deps.limits.lease)
                .await
                .map_err(|e| e.to_string())?;
            let mut held = holder::held(&*conn, me).await.map_err(|e| e.to_string())?;
            // Everything a dead instance held is taken in this tick, a batch at a time.
            loop {
                let taken = holder::claim(&*conn, me, None, CLAIM_BATCH)
                    .await
                    .map_err(|e| e.to_string())?;
                let more = taken.len() as i64 == CLAIM_BATCH;
                held.extend(taken);
                if !more {
                    break;
                }
            }
            drop(conn);
            fire_schedules(&deps).await;
            promote(&deps).await;
            Ok::<_, String>(held)
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            act.ticking = false;
            match result {
                Ok(held) => {
                    let held: HashSet<Uuid> = held.into_iter().collect();
                    // An actor started after the tick read the table (a run taken on its
                    // notification) is not in `held`, and stays.
                    act.runs.retain(|id, (addr, started)| {
                        let keep = (held.contains(id) || *started > began) && addr.connected();
                        if !keep {
                            addr.do_send(Stop);
                        }
                        keep
                    });
                    for id in held {
                        act.spawn_run(id, ctx);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "pipeline holder tick failed"),
            }
        }));
    }

    /// Starts queued runs soon (several notifications in a row make one pass).
    fn promote_soon(&mut self, ctx: &mut Context<Self>) {
        if self.promote_due {
            return;
        }
        self.promote_due = true;
        ctx.run_later(Duration::from_millis(20), |act, ctx| {
            act.promote_due = false;
            let deps = act.deps.clone();
            ctx.spawn(async move { promote(&deps).await }.into_actor(act));
        });
    }

    /// Listens for run changes for ever.
    fn listen(&mut self, ctx: &mut Context<Self>) {
        let (database, me) = (self.deps.database.clone(), ctx.address());
        let work = async move {
            // Changes made while nobody listened are picked up by the tick.
            let ready = || me.do_send(Tick);
            let heard = |payload: &str| {
                if let Some(changed) = Changed::parse(payload) {
                    me.do_send(changed);
                }
            };
            crate::db::listen::listen(&database, CHANNEL, ready, heard).await
        };
        ctx.spawn(work.into_actor(self).map(|why, _, ctx| {
            tracing::warn!(error = %why, "pipeline notifications stopped; listening again");
            ctx.run_later(RETRY_AFTER, |act, ctx| act.listen(ctx));
        }));
    }
}

async fn fire_schedules(deps: &PipelineDeps) {
    let work = async {
        let mut conn = deps.db.get().await.map_err(|e| e.to_string())?;
        let tx = conn.transaction().await.map_err(|e| e.to_string())?;
        let started = triggers::fire_due(&tx).await.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(started)
    };
    match work.await {
        Ok(started) if !started.is_empty() => {
            tracing::info!(runs = ?started, "scheduled pipeline runs queued")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "pipeline schedules not fired"),
    }
}

/// Starts queued runs of every organization under its cap, one organization per
/// transaction (each holds its cap lock only that long).
async fn promote(deps: &PipelineDeps) {
    let work = async {
        let conn = deps.db.get().await.map_err(|e| e.to_string())?;
        let orgs = holder::waiting_organizations(&*conn)
            .await
            .map_err(|e| e.to_string())?;
        drop(conn);
        for org in orgs {
            let mut conn = deps.db.get().await.map_err(|e| e.to_string())?;
            let tx = conn.transaction().await.map_err(|e| e.to_string())?;
            holder::promote(&tx, org, deps.limits.max_concurrent_runs)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    };
    if let Err(e) = work.await {
        tracing::warn!(error = %e, "queued pipeline runs not started");
    }
}

impl Actor for PipelineRuns {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.listen(ctx);
        self.tick(ctx);
        let every = (self.deps.limits.lease / 3).max(Duration::from_millis(500));
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
        tracing::info!(instance_id = %self.deps.instance_id, "pipeline holder started");
    }
}

impl Supervised for PipelineRuns {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.ticking = false;
        self.promote_due = false;
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

impl Handler<Tick> for PipelineRuns {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        self.tick(ctx);
    }
}

/// A run changed (a NOTIFY's payload: `<run id> <holder or empty> <status> <phase or empty>`).
#[derive(Message)]
#[rtype(result = "()")]
struct Changed {
    run_id: Uuid,
    owner: Option<String>,
    status: String,
    phase: String,
}

impl Changed {
    fn parse(payload: &str) -> Option<Changed> {
        let mut parts = payload.split(' ');
        Some(Changed {
            run_id: Uuid::parse_str(parts.next()?).ok()?,
            owner: parts.next().filter(|o| !o.is_empty()).map(str::to_string),
            status: parts.next()?.to_string(),
            phase: parts.next().unwrap_or_default().to_string(),
        })
    }
}

impl Handler<Changed> for PipelineRuns {
    type Result = ();

    fn handle(&mut self, msg: Changed, ctx: &mut Context<Self>) {
        if !records::ACTIVE.contains(&msg.status.as_str()) {
            // A run ended or was queued: the cap may let a queued one start.
            self.promote_soon(ctx);
        }
        if let Some((run, _)) = self.runs.get(&msg.run_id).filter(|(a, _)| a.connected()) {
            // Only the holder writes `wait` and `call` (its own steps): a run that needs it
            // again is at `enter`, or ended.
            let needs_holder =
                msg.phase == "enter" || !records::ACTIVE.contains(&msg.status.as_str());
            if needs_holder {
                run.do_send(Wake);
            }
            return;
        }
        let me = &self.deps.instance_id;
        let active = records::ACTIVE.contains(&msg.status.as_str());
        if !active || msg.owner.as_ref().is_some_and(|o| o != me) {
            return;
        }
        let (deps, run_id) = (self.deps.clone(), msg.run_id);
        let take = async move {
            let conn = deps.db.get().await.map_err(|e| e.to_string())?;
            let me = deps.instance_id.as_str();
            holder::claim(&*conn, me, Some(run_id), 1)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(
            take.into_actor(self)
                .map(move |taken, act, ctx| match taken {
                    Ok(taken) if !taken.is_empty() => act.spawn_run(run_id, ctx),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%run_id, error = %e, "pipeline run not taken"),
                }),
        );
    }
}

/// A run's actor ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Gone(Uuid);

impl Handler<Gone> for PipelineRuns {
    type Result = ();

    fn handle(&mut self, msg: Gone, _: &mut Context<Self>) {
        if self.runs.get(&msg.0).is_some_and(|(a, _)| !a.connected()) {
            self.runs.remove(&msg.0);
        }
    }
}

/// Gives every run back: a clean shutdown lets other instances take them at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release;

impl Handler<Release> for PipelineRuns {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Release, _: &mut Context<Self>) -> Self::Result {
        for (run, _) in self.runs.values() {
            run.do_send(Stop);
        }
        self.runs.clear();
        let deps = self.deps.clone();
        Box::pin(
            async move {
                let released = async {
                    let conn = deps.db.get().await.map_err(|e| e.to_string())?;
                    holder::release_all(&*conn, &deps.instance_id).await.map_err(|e| e.to_string())
                };
                if let Err(e) = released.await {
                    tracing::warn!(error = %e, "pipeline runs not released; others take them when the lease expires");
                }
            }
            .into_actor(self),
        )
    }
}

/// One run held by this instance.
pub struct PipelineRun {
    run_id: Uuid,
    deps: PipelineDeps,
    owner: Addr<PipelineRuns>,
    /// A step loop is running; `dirty`: a wake-up came meanwhile.
    busy: bool,
    dirty: bool,
    timer: Option<SpawnHandle>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Wake;

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl PipelineRun {
    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.dirty = true;
            self.check_ended(ctx);
            return;
        }
        self.busy = true;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let (deps, run_id) = (self.deps.clone(), self.run_id);
        ctx.spawn(drive(deps, run_id).into_actor(self).map(|outcome, act, ctx| {
            act.busy = false;
            match outcome {
                Ok(Next::Stop) => ctx.stop(),
                Ok(Next::Sleep(until)) => {
                    if act.dirty {
                        act.dirty = false;
                        act.kick(ctx);
                    } else if let Some(until) = until {
                        let wait = (until - Utc::now()).to_std().unwrap_or_default();
                        act.timer = Some(ctx.run_later(wait, |act, ctx| act.kick(ctx)));
                    }
                }
                Ok(next) => tracing::error!(?next, "a run's step loop ended unexpectedly"),
                Err(e) => {
                    tracing::warn!(run_id = %act.run_id, error = %e, "pipeline run step failed; retrying");
                    act.timer = Some(ctx.run_later(RETRY_AFTER, |act, ctx| act.kick(ctx)));
                }
            }
        }));
    }

    /// A change came while a step (a webhook call, say) is under way: if the run was
    /// cancelled or taken elsewhere, stop now and drop the call.
    fn check_ended(&mut self, ctx: &mut Context<Self>) {
        let (deps, run_id) = (self.deps.clone(), self.run_id);
        let check = async move {
            let conn = deps.db.get().await.ok()?;
            holder::still_mine(&*conn, &deps.instance_id, run_id)
                .await
                .ok()
        };
        ctx.spawn(check.into_actor(self).map(|mine, _, ctx| {
            if mine == Some(false) {
                ctx.stop();
            }
        }));
    }
}

/// Steps the run until it sleeps or stops; webhook calls are made between steps, outside
/// any transaction.
async fn drive(deps: PipelineDeps, run_id: Uuid) -> Result<Next, String> {
    let me = deps.instance_id.as_str();
    loop {
        let permit = deps.steps.acquire().await.map_err(|e| e.to_string())?;
        let mut conn = deps.db.get().await.map_err(|e| e.to_string())?;
        let mut tx = conn.transaction().await.map_err(|e| e.to_string())?;
        let (next, effects) = holder::step(&mut tx, me, run_id, deps.limits)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        drop((conn, permit));
        tell(&deps.board_events, effects);
        match next {
            Next::Again => continue,
            Next::Call(call) => {
                let answer = call_webhook(&call).await;
                tracing::info!(%run_id, stage = %call.stage_id, attempt = call.attempt, ?answer, "pipeline webhook called");
                let _permit = deps.steps.acquire().await.map_err(|e| e.to_string())?;
                let conn = deps.db.get().await.map_err(|e| e.to_string())?;
                let effects = holder::record_call(&*conn, me, run_id, &call, answer)
                    .await
                    .map_err(|e| e.to_string())?;
                tell(&deps.board_events, effects);
            }
            other => return Ok(other),
        }
    }
}

/// Hands a committed step's changes to the realtime layer.
fn tell(events: &BoardEvents, effects: Effects) {
    for (organization_id, board_id, changes) in effects.tasks {
        events.tasks_changed(organization_id, board_id, changes);
    }
    for (board_id, event) in effects.approvals {
        events.approval_changed(board_id, event);
    }
    if let Some(board_id) = effects.feed {
        events.feed_changed(board_id);
    }
}

async fn call_webhook(call: &WebhookCall) -> Result<u16, String> {
    let method =
        actix_web::http::Method::from_bytes(call.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = crate::outbound::client(call.timeout)
        .request(method, &call.url)
        .insert_header(("Content-Type", "application/json"));
    for (name, value) in &call.headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    let mut response = request
        .send_body(call.body.clone())
        .await
        .map_err(|e| e.to_string())?;
    // The body is read (and dropped) so the connection can be reused.
    let _ = response.body().limit(64 << 10).await;
    Ok(response.status().as_u16())
}

impl Actor for PipelineRun {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.kick(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.owner.do_send(Gone(self.run_id));
    }
}

impl Handler<Wake> for PipelineRun {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.kick(ctx);
    }
}

impl Handler<Stop> for PipelineRun {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
