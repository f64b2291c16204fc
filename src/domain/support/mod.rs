//! TODO wing doc

pub mod access;
pub mod activity;
pub mod board_log;
pub mod links;
pub mod mentions;
pub mod pagination;
pub mod streams;
pub mod validation;
