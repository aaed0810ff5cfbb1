//! The overview of the last hour for a tenant (or every tenant): requests per minute by final
//! outcome, the most refused capabilities, the approvals waiting, and the health of the store,
//! the downstream servers and the decision log. Counts come from the decision log, each request
//! once, by its last record (a call allowed and then stopped by a kill switch counts as denied).
//! Health reasons (which can name hosts and paths) are shown to those the admin policy lets see
//! health details; others see each part's state only.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::audit::{Found, Scan, Visit, LISTING_SUMMARY};
use crate::downstream::Health;
use crate::identity::ActorRef;
use crate::policy::{AdminAction, AdminResource};
use crate::store::ApprovalStatus;

use super::decisions::{records_of, EVERY_TENANT};
use super::who;
use super::{unavailable, AdminState};

const WINDOW_SECONDS: i64 = 3600;
const BUCKET_SECONDS: i64 = 60;
/// Most records the overview reads; beyond, it says it is incomplete.
const MAX_SCANNED: usize = 200_000;
const TOP_REFUSED: usize = 5;

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct OverviewQuery {
    /// The caller's own when omitted; `*`: every tenant.
    tenant: Option<String>,
}

/// What the scan adds up: each request once, by its newest record.
#[derive(Default)]
struct Tally {
    seen: HashSet<String>,
    /// Per minute (index 0 = the oldest), outcome → requests.
    minutes: Vec<BTreeMap<String, u64>>,
    totals: BTreeMap<String, u64>,
    /// Capability → refused outcome → requests.
    refused: BTreeMap<String, BTreeMap<String, u64>>,
}

fn is_refusal(outcome: &str) -> bool {
    matches!(
        outcome,
        "deny" | "require_approval" | "require_more_context"
    )
}

#[utoipa::path(get, path = "/admin/overview",
    summary = "The last hour: requests per minute by final outcome, the most refused capabilities, pending approvals, store, downstream and decision-log health (with reasons for those who may see health details)",
    description = who::TENANT_RECORDS,
    params(OverviewQuery),
    responses(
        (status = 200, description = "the overview"),
        (status = 503, description = "the decision log or the store cannot answer"),
    ))]
pub(super) async fn overview(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let tenant = match records_of(&state, &actor, query.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(refusal) => return *refusal,
    };
    let until = crate::policy::now_unix();
    let since = until - WINDOW_SECONDS;
    let buckets = (WINDOW_SECONDS / BUCKET_SECONDS) as usize;
    let scan = Scan {
        after: None,
        since: Some(since),
        max_records: MAX_SCANNED,
    };
    let wanted = tenant.clone();
    let tally = Tally {
        minutes: vec![BTreeMap::new(); buckets],
        ..Tally::default()
    };
    let visit = move |tally: &mut Tally, found: Found| {
        let record = found.record;
        let ours = wanted.as_deref().is_none_or(|t| record.tenant == t);
        if !ours || record.decision == LISTING_SUMMARY || record.time < since {
            return Visit::Continue;
        }
        // Newest first: the first record of a request is its final word.
        if !tally.seen.insert(record.request_id.clone()) {
            return Visit::Continue;
        }
        let bucket = ((record.time - since) / BUCKET_SECONDS).clamp(0, buckets as i64 - 1);
        if let Some(minute) = tally.minutes.get_mut(bucket as usize) {
            *minute.entry(record.decision.clone()).or_default() += 1;
        }
        *tally.totals.entry(record.decision.clone()).or_default() += 1;
        if is_refusal(&record.decision) {
            *tally
                .refused
                .entry(record.resource)
                .or_default()
                .entry(record.decision)
                .or_default() += 1;
        }
        Visit::Continue
    };
    let (tally, end) = match state
        .gateway
        .decision_log()
        .newest_first(scan, tally, visit)
        .await
    {
        Ok(done) => done,
        Err(error) => return unavailable(error),
    };
    let mut refused: Vec<(String, u64, BTreeMap<String, u64>)> = tally
        .refused
        .into_iter()
        .map(|(tool, by)| (tool, by.values().sum(), by))
        .collect();
    refused.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let minutes: Vec<Value> = tally
        .minutes
        .into_iter()
        .enumerate()
        .map(|(i, counts)| json!({"start": since + i as i64 * BUCKET_SECONDS, "counts": counts}))
        .collect();
    Json(json!({
        "tenant": tenant.clone().unwrap_or_else(|| EVERY_TENANT.to_string()),
        "since": since,
        "until": until,
        "bucket_seconds": BUCKET_SECONDS,
        "minutes": minutes,
        "totals": tally.totals,
        "top_refused": refused.into_iter().take(TOP_REFUSED).map(|(tool, total, by)| json!({
            "tool": tool, "refusals": total, "by_outcome": by,
        })).collect::<Vec<_>>(),
        "complete": end.complete,
        "pending_approvals": pending_approvals(&state, tenant.as_deref()).await,
        "health": health(&state, &actor).await,
    }))
    .into_response()
}

/// Approvals of `tenant` (every tenant: `None`) waiting for a decision; `null` when the store
/// does not answer.
async fn pending_approvals(state: &AdminState, tenant: Option<&str>) -> Value {
    let controls = state.gateway.controls();
    let Some(tenant) = tenant else {
        return controls
            .pending_approvals()
            .await
            .map_or(Value::Null, Value::from);
    };
    let now = controls.now();
    match controls.approvals(tenant).await {
        Ok(approvals) => approvals
            .iter()
            .filter(|a| a.status == ApprovalStatus::Pending && now < a.expires_at)
            .count()
            .into(),
        Err(_) => Value::Null,
    }
}

/// The store, each downstream and the decision log; with reasons for those who may see
/// health details.
async fn health(state: &AdminState, actor: &crate::identity::CompositeActor) -> Value {
    let detailed = state.allows(actor, AdminAction::ViewHealth, AdminResource::Platform);
    let gateway = &state.gateway;
    let store = match gateway.controls().pending_approvals().await {
        Ok(_) => json!({"state": "up"}),
        Err(error) if detailed => json!({"state": "down", "reason": error.to_string()}),
        Err(_) => json!({"state": "down"}),
    };
    let downstreams: Vec<Value> = gateway
        .downstreams()
        .iter()
        .map(|server| match server.health() {
            Health::Starting => json!({"id": server.id, "state": "starting"}),
            Health::Up => json!({"id": server.id, "state": "up"}),
            Health::Down(reason) if detailed => {
                json!({"id": server.id, "state": "down", "reason": reason})
            }
            Health::Down(_) => json!({"id": server.id, "state": "down"}),
        })
        .collect();
    let log = gateway.decision_log();
    json!({
        "detailed": detailed,
        "store": store,
        "downstreams": downstreams,
        "decision_log": {
            "failed_records": log.failed_records(),
            "unwritten_records": log.unwritten_records(),
        },
    })
}
