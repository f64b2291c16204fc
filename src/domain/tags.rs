//! Tags of an organization and their assignment to tasks.

use std::collections::HashMap;

use serde::Serialize;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;
use uuid::Uuid;

use super::DomainResult;

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
    _client: &impl GenericClient,
    _organization_id: Uuid,
    _task_id: Uuid,
    _tag_ids: &[Uuid],
) -> DomainResult<()> {
    Ok(())
}

/// The tags of each task, in assignment order; tasks without tags are absent.
pub async fn tags_for_tasks(
    _client: &impl GenericClient,
    _task_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<TagRef>>> {
    Ok(HashMap::new())
}
