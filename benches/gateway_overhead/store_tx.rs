//! Store transactions per call, as the gateway counts them: `capgate_store_transactions_total`
//! on its `/metrics` (the number of store transactions since start, read at scrape time), scraped
//! before and after `calls` reads and then `calls` side effects through the HTTP gateway, the
//! difference divided by the calls. The scrape itself may run store transactions (the pending
//! approvals gauge); two scrapes with nothing between them measure that, and it is subtracted.
//!
//! Targets (the enforcement rebuild): at most one transaction for a read; for a side effect one
//! before forwarding (admission) and one after (its result, for replays), so two.

use rmcp::model::{CallToolRequestParams, JsonObject, RequestMetaObject};
use serde_json::{json, Value};

use crate::launch::HttpGateway;
use crate::paths::{call_checked, PathKind, CASE_ID};

const COUNTER: &str = "capgate_store_transactions_total";
const IDEMPOTENCY_META_KEY: &str = "dev.capgate/idempotency-key";
const REPLAY_META_KEY: &str = "dev.capgate/replay";
pub const READ_TARGET: f64 = 1.0;
pub const SIDE_EFFECT_TARGET: f64 = 2.0;

/// What one gateway's counter showed.
#[derive(Clone, Copy)]
pub struct StoreTransactions {
    /// Reads, and then side effects, made between scrapes.
    pub calls: usize,
    /// Transactions a scrape itself runs.
    pub per_scrape: u64,
    /// Transactions the reads ran, all together.
    pub reads: u64,
    /// Transactions the side effects ran, all together.
    pub side_effects: u64,
}

impl StoreTransactions {
    pub fn per_read(&self) -> f64 {
        self.reads as f64 / self.calls as f64
    }

    pub fn per_side_effect(&self) -> f64 {
        self.side_effects as f64 / self.calls as f64
    }

    pub fn to_json(self) -> Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({
            "calls": self.calls,
            "transactions_per_scrape": self.per_scrape,
            "read": {
                "tool": "case__read_case",
                "transactions": self.reads,
                "per_call": r(self.per_read()),
                "target_at_most": READ_TARGET,
            },
            "side_effect": {
                "tool": "case__create_notice_draft",
                "transactions": self.side_effects,
                "per_call": r(self.per_side_effect()),
                "target": SIDE_EFFECT_TARGET,
            },
        })
    }
}

/// Counts `gateway`'s store transactions over `calls` reads and `calls` side effects, or `None`
/// when its `/metrics` has no such counter (a build from before the counter existed), in which
/// case no call is made.
pub async fn count(gateway: &HttpGateway, calls: usize) -> Option<StoreTransactions> {
    assert!(
        calls > 0,
        "counting store transactions needs at least one call"
    );
    let http = reqwest::Client::new();
    let url = gateway.metrics_url();
    let first = scrape(&http, &url).await?;
    let second = counter_now(&http, &url, gateway.name()).await;
    let per_scrape = second.checked_sub(first).unwrap_or_else(|| {
        panic!(
            "{}: {COUNTER} went back from {first} to {second}",
            gateway.name()
        )
    });

    let caller = gateway.client.peer();
    let read = PathKind::GatewayHttp.params();
    let (_, expected) = call_checked(caller, &read, PathKind::GatewayHttp, None).await;
    let before_reads = counter_now(&http, &url, gateway.name()).await;
    for _ in 0..calls {
        call_checked(caller, &read, PathKind::GatewayHttp, Some(&expected)).await;
    }
    let after_reads = counter_now(&http, &url, gateway.name()).await;

    for i in 0..calls {
        let result = caller
            .call_tool(side_effect(i))
            .await
            .unwrap_or_else(|e| panic!("{}: create_notice_draft failed: {e}", gateway.name()));
        assert_ne!(
            result.is_error,
            Some(true),
            "{}: create_notice_draft returned a tool error: {:?}",
            gateway.name(),
            result.content
        );
        // Every key is new: a replay would mean the downstream was not called.
        let replayed = result
            .meta
            .as_ref()
            .and_then(|meta| meta.0.get(REPLAY_META_KEY))
            .is_some_and(|v| v == &Value::Bool(true));
        assert!(!replayed, "{}: draft {i} was a replay", gateway.name());
    }
    let after_side_effects = counter_now(&http, &url, gateway.name()).await;

    let between = |after: u64, before: u64| {
        after
            .checked_sub(before)
            .and_then(|d| d.checked_sub(per_scrape))
            .unwrap_or_else(|| {
                panic!(
                    "{}: {COUNTER} went from {before} to {after}, less than one scrape's \
                     {per_scrape}: the scrape does not cost what it did",
                    gateway.name()
                )
            })
    };
    Some(StoreTransactions {
        calls,
        per_scrape,
        reads: between(after_reads, before_reads),
        side_effects: between(after_side_effects, after_reads),
    })
}

/// The drafting agent, for alice, drafts a notice on the case; key `i` is used once.
fn side_effect(i: usize) -> CallToolRequestParams {
    let mut args = JsonObject::new();
    args.insert("case_id".into(), CASE_ID.into());
    args.insert(
        "body".into(),
        format!("Notice of investigation (bench draft {i})").into(),
    );
    let mut meta = RequestMetaObject::new();
    meta.0 .0.insert(
        IDEMPOTENCY_META_KEY.into(),
        format!("gateway-overhead-draft-{i}").into(),
    );
    let mut params = CallToolRequestParams::new("case__create_notice_draft").with_arguments(args);
    params.meta = Some(meta);
    params
}

/// The counter, which the gateway showed on the first scrape and must show on every later one.
async fn counter_now(http: &reqwest::Client, url: &str, name: &str) -> u64 {
    scrape(http, url)
        .await
        .unwrap_or_else(|| panic!("{name}: {COUNTER} disappeared from {url}"))
}

/// The counter's value on `url`, or `None` when the exposition has no such line (or the
/// gateway has no `/metrics`).
async fn scrape(http: &reqwest::Client, url: &str) -> Option<u64> {
    let response = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot scrape {url}: {e}"));
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("cannot read {url}: {e}"));
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == COUNTER).then(|| {
                value
                    .trim()
                    .parse::<f64>()
                    .unwrap_or_else(|e| panic!("{url}: {COUNTER} value {value:?}: {e}"))
                    as u64
            })
        })
}
