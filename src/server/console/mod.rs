//! The web console for approvers and admins, served by the admin listener at `/console`.
//!
//! It is a set of static pages and scripts compiled into the binary (`assets/`: no build step,
//! no CDN, no inline script or style), whose scripts call the admin API (`/admin/*`,
//! `/approvals`, `/break-glass`) with the console's session cookie instead of a bearer header.
//! The console holds no authorization rule: every page shows what the admin API answers, and
//! the admin API asks the admin PDP for every request, whichever way it was authenticated.
//!
//! - `session`: sessions, their cookie and CSRF token (the admin API's authentication accepts
//!   them beside bearer tokens);
//! - `sign_in`: signing in (a pasted token, or one an authenticating proxy passes) and out;
//! - `assets`: the embedded files and the pages that serve them.
//!
//! Every console response carries a strict Content-Security-Policy (scripts, styles and
//! connections from this origin only; no framing), `nosniff`, no referrer, and `no-store`.

mod assets;
pub mod session;
mod sign_in;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use session::Sessions;

/// The Content-Security-Policy of every console response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes: its pages, its assets and its session endpoints.
pub fn console_router(sessions: Arc<Sessions>) -> Router {
    let mut pages = Router::new();
    for path in assets::PAGE_PATHS {
        pages = pages.route(path, get(assets::page));
    }
    Router::new()
        .route("/console/assets/{name}", get(assets::asset))
        .merge(pages)
        .route("/console/api/session", get(sign_in::session))
        .route("/console/api/sign-in", post(sign_in::sign_in))
        .route("/console/api/sign-out", post(sign_in::sign_out))
        .with_state(sessions)
        .layer(axum::middleware::from_fn(security_headers))
}

/// The headers that keep the console's pages to themselves.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    response
}
