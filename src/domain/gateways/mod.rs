//! TODO wing doc

pub mod crud;
pub mod registry;
pub mod sessions;
