//! TODO wing doc

pub mod chat;
pub mod users;
