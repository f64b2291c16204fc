//! TODO wing doc

pub mod capabilities;
pub mod coordination;
pub mod crud;
pub mod gateway_main;
pub mod lead;
pub mod messages;
pub mod presence;
pub mod removal;
pub mod soul;
pub mod souls_directory;
pub mod tokens;
