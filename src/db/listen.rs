//! LISTEN on a connection of its own: PostgreSQL notifications (sent at commit) for as
//! long as the connection lasts.

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

/// Connects, listens on `channel`, calls `ready` once the LISTEN is in force (what changed
/// before it was not heard: callers catch up there), then `heard` with each payload. Returns
/// why it stopped (it never returns otherwise); callers listen again after a pause.
pub async fn listen(
    database: &tokio_postgres::Config,
    channel: &str,
    ready: impl FnOnce(),
    mut heard: impl FnMut(&str),
) -> String {
    let (client, mut connection) = match database.connect(NoTls).await {
        Ok(pair) => pair,
        Err(e) => return e.to_string(),
    };
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {channel}");
    // The LISTEN completes only while the connection is polled.
    let mut listening = std::pin::pin!(client.batch_execute(&statement));
    loop {
        tokio::select! {
            done = &mut listening => match done {
                Ok(()) => break,
                Err(e) => return e.to_string(),
            },
            message = messages.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "connection closed".into(),
            }
        }
    }
    ready();
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notification(n)) => heard(n.payload()),
            Ok(_) => continue,
            Err(e) => return e.to_string(),
        }
    }
    // The client lives until here: dropping it would close the connection.
    let _ = &client;
    "connection closed".into()
}
