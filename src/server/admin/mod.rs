//! The admin API, on its own listener: policy status and reload, relationship updates, kill
//! switches, runs and budgets, the decision log and health (`/admin/*`), approvals
//! (`/approvals`) and break-glass grants (`/break-glass`), and Prometheus metrics.
//!
//! Every request but `/metrics` needs a bearer token valid for capgate (401 otherwise), or a
//! console session's cookie (`auth`: verified the same way, CSRF token on state changes). What
//! its holder may do is decided by the admin policy set (`policies/admin/`, see
//! [`crate::policy::admin`]): each handler builds one admin request — the person with their
//! tenant and roles, the operation, the target with its tenant — asks it, and answers 403 with
//! the deciding policy's reason when it refuses. No handler holds an authorization rule of its
//! own. The files here are one per group of operations; `openapi` generates the API's document
//! from them, `who` says who may call each.

mod approvals;
mod auth;
mod decisions;
mod kill_switches;
mod me;
mod openapi;
mod overview;
mod platform;
mod runs;
mod tools;
mod who;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::json;

use crate::enforce::Gateway;
use crate::identity::{Authenticator, CompositeActor};
use crate::policy::{
    ActorFacts, AdminAction, AdminDecision, AdminRequest, AdminResource, AdminRoles,
};

pub use openapi::openapi;

#[derive(Clone)]
struct AdminState {
    gateway: Arc<Gateway>,
    /// For the health details: the state of issuers' keys fetched by URL.
    auth: Arc<Authenticator>,
    roles: AdminRoles,
    public_url: String,
    /// The public half of this gateway's checkpoint key, to verify the log's chain with.
    log_key: Option<ed25519_dalek::VerifyingKey>,
}

/// What the admin router is built from besides the gateway and the authenticator.
pub struct AdminOptions {
    pub roles: AdminRoles,
    pub public_url: String,
    /// The public half of the checkpoint key (`GET /admin/audit/verification`).
    pub log_key: Option<ed25519_dalek::VerifyingKey>,
    /// The console's sessions, whose cookie authenticates like a bearer token.
    pub sessions: Option<Arc<crate::server::console::Sessions>>,
}

/// Every admin endpoint. The router serves exactly these, the OpenAPI document describes
/// them, and the table test (`tests/suite/admin_scopes.rs`) asks each of them as every kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    PolicyStatus,
    PolicyReload,
    Relationships,
    AuditFlush,
    Health,
    KillSwitches,
    KillSwitchSet,
    KillSwitchLift,
    Budgets,
    Runs,
    Approvals,
    Approve,
    Reject,
    BreakGlassGrants,
    BreakGlassOpen,
    BreakGlassRevoke,
    ToolPins,
    ToolAccept,
    Me,
    Decisions,
    DecisionRecord,
    LogVerification,
    Overview,
    Metrics,
}

impl Endpoint {
    pub const ALL: [Endpoint; 24] = [
        Endpoint::PolicyStatus,
        Endpoint::PolicyReload,
        Endpoint::Relationships,
        Endpoint::AuditFlush,
        Endpoint::Health,
        Endpoint::KillSwitches,
        Endpoint::KillSwitchSet,
        Endpoint::KillSwitchLift,
        Endpoint::Budgets,
        Endpoint::Runs,
        Endpoint::Approvals,
        Endpoint::Approve,
        Endpoint::Reject,
        Endpoint::BreakGlassGrants,
        Endpoint::BreakGlassOpen,
        Endpoint::BreakGlassRevoke,
        Endpoint::ToolPins,
        Endpoint::ToolAccept,
        Endpoint::Me,
        Endpoint::Decisions,
        Endpoint::DecisionRecord,
        Endpoint::LogVerification,
        Endpoint::Overview,
        Endpoint::Metrics,
    ];

    /// The HTTP method and path (with `{id}` where a path names one).
    pub fn route(self) -> (&'static str, &'static str) {
        match self {
            Endpoint::PolicyStatus => ("GET", "/admin/policy"),
            Endpoint::PolicyReload => ("POST", "/admin/policy/reload"),
            Endpoint::Relationships => ("POST", "/admin/relationships"),
            Endpoint::AuditFlush => ("POST", "/admin/audit/flush"),
            Endpoint::Health => ("GET", "/admin/health"),
            Endpoint::KillSwitches => ("GET", "/admin/kill-switches"),
            Endpoint::KillSwitchSet => ("POST", "/admin/kill-switches"),
            Endpoint::KillSwitchLift => ("POST", "/admin/kill-switches/lift"),
            Endpoint::Budgets => ("GET", "/admin/budgets"),
            Endpoint::Runs => ("GET", "/admin/runs"),
            Endpoint::Approvals => ("GET", "/approvals"),
            Endpoint::Approve => ("POST", "/approvals/{id}/approve"),
            Endpoint::Reject => ("POST", "/approvals/{id}/reject"),
            Endpoint::BreakGlassGrants => ("GET", "/break-glass"),
            Endpoint::BreakGlassOpen => ("POST", "/break-glass"),
            Endpoint::BreakGlassRevoke => ("POST", "/break-glass/{id}/revoke"),
            Endpoint::ToolPins => ("GET", "/admin/tools"),
            Endpoint::ToolAccept => ("POST", "/admin/tools/accept"),
            Endpoint::Me => ("GET", "/admin/me"),
            Endpoint::Decisions => ("GET", "/admin/decisions"),
            Endpoint::DecisionRecord => ("GET", "/admin/decisions/{seq}"),
            Endpoint::LogVerification => ("GET", "/admin/audit/verification"),
            Endpoint::Overview => ("GET", "/admin/overview"),
            // Prometheus scrapes the admin listener, which operators keep off the agents'
            // network: no token.
            Endpoint::Metrics => ("GET", "/metrics"),
        }
    }

    fn handler(self) -> MethodRouter<AdminState> {
        match self {
            Endpoint::PolicyStatus => get(platform::policy_status),
            Endpoint::PolicyReload => post(platform::reload_policy),
            Endpoint::Relationships => post(platform::update_relationships),
            Endpoint::AuditFlush => post(platform::flush_log),
            Endpoint::Health => get(platform::health_details),
            Endpoint::KillSwitches => get(kill_switches::list),
            Endpoint::KillSwitchSet => post(kill_switches::set),
            Endpoint::KillSwitchLift => post(kill_switches::lift),
            Endpoint::Budgets => get(runs::budget_usage),
            Endpoint::Runs => get(runs::run_manifest),
            Endpoint::Approvals => get(approvals::list_approvals),
            Endpoint::Approve => post(approvals::approve),
            Endpoint::Reject => post(approvals::reject),
            Endpoint::BreakGlassGrants => get(approvals::list_grants),
            Endpoint::BreakGlassOpen => post(approvals::open_grant),
            Endpoint::BreakGlassRevoke => post(approvals::revoke_grant),
            Endpoint::ToolPins => get(tools::list),
            Endpoint::ToolAccept => post(tools::accept),
            Endpoint::Me => get(me::me),
            Endpoint::Decisions => get(decisions::list),
            Endpoint::DecisionRecord => get(decisions::record),
            Endpoint::LogVerification => get(decisions::verification),
            Endpoint::Overview => get(overview::overview),
            Endpoint::Metrics => get(platform::metrics),
        }
    }

    /// Whether a request needs a valid token (all but metrics).
    fn authenticated(self) -> bool {
        self != Endpoint::Metrics
    }
}

/// The admin router, serving [`Endpoint::ALL`]; mount it on the admin listener.
pub fn admin_router(
    gateway: Arc<Gateway>,
    auth: Arc<Authenticator>,
    options: AdminOptions,
) -> Router {
    let gate = auth::Gate {
        auth: auth.clone(),
        sessions: options.sessions,
    };
    let state = AdminState {
        gateway,
        auth,
        roles: options.roles,
        public_url: options.public_url,
        log_key: options.log_key,
    };
    let mut authenticated = Router::new();
    let mut open = Router::new();
    for endpoint in Endpoint::ALL {
        let (_, path) = endpoint.route();
        if endpoint.authenticated() {
            authenticated = authenticated.route(path, endpoint.handler());
        } else {
            open = open.route(path, endpoint.handler());
        }
    }
    authenticated
        .layer(axum::middleware::from_fn_with_state(
            gate,
            auth::authenticate,
        ))
        .merge(open)
        .with_state(state)
}

impl AdminState {
    /// The admin PDP's answer for `actor` doing `action` on `resource`.
    fn decide(
        &self,
        actor: &CompositeActor,
        action: AdminAction,
        resource: AdminResource,
    ) -> AdminDecision {
        let request = AdminRequest {
            actor: ActorFacts::from_actor(actor),
            tenant: actor.tenant.clone(),
            action,
            resource,
        };
        self.gateway.policy().decide_admin(&request, &self.roles)
    }

    /// Asks the admin PDP; its refusal, to answer with.
    fn authorize(
        &self,
        actor: &CompositeActor,
        action: AdminAction,
        resource: AdminResource,
    ) -> Result<(), Refused> {
        let decision = self.decide(actor, action, resource);
        if decision.is_allow() {
            Ok(())
        } else {
            Err(Refused::new(actor, Box::new(decision)))
        }
    }

    /// Whether the admin PDP allows it, for filtering what a listing shows.
    fn allows(&self, actor: &CompositeActor, action: AdminAction, resource: AdminResource) -> bool {
        self.decide(actor, action, resource).is_allow()
    }
}

/// A refusal of the admin PDP: answered 403 with its reason and deciding policy (the caller is
/// a person asking the admin API, who may read why), and logged once.
struct Refused(Box<AdminDecision>);

impl Refused {
    fn new(actor: &CompositeActor, decision: Box<AdminDecision>) -> Self {
        tracing::warn!(target: "capgate::admin", user = %actor.user.id, tenant = %actor.tenant, policy = ?decision.policy_id(), reason = %decision.reason, "admin request refused: 403");
        Self(decision)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": "forbidden",
                "error_description": self.0.reason,
                "policy": self.0.policy_id(),
            })),
        )
            .into_response()
    }
}

/// A 403 for a refusal of the controls (a role an approval or break-glass needs).
fn refused(why: impl std::fmt::Display) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"error": why.to_string()})),
    )
        .into_response()
}

fn not_found(why: impl std::fmt::Display) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": why.to_string()})),
    )
        .into_response()
}

fn invalid(why: impl std::fmt::Display) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": why.to_string()})),
    )
        .into_response()
}

/// A 503 for when the enforcement store cannot answer.
fn unavailable(error: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": error.to_string()})),
    )
        .into_response()
}
