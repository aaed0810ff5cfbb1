//! The processes the bench starts: the leftover check at the end (nothing it started may
//! outlive it) and the CPU time each path's process tree spends per call, both from /proc.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::paths::PATHS;

/// `pid` and every process below it, from /proc (empty where /proc is unavailable).
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may contain spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((child, ppid));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found
}

/// Whether `pid` is a live process (a zombie has finished: it only awaits reaping).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Gives the processes this bench started 5 s to exit, then kills (by pid) any still running.
pub async fn reap_leftovers(name: &str, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| is_running(p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for &pid in pids.iter().filter(|&&p| is_running(p)) {
        eprintln!("{name}: process {pid} was still running after shutdown; killing it");
        signal(pid, "KILL");
    }
}

// ---- CPU accounting -----------------------------------------------------------------------------

/// CPU time per measured call of the process a path talks to and of the processes it started.
#[derive(Clone, Copy)]
pub struct CpuPerCall {
    pub front_us: f64,
    pub below_us: f64,
}

/// Reads the CPU time of each path's process tree from /proc.
pub struct CpuProbe {
    trees: [Vec<u32>; PATHS],
    ticks_per_second: f64,
}

impl CpuProbe {
    pub fn new(roots: [Option<u32>; PATHS]) -> Self {
        let ticks_per_second = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .unwrap_or(100.0);
        Self {
            trees: roots.map(|root| root.map(descendants_of).unwrap_or_default()),
            ticks_per_second,
        }
    }

    /// Per path: (ticks of the root, ticks of everything below it); `None` where unreadable.
    pub fn snapshot(&self) -> [Option<(u64, u64)>; PATHS] {
        std::array::from_fn(|i| {
            let (root, below) = self.trees[i].split_first()?;
            let below = below.iter().map(|&p| cpu_ticks(p)).sum::<Option<u64>>()?;
            Some((cpu_ticks(*root)?, below))
        })
    }

    pub fn per_call(
        &self,
        before: &[Option<(u64, u64)>; PATHS],
        after: &[Option<(u64, u64)>; PATHS],
        calls: usize,
    ) -> [Option<CpuPerCall>; PATHS] {
        let us = |ticks: u64| ticks as f64 / self.ticks_per_second * 1e6 / calls.max(1) as f64;
        std::array::from_fn(|i| {
            let (b, a) = (before[i]?, after[i]?);
            Some(CpuPerCall {
                front_us: us(a.0.saturating_sub(b.0)),
                below_us: us(a.1.saturating_sub(b.1)),
            })
        })
    }
}

/// User + system CPU ticks of `pid`, all threads.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `pid (comm)`: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
