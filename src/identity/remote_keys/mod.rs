//! An issuer's keys fetched from its JWKS URL (or found by OIDC discovery), cached and kept
//! fresh. How it behaves:
//!
//! - **Start**: the first fetch runs in the background; the gateway starts whether or not the
//!   provider answers. Until keys arrive, the issuer's tokens are refused
//!   ([`KeyLookup::NotYetFetched`]) and the health details say why.
//! - **Freshness**: a set is kept as long as the provider's `Cache-Control: max-age` says,
//!   within the issuer's `min_cache`..`max_cache` (an hour when it says nothing); then a
//!   background refresh replaces it. Requests never wait for that refresh.
//! - **Rotation**: a token whose `kid` is not in the set causes one refresh, at most
//!   `unknown_kid_fetches_per_minute` in any 60 s; concurrent requests share one fetch. Past
//!   the limit such tokens are refused without a fetch, so made-up `kid`s cannot make capgate
//!   hammer the provider.
//! - **Outage**: a failed fetch (unreachable, an error status, a document without one usable
//!   key) leaves the cached keys in force; the background retries after 1 s, doubling up to
//!   60 s.
//! - **Pinning**: only keys for the issuer's pinned algorithm are ever in the set (`jwk_set`).
//! - **Counted**: each fetch by outcome (`ok`, `error`), and each refresh a token asked for
//!   past the limit (`rate_limited`), in `capgate_key_fetches_total{issuer, outcome}`.
//!
//! One task per issuer keeps the set fresh; it holds the cache weakly and ends with it.

mod fetch;
mod window;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use tokio::time::Instant;

use crate::config::{IssuerConfig, RemoteKeysConfig};
use crate::metrics::{KeyFetchOutcome, Metrics};

use fetch::{Fetched, HttpKeySource, KeySource};
use window::FetchWindow;

/// How long a set is kept when the provider does not say (within the issuer's bounds).
const UNSAID_FRESHNESS: Duration = Duration::from_secs(3600);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// Why a key for a `kid` could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyLookup {
    /// The set (fresh, or just refreshed, or not refreshed because of the limit) lacks it.
    Unknown,
    /// No set has been fetched yet: the provider has not answered since start.
    NotYetFetched,
}

/// Why the set was fetched (for the log).
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Schedule,
    UnknownKid,
}

/// The keys as last fetched.
struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
}

/// The refresh schedule and what the health details report.
struct Status {
    next_refresh: Instant,
    failures: u32,
    last_error: Option<String>,
    skipped: Vec<String>,
}

/// One issuer's fetched keys.
pub(crate) struct RemoteKeys {
    issuer: String,
    source: Box<dyn KeySource>,
    min_cache: Duration,
    max_cache: Duration,
    keys: ArcSwap<KeySet>,
    /// Held while fetching (one fetch at a time); holds the token-caused refreshes' window.
    refresh: tokio::sync::Mutex<FetchWindow>,
    /// Fetches attempted so far, successful or not.
    attempts: AtomicU64,
    status: Mutex<Status>,
    metrics: Arc<Metrics>,
}

impl RemoteKeys {
    /// Creates the cache for `issuer` and starts the task that fetches and refreshes it.
    /// Only a local problem (a CA file that cannot be read, no async runtime) is an error.
    pub(super) fn start(
        issuer: &IssuerConfig,
        config: &RemoteKeysConfig,
        metrics: &Arc<Metrics>,
    ) -> Result<Arc<Self>, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "keys fetched by URL need the async runtime".to_string())?;
        let source = HttpKeySource::new(&issuer.issuer, issuer.algorithm, config)?;
        let keys = Arc::new(Self::new(
            &issuer.issuer,
            Box::new(source),
            config,
            metrics.clone(),
        ));
        runtime.spawn(keep_fresh(Arc::downgrade(&keys)));
        Ok(keys)
    }

    fn new(
        issuer: &str,
        source: Box<dyn KeySource>,
        config: &RemoteKeysConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            issuer: issuer.to_string(),
            source,
            min_cache: config.min_cache,
            max_cache: config.max_cache,
            keys: ArcSwap::from_pointee(KeySet {
                keys: HashMap::new(),
                fetched_at: None,
            }),
            refresh: tokio::sync::Mutex::new(FetchWindow::per_minute(
                config.unknown_kid_fetches_per_minute,
            )),
            attempts: AtomicU64::new(0),
            status: Mutex::new(Status {
                next_refresh: Instant::now(),
                failures: 0,
                last_error: None,
                skipped: Vec::new(),
            }),
            metrics,
        }
    }

    /// The key `kid` names in the set held now, without fetching.
    pub(super) fn held(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys.load().keys.get(kid).cloned()
    }

    /// The key a token's `kid` names, refreshing the set once (within the limit) when it is
    /// not there.
    pub(super) async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyLookup> {
        // Read before the set: a fetch that ends between the two is then seen as "since".
        let attempts_seen = self.attempts.load(Ordering::Acquire);
        if let Some(key) = self.keys.load().keys.get(kid) {
            return Ok(key.clone());
        }
        {
            let mut window = self.refresh.lock().await;
            let fetched_since = self.attempts.load(Ordering::Acquire) != attempts_seen;
            // The very first fetch (a token arriving before the start-up fetch ran) is the
            // start-up fetch, not one the token caused.
            let first = attempts_seen == 0 && !fetched_since;
            if !fetched_since && (first || window.try_take(Instant::now())) {
                self.fetch_holding_lock(Trigger::UnknownKid).await;
            } else if !fetched_since {
                tracing::debug!(target: "capgate::auth", issuer = %self.issuer,
                    "unknown key id; the refresh limit is reached, not fetching");
                self.metrics
                    .count_key_fetch(&self.issuer, KeyFetchOutcome::RateLimited);
            }
        }
        let set = self.keys.load();
        match set.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if set.fetched_at.is_none() => Err(KeyLookup::NotYetFetched),
            None => Err(KeyLookup::Unknown),
        }
    }

    /// Fetches now; the caller holds `refresh`. A failure keeps the cached set.
    async fn fetch_holding_lock(&self, trigger: Trigger) {
        let result = self.source.fetch().await;
        let now = Instant::now();
        let result = result.and_then(|fetched| {
            if fetched.keys.keys.is_empty() {
                Err(format!(
                    "the set holds no key usable for this issuer ({})",
                    fetched.keys.skipped.join("; ")
                ))
            } else {
                Ok(fetched)
            }
        });
        let mut status = match self.status.lock() {
            Ok(status) => status,
            Err(poisoned) => poisoned.into_inner(),
        };
        match result {
            Ok(Fetched { keys, max_age }) => {
                let keep = max_age
                    .unwrap_or(UNSAID_FRESHNESS)
                    .clamp(self.min_cache, self.max_cache);
                tracing::info!(target: "capgate::auth", issuer = %self.issuer, ?trigger,
                    keys = keys.keys.len(), skipped = ?keys.skipped, keep_seconds = keep.as_secs(),
                    "issuer keys fetched");
                self.metrics
                    .count_key_fetch(&self.issuer, KeyFetchOutcome::Ok);
                self.keys.store(Arc::new(KeySet {
                    keys: keys.keys,
                    fetched_at: Some(now),
                }));
                *status = Status {
                    next_refresh: now + keep,
                    failures: 0,
                    last_error: None,
                    skipped: keys.skipped,
                };
            }
            Err(error) => {
                status.failures = status.failures.saturating_add(1);
                let retry = FIRST_RETRY
                    .saturating_mul(1 << status.failures.saturating_sub(1).min(6))
                    .min(LAST_RETRY);
                status.next_refresh = now + retry;
                tracing::warn!(target: "capgate::auth", issuer = %self.issuer, ?trigger,
                    %error, retry_seconds = retry.as_secs(),
                    "cannot fetch the issuer's keys; the cached keys stay in force");
                self.metrics
                    .count_key_fetch(&self.issuer, KeyFetchOutcome::Error);
                status.last_error = Some(error);
            }
        }
        self.attempts.fetch_add(1, Ordering::Release);
    }

    fn next_refresh(&self) -> Instant {
        match self.status.lock() {
            Ok(status) => status.next_refresh,
            Err(poisoned) => poisoned.into_inner().next_refresh,
        }
    }

    /// The set as the health details show it.
    pub(super) fn status(&self) -> serde_json::Value {
        let set = self.keys.load();
        let now = Instant::now();
        let status = match self.status.lock() {
            Ok(status) => status,
            Err(poisoned) => poisoned.into_inner(),
        };
        let state = match (set.fetched_at, &status.last_error) {
            (None, _) => "no keys yet: tokens of this issuer are refused",
            (Some(_), Some(_)) => "cached keys in force; the last refresh failed",
            (Some(_), None) => "fresh",
        };
        let mut kids: Vec<&String> = set.keys.keys().collect();
        kids.sort();
        serde_json::json!({
            "source": self.source.describe(),
            "state": state,
            "key_ids": kids,
            "fetched_seconds_ago": set.fetched_at.map(|at| now.saturating_duration_since(at).as_secs()),
            "next_refresh_in_seconds": status.next_refresh.saturating_duration_since(now).as_secs(),
            "last_error": status.last_error,
            "skipped_keys": status.skipped,
        })
    }
}

/// Fetches at start and whenever the schedule says (freshness ended, or a retry is due).
async fn keep_fresh(cache: Weak<RemoteKeys>) {
    loop {
        let due = match cache.upgrade() {
            Some(keys) => keys.next_refresh(),
            None => return,
        };
        tokio::time::sleep_until(due).await;
        let Some(keys) = cache.upgrade() else { return };
        let _window = keys.refresh.lock().await;
        // A token-caused refresh may have moved the schedule while this task slept or waited.
        if keys.next_refresh() <= Instant::now() {
            keys.fetch_holding_lock(Trigger::Schedule).await;
        }
    }
}

#[cfg(test)]
mod tests;
