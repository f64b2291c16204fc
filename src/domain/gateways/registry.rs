//! Gateways that connect to us: registration tokens issued by admins, registration,
//! relay-token checks, heartbeats and the recorded history of status transitions.
//!
//! Status changes go through `transition`, which locks the gateway row, so that when two
//! instances see the same change (a heartbeat after an outage, the offline sweep) it is
//! recorded once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record, RowError};
use crate::db::GenericClient;
use crate::domain::memos::RelayIdentity;
use crate::domain::proactivity::producers;
use crate::domain::{DomainError, DomainResult};
use crate::secrets::tokens;

pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";

crate::db::record! {
    /// A registration token as listed to admins (the token itself is shown once, at creation).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct RegistrationToken in "t" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub label: Option<String>,
        pub created_at: DateTime<Utc>,
        pub last_used_at: Option<DateTime<Utc>>,
        pub revoked_at: Option<DateTime<Utc>>,
    }
}

/// Issues a token; returns it with the raw secret, which is not stored.
pub async fn issue_token(
    client: &impl GenericClient,
    organization_id: Uuid,
    label: Option<&str>,
    user_id: Option<Uuid>,
) -> DomainResult<(RegistrationToken, String)> {
    let raw = tokens::random();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO gateway_registration_tokens AS t (id, organization_id, token_hash, label, created_by_user_id) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {columns}",
                columns = RegistrationToken::COLUMNS
            ),
            &[&Uuid::new_v4(), &organization_id, &tokens::sha256_hex(&raw), &label, &user_id],
        )
        .await?;
    Ok((RegistrationToken::from_row(&row)?, raw))
}

pub async fn list_tokens(
    client: &impl GenericClient,
    organization_id: Uuid,
) -> DomainResult<Vec<RegistrationToken>> {
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM gateway_registration_tokens t WHERE t.organization_id = $1 ORDER BY t.created_at DESC",
                columns = RegistrationToken::COLUMNS
            ),
            &[&organization_id],
        )
        .await?;
    Ok(RegistrationToken::from_rows(&rows)?)
}

pub async fn revoke_token(
    client: &impl GenericClient,
    organization_id: Uuid,
    token_id: Uuid,
) -> DomainResult<RegistrationToken> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE gateway_registration_tokens t SET revoked_at = COALESCE(t.revoked_at, now()) \
                 WHERE t.id = $1 AND t.organization_id = $2 RETURNING {columns}",
                columns = RegistrationToken::COLUMNS
            ),
            &[&token_id, &organization_id],
        )
        .await?;
    row.as_ref()
        .map(RegistrationToken::from_row)
        .transpose()?
        .ok_or_else(DomainError::not_found)
}

pub struct Registration<'a> {
    pub organization_id: Uuid,
    pub registration_token: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub workspace_root: &'a str,
    pub version: Option<&'a str>,
    pub capabilities: Option<&'a [String]>,
    pub instance_id: &'a str,
}

pub struct Registered {
    pub gateway_id: Uuid,
    pub relay_token: String,
    pub created: bool,
}

/// Registers a gateway, or re-registers one of the same name in the organization (same id,
/// fresh relay token). The registration token must be a live token of that organization.
pub async fn register(
    client: &impl GenericClient,
    r: Registration<'_>,
) -> DomainResult<Registered> {
    // Every live token of the org, compared in constant time (an org has a handful).
    let candidates = client
        .query(
            "SELECT id, token_hash FROM gateway_registration_tokens WHERE organization_id = $1 AND revoked_at IS NULL",
            &[&r.organization_id],
        )
        .await?;
    let mut token_id = None;
    for row in &candidates {
        if tokens::matches(r.registration_token, get(row, "token_hash")?) {
            token_id = Some(get::<Uuid>(row, "id")?);
            break;
        }
    }
    let token_id =
        token_id.ok_or_else(|| DomainError::Unauthorized(json!("Invalid registration token.")))?;
    let url = super::urls::registered_url(r.url)?;
    client
        .execute(
            "UPDATE gateway_registration_tokens SET last_used_at = now() WHERE id = $1",
            &[&token_id],
        )
        .await?;

    // Serializes registrations of one name, so a restart storm cannot create duplicates.
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2, 0))",
            &[&r.organization_id.to_string(), &r.name],
        )
        .await?;
    let relay_token = tokens::random();
    let relay_hash = tokens::sha256_hex(&relay_token);
    let connection_info = json!({ "version": r.version, "capabilities": r.capabilities });
    let existing = client
        .query_opt(
            "SELECT id, status FROM gateways WHERE organization_id = $1 AND name = $2 ORDER BY created_at LIMIT 1 FOR NO KEY UPDATE",
            &[&r.organization_id, &r.name],
        )
        .await?;
    let (gateway_id, previous, created) = match existing {
        Some(row) => {
            let id: Uuid = get(&row, "id")?;
            client
                .execute(
                    "UPDATE gateways SET url = $2, workspace_root = $3, relay_token_hash = $4, registration_token_id = $5, \
                       status = 'online', last_heartbeat_at = now(), \
                       connection_info = COALESCE(connection_info, '{}'::jsonb) || $6, updated_at = now() \
                     WHERE id = $1",
                    &[&id, &url, &r.workspace_root, &relay_hash, &token_id, &connection_info],
                )
                .await?;
            (id, get::<String>(&row, "status")?, false)
        }
        None => {
            let id = Uuid::new_v4();
            client
                .execute(
                    "INSERT INTO gateways (id, organization_id, name, url, workspace_root, relay_token_hash, registration_token_id, \
                       status, last_heartbeat_at, connection_info, auto_registered) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'online', now(), $8, true)",
                    &[&id, &r.organization_id, &r.name, &url, &r.workspace_root, &relay_hash, &token_id, &connection_info],
                )
                .await?;
            // Boards need a gateway-main agent on their gateway, as admin-created ones have.
            crate::domain::agents::gateway_main::ensure_gateway_main(
                client,
                r.organization_id,
                id,
                r.name,
                "provision",
            )
            .await?;
            (id, "pending".to_string(), true)
        }
    };
    if previous != ONLINE {
        record_event(
            client,
            r.organization_id,
            gateway_id,
            &previous,
            ONLINE,
            "registered",
            r.instance_id,
        )
        .await?;
    }
    Ok(Registered {
        gateway_id,
        relay_token,
        created,
    })
}

/// The gateway a relay token belongs to.
#[derive(Debug, Clone)]
pub struct GatewayIdentity {
    pub id: Uuid,
    pub organization_id: Uuid,
}

/// The relay identities this instance keeps (`domain::memos`).
pub type RelayMemo = crate::db::memo::Memo<Uuid, RelayIdentity>;

/// `None` for an unknown gateway or a token that is not its current relay token. The
/// gateway's token hash is kept in `memo` (a heartbeat then reads nothing).
pub async fn verify_relay(
    pool: &crate::db::PgPool,
    memo: &RelayMemo,
    gateway_id: Uuid,
    relay_token: &str,
) -> DomainResult<Option<GatewayIdentity>> {
    let read = || async {
        let conn = pool.get().await?;
        let sql = "SELECT organization_id, relay_token_hash FROM gateways WHERE id = $1";
        let row = conn.query_opt(sql, &[&gateway_id]).await?;
        let known = row.map(|row| {
            Ok::<_, RowError>(RelayIdentity {
                organization_id: get(&row, "organization_id")?,
                relay_token_hash: get(&row, "relay_token_hash")?,
            })
        });
        Ok::<_, DomainError>(known.transpose()?)
    };
    let Some(known) = memo.get_or_read(gateway_id, read).await? else {
        return Ok(None);
    };
    let matches = known
        .relay_token_hash
        .is_some_and(|hash| tokens::matches(relay_token, &hash));
    Ok(matches.then_some(GatewayIdentity {
        id: gateway_id,
        organization_id: known.organization_id,
    }))
}

/// A sign of life: stamps `last_heartbeat_at`, sets `status` (default online), merges
/// `metrics` into `connection_info`, and records the transition (with `reason`) if the
/// status changed. A batch of one (see [`heartbeats`]).
pub async fn heartbeat(
    client: &impl GenericClient,
    gateway: &GatewayIdentity,
    status: &str,
    metrics: Option<&Value>,
    reason: &str,
    instance_id: &str,
) -> DomainResult<()> {
    let beat = Beat {
        gateway: gateway.clone(),
        status: status.to_string(),
        metrics: metrics.cloned(),
    };
    heartbeats(client, std::slice::from_ref(&beat), reason, instance_id).await
}

/// One heartbeat of a batch (see [`heartbeats`]).
#[derive(Debug, Clone)]
pub struct Beat {
    pub gateway: GatewayIdentity,
    pub status: String,
    pub metrics: Option<Value>,
}

/// Many heartbeats in one statement: each gateway's `last_heartbeat_at` stamped, its
/// `status` set, its `metrics` merged into `connection_info`; then each transition it finds
/// recorded with `reason` (run it in a transaction). A gateway that beat more than once in
/// the batch takes its last status and its last metrics.
pub async fn heartbeats(
    client: &impl GenericClient,
    beats: &[Beat],
    reason: &str,
    instance_id: &str,
) -> DomainResult<()> {
    let mut last: std::collections::BTreeMap<Uuid, (&Beat, Option<&Value>)> = Default::default();
    for beat in beats {
        let metrics = beat.metrics.as_ref();
        let entry = last.entry(beat.gateway.id).or_insert((beat, metrics));
        *entry = (beat, metrics.or(entry.1));
    }
    let ids: Vec<Uuid> = last.keys().copied().collect();
    let statuses: Vec<&str> = last.values().map(|(b, _)| b.status.as_str()).collect();
    let metrics: Vec<Option<Value>> = last.values().map(|(_, m)| m.cloned()).collect();
    // The locking scan sorts by id: every row is locked in that order, before it is
    // updated, so two instances' batches never wait on each other in a circle.
    let rows = client.query("WITH b AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[]) AS b(id, status, metrics)), \
         locked AS MATERIALIZED ( \
           SELECT g.id, g.status FROM gateways g WHERE g.id = ANY($1) ORDER BY g.id FOR NO KEY UPDATE), \
         stamped AS ( \
           UPDATE gateways g SET status = b.status, last_heartbeat_at = now(), updated_at = now(), \
             connection_info = CASE WHEN b.metrics IS NULL THEN g.connection_info \
               ELSE COALESCE(g.connection_info, '{}'::jsonb) || jsonb_build_object('metrics', b.metrics) END \
           FROM b JOIN locked l ON l.id = b.id WHERE g.id = b.id \
           RETURNING g.id, l.status AS was, b.status) \
         SELECT id, was FROM stamped WHERE was <> status",
        &[&ids, &statuses, &metrics],
    )
    .await?;
    for row in &rows {
        let (id, previous): (Uuid, String) = (get(row, "id")?, get(row, "was")?);
        let Some((beat, _)) = last.get(&id) else {
            continue;
        };
        let org = beat.gateway.organization_id;
        record_event(
            client,
            org,
            id,
            &previous,
            &beat.status,
            reason,
            instance_id,
        )
        .await?;
    }
    Ok(())
}

/// Marks every online (or `degraded`: a connector whose gateway is down) gateway whose last
/// heartbeat is older than `threshold` offline and records each transition (and its
/// `gateway.offline` event: run it in a transaction); one conditional statement, so
/// concurrent sweeps record each change once.
pub async fn sweep_offline(
    client: &impl GenericClient,
    threshold: std::time::Duration,
    instance_id: &str,
) -> DomainResult<Vec<Uuid>> {
    let seconds = threshold.as_secs_f64();
    let rows = client
        .query(
            "WITH old AS ( \
               SELECT id, status FROM gateways \
               WHERE status IN ('online', 'degraded') \
                 AND (last_heartbeat_at IS NULL OR last_heartbeat_at < now() - make_interval(secs => $1)) \
               FOR NO KEY UPDATE SKIP LOCKED), \
             stale AS ( \
               UPDATE gateways g SET status = 'offline', updated_at = now() FROM old \
               WHERE g.id = old.id AND g.status = old.status \
               RETURNING g.id, g.organization_id, old.status AS was) \
             INSERT INTO gateway_status_events (id, organization_id, gateway_id, from_status, to_status, reason, instance_id) \
             SELECT gen_random_uuid(), organization_id, id, was, 'offline', 'heartbeat timeout', $2 FROM stale \
             RETURNING gateway_id, organization_id, from_status",
            &[&seconds, &instance_id],
        )
        .await?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let gateway_id = get(row, "gateway_id")?;
        let was: String = get(row, "from_status")?;
        producers::gateway_status(
            client,
            get(row, "organization_id")?,
            gateway_id,
            (&was, "offline"),
            "heartbeat timeout",
        )
        .await?;
        ids.push(gateway_id);
    }
    Ok(ids)
}

async fn record_event(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
    from: &str,
    to: &str,
    reason: &str,
    instance_id: &str,
) -> DomainResult<()> {
    client
        .execute(
            "INSERT INTO gateway_status_events (id, organization_id, gateway_id, from_status, to_status, reason, instance_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&Uuid::new_v4(), &organization_id, &gateway_id, &from, &to, &reason, &instance_id],
        )
        .await?;
    producers::gateway_status(client, organization_id, gateway_id, (from, to), reason).await?;
    Ok(())
}

crate::db::record! {
    /// One recorded status transition.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct StatusEvent in "e" {
        pub from_status: String,
        pub to_status: String,
        pub reason: String,
        pub instance_id: Option<String>,
        pub created_at: DateTime<Utc>,
    }
}

/// `GET /gateways/{id}/metrics`: the reference's fields plus the status history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayMetrics {
    pub gateway_id: Uuid,
    pub cpu_pct: Option<f64>,
    pub memory_mb: Option<f64>,
    pub active_sessions: Option<i64>,
    pub agent_count: Option<i64>,
    pub status: String,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub gateway_version: Option<String>,
    pub gateway_ip: Option<String>,
    pub status_history: Vec<StatusEvent>,
}

const HISTORY_LIMIT: i64 = 50;

pub async fn metrics(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
) -> DomainResult<GatewayMetrics> {
    let row = client
        .query_opt(
            "SELECT status, last_heartbeat_at, connection_info FROM gateways WHERE id = $1 AND organization_id = $2",
            &[&gateway_id, &organization_id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let info: Value = get::<Option<Value>>(&row, "connection_info")?.unwrap_or(Value::Null);
    let metric = |name: &str| {
        info.pointer(&format!("/metrics/{name}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let history = client
        .query(
            &format!(
                "SELECT {} FROM gateway_status_events e \
                 WHERE e.gateway_id = $1 ORDER BY e.created_at DESC LIMIT $2",
                StatusEvent::COLUMNS
            ),
            &[&gateway_id, &HISTORY_LIMIT],
        )
        .await?;
    Ok(GatewayMetrics {
        gateway_id,
        cpu_pct: metric("cpu_pct").as_f64(),
        memory_mb: metric("memory_mb").as_f64(),
        active_sessions: metric("active_sessions").as_i64(),
        agent_count: metric("agent_count").as_i64(),
        status: get(&row, "status")?,
        last_heartbeat_at: get(&row, "last_heartbeat_at")?,
        gateway_version: info
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string),
        gateway_ip: info.get("ip").and_then(Value::as_str).map(str::to_string),
        status_history: StatusEvent::from_rows(&history)?,
    })
}

/// Whether the gateway exists in the organization (for the admin views).
pub async fn exists_in_org(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
) -> DomainResult<()> {
    client
        .query_opt(
            "SELECT 1 FROM gateways WHERE id = $1 AND organization_id = $2",
            &[&gateway_id, &organization_id],
        )
        .await?
        .map(drop)
        .ok_or_else(DomainError::not_found)
}
