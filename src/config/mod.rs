//! Typed settings from the environment (and an optional `.env`), with the deployment
//! guide's names. `spec` lists them; `vars` does the typed reads.

pub mod spec;
mod urls;
mod vars;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use urls::{postgres_config, RedisUrls};
pub use vars::{SettingError, Vars};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Dev,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub enum AuthMode {
    /// One shared admin bearer token.
    Local { token: String },
    /// Clerk session tokens (RS256 JWTs), verified against Clerk's keys (`auth::clerk`).
    Clerk(ClerkSettings),
}

/// AUTH_MODE=clerk: where Clerk's keys and users are, and how strictly tokens are read.
#[derive(Clone)]
pub struct ClerkSettings {
    pub secret_key: Secret,
    /// `CLERK_API_URL` without a trailing slash (`/v1/jwks`, `/v1/users/{id}` below it).
    pub api_url: String,
    pub verify_iat: bool,
    pub leeway: Duration,
    /// `iss` must be this when set.
    pub issuer: Option<String>,
    /// `azp`, when the token has one, must be one of these when any are set.
    pub authorized_parties: Vec<String>,
}

impl AuthMode {
    /// Whether `token` is the local admin token (never, in clerk mode). Compared in
    /// constant time; the length of the configured token is not a secret worth hiding
    /// (`ct_eq` on slices of different lengths answers false without comparing).
    pub fn accepts(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        match self {
            AuthMode::Local { token: expected } => {
                token.trim().as_bytes().ct_eq(expected.as_bytes()).into()
            }
            AuthMode::Clerk(_) => false,
        }
    }
}

impl std::fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthMode::Local { .. } => f.write_str("Local { token: <redacted> }"),
            AuthMode::Clerk(c) => write!(
                f,
                "Clerk {{ api_url: {:?}, secret_key: <redacted> }}",
                c.api_url
            ),
        }
    }
}

/// A key that must not reach the logs.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A 32-byte Ed25519 seed (GATEWAY_DEVICE_KEY), never printed.
#[derive(Clone)]
pub struct DeviceSeed(pub [u8; 32]);

impl DeviceSeed {
    /// Base64url, padded or not (standard base64 too).
    fn decode(text: &str) -> Option<DeviceSeed> {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        use base64::Engine;
        let text = text.trim().trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .or_else(|_| STANDARD_NO_PAD.decode(text))
            .ok()?;
        Some(DeviceSeed(bytes.try_into().ok()?))
    }
}

impl std::fmt::Debug for DeviceSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What `migrate` needs: only the database.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: tokio_postgres::Config,
    pub pool_size: u32,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub bind: SocketAddr,
    pub instance_id: String,
    pub auth: AuthMode,
    pub database: DatabaseSettings,
    pub db_auto_migrate: bool,
    pub redis: Option<RedisUrls>,
    pub redis_pool_size: u32,
    pub cors_origins: Vec<String>,
    pub log: LogSettings,
    pub http_body_limit: usize,
    pub webhook: WebhookSettings,
    pub http_workers: usize,
    pub shutdown_timeout: Duration,
    pub readiness_timeout: Duration,
    pub trust_forwarded_for: bool,
    pub h5: H5Settings,
    /// Keys the hashes of agent tokens (AGENT_TOKEN_KEY).
    pub agent_token_key: Secret,
    pub base_url: Option<url::Url>,
    /// The souls directory the `/souls-directory` routes proxy, without a trailing `/`.
    pub souls_directory_url: String,
    pub gateway: GatewaySettings,
    pub ws: WsSettings,
    pub proactivity: ProactivitySettings,
    pub pipelines: PipelineSettings,
    pub knowledge: KnowledgeSettings,
}

/// The knowledge base's search (docs/knowledge.md).
#[derive(Debug, Clone)]
pub struct KnowledgeSettings {
    /// A text search configuration name (checked against the database at start).
    pub search_language: String,
    /// `None`: EMBEDDING_PROVIDER=none.
    pub embedding: Option<EmbeddingSettings>,
    pub max_document_bytes: usize,
    pub storage: StorageSettings,
}

/// Where uploaded documents are kept.
#[derive(Debug, Clone)]
pub enum StorageSettings {
    Local {
        dir: std::path::PathBuf,
    },
    Bucket {
        endpoint: String,
        bucket: String,
        access_key: String,
        secret_key: Secret,
        region: String,
        path_style: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingProvider {
    OpenAi,
    Tongyi,
    Local,
}

#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    pub provider: EmbeddingProvider,
    pub api_key: Option<Secret>,
    pub model: String,
    /// Without a trailing `/`.
    pub base_url: String,
    pub timeout: Duration,
}

/// Pipeline runs (docs/pipelines.md).
#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings {
    pub default_stage_timeout_hours: u64,
    pub max_concurrent_runs: u64,
    pub lease: Duration,
}

/// The rule engine (docs/proactivity.md).
#[derive(Debug, Clone)]
pub struct ProactivitySettings {
    /// Run the engine inside `serve` (else only `mission-control consumer` runs it).
    pub engine_in_serve: bool,
    /// The cooldown of a rule whose own is 0.
    pub rule_cooldown_seconds: i32,
    pub suggestion_expiry_hours: i32,
    pub event_ttl_days: i32,
    /// An event not evaluated this long after its commit is taken from a dead consumer,
    /// or from the table.
    pub recover_after: Duration,
}

/// Limits of the unauthenticated webhook ingest.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub max_body_bytes: usize,
    pub rate_limit_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub registration_enabled: bool,
    pub heartbeat_interval: Duration,
    pub offline_threshold: Duration,
    pub rpc_timeout: Duration,
    pub command_retry: Duration,
    pub command_max_attempts: i32,
    /// The device seed from GATEWAY_DEVICE_KEY (32 bytes), if set.
    pub device_seed: Option<DeviceSeed>,
    pub lease: Duration,
    pub reconnect_max: Duration,
}

#[derive(Debug, Clone)]
pub struct WsSettings {
    pub max_connections: usize,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub auth_timeout: Duration,
    pub max_frame_bytes: usize,
    pub outbound_queue_bytes: usize,
    /// How long a client may take nothing of what is sent before its connection is dropped.
    pub write_timeout: Duration,
    pub sse_keepalive: Duration,
}

#[derive(Clone)]
pub struct H5Settings {
    pub jwt_secret: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub login_max_failures: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window: Duration,
    /// How long a chat frame's id and content identify it (docs/relay-protocol.md).
    pub resend_window: Duration,
}

impl std::fmt::Debug for H5Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H5Settings")
            .field("jwt_secret", &"<redacted>")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
    pub include_health: bool,
}

/// Placeholder tokens from example files that must never reach a running server.
const PLACEHOLDER_TOKENS: &[&str] = &[
    "change-me",
    "changeme",
    "replace-me",
    "replace-with-strong-random-token",
];
const MIN_LOCAL_TOKEN_LEN: usize = 50;
const MIN_SECRET_LEN: usize = 32;
/// The reference server's development key, so dev tokens keep working across restarts.
const DEV_H5_SECRET: &str = "h5-dev-secret-not-for-production";
const DEV_AGENT_TOKEN_KEY: &str = "agent-token-dev-key-not-for-production";

/// The process environment, after loading `.env` from the working directory (variables
/// already set in the environment win over the file).
pub fn environment_source() -> HashMap<String, String> {
    let _ = dotenvy::dotenv();
    let env = config::Config::builder()
        .add_source(config::Environment::default())
        .build()
        .and_then(|c| c.try_deserialize::<HashMap<String, config::Value>>())
        .unwrap_or_default();
    env.into_iter()
        .filter_map(|(k, v)| v.into_string().ok().map(|v| (k, v)))
        .collect()
}

pub fn load_database(vars: &mut Vars) -> Option<DatabaseSettings> {
    let raw = vars.required(
        "DATABASE_URL",
        "a PostgreSQL URL like postgres://user:password@host:5432/db",
    );
    let pool_size = vars.number("DB_POOL_SIZE", 1, 1000) as u32;
    let url = raw.and_then(|raw| match postgres_config(&raw) {
        Ok(url) => Some(url),
        Err(problem) => {
            vars.fail("DATABASE_URL", problem);
            None
        }
    })?;
    Some(DatabaseSettings { url, pool_size })
}

impl Settings {
    /// Reads every setting; returns all problems found, each naming its variable.
    pub fn load(source: HashMap<String, String>) -> Result<Settings, Vec<SettingError>> {
        let mut vars = Vars::new(source);
        let environment = match vars.string("ENVIRONMENT").to_ascii_lowercase().as_str() {
            "dev" | "development" => Environment::Dev,
            "production" | "prod" => Environment::Production,
            other => {
                vars.fail(
                    "ENVIRONMENT",
                    format!("expected dev or production, got {other:?}"),
                );
                Environment::Dev
            }
        };
        let bind = vars.parse(
            "BIND",
            "a socket address like 0.0.0.0:8000",
            SocketAddr::from(([0, 0, 0, 0], 8000)),
        );
        let instance_id = vars
            .optional("INSTANCE_ID")
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let auth = load_auth(&mut vars);
        let database = load_database(&mut vars);
        let db_auto_migrate = vars.flag("DB_AUTO_MIGRATE");
        let redis = RedisUrls::load(&mut vars);
        let redis_pool_size = vars.number("REDIS_POOL_SIZE", 1, 1000) as u32;
        let cors_origins = vars
            .string("CORS_ORIGINS")
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect::<Vec<_>>();
        for origin in &cors_origins {
            if origin != "*" && url::Url::parse(origin).is_err() {
                vars.fail(
                    "CORS_ORIGINS",
                    format!("expected origins like https://admin.example.com, got {origin:?}"),
                );
            }
        }
        let log = LogSettings {
            level: vars.string("LOG_LEVEL"),
            format: match vars.string("LOG_FORMAT").to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    vars.fail(
                        "LOG_FORMAT",
                        format!("expected text or json, got {other:?}"),
                    );
                    LogFormat::Text
                }
            },
            include_health: vars.flag("REQUEST_LOG_INCLUDE_HEALTH"),
        };
        let http_body_limit = vars.number("HTTP_BODY_LIMIT_BYTES", 1024, 1 << 30) as usize;
        let webhook = WebhookSettings {
            max_body_bytes: vars.number("WEBHOOK_MAX_BODY_BYTES", 1024, 64 << 20) as usize,
            rate_limit_per_minute: vars.number("WEBHOOK_RATE_LIMIT_PER_MINUTE", 1, 1_000_000)
                as u32,
        };
        let http_workers = match vars.optional("HTTP_WORKERS") {
            Some(_) => vars.number("HTTP_WORKERS", 1, 256) as usize,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let shutdown_timeout =
            Duration::from_secs(vars.number("SHUTDOWN_TIMEOUT_SECONDS", 0, 3600));
        let readiness_timeout =
            Duration::from_millis(vars.number("READINESS_TIMEOUT_MS", 10, 60_000));
        let trust_forwarded_for = vars.flag("TRUST_FORWARDED_FOR");
        let h5 = load_h5(&mut vars, environment, &auth);
        let agent_token_key = Secret(secret_key(
            &mut vars,
            "AGENT_TOKEN_KEY",
            environment,
            &auth,
            DEV_AGENT_TOKEN_KEY,
        ));
        let base_url = vars
            .optional("BASE_URL")
            .and_then(|raw| match url::Url::parse(&raw) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    Some(u)
                }
                _ => {
                    vars.fail(
                        "BASE_URL",
                        format!("expected an http(s) URL like https://mc.example.com, got {raw:?}"),
                    );
                    None
                }
            });
        let souls_directory_url = {
            let raw = vars.string("SOULS_DIRECTORY_URL");
            match url::Url::parse(&raw) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    raw.trim_end_matches('/').to_string()
                }
                _ => {
                    vars.fail(
                        "SOULS_DIRECTORY_URL",
                        format!("expected an http(s) URL, got {raw:?}"),
                    );
                    raw
                }
            }
        };
        let gateway = GatewaySettings {
            registration_enabled: vars.flag("GATEWAY_REGISTRATION_ENABLED"),
            heartbeat_interval: Duration::from_secs(vars.number(
                "GATEWAY_HEARTBEAT_INTERVAL_SECONDS",
                1,
                3600,
            )),
            offline_threshold: Duration::from_secs(vars.number(
                "GATEWAY_OFFLINE_THRESHOLD_SECONDS",
                1,
                86_400,
            )),
            rpc_timeout: Duration::from_secs(vars.number("GATEWAY_RPC_TIMEOUT_SECONDS", 1, 600)),
            command_retry: Duration::from_secs(vars.number(
                "GATEWAY_COMMAND_RETRY_SECONDS",
                1,
                3600,
            )),
            command_max_attempts: vars.number("GATEWAY_COMMAND_MAX_ATTEMPTS", 1, 100) as i32,
            device_seed: vars.optional("GATEWAY_DEVICE_KEY").and_then(|raw| {
                let seed = DeviceSeed::decode(&raw);
                if seed.is_none() {
                    vars.fail("GATEWAY_DEVICE_KEY", "expected 32 bytes in base64url");
                }
                seed
            }),
            lease: Duration::from_secs(vars.number("GATEWAY_LEASE_SECONDS", 2, 3600)),
            reconnect_max: Duration::from_secs(vars.number(
                "GATEWAY_RECONNECT_MAX_SECONDS",
                1,
                3600,
            )),
        };
        let ws = WsSettings {
            max_connections: vars.number("WS_MAX_CONNECTIONS_PER_INSTANCE", 1, 10_000_000) as usize,
            heartbeat_interval: Duration::from_secs(vars.number(
                "WS_HEARTBEAT_INTERVAL_SECONDS",
                1,
                3600,
            )),
            heartbeat_timeout: Duration::from_secs(vars.number(
                "WS_HEARTBEAT_TIMEOUT_SECONDS",
                2,
                86_400,
            )),
            auth_timeout: Duration::from_secs(vars.number("WS_AUTH_TIMEOUT_SECONDS", 1, 600)),
            max_frame_bytes: vars.number("WS_MAX_FRAME_BYTES", 1024, 16 << 20) as usize,
            outbound_queue_bytes: vars.number("WS_OUTBOUND_QUEUE_BYTES", 16 << 10, 1 << 30)
                as usize,
            write_timeout: Duration::from_secs(vars.number("WS_WRITE_TIMEOUT_SECONDS", 1, 3600)),
            sse_keepalive: Duration::from_secs(vars.number("SSE_KEEPALIVE_SECONDS", 1, 3600)),
        };
        let proactivity = ProactivitySettings {
            engine_in_serve: vars.flag("PROACTIVITY_ENGINE_IN_SERVE"),
            rule_cooldown_seconds: vars.number("PROACTIVITY_RULE_COOLDOWN_SECONDS", 0, 604_800)
                as i32,
            suggestion_expiry_hours: vars.number("PROACTIVITY_SUGGESTION_EXPIRY_HOURS", 1, 87_600)
                as i32,
            event_ttl_days: vars.number("PROACTIVITY_EVENT_TTL_DAYS", 1, 36_500) as i32,
            recover_after: Duration::from_secs(vars.number(
                "PROACTIVITY_RECOVER_AFTER_SECONDS",
                1,
                3600,
            )),
        };
        let knowledge = knowledge_settings(&mut vars);
        let pipelines = PipelineSettings {
            default_stage_timeout_hours: vars.number(
                "PIPELINE_DEFAULT_STAGE_TIMEOUT_HOURS",
                1,
                24 * 365,
            ),
            max_concurrent_runs: vars.number("PIPELINE_MAX_CONCURRENT_RUNS", 1, 100_000),
            lease: Duration::from_secs(vars.number("PIPELINE_LEASE_SECONDS", 3, 3600)),
        };
        if ws.heartbeat_timeout <= ws.heartbeat_interval {
            vars.fail(
                "WS_HEARTBEAT_TIMEOUT_SECONDS",
                "must be longer than WS_HEARTBEAT_INTERVAL_SECONDS",
            );
        }

        match (auth, database) {
            (Some(auth), Some(database)) if vars.errors.is_empty() => Ok(Settings {
                environment,
                bind,
                instance_id,
                auth,
                database,
                db_auto_migrate,
                redis,
                redis_pool_size,
                cors_origins,
                log,
                http_body_limit,
                webhook,
                http_workers,
                shutdown_timeout,
                readiness_timeout,
                trust_forwarded_for,
                h5,
                agent_token_key,
                base_url,
                proactivity,
                pipelines,
                knowledge,
                souls_directory_url,
                gateway,
                ws,
            }),
            _ => Err(vars.errors),
        }
    }
}

/// A server-side key (`name`): at least `MIN_SECRET_LEN` characters, distinct from the
/// admin token, required outside dev (dev falls back to `dev_default`).
fn secret_key(
    vars: &mut Vars,
    name: &'static str,
    environment: Environment,
    auth: &Option<AuthMode>,
    dev_default: &str,
) -> String {
    let key = match vars.optional(name) {
        Some(key) if key.chars().count() < MIN_SECRET_LEN => {
            vars.fail(
                name,
                format!("must be at least {MIN_SECRET_LEN} characters"),
            );
            key
        }
        Some(key) => key,
        None if environment == Environment::Dev => dev_default.to_string(),
        None => {
            vars.fail(name, "is required outside ENVIRONMENT=dev: expected a random key of at least 32 characters");
            String::new()
        }
    };
    if matches!(auth, Some(AuthMode::Local { token }) if *token == key) {
        vars.fail(name, "must differ from LOCAL_AUTH_TOKEN");
    }
    key
}

fn load_h5(vars: &mut Vars, environment: Environment, auth: &Option<AuthMode>) -> H5Settings {
    let jwt_secret = secret_key(vars, "H5_JWT_SECRET", environment, auth, DEV_H5_SECRET);
    H5Settings {
        jwt_secret,
        access_ttl: Duration::from_secs(60 * vars.number("H5_JWT_ACCESS_TTL_MINUTES", 1, 24 * 60)),
        refresh_ttl: Duration::from_secs(86_400 * vars.number("H5_JWT_REFRESH_TTL_DAYS", 1, 365)),
        login_max_failures: vars.number("H5_LOGIN_MAX_FAILURES", 1, 1000) as u32,
        login_max_failures_per_ip: vars.number("H5_LOGIN_MAX_FAILURES_PER_IP", 1, 100_000) as u32,
        login_failure_window: Duration::from_secs(vars.number(
            "H5_LOGIN_FAILURE_WINDOW_SECONDS",
            1,
            86_400,
        )),
        resend_window: Duration::from_secs(vars.number("H5_RESEND_WINDOW_SECONDS", 1, 86_400)),
    }
}

fn load_auth(vars: &mut Vars) -> Option<AuthMode> {
    let mode = vars.required("AUTH_MODE", "local")?;
    match mode.to_ascii_lowercase().as_str() {
        "local" => {
            let token = vars.required(
                "LOCAL_AUTH_TOKEN",
                "a random token of at least 50 characters (e.g. `openssl rand -hex 32`)",
            )?;
            if token.chars().count() < MIN_LOCAL_TOKEN_LEN {
                vars.fail(
                    "LOCAL_AUTH_TOKEN",
                    format!(
                        "must be at least {MIN_LOCAL_TOKEN_LEN} characters, got {}",
                        token.chars().count()
                    ),
                );
                return None;
            }
            if PLACEHOLDER_TOKENS.contains(&token.to_ascii_lowercase().as_str()) {
                vars.fail(
                    "LOCAL_AUTH_TOKEN",
                    "is a placeholder value; generate a random token",
                );
                return None;
            }
            Some(AuthMode::Local { token })
        }
        "clerk" => {
            let secret_key = vars.required(
                "CLERK_SECRET_KEY",
                "the secret key of the Clerk instance (sk_live_… or sk_test_…)",
            )?;
            let api_url = vars
                .string("CLERK_API_URL")
                .trim_end_matches('/')
                .to_string();
            match url::Url::parse(&api_url) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                _ => {
                    vars.fail(
                        "CLERK_API_URL",
                        format!("expected an http(s) URL, got {api_url:?}"),
                    );
                    return None;
                }
            }
            let authorized_parties = vars
                .optional("CLERK_AUTHORIZED_PARTIES")
                .map(|v| {
                    v.split(',')
                        .map(|p| p.trim().trim_end_matches('/').to_string())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            Some(AuthMode::Clerk(ClerkSettings {
                secret_key: Secret(secret_key),
                api_url,
                verify_iat: vars.flag("CLERK_VERIFY_IAT"),
                leeway: Duration::from_secs(vars.number("CLERK_LEEWAY", 0, 300)),
                issuer: vars
                    .optional("CLERK_ISSUER")
                    .map(|i| i.trim_end_matches('/').to_string()),
                authorized_parties,
            }))
        }
        other => {
            vars.fail(
                "AUTH_MODE",
                format!("expected local or clerk, got {other:?}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests;

/// KNOWLEDGE_*, the EMBEDDING_* settings (with each provider's defaults) and the storage.
fn knowledge_settings(vars: &mut Vars) -> KnowledgeSettings {
    let search_language = vars
        .string("KNOWLEDGE_SEARCH_LANGUAGE")
        .to_ascii_lowercase();
    if !search_language
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        vars.fail(
            "KNOWLEDGE_SEARCH_LANGUAGE",
            "expected a text search configuration name such as english or simple",
        );
    }
    KnowledgeSettings {
        search_language,
        embedding: embedding_settings(vars),
        max_document_bytes: vars.number("KNOWLEDGE_MAX_DOCUMENT_SIZE_MB", 1, 4096) as usize
            * 1024
            * 1024,
        storage: storage_settings(vars),
    }
}

fn embedding_settings(vars: &mut Vars) -> Option<EmbeddingSettings> {
    let timeout = Duration::from_secs(vars.number("EMBEDDING_TIMEOUT_SECONDS", 1, 600));
    let (provider, model, base_url) = match vars
        .string("EMBEDDING_PROVIDER")
        .to_ascii_lowercase()
        .as_str()
    {
        "none" => return None,
        "openai" => (
            EmbeddingProvider::OpenAi,
            "text-embedding-3-small",
            "https://api.openai.com/v1",
        ),
        "tongyi" => (
            EmbeddingProvider::Tongyi,
            "text-embedding-v3",
            "https://dashscope.aliyuncs.com/api/v1",
        ),
        "local" => (
            EmbeddingProvider::Local,
            "nomic-embed-text",
            "http://localhost:11434",
        ),
        _ => {
            vars.fail(
                "EMBEDDING_PROVIDER",
                "expected openai, tongyi, local or none",
            );
            return None;
        }
    };
    let api_key = vars.optional("EMBEDDING_API_KEY").map(Secret);
    if api_key.is_none() && provider != EmbeddingProvider::Local {
        vars.fail(
            "EMBEDDING_API_KEY",
            "is required with EMBEDDING_PROVIDER=openai or tongyi",
        );
    }
    let base_url = vars
        .optional("EMBEDDING_BASE_URL")
        .unwrap_or_else(|| base_url.to_string());
    if !url::Url::parse(&base_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        vars.fail("EMBEDDING_BASE_URL", "expected an http(s) URL");
    }
    Some(EmbeddingSettings {
        provider,
        api_key,
        model: vars
            .optional("EMBEDDING_MODEL")
            .unwrap_or_else(|| model.to_string()),
        base_url: base_url.trim_end_matches('/').to_string(),
        timeout,
    })
}

/// KNOWLEDGE_STORAGE_DIR, or the OSS_* bucket when OSS_BUCKET is set.
fn storage_settings(vars: &mut Vars) -> StorageSettings {
    let Some(bucket) = vars.optional("OSS_BUCKET") else {
        return StorageSettings::Local {
            dir: vars.string("KNOWLEDGE_STORAGE_DIR").into(),
        };
    };
    let what = "a value when OSS_BUCKET is set";
    let endpoint = vars.required("OSS_ENDPOINT", what).unwrap_or_default();
    let is_url = url::Url::parse(&endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if !endpoint.is_empty() && !is_url {
        vars.fail("OSS_ENDPOINT", "expected an http(s) URL");
    }
    StorageSettings::Bucket {
        endpoint,
        bucket,
        access_key: vars.required("OSS_ACCESS_KEY", what).unwrap_or_default(),
        secret_key: Secret(vars.required("OSS_SECRET_KEY", what).unwrap_or_default()),
        region: vars.string("OSS_REGION"),
        path_style: vars.flag("OSS_PATH_STYLE"),
    }
}
