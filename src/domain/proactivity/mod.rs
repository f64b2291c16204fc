//! Proactivity (domain.md §B): events and suggestions that agents post. The rule engine
//! and builtin rules land here.

pub mod events;
pub mod suggestions;
