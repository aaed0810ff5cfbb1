//! Approvals and break-glass grants: for people, within their own tenant (the admin policy
//! decides that). What else deciding an approval or opening a grant takes — the approver role,
//! not being the requester, the break-glass role — the controls check, as for any caller.
//!
//! A listed approval shows its arguments masked as the decision log masks them (`[audit]
//! mask_arguments`), and, while it is pending, who asked for it (user, agent, service, run)
//! and the policy and reason that required it, from the decision record of the request.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use std::collections::HashMap;

use crate::audit::{Found, Scan, Visit};
use crate::enforce::{ApprovalDecisionError, ApprovalProblem, BreakGlassError, BreakGlassRequest};
use crate::identity::ActorRef;
use crate::policy::{AdminAction, AdminResource};
use crate::store::{Approval, ApprovalStatus};

use super::who;
use super::{invalid, not_found, refused, unavailable, AdminState};

/// The caller's own tenant, as the resource of listing and opening.
fn own_tenant(actor: &ActorRef) -> AdminResource {
    AdminResource::Tenant {
        id: actor.tenant.clone(),
    }
}

#[utoipa::path(get, path = "/approvals",
    summary = "Approval requests of the caller's tenant: arguments masked as the decision log masks them ([audit] mask_arguments); for a pending one, `request`: who asked (user, agent, service, run) and the policy and reason that required approval",
    description = who::OWN_TENANT,
    responses(
        (status = 200, description = "`approvals`: [Approval], each with `request`"),
        (status = 503, description = "the enforcement store or the decision log cannot answer"),
    ))]
pub(super) async fn list_approvals(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) = state.authorize(&actor, AdminAction::ListApprovals, own_tenant(&actor)) {
        return refusal.into_response();
    }
    let approvals = match state.gateway.controls().approvals(&actor.tenant).await {
        Ok(approvals) => approvals,
        Err(error) => return unavailable(error),
    };
    let requests = match requests_of(&state, &actor.tenant, &approvals).await {
        Ok(requests) => requests,
        Err(error) => return unavailable(error),
    };
    let masked = state.gateway.masked_arguments();
    let shown: Vec<Value> = approvals
        .into_iter()
        .map(|approval| {
            let request = requests.get(&approval.id).cloned();
            let arguments = mask_arguments(&approval.arguments, masked);
            let mut shown = json!(approval);
            shown["arguments"] = Value::String(arguments);
            shown["request"] = request.unwrap_or(Value::Null);
            shown
        })
        .collect();
    Json(json!({ "approvals": shown })).into_response()
}

/// An approval's arguments (JSON text) with the configured arguments' values masked, as the
/// decision log masks them.
fn mask_arguments(arguments: &str, masked: &[String]) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut map)) => {
            for name in masked {
                if let Some(value) = map.get_mut(name) {
                    *value = Value::String("***".into());
                }
            }
            Value::Object(map).to_string()
        }
        // Not an object: nothing capgate wrote; show nothing of it.
        Ok(_) | Err(_) => "\"(unreadable)\"".to_string(),
    }
}

/// For each pending approval, the decision record of the request that opened it: same tenant,
/// `require_approval`, the approval's action digest, at or just before its creation.
async fn requests_of(
    state: &AdminState,
    tenant: &str,
    approvals: &[Approval],
) -> Result<HashMap<String, Value>, crate::audit::AuditError> {
    let mut waiting: Vec<(String, String, i64)> = approvals
        .iter()
        .filter(|a| a.status == ApprovalStatus::Pending)
        .map(|a| (a.id.clone(), a.action_digest.clone(), a.created_at))
        .collect();
    let Some(oldest) = waiting.iter().map(|w| w.2).min() else {
        return Ok(HashMap::new());
    };
    let scan = Scan {
        after: None,
        since: Some(oldest),
        max_records: 200_000,
    };
    let tenant = tenant.to_string();
    let visit = move |found_so_far: &mut HashMap<String, Value>, found: Found| {
        let record = &found.record;
        if record.tenant != tenant || record.decision != "require_approval" {
            return Visit::Continue;
        }
        let digest = record.action_digest.as_deref();
        waiting.retain(|(id, wanted, created)| {
            let opened_it = digest == Some(wanted.as_str()) && record.time <= created + 1;
            if opened_it {
                found_so_far.insert(id.clone(), request_facts(&found));
            }
            !opened_it
        });
        if waiting.is_empty() {
            Visit::Stop
        } else {
            Visit::Continue
        }
    };
    let (found, _) = state
        .gateway
        .decision_log()
        .newest_first(scan, HashMap::new(), visit)
        .await?;
    Ok(found)
}

/// Who asked, and which policy wanted an approval and why, from a decision record.
fn request_facts(found: &Found) -> Value {
    let record = &found.record;
    let actor = record.request.as_ref().map(|r| &r.actor);
    json!({
        "request_id": record.request_id,
        "seq": found.seq,
        "chain": found.chain,
        "time": record.time,
        "actor": record.actor,
        "user": actor.map(|a| a.user.id.clone()),
        "agent": actor.and_then(|a| a.agent.as_ref()).map(|a| a.id.clone()),
        "agent_role": actor.and_then(|a| a.agent.as_ref()).map(|a| a.role.clone()),
        "service": actor.and_then(|a| a.service.clone()),
        "delegation_chain": record.delegation_chain,
        "run_id": record.run_id,
        "policy_id": record.policy_id,
        "policy_version": record.policy_version,
        "reason": record.reason,
    })
}

/// What an approver may send with a decision: a note (at most 500 characters), logged with it.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DecisionNote {
    /// One line, at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    note: Option<String>,
}

/// The note of a decision's body (none, or `{"note": "..."}`).
fn decision_note(body: &[u8]) -> Result<Option<String>, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: DecisionNote = serde_json::from_slice(body).map_err(|e| {
        Box::new(invalid(format!(
            "the body is not {{\"note\": \"...\"}}: {e}"
        )))
    })?;
    let note = parsed
        .note
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    match note {
        Some(note) if note.chars().count() > 500 => {
            Err(Box::new(invalid("a note has at most 500 characters")))
        }
        Some(note) if note.chars().any(char::is_control) => Err(Box::new(invalid(
            "a note is one line without control characters",
        ))),
        note => Ok(note),
    }
}

async fn decide(
    state: AdminState,
    actor: ActorRef,
    id: String,
    approve: bool,
    body: &[u8],
) -> Response {
    let note = match decision_note(body) {
        Ok(note) => note,
        Err(answer) => return *answer,
    };
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
    match controls
        .decide_approval(&id, approve, &actor, note.as_deref())
        .await
    {
        Ok(approval) => {
            tracing::warn!(target: "capgate::admin", approver = %actor.user.id, approval = %id, approve, note = note.as_deref().unwrap_or(""), "approval decided");
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

#[utoipa::path(post, path = "/approvals/{id}/approve",
    summary = "Grant a pending approval (optional note, logged with the decision)",
    description = who::APPROVER,
    params(("id" = String, Path, description = "the approval's id")),
    request_body(content = Option<DecisionNote>, description = "optional: an empty body is no note"),
    responses(
        (status = 200, description = "`approval`: the decided Approval"),
        (status = 404, description = "no such approval"),
        (status = 409, description = "the approval is not pending (decided, consumed or expired)"),
        (status = 422, description = "the body is not a valid note"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
pub(super) async fn approve(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    decide(state, actor, id, true, &body).await
}

#[utoipa::path(post, path = "/approvals/{id}/reject",
    summary = "Reject a pending approval (optional note, logged with the decision)",
    description = who::APPROVER,
    params(("id" = String, Path, description = "the approval's id")),
    request_body(content = Option<DecisionNote>, description = "optional: an empty body is no note"),
    responses(
        (status = 200, description = "`approval`: the decided Approval"),
        (status = 404, description = "no such approval"),
        (status = 409, description = "the approval is not pending (decided, consumed or expired)"),
        (status = 422, description = "the body is not a valid note"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
pub(super) async fn reject(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    decide(state, actor, id, false, &body).await
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

#[utoipa::path(post, path = "/break-glass",
    summary = "Open a time-limited break-glass grant in the caller's tenant (it never overrides a tenant-isolation forbid)",
    description = who::BREAK_GLASS,
    responses(
        (status = 200, description = "`grant`: the BreakGlassGrant"),
        (status = 422, description = "the reason is too short, or the duration is out of bounds"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
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

#[utoipa::path(post, path = "/break-glass/{id}/revoke",
    summary = "Revoke a break-glass grant (effective on the next request)",
    description = "A person with the break-glass role, for grants of their own tenant.",
    params(("id" = String, Path, description = "the grant's id")),
    responses(
        (status = 200, description = "`grant`: the revoked BreakGlassGrant"),
        (status = 404, description = "no such open grant"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
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

#[utoipa::path(get, path = "/break-glass",
    summary = "Break-glass grants of the caller's tenant, open and expired, with uses",
    description = who::OWN_TENANT,
    responses(
        (status = 200, description = "`grants`: each `grant` (BreakGlassGrant) and whether it is `open`"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
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
