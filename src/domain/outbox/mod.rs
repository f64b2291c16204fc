//! TODO wing doc

pub mod board_group_notices;
pub mod commands;
pub mod memory_notices;
pub mod provisioning;
pub mod task_notices;
