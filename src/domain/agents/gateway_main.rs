//! The gateway-main agent: the one agent of a gateway that belongs to no board, made or
//! renamed whenever its gateway is.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::agent::{default_heartbeat_config, gateway_main_session_key};
use crate::domain::model::Agent;
use crate::domain::outbox::provisioning;
use crate::domain::DomainResult;

/// The gateway's main agent (the one without a board), if its row exists: id and name.
pub async fn gateway_main(
    client: &impl GenericClient,
    gateway_id: Uuid,
) -> DomainResult<Option<(Uuid, String)>> {
    let row = client
        .query_opt(
            "SELECT id, name FROM agents WHERE gateway_id = $1 AND board_id IS NULL \
             ORDER BY created_at, id LIMIT 1",
            &[&gateway_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some((get(&row, "id")?, get(&row, "name")?)))
}

/// Creates or refreshes the gateway-main agent of a gateway and records the
/// provisioning intent (`provision` for a new gateway, `update` after a change).
pub async fn ensure_gateway_main(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
    gateway_name: &str,
    action: &str,
) -> DomainResult<()> {
    let status = if action == "update" {
        "updating"
    } else {
        "provisioning"
    };
    let name = format!("{gateway_name} Gateway Agent");
    let session_key = gateway_main_session_key(gateway_id);
    let mut mains = client
        .query(
            &format!("UPDATE agents AS a SET name = $2, openclaw_session_id = $3, is_board_lead = false, \
               heartbeat_config = COALESCE(heartbeat_config, $4), identity_profile = COALESCE(identity_profile, $5), \
               status = $6, provision_requested_at = now(), provision_action = $7, updated_at = now() \
             WHERE gateway_id = $1 AND board_id IS NULL RETURNING {columns}",
                columns = Agent::COLUMNS),
            &[
                &gateway_id,
                &name,
                &session_key,
                &default_heartbeat_config(),
                &main_identity_profile(),
                &status,
                &action,
            ],
        )
        .await?;
    if mains.is_empty() {
        mains = client
            .query(
                &format!("INSERT INTO agents AS a (id, organization_id, board_id, gateway_id, name, status, openclaw_session_id, \
                   heartbeat_config, identity_profile, provision_requested_at, provision_action) \
                 VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, now(), $9) RETURNING {columns}",
                columns = Agent::COLUMNS),
                &[
                    &Uuid::new_v4(),
                    &organization_id,
                    &gateway_id,
                    &name,
                    &status,
                    &session_key,
                    &default_heartbeat_config(),
                    &main_identity_profile(),
                    &action,
                ],
            )
            .await?;
    }
    let method = match action {
        "update" => provisioning::UPDATE,
        _ => provisioning::CREATE,
    };
    for main in &mains {
        provisioning::provision(client, organization_id, &Agent::from_row(main)?, method).await?;
    }
    Ok(())
}

fn main_identity_profile() -> Value {
    json!({
        "role": "Gateway Agent",
        "communication_style": "direct, concise, practical",
        "emoji": ":compass:",
    })
}
