//! Queries and rules, one module per resource. Nothing here knows HTTP or actors.

pub mod agents;
pub mod boards;
pub mod calendar;
mod error;
pub mod gateways;
pub mod h5;
pub mod knowledge;
pub mod memos;
pub mod model;
pub mod orgs;
pub mod outbox;
pub mod pipelines;
pub mod proactivity;
pub mod skills;
pub mod support;
pub mod tasks;
pub mod teams;

pub use error::{DomainError, DomainResult};
