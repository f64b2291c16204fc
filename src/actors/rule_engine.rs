//! The proactivity event bus and its consumer, the `RuleEngine` (docs/proactivity.md).
//!
//! After a commit, the ids of the events it recorded go on the deployment's Redis stream
//! (`EventBus::publish`; `mc:event-stream:{deployment_id}` on PROACTIVITY_REDIS_URL, so
//! deployments sharing a Redis do not read each other's events). Each `RuleEngine` reads it
//! in the consumer group `rule-engine` under its instance id, evaluates each event
//! (`domain::proactivity::engine::evaluate`, once per event whatever the deliveries) and
//! acknowledges it. Entries a dead consumer left pending are claimed after
//! PROACTIVITY_RECOVER_AFTER_SECONDS; events Redis never got or lost are read from
//! `agent_events`, the source of truth, after the same time. Without Redis the bus is this
//! process: events go straight to its engine.
//!
//! The engine also keeps time for the deployment: it records the agents gone quiet
//! (`agent.offline`) and the hourly and daily ticks (claimed once per deployment), expires
//! suggestions and deletes old events. Suggestions it creates go to the suggestion hubs,
//! which reach every instance.
//!
//! It runs under a `Supervisor`; a failing stream read stops it and it is restarted, with a
//! pause once it has restarted `RESTART_BUDGET` times within `RESTART_WINDOW`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::suggestions::{self, SuggestionHubs};
use crate::config::ProactivitySettings;
use crate::db::cache::RedisPool;
use crate::db::PgPool;
use crate::domain::model::agent::OFFLINE_AFTER_MINUTES;
use crate::domain::proactivity::engine::{self, Defaults};
use crate::domain::proactivity::{events, producers, suggestions as stored};
use crate::domain::DomainError;

const GROUP: &str = "rule-engine";
/// Entries kept in the stream (approximately): it is a delivery queue, not the record.
const STREAM_MAX_LEN: usize = 100_000;
const READ_COUNT: usize = 64;
const READ_BLOCK_MS: u64 = 2_000;
const RESTART_BUDGET: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Rows one housekeeping statement touches.
const BATCH: i64 = 500;

/// Where committed events go. Cheap to clone; `publish` never waits.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    redis: Option<RedisPool>,
    db: PgPool,
    stream: OnceCell<String>,
    /// The engine of this process, for the in-process bus.
    local: std::sync::OnceLock<Addr<RuleEngine>>,
}

impl EventBus {
    pub fn new(db: PgPool, redis: Option<RedisPool>) -> EventBus {
        EventBus {
            inner: Arc::new(BusInner {
                redis,
                db,
                stream: OnceCell::new(),
                local: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Call after the commit that recorded the events. A failure is only logged: the events
    /// are in PostgreSQL, and the engine reads them from there after
    /// PROACTIVITY_RECOVER_AFTER_SECONDS.
    pub fn publish(&self, event_ids: Vec<Uuid>) {
        if event_ids.is_empty() {
            return;
        }
        let Some(pool) = self.inner.redis.clone() else {
            if let Some(engine) = self.inner.local.get() {
                engine.do_send(Evaluate(event_ids));
            }
            return;
        };
        let inner = self.inner.clone();
        actix::spawn(async move {
            let added = async {
                let stream = inner.stream().await?;
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                let mut pipe = redis::pipe();
                for id in &event_ids {
                    pipe.cmd("XADD")
                        .arg(&stream)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(STREAM_MAX_LEN)
                        .arg("*")
                        .arg("event_id")
                        .arg(id.to_string())
                        .ignore();
                }
                pipe.query_async::<()>(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = added.await {
                tracing::warn!(events = event_ids.len(), error = %e,
                    "events not put on the stream; the engine reads them from PostgreSQL later");
            }
        });
    }
}

impl BusInner {
    async fn stream(&self) -> Result<String, String> {
        self.stream
            .get_or_try_init(|| async {
                let conn = self.db.get().await.map_err(|e| e.to_string())?;
                let id = producers::deployment_id(&*conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(format!("mc:event-stream:{id}"))
            })
            .await
            .cloned()
    }
}

/// Events to evaluate now (the in-process bus).
#[derive(Message)]
#[rtype(result = "()")]
struct Evaluate(Vec<Uuid>);

/// What the engine needs.
#[derive(Clone)]
pub struct EngineDeps {
    pub db: PgPool,
    pub bus: EventBus,
    /// PROACTIVITY_REDIS_URL, for the stream reader's own connection.
    pub redis_url: Option<String>,
    pub consumer: String,
    pub settings: ProactivitySettings,
    pub hubs: Addr<SuggestionHubs>,
}

pub struct RuleEngine {
    deps: EngineDeps,
    restarts: VecDeque<Instant>,
    housekeeping: bool,
}

impl RuleEngine {
    pub fn new(deps: EngineDeps) -> RuleEngine {
        RuleEngine {
            deps,
            restarts: VecDeque::new(),
            housekeeping: false,
        }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            cooldown_seconds: self.deps.settings.rule_cooldown_seconds,
            expiry_hours: self.deps.settings.suggestion_expiry_hours,
        }
    }

    /// The periodic work: claim what dead consumers left, read what the bus lost, record
    /// agents gone quiet and due ticks, expire suggestions, delete old events.
    fn housekeeping(&mut self, ctx: &mut Context<Self>) {
        if self.housekeeping {
            return;
        }
        self.housekeeping = true;
        let (deps, defaults) = (self.deps.clone(), self.defaults());
        let work = async move {
            if let Some(pool) = &deps.bus.inner.redis {
                if let Err(e) = claim_stale(&deps, pool, defaults).await {
                    tracing::warn!(error = %e, "pending events not claimed");
                }
            }
            if let Err(e) = sweep(&deps, defaults).await {
                tracing::warn!(error = %e, "proactivity housekeeping failed");
            }
        };
        ctx.spawn(
            work.into_actor(self)
                .map(|(), act, _| act.housekeeping = false),
        );
    }
}

impl Actor for RuleEngine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _ = self.deps.bus.inner.local.set(ctx.address());
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            self.restarts.pop_front();
        }
        let pause = if self.restarts.len() >= RESTART_BUDGET {
            tracing::error!(
                restarts = self.restarts.len(),
                "rule engine keeps failing; pausing before the next start"
            );
            RESTART_WINDOW / 2
        } else {
            Duration::ZERO
        };
        let every = (self.deps.settings.recover_after / 2).max(Duration::from_secs(1));
        ctx.run_later(pause, move |act, ctx| {
            act.housekeeping(ctx);
            ctx.run_interval(every, |act, ctx| act.housekeeping(ctx));
            if let Some(url) = act.deps.redis_url.clone() {
                let (deps, defaults) = (act.deps.clone(), act.defaults());
                ctx.spawn(
                    read_stream(deps, url, defaults)
                        .into_actor(act)
                        .map(|e, _, ctx| {
                            tracing::warn!(error = %e, "event stream reader stopped; restarting the engine");
                            ctx.stop();
                        }),
                );
            }
        });
        tracing::info!(consumer = %self.deps.consumer, "rule engine started");
    }
}

impl Supervised for RuleEngine {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.push_back(Instant::now());
        self.housekeeping = false;
    }
}

impl Handler<Evaluate> for RuleEngine {
    type Result = ();

    fn handle(&mut self, msg: Evaluate, ctx: &mut Context<Self>) {
        let (deps, defaults) = (self.deps.clone(), self.defaults());
        ctx.spawn(
            async move {
                for id in msg.0 {
                    evaluate_or_leave(&deps, id, defaults).await;
                }
            }
            .into_actor(self),
        );
    }
}

/// Evaluates one event in its own transaction and hands its suggestions to the hubs.
async fn evaluate(deps: &EngineDeps, event_id: Uuid, defaults: Defaults) -> Result<(), String> {
    let mut conn = deps.db.get().await.map_err(|e| e.to_string())?;
    let tx = conn.transaction().await.map_err(|e| e.to_string())?;
    let created = engine::evaluate(&tx, event_id, defaults)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    for suggestion in created {
        tracing::info!(%event_id, suggestion_id = %suggestion.id, title = %suggestion.title, "rule fired");
        match serde_json::to_value(&suggestion) {
            Ok(read) => suggestions::publish(&deps.hubs, suggestion.organization_id, read),
            Err(e) => tracing::error!(error = %e, "suggestion not serializable for its stream"),
        }
    }
    Ok(())
}

/// Evaluates a recorded event; a failure leaves it for the table read (so it never stops
/// the work around it: the rest of a tick, say).
async fn evaluate_or_leave(deps: &EngineDeps, event_id: Uuid, defaults: Defaults) {
    if let Err(e) = evaluate(deps, event_id, defaults).await {
        tracing::warn!(%event_id, error = %e, "event not evaluated; retried later");
    }
}

/// The reader's connection of its own, for blocking reads (pooled ones time out in 500 ms).
async fn stream_connection(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_millis(READ_BLOCK_MS + 5_000)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())
}

/// Creates the group (reading from the stream's start, so entries added before any
/// consumer existed are read too) unless it exists.
async fn ensure_group(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Result<(), String> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Reads new entries for ever; returns why it stopped.
async fn read_stream(deps: EngineDeps, url: String, defaults: Defaults) -> String {
    let run = async {
        let stream: String = deps.bus.inner.stream().await?;
        let mut conn = stream_connection(&url).await?;
        ensure_group(&mut conn, &stream).await?;
        loop {
            let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&deps.consumer)
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(READ_BLOCK_MS)
                .arg("STREAMS")
                .arg(&stream)
                .arg(">")
                .query_async(&mut conn)
                .await
                .map_err(|e| {
                    if e.code() == Some("NOGROUP") {
                        "the consumer group is gone (Redis flushed or restarted empty)".to_string()
                    } else {
                        e.to_string()
                    }
                })?;
            let entries = reply
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .unwrap_or_default();
            handle_entries(&deps, &mut conn, &stream, entries, defaults).await?;
        }
    };
    let stopped: Result<std::convert::Infallible, String> = run.await;
    match stopped {
        Err(e) => e,
    }
}

/// Evaluates entries, acknowledging each evaluated one (an entry whose evaluation failed
/// stays pending and is claimed again later).
async fn handle_entries(
    deps: &EngineDeps,
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    entries: Vec<StreamId>,
    defaults: Defaults,
) -> Result<(), String> {
    for entry in entries {
        let event_id = entry
            .get::<String>("event_id")
            .and_then(|s| s.parse::<Uuid>().ok());
        let done = match event_id {
            Some(id) => match evaluate(deps, id, defaults).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(event_id = %id, error = %e, "event not evaluated; it stays pending");
                    false
                }
            },
            None => true,
        };
        if done {
            redis::cmd("XACK")
                .arg(stream)
                .arg(GROUP)
                .arg(&entry.id)
                .query_async::<()>(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Takes over entries pending longer than PROACTIVITY_RECOVER_AFTER_SECONDS (their consumer
/// died, or failed to evaluate them) and evaluates them.
async fn claim_stale(
    deps: &EngineDeps,
    pool: &RedisPool,
    defaults: Defaults,
) -> Result<(), String> {
    let stream = deps.bus.inner.stream().await?;
    // A pooled connection: these commands do not block.
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    ensure_group(&mut conn, &stream).await?;
    let idle_ms = deps.settings.recover_after.as_millis() as u64;
    let mut start = "0-0".to_string();
    loop {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&stream)
            .arg(GROUP)
            .arg(&deps.consumer)
            .arg(idle_ms)
            .arg(&start)
            .arg("COUNT")
            .arg(100)
            .query_async(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        if !reply.claimed.is_empty() {
            tracing::info!(
                entries = reply.claimed.len(),
                "claimed events another consumer left pending"
            );
        }
        handle_entries(deps, &mut conn, &stream, reply.claimed, defaults).await?;
        if reply.next_stream_id == "0-0" {
            return Ok(());
        }
        start = reply.next_stream_id;
    }
}

/// The table side of housekeeping (every instance running an engine does it; each step
/// is claimed row by row, so two engines never do the same work twice).
async fn sweep(deps: &EngineDeps, defaults: Defaults) -> Result<(), String> {
    let fail = |e: DomainError| e.to_string();
    let after = deps.settings.recover_after.as_secs_f64();
    // Events the bus lost (or whose evaluator died).
    let overdue = {
        let conn = deps.db.get().await.map_err(|e| e.to_string())?;
        engine::overdue_events(&*conn, after, BATCH)
            .await
            .map_err(fail)?
    };
    if !overdue.is_empty() {
        tracing::info!(
            events = overdue.len(),
            "evaluating events the bus did not deliver"
        );
    }
    for id in overdue {
        evaluate_or_leave(deps, id, defaults).await;
    }
    // Agents gone quiet.
    let quiet = {
        let mut conn = deps.db.get().await.map_err(|e| e.to_string())?;
        let tx = conn.transaction().await.map_err(|e| e.to_string())?;
        let events = producers::agents_gone_quiet(&tx, (OFFLINE_AFTER_MINUTES * 60) as f64, BATCH)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(|e| e.to_string())?;
        events
    };
    for event in quiet {
        evaluate_or_leave(deps, event.id, defaults).await;
    }
    // The hourly and daily ticks, once per deployment.
    let due = {
        let conn = deps.db.get().await.map_err(|e| e.to_string())?;
        producers::claim_ticks(&*conn).await.map_err(fail)?
    };
    for kind in due {
        tick(deps, kind, defaults).await?;
    }
    // Expiry and retention, a batch at a time.
    let conn = deps.db.get().await.map_err(|e| e.to_string())?;
    while stored::expire_due(&*conn, BATCH).await.map_err(fail)? == BATCH as u64 {}
    while events::delete_older_than(&*conn, deps.settings.event_ttl_days, BATCH * 10)
        .await
        .map_err(fail)?
        == (BATCH * 10) as u64
    {}
    Ok(())
}

/// One tick: an event per organization, each in its own transaction, evaluated here.
async fn tick(deps: &EngineDeps, kind: &str, defaults: Defaults) -> Result<(), String> {
    tracing::info!(tick = kind, "recording the tick for every organization");
    let mut after = None;
    loop {
        let orgs = {
            let conn = deps.db.get().await.map_err(|e| e.to_string())?;
            producers::organizations_after(&*conn, after, BATCH)
                .await
                .map_err(|e| e.to_string())?
        };
        let Some(last) = orgs.last().copied() else {
            return Ok(());
        };
        for org in orgs {
            let conn = deps.db.get().await.map_err(|e| e.to_string())?;
            let event = producers::cron_tick(&*conn, org, kind)
                .await
                .map_err(|e| e.to_string())?;
            evaluate_or_leave(deps, event.id, defaults).await;
        }
        after = Some(last);
    }
}
