//! capgate: the capability resolver and policy enforcement point between LLM agents (MCP
//! clients) and the MCP servers they use.
//!
//! The path of one call: `identity` (JWT → composite actor) → `server` (MCP front) → `enforce`
//! (build the request from the `registry` contract, ask the `policy` PDP, forward only on allow)
//! → `downstream` (the registered MCP server). `config` holds the typed configuration.

pub mod audit;
pub mod clock;
pub mod config;
pub mod downstream;
pub mod enforce;
mod error_chain;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod log_lines;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod scenarios;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
