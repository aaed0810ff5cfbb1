//! The latency capgate adds to one `tools/call`, measured against the same call made directly to
//! the same downstream server, side by side in one run; the part of it that durable decision
//! logging adds; optionally the same for a baseline capgate binary (before and after a change, in
//! one run); and the store transactions one call costs.
//!
//! Paths, each to its own `case-platform` process (the example downstream, this build's):
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
//! - `baseline capgate HTTP` and `baseline capgate stdio`, only when `CAPGATE_BENCH_BASELINE`
//!   names another capgate binary (e.g. one built from an older commit in a separate worktree):
//!   the same configs, contracts, policies and downstream as `capgate HTTP` and `capgate stdio`,
//!   so only the gateway binary differs. Without it they are skipped, and the run says so.
//!
//! The machines are small and noisy, so the paths are interleaved call by call (the order cycles
//! through a balanced set, `paths::balanced_orders`: each path takes each position, and directly
//! follows each other path, equally often) and noise hits all of them alike. Every result must
//! be a success and the same answer as that path's first: a broken gateway cannot produce a
//! fast-looking number. The durable gateway's log must hold one committed, enforced `allow`
//! record of `case__read_case` for every call made through it by the time the last answer
//! arrives (this shows that every call was an allowed read and was logged; that it waited for
//! the commit rests on the config, where a misspelt key would stop the gateway).
//!
//! After the latency run, `store_tx` counts store transactions per call on each HTTP gateway from
//! its `/metrics` (`capgate_store_transactions_total`): for the read, and for a side effect
//! (`case__create_notice_draft`, a fresh idempotency key per call). A baseline without that
//! counter is reported as "n/a".
//!
//! `CAPGATE_BENCH_ITERS` (default 10000, about 50 s on two cores without a baseline; a multiple
//! of the number of paths, 4 or 6, balances the orders exactly) and `CAPGATE_BENCH_WARMUP`
//! (default 500) set the number of measured and warm-up calls per path; `CAPGATE_BENCH_TX_CALLS`
//! (default 200) the reads and side effects whose store transactions are counted;
//! `CAPGATE_BENCH_LOG` overrides the gateways' log filter (default `info`, the binary's own
//! default). Results go to stdout and, as JSON, to `target/capgate-bench/gateway_overhead.json`.
//!
//! Run: `cargo bench --bench gateway_overhead`, or with a baseline:
//! `CAPGATE_BENCH_BASELINE=/path/to/old/capgate cargo bench --bench gateway_overhead`.

mod launch;
mod paths;
mod procs;
mod report;
mod store_tx;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rmcp::model::CallToolResult;

use launch::{capgate_bin, start_direct, start_stdio_gateway, DurableFor, HttpGateway};
use paths::{balanced_orders, call_checked, same_answer, Caller, PathKind, CASE_ID, PATHS};
use procs::CpuProbe;

const BASELINE_ENV: &str = "CAPGATE_BENCH_BASELINE";

fn main() {
    let iterations = env_count("CAPGATE_BENCH_ITERS", 10_000);
    let warmup = env_count("CAPGATE_BENCH_WARMUP", 500);
    let tx_calls = env_count("CAPGATE_BENCH_TX_CALLS", 200);
    let baseline = baseline_binary();
    // One client thread: the clients' own scheduling stays the same on every path and leaves
    // the second core to the gateway and the downstream.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(iterations, warmup, tx_calls, baseline.as_deref()));
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

/// The baseline binary from `CAPGATE_BENCH_BASELINE`, which must be a file if set.
fn baseline_binary() -> Option<PathBuf> {
    let Some(value) = std::env::var_os(BASELINE_ENV).filter(|v| !v.is_empty()) else {
        eprintln!(
            "capgate bench: no baseline (set {BASELINE_ENV}=/path/to/other/capgate to measure \
             it next to this build); skipping the baseline paths"
        );
        return None;
    };
    let binary = PathBuf::from(value);
    assert!(
        binary.is_file(),
        "{BASELINE_ENV}={} is not a file: build the baseline capgate (e.g. `cargo build --release \
         --bin capgate` in a worktree of the older commit) and give its path",
        binary.display()
    );
    Some(binary)
}

async fn run(iterations: usize, warmup: usize, tx_calls: usize, baseline: Option<&Path>) {
    let dir = tempfile::Builder::new()
        .prefix("capgate-bench-")
        .tempdir()
        .expect("tempdir");
    let gateway_log = std::env::var("CAPGATE_BENCH_LOG").unwrap_or_else(|_| "info".into());
    let capgate = capgate_bin();

    let direct = start_direct(dir.path()).await;
    let http = HttpGateway::start(
        capgate,
        &dir.path().join("http"),
        &gateway_log,
        "capgate HTTP",
    )
    .await;
    let stdio = start_stdio_gateway(
        capgate,
        &dir.path().join("stdio"),
        &gateway_log,
        DurableFor::SideEffects,
        "capgate --stdio",
    )
    .await;
    // Its own directory: its own decision log and store, apart from the plain stdio gateway's.
    let durable_dir = dir.path().join("stdio-durable");
    let durable = start_stdio_gateway(
        capgate,
        &durable_dir,
        &gateway_log,
        DurableFor::EveryCall,
        "capgate --stdio (durable log)",
    )
    .await;
    let durable_log = capgate::audit::log_path(&durable_dir.join("data"));
    let baseline_gateways = match baseline {
        Some(binary) => Some((
            HttpGateway::start(
                binary,
                &dir.path().join("baseline-http"),
                &gateway_log,
                "baseline capgate HTTP",
            )
            .await,
            start_stdio_gateway(
                binary,
                &dir.path().join("baseline-stdio"),
                &gateway_log,
                DurableFor::SideEffects,
                "baseline capgate --stdio",
            )
            .await,
        )),
        None => None,
    };

    let mut clients: [Option<&Caller>; PATHS] = [None; PATHS];
    let mut pids: [Option<u32>; PATHS] = [None; PATHS];
    for (kind, client, pid) in [
        (PathKind::Direct, direct.client.peer(), direct.pid),
        (PathKind::GatewayHttp, http.client.peer(), http.child.id()),
        (PathKind::GatewayStdio, stdio.client.peer(), stdio.pid),
        (
            PathKind::GatewayStdioDurable,
            durable.client.peer(),
            durable.pid,
        ),
    ] {
        clients[kind.index()] = Some(client);
        pids[kind.index()] = pid;
    }
    if let Some((baseline_http, baseline_stdio)) = &baseline_gateways {
        clients[PathKind::BaselineHttp.index()] = Some(baseline_http.client.peer());
        pids[PathKind::BaselineHttp.index()] = baseline_http.child.id();
        clients[PathKind::BaselineStdio.index()] = Some(baseline_stdio.client.peer());
        pids[PathKind::BaselineStdio.index()] = baseline_stdio.pid;
    }
    let active: Vec<PathKind> = PathKind::ALL
        .into_iter()
        .filter(|k| clients[k.index()].is_some())
        .collect();
    let client = |kind: PathKind| clients[kind.index()].expect("only running paths are called");
    let params = PathKind::ALL.map(PathKind::params);

    // The paths must do the same downstream work: compare one answer of each. Every later
    // answer of a path must equal its first.
    let mut expected: [Option<CallToolResult>; PATHS] = std::array::from_fn(|_| None);
    for &kind in &active {
        let (_, result) = call_checked(client(kind), &params[kind.index()], kind, None).await;
        expected[kind.index()] = Some(result);
    }
    let answer = |kind: PathKind| {
        expected[kind.index()]
            .as_ref()
            .expect("every running path answered once")
    };
    let reference = answer(PathKind::Direct);
    let reference_text = format!("{:?}", reference.content);
    assert!(
        reference_text.contains(CASE_ID),
        "direct read_case does not describe {CASE_ID}: {reference_text}"
    );
    for &kind in &active {
        if !matches!(kind, PathKind::Direct | PathKind::GatewayStdioDurable)
            && !same_answer(answer(kind), reference)
        {
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
            answer(PathKind::GatewayStdioDurable),
            answer(PathKind::GatewayStdio)
        ),
        "{} answers differently from {}: {:?}",
        PathKind::GatewayStdioDurable.label(),
        PathKind::GatewayStdio.label(),
        answer(PathKind::GatewayStdioDurable).content
    );
    let mut durable_calls = 1;
    assert_logged_durably(&durable_log, durable_calls);

    let indices: Vec<usize> = active.iter().map(|k| k.index()).collect();
    let orders = balanced_orders(&indices);
    eprintln!(
        "capgate bench: {} paths, {warmup} warm-up + {iterations} measured calls per path",
        active.len()
    );
    for i in 0..warmup {
        for &k in &orders[i % orders.len()] {
            let kind = PathKind::ALL[k];
            call_checked(client(kind), &params[k], kind, expected[k].as_ref()).await;
        }
    }
    durable_calls += warmup;
    let mut samples: [Vec<u64>; PATHS] = std::array::from_fn(|_| Vec::new());
    for &k in &indices {
        samples[k].reserve(iterations);
    }
    let cpu = CpuProbe::new(pids);
    let cpu_before = cpu.snapshot();
    let started = Instant::now();
    for i in 0..iterations {
        for &k in &orders[i % orders.len()] {
            let kind = PathKind::ALL[k];
            let (elapsed, _) =
                call_checked(client(kind), &params[k], kind, expected[k].as_ref()).await;
            samples[k].push(elapsed.as_nanos() as u64);
        }
    }
    let measured_for = started.elapsed();
    let cpu_per_call = cpu.per_call(&cpu_before, &cpu.snapshot(), iterations);
    durable_calls += iterations;
    assert_logged_durably(&durable_log, durable_calls);

    // Counted after the latency run, so that its side effects cannot change what was timed.
    let counted = store_tx::count(&http, tx_calls).await;
    assert!(
        counted.is_some(),
        "this build's capgate has no capgate_store_transactions_total on /metrics"
    );
    let mut store_transactions = vec![(PathKind::GatewayHttp, counted)];
    if let Some((baseline_http, _)) = &baseline_gateways {
        store_transactions.push((
            PathKind::BaselineHttp,
            store_tx::count(baseline_http, tx_calls).await,
        ));
    }

    direct.stop().await;
    http.stop().await;
    stdio.stop().await;
    durable.stop().await;
    if let Some((baseline_http, baseline_stdio)) = baseline_gateways {
        baseline_http.stop().await;
        baseline_stdio.stop().await;
    }

    report::report(&report::Run {
        iterations,
        warmup,
        measured_for,
        active: &active,
        orders: orders.len(),
        samples: &samples,
        cpu_per_call: &cpu_per_call,
        gateway_log: &gateway_log,
        baseline,
        store_transactions: &store_transactions,
    });
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
