//! The production kit's scripts against real parts: `init-rds.sh` (extensions and
//! migrations on an empty database, twice), `deploy/aliyun/scripts/backup.sh`
//! (pg_dump to an S3-compatible store on loopback, retention, a restore into an empty
//! database, row for row) and `deploy/aliyun/scripts/deploy.sh` (a rolling update of two
//! instances behind nginx with `deploy/nginx.conf`, under H5 chat and board load: no chat
//! message lost, every client back, every board view equal to the database).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::chaos::{under_load, world};
use awc::http::Method;

use crate::fixtures::{new_board, send};
use crate::harness::{Moto, Nginx, Server, TempDir, TestDb, ADMIN_TOKEN};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/aliyun/scripts")
        .join(name)
}

fn backup(moto: &Moto, database_url: &str, args: &[&str]) -> Output {
    Command::new(script("backup.sh"))
        .args(args)
        .env(
            "AWS_CLI",
            std::env::var("MC_AWS_CLI").expect("MC_AWS_CLI (eval \"$(scripts/provision)\")"),
        )
        .env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("BACKUP_S3_ENDPOINT", &moto.url)
        .env("BACKUP_S3_URI", "s3://mc-backups")
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run backup.sh")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every table of `public` with its number of rows.
async fn row_counts(url: &str) -> BTreeMap<String, i64> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    let mut counts = BTreeMap::new();
    for row in client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
    {
        let table: String = row.get(0);
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM public.\"{table}\""), &[])
            .await
            .unwrap()
            .get(0);
        counts.insert(table, n);
    }
    counts
}

#[actix_web::test]
async fn a_backup_goes_to_the_bucket_old_ones_are_pruned_and_it_restores_row_for_row() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let tasks = format!("/api/v1/boards/{}/tasks", board["id"].as_str().unwrap());
    for i in 0..5 {
        let task = send(
            &server,
            Method::POST,
            &tasks,
            json!({"title": format!("task {i} 任务")}),
        );
        assert_eq!(task.await.status, 200);
    }
    let moto = Moto::start("mc-backups").await;
    // A backup from long ago, past the retention, and a stray object that is no backup.
    for key in ["mission_control_20200101_000000.sql.gz", "notes.txt"] {
        let put = awc::Client::default()
            .put(format!("{}/mc-backups/db/{key}", moto.url))
            .send_body("old")
            .await
            .unwrap();
        assert!(put.status().is_success());
    }

    // The server stopped, the database holds still: what is counted is what was dumped.
    let db = server.db.clone();
    drop(server);
    let source = db.url();
    let before = row_counts(&source).await;
    assert_eq!(before.get("tasks"), Some(&5));
    let out = backup(&moto, &source, &["backup"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = backup(&moto, &source, &["list"]);
    let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), 1, "the old one pruned: {names:?}");
    assert!(names[0].starts_with("mission_control_") && names[0].ends_with(".sql.gz"));
    assert!(
        moto.listing("mc-backups").await.contains("notes.txt"),
        "only backups are pruned"
    );

    let target = TestDb::create().await;
    let out = backup(&moto, &source, &["restore", &names[0], &target.url()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(row_counts(&target.url()).await, before);

    // Never over a database that has tables.
    let again = backup(&moto, &source, &["restore", &names[0], &target.url()]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("restore into an empty one"),
        "{}",
        text(&again)
    );
    let unknown = backup(&moto, &source, &["restore", "../etc/passwd", &target.url()]);
    assert!(
        text(&unknown).contains("not a backup name"),
        "{}",
        text(&unknown)
    );
}

#[actix_web::test]
async fn init_rds_makes_an_empty_database_ready_and_can_run_again() {
    let target = TestDb::create().await;
    let binary = Path::new(env!("CARGO_BIN_EXE_mission-control"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for run in ["first", "again"] {
        let out = Command::new(script("init-rds.sh"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", &path)
            .env("DATABASE_URL", target.url())
            .output()
            .expect("run init-rds.sh");
        assert!(out.status.success(), "{run}: {}", text(&out));
    }
    let db = target.client().await;
    let extensions: Vec<String> = db
        .query("SELECT extname::text FROM pg_extension ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        extensions.contains(&"vector".to_string()) && extensions.contains(&"pg_trgm".to_string()),
        "{extensions:?}"
    );
    let applied: i64 = db
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    let in_schema = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema"))
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".sql")
        })
        .count();
    assert_eq!(applied as usize, in_schema, "every migration, once");
}

/// What a board client saw: the board's tasks by its snapshot and events, and reconnects.
#[derive(Default)]
struct BoardView {
    tasks: BTreeSet<String>,
    connects: usize,
}

/// A board console tab: subscribes through the balancer, keeps the task set up to date from
/// `board.state` and `task.created` / `task.deleted`, and reconnects when closed.
async fn board_client(front: String, board: String, view: Rc<RefCell<BoardView>>) {
    let url = format!(
        "{}/ws/board/{board}/sync?token={ADMIN_TOKEN}",
        front.replacen("http", "ws", 1)
    );
    loop {
        let Ok((_, mut ws)) = awc::Client::new().ws(url.clone()).connect().await else {
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        view.borrow_mut().connects += 1;
        while let Some(Ok(frame)) = ws.next().await {
            let frame: Value = match frame {
                awc::ws::Frame::Text(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
                awc::ws::Frame::Ping(p) => {
                    let _ = ws.send(awc::ws::Message::Pong(p)).await;
                    continue;
                }
                awc::ws::Frame::Close(_) => break,
                _ => continue,
            };
            let mut view = view.borrow_mut();
            match frame["type"].as_str() {
                Some("board.state") => {
                    view.tasks = frame["tasks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t["id"].as_str().map(str::to_string))
                        .collect();
                }
                Some("task.created") => {
                    if let Some(id) = frame["task"]["id"].as_str() {
                        view.tasks.insert(id.to_string());
                    }
                }
                Some("task.deleted") => {
                    if let Some(id) = frame["task_id"].as_str() {
                        view.tasks.remove(id);
                    }
                }
                _ => {}
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes a task every 150 ms through the balancer; counts answers that were not 200.
async fn board_writer(front: String, board: String, writing: Rc<RefCell<bool>>) -> (usize, usize) {
    let client = awc::Client::default();
    let (mut created, mut failed) = (0, 0);
    let mut n = 0;
    while *writing.borrow() {
        n += 1;
        let answer = client
            .post(format!("{front}/api/v1/boards/{board}/tasks"))
            .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
            .send_json(&json!({"title": format!("rolling {n}")}))
            .await;
        match answer {
            Ok(r) if r.status().is_success() => created += 1,
            _ => failed += 1,
        }
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    }
    (created, failed)
}

/// deploy.sh with its `commands` driver, instances named by their ports: it stops one with
/// SIGTERM and waits for it to exit, then asks (a file) for the new one, which this test
/// starts on the same port (a harness server, so it is cleaned up with the test).
async fn roll(
    world_servers: Rc<RefCell<Vec<Option<Server>>>>,
    start: impl Fn() -> crate::harness::ServerBuilder,
) -> (String, Duration) {
    let dir = TempDir::new();
    let write_pid = |server: &Server| {
        std::fs::write(
            dir.path.join(format!("{}.pid", server.port)),
            server.pid().to_string(),
        )
        .unwrap();
    };
    let ports: Vec<u16> = world_servers
        .borrow()
        .iter()
        .map(|s| s.as_ref().expect("running").port)
        .collect();
    for server in world_servers.borrow().iter().flatten() {
        write_pid(server);
    }
    let d = dir.path.display();
    let stop = format!(
        "p=$(cat {d}/{{}}.pid); kill -TERM \"$p\"; \
         while [ -d /proc/$p ] && ! grep -q '^State:[[:space:]]*Z' /proc/$p/status; do sleep 0.1; done"
    );
    let log = dir.path.join("deploy.log");
    let began = Instant::now();
    let mut deploy = Command::new(script("deploy.sh"))
        .args(ports.iter().map(u16::to_string))
        .env("DEPLOY_DRIVER", "commands")
        .env("DEPLOY_STOP_CMD", stop)
        .env("DEPLOY_START_CMD", format!("touch {d}/{{}}.start"))
        .env("DEPLOY_READY_URL", "http://127.0.0.1:{}/readyz")
        .env("DEPLOY_READY_TIMEOUT", "60")
        .env("DEPLOY_SETTLE_SECONDS", "2")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run deploy.sh");
    let status = loop {
        if let Some(status) = deploy.try_wait().unwrap() {
            break status;
        }
        for (i, port) in ports.iter().enumerate() {
            let asked = dir.path.join(format!("{port}.start"));
            if asked.exists() {
                std::fs::remove_file(&asked).unwrap();
                let old = world_servers.borrow_mut()[i].take().expect("was running");
                let db = old.db.clone();
                drop(old);
                let new = start().port(*port).start_on_db(db).await;
                write_pid(&new);
                world_servers.borrow_mut()[i] = Some(new);
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "deploy.sh failed:\n{said}");
    (said, began.elapsed())
}

#[actix_web::test]
async fn a_rolling_update_behind_nginx_loses_no_chat_message_and_every_client_comes_back() {
    let mut world = world(false, &[]).await;
    let ports = [0, 1].map(|i| world.servers[i].as_ref().unwrap().port);
    let nginx = Nginx::start(ports);
    let front = nginx.url();
    world.front = Some(front.clone());
    let agent: Value = awc::Client::default()
        .get(format!("{front}/api/v1/agents/{}", world.agent))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let board = agent["board_id"]
        .as_str()
        .expect("the agent's board")
        .to_string();

    let views: Vec<Rc<RefCell<BoardView>>> = (0..4).map(|_| Rc::default()).collect();
    let boards: Vec<_> = views
        .iter()
        .map(|v| actix_web::rt::spawn(board_client(front.clone(), board.clone(), v.clone())))
        .collect();
    let writing = Rc::new(RefCell::new(true));
    let writer = actix_web::rt::spawn(board_writer(front.clone(), board.clone(), writing.clone()));

    // The instances move into a cell the roll replaces them in; the world keeps empty places.
    let servers = Rc::new(RefCell::new(std::mem::take(&mut world.servers)));
    world.servers = vec![None, None];
    let builder = world.builder();
    let env_of_world = move || {
        builder.clone().env(
            "INSTANCE_ID",
            format!("rolled-{}", uuid::Uuid::new_v4().simple()),
        )
    };
    let rolled: Rc<RefCell<Option<(String, Duration)>>> = Rc::default();
    let (in_roll, out_of_roll) = (servers.clone(), rolled.clone());
    under_load(
        world,
        "rolling update through nginx",
        0,
        move |_| async move {
            *out_of_roll.borrow_mut() = Some(roll(in_roll, env_of_world).await);
        },
    )
    .await;
    *writing.borrow_mut() = false;
    let (written, failed) = writer.await.unwrap();

    // Every board client is back, and its view is the board as the database has it.
    let test_db = servers.borrow()[0].as_ref().unwrap().db.clone();
    let db = test_db.client().await;
    let in_db: BTreeSet<String> = db
        .query(
            "SELECT id::text FROM tasks WHERE board_id = $1::text::uuid",
            &[&board],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let settled = crate::harness::eventually(Duration::from_secs(20), || async {
        views.iter().all(|v| v.borrow().tasks == in_db)
    })
    .await;
    for b in boards {
        b.abort();
    }
    let connects: Vec<usize> = views.iter().map(|v| v.borrow().connects).collect();
    let (said, took) = rolled.borrow_mut().take().expect("rolled");
    println!(
        "rolling update: deploy.sh took {took:?}; board writes {written} stored, {failed} refused \
         or cut during the roll; board clients' connections {connects:?}; nginx said:\n{}\ndeploy.sh said:\n{said}",
        nginx.log()
    );
    assert!(settled, "a board view differs from the database");
    assert!(
        connects.iter().all(|c| *c >= 2),
        "every board client reconnected: {connects:?}"
    );
    assert!(written > 20, "board load ran through the roll");
}
