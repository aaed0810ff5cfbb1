//! The `[audit]` table: dry-run scopes, argument masking, where the decision log and its
//! checkpoint key live, which calls wait for a durable record, and how often checkpoints are
//! signed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The `[audit]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Decide and log as if enforcing, but let refused calls through, marked dry-run:
    /// the whole gateway.
    pub dry_run: bool,
    /// ... or only these downstream servers.
    pub dry_run_servers: Vec<String>,
    /// ... or only these exposed tools.
    pub dry_run_tools: Vec<String>,
    /// Argument names whose values are masked in every record before it is written.
    pub mask_arguments: Vec<String>,
    /// The decision log's database file; default `<data_dir>/audit.db`. Put it on its own disk
    /// to keep it apart from the enforcement store.
    pub log_file: Option<PathBuf>,
    /// The Ed25519 key (32-byte seed, hex) that signs checkpoints; default
    /// `<data_dir>/audit-signing.key`, generated on first start. A configured file must exist
    /// (`capgate audit keygen` makes one): a missing key is never replaced silently.
    pub signing_key_file: Option<PathBuf>,
    /// Which allowed calls wait for their record to be durable before they are forwarded (and
    /// are refused when it cannot be written).
    pub durable_for: DurableFor,
    /// Sign a checkpoint every this many records (default 64)...
    pub checkpoint_every_records: Option<u32>,
    /// ... and over the last record when it has waited this long unsigned (default 5).
    pub checkpoint_interval_seconds: Option<u32>,
}

/// `[audit] durable_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurableFor {
    /// Side-effecting calls (the default): reads are logged without waiting.
    #[default]
    SideEffects,
    /// Every call, reads too: nothing is forwarded that the log cannot account for.
    EveryCall,
}

impl AuditConfig {
    /// When checkpoints are signed.
    pub fn checkpoints(&self) -> crate::audit::CheckpointPolicy {
        let default = crate::audit::CheckpointPolicy::default();
        crate::audit::CheckpointPolicy {
            every: self
                .checkpoint_every_records
                .map(i64::from)
                .unwrap_or(default.every),
            interval: self
                .checkpoint_interval_seconds
                .map(|s| Duration::from_secs(s.into()))
                .unwrap_or(default.interval),
        }
    }

    /// The decision log's file under this configuration.
    pub fn log_path(&self, data_dir: &Path) -> PathBuf {
        self.log_file
            .clone()
            .unwrap_or_else(|| crate::audit::log_path(data_dir))
    }

    /// The checkpoint key's file, and whether it may be generated when missing (only the
    /// default one may).
    pub fn signing_key_path(&self, data_dir: &Path) -> (PathBuf, bool) {
        match &self.signing_key_file {
            Some(path) => (path.clone(), false),
            None => (data_dir.join(crate::audit::SIGNING_KEY_FILE), true),
        }
    }

    pub fn dry_run_for(&self, server: &str, tool: &str) -> bool {
        self.dry_run
            || self.dry_run_servers.iter().any(|s| s == server)
            || self.dry_run_tools.iter().any(|t| t == tool)
    }
}
