//! The command center's figures (domain.md §F4), each of the caller's organization only
//! (the reference counts every tenant's) and each one query.
//!
//! Definitions, as in the reference unless said: an agent is **active** when seen in the
//! last 30 minutes; **today** starts at 00:00 UTC; **throughput_7d** counts tasks now in
//! review or done and changed in the last 7 days; a gateway is **online** when its status
//! is online or we hold a connection to it. An agent's `status` is the one its read model
//! shows (offline after 10 silent minutes; the reference answers the stored word). Its
//! **current task** is its in-progress task started last. **estimated_hours** is the sum
//! of its open schedules' estimates plus 4 h for each task in progress with no open
//! schedule (the reference: always 4 h per task in progress). Graph edges come from agent
//! events of the last 30 days naming another agent of the organization
//! (`payload.target_agent_id` or `payload.to_agent_id`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::model::agent::computed_status;
use crate::domain::model::Principal;
use crate::domain::support::access;
use crate::domain::DomainResult;

/// Start of the current UTC day, in SQL.
const TODAY: &str = "date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";

/// `CommandCenterOverview`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Overview {
    pub active_agents: i64,
    pub tasks_today: i64,
    pub throughput_7d: i64,
    pub gateways_online: i64,
    pub generated_at: DateTime<Utc>,
}

pub async fn overview(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<Overview> {
    access::require_org_admin(&principal.member)?;
    figures(client, principal.organization.id).await
}

/// The overview of `organization_id` (the stream's, whose caller was checked once).
pub async fn figures(client: &impl GenericClient, organization_id: Uuid) -> DomainResult<Overview> {
    let row = client
        .query_one(
            &format!(
                "SELECT \
                   (SELECT count(*) FROM agents WHERE organization_id = $1 \
                      AND last_seen_at >= now() - interval '30 minutes') AS active_agents, \
                   (SELECT count(*) FROM tasks WHERE organization_id = $1 AND created_at >= {TODAY}) AS tasks_today, \
                   (SELECT count(*) FROM tasks WHERE organization_id = $1 AND status IN ('review', 'done') \
                      AND updated_at >= now() - interval '7 days') AS throughput_7d, \
                   (SELECT count(*) FROM gateways WHERE organization_id = $1 \
                      AND (status = 'online' OR connection_state = 'connected')) AS gateways_online, \
                   now() AS generated_at"
            ),
            &[&organization_id],
        )
        .await?;
    Ok(Overview {
        active_agents: get(&row, "active_agents")?,
        tasks_today: get(&row, "tasks_today")?,
        throughput_7d: get(&row, "throughput_7d")?,
        gateways_online: get(&row, "gateways_online")?,
        generated_at: get(&row, "generated_at")?,
    })
}

/// `{agents: [AgentStatusItem]}`, most recently seen first.
pub async fn agent_status(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<Value> {
    access::require_org_admin(&principal.member)?;
    let rows = client
        .query(
            "SELECT a.id, a.name, a.status, a.last_seen_at, a.gateway_id, g.name AS gateway_name, \
                    cur.id AS current_task_id, cur.title AS current_task_title \
             FROM agents a \
             LEFT JOIN gateways g ON g.id = a.gateway_id \
             LEFT JOIN LATERAL (SELECT t.id, t.title FROM tasks t \
                                 WHERE t.assigned_agent_id = a.id AND t.status = 'in_progress' \
                                 ORDER BY t.in_progress_at DESC NULLS LAST, t.id LIMIT 1) cur ON true \
             WHERE a.organization_id = $1 \
             ORDER BY a.last_seen_at DESC NULLS LAST, a.name, a.id",
            &[&principal.organization.id],
        )
        .await?;
    let now = Utc::now();
    let agents = rows
        .iter()
        .map(|r| {
            let status: String = get(r, "status")?;
            let seen: Option<DateTime<Utc>> = get(r, "last_seen_at")?;
            Ok(json!({
                "id": get::<Uuid>(r, "id")?,
                "name": get::<String>(r, "name")?,
                "status": computed_status(&status, seen, now),
                "current_task_id": get::<Option<Uuid>>(r, "current_task_id")?,
                "current_task_title": get::<Option<String>>(r, "current_task_title")?,
                "gateway_id": get::<Uuid>(r, "gateway_id")?,
                "gateway_name": get::<Option<String>>(r, "gateway_name")?,
                "last_seen_at": seen,
            }))
        })
        .collect::<Result<Vec<Value>, crate::db::record::RowError>>()?;
    Ok(json!({ "agents": agents }))
}

/// `{nodes, edges}`: the organization's agents, and who addressed whom in agent events
/// of the last 30 days (two queries).
pub async fn communication_graph(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<Value> {
    access::require_org_admin(&principal.member)?;
    let org = principal.organization.id;
    let rows = client
        .query(
            "SELECT id, name, status, last_seen_at, gateway_id FROM agents WHERE organization_id = $1 ORDER BY name, id",
            &[&org],
        )
        .await?;
    let now = Utc::now();
    let nodes = rows
        .iter()
        .map(|r| {
            let status: String = get(r, "status")?;
            Ok(json!({
                "id": get::<Uuid>(r, "id")?,
                "name": get::<String>(r, "name")?,
                "status": computed_status(&status, get(r, "last_seen_at")?, now),
                "gateway_id": get::<Uuid>(r, "gateway_id")?,
            }))
        })
        .collect::<Result<Vec<Value>, crate::db::record::RowError>>()?;
    let rows = client
        .query(
            "SELECT e.agent_id AS from_agent_id, t.id AS to_agent_id, count(*) AS interactions \
             FROM agent_events e \
             JOIN agents t ON t.organization_id = $1 \
                          AND t.id::text = COALESCE(e.payload->>'target_agent_id', e.payload->>'to_agent_id') \
             WHERE e.organization_id = $1 AND e.agent_id IS NOT NULL AND e.agent_id <> t.id \
               AND e.created_at >= now() - interval '30 days' \
             GROUP BY e.agent_id, t.id ORDER BY count(*) DESC, e.agent_id, t.id",
            &[&org],
        )
        .await?;
    let edges = rows
        .iter()
        .map(|r| {
            let count: i64 = get(r, "interactions")?;
            Ok(json!({
                "from_agent_id": get::<Uuid>(r, "from_agent_id")?,
                "to_agent_id": get::<Uuid>(r, "to_agent_id")?,
                "weight": count as f64,
                "interaction_count": count,
            }))
        })
        .collect::<Result<Vec<Value>, crate::db::record::RowError>>()?;
    Ok(json!({ "nodes": nodes, "edges": edges }))
}

/// `{per_agent: [ResourceAllocationItem]}` by name.
pub async fn resource_allocation(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<Value> {
    access::require_org_admin(&principal.member)?;
    let rows = client
        .query(
            &format!(
                "WITH t AS ( \
                   SELECT k.assigned_agent_id AS agent_id, count(*) AS assigned, \
                          count(*) FILTER (WHERE k.status = 'in_progress') AS in_progress, \
                          count(*) FILTER (WHERE k.status = 'done' AND k.updated_at >= {TODAY}) AS done_today, \
                          count(*) FILTER (WHERE k.status = 'in_progress' AND NOT EXISTS ( \
                              SELECT 1 FROM task_schedules s WHERE s.task_id = k.id \
                                 AND s.status IN ('planned', 'in_progress'))) AS unscheduled \
                   FROM tasks k WHERE k.organization_id = $1 AND k.assigned_agent_id IS NOT NULL \
                   GROUP BY k.assigned_agent_id), \
                 h AS ( \
                   SELECT s.agent_id, sum(s.estimated_hours) AS hours FROM task_schedules s \
                   WHERE s.organization_id = $1 AND s.agent_id IS NOT NULL \
                     AND s.status IN ('planned', 'in_progress') GROUP BY s.agent_id) \
                 SELECT a.id, a.name, COALESCE(t.assigned, 0) AS tasks_assigned, \
                        COALESCE(t.in_progress, 0) AS tasks_in_progress, \
                        COALESCE(t.done_today, 0) AS tasks_done_today, \
                        COALESCE(h.hours, 0) + 4 * COALESCE(t.unscheduled, 0) AS estimated_hours \
                 FROM agents a LEFT JOIN t ON t.agent_id = a.id LEFT JOIN h ON h.agent_id = a.id \
                 WHERE a.organization_id = $1 ORDER BY a.name, a.id"
            ),
            &[&principal.organization.id],
        )
        .await?;
    let per_agent = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "agent_id": get::<Uuid>(r, "id")?,
                "agent_name": get::<String>(r, "name")?,
                "tasks_assigned": get::<i64>(r, "tasks_assigned")?,
                "tasks_in_progress": get::<i64>(r, "tasks_in_progress")?,
                "tasks_done_today": get::<i64>(r, "tasks_done_today")?,
                "estimated_hours": get::<f64>(r, "estimated_hours")?,
            }))
        })
        .collect::<Result<Vec<Value>, crate::db::record::RowError>>()?;
    Ok(json!({ "per_agent": per_agent }))
}

/// Where a live-activity read starts.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    /// The newest events, newest first.
    Newest,
    /// The reference's `since_id`: the events older than that one, newest first.
    Before(Uuid),
    /// Ours: the events after number `seq`, oldest first (what a poller or the stream
    /// reads next; numbers follow commit order, so nothing is skipped or repeated).
    After(i64),
}

/// `{events, next_since_id, cursor}`: up to `limit` agent events of the organization;
/// `next_since_id` is the oldest returned (for the next page back), `cursor` the highest
/// `seq` returned or read past (for the next read forward).
pub async fn live_activity(
    client: &impl GenericClient,
    organization_id: Uuid,
    cursor: Cursor,
    limit: i64,
) -> DomainResult<Value> {
    let (filter, order, after) = match cursor {
        Cursor::Newest => ("", "DESC", 0),
        Cursor::Before(_) => (
            "AND e.seq < COALESCE((SELECT b.seq FROM agent_events b \
                                   WHERE b.id = $3 AND b.organization_id = $1), 9223372036854775807)",
            "DESC",
            0,
        ),
        Cursor::After(seq) => ("AND e.seq > $3", "ASC", seq),
    };
    let sql = format!(
        "SELECT e.id, e.seq, e.event_type, e.agent_id, a.name AS agent_name, e.task_id, e.board_id, \
                e.payload, e.created_at \
         FROM agent_events e LEFT JOIN agents a ON a.id = e.agent_id \
         WHERE e.organization_id = $1 {filter} \
         ORDER BY e.seq {order} LIMIT $2"
    );
    let rows = match cursor {
        Cursor::Newest => client.query(&sql, &[&organization_id, &limit]).await?,
        Cursor::Before(id) => client.query(&sql, &[&organization_id, &limit, &id]).await?,
        Cursor::After(seq) => {
            client
                .query(&sql, &[&organization_id, &limit, &seq])
                .await?
        }
    };
    let mut events = Vec::with_capacity(rows.len());
    let mut highest = after;
    for r in &rows {
        let seq: i64 = get(r, "seq")?;
        highest = highest.max(seq);
        events.push(json!({
            "id": get::<Uuid>(r, "id")?,
            "seq": seq,
            "event_type": get::<String>(r, "event_type")?,
            "agent_id": get::<Option<Uuid>>(r, "agent_id")?,
            "agent_name": get::<Option<String>>(r, "agent_name")?,
            "task_id": get::<Option<Uuid>>(r, "task_id")?,
            "board_id": get::<Option<Uuid>>(r, "board_id")?,
            "payload": get::<Value>(r, "payload")?,
            "created_at": get::<DateTime<Utc>>(r, "created_at")?,
        }));
    }
    let oldest = match cursor {
        Cursor::After(_) => events.first(),
        _ => events.last(),
    };
    let next_since_id = oldest.map(|e| e["id"].clone()).unwrap_or(Value::Null);
    Ok(json!({ "events": events, "next_since_id": next_since_id, "cursor": highest }))
}

/// The highest event number of the organization (where a new stream starts).
pub async fn latest_seq(client: &impl GenericClient, organization_id: Uuid) -> DomainResult<i64> {
    let row = client
        .query_one(
            "SELECT agent_event_seq FROM organizations WHERE id = $1",
            &[&organization_id],
        )
        .await?;
    Ok(get(&row, "agent_event_seq")?)
}
