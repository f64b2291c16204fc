//! Black-box tests: the real binary, real PostgreSQL, real Redis.

mod harness;

mod admin_auth;
mod board_group_heartbeat;
mod boards;
mod bridge;
mod conformance;
mod custom_fields;
mod gateway_registry;
mod h5_accounts;
mod h5_chat;
mod health;
mod http_basics;
mod startup;
mod tags;
