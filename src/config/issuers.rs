//! The `[[issuers]]` tables: each token issuer pinned to one algorithm and one key source, with
//! its audience, clock leeway and claim mapping. Only dev issuers may have their secret generated.
//! Keys published at a URL (`jwks_url`, `discovery`) are checked in `remote_keys`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::remote_keys::{remote_keys, RawJwksFetch, RemoteKeysConfig};

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
    /// A JWKS fetched from the issuer (`jwks_url` or `discovery`), cached and refreshed; the
    /// token's `kid` selects the key.
    Remote(RemoteKeysConfig),
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
    jwks_url: Option<String>,
    #[serde(default)]
    discovery: bool,
    jwks_fetch: Option<RawJwksFetch>,
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
    for (index, mut raw_issuer) in raw.into_iter().enumerate() {
        let key_path = format!("issuers[{index}]");
        let key = issuer_key(&mut raw_issuer, base)
            .map_err(|(key, problem, fix)| err(&format!("{key_path}{key}"), problem, fix))?;
        let algorithm_fits = matches!(
            (&key, raw_issuer.algorithm),
            (
                IssuerKey::SecretEnv(_) | IssuerKey::SecretFile { .. },
                PinnedAlgorithm::HS256
            ) | (
                IssuerKey::PublicKeyFile(_) | IssuerKey::JwksFile(_) | IssuerKey::Remote(_),
                PinnedAlgorithm::RS256 | PinnedAlgorithm::ES256 | PinnedAlgorithm::EdDSA
            )
        );
        if !algorithm_fits {
            return Err(err(
                &format!("{key_path}.algorithm"),
                format!("{:?} does not fit the key kind given", raw_issuer.algorithm),
                "HS256 takes secret_env or secret_file; RS256/ES256/EdDSA take public_key_file, jwks_file, jwks_url or discovery",
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

/// Where the issuer's key comes from; a problem names the key under `issuers[i]` it is about
/// (empty for the table itself).
fn issuer_key(
    raw: &mut RawIssuer,
    base: &Path,
) -> Result<IssuerKey, (String, String, &'static str)> {
    const ONE_OF: &str =
        "give exactly one of secret_env, secret_file, public_key_file, jwks_file, jwks_url, discovery = true";
    let given = [
        raw.secret_env.is_some(),
        raw.secret_file.is_some(),
        raw.public_key_file.is_some(),
        raw.jwks_file.is_some(),
        raw.jwks_url.is_some(),
        raw.discovery,
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err((
            String::new(),
            format!("issuer `{}` names {given} keys", raw.issuer),
            ONE_OF,
        ));
    }
    let remote = raw.jwks_url.is_some() || raw.discovery;
    if raw.jwks_fetch.is_some() && !remote {
        return Err((
            ".jwks_fetch".into(),
            "[issuers.jwks_fetch] applies to keys fetched by URL only".into(),
            "remove the table, or use jwks_url or discovery = true",
        ));
    }
    if remote {
        return remote_keys(
            &raw.issuer,
            raw.jwks_url.as_deref(),
            raw.discovery,
            raw.jwks_fetch.take(),
            base,
        )
        .map(IssuerKey::Remote)
        .map_err(|(key, problem, fix)| (format!(".{key}"), problem, fix));
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
        None => Err((String::new(), "no key".into(), ONE_OF)),
    }
}
