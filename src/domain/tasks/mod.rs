//! TODO wing doc

pub mod approvals;
pub mod comments;
pub mod crud;
pub mod custom_fields;
pub mod dependencies;
pub mod feeds;
pub mod field_values;
pub mod rules;
pub mod tags;
