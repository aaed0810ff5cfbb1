//! Test harness: starts the real `capgate` binary on 127.0.0.1 with the real example downstream
//! server (`case-platform`) as its child, and connects real MCP clients to it.
//!
//! Each gateway gets its own temporary directory (config, capabilities, data, downstream
//! journals) and is killed when the handle drops. What goes into that directory, and the
//! options for it, are in `config`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

mod admin;
mod admin_api;
mod config;
mod jwks;
mod raw;
#[allow(unused_imports)]
pub use admin_api::*;
pub use config::*;
// Only the tests of issuers whose keys are fetched by URL use it.
#[allow(unused_imports)]
pub use jwks::*;
// Only the tests that speak raw HTTP use it.
#[allow(unused_imports)]
pub use raw::*;

pub const TEST_SECRET: &str = "capgate-integration-test-secret-0123456789abcdef";
pub const HS_ISSUER: &str = "https://test-issuer.capgate.local";
pub const RS_ISSUER: &str = "https://rs-issuer.capgate.local";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures")
}

pub struct TestGateway {
    child: std::sync::Mutex<Child>,
    /// How many times the process was started (each start says once on the log it is bound).
    starts: std::sync::atomic::AtomicUsize,
    pub port: u16,
    pub admin_url: Option<String>,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub journal: PathBuf,
    pub flaky_journal: PathBuf,
    env: Vec<(String, String)>,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS hands out a free loopback port")
}

/// The file in a test gateway's directory that moves its enforcement clock (see
/// [`TestGateway::advance_clock`]).
const CLOCK_FILE: &str = "clock-offset";

fn spawn_gateway(dir: &Path, env: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("gateway.log"))
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["serve", "--config"])
        .arg(dir.join("capgate.toml"))
        .env("CAPGATE_TEST_SECRET", TEST_SECRET)
        .env("CAPGATE_LOG", "info,capgate=debug")
        .env("CAPGATE_TEST_CLOCK_FILE", dir.join(CLOCK_FILE))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .spawn()
        .expect("spawn capgate")
}

impl TestGateway {
    /// Starts a gateway. Its ports are picked free, then bound by the gateway: another test may
    /// take one in between, and then the gateway is started again on others.
    pub async fn start(options: GatewayOptions) -> Self {
        for _ in 0..3 {
            match Self::try_start(options.clone()).await {
                Ok(gateway) => return gateway,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("gateway exited before becoming healthy; log:\n{log}"),
            }
        }
        panic!("three gateways in a row found their ports taken");
    }

    async fn try_start(options: GatewayOptions) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = write_config(dir.path(), port, &options);
        // Every test gateway has its admin listener: health details and metrics live there.
        let admin_url = Some(add_admin(&config));
        let child = spawn_gateway(dir.path(), &options.env);
        let gateway = TestGateway {
            child: std::sync::Mutex::new(child),
            starts: std::sync::atomic::AtomicUsize::new(1),
            port,
            admin_url,
            url: format!("http://127.0.0.1:{port}/mcp"),
            journal: dir.path().join("case-journal.jsonl"),
            flaky_journal: dir.path().join("flaky-journal.jsonl"),
            dir,
            env: options.env,
        };
        gateway.until_healthy(Duration::from_secs(60)).await?;
        Ok(gateway)
    }

    /// Kills the gateway (SIGKILL) and starts it again on the same config and data directory.
    pub async fn restart(&self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
            *child = spawn_gateway(self.dir.path(), &self.env);
            self.starts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.wait_healthy(Duration::from_secs(60)).await;
    }

    /// Moves the gateway's enforcement clock (approvals, grants, leases, budgets' days)
    /// `seconds` forward, at once: the file is replaced whole, so no read sees half of it.
    pub fn advance_clock(&self, seconds: i64) {
        let path = self.dir.path().join(CLOCK_FILE);
        let offset = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let staged = self.dir.path().join("clock-offset.new");
        std::fs::write(&staged, (offset + seconds).to_string()).expect("write the clock file");
        std::fs::rename(&staged, &path).expect("move the clock file in place");
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().map(|c| c.id()).unwrap_or_default()
    }

    /// The gateway's exit status, if it has exited.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child
            .lock()
            .ok()
            .and_then(|mut c| c.try_wait().ok().flatten())
    }

    pub fn policies_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until the gateway's log says `text` (a readiness signal), for at most 30 s.
    pub async fn until_logged(&self, text: &str) {
        until_within(
            Duration::from_secs(30),
            || async { self.log().contains(text) },
            || format!("the gateway never logged {text:?}; log:\n{}", self.log()),
        )
        .await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// Waits until `/healthz` says up (every downstream connected) while our process runs.
    pub async fn wait_healthy(&self, limit: Duration) {
        if let Err(log) = self.until_healthy(limit).await {
            panic!("gateway exited before becoming healthy; log:\n{log}");
        }
    }

    /// Waits until our own process has bound its ports (it says so on its log, once per start:
    /// until then, `/healthz` on the port could be another test's gateway) and `/healthz` says
    /// up; the log when the gateway exits first.
    async fn until_healthy(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let http = reqwest::Client::new();
        let starts = self.starts.load(std::sync::atomic::Ordering::SeqCst);
        loop {
            let bound = self.log().matches("capgate listening on").count() >= starts;
            let answer = match bound {
                true => http
                    .get(format!("{}/healthz", self.base_url()))
                    .send()
                    .await
                    .ok(),
                false => None,
            };
            if let Some(response) = answer {
                let up = response.status().is_success()
                    && response
                        .json::<Value>()
                        .await
                        .is_ok_and(|doc| doc == serde_json::json!({"status": "up"}));
                if up && self.exited().is_none() {
                    return Ok(());
                }
            }
            if let Some(status) = self.exited() {
                return Err(format!("({status})\n{}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not become healthy; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The admin listener: its base URL.
    pub fn admin(&self) -> &str {
        self.admin_url
            .as_deref()
            .expect("every test gateway has an admin listener")
    }

    /// POSTs `body` to the admin listener as `token`; the status and the JSON answer.
    pub async fn admin_post_as(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.admin_request(Some(token), "POST", path, Some(&body))
            .await
    }

    /// The health details (admin listener, as a platform admin).
    pub async fn health(&self) -> Value {
        reqwest::Client::new()
            .get(format!("{}/admin/health", self.admin()))
            .bearer_auth(self.platform_admin_token())
            .send()
            .await
            .expect("admin health")
            .json()
            .await
            .expect("admin health json")
    }

    /// The Prometheus text at `/metrics` (admin listener).
    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin()))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Connects a session-based (2025-11-25) rmcp client with a bearer token.
    pub async fn client(&self, token: &str) -> RunningService<RoleClient, ()> {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.url.clone()).auth_header(token),
        );
        ().serve(transport).await.expect("MCP client connects")
    }

    /// Journal lines the main downstream wrote: every call it actually received.
    pub fn journal_entries(&self) -> Vec<Value> {
        read_journal(&self.journal)
    }

    pub fn flaky_journal_entries(&self) -> Vec<Value> {
        read_journal(&self.flaky_journal)
    }
}

/// Waits until `check` holds, polling every 20 ms, for at most 10 s (then fails, naming `what`).
pub async fn until<F: std::future::Future<Output = bool>>(what: &str, check: impl FnMut() -> F) {
    until_within(Duration::from_secs(10), check, || format!("never: {what}")).await
}

/// Waits until `check` holds, polling every 20 ms, for at most `limit`; then fails with what
/// `failure` says at that moment (a log, a count).
pub async fn until_within<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
    failure: impl Fn() -> String,
) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{}", failure());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn read_journal(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Ok(child) = self.child.get_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Claims for a test token; `claims()` gives sensible defaults to override.
pub struct TokenSpec {
    pub user: &'static str,
    pub tenant: Option<&'static str>,
    pub roles: Vec<&'static str>,
    pub agent: Option<&'static str>,
    pub service: Option<&'static str>,
}

pub fn claims(spec: &TokenSpec, audience: &str) -> serde_json::Map<String, Value> {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), HS_ISSUER.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("sub".into(), spec.user.into());
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), (now - 5).into());
    claims.insert("exp".into(), (now + 600).into());
    if let Some(tenant) = spec.tenant {
        claims.insert("tenant".into(), tenant.into());
    }
    claims.insert("roles".into(), json!(spec.roles));
    if let Some(agent) = spec.agent {
        claims.insert("act".into(), json!({ "sub": agent }));
    }
    if let Some(service) = spec.service {
        claims.insert("azp".into(), service.into());
    }
    claims
}

pub fn sign_hs256(claims: &serde_json::Map<String, Value>, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

pub fn sign_rs256(claims: &serde_json::Map<String, Value>) -> String {
    let pem = std::fs::read(fixtures().join("test-rs256-private.pem")).expect("test key");
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
    )
    .expect("sign")
}

impl TestGateway {
    /// A valid HS256 token for this gateway.
    pub fn token(&self, spec: &TokenSpec) -> String {
        sign_hs256(&claims(spec, &self.url), TEST_SECRET.as_bytes())
    }

    /// A token for acme's tenant admin: a person (no agent) with the `capgate-admin` role in
    /// acme, who administers acme only.
    pub fn admin_token(&self) -> String {
        self.token(&TokenSpec {
            user: "root-admin",
            tenant: Some("acme"),
            roles: vec!["capgate-admin"],
            agent: None,
            service: None,
        })
    }

    /// A token for a platform admin: a person (no agent) with the `capgate-platform-admin` role
    /// (in the `ops` tenant), who administers everything: reloads, the log, health, global,
    /// server and tool kill switches, every tenant.
    pub fn platform_admin_token(&self) -> String {
        self.token(&TokenSpec {
            user: "platform-admin",
            tenant: Some("ops"),
            roles: vec!["capgate-platform-admin"],
            agent: None,
            service: None,
        })
    }

    /// A valid token for a run.
    pub fn token_in_run(&self, spec: &TokenSpec, run_id: &str) -> String {
        let mut claims = claims(spec, &self.url);
        claims.insert("run_id".into(), run_id.into());
        sign_hs256(&claims, TEST_SECRET.as_bytes())
    }
}

pub fn analyst(tenant: &'static str, user: &'static str, agent: &'static str) -> TokenSpec {
    TokenSpec {
        user,
        tenant: Some(tenant),
        roles: vec!["analyst"],
        agent: Some(agent),
        service: Some("agent-runtime"),
    }
}

/// The notification service sending for svc-notify in acme (high-risk sends need approval).
pub fn notifier() -> TokenSpec {
    TokenSpec {
        user: "svc-notify",
        tenant: Some("acme"),
        roles: vec![],
        agent: Some("notification-service"),
        service: Some("notification-service"),
    }
}

pub fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

pub async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)))
        .await
        .expect("tools/call returns a result")
}

/// A call with our own `_meta` entries (idempotency key, ...).
pub async fn call_with_meta(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
    meta: Value,
) -> CallToolResult {
    let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments));
    let mut request_meta = rmcp::model::RequestMetaObject::new();
    if let Value::Object(entries) = meta {
        for (key, value) in entries {
            request_meta.0 .0.insert(key, value);
        }
    }
    params.meta = Some(request_meta);
    client
        .call_tool(params)
        .await
        .expect("tools/call returns a result")
}

/// `_meta` with an idempotency key.
pub fn key(key: &str) -> Value {
    json!({ "dev.capgate/idempotency-key": key })
}

/// The approval a `require_approval` refusal opened.
pub fn approval_id(result: &CallToolResult) -> String {
    let meta = serde_json::to_value(&result.meta).expect("meta");
    meta["dev.capgate/decision"]["approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no approval in {meta}"))
        .to_string()
}

pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn tool_names(client: &RunningService<RoleClient, ()>) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

/// Python packages the interoperability tests use (kept in step with `.ci/run`).
pub const PYTHON_REQUIREMENTS: [&str; 2] = ["mcp==2.3.0", "prometheus-client==0.26.0"];

/// The repo's `.venv` Python with the test packages installed, created when missing.
pub fn python_venv() -> PathBuf {
    // Tests run as threads of one process: one of them makes the venv while the others wait
    // (a venv half made by another test has a python but no pip yet).
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = repo_root().join(".venv");
    let python = venv.join("bin/python");
    let ready = |python: &PathBuf| {
        Command::new(python)
            .args([
                "-c",
                "import mcp.client.streamable_http, prometheus_client.parser",
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && ready(&python) {
        return python;
    }
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is installed");
        assert!(status.success(), "python3 -m venv failed");
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(PYTHON_REQUIREMENTS)
        .status()
        .expect("pip runs");
    assert!(
        status.success(),
        "pip install {PYTHON_REQUIREMENTS:?} failed"
    );
    assert!(
        ready(&python),
        "the test packages are not importable after install"
    );
    python
}

/// Runs `capgate serve` and expects it to exit by itself with failure; returns stderr.
pub fn serve_must_refuse(config: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env("CAPGATE_TEST_SECRET", TEST_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn capgate");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            assert!(
                !status.success(),
                "capgate must exit non-zero; stderr:\n{stderr}"
            );
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("capgate started although its configuration is invalid");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
