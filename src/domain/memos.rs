//! What an instance keeps of rows between requests (see `db::memo`): the admin principal
//! of each signed-in user, each organization's boards in list order, and each gateway's
//! relay identity (the hash its heartbeats and sockets are checked against). Schema
//! V0036's triggers say what changed on `db::memo::CACHE_CHANNEL`: `principals` (a user,
//! membership or organization: any principal may be stale), `boards:<organization id>` or
//! `gateway:<id>`.

use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::db::memo::Memo;
use crate::domain::boards::crud::BoardListMemo;
use crate::domain::model::Principal;

/// Entries kept per memo at most.
const CAPACITY: usize = 10_000;

/// A gateway as its relay token is checked: its organization and the token's hash.
#[derive(Debug, Clone)]
pub struct RelayIdentity {
    pub organization_id: Uuid,
    pub relay_token_hash: Option<String>,
}

pub struct Memos {
    /// By `users.clerk_user_id`.
    pub principals: Memo<String, Principal>,
    /// By organization.
    pub boards: BoardListMemo,
    pub gateways: Memo<Uuid, RelayIdentity>,
    /// Notifications heard (`GET /metrics`).
    heard: AtomicU64,
}

impl Default for Memos {
    fn default() -> Self {
        Memos {
            principals: Memo::new(CAPACITY),
            boards: Memo::new(CAPACITY),
            gateways: Memo::new(CAPACITY),
            heard: AtomicU64::new(0),
        }
    }
}

impl Memos {
    /// A notification of `CACHE_CHANNEL`; an unknown one empties everything (it says a
    /// change this release does not know how to scope).
    pub fn heard(&self, payload: &str) {
        self.heard.fetch_add(1, Ordering::Relaxed);
        match payload.split_once(':') {
            None if payload == "principals" => self.principals.clear(),
            Some(("gateway", id)) => match Uuid::parse_str(id) {
                Ok(id) => self.gateways.remove(&id),
                Err(_) => self.forget_all(),
            },
            Some(("boards", org)) => match Uuid::parse_str(org) {
                Ok(org) => self.boards.remove(&org),
                Err(_) => self.forget_all(),
            },
            _ => self.forget_all(),
        }
    }

    fn forget_all(&self) {
        self.principals.clear();
        self.boards.clear();
        self.gateways.clear();
    }

    /// Notifications heard since start: once a notification sent after a change is
    /// counted, the change was heard (notifications come in commit order).
    pub fn notifications_heard(&self) -> u64 {
        self.heard.load(Ordering::Relaxed)
    }

    /// Whether changes are heard (every memo is switched on and off together).
    pub fn is_live(&self) -> bool {
        self.principals.is_live()
    }

    pub fn set_live(&self, live: bool) {
        self.principals.set_live(live);
        self.boards.set_live(live);
        self.gateways.set_live(live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_change_forgets_that_gateway_only() {
        let memos = Memos::default();
        memos.set_live(true);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let identity = RelayIdentity {
            organization_id: Uuid::new_v4(),
            relay_token_hash: None,
        };
        for id in [a, b] {
            memos
                .gateways
                .put(memos.gateways.ticket(), id, identity.clone());
        }
        memos.heard(&format!("gateway:{a}"));
        assert!(memos.gateways.get(&a).is_none());
        assert!(memos.gateways.get(&b).is_some());
        memos.heard("something new");
        assert!(memos.gateways.get(&b).is_none());
    }
}
