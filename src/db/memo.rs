//! Rows kept in-process between requests (the admin principal, a gateway's relay identity),
//! trusted only while this instance hears every change to them: `CACHE_CHANNEL`
//! notifications, sent by triggers when the rows change (schema V0036) and delivered at
//! commit, empty or trim the memo (`actors::invalidations`). While nobody listens (not yet
//! connected, or the connection lost) a memo answers nothing and keeps nothing, so a change
//! made then is never hidden by a stale entry.
//!
//! A reader that missed takes a [`Ticket`] before it reads the database and puts the row
//! with it: a notification that came in between makes the ticket stale and the put a no-op,
//! so a row read before a change is never kept after it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// The PostgreSQL notification channel of every memo's invalidations.
pub const CACHE_CHANNEL: &str = "mc_cache";

pub struct Memo<K, V> {
    inner: Mutex<Inner<K, V>>,
    capacity: usize,
}

struct Inner<K, V> {
    live: bool,
    generation: u64,
    entries: HashMap<K, V>,
}

/// The memo's state when a miss began reading the database.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// At most `capacity` entries: a full memo starts again empty (entries are cheap to
    /// read again; an LRU would cost every hit a write).
    pub fn new(capacity: usize) -> Self {
        Memo {
            inner: Mutex::new(Inner {
                live: false,
                generation: 0,
                entries: HashMap::new(),
            }),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // A panic while holding the lock cannot leave the map half-changed (every change
        // is one call), so a poisoned lock is still good.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let inner = self.lock();
        inner.live.then(|| inner.entries.get(key).cloned())?
    }

    pub fn ticket(&self) -> Ticket {
        let inner = self.lock();
        Ticket(inner.live.then_some(inner.generation))
    }

    /// The value of `key`: the kept one, else what `read` finds, kept unless a change was
    /// heard while it read (the ticket is taken before). A `None` read is not kept.
    pub async fn get_or_read<E, Fut>(
        &self,
        key: K,
        read: impl FnOnce() -> Fut,
    ) -> Result<Option<V>, E>
    where
        Fut: std::future::Future<Output = Result<Option<V>, E>>,
    {
        if let Some(known) = self.get(&key) {
            return Ok(Some(known));
        }
        let ticket = self.ticket();
        let found = read().await?;
        if let Some(value) = &found {
            self.put(ticket, key, value.clone());
        }
        Ok(found)
    }

    /// Whether the memo is in use (its changes are heard).
    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    /// Keeps `value` unless something changed since `ticket` was taken.
    pub fn put(&self, ticket: Ticket, key: K, value: V) {
        let mut inner = self.lock();
        if !inner.live || ticket.0 != Some(inner.generation) {
            return;
        }
        if inner.entries.len() >= self.capacity {
            inner.entries.clear();
        }
        inner.entries.insert(key, value);
    }

    /// Forgets `key` (a change to its row).
    pub fn remove(&self, key: &K) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.remove(key);
    }

    /// Forgets everything (a change that may touch any entry).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }

    /// Listening (`true`) or not: either way what is kept is forgotten, since changes may
    /// have gone unheard.
    pub fn set_live(&self, live: bool) {
        let mut inner = self.lock();
        inner.live = live;
        inner.generation += 1;
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_or_answered_until_live() {
        let memo = Memo::new(10);
        memo.put(memo.ticket(), 1, "a");
        assert_eq!(memo.get(&1), None);
        memo.set_live(true);
        memo.put(memo.ticket(), 1, "a");
        assert_eq!(memo.get(&1), Some("a"));
        memo.set_live(false);
        assert_eq!(memo.get(&1), None);
    }

    #[test]
    fn a_change_during_a_read_makes_its_put_a_no_op() {
        let memo = Memo::new(10);
        memo.set_live(true);
        let ticket = memo.ticket();
        memo.remove(&1);
        memo.put(ticket, 1, "stale");
        assert_eq!(memo.get(&1), None);
        let ticket = memo.ticket();
        memo.clear();
        memo.put(ticket, 2, "stale");
        assert_eq!(memo.get(&2), None);
    }

    #[test]
    fn a_full_memo_starts_again() {
        let memo = Memo::new(2);
        memo.set_live(true);
        for k in 0..3 {
            memo.put(memo.ticket(), k, k);
        }
        assert_eq!(memo.get(&0), None);
        assert_eq!(memo.get(&2), Some(2));
    }
}
