//! TODO wing doc

pub mod accounts;
pub mod invites;
pub mod members;
pub mod organizations;
