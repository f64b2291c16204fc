//! Organizations (domain.md §A1): the accounts behind the admin caller, organizations,
//! their members and their invites.

pub mod accounts;
pub mod clerk;
pub mod invites;
pub mod members;
pub mod organizations;
