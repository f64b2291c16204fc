//! A request's query read by name, for handlers whose parameters serde's `Query` cannot
//! take (repeated keys, `name[]`, values checked together). Every problem is collected and
//! answered at once, as a 422 in the reference's shape.

use std::ops::RangeBounds;

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::support::validation::parse_datetime;
use crate::error::{ApiError, ApiResult};
use crate::http::validate;

pub struct Query {
    pairs: Vec<(String, String)>,
    errors: Vec<Value>,
}

impl Query {
    pub fn of(req: &HttpRequest) -> Query {
        Query {
            pairs: url::form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .collect(),
            errors: Vec::new(),
        }
    }

    /// The last value of `name`.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given under any of `names`, in order.
    pub fn all(&self, names: &[&str]) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn refuse(&mut self, kind: &str, loc: Value, msg: String, input: Value) {
        self.errors
            .push(json!({ "type": kind, "loc": loc, "msg": msg, "input": input }));
    }

    /// `parse(raw)` if `raw` is text pydantic reads as `format` (its errors recorded if not).
    fn typed<T>(
        &mut self,
        format: &str,
        raw: &str,
        loc: Vec<Value>,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let schema = json!({ "type": "string", "format": format });
        let mut errors = validate::check_text(&schema, raw, loc);
        if errors.is_empty() {
            return parse(raw);
        }
        self.errors.append(&mut errors);
        None
    }

    /// A required timestamp (read as pydantic reads one).
    pub fn datetime(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let Some(raw) = self.raw(name).map(str::to_string) else {
            let msg = "Field required".into();
            self.refuse("missing", json!(["query", name]), msg, Value::Null);
            return None;
        };
        let loc = vec![json!("query"), json!(name)];
        self.typed("date-time", &raw, loc, |t| parse_datetime(t.trim()))
    }

    /// An optional UUID.
    pub fn uuid(&mut self, name: &str) -> Option<Uuid> {
        let raw = self.raw(name)?.to_string();
        let loc = vec![json!("query"), json!(name)];
        self.typed("uuid", &raw, loc, |t| Uuid::parse_str(t).ok())
    }

    /// The UUIDs given under any of `names` (errors located as `[query, names[0], i]`).
    pub fn uuids(&mut self, names: &[&str]) -> Vec<Uuid> {
        let raw: Vec<String> = self.all(names).into_iter().map(str::to_string).collect();
        raw.iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let loc = vec![json!("query"), json!(names[0]), json!(i)];
                self.typed("uuid", raw, loc, |t| Uuid::parse_str(t).ok())
            })
            .collect()
    }

    /// An optional whole number in `valid`; `problem` is the message when it is not.
    pub fn int(&mut self, name: &str, valid: impl RangeBounds<i64>, problem: &str) -> Option<i64> {
        let raw = self.raw(name)?.to_string();
        match raw.parse::<i64>() {
            Ok(n) if valid.contains(&n) => Some(n),
            _ => {
                self.refuse(
                    "value_error",
                    json!(["query", name]),
                    problem.into(),
                    json!(raw),
                );
                None
            }
        }
    }

    /// `Err` with every problem found, if there is one.
    pub fn finish(&mut self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(Value::Array(std::mem::take(
                &mut self.errors,
            ))))
        }
    }
}
