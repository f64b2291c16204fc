//! Who holds what, across instances: `presence:gateway:{id}` (`protocol::channels::
//! gateway_presence`) → the link's holder, with a
//! TTL refreshed while the link lives, so "is this gateway connected anywhere?" is one GET
//! and a crashed instance's entries expire by themselves. Single-instance mode keeps the
//! entries in this process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::cache::RedisPool;

/// A holder rewrites its entry this often, with `ENTRY_TTL`: an instance that dies stops
/// being named within seconds, and an entry lost with a Redis restart is back within
/// `REFRESH_EVERY` of Redis being back.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
pub const ENTRY_TTL: Duration = Duration::from_secs(15);

pub struct Presence {
    redis: Option<RedisPool>,
    local: Mutex<HashMap<String, (String, Instant)>>,
}

/// Deletes the key only while it still holds our value, so a link that was replaced on
/// another instance does not erase its successor's entry.
const CLEAR_IF_OURS: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl Presence {
    pub fn new(redis: Option<RedisPool>) -> Presence {
        Presence {
            redis,
            local: Mutex::new(HashMap::new()),
        }
    }

    pub async fn set(&self, key: &str, value: &str, ttl: Duration) {
        let Some(pool) = &self.redis else {
            self.lock()
                .insert(key.to_string(), (value.to_string(), Instant::now() + ttl));
            return;
        };
        let result = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<()>(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(key, error = %e, "presence not recorded");
        }
    }

    pub async fn get(&self, key: &str) -> Option<String> {
        let Some(pool) = &self.redis else {
            let mut map = self.lock();
            return match map.get(key) {
                Some((value, expires)) if *expires > Instant::now() => Some(value.clone()),
                Some(_) => {
                    map.remove(key);
                    None
                }
                None => None,
            };
        };
        let mut conn = pool.get().await.ok()?;
        redis::cmd("GET")
            .arg(key)
            .query_async::<Option<String>>(&mut *conn)
            .await
            .ok()
            .flatten()
    }

    pub async fn clear_if(&self, key: &str, value: &str) {
        let Some(pool) = &self.redis else {
            let mut map = self.lock();
            if map.get(key).is_some_and(|(v, _)| v == value) {
                map.remove(key);
            }
            return;
        };
        if let Ok(mut conn) = pool.get().await {
            let _: Result<i64, _> = redis::cmd("EVAL")
                .arg(CLEAR_IF_OURS)
                .arg(1)
                .arg(key)
                .arg(value)
                .query_async(&mut *conn)
                .await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }
}
