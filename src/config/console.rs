//! The `[console]` table: the web console on the admin listener (`/console`) — whether it is
//! served, how long its sign-in sessions last, whether its cookie is always `Secure`, and the
//! optional header through which an authenticating proxy hands over the person's token.

use serde::Deserialize;

use super::error::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/console` on the admin listener (it needs `[admin]`).
    pub enabled: bool,
    /// A session unused this long ends.
    pub session_idle_minutes: u64,
    /// A session ends this long after sign-in, however busy (and always when its token expires).
    pub session_max_hours: u64,
    /// Sessions of everyone together; the oldest ends when a sign-in would pass it.
    pub max_sessions: usize,
    /// The session cookie is `Secure` (and named `__Host-capgate_console`) even when the
    /// sign-in did not come over HTTPS; otherwise it is whenever the page's origin is `https`.
    pub secure_cookie: bool,
    /// A request header in which an authenticating proxy passes the person's bearer token (for
    /// example `X-Forwarded-Access-Token`). Off when absent. The token is verified exactly like
    /// a pasted one: the header chooses where it comes from, never whom to trust.
    pub proxy_token_header: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_minutes: 30,
            session_max_hours: 12,
            max_sessions: 1000,
            secure_cookie: false,
            proxy_token_header: None,
        }
    }
}

impl ConsoleConfig {
    pub(super) fn check(
        &self,
        err: &impl Fn(&str, String, &str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        for (key, value) in [
            ("console.session_idle_minutes", self.session_idle_minutes),
            ("console.session_max_hours", self.session_max_hours),
            ("console.max_sessions", self.max_sessions as u64),
        ] {
            if value == 0 {
                return Err(err(key, "must not be 0".into(), "give a positive number"));
            }
        }
        if let Some(header) = &self.proxy_token_header {
            let valid = !header.is_empty()
                && header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            let reserved = ["authorization", "cookie", "host", "origin"]
                .contains(&header.to_ascii_lowercase().as_str());
            if !valid || reserved {
                return Err(err(
                    "console.proxy_token_header",
                    format!("`{header}` cannot carry a proxy's token"),
                    "name a header of letters, digits and dashes that only your proxy sets, e.g. \"X-Forwarded-Access-Token\"",
                ));
            }
        }
        Ok(())
    }

    pub fn session_idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.session_idle_minutes.saturating_mul(60))
    }

    pub fn session_max(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.session_max_hours.saturating_mul(3600))
    }
}
