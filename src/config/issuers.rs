//! The `[[issuers]]` tables: each token issuer pinned to one algorithm and one key source, with
//! its audience, clock leeway and claim mapping. Only dev issuers may have their secret generated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;

/// The JWS algorithm an issuer is pinned to. `none` cannot be expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PinnedAlgorithm {
    HS256,
    RS256,
    ES256,
    EdDSA,
}

/// Where an issuer's verification key comes from.
#[derive(Debug, Clone)]
pub enum IssuerKey {
    /// HS256 shared secret read from an environment variable.
    SecretEnv(String),
    /// HS256 shared secret in a file; `generate` creates it when missing (dev issuers only).
    SecretFile { path: PathBuf, generate: bool },
    /// A PEM public key (RS256, ES256, EdDSA).
    PublicKeyFile(PathBuf),
    /// A JWKS document on disk; the token's `kid` selects the key.
    JwksFile(PathBuf),
}

/// Which token claims carry which part of the composite actor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub tenant: String,
    pub roles: String,
    pub scope: String,
    pub run_id: String,
    /// `act` reads the agent from the RFC 8693 actor claim; any other name reads a string claim.
    pub agent: String,
    /// Claim (inside `act`, or top level) holding the agent's role; defaults to the agent id.
    pub agent_role: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            tenant: "tenant".into(),
            roles: "roles".into(),
            scope: "scope".into(),
            run_id: "run_id".into(),
            agent: "act".into(),
            agent_role: "agent_role".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub issuer: String,
    pub audience: String,
    pub algorithm: PinnedAlgorithm,
    pub key: IssuerKey,
    pub claims: ClaimMapping,
    /// Dev issuers may mint tokens with `capgate token`; never enable for a production issuer.
    pub dev: bool,
    pub leeway: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    issuer: String,
    audience: Option<String>,
    algorithm: PinnedAlgorithm,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    public_key_file: Option<PathBuf>,
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    claims: ClaimMapping,
    #[serde(default)]
    dev: bool,
    leeway_seconds: Option<u64>,
}

const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Checks the `[[issuers]]` tables; at least one is required. The audience defaults to the
/// endpoint's public URL.
pub(super) fn parse_issuers(
    raw: Vec<RawIssuer>,
    public_url: &str,
    base: &Path,
    err: &impl Fn(&str, String, &str) -> ConfigError,
) -> Result<Vec<IssuerConfig>, ConfigError> {
    let mut issuers = Vec::new();
    for (index, raw_issuer) in raw.into_iter().enumerate() {
        let key_path = format!("issuers[{index}]");
        let key =
            issuer_key(&raw_issuer, base).map_err(|(problem, fix)| err(&key_path, problem, fix))?;
        let algorithm_fits = matches!(
            (&key, raw_issuer.algorithm),
            (
                IssuerKey::SecretEnv(_) | IssuerKey::SecretFile { .. },
                PinnedAlgorithm::HS256
            ) | (
                IssuerKey::PublicKeyFile(_) | IssuerKey::JwksFile(_),
                PinnedAlgorithm::RS256 | PinnedAlgorithm::ES256 | PinnedAlgorithm::EdDSA
            )
        );
        if !algorithm_fits {
            return Err(err(
                &format!("{key_path}.algorithm"),
                format!("{:?} does not fit the key kind given", raw_issuer.algorithm),
                "HS256 takes secret_env or secret_file; RS256/ES256/EdDSA take public_key_file or jwks_file",
            ));
        }
        if matches!(key, IssuerKey::SecretFile { generate: true, .. }) && !raw_issuer.dev {
            return Err(err(
                &format!("{key_path}.secret_file"),
                "a generated secret is only allowed for dev issuers".into(),
                "set dev = true or provision the secret yourself",
            ));
        }
        let leeway = raw_issuer
            .leeway_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LEEWAY);
        if leeway > MAX_LEEWAY {
            return Err(err(
                &format!("{key_path}.leeway_seconds"),
                format!("{}s is more than a small clock skew", leeway.as_secs()),
                "use at most 300 seconds",
            ));
        }
        if issuers
            .iter()
            .any(|i: &IssuerConfig| i.issuer == raw_issuer.issuer)
        {
            return Err(err(
                &format!("{key_path}.issuer"),
                format!("issuer `{}` is configured twice", raw_issuer.issuer),
                "keep one entry per issuer",
            ));
        }
        issuers.push(IssuerConfig {
            audience: raw_issuer
                .audience
                .unwrap_or_else(|| public_url.to_string()),
            issuer: raw_issuer.issuer,
            algorithm: raw_issuer.algorithm,
            key,
            claims: raw_issuer.claims,
            dev: raw_issuer.dev,
            leeway,
        });
    }
    if issuers.is_empty() {
        return Err(err(
            "issuers",
            "no token issuer is configured, so no request could be authenticated".into(),
            "add an [[issuers]] table",
        ));
    }
    Ok(issuers)
}

fn issuer_key(raw: &RawIssuer, base: &Path) -> Result<IssuerKey, (String, &'static str)> {
    let given = [
        raw.secret_env.is_some(),
        raw.secret_file.is_some(),
        raw.public_key_file.is_some(),
        raw.jwks_file.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err((
            format!("issuer `{}` names {given} keys", raw.issuer),
            "give exactly one of secret_env, secret_file, public_key_file, jwks_file",
        ));
    }
    if let Some(var) = &raw.secret_env {
        return Ok(IssuerKey::SecretEnv(var.clone()));
    }
    if let Some(path) = &raw.secret_file {
        return Ok(IssuerKey::SecretFile {
            path: base.join(path),
            generate: raw.dev,
        });
    }
    if let Some(path) = &raw.public_key_file {
        return Ok(IssuerKey::PublicKeyFile(base.join(path)));
    }
    match &raw.jwks_file {
        Some(path) => Ok(IssuerKey::JwksFile(base.join(path))),
        None => Err((
            "no key".into(),
            "give one of secret_env, secret_file, public_key_file, jwks_file",
        )),
    }
}
