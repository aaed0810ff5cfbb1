//! What travels back from a downstream call to the client that made it: progress under the
//! client's own token, and the client's cancellation forward. A relay is made per request by
//! the MCP front; the downstream connection keeps, for each call in flight, the route from the
//! progress token it gave the downstream to the client's peer and token.

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RoleServer};
use tokio_util::sync::CancellationToken;

/// The client side of one request.
#[derive(Clone)]
pub struct Relay {
    /// The client's session peer (progress goes to the request's own stream).
    pub peer: Peer<RoleServer>,
    /// The client's progress token, when it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// Cancelled when the client cancels the request.
    pub cancelled: CancellationToken,
    /// The client's session (its `Mcp-Session-Id`; one fixed name over stdio).
    pub session: String,
    /// The level the session set with `logging/setLevel`, if it did.
    #[allow(deprecated)]
    pub log_level: Option<rmcp::model::LoggingLevel>,
    /// What the client declared it can do: at `initialize` for a session, in each request's
    /// `_meta` for a 2026-07-28 client.
    pub capabilities: Option<rmcp::model::ClientCapabilities>,
    /// A 2026-07-28 request, on its own: the client cannot be asked anything while it waits,
    /// so what a downstream needs from it goes back as `input_required`.
    pub stateless: bool,
    /// Where resource updates go when the request is a `subscriptions/listen` (else to the
    /// session's own stream).
    pub updates: Option<rmcp::service::SubscriptionSink>,
}

/// Where a downstream's progress notifications go: downstream token → the client's.
#[derive(Default)]
pub(super) struct ProgressRoutes(Mutex<HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>>);

impl ProgressRoutes {
    fn routes(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>> {
        // Each update is one insert or remove: a poisoned lock still holds consistent data.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes `downstream`'s progress to the relay's client until the guard is dropped.
    pub(super) fn open<'a>(
        &'a self,
        downstream: ProgressToken,
        relay: Option<&Relay>,
    ) -> Option<RouteGuard<'a>> {
        let relay = relay?;
        let client = relay.progress_token.clone()?;
        self.routes()
            .insert(downstream.clone(), (relay.peer.clone(), client));
        Some(RouteGuard {
            routes: self,
            token: downstream,
        })
    }

    /// Passes one progress notification to the client whose call it belongs to.
    pub(super) async fn forward(&self, mut progress: ProgressNotificationParam) {
        let route = self.routes().get(&progress.progress_token).cloned();
        let Some((peer, client_token)) = route else {
            return;
        };
        progress.progress_token = client_token;
        if let Err(error) = peer.notify_progress(progress).await {
            tracing::debug!(%error, "a progress notification could not reach its client");
        }
    }
}

/// Removes a route when its call ends, however it ends.
pub(super) struct RouteGuard<'a> {
    routes: &'a ProgressRoutes,
    token: ProgressToken,
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        self.routes.routes().remove(&self.token);
    }
}
