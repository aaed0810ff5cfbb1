//! Operational metrics in the Prometheus text format, served at `/metrics`: decisions by outcome,
//! action, tool and policy version; decision latency and gateway overhead; obligation failures,
//! shadow differences, kill-switch hits, budget exhaustion, break-glass uses, approvals, calls
//! let through degraded;
//! downstream errors and latency; gauges for pending approvals, active kill switches and
//! break-glass grants, whether the enforcement store answers and how many transactions it has run
//! (set at scrape time).
//!
//! Counters and histograms live behind one short-held mutex each update (no `.await` inside);
//! labels never carry tenant or user ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

type Labels = Vec<(&'static str, String)>;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    gauges: BTreeMap<&'static str, f64>,
}

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
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

/// Whether `render` shows `name`: it writes only the metrics described in `HELP`, so a value
/// recorded under any other name would be kept and never served.
fn described(name: &str) -> bool {
    HELP.iter().any(|(described, _, _)| *described == name)
}

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: Labels) {
        debug_assert!(
            described(name),
            "{name} is not in HELP: /metrics would not show it"
        );
        if let Ok(mut registry) = self.registry.lock() {
            *registry.counters.entry((name, labels)).or_default() += 1;
        }
    }

    pub fn observe(&self, name: &'static str, labels: Labels, value: Duration) {
        debug_assert!(
            described(name),
            "{name} is not in HELP: /metrics would not show it"
        );
        let seconds = value.as_secs_f64();
        if let Ok(mut registry) = self.registry.lock() {
            let histogram = registry.histograms.entry((name, labels)).or_default();
            for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
                if seconds <= *bound {
                    *count += 1;
                }
            }
            histogram.count += 1;
            histogram.sum += seconds;
        }
    }

    /// Sets an unlabelled gauge (or a counter kept elsewhere) to its current value.
    pub fn set_gauge(&self, name: &'static str, value: f64) {
        debug_assert!(
            described(name),
            "{name} is not in HELP: /metrics would not show it"
        );
        if let Ok(mut registry) = self.registry.lock() {
            registry.gauges.insert(name, value);
        }
    }

    /// Removes a gauge whose value is unknown (so no stale value is served).
    pub fn clear_gauge(&self, name: &'static str) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.gauges.remove(name);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(registry) = self.registry.lock() else {
            return out;
        };
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for ((metric, labels), value) in &registry.counters {
                if metric == name {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
            if let Some(value) = registry.gauges.get(name) {
                let _ = writeln!(out, "{name} {value}");
            }
            for ((metric, labels), histogram) in &registry.histograms {
                if metric != name {
                    continue;
                }
                for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
                    let le = format!("{bound}");
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        render_labels(labels, Some(&le))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some("+Inf")),
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    render_labels(labels, None),
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(labels, None),
                    histogram.count
                );
            }
        }
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

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
            text.contains("capgate_decision_seconds_bucket{le=\"0.00005\"} 1"),
            "{text}"
        );
        assert!(text.contains("capgate_decision_seconds_count 1"), "{text}");
    }

    #[test]
    fn renders_values_set_at_scrape_time() {
        let metrics = Metrics::default();
        metrics.set_gauge("capgate_store_up", 1.0);
        metrics.set_gauge("capgate_store_transactions_total", 7.0);
        let text = metrics.render();
        assert!(text.contains("\ncapgate_store_up 1\n"), "{text}");
        assert!(
            text.contains("# TYPE capgate_store_transactions_total counter\ncapgate_store_transactions_total 7\n"),
            "{text}"
        );
    }
}
