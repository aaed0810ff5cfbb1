//! Authentication only: a bearer JWT becomes a [`CompositeActor`], or a 401.
//!
//! Each issuer is pinned to one algorithm and one key source; the token's audience must be
//! capgate's own resource URL; `exp` and `nbf` are checked with a small leeway. What the actor
//! may *do* is decided elsewhere (`policy`): this module only says *who* is asking.
//! It also renders the RFC 9728 protected-resource metadata that a 401 points to.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{ClaimMapping, GatewayConfig, IssuerConfig, IssuerKey, PinnedAlgorithm};

/// The human on whose behalf the request runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserIdentity {
    pub id: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

/// The LLM agent that acts for the user (RFC 8693 `act`, or a configured claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentIdentity {
    pub id: String,
    pub role: String,
}

/// Everyone behind one request: user, agent, runtime service and tenant, with the delegation
/// chain (outermost first: the user, then each actor that was delegated to) kept for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompositeActor {
    pub issuer: String,
    pub user: UserIdentity,
    pub agent: Option<AgentIdentity>,
    pub service: Option<String>,
    pub tenant: String,
    pub run_id: Option<String>,
    pub delegation_chain: Vec<String>,
}

/// Why a token was refused. Every variant becomes HTTP 401 with `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was presented")]
    MissingToken,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the token's issuer `{0}` is not trusted")]
    UnknownIssuer(String),
    #[error("the token is signed with {found}, but its issuer is pinned to {pinned}")]
    AlgorithmNotAllowed { found: String, pinned: String },
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was not issued for this gateway (audience mismatch)")]
    WrongAudience,
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(String),
    #[error("the token's claim `{0}` has the wrong type")]
    InvalidClaim(String),
    #[error("no key matches the token's key id")]
    UnknownKey,
}

impl AuthError {
    /// The RFC 6750 error code for `WWW-Authenticate` (absent when no token was sent).
    pub fn oauth_error_code(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken => None,
            AuthError::Malformed(_)
            | AuthError::UnknownIssuer(_)
            | AuthError::AlgorithmNotAllowed { .. }
            | AuthError::BadSignature
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::WrongAudience
            | AuthError::MissingClaim(_)
            | AuthError::InvalidClaim(_)
            | AuthError::UnknownKey => Some("invalid_token"),
        }
    }
}

/// A startup problem with an issuer's key material.
#[derive(Debug, thiserror::Error)]
#[error("issuer `{issuer}`: {problem}")]
pub struct KeyError {
    pub issuer: String,
    pub problem: String,
}

enum VerificationKeys {
    Single(DecodingKey),
    ByKeyId(HashMap<String, DecodingKey>),
}

struct IssuerVerifier {
    algorithm: Algorithm,
    keys: VerificationKeys,
    validation: Validation,
    claims: ClaimMapping,
}

/// Verifies bearer tokens against the configured issuers.
pub struct Authenticator {
    issuers: HashMap<String, IssuerVerifier>,
    resource_metadata_url: String,
}

impl Authenticator {
    /// Loads every issuer's key; a missing or unreadable key refuses start.
    pub fn from_config(config: &GatewayConfig) -> Result<Self, KeyError> {
        let mut issuers = HashMap::new();
        for issuer in &config.issuers {
            issuers.insert(issuer.issuer.clone(), IssuerVerifier::load(issuer)?);
        }
        Ok(Self {
            issuers,
            resource_metadata_url: config.resource_metadata_url(),
        })
    }

    pub fn resource_metadata_url(&self) -> &str {
        &self.resource_metadata_url
    }

    /// Verifies a token and builds the composite actor from its claims.
    pub fn authenticate(&self, token: &str) -> Result<CompositeActor, AuthError> {
        let header_alg = header_algorithm(token)?;
        let issuer = unverified_issuer(token)?;
        let verifier = self
            .issuers
            .get(&issuer)
            .ok_or_else(|| AuthError::UnknownIssuer(issuer.clone()))?;
        if header_alg != algorithm_name(verifier.algorithm) {
            return Err(AuthError::AlgorithmNotAllowed {
                found: header_alg,
                pinned: algorithm_name(verifier.algorithm).into(),
            });
        }
        let key = match &verifier.keys {
            VerificationKeys::Single(key) => key,
            VerificationKeys::ByKeyId(keys) => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|e| AuthError::Malformed(e.to_string()))?;
                header
                    .kid
                    .as_deref()
                    .and_then(|kid| keys.get(kid))
                    .ok_or(AuthError::UnknownKey)?
            }
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &verifier.validation)
            .map_err(map_jwt_error)?;
        actor_from_claims(&issuer, &data.claims, &verifier.claims)
    }

    /// Reads a request's `Authorization` header value and authenticates it.
    pub fn authenticate_header(&self, header: Option<&str>) -> Result<CompositeActor, AuthError> {
        let value = header.ok_or(AuthError::MissingToken)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::MissingToken)?;
        self.authenticate(token)
    }

    /// The `WWW-Authenticate` header value for a refusal.
    pub fn challenge(&self, error: &AuthError) -> String {
        match error.oauth_error_code() {
            None => format!(
                "Bearer resource_metadata=\"{}\"",
                self.resource_metadata_url
            ),
            Some(code) => format!(
                "Bearer resource_metadata=\"{}\", error=\"{code}\", error_description=\"{}\"",
                self.resource_metadata_url,
                error.to_string().replace('"', "'")
            ),
        }
    }
}

/// The RFC 9728 protected-resource metadata document for the MCP endpoint.
pub fn protected_resource_metadata(config: &GatewayConfig) -> Value {
    serde_json::json!({
        "resource": config.server.public_url,
        "authorization_servers": config.issuers.iter().map(|i| i.issuer.clone()).collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "resource_name": "capgate",
    })
}

impl IssuerVerifier {
    fn load(issuer: &IssuerConfig) -> Result<Self, KeyError> {
        let err = |problem: String| KeyError {
            issuer: issuer.issuer.clone(),
            problem,
        };
        let algorithm = jwt_algorithm(issuer.algorithm);
        let keys = match &issuer.key {
            IssuerKey::SecretEnv(var) => {
                let secret = std::env::var(var).map_err(|_| {
                    err(format!(
                        "environment variable {var} is not set; export the HS256 secret in it"
                    ))
                })?;
                VerificationKeys::Single(DecodingKey::from_secret(
                    check_secret_strength(secret.as_bytes()).map_err(err)?,
                ))
            }
            IssuerKey::SecretFile { path, generate } => {
                let secret = read_or_create_secret(path, *generate).map_err(err)?;
                VerificationKeys::Single(DecodingKey::from_secret(
                    check_secret_strength(&secret).map_err(err)?,
                ))
            }
            IssuerKey::PublicKeyFile(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
                let key = match issuer.algorithm {
                    PinnedAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                    PinnedAlgorithm::ES256 => DecodingKey::from_ec_pem(&pem),
                    PinnedAlgorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    PinnedAlgorithm::HS256 => {
                        return Err(err("HS256 cannot use a public key file".into()))
                    }
                }
                .map_err(|e| err(format!("{}: not a usable PEM key: {e}", path.display())))?;
                VerificationKeys::Single(key)
            }
            IssuerKey::JwksFile(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
                let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
                    .map_err(|e| err(format!("{}: not a JWKS document: {e}", path.display())))?;
                let mut keys = HashMap::new();
                for jwk in &set.keys {
                    let Some(kid) = jwk.common.key_id.clone() else {
                        return Err(err(format!("{}: a key has no `kid`", path.display())));
                    };
                    let key = DecodingKey::from_jwk(jwk)
                        .map_err(|e| err(format!("{}: key `{kid}`: {e}", path.display())))?;
                    keys.insert(kid, key);
                }
                if keys.is_empty() {
                    return Err(err(format!("{}: the JWKS holds no keys", path.display())));
                }
                VerificationKeys::ByKeyId(keys)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[issuer.audience.as_str()]);
        validation.set_issuer(&[issuer.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = issuer.leeway.as_secs();
        Ok(Self {
            algorithm,
            keys,
            validation,
            claims: issuer.claims.clone(),
        })
    }
}

fn check_secret_strength(secret: &[u8]) -> Result<&[u8], String> {
    if secret.len() < 32 {
        return Err(format!(
            "the HS256 secret is {} bytes; use at least 32 random bytes",
            secret.len()
        ));
    }
    Ok(secret)
}

/// Reads an HS256 secret file, creating a random one when allowed (dev issuers).
pub fn read_or_create_secret(path: &Path, generate: bool) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(trim_ascii(&bytes).to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            let secret = hex::encode(bytes);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::fs::write(path, &secret)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(secret.into_bytes())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn jwt_algorithm(pinned: PinnedAlgorithm) -> Algorithm {
    match pinned {
        PinnedAlgorithm::HS256 => Algorithm::HS256,
        PinnedAlgorithm::RS256 => Algorithm::RS256,
        PinnedAlgorithm::ES256 => Algorithm::ES256,
        PinnedAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

fn decode_segment(token: &str, index: usize) -> Result<Map<String, Value>, AuthError> {
    let segment = token
        .split('.')
        .nth(index)
        .ok_or_else(|| AuthError::Malformed("expected three dot-separated parts".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("a part is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("a part is not JSON".into()))
}

/// The header's `alg`, read before any verification so that `none` and unknown algorithms
/// are named in the refusal instead of failing as a parse error.
fn header_algorithm(token: &str) -> Result<String, AuthError> {
    if token.split('.').count() != 3 {
        return Err(AuthError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    }
    let header = decode_segment(token, 0)?;
    match header.get("alg") {
        Some(Value::String(alg)) => Ok(alg.clone()),
        _ => Err(AuthError::Malformed("the header has no `alg`".into())),
    }
}

/// The `iss` claim, read unverified only to choose which pinned key verifies the token.
fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    match decode_segment(token, 1)?.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        Some(_) => Err(AuthError::InvalidClaim("iss".into())),
        None => Err(AuthError::MissingClaim("iss".into())),
    }
}

fn map_jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::UnknownIssuer("(mismatch)".into()),
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed {
            found: "(other)".into(),
            pinned: "(issuer's)".into(),
        },
        other => AuthError::Malformed(format!("{other:?}")),
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::InvalidClaim(name.into())),
    }
}

/// A list claim given as a JSON array of strings or a space-delimited string (OAuth `scope`).
fn list_claim(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(AuthError::InvalidClaim(name.into())),
            })
            .collect(),
        Some(_) => Err(AuthError::InvalidClaim(name.into())),
    }
}

fn actor_from_claims(
    issuer: &str,
    claims: &Map<String, Value>,
    mapping: &ClaimMapping,
) -> Result<CompositeActor, AuthError> {
    let user_id =
        string_claim(claims, "sub")?.ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
    let tenant = string_claim(claims, &mapping.tenant)?
        .ok_or_else(|| AuthError::MissingClaim(mapping.tenant.clone()))?;
    let mut delegation_chain = vec![user_id.clone()];

    let agent = if mapping.agent == "act" {
        match claims.get("act") {
            None | Some(Value::Null) => None,
            Some(Value::Object(act)) => {
                // RFC 8693: the outermost `act` is the current actor; nested ones are prior actors.
                let id = string_claim(act, "sub")?
                    .ok_or_else(|| AuthError::MissingClaim("act.sub".into()))?;
                let mut prior = Vec::new();
                let mut nested = act.get("act");
                while let Some(Value::Object(inner)) = nested {
                    if let Some(sub) = string_claim(inner, "sub")? {
                        prior.push(sub);
                    }
                    nested = inner.get("act");
                }
                delegation_chain.extend(prior.into_iter().rev());
                delegation_chain.push(id.clone());
                let role = string_claim(act, &mapping.agent_role)?.unwrap_or_else(|| id.clone());
                Some(AgentIdentity { id, role })
            }
            Some(_) => return Err(AuthError::InvalidClaim("act".into())),
        }
    } else {
        match string_claim(claims, &mapping.agent)? {
            None => None,
            Some(id) => {
                delegation_chain.push(id.clone());
                let role = string_claim(claims, &mapping.agent_role)?.unwrap_or_else(|| id.clone());
                Some(AgentIdentity { id, role })
            }
        }
    };

    let service = match string_claim(claims, "azp")? {
        Some(azp) => Some(azp),
        None => string_claim(claims, "client_id")?,
    };

    Ok(CompositeActor {
        issuer: issuer.to_string(),
        user: UserIdentity {
            id: user_id,
            roles: list_claim(claims, &mapping.roles)?,
            scopes: list_claim(claims, &mapping.scope)?,
        },
        agent,
        service,
        tenant,
        run_id: string_claim(claims, &mapping.run_id)?,
        delegation_chain,
    })
}

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
        IssuerKey::PublicKeyFile(_) | IssuerKey::JwksFile(_) => {
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

/// Shared handle to an actor, as stored in HTTP request extensions.
pub type ActorRef = Arc<CompositeActor>;

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn nested_act_builds_the_delegation_chain() {
        let c = claims(serde_json::json!({
            "sub": "alice", "tenant": "acme", "roles": ["analyst"], "scope": "cases.read cases.write",
            "act": {"sub": "drafting-agent", "act": {"sub": "supervisor-agent"}},
            "azp": "agent-runtime", "run_id": "run-1"
        }));
        let actor = actor_from_claims("iss", &c, &ClaimMapping::default()).expect("valid");
        assert_eq!(
            actor.delegation_chain,
            vec!["alice", "supervisor-agent", "drafting-agent"]
        );
        assert_eq!(
            actor.agent.as_ref().map(|a| a.role.as_str()),
            Some("drafting-agent")
        );
        assert_eq!(actor.user.scopes, vec!["cases.read", "cases.write"]);
        assert_eq!(actor.service.as_deref(), Some("agent-runtime"));
    }

    #[test]
    fn tenant_is_required() {
        let c = claims(serde_json::json!({"sub": "alice"}));
        assert_eq!(
            actor_from_claims("iss", &c, &ClaimMapping::default()),
            Err(AuthError::MissingClaim("tenant".into()))
        );
    }

    #[test]
    fn malformed_act_is_refused() {
        let c = claims(serde_json::json!({"sub": "alice", "tenant": "t", "act": "x"}));
        assert_eq!(
            actor_from_claims("iss", &c, &ClaimMapping::default()),
            Err(AuthError::InvalidClaim("act".into()))
        );
    }
}
