use std::collections::HashMap;

use super::*;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123";

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn minimal() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AUTH_MODE", "local"),
        ("LOCAL_AUTH_TOKEN", TOKEN),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mc"),
    ]
}

fn errors_for(pairs: &[(&str, &str)]) -> Vec<String> {
    Settings::load(vars(pairs))
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn minimal_settings_load_with_documented_defaults() {
    let s = Settings::load(vars(&minimal())).expect("valid");
    assert_eq!(s.bind.to_string(), "0.0.0.0:8000");
    assert_eq!(s.environment, Environment::Dev);
    assert!(s.redis.is_none());
    assert!(!s.db_auto_migrate);
    assert_eq!(s.http_body_limit, 1_048_576);
    assert_eq!(s.database.pool_size, 16);
}

#[test]
fn psycopg_database_url_is_accepted() {
    let mut v = minimal();
    v[2] = (
        "DATABASE_URL",
        "postgresql+psycopg://u:secret@db.example:6543/agency",
    );
    let s = Settings::load(vars(&v)).expect("valid");
    assert_eq!(s.database.url.get_dbname(), Some("agency"));
    assert_eq!(s.database.url.get_ports(), &[6543]);
}

#[test]
fn wrong_database_scheme_names_the_variable_without_the_password() {
    let mut v = minimal();
    v[2] = ("DATABASE_URL", "mysql://u:hunter2@db/agency");
    let errs = errors_for(&v);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("DATABASE_URL:"), "{errs:?}");
    assert!(!errs[0].contains("hunter2"), "{errs:?}");
}

#[test]
fn missing_required_settings_are_all_reported() {
    let errs = errors_for(&[]);
    for name in ["AUTH_MODE", "DATABASE_URL"] {
        assert!(
            errs.iter().any(|e| e.starts_with(name)),
            "{name} not in {errs:?}"
        );
    }
}

#[test]
fn short_or_placeholder_local_token_is_refused() {
    let mut v = minimal();
    v[1] = ("LOCAL_AUTH_TOKEN", "short");
    assert!(errors_for(&v)[0].contains("at least 50"));
    v[1] = ("LOCAL_AUTH_TOKEN", "");
    assert!(errors_for(&v)[0].starts_with("LOCAL_AUTH_TOKEN: is required"));
}

#[test]
fn clerk_mode_needs_its_secret_key_and_a_usable_api_url() {
    let mut v = minimal();
    v[0] = ("AUTH_MODE", "clerk");
    let errs = errors_for(&v);
    assert!(errs[0].starts_with("CLERK_SECRET_KEY:"), "{errs:?}");
    v.push(("CLERK_SECRET_KEY", "sk_test_abc"));
    v.push(("CLERK_API_URL", "ftp://clerk"));
    let errs = errors_for(&v);
    assert!(errs[0].starts_with("CLERK_API_URL:"), "{errs:?}");
}

#[test]
fn malformed_numbers_and_flags_name_the_variable() {
    let mut v = minimal();
    v.push(("DB_POOL_SIZE", "lots"));
    v.push(("DB_AUTO_MIGRATE", "perhaps"));
    v.push(("SHUTDOWN_TIMEOUT_SECONDS", "-1"));
    let errs = errors_for(&v);
    for name in [
        "DB_POOL_SIZE",
        "DB_AUTO_MIGRATE",
        "SHUTDOWN_TIMEOUT_SECONDS",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(name)),
            "{name} not in {errs:?}"
        );
    }
}

#[test]
fn redis_urls_default_from_base_with_guide_db_numbers() {
    let mut v = minimal();
    v.push(("REDIS_URL", "redis://cache.internal:6380/0"));
    v.push(("BOARD_SYNC_REDIS_URL", "redis://cache.internal:6380/7"));
    let r = Settings::load(vars(&v))
        .expect("valid")
        .redis
        .expect("redis");
    assert_eq!(r.relay, "redis://cache.internal:6380/1");
    assert_eq!(r.events, "redis://cache.internal:6380/2");
}

#[test]
fn board_sync_on_another_redis_server_than_the_bridge_is_refused() {
    let mut v = minimal();
    v.push(("REDIS_URL", "redis://cache.internal:6380/0"));
    v.push(("BOARD_SYNC_REDIS_URL", "redis://other:6379/3"));
    assert!(errors_for(&v)[0].starts_with("BOARD_SYNC_REDIS_URL: must name the same Redis server"));
}

#[test]
fn malformed_redis_url_is_refused() {
    let mut v = minimal();
    v.push(("REDIS_URL", "localhost:6379"));
    assert!(errors_for(&v)[0].starts_with("REDIS_URL:"));
}

#[test]
fn every_setting_appears_in_help() {
    let help = spec::help_table();
    for setting in spec::SETTINGS {
        assert!(help.contains(setting.name));
    }
}

#[test]
fn h5_secret_is_required_outside_dev_and_distinct_from_the_admin_token() {
    let mut v = minimal();
    v.push(("ENVIRONMENT", "production"));
    let errs = errors_for(&v);
    for key in ["H5_JWT_SECRET", "AGENT_TOKEN_KEY"] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{key}: is required"))),
            "{errs:?}"
        );
    }
    v.push(("H5_JWT_SECRET", TOKEN));
    let errs = errors_for(&v);
    assert!(
        errs.iter()
            .any(|e| e == "H5_JWT_SECRET: must differ from LOCAL_AUTH_TOKEN"),
        "{errs:?}"
    );
    v.pop();
    v.push(("H5_JWT_SECRET", "short"));
    assert!(errors_for(&v)[0].starts_with("H5_JWT_SECRET: must be at least 32"));
}

#[test]
fn dev_falls_back_to_the_development_h5_key() {
    let s = Settings::load(vars(&minimal())).expect("valid");
    assert_eq!(s.h5.jwt_secret, DEV_H5_SECRET);
    assert_eq!(s.h5.access_ttl.as_secs(), 900);
}

#[test]
fn the_admin_token_must_match_exactly() {
    let auth = AuthMode::Local {
        token: "secret-token".into(),
    };
    assert!(auth.accepts("secret-token"));
    assert!(auth.accepts(" secret-token "));
    assert!(!auth.accepts("secret-tokem"));
    assert!(!auth.accepts("secret"));
}
