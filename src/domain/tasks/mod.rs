//! Tasks (domain.md §A7, §A11, §A12): the task itself, its rules (the state machine),
//! comments, dependencies, approvals, tags, custom fields and their values, and the
//! task/approval/comment feeds.

pub mod approvals;
pub mod comments;
pub mod crud;
pub mod custom_fields;
pub mod dependencies;
pub mod feeds;
pub mod field_values;
pub mod rules;
pub mod tags;
