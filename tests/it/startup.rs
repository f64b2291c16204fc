//! Start-up: settings validation, `--help`, `migrate`, and SIGTERM.

use std::time::Duration;

use crate::harness::{run, Server, TestDb, ADMIN_TOKEN};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const DB: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[test]
fn missing_setting_stops_start_up_naming_it() {
    let out = run(
        &["serve"],
        &[("AUTH_MODE", "local"), ("LOCAL_AUTH_TOKEN", ADMIN_TOKEN)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("DATABASE_URL: is required"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn short_local_token_stops_start_up_naming_it() {
    let out = run(
        &["serve"],
        &[
            ("AUTH_MODE", "local"),
            ("LOCAL_AUTH_TOKEN", "too-short"),
            ("DATABASE_URL", DB),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("LOCAL_AUTH_TOKEN: must be at least 50 characters"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn malformed_settings_stop_start_up_naming_each() {
    let out = run(
        &["serve"],
        &[
            ("AUTH_MODE", "local"),
            ("LOCAL_AUTH_TOKEN", ADMIN_TOKEN),
            ("DATABASE_URL", "mysql://root@db/x"),
            ("REDIS_URL", "not a url"),
            ("DB_POOL_SIZE", "many"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for name in ["DATABASE_URL:", "REDIS_URL:", "DB_POOL_SIZE:"] {
        assert!(err.contains(name), "{name} missing from:\n{err}");
    }
}

#[test]
fn an_incomplete_clerk_configuration_is_refused_naming_the_variable() {
    let out = run(&["serve"], &[("AUTH_MODE", "clerk"), ("DATABASE_URL", DB)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("CLERK_SECRET_KEY: is required"),
        "{}",
        stderr(&out)
    );
    let out = run(&["serve"], &[("AUTH_MODE", "sso"), ("DATABASE_URL", DB)]);
    assert!(
        stderr(&out).contains("AUTH_MODE: expected local or clerk"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_lists_every_setting() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for spec in mission_control::config::spec::SETTINGS {
        assert!(
            help.contains(spec.name),
            "{} missing from --help",
            spec.name
        );
    }
    assert!(help.contains("serve") && help.contains("migrate"));
}

#[actix_web::test]
async fn migrate_twice_is_a_no_op() {
    let db = TestDb::create().await;
    let url = db.url();
    let first = run(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied V1__foundation"));
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied V2__core_resources"));
    let second = run(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "schema is up to date"
    );

    let client = db.client().await;
    let versions: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    let applied = mission_control::db::migrate::migrations::runner()
        .get_migrations()
        .len() as i64;
    assert_eq!(versions, applied);
    let extensions: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_extension WHERE extname IN ('vector', 'pg_trgm')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(extensions, 2);
}

#[test]
fn migrate_against_an_unreachable_database_fails_clearly() {
    let out = run(
        &["migrate"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot connect to DATABASE_URL"),
        "{}",
        stderr(&out)
    );
}

#[actix_web::test]
async fn sigterm_stops_the_server_with_exit_code_zero() {
    let mut server = Server::start().await;
    assert_eq!(server.get("/healthz").await.status, 200);
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exited after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(
        server.log().contains("graceful shutdown"),
        "{}",
        server.log()
    );
}

#[test]
fn readme_and_env_example_document_every_setting() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{root}/deploy/env.example")).unwrap();
    for spec in mission_control::config::spec::SETTINGS {
        assert!(
            readme.contains(&format!("`{}`", spec.name)),
            "{} missing from README.md",
            spec.name
        );
        assert!(
            example.contains(spec.name),
            "{} missing from deploy/env.example",
            spec.name
        );
    }
}
