//! The shared calendar (domain.md §D): recurring events expanded in their zone, schedules
//! with conflicts, workload, slot suggestions, and the console's range read.

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{create_agent, create_board, create_gateway, send, switch_to_new_org};
use crate::harness::{Reply, Server};

struct Office {
    board: Value,
    agent: String,
    task: String,
}

async fn office(server: &Server) -> Office {
    let gateway = create_gateway(server, "GW").await;
    let board = create_board(server, &gateway, "Plan", json!({})).await;
    let agent = create_agent(server, &board, "Planner").await.json["id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = task(server, &board, "Write the plan").await;
    Office { board, agent, task }
}

async fn task(server: &Server, board: &Value, title: &str) -> String {
    let path = format!("/api/v1/boards/{}/tasks", board["id"].as_str().unwrap());
    let reply = send(server, Method::POST, &path, json!({"title": title})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["id"].as_str().unwrap().to_string()
}

fn created(reply: Reply) -> Value {
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json
}

async fn event(server: &Server, body: Value) -> Value {
    created(send(server, Method::POST, "/api/v1/calendar/events", body).await)
}

async fn schedule(server: &Server, o: &Office, start: &str, end: &str) -> Reply {
    send(
        server,
        Method::POST,
        "/api/v1/calendar/schedules",
        json!({"task_id": o.task, "agent_id": o.agent, "board_id": o.board["id"],
               "scheduled_start": start, "scheduled_end": end, "estimated_hours": 2}),
    )
    .await
}

fn starts(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["starts_at"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn weekly_events_keep_their_local_hour_across_dst_and_skip_exdates() {
    let server = Server::start().await;
    let o = office(&server).await;
    // Mondays 09:00 in Berlin from 16 March 2026 (CET); summer time starts 29 March.
    let berlin = event(
        &server,
        json!({"title": "Stand-up", "event_type": "meeting", "board_id": o.board["id"],
               "starts_at": "2026-03-16T08:00:00Z", "ends_at": "2026-03-16T08:30:00Z",
               "timezone": "Europe/Berlin",
               "recurrence_rule": "RRULE:FREQ=WEEKLY;BYDAY=MO\nEXDATE:20260323T090000"}),
    )
    .await;
    assert_eq!(berlin["timezone"], "Europe/Berlin");
    let range = server
        .admin_get(
            "/api/v1/calendar/events?start_date=2026-03-01T00:00:00Z&end_date=2026-04-10T00:00:00Z",
        )
        .await;
    assert_eq!(range.status, 200, "{}", range.text);
    assert_eq!(
        starts(&range.json["events"]),
        [
            "2026-03-16T08:00:00Z",
            "2026-03-30T07:00:00Z",
            "2026-04-06T07:00:00Z"
        ]
    );
    let occurrence = &range.json["events"][1];
    assert_eq!(occurrence["id"], berlin["id"]);
    assert_eq!(occurrence["series_id"], berlin["id"]);
    assert_eq!(occurrence["occurrence_start"], "2026-03-30T07:00:00Z");
    assert_eq!(occurrence["ends_at"], "2026-03-30T07:30:00Z");

    // Shanghai kept summer time from 1986 to 1991: Sundays 09:00 local from 7 April 1991,
    // across its start on 14 April, without 21 April.
    event(
        &server,
        json!({"title": "Review", "starts_at": "1991-04-07T01:00:00Z", "timezone": "Asia/Shanghai",
               "recurrence_rule": "FREQ=WEEKLY;COUNT=4\nEXDATE:19910421T090000"}),
    )
    .await;
    let range = server
        .admin_get("/api/v1/calendar/range?start=1991-04-01T00:00:00Z&end=1991-05-01T00:00:00Z")
        .await;
    assert_eq!(range.status, 200, "{}", range.text);
    assert_eq!(
        starts(&range.json["events"]),
        [
            "1991-04-07T01:00:00Z",
            "1991-04-14T00:00:00Z",
            "1991-04-28T00:00:00Z"
        ]
    );
    assert_eq!(range.json["schedules"], json!([]));
}

#[actix_web::test]
async fn bad_events_are_refused_naming_the_field() {
    let server = Server::start().await;
    let o = office(&server).await;
    let post = |body: Value| {
        let server = &server;
        async move { send(server, Method::POST, "/api/v1/calendar/events", body).await }
    };
    let reply = post(json!({"title": "x", "starts_at": "2026-01-01T00:00:00Z",
                            "recurrence_rule": "FREQ=FORTNIGHTLY"}))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json["detail"][0]["loc"],
        json!(["body", "recurrence_rule"])
    );
    assert!(reply.json["detail"][0]["msg"]
        .as_str()
        .unwrap()
        .contains("not a valid RRULE"));
    let reply = post(json!({"title": " ", "starts_at": "2026-01-02T00:00:00Z",
                            "ends_at": "2026-01-01T00:00:00Z", "event_type": "party",
                            "timezone": "Mars/Olympus"}))
    .await;
    let locs: Vec<&Value> = reply.json["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["loc"][1])
        .collect();
    assert_eq!(
        locs,
        ["title", "event_type", "ends_at", "timezone"],
        "{}",
        reply.text
    );
    // A range that ends first, or is too long, is a 422.
    let reply = server
        .admin_get("/api/v1/calendar/range?start=2026-02-01T00:00:00Z&end=2026-01-01T00:00:00Z")
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = server.admin_get("/api/v1/calendar/range?start=soon").await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json["detail"].as_array().unwrap().len(),
        2,
        "{}",
        reply.text
    );

    // Edits are checked as a whole: a rule that the new start breaks is refused.
    let e = event(
        &server,
        json!({"title": "ok", "board_id": o.board["id"], "starts_at": "2026-01-01T09:00:00Z"}),
    )
    .await;
    let path = format!("/api/v1/calendar/events/{}", e["id"].as_str().unwrap());
    let reply = send(
        &server,
        Method::PATCH,
        &path,
        json!({"recurrence_rule": "BYDAY=MO"}),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = send(
        &server,
        Method::PATCH,
        &path,
        json!({"title": "renamed", "description": null}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["title"], "renamed");
}

#[actix_web::test]
async fn schedules_of_one_agent_may_not_overlap_on_create_or_update() {
    let server = Server::start().await;
    let o = office(&server).await;
    let first =
        created(schedule(&server, &o, "2026-12-07T09:00:00Z", "2026-12-07T11:00:00Z").await);
    assert_eq!(first["status"], "planned");
    // Touching is fine (half-open); overlapping is a 409 naming the schedule.
    let second =
        created(schedule(&server, &o, "2026-12-07T11:00:00Z", "2026-12-07T12:00:00Z").await);
    let clash = schedule(&server, &o, "2026-12-07T10:30:00Z", "2026-12-07T11:30:00Z").await;
    assert_eq!(clash.status, 409, "{}", clash.text);
    assert_eq!(
        clash.json["detail"]["message"],
        "Schedule conflicts with existing agent schedules."
    );
    assert_eq!(
        clash.json["detail"]["conflict_ids"],
        json!([first["id"], second["id"]])
    );
    // Moving the second onto the first is refused too; a completed schedule holds no time.
    let path = format!(
        "/api/v1/calendar/schedules/{}",
        second["id"].as_str().unwrap()
    );
    let moved = send(
        &server,
        Method::PATCH,
        &path,
        json!({"scheduled_start": "2026-12-07T10:00:00Z"}),
    )
    .await;
    assert_eq!(moved.status, 409, "{}", moved.text);
    assert_eq!(moved.json["detail"]["conflict_ids"], json!([first["id"]]));
    let first_path = format!(
        "/api/v1/calendar/schedules/{}",
        first["id"].as_str().unwrap()
    );
    let done = send(
        &server,
        Method::PATCH,
        &first_path,
        json!({"status": "completed"}),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    let moved = send(
        &server,
        Method::PATCH,
        &path,
        json!({"scheduled_start": "2026-12-07T10:00:00Z"}),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    // A range the wrong way round is a 422, never a database error.
    let backwards = schedule(&server, &o, "2026-12-08T10:00:00Z", "2026-12-08T09:00:00Z").await;
    assert_eq!(backwards.status, 422);
    assert_eq!(
        backwards.json["detail"],
        "scheduled_end must be after scheduled_start."
    );
    let backwards = send(
        &server,
        Method::PATCH,
        &path,
        json!({"scheduled_end": "2026-12-07T09:00:00Z"}),
    )
    .await;
    assert_eq!(backwards.status, 422, "{}", backwards.text);
    let bad_status = send(&server, Method::PATCH, &path, json!({"status": "paused"})).await;
    assert_eq!(bad_status.status, 422, "{}", bad_status.text);

    // Starting and finishing the task moves its schedules.
    let task_path = format!(
        "/api/v1/boards/{}/tasks/{}",
        o.board["id"].as_str().unwrap(),
        o.task
    );
    let started = send(
        &server,
        Method::PATCH,
        &task_path,
        json!({"status": "in_progress", "assigned_agent_id": o.agent}),
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.text);
    let now = server.admin_get(&path).await;
    assert_eq!(now.status, 405, "schedules are listed, not read one by one");
    let listed = server
        .admin_get("/api/v1/calendar/schedules?start_date=2026-12-07T00:00:00Z&end_date=2026-12-08T00:00:00Z")
        .await;
    let statuses: Vec<&str> = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "in_progress"], "{}", listed.text);
    assert!(listed.json[1]["actual_start"].is_string());
}

#[actix_web::test]
async fn workload_counts_the_hours_inside_the_range() {
    let server = Server::start().await;
    let o = office(&server).await;
    created(schedule(&server, &o, "2026-12-07T08:00:00Z", "2026-12-07T12:00:00Z").await);
    created(schedule(&server, &o, "2026-12-07T22:00:00Z", "2026-12-08T02:00:00Z").await);
    let other = create_agent(&server, &o.board, "Idle").await.json["id"].clone();
    let reply = server
        .admin_get(&format!(
            "/api/v1/calendar/workload?start_date=2026-12-07T10:00:00Z&end_date=2026-12-08T00:00:00Z&agent_ids[]={}&agent_ids[]={}",
            o.agent,
            other.as_str().unwrap()
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mine = &reply.json["workload"][&o.agent];
    assert_eq!(
        mine["hours_scheduled"], 4.0,
        "2 h of the first, 2 h of the second"
    );
    assert_eq!(mine["schedule_ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        reply.json["workload"][other.as_str().unwrap()],
        json!({"hours_scheduled": 0.0, "schedule_ids": []})
    );
}

#[actix_web::test]
async fn slots_avoid_meetings_holidays_weekends_and_the_end_of_the_day() {
    let server = Server::start().await;
    let o = office(&server).await;
    // Monday 2026-12-07 in Berlin (UTC+1): a meeting 09:00–10:15 local, Tuesday a holiday.
    event(
        &server,
        json!({"title": "Planning", "event_type": "meeting", "board_id": o.board["id"],
               "starts_at": "2026-12-07T08:00:00Z", "ends_at": "2026-12-07T09:15:00Z"}),
    )
    .await;
    event(
        &server,
        json!({"title": "Day off", "event_type": "holiday", "is_all_day": true,
               "starts_at": "2026-12-08T00:00:00Z", "timezone": "Europe/Berlin"}),
    )
    .await;
    created(schedule(&server, &o, "2026-12-07T09:30:00Z", "2026-12-07T16:00:00Z").await);
    let suggest = |body: Value| {
        let server = &server;
        async move { send(server, Method::POST, "/api/v1/calendar/suggest-slot", body).await }
    };
    // 1 h from Monday 09:00 Berlin: the meeting, then the schedule until 17:00 local, then
    // 17:00–18:00 fits.
    let reply = suggest(json!({"agent_id": o.agent, "duration_hours": 1,
                               "preferred_after": "2026-12-07T08:00:00Z", "timezone": "Europe/Berlin"}))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["suggested_start"], "2026-12-07T16:00:00Z");
    assert_eq!(reply.json["suggested_end"], "2026-12-07T17:00:00Z");
    assert_eq!(reply.json["conflicts"], json!([]));
    // 2 h do not fit on Monday; Tuesday is the holiday: Wednesday 09:00 Berlin.
    let reply = suggest(json!({"agent_id": o.agent, "duration_hours": 2,
                               "preferred_after": "2026-12-07T08:00:00Z", "timezone": "Europe/Berlin"}))
    .await;
    assert_eq!(
        reply.json["suggested_start"], "2026-12-09T08:00:00Z",
        "{}",
        reply.text
    );
    // From Friday 17:30 Berlin: Monday 09:00.
    let reply = suggest(json!({"agent_id": o.agent, "duration_hours": 1,
                               "preferred_after": "2026-12-11T16:30:00Z", "timezone": "Europe/Berlin"}))
    .await;
    assert_eq!(
        reply.json["suggested_start"], "2026-12-14T08:00:00Z",
        "{}",
        reply.text
    );
    // Nothing before the bound: 409; a day longer than a working day: 422.
    let reply = suggest(json!({"agent_id": o.agent, "duration_hours": 1,
                               "preferred_after": "2026-12-12T08:00:00Z",
                               "preferred_before": "2026-12-13T20:00:00Z"}))
    .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    let reply = suggest(json!({"agent_id": o.agent, "duration_hours": 10})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json["detail"][0]["loc"],
        json!(["body", "duration_hours"])
    );
}

#[actix_web::test]
async fn another_organizations_calendar_is_not_found() {
    let server = Server::start().await;
    let o = office(&server).await;
    let e = event(
        &server,
        json!({"title": "Ours", "board_id": o.board["id"], "starts_at": "2026-12-07T08:00:00Z"}),
    )
    .await;
    let s = created(schedule(&server, &o, "2026-12-07T09:00:00Z", "2026-12-07T10:00:00Z").await);
    switch_to_new_org(&server).await;
    let event_path = format!("/api/v1/calendar/events/{}", e["id"].as_str().unwrap());
    let schedule_path = format!("/api/v1/calendar/schedules/{}", s["id"].as_str().unwrap());
    for (method, path, body) in [
        (Method::PATCH, &event_path, json!({"title": "Theirs"})),
        (Method::DELETE, &event_path, json!({})),
        (Method::PATCH, &schedule_path, json!({"status": "missed"})),
        (Method::DELETE, &schedule_path, json!({})),
    ] {
        let reply = send(&server, method.clone(), path, body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
    }
    let workload = server
        .admin_get(&format!(
            "/api/v1/calendar/workload?start_date=2026-12-07T00:00:00Z&end_date=2026-12-08T00:00:00Z&agent_ids[]={}",
            o.agent
        ))
        .await;
    assert_eq!(workload.status, 404);
    let slot = send(
        &server,
        Method::POST,
        "/api/v1/calendar/suggest-slot",
        json!({"agent_id": o.agent, "duration_hours": 1}),
    )
    .await;
    assert_eq!(slot.status, 404);
    let create = schedule(&server, &o, "2026-12-07T11:00:00Z", "2026-12-07T12:00:00Z").await;
    assert_eq!(create.status, 404, "{}", create.text);
    let range = server
        .admin_get("/api/v1/calendar/range?start=2026-12-01T00:00:00Z&end=2026-12-31T00:00:00Z")
        .await;
    assert_eq!(range.json, json!({"events": [], "schedules": []}));
}
