//! Who is calling: admin bearer tokens now; H5 JWTs, agent tokens and relay tokens with
//! their issues.

pub mod admin;
