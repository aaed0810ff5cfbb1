//! The composition root: builds a running [`Gateway`] from a validated configuration —
//! contracts, policies, the store, the decision log, downstream supervisors — refusing to
//! start on any problem, with a message that names what to fix. The data directory and the
//! private files are made private here (`files`).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{GatewayConfig, StoreConfig};
use crate::downstream::Downstreams;
use crate::enforce::Gateway;
use crate::identity;
use crate::metrics::Metrics;
use crate::policy::PolicyEngine;
use crate::registry::Registry;

/// Everything that can stop the gateway from starting, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Key(#[from] identity::KeyError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyLoadError),
    #[error("capabilities: `{capability}` binds `{argument}` to entity type `{entity_type}`, which the policy schema does not declare. Fix: declare it in the schema or correct the contract")]
    UnknownEntityType {
        capability: String,
        argument: String,
        entity_type: String,
    },
    #[error("cannot listen on {address}: {error}")]
    Listen { address: String, error: String },
    #[error("stdio mode: {0}")]
    StdioIdentity(String),
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    #[error("{0}")]
    Serve(String),
}

/// Loads contracts and policies (refusing start on any problem) and starts the downstream
/// supervisors.
pub async fn start_gateway(
    config: &GatewayConfig,
    shutdown: CancellationToken,
) -> Result<Arc<Gateway>, StartError> {
    start_gateway_with(config, Arc::new(Metrics::default()), shutdown).await
}

/// As [`start_gateway`], counting in `metrics` (shared with the authenticator, whose key
/// fetches it counts too).
pub async fn start_gateway_with(
    config: &GatewayConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<Arc<Gateway>, StartError> {
    let servers: Vec<(String, crate::registry::Naming)> = config
        .downstreams
        .iter()
        .map(|d| (d.id.clone(), d.naming.clone()))
        .collect();
    let registry = Arc::new(Registry::load(&config.capabilities_dir, Some(&servers))?);
    let policy = PolicyEngine::load(&config.policies_dir, config.shadow_policies_dir.as_deref())?;
    let policy_set = policy.latest();
    for warning in &policy_set.warnings {
        tracing::warn!(%warning, "policy warning");
    }
    match (&config.admin, policy.admin()) {
        (Some(_), None) => {
            return Err(StartError::Policy(crate::policy::PolicyLoadError {
                problems: vec![crate::policy::PolicyProblem {
                    file: config
                        .policies_dir
                        .join(crate::policy::admin::ADMIN_DIR)
                        .display()
                        .to_string(),
                    line: None,
                    message: format!(
                        "the admin API is configured ([admin]) but there is no admin policy set: add {}/ with {} and its *.cedar policies (see the repository's policies/admin/)",
                        crate::policy::admin::ADMIN_DIR,
                        crate::policy::admin::ADMIN_SCHEMA_FILE
                    ),
                }],
            }))
        }
        (_, Some(admin)) => {
            for warning in &admin.warnings {
                tracing::warn!(%warning, "admin policy warning");
            }
            tracing::info!(
                policies = admin.policy_count(),
                digest = %admin.digest,
                "admin policy set loaded"
            );
        }
        (None, None) => {}
    }
    for (capability, binding) in registry.bound_entity_types() {
        if !policy_set.declares_entity_type(&binding.entity_type) {
            return Err(StartError::UnknownEntityType {
                capability: capability.to_string(),
                argument: binding.argument.clone(),
                entity_type: binding.entity_type.clone(),
            });
        }
    }
    tracing::info!(
        policies = policy_set.policy_count(),
        version = policy_set.label(),
        digest = %policy_set.digest,
        "policy set loaded"
    );
    crate::files::create_private_dir(&config.data_dir)?;
    let store = open_store(config).await?;
    // Subscribed before anything is read from the store, so no change is missed in between.
    let changes = store.changes();
    let clock: Arc<dyn crate::clock::Clock> = match crate::clock::OffsetFileClock::from_env() {
        Some(clock) => {
            tracing::warn!(
                file = %clock.path().display(),
                "{} is set: the enforcement clock is moved by that file (for tests only)",
                crate::clock::TEST_CLOCK_ENV
            );
            Arc::new(clock)
        }
        None => Arc::new(crate::clock::SystemClock),
    };
    let controls = crate::enforce::Controls::new(store, clock, config.enforcement.clone())
        .await
        .map_err(|e| StartError::Serve(e.to_string()))?;
    let (key_path, generate) = config.audit.signing_key_path(&config.data_dir);
    let key = crate::audit::load_signing_key(&key_path, generate)
        .map_err(|e| StartError::Serve(format!("{e} ([audit] signing_key_file)")))?;
    let log = open_log(config, key)?;
    let input_seal = crate::enforce::InputSeal::load_or_create(
        &config.data_dir.join(crate::enforce::INPUT_STATE_KEY_FILE),
    )
    .map_err(StartError::Serve)?;
    // After the store and the log are open, so that their `-wal`/`-shm` files exist too.
    crate::files::make_private(config)?;
    let contracts = registry.clone();
    let downstreams = Downstreams::start(
        &config.downstreams,
        Arc::new(move |server, tool| contracts.tool_of(server, tool).is_some()),
        shutdown.clone(),
    );
    let gateway = Arc::new(
        Gateway::new(
            registry,
            policy,
            downstreams,
            controls,
            log,
            config.audit.clone(),
            config.server.explain_to_agent,
        )
        .with_metrics(metrics)
        .with_input_seal(input_seal),
    );
    let restored = gateway
        .restore_relationships()
        .await
        .map_err(|e| StartError::Serve(format!("{e} ({})", store_name(config))))?;
    tracing::info!(
        relationship_entities = restored,
        "relationship updates restored"
    );
    gateway
        .reload_tool_pins()
        .await
        .map_err(|e| StartError::Serve(format!("{e} ({})", store_name(config))))?;
    gateway.watch_tool_pins(shutdown.clone());
    if let Some(changes) = changes {
        gateway.follow_store_changes(changes, shutdown);
    }
    Ok(gateway)
}

/// The enforcement store `[store]` selects: SQLite in `data_dir`, or the shared PostgreSQL
/// database (migrated, then pooled, with its change feed).
async fn open_store(config: &GatewayConfig) -> Result<Arc<dyn crate::store::Store>, StartError> {
    // The decision log and its key live in data_dir whichever store is used.
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        StartError::Serve(format!(
            "cannot create data_dir {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let opened: Result<Arc<dyn crate::store::Store>, _> = match &config.store {
        StoreConfig::Sqlite(locking) => {
            crate::store::SqliteStore::open_with(&config.data_dir, *locking)
                .map(|s| Arc::new(s) as _)
        }
        StoreConfig::Postgres { options, .. } => crate::store::PostgresStore::connect(options)
            .await
            .map(|s| Arc::new(s) as _),
    };
    opened.map_err(|e| StartError::Serve(format!("{e} ({})", store_name(config))))
}

/// Where the store is, for messages (never the URL: it may hold a password).
fn store_name(config: &GatewayConfig) -> String {
    match &config.store {
        StoreConfig::Sqlite(_) => format!("store in data_dir {}", config.data_dir.display()),
        StoreConfig::Postgres { .. } => "the PostgreSQL store of [store] url".into(),
    }
}

/// The decision log: `audit.db` in data_dir beside a SQLite store; with PostgreSQL, this
/// replica's chain in the shared database.
fn open_log(
    config: &GatewayConfig,
    key: ed25519_dalek::SigningKey,
) -> Result<crate::audit::DecisionLog, StartError> {
    let opened = match &config.store {
        StoreConfig::Sqlite(_) => crate::audit::DecisionLog::open(
            &config.audit.log_path(&config.data_dir),
            key,
            config.audit.checkpoints(),
        ),
        StoreConfig::Postgres {
            options,
            replica_id,
        } => {
            if config.audit.log_file.is_some() {
                tracing::warn!("[audit] log_file is not used: with a PostgreSQL store the decision log is in the database");
            }
            let id = match replica_id {
                Some(id) => id.clone(),
                None => persisted_replica_id(&config.data_dir)?,
            };
            tracing::info!(replica_id = %id, "the decision log appends this replica's chain in the store's database");
            crate::audit::DecisionLog::open_postgres(
                &options.url,
                &id,
                key,
                config.audit.checkpoints(),
            )
        }
    };
    opened.map_err(|e| StartError::Serve(e.to_string()))
}

/// The replica id kept in `<data_dir>/replica-id`, generated there on first start.
fn persisted_replica_id(data_dir: &std::path::Path) -> Result<String, StartError> {
    let path = data_dir.join("replica-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            if crate::audit::is_valid_chain_id(&id) {
                Ok(id)
            } else {
                Err(StartError::Serve(format!(
                    "{} does not hold a valid replica id; fix it or set [store] replica_id",
                    path.display()
                )))
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("replica-{:012x}", rand::random::<u64>() >> 16);
            std::fs::write(&path, format!("{id}\n"))
                .map_err(|e| StartError::Serve(format!("cannot write {}: {e}", path.display())))?;
            Ok(id)
        }
        Err(error) => Err(StartError::Serve(format!(
            "cannot read {}: {error}",
            path.display()
        ))),
    }
}
