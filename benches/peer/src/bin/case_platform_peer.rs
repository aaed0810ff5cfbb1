//! `case-platform-peer`: the example case platform (`examples/case_platform/`) as the peer
//! benchmark needs it beyond its own stdio server.
//!
//! - Default: served over streamable HTTP, the direct baseline of the HTTP paths. One shared
//!   `CasePlatform` is mounted at `/mcp` with rmcp's streamable HTTP service, in session mode
//!   with SSE answers, as capgate's own front answers; every session shares the one platform
//!   state, as every call through one gateway does. It binds `127.0.0.1:0` (or `--listen
//!   ADDR`) and prints `listening on http://ADDR/mcp` once it accepts connections.
//! - `--stdio --actor JSON`: over stdio, with `JSON` as the actor of every request that carries
//!   none in `_meta["dev.capgate/actor"]`. This is the downstream of a gateway that does not
//!   pass `_meta` on (mcp-proxy): the example server reads its tenant from there, as it trusts
//!   capgate to inject it.
//!
//! The example stays a stdio server of its own: this binary compiles the very same modules (by
//! path, unchanged).

#[path = "../../../../examples/case_platform/hook_calls.rs"]
mod hook_calls;
#[path = "../../../../examples/case_platform/hooks.rs"]
mod hooks;
#[path = "../../../../examples/case_platform/journal.rs"]
mod journal;
#[path = "../../../../examples/case_platform/prompts.rs"]
mod prompts;
#[path = "../../../../examples/case_platform/seed.rs"]
mod seed;
#[path = "../../../../examples/case_platform/server.rs"]
mod server;
#[path = "../../../../examples/case_platform/state/mod.rs"]
mod state;
#[path = "../../../../examples/case_platform/tools.rs"]
mod tools;

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

use crate::server::CasePlatform;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_env("CASE_PLATFORM_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let args: Vec<String> = std::env::args().collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let platform = CasePlatform::from_env()?;
    if args.iter().any(|a| a == "--stdio") {
        let actor = value_of("--actor").context("--stdio needs --actor JSON")?;
        let actor: Value = serde_json::from_str(&actor).context("--actor is not JSON")?;
        if server::actor_from_meta(Some(&actor)).is_none() {
            bail!("--actor names no tenant: {actor}");
        }
        let running = WithActor { platform, actor }
            .serve(rmcp::transport::stdio())
            .await?;
        running.waiting().await?;
        return Ok(());
    }
    let listen = value_of("--listen").unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let service = StreamableHttpService::new(
        move || Ok(platform.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let address = listener.local_addr()?;
    // A baseline without Nagle's algorithm: an answer written in two parts must not wait for
    // the client's delayed ACK (~40 ms), or the baseline would measure that instead.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
    });
    let app = axum::Router::new().route_service("/mcp", service);
    println!("listening on http://{address}/mcp");
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The platform, with a fixed actor for requests that carry none: what a gateway that
/// forwards no `_meta` needs in front of it. Discovery and calls are passed on; the rest of
/// the example's surface is not needed by the benchmark.
#[derive(Clone)]
struct WithActor {
    platform: CasePlatform,
    actor: Value,
}

impl ServerHandler for WithActor {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(self.platform.get_info().server_info)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.platform.list_tools(request, ctx).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if ctx.meta.get(server::ACTOR_META_KEY).is_none() {
            ctx.meta
                .0
                 .0
                .insert(server::ACTOR_META_KEY.into(), self.actor.clone());
        }
        self.platform.call_tool(request, ctx).await
    }
}
