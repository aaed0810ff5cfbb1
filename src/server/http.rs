//! The HTTP front: `/mcp` behind authentication, the RFC 9728 metadata, `/healthz`, and the
//! listener that serves them (and the admin API on its own listener).

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::enforce::Gateway;
use crate::identity::{self, Authenticator};
use crate::metrics::Metrics;
use crate::startup::{start_gateway_with, StartError};

use super::console::{self, Sessions};
use super::front::McpFront;
use super::limits::{self, RequestLimits};
use super::listener::{self, ConnectionLimits};
use super::sessions::{self, BoundSessions};
use super::{admin, edges, health};

/// The agents' HTTP application: `/mcp` (authenticated, rate- and concurrency-limited,
/// sessions bound to their principal), the RFC 9728 metadata, and `/healthz` (up or down only;
/// details and metrics are on the admin listener).
pub fn http_router(
    config: &GatewayConfig,
    gateway: Arc<Gateway>,
    auth: Arc<Authenticator>,
    shutdown: CancellationToken,
) -> Router {
    let front = McpFront::new(gateway.clone(), None, config.limits.list_page_size);
    let sessions = BoundSessions::new(&config.limits, gateway.metrics().clone());
    let mcp = StreamableHttpService::new(
        move || Ok(front.for_session()),
        sessions.clone(),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(true)
            .with_allowed_hosts(config.server.allowed_hosts.clone())
            .with_allowed_origins(config.server.allowed_origins.clone())
            .enforce_origin_validation()
            .with_max_request_body_bytes(edges::MAX_BODY_BYTES)
            .with_cancellation_token(shutdown.child_token()),
    );
    let metadata = identity::protected_resource_metadata(config);
    let metadata_path = well_known_path(&config.resource_metadata_url());
    let protected = front_door(
        Router::new().nest_service("/mcp", mcp),
        config,
        auth,
        sessions,
    );
    let metadata_doc = metadata.clone();
    Router::new()
        .route(
            &metadata_path,
            get(move || {
                let doc = metadata_doc.clone();
                async move { Json(doc) }
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(move || {
                let doc = metadata.clone();
                async move { Json(doc) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let gateway = gateway.clone();
                async move { health::up_or_down(&gateway) }
            }),
        )
        .merge(protected)
}

/// The layers every request to `/mcp` passes before rmcp sees it, outermost first:
/// authenticate → per-principal limits → parse errors → sessions bound to their principal.
pub(crate) fn front_door(
    inner: Router,
    config: &GatewayConfig,
    auth: Arc<Authenticator>,
    sessions: Arc<BoundSessions>,
) -> Router {
    inner
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            sessions::bind_sessions,
        ))
        .layer(axum::middleware::from_fn(edges::parse_errors))
        .layer(axum::middleware::from_fn_with_state(
            RequestLimits::new(&config.limits),
            limits::limit_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            super::bearer::authenticate,
        ))
}

fn well_known_path(metadata_url: &str) -> String {
    metadata_url
        .find("/.well-known/")
        .map(|i| metadata_url[i..].to_string())
        .unwrap_or_else(|| "/.well-known/oauth-protected-resource/mcp".into())
}

/// Serves MCP over streamable HTTP until `shutdown` is cancelled.
pub async fn serve_http(
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    // One registry for the gateway and the authenticator (its fetches of keys by URL).
    let metrics = Arc::new(Metrics::default());
    let auth = Arc::new(Authenticator::counted(&config, &metrics)?);
    let gateway = start_gateway_with(&config, metrics, shutdown.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| StartError::Listen {
            address: config.server.listen.to_string(),
            error: e.to_string(),
        })?;
    let ready = gateway
        .downstreams()
        .wait_until_up(Duration::from_secs(10))
        .await;
    for (server, health) in ready {
        if health != crate::downstream::Health::Up {
            tracing::warn!(%server, ?health, "downstream not up at start; its tools fail until it is");
        }
    }
    let connection_limits = ConnectionLimits {
        max_connections: config.limits.max_connections,
        header_read_timeout: config.limits.header_read_timeout(),
    };
    if let Some(admin) = &config.admin {
        let admin_listener = tokio::net::TcpListener::bind(admin.listen)
            .await
            .map_err(|e| StartError::Listen {
                address: admin.listen.to_string(),
                error: e.to_string(),
            })?;
        let sessions = config
            .console
            .enabled
            .then(|| Arc::new(Sessions::new(config.console.clone(), auth.clone())));
        let mut router = admin::admin_router(
            gateway.clone(),
            auth.clone(),
            admin::AdminOptions {
                roles: crate::policy::AdminRoles {
                    tenant_admin: admin.role.clone(),
                    platform_admin: admin.platform_role.clone(),
                },
                public_url: config.server.public_url.clone(),
                log_key: checkpoint_public_key(&config),
                sessions: sessions.clone(),
            },
        );
        if let Some(sessions) = sessions {
            router = router.merge(console::console_router(sessions));
            tracing::info!(url = %format!("http://{}/console", admin.listen), "console served");
        }
        let admin_address = admin_listener.local_addr().unwrap_or(admin.listen);
        tracing::info!(listen = %admin_address, "admin API listening");
        tokio::spawn(listener::serve(
            admin_listener,
            router,
            connection_limits,
            shutdown.clone(),
        ));
    }
    spawn_reload_on_sighup(gateway.clone(), shutdown.clone());
    let app = http_router(&config, gateway.clone(), auth, shutdown.clone());
    // The bound address (the port the system picked when the configured one is 0); this line
    // is the readiness signal: it is printed once every listener is bound.
    let address = listener.local_addr().unwrap_or(config.server.listen);
    tracing::info!(
        listen = %address,
        public_url = %config.server.public_url,
        "capgate listening"
    );
    eprintln!("capgate listening on http://{address}/mcp");
    listener::serve(listener, app, connection_limits, shutdown).await;
    super::flush_log_on_exit(&gateway).await;
    Ok(())
}

/// The public half of the decision log's checkpoint key (read once the gateway has started,
/// which made it when it is the default one); `None`, with a warning, when it cannot be read.
fn checkpoint_public_key(config: &GatewayConfig) -> Option<ed25519_dalek::VerifyingKey> {
    let (path, _) = config.audit.signing_key_path(&config.data_dir);
    match crate::audit::load_signing_key(&path, false) {
        Ok(key) => Some(key.verifying_key()),
        Err(error) => {
            tracing::warn!(%error, "the decision log's status cannot be verified by the admin API");
            None
        }
    }
}

/// Reloads the policy set on SIGHUP (validate, then swap; an invalid set is refused and logged).
fn spawn_reload_on_sighup(gateway: Arc<Gateway>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload through the admin API");
            return;
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hangups.recv() => match gateway.reload_policy().await {
                        Ok(version) => tracing::info!(%version, "policy reloaded on SIGHUP"),
                        Err(error) => tracing::error!(%error, "policy reload on SIGHUP refused; the running version stays"),
                    },
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (gateway, shutdown);
}
