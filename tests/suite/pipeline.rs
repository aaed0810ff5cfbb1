//! One enforcement pipeline for tools, resources and prompts, with real MCP traffic: every
//! refusal kind leaves exactly one record and one count and a safe agent text (`refusals`);
//! obligations, kill switches and budgets bind every capability kind (`capability_kinds`);
//! replays are records, claims carry leases, scope keys are structures (`idempotency`); a
//! kill switch flipped mid-call stops what waits, a revoked grant the next call
//! (`admin_changes`). This module reads what a refused request's answer said.

mod admin_changes;
mod capability_kinds;
mod idempotency;
mod refusals;

use crate::common::*;
use serde_json::Value;

/// What a request's answer said: its request id and the text an agent reads.
struct Answer {
    request_id: String,
    text: String,
}

fn tool_answer(result: &rmcp::model::CallToolResult) -> Answer {
    let meta = serde_json::to_value(&result.meta).expect("meta");
    Answer {
        request_id: meta["dev.capgate/decision"]["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id in {meta}; text {}", text_of(result)))
            .to_string(),
        text: text_of(result),
    }
}

fn error_answer(error: rmcp::ServiceError) -> Answer {
    let rmcp::ServiceError::McpError(error) = error else {
        panic!("expected an MCP error, got {error}");
    };
    let data = error.data.clone().unwrap_or(Value::Null);
    Answer {
        request_id: data["dev.capgate/decision"]["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id in {data}"))
            .to_string(),
        text: error.message.to_string(),
    }
}
