//! `case-platform-http`: the example case platform (`examples/case_platform/`) served over
//! streamable HTTP, the direct baseline of the peer benchmark's HTTP paths.
//!
//! The example is a stdio server and stays one: this binary compiles the very same modules
//! (by path, unchanged) and mounts one shared `CasePlatform` at `/mcp` with rmcp's streamable
//! HTTP service, in session mode with SSE answers, as capgate's own front answers. Every
//! session shares the one platform state, as every call through one gateway does.
//!
//! It binds `127.0.0.1:0` (or `--listen`) and prints `listening on http://ADDR/mcp` on stdout
//! once it accepts connections.

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

use axum::serve::ListenerExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
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
    let listen = match std::env::args().skip_while(|a| a != "--listen").nth(1) {
        Some(address) => address,
        None => "127.0.0.1:0".to_owned(),
    };
    let platform = CasePlatform::from_env()?;
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
