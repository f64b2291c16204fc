//! Board onboarding (domain.md §A20): a conversation with the gateway's main agent that
//! drafts the board's goal, then the user's confirmation that writes it onto the board.
//!
//! The start prompt and every answer go to the gateway's main session as `sessions.send`
//! requests on the gateway's relay link, recorded with the conversation (the prompt as the
//! first `user` message, the answers after it); confirming provisions the board's lead the
//! draft describes. The caller pokes the returned gateway once committed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::agents::lead::LeadOptions;
use crate::domain::model::agent::gateway_main_session_key;
use crate::domain::model::{AgentPrincipal, Board, Principal};
use crate::domain::outbox::commands::{self as gateway_commands, Target};
use crate::domain::support::access::{self, Access};
use crate::domain::support::validation::{model_error, validation_error};
use crate::domain::{DomainError, DomainResult};

const ERR_GOAL_FIELDS_REQUIRED: &str =
    "Confirmed goal boards require objective and success_metrics";

crate::db::record! {
    /// `BoardOnboardingRead`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Onboarding in "s" {
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
        deserialize_with = "crate::domain::support::validation::lenient_datetime"
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
                "SELECT {columns} FROM board_onboarding_sessions s WHERE board_id = $1 \
                 ORDER BY updated_at DESC, created_at DESC LIMIT 1",
                columns = Onboarding::COLUMNS
            ),
            &[&board_id],
        )
        .await?
        .map(|r| Onboarding::from_row(&r))
        .transpose()?
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

/// The reference's instructions to the gateway agent, word for word.
fn start_prompt(board: &Board, base_url: &str) -> String {
    let description = if board.description.is_empty() {
        "(not provided)"
    } else {
        &board.description
    };
    let endpoint = format!("{base_url}/api/v1/agent/boards/{}/onboarding", board.id);
    let curl = format!(
        "curl -s -X POST \"{endpoint}\" -H \"X-Agent-Token: $AUTH_TOKEN\" \
         -H \"Content-Type: application/json\" "
    );
    format!(
        "BOARD ONBOARDING REQUEST\n\n\
         Board Name: {name}\n\
         Board Description: {description}\n\
         You are the gateway agent. Ask the user 6-10 focused questions total:\n\
         - 3-6 questions to clarify the board goal.\n\
         - 1 question to choose a unique name for the board lead agent (first-name style).\n\
         - 2-4 questions to capture the user's preferences for how the board lead should work\n  \
         (communication style, autonomy, update cadence, and output formatting).\n\
         - Always include a final question (and only once): \"Anything else we should know?\"\n  \
         (constraints, context, preferences). This MUST be the last question.\n  \
         Provide an option like \"Yes (I'll type it)\" so they can enter free-text.\n  \
         Do NOT ask for additional context on earlier questions.\n  \
         Only include a free-text option on earlier questions if a typed answer is necessary;\n  \
         when you do, make the option label include \"I'll type it\" (e.g., \"Other (I'll type it)\").\n\
         - If the user sends an \"Additional context\" message later, incorporate it and resend status=complete\n  \
         to update the draft (until the user confirms).\n\
         Do NOT respond in OpenClaw chat.\n\
         All onboarding responses MUST be sent to Mission Control via API.\n\
         Mission Control base URL: {base_url}\n\
         Use the AUTH_TOKEN from USER.md or TOOLS.md and pass it as X-Agent-Token.\n\
         Onboarding response endpoint:\n\
         POST {endpoint}\n\
         QUESTION example (send JSON body exactly as shown):\n\
         {curl}-d '{{\"question\":\"...\",\"options\":[{{\"id\":\"1\",\"label\":\"...\"}},{{\"id\":\"2\",\"label\":\"...\"}}]}}'\n\
         COMPLETION example (send JSON body exactly as shown):\n\
         {curl}-d '{{\"status\":\"complete\",\"board_type\":\"goal\",\"objective\":\"...\",\
         \"success_metrics\":{{\"metric\":\"...\",\"target\":\"...\"}},\"target_date\":\"YYYY-MM-DD\",\
         \"user_profile\":{{\"preferred_name\":\"...\",\"pronouns\":\"...\",\"timezone\":\"...\",\"notes\":\"...\",\"context\":\"...\"}},\
         \"lead_agent\":{{\"name\":\"Ava\",\"identity_profile\":{{\"role\":\"Board Lead\",\
         \"communication_style\":\"direct, concise, practical\",\"emoji\":\":gear:\"}},\
         \"autonomy_level\":\"balanced\",\"verbosity\":\"concise\",\"output_format\":\"bullets\",\
         \"update_cadence\":\"daily\",\"custom_instructions\":\"...\"}}}}'\n\
         ENUMS:\n\
         - board_type: goal | general\n\
         - lead_agent.autonomy_level: ask_first | balanced | autonomous\n\
         - lead_agent.verbosity: concise | balanced | detailed\n\
         - lead_agent.output_format: bullets | mixed | narrative\n\
         - lead_agent.update_cadence: asap | hourly | daily | weekly\n\
         QUESTION FORMAT (one question per response, no arrays, no markdown, no extra text):\n\
         {{\"question\":\"...\",\"options\":[{{\"id\":\"1\",\"label\":\"...\"}},{{\"id\":\"2\",\"label\":\"...\"}}]}}\n\
         Do NOT wrap questions in a list. Do NOT add commentary.\n\
         When you have enough info, send one final response with status=complete.\n\
         The completion payload must include board_type. If board_type=goal, include objective + success_metrics.\n\
         Also include user_profile + lead_agent to configure the board lead's working style.\n",
        name = board.name,
    )
}

/// Queues `text` for the onboarding agent: the gateway's main agent, in `session_key`.
async fn tell_gateway_agent(
    client: &impl GenericClient,
    board: &Board,
    gateway_id: Uuid,
    session_key: &str,
    text: &str,
    correlation_id: String,
) -> DomainResult<()> {
    let main = crate::domain::agents::gateway_main::gateway_main(client, gateway_id).await?;
    gateway_commands::send_to_session(
        client,
        Target {
            organization_id: board.organization_id,
            gateway_id,
            agent_id: main.map(|(id, _)| id),
            board_id: Some(board.id),
        },
        session_key,
        text,
        json!({"kind": "onboarding", "deliver": false, "label": "Gateway Agent",
               "correlation_id": correlation_id}),
    )
    .await?;
    Ok(())
}

fn board_gateway(board: &Board) -> DomainResult<Uuid> {
    board
        .gateway_id
        .ok_or_else(|| DomainError::unprocessable("Board gateway_id is required"))
}

/// Starts onboarding: the prompt goes to the gateway agent. On an active session whose last
/// message is the user's, that message is sent again (the agent may have lost it) and the
/// session returned. Returns the session and the gateway to poke.
pub async fn start(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    base_url: &str,
) -> DomainResult<(Onboarding, Uuid)> {
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let gateway_id = board_gateway(&board)?;
    let active = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM board_onboarding_sessions s \
                 WHERE board_id = $1 AND status = 'active' ORDER BY created_at DESC LIMIT 1 FOR NO KEY UPDATE",
                columns = Onboarding::COLUMNS
            ),
            &[&board.id],
        )
        .await?;
    if let Some(row) = active {
        let session = Onboarding::from_row(&row)?;
        let Some(waiting) = last_user_message(&session) else {
            return Ok((session, gateway_id));
        };
        let correlation = format!("onboarding.resume:{}:{}", board.id, session.id);
        tell_gateway_agent(
            client,
            &board,
            gateway_id,
            &session.session_key,
            &waiting,
            correlation,
        )
        .await?;
        let row = client
            .query_one(
                &format!(
                    "UPDATE board_onboarding_sessions s SET updated_at = now() WHERE id = $1 \
                     RETURNING {columns}",
                    columns = Onboarding::COLUMNS
                ),
                &[&session.id],
            )
            .await?;
        return Ok((Onboarding::from_row(&row)?, gateway_id));
    }
    let prompt = start_prompt(&board, base_url);
    let session_key = gateway_main_session_key(gateway_id);
    let correlation = format!("onboarding.start:{}", board.id);
    tell_gateway_agent(
        client,
        &board,
        gateway_id,
        &session_key,
        &prompt,
        correlation,
    )
    .await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO board_onboarding_sessions AS s (id, board_id, session_key, status, messages) \
                 VALUES ($1, $2, $3, 'active', $4) RETURNING {columns}",
                columns = Onboarding::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &board.id,
                &session_key,
                &json!([message("user", &prompt)]),
            ],
        )
        .await?;
    Ok((Onboarding::from_row(&row)?, gateway_id))
}

/// The content of the session's last message when the user sent it.
fn last_user_message(session: &Onboarding) -> Option<String> {
    let last = session.messages.as_ref()?.as_array()?.last()?;
    (last.get("role")? == "user")
        .then(|| last.get("content")?.as_str())
        .flatten()
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// Appends the user's answer (`answer: other_text` when both are given) to the newest
/// session and sends it to the gateway agent. Returns the session and the gateway to poke.
pub async fn answer(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    input: OnboardingAnswer,
) -> DomainResult<(Onboarding, Uuid)> {
    if input.answer.is_empty() {
        return Err(validation_error(
            "string_too_short",
            &["body", "answer"],
            "String should have at least 1 character",
            json!(""),
        ));
    }
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let gateway_id = board_gateway(&board)?;
    let session = latest(client, board.id).await?;
    let text = match input.other_text.as_deref() {
        Some(other) if !other.is_empty() => format!("{}: {other}", input.answer),
        _ => input.answer,
    };
    let correlation = format!("onboarding.answer:{}:{}", board.id, session.id);
    tell_gateway_agent(
        client,
        &board,
        gateway_id,
        &session.session_key,
        &text,
        correlation,
    )
    .await?;
    let row = client
        .query_one(
            &format!(
                "UPDATE board_onboarding_sessions s \
                 SET messages = COALESCE(messages, '[]'::jsonb) || jsonb_build_array($2::jsonb), \
                     updated_at = now() \
                 WHERE id = $1 RETURNING {columns}",
                columns = Onboarding::COLUMNS
            ),
            &[&session.id, &message("user", &text)],
        )
        .await?;
    Ok((Onboarding::from_row(&row)?, gateway_id))
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

/// A trimmed text, `None` when blank; `Err` when the value is neither text nor null.
fn optional_text(value: Option<&Value>) -> Result<Option<String>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(_) => Err(()),
    }
}

/// The draft's `user_profile` fields that are given, as (column, value); nothing when the
/// profile is malformed, as the reference drops an invalid profile whole.
fn draft_user_profile(draft: Option<&Value>) -> Vec<(&'static str, String)> {
    let Some(profile) = draft
        .and_then(|d| d.get("user_profile"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in ["preferred_name", "pronouns", "timezone", "notes", "context"] {
        match optional_text(profile.get(key)) {
            Ok(Some(v)) => out.push((key, v)),
            Ok(None) => {}
            Err(()) => return Vec::new(),
        }
    }
    out
}

/// The lead the draft's `lead_agent` asks for: its name, and its identity (the draft's
/// `identity_profile` plus the working-style choices). A malformed draft asks for the
/// default lead, as in the reference.
fn draft_lead(draft: Option<&Value>) -> LeadOptions {
    let Some(lead) = draft
        .and_then(|d| d.get("lead_agent"))
        .filter(|l| !l.is_null())
    else {
        return LeadOptions::default();
    };
    parse_lead(lead).unwrap_or_default()
}

fn parse_lead(lead: &Value) -> Option<LeadOptions> {
    let lead = lead.as_object()?;
    let name = match lead.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(_) => return None,
    };
    let mut identity = Map::new();
    match lead.get("identity_profile") {
        None | Some(Value::Null) => {}
        Some(Value::Object(profile)) => {
            for (key, value) in profile {
                let text = match value {
                    Value::Null => continue,
                    Value::String(s) => s.trim().to_string(),
                    Value::Number(_) | Value::Bool(_) => value.to_string(),
                    _ => return None,
                };
                if !key.trim().is_empty() && !text.is_empty() {
                    identity.insert(key.trim().to_string(), json!(text));
                }
            }
        }
        Some(_) => return None,
    }
    let choices: [(&str, &[&str]); 5] = [
        ("autonomy_level", &["ask_first", "balanced", "autonomous"]),
        ("verbosity", &["concise", "balanced", "detailed"]),
        ("output_format", &["bullets", "mixed", "narrative"]),
        ("update_cadence", &["asap", "hourly", "daily", "weekly"]),
        ("custom_instructions", &[]),
    ];
    for (key, allowed) in choices {
        if let Some(text) = optional_text(lead.get(key)).ok()? {
            if !allowed.is_empty() && !allowed.contains(&text.as_str()) {
                return None;
            }
            identity.insert(key.to_string(), json!(text));
        }
    }
    Some(LeadOptions {
        name,
        identity_profile: identity,
    })
}

/// Writes the confirmed goal onto the board, closes the session (`confirmed`), copies the
/// draft's user profile onto the user and provisions the board's lead as the draft
/// describes it (an `agents.create` request when the board has no lead yet). Returns the
/// board and the gateway to poke.
pub async fn confirm(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    input: OnboardingConfirm,
) -> DomainResult<(Board, Uuid)> {
    let objective_missing = input.objective.as_deref().is_none_or(str::is_empty);
    let metrics_missing = input.success_metrics.as_ref().is_none_or(Map::is_empty);
    if input.board_type == "goal" && (objective_missing || metrics_missing) {
        return Err(model_error(ERR_GOAL_FIELDS_REQUIRED));
    }
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let session = latest(client, board.id).await?;
    let gateway_id = board_gateway(&board)?;
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
                 WHERE b.id = $1 RETURNING {columns}",
                columns = Board::COLUMNS
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
    let board = Board::from_row(&row)?;
    let profile = draft_user_profile(session.draft_goal.as_ref());
    if !profile.is_empty() {
        let sets: Vec<String> = profile
            .iter()
            .enumerate()
            .map(|(i, (column, _))| format!("{column} = ${}", i + 2))
            .collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&principal.user.id];
        params.extend(profile.iter().map(|(_, v)| v as &(dyn ToSql + Sync)));
        client
            .execute(
                &format!(
                    "UPDATE users SET {}, updated_at = now() WHERE id = $1",
                    sets.join(", ")
                ),
                &params,
            )
            .await?;
    }
    crate::domain::agents::lead::ensure_board_lead(
        client,
        &board,
        draft_lead(session.draft_goal.as_ref()),
    )
    .await?;
    Ok((board, gateway_id))
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
                "UPDATE board_onboarding_sessions s \
                 SET messages = COALESCE(messages, '[]'::jsonb) || jsonb_build_array($2::jsonb), \
                     draft_goal = CASE WHEN $3 THEN $4 ELSE draft_goal END, \
                     status = CASE WHEN $3 THEN 'completed' ELSE status END, updated_at = now() \
                 WHERE id = $1 RETURNING {columns}",
                columns = Onboarding::COLUMNS
            ),
            &[
                &session.id,
                &message("assistant", &text),
                &complete,
                &Value::Object(payload),
            ],
        )
        .await?;
    Ok(Onboarding::from_row(&row)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_lead_draft_asks_for_the_default_lead() {
        let lead = |v: Value| draft_lead(Some(&json!({"lead_agent": v})));
        let ok = lead(
            json!({"name": " Ava ", "identity_profile": {"n": 1, "x": null}, "update_cadence": "daily"}),
        );
        assert_eq!(ok.name.as_deref(), Some("Ava"));
        assert_eq!(
            Value::Object(ok.identity_profile),
            json!({"n": "1", "update_cadence": "daily"})
        );
        for bad in [
            json!({"name": "Ava", "verbosity": "chatty"}),
            json!({"name": ""}),
            json!({"identity_profile": "role"}),
            json!({"custom_instructions": 5}),
            json!("Ava"),
        ] {
            let options = lead(bad.clone());
            assert!(
                options.name.is_none() && options.identity_profile.is_empty(),
                "{bad}"
            );
        }
        assert!(draft_user_profile(Some(&json!({"user_profile": {"timezone": 3}}))).is_empty());
        assert_eq!(
            draft_user_profile(Some(
                &json!({"user_profile": {"notes": " n ", "context": ""}})
            )),
            [("notes", "n".to_string())]
        );
    }

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
