//! Gateways (domain.md §A3): admin CRUD, self-registration and the relay identity
//! (`registry`), and the sessions read from a gateway.

pub mod crud;
pub mod registry;
pub mod sessions;
