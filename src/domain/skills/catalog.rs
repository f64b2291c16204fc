//! Skills marketplace and skill packs of an organization (domain.md §A17). An install or
//! uninstall is a request to the gateway's main agent over its relay link; a pack sync
//! upserts what `pack_discovery` finds in the pack's repository.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::outbox::commands::{self as gateway_commands, Target};
use crate::domain::skills::packs::{find_pack, infer_skill_name};
use crate::domain::support::access;
use crate::domain::support::validation::Invalid;
use crate::domain::{DomainError, DomainResult};

crate::db::record! {
    /// `MarketplaceSkillRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Skill in "s" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub name: String,
        pub description: Option<String>,
        pub category: Option<String>,
        pub risk: Option<String>,
        pub source: Option<String>,
        pub source_url: String,
        #[schema(value_type = Object)]
        pub metadata: Value,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// `MarketplaceSkillCardRead`: the skill with its install state on one gateway.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillCard {
    #[serde(flatten)]
    pub skill: Skill,
    pub installed: bool,
    pub installed_at: Option<DateTime<Utc>>,
}

/// `MarketplaceSkillCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SkillCreate {
    pub source_url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `MarketplaceSkillActionResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillAction {
    pub ok: bool,
    pub skill_id: Uuid,
    pub gateway_id: Uuid,
    pub installed: bool,
}

/// Query of `GET /skills/marketplace`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MarketplaceQuery {
    pub gateway_id: Uuid,
    pub search: Option<String>,
    pub category: Option<String>,
    pub risk: Option<String>,
    pub pack_id: Option<Uuid>,
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: i64,
}

/// Query naming the gateway of an install or uninstall.
#[derive(Debug, Deserialize, IntoParams)]
pub struct GatewayQuery {
    pub gateway_id: Uuid,
}

const ERR_GATEWAY: &str = "Gateway not found";
const ERR_SKILL: &str = "Marketplace skill not found";
async fn require_gateway(
    client: &impl GenericClient,
    principal: &Principal,
    gateway_id: Uuid,
) -> DomainResult<crate::domain::model::Gateway> {
    crate::domain::model::gateway::find(client, principal.organization.id, gateway_id, false)
        .await?
        .ok_or_else(|| DomainError::NotFound(json!(ERR_GATEWAY)))
}

async fn find_skill(
    client: &impl GenericClient,
    organization_id: Uuid,
    skill_id: Uuid,
) -> DomainResult<Skill> {
    client
        .query_opt(
            &format!(
                "SELECT {columns} FROM marketplace_skills s WHERE s.id = $1 AND s.organization_id = $2",
                columns = Skill::COLUMNS
            ),
            &[&skill_id, &organization_id],
        )
        .await?
        .as_ref()
        .map(Skill::from_row).transpose()?
        .ok_or_else(|| DomainError::NotFound(json!(ERR_SKILL)))
}

/// A 422 on the query parameter `name`, as FastAPI words a `ge`/`le` bound.
fn query_bound(name: &str, kind: &str, msg: &str, input: i64) -> DomainError {
    DomainError::Unprocessable(json!([{
        "type": kind, "loc": ["query", name], "msg": msg, "input": input.to_string(),
    }]))
}

/// `LIKE` pattern text with its wildcards escaped.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The organization's skills, newest first, with their state on the gateway.
pub async fn list_marketplace(
    client: &impl GenericClient,
    principal: &Principal,
    query: MarketplaceQuery,
) -> DomainResult<Vec<SkillCard>> {
    access::require_org_admin(&principal.member)?;
    if let Some(limit) = query.limit {
        if limit < 1 {
            return Err(query_bound(
                "limit",
                "greater_than_equal",
                "Input should be greater than or equal to 1",
                limit,
            ));
        }
        if limit > 200 {
            return Err(query_bound(
                "limit",
                "less_than_equal",
                "Input should be less than or equal to 200",
                limit,
            ));
        }
    }
    if query.offset < 0 {
        return Err(query_bound(
            "offset",
            "greater_than_equal",
            "Input should be greater than or equal to 0",
            query.offset,
        ));
    }
    let org = principal.organization.id;
    let gateway = require_gateway(client, principal, query.gateway_id).await?;
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(org), Box::new(gateway.id)];
    let mut filters = String::new();
    let bind = |params: &mut Vec<Box<dyn ToSql + Sync + Send>>, value: String| {
        params.push(Box::new(value));
        params.len()
    };
    if let Some(category) = query
        .category
        .as_deref()
        .map(|c| c.trim().to_lowercase())
        .filter(|c| !c.is_empty())
    {
        if category == "uncategorized" {
            filters.push_str(" AND coalesce(trim(s.category), '') = ''");
        } else {
            let n = bind(&mut params, category);
            filters.push_str(&format!(" AND lower(trim(s.category)) = ${n}"));
        }
    }
    if let Some(risk) = query
        .risk
        .as_deref()
        .map(|r| r.trim().to_lowercase())
        .filter(|r| !r.is_empty())
    {
        let n = bind(&mut params, risk);
        filters.push_str(&format!(" AND lower(trim(s.risk)) = ${n}"));
    }
    if let Some(search) = query
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let n = bind(&mut params, format!("%{}%", like_escape(search)));
        filters.push_str(&format!(
            " AND (s.name ILIKE ${n} OR s.description ILIKE ${n} OR s.category ILIKE ${n} \
             OR s.risk ILIKE ${n} OR s.source ILIKE ${n})"
        ));
    }
    if let Some(pack_id) = query.pack_id {
        let pack = find_pack(client, org, pack_id).await?;
        let n = bind(&mut params, format!("{}%", like_escape(&pack.source_url)));
        filters.push_str(&format!(" AND s.source_url ILIKE ${n}"));
    }
    // No limit is LIMIT NULL (all rows); both are parameters, so the text stays one statement.
    params.push(Box::new(query.limit));
    params.push(Box::new(query.offset));
    let sql = format!(
        "SELECT {columns}, i.created_at AS installed_at FROM marketplace_skills s \
         LEFT JOIN gateway_installed_skills i ON i.skill_id = s.id AND i.gateway_id = $2 \
         WHERE s.organization_id = $1{filters} \
         ORDER BY s.created_at DESC, s.id LIMIT ${} OFFSET ${}",
        params.len() - 1,
        params.len(),
        columns = Skill::COLUMNS
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &refs).await?;
    rows.iter()
        .map(|row| {
            let installed_at: Option<DateTime<Utc>> = get(row, "installed_at")?;
            Ok(SkillCard {
                skill: Skill::from_row(row)?,
                installed: installed_at.is_some(),
                installed_at,
            })
        })
        .collect()
}

/// A pydantic `AnyUrl`/`minLength=1` check on `source_url`.
fn parse_http_url(invalid: &mut Invalid, input: &str) -> Option<url::Url> {
    match url::Url::parse(input.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
        _ => {
            invalid.value_error("source_url", "Input should be a valid URL", json!(input));
            None
        }
    }
}

/// Registers a skill URL, or updates the one already registered under it.
pub async fn create_skill(
    client: &impl GenericClient,
    principal: &Principal,
    input: SkillCreate,
) -> DomainResult<Skill> {
    access::require_org_admin(&principal.member)?;
    let mut invalid = Invalid::default();
    let url = parse_http_url(&mut invalid, &input.source_url);
    if let Some(name) = &input.name {
        invalid.non_empty("name", name);
    }
    let Some(url) = url else {
        return Err(invalid.into_error());
    };
    invalid.finish()?;
    let source_url = input.source_url.trim().to_string();
    let name = input
        .name
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|| infer_skill_name(&url));
    let description = input
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    let row = client
        .query_one(
            &format!(
                "INSERT INTO marketplace_skills AS s (id, organization_id, name, description, source_url) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (organization_id, source_url) DO UPDATE SET name = EXCLUDED.name, \
                 description = coalesce(EXCLUDED.description, s.description), updated_at = now() \
                 RETURNING {columns}",
                columns = Skill::COLUMNS
            ),
            &[&Uuid::new_v4(), &principal.organization.id, &name, &description, &source_url],
        )
        .await?;
    Ok(Skill::from_row(&row)?)
}

/// Deletes the skill and every record of its installation.
pub async fn delete_skill(
    client: &impl GenericClient,
    principal: &Principal,
    skill_id: Uuid,
) -> DomainResult<()> {
    access::require_org_admin(&principal.member)?;
    let skill = find_skill(client, principal.organization.id, skill_id).await?;
    client
        .execute("DELETE FROM marketplace_skills WHERE id = $1", &[&skill.id])
        .await?;
    Ok(())
}

fn install_dir(workspace_root: &str) -> String {
    let root = workspace_root.trim_end_matches(['/', '\\']);
    if root.is_empty() {
        "skills".to_string()
    } else {
        format!("{root}/skills")
    }
}

/// The reference's instruction to the gateway agent, word for word.
fn instruction(skill: &Skill, workspace_root: &str, installed: bool) -> String {
    let (title, actions) = if installed {
        (
            "MISSION CONTROL SKILL INSTALL REQUEST",
            "1. Ensure the install destination exists.\n\
             2. Install or update the skill from the source URL into the destination.\n\
             3. Verify the skill is discoverable by the runtime.\n\
             4. Reply with success or failure details.",
        )
    } else {
        (
            "MISSION CONTROL SKILL UNINSTALL REQUEST",
            "1. Remove the skill assets previously installed from this source URL.\n\
             2. Ensure the skill is no longer discoverable by the runtime.\n\
             3. Reply with success or failure details.",
        )
    };
    format!(
        "{title}\nSkill name: {}\nSkill source URL: {}\nInstall destination: {}\n\nActions:\n{actions}",
        skill.name,
        skill.source_url,
        install_dir(workspace_root)
    )
}

/// Asks the gateway's main agent to install (or remove) the skill, as a gateway request
/// recorded with the installation row; the caller pokes the gateway once committed. Like
/// the reference, the agent's outcome is not awaited.
pub async fn set_installed(
    client: &impl GenericClient,
    principal: &Principal,
    skill_id: Uuid,
    gateway_id: Uuid,
    installed: bool,
) -> DomainResult<SkillAction> {
    access::require_org_admin(&principal.member)?;
    let gateway = require_gateway(client, principal, gateway_id).await?;
    if gateway.workspace_root.trim().is_empty() {
        return Err(DomainError::unprocessable(
            "Gateway workspace_root is required",
        ));
    }
    let skill = find_skill(client, principal.organization.id, skill_id).await?;
    let main_agent = crate::domain::agents::gateway_main::gateway_main(client, gateway.id)
        .await?
        .map(|(id, _)| id);
    gateway_commands::send_to_session(
        client,
        Target {
            organization_id: principal.organization.id,
            gateway_id: gateway.id,
            agent_id: main_agent,
            board_id: None,
        },
        &crate::domain::model::agent::gateway_main_session_key(gateway.id),
        &instruction(&skill, &gateway.workspace_root, installed),
        json!({
            "kind": if installed { "skill_install" } else { "skill_uninstall" },
            "deliver": true,
            "label": "Gateway Agent",
            "skill_id": skill.id,
        }),
    )
    .await?;
    if installed {
        client
            .execute(
                "INSERT INTO gateway_installed_skills (id, gateway_id, skill_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (gateway_id, skill_id) DO UPDATE SET updated_at = now()",
                &[&Uuid::new_v4(), &gateway.id, &skill.id],
            )
            .await?;
    } else {
        client
            .execute(
                "DELETE FROM gateway_installed_skills WHERE gateway_id = $1 AND skill_id = $2",
                &[&gateway.id, &skill.id],
            )
            .await?;
    }
    Ok(SkillAction {
        ok: true,
        skill_id: skill.id,
        gateway_id: gateway.id,
        installed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_path_segment() {
        let name = |u: &str| infer_skill_name(&url::Url::parse(u).unwrap());
        assert_eq!(
            name("https://github.com/a/b/tree/main/skills/web-search_pro/"),
            "web search pro"
        );
        assert_eq!(name("https://github.com/a/repo.git"), "repo");
        assert_eq!(name("https://example.com/"), "example.com");
    }
}
