//! Private files. What capgate keeps on disk — the data directory, its databases (`capgate.db`,
//! `audit.db` and their `-wal`/`-shm` files), the dev issuer's secret, the checkpoint signing
//! key — lets whoever reads it mint tokens, forge the decision log or read every call's
//! arguments, so none of it is for other local users.
//!
//! Two measures, so that neither a new file nor an old one slips through:
//! - [`restrict_umask`], at the binary's start: every file and directory the process creates
//!   from then on is its owner's only (0600 and 0700), whichever library creates it (SQLite
//!   makes the `-wal` and `-shm` files on its own).
//! - [`make_private`], when the gateway starts: the data directory, everything directly in it,
//!   and the configured files elsewhere (a decision log or signing key on another disk, an
//!   issuer's secret file) lose their group and other permissions. An operator upgrading from
//!   a version that wrote them 0644 gets them private without doing anything.
//!
//! Files owned by another user are not changed (a secret provisioned by root, readable by the
//! gateway's group, is the operator's arrangement): they are named in a warning instead.
//! Symbolic links inside the data directory are left alone, never followed.

use std::path::{Path, PathBuf};

use crate::config::{GatewayConfig, IssuerKey};

/// A file or directory capgate keeps private but cannot create or make so.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot create the directory {} ({error}); create it yourself, mode 0700", .path.display())]
    Create {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot make {} private ({error}); fix its owner or run `chmod go-rwx {}`", .path.display(), .path.display())]
    Restrict {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Makes every file and directory this process creates from now on private to its owner.
/// Call it first thing in the binary: the umask is process-wide.
pub fn restrict_umask() {
    #[cfg(unix)]
    // SAFETY: umask(2) only sets the calling process's file mode creation mask; it cannot fail
    // and touches no memory of ours.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and any missing parents) as a directory only its owner can enter.
pub fn create_private_dir(dir: &Path) -> Result<(), FilesError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|error| FilesError::Create {
        path: dir.to_path_buf(),
        error,
    })
}

/// Creates `path`, which must not exist, readable and writable by its owner only, holding
/// `contents`. Secrets and keys are written this way whatever the umask.
pub fn create_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

/// Takes the group's and others' permissions off the data directory, everything directly in
/// it, and the configured private files that exist. Returns the paths it changed.
pub fn make_private(config: &GatewayConfig) -> Result<Vec<PathBuf>, FilesError> {
    let mut changed = Vec::new();
    let mut tighten = |path: &Path, follow_links: bool| -> Result<(), FilesError> {
        if restrict(path, follow_links)? {
            changed.push(path.to_path_buf());
        }
        Ok(())
    };
    let data_dir = &config.data_dir;
    if data_dir.exists() {
        tighten(data_dir, true)?;
        let entries = std::fs::read_dir(data_dir).map_err(|error| FilesError::Restrict {
            path: data_dir.clone(),
            error,
        })?;
        for entry in entries {
            let entry = entry.map_err(|error| FilesError::Restrict {
                path: data_dir.clone(),
                error,
            })?;
            tighten(&entry.path(), false)?;
        }
    }
    for path in private_files(config) {
        tighten(&path, true)?;
    }
    Ok(changed)
}

/// The private files the configuration names, wherever they are.
fn private_files(config: &GatewayConfig) -> Vec<PathBuf> {
    let log = config.audit.log_path(&config.data_dir);
    let mut files = sqlite_files(&log);
    files.push(config.audit.signing_key_path(&config.data_dir).0);
    for issuer in &config.issuers {
        match &issuer.key {
            IssuerKey::SecretFile { path, .. } => files.push(path.clone()),
            IssuerKey::SecretEnv(_)
            | IssuerKey::PublicKeyFile(_)
            | IssuerKey::JwksFile(_)
            | IssuerKey::Remote(_) => {
                // Public keys are public; an environment variable is not a file.
            }
        }
    }
    files
}

/// A SQLite database's file with its write-ahead log and shared-memory index.
fn sqlite_files(database: &Path) -> Vec<PathBuf> {
    let mut files = vec![database.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = database.as_os_str().to_os_string();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

/// Takes group and other permissions off one existing file or directory we own; `Ok(true)`
/// when it changed. Missing paths and (unless `follow_links`) symbolic links are skipped.
#[cfg(unix)]
fn restrict(path: &Path, follow_links: bool) -> Result<bool, FilesError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let metadata = if follow_links {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let metadata = match metadata {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => {
            return Err(FilesError::Restrict {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let mode = metadata.permissions().mode();
    let file_type = metadata.file_type();
    if !(file_type.is_file() || file_type.is_dir()) || mode & 0o077 == 0 {
        return Ok(false);
    }
    // SAFETY: geteuid(2) cannot fail and touches no memory of ours.
    let us = unsafe { libc::geteuid() };
    if metadata.uid() != us {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "a private file is readable by others and owned by another user; capgate leaves it to its owner"
        );
        return Ok(false);
    }
    let private = mode & 0o700;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)).map_err(|error| {
        FilesError::Restrict {
            path: path.to_path_buf(),
            error,
        }
    })?;
    tracing::info!(
        path = %path.display(),
        was = format!("{:o}", mode & 0o777),
        now = format!("{private:o}"),
        "made private"
    );
    Ok(true)
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _follow_links: bool) -> Result<bool, FilesError> {
    Ok(false)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// An upgrade: a data directory and files left 0755/0644 by an older capgate, a decision
    /// log and a signing key kept elsewhere, a dev secret, and files that are not there.
    #[test]
    fn an_existing_data_directory_and_the_configured_files_become_private() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        let elsewhere = root.path().join("disk2");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        let config_text = format!(
            r#"
capabilities_dir = "capabilities"
policies_dir = "policies"
data_dir = "data"

[audit]
log_file = "{log}"
signing_key_file = "{key}"

[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1/mcp"

[[issuers]]
issuer = "https://dev.local"
algorithm = "HS256"
secret_file = "data/dev-issuer.secret"
dev = true
"#,
            log = elsewhere.join("audit.db").display(),
            key = elsewhere.join("signing.key").display(),
        );
        let config_path = root.path().join("capgate.toml");
        std::fs::write(&config_path, config_text).expect("write config");
        let config = GatewayConfig::load(&config_path).expect("config loads");

        set_mode(&data, 0o755);
        let inside = [
            "capgate.db",
            "capgate.db-wal",
            "capgate.db-shm",
            "dev-issuer.secret",
        ];
        for name in inside {
            std::fs::write(data.join(name), "x").expect("write");
            set_mode(&data.join(name), 0o644);
        }
        let outside = ["audit.db", "audit.db-wal", "signing.key", "unrelated.txt"];
        for name in outside {
            std::fs::write(elsewhere.join(name), "x").expect("write");
            set_mode(&elsewhere.join(name), 0o644);
        }
        std::fs::write(root.path().join("public.txt"), "x").expect("write");
        set_mode(&root.path().join("public.txt"), 0o644);
        std::os::unix::fs::symlink(root.path().join("public.txt"), data.join("link"))
            .expect("symlink");

        let changed = make_private(&config).expect("made private");

        assert_eq!(mode(&data), 0o700);
        for name in inside {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
        for name in ["audit.db", "audit.db-wal", "signing.key"] {
            assert_eq!(mode(&elsewhere.join(name)), 0o600, "{name}");
        }
        assert_eq!(
            mode(&elsewhere.join("unrelated.txt")),
            0o644,
            "only the configured files outside the data directory"
        );
        assert_eq!(
            mode(&root.path().join("public.txt")),
            0o644,
            "a link in the data directory is not followed"
        );
        assert_eq!(changed.len(), 1 + inside.len() + 3, "{changed:?}");
        assert!(
            make_private(&config).expect("again").is_empty(),
            "nothing left to change"
        );
    }

    #[test]
    fn a_private_directory_is_created_private() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a/b");
        create_private_dir(&dir).expect("created");
        assert_eq!(mode(&dir), 0o700);
        create_private_dir(&dir).expect("an existing directory is fine");
    }
}
