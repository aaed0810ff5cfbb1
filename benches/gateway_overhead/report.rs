//! Statistics over the samples and the report: a table on stdout and the same figures as JSON in
//! `target/capgate-bench/gateway_overhead.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::launch::{capgate_bin, DurableFor};
use crate::paths::{PathKind, CASE_ID, PATHS};
use crate::procs::CpuPerCall;
use crate::store_tx::{StoreTransactions, READ_TARGET, SIDE_EFFECT_TARGET};

/// Everything one run measured.
pub struct Run<'a> {
    pub iterations: usize,
    pub warmup: usize,
    pub measured_for: Duration,
    /// The paths that ran, in report order.
    pub active: &'a [PathKind],
    /// How many orders the interleaving cycles through.
    pub orders: usize,
    /// Per path (indexed by `PathKind::index`), one duration in ns per measured iteration; empty
    /// for a path that did not run.
    pub samples: &'a [Vec<u64>; PATHS],
    pub cpu_per_call: &'a [Option<CpuPerCall>; PATHS],
    pub gateway_log: &'a str,
    /// The binary the baseline paths ran, if they ran.
    pub baseline: Option<&'a Path>,
    /// Per HTTP gateway counted, its store transactions; `None` where it has no counter.
    pub store_transactions: &'a [(PathKind, Option<StoreTransactions>)],
}

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

fn r(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "n": s.n,
        "min_us": r(s.min),
        "median_us": r(s.median),
        "p90_us": r(s.p90),
        "p99_us": r(s.p99),
        "max_us": r(s.max),
    })
}

/// The latency a gateway path adds to the direct call.
struct Added {
    path: PathKind,
    what: &'static str,
    /// Difference of the two paths' medians and p99s.
    median_diff: f64,
    p99_diff: f64,
    /// Statistics of the per-iteration differences.
    pairs: Stats,
}

impl Run<'_> {
    fn runs(&self, kind: PathKind) -> bool {
        self.active.contains(&kind)
    }

    fn stats(&self, kind: PathKind) -> Stats {
        stats(&as_i64(&self.samples[kind.index()]))
    }

    /// Statistics of `a − b`, call by call within each iteration.
    fn paired(&self, a: PathKind, b: PathKind) -> Stats {
        let diffs: Vec<i64> = self.samples[a.index()]
            .iter()
            .zip(&self.samples[b.index()])
            .map(|(&x, &y)| x as i64 - y as i64)
            .collect();
        stats(&diffs)
    }

    fn added(&self) -> Vec<Added> {
        let direct = self.stats(PathKind::Direct);
        [
            (PathKind::GatewayHttp, "HTTP"),
            (PathKind::GatewayStdio, "stdio"),
            (PathKind::GatewayStdioDurable, "stdio, durable log"),
            (PathKind::BaselineHttp, "HTTP, baseline"),
            (PathKind::BaselineStdio, "stdio, baseline"),
        ]
        .into_iter()
        .filter(|(kind, _)| self.runs(*kind))
        .map(|(path, what)| {
            let through = self.stats(path);
            Added {
                path,
                what,
                median_diff: through.median - direct.median,
                p99_diff: through.p99 - direct.p99,
                pairs: self.paired(path, PathKind::Direct),
            }
        })
        .collect()
    }
}

pub fn report(run: &Run) {
    let width = run
        .active
        .iter()
        .map(|k| k.label().len())
        .max()
        .unwrap_or(0);

    println!();
    println!(
        "capgate gateway overhead: tools/call case__read_case {{\"case_id\":\"{CASE_ID}\"}}, \
         {} interleaved iterations per path after {} warm-up, {:.1} s",
        run.iterations,
        run.warmup,
        run.measured_for.as_secs_f64()
    );
    match run.baseline {
        Some(binary) => println!("baseline capgate: {}", binary.display()),
        None => println!("baseline capgate: none (CAPGATE_BENCH_BASELINE not set)"),
    }
    println!(
        "{:<width$} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "path", "n", "min µs", "median µs", "p90 µs", "p99 µs"
    );
    for &kind in run.active {
        let s = run.stats(kind);
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

    let added = run.added();
    for a in &added {
        println!(
            "added by capgate ({}, vs direct stdio): median {:.1} µs, p99 {:.1} µs \
             (per-call pairs: median {:.1} µs, p99 {:.1} µs)",
            a.what, a.median_diff, a.p99_diff, a.pairs.median, a.pairs.p99
        );
    }
    let before_after = before_after(run, &added);
    let durable_logging = durable_logging(run);
    print_cpu(run, width);
    let store_transactions = store_transactions(run);

    let paths: serde_json::Map<String, Value> = run
        .active
        .iter()
        .map(|k| {
            let mut doc = stats_json(&run.stats(*k));
            if let Some(cpu) = run.cpu_per_call[k.index()] {
                doc["cpu_per_call_us"] = json!({
                    "server": r(cpu.front_us),
                    "its_children": r(cpu.below_us),
                });
            }
            (k.key().to_string(), doc)
        })
        .collect();
    let added: serde_json::Map<String, Value> = added
        .iter()
        .map(|a| {
            (
                format!("{}_vs_direct_stdio", a.path.key()),
                json!({
                    "median_diff_us": r(a.median_diff),
                    "p99_diff_us": r(a.p99_diff),
                    "paired_median_us": r(a.pairs.median),
                    "paired_p99_us": r(a.pairs.p99),
                }),
            )
        })
        .collect();
    let document = json!({
        "benchmark": "gateway_overhead",
        "call": {"tool": "case__read_case", "downstream_tool": "read_case", "arguments": {"case_id": CASE_ID}},
        "iterations": run.iterations,
        "warmup": run.warmup,
        "interleaving": format!(
            "per iteration, one call on each path, order cycling through {} orders in which each \
             path takes each position once and directly follows each other path once",
            run.orders
        ),
        "measured_seconds": r(run.measured_for.as_secs_f64()),
        "gateway_log_filter": run.gateway_log,
        "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "timestamp_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "baseline_binary": run.baseline.map(|b| b.display().to_string()),
        "paths": paths,
        "added": added,
        "before_after": before_after,
        "durable_logging": durable_logging,
        "store_transactions_per_call": store_transactions,
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

/// The baseline against this build on each transport: medians, the latency each adds to the
/// direct call (median of per-iteration pairs), and this build minus the baseline, paired.
fn before_after(run: &Run, added: &[Added]) -> Value {
    if run.baseline.is_none() {
        return Value::Null;
    }
    let paired_added = |kind: PathKind| {
        added
            .iter()
            .find(|a| a.path == kind)
            .map(|a| a.pairs.median)
            .expect("every running gateway path has an added latency")
    };
    println!("\nbefore (baseline) → after (this build), medians in µs:");
    println!(
        "  {:<40} {:>10} {:>10} {:>22}",
        "", "before", "after", "after − before, paired"
    );
    println!(
        "  {:<40} {:>10.1}",
        "direct stdio",
        run.stats(PathKind::Direct).median
    );
    let mut doc = serde_json::Map::new();
    for (transport, before, after) in [
        ("HTTP", PathKind::BaselineHttp, PathKind::GatewayHttp),
        ("stdio", PathKind::BaselineStdio, PathKind::GatewayStdio),
    ] {
        let (b, a) = (run.stats(before), run.stats(after));
        let change = run.paired(after, before);
        let (added_before, added_after) = (paired_added(before), paired_added(after));
        println!(
            "  {:<40} {:>10.1} {:>10.1} {:>22.1}",
            format!("capgate {transport}"),
            b.median,
            a.median,
            change.median
        );
        println!(
            "  {:<40} {:>10.1} {:>10.1}",
            format!("added vs direct, {transport} (paired)"),
            added_before,
            added_after
        );
        doc.insert(
            transport.to_lowercase(),
            json!({
                "before_median_us": r(b.median),
                "after_median_us": r(a.median),
                "before_p99_us": r(b.p99),
                "after_p99_us": r(a.p99),
                "added_vs_direct_paired_median_us": {"before": r(added_before), "after": r(added_after)},
                "after_minus_before_paired_median_us": r(change.median),
                "after_minus_before_paired_p99_us": r(change.p99),
            }),
        );
    }
    Value::Object(doc)
}

/// Durable logging: the same gateway, transport and downstream work, but the read waits for its
/// decision record's commit. Paired per iteration, so noise common to both cancels.
fn durable_logging(run: &Run) -> Value {
    let plain = run.stats(PathKind::GatewayStdio);
    let durable = run.stats(PathKind::GatewayStdioDurable);
    let logging = run.paired(PathKind::GatewayStdioDurable, PathKind::GatewayStdio);
    let median_ratio = durable.median / plain.median;
    println!(
        "\nadded by durable logging (stdio, durable_for every_call vs side_effects): per-call \
         pairs median {:.1} µs, p99 {:.1} µs; medians {:.1} vs {:.1} µs (×{median_ratio:.3})",
        logging.median, logging.p99, durable.median, plain.median
    );
    json!({
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
    })
}

fn print_cpu(run: &Run, width: usize) {
    println!(
        "\nCPU per call (user + system, all threads, from /proc; not latency, but where it goes):"
    );
    for &kind in run.active {
        match run.cpu_per_call[kind.index()] {
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
}

fn store_transactions(run: &Run) -> Value {
    println!(
        "\nstore transactions per call (capgate_store_transactions_total on /metrics, HTTP; \
         target: read ≤ {READ_TARGET}, side effect {SIDE_EFFECT_TARGET}):"
    );
    let mut doc = serde_json::Map::new();
    for (kind, counted) in run.store_transactions {
        match counted {
            Some(tx) => {
                println!(
                    "  {}: read {:.2} ({} over {} case__read_case), side effect {:.2} ({} over \
                     {} case__create_notice_draft); a scrape itself: {}",
                    kind.label(),
                    tx.per_read(),
                    tx.reads,
                    tx.calls,
                    tx.per_side_effect(),
                    tx.side_effects,
                    tx.calls,
                    tx.per_scrape
                );
                doc.insert(kind.key().into(), tx.to_json());
            }
            None => {
                println!(
                    "  {}: n/a (its /metrics has no capgate_store_transactions_total)",
                    kind.label()
                );
                doc.insert(kind.key().into(), "n/a".into());
            }
        }
    }
    Value::Object(doc)
}

fn as_i64(values: &[u64]) -> Vec<i64> {
    values.iter().map(|&x| x as i64).collect()
}

/// Cargo's target directory: the binaries under test live in `<target>/<profile>/`.
fn target_dir() -> PathBuf {
    capgate_bin()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
