//! A pipeline's stages (domain.md §C2, checked): what each stage object holds, the checks
//! made when a pipeline is written (422 naming the stage and its field), and the condition
//! language of `condition` stages.
//!
//! Stages are stored as the client sent them (the reference's free-form objects); this
//! module reads them. Beyond the reference's keys a stage may carry `on_failure_stage_id`
//! (where a failed, rejected or timed-out stage goes instead of failing the run) and, in its
//! `config`, `timeout_hours` / `timeout_seconds` (its own timeout).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::domain::support::validation::Invalid;

const MAX_STAGES: usize = 100;
const MAX_ID_CHARS: usize = 128;
pub const WEBHOOK_METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];
pub const MAX_WEBHOOK_ATTEMPTS: i64 = 10;
pub const DEFAULT_WEBHOOK_ATTEMPTS: i64 = 3;
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: i64 = 30;
const MAX_REQUEST_TIMEOUT_SECONDS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageType {
    AiTask,
    Approval,
    Manual,
    Webhook,
    Condition,
}

impl StageType {
    fn parse(text: &str) -> Option<StageType> {
        Some(match text {
            "ai_task" => StageType::AiTask,
            "approval" => StageType::Approval,
            "manual" => StageType::Manual,
            "webhook" => StageType::Webhook,
            "condition" => StageType::Condition,
            _ => return None,
        })
    }
}

/// A `condition` stage's test: the literals `true` / `false`, or `path == literal` /
/// `path != literal` where `path` is dotted from `stage_results` or `input_data` (the
/// reference's language, with `!=`).
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    Literal(bool),
    Compare {
        path: Vec<String>,
        equal: bool,
        literal: String,
    },
}

impl Expression {
    pub fn parse(text: &str) -> Result<Expression, String> {
        let text = text.trim();
        match text {
            "true" => return Ok(Expression::Literal(true)),
            "false" => return Ok(Expression::Literal(false)),
            _ => {}
        }
        let (left, right, equal) = if let Some((l, r)) = text.split_once("!=") {
            (l, r, false)
        } else if let Some((l, r)) = text.split_once("==") {
            (l, r, true)
        } else {
            return Err(
                "expression must be true, false, `path == value` or `path != value`".into(),
            );
        };
        let path: Vec<String> = left.trim().split('.').map(str::to_string).collect();
        if !matches!(path[0].as_str(), "stage_results" | "input_data")
            || path.iter().any(|p| p.is_empty())
        {
            return Err(
                "the left side must be a dotted path from stage_results or input_data".into(),
            );
        }
        let right = right.trim();
        let literal = ['"', '\'']
            .iter()
            .find_map(|q| right.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
            .unwrap_or(right);
        if literal.contains("==") || literal.contains("!=") {
            return Err("only one comparison is allowed".into());
        }
        Ok(Expression::Compare {
            path,
            equal,
            literal: literal.to_string(),
        })
    }

    /// The test against the run's `{stage_results, input_data}`. A missing path compares as
    /// absent (equal to nothing).
    pub fn holds(&self, context: &Value) -> bool {
        match self {
            Expression::Literal(b) => *b,
            Expression::Compare {
                path,
                equal,
                literal,
            } => {
                let found = path.iter().try_fold(context, |v, key| v.get(key));
                let same = found.is_some_and(|v| same_as_literal(v, literal));
                same == *equal
            }
        }
    }
}

/// The reference compares `str(value)` with the literal: booleans read `True`/`true`,
/// numbers by value, null as `None`/`null`.
fn same_as_literal(value: &Value, literal: &str) -> bool {
    match value {
        Value::String(s) => s == literal,
        Value::Bool(b) => literal.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => literal
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(a, b)| a == b),
        Value::Null => matches!(literal, "None" | "null"),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// One stage, read.
#[derive(Debug, Clone)]
pub struct Stage {
    pub id: String,
    pub kind: StageType,
    pub config: Map<String, Value>,
    pub next: Option<String>,
    pub on_failure: Option<String>,
    /// Condition stages: the test and the targets (`None`: the run ends there).
    pub condition: Option<(Expression, Option<String>, Option<String>)>,
}

impl Stage {
    pub fn text(&self, key: &str) -> Option<&str> {
        self.config
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    }

    pub fn uuid(&self, key: &str) -> Option<Uuid> {
        self.text(key).and_then(|s| Uuid::parse_str(s).ok())
    }

    pub fn int(&self, key: &str, default: i64) -> i64 {
        self.config
            .get(key)
            .and_then(Value::as_i64)
            .unwrap_or(default)
    }

    /// How long the stage may take: its `timeout_seconds`, else its `timeout_hours`, else
    /// the deployment's default.
    pub fn timeout(&self, default_hours: f64) -> Duration {
        let seconds = match (
            self.config.get("timeout_seconds").and_then(Value::as_f64),
            self.config.get("timeout_hours").and_then(Value::as_f64),
        ) {
            (Some(s), _) => s,
            (None, Some(h)) => h * 3600.0,
            (None, None) => default_hours * 3600.0,
        };
        Duration::from_secs_f64(seconds.max(1.0))
    }

    /// Where the run goes after this stage ends well; for a condition, by its test.
    pub fn next_after(&self, context: &Value) -> (Option<String>, Option<bool>) {
        match &self.condition {
            Some((test, when_true, when_false)) => {
                let result = test.holds(context);
                let target = if result { when_true } else { when_false };
                (target.clone(), Some(result))
            }
            None => (self.next.clone(), None),
        }
    }
}

/// The stages of a stored pipeline (written through [`check`], so they read).
pub fn read(stages: &Value) -> Vec<Stage> {
    let mut invalid = Invalid::default();
    check(
        stages.as_array().map(Vec::as_slice).unwrap_or(&[]),
        &mut invalid,
    )
}

pub fn find<'a>(stages: &'a [Stage], id: &str) -> Option<&'a Stage> {
    stages.iter().find(|s| s.id == id)
}

fn optional_id(
    invalid: &mut Invalid,
    object: &Map<String, Value>,
    key: &str,
    loc: &[Value],
) -> Option<String> {
    match object.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            invalid.value_error_at(
                &[loc, &[json!(key)]].concat(),
                "must be a stage id or null",
                other.clone(),
            );
            None
        }
    }
}

/// Checks the stages a client wrote: each an object with a unique `id`, a known `type`,
/// targets that exist, a config that fits its type, and no cycle that does not pass through
/// a condition stage (a loop must be able to end). Every problem is one error naming the
/// stage's index and field.
pub fn check(stages: &[Value], invalid: &mut Invalid) -> Vec<Stage> {
    if stages.len() > MAX_STAGES {
        invalid.value_error_at(
            &[json!("stages")],
            &format!("a pipeline has at most {MAX_STAGES} stages"),
            json!(stages.len()),
        );
        return Vec::new();
    }
    let mut read = Vec::new();
    let mut seen = HashSet::new();
    for (i, stage) in stages.iter().enumerate() {
        let loc = [json!("stages"), json!(i)];
        let Some(object) = stage.as_object() else {
            invalid.value_error_at(&loc, "a stage must be an object", stage.clone());
            continue;
        };
        let at = |key: &str| [loc[0].clone(), loc[1].clone(), json!(key)];
        let id = match object.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_ID_CHARS => {
                s.clone()
            }
            other => {
                invalid.value_error_at(
                    &at("id"),
                    &format!("a stage needs an id (1 to {MAX_ID_CHARS} characters)"),
                    other.cloned().unwrap_or(Value::Null),
                );
                continue;
            }
        };
        if !seen.insert(id.clone()) {
            invalid.value_error_at(
                &at("id"),
                &format!("stage id {id:?} is used twice"),
                json!(id),
            );
        }
        let kind = match object
            .get("type")
            .and_then(Value::as_str)
            .and_then(StageType::parse)
        {
            Some(kind) => kind,
            None => {
                invalid.value_error_at(
                    &at("type"),
                    "type must be one of ai_task, approval, manual, webhook, condition",
                    object.get("type").cloned().unwrap_or(Value::Null),
                );
                continue;
            }
        };
        let config = match object.get("config") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                invalid.value_error_at(&at("config"), "config must be an object", other.clone());
                Map::new()
            }
        };
        check_config(invalid, kind, &config, &loc);
        let next = optional_id(invalid, object, "next_stage_id", &loc);
        let on_failure = optional_id(invalid, object, "on_failure_stage_id", &loc);
        let condition = if kind == StageType::Condition {
            read_condition(invalid, object, next.clone(), &loc)
        } else {
            None
        };
        read.push(Stage {
            id,
            kind,
            config,
            next,
            on_failure,
            condition,
        });
    }
    check_targets(invalid, &read);
    read
}

fn read_condition(
    invalid: &mut Invalid,
    object: &Map<String, Value>,
    next: Option<String>,
    loc: &[Value],
) -> Option<(Expression, Option<String>, Option<String>)> {
    let at = [loc, &[json!("condition")]].concat();
    let Some(condition) = object.get("condition").and_then(Value::as_object) else {
        invalid.value_error_at(
            &at,
            "a condition stage needs condition: {expression, true_next_stage_id?, false_next_stage_id?}",
            object.get("condition").cloned().unwrap_or(Value::Null),
        );
        return None;
    };
    let text = condition
        .get("expression")
        .and_then(Value::as_str)
        .unwrap_or("");
    let expression = match Expression::parse(text) {
        Ok(e) => e,
        Err(msg) => {
            invalid.value_error_at(
                &[at.as_slice(), &[json!("expression")]].concat(),
                &msg,
                json!(text),
            );
            return None;
        }
    };
    let when_true = optional_id(invalid, condition, "true_next_stage_id", &at).or(next);
    let when_false = optional_id(invalid, condition, "false_next_stage_id", &at);
    Some((expression, when_true, when_false))
}

fn check_config(
    invalid: &mut Invalid,
    kind: StageType,
    config: &Map<String, Value>,
    loc: &[Value],
) {
    let at = |key: &str| [loc, &[json!("config"), json!(key)]].concat();
    let positive = |invalid: &mut Invalid, key: &str, max: Option<f64>| {
        if let Some(v) = config.get(key).filter(|v| !v.is_null()) {
            let ok = v
                .as_f64()
                .is_some_and(|n| n > 0.0 && max.is_none_or(|m| n <= m));
            if !ok {
                let bound = max.map(|m| format!(" up to {m}")).unwrap_or_default();
                invalid.value_error_at(
                    &at(key),
                    &format!("must be a positive number{bound}"),
                    v.clone(),
                );
            }
        }
    };
    positive(invalid, "timeout_hours", Some(24.0 * 365.0));
    positive(invalid, "timeout_seconds", Some(86_400.0 * 365.0));
    for key in ["board_id", "agent_id"] {
        if let Some(v) = config.get(key).filter(|v| !v.is_null() && v != &&json!("")) {
            if v.as_str().and_then(|s| Uuid::parse_str(s).ok()).is_none() {
                invalid.value_error_at(&at(key), "must be a UUID", v.clone());
            }
        }
    }
    if kind != StageType::Webhook {
        return;
    }
    let url = config.get("url").and_then(Value::as_str).unwrap_or("");
    if !url.is_empty() {
        let ok = url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            invalid.value_error_at(
                &at("url"),
                "must be an http(s) URL (or empty: the stage is skipped)",
                json!(url),
            );
        }
    }
    if let Some(m) = config.get("method").filter(|v| !v.is_null()) {
        let ok = m
            .as_str()
            .is_some_and(|m| WEBHOOK_METHODS.contains(&m.to_ascii_uppercase().as_str()));
        if !ok {
            invalid.value_error_at(&at("method"), "must be POST, PUT or PATCH", m.clone());
        }
    }
    if let Some(h) = config.get("headers").filter(|v| !v.is_null()) {
        let ok = h
            .as_object()
            .is_some_and(|h| h.values().all(Value::is_string));
        if !ok {
            invalid.value_error_at(&at("headers"), "must be an object of strings", h.clone());
        }
    }
    for (key, max) in [
        ("max_attempts", MAX_WEBHOOK_ATTEMPTS),
        ("request_timeout_seconds", MAX_REQUEST_TIMEOUT_SECONDS),
    ] {
        if let Some(v) = config.get(key).filter(|v| !v.is_null()) {
            if !v.as_i64().is_some_and(|n| (1..=max).contains(&n)) {
                invalid.value_error_at(
                    &at(key),
                    &format!("must be an integer from 1 to {max}"),
                    v.clone(),
                );
            }
        }
    }
    if let Some(s) = config.get("secret").filter(|v| !v.is_null()) {
        if !s.is_string() {
            invalid.value_error_at(&at("secret"), "must be a string", s.clone());
        }
    }
}

/// Every target names a stage, and every cycle passes through a condition stage.
fn check_targets(invalid: &mut Invalid, stages: &[Stage]) {
    let index: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for (i, stage) in stages.iter().enumerate() {
        let mut targets = vec![
            ("next_stage_id", stage.next.as_ref()),
            ("on_failure_stage_id", stage.on_failure.as_ref()),
        ];
        if let Some((_, t, f)) = &stage.condition {
            targets.push(("condition.true_next_stage_id", t.as_ref()));
            targets.push(("condition.false_next_stage_id", f.as_ref()));
        }
        for (key, target) in targets {
            let Some(target) = target else { continue };
            match index.get(target.as_str()) {
                Some(&j) => edges[i].push(j),
                None => invalid.value_error_at(
                    &[json!("stages"), json!(i), json!(key)],
                    &format!("no stage has id {target:?}"),
                    json!(target),
                ),
            }
        }
    }
    // Depth-first search over the stages that are not conditions: a back edge is a loop
    // nothing can end.
    let skip: Vec<bool> = stages
        .iter()
        .map(|s| s.kind == StageType::Condition)
        .collect();
    let mut state = vec![0u8; stages.len()];
    for start in 0..stages.len() {
        if skip[start] || state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some((node, next)) = stack.pop() {
            if let Some(&to) = edges[node].get(next) {
                stack.push((node, next + 1));
                if skip[to] {
                    continue;
                }
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => {
                        invalid.value_error_at(
                            &[json!("stages"), json!(node)],
                            &format!(
                                "stage {:?} leads back to {:?}: a loop must pass through a condition stage",
                                stages[node].id, stages[to].id
                            ),
                            json!(stages[node].id),
                        );
                        return;
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(stages: Value) -> Vec<Value> {
        let mut invalid = Invalid::default();
        check(stages.as_array().unwrap(), &mut invalid);
        match invalid.finish() {
            Ok(()) => Vec::new(),
            Err(crate::domain::DomainError::Unprocessable(Value::Array(e))) => e,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn good_stages_pass_and_bad_ones_are_named() {
        assert!(errors(json!([
            {"id": "a", "type": "ai_task", "config": {"task_title": "x"}, "next_stage_id": "b"},
            {"id": "b", "type": "condition", "condition": {"expression": "stage_results.a.status == 'completed'",
              "false_next_stage_id": "a"}, "next_stage_id": "c"},
            {"id": "c", "type": "webhook", "config": {"url": "", "method": "POST", "headers": {}}}
        ]))
        .is_empty());
        let e = errors(json!([
            {"id": "a", "type": "ai_task", "next_stage_id": "zz"},
            {"id": "a", "type": "robot"},
            {"id": "w", "type": "webhook", "config": {"url": "ftp://x", "max_attempts": 0}},
            "nope"
        ]));
        let locs: Vec<String> = e.iter().map(|e| e["loc"].to_string()).collect();
        assert!(
            locs.contains(&r#"["body","stages",0,"next_stage_id"]"#.to_string()),
            "{locs:?}"
        );
        assert!(
            locs.contains(&r#"["body","stages",1,"id"]"#.to_string()),
            "{locs:?}"
        );
        assert!(
            locs.contains(&r#"["body","stages",1,"type"]"#.to_string()),
            "{locs:?}"
        );
        assert!(
            locs.contains(&r#"["body","stages",2,"config","url"]"#.to_string()),
            "{locs:?}"
        );
        assert!(
            locs.contains(&r#"["body","stages",2,"config","max_attempts"]"#.to_string()),
            "{locs:?}"
        );
        assert!(
            locs.contains(&r#"["body","stages",3]"#.to_string()),
            "{locs:?}"
        );
    }

    #[test]
    fn a_loop_must_pass_through_a_condition() {
        let e = errors(json!([
            {"id": "a", "type": "manual", "next_stage_id": "b"},
            {"id": "b", "type": "manual", "next_stage_id": "a"}
        ]));
        assert_eq!(e.len(), 1);
        assert!(e[0]["msg"].as_str().unwrap().contains("loop"));
    }

    #[test]
    fn conditions_read_as_the_reference_compares() {
        let ctx = json!({"stage_results": {"a": {"status": "completed", "http_status": 200, "ok": true}},
                         "input_data": {"env": "prod"}});
        let holds = |e: &str| Expression::parse(e).unwrap().holds(&ctx);
        assert!(holds("true"));
        assert!(!holds("false"));
        assert!(holds("stage_results.a.status == 'completed'"));
        assert!(holds("stage_results.a.http_status == 200"));
        assert!(holds("stage_results.a.ok == True"));
        assert!(holds("input_data.env != \"dev\""));
        assert!(!holds("input_data.missing == x"));
        assert!(Expression::parse("a > b").is_err());
        assert!(Expression::parse("secrets.x == 1").is_err());
    }
}
