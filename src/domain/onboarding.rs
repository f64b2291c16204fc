//! Board onboarding (domain.md §A20): a conversation with the gateway's main agent that
//! drafts the board's goal, then the user's confirmation that writes it onto the board.
//!
//! The reference sends the start prompt and every answer to the gateway agent over an RPC.
//! Here the conversation is only recorded (the prompt as the first `user` message, the
//! answers after it) under the gateway's main session key, for the gateway relay to carry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::{GenericClient, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::{self, Access};
use super::accounts::Principal;
use super::agents::{gateway_main_session_key, AgentPrincipal};
use super::boards::{Board, BOARD_COLUMNS};
use super::validation::{model_error, validation_error};
use super::{DomainError, DomainResult};

const ERR_GOAL_FIELDS_REQUIRED: &str =
    "Confirmed goal boards require objective and success_metrics";

/// `BoardOnboardingRead`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Onboarding {
    pub id: Uuid,
    pub board_id: Uuid,
    pub session_key: String,
    pub status: String,
    #[schema(value_type = Option<Vec<Object>>)]
    pub messages: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub draft_goal: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, board_id, session_key, status, messages, draft_goal, created_at, updated_at";

impl Onboarding {
    fn from_row(row: &Row) -> Onboarding {
        Onboarding {
            id: row.get(0),
            board_id: row.get(1),
            session_key: row.get(2),
            status: row.get(3),
            messages: row.get(4),
            draft_goal: row.get(5),
            created_at: row.get(6),
            updated_at: row.get(7),
        }
    }
}

/// `BoardOnboardingStart`: an empty object.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OnboardingStart {}

/// `BoardOnboardingAnswer`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OnboardingAnswer {
    pub answer: String,
    #[serde(default)]
    pub other_text: Option<String>,
}

/// `BoardOnboardingConfirm`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OnboardingConfirm {
    pub board_type: String,
    #[serde(default)]
    pub objective: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub success_metrics: Option<Map<String, Value>>,
    #[serde(
        default,
        deserialize_with = "crate::domain::validation::lenient_datetime"
    )]
    pub target_date: Option<DateTime<Utc>>,
}

fn message(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content, "timestamp": Utc::now().to_rfc3339()})
}

/// The newest session of the board, any status.
async fn latest(client: &impl GenericClient, board_id: Uuid) -> DomainResult<Onboarding> {
    client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM board_onboarding_sessions WHERE board_id = $1 \
                 ORDER BY updated_at DESC, created_at DESC LIMIT 1"
            ),
            &[&board_id],
        )
        .await?
        .map(|r| Onboarding::from_row(&r))
        .ok_or_else(DomainError::not_found)
}

pub async fn get(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
) -> DomainResult<Onboarding> {
    let board = access::board_for_user(client, principal, board_id, Access::Read).await?;
    latest(client, board.id).await
}

/// The reference's instructions to the gateway agent, trimmed to what does not depend on
/// its RPC: who to ask, and where the answers go.
fn start_prompt(board: &Board, base_url: &str) -> String {
    let description = if board.description.is_empty() {
        "(not provided)"
    } else {
        &board.description
    };
    format!(
        "BOARD ONBOARDING REQUEST\n\n\
         Board Name: {}\n\
         Board Description: {description}\n\
         You are the gateway agent. Ask the user 6-10 focused questions total, one per \
         response, then send one final response with status=complete.\n\
         Mission Control base URL: {base_url}\n\
         Onboarding response endpoint:\n\
         POST {base_url}/api/v1/agent/boards/{}/onboarding\n",
        board.name, board.id
    )
}

/// Starts onboarding, or returns the active session unchanged (the reference re-sends the
/// last unanswered user message to the agent then; here it stays recorded).
pub async fn start(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    base_url: Option<&str>,
) -> DomainResult<Onboarding> {
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let active = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM board_onboarding_sessions \
                 WHERE board_id = $1 AND status = 'active' ORDER BY created_at DESC LIMIT 1"
            ),
            &[&board.id],
        )
        .await?;
    if let Some(row) = active {
        return Ok(Onboarding::from_row(&row));
    }
    let gateway_id = board
        .gateway_id
        .ok_or_else(|| DomainError::unprocessable("Board gateway_id is required"))?;
    let prompt = start_prompt(&board, base_url.unwrap_or("http://localhost:8000"));
    let row = client
        .query_one(
            &format!(
                "INSERT INTO board_onboarding_sessions (id, board_id, session_key, status, messages) \
                 VALUES ($1, $2, $3, 'active', $4) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &board.id,
                &gateway_main_session_key(gateway_id),
                &json!([message("user", &prompt)]),
            ],
        )
        .await?;
    Ok(Onboarding::from_row(&row))
}

/// Appends the user's answer (`answer: other_text` when both are given) to the newest
/// session.
pub async fn answer(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    input: OnboardingAnswer,
) -> DomainResult<Onboarding> {
    if input.answer.is_empty() {
        return Err(validation_error(
            "string_too_short",
            &["body", "answer"],
            "String should have at least 1 character",
            json!(""),
        ));
    }
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let session = latest(client, board.id).await?;
    let text = match input.other_text.as_deref() {
        Some(other) if !other.is_empty() => format!("{}: {other}", input.answer),
        _ => input.answer,
    };
    let row = client
        .query_one(
            &format!(
                "UPDATE board_onboarding_sessions \
                 SET messages = COALESCE(messages, '[]'::jsonb) || jsonb_build_array($2::jsonb), \
                     updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&session.id, &message("user", &text)],
        )
        .await?;
    Ok(Onboarding::from_row(&row))
}

fn is_fully_autonomous(value: Option<&Value>) -> bool {
    let Some(token) = value.and_then(Value::as_str).map(str::trim) else {
        return false;
    };
    let token = token.to_lowercase().replace('_', "-");
    matches!(
        token.as_str(),
        "autonomous" | "fully-autonomous" | "full-autonomy"
    ) || (token.contains("autonom") && token.contains("fully"))
}

/// Done needs approval unless the draft chose a fully autonomous lead.
fn require_approval_for_done(draft: Option<&Value>) -> bool {
    let Some(lead) = draft
        .and_then(|d| d.get("lead_agent"))
        .filter(|l| l.is_object())
    else {
        return true;
    };
    if is_fully_autonomous(lead.get("autonomy_level")) {
        return false;
    }
    let profile = lead.get("identity_profile");
    !["autonomy_level", "autonomy", "mode"]
        .iter()
        .any(|key| is_fully_autonomous(profile.and_then(|p| p.get(*key))))
}

/// Writes the confirmed goal onto the board and closes the session (`confirmed`).
pub async fn confirm(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    input: OnboardingConfirm,
) -> DomainResult<Board> {
    let objective_missing = input.objective.as_deref().is_none_or(str::is_empty);
    let metrics_missing = input.success_metrics.as_ref().is_none_or(Map::is_empty);
    if input.board_type == "goal" && (objective_missing || metrics_missing) {
        return Err(model_error(ERR_GOAL_FIELDS_REQUIRED));
    }
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let session = latest(client, board.id).await?;
    if board.gateway_id.is_none() {
        return Err(DomainError::unprocessable("Board gateway_id is required"));
    }
    client
        .execute(
            "UPDATE board_onboarding_sessions SET status = 'confirmed', updated_at = now() \
             WHERE id = $1",
            &[&session.id],
        )
        .await?;
    let row = client
        .query_one(
            &format!(
                "UPDATE boards b SET board_type = $2, objective = $3, success_metrics = $4, \
                 target_date = $5, goal_confirmed = true, goal_source = 'lead_agent_onboarding', \
                 require_approval_for_done = $6, updated_at = now() \
                 WHERE b.id = $1 RETURNING {BOARD_COLUMNS}"
            ),
            &[
                &board.id,
                &input.board_type,
                &input.objective,
                &input.success_metrics.map(Value::Object),
                &input.target_date,
                &require_approval_for_done(session.draft_goal.as_ref()),
            ],
        )
        .await?;
    Ok(Board::from_row(&row))
}

/// The onboarding agent's update: a question for the user (`{question, options[]}`) or the
/// completed draft (`{status: "complete", board_type, …}`), recorded as its message; a
/// draft completes the session. Only the gateway-main agent of the board's gateway sends
/// them.
pub async fn agent_update(
    client: &impl GenericClient,
    agent: &AgentPrincipal,
    board_id: Uuid,
    payload: Map<String, Value>,
) -> DomainResult<Onboarding> {
    let board = access::board_for_agent(client, agent, board_id).await?;
    if !agent.agent.is_gateway_main || board.gateway_id != Some(agent.agent.gateway_id) {
        return Err(DomainError::forbidden(
            "Only the gateway main agent of this board's gateway may update onboarding.",
        ));
    }
    let complete = payload.get("status").and_then(Value::as_str) == Some("complete");
    if complete {
        if payload.get("board_type").and_then(Value::as_str).is_none() {
            return Err(model_error("board_type is required"));
        }
    } else {
        let question = payload
            .get("question")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let options = payload
            .get("options")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if question.trim().is_empty() || options == 0 {
            return Err(model_error(
                "expected a question with at least one option, or a complete draft",
            ));
        }
    }
    let session = latest(client, board.id).await?;
    if session.status == "confirmed" {
        return Err(DomainError::conflict("Onboarding is already confirmed."));
    }
    let payload: Map<String, Value> = payload.into_iter().filter(|(_, v)| !v.is_null()).collect();
    let text = Value::Object(payload.clone()).to_string();
    let row = client
        .query_one(
            &format!(
                "UPDATE board_onboarding_sessions \
                 SET messages = COALESCE(messages, '[]'::jsonb) || jsonb_build_array($2::jsonb), \
                     draft_goal = CASE WHEN $3 THEN $4 ELSE draft_goal END, \
                     status = CASE WHEN $3 THEN 'completed' ELSE status END, updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &session.id,
                &message("assistant", &text),
                &complete,
                &Value::Object(payload),
            ],
        )
        .await?;
    Ok(Onboarding::from_row(&row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fully_autonomous_lead_skips_done_approval() {
        assert!(require_approval_for_done(None));
        assert!(require_approval_for_done(Some(
            &json!({"lead_agent": {"autonomy_level": "balanced"}})
        )));
        assert!(!require_approval_for_done(Some(
            &json!({"lead_agent": {"autonomy_level": "autonomous"}})
        )));
        assert!(!require_approval_for_done(Some(
            &json!({"lead_agent": {"identity_profile": {"mode": "Fully_Autonomous"}}})
        )));
    }
}
