//! The gateway as a whole: policy status and reload, relationship updates, the decision log,
//! health details and metrics. A reload validates the new policy directory (and its admin
//! policy set) first and swaps atomically; an invalid one leaves the running version in place
//! and the response names the file and line.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::enforce::{Gateway, RelationshipError, ReloadError};
use crate::identity::ActorRef;
use crate::policy::{AdminAction, AdminResource, PolicyLoadError};

use super::who;
use super::{unavailable, AdminState, Refused};

fn status_document(gateway: &Gateway) -> Value {
    let engine = gateway.policy();
    let now = crate::policy::now_unix();
    let effective = engine.effective(now).map(|s| s.label().to_string());
    let latest = engine.latest();
    json!({
        "effective": effective,
        "latest": {
            "version": latest.label(),
            "digest": latest.digest,
            "owner": latest.manifest.owner,
            "description": latest.manifest.description,
            "effective_from": latest.manifest.effective_from,
            "effective_until": latest.manifest.effective_until,
            "policies": latest.policy_count(),
            "warnings": latest.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        },
        "shadow": engine.shadow_label(),
        "admin": engine.admin().map(|admin| json!({
            "digest": admin.digest,
            "policies": admin.policy_count(),
        })),
        "relationship_entities": engine.relationship_count(),
    })
}

#[utoipa::path(get, path = "/admin/policy",
    summary = "Policy versions in effect, loaded and shadow, and the admin policy set",
    description = who::ANY_ADMIN,
    responses((status = 200, description = "status")))]
pub(super) async fn policy_status(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) = state.authorize(&actor, AdminAction::ViewPolicy, AdminResource::Platform)
    {
        return refusal.into_response();
    }
    Json(status_document(&state.gateway)).into_response()
}

fn load_error_response(error: &PolicyLoadError) -> Response {
    (
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": "the policy set is invalid; the running version stays in effect",
            "problems": error.problems.iter().map(|p| json!({
                "file": p.file, "line": p.line, "message": p.message,
            })).collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

#[utoipa::path(post, path = "/admin/policy/reload",
    summary = "Validate policies/ (and policies/admin/) and swap atomically",
    description = who::PLATFORM,
    responses(
        (status = 200, description = "reloaded: the new version and status"),
        (status = 422, description = "the policy set is invalid (each problem with its file and line); the running version stays in effect"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
pub(super) async fn reload_policy(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) =
        state.authorize(&actor, AdminAction::ReloadPolicy, AdminResource::Platform)
    {
        return refusal.into_response();
    }
    match state.gateway.reload_policy().await {
        Ok(version) => {
            tracing::info!(target: "capgate::admin", user = %actor.user.id, %version, "policy reloaded");
            Json(json!({"reloaded": version, "status": status_document(&state.gateway)}))
                .into_response()
        }
        Err(ReloadError::Policy(error)) => {
            tracing::warn!(target: "capgate::admin", user = %actor.user.id, %error, "policy reload refused");
            load_error_response(&error)
        }
        Err(ReloadError::Store(error)) => unavailable(error),
    }
}

/// One relationship entity, in Cedar's entity JSON (`uid`, `attrs`, `parents`); checked by the
/// gateway, which refuses the whole update when one is invalid.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub(super) struct EntityJson(Value);

/// Every entity of the update is asked about (under the lock the update is written under);
/// one refusal refuses the whole update and changes nothing.
#[utoipa::path(post, path = "/admin/relationships",
    summary = "Add or replace relationship entities (Cedar entity JSON); one refused entity refuses the whole update",
    description = "Tenant admins: entities that belong to their tenant (attrs.tenant names it, or it is their Tenant entity) and replace only entities of their tenant. Platform admins: any entity, including those of no tenant (users, roles).",
    responses(
        (status = 200, description = "updated: how many relationship entities are in force"),
        (status = 422, description = "an entity is invalid; the relationship store is unchanged"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
pub(super) async fn update_relationships(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Json(entities): Json<Vec<EntityJson>>,
) -> Response {
    let entities = entities.into_iter().map(|entity| entity.0).collect();
    let authorize = |resource| state.decide(&actor, AdminAction::UpdateRelationship, resource);
    match state
        .gateway
        .update_relationships(entities, &actor.user.id, authorize)
        .await
    {
        Ok(count) => {
            tracing::info!(target: "capgate::admin", user = %actor.user.id, count, "relationships updated");
            Json(json!({"relationship_entities": count})).into_response()
        }
        Err(RelationshipError::Forbidden(decision)) => {
            Refused::new(&actor, decision).into_response()
        }
        Err(RelationshipError::Store(error)) => unavailable(error),
        Err(RelationshipError::Invalid(message)) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": message, "note": "the relationship store is unchanged"})),
        )
            .into_response(),
    }
}

/// Answers once every record the gateway has logged so far is committed.
#[utoipa::path(post, path = "/admin/audit/flush",
    summary = "Wait until every decision record logged so far is committed",
    description = who::PLATFORM,
    responses(
        (status = 200, description = "flushed"),
        (status = 503, description = "the decision log cannot commit"),
    ))]
pub(super) async fn flush_log(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) = state.authorize(&actor, AdminAction::FlushAudit, AdminResource::Platform)
    {
        return refusal.into_response();
    }
    match state.gateway.decision_log().flush().await {
        Ok(()) => Json(json!({"flushed": true})).into_response(),
        Err(error) => unavailable(error),
    }
}

/// The gateway's health in detail (downstream failure reasons, the log's place).
#[utoipa::path(get, path = "/admin/health",
    summary = "The gateway's health in detail: policy version, downstream states and reasons, the decision log, issuers' fetched keys",
    description = who::PLATFORM,
    responses((status = 200, description = "health")))]
pub(super) async fn health_details(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) = state.authorize(&actor, AdminAction::ViewHealth, AdminResource::Platform)
    {
        return refusal.into_response();
    }
    let mut details = super::super::health::details(&state.gateway, &state.public_url);
    // Issuers whose keys are fetched by URL: which keys are in force, and why none yet.
    details["issuer_keys"] = state.auth.key_status();
    Json(details).into_response()
}

/// No token: Prometheus scrapes the admin listener, which operators keep off the agents' network.
#[utoipa::path(get, path = "/metrics",
    summary = "Prometheus metrics (OpenMetrics text)",
    description = "No token: keep the admin listener off the agents' network.",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
pub(super) async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        state.gateway.render_metrics().await,
    )
        .into_response()
}
