//! Gateways (domain.md §A3): admin CRUD, self-registration and the relay identity
//! (`registry`), the sessions read from a gateway, the gateways we dial (`dialing`), and
//! the recorded requests as their senders carry them (`requests`).

pub mod crud;
pub mod dialing;
pub mod registry;
pub mod requests;
pub mod sessions;
pub mod urls;
