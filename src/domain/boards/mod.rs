//! TODO wing doc

pub mod crud;
pub mod groups;
pub mod memory;
pub mod metrics;
pub mod onboarding;
pub mod snapshots;
pub mod sync;
pub mod webhooks;
