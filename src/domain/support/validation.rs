//! Input rules the reference enforces in its pydantic models, with the same 422 bodies.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::{DomainError, DomainResult};

/// A pydantic-style validation list, for rules the reference checks in its models.
pub fn validation_error(kind: &str, loc: &[&str], msg: &str, input: Value) -> DomainError {
    DomainError::Unprocessable(json!([{ "type": kind, "loc": loc, "msg": msg, "input": input }]))
}

/// A `@model_validator` failure of the reference: `loc` is the whole body.
pub fn model_error(msg: &str) -> DomainError {
    validation_error(
        "value_error",
        &["body"],
        &format!("Value error, {msg}"),
        Value::Null,
    )
}

/// The reference's `NonEmptyStr` (trimmed, at least one character) for body field `field`.
pub fn non_empty(field: &str, text: &str) -> Result<String, DomainError> {
    let mut invalid = Invalid::default();
    match invalid.non_empty(field, text) {
        Some(trimmed) => Ok(trimmed),
        None => Err(invalid.into_error()),
    }
}

/// The field errors found so far in one request body.
#[derive(Debug, Default)]
pub struct Invalid(Vec<Value>);

impl Invalid {
    /// A `@field_validator` that raised `ValueError(msg)` on `field`.
    pub fn value_error(&mut self, field: &str, msg: &str, input: Value) {
        self.0.push(json!({
            "type": "value_error",
            "loc": ["body", field],
            "msg": format!("Value error, {msg}"),
            "input": input,
        }));
    }

    /// A value error inside a nested field: `loc` follows `body` (`["stages", 2, "id"]`).
    pub fn value_error_at(&mut self, loc: &[Value], msg: &str, input: Value) {
        let loc: Vec<Value> = std::iter::once(json!("body"))
            .chain(loc.iter().cloned())
            .collect();
        self.0.push(json!({
            "type": "value_error",
            "loc": loc,
            "msg": format!("Value error, {msg}"),
            "input": input,
        }));
    }

    /// The value of a check that passed; a failed one (`Err(msg)`) is recorded as a
    /// `@field_validator` error on `field`.
    pub fn check<T>(&mut self, field: &str, input: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|msg| self.value_error(field, &msg, json!(input)))
            .ok()
    }

    /// A `NonEmptyStr` that is blank once trimmed.
    pub fn blank(&mut self, field: &str, input: &str) {
        self.0.push(json!({
            "type": "string_too_short",
            "loc": ["body", field],
            "msg": "String should have at least 1 character",
            "input": input,
            "ctx": {"min_length": 1},
        }));
    }

    /// A string longer than its `Field(max_length=max)` (counted in characters, as pydantic
    /// does).
    pub fn max_chars(&mut self, field: &str, input: &str, max: usize) {
        if input.chars().count() > max {
            self.0.push(json!({
                "type": "string_too_long",
                "loc": ["body", field],
                "msg": format!("String should have at most {max} characters"),
                "input": input,
                "ctx": {"max_length": max},
            }));
        }
    }

    /// A `Field(min_length=1)` list that is empty.
    pub fn empty_list(&mut self, field: &str) {
        self.0.push(json!({
            "type": "too_short",
            "loc": ["body", field],
            "msg": "List should have at least 1 item after validation, not 0",
            "input": [],
            "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0},
        }));
    }

    /// The trimmed text of a `NonEmptyStr` field, or `None` after recording the error.
    pub fn non_empty(&mut self, field: &str, input: &str) -> Option<String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            self.blank(field, input);
            return None;
        }
        Some(trimmed.to_string())
    }

    /// `Err` with every error found, if there is one.
    pub fn finish(self) -> DomainResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    /// The 422 listing every error found.
    pub fn into_error(self) -> DomainError {
        DomainError::Unprocessable(Value::Array(self.0))
    }
}

/// A timestamp as pydantic takes it: RFC 3339, or without an offset (read as UTC, the
/// reference's naive UTC), or a bare date (midnight UTC).
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(naive.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

/// `deserialize_with` for an optional timestamp field.
pub fn lenient_datetime<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => parse_datetime(text.trim()).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("Input should be a valid datetime, got {text:?}"))
        }),
    }
}

/// `deserialize_with` for a timestamp in a patch: absent, null or a value.
pub fn lenient_datetime_patch<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<DateTime<Utc>>>, D::Error> {
    lenient_datetime(d).map(Some)
}

/// `ids` without repeats, in the order of their first occurrence (the reference's
/// normalization of id lists).
pub fn dedupe(ids: &[Uuid]) -> Vec<Uuid> {
    let mut unique: Vec<Uuid> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(id) {
            unique.push(*id);
        }
    }
    unique
}

/// The ids of `ids` that `sql` does not find; `sql` selects `id` given `$1` = `scope` and
/// `$2` = the ids.
pub async fn missing_ids(
    client: &impl GenericClient,
    sql: &str,
    scope: Uuid,
    ids: &[Uuid],
) -> DomainResult<Vec<Uuid>> {
    let found: Vec<Uuid> = client
        .query(sql, &[&scope, &ids])
        .await?
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?;
    Ok(ids
        .iter()
        .filter(|id| !found.contains(id))
        .copied()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_read_like_pydantic() {
        let midnight = "2026-03-01T00:00:00Z";
        for input in [
            "2026-03-01T00:00:00Z",
            "2026-03-01T01:00:00+01:00",
            "2026-03-01T00:00:00",
            "2026-03-01",
        ] {
            assert_eq!(
                parse_datetime(input).map(|d| d.to_rfc3339()),
                parse_datetime(midnight).map(|d| d.to_rfc3339()),
                "{input}"
            );
        }
        assert!(parse_datetime("2026-03-01T00:00:00.250").is_some());
        assert!(parse_datetime("soon").is_none());
    }

    #[test]
    fn blank_strings_are_too_short() {
        assert_eq!(non_empty("message", "  hi ").unwrap(), "hi");
        match non_empty("message", "   ") {
            Err(DomainError::Unprocessable(v)) => {
                assert_eq!(v[0]["type"], "string_too_short");
                assert_eq!(v[0]["loc"], json!(["body", "message"]));
            }
            other => panic!("{other:?}"),
        }
    }
}
