//! The admin listener as tests use it: one request with a caller's token.

use serde_json::Value;

use super::TestGateway;

impl TestGateway {
    /// `method path` on the admin listener, with `token` as bearer when given, and `body` as
    /// JSON when given; the status and the JSON answer (null when there is none).
    pub async fn admin_request(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.admin());
        let client = reqwest::Client::new();
        let mut request = match method {
            "GET" => client.get(url),
            "POST" => client.post(url),
            other => panic!("the admin API has no {other} requests"),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
