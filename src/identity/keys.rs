//! Issuers' key material, loaded once at start: an HS256 secret (from the environment or a
//! file, at least 32 bytes), a PEM public key, or a JWKS file whose keys a token picks by `kid`.
//! A missing, unreadable or weak key refuses start with a [`KeyError`]. Keys fetched by URL are
//! `remote_keys`' business: here they are only started.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::DecodingKey;

use crate::config::{IssuerConfig, IssuerKey, PinnedAlgorithm};
use crate::metrics::Metrics;

use super::jwk_set::usable_keys;
use super::remote_keys::RemoteKeys;

/// A startup problem with an issuer's key material.
#[derive(Debug, thiserror::Error)]
#[error("issuer `{issuer}`: {problem}")]
pub struct KeyError {
    pub issuer: String,
    pub problem: String,
}

/// The key (or the keys, by `kid`) an issuer's tokens are verified with.
pub(super) enum VerificationKeys {
    Single(DecodingKey),
    ByKeyId(HashMap<String, Arc<DecodingKey>>),
    /// Fetched from the issuer and kept fresh; picked by `kid`.
    Remote(Arc<RemoteKeys>),
}

/// Reads an issuer's verification key material.
pub(super) fn load_keys(
    issuer: &IssuerConfig,
    metrics: &Arc<Metrics>,
) -> Result<VerificationKeys, KeyError> {
    let err = |problem: String| KeyError {
        issuer: issuer.issuer.clone(),
        problem,
    };
    Ok(match &issuer.key {
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
            let text = std::fs::read(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            let set = usable_keys(&text, issuer.algorithm)
                .map_err(|e| err(format!("{}: {e}", path.display())))?;
            // The file is the operator's own: a key in it that cannot be used is a mistake to
            // fix, not one to skip.
            if let Some(reason) = set.skipped.first() {
                return Err(err(format!("{}: {reason}", path.display())));
            }
            if set.keys.is_empty() {
                return Err(err(format!("{}: the JWKS holds no keys", path.display())));
            }
            VerificationKeys::ByKeyId(set.keys)
        }
        IssuerKey::Remote(remote) => {
            VerificationKeys::Remote(RemoteKeys::start(issuer, remote, metrics).map_err(err)?)
        }
    })
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

/// Reads an HS256 secret file, creating a random one when allowed (dev issuers), readable by its
/// owner only.
pub fn read_or_create_secret(path: &Path, generate: bool) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(trim_ascii(&bytes).to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            let secret = hex::encode(bytes);
            if let Some(dir) = path.parent() {
                crate::files::create_private_dir(dir).map_err(|e| e.to_string())?;
            }
            match crate::files::create_private_file(path, secret.as_bytes()) {
                Ok(()) => Ok(secret.into_bytes()),
                // Another capgate process made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_or_create_secret(path, false)
                }
                Err(e) => Err(format!("cannot write {}: {e}", path.display())),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_private_and_read_back_as_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data/dev-issuer.secret");
        let made = read_or_create_secret(&path, true).expect("generated");
        assert_eq!(made.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the secret is private: {mode:o}");
        }
        assert_eq!(read_or_create_secret(&path, true).expect("read"), made);
        assert!(read_or_create_secret(&dir.path().join("missing"), false).is_err());
    }
}
