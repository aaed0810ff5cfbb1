//! Starting what the paths talk to: the downstream alone, and capgate gateways (today's binary or
//! a baseline one) over HTTP or stdio, each with its own config, data dir, downstream process and
//! log file, and stopping them so that nothing is left running.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::{json, Value};

use crate::procs::{descendants_of, reap_leftovers, signal};

const SECRET_ENV: &str = "CAPGATE_BENCH_SECRET";
const SECRET: &str = "capgate-bench-secret-0123456789abcdef0123456789abcdef";
const ISSUER: &str = "https://bench-issuer.capgate.local";
/// Run budget limits (calls and cost) in the gateways' config: far above any run of this bench.
const BUDGET: u64 = 1_000_000_000;

/// Environment a parent may have set that would change what a child does; every child starts
/// without it so that all downstream processes run the same way.
const SCRUBBED_ENV: &[&str] = &[
    "CASE_PLATFORM_JOURNAL",
    "CASE_PLATFORM_TEST_HOOKS",
    "CASE_PLATFORM_LOG",
    "CAPGATE_CONFIG",
    "CAPGATE_TOKEN",
    "CAPGATE_LOG",
];

pub type Client = RunningService<RoleClient, ()>;

/// `[audit] durable_for` in a gateway's config.
#[derive(Clone, Copy)]
pub enum DurableFor {
    SideEffects,
    EveryCall,
}

impl DurableFor {
    pub fn as_toml(self) -> &'static str {
        match self {
            DurableFor::SideEffects => "side_effects",
            DurableFor::EveryCall => "every_call",
        }
    }
}

pub fn case_platform_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_case-platform"))
}

/// Today's gateway, built by Cargo for this bench.
pub fn capgate_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_capgate"))
}

fn scrubbed(program: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for name in SCRUBBED_ENV {
        cmd.env_remove(name);
    }
    cmd
}

fn log_file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).expect("log file")
}

/// A stdio MCP child process and the processes it started, for the leftover check at the end.
pub struct StdioChild {
    pub client: Client,
    /// The child's process id, for the CPU accounting and the leftover check.
    pub pid: Option<u32>,
    name: &'static str,
}

impl StdioChild {
    async fn spawn(
        cmd: tokio::process::Command,
        stderr: std::fs::File,
        name: &'static str,
    ) -> Self {
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = transport.id();
        let client = ()
            .serve(transport)
            .await
            .unwrap_or_else(|e| panic!("{name}: MCP initialization failed: {e}"));
        Self { client, pid, name }
    }

    /// Closes stdin and waits for the child (rmcp sends SIGTERM, then kills, if it lingers), then
    /// makes sure nothing it started is left running.
    pub async fn stop(mut self) {
        let descendants = self.pid.map(descendants_of).unwrap_or_default();
        if let Err(e) = self.client.close().await {
            eprintln!("{}: closing the client failed: {e}", self.name);
        }
        reap_leftovers(self.name, &descendants).await;
    }
}

pub async fn start_direct(dir: &Path) -> StdioChild {
    StdioChild::spawn(
        scrubbed(case_platform_bin()),
        log_file(&dir.join("direct-case-platform.log")),
        "direct case-platform",
    )
    .await
}

/// `capgate serve --stdio` from `capgate`, its identity verified once at start.
pub async fn start_stdio_gateway(
    capgate: &Path,
    dir: &Path,
    gateway_log: &str,
    durable_for: DurableFor,
    name: &'static str,
) -> StdioChild {
    std::fs::create_dir_all(dir).expect("mkdir");
    let port = free_port();
    let config = write_config(dir, port, durable_for);
    let token = token_for(&public_url(port));
    let mut cmd = scrubbed(capgate);
    cmd.args(["serve", "--stdio", "--config"])
        .arg(&config)
        .env("CAPGATE_TOKEN", token)
        .env(SECRET_ENV, SECRET)
        .env("CAPGATE_LOG", gateway_log);
    StdioChild::spawn(cmd, log_file(&dir.join("gateway.log")), name).await
}

/// `capgate serve` on a loopback port, with a streamable-HTTP client connected to it.
pub struct HttpGateway {
    pub child: tokio::process::Child,
    pub client: Client,
    port: u16,
    name: &'static str,
}

impl HttpGateway {
    /// Starts `capgate serve` from `capgate` and waits until it and its downstream are up.
    pub async fn start(capgate: &Path, dir: &Path, gateway_log: &str, name: &'static str) -> Self {
        std::fs::create_dir_all(dir).expect("mkdir");
        let port = free_port();
        let config = write_config(dir, port, DurableFor::SideEffects);
        let log_path = dir.join("gateway.log");
        let mut cmd = scrubbed(capgate);
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env(SECRET_ENV, SECRET)
            .env("CAPGATE_LOG", gateway_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&log_path))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", capgate.display()));
        wait_healthy(port, &log_path, Duration::from_secs(60)).await;
        let url = public_url(port);
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(token_for(&url)),
        );
        let client = ().serve(transport).await.unwrap_or_else(|e| {
            panic!(
                "MCP client cannot connect to {name} at {url}: {e}; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )
        });
        Self {
            child,
            client,
            port,
            name,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Prometheus exposition on the agent listener.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.port)
    }

    /// Closes the session, asks capgate to stop (SIGTERM), kills it if it lingers, then makes
    /// sure its downstream is gone too.
    pub async fn stop(mut self) {
        let pid = self.child.id();
        let descendants = pid.map(descendants_of).unwrap_or_default();
        if let Err(e) = self.client.close().await {
            eprintln!("{}: closing the client failed: {e}", self.name);
        }
        if let Some(pid) = pid {
            signal(pid, "TERM");
        }
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!(
                    "{} did not stop on SIGTERM within 5 s; killing it",
                    self.name
                );
                let _ = self.child.kill().await;
            }
        }
        reap_leftovers(self.name, &descendants).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn public_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/mcp")
}

/// A gateway config in `dir`, as tests/common/mod.rs writes it: the repo's contracts and
/// policies, one HS256 issuer whose secret comes from the environment, this build's
/// `case-platform` as the only downstream (without a journal: it fsyncs every call), its store
/// and decision log in `dir/data`, and reads held to durable logging or not as `durable_for`
/// says. A baseline binary gets the same file, so it uses only keys the first wave (60a33c8)
/// already accepted: no `idempotency_lease_seconds`, for one.
fn write_config(dir: &Path, port: u16, durable_for: DurableFor) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let capabilities = dir.join("capabilities");
    std::fs::create_dir_all(&capabilities).expect("mkdir");
    std::fs::copy(
        root.join("capabilities/case-platform.toml"),
        capabilities.join("case-platform.toml"),
    )
    .expect("copy contracts");
    copy_dir(&root.join("policies"), &dir.join("policies"));
    let config = format!(
        r#"
capabilities_dir = "capabilities"
policies_dir = "policies"
data_dir = "data"

# Run budgets stay on (each call is debited in the store, as in production), with limits no
# benchmark reaches: the defaults stop a run after 50 calls of one tool.
[enforcement]
max_calls_per_run = {BUDGET}
max_calls_per_tool = {BUDGET}
max_cost_per_run = {BUDGET}

[audit]
durable_for = "{durable_for}"

[server]
listen = "127.0.0.1:{port}"
public_url = "{url}"

[[issuers]]
issuer = "{ISSUER}"
algorithm = "HS256"
secret_env = "{SECRET_ENV}"

[[downstream]]
id = "case"
command = "{downstream}"
timeout_ms = 10000
"#,
        url = public_url(port),
        downstream = case_platform_bin().display(),
        durable_for = durable_for.as_toml(),
    );
    let path = dir.join("capgate.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy file");
        }
    }
}

/// An HS256 token for alice (tenant acme, analyst) with the drafting agent acting for her.
fn token_for(audience: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "iss": ISSUER,
        "aud": audience,
        "sub": "alice",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 24 * 3600,
        "tenant": "acme",
        "roles": ["analyst"],
        "act": {"sub": "drafting-agent"},
        "azp": "agent-runtime",
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign token")
}

/// Waits until `/healthz` answers with every downstream up.
async fn wait_healthy(port: u16, log: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    loop {
        if let Ok(response) = http.get(&url).send().await {
            if let Ok(doc) = response.json::<Value>().await {
                if doc["downstreams"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty() && m.values().all(|v| v == "up"))
                {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "capgate did not become healthy; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
