//! Operational metrics, served at `/metrics` in the OpenMetrics text format by
//! `prometheus-client`: decisions by outcome, action, tool and policy version; decision latency
//! and gateway overhead; obligation failures, shadow differences, kill-switch hits, budget
//! exhaustion, break-glass uses, approvals, quarantines, calls let through degraded; downstream
//! errors and latency; fetches of issuers' keys by issuer and outcome; gauges for pending
//! approvals, active kill switches and break-glass grants, whether the enforcement store answers
//! and how many transactions it has run (set at scrape time).
//!
//! Every metric is a typed field, registered once at start; its labels are a struct
//! (`EncodeLabelSet`), so a label name cannot be misspelled, and a label whose values are a
//! closed set is an enum (`Outcome`, `Action`, [`KeyFetchOutcome`]) encoded as the same
//! snake_case word the decision log uses. An update is an atomic add on its series (the
//! family's lock is taken only to find a series, shared unless the series is new). Labels never
//! carry tenant or user ids.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::policy::{Action, Outcome};

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// How a request ended, as counted: with an outcome, or as a replay of an earlier result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ended {
    Decided(Outcome),
    Replay,
}

/// How one fetch of an issuer's keys went. (No `not_modified`: capgate does not send
/// conditional requests; the provider's `Cache-Control` decides when to fetch again.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFetchOutcome {
    /// The set was fetched and replaced the cached one.
    Ok,
    /// The provider did not answer with a usable set; the cached keys stay in force.
    Error,
    /// A token's unknown `kid` asked for a refresh past the per-minute limit: not fetched.
    RateLimited,
}

impl KeyFetchOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFetchOutcome::Ok => "ok",
            KeyFetchOutcome::Error => "error",
            KeyFetchOutcome::RateLimited => "rate_limited",
        }
    }
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Decided(outcome) => outcome.as_str(),
            Ended::Replay => "replay",
        }
    }
}

/// A closed set of label values, encoded as its snake_case word (the derive would encode the
/// variant's name, `RequireApproval`, where records and dashboards say `require_approval`).
macro_rules! label_values {
    ($($kind:ty),*) => {$(
        impl EncodeLabelValue for $kind {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}

label_values!(Outcome, Action, Ended, KeyFetchOutcome);

/// The labels of `capgate_decisions_total`: one per request, when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DecisionLabels {
    pub outcome: Ended,
    pub action: Action,
    /// The capability's exposed name (`unknown` for a name no contract covers).
    pub tool: String,
    pub policy_version: String,
    /// The control that refused (`Refusal::control`); empty when the PDP decided.
    pub refused_by: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ActionLabels {
    action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KeyFetchLabels {
    issuer: String,
    outcome: KeyFetchOutcome,
}

/// No labels, for a gauge that has no sample while its value is unknown (a family can be
/// emptied; a bare gauge cannot).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Unlabelled {}

/// The counters of events about one capability, each labelled with its exposed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolEvent {
    /// An allow turned into a deny: an obligation could not be enforced.
    ObligationFailure,
    KillSwitchHit,
    BudgetExhausted,
    BreakGlassUse,
    ApprovalRequested,
    /// The tool's definition changed from its pin (each new definition once).
    Quarantine,
    /// A fail_open call let through while the store could not run its admission.
    DegradedCall,
}

/// What the gateway reads at each scrape: values kept elsewhere (the store, the log).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scraped {
    /// `None` when the store did not answer (no sample then).
    pub pending_approvals: Option<u64>,
    pub store_up: bool,
    /// `None` unless replicas share a PostgreSQL store.
    pub change_feed_up: Option<bool>,
    pub store_transactions: u64,
    pub log_write_failures: u64,
    pub unwritten_records: u64,
    pub kill_switches_active: u64,
    pub break_glass_grants_active: u64,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: Histogram,
    overhead_seconds: Histogram,
    shadow_differences: Family<ActionLabels, Counter>,
    obligation_failures: Family<ToolLabels, Counter>,
    kill_switch_hits: Family<ToolLabels, Counter>,
    budget_exhausted: Family<ToolLabels, Counter>,
    break_glass_uses: Family<ToolLabels, Counter>,
    approvals_requested: Family<ToolLabels, Counter>,
    tool_quarantines: Family<ToolLabels, Counter>,
    degraded_calls: Family<ToolLabels, Counter>,
    downstream_errors: Family<ServerLabels, Counter>,
    downstream_seconds: Family<ServerLabels, Histogram, fn() -> Histogram>,
    key_fetches: Family<KeyFetchLabels, Counter>,
    log_write_failures: Counter,
    unwritten_records: FloatGauge,
    sessions_open: FloatGauge,
    store_transactions: Counter,
    pending_approvals: Family<Unlabelled, FloatGauge>,
    kill_switches_active: FloatGauge,
    break_glass_grants_active: FloatGauge,
    store_up: FloatGauge,
    change_feed_up: Family<Unlabelled, FloatGauge>,
}

/// Registers `metric` under `name` (a counter's without its `_total`: OpenMetrics adds it to
/// the samples) and hands it back.
fn registered<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let histograms = || Family::new_with_constructor(histogram as fn() -> Histogram);
        Self {
            decisions: registered(&mut r, "capgate_decisions", "Decisions by outcome, action, tool and policy version.", Family::default()),
            decision_seconds: registered(&mut r, "capgate_decision_seconds", "Time the PDP took for one decision.", histogram()),
            overhead_seconds: registered(&mut r, "capgate_gateway_overhead_seconds", "Time a forwarded call spent in capgate, downstream time excluded.", histogram()),
            obligation_failures: registered(&mut r, "capgate_obligation_failures", "Allows turned into denies because an obligation could not be enforced.", Family::default()),
            shadow_differences: registered(&mut r, "capgate_shadow_differences", "Decisions where the shadow policy set decided differently.", Family::default()),
            kill_switch_hits: registered(&mut r, "capgate_kill_switch_hits", "Calls stopped by a kill switch.", Family::default()),
            budget_exhausted: registered(&mut r, "capgate_budget_exhausted", "Calls refused because the run's budget was used up.", Family::default()),
            break_glass_uses: registered(&mut r, "capgate_break_glass_uses", "Calls allowed under a break-glass grant.", Family::default()),
            approvals_requested: registered(&mut r, "capgate_approvals_requested", "Approval requests opened.", Family::default()),
            tool_quarantines: registered(&mut r, "capgate_tool_quarantines", "Tool definitions that changed from their pin (each new definition once): the tool is quarantined until an admin accepts it.", Family::default()),
            degraded_calls: registered(&mut r, "capgate_degraded_calls", "fail_open calls let through, marked degraded, while the enforcement store could not run their admission.", Family::default()),
            downstream_errors: registered(&mut r, "capgate_downstream_errors", "Downstream calls that failed (unavailable, timeout, transport).", Family::default()),
            downstream_seconds: registered(&mut r, "capgate_downstream_seconds", "Downstream call latency.", histograms()),
            key_fetches: registered(&mut r, "capgate_key_fetches", "Fetches of issuers' keys by URL (JWKS, after discovery when configured) by outcome: ok, error (the cached keys stay in force), rate_limited (a refresh an unknown kid asked for past the per-minute limit, not fetched).", Family::default()),
            log_write_failures: registered(&mut r, "capgate_decision_log_write_failures", "Decision records that could not be written (their calls were refused when durability was required).", Counter::default()),
            unwritten_records: registered(&mut r, "capgate_decision_log_unwritten_records", "Decision records kept in memory because the database could not take them yet (replicas on PostgreSQL); written once it can.", FloatGauge::default()),
            sessions_open: registered(&mut r, "capgate_sessions_open", "MCP sessions open on the agents' listener.", FloatGauge::default()),
            store_transactions: registered(&mut r, "capgate_store_transactions", "Enforcement store transactions run since start (one per admission, one per settled side effect).", Counter::default()),
            pending_approvals: registered(&mut r, "capgate_pending_approvals", "Approval requests waiting for a decision and not yet expired.", Family::default()),
            kill_switches_active: registered(&mut r, "capgate_kill_switches_active", "Kill switches currently on, at every scope.", FloatGauge::default()),
            break_glass_grants_active: registered(&mut r, "capgate_break_glass_grants_active", "Break-glass grants not yet expired.", FloatGauge::default()),
            store_up: registered(&mut r, "capgate_store_up", "1 when the enforcement store answered the last scrape, else 0.", FloatGauge::default()),
            change_feed_up: registered(&mut r, "capgate_store_change_feed_up", "Replicas on PostgreSQL: 1 while this replica listens for other replicas' changes, else 0 (it reconnects and resyncs).", Family::default()),
            registry: r,
        }
    }
}

/// Brings a counter kept elsewhere (it only grows) up to `value`.
fn catch_up(counter: &Counter, value: u64) {
    let current = counter.get();
    if value > current {
        counter.inc_by(value - current);
    }
}

/// 1 or 0.
fn flag(up: bool) -> f64 {
    f64::from(u8::from(up))
}

impl Metrics {
    /// One request ended.
    pub fn count_decision(&self, labels: &DecisionLabels) {
        self.decisions.get_or_create(labels).inc();
    }

    pub fn count(&self, event: ToolEvent, tool: &str) {
        let family = match event {
            ToolEvent::ObligationFailure => &self.obligation_failures,
            ToolEvent::KillSwitchHit => &self.kill_switch_hits,
            ToolEvent::BudgetExhausted => &self.budget_exhausted,
            ToolEvent::BreakGlassUse => &self.break_glass_uses,
            ToolEvent::ApprovalRequested => &self.approvals_requested,
            ToolEvent::Quarantine => &self.tool_quarantines,
            ToolEvent::DegradedCall => &self.degraded_calls,
        };
        family
            .get_or_create(&ToolLabels {
                tool: tool.to_string(),
            })
            .inc();
    }

    pub fn count_shadow_difference(&self, action: Action) {
        self.shadow_differences
            .get_or_create(&ActionLabels { action })
            .inc();
    }

    pub fn count_key_fetch(&self, issuer: &str, outcome: KeyFetchOutcome) {
        self.key_fetches
            .get_or_create(&KeyFetchLabels {
                issuer: issuer.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn observe_decision_time(&self, time: Duration) {
        self.decision_seconds.observe(time.as_secs_f64());
    }

    /// The latency capgate added to a forwarded call.
    pub fn observe_overhead(&self, time: Duration) {
        self.overhead_seconds.observe(time.as_secs_f64());
    }

    pub fn observe_downstream(&self, server: &str, time: Duration, failed: bool) {
        let labels = ServerLabels {
            server: server.to_string(),
        };
        self.downstream_seconds
            .get_or_create(&labels)
            .observe(time.as_secs_f64());
        if failed {
            self.downstream_errors.get_or_create(&labels).inc();
        }
    }

    pub fn set_sessions_open(&self, open: usize) {
        self.sessions_open.set(open as f64);
    }

    /// Sets what is read at scrape time.
    pub fn set_scraped(&self, values: &Scraped) {
        match values.pending_approvals {
            Some(pending) => {
                self.pending_approvals
                    .get_or_create(&Unlabelled {})
                    .set(pending as f64);
            }
            // Unknown: no sample rather than a stale one.
            None => self.pending_approvals.clear(),
        }
        self.store_up.set(flag(values.store_up));
        if let Some(up) = values.change_feed_up {
            self.change_feed_up
                .get_or_create(&Unlabelled {})
                .set(flag(up));
        }
        catch_up(&self.store_transactions, values.store_transactions);
        catch_up(&self.log_write_failures, values.log_write_failures);
        self.unwritten_records.set(values.unwritten_records as f64);
        self.kill_switches_active
            .set(values.kill_switches_active as f64);
        self.break_glass_grants_active
            .set(values.break_glass_grants_active as f64);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = encode(&mut out, &self.registry) {
            tracing::error!(%error, "the metrics could not be encoded");
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(outcome: Ended, refused_by: Option<&'static str>) -> DecisionLabels {
        DecisionLabels {
            outcome,
            action: Action::CallTool,
            tool: "case__read_case".into(),
            policy_version: "v1".into(),
            refused_by,
        }
    }

    #[test]
    fn renders_typed_labels_as_the_log_spells_them() {
        let metrics = Metrics::default();
        let allowed = decision(Ended::Decided(Outcome::Allow), None);
        metrics.count_decision(&allowed);
        metrics.count_decision(&allowed);
        metrics.count_decision(&decision(
            Ended::Decided(Outcome::RequireApproval),
            Some("kill_switch"),
        ));
        metrics.count_decision(&decision(Ended::Replay, None));
        metrics.observe_decision_time(Duration::from_micros(40));
        metrics.count_key_fetch("https://idp.example", KeyFetchOutcome::RateLimited);
        let text = metrics.render();
        for line in [
            "capgate_decisions_total{outcome=\"allow\",action=\"call_tool\",tool=\"case__read_case\",policy_version=\"v1\",refused_by=\"\"} 2",
            "capgate_decisions_total{outcome=\"require_approval\",action=\"call_tool\",tool=\"case__read_case\",policy_version=\"v1\",refused_by=\"kill_switch\"} 1",
            "capgate_decisions_total{outcome=\"replay\",",
            "capgate_key_fetches_total{issuer=\"https://idp.example\",outcome=\"rate_limited\"} 1",
            "capgate_decision_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(
            text.contains("capgate_decision_seconds_bucket{le=\"5e-5\"} 1")
                || text.contains("capgate_decision_seconds_bucket{le=\"0.00005\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn renders_values_set_at_scrape_time() {
        let metrics = Metrics::default();
        let mut scraped = Scraped {
            pending_approvals: Some(2),
            store_up: true,
            store_transactions: 7,
            ..Scraped::default()
        };
        metrics.set_scraped(&scraped);
        scraped.store_transactions = 9;
        metrics.set_scraped(&scraped);
        let text = metrics.render();
        assert!(text.contains("\ncapgate_store_up 1"), "{text}");
        assert!(text.contains("\ncapgate_pending_approvals 2"), "{text}");
        assert!(
            text.contains(
                "# TYPE capgate_store_transactions counter\ncapgate_store_transactions_total 9\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("\ncapgate_store_change_feed_up "),
            "no change feed, no sample"
        );
        scraped.pending_approvals = None;
        scraped.store_up = false;
        metrics.set_scraped(&scraped);
        let text = metrics.render();
        assert!(
            !text.contains("\ncapgate_pending_approvals "),
            "an unknown value is not served: {text}"
        );
        assert!(text.contains("\ncapgate_store_up 0"), "{text}");
    }
}
