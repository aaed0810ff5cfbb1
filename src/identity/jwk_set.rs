//! Which keys of a JWKS document an issuer may use. A key is taken only when it has a `kid`,
//! its type fits the issuer's pinned algorithm (RSA for RS256, P-256 for ES256, Ed25519 for
//! EdDSA; never a shared secret), the `alg` it declares (if any) *is* that algorithm, and its
//! `use`/`key_ops` (if any) allow verifying signatures. Everything else is skipped with a
//! reason: a file on disk with such a key is refused at start, a fetched set is used without it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::config::PinnedAlgorithm;

/// More keys than this in one set is refused: providers publish a handful.
pub(super) const MAX_KEYS: usize = 64;

/// The keys of a set an issuer may use, by `kid`, and why the others were skipped.
pub(super) struct UsableKeys {
    pub keys: HashMap<String, Arc<DecodingKey>>,
    pub skipped: Vec<String>,
}

/// `{"keys": [...]}`, each key read on its own, so that one key of a type this crate cannot
/// read does not make the whole set unreadable.
#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// Reads a JWKS document and keeps the keys `pinned` may use.
pub(super) fn usable_keys(document: &[u8], pinned: PinnedAlgorithm) -> Result<UsableKeys, String> {
    let document: Document =
        serde_json::from_slice(document).map_err(|e| format!("not a JWKS document: {e}"))?;
    if document.keys.len() > MAX_KEYS {
        return Err(format!(
            "the set holds {} keys; more than {MAX_KEYS} is refused",
            document.keys.len()
        ));
    }
    let mut keys = HashMap::new();
    let mut skipped = Vec::new();
    let mut repeated = HashSet::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                skipped.push(format!("key #{index} is not a JWK capgate reads: {e}"));
                continue;
            }
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            skipped.push(format!("key #{index} has no `kid`"));
            continue;
        };
        if let Err(reason) = fits(&jwk, pinned) {
            skipped.push(format!("key `{kid}` {reason}"));
            continue;
        }
        let key = match DecodingKey::from_jwk(&jwk) {
            Ok(key) => key,
            Err(e) => {
                skipped.push(format!("key `{kid}` is not a usable key: {e}"));
                continue;
            }
        };
        if keys.insert(kid.clone(), Arc::new(key)).is_some() {
            repeated.insert(kid);
        }
    }
    // Two keys under one `kid`: which one a token means is not knowable, so neither is used.
    for kid in repeated {
        keys.remove(&kid);
        skipped.push(format!("key id `{kid}` names more than one key"));
    }
    Ok(UsableKeys { keys, skipped })
}

/// Why `jwk` may not verify tokens of an issuer pinned to `pinned`, if it may not.
fn fits(jwk: &Jwk, pinned: PinnedAlgorithm) -> Result<(), String> {
    let kind_fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => pinned == PinnedAlgorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => {
            pinned == PinnedAlgorithm::ES256 && ec.curve == EllipticCurve::P256
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            pinned == PinnedAlgorithm::EdDSA && okp.curve == EllipticCurve::Ed25519
        }
        // A shared secret is never taken from a key set.
        AlgorithmParameters::OctetKey(_) => false,
    };
    if !kind_fits {
        return Err(format!("is not a key for {pinned:?}"));
    }
    if let Some(declared) = jwk.common.key_algorithm {
        if declared != key_algorithm(pinned) {
            return Err(format!(
                "is declared for {declared:?}; the issuer is pinned to {pinned:?}"
            ));
        }
    }
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_)) => {
            return Err("is not a signature key (`use`)".into())
        }
    }
    if let Some(operations) = &jwk.common.key_operations {
        if !operations.contains(&KeyOperations::Verify) {
            return Err("does not allow `verify` (`key_ops`)".into());
        }
    }
    Ok(())
}

fn key_algorithm(pinned: PinnedAlgorithm) -> KeyAlgorithm {
    match pinned {
        PinnedAlgorithm::HS256 => KeyAlgorithm::HS256,
        PinnedAlgorithm::RS256 => KeyAlgorithm::RS256,
        PinnedAlgorithm::ES256 => KeyAlgorithm::ES256,
        PinnedAlgorithm::EdDSA => KeyAlgorithm::EdDSA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn fixture_jwk() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-jwks.json");
        let set: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        set["keys"][0].clone()
    }

    fn with(mut jwk: Value, changes: Value) -> Value {
        for (name, value) in changes.as_object().expect("object") {
            if value.is_null() {
                jwk.as_object_mut().expect("object").remove(name);
            } else {
                jwk[name] = value.clone();
            }
        }
        jwk
    }

    fn kids(keys: &[Value], pinned: PinnedAlgorithm) -> Vec<String> {
        let document = serde_json::to_vec(&json!({ "keys": keys })).expect("json");
        let mut kids: Vec<String> = usable_keys(&document, pinned)
            .expect("a set")
            .keys
            .into_keys()
            .collect();
        kids.sort();
        kids
    }

    #[test]
    fn only_keys_for_the_pinned_algorithm_and_for_signatures_are_kept() {
        let rsa = fixture_jwk();
        let keys = vec![
            with(rsa.clone(), json!({"kid": "good"})),
            with(
                rsa.clone(),
                json!({"kid": "no-alg", "alg": null, "use": null}),
            ),
            with(rsa.clone(), json!({"kid": "rs512", "alg": "RS512"})),
            with(rsa.clone(), json!({"kid": "ps256", "alg": "PS256"})),
            with(rsa.clone(), json!({"kid": "enc", "use": "enc"})),
            with(
                rsa.clone(),
                json!({"kid": "sign-only", "key_ops": ["sign"]}),
            ),
            with(rsa.clone(), json!({"kid": "verify", "key_ops": ["verify"]})),
            with(rsa.clone(), json!({"kid": null})),
            json!({"kty": "oct", "kid": "secret", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}),
            json!({"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"}),
            json!({"kty": "unheard-of", "kid": "strange"}),
        ];
        assert_eq!(
            kids(&keys, PinnedAlgorithm::RS256),
            ["good", "no-alg", "verify"]
        );
        // The same RSA keys are none of an ES256 or EdDSA issuer's.
        assert!(kids(&keys, PinnedAlgorithm::ES256).is_empty());
        assert!(kids(&keys, PinnedAlgorithm::EdDSA).is_empty());
        assert!(kids(&keys, PinnedAlgorithm::HS256).is_empty());
    }

    #[test]
    fn a_repeated_kid_is_used_for_neither_key() {
        let rsa = fixture_jwk();
        let keys = vec![
            with(rsa.clone(), json!({"kid": "twice"})),
            with(rsa.clone(), json!({"kid": "twice"})),
            with(rsa, json!({"kid": "once"})),
        ];
        assert_eq!(kids(&keys, PinnedAlgorithm::RS256), ["once"]);
    }

    #[test]
    fn documents_that_are_not_key_sets_or_too_large_are_refused() {
        for document in [&b"not json"[..], b"{}", b"{\"keys\": 3}"] {
            assert!(usable_keys(document, PinnedAlgorithm::RS256).is_err());
        }
        let many = json!({ "keys": vec![fixture_jwk(); MAX_KEYS + 1] });
        let e = usable_keys(
            &serde_json::to_vec(&many).expect("json"),
            PinnedAlgorithm::RS256,
        )
        .err()
        .expect("too many keys");
        assert!(e.contains("more than"), "{e}");
    }
}
