//! Keys an issuer publishes at a URL: `jwks_url = "https://…"`, or `discovery = true` (the
//! issuer's `/.well-known/openid-configuration` names the `jwks_uri`), and the optional
//! `[issuers.jwks_fetch]` table that bounds how they are fetched and cached.
//!
//! Fetches go over HTTPS. Plain `http://` is accepted only for a loopback address (127.0.0.0/8,
//! `::1`) and only with `allow_http = true`: a test or local-development setting, never a
//! production one (a JWKS fetched in clear text can be replaced on the wire).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// Where a remote issuer's key set is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteKeySource {
    /// The JWKS document itself.
    JwksUrl(Url),
    /// The OpenID Provider configuration document (`<issuer>/.well-known/openid-configuration`);
    /// its `issuer` must equal the configured issuer, and its `jwks_uri` is then fetched.
    Discovery(Url),
}

/// How a remote key set is fetched, cached and refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteKeysConfig {
    pub source: RemoteKeySource,
    /// The response's `Cache-Control: max-age` is kept within [min_cache, max_cache]; without
    /// one the set is kept for an hour (within the same bounds).
    pub min_cache: Duration,
    pub max_cache: Duration,
    /// Refreshes a token with an unknown `kid` may cause, per sliding minute. Beyond them such
    /// tokens are refused without a fetch, so a flood of made-up `kid`s cannot hammer the
    /// provider. 0: only the scheduled refreshes run.
    pub unknown_kid_fetches_per_minute: u32,
    /// The whole fetch (connect, TLS, response) of one document.
    pub timeout: Duration,
    /// PEM roots trusted, instead of the system's, for this issuer's key fetches.
    pub ca_file: Option<PathBuf>,
    /// Plain `http://` to a loopback address is accepted (tests only).
    pub allow_http: bool,
}

/// `[issuers.jwks_fetch]` as TOML gives it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwksFetch {
    min_cache_seconds: Option<u64>,
    max_cache_seconds: Option<u64>,
    unknown_kid_fetches_per_minute: Option<u32>,
    timeout_seconds: Option<u64>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    allow_http: bool,
}

pub const DEFAULT_MIN_CACHE: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CACHE: Duration = Duration::from_secs(86_400);
pub const DEFAULT_UNKNOWN_KID_FETCHES_PER_MINUTE: u32 = 6;
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_UNKNOWN_KID_FETCHES_PER_MINUTE: u32 = 60;
const MAX_FETCH_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_CACHE_CEILING: Duration = Duration::from_secs(7 * 86_400);

/// A problem with an issuer's remote key settings: the key under the issuer's table, what is
/// wrong, and the fix.
pub(super) type Problem = (&'static str, String, &'static str);

/// Builds the remote key settings from `jwks_url` or `discovery` and `[issuers.jwks_fetch]`.
pub(super) fn remote_keys(
    issuer: &str,
    jwks_url: Option<&str>,
    discovery: bool,
    fetch: Option<RawJwksFetch>,
    base: &Path,
) -> Result<RemoteKeysConfig, Problem> {
    let fetch = fetch.unwrap_or_default();
    let source = match jwks_url {
        Some(url) => RemoteKeySource::JwksUrl(
            fetchable_url(url, fetch.allow_http).map_err(|problem| {
                (
                    "jwks_url",
                    problem,
                    "give an https:// URL (http:// only to 127.0.0.1 with [issuers.jwks_fetch] allow_http = true, for tests)",
                )
            })?,
        ),
        None if discovery => {
            let document = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            RemoteKeySource::Discovery(fetchable_url(&document, fetch.allow_http).map_err(
                |problem| {
                    (
                        "discovery",
                        format!("the issuer is not a URL discovery can read: {problem}"),
                        "discovery needs an https:// issuer; name the key set with jwks_url otherwise",
                    )
                },
            )?)
        }
        None => {
            return Err((
                "jwks_fetch",
                "[issuers.jwks_fetch] is given without jwks_url or discovery".into(),
                "set jwks_url or discovery = true, or remove the table",
            ))
        }
    };
    let min_cache = fetch
        .min_cache_seconds
        .map_or(DEFAULT_MIN_CACHE, Duration::from_secs);
    let max_cache = fetch
        .max_cache_seconds
        .map_or(DEFAULT_MAX_CACHE, Duration::from_secs);
    if min_cache.is_zero() || min_cache > max_cache || max_cache > MAX_CACHE_CEILING {
        return Err((
            "jwks_fetch.min_cache_seconds",
            format!(
                "the cache bounds {}..{} s are not an interval within 1 s..7 days",
                min_cache.as_secs(),
                max_cache.as_secs()
            ),
            "use 1 <= min_cache_seconds <= max_cache_seconds <= 604800",
        ));
    }
    let unknown_kid_fetches_per_minute = fetch
        .unknown_kid_fetches_per_minute
        .unwrap_or(DEFAULT_UNKNOWN_KID_FETCHES_PER_MINUTE);
    if unknown_kid_fetches_per_minute > MAX_UNKNOWN_KID_FETCHES_PER_MINUTE {
        return Err((
            "jwks_fetch.unknown_kid_fetches_per_minute",
            format!("{unknown_kid_fetches_per_minute} fetches a minute would let unknown key ids drive the provider"),
            "use at most 60",
        ));
    }
    let timeout = fetch
        .timeout_seconds
        .map_or(DEFAULT_FETCH_TIMEOUT, Duration::from_secs);
    if timeout.is_zero() || timeout > MAX_FETCH_TIMEOUT {
        return Err((
            "jwks_fetch.timeout_seconds",
            format!("{} s is not a usable fetch timeout", timeout.as_secs()),
            "use 1 to 60 seconds",
        ));
    }
    Ok(RemoteKeysConfig {
        source,
        min_cache,
        max_cache,
        unknown_kid_fetches_per_minute,
        timeout,
        ca_file: fetch.ca_file.map(|f| base.join(f)),
        allow_http: fetch.allow_http,
    })
}

/// A URL capgate may fetch keys from: https, or http to a loopback address when allowed.
/// Also checks URLs learnt at run time (a discovery document's `jwks_uri`).
pub fn fetchable_url(text: &str, allow_http: bool) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` carries credentials"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if allow_http && is_loopback(&url) => Ok(url),
        "http" if allow_http => Err(format!(
            "`{text}` is plain http to a host that is not a loopback address"
        )),
        "http" => Err(format!("`{text}` is plain http")),
        _ => Err(format!("`{text}` is not an https URL")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(_)) | None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(toml_text: &str) -> Option<RawJwksFetch> {
        Some(toml::from_str(toml_text).expect("table"))
    }

    #[test]
    fn a_jwks_url_must_be_https_unless_http_to_loopback_is_allowed() {
        let base = Path::new("/base");
        let ok =
            remote_keys("iss", Some("https://idp.example/keys"), false, None, base).expect("https");
        assert_eq!(
            ok.source,
            RemoteKeySource::JwksUrl(Url::parse("https://idp.example/keys").expect("url"))
        );
        assert_eq!(ok.min_cache, DEFAULT_MIN_CACHE);
        assert_eq!(ok.unknown_kid_fetches_per_minute, 6);
        for (url, allow) in [
            ("http://idp.example/keys", false),
            ("http://idp.example/keys", true),
            ("http://127.0.0.1:9/keys", false),
            ("http://localhost:9/keys", true),
            ("ftp://idp.example/keys", true),
            ("https://user:pw@idp.example/keys", false),
            ("not a url", false),
        ] {
            let table = fetch(&format!("allow_http = {allow}"));
            let e = remote_keys("iss", Some(url), false, table, base).expect_err(url);
            assert_eq!(e.0, "jwks_url", "{url}");
        }
        for url in ["http://127.0.0.1:9/keys", "http://[::1]:9/keys"] {
            remote_keys("iss", Some(url), false, fetch("allow_http = true"), base).expect(url);
        }
    }

    #[test]
    fn discovery_reads_the_well_known_document_of_the_issuer() {
        let keys = remote_keys(
            "https://idp.example/tenant/",
            None,
            true,
            None,
            Path::new("."),
        )
        .expect("discovery");
        assert_eq!(
            keys.source,
            RemoteKeySource::Discovery(
                Url::parse("https://idp.example/tenant/.well-known/openid-configuration")
                    .expect("url")
            )
        );
        let e = remote_keys("acme-issuer", None, true, None, Path::new(".")).expect_err("no url");
        assert_eq!(e.0, "discovery");
    }

    #[test]
    fn the_fetch_limits_are_checked() {
        let url = Some("https://idp.example/keys");
        let base = Path::new("/base");
        let set = remote_keys(
            "iss",
            url,
            false,
            fetch("min_cache_seconds = 5\nmax_cache_seconds = 50\nunknown_kid_fetches_per_minute = 0\ntimeout_seconds = 2\nca_file = \"ca.pem\""),
            base,
        )
        .expect("valid");
        assert_eq!(
            (set.min_cache, set.max_cache, set.timeout),
            (
                Duration::from_secs(5),
                Duration::from_secs(50),
                Duration::from_secs(2)
            )
        );
        assert_eq!(set.ca_file.as_deref(), Some(Path::new("/base/ca.pem")));
        for (table, key) in [
            ("min_cache_seconds = 0", "jwks_fetch.min_cache_seconds"),
            (
                "min_cache_seconds = 100\nmax_cache_seconds = 50",
                "jwks_fetch.min_cache_seconds",
            ),
            (
                "unknown_kid_fetches_per_minute = 1000",
                "jwks_fetch.unknown_kid_fetches_per_minute",
            ),
            ("timeout_seconds = 0", "jwks_fetch.timeout_seconds"),
        ] {
            let e = remote_keys("iss", url, false, fetch(table), base).expect_err(table);
            assert_eq!(e.0, key, "{table}");
        }
        let e = remote_keys("iss", None, false, fetch(""), base).expect_err("no source");
        assert_eq!(e.0, "jwks_fetch");
    }
}
