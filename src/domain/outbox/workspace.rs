//! The files of an agent's workspace on a gateway we dial, from the agent's spec as a
//! provisioning request carries it (`provisioning::spec`): who the agent is (IDENTITY.md,
//! SOUL.md) and how it reaches Mission Control (AGENTS.md, with its token).

use serde_json::Value;

/// `(file name, content)` of every file to write. `base_url` is this deployment's public
/// URL, when known.
pub fn files(spec: &Value, base_url: Option<&str>) -> Vec<(&'static str, String)> {
    let name = spec["name"].as_str().unwrap_or("Agent");
    let profile = &spec["identity_profile"];
    let field = |key: &str| profile[key].as_str().filter(|s| !s.is_empty());
    let identity = non_empty(&spec["identity_template"]).unwrap_or_else(|| {
        let mut text = format!("# IDENTITY\n\n- Name: {name}\n");
        for (label, key) in [
            ("Role", "role"),
            ("Communication style", "communication_style"),
            ("Emoji", "emoji"),
        ] {
            if let Some(value) = field(key) {
                text.push_str(&format!("- {label}: {value}\n"));
            }
        }
        text
    });
    let soul = non_empty(&spec["soul_template"]).unwrap_or_else(|| {
        let role = if spec["is_board_lead"] == true {
            "the lead of its board: you plan the work, assign tasks to the board's agents and review them"
        } else if spec["is_gateway_main"] == true {
            "the main agent of this gateway: you speak for the organization across its boards"
        } else {
            "a member of its board: you take the tasks assigned to you and report progress"
        };
        format!("# SOUL\n\nYou are {name}, an agent of Mission Control, {role}.\nBe concise, honest about what you did, and ask when something is unclear.\n")
    });
    let mut agents = format!(
        "# AGENTS\n\nYou work for Mission Control.\n\n## Mission Control API\n\n- Base URL: {}\n- Agent id: {}\n",
        base_url.unwrap_or("(ask your operator for the Mission Control URL)"),
        spec["agent_id"].as_str().unwrap_or_default(),
    );
    if let Some(board) = spec["board_id"].as_str() {
        agents.push_str(&format!("- Board id: {board}\n"));
    }
    if let Some(token) = spec["auth_token"].as_str() {
        agents.push_str(&format!(
            "- Send `X-Agent-Token: {token}` with every request to /api/v1/agent/*\n"
        ));
    }
    vec![
        ("IDENTITY.md", identity),
        ("SOUL.md", soul),
        ("AGENTS.md", agents),
    ]
}

fn non_empty(value: &Value) -> Option<String> {
    value
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_win_and_the_token_is_written() {
        let spec = json!({"name": "Ada", "agent_id": "a-1", "soul_template": "be kind", "auth_token": "tok",
                          "identity_profile": {"role": "Researcher"}});
        let files = files(&spec, Some("https://mc.example"));
        assert_eq!(files[1], ("SOUL.md", "be kind".to_string()));
        assert!(files[0].1.contains("- Role: Researcher"));
        assert!(
            files[2].1.contains("X-Agent-Token: tok") && files[2].1.contains("https://mc.example")
        );
    }
}
