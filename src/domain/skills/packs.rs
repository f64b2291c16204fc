//! Skill packs of an organization: a pack is a git repository whose skills a sync upserts
//! (what `discovery` finds), with the default packs seeded for a new organization.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::error::SqlState;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::skills::discovery::{Candidate, Discovered};
use crate::domain::support::access;
use crate::domain::support::validation::Invalid;
use crate::domain::{DomainError, DomainResult};

/// The packs a new personal organization starts with, as the reference seeds them (URL,
/// name, description), listed in this order; their skills are not synced.
pub const DEFAULT_PACKS: [(&str, &str, &str); 2] = [
    (
        "https://github.com/sickn33/antigravity-awesome-skills",
        "antigravity-awesome-skills",
        "The Ultimate Collection of 800+ Agentic Skills for Claude Code/Antigravity/Cursor. \
         Battle-tested, high-performance skills for AI agents including official skills from \
         Anthropic and Vercel.",
    ),
    (
        "https://github.com/BrianRWagner/ai-marketing-skills",
        "ai-marketing-skills",
        "Marketing frameworks that AI actually executes. Use for Claude Code, OpenClaw, etc.",
    ),
];

crate::db::record! {
    /// `SkillPackRead`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Pack in "p" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub name: String,
        pub description: Option<String>,
        pub source_url: String,
        pub branch: String,
        #[schema(value_type = Object)]
        pub metadata: Value,
        pub skill_count: i64 = "(SELECT count(*) FROM marketplace_skills s WHERE s.organization_id = p.organization_id AND s.source_url LIKE replace(replace(replace(p.source_url, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '/tree/%')",
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

fn default_branch() -> String {
    "main".into()
}

/// `SkillPackCreate`, also the full body of `PATCH`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PackCreate {
    pub source_url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_branch")]
    pub branch: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// `SkillPackSyncResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackSync {
    pub ok: bool,
    pub pack_id: Uuid,
    pub synced: i64,
    pub created: i64,
    pub updated: i64,
    pub warnings: Vec<String>,
}

/// The reference's normalized pack URL: trailing `/` and `.git` dropped, and only a
/// `https://github.com/<owner>/<repo>` repository accepted (400 otherwise).
pub(super) fn normalize_pack_url(raw: &str) -> Result<String, DomainError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let bad = || {
        DomainError::BadRequest(json!(
            "Pack source URL must be a GitHub repository URL (https://github.com/<owner>/<repo>)"
        ))
    };
    let url = url::Url::parse(trimmed).map_err(|_| bad())?;
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    if url.scheme() != "https" || url.host_str() != Some("github.com") || segments.len() < 2 {
        return Err(bad());
    }
    Ok(trimmed.to_string())
}

/// A branch outside `^[A-Za-z0-9._/\-]+$` silently becomes "main", as in the reference.
pub(super) fn normalize_branch(branch: &str) -> String {
    let branch = branch.trim();
    let ok = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
    if !branch.is_empty() && branch.chars().all(ok) {
        branch.to_string()
    } else {
        default_branch()
    }
}

/// The pack's row values once checked: (source_url, name, description, branch, metadata).
fn pack_values(input: PackCreate) -> DomainResult<(String, String, Option<String>, String, Value)> {
    let mut invalid = Invalid::default();
    if input.source_url.trim().is_empty() {
        invalid.blank("source_url", &input.source_url);
    }
    if let Some(name) = &input.name {
        invalid.non_empty("name", name);
    }
    invalid.finish()?;
    let source_url = normalize_pack_url(&input.source_url)?;
    let name = match input.name {
        Some(n) => n.trim().to_string(),
        None => url::Url::parse(&source_url)
            .map(|u| infer_skill_name(&u))
            .unwrap_or_else(|_| "Skill".into()),
    };
    let description = input
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    Ok((
        source_url,
        name,
        description,
        normalize_branch(&input.branch),
        Value::Object(input.metadata),
    ))
}

pub(super) async fn find_pack(
    client: &impl GenericClient,
    organization_id: Uuid,
    pack_id: Uuid,
) -> DomainResult<Pack> {
    client
        .query_opt(
            &format!(
                "SELECT {columns} FROM skill_packs p WHERE p.id = $1 AND p.organization_id = $2",
                columns = Pack::COLUMNS
            ),
            &[&pack_id, &organization_id],
        )
        .await?
        .as_ref()
        .map(Pack::from_row)
        .transpose()?
        .ok_or_else(|| DomainError::NotFound(json!(ERR_PACK)))
}

pub async fn list_packs(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<Vec<Pack>> {
    access::require_org_admin(&principal.member)?;
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM skill_packs p WHERE p.organization_id = $1 ORDER BY p.created_at DESC, p.id",
                columns = Pack::COLUMNS
            ),
            &[&principal.organization.id],
        )
        .await?;
    Ok(Pack::from_rows(&rows)?)
}

pub async fn get_pack(
    client: &impl GenericClient,
    principal: &Principal,
    pack_id: Uuid,
) -> DomainResult<Pack> {
    access::require_org_admin(&principal.member)?;
    find_pack(client, principal.organization.id, pack_id).await
}

/// Registers a pack, or updates the one already registered under its URL.
pub async fn create_pack(
    client: &impl GenericClient,
    principal: &Principal,
    input: PackCreate,
) -> DomainResult<Pack> {
    access::require_org_admin(&principal.member)?;
    let (source_url, name, description, branch, metadata) = pack_values(input)?;
    upsert_pack(
        client,
        principal.organization.id,
        &source_url,
        &name,
        &description,
        &branch,
        &metadata,
    )
    .await
}

async fn upsert_pack(
    client: &impl GenericClient,
    organization_id: Uuid,
    source_url: &str,
    name: &str,
    description: &Option<String>,
    branch: &str,
    metadata: &Value,
) -> DomainResult<Pack> {
    let row = client
        .query_one(
            &format!(
                "WITH p AS (INSERT INTO skill_packs AS p (id, organization_id, name, description, source_url, branch, metadata) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (organization_id, source_url) DO UPDATE SET name = EXCLUDED.name, \
                 description = EXCLUDED.description, branch = EXCLUDED.branch, metadata = EXCLUDED.metadata, \
                 updated_at = now() RETURNING *) SELECT {columns} FROM p",
                columns = Pack::COLUMNS
            ),
            &[&Uuid::new_v4(), &organization_id, &name, description, &source_url, &branch, metadata],
        )
        .await?;
    Ok(Pack::from_row(&row)?)
}

/// Seeds the default packs of a new organization (already registered ones stay).
pub async fn seed_default_packs(
    client: &impl GenericClient,
    organization_id: Uuid,
) -> DomainResult<()> {
    // Lists are newest first: each later pack is made a microsecond older, so the list
    // shows them in the order above (the reference's, where they tie on the timestamp).
    for (i, (url, name, description)) in DEFAULT_PACKS.into_iter().enumerate() {
        client
            .execute(
                "INSERT INTO skill_packs (id, organization_id, name, description, source_url, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, now() - make_interval(secs => $6::int * 0.000001), now()) \
                 ON CONFLICT (organization_id, source_url) DO NOTHING",
                &[&Uuid::new_v4(), &organization_id, &name, &description, &url, &(i as i32)],
            )
            .await?;
    }
    Ok(())
}

/// Replaces the pack with the full body; a URL another pack has → 409.
pub async fn update_pack(
    client: &impl GenericClient,
    principal: &Principal,
    pack_id: Uuid,
    input: PackCreate,
) -> DomainResult<Pack> {
    access::require_org_admin(&principal.member)?;
    let org = principal.organization.id;
    let (source_url, name, description, branch, metadata) = pack_values(input)?;
    find_pack(client, org, pack_id).await?;
    let row = client
        .query_one(
            &format!(
                "WITH p AS (UPDATE skill_packs SET source_url = $3, name = $4, description = $5, branch = $6, \
                 metadata = $7, updated_at = now() WHERE id = $1 AND organization_id = $2 RETURNING *) \
                 SELECT {columns} FROM p",
                columns = Pack::COLUMNS
            ),
            &[&pack_id, &org, &source_url, &name, &description, &branch, &metadata],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                DomainError::conflict(ERR_PACK_TAKEN)
            } else {
                e.into()
            }
        })?;
    Ok(Pack::from_row(&row)?)
}

/// Deletes the pack; its skills stay in the marketplace.
pub async fn delete_pack(
    client: &impl GenericClient,
    principal: &Principal,
    pack_id: Uuid,
) -> DomainResult<()> {
    access::require_org_admin(&principal.member)?;
    let pack = find_pack(client, principal.organization.id, pack_id).await?;
    client
        .execute("DELETE FROM skill_packs WHERE id = $1", &[&pack.id])
        .await?;
    Ok(())
}

/// The pack a sync clones, after the admin check. The clone runs with no database
/// connection held; `store_synced` then writes what it found.
pub async fn pack_to_sync(
    client: &impl GenericClient,
    principal: &Principal,
    pack_id: Uuid,
) -> DomainResult<Pack> {
    access::require_org_admin(&principal.member)?;
    find_pack(client, principal.organization.id, pack_id).await
}

/// Upserts the skills a sync found by source URL in one statement: new ones are created,
/// changed ones updated, unchanged ones left alone.
pub async fn store_synced(
    client: &impl GenericClient,
    pack: &Pack,
    found: Discovered,
) -> DomainResult<PackSync> {
    let skills = &found.skills;
    let ids: Vec<Uuid> = skills.iter().map(|_| Uuid::new_v4()).collect();
    let column = |f: fn(&Candidate) -> Option<String>| skills.iter().map(f).collect::<Vec<_>>();
    let names = column(|c| Some(c.name.clone()));
    let descriptions = column(|c| c.description.clone());
    let categories = column(|c| c.category.clone());
    let risks = column(|c| c.risk.clone());
    let sources = column(|c| c.source.clone());
    let urls = column(|c| Some(c.source_url.clone()));
    let metadata: Vec<Value> = skills.iter().map(|c| c.metadata.clone()).collect();
    let rows = client
        .query(
            "INSERT INTO marketplace_skills AS s \
                 (id, organization_id, name, description, category, risk, source, source_url, metadata) \
             SELECT u.id, $1, u.name, u.description, u.category, u.risk, u.source, u.source_url, u.metadata \
             FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                         $8::text[], $9::jsonb[]) \
                  AS u (id, name, description, category, risk, source, source_url, metadata) \
             ON CONFLICT (organization_id, source_url) DO UPDATE SET \
                 name = EXCLUDED.name, description = EXCLUDED.description, \
                 category = EXCLUDED.category, risk = EXCLUDED.risk, source = EXCLUDED.source, \
                 metadata = EXCLUDED.metadata, updated_at = now() \
             WHERE (s.name, s.description, s.category, s.risk, s.source, s.metadata) IS DISTINCT FROM \
                   (EXCLUDED.name, EXCLUDED.description, EXCLUDED.category, EXCLUDED.risk, \
                    EXCLUDED.source, EXCLUDED.metadata) \
             RETURNING (xmax = 0) AS created",
            &[
                &pack.organization_id,
                &ids,
                &names,
                &descriptions,
                &categories,
                &risks,
                &sources,
                &urls,
                &metadata,
            ],
        )
        .await?;
    let mut created = 0;
    for row in &rows {
        if get(row, "created")? {
            created += 1;
        }
    }
    Ok(PackSync {
        ok: true,
        pack_id: pack.id,
        synced: skills.len() as i64,
        created,
        updated: rows.len() as i64 - created,
        warnings: found.warnings,
    })
}

const ERR_PACK: &str = "Skill pack not found";

const ERR_PACK_TAKEN: &str = "A pack with this source URL already exists";

/// The name the reference infers from a URL: its last path segment, `-`/`_` as spaces.
pub(super) fn infer_skill_name(url: &url::Url) -> String {
    let path = url.path().trim_end_matches('/');
    let last = path.rsplit('/').next().filter(|s| !s.is_empty());
    let candidate = match last {
        Some(segment) => urlencoding_decode(segment),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let candidate = candidate.trim_end_matches(".git").replace(['-', '_'], " ");
    let candidate = candidate.trim();
    if candidate.is_empty() {
        "Skill".into()
    } else {
        candidate.to_string()
    }
}

fn urlencoding_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_urls_must_be_github_repositories() {
        assert_eq!(
            normalize_pack_url(" https://github.com/o/r.git/ ").unwrap(),
            "https://github.com/o/r"
        );
        assert!(normalize_pack_url("https://github.com/o").is_err());
        assert!(normalize_pack_url("http://github.com/o/r").is_err());
        assert!(normalize_pack_url("https://gitlab.com/o/r").is_err());
        assert_eq!(normalize_branch("feature/x-1"), "feature/x-1");
        assert_eq!(normalize_branch("bad branch;"), "main");
    }
}
