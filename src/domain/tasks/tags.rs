//! Tags of an organization (domain.md §A11): the admin CRUD and their assignment to tasks.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{self, Record};
use crate::db::GenericClient;
use crate::domain::boards::groups::slug_words;
use crate::domain::model::Principal;
use crate::domain::support::access;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::{dedupe, missing_ids, model_error, Invalid};
use crate::domain::{DomainError, DomainResult};

crate::db::record! {
    /// `TagRef`, embedded in task reads.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct TagRef in "t" {
        pub id: Uuid,
        pub name: String,
        pub slug: String,
        pub color: String,
    }
}

/// Replaces the task's tags with `tag_ids` (deduplicated, order kept). Ids that are not
/// tags of the organization → 404 `{message: "One or more tags were not found.", missing_tag_ids}`.
pub async fn replace_task_tags(
    client: &impl GenericClient,
    organization_id: Uuid,
    task_id: Uuid,
    tag_ids: &[Uuid],
) -> DomainResult<()> {
    let unique = dedupe(tag_ids);
    let missing = missing_ids(
        client,
        "SELECT id FROM tags WHERE organization_id = $1 AND id = ANY($2)",
        organization_id,
        &unique,
    )
    .await?;
    if !missing.is_empty() {
        return Err(DomainError::NotFound(json!({
            "message": "One or more tags were not found.",
            "missing_tag_ids": missing,
        })));
    }
    client
        .execute(
            "DELETE FROM tag_assignments WHERE task_id = $1",
            &[&task_id],
        )
        .await?;
    crate::domain::support::links::insert_ordered(
        client,
        "tag_assignments",
        ("task_id", task_id),
        None,
        "tag_id",
        &unique,
    )
    .await?;
    Ok(())
}

/// The tags of each task, in assignment order; tasks without tags are absent.
pub async fn tags_for_tasks(
    client: &impl GenericClient,
    task_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<TagRef>>> {
    let mut out: HashMap<Uuid, Vec<TagRef>> = HashMap::new();
    if task_ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT {}, a.task_id \
             FROM tag_assignments a JOIN tags t ON t.id = a.tag_id \
             WHERE a.task_id = ANY($1) ORDER BY a.task_id, a.created_at, a.id",
        TagRef::COLUMNS
    );
    let rows = client.query(&sql, &[&task_ids]).await?;
    for r in rows {
        out.entry(record::get(&r, "task_id")?)
            .or_default()
            .push(TagRef::from_row(&r)?);
    }
    Ok(out)
}

crate::db::record! {
    /// `TagRead`. `task_count` counts the tasks the tag is assigned to.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Tag in "t" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub name: String,
        pub slug: String,
        pub color: String,
        pub description: Option<String>,
        pub task_count: i64 = "(SELECT count(*) FROM tag_assignments a WHERE a.tag_id = t.id)",
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

const DEFAULT_COLOR: &str = "9e9e9e";
const ERR_SLUG_TAKEN: &str = "Tag slug already exists in this organization.";
const ERR_BAD_COLOR: &str = "color must be a 6-digit hex value";

fn default_color() -> String {
    DEFAULT_COLOR.into()
}

/// `TagCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TagCreate {
    pub name: String,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default = "default_color")]
    pub color: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// `TagUpdate`: absent fields stay. `null` clears `description`, and on `slug` (like a
/// blank slug) derives it again from the name; on `name` and `color`, which cannot be
/// empty, it is treated as absent.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TagUpdate {
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub slug: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub color: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// The reference's slug: from the given slug, or the name when it is blank; "tag" when
/// nothing of either survives.
fn tag_slug(slug: Option<&str>, name: &str) -> String {
    let source = slug
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(name);
    let slug = slug_words(source);
    if slug.is_empty() {
        "tag".into()
    } else {
        slug
    }
}

/// Lowercase six hex digits, `#` and surrounding blanks dropped; a blank color is refused
/// with `blank_msg` (the reference words it differently on create and update).
fn normalize_color(color: &str, blank_msg: &str) -> Result<String, String> {
    let cleaned = color.trim().to_lowercase();
    let cleaned = cleaned.trim_start_matches('#');
    if cleaned.is_empty() {
        return Err(blank_msg.into());
    }
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if cleaned.len() == 6 && cleaned.bytes().all(hex) {
        Ok(cleaned.to_string())
    } else {
        Err(ERR_BAD_COLOR.into())
    }
}

/// The unique (organization, slug) index is what refuses a taken slug: 409.
fn slug_conflict(e: tokio_postgres::Error) -> DomainError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        DomainError::conflict(ERR_SLUG_TAKEN)
    } else {
        e.into()
    }
}

/// The organization's tags by name.
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    page: PageParams,
) -> DomainResult<Page<Tag>> {
    let params: [&(dyn ToSql + Sync); 1] = [&principal.organization.id];
    fetch_page(
        client,
        Tag::COLUMNS,
        "FROM tags t WHERE t.organization_id = $1",
        "lower(t.name), t.created_at, t.id",
        &params,
        page,
        Tag::from_row,
    )
    .await
}

/// The tag, if it is in the caller's organization (another organization's tag is 404,
/// where the reference answered 403 and so confirmed that it exists). `lock` row-locks it
/// for a read-modify-write.
async fn find(
    client: &impl GenericClient,
    organization_id: Uuid,
    tag_id: Uuid,
    lock: bool,
) -> DomainResult<Tag> {
    let lock = if lock { " FOR NO KEY UPDATE OF t" } else { "" };
    client
        .query_opt(
            &format!(
                "SELECT {columns} FROM tags t WHERE t.id = $1 AND t.organization_id = $2{lock}",
                columns = Tag::COLUMNS
            ),
            &[&tag_id, &organization_id],
        )
        .await?
        .as_ref()
        .map(Tag::from_row)
        .transpose()?
        .ok_or_else(DomainError::not_found)
}

pub async fn get(
    client: &impl GenericClient,
    principal: &Principal,
    tag_id: Uuid,
) -> DomainResult<Tag> {
    find(client, principal.organization.id, tag_id, false).await
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: TagCreate,
) -> DomainResult<Tag> {
    access::require_org_admin(&principal.member)?;
    let mut invalid = Invalid::default();
    let name = invalid.non_empty("name", &input.name);
    let color = invalid.check(
        "color",
        &input.color,
        normalize_color(&input.color, "color is required"),
    );
    let (Some(name), Some(color)) = (name, color) else {
        return Err(invalid.into_error());
    };
    let org = principal.organization.id;
    let slug = tag_slug(input.slug.as_deref(), &name);
    let row = client
        .query_one(
            &format!(
                "INSERT INTO tags AS t (id, organization_id, name, slug, color, description) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {columns}",
                columns = Tag::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &org,
                &name,
                &slug,
                &color,
                &input.description,
            ],
        )
        .await
        .map_err(slug_conflict)?;
    Ok(Tag::from_row(&row)?)
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    tag_id: Uuid,
    patch: TagUpdate,
) -> DomainResult<Tag> {
    access::require_org_admin(&principal.member)?;
    if patch.name.is_none()
        && patch.slug.is_none()
        && patch.color.is_none()
        && patch.description.is_none()
    {
        return Err(model_error("At least one field is required"));
    }
    let mut invalid = Invalid::default();
    let name = match patch.name.flatten() {
        Some(n) => invalid.non_empty("name", &n),
        None => None,
    };
    let color = match patch.color.flatten() {
        Some(c) => invalid.check("color", &c, normalize_color(&c, ERR_BAD_COLOR)),
        None => None,
    };
    invalid.finish()?;
    let org = principal.organization.id;
    let mut tag = find(client, org, tag_id, true).await?;
    if let Some(name) = name {
        tag.name = name;
    }
    if let Some(color) = color {
        tag.color = color;
    }
    if let Some(description) = patch.description {
        tag.description = description;
    }
    if let Some(slug) = patch.slug {
        tag.slug = tag_slug(slug.as_deref(), &tag.name);
    }
    let row = client
        .query_one(
            &format!(
                "UPDATE tags t SET name = $3, slug = $4, color = $5, description = $6, updated_at = now() \
                 WHERE t.id = $1 AND t.organization_id = $2 RETURNING {columns}",
                columns = Tag::COLUMNS
            ),
            &[&tag.id, &org, &tag.name, &tag.slug, &tag.color, &tag.description],
        )
        .await
        .map_err(slug_conflict)?;
    Ok(Tag::from_row(&row)?)
}

/// Deletes the tag; its assignments go with it by the schema's cascade.
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    tag_id: Uuid,
) -> DomainResult<()> {
    access::require_org_admin(&principal.member)?;
    let tag = find(client, principal.organization.id, tag_id, true).await?;
    client
        .execute("DELETE FROM tags WHERE id = $1", &[&tag.id])
        .await?;
    Ok(())
}

/// Every tag of the organization, by name (the agent API's plain list).
pub async fn refs_of_org(
    client: &impl GenericClient,
    organization_id: Uuid,
) -> DomainResult<Vec<TagRef>> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM tags t WHERE t.organization_id = $1 ORDER BY lower(t.name), t.id",
                TagRef::COLUMNS
            ),
            &[&organization_id],
        )
        .await?;
    Ok(TagRef::from_rows(&rows)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_come_from_the_slug_or_else_the_name() {
        assert_eq!(tag_slug(None, "Needs Review!"), "needs-review");
        assert_eq!(tag_slug(Some("  "), "Bug"), "bug");
        assert_eq!(tag_slug(Some("Front End"), "Bug"), "front-end");
        assert_eq!(tag_slug(None, "!!!"), "tag");
    }

    #[test]
    fn colors_are_six_lowercase_hex_digits() {
        let color = |c| normalize_color(c, "blank");
        assert_eq!(color(" #A1B2C3 "), Ok("a1b2c3".into()));
        assert_eq!(color("##ffffff"), Ok("ffffff".into()));
        assert_eq!(color("fff"), Err(ERR_BAD_COLOR.into()));
        assert_eq!(color("gggggg"), Err(ERR_BAD_COLOR.into()));
        assert_eq!(color(" # "), Err("blank".into()));
    }
}
