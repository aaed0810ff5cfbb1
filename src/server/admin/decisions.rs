//! The decision log as people read it: a page of a tenant's records matching filters (newest
//! first, with a cursor for the next page), one record in full (masked as it was logged), and
//! the chain's verification status. A tenant admin reads its own tenant's records; a platform
//! admin any tenant's, or every tenant's at once (`tenant=*`): the admin PDP decides.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::audit::{Found, Place, Scan, Visit};
use crate::identity::{ActorRef, CompositeActor};
use crate::policy::{AdminAction, AdminResource};

use super::who;
use super::{invalid, not_found, unavailable, AdminState};

/// `tenant=*`: every tenant's records (platform admins).
pub(super) const EVERY_TENANT: &str = "*";
/// Most records one page shows.
const MAX_PAGE: usize = 200;
/// Most records one request reads before answering with what it found and a cursor.
const MAX_SCANNED: usize = 50_000;

/// Whose records a request reads: one tenant's (the caller's by default) or every tenant's.
pub(super) fn records_of(
    state: &AdminState,
    actor: &CompositeActor,
    tenant: Option<&str>,
) -> Result<Option<String>, Box<Response>> {
    let tenant = tenant.unwrap_or(&actor.tenant);
    let (resource, scope) = if tenant == EVERY_TENANT {
        (AdminResource::Platform, None)
    } else {
        (
            AdminResource::Tenant {
                id: tenant.to_string(),
            },
            Some(tenant.to_string()),
        )
    };
    state
        .authorize(actor, AdminAction::ViewDecisions, resource)
        .map_err(|refusal| Box::new(refusal.into_response()))?;
    Ok(scope)
}

/// The filters of a page of records.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct RecordQuery {
    /// The records' tenant; the caller's own when omitted; `*`: every tenant.
    tenant: Option<String>,
    /// A run id.
    run: Option<String>,
    /// A part of the actor (`user/agent`).
    actor: Option<String>,
    /// The capability's exposed name.
    tool: Option<String>,
    /// allow, deny, require_approval, require_more_context, replay, summary.
    decision: Option<String>,
    /// The control that refused.
    refused_by: Option<String>,
    /// Unix seconds: records at or after ...
    since: Option<i64>,
    /// ... and before.
    until: Option<i64>,
    /// `differs`: only records whose shadow decision differs from the decision.
    shadow: Option<String>,
    /// The `next` cursor of the page before.
    after: Option<String>,
    /// Records per page, 1 to 200 (default 50).
    limit: Option<usize>,
}

/// A filter over records, matched on every record a scan visits.
struct Filter {
    tenant: Option<String>,
    query: RecordQuery,
}

impl Filter {
    fn matches(&self, found: &Found) -> bool {
        let record = &found.record;
        let query = &self.query;
        let same = |wanted: &Option<String>, value: Option<&str>| {
            wanted
                .as_deref()
                .filter(|w| !w.is_empty())
                .is_none_or(|w| value == Some(w))
        };
        self.tenant.as_deref().is_none_or(|t| record.tenant == t)
            && same(&query.run, record.run_id.as_deref())
            && query
                .actor
                .as_deref()
                .filter(|a| !a.is_empty())
                .is_none_or(|a| record.actor.contains(a))
            && same(&query.tool, Some(&record.resource))
            && same(&query.decision, Some(&record.decision))
            && same(&query.refused_by, record.refused_by.as_deref())
            && query.since.is_none_or(|s| record.time >= s)
            && query.until.is_none_or(|u| record.time < u)
            && (query.shadow.as_deref() != Some("differs")
                || record
                    .shadow_decision
                    .as_ref()
                    .is_some_and(|s| *s != record.decision))
    }
}

/// A record's line in a list: what a reader scans for, without the request it carried.
pub(super) fn summary(found: &Found) -> Value {
    let r = &found.record;
    json!({
        "chain": found.chain,
        "seq": found.seq,
        "time": r.time,
        "request_id": r.request_id,
        "tenant": r.tenant,
        "run_id": r.run_id,
        "actor": r.actor,
        "action": r.action,
        "resource": r.resource,
        "decision": r.decision,
        "refused_by": r.refused_by,
        "policy_id": r.policy_id,
        "policy_version": r.policy_version,
        "mode": r.mode,
        "shadow_decision": r.shadow_decision,
        "downstream_outcome": r.downstream_outcome,
    })
}

#[utoipa::path(get, path = "/admin/decisions",
    summary = "Decision records newest first, filtered; `next` is the cursor of the following page (absent once the log is read to its start)",
    description = who::TENANT_RECORDS,
    params(RecordQuery),
    responses(
        (status = 200, description = "a page of records"),
        (status = 422, description = "`after` is not a cursor this API gave"),
        (status = 503, description = "the decision log cannot be read"),
    ))]
pub(super) async fn list(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Query(query): Query<RecordQuery>,
) -> Response {
    let tenant = match records_of(&state, &actor, query.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(refusal) => return *refusal,
    };
    let after = match query.after.as_deref().filter(|a| !a.is_empty()) {
        Some(text) => match Place::decode(text) {
            Some(place) => Some(place),
            None => return invalid(format!("`{text}` is not a cursor this API gave")),
        },
        None => None,
    };
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let scan = Scan {
        after,
        since: query.since,
        max_records: MAX_SCANNED,
    };
    let filter = Filter {
        tenant: tenant.clone(),
        query,
    };
    let visit = move |page: &mut Vec<Found>, found: Found| {
        if filter.matches(&found) {
            page.push(found);
        }
        if page.len() >= limit {
            Visit::Stop
        } else {
            Visit::Continue
        }
    };
    match state
        .gateway
        .decision_log()
        .newest_first(scan, Vec::new(), visit)
        .await
    {
        Ok((page, end)) => {
            let next = if end.complete {
                None
            } else {
                end.last.map(|p| p.encode())
            };
            Json(json!({
                "tenant": tenant.unwrap_or_else(|| EVERY_TENANT.to_string()),
                "records": page.iter().map(summary).collect::<Vec<_>>(),
                "next": next,
                "scanned": end.scanned,
            }))
            .into_response()
        }
        Err(error) => unavailable(error),
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct RecordPlace {
    /// The replica's chain id (PostgreSQL only).
    chain: Option<String>,
}

/// One record in full, as it was logged (its arguments masked by `[audit] mask_arguments`).
#[utoipa::path(get, path = "/admin/decisions/{seq}",
    summary = "One decision record in full (arguments masked as logged), with its hash",
    description = who::TENANT_RECORDS,
    params(("seq" = i64, Path, description = "the record's sequence number"), RecordPlace),
    responses(
        (status = 200, description = "the record"),
        (status = 404, description = "no such record"),
        (status = 503, description = "the decision log cannot be read"),
    ))]
pub(super) async fn record(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Path(seq): Path<i64>,
    Query(place): Query<RecordPlace>,
) -> Response {
    let found = match state.gateway.decision_log().find(place.chain, seq).await {
        Ok(found) => found,
        Err(error) => return unavailable(error),
    };
    // A record that does not exist is asked about as one of the caller's tenant: who may not
    // read records learns nothing, who may hears that it does not exist.
    let tenant = found
        .as_ref()
        .map_or(actor.tenant.clone(), |f| f.record.tenant.clone());
    if let Err(refusal) = state.authorize(
        &actor,
        AdminAction::ViewDecisions,
        AdminResource::Tenant { id: tenant },
    ) {
        return refusal.into_response();
    }
    match found {
        Some(found) => Json(json!({
            "chain": found.chain,
            "seq": found.seq,
            "hash": found.hash,
            "record": found.record,
        }))
        .into_response(),
        None => not_found(format!("no decision record {seq}")),
    }
}

/// Whether the log's hash chain and signed checkpoints verify, with this gateway's checkpoint
/// key: verified up to which record, the last signed checkpoint.
#[utoipa::path(get, path = "/admin/audit/verification",
    summary = "Whether each chain of the decision log verifies with this gateway's checkpoint key: verified up to which record, the last signed checkpoint, the problems found",
    description = "Tenant admins and platform admins (sequence numbers and counts only, no record's content).",
    responses(
        (status = 200, description = "the status of every chain"),
        (status = 503, description = "the checkpoint key's public half is unknown, or the log cannot be read"),
    ))]
pub(super) async fn verification(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) = state.authorize(
        &actor,
        AdminAction::VerifyDecisionLog,
        AdminResource::Platform,
    ) {
        return refusal.into_response();
    }
    let Some(key) = state.log_key else {
        return unavailable("the checkpoint key's public half could not be read at start; verify with `capgate audit verify --public-key`");
    };
    match state.gateway.decision_log().chain_status(vec![key]).await {
        Ok(chains) => Json(json!({
            "public_key": hex::encode(key.to_bytes()),
            "intact": chains.iter().all(|c| c.intact),
            "chains": chains,
        }))
        .into_response(),
        Err(error) => unavailable(error),
    }
}
