//! The MCP front: an rmcp `ServerHandler` that hands every request to the PEP (`enforce`), served
//! over streamable HTTP at `/mcp` (session-based 2025-11-25 clients and stateless 2026-07-28
//! requests alike) and over stdio.
//!
//! Identity is per HTTP request: an axum middleware authenticates the bearer token of every
//! request and puts the [`CompositeActor`] into the request's extensions, where the handler finds
//! it. A session never carries identity. In stdio mode the token comes from the environment once,
//! at start, because the process itself is the session.
//!
//! The admin listener serves the admin API (`admin`) and the web console (`console`).

pub mod admin;
mod bearer;
pub mod console;
pub(crate) mod edges;
mod front;
mod health;
pub(crate) mod http;
mod limits;
mod listener;
mod paging;
pub(crate) mod sessions;
mod stdio;

pub use front::McpFront;
pub use http::{http_router, serve_http};
pub use stdio::serve_stdio;

/// On the way out: every decision record queued so far is committed (the log's writer thread
/// would otherwise end with the process, its last batch unwritten), or the loss is logged.
async fn flush_log_on_exit(gateway: &crate::enforce::Gateway) {
    if let Err(error) = gateway.decision_log().flush().await {
        tracing::error!(%error, "decision records queued at shutdown were not all written");
    }
}
