//! Proactivity (domain.md §B): events (posted by agents, and emitted by the system itself:
//! `producers`), rules and the engine's evaluation of one event (`rules`, `engine`), and
//! suggestions with what accepting one does (`suggestions`, `actions`).

pub mod actions;
pub mod engine;
pub mod events;
pub mod producers;
pub mod rules;
pub mod suggestions;
