//! What agents hear of task changes: the lead of new tasks, of tasks back in the inbox and
//! of resolved approvals, an assignee of its assignment, mentioned agents (else the
//! assignee) of comments; never the agent that made the change.

use awc::http::Method;
use serde_json::json;

use crate::fixtures::{agent, as_agent, create_task, make_lead, send, update_task};
use crate::gateway_requests::{connect, labels, message, notices, office, requests};
use crate::harness::Server;

#[actix_web::test]
async fn leads_assignees_and_mentioned_agents_are_told_of_task_changes() {
    let server = Server::start().await;
    let (gateway, board) = office(&server).await;
    let board_id = board["id"].as_str().unwrap();
    let (lead, lead_token) = agent(&server, &board, "Lena").await;
    make_lead(&server, &lead).await;
    let (ada, ada_token) = agent(&server, &board, "Ada Lovelace").await;
    let mut ws = connect(&server).await;

    let task = create_task(
        &server,
        &board,
        json!({
            "title": "Ship it", "description": "  All of it.  ", "assigned_agent_id": ada["id"]
        }),
    )
    .await;
    let task_id = task["id"].as_str().unwrap();
    let heard = notices(&mut ws, 2).await;
    assert_eq!(labels(&heard), ["Ada Lovelace", "Lena"]);
    assert_eq!(
        message(&heard[0]),
        format!(
            "TASK ASSIGNED\nBoard: Ops\nTask: Ship it\nTask ID: {task_id}\nStatus: inbox\n\
             Description: All of it.\n\nTake action: open the task and begin work. \
             Post updates as task comments."
        )
    );
    assert!(message(&heard[1]).starts_with("NEW TASK ADDED\nBoard: Ops\nTask: Ship it\n"));
    assert!(message(&heard[1]).ends_with("\n\nTake action: triage, assign, or plan next steps."));
    assert_eq!(heard[1]["task_id"], task["id"]);

    // Unassigned back in the inbox by a user: the lead hears of it.
    update_task(&server, &task, json!({"assigned_agent_id": null})).await;
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Lena"]);
    assert!(message(&heard[0]).starts_with("TASK BACK IN INBOX\n"));

    // A worker that claims a task is not told of its own assignment.
    let claimed = as_agent(
        &server,
        &ada_token,
        Method::PATCH,
        &format!("/api/v1/agent/boards/{board_id}/tasks/{task_id}"),
        Some(json!({"status": "in_progress"})),
    )
    .await;
    assert_eq!(claimed.status, 200, "{}", claimed.text);
    assert_eq!(claimed.json["assigned_agent_id"], ada["id"]);

    // Comments: mentioned agents, else the assignee; never the author.
    let comments = format!("/api/v1/boards/{board_id}/tasks/{task_id}/comments");
    let reply = send(
        &server,
        Method::POST,
        &comments,
        json!({"message": "@lead look"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Lena"]);
    assert!(message(&heard[0]).starts_with(&format!(
        "TASK MENTION\nBoard: Ops\nTask: Ship it\nTask ID: {task_id}\nFrom: User\n\nYou were mentioned in this comment.\n\nComment:\n@lead look\n\n"
    )));
    send(
        &server,
        Method::POST,
        &comments,
        json!({"message": "progress?"}),
    )
    .await;
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Ada Lovelace"]);
    assert!(message(&heard[0]).starts_with("NEW TASK COMMENT\n"));
    assert!(message(&heard[0]).contains("A new comment was posted on your task."));
    let own = as_agent(
        &server,
        &ada_token,
        Method::POST,
        &format!("/api/v1/agent/boards/{board_id}/tasks/{task_id}/comments"),
        Some(json!({"message": "on it, @ada"})),
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.text);

    // A task the lead makes is not news to it; its assignee hears of it.
    let made = as_agent(
        &server,
        &lead_token,
        Method::POST,
        &format!("/api/v1/agent/boards/{board_id}/tasks"),
        Some(json!({"title": "Review docs", "assigned_agent_id": ada["id"]})),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Ada Lovelace"]);
    assert!(message(&heard[0]).starts_with("TASK ASSIGNED\nBoard: Ops\nTask: Review docs\n"));

    // A resolved approval reaches the lead; re-resolving the same way tells no one again.
    let approval = send(&server, Method::POST, &format!("/api/v1/boards/{board_id}/approvals"),
        json!({"action_type": "deploy", "confidence": 80, "task_ids": [task_id], "payload": {"reason": "r"}})).await;
    assert_eq!(approval.status, 200, "{}", approval.text);
    let approval_path = format!(
        "/api/v1/boards/{board_id}/approvals/{}",
        approval.json["id"].as_str().unwrap()
    );
    let resolved = send(
        &server,
        Method::PATCH,
        &approval_path,
        json!({"status": "approved"}),
    )
    .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Lena"]);
    assert_eq!(
        message(&heard[0]),
        format!(
            "APPROVAL RESOLVED\nBoard: Ops\nApproval ID: {}\nAction: deploy\nDecision: approved\n\
             Confidence: 80.0\nTask ID: {task_id}\n\nTake action: continue execution using the final approval decision.",
            approval.json["id"].as_str().unwrap()
        )
    );
    send(
        &server,
        Method::PATCH,
        &approval_path,
        json!({"status": "approved"}),
    )
    .await;

    let events: Vec<String> = server
        .db
        .column(
            "SELECT event_type FROM activity_events WHERE event_type LIKE '%notified' ORDER BY created_at",
            &[],
        )
        .await;
    assert_eq!(
        events,
        [
            "task.lead_notified",
            "task.assignee_notified",
            "task.lead_unassigned_notified",
            "task.assignee_notified",
            "approval.lead_notified"
        ]
    );
    let told = requests(&server, gateway["id"].as_str().unwrap())
        .await
        .iter()
        .filter(|r| r["params"]["kind"] == "task")
        .count();
    assert_eq!(told, 6, "nothing for the claim or the author's own comment");
    let approvals = requests(&server, gateway["id"].as_str().unwrap())
        .await
        .iter()
        .filter(|r| r["params"]["kind"] == "approval")
        .count();
    assert_eq!(approvals, 1);
}
