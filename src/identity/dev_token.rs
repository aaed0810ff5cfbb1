//! Dev tokens (`capgate token`): HS256 tokens for issuers marked `dev = true`, and for no other.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};

use crate::config::{IssuerConfig, IssuerKey};

use super::keys::{read_or_create_secret, KeyError};

/// What a dev token should say; see `capgate token`.
#[derive(Debug, Clone)]
pub struct DevTokenRequest {
    pub user: String,
    pub tenant: String,
    pub roles: Vec<String>,
    pub agent: Option<String>,
    pub agent_role: Option<String>,
    pub service: Option<String>,
    pub run_id: Option<String>,
    pub ttl_seconds: u64,
}

/// Mints an HS256 token for a dev issuer. Refuses any issuer not marked `dev = true`.
pub fn mint_dev_token(
    issuer: &IssuerConfig,
    request: &DevTokenRequest,
) -> Result<String, KeyError> {
    let err = |problem: String| KeyError {
        issuer: issuer.issuer.clone(),
        problem,
    };
    if !issuer.dev {
        return Err(err(
            "not a dev issuer; capgate mints tokens only for issuers marked dev = true".into(),
        ));
    }
    let secret = match &issuer.key {
        IssuerKey::SecretFile { path, generate } => {
            read_or_create_secret(path, *generate).map_err(err)?
        }
        IssuerKey::SecretEnv(var) => std::env::var(var)
            .map_err(|_| err(format!("environment variable {var} is not set")))?
            .into_bytes(),
        IssuerKey::PublicKeyFile(_) | IssuerKey::JwksFile(_) | IssuerKey::Remote(_) => {
            return Err(err("dev tokens need an HS256 secret".into()))
        }
    };
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = Map::new();
    claims.insert("iss".into(), issuer.issuer.clone().into());
    claims.insert("aud".into(), issuer.audience.clone().into());
    claims.insert("sub".into(), request.user.clone().into());
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), (now + request.ttl_seconds).into());
    claims.insert(issuer.claims.tenant.clone(), request.tenant.clone().into());
    claims.insert(issuer.claims.roles.clone(), request.roles.clone().into());
    claims.insert("dev_only".into(), true.into());
    if let Some(agent) = &request.agent {
        let mut act = Map::new();
        act.insert("sub".into(), agent.clone().into());
        if let Some(role) = &request.agent_role {
            act.insert(issuer.claims.agent_role.clone(), role.clone().into());
        }
        claims.insert("act".into(), Value::Object(act));
    }
    if let Some(service) = &request.service {
        claims.insert("azp".into(), service.clone().into());
    }
    if let Some(run_id) = &request.run_id {
        claims.insert(issuer.claims.run_id.clone(), run_id.clone().into());
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret),
    )
    .map_err(|e| err(format!("cannot sign: {e}")))
}
