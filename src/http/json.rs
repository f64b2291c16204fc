//! Request-body and parameter parsing that answers like the reference server: 422 with a
//! pydantic-style list naming the field (`loc`), 413 over the body limit, 415 for a body
//! that is not JSON.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::{self, Data};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::validate;
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
        let declared_len = declared_length(req);
        let operation = req.extensions().get::<Reference>().map(|r| r.0);
        let request = req.clone();
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
            let body = gather(&mut payload, limit)
                .await
                .map_err(|e| {
                    ApiError::validation(
                        "body_read",
                        vec![json!("body")],
                        e.to_string(),
                        Value::Null,
                    )
                })?
                .ok_or_else(|| too_large(limit))?;
            let parsed = parse_checked(operation, &body);
            if parsed.is_err() {
                // Who is calling is answered first, as FastAPI does (`auth::gate`).
                crate::auth::gate::authenticated(&request).await;
            }
            parsed.map(Json)
        })
    }
}

/// The request's declared `Content-Length`, if it has a readable one.
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// A body's chunks gathered up to `limit` bytes; `Ok(None)` as soon as they pass it (nothing
/// past it is buffered, the rest is not read).
pub async fn gather<S, E>(mut stream: S, limit: usize) -> Result<Option<web::BytesMut>, E>
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
{
    let mut body = web::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
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
    parse_checked(None, body)
}

/// [`parse`], after checking the body against the reference's schema for `operation`
/// (every error at once, in pydantic's words; see [`validate`]).
fn parse_checked<T: DeserializeOwned>(
    operation: Option<&validate::Operation>,
    body: &[u8],
) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).ok();
    if let Some(path) = text
        .filter(|text| crate::protocol::nul::may_hold(text))
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|value| crate::protocol::nul::path(&value))
    {
        return Err(nul_refused(
            std::iter::once(json!("body")).chain(path).collect(),
        ));
    }
    let blank = body.iter().all(u8::is_ascii_whitespace);
    let mut value = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(_) if blank && operation.is_some() => {
            let errors = operation.map(|op| op.check_body(None)).unwrap_or_default();
            return Err(ApiError::Validation(Value::Array(errors)));
        }
        Err(err) => return Err(json_invalid(&err)),
    };
    if let Some(op) = operation {
        let errors = op.check_body(Some(&mut value));
        if !errors.is_empty() {
            return Err(ApiError::Validation(Value::Array(errors)));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let mut loc = vec![json!("body")];
        for segment in err.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
                serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
                serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = err.inner().to_string();
        if let Some(field) = missing_field(&message) {
            loc.push(json!(field));
            ApiError::validation("missing", loc, "Field required", Value::Null)
        } else {
            ApiError::validation("value_error", loc, strip_position(&message), Value::Null)
        }
    })
}

/// Like pydantic: a syntax error is located by position, not by field.
fn json_invalid(err: &serde_json::Error) -> ApiError {
    ApiError::Validation(json!([{
        "type": "json_invalid",
        "loc": ["body", err.column()],
        "msg": "JSON decode error",
        "input": {},
        "ctx": { "error": strip_position(&err.to_string()) },
    }]))
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

/// The reference's operation a request was matched to (by [`check_parameters`]).
#[derive(Clone, Copy)]
struct Reference(&'static validate::Operation);

/// Middleware: the path and query parameters of an operation the reference has are
/// checked against its schema, and a request with any wrong is answered 422 listing them
/// all (see [`validate`]), before a handler's extractors would stop at the first.
pub async fn check_parameters(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let operation =
        validate::operation(req.method(), req.path()).filter(|_| req.match_pattern().is_some());
    let errors = operation
        .map(|op| op.check_parameters(req.path(), req.query_string()))
        .unwrap_or_default();
    if errors.is_empty() {
        // The body extractor checks against the same operation: found once per request.
        if let Some(op) = operation {
            req.extensions_mut().insert(Reference(op));
        }
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let err = ApiError::Validation(Value::Array(errors));
    Ok(req
        .into_response(actix_web::ResponseError::error_response(&err))
        .map_into_right_body())
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

/// 422 for a path parameter that does not parse: in pydantic's words for a UUID (the
/// usual case), naming the segment, else naming the path.
pub fn path_error(err: impl std::fmt::Display, req: &HttpRequest) -> actix_web::Error {
    let uuid = json!({"type": "string", "format": "uuid"});
    let bad_uuids: Vec<Value> = req
        .match_info()
        .iter()
        .flat_map(|(name, raw)| validate::check_text(&uuid, raw, vec![json!("path"), json!(name)]))
        .collect();
    if err.to_string().contains("UUID") && !bad_uuids.is_empty() {
        return ApiError::Validation(Value::Array(bad_uuids)).into();
    }
    ApiError::validation(
        "value_error",
        vec![json!("path")],
        err.to_string(),
        Value::Null,
    )
    .into()
}

/// 422 for a query that does not deserialize, naming the parameter where serde does.
pub fn query_error(err: impl std::fmt::Display) -> actix_web::Error {
    let message = err.to_string();
    let message = message
        .strip_prefix("Query deserialize error: ")
        .unwrap_or(&message);
    match missing_field(message) {
        Some(field) => ApiError::validation(
            "missing",
            vec![json!("query"), json!(field)],
            "Field required",
            Value::Null,
        ),
        None => ApiError::validation("value_error", vec![json!("query")], message, Value::Null),
    }
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
