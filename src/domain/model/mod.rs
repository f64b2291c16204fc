//! The records every area shares, with their column lists and row mapping. This floor
//! imports nothing else of `domain` but its error type, so any area may depend on it and
//! no record drags a use case along.

pub mod account;
pub mod agent;
pub mod approval;
pub mod board;
pub mod board_group;
pub mod gateway;
pub mod memory;
pub mod task;

pub use account::{Member, Organization, Principal, User};
pub use agent::{Agent, AgentPrincipal};
pub use approval::{Approval, ApprovalStatus, TaskApprovalState};
pub use board::Board;
pub use board_group::BoardGroup;
pub use gateway::Gateway;
pub use memory::{BoardGroupMemory, BoardMemory, MemoryBody};
pub use task::{Actor, AgentRef, Progress, TaskChange, TaskRow, TaskStatus};
