//! The `board.state` a board socket starts from: every task of the board with the board's
//! current sync number (the events after it are in `support::board_log`).

use chrono::Utc;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::model::TaskRow;
use crate::domain::support::board_log::current;
use crate::domain::tasks::crud as tasks;
use crate::domain::tasks::crud::Task;
use crate::domain::DomainResult;
use crate::protocol::board::BoardState;

/// `board.state`: every task of the board (newest first) and the sync number it reflects.
/// Call in a repeatable-read transaction so both are read from one snapshot.
pub async fn state(client: &impl GenericClient, board_id: Uuid) -> DomainResult<BoardState<Task>> {
    let seq = current(client, board_id).await?;
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM tasks t WHERE t.board_id = $1 ORDER BY t.created_at DESC, t.id",
                TaskRow::COLUMNS
            ),
            &[&board_id],
        )
        .await?;
    let rows = TaskRow::from_rows(&rows)?;
    let tasks = tasks::reads(client, board_id, rows).await?;
    Ok(BoardState {
        timestamp: Utc::now(),
        seq,
        tasks,
    })
}
