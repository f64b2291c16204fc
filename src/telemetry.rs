//! Logs through `tracing`: human-readable text, or one JSON object per line.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// The filter of a LOG_LEVEL value; an error names what is wrong with it.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level)
        .map_err(|e| format!("expected a level like info or a directive list, got {level:?}: {e}"))
}

pub fn init(settings: &LogSettings) -> Result<(), String> {
    let filter = filter(&settings.level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| e.to_string())
}

tokio::task_local! {
    /// The `X-Request-Id` of the request being handled (set by `http::context`).
    pub static REQUEST_ID: String;
}

/// The id of the request being handled, for error bodies.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
