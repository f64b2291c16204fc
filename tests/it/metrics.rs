//! `GET /api/v1/metrics/dashboard` (domain.md §A16): numbers, buckets and scoping.
//!
//! Tasks are created and moved through the API; only their timestamps are then set in
//! SQL, since the API stamps every change with the current time.

use awc::http::Method;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{
    create_agent, create_board, create_gateway, create_task, grant_only, send, switch_to_new_org,
    update_task,
};
use crate::harness::Server;

async fn board(server: &Server, extra: Value) -> Value {
    let name = format!("M{}", &Uuid::new_v4().simple().to_string()[..8]);
    let gateway = create_gateway(server, &name).await;
    let mut body = json!({"require_approval_for_done": false, "require_review_before_done": false});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    create_board(server, &gateway, &name, body).await
}

/// A task on `board` moved through the API into `status`.
async fn task_in(server: &Server, board: &Value, title: &str, status: &str) -> Value {
    let task = create_task(server, board, json!({"title": title})).await;
    let task = match status {
        "inbox" => task,
        "in_progress" | "done" => update_task(server, &task, json!({"status": status})).await,
        "review" => {
            let started = update_task(server, &task, json!({"status": "in_progress"})).await;
            update_task(
                server,
                &started,
                json!({"status": "review", "comment": "ready"}),
            )
            .await
        }
        other => panic!("no path to {other}"),
    };
    assert_eq!(task["status"], status);
    task
}

fn uuid(value: &Value) -> Uuid {
    value["id"].as_str().unwrap().parse().unwrap()
}

async fn set_times(
    server: &Server,
    task: &Value,
    updated: DateTime<Utc>,
    started: Option<DateTime<Utc>>,
) {
    server
        .db
        .client()
        .await
        .execute(
            "UPDATE tasks SET updated_at = $2, created_at = least(created_at, $2), in_progress_at = $3 WHERE id = $1",
            &[&uuid(task), &updated, &started],
        )
        .await
        .unwrap();
}

async fn dashboard(server: &Server, query: &str) -> Value {
    let reply = server
        .admin_get(&format!("/api/v1/metrics/dashboard{query}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn period(point: &Value) -> DateTime<Utc> {
    serde_json::from_value(point["period"].clone()).unwrap()
}

fn points(series: &Value) -> &Vec<Value> {
    series["points"].as_array().unwrap()
}

/// The value of `field` in the point of bucket `at` (which must exist).
fn at(series: &Value, bucket: DateTime<Utc>, field: &str) -> Value {
    points(series)
        .iter()
        .find(|p| period(p) == bucket)
        .unwrap_or_else(|| panic!("no bucket {bucket} in {series}"))[field]
        .clone()
}

fn sum(series: &Value, field: &str) -> f64 {
    points(series)
        .iter()
        .map(|p| p[field].as_f64().unwrap())
        .sum()
}

fn hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap()
}

/// Consecutive buckets `step` apart, the first holding `start`, the last holding `end`.
fn assert_buckets(series: &Value, start: DateTime<Utc>, end: DateTime<Utc>, step: Duration) {
    let periods: Vec<_> = points(series).iter().map(period).collect();
    assert!(
        periods[0] <= start && start < periods[0] + step,
        "{start} {periods:?}"
    );
    let last = *periods.last().unwrap();
    assert!(last <= end && end < last + step, "{end} {periods:?}");
    assert!(
        periods.windows(2).all(|w| w[1] - w[0] == step),
        "{periods:?}"
    );
}

#[actix_web::test]
async fn the_dashboard_counts_tasks_events_and_agents_per_bucket() {
    let server = Server::start().await;
    let b = board(&server, json!({})).await;
    let now = Utc::now();
    let base = hour(now);

    task_in(&server, &b, "waiting", "inbox").await;
    task_in(&server, &b, "working", "in_progress").await;
    task_in(&server, &b, "finished", "done").await;
    // The API clears in_progress_at on entering review (so the reference's cycle time
    // ignores such tasks); the ones with a cycle time get it back in SQL.
    task_in(&server, &b, "reviewed now", "review").await;
    let rev1 = task_in(&server, &b, "reviewed 5h ago", "review").await;
    let rev1_at = base - Duration::hours(5) + Duration::minutes(30);
    set_times(
        &server,
        &rev1,
        rev1_at,
        Some(rev1_at - Duration::minutes(90)),
    )
    .await;
    let rev2 = task_in(&server, &b, "reviewed 2h ago", "review").await;
    let rev2_at = base - Duration::hours(2) + Duration::minutes(10);
    set_times(
        &server,
        &rev2,
        rev2_at,
        Some(rev2_at - Duration::minutes(210)),
    )
    .await;
    // The previous window (24–48 h ago) and beyond.
    let old_rev = task_in(&server, &b, "reviewed yesterday", "review").await;
    let old_at = now - Duration::hours(30);
    set_times(&server, &old_rev, old_at, Some(old_at - Duration::hours(1))).await;
    let old_prog = task_in(&server, &b, "worked yesterday", "in_progress").await;
    set_times(&server, &old_prog, old_at, Some(old_at)).await;
    let old_inbox = task_in(&server, &b, "filed yesterday", "inbox").await;
    set_times(&server, &old_inbox, now - Duration::hours(40), None).await;
    let ancient = task_in(&server, &b, "reviewed long ago", "review").await;
    set_times(&server, &ancient, now - Duration::days(3), None).await;

    // Failed and other events in the bucket 5 h ago; a task-less failure does not count.
    let db = server.db.client().await;
    for (event_type, task, when) in [
        ("task.assignee_notify_failed", Some(uuid(&rev1)), rev1_at),
        ("task.updated", Some(uuid(&rev1)), rev1_at),
        ("task.comment", Some(uuid(&rev1)), rev1_at),
        ("task.lead_notified", Some(uuid(&rev1)), rev1_at),
        ("agent.update.failed", None, rev1_at),
        ("task.lead_notify_failed", Some(uuid(&old_rev)), old_at),
    ] {
        db.execute(
            "INSERT INTO activity_events (id, organization_id, board_id, event_type, task_id, created_at) \
             SELECT $1, organization_id, id, $2, $3, $4 FROM boards WHERE id = $5",
            &[&Uuid::new_v4(), &event_type, &task, &when, &uuid(&b)],
        )
        .await
        .unwrap();
    }
    let task_events_today: i64 = db
        .query_one(
            "SELECT count(*) FROM activity_events WHERE board_id = $1 AND task_id IS NOT NULL \
             AND created_at > now() - interval '24 hours'",
            &[&uuid(&b)],
        )
        .await
        .unwrap()
        .get(0);

    // Agents: one seen an hour ago, one three days ago; the gateway's main agent (on no
    // board) is never counted.
    for (name, seen) in [
        ("recent", now - Duration::hours(1)),
        ("stale", now - Duration::days(3)),
    ] {
        let agent = create_agent(&server, &b, name).await;
        assert_eq!(agent.status, 200, "{}", agent.text);
        db.execute(
            "UPDATE agents SET last_seen_at = $2 WHERE id = $1",
            &[&uuid(&agent.json), &seen],
        )
        .await
        .unwrap();
    }
    db.execute(
        "UPDATE agents SET last_seen_at = now() WHERE board_id IS NULL",
        &[],
    )
    .await
    .unwrap();

    let m = dashboard(&server, "").await;
    assert_eq!(m["range"], "24h");
    let generated: DateTime<Utc> = serde_json::from_value(m["generated_at"].clone()).unwrap();
    assert!(generated >= now);
    assert_eq!(m["kpis"]["active_agents"], 1);
    assert_eq!(m["kpis"]["tasks_in_progress"], 1);
    assert_eq!(m["kpis"]["median_cycle_time_hours_7d"], 2.5);
    let error_pct = m["kpis"]["error_rate_pct"].as_f64().unwrap();
    assert!(
        (error_pct - 100.0 / task_events_today as f64).abs() < 1e-9,
        "{error_pct} vs 1 of {task_events_today}"
    );

    for set in ["throughput", "cycle_time", "error_rate", "wip"] {
        for (which, start) in [
            ("primary", generated - Duration::hours(24)),
            ("comparison", generated - Duration::hours(48)),
        ] {
            let series = &m[set][which];
            assert_eq!(
                (&series["range"], &series["bucket"]),
                (&json!("24h"), &json!("hour"))
            );
            assert_eq!(points(series).len(), 25, "{set} {which}");
            assert_buckets(
                series,
                start,
                start + Duration::hours(24),
                Duration::hours(1),
            );
        }
    }

    let throughput = &m["throughput"]["primary"];
    assert_eq!(sum(throughput, "value"), 3.0);
    assert_eq!(at(throughput, hour(rev1_at), "value"), 1.0);
    assert_eq!(at(throughput, hour(rev2_at), "value"), 1.0);
    assert_eq!(sum(&m["throughput"]["comparison"], "value"), 1.0);
    assert_eq!(
        at(&m["throughput"]["comparison"], hour(old_at), "value"),
        1.0
    );

    let cycle = &m["cycle_time"]["primary"];
    assert_eq!(at(cycle, hour(rev1_at), "value"), 1.5);
    assert_eq!(at(cycle, hour(rev2_at), "value"), 3.5);
    assert_eq!(sum(cycle, "value"), 5.0);
    assert_eq!(
        at(&m["cycle_time"]["comparison"], hour(old_at), "value"),
        1.0
    );

    let errors = &m["error_rate"]["primary"];
    assert_eq!(at(errors, hour(rev1_at), "value"), 25.0);
    assert_eq!(at(errors, hour(rev2_at), "value"), 0.0);
    assert_eq!(
        at(&m["error_rate"]["comparison"], hour(old_at), "value"),
        100.0
    );

    let wip = &m["wip"]["primary"];
    let totals: Vec<f64> = ["inbox", "in_progress", "review", "done"]
        .iter()
        .map(|f| sum(wip, f))
        .collect();
    assert_eq!(totals, [1.0, 1.0, 3.0, 1.0]);
    assert_eq!(
        at(wip, hour(rev1_at), "review"),
        1,
        "counted in the bucket of its last update"
    );
    let wip_before = &m["wip"]["comparison"];
    let totals: Vec<f64> = ["inbox", "in_progress", "review", "done"]
        .iter()
        .map(|f| sum(wip_before, f))
        .collect();
    assert_eq!(totals, [1.0, 1.0, 1.0, 0.0]);
    assert!(at(wip, hour(rev1_at), "inbox").is_i64());

    // A week: daily buckets at UTC midnight, and the older tasks fall inside.
    let week = dashboard(&server, "?range_key=7d").await;
    assert_eq!(week["range"], "7d");
    let series = &week["throughput"]["primary"];
    assert_eq!(series["bucket"], "day");
    let generated: DateTime<Utc> = serde_json::from_value(week["generated_at"].clone()).unwrap();
    assert_buckets(
        series,
        generated - Duration::days(7),
        generated,
        Duration::days(1),
    );
    assert_eq!(sum(series, "value"), 5.0);
    assert_eq!(week["kpis"]["tasks_in_progress"], 2);
    assert_eq!(week["kpis"]["active_agents"], 2);
    assert_eq!(week["kpis"]["median_cycle_time_hours_7d"], 1.5);

    // Longer ranges: weeks start on Mondays, months on the 1st.
    let quarter = dashboard(&server, "?range_key=3m").await;
    let series = &quarter["wip"]["comparison"];
    assert_eq!(series["bucket"], "week");
    assert_buckets(
        series,
        generated - Duration::days(180),
        generated - Duration::days(90),
        Duration::weeks(1),
    );
    assert!(points(series)
        .iter()
        .all(|p| period(p).format("%a %H:%M").to_string() == "Mon 00:00"));
    let year = dashboard(&server, "?range_key=1y").await;
    let series = &year["error_rate"]["primary"];
    assert_eq!(series["bucket"], "month");
    assert!((12..=13).contains(&points(series).len()), "{series}");
    assert!(points(series)
        .iter()
        .all(|p| period(p).format("%d %H:%M").to_string() == "01 00:00"));
    assert_eq!(sum(&year["throughput"]["primary"], "value"), 5.0);
}

#[actix_web::test]
async fn an_empty_dashboard_is_all_zero_buckets() {
    let server = Server::start().await;
    let m = dashboard(&server, "?range_key=14d").await;
    assert_eq!(
        m["kpis"],
        json!({"active_agents": 0, "tasks_in_progress": 0, "error_rate_pct": 0.0, "median_cycle_time_hours_7d": null})
    );
    for set in ["throughput", "cycle_time", "error_rate"] {
        let series = &m[set]["primary"];
        assert_eq!(points(series).len(), 15, "{set}");
        assert!(points(series).iter().all(|p| p["value"] == json!(0.0)));
    }
    assert!(points(&m["wip"]["comparison"]).iter().all(|p| {
        ["inbox", "in_progress", "review", "done"]
            .iter()
            .all(|f| p[f] == json!(0))
    }));
}

#[actix_web::test]
async fn the_dashboard_is_scoped_to_readable_boards_of_the_organization() {
    let server = Server::start().await;
    let group = send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "Ops", "slug": "ops"}),
    )
    .await;
    assert_eq!(group.status, 200, "{}", group.text);
    let group_id = group.json["id"].as_str().unwrap().to_string();
    let a = board(&server, json!({})).await;
    let b = board(&server, json!({"board_group_id": group_id})).await;
    task_in(&server, &a, "a", "in_progress").await;
    task_in(&server, &b, "b1", "in_progress").await;
    task_in(&server, &b, "b2", "in_progress").await;
    let (a_id, b_id) = (uuid(&a), uuid(&b));

    let in_progress = |query: String| {
        let server = &server;
        async move { dashboard(server, &query).await["kpis"]["tasks_in_progress"].clone() }
    };
    assert_eq!(in_progress(String::new()).await, 3);
    assert_eq!(in_progress(format!("?board_id={a_id}")).await, 1);
    assert_eq!(in_progress(format!("?board_id={b_id}")).await, 2);
    assert_eq!(in_progress(format!("?group_id={group_id}")).await, 2);
    assert_eq!(
        in_progress(format!("?group_id={group_id}&board_id={a_id}")).await,
        0,
        "a board outside the group leaves nothing"
    );

    grant_only(&server, &[&a]).await;
    assert_eq!(in_progress(String::new()).await, 1);
    assert_eq!(in_progress(format!("?group_id={group_id}")).await, 0);
    let path = format!("/api/v1/metrics/dashboard?board_id={b_id}");
    assert_eq!(server.admin_get(&path).await.status, 403);

    switch_to_new_org(&server).await;
    assert_eq!(in_progress(String::new()).await, 0);
    for query in [format!("board_id={a_id}"), format!("group_id={group_id}")] {
        let reply = server
            .admin_get(&format!("/api/v1/metrics/dashboard?{query}"))
            .await;
        assert_eq!(reply.status, 404, "{query}: {}", reply.text);
    }
}

#[actix_web::test]
async fn bad_dashboard_queries_are_refused() {
    let server = Server::start().await;
    let reply = server
        .call(Method::GET, "/api/v1/metrics/dashboard", None, None)
        .await;
    assert_eq!(reply.status, 401);
    let reply = server
        .admin_get("/api/v1/metrics/dashboard?range_key=2h")
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json["detail"][0]["loc"],
        json!(["query", "range_key"])
    );
    assert_eq!(reply.json["detail"][0]["type"], "literal_error");
    assert_eq!(reply.json["detail"][0]["input"], "2h");
    for query in ["range_key=", "board_id=nope", "group_id=1"] {
        let reply = server
            .admin_get(&format!("/api/v1/metrics/dashboard?{query}"))
            .await;
        assert_eq!(reply.status, 422, "{query}: {}", reply.text);
        assert!(reply.json["detail"].is_array(), "{}", reply.text);
    }
    let reply = server
        .admin_get(&format!(
            "/api/v1/metrics/dashboard?board_id={}",
            Uuid::new_v4()
        ))
        .await;
    assert_eq!(reply.status, 404);
}
