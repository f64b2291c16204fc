//! Boards (domain.md §A4, §A5): boards and board groups, what a board socket starts from
//! (`sync`), snapshots, memory, webhooks, onboarding and the metrics dashboard.

pub mod crud;
pub mod groups;
pub mod memory;
pub mod metrics;
pub mod onboarding;
pub mod snapshots;
pub mod sync;
pub mod webhooks;
