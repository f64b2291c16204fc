//! The pooled Redis command connections (pub/sub has its own connection, in the Bridge).

use std::time::Duration;

use bb8_redis::RedisConnectionManager;

pub type RedisPool = bb8::Pool<RedisConnectionManager>;

/// Lazy like the PostgreSQL pool: Redis may be down at start and come back later.
pub fn pool(url: &str, size: u32) -> Result<RedisPool, String> {
    let manager = RedisConnectionManager::new(url).map_err(|e| e.to_string())?;
    Ok(bb8::Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(2))
        .build_unchecked(manager))
}
