//! Requests a downstream server sends back toward the client while it serves a call
//! (`elicitation/create`, `sampling/createMessage`): each is routed to the client call that
//! caused it and answered there, by whoever forwarded that call (the PEP decides and relays
//! it; this module knows nothing of policy).
//!
//! Which call caused a request: over streamable HTTP, a downstream that relates its request
//! sends it on the response stream of that call's POST, which rmcp reports as
//! [`InboundStreamOrigin::OutboundRequest`]. Over stdio, or when the downstream sends it on its
//! standalone stream, nothing says; the request is then routed only when exactly one call that
//! can answer is in flight on that connection, and refused otherwise: guessing could ask the
//! wrong client (another tenant's), or decide on the wrong tool.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

#[allow(deprecated)] // sampling/createMessage is how 2025-11-25 servers sample.
use rmcp::model::{CreateMessageRequestParams, CreateMessageResult};
use rmcp::model::{ElicitRequestParams, ElicitResult, ErrorData, RequestId};
use rmcp::service::InboundStreamOrigin;
use tokio::sync::{mpsc, oneshot, watch};

/// One server-to-client request.
#[allow(deprecated)]
pub enum Ask {
    Elicit(ElicitRequestParams),
    Sample(CreateMessageRequestParams),
}

/// The client's answer to an [`Ask`].
#[allow(deprecated)]
pub enum Answer {
    Elicited(ElicitResult),
    Sampled(Box<CreateMessageResult>),
}

/// An ask on its way to the call that answers it.
pub(super) struct PendingAsk {
    pub ask: Ask,
    pub reply: oneshot::Sender<Result<Answer, ErrorData>>,
}

/// Whoever forwarded a call answers the asks it causes (in the call's own task, so the client
/// gets them on that call's stream).
pub trait AnswerAsks: Sync {
    fn answer<'a>(
        &'a self,
        ask: Ask,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, ErrorData>> + Send + 'a>>;
}

/// How long an ask waits for its call's route: the call's request id is known only once rmcp
/// has queued the request, so an ask can in principle overtake the route's registration.
const ROUTE_WAIT: Duration = Duration::from_secs(1);

/// The calls in flight on one connection that can answer asks, by downstream request id.
pub(super) struct AskRoutes {
    routes: Mutex<HashMap<RequestId, mpsc::Sender<PendingAsk>>>,
    /// Bumped whenever a route opens.
    opened: watch::Sender<u64>,
}

impl Default for AskRoutes {
    fn default() -> Self {
        Self {
            routes: Mutex::default(),
            opened: watch::channel(0).0,
        }
    }
}

impl AskRoutes {
    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, mpsc::Sender<PendingAsk>>> {
        // Each update is one insert or remove: a poisoned lock still holds consistent data.
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, origin: Option<&InboundStreamOrigin>) -> Option<mpsc::Sender<PendingAsk>> {
        let routes = self.routes();
        match origin {
            Some(InboundStreamOrigin::OutboundRequest(id)) => routes.get(id).cloned(),
            // No stream separation (stdio), or sent on the standalone stream (as servers that
            // do not relate requests send them): only an unambiguous call may answer.
            Some(InboundStreamOrigin::Unassociated) | None if routes.len() == 1 => {
                routes.values().next().cloned()
            }
            Some(InboundStreamOrigin::Unassociated) | None => None,
        }
    }

    /// The route for `origin`, waiting briefly for one that is being opened.
    async fn wait_for(
        &self,
        origin: Option<&InboundStreamOrigin>,
    ) -> Option<mpsc::Sender<PendingAsk>> {
        let related = matches!(origin, Some(InboundStreamOrigin::OutboundRequest(_)));
        let mut opened = self.opened.subscribe();
        let deadline = tokio::time::Instant::now() + ROUTE_WAIT;
        loop {
            opened.borrow_and_update();
            if let Some(route) = self.find(origin) {
                return Some(route);
            }
            // Several unrelated calls in flight stay ambiguous however long one waits.
            if !related && !self.routes().is_empty() {
                return None;
            }
            if tokio::time::timeout_at(deadline, opened.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Routes asks that `request` causes to the returned receiver until the guard is dropped.
    pub(super) fn open(
        &self,
        request: RequestId,
    ) -> (AskRouteGuard<'_>, mpsc::Receiver<PendingAsk>) {
        let (tx, rx) = mpsc::channel(1);
        self.routes().insert(request.clone(), tx);
        self.opened.send_modify(|n| *n += 1);
        (
            AskRouteGuard {
                routes: self,
                request,
            },
            rx,
        )
    }

    /// Hands `ask` to the call that caused it and waits for its answer.
    pub(super) async fn route(
        &self,
        server: &str,
        origin: Option<&InboundStreamOrigin>,
        ask: Ask,
    ) -> Result<Answer, ErrorData> {
        let Some(route) = self.wait_for(origin).await else {
            tracing::warn!(server, "a downstream request to the client was refused: it belongs to no tool call in flight that capgate can tell");
            return Err(ErrorData::invalid_request(
                "capgate relays elicitation and sampling only within the tool call that causes them, and cannot tell which call this belongs to",
                None,
            ));
        };
        let (reply, answered) = oneshot::channel();
        let gone =
            || ErrorData::internal_error("the tool call this request belongs to has ended", None);
        route
            .send(PendingAsk { ask, reply })
            .await
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

/// Removes a route when its call ends, however it ends.
pub(super) struct AskRouteGuard<'a> {
    routes: &'a AskRoutes,
    request: RequestId,
}

impl Drop for AskRouteGuard<'_> {
    fn drop(&mut self) {
        self.routes.routes().remove(&self.request);
    }
}
