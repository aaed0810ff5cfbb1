//! JWKS documents (`jwks_file` of an issuer): arbitrary key sets loaded as at start, then
//! tokens naming each of their `kid`s, signed with each test key, authenticated against them.
//! (A JWKS comes from an identity provider, and a key in it that capgate accepts at start must
//! not make a later request fail in a way other than a refusal.)
//!
//! Invariants: no panic, at start or on any token; a token authenticates only when the key its
//! `kid` names is the public half of the key that signed it.

#![no_main]

use std::path::Path;

use capgate::config::GatewayConfig;
use capgate::identity::Authenticator;
use capgate_fuzz::decision_log::scratch;
use capgate_fuzz::tokens::{self, Signer, AUDIENCE};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const ISSUER: &str = "https://jwks-fuzz.capgate.local";

fuzz_target!(|data: &[u8]| {
    let Ok(set) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let path = scratch("jwks.json");
    std::fs::write(&path, data).expect("scratch file");
    let kids: Vec<String> = set["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kid"].as_str().map(str::to_string))
        .take(4)
        .collect();
    for (algorithm, signers) in [
        ("RS256", &[Signer::Rs][..]),
        ("ES256", &[Signer::Es, Signer::EsOther][..]),
        ("EdDSA", &[Signer::Ed, Signer::EdOther][..]),
    ] {
        let text = format!(
            "capabilities_dir = \"c\"\npolicies_dir = \"p\"\ndata_dir = \"d\"\n[server]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"{AUDIENCE}\"\n[[issuers]]\nissuer = \"{ISSUER}\"\nalgorithm = \"{algorithm}\"\njwks_file = \"{}\"\n",
            path.display()
        );
        let config = GatewayConfig::parse(&text, "<fuzz>", Path::new("/")).expect("valid config");
        let Ok(auth) = Authenticator::from_config(&config) else {
            continue;
        };
        for kid in &kids {
            for signer in signers {
                let token = tokens::sign(
                    *signer,
                    &json!({"alg": algorithm, "kid": kid}),
                    &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "tenant": "acme",
                            "exp": 4102444800u64}),
                );
                let header = format!("Bearer {token}");
                let outcome = capgate_fuzz::runtime().block_on(auth.authenticate_header(Some(&header)));
                if outcome.is_ok() {
                    assert!(
                        !matches!(signer, Signer::EsOther | Signer::EdOther),
                        "a key no JWKS holds signed an accepted token"
                    );
                }
            }
        }
    }
});
