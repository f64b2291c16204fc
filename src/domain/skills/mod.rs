//! TODO wing doc

pub mod catalog;
pub mod discovery;
pub mod packs;
