//! Every kind of bad token gets HTTP 401 with `WWW-Authenticate` pointing at the RFC 9728
//! metadata, which is served; a good token (HS256 or RS256 issuer) gets through.

use crate::common::*;
use base64::Engine as _;
use serde_json::{json, Value};

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(value).expect("json"))
}

/// Re-signs nothing: builds `header.payload.signature` by hand (for `alg: none` and
/// HS/RS confusion, which honest libraries refuse to produce).
fn forged(header: Value, claims: &serde_json::Map<String, Value>, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(&header),
        b64(&Value::Object(claims.clone())),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
    )
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner_hash = Sha256::digest([inner.as_slice(), message].concat());
    Sha256::digest([outer.as_slice(), &inner_hash[..]].concat()).to_vec()
}

async fn post_initialize(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "auth-test", "version": "1"}}
        }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn bad_tokens_get_401_with_www_authenticate_and_good_ones_pass() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let spec = analyst("acme", "alice", "drafting-agent");
    let good = claims(&spec, &gateway.url);
    let now = jsonwebtoken::get_current_timestamp();

    let mut expired = good.clone();
    expired.insert("exp".into(), (now - 3600).into());
    expired.insert("nbf".into(), (now - 7200).into());
    let mut not_yet = good.clone();
    not_yet.insert("nbf".into(), (now + 3600).into());
    let mut wrong_audience = good.clone();
    wrong_audience.insert("aud".into(), "https://some-other-server.example/mcp".into());
    let mut wrong_issuer = good.clone();
    wrong_issuer.insert("iss".into(), "https://evil.example".into());
    let mut tenantless = good.clone();
    tenantless.remove("tenant");
    let mut rs_claims = good.clone();
    rs_claims.insert("iss".into(), RS_ISSUER.into());

    let public_pem = std::fs::read(fixtures().join("test-rs256-public.pem")).expect("key");
    let hs_rs_header = json!({"alg": "HS256", "typ": "JWT"});
    let hs_rs_signing_input = format!(
        "{}.{}",
        b64(&hs_rs_header),
        b64(&Value::Object(rs_claims.clone()))
    );
    let hs_rs_confused = format!(
        "{hs_rs_signing_input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(hmac_sha256(&public_pem, hs_rs_signing_input.as_bytes()))
    );

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("not a jwt", Some("not-a-jwt".into())),
        (
            "expired",
            Some(sign_hs256(&expired, TEST_SECRET.as_bytes())),
        ),
        (
            "not yet valid",
            Some(sign_hs256(&not_yet, TEST_SECRET.as_bytes())),
        ),
        (
            "wrong audience",
            Some(sign_hs256(&wrong_audience, TEST_SECRET.as_bytes())),
        ),
        (
            "wrong issuer",
            Some(sign_hs256(&wrong_issuer, TEST_SECRET.as_bytes())),
        ),
        (
            "alg none",
            Some(forged(json!({"alg": "none", "typ": "JWT"}), &good, b"")),
        ),
        ("HS/RS confused", Some(hs_rs_confused)),
        (
            "badly signed",
            Some(sign_hs256(
                &good,
                b"a-different-secret-of-sufficient-length!!",
            )),
        ),
        (
            "tenant-less",
            Some(sign_hs256(&tenantless, TEST_SECRET.as_bytes())),
        ),
    ];
    let expected_metadata = format!(
        "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
        gateway.base_url()
    );
    for (name, token) in &cases {
        let response = post_initialize(&gateway.url, token.as_deref()).await;
        assert_eq!(response.status(), 401, "{name}: expected 401");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(challenge.starts_with("Bearer "), "{name}: {challenge}");
        assert!(
            challenge.contains(&expected_metadata),
            "{name}: {challenge}"
        );
        if token.is_some() {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{name}: {challenge}"
            );
        }
    }

    // The refusals above never reached a handler, so the downstream saw nothing.
    assert!(gateway.journal_entries().is_empty());

    // Good tokens from both issuers pass.
    for (name, token) in [
        ("hs256", sign_hs256(&good, TEST_SECRET.as_bytes())),
        ("rs256", sign_rs256(&rs_claims)),
    ] {
        let response = post_initialize(&gateway.url, Some(&token)).await;
        assert_eq!(response.status(), 200, "{name} token must be accepted");
    }

    // The metadata document is served where the challenge points.
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        gateway.base_url()
    ))
    .await
    .expect("metadata")
    .json()
    .await
    .expect("metadata json");
    assert_eq!(metadata["resource"], gateway.url);
    let servers = metadata["authorization_servers"].as_array().expect("list");
    assert!(servers.contains(&json!(HS_ISSUER)) && servers.contains(&json!(RS_ISSUER)));
}

#[tokio::test]
async fn identity_is_per_request_not_per_session() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway.token(&analyst("acme", "alice", "drafting-agent"));
    let response = post_initialize(&gateway.url, Some(&alice)).await;
    assert_eq!(response.status(), 200);
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("session id")
        .to_string();
    // The same session, with no token, is refused: a session carries no identity.
    let reuse = reqwest::Client::new()
        .post(&gateway.url)
        .header("Accept", "application/json, text/event-stream")
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .expect("request");
    assert_eq!(reuse.status(), 401);
}

/// A token signed with the test secret whose header and payload are the given JSON texts as
/// written (a serializer cannot produce a repeated member).
fn signed_as_written(header: &str, payload: &str) -> String {
    let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let signing_input = format!("{}.{}", encode(header), encode(payload));
    let signature = hmac_sha256(TEST_SECRET.as_bytes(), signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Ids are checked and claims must be unique before anything uses them: a tenant `"acme "`
/// (which a kill switch on `acme` would not match, and a downstream would trim to `acme`), a
/// control character, a repeated claim or a repeated header member each get 401 naming the
/// claim, while ids like `org/alice` and `alice/bot` work.
#[tokio::test]
async fn bad_ids_and_repeated_claims_get_401_naming_the_claim() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let token_for = |tenant: &'static str| {
        gateway.token(&TokenSpec {
            tenant: Some(tenant),
            ..analyst("acme", "alice", "drafting-agent")
        })
    };
    let now = jsonwebtoken::get_current_timestamp();
    let payload = |tenant_members: &str, act: &str| {
        format!(
            r#"{{"iss":"{HS_ISSUER}","aud":"{aud}","sub":"alice","iat":{now},"exp":{exp},{tenant_members},"roles":["analyst"],"act":{act}}}"#,
            aud = gateway.url,
            exp = now + 600,
        )
    };
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let cases = [
        (
            "tenant with a trailing space",
            token_for("acme "),
            "`tenant`",
        ),
        ("tenant with a NUL", token_for("ac\u{0}me"), "`tenant`"),
        (
            "tenant twice",
            signed_as_written(
                header,
                &payload(
                    r#""tenant":"globex","tenant":"acme""#,
                    r#"{"sub":"drafting-agent"}"#,
                ),
            ),
            "`tenant` more than once",
        ),
        (
            "agent twice in act",
            signed_as_written(
                header,
                &payload(
                    r#""tenant":"acme""#,
                    r#"{"sub":"drafting-agent","sub":"approval-agent"}"#,
                ),
            ),
            "`act.sub` more than once",
        ),
        (
            "alg twice in the header",
            signed_as_written(
                r#"{"alg":"none","alg":"HS256","typ":"JWT"}"#,
                &payload(r#""tenant":"acme""#, r#"{"sub":"drafting-agent"}"#),
            ),
            "header names the member `alg`",
        ),
    ];
    for (name, token, reason) in &cases {
        let response = post_initialize(&gateway.url, Some(token)).await;
        assert_eq!(response.status(), 401, "{name}");
        let body: Value = response.json().await.expect("json body");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(reason), "{name}: {description}");
    }
    assert!(gateway.journal_entries().is_empty());

    // The same token shapes with good values pass: the hand-built one, and slash ids.
    let fine = signed_as_written(
        header,
        &payload(r#""tenant":"acme""#, r#"{"sub":"drafting-agent"}"#),
    );
    assert_eq!(
        post_initialize(&gateway.url, Some(&fine)).await.status(),
        200
    );
    let mut slash_claims = claims(&analyst("acme", "org/alice", "alice/bot"), &gateway.url);
    slash_claims.insert(
        "act".into(),
        json!({"sub": "alice/bot", "agent_role": "drafting-agent"}),
    );
    let client = gateway
        .client(&sign_hs256(&slash_claims, TEST_SECRET.as_bytes()))
        .await;
    assert!(!tool_names(&client).await.is_empty());
}
