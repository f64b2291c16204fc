//! Pipelines end to end (M10): checked stages, each template run to completion through the
//! real actions (a task done, an approval approved, a manual advance, a loopback webhook
//! receiver), condition branches, stage timeouts, the concurrency cap, triggers, and a run
//! taken over after kill -9 of the instance holding it in the middle of a webhook call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{
    activity, agent, create_task, created, delete, new_board, send, sign, switch_to_new_org,
    update_task,
};
use crate::gateway_requests::{connect, labels, message, notices, office};
use crate::harness::{eventually, Server};

/// What the webhook receiver saw: (path, idempotency key, signature, body).
type Seen = Arc<Mutex<Vec<(String, String, String, Value)>>>;

/// A loopback webhook receiver: `/ok` answers 200, `/fail` 500, and `/slow` holds a key's
/// first request for a minute and answers a repeat of it (same idempotency key) with 200,
/// as a receiver that deduplicates does.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let data = web::Data::new(seen.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).default_service(web::to(
            |req: HttpRequest, body: web::Bytes, seen: web::Data<Seen>| async move {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let key = header("idempotency-key");
                let repeat = seen.lock().unwrap().iter().any(|(_, k, _, _)| *k == key);
                seen.lock().unwrap().push((
                    req.path().to_string(),
                    key,
                    header("x-webhook-signature"),
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ));
                match req.path() {
                    "/fail" => HttpResponse::InternalServerError().finish(),
                    "/slow" if !repeat => {
                        actix_web::rt::time::sleep(Duration::from_secs(60)).await;
                        HttpResponse::Ok().finish()
                    }
                    _ => HttpResponse::Ok().finish(),
                }
            },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let address = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (format!("http://{address}"), seen)
}

async fn create_pipeline(server: &Server, body: Value) -> Value {
    created(server, "/api/v1/pipelines", body).await
}

async fn start(server: &Server, pipeline: &Value, input: Value) -> Value {
    let path = format!("/api/v1/pipelines/{}/run", pipeline["id"].as_str().unwrap());
    let reply = send(server, Method::POST, &path, json!({"input_data": input})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json
}

async fn run_of(server: &Server, run: &Value) -> Value {
    let reply = server
        .admin_get(&format!(
            "/api/v1/pipeline-runs/{}",
            run["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// Waits until `check` holds for the run; the run then.
async fn run_until(
    server: &Server,
    run: &Value,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = run_of(server, run).await;
        if check(&last) {
            return last;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run never {what}: {last:#}\n{}", server.log())
}

/// Waits for the run to wait at `stage` (paused, or running for a webhook) with `status`.
async fn at_stage(server: &Server, run: &Value, stage: &str, status: &str) -> Value {
    run_until(server, run, &format!("at {stage} {status}"), |r| {
        r["current_stage_id"] == stage && r["stage_results"][stage]["status"] == status
    })
    .await
}

async fn ended(server: &Server, run: &Value, status: &str) -> Value {
    run_until(server, run, status, |r| r["status"] == status).await
}

/// A pipeline's runs (`query`: e.g. `?run_status=queued`), as the list answers them.
async fn runs_of(server: &Server, pipeline: &Value, query: &str) -> Value {
    let path = format!(
        "/api/v1/pipelines/{}/runs{query}",
        pipeline["id"].as_str().unwrap()
    );
    let reply = server.admin_get(&path).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// The instance holding the run.
async fn holder_of(server: &Server, run: &Value) -> String {
    let id = uuid::Uuid::parse_str(run["id"].as_str().unwrap()).unwrap();
    let db = server.db.client().await;
    let row = db
        .query_one(
            "SELECT lease_owner FROM pipeline_runs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    row.get(0)
}

fn template(templates: &Value, id: &str) -> Value {
    templates
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
        .clone()
}

async fn templates(server: &Server) -> Value {
    let reply = server.admin_get("/api/v1/pipeline-templates").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// Waits for the run's `approval` stage and resolves its approval (`approved` or
/// `rejected`) through the board's API; the run as it waited.
async fn resolve_approval(
    server: &Server,
    board: &Value,
    run: &Value,
    stage: &str,
    status: &str,
) -> Value {
    let waiting = at_stage(server, run, stage, "waiting_approval").await;
    let path = format!(
        "/api/v1/boards/{}/approvals/{}",
        board["id"].as_str().unwrap(),
        waiting["stage_results"][stage]["approval_id"]
            .as_str()
            .unwrap()
    );
    let reply = send(server, Method::PATCH, &path, json!({"status": status})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    waiting
}

/// Waits for the run's `ai_task` stage and marks the task it created done; the run as it
/// waited.
async fn complete_task(server: &Server, board: &Value, run: &Value, stage: &str) -> Value {
    let waiting = at_stage(server, run, stage, "waiting").await;
    let task_id = waiting["stage_results"][stage]["task_id"].clone();
    let task = json!({"id": task_id, "board_id": board["id"]});
    update_task(server, &task, json!({"status": "done"})).await;
    waiting
}

#[actix_web::test]
async fn pipelines_are_checked_and_scoped_to_their_organization() {
    let server = Server::start().await;
    let listed = templates(&server).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["review_flow", "onboarding", "release_flow"]);
    assert_eq!(template(&listed, "review_flow")["name"], "代码评审流程");

    // Bad stages: each error names the stage and its field.
    let bad = send(
        &server,
        Method::POST,
        "/api/v1/pipelines",
        json!({"name": "bad", "stages": [
            {"id": "a", "type": "ai_task", "next_stage_id": "nowhere"},
            {"id": "a", "type": "teleport"},
            {"id": "c", "type": "condition", "condition": {"expression": "x > 1"}},
            {"id": "w", "type": "webhook", "config": {"url": "ftp://example.com", "max_attempts": 0}},
            {"id": "m1", "type": "manual", "next_stage_id": "m2"},
            {"id": "m2", "type": "manual", "next_stage_id": "m1"}
        ], "trigger_config": {"trigger_type": "sometimes"}}),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let locs: Vec<String> = bad.json["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].to_string())
        .collect();
    for expected in [
        r#"["body","stages",0,"next_stage_id"]"#,
        r#"["body","stages",1,"id"]"#,
        r#"["body","stages",1,"type"]"#,
        r#"["body","stages",2,"condition","expression"]"#,
        r#"["body","stages",3,"config","url"]"#,
        r#"["body","stages",3,"config","max_attempts"]"#,
        r#"["body","trigger_config","trigger_type"]"#,
    ] {
        assert!(
            locs.contains(&expected.to_string()),
            "{expected} not in {locs:?}"
        );
    }
    assert!(bad.text.contains("loop"), "{}", bad.text);
    let missing_name = send(
        &server,
        Method::POST,
        "/api/v1/pipelines",
        json!({"stages": []}),
    )
    .await;
    assert_eq!(missing_name.status, 422);
    let wrong_type = send(
        &server,
        Method::POST,
        "/api/v1/pipelines",
        json!({"name": "x", "stages": "nope"}),
    )
    .await;
    assert_eq!(wrong_type.status, 422);
    let nul = send(
        &server,
        Method::POST,
        "/api/v1/pipelines",
        json!({"name": "a\u{0}b"}),
    )
    .await;
    assert_eq!(nul.status, 422);
    let unauthenticated = server.get("/api/v1/pipelines").await;
    assert_eq!(unauthenticated.status, 401);

    // An empty pipeline and one whose ai_task has no board cannot run: 422, not 500.
    let empty = create_pipeline(&server, json!({"name": "empty"})).await;
    assert_eq!(empty["stages"], json!([]));
    assert_eq!(empty["pipeline_type"], "general");
    let run_path = format!("/api/v1/pipelines/{}/run", empty["id"].as_str().unwrap());
    assert_eq!(
        send(&server, Method::POST, &run_path, json!({}))
            .await
            .status,
        422
    );
    let review = template(&listed, "review_flow");
    let boardless = create_pipeline(
        &server,
        json!({"name": "no board", "stages": review["stages"]}),
    )
    .await;
    let path = format!(
        "/api/v1/pipelines/{}/run",
        boardless["id"].as_str().unwrap()
    );
    let refused = send(&server, Method::POST, &path, json!(null)).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("stage_ai_review"), "{}", refused.text);

    // Patch: absent fields stay, null never clears stages; an inactive pipeline cannot run.
    let path = format!("/api/v1/pipelines/{}", boardless["id"].as_str().unwrap());
    let patched = send(
        &server,
        Method::PATCH,
        &path,
        json!({"stages": null, "is_active": false, "description": "d"}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["stages"], review["stages"]);
    assert_eq!(patched.json["description"], "d");
    let inactive = send(&server, Method::POST, &format!("{path}/run"), json!({})).await;
    assert_eq!(inactive.status, 409, "{}", inactive.text);
    let only_active = server.admin_get("/api/v1/pipelines?is_active=true").await;
    assert_eq!(only_active.json["total"], 1, "{}", only_active.text);

    // A board of another organization is refused; another organization sees none of this.
    let board = new_board(&server, json!({})).await;
    let manual = create_pipeline(
        &server,
        json!({"name": "manual", "board_id": board["id"], "stages": [{"id": "m", "type": "manual"}]}),
    )
    .await;
    let run = start(&server, &manual, json!({})).await;
    switch_to_new_org(&server).await;
    let foreign = send(
        &server,
        Method::POST,
        "/api/v1/pipelines",
        json!({"name": "x", "board_id": board["id"]}),
    )
    .await;
    assert_eq!(foreign.status, 422, "{}", foreign.text);
    let manual_path = format!("/api/v1/pipelines/{}", manual["id"].as_str().unwrap());
    let run_path = format!("/api/v1/pipeline-runs/{}", run["id"].as_str().unwrap());
    assert_eq!(server.admin_get(&manual_path).await.status, 404);
    assert_eq!(
        server
            .admin_get(&format!("{manual_path}/runs"))
            .await
            .status,
        404
    );
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{manual_path}/run"),
            json!({})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        send(&server, Method::PATCH, &manual_path, json!({"name": "y"}))
            .await
            .status,
        404
    );
    assert_eq!(delete(&server, &manual_path).await.status, 404);
    assert_eq!(server.admin_get(&run_path).await.status, 404);
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{run_path}/advance"),
            json!({})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{run_path}/cancel"),
            json!(null)
        )
        .await
        .status,
        404
    );
    assert_eq!(server.admin_get("/api/v1/pipelines").await.json["total"], 0);
}

#[actix_web::test]
async fn the_review_template_runs_through_a_task_an_approval_and_an_advance() {
    let server = Server::start().await;
    let board = new_board(&server, json!({"require_approval_for_done": false})).await;
    let review = template(&templates(&server).await, "review_flow");
    let pipeline = create_pipeline(
        &server,
        json!({"name": review["name"], "pipeline_type": "review_flow", "board_id": board["id"],
               "stages": review["stages"], "trigger_config": review["trigger_config"]}),
    )
    .await;
    let run = start(&server, &pipeline, json!({"pr": 42})).await;
    assert_eq!(run["input_data"], json!({"pr": 42}));

    // ai_task: a real task on the board, created by the run; its completion moves the run
    // by itself.
    let waiting = complete_task(&server, &board, &run, "stage_ai_review").await;
    assert_eq!(waiting["status"], "paused");
    let board_path = format!("/api/v1/boards/{}", board["id"].as_str().unwrap());
    let tasks = server.admin_get(&format!("{board_path}/tasks")).await;
    let task = &tasks.json["items"][0];
    assert_eq!(task["title"], "代码评审分析");
    assert_eq!(
        task["id"],
        waiting["stage_results"]["stage_ai_review"]["task_id"]
    );

    // approval: a real approval on the board; approving it moves the run.
    let waiting = resolve_approval(&server, &board, &run, "stage_approval", "approved").await;
    assert_eq!(
        waiting["stage_results"]["stage_ai_review"]["status"],
        "completed"
    );
    let approvals = server.admin_get(&format!("{board_path}/approvals")).await;
    let approval = &approvals.json["items"][0];
    assert_eq!(
        approval["id"],
        waiting["stage_results"]["stage_approval"]["approval_id"]
    );
    assert_eq!(approval["action_type"], "pipeline_approval");
    assert_eq!(approval["status"], "approved");

    // manual: waits for advance, whose body is the stage's output.
    let waiting = at_stage(&server, &run, "stage_confirm", "waiting_manual").await;
    assert_eq!(
        waiting["stage_results"]["stage_confirm"]["message"],
        "请确认代码评审已完成"
    );
    let path = format!("/api/v1/pipeline-runs/{}", run["id"].as_str().unwrap());
    let bad_body = send(
        &server,
        Method::POST,
        &format!("{path}/advance"),
        json!([1]),
    )
    .await;
    assert_eq!(bad_body.status, 422, "{}", bad_body.text);
    let advanced = send(
        &server,
        Method::POST,
        &format!("{path}/advance"),
        json!({"confirmed": true}),
    )
    .await;
    assert_eq!(advanced.status, 200, "{}", advanced.text);
    let done = ended(&server, &run, "completed").await;
    assert_eq!(done["current_stage_id"], Value::Null);
    assert!(done["completed_at"].is_string());
    assert_eq!(
        done["stage_results"]["stage_confirm"]["output"],
        json!({"confirmed": true})
    );
    assert_eq!(
        done["stage_results"]["stage_approval"]["approval_status"],
        "approved"
    );

    // An ended run is neither advanced nor cancelled again; the feed has the run's life.
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{path}/advance"),
            json!(null)
        )
        .await
        .status,
        409
    );
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{path}/cancel"),
            json!(null)
        )
        .await
        .status,
        409
    );
    assert_eq!(activity(&server, "pipeline.run.started").await.len(), 1);
    assert_eq!(activity(&server, "pipeline.run.completed").await.len(), 1);
    let completed = runs_of(&server, &pipeline, "?run_status=completed").await;
    assert_eq!(completed["total"], 1, "{completed}");
}

#[actix_web::test]
async fn onboarding_runs_to_completion_and_a_rejection_fails_or_branches() {
    let server = Server::start().await;
    let board = new_board(&server, json!({"require_approval_for_done": false})).await;
    let onboarding = template(&templates(&server).await, "onboarding");
    let pipeline = create_pipeline(
        &server,
        json!({"name": "onboarding", "board_id": board["id"], "stages": onboarding["stages"]}),
    )
    .await;
    let run = start(&server, &pipeline, json!({})).await;
    complete_task(&server, &board, &run, "stage_setup").await;
    resolve_approval(&server, &board, &run, "stage_permissions", "approved").await;
    complete_task(&server, &board, &run, "stage_training").await;
    ended(&server, &run, "completed").await;

    // A rejection fails the run...
    let second = start(&server, &pipeline, json!({})).await;
    complete_task(&server, &board, &second, "stage_setup").await;
    resolve_approval(&server, &board, &second, "stage_permissions", "rejected").await;
    let failed = ended(&server, &second, "failed").await;
    assert_eq!(
        failed["stage_results"]["stage_permissions"]["error"],
        "the approval was rejected"
    );

    // ...unless the stage has a failure branch.
    let branching = create_pipeline(
        &server,
        json!({"name": "branching", "board_id": board["id"], "stages": [
            {"id": "ask", "type": "approval", "config": {"title": "May I?"}, "next_stage_id": "yes", "on_failure_stage_id": "no"},
            {"id": "yes", "type": "manual"},
            {"id": "no", "type": "manual", "config": {"message": "rejected: tidy up"}}
        ]}),
    )
    .await;
    let third = start(&server, &branching, json!({})).await;
    resolve_approval(&server, &board, &third, "ask", "rejected").await;
    let branched = at_stage(&server, &third, "no", "waiting_manual").await;
    assert_eq!(branched["stage_results"]["ask"]["status"], "failed");

    // A deleted task fails the stage waiting on it.
    let fourth = start(&server, &pipeline, json!({})).await;
    let waiting = at_stage(&server, &fourth, "stage_setup", "waiting").await;
    let task_path = format!(
        "/api/v1/boards/{}/tasks/{}",
        board["id"].as_str().unwrap(),
        waiting["stage_results"]["stage_setup"]["task_id"]
            .as_str()
            .unwrap()
    );
    assert_eq!(delete(&server, &task_path).await.status, 200);
    let failed = ended(&server, &fourth, "failed").await;
    assert_eq!(
        failed["stage_results"]["stage_setup"]["error"],
        "the stage's task was deleted"
    );
}

#[actix_web::test]
async fn the_release_template_calls_its_webhook_signed_and_retries_then_moves_on() {
    let (receiver, seen) = receiver().await;
    let server = Server::start().await;
    let board = new_board(&server, json!({"require_approval_for_done": false})).await;
    let mut release = template(&templates(&server).await, "release_flow");
    release["stages"][2]["config"]["url"] = json!(format!("{receiver}/ok"));
    release["stages"][2]["config"]["secret"] = json!("s3cret");
    release["stages"][2]["config"]["headers"] = json!({"X-Release": "1.2.3"});
    let pipeline = create_pipeline(
        &server,
        json!({"name": "release", "board_id": board["id"], "stages": release["stages"]}),
    )
    .await;
    let run = start(&server, &pipeline, json!({"version": "1.2.3"})).await;
    complete_task(&server, &board, &run, "stage_test").await;
    resolve_approval(&server, &board, &run, "stage_approve", "approved").await;
    let done = ended(&server, &run, "completed").await;
    assert_eq!(done["stage_results"]["stage_notify"]["http_status"], 200);
    assert_eq!(done["stage_results"]["stage_notify"]["attempts"], 1);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (path, key, signature, body) = &seen[0];
        assert_eq!(path, "/ok");
        assert!(
            key.starts_with(&format!("{}:stage_notify:", run["id"].as_str().unwrap())),
            "{key}"
        );
        assert_eq!(body["input_data"], json!({"version": "1.2.3"}));
        assert_eq!(body["stage_id"], "stage_notify");
        // The signature is over the body as sent.
        assert_eq!(*signature, sign("s3cret", &body.to_string()));
    }

    // A receiver answering 500: retried with backoff, then the stage fails and the run moves
    // on to its failure branch (a webhook no longer leaves a run running for ever).
    let failing = create_pipeline(
        &server,
        json!({"name": "failing", "stages": [
            {"id": "notify", "type": "webhook", "config": {"url": format!("{receiver}/fail"), "max_attempts": 2},
             "on_failure_stage_id": "fallback"},
            {"id": "fallback", "type": "webhook", "config": {"url": format!("{receiver}/ok")}}
        ]}),
    )
    .await;
    let run = start(&server, &failing, json!({})).await;
    let done = ended(&server, &run, "completed").await;
    assert_eq!(done["stage_results"]["notify"]["status"], "failed");
    assert_eq!(done["stage_results"]["notify"]["attempts"], 2);
    assert_eq!(done["stage_results"]["notify"]["http_status"], 500);
    assert_eq!(done["stage_results"]["fallback"]["status"], "completed");
    let seen = seen.lock().unwrap();
    // One logical delivery: the same key on every attempt, each attempt numbered once.
    let fails: Vec<_> = seen.iter().filter(|s| s.0 == "/fail").collect();
    assert_eq!(fails.len(), 2);
    assert_eq!(fails[0].1, fails[1].1, "one key for the stage's attempts");
    let numbers: Vec<&Value> = fails.iter().map(|s| &s.3["attempt"]).collect();
    assert_eq!(numbers, [&json!(1), &json!(2)]);
    // Without a secret nothing is signed; a template's empty url skips its stage.
    assert!(seen
        .iter()
        .filter(|s| s.0 == "/fail")
        .all(|s| s.2.is_empty()));
}

#[actix_web::test]
async fn conditions_execute_their_branch_and_stages_time_out() {
    let server = Server::start().await;
    let pipeline = create_pipeline(
        &server,
        json!({"name": "branches", "stages": [
            {"id": "check", "type": "condition",
             "condition": {"expression": "input_data.env == 'prod'", "true_next_stage_id": "careful", "false_next_stage_id": "quick"}},
            {"id": "careful", "type": "manual", "config": {"timeout_seconds": 1}, "on_failure_stage_id": "escalate"},
            {"id": "quick", "type": "manual"},
            {"id": "escalate", "type": "manual", "config": {"message": "nobody confirmed in time"}}
        ]}),
    )
    .await;
    let prod = start(&server, &pipeline, json!({"env": "prod"})).await;
    let dev = start(&server, &pipeline, json!({"env": "dev"})).await;
    let at_quick = at_stage(&server, &dev, "quick", "waiting_manual").await;
    assert_eq!(
        at_quick["stage_results"]["check"]["condition_result"],
        false
    );
    assert_eq!(at_quick["stage_results"]["check"]["next_stage_id"], "quick");
    // The prod run enters "careful" (the branch is executed, not skipped), which times out
    // after a second and takes its failure branch.
    let escalated = at_stage(&server, &prod, "escalate", "waiting_manual").await;
    assert_eq!(
        escalated["stage_results"]["check"]["condition_result"],
        true
    );
    assert_eq!(escalated["stage_results"]["careful"]["status"], "failed");
    assert_eq!(escalated["stage_results"]["careful"]["timed_out"], true);

    // Without a failure branch a timeout fails the run.
    let strict = create_pipeline(
        &server,
        json!({"name": "strict", "stages": [{"id": "wait", "type": "manual", "config": {"timeout_seconds": 1}}]}),
    )
    .await;
    let run = start(&server, &strict, json!({})).await;
    let failed = ended(&server, &run, "failed").await;
    assert!(failed["stage_results"]["wait"]["error"]
        .as_str()
        .unwrap()
        .contains("timed out"));
    assert_eq!(activity(&server, "pipeline.run.failed").await.len(), 1);

    // Conditions that send the run round for ever (a loop the checks allow, since it passes
    // through conditions) end after 1,000 moves instead of spinning.
    let spinning = create_pipeline(
        &server,
        json!({"name": "spinning", "stages": [
            {"id": "a", "type": "condition", "condition": {"expression": "true", "true_next_stage_id": "b"}},
            {"id": "b", "type": "condition", "condition": {"expression": "true", "true_next_stage_id": "a"}}
        ]}),
    )
    .await;
    let run = start(&server, &spinning, json!({})).await;
    let failed = run_until(&server, &run, "stopped", |r| r["status"] == "failed").await;
    let errors: Vec<&str> = ["a", "b"]
        .iter()
        .filter_map(|s| failed["stage_results"][s]["error"].as_str())
        .collect();
    assert!(errors.iter().any(|e| e.contains("loop")), "{failed}");
}

#[actix_web::test]
async fn the_cap_queues_the_eleventh_run_and_starts_it_when_one_ends() {
    let server = Server::start().await;
    let pipeline = create_pipeline(
        &server,
        json!({"name": "capped", "stages": [{"id": "m", "type": "manual"}]}),
    )
    .await;
    let mut runs = Vec::new();
    for _ in 0..10 {
        let run = start(&server, &pipeline, json!({})).await;
        assert_eq!(run["status"], "running", "{run}");
        runs.push(run);
    }
    let eleventh = start(&server, &pipeline, json!({})).await;
    assert_eq!(eleventh["status"], "queued");
    let twelfth = start(&server, &pipeline, json!({})).await;
    assert_eq!(twelfth["status"], "queued");
    for run in &runs {
        at_stage(&server, run, "m", "waiting_manual").await;
    }
    // Still queued while ten are under way.
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(run_of(&server, &eleventh).await["status"], "queued");
    // Cancelling a queued run frees nothing; cancelling a running one starts the oldest queued.
    let path = format!(
        "/api/v1/pipeline-runs/{}/cancel",
        twelfth["id"].as_str().unwrap()
    );
    let cancelled = send(&server, Method::POST, &path, json!(null)).await;
    assert_eq!(cancelled.json["status"], "cancelled", "{}", cancelled.text);
    let path = format!(
        "/api/v1/pipeline-runs/{}/cancel",
        runs[0]["id"].as_str().unwrap()
    );
    let cancelled = send(&server, Method::POST, &path, json!(null)).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.json["stage_results"]["m"]["status"], "cancelled");
    at_stage(&server, &eleventh, "m", "waiting_manual").await;
    let queued = runs_of(&server, &pipeline, "?run_status=queued").await;
    assert_eq!(queued["total"], 0, "{queued}");
}

#[actix_web::test]
async fn events_and_schedules_start_runs_once() {
    let server = Server::start().await;
    let other = server.second_instance().await;
    let board = new_board(&server, json!({})).await;
    let on_event = create_pipeline(
        &server,
        json!({"name": "on task", "board_id": board["id"],
               "stages": [{"id": "follow", "type": "ai_task", "config": {"task_title": "Follow up"}}],
               "trigger_config": {"trigger_type": "event", "event_type": "task.created", "board_id": board["id"]}}),
    )
    .await;
    let task = create_task(&server, &board, json!({"title": "triggering"})).await;
    let started = eventually(Duration::from_secs(15), || async {
        runs_of(&server, &on_event, "").await["total"] == 1
    })
    .await;
    assert!(started, "no run for the event\n{}", server.log());
    let run = runs_of(&server, &on_event, "").await["items"][0].clone();
    assert_eq!(run["input_data"]["event_type"], "task.created");
    assert_eq!(run["input_data"]["event"]["title"], "triggering", "{run}");
    assert_eq!(run["input_data"]["board_id"], task["board_id"]);
    // The run's own task (created on the same board) starts no second run.
    at_stage(&server, &run, "follow", "waiting").await;
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runs_of(&server, &on_event, "").await["total"], 1);

    // Every two seconds, on two instances: each firing starts one run.
    let scheduled = create_pipeline(
        &server,
        json!({"name": "tick", "stages": [{"id": "w", "type": "webhook", "config": {"url": ""}}],
               "trigger_config": {"trigger_type": "schedule", "cron_expr": "*/2 * * * * *"}}),
    )
    .await;
    let bad_cron = send(
        &server,
        Method::POST,
        "/api/v1/pipelines",
        json!({"name": "bad", "trigger_config": {"trigger_type": "schedule", "cron_expr": "every day"}}),
    )
    .await;
    assert_eq!(bad_cron.status, 422, "{}", bad_cron.text);
    assert!(bad_cron.text.contains("cron_expr"));
    let fired = eventually(Duration::from_secs(20), || async {
        runs_of(&server, &scheduled, "").await["total"]
            .as_i64()
            .unwrap_or(0)
            >= 3
    })
    .await;
    assert!(
        fired,
        "schedule did not fire\n{}\n{}",
        server.log(),
        other.log()
    );
    let path = format!("/api/v1/pipelines/{}", scheduled["id"].as_str().unwrap());
    assert_eq!(
        send(&server, Method::PATCH, &path, json!({"is_active": false}))
            .await
            .status,
        200
    );
    let runs = runs_of(&server, &scheduled, "").await["items"].clone();
    let mut firings: HashMap<String, usize> = HashMap::new();
    for run in runs.as_array().unwrap() {
        *firings
            .entry(run["input_data"]["scheduled_at"].to_string())
            .or_default() += 1;
    }
    assert!(
        firings.values().all(|n| *n == 1),
        "a firing started twice: {firings:?}"
    );
    for run in runs.as_array().unwrap() {
        ended(&server, run, "completed").await;
    }
}

#[actix_web::test]
async fn kill_9_of_the_holder_mid_webhook_another_instance_goes_on_without_repeating_an_attempt() {
    let (receiver, seen) = receiver().await;
    let lease = |name: &str| {
        Server::builder()
            .env("PIPELINE_LEASE_SECONDS", "3")
            .env("INSTANCE_ID", name)
    };
    let first = lease("pipelines-a").start().await;
    let second = lease("pipelines-b").start_on(&first).await;
    let pipeline = create_pipeline(
        &first,
        json!({"name": "slow", "stages": [
            {"id": "call", "type": "webhook", "config": {"url": format!("{receiver}/slow")}, "next_stage_id": "after"},
            {"id": "after", "type": "manual"}
        ]}),
    )
    .await;
    let run = start(&first, &pipeline, json!({})).await;
    let called = eventually(Duration::from_secs(10), || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    assert!(
        called,
        "webhook never called\n{}\n{}",
        first.log(),
        second.log()
    );
    let holder = holder_of(&first, &run).await;
    let (mut dead, alive) = if holder == "pipelines-a" {
        (first, second)
    } else {
        (second, first)
    };
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe { libc::kill(dead.pid() as i32, libc::SIGKILL) };
    assert!(dead.wait_exit(Duration::from_secs(5)).is_some());

    // The other instance takes the run over when the lease runs out and makes the same
    // attempt again, with the same key; the run then moves on.
    let moved = at_stage(&alive, &run, "after", "waiting_manual").await;
    // The interrupted attempt counts as made (its delivery is unknown): the new holder makes
    // attempt 2, never attempt 1 again; both carry the stage's one key, which a receiver
    // that remembers keys (this one) answers at once.
    let call = &moved["stage_results"]["call"];
    assert_eq!(call["attempts"], 2, "{call}");
    assert_eq!(call["http_status"], 200);
    assert!(
        call["last_error"].as_str().unwrap().contains("interrupted"),
        "{call}"
    );
    let calls: Vec<(String, Value)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.1.clone(), s.3["attempt"].clone()))
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].0, calls[1].0, "one key for the stage's attempts");
    assert_eq!(
        (&calls[0].1, &calls[1].1),
        (&json!(1), &json!(2)),
        "no attempt made twice"
    );
    assert_ne!(holder_of(&alive, &run).await, holder);
}

#[actix_web::test]
async fn an_ai_task_is_assigned_and_announced_to_its_agent_through_its_gateway() {
    let server = Server::start().await;
    let (_gateway, board) = office(&server).await;
    let (ada, _) = agent(&server, &board, "Ada Lovelace").await;
    let mut ws = connect(&server).await;
    let pipeline = create_pipeline(
        &server,
        json!({"name": "assign", "board_id": board["id"], "stages": [
            {"id": "work", "type": "ai_task", "config": {"task_title": "Write the report", "agent_id": ada["id"]}}
        ]}),
    )
    .await;
    let run = start(&server, &pipeline, json!({})).await;
    let waiting = at_stage(&server, &run, "work", "waiting").await;
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Ada Lovelace"]);
    let task_id = waiting["stage_results"]["work"]["task_id"]
        .as_str()
        .unwrap();
    assert!(
        message(&heard[0]).starts_with(&format!(
            "TASK ASSIGNED\nBoard: Ops\nTask: Write the report\nTask ID: {task_id}\n"
        )),
        "{}",
        message(&heard[0])
    );
    let tasks = server
        .admin_get(&format!(
            "/api/v1/boards/{}/tasks",
            board["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(tasks.json["items"][0]["assigned_agent_id"], ada["id"]);
}

#[actix_web::test]
async fn more_runs_than_a_claim_batch_are_held_renewed_and_taken_over_together() {
    let instance = |name: &str| {
        Server::builder()
            .env("PIPELINE_LEASE_SECONDS", "3")
            .env("PIPELINE_MAX_CONCURRENT_RUNS", "1000")
            .env("INSTANCE_ID", name)
    };
    let first = instance("batch-a").start().await;
    let second = instance("batch-b").start_on(&first).await;
    let pipeline = create_pipeline(
        &first,
        json!({"name": "many", "stages": [{"id": "m", "type": "manual"}]}),
    )
    .await;
    // More runs than one claim takes (200), all started on the first instance.
    let db = first.db.client().await;
    let paused = |n: i64| {
        let db = &db;
        async move {
            let row = db
                .query_one("SELECT count(*) FROM pipeline_runs WHERE status = 'paused' AND lease_owner = $1", &[&"batch-b"])
                .await
                .unwrap();
            row.get::<_, i64>(0) == n
        }
    };
    for _ in 0..250 {
        start(&first, &pipeline, json!({})).await;
    }
    let all_paused = eventually(Duration::from_secs(30), || async {
        let row = db
            .query_one(
                "SELECT count(*) FROM pipeline_runs WHERE status = 'paused'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 250
    })
    .await;
    assert!(all_paused, "{}", first.log());
    // The holder's ticks go on (its lease keeps moving) however many runs it holds.
    let lease = "SELECT lease_until FROM pipeline_holders WHERE instance_id = 'batch-a'";
    let before: chrono::DateTime<chrono::Utc> = db.query_one(lease, &[]).await.unwrap().get(0);
    let renewed = eventually(Duration::from_secs(5), || async {
        let now: chrono::DateTime<chrono::Utc> = db.query_one(lease, &[]).await.unwrap().get(0);
        now > before
    })
    .await;
    assert!(renewed, "the lease stopped moving\n{}", first.log());

    let mut first = first;
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe { libc::kill(first.pid() as i32, libc::SIGKILL) };
    assert!(first.wait_exit(Duration::from_secs(5)).is_some());
    let taken = eventually(Duration::from_secs(15), || paused(250)).await;
    assert!(taken, "not every run was taken over\n{}", second.log());
    // The new holder's actors are there: an advance is carried out by it.
    let run = runs_of(&second, &pipeline, "?limit=1").await["items"][0].clone();
    let path = format!(
        "/api/v1/pipeline-runs/{}/advance",
        run["id"].as_str().unwrap()
    );
    assert_eq!(
        send(&second, Method::POST, &path, json!({})).await.status,
        200
    );
    ended(&second, &run, "completed").await;
}
