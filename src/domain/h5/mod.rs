//! H5 mobile users: accounts, their agent assignments, and chat (sessions and messages,
//! stored before they are routed).

pub mod chat;
pub mod users;
