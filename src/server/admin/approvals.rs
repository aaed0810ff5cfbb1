//! Approvals and break-glass grants: for people, within their own tenant (the admin policy
//! decides that). What else deciding an approval or opening a grant takes — the approver role,
//! not being the requester, the break-glass role — the controls check, as for any caller.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::enforce::{ApprovalDecisionError, ApprovalProblem, BreakGlassError, BreakGlassRequest};
use crate::identity::ActorRef;
use crate::policy::{AdminAction, AdminResource};

use super::{invalid, not_found, refused, unavailable, AdminState};

/// The caller's own tenant, as the resource of listing and opening.
fn own_tenant(actor: &ActorRef) -> AdminResource {
    AdminResource::Tenant {
        id: actor.tenant.clone(),
    }
}

pub(super) async fn list_approvals(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) = state.authorize(&actor, AdminAction::ListApprovals, own_tenant(&actor)) {
        return refusal.into_response();
    }
    match state.gateway.controls().approvals(&actor.tenant).await {
        Ok(approvals) => Json(json!({ "approvals": approvals })).into_response(),
        Err(error) => unavailable(error),
    }
}

async fn decide(state: AdminState, actor: ActorRef, id: String, approve: bool) -> Response {
    let controls = state.gateway.controls();
    // An approval that does not exist is asked about as one of the caller's tenant: who may
    // not decide approvals learns nothing, who may hears that it does not exist.
    let tenant = match controls.approval(&id).await {
        Ok(Some(approval)) => approval.tenant,
        Ok(None) => actor.tenant.clone(),
        Err(error) => return unavailable(error),
    };
    let resource = AdminResource::Approval {
        id: id.clone(),
        tenant,
    };
    if let Err(refusal) = state.authorize(&actor, AdminAction::DecideApproval, resource) {
        return refusal.into_response();
    }
    match controls.decide_approval(&id, approve, &actor).await {
        Ok(approval) => {
            tracing::warn!(target: "capgate::admin", approver = %actor.user.id, approval = %id, approve, "approval decided");
            Json(json!({ "approval": approval })).into_response()
        }
        Err(ApprovalDecisionError::Forbidden(why)) => {
            tracing::warn!(target: "capgate::admin", approver = %actor.user.id, approval = %id, %why, "approval decision refused");
            refused(why)
        }
        Err(ApprovalDecisionError::Problem(problem @ ApprovalProblem::Unknown(_))) => {
            not_found(problem)
        }
        Err(ApprovalDecisionError::Problem(problem)) => (
            axum::http::StatusCode::CONFLICT,
            Json(json!({"error": problem.to_string()})),
        )
            .into_response(),
        Err(ApprovalDecisionError::Store(error)) => unavailable(error),
    }
}

pub(super) async fn approve(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Path(id): Path<String>,
) -> Response {
    decide(state, actor, id, true).await
}

pub(super) async fn reject(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Path(id): Path<String>,
) -> Response {
    decide(state, actor, id, false).await
}

/// A refusal of the break-glass controls as an answer.
fn break_glass_refusal(actor: &ActorRef, error: BreakGlassError) -> Response {
    match error {
        BreakGlassError::Forbidden(why) => {
            tracing::warn!(target: "capgate::break_glass", user = %actor.user.id, %why, "break-glass refused");
            refused(why)
        }
        BreakGlassError::Invalid(why) => invalid(why),
        BreakGlassError::Unknown(why) => not_found(why),
        BreakGlassError::Store(error) => unavailable(error),
    }
}

pub(super) async fn open_grant(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Json(request): Json<BreakGlassRequest>,
) -> Response {
    if let Err(refusal) = state.authorize(&actor, AdminAction::OpenBreakGlass, own_tenant(&actor)) {
        return refusal.into_response();
    }
    match state
        .gateway
        .controls()
        .open_break_glass(&actor, request)
        .await
    {
        Ok(grant) => Json(json!({ "grant": grant })).into_response(),
        Err(error) => break_glass_refusal(&actor, error),
    }
}

pub(super) async fn revoke_grant(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Path(id): Path<String>,
) -> Response {
    let controls = state.gateway.controls();
    // A grant that does not exist is asked about as one of the caller's tenant (see `decide`).
    let tenant = match controls.break_glass_grant(&id) {
        Some(grant) => grant.tenant,
        None => actor.tenant.clone(),
    };
    let resource = AdminResource::BreakGlassGrant {
        id: id.clone(),
        tenant,
    };
    if let Err(refusal) = state.authorize(&actor, AdminAction::RevokeBreakGlass, resource) {
        return refusal.into_response();
    }
    match controls.revoke_break_glass(&actor, &id).await {
        Ok(grant) => Json(json!({ "grant": grant })).into_response(),
        Err(error) => break_glass_refusal(&actor, error),
    }
}

pub(super) async fn list_grants(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) = state.authorize(&actor, AdminAction::ListBreakGlass, own_tenant(&actor)) {
        return refusal.into_response();
    }
    match state.gateway.controls().break_glass_grants().await {
        Ok(grants) => {
            let now = state.gateway.controls().now();
            let mine: Vec<Value> = grants
                .into_iter()
                .filter(|g| g.tenant == actor.tenant)
                .map(|g| json!({"grant": g, "open": g.revoked_at.is_none() && now < g.expires_at}))
                .collect();
            Json(json!({ "grants": mine })).into_response()
        }
        Err(error) => unavailable(error),
    }
}
