//! Who is calling: admin bearer tokens, H5 user tokens; agent tokens and relay tokens come
//! with their issues.

pub mod admin;
pub mod h5;
pub mod password;
pub mod throttle;
