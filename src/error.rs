//! One error type for every HTTP handler: a status and a `{"detail": ...}` body, as the
//! reference server answers (plus `request_id`, which it adds to every error body).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::http::context::current_request_id;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    /// 422 with a pydantic-style list of `{type, loc, msg, input}` items.
    Validation(Value),
    Unavailable(String),
    /// Logged in full, answered as a bare 500.
    Internal(String),
}

impl ApiError {
    pub fn not_found() -> Self {
        ApiError::NotFound("Not Found".into())
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        ApiError::Internal(format!("{context}: {err}"))
    }

    /// One validation item in the reference's shape.
    pub fn validation(kind: &str, loc: Vec<Value>, msg: impl Into<String>, input: Value) -> Self {
        ApiError::Validation(
            json!([{ "type": kind, "loc": loc, "msg": msg.into(), "input": input }]),
        )
    }

    fn detail(&self) -> Value {
        match self {
            ApiError::Unauthorized => json!("Unauthorized"),
            ApiError::Internal(_) => json!("Internal Server Error"),
            ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Unavailable(m) => json!(m),
            ApiError::Validation(v) => v.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Internal(m) => write!(f, "internal error: {m}"),
            other => write!(f, "{} {}", other.status_code().as_u16(), other.detail()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(m) = self {
            tracing::error!(error = %m, "request failed");
        }
        let mut body = json!({ "detail": self.detail() });
        if let Some(id) = current_request_id() {
            body["request_id"] = json!(id);
        }
        HttpResponse::build(self.status_code()).json(body)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::domain::DomainError> for ApiError {
    fn from(e: crate::domain::DomainError) -> Self {
        match e {
            crate::domain::DomainError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::Unavailable("Database unavailable".into())
            }
            crate::domain::DomainError::Database(e) => ApiError::internal("database", e),
        }
    }
}
