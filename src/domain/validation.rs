//! The reference's request-model errors for rules its pydantic models check and serde
//! cannot: 422 with a list of `{type, loc, msg, input}` items. Field errors of one body
//! are reported together, as pydantic does.

use serde_json::{json, Value};

use super::{DomainError, DomainResult};

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

/// A `@model_validator` that raised `ValueError(msg)`: `loc` is the whole body.
pub fn model_error(msg: &str) -> DomainError {
    DomainError::Unprocessable(json!([{
        "type": "value_error",
        "loc": ["body"],
        "msg": format!("Value error, {msg}"),
        "input": Value::Null,
    }]))
}

/// The trimmed text of a `NonEmptyStr` field, or `None` after recording the error.
pub fn non_empty(invalid: &mut Invalid, field: &str, input: &str) -> Option<String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        invalid.blank(field, input);
        return None;
    }
    Some(trimmed.to_string())
}
