//! Who is asking the admin API: the bearer token in `Authorization` (as on `/mcp`), or else a
//! console session cookie (see [`crate::server::console::session`]), which is verified again on
//! every request and, for a state change, must bring its CSRF token. Either way the handler
//! gets the same verified actor, and the admin PDP decides what it may do.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::identity::{ActorRef, Authenticator};
use crate::server::console::session::{session_cookie, SessionRefusal, Sessions};

/// What the admin API authenticates with.
#[derive(Clone)]
pub(super) struct Gate {
    pub auth: Arc<Authenticator>,
    /// The console's sessions, when the console is served.
    pub sessions: Option<Arc<Sessions>>,
}

pub(super) async fn authenticate(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> Response {
    let cookie = gate.sessions.as_ref().and_then(|sessions| {
        session_cookie(request.headers()).map(|id| (sessions.clone(), id.to_string()))
    });
    // A bearer header is what it always was; the cookie is asked only without one (a browser
    // never adds an Authorization header by itself, so a cross-site page cannot either).
    let (Some((sessions, id)), None) = (cookie, request.headers().get(header::AUTHORIZATION))
    else {
        return crate::server::bearer::authenticate(State(gate.auth), request, next).await;
    };
    match sessions
        .authenticate(&id, request.method(), request.headers())
        .await
    {
        Ok(actor) => {
            request.extensions_mut().insert::<ActorRef>(Arc::new(actor));
            let mut response = next.run(request).await;
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(refusal) => {
            tracing::info!(target: "capgate::admin", %refusal, "console request refused");
            let status = match refusal {
                SessionRefusal::Csrf | SessionRefusal::CrossOrigin => StatusCode::FORBIDDEN,
                SessionRefusal::Unknown | SessionRefusal::Token(_) => StatusCode::UNAUTHORIZED,
            };
            let error = match refusal {
                SessionRefusal::Csrf | SessionRefusal::CrossOrigin => "csrf",
                SessionRefusal::Unknown | SessionRefusal::Token(_) => "session_ended",
            };
            (
                status,
                Json(json!({"error": error, "error_description": refusal.to_string()})),
            )
                .into_response()
        }
    }
}
