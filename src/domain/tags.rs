//! Tags of an organization and their assignment to tasks.

use std::collections::HashMap;

use serde::Serialize;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;
use uuid::Uuid;

use serde_json::json;

use super::validation::{dedupe, missing_ids};
use super::{DomainError, DomainResult};

/// `TagRef`, embedded in task reads.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagRef {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub color: String,
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
    super::links::insert_ordered(
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
    let rows = client
        .query(
            "SELECT a.task_id, t.id, t.name, t.slug, t.color \
             FROM tag_assignments a JOIN tags t ON t.id = a.tag_id \
             WHERE a.task_id = ANY($1) ORDER BY a.task_id, a.created_at, a.id",
            &[&task_ids],
        )
        .await?;
    for r in rows {
        out.entry(r.get(0)).or_default().push(TagRef {
            id: r.get(1),
            name: r.get(2),
            slug: r.get(3),
            color: r.get(4),
        });
    }
    Ok(out)
}
