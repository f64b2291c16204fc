//! Long-lived things with their own lifecycle, one actix actor each (see DESIGN.md).

pub mod board_events;
pub mod board_room;
pub mod board_session;
pub mod bridge;
mod bridge_link;
pub mod chat_writes;
pub mod delivered;
pub mod embedder;
pub mod feeds;
pub mod gateway_flush;
pub mod gateway_link;
pub mod gateway_monitor;
pub mod gateway_rpc;
pub mod group_commit;
pub mod h5_session;
pub mod heartbeats;
pub mod invalidations;
pub mod openclaw;
pub mod pipelines;
pub mod presence;
pub mod registry;
pub mod rule_engine;
pub mod socket;
pub mod suggestions;
pub mod system_events;
