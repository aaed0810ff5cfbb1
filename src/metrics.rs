//! Operational metrics, served at `/metrics` in the OpenMetrics text format by
//! `prometheus-client`: decisions by outcome, action, tool and policy version; decision latency
//! and gateway overhead; obligation failures, shadow differences, kill-switch hits, budget
//! exhaustion, break-glass uses, approvals, quarantines, calls let through degraded; downstream
//! errors and latency; gauges for pending approvals, active kill switches and break-glass grants,
//! whether the enforcement store answers and how many transactions it has run (set at scrape
//! time).
//!
//! Every metric is registered once, at start; an update is an atomic add on its series (the
//! family's lock is taken only to find a series, shared unless the series is new). Labels never
//! carry tenant or user ids.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// One registered metric.
enum Metric {
    Counter(Family<Labels, Counter>),
    Histogram(Family<Labels, Histogram, fn() -> Histogram>),
    /// Set at scrape time; no sample while its value is unknown.
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
}

/// The gateway's metrics.
pub struct Metrics {
    metrics: HashMap<&'static str, Metric>,
    registry: Registry,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "capgate_decisions_total",
        "counter",
        "Decisions by outcome, action, tool and policy version.",
    ),
    (
        "capgate_decision_seconds",
        "histogram",
        "Time the PDP took for one decision.",
    ),
    (
        "capgate_gateway_overhead_seconds",
        "histogram",
        "Time a forwarded call spent in capgate, downstream time excluded.",
    ),
    (
        "capgate_obligation_failures_total",
        "counter",
        "Allows turned into denies because an obligation could not be enforced.",
    ),
    (
        "capgate_shadow_differences_total",
        "counter",
        "Decisions where the shadow policy set decided differently.",
    ),
    (
        "capgate_kill_switch_hits_total",
        "counter",
        "Calls stopped by a kill switch.",
    ),
    (
        "capgate_budget_exhausted_total",
        "counter",
        "Calls refused because the run's budget was used up.",
    ),
    (
        "capgate_break_glass_uses_total",
        "counter",
        "Calls allowed under a break-glass grant.",
    ),
    (
        "capgate_approvals_requested_total",
        "counter",
        "Approval requests opened.",
    ),
    (
        "capgate_tool_quarantines_total",
        "counter",
        "Tool definitions that changed from their pin (each new definition once): the tool is quarantined until an admin accepts it.",
    ),
    (
        "capgate_degraded_calls_total",
        "counter",
        "fail_open calls let through, marked degraded, while the enforcement store could not run their admission.",
    ),
    (
        "capgate_downstream_errors_total",
        "counter",
        "Downstream calls that failed (unavailable, timeout, transport).",
    ),
    (
        "capgate_downstream_seconds",
        "histogram",
        "Downstream call latency.",
    ),
    (
        "capgate_decision_log_write_failures_total",
        "counter",
        "Decision records that could not be written (their calls were refused when durability was required).",
    ),
    (
        "capgate_decision_log_unwritten_records",
        "gauge",
        "Decision records kept in memory because the database could not take them yet (replicas on PostgreSQL); written once it can.",
    ),
    (
        "capgate_sessions_open",
        "gauge",
        "MCP sessions open on the agents' listener.",
    ),
    (
        "capgate_store_transactions_total",
        "counter",
        "Enforcement store transactions run since start (one per admission, one per settled side effect).",
    ),
    (
        "capgate_pending_approvals",
        "gauge",
        "Approval requests waiting for a decision and not yet expired.",
    ),
    (
        "capgate_kill_switches_active",
        "gauge",
        "Kill switches currently on, at every scope.",
    ),
    (
        "capgate_break_glass_grants_active",
        "gauge",
        "Break-glass grants not yet expired.",
    ),
    (
        "capgate_store_up",
        "gauge",
        "1 when the enforcement store answered the last scrape, else 0.",
    ),
    (
        "capgate_store_change_feed_up",
        "gauge",
        "Replicas on PostgreSQL: 1 while this replica listens for other replicas' changes, else 0 (it reconnects and resyncs).",
    ),
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let mut metrics = HashMap::new();
        for (name, kind, help) in HELP {
            // OpenMetrics names a counter without its `_total`; its samples carry it.
            let family_name = name.strip_suffix("_total").unwrap_or(name);
            let metric = match *kind {
                "counter" => {
                    let family = Family::<Labels, Counter>::default();
                    registry.register(family_name, *help, family.clone());
                    Metric::Counter(family)
                }
                "histogram" => {
                    let family =
                        Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
                            histogram,
                        );
                    registry.register(*name, *help, family.clone());
                    Metric::Histogram(family)
                }
                _ => {
                    let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
                    registry.register(*name, *help, family.clone());
                    Metric::Gauge(family)
                }
            };
            metrics.insert(*name, metric);
        }
        Self { metrics, registry }
    }
}

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: Labels) {
        match self.metrics.get(name) {
            Some(Metric::Counter(family)) => {
                family.get_or_create(&labels).inc();
            }
            Some(Metric::Histogram(_) | Metric::Gauge(_)) | None => {
                debug_assert!(false, "{name} is not a counter in HELP");
            }
        }
    }

    pub fn observe(&self, name: &'static str, labels: Labels, value: Duration) {
        match self.metrics.get(name) {
            Some(Metric::Histogram(family)) => {
                family.get_or_create(&labels).observe(value.as_secs_f64());
            }
            Some(Metric::Counter(_) | Metric::Gauge(_)) | None => {
                debug_assert!(false, "{name} is not a histogram in HELP");
            }
        }
    }

    /// Sets an unlabelled gauge, or a counter kept elsewhere (it only grows), to its current
    /// value.
    pub fn set_gauge(&self, name: &'static str, value: f64) {
        match self.metrics.get(name) {
            Some(Metric::Gauge(family)) => {
                family.get_or_create(&Vec::new()).set(value);
            }
            Some(Metric::Counter(family)) => {
                let counter = family.get_or_create(&Vec::new());
                let target = value.max(0.0) as u64;
                let current = counter.get();
                if target > current {
                    counter.inc_by(target - current);
                }
            }
            Some(Metric::Histogram(_)) | None => {
                debug_assert!(false, "{name} is not a gauge in HELP");
            }
        }
    }

    /// Removes a gauge whose value is unknown (so no stale value is served).
    pub fn clear_gauge(&self, name: &'static str) {
        if let Some(Metric::Gauge(family)) = self.metrics.get(name) {
            family.clear();
        }
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

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = Metrics::default();
        metrics.inc("capgate_decisions_total", vec![("outcome", "allow".into())]);
        metrics.inc("capgate_decisions_total", vec![("outcome", "allow".into())]);
        metrics.observe(
            "capgate_decision_seconds",
            vec![],
            Duration::from_micros(40),
        );
        let text = metrics.render();
        assert!(
            text.contains("capgate_decisions_total{outcome=\"allow\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("capgate_decision_seconds_bucket{le=\"5e-5\"} 1")
                || text.contains("capgate_decision_seconds_bucket{le=\"0.00005\"} 1"),
            "{text}"
        );
        assert!(text.contains("capgate_decision_seconds_count 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn renders_values_set_at_scrape_time() {
        let metrics = Metrics::default();
        metrics.set_gauge("capgate_store_up", 1.0);
        metrics.set_gauge("capgate_store_transactions_total", 7.0);
        metrics.set_gauge("capgate_store_transactions_total", 9.0);
        let text = metrics.render();
        assert!(text.contains("\ncapgate_store_up 1"), "{text}");
        assert!(
            text.contains(
                "# TYPE capgate_store_transactions counter\ncapgate_store_transactions_total 9\n"
            ),
            "{text}"
        );
        metrics.clear_gauge("capgate_store_up");
        assert!(
            !metrics.render().contains("\ncapgate_store_up "),
            "an unknown value is not served"
        );
    }
}
