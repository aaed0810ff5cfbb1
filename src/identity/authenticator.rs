//! Token verification: the issuer named by the token's (unverified) `iss` chooses the pinned
//! algorithm and key; only then are the signature, audience, issuer, `exp` and `nbf` checked.
//! Whatever is read from a token before it verifies serves to pick the key and to name a
//! refusal, nothing else. A header or payload that names a member twice is refused before
//! either is read (`unique_members`). For an issuer whose keys are fetched by URL, an unknown
//! `kid` may make the verification wait for one bounded refresh (`remote_keys`).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::config::{ClaimMapping, GatewayConfig, IssuerConfig, PinnedAlgorithm};
use crate::metrics::Metrics;

use super::actor::CompositeActor;
use super::auth_error::{echoed, AuthError, TokenPart};
use super::claims::actor_from_claims;
use super::keys::{load_keys, KeyError, VerificationKeys};
use super::remote_keys::KeyLookup;
use super::unique_members::{check_unique_members, MemberCheck};
use super::verified::{PublishedKey, TokenDigest, Verified, VerifiedTokens};

/// One issuer as tokens are checked against it: its pinned algorithm, its key(s), the
/// audience, issuer and time checks, and where its claims carry the actor.
struct IssuerVerifier {
    algorithm: Algorithm,
    keys: VerificationKeys,
    validation: Validation,
    claims: ClaimMapping,
    leeway: u64,
}

/// Verifies bearer tokens against the configured issuers.
pub struct Authenticator {
    issuers: HashMap<String, IssuerVerifier>,
    resource_metadata_url: String,
    verified: VerifiedTokens,
}

impl Authenticator {
    /// Loads every issuer's key; a missing or unreadable key refuses start. Keys fetched by URL
    /// are fetched in the background (a provider that does not answer does not refuse start),
    /// so this must run inside the async runtime when an issuer has them.
    pub fn from_config(config: &GatewayConfig) -> Result<Self, KeyError> {
        Self::counted(config, &Arc::new(Metrics::default()))
    }

    /// As [`Authenticator::from_config`], counting the fetches of keys by URL in `metrics`
    /// (`capgate_key_fetches_total`).
    pub fn counted(config: &GatewayConfig, metrics: &Arc<Metrics>) -> Result<Self, KeyError> {
        let mut issuers = HashMap::new();
        for issuer in &config.issuers {
            issuers.insert(
                issuer.issuer.clone(),
                IssuerVerifier::load(issuer, metrics)?,
            );
        }
        Ok(Self {
            issuers,
            resource_metadata_url: config.resource_metadata_url(),
            verified: VerifiedTokens::new(),
        })
    }

    pub fn resource_metadata_url(&self) -> &str {
        &self.resource_metadata_url
    }

    /// Verifies a token and builds the composite actor from its claims. A token that verified
    /// before is trusted again while its time claims hold and its key stays in force.
    pub async fn authenticate(&self, token: &str) -> Result<CompositeActor, AuthError> {
        let digest = TokenDigest::of(token);
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(actor) = self.verified.trusted(&digest, now, |issuer, key| {
            self.still_published(issuer, key)
        }) {
            return Ok(actor);
        }
        let verified = self.verify(token).await?;
        let actor = verified.actor.clone();
        self.verified.remember(digest, verified);
        Ok(actor)
    }

    /// Whether a published key that verified a token of `issuer` is still the one its `kid`
    /// names there.
    fn still_published(&self, issuer: &str, published: &PublishedKey) -> bool {
        match self.issuers.get(issuer).map(|verifier| &verifier.keys) {
            Some(VerificationKeys::Remote(remote)) => remote
                .held(&published.kid)
                .is_some_and(|key| Arc::ptr_eq(&key, &published.key)),
            Some(VerificationKeys::Single(_) | VerificationKeys::ByKeyId(_)) | None => false,
        }
    }

    /// The full check: issuer, pinned algorithm, key, signature, audience, time claims.
    async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let header = unverified_header(token)?;
        let issuer = unverified_issuer(token)?;
        let verifier = self
            .issuers
            .get(&issuer)
            .ok_or_else(|| AuthError::UnknownIssuer(issuer.clone()))?;
        if header.alg != algorithm_name(verifier.algorithm) {
            return Err(AuthError::AlgorithmNotAllowed {
                found: header.alg,
                pinned: algorithm_name(verifier.algorithm).into(),
            });
        }
        let fetched;
        let mut published_key = None;
        let key = match &verifier.keys {
            VerificationKeys::Single(key) => key,
            VerificationKeys::ByKeyId(keys) => header
                .kid
                .as_deref()
                .and_then(|kid| keys.get(kid))
                .map(|key| &**key)
                .ok_or(AuthError::UnknownKey)?,
            VerificationKeys::Remote(remote) => {
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
                fetched = remote.key(kid).await.map_err(|lookup| match lookup {
                    KeyLookup::Unknown => AuthError::UnknownKey,
                    KeyLookup::NotYetFetched => AuthError::KeysUnavailable(issuer.clone()),
                })?;
                published_key = Some(PublishedKey {
                    kid: kid.to_string(),
                    key: fetched.clone(),
                });
                &*fetched
            }
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &verifier.validation)
            .map_err(map_jwt_error)?;
        let actor = actor_from_claims(&issuer, &data.claims, &verifier.claims)?;
        // Verification required `exp` as a whole number; `nbf` is one when present.
        let expires = data
            .claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| AuthError::InvalidClaim("exp".into()))?;
        let not_before = match data.claims.get("nbf") {
            None => None,
            Some(nbf) => Some(
                nbf.as_u64()
                    .ok_or_else(|| AuthError::InvalidClaim("nbf".into()))?,
            ),
        };
        Ok(Verified {
            actor,
            expires,
            not_before,
            leeway: verifier.leeway,
            published_key,
        })
    }

    /// Reads a request's `Authorization` header value and authenticates it.
    pub async fn authenticate_header(
        &self,
        header: Option<&str>,
    ) -> Result<CompositeActor, AuthError> {
        let value = header.ok_or(AuthError::MissingToken)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::MissingToken)?;
        self.authenticate(token).await
    }

    /// The state of every issuer whose keys are fetched by URL (for the health details):
    /// where from, which key ids, when fetched, the last failure.
    pub fn key_status(&self) -> Value {
        let mut issuers = Map::new();
        for (issuer, verifier) in &self.issuers {
            match &verifier.keys {
                VerificationKeys::Remote(remote) => {
                    issuers.insert(issuer.clone(), remote.status());
                }
                VerificationKeys::Single(_) | VerificationKeys::ByKeyId(_) => {}
            }
        }
        Value::Object(issuers)
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
    fn load(issuer: &IssuerConfig, metrics: &Arc<Metrics>) -> Result<Self, KeyError> {
        let algorithm = jwt_algorithm(issuer.algorithm);
        let keys = load_keys(issuer, metrics)?;
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
            leeway: issuer.leeway.as_secs(),
        })
    }
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

/// The header or payload as a JSON object; one naming a member twice is refused here, before
/// anything reads it.
fn decode_segment(token: &str, part: TokenPart) -> Result<Map<String, Value>, AuthError> {
    let index = match part {
        TokenPart::Header => 0,
        TokenPart::Payload => 1,
    };
    let segment = token
        .split('.')
        .nth(index)
        .ok_or_else(|| AuthError::Malformed("expected three dot-separated parts".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("a part is not base64url".into()))?;
    check_unique_members(&bytes).map_err(|check| match check {
        MemberCheck::Duplicate(member) => AuthError::DuplicateMember {
            part,
            member: echoed(&member),
        },
        MemberCheck::NotJson => AuthError::Malformed("a part is not JSON".into()),
    })?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("a part is not JSON".into()))
}

/// What the header says before anything is verified: `alg` (so that `none` and unknown
/// algorithms are named in the refusal instead of failing as a parse error) and `kid`.
struct UnverifiedHeader {
    alg: String,
    kid: Option<String>,
}

fn unverified_header(token: &str) -> Result<UnverifiedHeader, AuthError> {
    if token.split('.').count() != 3 {
        return Err(AuthError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    }
    let header = decode_segment(token, TokenPart::Header)?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(AuthError::Malformed("the header has no `alg`".into())),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => {
            return Err(AuthError::Malformed(
                "the header's `kid` is not a string".into(),
            ))
        }
    };
    Ok(UnverifiedHeader { alg, kid })
}

/// The `iss` claim, read unverified only to choose which pinned key verifies the token.
fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    match decode_segment(token, TokenPart::Payload)?.get("iss") {
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
