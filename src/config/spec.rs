//! The table of every setting the server reads: its environment name, default and meaning.
//! `--help`, the README table and start-up validation all come from this one list, so a
//! setting cannot be read without being documented.

pub struct Spec {
    pub name: &'static str,
    /// `None` means "no default": either required, or unset has a meaning of its own.
    pub default: Option<&'static str>,
    pub help: &'static str,
}

const fn s(name: &'static str, default: Option<&'static str>, help: &'static str) -> Spec {
    Spec {
        name,
        default,
        help,
    }
}

pub const SETTINGS: &[Spec] = &[
    s("ENVIRONMENT", Some("dev"), "`dev` or `production`; production refuses dev-only defaults"),
    s("BIND", Some("0.0.0.0:8000"), "address the HTTP/WebSocket server listens on (`serve --bind` overrides it)"),
    s("INSTANCE_ID", None, "this instance's id on the Redis bridge; a random UUID per process when unset"),
    s("AUTH_MODE", None, "required: `local` (one shared admin bearer token) or `clerk` (Clerk session tokens, verified against Clerk's keys)"),
    s("LOCAL_AUTH_TOKEN", None, "required with AUTH_MODE=local: the admin bearer token, at least 50 characters"),
    s("CLERK_SECRET_KEY", None, "required with AUTH_MODE=clerk: the Clerk instance's secret key, sent to CLERK_API_URL to read its keys (JWKS) and users"),
    s("CLERK_API_URL", Some("https://api.clerk.com"), "Clerk's backend API (keys at /v1/jwks, users at /v1/users/{id})"),
    s("CLERK_VERIFY_IAT", Some("true"), "refuse Clerk tokens issued in the future (beyond CLERK_LEEWAY)"),
    s("CLERK_LEEWAY", Some("10"), "seconds of clock skew allowed on a Clerk token's exp, nbf and iat"),
    s("CLERK_ISSUER", None, "when set, a Clerk token's `iss` must be this (your Frontend API URL, e.g. https://clerk.example.com)"),
    s("CLERK_AUTHORIZED_PARTIES", None, "comma-separated origins; when set, a Clerk token's `azp` must be one of them (e.g. https://console.example.com)"),
    s("DATABASE_URL", None, "required: PostgreSQL URL; `postgres://`, `postgresql://` and `postgresql+psycopg://` are accepted"),
    s("DB_POOL_SIZE", Some("16"), "maximum PostgreSQL connections per instance"),
    s("DB_AUTO_MIGRATE", Some("false"), "apply pending migrations from schema/ at start"),
    s("REDIS_URL", None, "Redis base URL (redis://, or rediss:// for TLS verified against the system roots or SSL_CERT_FILE); unset = single instance with an in-process bus"),
    s("WS_REDIS_PUBSUB_URL", None, "Redis for the relay bridge; default REDIS_URL with DB 1"),
    s("PROACTIVITY_REDIS_URL", None, "Redis for the event bus; default REDIS_URL with DB 2"),
    s("PROACTIVITY_ENGINE_IN_SERVE", Some("true"), "run the proactivity rule engine inside `serve`; false when `mission-control consumer` processes run it instead"),
    s("PROACTIVITY_RULE_COOLDOWN_SECONDS", Some("3600"), "cooldown of a proactive rule whose own `cooldown_seconds` is 0"),
    s("PROACTIVITY_SUGGESTION_EXPIRY_HOURS", Some("168"), "a pending suggestion expires this long after it was made (then it cannot be accepted: 409)"),
    s("PROACTIVITY_EVENT_TTL_DAYS", Some("90"), "system events older than this are deleted (in batches, by the rule engine)"),
    s("PROACTIVITY_RECOVER_AFTER_SECONDS", Some("30"), "an event not evaluated this long after its commit is taken over from a dead consumer, or read from PostgreSQL if Redis lost it"),
    s("PIPELINE_DEFAULT_STAGE_TIMEOUT_HOURS", Some("24"), "a pipeline stage that waits longer than this fails (or takes its on_failure_stage_id); a stage's config.timeout_hours / timeout_seconds overrides it"),
    s("PIPELINE_MAX_CONCURRENT_RUNS", Some("10"), "running and paused pipeline runs per organization; more wait `queued` and start oldest first"),
    s("PIPELINE_LEASE_SECONDS", Some("15"), "an instance's hold on its pipeline runs; runs of an instance silent this long are taken over by another"),
    s("KNOWLEDGE_SEARCH_LANGUAGE", Some("english"), "PostgreSQL text search configuration of knowledge entries (`english`, `simple`, `german`, …; Chinese, Japanese and Korean are indexed by character bigrams whatever this is); entries are re-indexed when it changes"),
    s("EMBEDDING_PROVIDER", Some("none"), "`openai` (and OpenAI-compatible servers), `tongyi` (DashScope), `local` (Ollama) or `none` (knowledge search is keyword-only and says so)"),
    s("EMBEDDING_API_KEY", None, "bearer key of the embedding provider (openai, tongyi)"),
    s("EMBEDDING_MODEL", None, "embedding model; default per provider: text-embedding-3-small (openai), text-embedding-v3 (tongyi), nomic-embed-text (local). Changing it re-embeds every entry"),
    s("EMBEDDING_BASE_URL", None, "provider URL; default per provider: https://api.openai.com/v1, https://dashscope.aliyuncs.com/api/v1, http://localhost:11434"),
    s("EMBEDDING_TIMEOUT_SECONDS", Some("10"), "an embedding call that takes longer fails: a search then answers keyword results flagged `degraded`, a stored entry is retried later"),
    s("KNOWLEDGE_MAX_DOCUMENT_SIZE_MB", Some("50"), "largest knowledge document upload; a bigger one is refused with 413 while it streams in, and nothing is stored"),
    s("KNOWLEDGE_STORAGE_DIR", Some("data/knowledge"), "directory of uploaded knowledge documents when no OSS_BUCKET is set (created if missing)"),
    s("OSS_BUCKET", None, "keep uploaded documents in this S3-compatible bucket (Alibaba OSS, S3, MinIO) instead of KNOWLEDGE_STORAGE_DIR"),
    s("OSS_ENDPOINT", None, "required with OSS_BUCKET: the bucket's endpoint (https://oss-cn-hangzhou.aliyuncs.com, https://s3.eu-west-1.amazonaws.com, …)"),
    s("OSS_ACCESS_KEY", None, "required with OSS_BUCKET: access key id"),
    s("OSS_SECRET_KEY", None, "required with OSS_BUCKET: secret access key"),
    s("OSS_REGION", Some("us-east-1"), "region the S3 signatures are made for (OSS: e.g. oss-cn-hangzhou)"),
    s("OSS_PATH_STYLE", Some("false"), "address the bucket in the path (`endpoint/bucket/key`, MinIO and most self-hosted stores) instead of the host (`bucket.endpoint/key`, which OSS requires)"),
    s("BOARD_SYNC_REDIS_URL", None, "Redis for board sync; default REDIS_URL with DB 3. Board sync travels on the relay bridge, so it must name WS_REDIS_PUBSUB_URL's server (its DB is ignored)"),
    s("REDIS_POOL_SIZE", Some("16"), "maximum pooled Redis command connections per instance"),
    s("BASE_URL", None, "public URL of this deployment (https://mc.example.com); builds the relay_ws_url handed to gateways, else taken from the request"),
    s("SOULS_DIRECTORY_URL", Some("https://souls.directory"), "the souls directory that /api/v1/souls-directory proxies (its sitemap and /api/souls/{handle}/{slug}.md); unreachable answers 502"),
    s("GATEWAY_REGISTRATION_ENABLED", Some("true"), "allow gateway self-registration with a registration token"),
    s("GATEWAY_HEARTBEAT_INTERVAL_SECONDS", Some("30"), "heartbeat interval told to gateways"),
    s("GATEWAY_OFFLINE_THRESHOLD_SECONDS", Some("90"), "no heartbeat (HTTP or relay frame) for this long marks a gateway offline"),
    s("GATEWAY_RPC_TIMEOUT_SECONDS", Some("10"), "how long a request that reads from a gateway (sessions, history, status) waits for its answer over the relay link; then 502"),
    s("GATEWAY_COMMAND_RETRY_SECONDS", Some("5"), "a request to a gateway (provisioning, messages to agents) unanswered this long is sent again, the wait doubling per attempt"),
    s("GATEWAY_COMMAND_MAX_ATTEMPTS", Some("6"), "sends of one request to a gateway before it is recorded as failed"),
    s("GATEWAY_DEVICE_KEY", None, "the 32-byte Ed25519 seed (base64url) this deployment signs with towards OpenClaw gateways, the same on every instance; unset = generated once and kept in PostgreSQL"),
    s("GATEWAY_LEASE_SECONDS", Some("10"), "an instance holds the connection of a gateway it dials for this long between renewals; when it dies another instance takes the gateway over after this"),
    s("GATEWAY_RECONNECT_MAX_SECONDS", Some("30"), "longest wait between attempts to connect to a gateway it dials (doubling with jitter; a pending pairing or a refused token waits this long)"),
    s("WS_HEARTBEAT_INTERVAL_SECONDS", Some("30"), "interval of the server's WebSocket pings"),
    s("WS_HEARTBEAT_TIMEOUT_SECONDS", Some("90"), "a socket with no traffic (not even a pong) for this long is closed"),
    s("WS_MAX_CONNECTIONS_PER_INSTANCE", Some("10000"), "WebSockets (H5 and gateway) one instance holds; more are closed with 1013 (try again later)"),
    s("WS_WRITE_TIMEOUT_SECONDS", Some("30"), "a connection whose client takes nothing the server sends for this long is dropped by the kernel (TCP_USER_TIMEOUT), even while a write to it is stuck"),
    s("WS_OUTBOUND_QUEUE_BYTES", Some("1048576"), "bytes a socket may have queued for a client that is not reading; past it the socket is closed with 4009"),
    s("SSE_KEEPALIVE_SECONDS", Some("15"), "interval of the keepalive comment on server-sent event streams; a stream also re-reads its feed then, in case a wake-up was lost"),
    s("WS_AUTH_TIMEOUT_SECONDS", Some("10"), "a socket must send its auth frame within this time"),
    s("WS_MAX_FRAME_BYTES", Some("1048576"), "largest accepted WebSocket frame; larger frames are answered with an error"),
    s("TRUST_FORWARDED_FOR", Some("false"), "take the client address from X-Forwarded-For (only behind a proxy that sets it)"),
    s("AGENT_TOKEN_KEY", None, "key of the hashes agent tokens are stored as, at least 32 characters and distinct from the admin token; required outside dev (dev falls back to a fixed development key); changing it invalidates every agent token"),
    s("H5_JWT_SECRET", None, "HS256 key for H5 access tokens, at least 32 characters and distinct from the admin token; required outside dev (dev falls back to a fixed development key)"),
    s("H5_JWT_ACCESS_TTL_MINUTES", Some("15"), "H5 access token lifetime"),
    s("H5_JWT_REFRESH_TTL_DAYS", Some("30"), "H5 refresh token lifetime"),
    s("H5_RESEND_WINDOW_SECONDS", Some("120"), "an H5 chat frame with the same id and the same content as a message stored this recently is a resend (stored once, acked with the first message's id); ids that are UUIDs are resends at any age"),
    s("H5_LOGIN_MAX_FAILURES", Some("5"), "failed H5 logins allowed per username within the window before logins answer 429"),
    s("H5_LOGIN_MAX_FAILURES_PER_IP", Some("30"), "failed H5 logins allowed per client address within the window"),
    s("H5_LOGIN_FAILURE_WINDOW_SECONDS", Some("300"), "the window of the two limits above"),
    s("CORS_ORIGINS", Some(""), "allowed browser origins, comma separated; empty = no CORS headers"),
    s("LOG_LEVEL", Some("info"), "log filter: a level (`info`) or a tracing directive list (`info,mission_control=debug`)"),
    s("LOG_FORMAT", Some("text"), "`text` or `json` (one JSON object per line)"),
    s("REQUEST_LOG_INCLUDE_HEALTH", Some("false"), "also log requests to /health, /healthz and /readyz"),
    s("HTTP_BODY_LIMIT_BYTES", Some("1048576"), "largest accepted request body; larger bodies answer 413"),
    s("WEBHOOK_MAX_BODY_BYTES", Some("262144"), "largest body the inbound board webhook endpoint stores; larger bodies answer 413 and are not stored"),
    s("WEBHOOK_RATE_LIMIT_PER_MINUTE", Some("60"), "inbound calls one board webhook accepts per minute (counted in Redis across instances); more answer 429 with Retry-After"),
    s("HTTP_WORKERS", None, "HTTP worker threads; default the number of CPUs"),
    s("SHUTDOWN_TIMEOUT_SECONDS", Some("30"), "on SIGTERM, how long in-flight requests may take to finish"),
    s("READINESS_TIMEOUT_MS", Some("2000"), "how long /readyz waits for PostgreSQL and the bridge probe"),
];

pub fn find(name: &str) -> &'static Spec {
    SETTINGS
        .iter()
        .find(|spec| spec.name == name)
        .unwrap_or_else(|| panic!("setting {name} is read but missing from config::spec::SETTINGS"))
}

/// The settings as a plain-text table, for `--help`.
pub fn help_table() -> String {
    let width = SETTINGS
        .iter()
        .map(|spec| spec.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::from(
        "Settings (environment variables; a .env file in the working directory is read too):\n",
    );
    for spec in SETTINGS {
        let default = match spec.default {
            Some("") => " [default: empty]".to_string(),
            Some(d) => format!(" [default: {d}]"),
            None => String::new(),
        };
        out.push_str(&format!(
            "  {:width$}  {}{}\n",
            spec.name, spec.help, default
        ));
    }
    out
}
