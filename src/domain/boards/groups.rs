//! Board groups (domain.md §A5): CRUD and who may see a group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{BoardGroup, Principal};
use crate::domain::outbox::provisioning;
use crate::domain::support::access::{self, Access, BoardScope};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::{DomainError, DomainResult};

/// `BoardGroupCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BoardGroupCreate {
    pub name: String,
    pub slug: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// `BoardGroupUpdate`: absent fields stay; `null` clears `description` and leaves the
/// others.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct BoardGroupUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// Lowercase, runs of anything but `a-z0-9` become "-", trimmed of "-"; empty when the
/// text has no such characters (each resource has its own fallback).
pub fn slug_words(value: &str) -> String {
    let mut slug = String::new();
    for c in value.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_string()
}

/// `slug_words`; a name with no such characters gets a random hex slug.
pub fn slugify(value: &str) -> String {
    let slug = slug_words(value);
    if slug.is_empty() {
        Uuid::new_v4().simple().to_string()
    } else {
        slug
    }
}

/// Members without all-boards read see only groups holding a board they can read.
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    page: PageParams,
) -> DomainResult<Page<BoardGroup>> {
    let scope = access::board_scope(client, &principal.member, Access::Read).await?;
    let ids = scope.ids().map(<[Uuid]>::to_vec);
    let filter = "g.organization_id = $1 AND ($2::uuid[] IS NULL OR g.id IN \
                  (SELECT b.board_group_id FROM boards b WHERE b.id = ANY($2)))";
    let params: [&(dyn ToSql + Sync); 2] = [&principal.organization.id, &ids];
    fetch_page(
        client,
        BoardGroup::COLUMNS,
        &format!("FROM board_groups g WHERE {filter}"),
        "lower(g.name), g.created_at, g.id",
        &params,
        page,
        BoardGroup::from_row,
    )
    .await
}

/// The group with this id in this organization; another organization's group is `None`.
pub async fn find_in_org(
    client: &impl GenericClient,
    organization_id: Uuid,
    group_id: Uuid,
) -> DomainResult<Option<BoardGroup>> {
    find(client, organization_id, group_id, false).await
}

async fn find(
    client: &impl GenericClient,
    organization_id: Uuid,
    group_id: Uuid,
    lock: bool,
) -> DomainResult<Option<BoardGroup>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM board_groups g WHERE g.id = $1 AND g.organization_id = $2{}",
                if lock { " FOR NO KEY UPDATE" } else { "" },
                columns = BoardGroup::COLUMNS
            ),
            &[&group_id, &organization_id],
        )
        .await?;
    Ok(row.as_ref().map(BoardGroup::from_row).transpose()?)
}

/// The group, if it is in the caller's organization (else 404) and the caller can read
/// (or write) one of its boards; an admin may also reach an empty group (else 403).
pub async fn group_for_user(
    client: &impl GenericClient,
    principal: &Principal,
    group_id: Uuid,
    access: Access,
    lock: bool,
) -> DomainResult<BoardGroup> {
    let group = find(client, principal.organization.id, group_id, lock)
        .await?
        .ok_or_else(DomainError::not_found)?;
    let scope = access::board_scope(client, &principal.member, access).await?;
    if scope == BoardScope::All {
        return Ok(group);
    }
    let board_ids: Vec<Uuid> = client
        .query(
            "SELECT id FROM boards WHERE board_group_id = $1",
            &[&group.id],
        )
        .await?
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?;
    let allowed = if board_ids.is_empty() {
        access::is_org_admin(&principal.member)
    } else {
        board_ids.iter().any(|id| scope.allows(*id))
    };
    if !allowed {
        return Err(DomainError::forbidden("Forbidden"));
    }
    Ok(group)
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: BoardGroupCreate,
) -> DomainResult<BoardGroup> {
    access::require_org_admin(&principal.member)?;
    let slug = if input.slug.trim().is_empty() {
        slugify(&input.name)
    } else {
        input.slug
    };
    let row = client
        .query_one(
            &format!(
                "INSERT INTO board_groups AS g (id, organization_id, name, slug, description) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {columns}",
                columns = BoardGroup::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &principal.organization.id,
                &input.name,
                &slug,
                &input.description,
            ],
        )
        .await?;
    Ok(BoardGroup::from_row(&row)?)
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    group_id: Uuid,
    patch: BoardGroupUpdate,
) -> DomainResult<BoardGroup> {
    access::require_org_admin(&principal.member)?;
    let mut group = group_for_user(client, principal, group_id, Access::Write, true).await?;
    if let Some(name) = patch.name {
        group.name = name;
    }
    if let Some(slug) = patch.slug {
        // A blank slug is regenerated from the (possibly new) name.
        group.slug = if slug.trim().is_empty() {
            slugify(&group.name)
        } else {
            slug
        };
    }
    if let Some(description) = patch.description {
        group.description = description;
    }
    let row = client
        .query_one(
            &format!(
                "UPDATE board_groups g SET name = $2, slug = $3, description = $4, updated_at = now() \
                 WHERE g.id = $1 RETURNING {columns}",
                columns = BoardGroup::COLUMNS
            ),
            &[&group.id, &group.name, &group.slug, &group.description],
        )
        .await?;
    Ok(BoardGroup::from_row(&row)?)
}

/// Deletes the group; its boards stay, detached (the schema sets their group to NULL).
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    group_id: Uuid,
) -> DomainResult<()> {
    access::require_org_admin(&principal.member)?;
    let group = group_for_user(client, principal, group_id, Access::Write, true).await?;
    client
        .execute(
            "UPDATE boards SET board_group_id = NULL, updated_at = now() WHERE board_group_id = $1",
            &[&group.id],
        )
        .await?;
    client
        .execute("DELETE FROM board_groups WHERE id = $1", &[&group.id])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs_like_the_reference() {
        assert_eq!(slugify("  Sales & Ops -- EU "), "sales-ops-eu");
        assert_eq!(slugify("Été 2026"), "t-2026");
        let fallback = slugify("!!!");
        assert_eq!(fallback.len(), 32);
        assert!(fallback.chars().all(|c| c.is_ascii_hexdigit()));
    }
}

/// `BoardGroupHeartbeatApplyResult`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatApplied {
    pub board_group_id: Uuid,
    #[schema(value_type = Object)]
    pub requested: Value,
    pub updated_agent_ids: Vec<Uuid>,
    pub failed_agent_ids: Vec<Uuid>,
}

/// A cadence the gateway understands: a whole number and a unit (`30s`, `10m`, `1h`, `1d`);
/// `0m` puts agents on standby.
pub fn valid_cadence(every: &str) -> bool {
    // By characters: the last one may be any character of any width.
    let Some((last, unit)) = every.char_indices().next_back() else {
        return false;
    };
    let digits = &every[..last];
    !digits.is_empty()
        && digits.len() <= 6
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, 's' | 'm' | 'h' | 'd')
}

/// Sets the heartbeat cadence of the agents on the group's boards (workers, and leads too
/// when asked) and sends each gateway one `agents.heartbeats.set` request with its agents'
/// new configs. Returns the answer and the gateways to poke once committed.
pub async fn apply_heartbeat(
    client: &impl GenericClient,
    principal: &Principal,
    group_id: Uuid,
    every: &str,
    include_board_leads: bool,
) -> DomainResult<(HeartbeatApplied, Vec<Uuid>)> {
    access::require_org_admin(&principal.member)?;
    group_for_user(client, principal, group_id, Access::Write, false).await?;
    if !valid_cadence(every) {
        return Err(DomainError::unprocessable(
            "every must be a number and a unit: s, m, h or d (e.g. 10m)",
        ));
    }
    let rows = client
        .query(
            "UPDATE agents a SET \
               heartbeat_config = jsonb_set(COALESCE(a.heartbeat_config, $3::jsonb), '{every}', to_jsonb($4::text)) \
                 || CASE WHEN COALESCE(a.heartbeat_config, $3::jsonb) ? 'target' THEN '{}'::jsonb ELSE '{\"target\": \"last\"}'::jsonb END, \
               updated_at = now() \
             FROM boards b \
             WHERE a.board_id = b.id AND b.board_group_id = $1 AND b.organization_id = $2 AND ($5 OR NOT a.is_board_lead) \
             RETURNING a.id, a.gateway_id, a.openclaw_session_id, a.heartbeat_config",
            &[&group_id, &principal.organization.id, &crate::domain::model::agent::default_heartbeat_config(), &every, &include_board_leads],
        )
        .await?;
    let mut by_gateway: BTreeMap<Uuid, Vec<Value>> = BTreeMap::new();
    let mut updated_agent_ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let agent_id: Uuid = get(row, "id")?;
        by_gateway
            .entry(get(row, "gateway_id")?)
            .or_default()
            .push(json!({
                "agent_id": agent_id,
                "session_key": get::<Option<String>>(row, "openclaw_session_id")?,
                "heartbeat_config": get::<Option<Value>>(row, "heartbeat_config")?,
            }));
        updated_agent_ids.push(agent_id);
    }
    let gateways: Vec<Uuid> = by_gateway.keys().copied().collect();
    for (gateway_id, agents) in by_gateway {
        provisioning::set_heartbeats(client, principal.organization.id, gateway_id, agents).await?;
    }
    updated_agent_ids.sort();
    let applied = HeartbeatApplied {
        board_group_id: group_id,
        requested: json!({"every": every, "include_board_leads": include_board_leads}),
        updated_agent_ids,
        failed_agent_ids: Vec::new(),
    };
    Ok((applied, gateways))
}

#[cfg(test)]
mod cadence_tests {
    use super::valid_cadence;

    #[test]
    fn cadences_are_a_number_and_a_unit() {
        for ok in ["0m", "30s", "10m", "2h", "1d"] {
            assert!(valid_cadence(ok), "{ok}");
        }
        for bad in [
            "",
            "m",
            "10",
            "10x",
            "-1m",
            "1.5m",
            "10 m",
            "1234567m",
            "10\u{fffd}",
            "é",
        ] {
            assert!(!valid_cadence(bad), "{bad}");
        }
    }
}
