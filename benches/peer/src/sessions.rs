//! The `sessions` run of the RSS benchmark (`scripts/rss-bench.sh`): S MCP sessions over
//! streamable HTTP, each on its own keep-alive connection, each `initialize`,
//! `notifications/initialized`, `tools/list` (every page) and one `tools/call`; all of them are
//! held open while the gateway's resident memory is read, then each is ended with `DELETE`.
//!
//! With `close_connections`, each session's connection is closed after its call, so that the
//! sessions are held without connections (what a session costs apart from its connection).
//!
//! Sessions are opened by `concurrency` workers (each one session at a time). A connection the
//! gateway closes while idle (its header-read timeout) is replaced before the session's next
//! request; how many connections are still open when the memory is read is reported.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::http::{Endpoint, HttpSession};
use crate::{mcp, procfs};

pub struct Options {
    pub endpoint: Endpoint,
    pub label: String,
    pub sessions: usize,
    pub concurrency: usize,
    /// The tool each session calls; `None`: session i calls the (i mod n)-th tool it listed.
    pub tool: Option<String>,
    pub arguments: Value,
    /// Fail unless every session lists exactly this many tools.
    pub expect_tools: Option<usize>,
    pub gateway_pid: Option<u32>,
    /// Close each session's connection once its call is answered: the sessions are held
    /// without connections (a `DELETE` reconnects).
    pub close_connections: bool,
}

/// One run's figures (memory in KiB, of the gateway process; absent without its PID).
#[derive(Serialize)]
pub struct Report {
    pub label: String,
    pub sessions: usize,
    pub concurrency: usize,
    pub close_connections: bool,
    /// Tools each session listed (the fewest and the most over the sessions).
    pub tools_listed_min: usize,
    pub tools_listed_max: usize,
    /// `tools/list` pages a session read (the most).
    pub list_pages: usize,
    /// Successful `tools/call`s (one per session).
    pub calls: usize,
    /// Seconds to open every session (initialize, list, call).
    pub open_seconds: f64,
    /// Sessions whose connection was still open when the memory was read.
    pub connections_open: usize,
    /// Connections replaced because the gateway had closed them.
    pub reconnects: u32,
    /// `VmRSS` before the first session.
    pub rss_before_kib: Option<u64>,
    /// `VmRSS` with every session open.
    pub rss_kib: Option<u64>,
    /// `RssAnon` then (the rest of `VmRSS` is mostly the binary's file-backed pages).
    pub rss_anon_kib: Option<u64>,
    /// `VmHWM` then.
    pub peak_rss_kib: Option<u64>,
    /// Sessions the `DELETE` ended (2xx).
    pub deleted: usize,
    /// `VmRSS` after every session was deleted and its connection closed.
    pub rss_after_close_kib: Option<u64>,
}

struct Opened {
    session: HttpSession,
    tools_listed: usize,
    pages: usize,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let options = Arc::new(options);
    let rss = |pid: Option<u32>| pid.map(procfs::rss_kib).transpose();
    let rss_before_kib = rss(options.gateway_pid)?;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..options.concurrency.clamp(1, options.sessions.max(1)) {
        let options = options.clone();
        let next = next.clone();
        workers.spawn(async move {
            let mut opened = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= options.sessions {
                    return Ok::<_, anyhow::Error>(opened);
                }
                let session = open_one(&options, index)
                    .await
                    .with_context(|| format!("session {index}"))?;
                opened.push(session);
            }
        });
    }
    let mut opened = Vec::with_capacity(options.sessions);
    while let Some(worker) = workers.join_next().await {
        // The first failure ends the run (the other workers are aborted with the set).
        opened.extend(worker??);
    }
    let open_seconds = started.elapsed().as_secs_f64();

    let connections_open = opened.iter().filter(|o| o.session.connected()).count();
    let rss_kib = rss(options.gateway_pid)?;
    let rss_anon_kib = options.gateway_pid.map(procfs::rss_anon_kib).transpose()?;
    let peak_rss_kib = options.gateway_pid.map(procfs::peak_rss_kib).transpose()?;

    let tools_listed_min = opened.iter().map(|o| o.tools_listed).min().unwrap_or(0);
    let tools_listed_max = opened.iter().map(|o| o.tools_listed).max().unwrap_or(0);
    let list_pages = opened.iter().map(|o| o.pages).max().unwrap_or(0);
    let calls = opened.len();

    // End every session, `concurrency` at a time.
    let mut sessions: Vec<HttpSession> = opened.into_iter().map(|o| o.session).collect();
    let chunk = sessions.len().div_ceil(options.concurrency.max(1)).max(1);
    let mut closers = JoinSet::new();
    while !sessions.is_empty() {
        let rest = sessions.split_off(sessions.len().saturating_sub(chunk));
        closers.spawn(async move {
            let mut deleted = 0;
            let mut reconnects = 0;
            for mut session in rest {
                match session.delete().await {
                    Ok(status) if status.is_success() => deleted += 1,
                    Ok(status) => eprintln!("DELETE answered {status}"),
                    Err(error) => eprintln!("DELETE failed: {error:#}"),
                }
                reconnects += session.reconnects;
            }
            (deleted, reconnects)
        });
    }
    let (mut deleted, mut reconnects) = (0, 0);
    while let Some(closer) = closers.join_next().await {
        let (d, r) = closer?;
        deleted += d;
        reconnects += r;
    }
    let rss_after_close_kib = rss(options.gateway_pid)?;

    Ok(Report {
        label: options.label.clone(),
        sessions: options.sessions,
        concurrency: options.concurrency,
        close_connections: options.close_connections,
        tools_listed_min,
        tools_listed_max,
        list_pages,
        calls,
        open_seconds,
        connections_open,
        reconnects,
        rss_before_kib,
        rss_kib,
        rss_anon_kib,
        peak_rss_kib,
        deleted,
        rss_after_close_kib,
    })
}

/// Opens session `index`: initialize, every page of `tools/list`, one call.
async fn open_one(options: &Options, index: usize) -> anyhow::Result<Opened> {
    let mut session = HttpSession::open_reconnecting(options.endpoint.clone()).await?;
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = match &cursor {
            Some(cursor) => json!({ "cursor": cursor }),
            None => json!({}),
        };
        let result = session.request("tools/list", params).await?;
        pages += 1;
        let tools = result
            .get("tools")
            .and_then(Value::as_array)
            .context("a tools/list result without tools")?;
        for tool in tools {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .context("a listed tool without a name")?;
            names.push(name.to_owned());
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(next) if pages < 100_000 => cursor = Some(next.to_owned()),
            Some(_) => bail!("tools/list did not end after {pages} pages"),
            None => break,
        }
    }
    if let Some(expected) = options.expect_tools {
        if names.len() != expected {
            bail!("listed {} tools, expected {expected}", names.len());
        }
    }
    let tool = match &options.tool {
        Some(tool) => tool.clone(),
        None if names.is_empty() => bail!("no tool listed to call"),
        None => names[index % names.len()].clone(),
    };
    let result = session
        .request(
            "tools/call",
            json!({"name": tool, "arguments": options.arguments}),
        )
        .await?;
    mcp::check_call_result(&result).with_context(|| format!("calling {tool}"))?;
    if options.close_connections {
        session.disconnect();
    }
    Ok(Opened {
        session,
        tools_listed: names.len(),
        pages,
    })
}
