//! The `mission-control` binary: `serve` and `migrate`.

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
    /// Apply pending migrations from schema/ and exit.
    Migrate,
}

/// Exit status for configuration errors, distinct from runtime failures (1).
const CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    mission_control::secrets::password::return_hash_memory_to_the_system();
    let cli = Cli::parse();
    let source = config::environment_source();
    let result = match cli.command {
        Command::Serve { bind } => {
            let mut settings = match Settings::load(source) {
                Ok(s) => s,
                Err(errors) => return config_errors(errors),
            };
            if let Some(bind) = bind {
                settings.bind = bind;
            }
            if let Err(e) = telemetry::init(&settings.log) {
                return config_errors(vec![config::SettingError {
                    name: "LOG_LEVEL",
                    problem: e,
                }]);
            }
            actix_web::rt::System::new().block_on(server::serve(settings))
        }
        Command::Migrate => {
            let mut vars = Vars::new(source);
            let database = config::load_database(&mut vars);
            let Some(database) = database.filter(|_| vars.errors.is_empty()) else {
                return config_errors(vars.errors);
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mission-control: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_errors(errors: Vec<config::SettingError>) -> ExitCode {
    for error in errors {
        eprintln!("configuration error: {error}");
    }
    eprintln!("run `mission-control --help` for every setting and its default");
    ExitCode::from(CONFIG_ERROR)
}
