//! TODO wing doc

pub mod accounts;
pub mod organizations;
