//! Who is calling: admin bearer tokens, H5 user tokens, gateway relay and registration
//! tokens; agent tokens come with their issue.

pub mod admin;
pub mod agent;
pub mod agent_tokens;
pub mod h5;
pub mod password;
pub mod throttle;
pub mod tokens;
