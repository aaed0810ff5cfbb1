//! Where a command finds its files: the configuration (`--config`, else the embedded default),
//! the decision log, the checkpoint signing key and the policies directory, each from its flag
//! first and from the configuration otherwise.

use std::path::{Path, PathBuf};

use capgate::config::GatewayConfig;

/// Where the decision log is: `--log`, else `<--data-dir>/audit.db`, else the config's.
#[derive(clap::Args, Clone)]
pub struct LogLocation {
    /// The data directory holding `audit.db` (and, by default, `audit-signing.key`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The decision log's file itself, e.g. a copy kept elsewhere.
    #[arg(long, conflicts_with = "data_dir")]
    pub log: Option<PathBuf>,
}

/// The configuration `--config` names, or the embedded default.
pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<GatewayConfig> {
    Ok(match path {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::embedded_default()?,
    })
}

/// The decision log's file for a command.
pub fn log_file(config: Option<&PathBuf>, location: LogLocation) -> anyhow::Result<PathBuf> {
    Ok(match (location.log, location.data_dir) {
        (Some(log), _) => log,
        (None, Some(dir)) => capgate::audit::log_path(&dir),
        (None, None) => {
            let config = load_config(config)?;
            config.audit.log_path(&config.data_dir)
        }
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
