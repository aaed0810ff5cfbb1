//! One measurement as a line of JSON (the script collects them in a file), and the markdown
//! table of their medians across repetitions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::load::{quantile, Measured};

#[derive(Serialize, Deserialize)]
pub struct Sample {
    /// The path measured, e.g. "capgate HTTP, HS256".
    pub path: String,
    pub clients: usize,
    pub rep: u32,
    pub calls: u64,
    pub calls_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Gateway CPU time in the window divided by the calls in it.
    pub gateway_cpu_us_per_call: Option<f64>,
    /// The gateway's `VmHWM` at the end of the window.
    pub gateway_peak_rss_mib: Option<f64>,
}

impl Sample {
    pub fn new(path: String, clients: usize, rep: u32, measured: &Measured) -> Self {
        let calls = measured.latencies_ns.len() as u64;
        let micros = |q| quantile(&measured.latencies_ns, q).unwrap_or(0) as f64 / 1_000.0;
        let gateway = measured.gateway.as_ref();
        Self {
            path,
            clients,
            rep,
            calls,
            calls_per_s: calls as f64 / measured.window.as_secs_f64(),
            p50_us: micros(0.5),
            p99_us: micros(0.99),
            gateway_cpu_us_per_call: gateway
                .filter(|_| calls > 0)
                .map(|g| g.cpu.as_secs_f64() * 1e6 / calls as f64),
            gateway_peak_rss_mib: gateway.map(|g| g.peak_rss_kib as f64 / 1024.0),
        }
    }
}

/// Medians across the repetitions of one path at one concurrency.
struct Row {
    reps: usize,
    calls_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: Option<f64>,
    rss_mib: Option<f64>,
}

/// The table: one row per path and concurrency, in the order the paths first appear, with
/// throughput as a share of each baseline path's (by label) at the same concurrency, and the
/// p50 latency a path adds to the first baseline's.
pub fn table(samples: &[Sample], baselines: &[String]) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<(usize, usize), Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        let index = match order.iter().position(|p| *p == sample.path) {
            Some(index) => index,
            None => {
                order.push(&sample.path);
                order.len() - 1
            }
        };
        groups
            .entry((sample.clients, index))
            .or_default()
            .push(sample);
    }
    let rows: BTreeMap<(usize, usize), Row> = groups
        .iter()
        .map(|(key, group)| {
            let of = |f: fn(&Sample) -> f64| median(group.iter().map(|s| f(s)).collect());
            let of_some = |f: fn(&Sample) -> Option<f64>| {
                let values: Vec<f64> = group.iter().filter_map(|s| f(s)).collect();
                (!values.is_empty()).then(|| median(values))
            };
            let row = Row {
                reps: group.len(),
                calls_per_s: of(|s| s.calls_per_s),
                p50_us: of(|s| s.p50_us),
                p99_us: of(|s| s.p99_us),
                cpu_us: of_some(|s| s.gateway_cpu_us_per_call),
                rss_mib: of_some(|s| s.gateway_peak_rss_mib),
            };
            (*key, row)
        })
        .collect();
    let baseline_row = |name: &str, clients: usize| {
        let index = order.iter().position(|p| *p == name)?;
        rows.get(&(clients, index))
    };
    let mut out = String::from("| path | clients | calls/s |");
    let mut rule = String::from("|---|---:|---:|");
    for name in baselines {
        out.push_str(&format!(" % of {name} |"));
        rule.push_str("---:|");
    }
    let added = baselines
        .first()
        .map_or(String::new(), |name| format!(" p50 added to {name}, µs |"));
    out.push_str(&format!(
        " p50 µs |{added} p99 µs | gateway CPU µs/call | gateway peak RSS MiB | reps |\n"
    ));
    rule.push_str(if added.is_empty() { "" } else { "---:|" });
    rule.push_str("---:|---:|---:|---:|---:|\n");
    out.push_str(&rule);
    let dash = || "—".to_owned();
    for (&(clients, index), row) in &rows {
        out.push_str(&format!(
            "| {} | {clients} | {:.0} |",
            order[index], row.calls_per_s
        ));
        for name in baselines {
            let share = baseline_row(name, clients).map_or_else(dash, |b| {
                format!("{:.0} %", 100.0 * row.calls_per_s / b.calls_per_s)
            });
            out.push_str(&format!(" {share} |"));
        }
        out.push_str(&format!(" {:.0} |", row.p50_us));
        if let Some(name) = baselines.first() {
            let added = baseline_row(name, clients)
                .map_or_else(dash, |b| format!("{:.0}", row.p50_us - b.p50_us));
            out.push_str(&format!(" {added} |"));
        }
        out.push_str(&format!(
            " {:.0} | {} | {} | {} |\n",
            row.p99_us,
            row.cpu_us.map_or_else(dash, |v| format!("{v:.0}")),
            row.rss_mib.map_or_else(dash, |v| format!("{v:.0}")),
            row.reps,
        ));
    }
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &str, rep: u32, calls_per_s: f64, p50_us: f64) -> Sample {
        Sample {
            path: path.into(),
            clients: 1,
            rep,
            calls: 100,
            calls_per_s,
            p50_us,
            p99_us: p50_us * 2.0,
            gateway_cpu_us_per_call: Some(50.0 + f64::from(rep)),
            gateway_peak_rss_mib: None,
        }
    }

    #[test]
    fn medians_and_shares_of_the_baselines() {
        let samples = [
            sample("direct", 1, 1000.0, 100.0),
            sample("other", 1, 2000.0, 50.0),
            sample("gw", 1, 400.0, 300.0),
            sample("direct", 2, 2000.0, 120.0),
            sample("other", 2, 2000.0, 50.0),
            sample("gw", 2, 600.0, 320.0),
            sample("direct", 3, 1500.0, 110.0),
            sample("other", 3, 2000.0, 50.0),
            sample("gw", 3, 500.0, 900.0),
        ];
        let table = table(&samples, &["direct".into(), "other".into()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "| path | clients | calls/s | % of direct | % of other | p50 µs \
             | p50 added to direct, µs | p99 µs | gateway CPU µs/call | gateway peak RSS MiB | reps |"
        );
        assert_eq!(lines[1].matches('|').count(), lines[0].matches('|').count());
        assert_eq!(
            lines[2],
            "| direct | 1 | 1500 | 100 % | 75 % | 110 | 0 | 220 | 52 | — | 3 |"
        );
        assert_eq!(
            lines[4],
            "| gw | 1 | 500 | 33 % | 25 % | 320 | 210 | 640 | 52 | — | 3 |"
        );
    }
}
