//! Secret-handling primitives: random tokens and their SHA-256 lookups, passwords
//! (argon2id, legacy bcrypt), agent tokens (keyed hashes), and the HS256 tokens of H5 users.
//! Pure functions: no HTTP, no actors, no database.

pub mod agent_tokens;
pub mod device;
pub mod jwt;
pub mod password;
pub mod tokens;
