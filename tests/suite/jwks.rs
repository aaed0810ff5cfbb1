//! Issuers whose keys are fetched by URL, against a local HTTPS key server (`common::jwks`)
//! that rotates its keys while the gateway runs: a key published after start is used once
//! served; made-up `kid`s cause at most the configured fetches a minute; a provider that is
//! down leaves cached keys in force; discovery finds the set; keys declared for another
//! algorithm are never used; a provider unreachable at start does not stop the gateway.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

const URL_ISSUER: &str = "https://jwks-url.capgate.local";

/// The standard HS256 test issuer (admin tokens) and `remote`.
async fn gateway_with(remote: String) -> TestGateway {
    TestGateway::start(GatewayOptions {
        issuers: Some(format!(
            "\n[[issuers]]\nissuer = \"{HS_ISSUER}\"\nalgorithm = \"HS256\"\nsecret_env = \"CAPGATE_TEST_SECRET\"\n{remote}"
        )),
        ..Default::default()
    })
    .await
}

fn fetch_table(provider: &JwksServer, per_minute: u32) -> String {
    format!(
        "[issuers.jwks_fetch]\nca_file = \"{}\"\nunknown_kid_fetches_per_minute = {per_minute}\n",
        provider.ca_file.display()
    )
}

/// `initialize` with `token`: the status and the 401's `error_description`.
async fn try_token(gateway: &TestGateway, token: &str) -> (u16, String) {
    let (status, answer) = Raw::new(gateway).initialize(token).await;
    let description = answer["error_description"].as_str().unwrap_or_default();
    (status, description.to_string())
}

/// `capgate_key_fetches_total{issuer, outcome}` on `/metrics`: (ok, error, rate_limited).
async fn key_fetches(gateway: &TestGateway, issuer: &str) -> (u64, u64, u64) {
    let text = gateway.metrics_text().await;
    let count = |outcome: &str| {
        let series =
            format!("capgate_key_fetches_total{{issuer=\"{issuer}\",outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |value| value.trim().parse().expect("a count"))
    };
    (count("ok"), count("error"), count("rate_limited"))
}

/// A token of an issuer whose keys have not arrived is refused as such, and the health
/// details say so: the issuer's entry in them.
async fn refused_until_keys_arrive(gateway: &TestGateway, token: &str, issuer: &str) -> Value {
    let (status, description) = try_token(gateway, token).await;
    assert_eq!(status, 401);
    assert!(
        description.contains("have not been fetched yet"),
        "{description}"
    );
    gateway.health().await["issuer_keys"][issuer].clone()
}

fn alice() -> TokenSpec {
    analyst("acme", "alice", "drafting-agent")
}

#[tokio::test]
async fn keys_published_after_start_are_used_and_made_up_kids_fetch_within_the_limit() {
    let provider = JwksServer::start().await;
    let first = TestKey::from_fixture("test-rs256-private.pem");
    let second = TestKey::from_fixture("test-rs256-second-private.pem");
    provider.publish(first.jwk("first"));
    let gateway = gateway_with(format!(
        "[[issuers]]\nissuer = \"{URL_ISSUER}\"\nalgorithm = \"RS256\"\njwks_url = \"{}\"\n{}",
        provider.jwks_url(),
        fetch_table(&provider, 3)
    ))
    .await;
    let token = |key: &TestKey, kid: &str| key.token(kid, URL_ISSUER, &alice(), &gateway.url);

    provider.wait_for_jwks_requests(1).await;
    assert_eq!(try_token(&gateway, &token(&first, "first")).await.0, 200);
    let at_start = provider.jwks_requests();
    let minute = Instant::now();
    assert_eq!(
        key_fetches(&gateway, URL_ISSUER).await,
        (at_start as u64, 0, 0)
    );

    // Rotation: the provider publishes a key capgate has never seen.
    provider.publish(second.jwk("second"));
    assert_eq!(try_token(&gateway, &token(&second, "second")).await.0, 200);
    assert_eq!(
        provider.jwks_requests(),
        at_start + 1,
        "one refresh found it"
    );
    assert_eq!(
        key_fetches(&gateway, URL_ISSUER).await,
        (at_start as u64 + 1, 0, 0),
        "and it is counted"
    );
    assert_eq!(try_token(&gateway, &token(&second, "second")).await.0, 200);
    assert_eq!(provider.jwks_requests(), at_start + 1, "and it is cached");

    // A flood of kids the provider never published: concurrent, then one after another.
    let flood = (0..30).map(|i| {
        let made_up = token(&second, &format!("made-up-{i}"));
        let gateway = &gateway;
        async move { try_token(gateway, &made_up).await }
    });
    for (status, description) in futures::future::join_all(flood).await {
        assert_eq!(status, 401);
        assert!(description.contains("no key matches"), "{description}");
    }
    for i in 30..60 {
        let (status, _) = try_token(&gateway, &token(&second, &format!("made-up-{i}"))).await;
        assert_eq!(status, 401);
    }
    let caused = provider.jwks_requests() - at_start;
    assert!(
        minute.elapsed() < Duration::from_secs(60),
        "the flood took a minute; the window slid"
    );
    assert_eq!(
        caused, 3,
        "tokens caused {caused} fetches in under a minute; the limit is 3"
    );
    // Every fetch succeeded; each refresh refused by the limit is counted. Of the limit's 3,
    // the rotation took one and the concurrent flood one or two (its requests may all share
    // one fetch, as they do on a busy machine); the sequential ones take what is left, at most
    // one, and the other 29 or 30 are refused and counted. Concurrent ones refused add up to 28.
    let (ok, error, rate_limited) = key_fetches(&gateway, URL_ISSUER).await;
    assert_eq!((ok, error), (provider.jwks_requests() as u64, 0));
    assert!(
        (29..=58).contains(&rate_limited),
        "{rate_limited} refreshes refused by the limit"
    );

    // The provider goes down: the cached keys stay in force, without a fetch.
    provider.set_down(true);
    assert_eq!(try_token(&gateway, &token(&first, "first")).await.0, 200);
    assert_eq!(try_token(&gateway, &token(&second, "second")).await.0, 200);
    let health = gateway.health().await;
    assert_eq!(
        health["issuer_keys"][URL_ISSUER]["key_ids"],
        json!(["first", "second"]),
        "{health}"
    );
}

#[tokio::test]
async fn discovery_finds_the_set_keys_for_another_algorithm_are_never_used_and_outages_keep_the_cache(
) {
    let provider = JwksServer::start().await;
    let first = TestKey::from_fixture("test-rs256-private.pem");
    let second = TestKey::from_fixture("test-rs256-second-private.pem");
    provider.publish(first.jwk("first"));
    let mut as_rs512 = first.jwk("first-as-rs512");
    as_rs512["alg"] = "RS512".into();
    provider.publish(as_rs512);
    let mut for_encryption = first.jwk("first-for-encryption");
    for_encryption["use"] = "enc".into();
    provider.publish(for_encryption);
    let issuer = provider.issuer();
    let gateway = gateway_with(format!(
        "[[issuers]]\nissuer = \"{issuer}\"\nalgorithm = \"RS256\"\ndiscovery = true\n{}",
        fetch_table(&provider, 10)
    ))
    .await;
    let token = |key: &TestKey, kid: &str| key.token(kid, &issuer, &alice(), &gateway.url);

    provider.wait_for_jwks_requests(1).await;
    assert!(provider.discovery_requests() >= 1);
    assert_eq!(try_token(&gateway, &token(&first, "first")).await.0, 200);
    // The same RSA key, published for RS512 or for encryption: not a key of this issuer.
    for kid in ["first-as-rs512", "first-for-encryption"] {
        let (status, description) = try_token(&gateway, &token(&first, kid)).await;
        assert_eq!(status, 401, "{kid}");
        assert!(description.contains("no key matches"), "{description}");
    }
    let health = gateway.health().await;
    let keys = &health["issuer_keys"][issuer.as_str()];
    assert_eq!(keys["key_ids"], json!(["first"]), "{health}");
    assert_eq!(keys["skipped_keys"].as_array().map(Vec::len), Some(2));
    assert!(
        keys["source"]
            .as_str()
            .is_some_and(|s| s.starts_with(&provider.jwks_url())),
        "{keys}"
    );

    // Down: a refresh for an unknown kid fails, and the cached key is still in force.
    provider.set_down(true);
    let before = provider.jwks_requests() + provider.discovery_requests();
    assert_eq!(try_token(&gateway, &token(&second, "second")).await.0, 401);
    assert!(provider.jwks_requests() + provider.discovery_requests() > before);
    assert_eq!(try_token(&gateway, &token(&first, "first")).await.0, 200);
    let health = gateway.health().await;
    let keys = &health["issuer_keys"][issuer.as_str()];
    assert!(
        keys["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{keys}"
    );
    assert_eq!(keys["key_ids"], json!(["first"]));
    let (ok, error, _) = key_fetches(&gateway, &issuer).await;
    assert!(ok >= 1 && error >= 1, "ok {ok}, error {error}");
}

#[tokio::test]
async fn a_key_server_down_at_start_refuses_its_tokens_until_keys_arrive() {
    let provider = JwksServer::start().await;
    let first = TestKey::from_fixture("test-rs256-private.pem");
    provider.publish(first.jwk("first"));
    provider.set_down(true);
    let gateway = gateway_with(format!(
        "[[issuers]]\nissuer = \"{URL_ISSUER}\"\nalgorithm = \"RS256\"\njwks_url = \"{}\"\n{}",
        provider.jwks_url(),
        fetch_table(&provider, 10)
    ))
    .await;
    let token = first.token("first", URL_ISSUER, &alice(), &gateway.url);

    provider.wait_for_jwks_requests(1).await;
    let keys = refused_until_keys_arrive(&gateway, &token, URL_ISSUER).await;
    assert!(
        keys["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("no keys yet")),
        "{keys}"
    );
    // Other issuers are unaffected.
    assert_eq!(try_token(&gateway, &gateway.token(&alice())).await.0, 200);

    provider.set_down(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, description) = try_token(&gateway, &token).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys never arrived: {description}"
        );
        provider
            .wait_for_jwks_requests(provider.jwks_requests() + 1)
            .await;
    }
    assert_eq!(
        gateway.health().await["issuer_keys"][URL_ISSUER]["state"],
        "fresh"
    );
}

#[tokio::test]
async fn a_key_server_whose_certificate_is_not_trusted_is_never_read() {
    let provider = JwksServer::start().await;
    let first = TestKey::from_fixture("test-rs256-private.pem");
    provider.publish(first.jwk("first"));
    // No ca_file: the system's roots do not know the key server's CA.
    let gateway = gateway_with(format!(
        "[[issuers]]\nissuer = \"{URL_ISSUER}\"\nalgorithm = \"RS256\"\njwks_url = \"{}\"\n",
        provider.jwks_url()
    ))
    .await;
    let token = first.token("first", URL_ISSUER, &alice(), &gateway.url);
    let keys = refused_until_keys_arrive(&gateway, &token, URL_ISSUER).await;
    let error = keys["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("certificate"), "{keys}");
    assert_eq!(provider.jwks_requests(), 0, "no request got past TLS");
}

/// capgate checks a token in full once and then remembers it; a remembered token is trusted
/// again only while the key that verified it is still published. Once the provider withdraws
/// the key (seen at the next refresh), the same token is refused.
#[tokio::test]
async fn a_withdrawn_key_stops_the_tokens_it_verified_though_they_were_remembered() {
    let provider = JwksServer::start().await;
    let first = TestKey::from_fixture("test-rs256-private.pem");
    let second = TestKey::from_fixture("test-rs256-second-private.pem");
    provider.publish(first.jwk("first"));
    provider.publish(second.jwk("second"));
    let gateway = gateway_with(format!(
        "[[issuers]]\nissuer = \"{URL_ISSUER}\"\nalgorithm = \"RS256\"\njwks_url = \"{}\"\n{}",
        provider.jwks_url(),
        fetch_table(&provider, 5)
    ))
    .await;
    let token = |key: &TestKey, kid: &str| key.token(kid, URL_ISSUER, &alice(), &gateway.url);
    provider.wait_for_jwks_requests(1).await;

    let remembered = token(&first, "first");
    for _ in 0..2 {
        assert_eq!(try_token(&gateway, &remembered).await.0, 200);
    }
    provider.withdraw("first");
    // A token naming a kid capgate does not hold makes it refresh its set (within the limit).
    let before = provider.jwks_requests();
    assert_eq!(try_token(&gateway, &token(&second, "made-up")).await.0, 401);
    assert_eq!(provider.jwks_requests(), before + 1, "one refresh");

    let (status, description) = try_token(&gateway, &remembered).await;
    assert_eq!(status, 401, "a token of a withdrawn key still passed");
    assert!(description.contains("no key matches"), "{description}");
    assert_eq!(
        try_token(&gateway, &token(&second, "second")).await.0,
        200,
        "a key still published still verifies"
    );
}
