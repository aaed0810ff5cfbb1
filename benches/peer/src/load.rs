//! The measured run: clients call in a loop for a warm-up, then for the measured window; a
//! call counts when it started inside the window. The gateway's CPU time is read at the
//! window's two ends and its peak memory at the end.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use crate::mcp::CallTemplate;
use crate::procfs;

/// A client that makes one checked `tools/call` at a time.
pub trait Caller: Send + 'static {
    fn call(&mut self, template: &CallTemplate) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[derive(Clone, Copy)]
pub struct Plan {
    pub warmup: Duration,
    pub window: Duration,
}

/// What one run measured.
pub struct Measured {
    /// Latency of each call started in the window, in nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    pub window: Duration,
    pub gateway: Option<GatewayUsage>,
}

pub struct GatewayUsage {
    /// CPU time the gateway used during the window.
    pub cpu: Duration,
    pub peak_rss_kib: u64,
}

/// Runs every caller until the window closes; the first failed call fails the run.
pub async fn run<C: Caller>(
    callers: Vec<C>,
    template: CallTemplate,
    plan: Plan,
    gateway_pid: Option<u32>,
) -> anyhow::Result<Measured> {
    let template = Arc::new(template);
    let start = Instant::now() + plan.warmup;
    let end = start + plan.window;
    let mut clients = JoinSet::new();
    for (index, caller) in callers.into_iter().enumerate() {
        let template = template.clone();
        clients.spawn(async move {
            call_until(caller, &template, start, end)
                .await
                .with_context(|| format!("client {index}"))
        });
    }
    let mut latencies_ns = Vec::new();
    wait_until(start, &mut clients, &mut latencies_ns).await?;
    let cpu_before = gateway_pid.map(procfs::cpu_time).transpose()?;
    wait_until(end, &mut clients, &mut latencies_ns).await?;
    let gateway = match (gateway_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(GatewayUsage {
            cpu: procfs::cpu_time(pid)?.saturating_sub(before),
            peak_rss_kib: procfs::peak_rss_kib(pid)?,
        }),
        _ => None,
    };
    while let Some(joined) = clients.join_next().await {
        latencies_ns.extend(joined.context("a client panicked")??);
    }
    latencies_ns.sort_unstable();
    Ok(Measured {
        latencies_ns,
        window: plan.window,
        gateway,
    })
}

async fn call_until<C: Caller>(
    mut caller: C,
    template: &CallTemplate,
    start: Instant,
    end: Instant,
) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    loop {
        let began = Instant::now();
        if began >= end {
            return Ok(latencies);
        }
        caller.call(template).await?;
        if began >= start {
            latencies.push(began.elapsed().as_nanos() as u64);
        }
    }
}

/// Waits for `deadline`, or fails as soon as a client fails (a client that ends early has
/// failed; one that ends after the window has its latencies kept).
async fn wait_until(
    deadline: Instant,
    clients: &mut JoinSet<anyhow::Result<Vec<u64>>>,
    latencies: &mut Vec<u64>,
) -> anyhow::Result<()> {
    let sleep = tokio::time::sleep_until(deadline.into());
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return Ok(()),
            Some(joined) = clients.join_next() => {
                latencies.extend(joined.context("a client panicked")??);
            }
        }
    }
}

/// The `q` quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((last as f64) * q).round() as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), Some(51));
        assert_eq!(quantile(&values, 0.99), Some(99));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
