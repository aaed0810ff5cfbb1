//! Keeping one downstream connected: connecting (a stdio child process, or streamable HTTP
//! with the gateway's own credential) in the MCP revision it speaks (a 2025-11-25 session, or
//! 2026-07-28 `server/discover`), serving until the connection ends, and reconnecting
//! with exponential backoff and jitter (so that servers restarted together are not
//! reconnected to in step) until shutdown; each new connection is listed into the catalogue.

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::ProtocolVersion;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::IntoTransport;
use rmcp::{ClientCacheConfig, ClientLifecycleMode, ClientServiceExt};
use tokio_util::sync::CancellationToken;

use super::events::DownstreamEvents;
use super::{DownstreamServer, Health, INITIAL_BACKOFF, MAX_BACKOFF, STABLE_AFTER};
use crate::config::{DownstreamProtocol, DownstreamTransport};

/// Why a connection attempt failed: before any MCP message (the command did not start, the
/// credential is missing), or in the handshake (the server answered, or the transport failed
/// while starting it).
enum ConnectError {
    Start(String),
    Handshake(String),
}

impl ConnectError {
    fn into_reason(self) -> String {
        match self {
            ConnectError::Start(reason) | ConnectError::Handshake(reason) => reason,
        }
    }
}

/// The `server/discover` handshake of the 2026-07-28 revision.
fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

/// Runs one handshake over a fresh transport.
async fn handshake<T, E, A>(
    events: DownstreamEvents,
    transport: T,
    lifecycle: ClientLifecycleMode,
) -> Result<RunningService<RoleClient, DownstreamEvents>, ConnectError>
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let revision = if matches!(lifecycle, ClientLifecycleMode::Initialize) {
        "initialize"
    } else {
        "server/discover"
    };
    events
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .map_err(|e| ConnectError::Handshake(format!("MCP {revision} failed: {e}")))
}

impl DownstreamServer {
    /// Connects with the configured revision: `auto` opens a session and, when the server
    /// refuses `initialize`, tries `server/discover` on a new connection (a new process).
    async fn connect(
        self: &Arc<Self>,
    ) -> Result<RunningService<RoleClient, DownstreamEvents>, String> {
        let attempt = |lifecycle| self.connect_with(lifecycle);
        match self.config.protocol {
            DownstreamProtocol::Sessions => attempt(ClientLifecycleMode::Initialize)
                .await
                .map_err(ConnectError::into_reason),
            DownstreamProtocol::Discover => {
                attempt(discover()).await.map_err(ConnectError::into_reason)
            }
            DownstreamProtocol::Auto => match attempt(ClientLifecycleMode::Initialize).await {
                Ok(running) => Ok(running),
                Err(ConnectError::Start(reason)) => Err(reason),
                Err(ConnectError::Handshake(refused)) => {
                    tracing::info!(server = %self.id, %refused, "downstream refused a session; trying server/discover (2026-07-28)");
                    attempt(discover())
                        .await
                        .map_err(|e| format!("{refused}; then {}", e.into_reason()))
                }
            },
        }
    }

    async fn connect_with(
        self: &Arc<Self>,
        lifecycle: ClientLifecycleMode,
    ) -> Result<RunningService<RoleClient, DownstreamEvents>, ConnectError> {
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
                    .map_err(|e| {
                        ConnectError::Start(format!("cannot start `{}`: {e}", command.display()))
                    })?;
                handshake(events, transport, lifecycle).await
            }
            DownstreamTransport::Http {
                url,
                credential_env,
            } => {
                use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
                if let Some(var) = credential_env {
                    let credential = std::env::var(var).map_err(|_| {
                        ConnectError::Start(format!(
                            "environment variable {var} (the gateway's credential) is not set"
                        ))
                    })?;
                    config = config.auth_header(credential);
                }
                let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
                handshake(events, transport, lifecycle).await
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
                    let revision = peer
                        .peer_info()
                        .map(|info| info.protocol_version.to_string())
                        .unwrap_or_default();
                    self.peer.store(Some(Arc::new(peer)));
                    self.health.store(Arc::new(Health::Up));
                    self.generation.send_modify(|g| *g += 1);
                    tracing::info!(server = %self.id, %revision, "downstream connected");
                    // A 2026-07-28 server announces list changes to listeners only.
                    let listening =
                        (revision == ProtocolVersion::V_2026_07_28.to_string()).then(|| {
                            tokio::spawn(super::events::listen_for_changes(
                                Arc::downgrade(&self),
                                running.peer().clone(),
                            ))
                        });
                    let reason = tokio::select! {
                        quit = running.waiting() => format!("connection ended ({quit:?})"),
                        _ = shutdown.cancelled() => return,
                    };
                    if let Some(listening) = listening {
                        listening.abort();
                    }
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
