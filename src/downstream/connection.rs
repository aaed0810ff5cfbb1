//! Keeping one downstream connected: connecting (a stdio child process, or streamable HTTP
//! with the gateway's own credential), serving until the connection ends, and reconnecting
//! with exponential backoff and jitter (so that servers restarted together are not
//! reconnected to in step) until shutdown; each new connection is listed into the catalogue.

use std::sync::Arc;
use std::time::Instant;

use rmcp::service::{RoleClient, RunningService};
use rmcp::{ClientCacheConfig, ServiceExt};
use tokio_util::sync::CancellationToken;

use super::events::DownstreamEvents;
use super::{DownstreamServer, Health, INITIAL_BACKOFF, MAX_BACKOFF, STABLE_AFTER};
use crate::config::DownstreamTransport;

impl DownstreamServer {
    async fn connect(
        self: &Arc<Self>,
    ) -> Result<RunningService<RoleClient, DownstreamEvents>, String> {
        let events = DownstreamEvents {
            server: Arc::downgrade(self),
        };
        match &self.config.transport {
            DownstreamTransport::Stdio { command, args, env } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env).kill_on_drop(true);
                let (transport, _stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot start `{}`: {e}", command.display()))?;
                events
                    .serve(transport)
                    .await
                    .map_err(|e| format!("MCP initialization failed: {e}"))
            }
            DownstreamTransport::Http {
                url,
                credential_env,
            } => {
                use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
                if let Some(var) = credential_env {
                    let credential = std::env::var(var).map_err(|_| {
                        format!("environment variable {var} (the gateway's credential) is not set")
                    })?;
                    config = config.auth_header(credential);
                }
                let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
                events
                    .serve(transport)
                    .await
                    .map_err(|e| format!("MCP initialization failed: {e}"))
            }
        }
    }

    /// Connects, serves until the connection ends, and reconnects with backoff, until shutdown.
    pub(super) async fn supervise(self: Arc<Self>, shutdown: CancellationToken) {
        let mut delays = reconnect_delays();
        loop {
            let started = Instant::now();
            match self.connect().await {
                Ok(running) => {
                    let peer = running.peer().clone();
                    // Downstream results may differ per tenant: never serve one actor's cached
                    // result to another.
                    peer.set_response_cache_config(ClientCacheConfig::disabled())
                        .await;
                    self.refresh(&peer).await;
                    self.reapply_log_level(&peer).await;
                    self.peer.store(Some(Arc::new(peer)));
                    self.health.store(Arc::new(Health::Up));
                    self.generation.send_modify(|g| *g += 1);
                    tracing::info!(server = %self.id, "downstream connected");
                    let reason = tokio::select! {
                        quit = running.waiting() => format!("connection ended ({quit:?})"),
                        _ = shutdown.cancelled() => return,
                    };
                    self.peer.store(None);
                    tracing::warn!(server = %self.id, %reason, "downstream went down; restarting");
                    self.health.store(Arc::new(Health::Down(reason)));
                    self.generation.send_modify(|g| *g += 1);
                }
                Err(reason) => {
                    tracing::warn!(server = %self.id, %reason, "downstream connection failed");
                    self.health.store(Arc::new(Health::Down(reason)));
                }
            }
            if started.elapsed() > STABLE_AFTER {
                delays = reconnect_delays();
            }
            tokio::select! {
                _ = tokio::time::sleep(delays.next().unwrap_or(MAX_BACKOFF)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Delays between reconnection attempts: doubling from [`INITIAL_BACKOFF`] up to
/// [`MAX_BACKOFF`], each with random jitter, without end.
fn reconnect_delays() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::new()
        .with_min_delay(INITIAL_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_stay_bounded_and_never_end() {
        let delays: Vec<_> = reconnect_delays().take(50).collect();
        assert_eq!(delays.len(), 50, "the delays never run out");
        assert!(delays
            .iter()
            .all(|d| *d >= INITIAL_BACKOFF && *d <= MAX_BACKOFF * 2));
        assert!(delays[10] > delays[0]);
    }
}
