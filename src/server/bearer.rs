//! Bearer authentication for the agents' listener and the admin API: every request's token
//! is verified on its own, and the actor goes into the request's extensions; anything wrong is
//! a 401 pointing at the protected-resource metadata.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::identity::{ActorRef, AuthError, Authenticator};

/// Authenticates every request to `/mcp` (and to the admin API); anything wrong is a 401
/// pointing at the metadata. The actor goes into the request's extensions.
pub(crate) async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let header_value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.authenticate_header(header_value).await {
        Ok(actor) => {
            request.extensions_mut().insert::<ActorRef>(Arc::new(actor));
            next.run(request).await
        }
        Err(error) => unauthorized(&auth, &error),
    }
}

fn unauthorized(auth: &Authenticator, error: &AuthError) -> Response {
    tracing::info!(target: "capgate::auth", %error, "request refused: 401");
    let challenge = HeaderValue::from_str(&auth.challenge(error))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    let body = Json(serde_json::json!({
        "error": error.oauth_error_code().unwrap_or("unauthorized"),
        "error_description": error.to_string(),
    }));
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        body,
    )
        .into_response()
}
