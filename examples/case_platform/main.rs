//! `case-platform`: an example downstream MCP server (stdio) for capgate.
//!
//! A multi-tenant enforcement-case platform with real in-memory state: cases, evidence,
//! notice drafts with an approval workflow, risk proposals, agent memory, an entity graph and
//! tool grants. Every request is scoped to the tenant that the gateway injects in
//! `_meta["dev.capgate/actor"]`; tenants never see each other's objects.
//!
//! Environment:
//! - `CASE_PLATFORM_JOURNAL=<file>`: append one JSON line per `tools/call`, `resources/read`
//!   and `prompts/get` before doing the work (see [`journal`]).
//! - `CASE_PLATFORM_TEST_HOOKS=1`: also offer `debug_crash`, `debug_sleep`, `debug_add_tool`.
//! - `CASE_PLATFORM_LOG`: tracing filter (default `info,rmcp=warn`). Logs go to stderr only; stdout
//!   carries the protocol.

mod hook_calls;
mod hooks;
mod journal;
mod prompts;
mod seed;
mod server;
mod state;
mod tools;

use rmcp::ServiceExt;
use tracing_subscriber::EnvFilter;

use crate::server::CasePlatform;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_env("CASE_PLATFORM_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    let server = CasePlatform::from_env()?;
    tracing::info!(pid = std::process::id(), "case-platform starting on stdio");
    let running = server.serve(rmcp::transport::stdio()).await?;
    let reason = running.waiting().await?;
    tracing::info!(?reason, "case-platform stopped");
    Ok(())
}
