//! Where a command finds its files: the configuration (`--config`, else the embedded default),
//! the decision log, the checkpoint signing key and the policies directory, each from its flag
//! first and from the configuration otherwise.

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
                    capgate::config::StoreConfig::Sqlite => {
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

/// The configuration `--config` names, or the embedded default.
pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<GatewayConfig> {
    Ok(match path {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::embedded_default()?,
    })
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
