//! Kill switches: list, flip, lift. A switch is its scope together with the tenant it is
//! limited to (none: every tenant); a listing shows each caller only the switches the admin
//! policy lets them see, each with what it hides (the registered capabilities it covers, for
//! which callers), and the capabilities a switch can name.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::identity::{ActorRef, CompositeActor};
use crate::policy::{AdminAction, AdminResource};
use crate::store::{KillScope, KillSwitch};

use super::who;
use super::{invalid, unavailable, AdminState};

/// A switch as the admin PDP judges it.
fn resource(scope: &KillScope, tenant: Option<&String>) -> AdminResource {
    AdminResource::KillSwitch {
        scope: scope.kind().to_string(),
        target: scope.target().to_string(),
        tenant: tenant.cloned(),
    }
}

/// Every registered capability's exposed name with its server, in name order.
fn capabilities(state: &AdminState) -> Vec<(String, String, &'static str)> {
    let registry = state.gateway.registry();
    let mut all: Vec<(String, String, &'static str)> = registry
        .tools()
        .map(|t| (t.exposed_name.clone(), t.server.clone(), "tool"))
        .chain(
            registry
                .prompts()
                .map(|p| (p.exposed_name.clone(), p.server.clone(), "prompt")),
        )
        .chain(
            registry
                .resources()
                .map(|r| (r.exposed_name.clone(), r.server.clone(), "resource")),
        )
        .collect();
    all.sort();
    all
}

/// What a switch hides: the capabilities it covers, and for whom.
fn hides(state: &AdminState, switch: &KillSwitch) -> Value {
    let within = switch
        .tenant
        .as_ref()
        .map_or(String::new(), |t| format!(" in {t}"));
    let (every_capability, names, callers) = match &switch.scope {
        KillScope::Global => (true, vec![], format!("every caller{within}")),
        KillScope::Tenant(tenant) => (true, vec![], format!("every caller in {tenant}")),
        KillScope::User(user) => (true, vec![], format!("user {user}{within}")),
        KillScope::AgentRole(role) => (true, vec![], format!("agent role {role}{within}")),
        KillScope::Server(server) => (
            false,
            capabilities(state)
                .into_iter()
                .filter(|(_, s, _)| s == server)
                .map(|(name, _, _)| name)
                .collect(),
            format!("every caller{within}"),
        ),
        KillScope::Tool(tool) => (false, vec![tool.clone()], format!("every caller{within}")),
    };
    json!({"every_capability": every_capability, "capabilities": names, "callers": callers})
}

/// The switches that are on and that `actor` may see, each with what it hides.
fn visible(state: &AdminState, actor: &CompositeActor) -> Vec<Value> {
    state
        .gateway
        .controls()
        .kill_switches()
        .into_iter()
        .filter(|switch| {
            state.allows(
                actor,
                AdminAction::ViewKillSwitch,
                resource(&switch.scope, switch.tenant.as_ref()),
            )
        })
        .map(|switch| {
            let mut shown = json!(switch);
            shown["hides"] = hides(state, &switch);
            shown
        })
        .collect()
}

#[utoipa::path(get, path = "/admin/kill-switches",
    summary = "Kill switches that are on, those the caller may see, each with what it hides (`hides`: the capabilities it covers and for which callers); and every registered capability a switch can name (`capabilities`)",
    description = who::SWITCHES,
    responses((status = 200, description = "the switches and the capabilities")))]
pub(super) async fn list(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) = state.authorize(
        &actor,
        AdminAction::ListKillSwitches,
        AdminResource::Platform,
    ) {
        return refusal.into_response();
    }
    let names: Vec<Value> = capabilities(&state)
        .into_iter()
        .map(|(name, server, kind)| json!({"name": name, "server": server, "kind": kind}))
        .collect();
    Json(json!({ "kill_switches": visible(&state, &actor), "capabilities": names })).into_response()
}

/// A switch to flip or lift: its scope and target, the tenant it is limited to (a tenant
/// switch is limited to its own tenant; otherwise none means every tenant), and why.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub(super) struct KillRequest {
    #[serde(flatten)]
    scope: KillScope,
    /// The tenant the switch is limited to; omitted: every tenant (a tenant switch is limited
    /// to its own tenant).
    tenant: Option<String>,
    /// Why (required to flip a switch).
    reason: Option<String>,
}

impl KillRequest {
    /// The tenant the switch is limited to, once the admin PDP lets `actor` do `action` on it;
    /// else the answer (422 for an inconsistent switch, the refusal).
    fn authorized(
        &self,
        state: &AdminState,
        actor: &CompositeActor,
        action: AdminAction,
    ) -> Result<Option<String>, Box<Response>> {
        let tenant = self
            .scope
            .tenant_qualifier(self.tenant.clone())
            .map_err(|why| Box::new(invalid(why)))?;
        state
            .authorize(actor, action, resource(&self.scope, tenant.as_ref()))
            .map_err(|refusal| Box::new(refusal.into_response()))?;
        Ok(tenant)
    }
}

#[utoipa::path(post, path = "/admin/kill-switches",
    summary = "Flip a kill switch (scope, target, tenant, reason; a reason is required)",
    description = who::SWITCHES,
    responses(
        (status = 200, description = "the switches that are on"),
        (status = 422, description = "no reason, or a tenant switch asked for another tenant"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
pub(super) async fn set(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Json(request): Json<KillRequest>,
) -> Response {
    let tenant = match request.authorized(&state, &actor, AdminAction::SetKillSwitch) {
        Ok(tenant) => tenant,
        Err(answer) => return *answer,
    };
    let Some(reason) = request.reason.filter(|r| !r.trim().is_empty()) else {
        return invalid("a kill switch needs a reason");
    };
    let switch = KillSwitch {
        scope: request.scope,
        tenant,
        reason,
        set_by: actor.user.id.clone(),
        set_at: crate::policy::now_unix(),
    };
    tracing::warn!(target: "capgate::admin", user = %actor.user.id, scope = ?switch.scope, tenant = ?switch.tenant, reason = %switch.reason, "kill switch set");
    match state.gateway.controls().set_kill_switch(switch).await {
        Ok(()) => Json(json!({ "kill_switches": visible(&state, &actor) })).into_response(),
        Err(error) => unavailable(error),
    }
}

#[utoipa::path(post, path = "/admin/kill-switches/lift",
    summary = "Lift the kill switch of this scope and tenant",
    description = who::SWITCHES,
    responses(
        (status = 200, description = "whether a switch was lifted, and the switches still on"),
        (status = 422, description = "a tenant switch asked for another tenant"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
pub(super) async fn lift(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Json(request): Json<KillRequest>,
) -> Response {
    let tenant = match request.authorized(&state, &actor, AdminAction::LiftKillSwitch) {
        Ok(tenant) => tenant,
        Err(answer) => return *answer,
    };
    tracing::warn!(target: "capgate::admin", user = %actor.user.id, scope = ?request.scope, ?tenant, "kill switch lifted");
    match state
        .gateway
        .controls()
        .lift_kill_switch(&request.scope, tenant.as_deref())
        .await
    {
        Ok(lifted) => Json(json!({
            "lifted": lifted,
            "kill_switches": visible(&state, &actor),
        }))
        .into_response(),
        Err(error) => unavailable(error),
    }
}
