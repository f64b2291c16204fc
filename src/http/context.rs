//! Per-request context: the `X-Request-Id` (echoed or generated), a tracing span, and one
//! log line per request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Data;
use tracing::Instrument;

use crate::state::AppState;
use crate::telemetry::REQUEST_ID;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;
const HEALTH_PATHS: &[&str] = &["/health", "/healthz", "/readyz"];
/// Routes whose writes may change who an admin is (user, membership, active organization).
const PRINCIPAL_PATHS: &[&str] = &["/api/v1/organizations", "/api/v1/users", "/api/v1/auth"];
/// Routes whose writes may change an organization's boards (their own, and the gateways,
/// groups and organizations they hang on); also any path with `/boards` in it.
const BOARD_PATHS: &[&str] = &[
    "/api/v1/board-groups",
    "/api/v1/gateways",
    "/api/v1/organizations",
];

/// A client's id is kept when it is printable ASCII of sane length (it ends up in logs and
/// headers); otherwise the server makes one, as a 32-hex-digit UUID like the reference.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(&req);
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let quiet = HEALTH_PATHS.contains(&path.as_str())
        && !req
            .app_data::<Data<AppState>>()
            .is_some_and(|s| s.settings.log.include_health);
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    // After a write that may change what this instance keeps (`domain::memos`), it forgets
    // it at once, so its next request reads what the write did; other instances hear the
    // change as a notification a moment later.
    let write = !matches!(method, Method::GET | Method::HEAD);
    let principals = write && PRINCIPAL_PATHS.iter().any(|p| path.starts_with(p));
    let boards =
        write && (path.contains("/boards") || BOARD_PATHS.iter().any(|p| path.starts_with(p)));
    let state = (principals || boards)
        .then(|| req.app_data::<Data<AppState>>().cloned())
        .flatten();

    let mut res = REQUEST_ID
        .scope(id.clone(), next.call(req))
        .instrument(span.clone())
        .await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let Some(state) = state {
        if principals {
            state.memos.principals.clear();
        }
        if boards {
            state.memos.boards.clear();
        }
    }
    let status = res.status().as_u16();
    super::prometheus::record(status, started.elapsed());
    if !quiet {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        span.in_scope(|| tracing::info!(status, elapsed_ms, "request"));
    }
    Ok(res)
}
