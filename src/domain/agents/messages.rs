//! What coordination sends to agents: the requests (an ask-user, a lead message) and their
//! texts, word for word the reference's (its JSON is Python's `json.dumps`, so agents that
//! parse either read the same thing).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::model::Board;

/// `value.strip()` when given, else "".
fn trimmed(value: &Option<String>) -> &str {
    value.as_deref().map(str::trim).unwrap_or("")
}

/// The request context with the caller's correlation id, when it gave one.
pub(super) fn correlated(mut context: Value, correlation_id: &Option<String>) -> Value {
    let correlation = trimmed(correlation_id);
    if !correlation.is_empty() {
        context["correlation_id"] = json!(correlation);
    }
    context
}

fn or_default(value: &Option<String>, default: &'static str) -> String {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
        .to_string()
}

fn tags_or(tags: &[String], default: [&str; 2]) -> Value {
    if tags.is_empty() {
        json!(default)
    } else {
        json!(tags)
    }
}

/// Python's `json.dumps(value)` (`indent` None) or `json.dumps(value, indent=n)`, with its
/// separators and `ensure_ascii`, so the texts read as the reference's do.
pub(super) fn py_json(value: &Value, indent: Option<usize>) -> String {
    fn string(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0c}' => out.push_str("\\f"),
                ' '..='~' => out.push(c),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out.push('"');
    }
    fn write(out: &mut String, value: &Value, indent: Option<usize>, depth: usize) {
        let (open, close, items): (char, char, Vec<(Option<&String>, &Value)>) = match value {
            Value::Array(items) => ('[', ']', items.iter().map(|v| (None, v)).collect()),
            Value::Object(map) => ('{', '}', map.iter().map(|(k, v)| (Some(k), v)).collect()),
            Value::String(s) => return string(out, s),
            other => return out.push_str(&other.to_string()),
        };
        out.push(open);
        if items.is_empty() {
            out.push(close);
            return;
        }
        let pad = |depth: usize| indent.map(|n| format!("\n{}", " ".repeat(n * depth)));
        for (i, (key, item)) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
                if indent.is_none() {
                    out.push(' ');
                }
            }
            if let Some(pad) = pad(depth + 1) {
                out.push_str(&pad);
            }
            if let Some(key) = key {
                string(out, key);
                out.push_str(": ");
            }
            write(out, item, indent, depth + 1);
        }
        if let Some(pad) = pad(depth) {
            out.push_str(&pad);
        }
        out.push(close);
    }
    let mut out = String::new();
    write(&mut out, value, indent, 0);
    out
}

/// The reply instructions that close the messages: a non-chat memory item on the board.
fn reply_by_memory(
    base_url: &str,
    board_id: Uuid,
    content: &str,
    tags: &Value,
    source: &str,
) -> String {
    format!(
        "POST {base_url}/api/v1/agent/boards/{board_id}/memory\n\
         Body: {{\"content\":\"{content}\",\"tags\":{},\"source\":\"{source}\"}}\n\
         Do NOT reply in OpenClaw chat.",
        py_json(tags, None)
    )
}

/// The reference's `_build_gateway_lead_message`.
pub(super) fn lead_message_text(
    board: &Board,
    from: &str,
    input: &LeadMessage,
    content: &str,
    base_url: &str,
) -> String {
    let header = match input.kind {
        LeadMessageKind::Question => "GATEWAY MAIN QUESTION",
        LeadMessageKind::Handoff => "GATEWAY MAIN HANDOFF",
    };
    let correlation = trimmed(&input.correlation_id);
    let correlation_line = if correlation.is_empty() {
        String::new()
    } else {
        format!("Correlation ID: {correlation}\n")
    };
    let tags = tags_or(&input.reply_tags, ["gateway_main", "lead_reply"]);
    let source = or_default(&input.reply_source, "lead_to_gateway_main");
    format!(
        "{header}\nBoard: {}\nBoard ID: {}\nFrom agent: {from}\n{correlation_line}\n{content}\n\n\
         Reply to the gateway agent by writing a NON-chat memory item on this board:\n{}",
        board.name,
        board.id,
        reply_by_memory(base_url, board.id, "...", &tags, &source)
    )
}

/// The reference's ask-user message to the gateway-main agent.
pub(super) fn ask_user_text(
    board: &Board,
    from: &str,
    input: &AskUser,
    content: &str,
    base_url: &str,
) -> String {
    let line = |label: &str, value: &str| {
        if value.is_empty() {
            String::new()
        } else {
            format!("{label}: {value}\n")
        }
    };
    let tags = tags_or(&input.reply_tags, ["gateway_main", "user_reply"]);
    let source = or_default(&input.reply_source, "user_via_gateway_main");
    format!(
        "LEAD REQUEST: ASK USER\nBoard: {}\nBoard ID: {}\nFrom lead: {from}\n{}{}\n{content}\n\n\
         Please reach the user via your configured OpenClaw channel(s) (Slack/SMS/etc).\n\
         If you cannot reach them there, post the question in Mission Control board chat as a fallback.\n\n\
         When you receive the answer, reply in Mission Control by writing a NON-chat memory item on this board:\n{}",
        board.name,
        board.id,
        line("Correlation ID", trimmed(&input.correlation_id)),
        line("Preferred channel", trimmed(&input.preferred_channel)),
        reply_by_memory(base_url, board.id, "<answer>", &tags, &source)
    )
}

/// The reference's `_webhook_message` (dispatch.py).
pub(super) fn webhook_text(
    board: &Board,
    webhook_id: Uuid,
    description: &str,
    payload_id: Uuid,
    payload: &Value,
) -> String {
    let preview = match payload {
        Value::String(text) => text.clone(),
        other => py_json(other, Some(2)),
    };
    format!(
        "WEBHOOK EVENT RECEIVED\nBoard: {}\nWebhook ID: {webhook_id}\nPayload ID: {payload_id}\n\
         Instruction: {description}\n\n\
         Take action:\n\
         1) Triage this payload against the webhook instruction.\n\
         2) Create/update tasks as needed.\n\
         3) Reference payload ID {payload_id} in task descriptions.\n\n\
         Payload preview:\n{preview}\n\n\
         To inspect board memory entries:\n\
         GET /api/v1/agent/boards/{}/memory?is_chat=false",
        board.name, board.id
    )
}

/// `GatewayMainAskUserRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AskUser {
    pub content: String,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub preferred_channel: Option<String>,
    /// Empty: `["gateway_main", "user_reply"]`.
    #[serde(default)]
    pub reply_tags: Vec<String>,
    /// Absent or empty: `user_via_gateway_main`.
    #[serde(default)]
    pub reply_source: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeadMessageKind {
    #[default]
    Question,
    Handoff,
}

impl LeadMessageKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            LeadMessageKind::Question => "question",
            LeadMessageKind::Handoff => "handoff",
        }
    }
}

/// `GatewayLeadMessageRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LeadMessage {
    #[serde(default)]
    pub kind: LeadMessageKind,
    pub content: String,
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Empty: `["gateway_main", "lead_reply"]`.
    #[serde(default)]
    pub reply_tags: Vec<String>,
    /// Absent or empty: `lead_to_gateway_main`.
    #[serde(default)]
    pub reply_source: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_as_pythons_dumps() {
        let tags = json!(["gateway_main", "lead_reply"]);
        assert_eq!(py_json(&tags, None), r#"["gateway_main", "lead_reply"]"#);
        // Keys keep the payload's order, as Python's dicts do.
        let payload = json!({"b": [1, {"c": "é😀"}], "a": {}, "d": []});
        assert_eq!(
            py_json(&payload, Some(2)),
            "{\n  \"b\": [\n    1,\n    {\n      \"c\": \"\\u00e9\\ud83d\\ude00\"\n    }\n  ],\n  \"a\": {},\n  \"d\": []\n}"
        );
        assert_eq!(py_json(&json!("tab\there"), None), r#""tab\there""#);
    }
}
