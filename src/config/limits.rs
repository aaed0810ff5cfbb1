//! The `[limits]` table: what one client, one principal and everyone together may hold of the
//! gateway — connections, header-read and idle time, sessions, request rate and concurrent
//! calls, and the size of a list's page. Every limit has a safe default; none may be zero.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open connections on the agents' listener; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time a connection may take to send a request's headers, and may stay idle between
    /// requests, before it is closed.
    pub header_read_timeout_ms: u64,
    /// A session unused this long ends and its memory is freed.
    pub session_idle_seconds: u64,
    /// Sessions one principal (issuer, subject, tenant, agent) may hold at once.
    pub sessions_per_principal: usize,
    /// Sessions all principals together may hold.
    pub max_sessions: usize,
    /// Requests per second one principal may make, sustained ...
    pub requests_per_second: u32,
    /// ... and in a burst.
    pub request_burst: u32,
    /// Requests one principal may have in progress at once.
    pub concurrent_requests_per_principal: u32,
    /// Items per page of `tools/list`, `resources/list`, `resources/templates/list` and
    /// `prompts/list` (the rest follow with `nextCursor`).
    pub list_page_size: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_ms: 10_000,
            session_idle_seconds: 300,
            sessions_per_principal: 64,
            max_sessions: 10_000,
            requests_per_second: 100,
            request_burst: 200,
            concurrent_requests_per_principal: 32,
            list_page_size: 100,
        }
    }
}

impl LimitsConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_seconds)
    }

    /// Refuses a zero limit: it would refuse everything, or (for timeouts) nothing.
    pub(super) fn check(
        &self,
        err: &impl Fn(&str, String, &str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let limits = [
            ("max_connections", self.max_connections as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("session_idle_seconds", self.session_idle_seconds),
            ("sessions_per_principal", self.sessions_per_principal as u64),
            ("max_sessions", self.max_sessions as u64),
            ("requests_per_second", u64::from(self.requests_per_second)),
            ("request_burst", u64::from(self.request_burst)),
            (
                "concurrent_requests_per_principal",
                u64::from(self.concurrent_requests_per_principal),
            ),
            ("list_page_size", self.list_page_size as u64),
        ];
        match limits.iter().find(|(_, value)| *value == 0) {
            Some((key, _)) => Err(err(
                &format!("limits.{key}"),
                "a limit of zero".into(),
                "use a positive number (leave the key out for the default)",
            )),
            None => Ok(()),
        }
    }
}
