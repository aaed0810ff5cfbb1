//! `GET /admin/me`: who the caller is (as verified from their token) and what the admin policy
//! lets them do in their own tenant, operation by operation. It decides nothing itself: each
//! answer is the admin PDP's for that operation, and every endpoint asks again when called.
//! The console uses it to say who is signed in, in which tenant, and which pages apply.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use crate::identity::ActorRef;
use crate::policy::{AdminAction, AdminResource};

use super::AdminState;

#[utoipa::path(get, path = "/admin/me",
    summary = "Who the caller is (user, tenant, roles, agent) and, operation by operation, what the admin policy lets them do in their own tenant",
    description = "Anyone with a valid token (the answers are the admin PDP's).",
    responses((status = 200, description = "the caller and their permissions")))]
pub(super) async fn me(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    let own = || AdminResource::Tenant {
        id: actor.tenant.clone(),
    };
    let own_switch = |scope: &str, target: &str, tenant: Option<&str>| AdminResource::KillSwitch {
        scope: scope.into(),
        target: target.into(),
        tenant: tenant.map(str::to_string),
    };
    let questions: [(&str, AdminAction, AdminResource); 15] = [
        (
            "view_policy",
            AdminAction::ViewPolicy,
            AdminResource::Platform,
        ),
        (
            "reload_policy",
            AdminAction::ReloadPolicy,
            AdminResource::Platform,
        ),
        (
            "view_health",
            AdminAction::ViewHealth,
            AdminResource::Platform,
        ),
        (
            "list_kill_switches",
            AdminAction::ListKillSwitches,
            AdminResource::Platform,
        ),
        (
            "set_tenant_kill_switch",
            AdminAction::SetKillSwitch,
            own_switch("tenant", &actor.tenant, Some(&actor.tenant)),
        ),
        (
            "set_tool_kill_switch",
            AdminAction::SetKillSwitch,
            own_switch("tool", "", None),
        ),
        ("view_decisions", AdminAction::ViewDecisions, own()),
        (
            "view_every_tenants_decisions",
            AdminAction::ViewDecisions,
            AdminResource::Platform,
        ),
        (
            "verify_decision_log",
            AdminAction::VerifyDecisionLog,
            AdminResource::Platform,
        ),
        (
            "view_run",
            AdminAction::ViewRun,
            AdminResource::Run {
                tenant: actor.tenant.clone(),
                run: String::new(),
            },
        ),
        ("list_approvals", AdminAction::ListApprovals, own()),
        (
            "decide_approval",
            AdminAction::DecideApproval,
            AdminResource::Approval {
                id: String::new(),
                tenant: actor.tenant.clone(),
            },
        ),
        ("list_break_glass", AdminAction::ListBreakGlass, own()),
        ("open_break_glass", AdminAction::OpenBreakGlass, own()),
        (
            "flush_audit",
            AdminAction::FlushAudit,
            AdminResource::Platform,
        ),
    ];
    let may: Map<String, Value> = questions
        .into_iter()
        .map(|(name, action, resource)| {
            (
                name.to_string(),
                state.allows(&actor, action, resource).into(),
            )
        })
        .collect();
    Json(json!({
        "user": actor.user.id,
        "tenant": actor.tenant,
        "roles": actor.user.roles,
        "agent": actor.agent.as_ref().map(|a| &a.id),
        "issuer": actor.issuer,
        "may": may,
    }))
    .into_response()
}
