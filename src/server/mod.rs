//! The MCP front: an rmcp `ServerHandler` that hands every request to the PEP (`enforce`), served
//! over streamable HTTP at `/mcp` (session-based 2025-11-25 clients and stateless 2026-07-28
//! requests alike) and over stdio.
//!
//! Identity is per HTTP request: an axum middleware authenticates the bearer token of every
//! request and puts the [`CompositeActor`] into the request's extensions, where the handler finds
//! it. A session never carries identity. In stdio mode the token comes from the environment once,
//! at start, because the process itself is the session.

pub mod admin;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, ErrorData, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt};
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::enforce::{CallMeta, Gateway};
use crate::identity::{self, ActorRef, AuthError, Authenticator, CompositeActor};
use crate::startup::{start_gateway, StartError};

/// The rmcp handler: finds the request's actor, then delegates to the PEP.
#[derive(Clone)]
pub struct McpFront {
    gateway: Arc<Gateway>,
    /// Set in stdio mode only, where the process has one identity.
    stdio_actor: Option<ActorRef>,
}

/// The capability requests that get a span of their own.
enum RequestKind {
    ToolCall,
    ResourceRead,
    PromptGet,
}

/// One span per request, carrying its decision (recorded by `enforce` when the request ends).
fn request_span(kind: RequestKind, capability: &str, actor: &CompositeActor) -> tracing::Span {
    let agent = actor.agent.as_ref().map(|a| a.id.as_str()).unwrap_or("-");
    let capability = crate::enforce::echo(capability);
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                $name,
                tool = %capability,
                tenant = %actor.tenant,
                user = %actor.user.id,
                agent,
                outcome = tracing::field::Empty,
                policy_id = tracing::field::Empty,
                policy_version = tracing::field::Empty,
                mode = tracing::field::Empty,
                refused_by = tracing::field::Empty,
            )
        };
    }
    match kind {
        RequestKind::ToolCall => span!("capgate.tools_call"),
        RequestKind::ResourceRead => span!("capgate.resources_read"),
        RequestKind::PromptGet => span!("capgate.prompts_get"),
    }
}

/// The references capgate reads from a request's `_meta`.
fn call_meta(ctx: &RequestContext<RoleServer>) -> CallMeta {
    let meta_string = |key: &str| {
        ctx.meta
            .0
             .0
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    CallMeta {
        idempotency_key: meta_string(crate::enforce::IDEMPOTENCY_META_KEY),
        approval: meta_string(crate::enforce::APPROVAL_META_KEY),
    }
}

impl McpFront {
    fn actor(&self, ctx: &RequestContext<RoleServer>) -> Result<ActorRef, ErrorData> {
        if let Some(actor) = &self.stdio_actor {
            return Ok(actor.clone());
        }
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ActorRef>())
            .cloned()
            // Unreachable behind the auth middleware; refusing is the safe answer regardless.
            .ok_or_else(|| ErrorData::invalid_request("unauthenticated request", None))
    }
}

impl McpFront {
    /// Tells one session's client, for as long as it is connected, whenever what it may see
    /// changes: a kill switch, a break-glass grant, or a downstream's catalogue.
    fn notify_list_changes(&self, peer: rmcp::Peer<RoleServer>) {
        let mut controls = self.gateway.controls().visibility_changes();
        let mut catalogues: Vec<_> = self
            .gateway
            .downstreams()
            .iter()
            .map(|s| s.subscribe())
            .collect();
        tokio::spawn(async move {
            loop {
                let changed = if catalogues.is_empty() {
                    controls.changed().await.is_ok()
                } else {
                    let catalogue_change = futures::future::select_all(
                        catalogues.iter_mut().map(|c| Box::pin(c.changed())),
                    );
                    tokio::select! {
                        r = controls.changed() => r.is_ok(),
                        (r, _, _) = catalogue_change => r.is_ok(),
                    }
                };
                if !changed || peer.notify_tool_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }
}

impl ServerHandler for McpFront {
    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        self.notify_list_changes(context.peer);
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("capgate", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        Ok(
            ListToolsResult::with_all_items(self.gateway.list_tools(&actor))
                .with_cache_scope(CacheScope::Private),
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let actor = self.actor(&ctx)?;
        let call_meta = call_meta(&ctx);
        let span = request_span(RequestKind::ToolCall, &request.name, &actor);
        tracing::Instrument::instrument(
            self.gateway
                .call_tool(&actor, &request.name, request.arguments, &call_meta),
            span,
        )
        .await
        .map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        Ok(
            ListResourcesResult::with_all_items(self.gateway.list_resources(&actor).await)
                .with_cache_scope(CacheScope::Private),
        )
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        Ok(ListResourceTemplatesResult::with_all_items(
            self.gateway.list_resource_templates(&actor),
        )
        .with_cache_scope(CacheScope::Private))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let actor = self.actor(&ctx)?;
        let span = request_span(RequestKind::ResourceRead, &request.uri, &actor);
        tracing::Instrument::instrument(
            self.gateway
                .read_resource(&actor, &request.uri, &call_meta(&ctx)),
            span,
        )
        .await
        .map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        Ok(
            ListPromptsResult::with_all_items(self.gateway.list_prompts(&actor))
                .with_cache_scope(CacheScope::Private),
        )
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let actor = self.actor(&ctx)?;
        let span = request_span(RequestKind::PromptGet, &request.name, &actor);
        tracing::Instrument::instrument(
            self.gateway
                .get_prompt(&actor, &request.name, request.arguments, &call_meta(&ctx)),
            span,
        )
        .await
        .map(Into::into)
    }
}

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

/// Serves MCP over stdio for one identity, read from `token_env` at start.
pub async fn serve_stdio(
    config: GatewayConfig,
    token_env: &str,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let auth = Authenticator::from_config(&config)?;
    let token = std::env::var(token_env).map_err(|_| {
        StartError::StdioIdentity(format!(
            "environment variable {token_env} holds no token; export a JWT for this agent in it"
        ))
    })?;
    let actor: CompositeActor = auth.authenticate(&token).map_err(|e| {
        StartError::StdioIdentity(format!("the token in {token_env} is refused: {e}"))
    })?;
    let gateway = start_gateway(&config, shutdown.clone()).await?;
    gateway
        .downstreams()
        .wait_until_up(Duration::from_secs(10))
        .await;
    let front = McpFront {
        gateway,
        stdio_actor: Some(Arc::new(actor)),
    };
    let running = front
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StartError::Serve(e.to_string()))?;
    tokio::select! {
        quit = running.waiting() => { tracing::info!(?quit, "stdio client closed"); }
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancel();
    Ok(())
}
