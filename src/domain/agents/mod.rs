//! Agents (domain.md §A6) and what they do together: CRUD, the lead and the gateway-main
//! agent, tokens, presence, souls, removal, capabilities, and coordination between agents
//! (nudges, questions to users, messages to leads, webhooks handed to leads).

pub mod capabilities;
pub mod coordination;
pub mod crud;
pub mod gateway_main;
pub mod lead;
pub mod messages;
pub mod presence;
pub mod removal;
pub mod soul;
pub mod souls_directory;
pub mod tokens;
