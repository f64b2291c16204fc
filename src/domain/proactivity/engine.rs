//! The rule engine's one step (domain.md §B5, done right): evaluate one recorded event
//! against the organization's enabled rules for its type, once; the pipelines it triggers
//! start then too.
//!
//! "Once" is the event row: evaluation locks it (`SKIP LOCKED`: another evaluator has it),
//! and stamps `evaluated_at` in the transaction that writes the suggestions, so an event
//! delivered twice (claimed from a dead consumer, read again from the table after Redis lost
//! it) fires nothing the second time. A rule's cooldown is checked and renewed by one
//! `UPDATE` of the rule row, which holds across instances.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::proactivity::actions;
use crate::domain::proactivity::events::AgentEvent;
use crate::domain::proactivity::rules::{self, Rule};
use crate::domain::proactivity::suggestions::{self, NewSuggestion, Suggestion};
use crate::domain::DomainResult;

/// The settings evaluation reads.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// `PROACTIVITY_RULE_COOLDOWN_SECONDS`: the cooldown of a rule whose own is 0.
    pub cooldown_seconds: i32,
    /// `PROACTIVITY_SUGGESTION_EXPIRY_HOURS`.
    pub expiry_hours: i32,
}

/// Evaluates the event if nobody has: the suggestions its rules created (empty when it was
/// evaluated already, is being evaluated elsewhere, or is gone).
pub async fn evaluate(
    client: &impl GenericClient,
    event_id: Uuid,
    defaults: Defaults,
) -> DomainResult<Vec<Suggestion>> {
    let Some(row) = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM agent_events e WHERE e.id = $1 AND e.evaluated_at IS NULL \
                 FOR UPDATE SKIP LOCKED",
                columns = AgentEvent::COLUMNS
            ),
            &[&event_id],
        )
        .await?
    else {
        return Ok(Vec::new());
    };
    let event = AgentEvent::from_row(&row)?;
    let candidates = client
        .query(
            &format!(
                "SELECT {columns} FROM proactive_rules r WHERE r.organization_id = $1 AND r.is_enabled \
                   AND r.trigger_event = $2 AND (r.board_id IS NULL OR r.board_id = $3) \
                 ORDER BY r.created_at, r.id",
                columns = Rule::COLUMNS
            ),
            &[&event.organization_id, &event.event_type, &event.board_id],
        )
        .await?;
    let mut created = Vec::new();
    for row in &candidates {
        let rule = Rule::from_row(row)?;
        if !rules::matches(&rules::conditions_of(&rule.conditions), &event.payload) {
            continue;
        }
        // Rows are taken in creation order by every evaluator, so two never wait on each
        // other in opposite orders.
        let fired = client
            .query_opt(
                "UPDATE proactive_rules SET last_fired_at = now() \
                 WHERE id = $1 AND is_enabled AND (last_fired_at IS NULL OR last_fired_at <= now() - \
                   make_interval(secs => CASE WHEN cooldown_seconds > 0 THEN cooldown_seconds ELSE $2::int END)) \
                 RETURNING id",
                &[&rule.id, &defaults.cooldown_seconds],
            )
            .await?;
        if fired.is_none() {
            continue;
        }
        let action = actions::plan(client, &rule, &event).await?;
        created.push(
            suggestions::insert(
                client,
                suggestion_of(&rule, &event, action),
                defaults.expiry_hours,
            )
            .await?,
        );
    }
    // Pipelines triggered by the event start in the same transaction: once per event too.
    let payload = Value::Object(event.payload.clone());
    let trigger = crate::domain::pipelines::triggers::Event {
        id: event.id,
        organization_id: event.organization_id,
        event_type: &event.event_type,
        board_id: event.board_id,
        task_id: event.task_id,
        payload: &payload,
    };
    crate::domain::pipelines::triggers::on_event(client, trigger).await?;
    client
        .execute(
            "UPDATE agent_events SET evaluated_at = now() WHERE id = $1",
            &[&event.id],
        )
        .await?;
    Ok(created)
}

/// What a fired rule suggests (§B5's defaults where its config says nothing), about the
/// event's board and agent, citing the event (which the reference never did).
fn suggestion_of(rule: &Rule, event: &AgentEvent, action: Option<Value>) -> NewSuggestion {
    let config = &rule.action_config;
    let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_string);
    let mut payload = Map::new();
    payload.insert("rule_id".into(), json!(rule.id));
    payload.insert("event_type".into(), json!(event.event_type));
    payload.insert("event_payload".into(), Value::Object(event.payload.clone()));
    if let Some(task_id) = event.task_id {
        payload.insert("task_id".into(), json!(task_id));
    }
    if let Some(action) = action {
        payload.insert("action".into(), action);
    }
    NewSuggestion {
        organization_id: event.organization_id,
        board_id: event.board_id,
        agent_id: event.agent_id,
        suggestion_type: text("suggestion_type").unwrap_or_else(|| rule.action_type.clone()),
        title: text("title")
            .unwrap_or_else(|| format!("[{}] triggered by {}", rule.name, event.event_type)),
        description: text("description"),
        confidence: config
            .get("confidence")
            .and_then(Value::as_f64)
            .unwrap_or(0.7),
        priority: text("priority").unwrap_or_else(|| "medium".into()),
        payload: Some(payload),
        source_event_id: Some(event.id),
    }
}

/// Events nobody evaluated within `after_seconds` of their commit (their bus message was
/// lost, or their evaluator died), oldest first.
pub async fn overdue_events(
    client: &impl GenericClient,
    after_seconds: f64,
    limit: i64,
) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT id FROM agent_events WHERE evaluated_at IS NULL \
               AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2",
            &[&after_seconds, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?)
}
