//! The change feed: one dedicated connection (never a pooled one) that LISTENs on
//! `capgate_changes` and turns each notification into a [`Change`] for this replica's views.
//!
//! tokio-postgres delivers notifications only to a connection driven by `poll_message`
//! (awaiting the `Connection` future drops them), so the connection is driven here by hand.
//! When the connection ends or stops answering the heartbeat, the feed reconnects (backing off
//! up to 2 s), LISTENs again and then sends [`Change::Resync`]: changes announced while it was
//! away are lost, so every view is reloaded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::store::Change;

/// The notification channel the migration's triggers notify.
pub const CHANNEL: &str = "capgate_changes";

/// How often the feed checks that its connection still answers.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Runs the feed until `stop` is cancelled. `listening` is true while LISTEN is in force.
pub async fn run(
    config: tokio_postgres::Config,
    changes: broadcast::Sender<Change>,
    listening: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let ended = tokio::select! {
            _ = stop.cancelled() => return,
            ended = listen_once(&config, &changes, &listening, &mut backoff) => ended,
        };
        listening.store(false, Ordering::SeqCst);
        tracing::warn!(error = %ended, retry_in_ms = backoff.as_millis() as u64, "the store's change feed is down; reconnecting");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One connection's life: connect, LISTEN, resync, forward notifications until it fails.
async fn listen_once(
    config: &tokio_postgres::Config,
    changes: &broadcast::Sender<Change>,
    listening: &AtomicBool,
    backoff: &mut Duration,
) -> String {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(error) => return super::failed(error).0,
    };
    let (messages, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            let forward = match message {
                Ok(AsyncMessage::Notification(note)) => Ok(note.payload().to_string()),
                Ok(_) => continue,
                Err(error) => Err(super::failed(error).0),
            };
            let failed = forward.is_err();
            if messages.send(forward).is_err() || failed {
                return;
            }
        }
    });
    // Stops driving the connection however this function returns.
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _driver = Abort(driver);

    if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        return super::failed(error).0;
    }
    listening.store(true, Ordering::SeqCst);
    *backoff = Duration::from_millis(100);
    tracing::info!("the store's change feed is listening");
    // Whatever changed before LISTEN took effect was not announced to this replica.
    let _ = changes.send(Change::Resync);

    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            message = incoming.recv() => match message {
                Some(Ok(payload)) => {
                    let _ = changes.send(Change::parse(&payload));
                }
                Some(Err(error)) => return error,
                None => return "the connection closed".into(),
            },
            _ = heartbeat.tick() => {
                match tokio::time::timeout(HEARTBEAT, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return super::failed(error).0,
                    Err(_) => return "the connection stopped answering".into(),
                }
            }
        }
    }
}
