//! H5 mobile users: accounts, their agent assignments, and chat (sessions and messages,
//! stored before they are routed, and delivered to their gateway at least once).

pub mod chat;
pub mod delivery;
pub mod stream;
pub mod users;
