//! `limit` and `offset` query parameters, validated like the reference (limit 1..=200,
//! default 200; offset ≥ 0).

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::support::pagination::{PageParams, DEFAULT_LIMIT, MAX_LIMIT};
use crate::error::ApiError;

#[derive(Deserialize)]
struct RawPage {
    limit: Option<String>,
    offset: Option<String>,
}

fn bad(field: &str, msg: &str, input: &str) -> ApiError {
    ApiError::validation(
        "value_error",
        vec![json!("query"), json!(field)],
        msg,
        Value::String(input.to_string()),
    )
}

pub fn parse(query: &str) -> Result<PageParams, ApiError> {
    let raw: RawPage = serde_urlencoded::from_str(query).unwrap_or(RawPage {
        limit: None,
        offset: None,
    });
    let limit = match raw.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(
                    "limit",
                    &format!("Input should be a whole number from 1 to {MAX_LIMIT}"),
                    v,
                ))
            }
        },
    };
    let offset = match raw.offset.as_deref() {
        None => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => {
                return Err(bad(
                    "offset",
                    "Input should be a whole number greater than or equal to 0",
                    v,
                ))
            }
        },
    };
    Ok(PageParams { limit, offset })
}

impl FromRequest for PageParams {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req.query_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            parse("").unwrap(),
            PageParams {
                limit: 200,
                offset: 0
            }
        );
        assert_eq!(
            parse("limit=5&offset=10").unwrap(),
            PageParams {
                limit: 5,
                offset: 10
            }
        );
        for bad in ["limit=0", "limit=201", "limit=x", "offset=-1"] {
            assert!(matches!(parse(bad), Err(ApiError::Validation(_))), "{bad}");
        }
    }
}
