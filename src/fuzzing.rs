//! The crate-internal entry points the fuzz targets (`fuzz/`) drive, so that they run the real
//! code rather than copies of it. Not part of capgate's API: nothing outside `fuzz/` uses it,
//! and it changes whenever the code behind it does.

use std::sync::Arc;

use axum::Router;

use crate::config::GatewayConfig;
use crate::identity::Authenticator;
use crate::policy::{AdminDecision, AdminPolicySet, AdminRoles, Decision, PolicyEngine};
use crate::registry::{Registry, RegistryError};
use crate::scenarios::{AdminScenarioFile, ScenarioFile, ScenarioResult};

pub use crate::server::edges::{Peek, MAX_BODY_BYTES};

/// `inner` behind the layers every request to `/mcp` passes (authentication, per-principal
/// limits, the body's parse errors and [`Peek`], sessions bound to their principal), with
/// sessions and limits as `config` sets them.
pub fn front_door(inner: Router, config: &GatewayConfig, auth: Arc<Authenticator>) -> Router {
    let sessions = crate::server::sessions::BoundSessions::new(
        &config.limits,
        Arc::new(crate::metrics::Metrics::default()),
    );
    crate::server::http::front_door(inner, config, auth, sessions)
}

/// One `capabilities/*.toml` file's text, read and checked as at start.
pub fn contracts_from_text(name: &str, text: &str) -> Result<Registry, RegistryError> {
    Registry::from_text(name, text)
}

/// A `policies/tests/*.yaml` file's text, run as `capgate policy test` runs each file.
pub fn run_scenario_text(
    text: &str,
    engine: &PolicyEngine,
    registry: &Registry,
) -> Result<Vec<ScenarioResult<Decision>>, String> {
    let file: ScenarioFile = crate::scenarios::parse_yaml_text(text, "<fuzz>")?;
    Ok(crate::scenarios::run_file(
        "<fuzz>", &file, engine, registry,
    ))
}

/// A `policies/admin/tests/*.yaml` file's text, run against the admin policy set.
pub fn run_admin_scenario_text(
    text: &str,
    set: &AdminPolicySet,
    roles: &AdminRoles,
) -> Result<Vec<ScenarioResult<AdminDecision>>, String> {
    let file: AdminScenarioFile = crate::scenarios::parse_yaml_text(text, "<fuzz>")?;
    Ok(crate::scenarios::run_admin_file("<fuzz>", file, set, roles))
}
