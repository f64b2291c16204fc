//! One error type for every HTTP handler: a status and a `{"detail": ...}` body, as the
//! reference server answers (plus `request_id`, which it adds to every error body).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::domain::DomainError;
use crate::telemetry::current_request_id;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    /// Any status with its `detail` (a string, or a structured object where the
    /// reference answers one).
    Detail(StatusCode, Value),
    /// 422 with a pydantic-style list of `{type, loc, msg, input}` items.
    Validation(Value),
    /// Logged in full, answered as a bare 500.
    Internal(String),
}

impl ApiError {
    pub fn not_found() -> Self {
        ApiError::Detail(StatusCode::NOT_FOUND, json!("Not Found"))
    }

    pub fn status(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError::Detail(status, json!(detail.into()))
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
            ApiError::Detail(_, v) | ApiError::Validation(v) => v.clone(),
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
            ApiError::Detail(status, _) => *status,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            // Unavailable for a moment (the database is restarting, or a race to retry).
            response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        response.json(body)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Unauthorized(detail) => ApiError::Detail(StatusCode::UNAUTHORIZED, detail),
            DomainError::BadRequest(detail) => ApiError::Detail(StatusCode::BAD_REQUEST, detail),
            DomainError::NotFound(detail) => ApiError::Detail(StatusCode::NOT_FOUND, detail),
            DomainError::Forbidden(detail) => ApiError::Detail(StatusCode::FORBIDDEN, detail),
            DomainError::Conflict(detail) => ApiError::Detail(StatusCode::CONFLICT, detail),
            DomainError::Unprocessable(detail) => {
                ApiError::Detail(StatusCode::UNPROCESSABLE_ENTITY, detail)
            }
            DomainError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::status(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable")
            }
            // The domain error's words: the server's message and SQLSTATE, where the
            // driver's own text is only "db error".
            fault @ (DomainError::Database(_) | DomainError::Row(_)) => {
                ApiError::Internal(fault.to_string())
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
