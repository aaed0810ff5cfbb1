//! The checkpoint keys: the Ed25519 key the writer signs checkpoints with (read from a file,
//! or made once, readable by its owner only), the public key `capgate audit verify` checks them
//! with, and the exact message a checkpoint signature covers.

use std::path::Path;

use super::AuditError;

/// The default signing key's file in the data directory (32-byte seed, hex).
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";

/// Reads the checkpoint signing key from `path`; when the file is missing, creates one (readable
/// by its owner only) if `create_if_missing`, else refuses.
pub fn load_signing_key(
    path: &Path,
    create_if_missing: bool,
) -> Result<ed25519_dalek::SigningKey, AuditError> {
    let seed = match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .map_err(|e| AuditError(format!("{}: not a hex key: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create_if_missing => {
            let key = generate_signing_key(path)?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AuditError(format!(
                "the checkpoint signing key {} does not exist (make one with `capgate audit keygen --out {}`)",
                path.display(),
                path.display()
            )))
        }
        Err(e) => return Err(AuditError(format!("cannot read {}: {e}", path.display()))),
    };
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| AuditError(format!("{}: the key must be 32 bytes", path.display())))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Writes a new signing key to `path` (which must not exist), readable by its owner only.
pub fn generate_signing_key(path: &Path) -> Result<ed25519_dalek::SigningKey, AuditError> {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    crate::files::create_private_file(path, hex::encode(seed).as_bytes())
        .map_err(|e| AuditError(format!("cannot write {}: {e}", path.display())))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// A verifying key given as 64 hex digits, or as a file holding them.
pub fn parse_public_key(given: &str) -> Result<ed25519_dalek::VerifyingKey, AuditError> {
    let text = if given.len() == 64 && given.chars().all(|c| c.is_ascii_hexdigit()) {
        given.to_string()
    } else {
        std::fs::read_to_string(given)
            .map_err(|e| AuditError(format!("cannot read the public key {given}: {e}")))?
    };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AuditError(format!("{given}: a public key is 64 hex digits")))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|e| AuditError(format!("{given}: not an Ed25519 public key: {e}")))
}

/// What a checkpoint's signature covers: its sequence number and that record's hash.
pub(super) fn checkpoint_message(seq: i64, hash: &str) -> String {
    format!("capgate-checkpoint:{seq}:{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_key_is_never_created_silently_and_public_keys_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("elsewhere.key");
        let refused = load_signing_key(&path, false).expect_err("missing key");
        assert!(refused.to_string().contains("keygen"), "{refused}");
        assert!(!path.exists());
        let made = generate_signing_key(&path).expect("keygen");
        assert!(
            generate_signing_key(&path).is_err(),
            "never overwrites a key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
        }
        let loaded = load_signing_key(&path, false).expect("load");
        assert_eq!(loaded.to_bytes(), made.to_bytes());
        let public = hex::encode(made.verifying_key().to_bytes());
        assert_eq!(
            parse_public_key(&public).expect("hex"),
            made.verifying_key()
        );
        let file = dir.path().join("public.hex");
        std::fs::write(&file, format!("{public}\n")).expect("write");
        assert_eq!(
            parse_public_key(&file.display().to_string()).expect("file"),
            made.verifying_key()
        );
        assert!(parse_public_key("abcd").is_err());
    }
}
