//! The few MCP messages the load generator sends, and the checks on what comes back: a call
//! counts only when its answer is a JSON-RPC result for its own id that is not a tool error.
//! Both answer forms of streamable HTTP are read: one JSON body, or server-sent events.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

/// The protocol version the client offers; capgate, mcp-proxy and rmcp all speak it.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The `_meta` key the example server reads its tenant from (a gateway injects it; the direct
/// paths send it themselves).
const ACTOR_META_KEY: &str = "dev.capgate/actor";

/// One `tools/call`, serialised once; each call only splices in its id.
pub struct CallTemplate {
    /// `"method":"tools/call","params":{...}}`, everything after the id.
    tail: String,
}

impl CallTemplate {
    pub fn new(tool: &str, arguments: Value, actor: Option<Value>) -> Self {
        let mut params = json!({"name": tool, "arguments": arguments});
        if let Some(actor) = actor {
            params["_meta"] = json!({ ACTOR_META_KEY: actor });
        }
        Self {
            tail: format!(r#","method":"tools/call","params":{params}}}"#),
        }
    }

    pub fn request(&self, id: u64) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":{id}{}"#, self.tail).into_bytes()
    }
}

pub fn initialize_request(id: u64) -> Vec<u8> {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "capgate-peer-loadgen", "version": "0.0.0"},
        },
    })
    .to_string()
    .into_bytes()
}

pub fn initialized_notification() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec()
}

/// The `result` of the answer to request `id`, or why there is none.
pub fn result_of(message: Value, id: u64) -> anyhow::Result<Value> {
    if message.get("id").and_then(Value::as_u64) != Some(id) {
        bail!("answer for another id: {}", abbreviated(&message));
    }
    match (message.get("result"), message.get("error")) {
        (Some(_), None) => Ok(message["result"].clone()),
        (None, Some(error)) => Err(anyhow!("JSON-RPC error: {}", abbreviated(error))),
        _ => Err(anyhow!(
            "neither a result nor an error: {}",
            abbreviated(&message)
        )),
    }
}

/// Passes a `tools/call` result that is not a tool error and has content.
pub fn check_call_result(result: &Value) -> anyhow::Result<()> {
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        bail!("tool error: {}", abbreviated(result));
    }
    match result.get("content").and_then(Value::as_array) {
        Some(content) if !content.is_empty() => Ok(()),
        _ => Err(anyhow!("a result without content: {}", abbreviated(result))),
    }
}

/// The JSON-RPC answer to `id` in an HTTP response body of content type `content_type`.
pub fn answer_in_body(content_type: &str, body: &[u8], id: u64) -> anyhow::Result<Value> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        return serde_json::from_slice(body).context("answer is not JSON");
    }
    if media.eq_ignore_ascii_case("text/event-stream") {
        return answer_in_events(body, id);
    }
    bail!("unexpected content type {content_type:?}")
}

/// The answer to `id` among server-sent events; other events (priming events without data,
/// notifications, requests from the server) are skipped.
fn answer_in_events(body: &[u8], id: u64) -> anyhow::Result<Value> {
    let text = std::str::from_utf8(body).context("event stream is not UTF-8")?;
    let mut data = String::new();
    // A trailing empty line dispatches the last event even if the stream ended without one.
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                let message: Value =
                    serde_json::from_str(&data).context("event data is not JSON")?;
                if message.get("id").and_then(Value::as_u64) == Some(id)
                    && message.get("method").is_none()
                {
                    return Ok(message);
                }
                data.clear();
            }
        } else if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    bail!("the event stream ended without the answer to request {id}")
}

fn abbreviated(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 400 {
        let mut end = 400;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_request_is_json_rpc_with_its_id() {
        let template = CallTemplate::new(
            "read_case",
            json!({"case_id": "case-101"}),
            Some(json!({"tenant": "acme"})),
        );
        let request: Value = serde_json::from_slice(&template.request(7)).unwrap();
        assert_eq!(request["id"], 7);
        assert_eq!(request["method"], "tools/call");
        assert_eq!(request["params"]["arguments"]["case_id"], "case-101");
        assert_eq!(
            request["params"]["_meta"]["dev.capgate/actor"]["tenant"],
            "acme"
        );
    }

    #[test]
    fn events_are_read_past_priming_and_notifications() {
        let body = b"id: 0\nretry: 3000\ndata:\n\n\
            data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
            id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{}]}}\n\n";
        let answer = answer_in_body("text/event-stream", body, 3).unwrap();
        check_call_result(&result_of(answer, 3).unwrap()).unwrap();
    }

    #[test]
    fn an_event_stream_without_the_answer_fails() {
        let body = b"data: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{}}\n\n";
        assert!(answer_in_body("text/event-stream", body, 3).is_err());
    }

    #[test]
    fn tool_errors_and_json_rpc_errors_fail_the_call() {
        let tool_error = json!({"jsonrpc":"2.0","id":1,"result":{"isError":true,"content":[{}]}});
        let result = result_of(tool_error, 1).unwrap();
        assert!(check_call_result(&result).is_err());
        let rpc_error = json!({"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"no"}});
        assert!(result_of(rpc_error, 1).is_err());
    }

    #[test]
    fn a_json_answer_is_read_as_is() {
        let body = br#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text"}]}}"#;
        let answer = answer_in_body("application/json; charset=utf-8", body, 2).unwrap();
        check_call_result(&result_of(answer, 2).unwrap()).unwrap();
    }
}
