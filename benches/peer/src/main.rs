//! `peer-loadgen`: the client side of the peer benchmark (issue 14, `scripts/peer-bench.sh`).
//!
//! - `http`: N clients, each its own keep-alive HTTP/1.1 connection and MCP session, calling
//!   one tool for a fixed time against a streamable-HTTP endpoint (a gateway, or the example
//!   server over HTTP).
//! - `stdio`: N clients sharing one stdio session with a child process (capgate's stdio
//!   front, or the example server itself), requests pipelined and matched by id.
//! - `sessions`: S sessions opened and held (initialize, every page of `tools/list`, one
//!   call each) while the gateway's resident memory is read, then deleted: the RSS benchmark
//!   (`scripts/rss-bench.sh`).
//! - `report`: the markdown table of medians across repetitions of the samples these print.
//! - `mint`, `listen-port`, `serve-file`: the script's helpers (an RS256 token; the port a
//!   process that bound port 0 listens on; a JWKS over HTTP for mcp-proxy).
//!
//! Each measuring run prints one JSON line (see `sample::Sample`) and fails on the first call
//! that does not come back as a successful tool result.

mod http;
mod load;
mod mcp;
mod mint;
mod procfs;
mod sample;
mod sessions;
mod stdio;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::load::{Caller, Plan};
use crate::mcp::CallTemplate;
use crate::sample::Sample;

#[derive(Parser)]
#[command(about = "MCP load generator for capgate's peer benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure a streamable-HTTP MCP endpoint.
    Http {
        /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp.
        #[arg(long)]
        url: String,
        /// A bearer token, sent as `Authorization: Bearer <token>`.
        #[arg(long, env = "PEER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The gateway process, for its CPU time and peak memory.
        #[arg(long)]
        gateway_pid: Option<u32>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Measure a stdio MCP server started as a child: `stdio [OPTIONS] -- COMMAND ARGS...`.
    Stdio {
        /// Where the child's stderr goes.
        #[arg(long)]
        stderr: PathBuf,
        /// The child is a gateway: report its CPU time and peak memory.
        #[arg(long)]
        child_is_gateway: bool,
        #[command(flatten)]
        load: LoadArgs,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Open SESSIONS sessions (initialize, every page of tools/list, one tools/call each),
    /// hold them while reading the gateway's memory, then DELETE them; prints one JSON line.
    Sessions {
        /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp.
        #[arg(long)]
        url: String,
        /// A bearer token, sent as `Authorization: Bearer <token>`.
        #[arg(long, env = "PEER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The gateway process, whose VmRSS and VmHWM are read.
        #[arg(long)]
        gateway_pid: Option<u32>,
        /// The run's name in its JSON line.
        #[arg(long, default_value = "sessions")]
        label: String,
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Sessions being opened (or deleted) at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// The tool every session calls; by default session i calls the (i mod n)-th tool it
        /// listed.
        #[arg(long)]
        tool: Option<String>,
        /// The call's arguments, as JSON.
        #[arg(long, default_value = r#"{"text":"hello"}"#)]
        arguments: String,
        /// Fail unless every session lists exactly this many tools.
        #[arg(long)]
        expect_tools: Option<usize>,
        /// Close each session's connection after its call (hold sessions, not connections).
        #[arg(long)]
        close_connections: bool,
        /// Append the JSON line to this file (it is printed either way).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the markdown table of the samples in FILE (one JSON line each).
    Report {
        file: PathBuf,
        /// A path (by label) whose throughput the others are shown as a share of; the first
        /// one's p50 latency is subtracted from the others' too. Repeatable.
        #[arg(long)]
        baseline: Vec<String>,
    },
    /// Print an RS256 token signed with a PEM private key.
    Mint {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        kid: Option<String>,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        audience: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        tenant: String,
        /// Comma-separated roles.
        #[arg(long, default_value = "")]
        roles: String,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
    /// Wait until process PID listens on one TCP port, and print it.
    ListenPort {
        pid: u32,
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Serve one file at every path of 127.0.0.1:0 (as application/json); prints
    /// `listening on http://ADDR` when it accepts connections.
    ServeFile { file: PathBuf },
}

#[derive(Args)]
struct LoadArgs {
    /// The path's name in the report.
    #[arg(long)]
    label: String,
    #[arg(long)]
    rep: u32,
    #[arg(long)]
    clients: usize,
    /// Seconds measured.
    #[arg(long)]
    duration: f64,
    /// Seconds of calls before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long)]
    tool: String,
    /// The tool's arguments, as JSON.
    #[arg(long, default_value = r#"{"case_id":"case-101"}"#)]
    arguments: String,
    /// The actor a gateway would inject, sent in `_meta["dev.capgate/actor"]` (JSON): for
    /// paths without capgate, where nothing else tells the example server the tenant.
    #[arg(long)]
    actor: Option<String>,
    /// Append the sample's JSON line to this file (it is printed either way).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl LoadArgs {
    fn template(&self) -> anyhow::Result<CallTemplate> {
        let arguments: Value =
            serde_json::from_str(&self.arguments).context("--arguments is not JSON")?;
        let actor = self
            .actor
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .context("--actor is not JSON")?;
        Ok(CallTemplate::new(&self.tool, arguments, actor))
    }

    fn plan(&self) -> Plan {
        Plan {
            warmup: Duration::from_secs_f64(self.warmup),
            window: Duration::from_secs_f64(self.duration),
        }
    }

    fn emit(&self, measured: &load::Measured) -> anyhow::Result<()> {
        let sample = Sample::new(self.label.clone(), self.clients, self.rep, measured);
        let line = serde_json::to_string(&sample)?;
        println!("{line}");
        if let Some(out) = &self.out {
            append_line(out, &line)?;
        }
        Ok(())
    }
}

fn append_line(out: &std::path::Path, line: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("cannot open {}", out.display()))?;
    writeln!(file, "{line}")?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Report { file, baseline } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let samples = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<Sample>, _>>()
                .context("a line is not a sample")?;
            print!("{}", sample::table(&samples, &baseline));
            Ok(())
        }
        Command::Mint {
            key,
            kid,
            issuer,
            audience,
            user,
            tenant,
            roles,
            agent,
            ttl,
        } => {
            let claims = mint::Claims {
                issuer: &issuer,
                audience: &audience,
                user: &user,
                tenant: &tenant,
                roles: roles.split(',').filter(|r| !r.is_empty()).collect(),
                agent: agent.as_deref(),
                ttl_seconds: ttl,
            };
            println!("{}", mint::rs256(&key, kid.as_deref(), &claims)?);
            Ok(())
        }
        Command::ListenPort { pid, timeout } => {
            let port = procfs::wait_for_listening_port(pid, Duration::from_secs_f64(timeout))?;
            println!("{port}");
            Ok(())
        }
        // The clients run on one worker thread: the load generator takes as little of the
        // two cores from the servers as it can, and the same on every path.
        command => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?
            .block_on(run(command)),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Http {
            url,
            token,
            gateway_pid,
            load,
        } => {
            let endpoint = http::Endpoint::new(&url, token.as_deref())?;
            let mut sessions = Vec::with_capacity(load.clients);
            for _ in 0..load.clients {
                sessions.push(http::HttpSession::open(endpoint.clone()).await?);
            }
            measure(sessions, &load, gateway_pid).await
        }
        Command::Stdio {
            stderr,
            child_is_gateway,
            load,
            command,
        } => {
            let child = stdio::StdioChild::start(&command, &stderr).await?;
            let gateway_pid = if child_is_gateway { child.pid() } else { None };
            let callers = (0..load.clients)
                .map(|_| stdio::StdioCaller(child.clone()))
                .collect();
            measure(callers, &load, gateway_pid).await?;
            child.stop(Duration::from_secs(10)).await;
            Ok(())
        }
        Command::Sessions {
            url,
            token,
            gateway_pid,
            label,
            sessions,
            concurrency,
            tool,
            arguments,
            expect_tools,
            close_connections,
            out,
        } => {
            let options = sessions::Options {
                endpoint: http::Endpoint::new(&url, token.as_deref())?,
                label,
                sessions,
                concurrency,
                tool,
                arguments: serde_json::from_str(&arguments).context("--arguments is not JSON")?,
                expect_tools,
                gateway_pid,
                close_connections,
            };
            let report = sessions::run(options).await?;
            let line = serde_json::to_string(&report)?;
            println!("{line}");
            if let Some(out) = &out {
                append_line(out, &line)?;
            }
            Ok(())
        }
        Command::ServeFile { file } => serve_file(file).await,
        Command::Report { .. } | Command::Mint { .. } | Command::ListenPort { .. } => {
            unreachable!("handled without a runtime")
        }
    }
}

async fn measure<C: Caller>(
    callers: Vec<C>,
    load: &LoadArgs,
    gateway_pid: Option<u32>,
) -> anyhow::Result<()> {
    let measured = load::run(callers, load.template()?, load.plan(), gateway_pid)
        .await
        .with_context(|| format!("{} with {} clients", load.label, load.clients))?;
    load.emit(&measured)
}

async fn serve_file(file: PathBuf) -> anyhow::Result<()> {
    let body = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        }
    });
    axum::serve(listener, app).await?;
    Ok(())
}
