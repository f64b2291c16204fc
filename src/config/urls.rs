//! Database and Redis URLs in the forms existing deployments use.

use std::str::FromStr;

use super::Vars;

/// Accepts `postgres://`, `postgresql://` and SQLAlchemy's `postgresql+<driver>://`.
/// Errors never echo the URL, which may hold a password.
pub fn postgres_config(raw: &str) -> Result<tokio_postgres::Config, String> {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err("expected a PostgreSQL URL like postgres://user:password@host:5432/db".into());
    };
    let scheme = scheme.to_ascii_lowercase();
    let known = scheme == "postgres" || scheme == "postgresql" || scheme.starts_with("postgresql+");
    if !known {
        return Err(format!(
            "expected a postgres://, postgresql:// or postgresql+psycopg:// URL, got scheme {scheme:?}"
        ));
    }
    let config = tokio_postgres::Config::from_str(&format!("postgres://{rest}"))
        .map_err(|e| format!("is not a valid PostgreSQL URL: {e}"))?;
    if config.get_hosts().is_empty() {
        return Err("names no host: expected postgres://user:password@host:5432/db".into());
    }
    if config.get_dbname().is_none() {
        return Err("names no database: expected postgres://user:password@host:5432/db".into());
    }
    Ok(config)
}

/// The Redis URLs of the deployment guide. Every one defaults from `REDIS_URL` with its
/// own DB number. Pub/sub channels are server-wide in Redis (not per DB), so the bridge
/// uses one connection, to `relay`, for every channel family — board sync's included:
/// `BOARD_SYNC_REDIS_URL` is accepted (the guide's env files set it) only when it names
/// the relay's server, since a board change sent there would reach no other instance.
#[derive(Debug, Clone)]
pub struct RedisUrls {
    pub base: String,
    pub relay: String,
    pub events: String,
}

impl RedisUrls {
    pub fn load(vars: &mut Vars) -> Option<RedisUrls> {
        let base = vars
            .optional("REDIS_URL")
            .and_then(|raw| checked(vars, "REDIS_URL", &raw));
        let mut derived = |name: &'static str, db: u8| -> Option<String> {
            match vars.optional(name) {
                Some(raw) => checked(vars, name, &raw),
                None => base.as_deref().map(|b| with_db(b, db)),
            }
        };
        let relay = derived("WS_REDIS_PUBSUB_URL", 1);
        let events = derived("PROACTIVITY_REDIS_URL", 2);
        let board_sync = derived("BOARD_SYNC_REDIS_URL", 3);
        match (base, relay, events, board_sync) {
            (Some(base), Some(relay), Some(events), Some(board_sync)) => {
                if server_of(&board_sync) != server_of(&relay) {
                    vars.fail(
                        "BOARD_SYNC_REDIS_URL",
                        "must name the same Redis server as WS_REDIS_PUBSUB_URL (board sync travels \
                         on the relay bridge's pub/sub, which is server-wide; its DB number is ignored)",
                    );
                }
                Some(RedisUrls {
                    base,
                    relay,
                    events,
                })
            }
            (None, None, None, None) => None,
            _ => {
                vars.fail(
                    "REDIS_URL",
                    "is required when WS_REDIS_PUBSUB_URL, PROACTIVITY_REDIS_URL or BOARD_SYNC_REDIS_URL is set",
                );
                None
            }
        }
    }
}

fn checked(vars: &mut Vars, name: &'static str, raw: &str) -> Option<String> {
    match url::Url::parse(raw) {
        // rediss:// is TLS, verified against the system's roots (SSL_CERT_FILE overrides).
        Ok(u)
            if matches!(u.scheme(), "redis" | "rediss")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Some(raw.to_string())
        }
        _ => {
            vars.fail(
                name,
                "expected a Redis URL like redis://host:6379/0 (or rediss:// for TLS)",
            );
            None
        }
    }
}

/// Where a Redis URL connects (scheme, credentials, host and port), whatever its DB.
fn server_of(raw: &str) -> Option<String> {
    let mut u = url::Url::parse(raw).ok()?;
    u.set_path("");
    Some(u.to_string())
}

/// The same server with another DB number (the URL path).
pub(crate) fn with_db(base: &str, db: u8) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            u.set_path(&format!("/{db}"));
            u.to_string()
        }
        Err(_) => base.to_string(),
    }
}
