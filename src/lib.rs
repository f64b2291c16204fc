//! Mission Control: the control plane for fleets of AI agents behind gateways.
//! See DESIGN.md in the shared folder for the parts and how data moves between them, and
//! `docs/architecture.md` for the rule of what may import what.
//!
//! | folder | responsibility |
//! |---|---|
//! | [`http`] | routes per group; handlers parse, authorize, call `domain`, hand effects to `actors` |
//! | [`auth`] | who is calling: admin, agent and H5 extractors, the login throttle |
//! | [`actors`] | sockets, the routing door (`registry::Router`), the Redis bridge, fan-out hubs, singletons, the OpenClaw gateways we dial |
//! | [`domain`] | every rule and query: `model` (shared records), `support`, `outbox`, one wing per area |
//! | [`protocol`] | the wire, typed: socket frames, OpenClaw's protocol, bus channels and messages, close and error codes |
//! | [`db`] | pool, migrations, typed queries, rows by name, the transaction macro, Redis pool |
//! | [`secrets`] | tokens, passwords, agent tokens, H5 JWTs, the device key |
//! | [`config`] | typed settings from the environment |
//! | [`error`] | `ApiError` → status and `{"detail": ...}` |
//! | [`server`], [`state`] | start-up, shutdown, what handlers share |
//! | [`outbound`], [`storage`], [`telemetry`] | the HTTPS client; uploaded files (local or S3/OSS); logs and the request id |

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
pub mod storage;
pub mod telemetry;
