//! Mission Control: the control plane for fleets of AI agents behind gateways.
//! See DESIGN.md in the shared folder for the parts and how data moves between them.

pub mod actors;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod outbound;
pub mod protocol;
pub mod secrets;
pub mod server;
pub mod state;
pub mod telemetry;
