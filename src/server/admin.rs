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
    public_url: String,
}

/// The admin router; mount it on the admin listener.
pub fn admin_router(
    gateway: Arc<Gateway>,
    auth: Arc<Authenticator>,
    role: String,
    public_url: String,
) -> Router {
    let state = AdminState {
        gateway,
        auth,
        role,
        public_url,
    };
    let approvals = Router::new()
        .route("/approvals", get(list_approvals))
        .route("/approvals/{id}/approve", post(approve))
        .route("/approvals/{id}/reject", post(reject))
        .route("/break-glass", get(list_grants).post(open_grant))
        .route("/break-glass/{id}/revoke", post(revoke_grant))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_person,
        ))
        .with_state(state.clone());
    Router::new()
        .route("/admin/policy", get(policy_status))
        .route("/admin/policy/reload", post(reload_policy))
        .route("/admin/relationships", post(update_relationships))
        .route(
            "/admin/kill-switches",
            get(list_kill_switches).post(set_kill_switch),
        )
        .route("/admin/kill-switches/lift", post(lift_kill_switch))
        .route("/admin/budgets", get(budget_usage))
        .route("/admin/runs", get(run_manifest))
        .route("/admin/audit/flush", post(flush_log))
        .route("/admin/health", get(health_details))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_admin,
        ))
        .with_state(state.clone())
        .merge(approvals)
        // Prometheus scrapes the admin listener, which operators keep off the agents' network.
        .route("/metrics", get(metrics).with_state(state))
}

/// The gateway's health in detail (downstream failure reasons, the log's place).
async fn health_details(State(state): State<AdminState>) -> Json<Value> {
    Json(super::health::details(&state.gateway, &state.public_url))
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.gateway.render_metrics().await,
    )
        .into_response()
}

/// Approvers are authenticated people; what they may approve is checked per approval.
async fn require_person(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticated(&state, &request) {
        Ok(actor) => {
            request.extensions_mut().insert::<ActorRef>(Arc::new(actor));
            next.run(request).await
        }
        Err(error) => unauthorized(&state, &error),
    }
}

async fn list_approvals(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
) -> Response {
    match state.gateway.controls().approvals(&actor.tenant).await {
        Ok(approvals) => Json(json!({ "approvals": approvals })).into_response(),
        Err(refusal) => unavailable(refusal),
    }
}

async fn decide(state: AdminState, actor: ActorRef, id: String, approve: bool) -> Response {
    use crate::enforce::ApprovalDecisionError;
    match state
        .gateway
        .controls()
        .decide_approval(&id, approve, &actor)
        .await
    {
        Ok(approval) => {
            tracing::warn!(target: "capgate::admin", approver = %actor.user.id, approval = %id, approve, "approval decided");
            Json(json!({ "approval": approval })).into_response()
        }
        Err(ApprovalDecisionError::Forbidden(why)) => {
            tracing::warn!(target: "capgate::admin", approver = %actor.user.id, approval = %id, %why, "approval decision refused");
            (StatusCode::FORBIDDEN, Json(json!({"error": why}))).into_response()
        }
        Err(ApprovalDecisionError::Problem(problem)) => (
            StatusCode::CONFLICT,
            Json(json!({"error": problem.to_string()})),
        )
            .into_response(),
        Err(ApprovalDecisionError::Store(refusal)) => unavailable(refusal),
    }
}

async fn approve(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    decide(state, actor, id, true).await
}

async fn reject(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    decide(state, actor, id, false).await
}

/// The request's authenticated actor.
fn authenticated(
    state: &AdminState,
    request: &Request,
) -> Result<crate::identity::CompositeActor, crate::identity::AuthError> {
    let header_value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.auth.authenticate_header(header_value)
}

/// The 401 for a refused token, pointing at the protected-resource metadata.
fn unauthorized(state: &AdminState, error: &crate::identity::AuthError) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, state.auth.challenge(error))],
        Json(json!({"error": "invalid_token", "error_description": error.to_string()})),
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

async fn require_admin(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let actor = match authenticated(&state, &request) {
        Ok(actor) => actor,
        Err(error) => return unauthorized(&state, &error),
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
    match state.gateway.reload_policy().await {
        Ok(version) => {
            tracing::info!(target: "capgate::admin", user = %actor.user.id, %version, "policy reloaded");
            Json(json!({"reloaded": version, "status": status_document(&state.gateway)}))
                .into_response()
        }
        Err(crate::enforce::ReloadError::Policy(error)) => {
            tracing::warn!(target: "capgate::admin", user = %actor.user.id, %error, "policy reload refused");
            load_error_response(&error)
        }
        Err(crate::enforce::ReloadError::Store(error)) => unavailable(error),
    }
}

async fn update_relationships(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    Json(entities): Json<Vec<Value>>,
) -> Response {
    use crate::enforce::RelationshipError;
    match state
        .gateway
        .update_relationships(entities, &actor.user.id)
        .await
    {
        Ok(count) => {
            tracing::info!(target: "capgate::admin", user = %actor.user.id, count, "relationships updated");
            Json(json!({"relationship_entities": count})).into_response()
        }
        Err(RelationshipError::Store(error)) => unavailable(error),
        Err(RelationshipError::Invalid(message)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": message, "note": "the relationship store is unchanged"})),
        )
            .into_response(),
    }
}

/// Answers once every record the gateway has logged so far is committed.
async fn flush_log(State(state): State<AdminState>) -> Response {
    match state.gateway.decision_log().flush().await {
        Ok(()) => Json(json!({"flushed": true})).into_response(),
        Err(error) => unavailable(error),
    }
}

async fn list_kill_switches(State(state): State<AdminState>) -> Json<Value> {
    Json(json!({ "kill_switches": state.gateway.controls().kill_switches() }))
}

#[derive(serde::Deserialize)]
struct KillRequest {
    #[serde(flatten)]
    scope: crate::store::KillScope,
    reason: Option<String>,
}

async fn set_kill_switch(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    Json(request): Json<KillRequest>,
) -> Response {
    let Some(reason) = request.reason.filter(|r| !r.trim().is_empty()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "a kill switch needs a reason"})),
        )
            .into_response();
    };
    let switch = crate::store::KillSwitch {
        scope: request.scope,
        reason,
        set_by: actor.user.id.clone(),
        set_at: crate::policy::now_unix(),
    };
    tracing::warn!(target: "capgate::admin", user = %actor.user.id, scope = ?switch.scope, reason = %switch.reason, "kill switch set");
    match state.gateway.controls().set_kill_switch(switch).await {
        Ok(()) => Json(json!({ "kill_switches": state.gateway.controls().kill_switches() }))
            .into_response(),
        Err(error) => unavailable(error),
    }
}

async fn lift_kill_switch(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    Json(request): Json<KillRequest>,
) -> Response {
    tracing::warn!(target: "capgate::admin", user = %actor.user.id, scope = ?request.scope, "kill switch lifted");
    match state
        .gateway
        .controls()
        .lift_kill_switch(&request.scope)
        .await
    {
        Ok(lifted) => Json(json!({
            "lifted": lifted,
            "kill_switches": state.gateway.controls().kill_switches(),
        }))
        .into_response(),
        Err(error) => unavailable(error),
    }
}

#[derive(serde::Deserialize)]
struct BudgetQuery {
    /// A run id of the admin's tenant.
    run: String,
    #[serde(default)]
    tool: String,
}

async fn budget_usage(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    axum::extract::Query(query): axum::extract::Query<BudgetQuery>,
) -> Response {
    let controls = state.gateway.controls();
    let run = crate::store::RunKey::Run {
        tenant: actor.tenant.clone(),
        run: query.run.clone(),
    };
    match controls.usage(&run, &query.tool).await {
        Ok(usage) => Json(json!({
            "run": query.run,
            "usage": usage,
            "limits": {
                "max_calls_per_run": controls.config().max_calls_per_run,
                "max_calls_per_tool": controls.config().max_calls_per_tool,
                "max_cost_per_run": controls.config().max_cost_per_run,
            },
            "remaining_calls": controls.remaining(&usage),
        }))
        .into_response(),
        Err(refusal) => unavailable(refusal),
    }
}

async fn open_grant(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    Json(request): Json<crate::enforce::BreakGlassRequest>,
) -> Response {
    use crate::enforce::BreakGlassError;
    match state
        .gateway
        .controls()
        .open_break_glass(&actor, request)
        .await
    {
        Ok(grant) => Json(json!({ "grant": grant })).into_response(),
        Err(BreakGlassError::Forbidden(why)) => {
            tracing::warn!(target: "capgate::break_glass", user = %actor.user.id, %why, "break-glass refused");
            (StatusCode::FORBIDDEN, Json(json!({"error": why}))).into_response()
        }
        Err(BreakGlassError::Invalid(why)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": why})),
        )
            .into_response(),
        Err(BreakGlassError::Unknown(why)) => {
            (StatusCode::NOT_FOUND, Json(json!({"error": why}))).into_response()
        }
        Err(BreakGlassError::Store(error)) => unavailable(error),
    }
}

async fn revoke_grant(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    use crate::enforce::BreakGlassError;
    match state
        .gateway
        .controls()
        .revoke_break_glass(&actor, &id)
        .await
    {
        Ok(grant) => Json(json!({ "grant": grant })).into_response(),
        Err(BreakGlassError::Forbidden(why)) => {
            tracing::warn!(target: "capgate::break_glass", user = %actor.user.id, %why, "break-glass revocation refused");
            (StatusCode::FORBIDDEN, Json(json!({"error": why}))).into_response()
        }
        Err(BreakGlassError::Invalid(why)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": why})),
        )
            .into_response(),
        Err(BreakGlassError::Unknown(why)) => {
            (StatusCode::NOT_FOUND, Json(json!({"error": why}))).into_response()
        }
        Err(BreakGlassError::Store(error)) => unavailable(error),
    }
}

async fn list_grants(
    State(state): State<AdminState>,
    axum::Extension(actor): axum::Extension<ActorRef>,
) -> Response {
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

/// The admin API as an OpenAPI 3.1 document (`capgate admin openapi`).
pub fn openapi() -> Value {
    let schema = |value: schemars::Schema| serde_json::to_value(value).unwrap_or(Value::Null);
    let bearer = json!([{"bearer": []}]);
    let ok = |description: &str| json!({"200": {"description": description}});
    let op = |summary: &str, description: &str| json!({"summary": summary, "security": bearer.clone(), "responses": ok(description)});
    let with_body = |summary: &str, body: Value| {
        json!({
            "summary": summary,
            "security": bearer.clone(),
            "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "done"}, "401": {"description": "no valid token"},
                          "403": {"description": "not allowed"}, "422": {"description": "invalid request"}}
        })
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "capgate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Served on the admin listener. /admin/* needs a person (no agent) with the admin role; /approvals needs an approver (role, same tenant, not the requester); /break-glass needs the break-glass role."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "KillSwitch": schema(schemars::schema_for!(crate::store::KillSwitch)),
                "KillScope": schema(schemars::schema_for!(crate::store::KillScope)),
                "Approval": schema(schemars::schema_for!(crate::store::Approval)),
                "BreakGlassGrant": schema(schemars::schema_for!(crate::store::BreakGlassGrant)),
            }
        },
        "paths": {
            "/admin/policy": {"get": op("Policy versions in effect, loaded and shadow", "status")},
            "/admin/policy/reload": {"post": op("Validate policies/ and swap atomically (422 with file and line when invalid)", "reloaded")},
            "/admin/relationships": {"post": with_body("Add or replace relationship entities (Cedar entity JSON)", json!({"type": "array", "items": {"type": "object"}}))},
            "/admin/kill-switches": {
                "get": op("Kill switches that are on", "list"),
                "post": with_body("Flip a kill switch (scope, target, reason)", json!({"allOf": [{"$ref": "#/components/schemas/KillScope"}], "properties": {"reason": {"type": "string"}}, "required": ["reason"]}))
            },
            "/admin/health": {"get": op("The gateway's health in detail: policy version, downstream states and reasons, the decision log", "health")},
            "/metrics": {"get": {"summary": "Prometheus metrics (no token: keep the admin listener off the agents' network)", "responses": ok("Prometheus text")}},
            "/admin/audit/flush": {"post": op("Wait until every decision record logged so far is committed", "flushed")},
            "/admin/kill-switches/lift": {"post": with_body("Lift a kill switch", json!({"$ref": "#/components/schemas/KillScope"}))},
            "/admin/runs": {"get": {"summary": "A run's manifest: policy versions used, tools called and their decisions", "security": bearer.clone(),
                "parameters": [{"name": "tenant", "in": "query", "required": true, "schema": {"type": "string"}},
                               {"name": "run", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": ok("manifest")}},
            "/admin/budgets": {"get": {"summary": "A run's budget usage", "security": bearer.clone(),
                "parameters": [{"name": "run", "in": "query", "required": true, "schema": {"type": "string"}, "description": "a run id of the caller's tenant"},
                               {"name": "tool", "in": "query", "required": false, "schema": {"type": "string"}}],
                "responses": ok("usage and limits")}},
            "/approvals": {"get": op("Approval requests of the caller's tenant", "list")},
            "/approvals/{id}/approve": {"post": {"summary": "Grant a pending approval", "security": bearer.clone(),
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "approved"}, "403": {"description": "not an allowed approver"}, "409": {"description": "not pending or expired"}}}},
            "/approvals/{id}/reject": {"post": {"summary": "Reject a pending approval", "security": bearer.clone(),
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "rejected"}, "403": {"description": "not an allowed approver"}, "409": {"description": "not pending or expired"}}}},
            "/break-glass": {
                "get": op("Break-glass grants of the caller's tenant, open and expired, with uses", "list"),
                "post": with_body("Open a time-limited break-glass grant", json!({"type": "object", "required": ["user", "reason", "expires_in_seconds"],
                    "properties": {"user": {"type": "string"}, "agent_role": {"type": "string"}, "tool": {"type": "string"},
                                   "reason": {"type": "string", "minLength": 10}, "expires_in_seconds": {"type": "integer", "minimum": 1}}}))
            },
            "/break-glass/{id}/revoke": {"post": {"summary": "Revoke a break-glass grant of the caller's tenant (effective on the next request)", "security": bearer.clone(),
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "revoked"}, "403": {"description": "not a person with the break-glass role"}, "404": {"description": "no such open grant in the caller's tenant"}}}}
        }
    })
}

#[derive(serde::Deserialize)]
struct RunQuery {
    tenant: String,
    run: String,
}

async fn run_manifest(
    State(state): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<RunQuery>,
) -> Response {
    let path = state.gateway.decision_log().path().to_path_buf();
    let manifest = tokio::task::spawn_blocking(move || {
        crate::audit::run_manifest(&path, &query.tenant, &query.run)
    })
    .await;
    match manifest {
        Ok(Ok(manifest)) => Json(manifest).into_response(),
        Ok(Err(error)) => unavailable(error),
        Err(error) => unavailable(error),
    }
}
