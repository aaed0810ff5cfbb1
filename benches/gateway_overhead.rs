//! The latency capgate adds to one `tools/call`, measured against the same call made directly to
//! the same downstream server, side by side in one run, and the part of it that durable decision
//! logging adds.
//!
//! Four paths, each to its own `case-platform` process (the example downstream):
//! - `direct stdio`: an rmcp client spawns `case-platform` and calls `read_case`, carrying the
//!   actor in `_meta` as the gateway would.
//! - `capgate HTTP`: the real `capgate serve` binary on loopback; a streamable-HTTP client with a
//!   bearer token calls `case__read_case`. Every request is authenticated (JWT verification) and
//!   travels over HTTP/SSE: this is what agents use.
//! - `capgate stdio`: `capgate serve --stdio` (identity verified once at start) as a child over
//!   stdio: the same transport as the direct path, so the difference is capgate's own work plus
//!   one more stdio hop. Its config has `[audit] durable_for = "side_effects"` (the default), so
//!   the read only queues its decision record.
//! - `capgate stdio, durable log`: a second `capgate serve --stdio`, its config the same but for
//!   `durable_for = "every_call"` and its own data dir (log and store): the read is forwarded
//!   only once its decision record is committed (group commit into the SQLite WAL,
//!   `synchronous=NORMAL`: written to the WAL file, not fsynced per commit). Durable minus plain
//!   stdio, paired per iteration, is the latency of durable logging on one call.
//!
//! The machines are small and noisy, so the paths are interleaved call by call (the order
//! rotates through all 24 permutations: each path takes each position, and within an iteration
//! follows each other path, equally often) and noise hits all of them alike. Every result must
//! be a success and the same answer as that path's first: a broken gateway cannot produce a
//! fast-looking number. The durable gateway's log must hold one committed, enforced `allow`
//! record of `case__read_case` for every call made through it by the time the last answer
//! arrives (this shows that every call was an allowed read and was logged; that it waited for
//! the commit rests on the config, where a misspelt key would stop the gateway).
//!
//! `CAPGATE_BENCH_ITERS` (default 10000, about 50 s on two cores; a multiple of 24 balances the
//! orders exactly) and `CAPGATE_BENCH_WARMUP` (default 500) set the number of measured and
//! warm-up calls per path; `CAPGATE_BENCH_LOG` overrides the gateways' log filter (default
//! `info`, the binary's own default). Results go to stdout and, as JSON, to
//! `target/capgate-bench/gateway_overhead.json`.
//!
//! Run: `cargo bench --bench gateway_overhead`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, RequestMetaObject};
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::{json, Value};

const SECRET_ENV: &str = "CAPGATE_BENCH_SECRET";
const SECRET: &str = "capgate-bench-secret-0123456789abcdef0123456789abcdef";
const ISSUER: &str = "https://bench-issuer.capgate.local";
const ACTOR_META_KEY: &str = "dev.capgate/actor";
const CASE_ID: &str = "case-101";
/// Run budget limits (calls and cost) in the gateways' config: far above any run of this bench.
const BUDGET: u64 = 1_000_000_000;

/// Environment a parent may have set that would change what a child does; every child starts
/// without it so that all four downstream processes run the same way.
const SCRUBBED_ENV: &[&str] = &[
    "CASE_PLATFORM_JOURNAL",
    "CASE_PLATFORM_TEST_HOOKS",
    "CASE_PLATFORM_LOG",
    "CAPGATE_CONFIG",
    "CAPGATE_TOKEN",
    "CAPGATE_LOG",
];

type Client = RunningService<RoleClient, ()>;
type Caller = Peer<RoleClient>;

#[derive(Clone, Copy)]
enum PathKind {
    Direct,
    GatewayHttp,
    GatewayStdio,
    GatewayStdioDurable,
}

/// How many paths are measured.
const PATHS: usize = PathKind::ALL.len();

impl PathKind {
    const ALL: [PathKind; 4] = [
        PathKind::Direct,
        PathKind::GatewayHttp,
        PathKind::GatewayStdio,
        PathKind::GatewayStdioDurable,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct stdio",
            PathKind::GatewayHttp => "capgate HTTP",
            PathKind::GatewayStdio => "capgate stdio",
            PathKind::GatewayStdioDurable => "capgate stdio, durable log",
        }
    }

    fn key(self) -> &'static str {
        match self {
            PathKind::Direct => "direct_stdio",
            PathKind::GatewayHttp => "capgate_http",
            PathKind::GatewayStdio => "capgate_stdio",
            PathKind::GatewayStdioDurable => "capgate_stdio_durable_log",
        }
    }
}

/// `[audit] durable_for` in a gateway's config.
#[derive(Clone, Copy)]
enum DurableFor {
    SideEffects,
    EveryCall,
}

impl DurableFor {
    fn as_toml(self) -> &'static str {
        match self {
            DurableFor::SideEffects => "side_effects",
            DurableFor::EveryCall => "every_call",
        }
    }
}

/// Every order of the paths (indices into `PathKind::ALL`), in lexicographic order; iteration
/// `i` uses `orders[i % orders.len()]`.
fn all_orders() -> Vec<[usize; PATHS]> {
    fn extend(prefix: &mut Vec<usize>, out: &mut Vec<[usize; PATHS]>) {
        if prefix.len() == PATHS {
            out.push(std::array::from_fn(|i| prefix[i]));
            return;
        }
        for next in 0..PATHS {
            if !prefix.contains(&next) {
                prefix.push(next);
                extend(prefix, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    extend(&mut Vec::with_capacity(PATHS), &mut out);
    out
}

fn main() {
    let iterations = env_count("CAPGATE_BENCH_ITERS", 10_000);
    let warmup = env_count("CAPGATE_BENCH_WARMUP", 500);
    // One client thread: the clients' own scheduling stays the same on every path and leaves
    // the second core to the gateway and the downstream.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(iterations, warmup));
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a count")),
        Err(_) => default,
    }
}

async fn run(iterations: usize, warmup: usize) {
    let dir = tempfile::Builder::new()
        .prefix("capgate-bench-")
        .tempdir()
        .expect("tempdir");
    let gateway_log = std::env::var("CAPGATE_BENCH_LOG").unwrap_or_else(|_| "info".into());

    let direct = start_direct(dir.path()).await;
    let http = HttpGateway::start(&dir.path().join("http"), &gateway_log).await;
    let stdio = start_stdio_gateway(
        &dir.path().join("stdio"),
        &gateway_log,
        DurableFor::SideEffects,
        "capgate --stdio",
    )
    .await;
    // Its own directory: its own decision log and store, apart from the plain stdio gateway's.
    let durable_dir = dir.path().join("stdio-durable");
    let durable = start_stdio_gateway(
        &durable_dir,
        &gateway_log,
        DurableFor::EveryCall,
        "capgate --stdio (durable log)",
    )
    .await;
    let durable_log = capgate::audit::log_path(&durable_dir.join("data"));

    let mut direct_params = CallToolRequestParams::new("read_case").with_arguments(case_args());
    direct_params.meta = Some(actor_meta());
    let gateway_params = CallToolRequestParams::new("case__read_case").with_arguments(case_args());
    let clients: [&Caller; PATHS] = [
        direct.client.peer(),
        http.client.peer(),
        stdio.client.peer(),
        durable.client.peer(),
    ];
    let params = |kind: PathKind| match kind {
        PathKind::Direct => &direct_params,
        PathKind::GatewayHttp | PathKind::GatewayStdio | PathKind::GatewayStdioDurable => {
            &gateway_params
        }
    };

    // The paths must do the same downstream work: compare one answer of each. Every later
    // answer of a path must equal its first.
    let mut expected: Vec<CallToolResult> = Vec::with_capacity(PATHS);
    for kind in PathKind::ALL {
        let (_, result) = call_checked(clients[kind.index()], params(kind), kind, None).await;
        expected.push(result);
    }
    let reference = &expected[PathKind::Direct.index()];
    let reference_text = format!("{:?}", reference.content);
    assert!(
        reference_text.contains(CASE_ID),
        "direct read_case does not describe {CASE_ID}: {reference_text}"
    );
    for kind in [PathKind::GatewayHttp, PathKind::GatewayStdio] {
        if !same_answer(&expected[kind.index()], reference) {
            println!(
                "note: {} answers differently from the direct path; the downstream work may \
                 differ",
                kind.label()
            );
        }
    }
    // The two stdio gateways differ only in `durable_for`: their answers must not.
    assert!(
        same_answer(
            &expected[PathKind::GatewayStdioDurable.index()],
            &expected[PathKind::GatewayStdio.index()]
        ),
        "{} answers differently from {}: {:?}",
        PathKind::GatewayStdioDurable.label(),
        PathKind::GatewayStdio.label(),
        expected[PathKind::GatewayStdioDurable.index()].content
    );
    let mut durable_calls = 1;
    assert_logged_durably(&durable_log, durable_calls);

    let orders = all_orders();
    eprintln!("capgate bench: {warmup} warm-up + {iterations} measured calls per path");
    for i in 0..warmup {
        for &k in &orders[i % orders.len()] {
            let kind = PathKind::ALL[k];
            call_checked(clients[k], params(kind), kind, Some(&expected[k])).await;
        }
    }
    durable_calls += warmup;
    let mut samples: [Vec<u64>; PATHS] = std::array::from_fn(|_| Vec::with_capacity(iterations));
    let cpu = CpuProbe::new([direct.pid, http.child.id(), stdio.pid, durable.pid]);
    let cpu_before = cpu.snapshot();
    let started = Instant::now();
    for i in 0..iterations {
        for &k in &orders[i % orders.len()] {
            let kind = PathKind::ALL[k];
            let (elapsed, _) =
                call_checked(clients[k], params(kind), kind, Some(&expected[k])).await;
            samples[k].push(elapsed.as_nanos() as u64);
        }
    }
    let measured_for = started.elapsed();
    let cpu_per_call = cpu.per_call(&cpu_before, &cpu.snapshot(), iterations);
    durable_calls += iterations;
    assert_logged_durably(&durable_log, durable_calls);

    direct.stop().await;
    http.stop().await;
    stdio.stop().await;
    durable.stop().await;

    report(
        iterations,
        warmup,
        measured_for,
        &samples,
        &cpu_per_call,
        &gateway_log,
    );
}

/// One timed call; panics unless it is a successful tool result and, when `expected` is given,
/// the same answer.
async fn call_checked(
    client: &Caller,
    params: &CallToolRequestParams,
    kind: PathKind,
    expected: Option<&CallToolResult>,
) -> (Duration, CallToolResult) {
    let params = params.clone();
    let start = Instant::now();
    let outcome = client.call_tool(params).await;
    let elapsed = start.elapsed();
    let result = outcome.unwrap_or_else(|e| panic!("{}: tools/call failed: {e}", kind.label()));
    assert_ne!(
        result.is_error,
        Some(true),
        "{}: tools/call returned a tool error: {:?}",
        kind.label(),
        result.content
    );
    if let Some(expected) = expected {
        assert!(
            same_answer(&result, expected),
            "{}: the answer changed: {:?}",
            kind.label(),
            result.content
        );
    }
    (elapsed, result)
}

fn same_answer(a: &CallToolResult, b: &CallToolResult) -> bool {
    a.content == b.content && a.structured_content == b.structured_content
}

/// The durable gateway answered `calls` reads: its log must already hold, committed, exactly
/// that many enforced `allow` decisions on `case__read_case` (every call through it was an
/// allowed read, and logged), and no outcome other than `ok`.
fn assert_logged_durably(log: &Path, calls: usize) {
    let filter = capgate::audit::Query {
        tool: Some("case__read_case".into()),
        ..Default::default()
    };
    let records = capgate::audit::query(log, &filter).unwrap_or_else(|e| {
        panic!(
            "cannot read the durable gateway's log {}: {e}",
            log.display()
        )
    });
    let mut decisions = 0;
    for chained in &records {
        let record = &chained.record;
        match &record.downstream_outcome {
            None => {
                assert_eq!(
                    (record.decision.as_str(), record.mode),
                    ("allow", capgate::audit::Mode::Enforce),
                    "durable log record {}: not an enforced allow",
                    chained.seq
                );
                decisions += 1;
            }
            Some(outcome) => assert_eq!(
                outcome, "ok",
                "durable log record {}: the downstream call did not succeed",
                chained.seq
            ),
        }
    }
    assert_eq!(
        decisions,
        calls,
        "the durable gateway answered {calls} calls but its log {} holds {decisions} committed \
         decisions",
        log.display()
    );
}

fn case_args() -> JsonObject {
    let mut args = JsonObject::new();
    args.insert("case_id".into(), CASE_ID.into());
    args
}

/// The actor context the gateway injects; the direct path sends it itself.
fn actor_meta() -> RequestMetaObject {
    let mut meta = RequestMetaObject::new();
    meta.0 .0.insert(
        ACTOR_META_KEY.into(),
        json!({"tenant": "acme", "user": "alice", "agent": "drafting-agent", "run_id": null}),
    );
    meta
}

// ---- the four paths ----------------------------------------------------------------------------

fn case_platform_bin() -> &'static str {
    env!("CARGO_BIN_EXE_case-platform")
}

fn capgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_capgate")
}

fn scrubbed(program: &str) -> tokio::process::Command {
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
struct StdioChild {
    client: Client,
    /// The child's process id, for the CPU accounting and the leftover check.
    pid: Option<u32>,
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
    async fn stop(mut self) {
        let descendants = self.pid.map(descendants_of).unwrap_or_default();
        if let Err(e) = self.client.close().await {
            eprintln!("{}: closing the client failed: {e}", self.name);
        }
        reap_leftovers(self.name, &descendants).await;
    }
}

async fn start_direct(dir: &Path) -> StdioChild {
    StdioChild::spawn(
        scrubbed(case_platform_bin()),
        log_file(&dir.join("direct-case-platform.log")),
        "direct case-platform",
    )
    .await
}

async fn start_stdio_gateway(
    dir: &Path,
    gateway_log: &str,
    durable_for: DurableFor,
    name: &'static str,
) -> StdioChild {
    std::fs::create_dir_all(dir).expect("mkdir");
    let port = free_port();
    let config = write_config(dir, port, durable_for);
    let token = token_for(&public_url(port));
    let mut cmd = scrubbed(capgate_bin());
    cmd.args(["serve", "--stdio", "--config"])
        .arg(&config)
        .env("CAPGATE_TOKEN", token)
        .env(SECRET_ENV, SECRET)
        .env("CAPGATE_LOG", gateway_log);
    StdioChild::spawn(cmd, log_file(&dir.join("gateway.log")), name).await
}

/// `capgate serve` on a loopback port, with a streamable-HTTP client connected to it.
struct HttpGateway {
    child: tokio::process::Child,
    client: Client,
}

impl HttpGateway {
    async fn start(dir: &Path, gateway_log: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mkdir");
        let port = free_port();
        let config = write_config(dir, port, DurableFor::SideEffects);
        let log_path = dir.join("gateway.log");
        let mut cmd = scrubbed(capgate_bin());
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env(SECRET_ENV, SECRET)
            .env("CAPGATE_LOG", gateway_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&log_path))
            .kill_on_drop(true);
        let child = cmd.spawn().expect("spawn capgate");
        wait_healthy(port, &log_path, Duration::from_secs(60)).await;
        let url = public_url(port);
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(token_for(&url)),
        );
        let client = ().serve(transport).await.unwrap_or_else(|e| {
            panic!(
                "MCP client cannot connect to capgate at {url}: {e}; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )
        });
        Self { child, client }
    }

    /// Closes the session, asks capgate to stop (SIGTERM), kills it if it lingers, then makes
    /// sure its downstream is gone too.
    async fn stop(mut self) {
        let pid = self.child.id();
        let descendants = pid.map(descendants_of).unwrap_or_default();
        if let Err(e) = self.client.close().await {
            eprintln!("capgate HTTP: closing the client failed: {e}");
        }
        if let Some(pid) = pid {
            signal(pid, "TERM");
        }
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("capgate HTTP did not stop on SIGTERM within 5 s; killing it");
                let _ = self.child.kill().await;
            }
        }
        reap_leftovers("capgate HTTP", &descendants).await;
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
/// policies, one HS256 issuer whose secret comes from the environment, `case-platform` as the
/// only downstream (without a journal: it fsyncs every call), its store and decision log in
/// `dir/data`, and reads held to durable logging or not as `durable_for` says.
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
        downstream = case_platform_bin(),
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

// ---- process hygiene -----------------------------------------------------------------------------

/// `pid` and every process below it, from /proc (empty where /proc is unavailable).
fn descendants_of(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may contain spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((child, ppid));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found
}

/// Whether `pid` is a live process (a zombie has finished: it only awaits reaping).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Gives the processes this bench started 5 s to exit, then kills (by pid) any still running.
async fn reap_leftovers(name: &str, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| is_running(p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for &pid in pids.iter().filter(|&&p| is_running(p)) {
        eprintln!("{name}: process {pid} was still running after shutdown; killing it");
        signal(pid, "KILL");
    }
}

// ---- CPU accounting -----------------------------------------------------------------------------

/// CPU time per measured call of the process a path talks to and of the processes it started.
#[derive(Clone, Copy)]
struct CpuPerCall {
    front_us: f64,
    below_us: f64,
}

/// Reads the CPU time of each path's process tree from /proc.
struct CpuProbe {
    trees: [Vec<u32>; PATHS],
    ticks_per_second: f64,
}

impl CpuProbe {
    fn new(roots: [Option<u32>; PATHS]) -> Self {
        let ticks_per_second = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .unwrap_or(100.0);
        Self {
            trees: roots.map(|root| root.map(descendants_of).unwrap_or_default()),
            ticks_per_second,
        }
    }

    /// Per path: (ticks of the root, ticks of everything below it); `None` where unreadable.
    fn snapshot(&self) -> [Option<(u64, u64)>; PATHS] {
        std::array::from_fn(|i| {
            let (root, below) = self.trees[i].split_first()?;
            let below = below.iter().map(|&p| cpu_ticks(p)).sum::<Option<u64>>()?;
            Some((cpu_ticks(*root)?, below))
        })
    }

    fn per_call(
        &self,
        before: &[Option<(u64, u64)>; PATHS],
        after: &[Option<(u64, u64)>; PATHS],
        calls: usize,
    ) -> [Option<CpuPerCall>; PATHS] {
        let us = |ticks: u64| ticks as f64 / self.ticks_per_second * 1e6 / calls.max(1) as f64;
        std::array::from_fn(|i| {
            let (b, a) = (before[i]?, after[i]?);
            Some(CpuPerCall {
                front_us: us(a.0.saturating_sub(b.0)),
                below_us: us(a.1.saturating_sub(b.1)),
            })
        })
    }
}

/// User + system CPU ticks of `pid`, all threads.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `pid (comm)`: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

// ---- statistics and report -----------------------------------------------------------------------

/// Nearest-rank percentile of sorted values.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Clone, Copy)]
struct Stats {
    n: usize,
    min: f64,
    median: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// Statistics in microseconds of values in nanoseconds.
fn stats(values_ns: &[i64]) -> Stats {
    let mut sorted = values_ns.to_vec();
    sorted.sort_unstable();
    let us = |ns: i64| ns as f64 / 1000.0;
    Stats {
        n: sorted.len(),
        min: us(sorted[0]),
        median: us(percentile(&sorted, 50.0)),
        p90: us(percentile(&sorted, 90.0)),
        p99: us(percentile(&sorted, 99.0)),
        max: us(sorted[sorted.len() - 1]),
    }
}

fn stats_json(s: &Stats) -> Value {
    let r = |x: f64| (x * 10.0).round() / 10.0;
    json!({
        "n": s.n,
        "min_us": r(s.min),
        "median_us": r(s.median),
        "p90_us": r(s.p90),
        "p99_us": r(s.p99),
        "max_us": r(s.max),
    })
}

fn report(
    iterations: usize,
    warmup: usize,
    measured_for: Duration,
    samples: &[Vec<u64>; PATHS],
    cpu_per_call: &[Option<CpuPerCall>; PATHS],
    gateway_log: &str,
) {
    let per_path: Vec<Stats> = samples.iter().map(|s| stats(&as_i64(s))).collect();
    let r = |x: f64| (x * 10.0).round() / 10.0;
    let width = PathKind::ALL
        .map(|k| k.label().len())
        .into_iter()
        .max()
        .unwrap_or(0);

    println!();
    println!(
        "capgate gateway overhead: tools/call case__read_case {{\"case_id\":\"{CASE_ID}\"}}, \
         {iterations} interleaved iterations per path after {warmup} warm-up, {:.1} s",
        measured_for.as_secs_f64()
    );
    println!(
        "{:<width$} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "path", "n", "min µs", "median µs", "p90 µs", "p99 µs"
    );
    for kind in PathKind::ALL {
        let s = per_path[kind.index()];
        println!(
            "{:<width$} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            kind.label(),
            s.n,
            s.min,
            s.median,
            s.p90,
            s.p99
        );
    }
    println!();

    let d = per_path[PathKind::Direct.index()];
    let mut added = serde_json::Map::new();
    for (kind, what) in [
        (PathKind::GatewayHttp, "HTTP"),
        (PathKind::GatewayStdio, "stdio"),
        (PathKind::GatewayStdioDurable, "stdio, durable log"),
    ] {
        let through = per_path[kind.index()];
        let pairs = paired(samples, kind, PathKind::Direct);
        println!(
            "added by capgate ({what}, vs direct stdio): median {:.1} µs, p99 {:.1} µs \
             (per-call pairs: median {:.1} µs, p99 {:.1} µs)",
            through.median - d.median,
            through.p99 - d.p99,
            pairs.median,
            pairs.p99
        );
        added.insert(
            format!("{}_vs_direct_stdio", kind.key()),
            json!({
                "median_diff_us": r(through.median - d.median),
                "p99_diff_us": r(through.p99 - d.p99),
                "paired_median_us": r(pairs.median),
                "paired_p99_us": r(pairs.p99),
            }),
        );
    }

    // Durable logging: the same gateway, transport and downstream work, but the read waits for
    // its decision record's commit. Paired per iteration, so noise common to both cancels.
    let plain = per_path[PathKind::GatewayStdio.index()];
    let durable = per_path[PathKind::GatewayStdioDurable.index()];
    let logging = paired(
        samples,
        PathKind::GatewayStdioDurable,
        PathKind::GatewayStdio,
    );
    let median_ratio = durable.median / plain.median;
    println!(
        "added by durable logging (stdio, durable_for every_call vs side_effects): per-call \
         pairs median {:.1} µs, p99 {:.1} µs; medians {:.1} vs {:.1} µs (×{median_ratio:.3})",
        logging.median, logging.p99, durable.median, plain.median
    );
    let durable_logging = json!({
        "compared": format!(
            "{} - {}",
            PathKind::GatewayStdioDurable.key(),
            PathKind::GatewayStdio.key()
        ),
        "durable_for": {
            "durable": DurableFor::EveryCall.as_toml(),
            "plain": DurableFor::SideEffects.as_toml(),
        },
        "paired_median_us": r(logging.median),
        "paired_p99_us": r(logging.p99),
        "median_ratio": (median_ratio * 1000.0).round() / 1000.0,
        "median_diff_us": r(durable.median - plain.median),
        "p99_diff_us": r(durable.p99 - plain.p99),
    });

    println!(
        "\nCPU per call (user + system, all threads, from /proc; not latency, but where it goes):"
    );
    for kind in PathKind::ALL {
        match cpu_per_call[kind.index()] {
            Some(cpu) if matches!(kind, PathKind::Direct) => {
                println!(
                    "  {:<width$} case-platform {:.0} µs",
                    kind.label(),
                    cpu.front_us
                )
            }
            Some(cpu) => println!(
                "  {:<width$} capgate {:.0} µs + its case-platform {:.0} µs",
                kind.label(),
                cpu.front_us,
                cpu.below_us
            ),
            None => println!("  {:<width$} (unavailable)", kind.label()),
        }
    }

    let paths: serde_json::Map<String, Value> = PathKind::ALL
        .iter()
        .map(|k| {
            let mut doc = stats_json(&per_path[k.index()]);
            if let Some(cpu) = cpu_per_call[k.index()] {
                doc["cpu_per_call_us"] = json!({
                    "server": r(cpu.front_us),
                    "its_children": r(cpu.below_us),
                });
            }
            (k.key().to_string(), doc)
        })
        .collect();
    let document = json!({
        "benchmark": "gateway_overhead",
        "call": {"tool": "case__read_case", "downstream_tool": "read_case", "arguments": {"case_id": CASE_ID}},
        "iterations": iterations,
        "warmup": warmup,
        "interleaving": format!(
            "per iteration, one call on each path, order rotating through all {} permutations",
            all_orders().len()
        ),
        "measured_seconds": r(measured_for.as_secs_f64()),
        "gateway_log_filter": gateway_log,
        "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "timestamp_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "paths": paths,
        "added": added,
        "durable_logging": durable_logging,
    });
    let out_dir = target_dir().join("capgate-bench");
    std::fs::create_dir_all(&out_dir).expect("create target/capgate-bench");
    let out = out_dir.join("gateway_overhead.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&document).expect("json") + "\n",
    )
    .expect("write results");
    println!("\nwritten to {}", out.display());
}

fn as_i64(values: &[u64]) -> Vec<i64> {
    values.iter().map(|&x| x as i64).collect()
}

/// Statistics of `a − b`, call by call within each iteration.
fn paired(samples: &[Vec<u64>; PATHS], a: PathKind, b: PathKind) -> Stats {
    let diffs: Vec<i64> = samples[a.index()]
        .iter()
        .zip(&samples[b.index()])
        .map(|(&x, &y)| x as i64 - y as i64)
        .collect();
    stats(&diffs)
}

/// Cargo's target directory: the binaries under test live in `<target>/<profile>/`.
fn target_dir() -> PathBuf {
    Path::new(capgate_bin())
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
