//! What the benchmark reads about a gateway process from `/proc`: CPU time (user + system,
//! all threads, living and ended), resident memory (now and peak), and the port it listens on.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// CPU time the process has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("unreadable /proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of stat(5) (utime, stime) are the 12th and 13th after the name.
    let ticks = |index: usize| -> anyhow::Result<u64> {
        Ok(fields.get(index).context("short /proc/PID/stat")?.parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a constant of the running system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second <= 0 {
        bail!("sysconf(_SC_CLK_TCK) failed");
    }
    Ok(Duration::from_secs_f64(total as f64 / per_second as f64))
}

/// The process's peak resident set size so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// The process's resident set size now (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// The anonymous part of the resident set (`RssAnon`: heap, stacks), in KiB; the rest is
/// file-backed (`RssFile`: the binary's and libraries' pages) and shared memory.
pub fn rss_anon_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "RssAnon:")
}

/// A `kB` field of `/proc/PID/status`, named with its colon.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .with_context(|| format!("no {field} in /proc/PID/status"))?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

/// Waits until process `pid` listens on exactly one TCP port and returns it: how the script
/// learns the port of a gateway that bound port 0 without printing it.
pub fn wait_for_listening_port(pid: u32, limit: Duration) -> anyhow::Result<u16> {
    let deadline = Instant::now() + limit;
    loop {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            bail!("process {pid} exited before it listened");
        }
        let ports = listening_ports(pid)?;
        match ports.as_slice() {
            [port] => return Ok(*port),
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            [] => bail!("process {pid} did not listen within {limit:?}"),
            more => bail!("process {pid} listens on several ports: {more:?}"),
        }
    }
}

fn listening_ports(pid: u32) -> anyhow::Result<Vec<u16>> {
    let mut sockets = Vec::new();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).context("cannot list its fds")?;
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
            {
                sockets.push(inode.to_owned());
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let columns: Vec<&str> = line.split_whitespace().collect();
            // local_address is column 1 (ADDR:PORT in hex), st column 3 (0A: LISTEN), inode 9.
            let (Some(local), Some(state), Some(inode)) =
                (columns.get(1), columns.get(3), columns.get(9))
            else {
                continue;
            };
            if *state == "0A" && sockets.iter().any(|s| s == inode) {
                let port = local.rsplit_once(':').context("bad local address")?.1;
                ports.push(u16::from_str_radix(port, 16)?);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let pid = std::process::id();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            wait_for_listening_port(pid, Duration::from_secs(1)).unwrap(),
            port
        );
        assert!(peak_rss_kib(pid).unwrap() > 0);
        assert!(rss_kib(pid).unwrap() <= peak_rss_kib(pid).unwrap());
        cpu_time(pid).unwrap();
    }
}
