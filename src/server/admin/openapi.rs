//! The admin API as an OpenAPI 3.1 document (`capgate admin openapi`), generated from the
//! handlers: each carries its `#[utoipa::path]` (method, path, who may call it, its answers),
//! request bodies and parameters come from the types the handlers extract (`Json<T>`,
//! `Query<T>`, `Path<T>`), and which operations need a token comes from [`Endpoint`], the table
//! the router is built from. The tests hold the document's operations to the router's routes,
//! both ways, and each body's schema to the handler's own type.

use serde_json::Value;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::SecurityRequirement;
use utoipa::{Modify, OpenApi};

use super::{approvals, decisions, kill_switches, me, overview, platform, runs, tools, Endpoint};

/// Who may call what, as the repository's admin policies decide it (shared texts).
const DESCRIPTION: &str = "Served on the admin listener. Every path but /metrics needs a bearer token (or the web console's session cookie with its CSRF token); what its holder may do is decided by the admin policy set (policies/admin/). Admins are people: a token an agent acts on is refused everywhere (403). Tenant admins act on their own tenant only; platform admins on everything. Approvals and break-glass grants stay within the caller's tenant; deciding an approval also needs its approver role (not the requester), opening or revoking a grant the break-glass role.";

const CONSOLE_SESSION: &str = "The web console's session (`__Host-capgate_console` over HTTPS), opened at POST /console/api/sign-in with a bearer token that is verified again on every request. Every request with it that changes state must carry the session's CSRF token in X-CSRF-Token (GET /console/api/session gives it) and come from the console's origin; otherwise 403 `csrf`. A bearer header, when present, is used instead.";

#[derive(OpenApi)]
#[openapi(
    info(title = "capgate admin API", description = DESCRIPTION),
    paths(
        platform::policy_status,
        platform::reload_policy,
        platform::update_relationships,
        platform::flush_log,
        platform::health_details,
        platform::metrics,
        kill_switches::list,
        kill_switches::set,
        kill_switches::lift,
        runs::budget_usage,
        runs::run_manifest,
        approvals::list_approvals,
        approvals::approve,
        approvals::reject,
        approvals::list_grants,
        approvals::open_grant,
        approvals::revoke_grant,
        tools::list,
        tools::accept,
        me::me,
        decisions::list,
        decisions::record,
        decisions::verification,
        overview::overview,
    ),
    components(schemas(
        crate::store::KillSwitch,
        crate::store::Approval,
        crate::store::BreakGlassGrant,
        crate::store::ToolPin,
        crate::enforce::Quarantined,
    )),
    modifiers(&Authentication),
)]
struct AdminApi;

/// The security schemes, and, on every operation [`Endpoint`] says needs a token, the
/// requirement and the refusals of the gate in front of the handlers.
struct Authentication;

impl Modify for Authentication {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "console_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "capgate_console",
                CONSOLE_SESSION,
            ))),
        );
        for endpoint in Endpoint::ALL {
            let (method, path) = endpoint.route();
            let Some(operation) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| operation_mut(item, method))
            else {
                // Not described: the coverage test names it.
                continue;
            };
            if !endpoint.authenticated() {
                operation.security = None;
                continue;
            }
            operation.security = Some(vec![
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("console_session", Vec::<String>::new()),
            ]);
            let responses = &mut operation.responses.responses;
            responses.entry("401".into()).or_insert_with(|| {
                ResponseBuilder::new()
                    .description("no valid token (or console session)")
                    .into()
            });
            responses.entry("403".into()).or_insert_with(|| {
                ResponseBuilder::new()
                    .description("the admin policy (or, for approvals and break-glass, the role they need) refuses it; the body names the deciding policy and why")
                    .into()
            });
        }
    }
}

/// The operation of `item` for an HTTP method as [`Endpoint::route`] spells it.
fn operation_mut<'a>(item: &'a mut PathItem, method: &str) -> Option<&'a mut Operation> {
    match method {
        "GET" => item.get.as_mut(),
        "POST" => item.post.as_mut(),
        "PUT" => item.put.as_mut(),
        "PATCH" => item.patch.as_mut(),
        "DELETE" => item.delete.as_mut(),
        _ => None,
    }
}

/// The admin API as an OpenAPI 3.1 document.
pub fn openapi() -> Value {
    serde_json::to_value(AdminApi::openapi())
        .expect("an OpenAPI document is plain data and always serializes")
}

#[cfg(test)]
mod tests;
