//! What goes to gateways: requests recorded in `gateway_commands` (and sent by the relay
//! link), provisioning, the gateway's agent tokens, and the notices agents get of tasks,
//! memory and board groups. Depends only on `model` and `support`, so any area may send.

pub mod board_group_notices;
pub mod commands;
pub mod memory_notices;
pub mod provisioning;
pub mod task_notices;
pub mod workspace;
