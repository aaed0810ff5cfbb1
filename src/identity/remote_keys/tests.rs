//! The cache against a scripted provider on tokio's paused clock: rotation, the refresh limit,
//! shared fetches, outages and the schedule, without a network or a wait.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::config::{PinnedAlgorithm, RemoteKeySource};
use crate::identity::jwk_set::usable_keys;

/// What the scripted provider publishes, and how often it was asked.
struct Script {
    kids: Vec<&'static str>,
    up: bool,
    max_age: Option<Duration>,
    delay: Duration,
    fetches: usize,
}

#[derive(Clone)]
struct Provider {
    script: Arc<Mutex<Script>>,
    asked: Arc<tokio::sync::Notify>,
}

impl Provider {
    fn new(kids: &[&'static str]) -> Self {
        Self {
            script: Arc::new(Mutex::new(Script {
                kids: kids.to_vec(),
                up: true,
                max_age: Some(Duration::from_secs(3600)),
                delay: Duration::ZERO,
                fetches: 0,
            })),
            asked: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn with<R>(&self, change: impl FnOnce(&mut Script) -> R) -> R {
        change(&mut self.script.lock().expect("script"))
    }

    fn fetches(&self) -> usize {
        self.with(|s| s.fetches)
    }

    /// Waits until the provider has been asked `n` times. The paused clock jumps straight to
    /// the next timer while everything waits, so this takes no real time.
    async fn asked(&self, n: usize) {
        loop {
            let asked = self.asked.notified();
            tokio::pin!(asked);
            asked.as_mut().enable();
            if self.fetches() >= n {
                return;
            }
            asked.await;
        }
    }
}

fn rsa_jwk(kid: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-jwks.json");
    let set: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let mut jwk = set["keys"][0].clone();
    jwk["kid"] = kid.into();
    jwk
}

#[async_trait]
impl KeySource for Provider {
    async fn fetch(&self) -> Result<Fetched, String> {
        let delay = self.with(|s| {
            s.fetches += 1;
            s.delay
        });
        self.asked.notify_waiters();
        tokio::time::sleep(delay).await;
        let (up, kids, max_age) = self.with(|s| (s.up, s.kids.clone(), s.max_age));
        if !up {
            return Err("HTTP 503".into());
        }
        let keys: Vec<Value> = kids.into_iter().map(rsa_jwk).collect();
        let document = serde_json::to_vec(&json!({ "keys": keys })).expect("json");
        Ok(Fetched {
            keys: usable_keys(&document, PinnedAlgorithm::RS256)?,
            max_age,
        })
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

fn config(per_minute: u32) -> RemoteKeysConfig {
    RemoteKeysConfig {
        source: RemoteKeySource::JwksUrl(url::Url::parse("https://idp.example/keys").expect("url")),
        min_cache: Duration::from_secs(60),
        max_cache: Duration::from_secs(86_400),
        unknown_kid_fetches_per_minute: per_minute,
        timeout: Duration::from_secs(5),
        ca_file: None,
        allow_http: false,
    }
}

fn cache(provider: &Provider, per_minute: u32) -> Arc<RemoteKeys> {
    Arc::new(RemoteKeys::new(
        "https://idp.example",
        Box::new(provider.clone()),
        &config(per_minute),
        Arc::new(Metrics::default()),
    ))
}

/// `capgate_key_fetches_total` of the cache's issuer, by outcome: (ok, error, rate_limited).
fn counted(keys: &RemoteKeys) -> (u64, u64, u64) {
    let text = keys.metrics.render();
    let count = |outcome: &str| {
        let series = format!(
            "capgate_key_fetches_total{{issuer=\"https://idp.example\",outcome=\"{outcome}\"}} "
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |value| value.parse().expect("a count"))
    };
    (count("ok"), count("error"), count("rate_limited"))
}

#[tokio::test(start_paused = true)]
async fn rotated_keys_are_found_and_unknown_kids_fetch_within_the_limit() {
    let provider = Provider::new(&["a"]);
    let keys = cache(&provider, 2);
    assert!(keys.key("a").await.is_ok(), "the first fetch");
    assert_eq!(provider.fetches(), 1);

    provider.with(|s| s.kids = vec!["a", "b"]);
    assert!(
        keys.key("b").await.is_ok(),
        "published after the first fetch"
    );
    assert_eq!(provider.fetches(), 2);
    assert!(keys.key("a").await.is_ok());
    assert_eq!(provider.fetches(), 2, "a known kid fetches nothing");

    assert_eq!(keys.key("made-up-1").await.err(), Some(KeyLookup::Unknown));
    assert_eq!(provider.fetches(), 3, "the second refresh of the minute");
    for i in 0..50 {
        let kid = format!("made-up-{i}");
        assert_eq!(keys.key(&kid).await.err(), Some(KeyLookup::Unknown));
    }
    assert_eq!(provider.fetches(), 3, "the limit holds");
    assert_eq!(counted(&keys), (3, 0, 50), "each refused refresh counted");

    // Past the limit even a real rotation waits for the window (or the schedule).
    provider.with(|s| s.kids = vec!["a", "b", "c"]);
    assert_eq!(keys.key("c").await.err(), Some(KeyLookup::Unknown));
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(keys.key("c").await.err(), Some(KeyLookup::Unknown));
    assert_eq!(provider.fetches(), 3);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(keys.key("c").await.is_ok());
    assert_eq!(provider.fetches(), 4);
    assert_eq!(counted(&keys), (4, 0, 52));
}

#[tokio::test(start_paused = true)]
async fn concurrent_unknown_kids_share_one_fetch() {
    let provider = Provider::new(&["a"]);
    let keys = cache(&provider, 10);
    assert!(keys.key("a").await.is_ok());
    provider.with(|s| s.delay = Duration::from_secs(1));
    let lookups = (0..20).map(|i| {
        let keys = keys.clone();
        async move { keys.key(&format!("flood-{i}")).await.err() }
    });
    let results = futures::future::join_all(lookups).await;
    assert!(results.iter().all(|r| *r == Some(KeyLookup::Unknown)));
    assert_eq!(provider.fetches(), 2, "one fetch for the whole wave");
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_is_down_leaves_the_cached_keys_in_force() {
    let provider = Provider::new(&["a"]);
    let keys = cache(&provider, 5);
    assert!(keys.key("a").await.is_ok());
    provider.with(|s| s.up = false);
    assert_eq!(keys.key("new").await.err(), Some(KeyLookup::Unknown));
    assert_eq!(provider.fetches(), 2, "the refresh was tried");
    assert!(keys.key("a").await.is_ok(), "and the cached key stayed");
    let status = keys.status();
    assert_eq!(status["key_ids"], json!(["a"]));
    assert_eq!(status["last_error"], json!("HTTP 503"));
    assert!(
        status["state"]
            .as_str()
            .is_some_and(|s| s.contains("cached keys in force")),
        "{status}"
    );
    // An answer without one usable key is an outage too, not an empty set.
    provider.with(|s| {
        s.up = true;
        s.kids = vec![];
    });
    assert_eq!(keys.key("other").await.err(), Some(KeyLookup::Unknown));
    assert!(keys.key("a").await.is_ok());
    assert_eq!(counted(&keys), (1, 2, 0), "two failed fetches");
}

#[tokio::test(start_paused = true)]
async fn no_keys_until_the_provider_answers_then_the_schedule_keeps_them_fresh() {
    let provider = Provider::new(&["a"]);
    provider.with(|s| s.up = false);
    // No refresh may be caused by tokens: only the start-up fetch and the schedule run.
    let keys = cache(&provider, 0);
    let start = Instant::now();
    tokio::spawn(keep_fresh(Arc::downgrade(&keys)));
    // Waits for the nth fetch; the seconds since start it came at.
    let fetched = |n: usize| {
        let provider = provider.clone();
        async move {
            provider.asked(n).await;
            start.elapsed().as_secs()
        }
    };
    assert_eq!(fetched(1).await, 0);
    assert_eq!(keys.key("a").await.err(), Some(KeyLookup::NotYetFetched));
    assert!(keys.status()["state"]
        .as_str()
        .is_some_and(|s| s.starts_with("no keys yet")));
    // Retries after 1 s, then 2 s.
    assert_eq!(fetched(2).await, 1);
    provider.with(|s| s.up = true);
    assert_eq!(fetched(3).await, 3);
    assert!(keys.key("a").await.is_ok());

    // max-age 10 s is raised to min_cache (60 s); then the set is refreshed on schedule.
    provider.with(|s| {
        s.kids = vec!["b"];
        s.max_age = Some(Duration::from_secs(10));
    });
    assert_eq!(fetched(4).await, 3 + 3600, "the first set's max-age");
    assert_eq!(fetched(5).await, 3 + 3600 + 60, "raised to min_cache");
    assert!(keys.key("b").await.is_ok());
    assert_eq!(keys.key("a").await.err(), Some(KeyLookup::Unknown));

    // A year is cut to max_cache (a day).
    provider.with(|s| s.max_age = Some(Duration::from_secs(365 * 86_400)));
    assert_eq!(fetched(6).await, 3 + 3600 + 120);
    assert_eq!(fetched(7).await, 3 + 3600 + 120 + 86_400);

    // The task ends with the cache.
    drop(keys);
    tokio::time::sleep(Duration::from_secs(2 * 86_400)).await;
    assert_eq!(provider.fetches(), 7);
}
