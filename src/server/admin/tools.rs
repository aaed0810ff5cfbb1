//! `/admin/tools/*`: tool-definition pins. Platform admins see which tools are quarantined
//! (pinned and listed digests, what changed) and accept a new definition by its digest.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::enforce::AcceptError;
use crate::identity::ActorRef;
use crate::policy::{AdminAction, AdminResource};

use super::who;
use super::{invalid, not_found, unavailable, AdminState};

/// Quarantined tools and the pins in the store.
#[utoipa::path(get, path = "/admin/tools",
    summary = "Tool-definition pins and quarantined tools (pinned and listed digests, what changed)",
    description = who::PLATFORM,
    responses((status = 200, description = "`quarantined`: [Quarantined], `pins`: [ToolPin]")))]
pub(super) async fn list(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
) -> Response {
    if let Err(refusal) =
        state.authorize(&actor, AdminAction::ViewToolPins, AdminResource::Platform)
    {
        return refusal.into_response();
    }
    let pins = match state.gateway.controls().store().tool_pins().await {
        Ok(pins) => pins,
        Err(error) => return unavailable(error),
    };
    Json(json!({
        "quarantined": state.gateway.quarantined_tools(),
        "pins": pins,
    }))
    .into_response()
}

/// The body of `POST /admin/tools/accept`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The downstream server's id.
    pub server: String,
    /// The downstream's own name for the tool.
    pub tool: String,
    /// The digest of the definition the downstream lists now (from `GET /admin/tools`), so that
    /// what is accepted is what was reviewed.
    pub digest: String,
}

/// Accepts the definition a downstream lists now: the tool leaves quarantine.
#[utoipa::path(post, path = "/admin/tools/accept",
    summary = "Accept the definition a downstream lists now for a quarantined tool, named by its digest",
    description = who::PLATFORM,
    responses(
        (status = 200, description = "`accepted`: the new pin (ToolPin)"),
        (status = 404, description = "the tool is not contracted, or not listed by its downstream now"),
        (status = 422, description = "the tool is pinned in its contract, or the digest differs from the listed definition's"),
        (status = 503, description = "the enforcement store cannot answer"),
    ))]
pub(super) async fn accept(
    State(state): State<AdminState>,
    Extension(actor): Extension<ActorRef>,
    Json(body): Json<AcceptBody>,
) -> Response {
    if let Err(refusal) = state.authorize(
        &actor,
        AdminAction::AcceptToolDefinition,
        AdminResource::Platform,
    ) {
        return refusal.into_response();
    }
    let by = actor.user.id.clone();
    match state
        .gateway
        .accept_tool_definition(&body.server, &body.tool, &body.digest, &by)
        .await
    {
        Ok(pin) => Json(json!({ "accepted": pin })).into_response(),
        Err(error @ (AcceptError::NotContracted | AcceptError::NotListed)) => not_found(error),
        Err(error @ (AcceptError::PinnedInContract | AcceptError::DigestDiffers { .. })) => {
            invalid(error)
        }
        Err(AcceptError::Store(error)) => unavailable(error),
    }
}
