//! Runs of a tenant: a run's manifest from the decision log (every replica's chain, on
//! PostgreSQL), and its budget usage.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::identity::ActorRef;
use crate::policy::{AdminAction, AdminResource};
use crate::store::RunKey;

use super::who;
use super::{unavailable, AdminState};

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub(super) struct RunQuery {
    /// The run's tenant.
    tenant: String,
    /// The run id.
    run: String,
}

#[utoipa::path(get, path = "/admin/runs",
    summary = "A run's manifest: policy versions used, tools called and their decisions (replicas on PostgreSQL: over every replica's chain, with the decisions per chain)",
    description = who::TENANT_RUNS,
    params(RunQuery),
    responses(
        (status = 200, description = "the manifest"),
        (status = 503, description = "the decision log cannot be read"),
    ))]
pub(super) async fn run_manifest(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Query(query): Query<RunQuery>,
) -> Response {
    let run = AdminResource::Run {
        tenant: query.tenant.clone(),
        run: query.run.clone(),
    };
    if let Err(refusal) = state.authorize(&actor, AdminAction::ViewRun, run) {
        return refusal.into_response();
    }
    match state
        .gateway
        .decision_log()
        .run_manifest(&query.tenant, &query.run)
        .await
    {
        Ok(manifest) => Json(manifest).into_response(),
        Err(error) => unavailable(error),
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub(super) struct BudgetQuery {
    /// The run id.
    run: String,
    /// The run's tenant; the caller's own when not given.
    tenant: Option<String>,
    /// A capability's exposed name, for its own count.
    #[serde(default)]
    #[param(required = false)]
    tool: String,
}

#[utoipa::path(get, path = "/admin/budgets",
    summary = "A run's budget usage",
    description = who::TENANT_RUNS,
    params(BudgetQuery),
    responses(
        (status = 200, description = "usage and limits"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
pub(super) async fn budget_usage(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Query(query): Query<BudgetQuery>,
) -> Response {
    let tenant = query.tenant.unwrap_or_else(|| actor.tenant.clone());
    let resource = AdminResource::Run {
        tenant: tenant.clone(),
        run: query.run.clone(),
    };
    if let Err(refusal) = state.authorize(&actor, AdminAction::ViewBudget, resource) {
        return refusal.into_response();
    }
    let controls = state.gateway.controls();
    let run = RunKey::Run {
        tenant: tenant.clone(),
        run: query.run.clone(),
    };
    match controls.usage(&run, &query.tool).await {
        Ok(usage) => Json(json!({
            "tenant": tenant,
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
        Err(error) => unavailable(error),
    }
}
