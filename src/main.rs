//! The `mission-control` binary: `serve`, `consumer`, `migrate` and `registration-token`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mission_control::config::{self, spec, Settings, Vars};
use mission_control::{db, server, telemetry};

#[derive(Parser)]
#[command(name = "mission-control", version, about, after_help = spec::help_table())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSockets until SIGTERM or SIGINT.
    Serve {
        /// Address to listen on; overrides BIND.
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Run the proactivity rule engine alone (it reads the event stream with the other
    /// engines of the deployment) until SIGTERM or SIGINT; with the same settings as
    /// `serve`. Serve with PROACTIVITY_ENGINE_IN_SERVE=false to leave the work to these.
    Consumer,
    /// Apply pending migrations from schema/ and exit.
    Migrate,
    /// Issue, list or revoke the registration tokens with which gateways register
    /// themselves (the same as /api/v1/gateway-registry/tokens; the console has no page
    /// for them). Needs DATABASE_URL; prints JSON.
    RegistrationToken {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Issue a token. Its secret (`registration_token`) is printed this once: only a hash
    /// is stored.
    Issue {
        /// The organization: its id, or its name if no other organization has that name.
        #[arg(long)]
        org: String,
        /// A note for the list, e.g. the office the token is for.
        #[arg(long)]
        label: Option<String>,
    },
    /// List the organization's tokens, newest first (without their secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a token. Gateways that registered with it keep their relay tokens.
    Revoke {
        #[arg(long)]
        org: String,
        /// The token's id (from `issue` or `list`).
        id: uuid::Uuid,
    },
}

/// Exit status for configuration errors, distinct from runtime failures (1).
const CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    mission_control::secrets::password::return_hash_memory_to_the_system();
    let cli = Cli::parse();
    let source = config::environment_source();
    let result = match cli.command {
        Command::Serve { bind } => {
            let mut settings = match running(source) {
                Ok(s) => s,
                Err(code) => return code,
            };
            if let Some(bind) = bind {
                settings.bind = bind;
            }
            actix_web::rt::System::new().block_on(server::serve(settings))
        }
        Command::Consumer => {
            let settings = match running(source) {
                Ok(s) => s,
                Err(code) => return code,
            };
            actix_web::rt::System::new().block_on(server::consume(settings))
        }
        Command::Migrate => {
            let database = match database_only(source) {
                Ok(database) => database,
                Err(errors) => return config_errors(errors),
            };
            actix_web::rt::System::new().block_on(async {
                let applied = db::migrate::run(&database).await?;
                if applied.is_empty() {
                    println!("schema is up to date");
                }
                for version in applied {
                    println!("applied {version}");
                }
                Ok(())
            })
        }
        Command::RegistrationToken { action } => {
            let database = match database_only(source) {
                Ok(database) => database,
                Err(errors) => return config_errors(errors),
            };
            actix_web::rt::System::new().block_on(registration_tokens(&database, action))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mission-control: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every setting, and logging started: what `serve` and `consumer` run with.
fn running(source: std::collections::HashMap<String, String>) -> Result<Settings, ExitCode> {
    let settings = Settings::load(source).map_err(config_errors)?;
    telemetry::init(&settings.log).map_err(|e| {
        config_errors(vec![config::SettingError {
            name: "LOG_LEVEL",
            problem: e,
        }])
    })?;
    Ok(settings)
}

/// The one setting that the other commands need.
fn database_only(
    source: std::collections::HashMap<String, String>,
) -> Result<config::DatabaseSettings, Vec<config::SettingError>> {
    let mut vars = Vars::new(source);
    let database = config::load_database(&mut vars);
    database
        .filter(|_| vars.errors.is_empty())
        .ok_or(vars.errors)
}

async fn registration_tokens(
    database: &config::DatabaseSettings,
    action: TokenAction,
) -> Result<(), String> {
    use mission_control::domain::gateways::registry;
    use mission_control::domain::orgs::organizations;
    use mission_control::domain::DomainError;

    let (client, connection) = database
        .url
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to DATABASE_URL: {e}"))?;
    let driver = tokio::spawn(connection);
    let client = mission_control::db::Client::new(client);
    let failed = |e: DomainError| format!("{e:?}");
    let printed = match action {
        TokenAction::Issue { org, label } => {
            let org = organizations::named(&client, &org).await?;
            let label = label.as_deref().map(str::trim).filter(|l| !l.is_empty());
            let (token, secret) = registry::issue_token(&client, org, label, None)
                .await
                .map_err(failed)?;
            serde_json::json!({ "token": token, "registration_token": secret })
        }
        TokenAction::List { org } => {
            let org = organizations::named(&client, &org).await?;
            serde_json::json!(registry::list_tokens(&client, org).await.map_err(failed)?)
        }
        TokenAction::Revoke { org, id } => {
            let org = organizations::named(&client, &org).await?;
            match registry::revoke_token(&client, org, id).await {
                Ok(token) => serde_json::json!(token),
                Err(DomainError::NotFound(_)) => {
                    return Err(format!("no registration token {id} in that organization"))
                }
                Err(e) => return Err(failed(e)),
            }
        }
    };
    drop(client);
    let _ = driver.await;
    println!(
        "{}",
        serde_json::to_string_pretty(&printed).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn config_errors(errors: Vec<config::SettingError>) -> ExitCode {
    for error in errors {
        eprintln!("configuration error: {error}");
    }
    eprintln!("run `mission-control --help` for every setting and its default");
    ExitCode::from(CONFIG_ERROR)
}
