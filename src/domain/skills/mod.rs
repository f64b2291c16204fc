//! Skills (domain.md §A17): the marketplace catalog an organization installs on its
//! gateways, the skill packs it syncs from git repositories, and what a sync discovers.

pub mod catalog;
pub mod discovery;
pub mod packs;
