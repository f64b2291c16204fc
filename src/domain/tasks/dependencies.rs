//! Task dependencies (domain.md §A8): a task lists the tasks of its board it waits for;
//! it is blocked while any of them is not done. The graph stays acyclic.

use std::collections::HashMap;

use serde_json::json;
use uuid::Uuid;

use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::support::validation::{dedupe, missing_ids};
use crate::domain::{DomainError, DomainResult};

/// One dependency of a task, with the dependency's status.
#[derive(Debug, Clone)]
pub struct Dependency {
    pub id: Uuid,
    pub done: bool,
}

/// The ids still blocking: dependencies that are not done (none once the task is done).
pub fn blocked_by(task_done: bool, deps: &[Dependency]) -> Vec<Uuid> {
    if task_done {
        return Vec::new();
    }
    deps.iter().filter(|d| !d.done).map(|d| d.id).collect()
}

/// Each task's dependencies in the order they were set; tasks without any are absent.
pub async fn for_tasks(
    client: &impl GenericClient,
    task_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<Dependency>>> {
    let mut out: HashMap<Uuid, Vec<Dependency>> = HashMap::new();
    if task_ids.is_empty() {
        return Ok(out);
    }
    let rows = client
        .query(
            "SELECT d.task_id, d.depends_on_task_id, t.status = 'done' AS done \
             FROM task_dependencies d JOIN tasks t ON t.id = d.depends_on_task_id \
             WHERE d.task_id = ANY($1) ORDER BY d.task_id, d.created_at, d.id",
            &[&task_ids],
        )
        .await?;
    for r in rows {
        out.entry(get(&r, "task_id")?)
            .or_default()
            .push(Dependency {
                id: get(&r, "depends_on_task_id")?,
                done: get(&r, "done")?,
            });
    }
    Ok(out)
}

pub async fn of_task(client: &impl GenericClient, task_id: Uuid) -> DomainResult<Vec<Dependency>> {
    Ok(for_tasks(client, &[task_id])
        .await?
        .remove(&task_id)
        .unwrap_or_default())
}

/// Checks a new dependency list for `task_id` and returns it deduplicated in order: not
/// itself (422), all on the board (404 with the missing ids), no cycle (409).
///
/// Takes the board's dependency lock first: two concurrent edits could each pass the cycle
/// check and together close a cycle.
pub async fn validate(
    client: &impl GenericClient,
    board_id: Uuid,
    task_id: Uuid,
    depends_on: &[Uuid],
) -> DomainResult<Vec<Uuid>> {
    let unique = dedupe(depends_on);
    if unique.contains(&task_id) {
        return Err(DomainError::unprocessable("Task cannot depend on itself."));
    }
    if unique.is_empty() {
        return Ok(unique);
    }
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('task_dependencies:' || $1::uuid::text, 0))",
            &[&board_id],
        )
        .await?;
    let missing = missing_ids(
        client,
        "SELECT id FROM tasks WHERE board_id = $1 AND id = ANY($2)",
        board_id,
        &unique,
    )
    .await?;
    if !missing.is_empty() {
        return Err(DomainError::NotFound(json!({
            "message": "One or more dependency tasks were not found on this board.",
            "missing_task_ids": missing,
        })));
    }
    // The graph without this task's current edges is acyclic, so the new edges close a
    // cycle exactly when the task is reachable from one of its new dependencies.
    let row = client
        .query_one(
            "WITH RECURSIVE reach(id) AS ( \
               SELECT unnest($2::uuid[]) \
               UNION \
               SELECT d.depends_on_task_id FROM task_dependencies d JOIN reach r ON d.task_id = r.id \
               WHERE d.board_id = $1 AND d.task_id <> $3) \
             SELECT EXISTS (SELECT 1 FROM reach WHERE id = $3) AS cycle",
            &[&board_id, &unique, &task_id],
        )
        .await?;
    let cycle: bool = get(&row, "cycle")?;
    if cycle {
        return Err(DomainError::conflict(
            "Dependency cycle detected. Remove the cycle before saving.",
        ));
    }
    Ok(unique)
}

/// Stores `depends_on` (already validated) as the task's whole dependency list.
pub async fn replace(
    client: &impl GenericClient,
    board_id: Uuid,
    task_id: Uuid,
    depends_on: &[Uuid],
) -> DomainResult<()> {
    client
        .execute(
            "DELETE FROM task_dependencies WHERE task_id = $1",
            &[&task_id],
        )
        .await?;
    crate::domain::support::links::insert_ordered(
        client,
        "task_dependencies",
        ("task_id", task_id),
        Some(("board_id", board_id)),
        "depends_on_task_id",
        depends_on,
    )
    .await
}

/// The tasks that depend on `task_id`.
pub async fn dependents(client: &impl GenericClient, task_id: Uuid) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT task_id FROM task_dependencies WHERE depends_on_task_id = $1 ORDER BY created_at, id",
            &[&task_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| get(r, "task_id"))
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unfinished_dependencies_block_and_never_a_done_task() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let deps = [
            Dependency { id: a, done: true },
            Dependency { id: b, done: false },
        ];
        assert_eq!(blocked_by(false, &deps), vec![b]);
        assert!(blocked_by(true, &deps).is_empty());
    }
}
