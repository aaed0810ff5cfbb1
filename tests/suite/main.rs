//! The integration tests, one binary: real gateways, real downstream servers and real MCP
//! clients on 127.0.0.1 (see `common`). One binary links the crate once, not once per file.

#[path = "../common/mod.rs"]
mod common;

mod admin_scopes;
mod approvals;
mod authentication;
mod config_file;
mod console;
mod decision_log_records;
mod decision_log_storage;
mod dependency_graph;
mod enforcement_admin;
mod enforcement_calls;
mod file_modes;
mod front_door;
mod gateway_core;
mod http_downstream;
mod input_rounds;
mod jwks;
mod key_sources;
mod metrics;
mod otlp;
mod paging;
mod pinning;
mod pipeline;
mod policy_mutation;
mod policy_properties;
mod policy_reload;
mod policy_scenarios;
mod policy_versions;
mod properties;
mod python_sdk;
mod quickstart;
mod replicas;
mod server_asks;
mod startup;
mod stdio_mode;
mod transparency;
