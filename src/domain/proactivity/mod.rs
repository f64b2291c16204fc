//! TODO wing doc

pub mod events;
pub mod suggestions;
