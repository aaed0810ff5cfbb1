//! The gateway's configuration file (`capgate.toml`).
//!
//! Parsing happens once, at start: every later module receives typed, validated values. A bad
//! configuration is refused with a [`ConfigError`] that names the file, the key and the fix, so an
//! operator never has to guess why the gateway would not start.
//!
//! One module per part of the file: `gateway` reads it and checks its tables in a fixed order;
//! `server`, `issuers` (with `remote_keys` for keys fetched by URL), `downstreams`, `audit`,
//! `enforcement`, `limits`, `store` and `console` each own a table (its TOML shape, its typed
//! value and its checks); `error` is how any problem is reported.

mod audit;
mod console;
mod downstreams;
mod enforcement;
mod error;
mod gateway;
mod issuers;
mod limits;
mod remote_keys;
mod server;
mod store;

pub use audit::{AuditConfig, DurableFor};
pub use console::ConsoleConfig;
pub use downstreams::{
    is_valid_server_id, DownstreamConfig, DownstreamProtocol, DownstreamTransport,
};
pub use enforcement::{EnforcementConfig, WithoutRunId};
pub use error::ConfigError;
pub use gateway::{GatewayConfig, EMBEDDED_DEFAULT};
pub use issuers::{ClaimMapping, IssuerConfig, IssuerKey, PinnedAlgorithm};
pub use limits::LimitsConfig;
pub use remote_keys::{fetchable_url, RemoteKeySource, RemoteKeysConfig};
pub use server::{AdminConfig, AgentExplanations, ServerConfig};
pub use store::StoreConfig;
