//! Who is calling: the request extractors for admin bearer tokens, agent tokens and H5 user
//! tokens, and the login throttle. The primitives they verify with are in `secrets`.

pub mod admin;
pub mod agent;
pub mod gate;
pub mod h5;
pub mod throttle;
