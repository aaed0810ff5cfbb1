//! The HTTP front: `/mcp` behind authentication, the RFC 9728 metadata, `/healthz`, and the
//! listener that serves them (and the admin API on its own listener).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::enforce::Gateway;
use crate::identity::{self, ActorRef, AuthError, Authenticator};
use crate::startup::{start_gateway, StartError};

use super::admin;
use super::front::McpFront;

/// Authenticates every request to `/mcp`; anything wrong is a 401 pointing at the metadata.
async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let header_value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.authenticate_header(header_value) {
        Ok(actor) => {
            request.extensions_mut().insert::<ActorRef>(Arc::new(actor));
            next.run(request).await
        }
        Err(error) => unauthorized(&auth, &error),
    }
}

fn unauthorized(auth: &Authenticator, error: &AuthError) -> Response {
    tracing::info!(target: "capgate::auth", %error, "request refused: 401");
    let challenge = HeaderValue::from_str(&auth.challenge(error))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    let body = Json(serde_json::json!({
        "error": error.oauth_error_code().unwrap_or("unauthorized"),
        "error_description": error.to_string(),
    }));
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        body,
    )
        .into_response()
}

/// The HTTP application: `/mcp`, the RFC 9728 metadata, and `/healthz`.
pub fn http_router(
    config: &GatewayConfig,
    gateway: Arc<Gateway>,
    auth: Arc<Authenticator>,
    shutdown: CancellationToken,
) -> Router {
    let front = McpFront {
        gateway: gateway.clone(),
        stdio_actor: None,
    };
    let mcp = StreamableHttpService::new(
        move || Ok(front.clone()),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(true)
            .with_allowed_hosts(config.server.allowed_hosts.clone())
            .with_cancellation_token(shutdown.child_token()),
    );
    let metadata = identity::protected_resource_metadata(config);
    let metadata_path = well_known_path(&config.resource_metadata_url());
    let protected = Router::new()
        .nest_service("/mcp", mcp)
        .layer(axum::middleware::from_fn_with_state(auth, authenticate));
    let metadata_doc = metadata.clone();
    let public_url = config.server.public_url.clone();
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
            "/metrics",
            get({
                let gateway = gateway.clone();
                move || {
                    let gateway = gateway.clone();
                    async move {
                        (
                            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                            gateway.render_metrics().await,
                        )
                    }
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let gateway = gateway.clone();
                let public_url = public_url.clone();
                async move { Json(health_document(&gateway, &public_url)) }
            }),
        )
        .merge(protected)
}

fn well_known_path(metadata_url: &str) -> String {
    metadata_url
        .find("/.well-known/")
        .map(|i| metadata_url[i..].to_string())
        .unwrap_or_else(|| "/.well-known/oauth-protected-resource/mcp".into())
}

fn health_document(gateway: &Gateway, public_url: &str) -> serde_json::Value {
    let servers: serde_json::Map<String, serde_json::Value> = gateway
        .downstreams()
        .iter()
        .map(|s| {
            let health = match s.health() {
                crate::downstream::Health::Starting => "starting".to_string(),
                crate::downstream::Health::Up => "up".to_string(),
                crate::downstream::Health::Down(reason) => format!("down: {reason}"),
            };
            (s.id.clone(), serde_json::Value::String(health))
        })
        .collect();
    serde_json::json!({
        "status": "ok",
        "public_url": public_url,
        "policy_version": gateway.policy().latest().label(),
        "downstreams": servers,
        "decision_log": {
            "path": gateway.decision_log().path().display().to_string(),
            "failed_records": gateway.decision_log().failed_records(),
        },
    })
}

/// Serves MCP over streamable HTTP until `shutdown` is cancelled.
pub async fn serve_http(
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let auth = Arc::new(Authenticator::from_config(&config)?);
    let gateway = start_gateway(&config, shutdown.clone()).await?;
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
    if let Some(admin) = &config.admin {
        let admin_listener = tokio::net::TcpListener::bind(admin.listen)
            .await
            .map_err(|e| StartError::Listen {
                address: admin.listen.to_string(),
                error: e.to_string(),
            })?;
        let router = admin::admin_router(gateway.clone(), auth.clone(), admin.role.clone());
        let admin_shutdown = shutdown.clone();
        tracing::info!(listen = %admin.listen, "admin API listening");
        tokio::spawn(async move {
            let served = axum::serve(admin_listener, router)
                .with_graceful_shutdown(async move { admin_shutdown.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "admin listener failed");
            }
        });
    }
    spawn_reload_on_sighup(gateway.clone(), shutdown.clone());
    let app = http_router(&config, gateway, auth, shutdown.clone());
    tracing::info!(
        listen = %config.server.listen,
        public_url = %config.server.public_url,
        "capgate listening"
    );
    eprintln!("capgate listening on http://{}/mcp", config.server.listen);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| StartError::Serve(e.to_string()))
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
