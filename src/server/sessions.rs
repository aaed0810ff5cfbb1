//! Sessions bound to the principal that opened them. rmcp's session manager knows only session
//! ids; this module wraps it so that every session is owned by one principal (issuer, subject,
//! tenant, agent), and a middleware answers a request carrying another principal's session id
//! exactly as if the session did not exist (404), for POST, GET (resumption included) and
//! DELETE. Sessions end when idle, are capped per principal and overall, and free their
//! binding when they end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};

use crate::config::LimitsConfig;
use crate::identity::{ActorRef, CompositeActor};

use super::edges::{jsonrpc_error, Peek};

/// The header carrying the session id.
const SESSION_HEADER: &str = "mcp-session-id";

/// Who owns a session: the same person through the same agent, from the same issuer and tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub issuer: String,
    pub subject: String,
    pub tenant: String,
    pub agent: Option<String>,
}

impl Principal {
    pub fn of(actor: &CompositeActor) -> Self {
        Self {
            issuer: actor.issuer.clone(),
            subject: actor.user.id.clone(),
            tenant: actor.tenant.clone(),
            agent: actor.agent.as_ref().map(|a| a.id.clone()),
        }
    }
}

#[derive(Default)]
struct Owners {
    by_session: HashMap<SessionId, Principal>,
    per_principal: HashMap<Principal, usize>,
}

impl Owners {
    fn bind(&mut self, session: SessionId, owner: Principal) {
        *self.per_principal.entry(owner.clone()).or_default() += 1;
        self.by_session.insert(session, owner);
    }

    fn unbind(&mut self, session: &SessionId) {
        if let Some(owner) = self.by_session.remove(session) {
            if let Some(count) = self.per_principal.get_mut(&owner) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.per_principal.remove(&owner);
                }
            }
        }
    }
}

/// rmcp's local session manager with owners: a session's binding goes when the session does
/// (closed by DELETE, or ended by idle expiry).
pub struct BoundSessions {
    inner: LocalSessionManager,
    owners: Mutex<Owners>,
    metrics: Arc<crate::metrics::Metrics>,
    per_principal: usize,
    total: usize,
}

impl BoundSessions {
    pub fn new(limits: &LimitsConfig, metrics: Arc<crate::metrics::Metrics>) -> Arc<Self> {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(limits.session_idle());
        Arc::new(Self {
            inner,
            owners: Mutex::new(Owners::default()),
            metrics,
            per_principal: limits.sessions_per_principal,
            total: limits.max_sessions,
        })
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        // A poisoned lock still holds consistent data: each update is one insert or remove.
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes how many sessions are open.
    fn count_open(&self, open: usize) {
        self.metrics.set_sessions_open(open);
    }

    fn owner_of(&self, session: &SessionId) -> Option<Principal> {
        self.owners().by_session.get(session).cloned()
    }

    /// Why `principal` may not open another session, if it may not.
    fn refusal(&self, principal: &Principal) -> Option<Response> {
        let owners = self.owners();
        if owners.per_principal.get(principal).copied().unwrap_or(0) >= self.per_principal {
            return Some(jsonrpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                -32000,
                &format!(
                    "this identity already holds {} sessions, the most it may; close one (HTTP DELETE) or let one expire",
                    self.per_principal
                ),
            ));
        }
        if owners.by_session.len() >= self.total {
            return Some(jsonrpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                -32000,
                "the gateway holds as many sessions as it may; retry later",
            ));
        }
        None
    }
}

impl SessionManager for BoundSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let open = {
            let mut owners = self.owners();
            owners.unbind(id);
            owners.by_session.len()
        };
        self.count_open(open);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_standalone_stream(id).await?;
        // From here the session hears notifications sent to it (tests wait for this line).
        tracing::debug!(session = %id, "notification stream opened");
        Ok(stream)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    fn event_store(
        &self,
    ) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::EventStore>> {
        self.inner.event_store()
    }
}

/// What rmcp answers for a session it does not know; another principal's session gets the same.
fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

/// Binds sessions to principals (see the module documentation). Runs after authentication.
pub async fn bind_sessions(
    State(sessions): State<Arc<BoundSessions>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(actor) = request.extensions().get::<ActorRef>().cloned() else {
        // Unreachable behind authentication; refusing is the safe answer regardless.
        return (StatusCode::UNAUTHORIZED, "unauthenticated").into_response();
    };
    let principal = Principal::of(&actor);
    let method = request.method().clone();
    let presented = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(SessionId::from);
    match &presented {
        Some(session) => match sessions.owner_of(session) {
            Some(owner) if owner == principal => {}
            // Another principal's session, or none (unknown, ended, or not yet bound).
            Some(_) | None => return not_found(),
        },
        None => {
            let opens = request
                .extensions()
                .get::<Peek>()
                .is_some_and(|peek| peek.method.as_deref() == Some("initialize"));
            if opens {
                if let Some(refusal) = sessions.refusal(&principal) {
                    tracing::warn!(target: "capgate::sessions", user = %principal.subject, tenant = %principal.tenant, "session refused: at its cap");
                    return refusal;
                }
            }
        }
    }
    let mut response = next.run(request).await;
    if presented.is_none() {
        let created = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(SessionId::from);
        if let Some(session) = created {
            let open = {
                let mut owners = sessions.owners();
                owners.bind(session, principal);
                owners.by_session.len()
            };
            sessions.count_open(open);
        }
    }
    // A closed session answers 204 No Content (rmcp says 202, which clients take for an error).
    if method == Method::DELETE && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
            .headers_mut()
            .insert("content-length", HeaderValue::from_static("0"));
    }
    response
}
