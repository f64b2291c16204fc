//! TODO wing doc

pub mod access;
pub mod activity;
pub mod links;
pub mod mentions;
pub mod pagination;
pub mod validation;
