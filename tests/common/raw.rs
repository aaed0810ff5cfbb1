//! A raw streamable-HTTP MCP client (no MCP library), for tests that need the transport's own
//! answers or must survive a server that dies mid-request.

use serde_json::{json, Value};

use super::TestGateway;

pub const PROTOCOL: &str = "2025-11-25";

/// A raw streamable-HTTP client: one keep-alive connection pool, no MCP library.
pub struct Raw {
    pub http: reqwest::Client,
    pub url: String,
}

impl Raw {
    pub fn new(gateway: &TestGateway) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: gateway.url.clone(),
        }
    }

    pub async fn post(&self, token: &str, session: Option<&str>, body: Value) -> reqwest::Response {
        self.try_post(token, session, body)
            .await
            .expect("POST /mcp")
    }

    /// [`Raw::post`], with the transport's failure (a timeout, a refused connection) returned.
    pub async fn try_post(
        &self,
        token: &str,
        session: Option<&str>,
        body: Value,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL);
        }
        request.send().await
    }

    /// `initialize` alone, as a token's first request: the status, and the answer when it is
    /// one JSON body (a 401's error and `error_description`).
    pub async fn initialize(&self, token: &str) -> (u16, Value) {
        let response = self.post(token, None, initialize()).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `initialize` then `notifications/initialized`: the session id.
    pub async fn open(&self, token: &str) -> Result<String, (u16, String)> {
        let response = self.post(token, None, initialize()).await;
        let status = response.status().as_u16();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.unwrap_or_default();
        let Some(session) = session else {
            return Err((status, text));
        };
        let initialized = self
            .post(
                token,
                Some(&session),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert_eq!(initialized.status().as_u16(), 202);
        Ok(session)
    }

    /// A request in a session: the status and the JSON-RPC messages of its answer.
    pub async fn request(
        &self,
        token: &str,
        session: &str,
        id: u64,
        method: &str,
        params: Value,
    ) -> (u16, Vec<Value>) {
        let response = self
            .post(
                token,
                Some(session),
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            )
            .await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, messages(&text))
    }
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
}

/// The JSON-RPC messages of an SSE (or plain JSON) body.
pub fn messages(text: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return vec![value];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}
