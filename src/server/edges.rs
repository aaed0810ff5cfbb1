//! The edges of the MCP transport that rmcp answers in ways clients cannot use: a body that is
//! not JSON gets a JSON-RPC parse error (-32700, HTTP 400) instead of 415 with plain text; a
//! body over the size limit gets 413. The parsed request's method is left in the request's
//! extensions ([`Peek`]) for the middlewares behind this one.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The largest request body `/mcp` accepts (rmcp's own limit).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What the edge saw of a POST body.
#[derive(Debug, Clone, Default)]
pub struct Peek {
    /// The JSON-RPC method of a request or notification (`None` for responses and batches).
    pub method: Option<String>,
}

/// A JSON-RPC error response with no id (the request's id is unknown or unreadable).
pub fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "jsonrpc": "2.0",
            "id": Value::Null,
            "error": {"code": code, "message": message},
        })
        .to_string(),
    )
        .into_response()
}

/// Reads a POST body once: too large → 413, not JSON → -32700; otherwise passes it on intact,
/// with its [`Peek`].
pub async fn parse_errors(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return jsonrpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                "the request body is larger than 4 MiB",
            )
        }
    };
    let parsed = match serde_json::from_slice::<Value>(&bytes) {
        Ok(parsed) => parsed,
        Err(_) => return jsonrpc_error(StatusCode::BAD_REQUEST, -32700, "Parse error"),
    };
    let peek = Peek {
        method: parsed
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(peek);
    next.run(request).await
}
