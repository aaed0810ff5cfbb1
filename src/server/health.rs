//! Health: the agents' listener says only whether the gateway can serve (`up`: every
//! downstream connected) or not; the admin listener gives the details (policy version,
//! downstream states with their reasons, the decision log's place and failures).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::downstream::Health;
use crate::enforce::Gateway;

/// `{"status": "up"}` (200) or `{"status": "down"}` (503), and nothing else.
pub fn up_or_down(gateway: &Gateway) -> Response {
    let up = gateway
        .downstreams()
        .iter()
        .all(|s| s.health() == Health::Up);
    if up {
        Json(serde_json::json!({"status": "up"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "down"})),
        )
            .into_response()
    }
}

/// Everything an operator needs to see why the gateway is up or down.
pub fn details(gateway: &Gateway, public_url: &str) -> serde_json::Value {
    let servers: serde_json::Map<String, serde_json::Value> = gateway
        .downstreams()
        .iter()
        .map(|s| {
            let health = match s.health() {
                Health::Starting => "starting".to_string(),
                Health::Up => "up".to_string(),
                Health::Down(reason) => format!("down: {reason}"),
            };
            (s.id.clone(), serde_json::Value::String(health))
        })
        .collect();
    serde_json::json!({
        "status": "ok",
        "public_url": public_url,
        "policy_version": gateway.policy().latest().label(),
        "downstreams": servers,
        "decision_log": {
            "path": gateway.decision_log().path().display().to_string(),
            "failed_records": gateway.decision_log().failed_records(),
            "unwritten_records": gateway.decision_log().unwritten_records(),
        },
    })
}
