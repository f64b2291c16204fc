//! M10 pipelines (domain.md §C, docs/pipelines.md): pipelines and their checks (`crud`,
//! `stages`, `triggers`, `templates`), runs as the API sees them (`runs`), how a run moves
//! (`progress`), and what the instance holding a run does with it (`holder`).

pub mod crud;
pub mod holder;
pub mod progress;
pub mod records;
pub mod runs;
pub mod stages;
pub mod templates;
pub mod triggers;
