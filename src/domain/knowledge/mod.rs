//! TODO wing doc

pub mod entries;
