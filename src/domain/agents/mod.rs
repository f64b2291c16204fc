//! TODO wing doc

pub mod capabilities;
pub mod coordination;
pub mod crud;
pub mod souls_directory;
