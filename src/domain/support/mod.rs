//! What every area uses: access checks, validation, pagination and patch fields, mentions,
//! ordered link rows, the activity log, the board event log and stream starts. Depends only
//! on `model`.

pub mod access;
pub mod activity;
pub mod board_log;
pub mod links;
pub mod mentions;
pub mod pagination;
pub mod patch;
pub mod streams;
pub mod validation;
