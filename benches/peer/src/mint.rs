//! Tokens for the RS256 paths: signed with the test key pair of `tests/fixtures/` (the same
//! key is published there as a JWKS with kid `test-key-1`). HS256 tokens come from capgate's
//! own `capgate token` and its dev issuer.

use std::path::Path;

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

pub struct Claims<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub user: &'a str,
    pub tenant: &'a str,
    pub roles: Vec<&'a str>,
    pub agent: Option<&'a str>,
    pub ttl_seconds: u64,
}

pub fn rs256(key_pem: &Path, kid: Option<&str>, claims: &Claims) -> anyhow::Result<String> {
    let pem =
        std::fs::read(key_pem).with_context(|| format!("cannot read {}", key_pem.display()))?;
    let key = EncodingKey::from_rsa_pem(&pem).context("not an RSA private key in PEM")?;
    let now = jsonwebtoken::get_current_timestamp();
    let mut payload = json!({
        "iss": claims.issuer,
        "aud": claims.audience,
        "sub": claims.user,
        "iat": now,
        "nbf": now.saturating_sub(5),
        "exp": now + claims.ttl_seconds,
        "tenant": claims.tenant,
        "roles": claims.roles,
    });
    if let Some(agent) = claims.agent {
        payload["act"] = json!({"sub": agent});
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    Ok(jsonwebtoken::encode(&header, &payload, &key)?)
}
