//! Black-box tests: the real binary, real PostgreSQL, real Redis.

mod harness;

mod activity;
mod admin_auth;
mod agent_api;
mod agent_posts;
mod agents;
mod approvals;
mod board_group_heartbeat;
mod board_sync;
mod boards;
mod bridge;
mod conformance;
mod conformance_agents;
mod coordination;
mod custom_fields;
mod fixtures;
mod gateway_registry;
mod gateway_requests;
mod h5_accounts;
mod h5_chat;
mod health;
mod http_basics;
mod memory;
mod metrics;
mod onboarding;
mod organizations;
mod skills;
mod snapshots;
mod souls;
mod startup;
mod streams;
mod suggestions;
mod tags;
mod tasks;
mod webhooks;
