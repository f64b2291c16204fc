//! Custom field values of tasks: the fields bound to a task's board, their validation by
//! type and pattern, and their reads and writes with the task.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::db::record::{get, Record, RowError};
use crate::db::GenericClient;
use crate::domain::{DomainError, DomainResult};

crate::db::record! {
    /// A definition bound to a board, as task-side validation needs it.
    struct BoundField in "d" {
        id: Uuid,
        key: String = "d.field_key",
        field_type: String,
        validation_regex: Option<String>,
        required: bool,
        default_value: Option<Value>,
    }
}

async fn bound_fields(
    client: &impl GenericClient,
    board_id: Uuid,
) -> DomainResult<Vec<BoundField>> {
    let sql = format!(
        "SELECT {} FROM task_custom_field_definitions d \
             JOIN board_task_custom_fields b ON b.task_custom_field_definition_id = d.id \
             WHERE b.board_id = $1 ORDER BY d.field_key",
        BoundField::COLUMNS
    );
    let rows = client.query(&sql, &[&board_id]).await?;
    Ok(BoundField::from_rows(&rows)?)
}

/// Why `value` is not a valid value of `field_type`, if it is not. `null` is always valid here
/// (requiredness is checked separately).
pub fn invalid_value_reason(field_type: &str, value: &Value) -> Option<&'static str> {
    let ok = match (field_type, value) {
        (_, Value::Null) => true,
        ("text" | "text_long", Value::String(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("decimal", Value::Number(_)) => true,
        ("boolean", Value::Bool(_)) => true,
        ("date", Value::String(s)) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        ("date_time", Value::String(s)) => {
            chrono::DateTime::parse_from_rfc3339(s).is_ok()
                || s.parse::<chrono::NaiveDateTime>().is_ok()
        }
        ("url", Value::String(s)) => url::Url::parse(s)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .unwrap_or(false),
        ("json", Value::Object(_) | Value::Array(_)) => true,
        _ => false,
    };
    // The reference's words, which clients show as the field's error.
    (!ok).then_some(match (field_type, value) {
        ("text" | "text_long", _) => "must be a string",
        ("integer", _) => "must be an integer",
        ("decimal", _) => "must be a decimal number",
        ("boolean", _) => "must be true or false",
        ("date", _) => "must be an ISO date string (YYYY-MM-DD)",
        ("date_time", _) => "must be an ISO datetime string",
        ("url", Value::String(_)) => "must be a valid http/https URL",
        ("url", _) => "must be a URL string",
        _ => "must be a JSON object or array",
    })
}

/// The types whose values are strings, the only ones a `validation_regex` applies to.
pub(super) const STRING_FIELD_TYPES: [&str; 5] = ["text", "text_long", "date", "date_time", "url"];

/// `pattern` anchored at both ends: the reference matches with Python's `re.fullmatch`.
pub(super) fn full_match(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// Why `value` is not a valid value of a field of this type and regex, if it is not.
pub(super) fn value_problem(
    field_type: &str,
    regex: Option<&str>,
    value: &Value,
) -> Option<String> {
    if let Some(reason) = invalid_value_reason(field_type, value) {
        return Some(reason.into());
    }
    let (Some(pattern), Value::String(text)) = (regex, value) else {
        return None;
    };
    if !STRING_FIELD_TYPES.contains(&field_type) {
        return None;
    }
    match full_match(pattern) {
        Ok(re) if re.is_match(text) => None,
        Ok(_) => Some("does not match validation_regex".into()),
        Err(e) => Some(format!("validation_regex is invalid: {e}")),
    }
}

/// Checks keys and values against the board's fields; returns the fields by key.
fn validate<'a>(
    fields: &'a [BoundField],
    values: &Map<String, Value>,
) -> DomainResult<HashMap<&'a str, &'a BoundField>> {
    let by_key: HashMap<&str, &BoundField> = fields.iter().map(|f| (f.key.as_str(), f)).collect();
    let mut unknown: Vec<&str> = values
        .keys()
        .map(String::as_str)
        .filter(|k| !by_key.contains_key(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(DomainError::Unprocessable(json!({
            "message": "Unknown custom field keys for this board.",
            "unknown_field_keys": unknown,
        })));
    }
    for (key, value) in values {
        let field = by_key[key.as_str()];
        if let Some(reason) =
            value_problem(&field.field_type, field.validation_regex.as_deref(), value)
        {
            return Err(DomainError::Unprocessable(json!({
                "message": "Invalid custom field value.",
                "field_key": key,
                "field_type": field.field_type,
                "reason": reason,
            })));
        }
    }
    Ok(by_key)
}

fn require(missing: Vec<&str>) -> DomainResult<()> {
    if missing.is_empty() {
        return Ok(());
    }
    Err(DomainError::Unprocessable(json!({
        "message": "Required custom fields must have values.",
        "missing_field_keys": missing,
    })))
}

async fn upsert(
    client: &impl GenericClient,
    task_id: Uuid,
    field_id: Uuid,
    value: &Value,
) -> DomainResult<()> {
    client
        .execute(
            "INSERT INTO task_custom_field_values (id, task_id, task_custom_field_definition_id, value) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (task_id, task_custom_field_definition_id) \
             DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            &[&Uuid::new_v4(), &task_id, &field_id, value],
        )
        .await?;
    Ok(())
}

/// For each task, every field bound to the board: the stored value, else the default.
pub async fn values_for_tasks(
    client: &impl GenericClient,
    board_id: Uuid,
    task_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Map<String, Value>>> {
    // Sent together (pipelined on the connection).
    let stored = async {
        let sql = "SELECT task_id, task_custom_field_definition_id, value \
                   FROM task_custom_field_values WHERE task_id = ANY($1)";
        Ok(client.query(sql, &[&task_ids]).await?)
    };
    let (fields, stored) = futures_util::try_join!(bound_fields(client, board_id), stored)?;
    let stored: HashMap<(Uuid, Uuid), Option<Value>> = stored
        .iter()
        .map(|r| {
            let field = (
                get(r, "task_id")?,
                get(r, "task_custom_field_definition_id")?,
            );
            Ok((field, get(r, "value")?))
        })
        .collect::<Result<_, RowError>>()?;
    Ok(task_ids
        .iter()
        .map(|task_id| {
            let values = fields
                .iter()
                .map(|f| {
                    let value = match stored.get(&(*task_id, f.id)) {
                        Some(v) => v.clone(),
                        None => f.default_value.clone(),
                    };
                    (f.key.clone(), value.unwrap_or(Value::Null))
                })
                .collect();
            (*task_id, values)
        })
        .collect())
}

/// Validates and stores the values of a new task; defaults of unset fields are stored too.
/// Errors are the reference's 422 bodies (unknown keys, invalid value, required missing).
/// Returns the task's values as `values_for_tasks` reads them (every bound field, `null`
/// where none), so the new task's read need not ask again.
pub async fn apply_on_create(
    client: &impl GenericClient,
    board_id: Uuid,
    task_id: Uuid,
    values: &Map<String, Value>,
) -> DomainResult<Map<String, Value>> {
    let fields = bound_fields(client, board_id).await?;
    validate(&fields, values)?;
    let effective: Vec<(&BoundField, Value)> = fields
        .iter()
        .map(|f| {
            let v = values
                .get(&f.key)
                .cloned()
                .or_else(|| f.default_value.clone());
            (f, v.unwrap_or(Value::Null))
        })
        .collect();
    require(
        effective
            .iter()
            .filter(|(f, v)| f.required && v.is_null())
            .map(|(f, _)| f.key.as_str())
            .collect(),
    )?;
    for (field, value) in effective.iter().filter(|(_, v)| !v.is_null()) {
        upsert(client, task_id, field.id, value).await?;
    }
    Ok(effective
        .into_iter()
        .map(|(field, value)| (field.key.clone(), value))
        .collect())
}

/// Validates and applies a patch of values; `null` deletes the stored value.
pub async fn apply_on_update(
    client: &impl GenericClient,
    board_id: Uuid,
    task_id: Uuid,
    values: &Map<String, Value>,
) -> DomainResult<()> {
    let fields = bound_fields(client, board_id).await?;
    let by_key = validate(&fields, values)?;
    let current = values_for_tasks(client, board_id, &[task_id]).await?;
    let current = current.get(&task_id);
    let missing: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .filter(|f| match values.get(&f.key) {
            Some(v) => v.is_null(),
            None => current
                .and_then(|c| c.get(&f.key))
                .is_none_or(Value::is_null),
        })
        .map(|f| f.key.as_str())
        .collect();
    require(missing)?;
    for (key, value) in values {
        let field = by_key[key.as_str()];
        if value.is_null() {
            client
                .execute(
                    "DELETE FROM task_custom_field_values WHERE task_id = $1 AND task_custom_field_definition_id = $2",
                    &[&task_id, &field.id],
                )
                .await?;
        } else {
            upsert(client, task_id, field.id, value).await?;
        }
    }
    Ok(())
}
