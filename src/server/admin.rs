//! The admin API, on its own listener: policy status and hot reload, and relationship updates.
//!
//! Every request needs a bearer token valid for capgate whose user holds the configured admin
//! role and on which no agent acts (admins are people). A reload validates the new policy
//! directory first and swaps atomically; an invalid one leaves the running version in place and
//! the response names the file and line.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::enforce::Gateway;
use crate::identity::{ActorRef, Authenticator};
use crate::policy::PolicyLoadError;

#[derive(Clone)]
struct AdminState {
    gateway: Arc<Gateway>,
    auth: Arc<Authenticator>,
    role: String,
}

/// The admin router; mount it on the admin listener.
pub fn admin_router(gateway: Arc<Gateway>, auth: Arc<Authenticator>, role: String) -> Router {
    let state = AdminState {
        gateway,
        auth,
        role,
    };
    Router::new()
        .route("/admin/policy", get(policy_status))
        .route("/admin/policy/reload", post(reload_policy))
        .route("/admin/relationships", post(update_relationships))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_admin,
        ))
        .with_state(state)
}

async fn require_admin(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let header_value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let actor = match state.auth.authenticate_header(header_value) {
        Ok(actor) => actor,
        Err(error) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, state.auth.challenge(&error))],
                Json(json!({"error": "invalid_token", "error_description": error.to_string()})),
            )
                .into_response()
        }
    };
    if actor.agent.is_some() || !actor.user.roles.contains(&state.role) {
        tracing::warn!(target: "capgate::admin", user = %actor.user.id, "admin request refused: 403");
        return (
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": "insufficient_scope",
                "error_description": format!("the admin API needs a person (no agent) with role `{}`", state.role),
            })),
        )
            .into_response();
    }
    request.extensions_mut().insert::<ActorRef>(Arc::new(actor));
    next.run(request).await
}

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
        "relationship_entities": engine.relationship_count(),
    })
}

async fn policy_status(State(state): State<AdminState>) -> Json<Value> {
    Json(status_document(&state.gateway))
}

fn load_error_response(error: &PolicyLoadError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": "the policy set is invalid; the running version stays in effect",
            "problems": error.problems.iter().map(|p| json!({
                "file": p.file, "line": p.line, "message": p.message,
            })).collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

async fn reload_policy(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
) -> Response {
    match state.gateway.policy().reload() {
        Ok(version) => {
            tracing::info!(target: "capgate::admin", user = %actor.user.id, %version, "policy reloaded");
            Json(json!({"reloaded": version, "status": status_document(&state.gateway)}))
                .into_response()
        }
        Err(error) => {
            tracing::warn!(target: "capgate::admin", user = %actor.user.id, %error, "policy reload refused");
            load_error_response(&error)
        }
    }
}

async fn update_relationships(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    Json(entities): Json<Vec<Value>>,
) -> Response {
    match state.gateway.policy().update_relationships(entities) {
        Ok(count) => {
            tracing::info!(target: "capgate::admin", user = %actor.user.id, count, "relationships updated");
            Json(json!({"relationship_entities": count})).into_response()
        }
        Err(message) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": message, "note": "the relationship store is unchanged"})),
        )
            .into_response(),
    }
}
