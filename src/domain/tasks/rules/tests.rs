//! The task rules, case by case.

use super::*;
use serde_json::Value;

fn board() -> Board {
    let now = Utc::now();
    Board {
        id: Uuid::new_v4(),
        organization_id: Uuid::new_v4(),
        name: "b".into(),
        slug: "b".into(),
        description: "d".into(),
        gateway_id: None,
        board_group_id: None,
        board_type: "goal".into(),
        objective: None,
        success_metrics: None,
        target_date: None,
        goal_confirmed: false,
        goal_source: None,
        require_approval_for_done: false,
        require_review_before_done: false,
        block_status_changes_with_pending_approval: false,
        only_lead_can_change_status: false,
        max_agents: 1,
        created_at: now,
        updated_at: now,
    }
}

fn progress(status: TaskStatus, assignee: Option<Uuid>) -> Progress {
    Progress {
        status,
        assigned_agent_id: assignee,
        in_progress_at: (status == TaskStatus::InProgress).then(Utc::now),
        previous_in_progress_at: None,
    }
}

fn status(s: TaskStatus) -> Request {
    Request {
        status: Some(s),
        ..Request::default()
    }
}

fn user() -> Actor {
    Actor::User(Uuid::new_v4())
}

fn agent(board: &Board, lead: bool) -> AgentRef {
    AgentRef {
        id: Uuid::new_v4(),
        board_id: Some(board.id),
        is_board_lead: lead,
    }
}

fn detail(result: DomainResult<Decision>) -> (u16, Value) {
    match result {
        Err(DomainError::Forbidden(d)) => (403, d),
        Err(DomainError::Conflict(d)) => (409, d),
        Err(DomainError::NotFound(d)) => (404, d),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn status_filter_accepts_known_statuses_only() {
    assert_eq!(
        parse_status_filter(Some("inbox, done,")).unwrap(),
        ["inbox", "done"]
    );
    assert!(parse_status_filter(None).unwrap().is_empty());
    assert!(parse_status_filter(Some("inbox,blocked")).is_err());
}

#[test]
fn a_user_moving_to_review_unassigns_and_remembers_progress() {
    let b = board();
    let worker = Uuid::new_v4();
    let current = progress(TaskStatus::InProgress, Some(worker));
    let d = decide(
        &user(),
        &b,
        current,
        &[],
        &status(TaskStatus::Review),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(d.progress.status, TaskStatus::Review);
    assert_eq!(d.progress.assigned_agent_id, None);
    assert_eq!(d.progress.in_progress_at, None);
    assert_eq!(d.progress.previous_in_progress_at, current.in_progress_at);
    assert!(d.status_requested && d.needs_review_comment);
}

#[test]
fn a_users_change_to_a_blocked_task_sends_it_to_the_inbox() {
    let b = board();
    let dep = Uuid::new_v4();
    let current = progress(TaskStatus::InProgress, Some(Uuid::new_v4()));
    let title_only = Request {
        plain_fields: vec!["title"],
        ..Request::default()
    };
    let d = decide(&user(), &b, current, &[dep], &title_only, Utc::now()).unwrap();
    assert_eq!(d.progress.status, TaskStatus::Inbox);
    assert_eq!(d.progress.assigned_agent_id, None);
    assert!(!d.status_requested);
    // ... but a done task that stays done keeps its state.
    let done = progress(TaskStatus::Done, None);
    let d = decide(&user(), &b, done, &[dep], &title_only, Utc::now()).unwrap();
    assert_eq!(d.progress.status, TaskStatus::Done);
}

#[test]
fn a_user_may_assign_only_agents_of_the_board() {
    let b = board();
    let mut other = agent(&b, false);
    other.board_id = Some(Uuid::new_v4());
    let mut req = Request {
        assigned_agent_id: Some(Some(other.id)),
        assignee: Some(other),
        ..Request::default()
    };
    let current = progress(TaskStatus::Inbox, None);
    assert_eq!(
        detail(decide(&user(), &b, current, &[], &req, Utc::now())).0,
        409
    );
    req.assignee = None;
    assert_eq!(
        detail(decide(&user(), &b, current, &[], &req, Utc::now())).0,
        404
    );
    let mine = agent(&b, false);
    req.assigned_agent_id = Some(Some(mine.id));
    req.assignee = Some(mine);
    let d = decide(&user(), &b, current, &[], &req, Utc::now()).unwrap();
    assert_eq!(d.progress.assigned_agent_id, Some(mine.id));
}

#[test]
fn a_worker_claims_unassigned_tasks_and_is_refused_others() {
    let b = board();
    let me = agent(&b, false);
    let actor = Actor::Agent(me);
    let open = progress(TaskStatus::Inbox, None);
    let d = decide(
        &actor,
        &b,
        open,
        &[],
        &status(TaskStatus::InProgress),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(d.progress.assigned_agent_id, Some(me.id));
    assert!(d.progress.in_progress_at.is_some());

    let theirs = progress(TaskStatus::InProgress, Some(Uuid::new_v4()));
    let (code, body) = detail(decide(
        &actor,
        &b,
        theirs,
        &[],
        &status(TaskStatus::Done),
        Utc::now(),
    ));
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("task_assignee_mismatch"))
    );

    let tags = Request {
        tags: true,
        ..Request::default()
    };
    let (_, body) = detail(decide(&actor, &b, open, &[], &tags, Utc::now()));
    assert_eq!(body["code"], "task_update_field_forbidden");

    let mut elsewhere = me;
    elsewhere.board_id = Some(Uuid::new_v4());
    let (_, body) = detail(decide(
        &Actor::Agent(elsewhere),
        &b,
        open,
        &[],
        &status(TaskStatus::Review),
        Utc::now(),
    ));
    assert_eq!(body["code"], "task_board_mismatch");
}

#[test]
fn a_blocked_task_cannot_start_but_may_go_back_to_the_inbox() {
    let b = board();
    let me = agent(&b, false);
    let dep = Uuid::new_v4();
    let mine = progress(TaskStatus::InProgress, Some(me.id));
    let (code, body) = detail(decide(
        &Actor::Agent(me),
        &b,
        progress(TaskStatus::Inbox, None),
        &[dep],
        &status(TaskStatus::InProgress),
        Utc::now(),
    ));
    assert_eq!(code, 409);
    assert_eq!(body["code"], "task_blocked_cannot_transition");
    assert_eq!(body["blocked_by_task_ids"], json!([dep]));
    let d = decide(
        &Actor::Agent(me),
        &b,
        mine,
        &[dep],
        &status(TaskStatus::Inbox),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(d.progress.status, TaskStatus::Inbox);
}

#[test]
fn only_leads_change_status_when_the_board_says_so() {
    let mut b = board();
    b.only_lead_can_change_status = true;
    let me = agent(&b, false);
    let (code, body) = detail(decide(
        &Actor::Agent(me),
        &b,
        progress(TaskStatus::Inbox, None),
        &[],
        &status(TaskStatus::InProgress),
        Utc::now(),
    ));
    assert_eq!(code, 403);
    assert_eq!(body, json!("Only board leads can change task status."));
}

#[test]
fn a_lead_closes_reviews_and_assigns_but_edits_nothing_else() {
    let b = board();
    let lead = Actor::Agent(agent(&b, true));
    let review = progress(TaskStatus::Review, None);
    let d = decide(
        &lead,
        &b,
        review,
        &[],
        &status(TaskStatus::Done),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(d.progress.status, TaskStatus::Done);
    assert!(!d.needs_review_comment);

    let inbox = progress(TaskStatus::Inbox, None);
    let (code, body) = detail(decide(
        &lead,
        &b,
        inbox,
        &[],
        &status(TaskStatus::Done),
        Utc::now(),
    ));
    assert_eq!(code, 403);
    assert!(body
        .as_str()
        .unwrap()
        .starts_with("Lead status gate failed"));
    let (_, body) = detail(decide(
        &lead,
        &b,
        review,
        &[],
        &status(TaskStatus::InProgress),
        Utc::now(),
    ));
    assert!(body
        .as_str()
        .unwrap()
        .starts_with("Lead status target gate failed"));

    let title = Request {
        plain_fields: vec!["title", "priority"],
        ..Request::default()
    };
    let (_, body) = detail(decide(&lead, &b, inbox, &[], &title, Utc::now()));
    assert_eq!(
        body,
        json!("Lead field gate failed: unsupported fields for board leads: priority, title. Allowed fields: assigned_agent_id, custom_field_values, depends_on_task_ids, status, tag_ids.")
    );

    let other_lead = agent(&b, true);
    let assign = Request {
        assigned_agent_id: Some(Some(other_lead.id)),
        assignee: Some(other_lead),
        ..Request::default()
    };
    let (code, _) = detail(decide(&lead, &b, inbox, &[], &assign, Utc::now()));
    assert_eq!(code, 403);
    let (code, _) = detail(decide(
        &lead,
        &b,
        inbox,
        &[Uuid::new_v4()],
        &assign,
        Utc::now(),
    ));
    assert_eq!(code, 409);
}

#[test]
fn gates_guard_done_and_pending_approvals() {
    let mut b = board();
    let to_done = Decision {
        progress: progress(TaskStatus::Done, None),
        status_requested: true,
        needs_review_comment: false,
    };
    let none = TaskApprovalState::default();
    assert!(check_gates(&b, TaskStatus::InProgress, &to_done, none).is_ok());

    b.require_approval_for_done = true;
    let err = check_gates(&b, TaskStatus::Review, &to_done, none).unwrap_err();
    assert!(
        matches!(err, DomainError::Conflict(ref d) if d["message"].as_str().unwrap().contains("approval has been approved"))
    );
    let approved = TaskApprovalState {
        has_pending: false,
        has_approved: true,
    };
    assert!(check_gates(&b, TaskStatus::Review, &to_done, approved).is_ok());

    b.require_review_before_done = true;
    assert!(check_gates(&b, TaskStatus::InProgress, &to_done, approved).is_err());
    assert!(check_gates(&b, TaskStatus::Review, &to_done, approved).is_ok());

    b.block_status_changes_with_pending_approval = true;
    let pending = TaskApprovalState {
        has_pending: true,
        has_approved: true,
    };
    let err = check_gates(&b, TaskStatus::Review, &to_done, pending).unwrap_err();
    assert!(
        matches!(err, DomainError::Conflict(ref d) if d["message"].as_str().unwrap().contains("pending"))
    );
    // A done task that stays done passes every gate.
    let stays = Decision {
        status_requested: false,
        ..to_done
    };
    assert!(check_gates(&b, TaskStatus::Done, &stays, pending).is_ok());
}

#[test]
fn a_reopened_dependency_resets_only_started_dependents() {
    let started = progress(TaskStatus::InProgress, Some(Uuid::new_v4()));
    let pristine = progress(TaskStatus::Inbox, None);
    assert_eq!(
        dependent_effect(true, &started),
        DependentEffect::ReturnToInbox
    );
    assert_eq!(dependent_effect(true, &pristine), DependentEffect::Note);
    assert_eq!(dependent_effect(false, &started), DependentEffect::Note);
}
