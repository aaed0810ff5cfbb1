//! Every issuer key source: ES256 and EdDSA public key files and an RS256 JWKS (kid selects the
//! key). Good tokens pass; a token signed by another key, or naming an unknown kid, gets 401.

use crate::common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const ES_ISSUER: &str = "https://es.capgate.local";
const ED_ISSUER: &str = "https://ed.capgate.local";
const JWKS_ISSUER: &str = "https://jwks.capgate.local";

fn sign(issuer: &str, audience: &str, header: Header, key: &EncodingKey) -> String {
    let mut claims = claims(&analyst("acme", "alice", "drafting-agent"), audience);
    claims.insert("iss".into(), issuer.into());
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture key")
}

#[tokio::test]
async fn es256_eddsa_and_jwks_issuers_verify_their_own_keys_only() {
    let issuers = format!(
        r#"
[[issuers]]
issuer = "{ES_ISSUER}"
algorithm = "ES256"
public_key_file = "{es}"

[[issuers]]
issuer = "{ED_ISSUER}"
algorithm = "EdDSA"
public_key_file = "{ed}"

[[issuers]]
issuer = "{JWKS_ISSUER}"
algorithm = "RS256"
jwks_file = "{jwks}"
"#,
        es = fixtures().join("test-es256-public.pem").display(),
        ed = fixtures().join("test-eddsa-public.pem").display(),
        jwks = fixtures().join("test-jwks.json").display(),
    );
    // The standard gateway but for the issuers.
    let gateway = TestGateway::start(GatewayOptions {
        issuers: Some(issuers),
        ..Default::default()
    })
    .await;
    let url = gateway.url.clone();
    let raw = Raw::new(&gateway);
    let status_for = |token: String| {
        let raw = &raw;
        async move { raw.initialize(&token).await.0 }
    };

    let es = EncodingKey::from_ec_pem(&pem("test-es256-private.pem")).expect("es key");
    let ed = EncodingKey::from_ed_pem(&pem("test-eddsa-private.pem")).expect("ed key");
    let rsa = EncodingKey::from_rsa_pem(&pem("test-rs256-private.pem")).expect("rsa key");
    let mut kid = Header::new(Algorithm::RS256);
    kid.kid = Some("test-key-1".into());
    let mut unknown_kid = Header::new(Algorithm::RS256);
    unknown_kid.kid = Some("rotated-away".into());

    assert_eq!(
        status_for(sign(ES_ISSUER, &url, Header::new(Algorithm::ES256), &es)).await,
        200
    );
    assert_eq!(
        status_for(sign(ED_ISSUER, &url, Header::new(Algorithm::EdDSA), &ed)).await,
        200
    );
    assert_eq!(
        status_for(sign(JWKS_ISSUER, &url, kid.clone(), &rsa)).await,
        200
    );

    // The ES issuer's name on an EdDSA signature: refused (pinned algorithm).
    assert_eq!(
        status_for(sign(ES_ISSUER, &url, Header::new(Algorithm::EdDSA), &ed)).await,
        401
    );
    // A JWKS token naming a kid that is not in the set, or none at all.
    assert_eq!(
        status_for(sign(JWKS_ISSUER, &url, unknown_kid, &rsa)).await,
        401
    );
    assert_eq!(
        status_for(sign(JWKS_ISSUER, &url, Header::new(Algorithm::RS256), &rsa)).await,
        401
    );
    // Another ES key than the configured one.
    let other =
        EncodingKey::from_ec_pem(&pem("test-es256-other-private.pem")).expect("another es key");
    assert_eq!(
        status_for(sign(ES_ISSUER, &url, Header::new(Algorithm::ES256), &other)).await,
        401
    );
}
