//! Reading a key set over HTTP: the discovery document (when the issuer is configured with
//! `discovery = true`), then the JWKS, with the provider's `Cache-Control` read for how long the
//! set may be kept. HTTPS only (plain http to a loopback address when the configuration allows
//! it, for tests), redirects only to URLs that pass the same check, a bounded response size and
//! a timeout per document; roots from the issuer's `ca_file` when it names one.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AGE, CACHE_CONTROL};
use serde::Deserialize;
use url::Url;

use crate::config::{fetchable_url, PinnedAlgorithm, RemoteKeySource, RemoteKeysConfig};
use crate::error_chain::error_chain;

use super::super::jwk_set::{usable_keys, UsableKeys};

/// A discovery or JWKS document larger than this is refused.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
const MAX_REDIRECTS: usize = 3;

/// What one fetch brought: the usable keys and, when the provider said, for how long.
pub(crate) struct Fetched {
    pub keys: UsableKeys,
    pub max_age: Option<Duration>,
}

/// Where a remote key set comes from; the HTTP one in production, a scripted one in the unit
/// tests of the cache.
#[async_trait]
pub(crate) trait KeySource: Send + Sync {
    async fn fetch(&self) -> Result<Fetched, String>;
    /// What the health details call the source (a URL).
    fn describe(&self) -> String;
}

/// Fetches an issuer's key set over HTTPS.
pub(crate) struct HttpKeySource {
    issuer: String,
    pinned: PinnedAlgorithm,
    source: RemoteKeySource,
    allow_http: bool,
    client: reqwest::Client,
    /// The `jwks_uri` a discovery document named; forgotten when fetching it fails, so the
    /// next attempt reads discovery again.
    discovered: Mutex<Option<Url>>,
}

impl HttpKeySource {
    /// Builds the client (its roots from `ca_file` when given); a CA file that cannot be read
    /// is a start-up error.
    pub(crate) fn new(
        issuer: &str,
        pinned: PinnedAlgorithm,
        config: &RemoteKeysConfig,
    ) -> Result<Self, String> {
        let allow_http = config.allow_http;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if let Err(problem) = fetchable_url(attempt.url().as_str(), allow_http) {
                attempt.error(format!("refused redirect: {problem}"))
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .https_only(!allow_http)
            .redirect(redirects)
            .user_agent(concat!("capgate/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca_file {}: not PEM certificates: {e}", path.display()))?;
            if roots.is_empty() {
                return Err(format!("ca_file {} holds no certificate", path.display()));
            }
            builder = builder.tls_certs_only(roots);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTPS client for its keys: {e}"))?;
        Ok(Self {
            issuer: issuer.to_string(),
            pinned,
            source: config.source.clone(),
            allow_http,
            client,
            discovered: Mutex::new(None),
        })
    }

    /// The JWKS URL: configured, or named by the discovery document.
    async fn jwks_url(&self) -> Result<Url, String> {
        let discovery = match &self.source {
            RemoteKeySource::JwksUrl(url) => return Ok(url.clone()),
            RemoteKeySource::Discovery(document) => document,
        };
        if let Some(url) = self.remembered() {
            return Ok(url);
        }
        let (body, _) = self.get(discovery).await?;
        #[derive(Deserialize)]
        struct ProviderMetadata {
            issuer: String,
            jwks_uri: String,
        }
        let metadata: ProviderMetadata = serde_json::from_slice(&body)
            .map_err(|e| format!("{discovery}: not an OpenID provider configuration: {e}"))?;
        // OpenID Connect Discovery 1.0, 4.3: the document must be the issuer's own.
        if metadata.issuer != self.issuer {
            return Err(format!(
                "{discovery} is the configuration of issuer `{}`, not of this one",
                metadata.issuer
            ));
        }
        let url = fetchable_url(&metadata.jwks_uri, self.allow_http)
            .map_err(|problem| format!("{discovery}: its jwks_uri: {problem}"))?;
        if let Ok(mut discovered) = self.discovered.lock() {
            *discovered = Some(url.clone());
        }
        Ok(url)
    }

    fn remembered(&self) -> Option<Url> {
        self.discovered.lock().ok().and_then(|d| d.clone())
    }

    fn forget_discovered(&self) {
        if let Ok(mut discovered) = self.discovered.lock() {
            *discovered = None;
        }
    }

    /// GETs a JSON document: its body (at most [`MAX_DOCUMENT_BYTES`]) and its freshness.
    async fn get(&self, url: &Url) -> Result<(Vec<u8>, Option<Duration>), String> {
        let mut response = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        let headers = response.headers();
        let max_age = freshness(
            headers
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            headers.get(AGE).and_then(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: the document is larger than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<Fetched, String> {
        let url = self.jwks_url().await?;
        let fetched = match self.get(&url).await {
            Ok(fetched) => fetched,
            Err(e) => {
                self.forget_discovered();
                return Err(e);
            }
        };
        let (body, max_age) = fetched;
        let keys = usable_keys(&body, self.pinned).map_err(|e| format!("{url}: {e}"))?;
        Ok(Fetched { keys, max_age })
    }

    fn describe(&self) -> String {
        match &self.source {
            RemoteKeySource::JwksUrl(url) => url.to_string(),
            RemoteKeySource::Discovery(document) => match self.remembered() {
                Some(url) => format!("{url} (from {document})"),
                None => document.to_string(),
            },
        }
    }
}

/// How long a response may be used, from `Cache-Control` (and `Age`, when a cache between
/// served it): `no-store`/`no-cache` mean not at all, `max-age` says how long; without either
/// the provider did not say.
pub(crate) fn freshness(cache_control: &str, age: Option<&str>) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            max_age = seconds.trim_matches('"').parse::<u64>().ok();
        }
    }
    let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    max_age.map(|seconds| Duration::from_secs(seconds.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_says_how_long_a_set_is_fresh() {
        let s = Duration::from_secs;
        assert_eq!(freshness("public, max-age=3600", None), Some(s(3600)));
        assert_eq!(
            freshness("max-age=3600, must-revalidate", Some("600")),
            Some(s(3000))
        );
        assert_eq!(freshness("Max-Age=\"20\"", None), Some(s(20)));
        assert_eq!(freshness("max-age=10", Some("99")), Some(s(0)));
        assert_eq!(freshness("no-cache, max-age=3600", None), Some(s(0)));
        assert_eq!(freshness("private, no-store", None), Some(s(0)));
        assert_eq!(freshness("", None), None);
        assert_eq!(freshness("max-age=soon", None), None);
    }
}
