//! `/api/v1/calendar` (domain.md §D): events, schedules, workload, slot suggestions, and
//! `GET /calendar/range`, which the console's calendar page reads (not in the reference).

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::calendar::events::{
    self, CalendarEvent, EventCreate, EventInRange, EventUpdate,
};
use crate::domain::calendar::schedules::{self, Schedule, ScheduleCreate, ScheduleUpdate};
use crate::domain::calendar::slots::{self, SlotRequest, SlotSuggestion};
use crate::domain::calendar::RangeFilter;
use crate::domain::support::validation::dedupe;
use crate::domain::DomainError;
use crate::error::{ApiError, ApiResult};
use crate::http::json::Json;
use crate::http::query::Query;
use crate::http::OkResponse;
use crate::state::AppState;

/// The longest range one read covers (recurring events are expanded in it).
const MAX_RANGE_DAYS: i64 = 400;

/// `CalendarRangeResponse`.
#[derive(Serialize, ToSchema)]
pub struct CalendarRange {
    pub events: Vec<EventInRange>,
    pub schedules: Vec<Schedule>,
}

/// `[from, to)` from the query: `to` after `from`, at most [`MAX_RANGE_DAYS`] apart.
fn range(q: &mut Query, from: &str, to: &str) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let (start, end) = (q.datetime(from), q.datetime(to));
    q.finish()?;
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ApiError::internal("calendar range", "checked above"));
    };
    if end <= start || end - start > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::validation(
            "value_error",
            vec![json!("query"), json!(to)],
            format!(
                "Value error, {to} must be after {from} and at most {MAX_RANGE_DAYS} days later"
            ),
            json!(q.raw(to)),
        ));
    }
    Ok((start, end))
}

async fn range_of(
    state: &AppState,
    principal: &crate::domain::model::Principal,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    mut filter: RangeFilter,
) -> ApiResult<CalendarRange> {
    let mut conn = state.db.get().await.map_err(DomainError::from)?;
    let tx = conn.snapshot().await.map_err(DomainError::from)?;
    filter.boards = events::readable_boards(&tx, principal).await?;
    let org = principal.organization.id;
    let events = events::in_range(&tx, org, from, to, &filter).await?;
    let schedules = schedules::in_range(&tx, org, from, to, &filter).await?;
    tx.commit().await.map_err(DomainError::from)?;
    Ok(CalendarRange { events, schedules })
}

/// Events (recurring ones once per occurrence) and schedules overlapping
/// `[start_date, end_date)`; `agent_id` narrows the schedules, `board_id` both.
#[utoipa::path(
    tag = "calendar",
    params(("start_date" = DateTime<Utc>, Query), ("end_date" = DateTime<Utc>, Query),
        ("board_id" = Option<Uuid>, Query), ("agent_id" = Option<Uuid>, Query), ("event_type" = Option<String>, Query)),
    responses((status = 200, body = CalendarRange), (status = 401), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/calendar/events")]
pub async fn list_events(
    req: HttpRequest,
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<CalendarRange>> {
    let mut q = Query::of(&req);
    let board_id = q.uuid("board_id");
    let agent_id = q.uuid("agent_id");
    let range = range(&mut q, "start_date", "end_date")?;
    let filter = RangeFilter {
        board_id,
        agent_id,
        event_type: q.raw("event_type").map(str::to_string),
        boards: None,
    };
    Ok(web::Json(
        range_of(&state, &principal, range, filter).await?,
    ))
}

/// What the console's calendar page reads for a month: the events and schedules of the
/// caller's boards overlapping `[start, end)`.
#[utoipa::path(
    tag = "calendar",
    params(("start" = DateTime<Utc>, Query), ("end" = DateTime<Utc>, Query)),
    responses((status = 200, body = CalendarRange), (status = 401), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/calendar/range")]
pub async fn calendar_range(
    req: HttpRequest,
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<CalendarRange>> {
    let range = range(&mut Query::of(&req), "start", "end")?;
    Ok(web::Json(
        range_of(&state, &principal, range, RangeFilter::default()).await?,
    ))
}

/// Creates an event: a board's (board write access) or the organization's (an admin).
/// `recurrence_rule` is an RFC 5545 RRULE (with EXDATE/RDATE lines if wanted), expanded in
/// `timezone` (IANA, default UTC).
#[utoipa::path(
    tag = "calendar",
    request_body = EventCreate,
    responses((status = 201, body = CalendarEvent), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/calendar/events")]
pub async fn create_event(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<EventCreate>,
) -> ApiResult<HttpResponse> {
    let event = in_transaction!(state, |tx| events::create(&tx, &principal, input));
    Ok(HttpResponse::Created().json(event))
}

/// Changes an event (the whole series, for a recurring one).
#[utoipa::path(
    tag = "calendar",
    params(("event_id" = Uuid, Path)),
    request_body = EventUpdate,
    responses((status = 200, body = CalendarEvent), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/calendar/events/{event_id}")]
pub async fn update_event(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<EventUpdate>,
) -> ApiResult<web::Json<CalendarEvent>> {
    let id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| events::update(
        &tx, &principal, id, patch
    ))))
}

#[utoipa::path(
    tag = "calendar",
    params(("event_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/calendar/events/{event_id}")]
pub async fn delete_event(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let id = path.into_inner();
    in_transaction!(state, |tx| events::delete(&tx, &principal, id));
    Ok(OkResponse::json())
}

/// Schedules overlapping `[start_date, end_date)` of the boards the caller reads.
#[utoipa::path(
    tag = "calendar",
    params(("start_date" = DateTime<Utc>, Query), ("end_date" = DateTime<Utc>, Query),
        ("agent_id" = Option<Uuid>, Query), ("board_id" = Option<Uuid>, Query)),
    responses((status = 200, body = Vec<Schedule>), (status = 401), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/calendar/schedules")]
pub async fn list_schedules(
    req: HttpRequest,
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Vec<Schedule>>> {
    let mut q = Query::of(&req);
    let mut filter = RangeFilter {
        agent_id: q.uuid("agent_id"),
        board_id: q.uuid("board_id"),
        ..RangeFilter::default()
    };
    let (from, to) = range(&mut q, "start_date", "end_date")?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    filter.boards = events::readable_boards(&*conn, &principal).await?;
    let org = principal.organization.id;
    Ok(web::Json(
        schedules::in_range(&*conn, org, from, to, &filter).await?,
    ))
}

/// Schedules a task (board write access). An agent booked in the same time answers 409
/// with the conflicting schedules.
#[utoipa::path(
    tag = "calendar",
    request_body = ScheduleCreate,
    responses((status = 201, body = Schedule), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/calendar/schedules")]
pub async fn create_schedule(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<ScheduleCreate>,
) -> ApiResult<HttpResponse> {
    let schedule = in_transaction!(state, |tx| schedules::create(&tx, &principal, input));
    Ok(HttpResponse::Created().json(schedule))
}

/// Changes a schedule; a new time is checked for conflicts as on create.
#[utoipa::path(
    tag = "calendar",
    params(("schedule_id" = Uuid, Path)),
    request_body = ScheduleUpdate,
    responses((status = 200, body = Schedule), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/calendar/schedules/{schedule_id}")]
pub async fn update_schedule(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<ScheduleUpdate>,
) -> ApiResult<web::Json<Schedule>> {
    let id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| schedules::update(
        &tx, &principal, id, patch
    ))))
}

#[utoipa::path(
    tag = "calendar",
    params(("schedule_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/calendar/schedules/{schedule_id}")]
pub async fn delete_schedule(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let id = path.into_inner();
    in_transaction!(state, |tx| schedules::delete(&tx, &principal, id));
    Ok(OkResponse::json())
}

/// Hours each agent (`agent_ids[]`, repeated) has scheduled in `[start_date, end_date)`.
#[utoipa::path(
    tag = "calendar",
    params(("start_date" = DateTime<Utc>, Query), ("end_date" = DateTime<Utc>, Query), ("agent_ids[]" = Vec<Uuid>, Query)),
    responses((status = 200, body = Object), (status = 401), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/calendar/workload")]
pub async fn workload(
    req: HttpRequest,
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Value>> {
    let mut q = Query::of(&req);
    let agents = dedupe(&q.uuids(&["agent_ids[]", "agent_ids"]));
    let (from, to) = range(&mut q, "start_date", "end_date")?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        schedules::workload(&*conn, principal.organization.id, from, to, &agents).await?,
    ))
}

/// The agent's first free slot of `duration_hours` in working hours (09:00–18:00 in
/// `timezone`, the user's zone or UTC; Monday to Friday), clear of its schedules and of
/// meetings and holidays; 409 when there is none within 14 days.
#[utoipa::path(
    tag = "calendar",
    request_body = SlotRequest,
    responses((status = 200, body = SlotSuggestion), (status = 401), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/calendar/suggest-slot")]
pub async fn suggest_slot(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<SlotRequest>,
) -> ApiResult<web::Json<SlotSuggestion>> {
    let mut conn = state.db.get().await.map_err(DomainError::from)?;
    let tx = conn.snapshot().await.map_err(DomainError::from)?;
    let slot = slots::suggest(&tx, &principal, input, Utc::now()).await?;
    tx.commit().await.map_err(DomainError::from)?;
    Ok(web::Json(slot))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_events)
        .service(calendar_range)
        .service(create_event)
        .service(update_event)
        .service(delete_event)
        .service(list_schedules)
        .service(create_schedule)
        .service(update_schedule)
        .service(delete_schedule)
        .service(workload)
        .service(suggest_slot);
}
