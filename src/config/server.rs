//! The `[server]` and `[admin]` tables: where the MCP endpoint and the admin API listen, the
//! endpoint's public URL (the tokens' default audience), the host names accepted in `Host`, and
//! how much a refused agent is told, and how many threads serve it.

use std::num::NonZeroUsize;

use serde::Deserialize;

use super::error::ConfigError;

/// The admin API: a separate listener. Who may do what there is decided by the admin policy
/// set (`policies/admin/`); these roles are what it calls a tenant admin (acts on its own
/// tenant) and a platform admin (acts on everything). Admins are people: a token an agent acts
/// on never administers.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: std::net::SocketAddr,
    /// The token role of tenant admins.
    pub role: String,
    /// The token role of platform admins.
    pub platform_role: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: std::net::SocketAddr,
    /// The MCP endpoint's public URL: the default token audience and the RFC 9728 `resource`.
    pub public_url: String,
    /// Host names accepted in the `Host` header (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Origins accepted in the `Origin` header of browser requests (`scheme://host[:port]`; a
    /// port of `*` accepts any); requests without `Origin` (non-browser clients) pass.
    pub allowed_origins: Vec<String>,
    /// What refused agents are told (admins see the specific reason in the log either way).
    pub explain_to_agent: AgentExplanations,
    /// The async runtime's worker threads, when `[server] worker_threads` names them; see
    /// [`ServerConfig::runtime_workers`].
    pub worker_threads: Option<NonZeroUsize>,
}

impl ServerConfig {
    /// The async runtime's worker threads: as configured, else one fewer than the machine's
    /// cores (at least one). The core left over is the decision log writer's and the stdio
    /// downstreams': on 2 cores one worker gave 15–35 % more calls per second at 13–29 % less
    /// CPU per call and 40–60 % less memory at 32 clients than two (benches/peer/RESULTS.md).
    /// With one worker, a store transaction that waits (a lock another process holds, a WAL
    /// checkpoint's write) holds every request meanwhile; name more workers where that matters.
    pub fn runtime_workers(&self) -> usize {
        match self.worker_threads {
            Some(configured) => configured.get(),
            None => default_workers(std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
    }
}

/// Most worker threads `[server] worker_threads` may name.
const MAX_WORKER_THREADS: usize = 1024;

/// `n` worker threads, when that is a number the runtime may have.
fn worker_threads(n: usize) -> Option<NonZeroUsize> {
    NonZeroUsize::new(n).filter(|n| n.get() <= MAX_WORKER_THREADS)
}

/// The default worker threads on a machine of `cores` cores.
fn default_workers(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// How much of a decision's reasoning an agent sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentExplanations {
    /// The outcome, the advice and what context is missing: no policy ids or internals.
    #[default]
    Safe,
    /// The specific reason with policy ids and version, as admins see it (development).
    Detailed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: String,
    #[serde(default = "default_admin_role")]
    role: String,
    #[serde(default = "default_platform_role")]
    platform_role: String,
}

fn default_admin_role() -> String {
    "capgate-admin".into()
}

fn default_platform_role() -> String {
    "capgate-platform-admin".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: String,
    public_url: String,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    explain_to_agent: AgentExplanations,
    #[serde(default)]
    worker_threads: Option<usize>,
}

/// Checks the `[server]` table. The public URL's host is always an allowed host.
pub(super) fn parse_server(
    raw: RawServer,
    err: &impl Fn(&str, String, &str) -> ConfigError,
) -> Result<ServerConfig, ConfigError> {
    let listen = raw.listen.parse().map_err(|e| {
        err(
            "server.listen",
            format!("`{}` is not an address: {e}", raw.listen),
            "use host:port, e.g. \"127.0.0.1:8080\"",
        )
    })?;
    let public_url = raw.public_url.trim_end_matches('/').to_string();
    let Some(host) = host_of_url(&public_url) else {
        return Err(err(
            "server.public_url",
            format!("`{public_url}` is not an http(s) URL"),
            "use the MCP endpoint's full URL, e.g. \"http://127.0.0.1:8080/mcp\"",
        ));
    };
    let mut allowed_hosts = raw.allowed_hosts;
    if allowed_hosts.is_empty() {
        allowed_hosts = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    }
    if !allowed_hosts.iter().any(|h| h == &host) {
        allowed_hosts.push(host);
    }
    // The public URL's own origin is always allowed; browsers send no Origin for same-origin
    // GETs, and other clients send none at all.
    let mut allowed_origins = raw.allowed_origins;
    if let Some(own) = origin_of_url(&public_url) {
        if !allowed_origins.contains(&own) {
            allowed_origins.push(own);
        }
    }
    let worker_threads = match raw.worker_threads {
        None => None,
        Some(n) => Some(worker_threads(n).ok_or_else(|| {
            let fix = format!("use 1 to {MAX_WORKER_THREADS}, or leave it out (cores - 1)");
            err("server.worker_threads", format!("{n} worker threads"), &fix)
        })?),
    };
    Ok(ServerConfig {
        listen,
        public_url,
        allowed_hosts,
        allowed_origins,
        explain_to_agent: raw.explain_to_agent,
        worker_threads,
    })
}

/// Checks the `[admin]` table, when there is one.
pub(super) fn parse_admin(
    raw: Option<RawAdmin>,
    err: &impl Fn(&str, String, &str) -> ConfigError,
) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(admin) = raw else {
        return Ok(None);
    };
    if admin.role.trim().is_empty() || admin.role == admin.platform_role {
        return Err(err(
            "admin.platform_role",
            format!(
                "the tenant admin role `{}` and the platform admin role `{}` must be two different, non-empty roles",
                admin.role, admin.platform_role
            ),
            "name two roles, e.g. role = \"capgate-admin\" and platform_role = \"capgate-platform-admin\"",
        ));
    }
    Ok(Some(AdminConfig {
        listen: admin.listen.parse().map_err(|e| {
            err(
                "admin.listen",
                format!("`{}` is not an address: {e}", admin.listen),
                "use host:port, e.g. \"127.0.0.1:8081\"",
            )
        })?,
        role: admin.role,
        platform_role: admin.platform_role,
    }))
}

/// `scheme://authority` of an http(s) URL.
fn origin_of_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

pub(super) fn host_of_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?.to_string()
    } else {
        authority.split(':').next()?.to_string()
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_default_to_one_fewer_than_the_cores_and_stay_in_bounds() {
        // cores | default workers
        for (cores, workers) in [(1, 1), (2, 1), (3, 2), (8, 7), (64, 63)] {
            assert_eq!(default_workers(cores), workers, "{cores} cores");
        }
        // configured | accepted
        for (n, accepted) in [(0, false), (1, true), (1024, true), (1025, false)] {
            assert_eq!(worker_threads(n).is_some(), accepted, "{n}");
        }
    }
}
