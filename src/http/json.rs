//! Request-body and parameter parsing that answers like the reference server: 422 with a
//! pydantic-style list naming the field (`loc`), 413 over the body limit, 415 for a body
//! that is not JSON.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::{self, Data};
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body of type `T`.
pub struct Json<T>(pub T);

const FALLBACK_LIMIT: usize = 1 << 20;

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<Data<AppState>>()
            .map_or(FALLBACK_LIMIT, |s| s.settings.http_body_limit);
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let declared_len = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if let Some(ct) = content_type {
                if ct != "application/json" && !ct.ends_with("+json") {
                    return Err(ApiError::status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!("Content-Type must be application/json, got {ct:?}"),
                    ));
                }
            }
            if declared_len.is_some_and(|n| n > limit) {
                return Err(too_large(limit));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::validation(
                        "body_read",
                        vec![json!("body")],
                        e.to_string(),
                        Value::Null,
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(Json)
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::status(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body is larger than {limit} bytes"),
    )
}

/// Deserializes `body`, turning serde's error into the reference's 422 shape. A NUL
/// character anywhere (which PostgreSQL cannot store) is a 422 naming the field.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let nul = std::str::from_utf8(body)
        .ok()
        .filter(|text| crate::protocol::nul::may_hold(text))
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|value| crate::protocol::nul::path(&value));
    if let Some(path) = nul {
        return Err(nul_refused(
            std::iter::once(json!("body")).chain(path).collect(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(de).map_err(|err| {
        let inner = err.inner();
        let mut loc = vec![json!("body")];
        for segment in err.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
                serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
                serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = inner.to_string();
        match inner.classify() {
            serde_json::error::Category::Data => {
                if let Some(field) = missing_field(&message) {
                    loc.push(json!(field));
                    ApiError::validation("missing", loc, "Field required", Value::Null)
                } else {
                    ApiError::validation("value_error", loc, strip_position(&message), Value::Null)
                }
            }
            _ => {
                // Like pydantic: a syntax error is located by position, not by field.
                loc.truncate(1);
                loc.push(json!(inner.column()));
                ApiError::Validation(json!([{
                    "type": "json_invalid",
                    "loc": loc,
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": { "error": strip_position(&message) },
                }]))
            }
        }
    })?;
    Ok(value)
}

/// 422 for text holding a NUL character at `loc`.
fn nul_refused(loc: Vec<Value>) -> ApiError {
    ApiError::validation(
        "string_nul",
        loc,
        "Text cannot contain NUL (\\u0000) characters",
        Value::Null,
    )
}

/// Middleware: a path or query parameter holding a NUL character (`%00`) is answered 422
/// naming it, before any handler can send it to PostgreSQL (which cannot store one).
pub async fn refuse_nul_in_url(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let nul = |raw: &str| raw.to_ascii_lowercase().contains("%00");
    let refused = if nul(req.path()) || req.path().contains('\0') {
        Some(nul_refused(vec![json!("path")]))
    } else if nul(req.query_string()) {
        let name = url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(key, value)| key.contains('\0') || value.contains('\0'))
            .map_or_else(String::new, |(key, _)| key.replace('\0', ""));
        Some(nul_refused(vec![json!("query"), json!(name)]))
    } else {
        None
    };
    match refused {
        Some(err) => Ok(req
            .into_response(actix_web::ResponseError::error_response(&err))
            .map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// 422 for a path or query parameter that does not parse (e.g. a malformed UUID).
pub fn parameter_error(kind: &'static str, err: impl std::fmt::Display) -> actix_web::Error {
    ApiError::validation(
        kind,
        vec![json!(kind.trim_end_matches("_invalid"))],
        err.to_string(),
        Value::Null,
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        tags: Vec<u32>,
    }

    fn detail(body: &str) -> Value {
        match parse::<Body>(body.as_bytes()) {
            Err(ApiError::Validation(v)) => v,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_json_invalid() {
        let d = detail("{\"name\": ");
        assert_eq!(d[0]["type"], "json_invalid");
        assert_eq!(d[0]["loc"][0], "body");
    }

    #[test]
    fn missing_field_names_it() {
        let d = detail("{\"tags\": []}");
        assert_eq!(d[0]["type"], "missing");
        assert_eq!(d[0]["loc"], json!(["body", "name"]));
    }

    #[test]
    fn a_nul_character_is_refused_naming_its_field() {
        let d = detail(r#"{"name": "a\u0000b", "tags": []}"#);
        assert_eq!(d[0]["type"], "string_nul");
        assert_eq!(d[0]["loc"], json!(["body", "name"]));
    }

    #[test]
    fn wrong_type_points_at_the_element() {
        let d = detail("{\"name\": \"x\", \"tags\": [1, \"two\"]}");
        assert_eq!(d[0]["loc"], json!(["body", "tags", 1]));
        assert!(d[0]["msg"].as_str().unwrap().contains("invalid type"));
    }
}
