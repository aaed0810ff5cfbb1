//! Console sessions: a person signs in with a bearer token (pasted, or handed over by an
//! authenticating proxy), and the browser holds only a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure`, and named `__Host-…`, over HTTPS). The token stays in
//! this process's memory and is verified again on every request, exactly as a bearer header
//! would be, so a session never outlives its token, never outlives a key rotation, and grants
//! nothing the token would not.
//!
//! Every state change made with the cookie must carry the session's CSRF token in
//! `X-CSRF-Token` (a synchronizer token, compared in constant time), and, when the browser
//! says where it comes from (`Origin`, `Sec-Fetch-Site`), come from the console's own origin.
//! Sessions end after `session_idle_minutes` unused, `session_max_hours` after sign-in, on
//! sign-out, or when the oldest must make room (`max_sessions`); they live in memory, so a
//! restart signs everyone out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderValue, Method};
use sha2::{Digest, Sha256};

use crate::config::ConsoleConfig;
use crate::identity::{AuthError, Authenticator, CompositeActor};

/// The session cookie over plain HTTP.
pub const COOKIE: &str = "capgate_console";
/// The session cookie over HTTPS: the `__Host-` prefix pins it to this host, path `/`, Secure.
pub const SECURE_COOKIE: &str = "__Host-capgate_console";
/// The header every cookie-authenticated state change carries.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a person signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignIn {
    /// A token pasted into the sign-in page.
    Token,
    /// A token an authenticating proxy passed in `[console] proxy_token_header`.
    Proxy,
}

struct Session {
    token: String,
    csrf: String,
    signed_in: Instant,
    last_used: Instant,
    via: SignIn,
}

/// What a signed-in browser learns about its session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionView {
    pub csrf: String,
    pub via: SignIn,
    /// Seconds until the session ends if unused, and at the latest.
    pub idle_seconds: u64,
    pub remaining_seconds: u64,
}

/// Why a cookie did not authenticate a request.
#[derive(Debug, thiserror::Error)]
pub enum SessionRefusal {
    #[error("the console session has ended or is unknown; sign in again")]
    Unknown,
    #[error("the console session's token is no longer valid ({0}); sign in again")]
    Token(AuthError),
    #[error("a state change needs the session's CSRF token in the X-CSRF-Token header")]
    Csrf,
    #[error("a state change must come from the console's own origin")]
    CrossOrigin,
}

/// The sessions of this process.
pub struct Sessions {
    config: ConsoleConfig,
    auth: Arc<Authenticator>,
    /// By the SHA-256 of the session id: the map never holds what the browser sends.
    by_id: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Equal, in time that depends only on the lengths.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A header's value as text, if it is there and is text.
fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The session id the request's cookies carry (either cookie name).
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE || *name == SECURE_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether a browser request comes from the page's own origin, as far as the browser says:
/// `Sec-Fetch-Site` when sent, and `Origin` (which must name the `Host` asked) when sent.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = header_text(headers, "sec-fetch-site") {
        if site != "same-origin" {
            return false;
        }
    }
    match header_text(headers, header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = header_text(headers, header::HOST).unwrap_or_default();
            origin.split_once("://").is_some_and(|(scheme, rest)| {
                (scheme == "http" || scheme == "https") && rest == host
            })
        }
    }
}

/// Whether a request's method changes state (anything but reading).
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Sessions {
    pub fn new(config: ConsoleConfig, auth: Arc<Authenticator>) -> Self {
        Self {
            config,
            auth,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ConsoleConfig {
        &self.config
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a map that is still whole: keep serving.
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_used) < self.config.session_idle()
            && now.duration_since(session.signed_in) < self.config.session_max()
    }

    /// Verifies `token` as any bearer token is verified and opens a session for it: the new
    /// session's id (for the cookie) and the person.
    pub async fn sign_in(
        &self,
        token: &str,
        via: SignIn,
    ) -> Result<(String, CompositeActor), AuthError> {
        let actor = self.auth.authenticate(token.trim()).await?;
        let id = random_token();
        let now = Instant::now();
        let mut sessions = self.sessions();
        sessions.retain(|_, s| self.live(s, now));
        while sessions.len() >= self.config.max_sessions {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(key, _)| *key);
            match oldest {
                Some(key) => sessions.remove(&key),
                None => break,
            };
        }
        sessions.insert(
            digest(&id),
            Session {
                token: token.trim().to_string(),
                csrf: random_token(),
                signed_in: now,
                last_used: now,
                via,
            },
        );
        Ok((id, actor))
    }

    /// Ends the session `id` names, if any.
    pub fn sign_out(&self, id: &str) {
        self.sessions().remove(&digest(id));
    }

    /// The person behind the request's session cookie, verified now; for a state change, only
    /// with the session's CSRF token and from the console's origin.
    pub async fn authenticate(
        &self,
        id: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<CompositeActor, SessionRefusal> {
        let key = digest(id);
        let now = Instant::now();
        let token = {
            let mut sessions = self.sessions();
            let Some(session) = sessions.get_mut(&key).filter(|s| self.live(s, now)) else {
                sessions.remove(&key);
                return Err(SessionRefusal::Unknown);
            };
            if changes_state(method) {
                if !same_origin(headers) {
                    return Err(SessionRefusal::CrossOrigin);
                }
                let sent = header_text(headers, CSRF_HEADER).unwrap_or_default();
                if !same_secret(sent, &session.csrf) {
                    return Err(SessionRefusal::Csrf);
                }
            }
            session.last_used = now;
            session.token.clone()
        };
        self.auth.authenticate(&token).await.map_err(|error| {
            self.sign_out(id);
            SessionRefusal::Token(error)
        })
    }

    /// What the browser holding session `id` may know of it, while it lasts.
    pub fn view(&self, id: &str) -> Option<SessionView> {
        let now = Instant::now();
        let sessions = self.sessions();
        let session = sessions.get(&digest(id)).filter(|s| self.live(s, now))?;
        let left = |limit: std::time::Duration, from: Instant| {
            limit.saturating_sub(now.duration_since(from)).as_secs()
        };
        Some(SessionView {
            csrf: session.csrf.clone(),
            via: session.via,
            idle_seconds: left(self.config.session_idle(), session.last_used),
            remaining_seconds: left(self.config.session_max(), session.signed_in),
        })
    }

    /// The `Set-Cookie` value for a new session: `Secure` (with the `__Host-` name) when the
    /// sign-in came over HTTPS or the configuration asks for it.
    pub fn cookie(&self, id: &str, https: bool) -> HeaderValue {
        let text = if https || self.config.secure_cookie {
            format!("{SECURE_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Secure")
        } else {
            format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict")
        };
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` values that remove both session cookies.
    pub fn cleared() -> [HeaderValue; 2] {
        [
            HeaderValue::from_static(
                "capgate_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
            ),
            HeaderValue::from_static(
                "__Host-capgate_console=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_cookie_is_found_under_either_name_among_others() {
        let map = headers(&[("cookie", "a=b; capgate_console=abc ; c=d")]);
        assert_eq!(session_cookie(&map), Some("abc"));
        let map = headers(&[("cookie", "__Host-capgate_console=xyz")]);
        assert_eq!(session_cookie(&map), Some("xyz"));
        assert_eq!(session_cookie(&headers(&[("cookie", "other=1")])), None);
    }

    #[test]
    fn only_the_consoles_own_origin_passes() {
        let own = headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081"),
        ]);
        assert!(same_origin(&own));
        let other = headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://evil.example"),
        ]);
        assert!(!same_origin(&other));
        let cross = headers(&[("host", "h"), ("sec-fetch-site", "cross-site")]);
        assert!(!same_origin(&cross));
        assert!(same_origin(&headers(&[("host", "h")])), "no browser hints");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abcd", "abcd"));
        assert!(!same_secret("abcd", "abce"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
