//! `GET /metrics`: this instance in Prometheus' text format, for a scraper on the private
//! network (the nginx configurations refuse the path from outside). Requests are counted by
//! the request middleware (`record`), the rest is read when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::web::Data;
use actix_web::{get, HttpResponse};

use crate::state::AppState;

/// Upper bounds (seconds) of the request duration histogram's buckets; +Inf is implied.
const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Requests by status class (1xx … 5xx), then the histogram: one count per bucket (+Inf
/// last), the sum in microseconds. Process-wide: every HTTP worker thread adds here.
struct Requests {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

static REQUESTS: Requests = Requests {
    by_class: [const { AtomicU64::new(0) }; 5],
    buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
    sum_micros: AtomicU64::new(0),
};

/// One answered request (the middleware calls this for every request, health checks too).
pub fn record(status: u16, took: Duration) {
    let class = usize::from((status / 100).clamp(1, 5)) - 1;
    REQUESTS.by_class[class].fetch_add(1, Ordering::Relaxed);
    let seconds = took.as_secs_f64();
    let bucket = BUCKETS
        .iter()
        .position(|le| seconds <= *le)
        .unwrap_or(BUCKETS.len());
    REQUESTS.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    REQUESTS.sum_micros.fetch_add(micros, Ordering::Relaxed);
}

/// This instance's metrics in Prometheus' text format (version 0.0.4).
#[utoipa::path(tag = "health", responses((status = 200, content_type = "text/plain", body = String)))]
#[get("/metrics")]
pub async fn metrics(state: Data<AppState>) -> HttpResponse {
    let mut out = String::with_capacity(2048);
    let _ = writeln!(
        out,
        "# HELP mc_build_info The running version.\n# TYPE mc_build_info gauge\n\
         mc_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "# HELP mc_http_requests_total HTTP requests answered, by status class.\n\
         # TYPE mc_http_requests_total counter"
    );
    for (i, n) in REQUESTS.by_class.iter().enumerate() {
        let n = n.load(Ordering::Relaxed);
        let _ = writeln!(out, "mc_http_requests_total{{class=\"{}xx\"}} {n}", i + 1);
    }
    let _ = writeln!(
        out,
        "# HELP mc_http_request_duration_seconds Time from a request's arrival to its response.\n\
         # TYPE mc_http_request_duration_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, n) in REQUESTS.buckets.iter().enumerate() {
        cumulative += n.load(Ordering::Relaxed);
        let le = BUCKETS.get(i).map_or("+Inf".to_string(), f64::to_string);
        let _ = writeln!(
            out,
            "mc_http_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let sum = REQUESTS.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "mc_http_request_duration_seconds_sum {sum:.6}");
    let _ = writeln!(out, "mc_http_request_duration_seconds_count {cumulative}");

    let pool = state.db.state();
    let gauges = [
        (
            "mc_db_pool_connections",
            "PostgreSQL connections open in this instance's pool.",
            u64::from(pool.connections),
        ),
        (
            "mc_db_pool_idle_connections",
            "Of those, idle.",
            u64::from(pool.idle_connections),
        ),
        (
            "mc_db_pool_max_connections",
            "DB_POOL_SIZE.",
            u64::from(state.settings.database.pool_size),
        ),
        (
            "mc_websockets_open",
            "WebSockets open on this instance (H5, board sync, gateway relay).",
            state.sockets.open() as u64,
        ),
        (
            "mc_cache_live",
            "1 while this instance hears the row changes its in-memory caches depend on (else they are off).",
            u64::from(state.memos.is_live()),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP mc_cache_notifications_total Row-change notifications heard by the in-memory caches.\n\
         # TYPE mc_cache_notifications_total counter\n\
         mc_cache_notifications_total {}",
        state.memos.notifications_heard()
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}
