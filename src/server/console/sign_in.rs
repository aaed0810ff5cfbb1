//! Signing in and out of the console, and what a page may know of its session.
//!
//! - `POST /console/api/sign-in` with `{"token": "..."}` (pasted), or with no token when the
//!   configured proxy header carries one: the token is verified like any bearer token; the
//!   answer sets the session cookie. Only from the console's own origin (no login CSRF).
//! - `POST /console/api/sign-out`: ends the session (with its CSRF token).
//! - `GET /console/api/session`: whether this browser is signed in, and its CSRF token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::session::{same_origin, session_cookie, SessionRefusal, Sessions, SignIn};

fn answer(status: StatusCode, error: &str, description: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description.to_string()})),
    )
        .into_response()
}

/// Whether the page asking is served over HTTPS, as its browser says (`Origin`) or a proxy in
/// front of the listener says (`X-Forwarded-Proto`).
fn over_https(headers: &HeaderMap) -> bool {
    let says = |name: &str, prefix: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(prefix))
    };
    says("origin", "https://") || says("x-forwarded-proto", "https")
}

#[derive(serde::Deserialize, Default)]
struct SignInBody {
    #[serde(default)]
    token: Option<String>,
}

pub(super) async fn sign_in(
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The browser always names the origin of a POST made by a page: a sign-in from another
    // site's page (login CSRF) is refused.
    if headers.get(header::ORIGIN).is_none() || !same_origin(&headers) {
        return answer(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "sign in from the console's own page",
        );
    }
    let body: SignInBody = if body.is_empty() {
        SignInBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(error) => {
                return answer(StatusCode::BAD_REQUEST, "invalid_request", error);
            }
        }
    };
    let proxied = sessions
        .config()
        .proxy_token_header
        .as_deref()
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_string());
    let (token, via) = match (body.token.filter(|t| !t.trim().is_empty()), proxied) {
        (Some(token), _) => (token, SignIn::Token),
        (None, Some(token)) => (token, SignIn::Proxy),
        (None, None) => {
            return answer(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "paste a bearer token from your identity provider",
            )
        }
    };
    match sessions.sign_in(&token, via).await {
        Ok((id, actor)) => {
            tracing::info!(target: "capgate::admin", user = %actor.user.id, tenant = %actor.tenant, ?via, "console sign-in");
            let cookie = sessions.cookie(&id, over_https(&headers));
            let view = sessions.view(&id);
            (
                [(header::SET_COOKIE, cookie)],
                Json(json!({"signed_in": true, "session": view})),
            )
                .into_response()
        }
        Err(error) => {
            tracing::info!(target: "capgate::admin", %error, ?via, "console sign-in refused");
            answer(StatusCode::UNAUTHORIZED, "invalid_token", error)
        }
    }
}

pub(super) async fn sign_out(
    State(sessions): State<Arc<Sessions>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(id) = session_cookie(&headers) else {
        return answer(StatusCode::UNAUTHORIZED, "unauthorized", "not signed in");
    };
    match sessions.authenticate(id, &method, &headers).await {
        Ok(actor) => {
            tracing::info!(target: "capgate::admin", user = %actor.user.id, "console sign-out");
        }
        Err(refusal @ (SessionRefusal::Csrf | SessionRefusal::CrossOrigin)) => {
            return answer(StatusCode::FORBIDDEN, "csrf", refusal);
        }
        Err(SessionRefusal::Unknown | SessionRefusal::Token(_)) => {}
    }
    sessions.sign_out(id);
    let [plain, secure] = Sessions::cleared();
    (
        [(header::SET_COOKIE, plain), (header::SET_COOKIE, secure)],
        Json(json!({"signed_in": false})),
    )
        .into_response()
}

pub(super) async fn session(State(sessions): State<Arc<Sessions>>, headers: HeaderMap) -> Response {
    let view = session_cookie(&headers).and_then(|id| sessions.view(id));
    let proxy = sessions.config().proxy_token_header.is_some();
    match view {
        Some(view) => Json(json!({"signed_in": true, "session": view})).into_response(),
        None => Json(json!({"signed_in": false, "proxy_sign_in": proxy})).into_response(),
    }
}
