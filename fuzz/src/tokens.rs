//! The issuers the fuzz targets authenticate against, one per key type capgate supports (an
//! HS256 secret, RS256, ES256 and EdDSA PEM keys, an RS256 JWKS picked by `kid`, and an HS256
//! issuer with a custom claim mapping), with the test keys of `tests/fixtures/`; and tokens
//! signed with those keys (or with keys no issuer trusts).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use capgate::config::GatewayConfig;
use capgate::identity::Authenticator;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

/// The HS256 issuers' secret (test-only: it protects nothing).
pub const HS_SECRET: &str = "capgate-fuzz-only-secret-0123456789abcdef";
/// The environment variable the HS256 issuers read it from.
pub const HS_SECRET_ENV: &str = "CAPGATE_FUZZ_SECRET";

pub const HS_ISSUER: &str = "https://hs.fuzz.capgate.local";
pub const RS_ISSUER: &str = "https://rs.fuzz.capgate.local";
pub const ES_ISSUER: &str = "https://es.fuzz.capgate.local";
pub const ED_ISSUER: &str = "https://ed.fuzz.capgate.local";
pub const JWKS_ISSUER: &str = "https://jwks.fuzz.capgate.local";
/// HS256, with the agent in a plain `agent` claim instead of `act` and custom claim names.
pub const MAPPED_ISSUER: &str = "https://mapped.fuzz.capgate.local";
/// The kid of the JWKS issuer's one key.
pub const JWKS_KID: &str = "test-key-1";

/// The audience every issuer expects (the endpoint's public URL).
pub const AUDIENCE: &str = "http://127.0.0.1:8080/mcp";

/// Every configured issuer.
pub const ISSUERS: [&str; 6] = [
    HS_ISSUER,
    RS_ISSUER,
    ES_ISSUER,
    ED_ISSUER,
    JWKS_ISSUER,
    MAPPED_ISSUER,
];

/// The key a token is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, arbitrary::Arbitrary)]
pub enum Signer {
    /// The HS256 issuers' secret.
    Hs,
    /// Another HS256 secret no issuer trusts.
    HsOther,
    /// HMAC with the RS256 issuer's *public* key as the secret: the algorithm-confusion attack.
    HsWithRsPublicKey,
    Rs,
    Es,
    /// An ES256 key no issuer trusts.
    EsOther,
    Ed,
    /// An Ed25519 key no issuer trusts.
    EdOther,
    /// No signature at all (`alg: none`).
    Unsigned,
}

impl Signer {
    /// The algorithm the signature is made with.
    pub fn algorithm(self) -> Option<Algorithm> {
        match self {
            Signer::Hs | Signer::HsOther | Signer::HsWithRsPublicKey => Some(Algorithm::HS256),
            Signer::Rs => Some(Algorithm::RS256),
            Signer::Es | Signer::EsOther => Some(Algorithm::ES256),
            Signer::Ed | Signer::EdOther => Some(Algorithm::EdDSA),
            Signer::Unsigned => None,
        }
    }

    /// The issuers that trust this key (and so may accept what it signs).
    pub fn trusted_by(self) -> &'static [&'static str] {
        match self {
            Signer::Hs => &[HS_ISSUER, MAPPED_ISSUER],
            Signer::Rs => &[RS_ISSUER, JWKS_ISSUER],
            Signer::Es => &[ES_ISSUER],
            Signer::Ed => &[ED_ISSUER],
            Signer::HsOther
            | Signer::HsWithRsPublicKey
            | Signer::EsOther
            | Signer::EdOther
            | Signer::Unsigned => &[],
        }
    }
}

/// The algorithm name an issuer is pinned to.
pub fn pinned_algorithm(issuer: &str) -> Option<&'static str> {
    match issuer {
        HS_ISSUER | MAPPED_ISSUER => Some("HS256"),
        RS_ISSUER | JWKS_ISSUER => Some("RS256"),
        ES_ISSUER => Some("ES256"),
        ED_ISSUER => Some("EdDSA"),
        _ => None,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = crate::repo().join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn keys() -> &'static [(Signer, EncodingKey)] {
    static KEYS: OnceLock<Vec<(Signer, EncodingKey)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rs_private = fixture("test-rs256-private.pem");
        let es_private = fixture("test-es256-private.pem");
        let es_other = fixture("test-es256-other-private.pem");
        let ed_private = fixture("test-eddsa-private.pem");
        // An Ed25519 key of our own (PKCS#8 v1 of a fixed seed): no issuer trusts it.
        let ed_other = {
            let mut der = vec![
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04,
                0x22, 0x04, 0x20,
            ];
            der.extend_from_slice(&[7u8; 32]);
            EncodingKey::from_ed_der(&der)
        };
        vec![
            (Signer::Hs, EncodingKey::from_secret(HS_SECRET.as_bytes())),
            (
                Signer::HsOther,
                EncodingKey::from_secret(b"another-secret-no-issuer-trusts-at-all"),
            ),
            (
                Signer::HsWithRsPublicKey,
                EncodingKey::from_secret(&fixture("test-rs256-public.pem")),
            ),
            (
                Signer::Rs,
                EncodingKey::from_rsa_pem(&rs_private).expect("the RS256 test key"),
            ),
            (
                Signer::Es,
                EncodingKey::from_ec_pem(&es_private).expect("the ES256 test key"),
            ),
            (
                Signer::EsOther,
                EncodingKey::from_ec_pem(&es_other).expect("the other ES256 test key"),
            ),
            (
                Signer::Ed,
                EncodingKey::from_ed_pem(&ed_private).expect("the EdDSA test key"),
            ),
            (Signer::EdOther, ed_other),
        ]
    })
}

/// `header.payload.signature` with the given header and payload bytes (JSON or not), signed by
/// `signer` over exactly those bytes.
pub fn sign_raw(signer: Signer, header: &[u8], payload: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    // Signatures are kept: RSA and ECDSA signing cost far more than what is fuzzed, and the
    // same message is often signed again.
    static SIGNED: OnceLock<std::sync::Mutex<HashMap<(Signer, String), String>>> = OnceLock::new();
    let signed = SIGNED.get_or_init(Default::default);
    let cached = signed
        .lock()
        .ok()
        .and_then(|m| m.get(&(signer, message.clone())).cloned());
    let signature = match cached {
        Some(signature) => signature,
        None => {
            let signature = match (signer.algorithm(), keys().iter().find(|(s, _)| *s == signer)) {
                (Some(algorithm), Some((_, key))) => {
                    jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm)
                        .expect("the test keys sign")
                }
                _ => String::new(),
            };
            if let Ok(mut m) = signed.lock() {
                if m.len() > 4096 {
                    m.clear();
                }
                m.insert((signer, message.clone()), signature.clone());
            }
            signature
        }
    };
    format!("{message}.{signature}")
}

/// A token over JSON header and claims.
pub fn sign(signer: Signer, header: &Value, claims: &Value) -> String {
    sign_raw(
        signer,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A gateway configuration with every fuzz issuer (and `extra` appended, e.g. `[limits]`).
pub fn config_text(data_dir: &Path, extra: &str) -> String {
    let fixtures = crate::repo().join("tests/fixtures");
    let repo = crate::repo();
    format!(
        r#"
capabilities_dir = "{capabilities}"
policies_dir = "{policies}"
data_dir = "{data}"

[server]
listen = "127.0.0.1:8080"
public_url = "{AUDIENCE}"

[[issuers]]
issuer = "{HS_ISSUER}"
algorithm = "HS256"
secret_env = "{HS_SECRET_ENV}"

[[issuers]]
issuer = "{RS_ISSUER}"
algorithm = "RS256"
public_key_file = "{fixtures}/test-rs256-public.pem"

[[issuers]]
issuer = "{ES_ISSUER}"
algorithm = "ES256"
public_key_file = "{fixtures}/test-es256-public.pem"

[[issuers]]
issuer = "{ED_ISSUER}"
algorithm = "EdDSA"
public_key_file = "{fixtures}/test-eddsa-public.pem"

[[issuers]]
issuer = "{JWKS_ISSUER}"
algorithm = "RS256"
jwks_file = "{fixtures}/test-jwks.json"

[[issuers]]
issuer = "{MAPPED_ISSUER}"
algorithm = "HS256"
secret_env = "{HS_SECRET_ENV}"
claims = {{ tenant = "org", roles = "groups", scope = "scp", run_id = "run", agent = "agent", agent_role = "agent_kind" }}
{extra}
"#,
        capabilities = repo.join("capabilities").display(),
        policies = repo.join("policies").display(),
        data = data_dir.display(),
        fixtures = fixtures.display(),
    )
}

/// The configuration of [`config_text`], parsed (the secret put in the environment first).
pub fn config(data_dir: &Path, extra: &str) -> GatewayConfig {
    std::env::set_var(HS_SECRET_ENV, HS_SECRET);
    GatewayConfig::parse(&config_text(data_dir, extra), "<fuzz>", Path::new("/"))
        .expect("the fuzz configuration is valid")
}

/// An authenticator for every fuzz issuer, made once.
pub fn authenticator() -> &'static Arc<Authenticator> {
    static AUTH: OnceLock<Arc<Authenticator>> = OnceLock::new();
    AUTH.get_or_init(|| {
        let config = config(&std::env::temp_dir().join("capgate-fuzz-unused"), "");
        Arc::new(Authenticator::from_config(&config).expect("the fuzz issuers' keys load"))
    })
}

/// A token of the HS256 issuer for a person (roles) or an agent acting for them, valid for a
/// century.
pub fn person_token(user: &str, tenant: &str, roles: &[&str], agent: Option<&str>) -> String {
    let mut claims = serde_json::json!({
        "iss": HS_ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "tenant": tenant,
        "roles": roles,
        "iat": now(),
        "exp": now() + 100 * 365 * 24 * 3600,
    });
    if let Some(agent) = agent {
        claims["act"] = serde_json::json!({"sub": agent});
    }
    sign(
        Signer::Hs,
        &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
    )
}
