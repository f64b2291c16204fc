//! Failed-login counting: after too many failures for one username or one client address
//! within a window, logins answer 429 until the window passes. Counts live in Redis so the
//! limit holds across instances; without Redis (single instance), or while Redis is
//! unreachable, they live in this process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::cache::RedisPool;

pub struct LoginThrottle {
    redis: Option<RedisPool>,
    local: Mutex<HashMap<String, (u32, Instant)>>,
    window: Duration,
}

/// A counter key and its limit.
pub struct Limit {
    pub key: String,
    pub max: u32,
}

impl LoginThrottle {
    pub fn new(redis: Option<RedisPool>, window: Duration) -> LoginThrottle {
        LoginThrottle {
            redis,
            local: Mutex::new(HashMap::new()),
            window,
        }
    }

    /// `Err(retry_after)` when any limit is reached.
    pub async fn check(&self, limits: &[Limit]) -> Result<(), Duration> {
        for limit in limits {
            let (count, ttl) = self.count(&limit.key).await;
            if count >= limit.max {
                return Err(ttl);
            }
        }
        Ok(())
    }

    pub async fn record_failure(&self, limits: &[Limit]) {
        for limit in limits {
            let Some(pool) = &self.redis else {
                self.incr_local(&limit.key);
                continue;
            };
            if let Err(e) = self.incr_redis(pool, &limit.key).await {
                tracing::warn!(error = %e, "login throttle: redis unavailable, counting locally");
                self.incr_local(&limit.key);
            }
        }
    }

    /// A successful login clears that username's failures (not the address's).
    pub async fn clear(&self, key: &str) {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Some(pool) = &self.redis {
            if let Ok(mut conn) = pool.get().await {
                let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut *conn).await;
            }
        }
    }

    async fn count(&self, key: &str) -> (u32, Duration) {
        let local = {
            let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(key) {
                Some((n, since)) if since.elapsed() < self.window => {
                    (*n, self.window - since.elapsed())
                }
                Some(_) => {
                    map.remove(key);
                    (0, Duration::ZERO)
                }
                None => (0, Duration::ZERO),
            }
        };
        let remote = self.count_redis(key).await.unwrap_or((0, Duration::ZERO));
        if remote.0 >= local.0 {
            remote
        } else {
            local
        }
    }

    async fn count_redis(&self, key: &str) -> Result<(u32, Duration), String> {
        let Some(pool) = &self.redis else {
            return Ok((0, Duration::ZERO));
        };
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        let (count, ttl): (Option<u32>, i64) = redis::pipe()
            .get(key)
            .ttl(key)
            .query_async(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok((count.unwrap_or(0), Duration::from_secs(ttl.max(1) as u64)))
    }

    async fn incr_redis(&self, pool: &RedisPool, key: &str) -> Result<(), String> {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        // EXPIRE NX starts the window at the first failure and never extends it.
        redis::pipe()
            .incr(key, 1)
            .cmd("EXPIRE")
            .arg(key)
            .arg(self.window.as_secs().max(1))
            .arg("NX")
            .query_async::<(i64, i64)>(&mut *conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn incr_local(&self, key: &str) {
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(key.to_string()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}
