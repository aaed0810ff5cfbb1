//! Where a command finds its files: the configuration (`--config`, else `./capgate.toml`, else
//! the embedded default), the decision log, the checkpoint signing key and the policies
//! directory, each from its flag first and from the configuration otherwise.

use std::fmt;
use std::path::{Path, PathBuf};

use capgate::config::GatewayConfig;

/// Where the decision log is: `--log`, else `<--data-dir>/audit.db`, else every replica's chain
/// in `--database-url`, else the config's (the database of a PostgreSQL `[store]`).
#[derive(clap::Args, Clone)]
pub struct LogLocation {
    /// The data directory holding `audit.db` (and, by default, `audit-signing.key`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The decision log's file itself, e.g. a copy kept elsewhere.
    #[arg(long, conflicts_with = "data_dir")]
    pub log: Option<PathBuf>,
    /// The PostgreSQL database of replicas: every replica's chain is read.
    #[arg(long, conflicts_with_all = ["data_dir", "log"])]
    pub database_url: Option<String>,
}

/// A decision log to read: one SQLite file, or every chain in a database.
pub enum LogSource {
    File(PathBuf),
    Database(String),
}

/// The decision log a command reads.
pub fn log_source(config: Option<&PathBuf>, location: LogLocation) -> anyhow::Result<LogSource> {
    Ok(
        match (location.log, location.data_dir, location.database_url) {
            (Some(log), _, _) => LogSource::File(log),
            (None, Some(dir), _) => LogSource::File(capgate::audit::log_path(&dir)),
            (None, None, Some(url)) => LogSource::Database(url),
            (None, None, None) => {
                let config = load_config(config)?;
                match config.store {
                    capgate::config::StoreConfig::Postgres { options, .. } => {
                        LogSource::Database(options.url)
                    }
                    capgate::config::StoreConfig::Sqlite(_) => {
                        LogSource::File(config.audit.log_path(&config.data_dir))
                    }
                }
            }
        },
    )
}

/// Every chain of a log: (chain id, rows, checkpoints); a file is one chain without an id.
pub fn chains_of(source: &LogSource) -> anyhow::Result<Vec<capgate::audit::Chain>> {
    match source {
        LogSource::Database(url) => Ok(capgate::audit::read_chains(url)?),
        LogSource::File(path) => {
            if !path.exists() {
                anyhow::bail!("{}: no decision log here", path.display());
            }
            Ok(vec![capgate::audit::Chain {
                id: String::new(),
                rows: capgate::audit::read_all(path)?,
                checkpoints: Vec::new(),
            }])
        }
    }
}

/// The file a command reads from the current directory when it is given no `--config`.
pub const WORKING_DIR_CONFIG: &str = "capgate.toml";

/// The configuration a command runs on.
#[derive(Debug, PartialEq)]
pub enum ConfigFile {
    /// The file `--config` (or `CAPGATE_CONFIG`) names.
    Given(PathBuf),
    /// `capgate.toml` in the current directory: editing the checkout's file takes effect.
    WorkingDir(PathBuf),
    /// No file given and none in the current directory: the default compiled into the binary.
    Embedded,
}

impl ConfigFile {
    /// `given`, else `capgate.toml` in `dir` when there is anything by that name (a file that
    /// cannot be read is an error naming it, never a silent fall back to the default), else the
    /// embedded default.
    pub fn choose(given: Option<&PathBuf>, dir: &Path) -> Self {
        match given {
            Some(path) => Self::Given(path.clone()),
            None => {
                let local = dir.join(WORKING_DIR_CONFIG);
                match std::fs::symlink_metadata(&local) {
                    Ok(_) => Self::WorkingDir(local),
                    Err(_) => Self::Embedded,
                }
            }
        }
    }

    /// Reads and validates it; a file's relative paths resolve against its directory, the
    /// embedded default's against the current directory.
    pub fn load(&self) -> anyhow::Result<GatewayConfig> {
        Ok(match self {
            Self::Given(path) | Self::WorkingDir(path) => GatewayConfig::load(path)?,
            Self::Embedded => GatewayConfig::embedded_default()?,
        })
    }
}

impl fmt::Display for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Given(path) => write!(f, "{} (--config)", path.display()),
            Self::WorkingDir(path) => write!(f, "{} (in the current directory)", path.display()),
            Self::Embedded => write!(
                f,
                "the embedded default (no {WORKING_DIR_CONFIG} in the current directory)"
            ),
        }
    }
}

/// The configuration a command runs on (see [`ConfigFile::choose`]), loaded.
pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<GatewayConfig> {
    ConfigFile::choose(path, Path::new(".")).load()
}

/// The checkpoint signing key file for a command (never generated here).
pub fn signing_key_file(
    config: Option<&PathBuf>,
    data_dir: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    Ok(match data_dir {
        Some(dir) => dir.join(capgate::audit::SIGNING_KEY_FILE),
        None => {
            let config = load_config(config)?;
            config.audit.signing_key_path(&config.data_dir).0
        }
    })
}

/// The policies directory: the one given, else the configuration's.
pub fn policies_dir(config: Option<&PathBuf>, given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(dir) => dir,
        None => load_config(config)?.policies_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_given_file_wins_then_the_working_directory_then_the_embedded_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(ConfigFile::choose(None, dir.path()), ConfigFile::Embedded);

        let local = dir.path().join(WORKING_DIR_CONFIG);
        std::fs::write(&local, "not toml [").expect("write");
        assert_eq!(
            ConfigFile::choose(None, dir.path()),
            ConfigFile::WorkingDir(local.clone())
        );
        let given = PathBuf::from("elsewhere.toml");
        assert_eq!(
            ConfigFile::choose(Some(&given), dir.path()),
            ConfigFile::Given(given)
        );

        // A local file that does not parse is an error naming it, not the default.
        let error = ConfigFile::WorkingDir(local.clone())
            .load()
            .expect_err("a broken local config refuses");
        assert!(
            error.to_string().contains(&local.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn a_local_file_resolves_its_paths_against_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join(WORKING_DIR_CONFIG);
        std::fs::write(&local, capgate::config::EMBEDDED_DEFAULT).expect("write");
        let config = ConfigFile::choose(None, dir.path())
            .load()
            .expect("the default's text loads from a file");
        assert_eq!(config.policies_dir, dir.path().join("policies"));
        assert_eq!(config.source, local.display().to_string());
    }
}
