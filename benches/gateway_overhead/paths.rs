//! What is measured: the paths one `read_case` call can take (direct to the downstream, through
//! today's capgate, through a baseline capgate build), the order in which they take turns, and
//! one checked call.

use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, RequestMetaObject};
use rmcp::service::{Peer, RoleClient};
use serde_json::json;

pub const CASE_ID: &str = "case-101";
const ACTOR_META_KEY: &str = "dev.capgate/actor";

pub type Caller = Peer<RoleClient>;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Direct,
    GatewayHttp,
    GatewayStdio,
    GatewayStdioDurable,
    /// The binary in `CAPGATE_BENCH_BASELINE`, serving HTTP with the same config as `GatewayHttp`.
    BaselineHttp,
    /// The binary in `CAPGATE_BENCH_BASELINE`, over stdio with the same config as `GatewayStdio`.
    BaselineStdio,
}

/// How many paths there can be; samples and per-path results are arrays of this length, empty
/// for a path that does not run.
pub const PATHS: usize = PathKind::ALL.len();

impl PathKind {
    /// Every path, in report order.
    pub const ALL: [PathKind; 6] = [
        PathKind::Direct,
        PathKind::GatewayHttp,
        PathKind::GatewayStdio,
        PathKind::GatewayStdioDurable,
        PathKind::BaselineHttp,
        PathKind::BaselineStdio,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct stdio",
            PathKind::GatewayHttp => "capgate HTTP",
            PathKind::GatewayStdio => "capgate stdio",
            PathKind::GatewayStdioDurable => "capgate stdio, durable log",
            PathKind::BaselineHttp => "baseline capgate HTTP",
            PathKind::BaselineStdio => "baseline capgate stdio",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            PathKind::Direct => "direct_stdio",
            PathKind::GatewayHttp => "capgate_http",
            PathKind::GatewayStdio => "capgate_stdio",
            PathKind::GatewayStdioDurable => "capgate_stdio_durable_log",
            PathKind::BaselineHttp => "baseline_capgate_http",
            PathKind::BaselineStdio => "baseline_capgate_stdio",
        }
    }

    /// The tool this path calls: the gateways expose the downstream's tools under its id.
    pub fn params(self) -> CallToolRequestParams {
        match self {
            PathKind::Direct => {
                let mut params =
                    CallToolRequestParams::new("read_case").with_arguments(case_args());
                params.meta = Some(actor_meta());
                params
            }
            PathKind::GatewayHttp
            | PathKind::GatewayStdio
            | PathKind::GatewayStdioDurable
            | PathKind::BaselineHttp
            | PathKind::BaselineStdio => {
                CallToolRequestParams::new("case__read_case").with_arguments(case_args())
            }
        }
    }
}

/// Orders of `paths` (indices into `PathKind::ALL`) in which, over one cycle, each path takes
/// each position once and directly follows each other path once: a Williams design, `n` orders
/// for an even number of paths and `2n` for an odd one. Iteration `i` uses
/// `orders[i % orders.len()]`. (All permutations would need 720 iterations per cycle for six
/// paths.)
pub fn balanced_orders(paths: &[usize]) -> Vec<Vec<usize>> {
    let n = paths.len();
    assert!(n > 0, "at least one path runs");
    // 0, 1, n-1, 2, n-2, ...: successive differences take every value mod n once.
    let first: Vec<usize> = (0..n)
        .map(|j| match j {
            0 => 0,
            j if j % 2 == 1 => j.div_ceil(2),
            j => n - j / 2,
        })
        .collect();
    let mut orders: Vec<Vec<usize>> = (0..n)
        .map(|shift| first.iter().map(|&j| paths[(j + shift) % n]).collect())
        .collect();
    if n % 2 == 1 {
        let reversed: Vec<Vec<usize>> = orders
            .iter()
            .map(|order| order.iter().rev().copied().collect())
            .collect();
        orders.extend(reversed);
    }
    assert_balanced(paths, &orders);
    orders
}

/// The property `balanced_orders` promises, checked on every run (it is cheap): a broken
/// design would bias one path with another's after-effects.
fn assert_balanced(paths: &[usize], orders: &[Vec<usize>]) {
    let n = paths.len();
    let cycles = orders.len() / n;
    for &path in paths {
        for position in 0..n {
            let times = orders.iter().filter(|o| o[position] == path).count();
            assert_eq!(times, cycles, "path {path} at position {position}");
        }
        for &before in paths.iter().filter(|&&p| p != path) {
            let times = orders
                .iter()
                .flat_map(|o| o.windows(2))
                .filter(|w| w[0] == before && w[1] == path)
                .count();
            assert_eq!(times, cycles, "path {path} directly after {before}");
        }
    }
}

/// One timed call; panics unless it is a successful tool result and, when `expected` is given,
/// the same answer.
pub async fn call_checked(
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

pub fn same_answer(a: &CallToolResult, b: &CallToolResult) -> bool {
    a.content == b.content && a.structured_content == b.structured_content
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
