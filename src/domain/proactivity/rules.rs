//! Proactive rules (domain.md §B1, §B2, §B5, §B6): what the engine tests an event against,
//! and what a rule that matches produces. Unlike the reference, a rule is checked when it
//! is written (its board is the organization's; its conditions name known operators and,
//! for the events the system emits, known fields; its action and action config are ones
//! the engine can carry out), and a rule of a board sees only that board's events.
//!
//! Builtin rules are seeded by the database for every organization (the
//! `organizations_builtin_rules` trigger, `schema/V0033`); they can be toggled and edited,
//! never deleted.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::support::access;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::Invalid;
use crate::domain::{DomainError, DomainResult};

/// The one action a rule takes: the reference's action types all create a suggestion (and
/// `send_notification` / `auto_assign` are documented there but do nothing). What is
/// *done* comes when a user accepts the suggestion (`actions`).
pub const ACTION_TYPES: [&str; 1] = ["create_suggestion"];
pub const OPERATORS: [&str; 8] = ["eq", "ne", "gt", "lt", "gte", "lte", "in", "contains"];
pub const PRIORITIES: [&str; 4] = ["low", "medium", "high", "critical"];
/// A week: longer cooldowns are almost certainly a unit mistake.
const MAX_COOLDOWN_SECONDS: i64 = 7 * 24 * 3600;

/// The events the system emits, with the payload fields rules may test. Events agents post
/// (`POST /agent/events`) carry whatever they chose, so their fields are not checked.
pub const SYSTEM_EVENTS: &[(&str, &[&str])] = &[
    (
        "task.created",
        &[
            "title",
            "status",
            "priority",
            "assigned_agent_id",
            "has_assignee",
        ],
    ),
    (
        "task.status_changed",
        &[
            "title",
            "old_status",
            "new_status",
            "priority",
            "assigned_agent_id",
            "has_dependents",
            "unblocked_count",
            "needs_followup",
            "wip_exceeded",
            "in_progress_count",
            "wip_limit",
        ],
    ),
    ("task.deleted", &["task_id", "title", "status"]),
    (
        "approval.requested",
        &["approval_id", "action_type", "confidence", "task_ids"],
    ),
    (
        "approval.resolved",
        &["approval_id", "action_type", "status", "task_ids"],
    ),
    ("agent.heartbeat", &["agent_name", "status", "idle_minutes"]),
    ("agent.online", &["agent_name", "previous_status"]),
    (
        "agent.offline",
        &["agent_name", "previous_status", "reason"],
    ),
    (
        "gateway.online",
        &["gateway_id", "gateway_name", "previous_status", "reason"],
    ),
    (
        "gateway.offline",
        &["gateway_id", "gateway_name", "previous_status", "reason"],
    ),
    (
        "cron.hourly",
        &["has_overdue_tasks", "overdue_count", "stale_review_count"],
    ),
    (
        "cron.daily",
        &["has_overdue_tasks", "overdue_count", "stale_review_count"],
    ),
];

const NAME_MAX: usize = 256;
const TRIGGER_MAX: usize = 128;
const SUGGESTION_TYPE_MAX: usize = 64;
const TITLE_MAX: usize = 512;

crate::db::record! {
    /// `ProactiveRuleRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Rule in "r" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub board_id: Option<Uuid>,
        pub name: String,
        pub description: Option<String>,
        pub trigger_event: String,
        #[schema(value_type = Object)]
        pub conditions: Map<String, Value> as Json<Map<String, Value>>,
        pub action_type: String,
        #[schema(value_type = Object)]
        pub action_config: Map<String, Value> as Json<Map<String, Value>>,
        pub is_enabled: bool,
        pub is_builtin: bool,
        pub cooldown_seconds: i32,
        pub last_fired_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

fn default_cooldown() -> i64 {
    3600
}

/// `ProactiveRuleCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RuleCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub trigger_event: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub conditions: Map<String, Value>,
    pub action_type: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub action_config: Map<String, Value>,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    /// 0: `PROACTIVITY_RULE_COOLDOWN_SECONDS`.
    #[serde(default = "default_cooldown")]
    pub cooldown_seconds: i64,
}

/// `ProactiveRuleUpdate`: a null or absent field is left as it is (as in the reference);
/// the trigger, the action type and the board are fixed at creation.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RuleUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub conditions: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub action_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub cooldown_seconds: Option<i64>,
}

/// One test of a rule's conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: String,
    pub op: String,
    pub value: Value,
}

/// The tests of `conditions` (`{"rules": [{field, op, value}, ...]}`), all of which must
/// hold; none (or no `rules`) always holds. Only called on stored conditions, which were
/// checked when written.
pub fn conditions_of(conditions: &Map<String, Value>) -> Vec<Condition> {
    let Some(Value::Array(rules)) = conditions.get("rules") else {
        return Vec::new();
    };
    rules
        .iter()
        .filter_map(|rule| {
            Some(Condition {
                field: rule.get("field")?.as_str()?.to_string(),
                op: rule
                    .get("op")
                    .and_then(Value::as_str)
                    .unwrap_or("eq")
                    .to_string(),
                value: rule.get("value").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// Whether every condition holds for the event's payload (§B5: top-level fields, ANDed).
/// A comparison of values of different kinds is false, never an error.
pub fn matches(conditions: &[Condition], payload: &Map<String, Value>) -> bool {
    conditions.iter().all(|c| {
        let actual = payload.get(&c.field).unwrap_or(&Value::Null);
        holds(&c.op, actual, &c.value)
    })
}

fn holds(op: &str, actual: &Value, expected: &Value) -> bool {
    match op {
        "eq" => same(actual, expected),
        "ne" => !same(actual, expected),
        "gt" => order(actual, expected) == Some(Ordering::Greater),
        "lt" => order(actual, expected) == Some(Ordering::Less),
        "gte" => matches!(
            order(actual, expected),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        "lte" => matches!(
            order(actual, expected),
            Some(Ordering::Less | Ordering::Equal)
        ),
        "in" => contains(expected, actual),
        "contains" => contains(actual, expected),
        _ => false,
    }
}

/// JSON equality, with numbers compared by value (1 equals 1.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Numbers by value, strings by their characters; anything else has no order.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Python's `needle in haystack` for JSON: an item of a list, a substring of a string, a
/// key of an object.
fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Array(items), _) => items.iter().any(|item| same(item, needle)),
        (Value::String(text), Value::String(part)) => text.contains(part.as_str()),
        (Value::Object(map), Value::String(key)) => map.contains_key(key),
        _ => false,
    }
}

/// Checks `conditions` for a rule on `trigger_event`: only a `rules` list of
/// `{field, op?, value}` with a known operator, a field the event carries (for events of
/// the system), a list for `in` and a number or string for the orderings.
fn check_conditions(invalid: &mut Invalid, trigger_event: &str, conditions: &Map<String, Value>) {
    let fields = SYSTEM_EVENTS
        .iter()
        .find(|(event, _)| *event == trigger_event)
        .map(|(_, fields)| *fields);
    let mut problem =
        |msg: String, input: &Value| invalid.value_error("conditions", &msg, input.clone());
    if let Some(key) = conditions.keys().find(|k| *k != "rules") {
        return problem(
            format!("unknown key `{key}`: conditions are {{\"rules\": [{{\"field\", \"op\", \"value\"}}]}}"),
            &Value::Object(conditions.clone()),
        );
    }
    let rules = match conditions.get("rules") {
        None | Some(Value::Null) => return,
        Some(Value::Array(rules)) => rules,
        Some(other) => return problem("`rules` must be a list".into(), other),
    };
    for (i, rule) in rules.iter().enumerate() {
        let Some(rule) = rule.as_object() else {
            return problem(format!("rules[{i}] must be an object"), rule);
        };
        if let Some(key) = rule
            .keys()
            .find(|k| !["field", "op", "value"].contains(&k.as_str()))
        {
            return problem(
                format!("rules[{i}] has an unknown key `{key}`"),
                &json!(rule),
            );
        }
        let Some(field) = rule
            .get("field")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
        else {
            return problem(
                format!("rules[{i}].field must be a non-empty string"),
                &json!(rule),
            );
        };
        if let Some(known) = fields {
            if !known.contains(&field) {
                return problem(
                    format!(
                        "rules[{i}].field `{field}` is not a field of {trigger_event} events (known: {})",
                        known.join(", ")
                    ),
                    &json!(rule),
                );
            }
        }
        let op = match rule.get("op") {
            None | Some(Value::Null) => "eq",
            Some(Value::String(op)) if OPERATORS.contains(&op.as_str()) => op,
            Some(other) => {
                return problem(
                    format!("rules[{i}].op must be one of {}", OPERATORS.join(", ")),
                    other,
                )
            }
        };
        let value = rule.get("value").unwrap_or(&Value::Null);
        let fits = match op {
            "in" => value.is_array() || value.is_string(),
            "gt" | "lt" | "gte" | "lte" => value.is_number() || value.is_string(),
            _ => true,
        };
        if !fits {
            return problem(
                format!("rules[{i}].value does not fit the operator `{op}`"),
                value,
            );
        }
    }
}

/// Checks `action_config`: the suggestion a rule creates (`suggestion_type`, `title`,
/// `description`, `confidence` in [0, 1], `priority`); any other key, or a null where the
/// suggestion needs a value, is refused (in the reference it failed at every firing).
fn check_action_config(invalid: &mut Invalid, config: &Map<String, Value>) {
    for (key, value) in config {
        let ok = match key.as_str() {
            "suggestion_type" => value
                .as_str()
                .is_some_and(|s| !s.trim().is_empty() && s.chars().count() <= SUGGESTION_TYPE_MAX),
            "title" => value
                .as_str()
                .is_some_and(|s| !s.trim().is_empty() && s.chars().count() <= TITLE_MAX),
            "description" => value.is_null() || value.is_string(),
            "confidence" => value.as_f64().is_some_and(|c| (0.0..=1.0).contains(&c)),
            "priority" => value.as_str().is_some_and(|p| PRIORITIES.contains(&p)),
            _ => {
                invalid.value_error(
                    "action_config",
                    &format!(
                        "unknown key `{key}`: known are suggestion_type, title, description, confidence, priority"
                    ),
                    Value::Object(config.clone()),
                );
                continue;
            }
        };
        if !ok {
            let rule = match key.as_str() {
                "suggestion_type" => {
                    format!("a non-empty string of at most {SUGGESTION_TYPE_MAX} characters")
                }
                "title" => format!("a non-empty string of at most {TITLE_MAX} characters"),
                "description" => "a string or null".into(),
                "confidence" => "a number from 0 to 1".into(),
                _ => format!("one of {}", PRIORITIES.join(", ")),
            };
            invalid.value_error(
                "action_config",
                &format!("`{key}` must be {rule}"),
                value.clone(),
            );
        }
    }
}

fn check_cooldown(invalid: &mut Invalid, seconds: i64) -> i32 {
    if !(0..=MAX_COOLDOWN_SECONDS).contains(&seconds) {
        invalid.value_error(
            "cooldown_seconds",
            &format!("must be from 0 (the default cooldown) to {MAX_COOLDOWN_SECONDS}"),
            json!(seconds),
        );
    }
    seconds.clamp(0, MAX_COOLDOWN_SECONDS) as i32
}

fn check_name(invalid: &mut Invalid, name: &str) -> String {
    let trimmed = invalid.non_empty("name", name).unwrap_or_default();
    invalid.max_chars("name", &trimmed, NAME_MAX);
    trimmed
}

fn admin(principal: &Principal) -> DomainResult<()> {
    access::require_org_admin(&principal.member)
}

/// The organization's rules, oldest first (builtin ones first among equals).
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    page: PageParams,
) -> DomainResult<Page<Rule>> {
    fetch_page(
        client,
        Rule::COLUMNS,
        "FROM proactive_rules r WHERE r.organization_id = $1",
        "r.created_at, r.is_builtin DESC, r.id",
        &[&principal.organization.id],
        page,
        Rule::from_row,
    )
    .await
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: RuleCreate,
) -> DomainResult<Rule> {
    admin(principal)?;
    let mut invalid = Invalid::default();
    let name = check_name(&mut invalid, &input.name);
    let trigger = invalid
        .non_empty("trigger_event", &input.trigger_event)
        .unwrap_or_default();
    invalid.max_chars("trigger_event", &trigger, TRIGGER_MAX);
    if !ACTION_TYPES.contains(&input.action_type.as_str()) {
        invalid.value_error(
            "action_type",
            &format!("must be one of {}", ACTION_TYPES.join(", ")),
            json!(input.action_type),
        );
    }
    check_conditions(&mut invalid, &trigger, &input.conditions);
    check_action_config(&mut invalid, &input.action_config);
    let cooldown = check_cooldown(&mut invalid, input.cooldown_seconds);
    if let Some(board_id) = input.board_id {
        let found = client
            .query_opt(
                "SELECT 1 FROM boards WHERE id = $1 AND organization_id = $2",
                &[&board_id, &principal.organization.id],
            )
            .await?;
        if found.is_none() {
            invalid.value_error(
                "board_id",
                "no board of the organization has this id",
                json!(board_id),
            );
        }
    }
    invalid.finish()?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO proactive_rules AS r (id, organization_id, board_id, name, description, \
                   trigger_event, conditions, action_type, action_config, cooldown_seconds) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {columns}",
                columns = Rule::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &principal.organization.id,
                &input.board_id,
                &name,
                &input.description,
                &trigger,
                &Json(&input.conditions),
                &input.action_type,
                &Json(&input.action_config),
                &cooldown,
            ],
        )
        .await?;
    Ok(Rule::from_row(&row)?)
}

/// The rule of the organization, locked for a change (404 for another organization's).
async fn locked(
    client: &impl GenericClient,
    principal: &Principal,
    id: Uuid,
) -> DomainResult<Rule> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM proactive_rules r WHERE r.id = $1 AND r.organization_id = $2 FOR NO KEY UPDATE",
                columns = Rule::COLUMNS
            ),
            &[&id, &principal.organization.id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(Rule::from_row(&row)?)
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    id: Uuid,
    patch: RuleUpdate,
) -> DomainResult<Rule> {
    admin(principal)?;
    let rule = locked(client, principal, id).await?;
    let mut invalid = Invalid::default();
    let name = patch.name.as_deref().map(|n| check_name(&mut invalid, n));
    if let Some(conditions) = &patch.conditions {
        check_conditions(&mut invalid, &rule.trigger_event, conditions);
    }
    if let Some(config) = &patch.action_config {
        check_action_config(&mut invalid, config);
    }
    let cooldown = patch
        .cooldown_seconds
        .map(|s| check_cooldown(&mut invalid, s));
    invalid.finish()?;
    let row = client
        .query_one(
            &format!(
                "UPDATE proactive_rules r SET name = COALESCE($2, r.name), \
                   description = COALESCE($3, r.description), conditions = COALESCE($4, r.conditions), \
                   action_config = COALESCE($5, r.action_config), \
                   cooldown_seconds = COALESCE($6, r.cooldown_seconds), updated_at = now() \
                 WHERE r.id = $1 RETURNING {columns}",
                columns = Rule::COLUMNS
            ),
            &[
                &id,
                &name,
                &patch.description,
                &patch.conditions.as_ref().map(Json),
                &patch.action_config.as_ref().map(Json),
                &cooldown,
            ],
        )
        .await?;
    Ok(Rule::from_row(&row)?)
}

/// Deletes a rule the organization made (a builtin one: 409, as in the reference).
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    id: Uuid,
) -> DomainResult<()> {
    admin(principal)?;
    let rule = locked(client, principal, id).await?;
    if rule.is_builtin {
        return Err(DomainError::conflict(
            "Builtin rules cannot be deleted. Use the toggle endpoint to disable them.",
        ));
    }
    client
        .execute("DELETE FROM proactive_rules WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

/// Flips `is_enabled`.
pub async fn toggle(
    client: &impl GenericClient,
    principal: &Principal,
    id: Uuid,
) -> DomainResult<Rule> {
    admin(principal)?;
    locked(client, principal, id).await?;
    let row = client
        .query_one(
            &format!(
                "UPDATE proactive_rules r SET is_enabled = NOT r.is_enabled, updated_at = now() \
                 WHERE r.id = $1 RETURNING {columns}",
                columns = Rule::COLUMNS
            ),
            &[&id],
        )
        .await?;
    Ok(Rule::from_row(&row)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn rules(v: Value) -> Vec<Condition> {
        conditions_of(&payload(json!({ "rules": v })))
    }

    #[test]
    fn no_rules_always_hold() {
        assert!(matches(&conditions_of(&Map::new()), &Map::new()));
        assert!(matches(&rules(json!([])), &payload(json!({"x": 1}))));
    }

    #[test]
    fn every_operator_as_the_reference_reads_it() {
        let p = payload(json!({"n": 3, "s": "done", "list": ["a", "b"], "flag": true}));
        let case = |field: &str, op: &str, value: Value| {
            matches(
                &rules(json!([{"field": field, "op": op, "value": value}])),
                &p,
            )
        };
        assert!(case("n", "eq", json!(3.0)));
        assert!(case("flag", "eq", json!(true)));
        assert!(case("s", "ne", json!("todo")));
        assert!(case("n", "gt", json!(2)) && !case("n", "gt", json!(3)));
        assert!(case("n", "gte", json!(3)) && case("n", "lte", json!(3)));
        assert!(case("n", "lt", json!(4)));
        assert!(case("s", "in", json!(["done", "review"])));
        assert!(case("list", "contains", json!("b")));
        assert!(case("s", "contains", json!("on")));
        // Different kinds, or a missing field, never compare (the reference's None > 0).
        assert!(!case("missing", "gt", json!(0)));
        assert!(!case("s", "gt", json!(1)));
        assert!(!case("n", "whatever", json!(3)));
        // op defaults to eq; all entries are ANDed.
        assert!(matches(&rules(json!([{"field": "n", "value": 3}])), &p));
        assert!(!matches(
            &rules(json!([{"field": "n", "value": 3}, {"field": "s", "value": "todo"}])),
            &p
        ));
    }

    fn errors(trigger: &str, conditions: Value, config: Value) -> usize {
        let mut invalid = Invalid::default();
        check_conditions(&mut invalid, trigger, &payload(conditions));
        check_action_config(&mut invalid, &payload(config));
        match invalid.finish() {
            Ok(()) => 0,
            Err(DomainError::Unprocessable(Value::Array(list))) => list.len(),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn conditions_and_configs_are_checked() {
        let ok = json!({"rules": [{"field": "idle_minutes", "op": "gte", "value": 60}]});
        assert_eq!(errors("agent.heartbeat", ok, json!({"priority": "low"})), 0);
        // Any field for events agents post.
        assert_eq!(
            errors(
                "custom.thing",
                json!({"rules": [{"field": "x", "value": 1}]}),
                json!({})
            ),
            0
        );
        assert_eq!(
            errors(
                "agent.heartbeat",
                json!({"rules": [{"field": "nope", "value": 1}]}),
                json!({})
            ),
            1
        );
        assert_eq!(
            errors(
                "x",
                json!({"rules": [{"field": "a", "op": "like", "value": 1}]}),
                json!({})
            ),
            1
        );
        assert_eq!(
            errors(
                "x",
                json!({"rules": [{"field": "a", "op": "in", "value": 1}]}),
                json!({})
            ),
            1
        );
        assert_eq!(errors("x", json!({"rules": {"field": "a"}}), json!({})), 1);
        assert_eq!(errors("x", json!({"other": []}), json!({})), 1);
        assert_eq!(
            errors(
                "x",
                json!({}),
                json!({"title": null, "confidence": 2, "x": 1})
            ),
            3
        );
    }
}
