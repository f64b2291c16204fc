//! Starts the real `mission-control` binary against its own fresh database and the shared
//! Redis, and talks to it over loopback. Every test gets its own database, so tests run in
//! parallel; two-instance tests start two servers on one database and one Redis.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::{Method, StatusCode};
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789-0123456789-0123456789-0123456789";
pub const BIN: &str = env!("CARGO_BIN_EXE_mission-control");
pub const GATEWAY_SIM: &str = env!("CARGO_BIN_EXE_gateway-sim");

pub fn pg_admin_url() -> String {
    std::env::var("MC_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("MC_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Established TCP connections whose local port is `port` (the server's side of its
/// clients' connections), from /proc/net/tcp and tcp6.
pub fn established(port: u16) -> usize {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(|line| {
                    line.split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        // local_address is field 1, st (01 = ESTABLISHED) field 3.
        .filter(|f| f.len() > 3 && f[1].ends_with(&local) && f[3] == "01")
        .count()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind :0")
        .local_addr()
        .unwrap()
        .port()
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the PostgreSQL admin URL (MC_PG_ADMIN_URL)");
    actix_web::rt::spawn(conn);
    client
}

/// A database of its own, dropped (forcibly) when the last handle goes.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn create() -> Arc<TestDb> {
        let name = format!("mc_test_{}", uuid::Uuid::new_v4().simple());
        pg_admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        Arc::new(TestDb { name })
    }

    pub fn url(&self) -> String {
        let base = pg_admin_url();
        let (prefix, _) = base
            .rsplit_once('/')
            .expect("admin URL has a database path");
        format!("{prefix}/{}", self.name)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect test db");
        actix_web::rt::spawn(conn);
        client
    }

    /// The first column of every row `sql` returns.
    pub async fn column<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<T>
    where
        T: for<'r> tokio_postgres::types::FromSql<'r>,
    {
        self.client()
            .await
            .query(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// A connection as the server's domain functions take it.
    pub async fn app_client(&self) -> mission_control::db::Client {
        mission_control::db::Client::new(self.client().await)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee, so use psql-free blocking I/O on a thread.
        let name = self.name.clone();
        let url = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// The environment a server gets: the minimum to start, plus test overrides.
#[derive(Clone)]
pub struct ServerBuilder {
    db: Option<Arc<TestDb>>,
    port: Option<u16>,
    database_url: Option<String>,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    /// Points the server at another database URL than its test database.
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Runs in single-instance mode with the in-process bus.
    pub fn without_redis(mut self) -> Self {
        self.env.retain(|(k, _)| k != "REDIS_URL");
        self
    }

    /// Listens on this port (to restart an instance where its clients expect it).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts another instance on `other`'s database and Redis, with this builder's settings.
    pub async fn start_on(self, other: &Server) -> Server {
        self.start_on_db(other.db.clone()).await
    }

    pub async fn start_on_db(mut self, db: Arc<TestDb>) -> Server {
        self.db = Some(db);
        self.start().await
    }

    pub async fn start(self) -> Server {
        let db = match self.db {
            Some(db) => db,
            None => TestDb::create().await,
        };
        // A port picked by binding :0 can be taken again before the server binds it;
        // try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = self.port.unwrap_or_else(free_port);
            let url = self.database_url.clone().unwrap_or_else(|| db.url());
            match Server::spawn(&db, &url, &self.env, port).await {
                Ok(server) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("server did not start:\n{last_log}");
    }
}

pub struct Server {
    pub base: String,
    pub port: u16,
    pub db: Arc<TestDb>,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            db: None,
            port: None,
            database_url: None,
            env: vec![
                ("AUTH_MODE".into(), "local".into()),
                ("LOCAL_AUTH_TOKEN".into(), ADMIN_TOKEN.into()),
                ("DB_AUTO_MIGRATE".into(), "true".into()),
                ("REDIS_URL".into(), redis_url()),
                ("HTTP_WORKERS".into(), "2".into()),
                ("LOG_LEVEL".into(), "info".into()),
                ("SHUTDOWN_TIMEOUT_SECONDS".into(), "5".into()),
                // Every test logs in from 127.0.0.1 against the one shared Redis; tests of
                // the per-address limit send their own X-Forwarded-For.
                ("H5_LOGIN_MAX_FAILURES_PER_IP".into(), "100000".into()),
            ],
        }
    }

    pub async fn start() -> Server {
        Server::builder().start().await
    }

    async fn spawn(
        db: &Arc<TestDb>,
        database_url: &str,
        env: &[(String, String)],
        port: u16,
    ) -> Result<Server, String> {
        let dir = TempDir::new();
        let log = dir.path.join("server.log");
        let child = command(&dir, env)
            .env("DATABASE_URL", database_url)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn mission-control");
        let mut server = Server {
            base: format!("http://127.0.0.1:{port}"),
            port,
            db: db.clone(),
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.child.try_wait() {
                return Err(server.log());
            }
            if let Ok((StatusCode::OK, _)) =
                server.try_call(Method::GET, "/healthz", None, None).await
            {
                return Ok(server);
            }
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!(
            "no answer on /healthz within 20 s\n{}",
            server.log()
        ))
    }

    /// Another instance on its own port sharing this one's database and Redis, as in a
    /// two-instance deployment.
    pub async fn second_instance(&self) -> Server {
        let mut builder = Server::builder();
        builder.db = Some(self.db.clone());
        builder.start().await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    async fn try_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(StatusCode, Value), String> {
        let res = self.raw(method, path, token, body, &[]).await?;
        Ok((res.status, res.json))
    }

    /// A request with optional bearer token, JSON body and extra headers.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let mut req = client.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut res = match body {
            Some(body) => {
                req.insert_header(("Content-Type", "application/json"))
                    .send_body(body.to_string())
                    .await
            }
            None => req.send().await,
        }
        .map_err(|e| e.to_string())?;
        let bytes = res
            .body()
            .limit(16 << 20)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status: res.status(),
            headers: res.headers().clone(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.raw(method, path, token, body, &[])
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.log()))
    }

    /// GET as the admin.
    pub async fn admin_get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(ADMIN_TOKEN), None).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, None).await
    }

    /// A number of `GET /metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.get("/metrics").await.text;
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until this server has heard every row change committed so far in its
    /// database, so its in-memory caches (admin principals, relay identities) hold no stale
    /// entry: a test that changes those rows by SQL calls it before its next request.
    /// Notifications come in commit order, so once one sent now is heard, the change was.
    pub async fn caches_caught_up(&self) {
        if self.metric("mc_cache_live").await == 0 {
            return; // caches are off: nothing stale is kept
        }
        let before = self.metric("mc_cache_notifications_total").await;
        let db = self.db.client().await;
        db.batch_execute("NOTIFY mc_cache, 'probe'").await.unwrap();
        let heard = eventually(Duration::from_secs(10), || async {
            self.metric("mc_cache_notifications_total").await > before
        })
        .await;
        assert!(heard, "the server never heard the probe\n{}", self.log());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what its server logged as errors and warnings.
        if std::thread::panicking() {
            let worth_showing = |l: &&str| l.contains("ERROR") || l.contains("WARN");
            for line in self.log().lines().filter(worth_showing) {
                eprintln!("server {}: {line}", self.port);
            }
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The binary with a clean environment and a scratch working directory, so a developer's
/// `.env` or shell variables cannot leak into a test.
fn command(dir: &TempDir, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(&dir.path);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary to completion (for `migrate`, `--help` and start-up failures).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = TempDir::new();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    command(&dir, &env)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mission-control")
}

pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("mc-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A self-signed certificate for localhost, made with the openssl tool.
pub struct SelfSigned {
    dir: TempDir,
}

impl SelfSigned {
    pub fn new() -> SelfSigned {
        let dir = TempDir::new();
        let out = std::process::Command::new("openssl")
            .current_dir(&dir.path)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .output()
            .expect("openssl");
        assert!(out.status.success(), "{out:?}");
        SelfSigned { dir }
    }

    pub fn cert_file(&self) -> String {
        self.dir.path.join("cert.pem").display().to_string()
    }

    pub fn key_file(&self) -> String {
        self.dir.path.join("key.pem").display().to_string()
    }

    pub fn server_config(&self) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(self.dir.path.join("cert.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.dir.path.join("key.pem")).unwrap();
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
    }
}

/// A Redis server of the test's own, to stop and restart without touching the shared one.
pub struct RedisProcess {
    pub port: u16,
    /// The certificate and key files of a TLS-only server.
    tls: Option<(String, String)>,
    child: Option<Child>,
}

impl RedisProcess {
    pub fn start() -> RedisProcess {
        RedisProcess::spawn(None)
    }

    /// A server that speaks only TLS, with `cert`'s certificate (`url` is `rediss://`).
    pub fn start_tls(cert: &SelfSigned) -> RedisProcess {
        RedisProcess::spawn(Some((cert.cert_file(), cert.key_file())))
    }

    fn spawn(tls: Option<(String, String)>) -> RedisProcess {
        let mut redis = RedisProcess {
            port: free_port(),
            tls,
            child: None,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("rediss://localhost:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            Some((cert, key)) => cmd.args(["--port", "0", "--tls-port", &port]).args([
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-auth-clients",
                "no",
            ]),
            None => cmd.args(["--port", &port]),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/provision installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL cluster of a test's own (`initdb` in a temporary folder, run as the
/// `postgres` user, on a free port), for tests that stop or restart the database (the shared
/// one must stay up for everyone else) or count the statements sent to it (it loads
/// `pg_stat_statements`).
pub struct PgProcess {
    pub port: u16,
    dir: TempDir,
    bin: PathBuf,
}

impl PgProcess {
    pub fn start() -> PgProcess {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb");
        let dir = TempDir::new();
        let chown = Command::new("chown")
            .args(["postgres", dir.path.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success());
        let data = dir.path.join("data");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PgProcess {
            port: free_port(),
            dir,
            bin,
        };
        pg.ctl(&["start", "-w"]);
        pg
    }

    /// `pg_ctl` on the cluster, as its owner.
    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 \
             -c shared_preload_libraries=pg_stat_statements",
            self.port,
            self.dir.path.display()
        );
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path.join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.path.join("log"))
            .args(args)
            .output()
            .expect("run pg_ctl")
    }

    fn ctl(&self, args: &[&str]) {
        let out = self.pg_ctl(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Superuser URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the cluster at once (connections are cut, as in a crash) and starts it again.
    pub fn restart(&self) {
        self.ctl(&["stop", "-m", "immediate"]);
        self.ctl(&["start", "-w"]);
    }
}

impl Drop for PgProcess {
    fn drop(&mut self) {
        self.pg_ctl(&["stop", "-m", "immediate"]);
    }
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A WebSocket client for the tests: JSON text frames in and out, with deadlines.
pub struct WsClient {
    framed: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
}

/// What the server sent next.
#[derive(Debug)]
pub enum WsEvent {
    Json(Value),
    Closed(Option<u16>, String),
    TimedOut,
}

impl WsClient {
    pub async fn connect(server: &Server, path: &str) -> WsClient {
        let url = format!("{}{}", server.base.replacen("http", "ws", 1), path);
        let (_, framed) = awc::Client::new()
            .ws(url)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("ws connect {path}: {e}"));
        WsClient { framed }
    }

    pub async fn send(&mut self, frame: Value) {
        use futures_util::SinkExt;
        self.framed
            .send(awc::ws::Message::Text(frame.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.framed
            .send(awc::ws::Message::Text(text.to_string().into()))
            .await
            .expect("ws send");
    }

    /// Sends `text` as one message in fragments of at most `size` bytes (continuation
    /// frames), as clients may.
    pub async fn send_fragmented(&mut self, text: &str, size: usize) {
        use actix_http::ws::Item;
        use awc::ws::Message;
        use futures_util::SinkExt;
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let bytes = bytes::Bytes::copy_from_slice(chunk);
            let item = match i {
                0 => Item::FirstText(bytes),
                i if i == last => Item::Last(bytes),
                _ => Item::Continue(bytes),
            };
            self.framed
                .send(Message::Continuation(item))
                .await
                .expect("ws send");
        }
    }

    /// The next JSON frame or close, skipping pings.
    pub async fn next(&mut self, within: Duration) -> WsEvent {
        use futures_util::StreamExt;
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match actix_web::rt::time::timeout(left, self.framed.next()).await {
                Err(_) => return WsEvent::TimedOut,
                Ok(None) => return WsEvent::Closed(None, "stream ended".into()),
                Ok(Some(Err(e))) => return WsEvent::Closed(None, e.to_string()),
                Ok(Some(Ok(awc::ws::Frame::Text(bytes)))) => {
                    return WsEvent::Json(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
                }
                Ok(Some(Ok(awc::ws::Frame::Close(reason)))) => {
                    return WsEvent::Closed(
                        reason.as_ref().map(|r| u16::from(r.code)),
                        reason.and_then(|r| r.description).unwrap_or_default(),
                    );
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next JSON frame; panics on anything else.
    pub async fn expect_json(&mut self) -> Value {
        match self.next(Duration::from_secs(5)).await {
            WsEvent::Json(v) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next JSON frame of type `kind`, skipping others (acks, pings); panics on a close
    /// or when none comes within 5 s of the one before.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.expect_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// On a gateway link: the next JSON frame that is not a request from the server
    /// (`rpc.request`, e.g. provisioning the gateway's main agent, may come at any time).
    pub async fn expect_answer(&mut self) -> Value {
        loop {
            let frame = self.expect_json().await;
            if frame["type"] != "rpc.request" {
                return frame;
            }
        }
    }

    /// Waits for the server's close frame; returns its code and reason.
    pub async fn expect_close(&mut self, within: Duration) -> (Option<u16>, String) {
        loop {
            match self.next(within).await {
                WsEvent::Closed(code, reason) => return (code, reason),
                WsEvent::TimedOut => panic!("no close within {within:?}"),
                WsEvent::Json(_) => continue,
            }
        }
    }
}

/// One server-sent event, or a keepalive comment.
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    Event {
        event: String,
        id: Option<String>,
        data: Value,
    },
    Comment(String),
}

/// A client of a `text/event-stream` response.
pub struct SseClient {
    body: std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                Item = Result<actix_web::web::Bytes, awc::error::PayloadError>,
            >,
        >,
    >,
    buffer: String,
}

impl SseClient {
    /// Opens `path` with the admin token (and `Last-Event-ID` when given); panics unless
    /// the answer is a 200 event stream.
    pub async fn open(server: &Server, path: &str, last_event_id: Option<&str>) -> SseClient {
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        let mut headers = vec![("Authorization", bearer.as_str())];
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID", id));
        }
        SseClient::open_with(server, path, &headers).await
    }

    /// Opens `path` with these headers (an agent token, say).
    pub async fn open_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let client = awc::Client::builder().disable_timeout().finish();
        let mut req = client.get(format!("{}{}", server.base, path));
        for header in headers {
            req = req.insert_header(*header);
        }
        let response = req.send().await.expect("open the event stream");
        assert_eq!(response.status(), 200, "event stream {path}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseClient {
            body: Box::pin(response),
            buffer: String::new(),
        }
    }

    /// The next event or comment within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseItem> {
        use futures_util::StreamExt;
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse_sse_block(&block));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match actix_web::rt::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event (skipping keepalive comments); panics when none comes in 5 s.
    pub async fn event(&mut self) -> (String, Option<String>, Value) {
        loop {
            match self.next(Duration::from_secs(5)).await {
                Some(SseItem::Event { event, id, data }) => return (event, id, data),
                Some(SseItem::Comment(_)) => continue,
                None => panic!("no event within 5 s"),
            }
        }
    }
}

fn parse_sse_block(block: &str) -> SseItem {
    let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            return SseItem::Comment(comment.trim().to_string());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
    SseItem::Event {
        event,
        id,
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
    }
}

/// A WebSocket client on `path` that never reads: its receive buffer is tiny, so the
/// server's frames pile up on the server. It sends `first_frame` after the upgrade.
pub fn stalled_socket(
    server: &Server,
    path: &str,
    first_frame: Option<&Value>,
) -> std::net::TcpStream {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor we create and hand to TcpStream, with
    // pointers to live values of the sizes given.
    let mut stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        let opt = &size as *const _ as *const libc::c_void;
        assert_eq!(
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                opt,
                std::mem::size_of::<libc::c_int>() as u32
            ),
            0
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: server.port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0, "connect");
        std::net::TcpStream::from_raw_fd(fd)
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 1024];
    let n = stream.read(&mut head).unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    if let Some(first) = first_frame {
        // A masked text frame (clients must mask), with a 16-bit length.
        let payload = first.to_string().into_bytes();
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![
            0x81,
            0x80 | 126,
            (payload.len() >> 8) as u8,
            payload.len() as u8,
        ];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        stream.write_all(&frame).unwrap();
    }
    stream
}

/// Waits for the server to log that it closed a stalled socket, then reads everything the
/// socket got; panics unless that ends with a 4009 close frame. Returns the bytes read.
pub async fn expect_closed_as_too_slow(
    server: &Server,
    mut stalled: std::net::TcpStream,
) -> Vec<u8> {
    let closed = eventually(Duration::from_secs(10), || async {
        server.log().contains("client is too slow")
    })
    .await;
    assert!(
        closed,
        "the stalled socket was not closed:\n{}",
        server.log()
    );
    let received = actix_web::rt::task::spawn_blocking(move || {
        use std::io::Read;
        stalled
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut all = Vec::new();
        let mut chunk = [0u8; 65536];
        while let Ok(n) = stalled.read(&mut chunk) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&chunk[..n]);
        }
        all
    })
    .await
    .unwrap();
    let code = 4009u16.to_be_bytes();
    assert!(
        received
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2] == code[0] && w[3] == code[1]),
        "no 4009 close frame in {} bytes",
        received.len()
    );
    received
}

/// moto's S3 server (scripts/provision installs it) on loopback, with an empty bucket.
pub struct Moto {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub async fn start(bucket: &str) -> Moto {
        let program = std::env::var("MC_MOTO_SERVER")
            .expect("MC_MOTO_SERVER (eval \"$(scripts/provision)\")");
        let port = crate::harness::free_port();
        let child = std::process::Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = awc::Client::default();
        let up = eventually(Duration::from_secs(30), || async {
            client
                .put(format!("{}/{bucket}", moto.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "moto_server did not start");
        moto
    }

    /// The bucket's listing (XML).
    pub async fn listing(&self, bucket: &str) -> String {
        let mut response = awc::Client::default()
            .get(format!("{}/{bucket}?list-type=2", self.url))
            .send()
            .await
            .unwrap();
        String::from_utf8_lossy(&response.body().await.unwrap()).into_owned()
    }
}

/// nginx with deploy/nginx.conf in front of instances on loopback (the conf's `api1:8000`,
/// `api2:8000` become these ports), on a port of its own.
pub struct Nginx {
    pub port: u16,
    child: Child,
    dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    pub fn start(upstreams: [u16; 2]) -> Nginx {
        let program = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nginx (scripts/provision installs it)");
        let conf = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf"),
        )
        .unwrap();
        let port = free_port();
        let conf = conf
            .replace(
                "server api1:8000",
                &format!("server 127.0.0.1:{}", upstreams[0]),
            )
            .replace(
                "server api2:8000",
                &format!("server 127.0.0.1:{}", upstreams[1]),
            )
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        assert_eq!(
            conf.matches("127.0.0.1:").count(),
            3,
            "the conf's upstreams and listen"
        );
        let dir = TempDir::new();
        let path = dir.path.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let pid = format!("pid {}; daemon off;", dir.path.join("nginx.pid").display());
        let child = Command::new(program)
            .arg("-p")
            .arg(&dir.path)
            .arg("-e")
            .arg(dir.path.join("error.log"))
            .arg("-c")
            .arg(&path)
            .args(["-g", &pid])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path.join("stderr.log")).unwrap())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || nginx.child.try_wait().ok().flatten().is_some() {
                panic!("nginx did not start: {}", nginx.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What nginx wrote to stderr (its error log, warn and above).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("stderr.log")).unwrap_or_default()
    }
}
