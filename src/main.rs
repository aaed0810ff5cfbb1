//! The `capgate` command line: `serve`, `token` (dev tokens), `schema`, the policy tooling
//! (`policy check | test | explain | fmt | replay`), the decision log (`audit …`), the admin
//! API's client (`admin …`) and `store migrate`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

mod admin_cli;

/// mimalloc: the per-call path allocates many small, short-lived values (JSON, Cedar entities,
/// records); glibc's allocator spent about a sixth of the gateway's CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use capgate::config::GatewayConfig;
use capgate::identity::{mint_dev_token, DevTokenRequest};
use capgate::policy::{CompiledPolicySet, PolicyEngine, PolicyRequest};
use capgate::registry::Registry;

#[derive(Parser)]
#[command(
    name = "capgate",
    version,
    about = "Policy enforcement point for MCP agents"
)]
struct Cli {
    /// Configuration file; without it, the embedded default (example platform, dev issuer).
    #[arg(long, global = true, env = "CAPGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (streamable HTTP at /mcp, or stdio with --stdio).
    Serve {
        /// Serve one agent over stdio; its JWT is read from --token-env at start.
        #[arg(long)]
        stdio: bool,
        #[arg(long, default_value = "CAPGATE_TOKEN")]
        token_env: String,
    },
    /// DEV ONLY: mint a token from a dev issuer (one marked `dev = true`).
    Token {
        #[arg(long)]
        user: String,
        #[arg(long)]
        tenant: String,
        /// Comma-separated user roles, e.g. analyst,senior_reviewer.
        #[arg(long, value_delimiter = ',', default_value = "")]
        roles: Vec<String>,
        /// The agent acting for the user (RFC 8693 `act.sub`).
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        agent_role: Option<String>,
        /// The runtime service (`azp`).
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        run_id: Option<String>,
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Which dev issuer to use when several are configured.
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Print the JSON Schemas of the decision contract (PolicyRequest, Decision).
    Schema,
    /// The decision log: verify its hash chain, export it.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The admin API: kill switches, approvals, break-glass, budgets, relationships, reload.
    Admin {
        /// The admin listener's URL; defaults to the config's [admin] listen address.
        #[arg(long, env = "CAPGATE_ADMIN_URL")]
        url: Option<String>,
        /// The environment variable holding your admin JWT.
        #[arg(long, default_value = "CAPGATE_ADMIN_TOKEN")]
        token_env: String,
        #[command(subcommand)]
        command: admin_cli::AdminCommand,
    },
    /// Policy tooling.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The enforcement store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Apply the PostgreSQL schema migrations not applied yet (`serve` applies them at start
    /// too); prints each one applied. The SQLite store migrates itself when opened.
    Migrate {
        /// The database; defaults to the config's `[store] url`.
        #[arg(long, env = "CAPGATE_DATABASE_URL")]
        database_url: Option<String>,
    },
}

/// Where the decision log is: `--log`, else `<--data-dir>/audit.db`, else every replica's chain
/// in `--database-url`, else the config's (the database of a PostgreSQL `[store]`).
#[derive(clap::Args, Clone)]
struct LogLocation {
    /// The data directory holding `audit.db` (and, by default, `audit-signing.key`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The decision log's file itself, e.g. a copy kept elsewhere.
    #[arg(long, conflicts_with = "data_dir")]
    log: Option<PathBuf>,
    /// The PostgreSQL database of replicas: every replica's chain is read.
    #[arg(long, conflicts_with_all = ["data_dir", "log"])]
    database_url: Option<String>,
}

/// A decision log to read: one SQLite file, or every chain in a database.
enum LogSource {
    File(PathBuf),
    Database(String),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain and the signed checkpoints; non-zero exit naming each edited,
    /// deleted, reordered or truncated record.
    Verify {
        #[command(flatten)]
        location: LogLocation,
        /// The checkpoint key's public half (64 hex digits, or a file holding them). Keep it
        /// away from the gateway's disk: whoever can write the log may also hold the private key.
        /// Without it, the public key is derived from the configured signing key file. Repeat it
        /// for replicas that sign with keys of their own: a checkpoint verifies with any.
        #[arg(long)]
        public_key: Vec<String>,
    },
    /// Write every record as JSON Lines to stdout.
    Export {
        #[command(flatten)]
        location: LogLocation,
    },
    /// Records matching all given filters, as JSON Lines.
    Query {
        #[command(flatten)]
        location: LogLocation,
        #[arg(long)]
        run: Option<String>,
        /// A user or agent id (matches `user/agent`).
        #[arg(long)]
        actor: Option<String>,
        /// An exposed tool name (or resource URI, prompt name; `tools/list` for discovery
        /// summaries).
        #[arg(long)]
        tool: Option<String>,
        /// allow | deny | require_approval | require_more_context | summary
        #[arg(long)]
        decision: Option<String>,
        /// Unix seconds, inclusive.
        #[arg(long)]
        since: Option<i64>,
        /// Unix seconds, exclusive.
        #[arg(long)]
        until: Option<i64>,
    },
    /// Print the public key that verifies checkpoints (of the configured signing key), to keep
    /// elsewhere and pass to `verify --public-key`.
    PublicKey {
        /// A signing key file; defaults to the config's `[audit] signing_key_file`.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Create a new checkpoint signing key (never overwrites) and print its public key.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Parse and strictly validate the policy directory, with warnings; non-zero exit on errors.
    Check {
        /// Policies directory; defaults to the config's policies_dir.
        dir: Option<PathBuf>,
    },
    /// Run the scenario files (policies/tests/*.yaml); non-zero exit on any failure.
    Test {
        /// Policies directory; defaults to the config's policies_dir.
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Capabilities directory; defaults to the config's capabilities_dir.
        #[arg(long)]
        capabilities: Option<PathBuf>,
        /// Scenario directory; defaults to <policies>/tests.
        #[arg(long)]
        tests: Option<PathBuf>,
        /// Print every decision's reason, not only failures.
        #[arg(long)]
        verbose: bool,
    },
    /// Decide one PolicyRequest (JSON file, `-` for stdin) and print the Decision.
    Explain {
        request: PathBuf,
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Re-decide the logged decisions under a candidate policy directory and report the impact;
    /// exits 3 when any decision would change (a CI gate).
    Replay {
        #[arg(long)]
        candidate: PathBuf,
        #[command(flatten)]
        location: LogLocation,
    },
    /// Format the Cedar policy files in place (or only check with --check).
    Fmt {
        #[arg(long)]
        check: bool,
        dir: Option<PathBuf>,
    },
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<GatewayConfig> {
    Ok(match path {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::embedded_default()?,
    })
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `serve` sets logging up once its configuration says whether spans are exported as well.
    if !matches!(cli.command, Command::Serve { .. }) {
        init_logging(None);
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("capgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `CAPGATE_LOG`. With `telemetry`, capgate's spans also go to the
/// OTLP exporter, under the exporter's own filter: `CAPGATE_LOG` never silences the export.
fn init_logging(telemetry: Option<&capgate::telemetry::Telemetry>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAPGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(telemetry.map(|telemetry| telemetry.layer()))
        .with(stderr)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { stdio, token_env } => {
            let config = load_config(cli.config.as_ref())?;
            // Started before the runtime: the exporter's HTTP client runs on its own threads.
            let telemetry = capgate::telemetry::Telemetry::start(&config.telemetry)?;
            init_logging(telemetry.as_ref());
            if let Some(telemetry) = &telemetry {
                tracing::info!(endpoint = %telemetry.traces_url(), "exporting traces over OTLP/HTTP");
            }
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let served = runtime.block_on(async move {
                let shutdown = CancellationToken::new();
                let on_signal = shutdown.clone();
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    on_signal.cancel();
                });
                #[cfg(unix)]
                {
                    let on_term = shutdown.clone();
                    if let Ok(mut term) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        tokio::spawn(async move {
                            term.recv().await;
                            on_term.cancel();
                        });
                    }
                }
                if stdio {
                    capgate::server::serve_stdio(config, &token_env, shutdown).await?;
                } else {
                    capgate::server::serve_http(config, shutdown).await?;
                }
                Ok(())
            });
            // Flush after the runtime is gone, so spans of calls cut short by shutdown are sent.
            drop(runtime);
            if let Some(telemetry) = telemetry {
                telemetry.shutdown();
            }
            served
        }
        Command::Token {
            user,
            tenant,
            roles,
            agent,
            agent_role,
            service,
            run_id,
            ttl,
            issuer,
        } => {
            let config = load_config(cli.config.as_ref())?;
            let dev_issuers: Vec<_> = config
                .issuers
                .iter()
                .filter(|i| i.dev && issuer.as_ref().is_none_or(|name| &i.issuer == name))
                .collect();
            let Some(chosen) = dev_issuers.first() else {
                bail!("{}: no dev issuer (dev = true) is configured; capgate never mints tokens for real issuers", config.source);
            };
            let token = mint_dev_token(
                chosen,
                &DevTokenRequest {
                    user,
                    tenant,
                    roles: roles.into_iter().filter(|r| !r.is_empty()).collect(),
                    agent,
                    agent_role,
                    service,
                    run_id,
                    ttl_seconds: ttl,
                },
            )?;
            eprintln!(
                "DEV-ONLY token from issuer {} (never use in production)",
                chosen.issuer
            );
            println!("{token}");
            Ok(())
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&capgate::policy::contract::json_schemas())?
            );
            Ok(())
        }
        Command::Policy { command } => policy_command(cli.config.as_ref(), command),
        Command::Store { command } => store_command(cli.config.as_ref(), command),
        Command::Audit { command } => audit_command(cli.config.as_ref(), command),
        Command::Admin {
            url,
            token_env,
            command,
        } => {
            let url = match (url, &command) {
                (Some(url), _) => url,
                (None, admin_cli::AdminCommand::Openapi) => String::new(),
                (None, _) => match load_config(cli.config.as_ref())?.admin {
                    Some(admin) => format!("http://{}", admin.listen),
                    None => bail!("no [admin] listener is configured; pass --url"),
                },
            };
            admin_cli::run(&url, &token_env, command)
        }
    }
}

/// The decision log a command reads.
fn log_source(config: Option<&PathBuf>, location: LogLocation) -> anyhow::Result<LogSource> {
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
fn chains_of(source: &LogSource) -> anyhow::Result<Vec<capgate::audit::Chain>> {
    match source {
        LogSource::Database(url) => Ok(capgate::audit::read_chains(url)?),
        LogSource::File(path) => {
            if !path.exists() {
                bail!("{}: no decision log here", path.display());
            }
            Ok(vec![capgate::audit::Chain {
                id: String::new(),
                rows: capgate::audit::read_all(path)?,
                checkpoints: Vec::new(),
            }])
        }
    }
}

/// The checkpoint signing key file for a command (never generated here).
fn signing_key_file(config: Option<&PathBuf>, data_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    Ok(match data_dir {
        Some(dir) => dir.join(capgate::audit::SIGNING_KEY_FILE),
        None => {
            let config = load_config(config)?;
            config.audit.signing_key_path(&config.data_dir).0
        }
    })
}

fn audit_command(config: Option<&PathBuf>, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            location,
            public_key,
        } => {
            let mut keys = Vec::new();
            for given in &public_key {
                keys.push(capgate::audit::parse_public_key(given)?);
            }
            if keys.is_empty() {
                let file = signing_key_file(config, location.data_dir.as_deref())?;
                keys.push(
                    capgate::audit::load_signing_key(&file, false)
                        .with_context(|| "pass the checkpoint key's public half with --public-key")?
                        .verifying_key(),
                );
            }
            match log_source(config, location)? {
                LogSource::File(path) => {
                    if !path.exists() {
                        bail!("{}: no decision log here", path.display());
                    }
                    let (count, problems) = capgate::audit::verify_any(&path, &keys)?;
                    for problem in &problems {
                        eprintln!("record {}: {}", problem.seq, problem.problem);
                    }
                    if !problems.is_empty() {
                        bail!(
                            "{}: the decision log is not intact ({} problem(s) in {count} records)",
                            path.display(),
                            problems.len()
                        );
                    }
                    println!("{}: {count} records, hash chain intact", path.display());
                }
                LogSource::Database(url) => {
                    let chains = capgate::audit::read_chains(&url)?;
                    let mut broken = 0;
                    let mut records = 0;
                    for chain in &chains {
                        let problems =
                            capgate::audit::verify_chain(&chain.rows, &chain.checkpoints, &keys);
                        for problem in &problems {
                            eprintln!(
                                "chain {} record {}: {}",
                                chain.id, problem.seq, problem.problem
                            );
                        }
                        records += chain.rows.len();
                        if problems.is_empty() {
                            println!(
                                "chain {}: {} records, hash chain intact",
                                chain.id,
                                chain.rows.len()
                            );
                        } else {
                            broken += 1;
                        }
                    }
                    if broken > 0 {
                        bail!(
                            "{broken} of {} chain(s) in the database are not intact",
                            chains.len()
                        );
                    }
                    println!(
                        "{} chain(s), {records} records, every hash chain intact",
                        chains.len()
                    );
                }
            }
            Ok(())
        }
        AuditCommand::Query {
            location,
            run,
            actor,
            tool,
            decision,
            since,
            until,
        } => {
            let filter = capgate::audit::Query {
                run,
                actor,
                tool,
                decision,
                since,
                until,
            };
            match log_source(config, location)? {
                LogSource::File(path) => {
                    for record in capgate::audit::query(&path, &filter)? {
                        println!("{}", serde_json::to_string(&record)?);
                    }
                }
                source @ LogSource::Database(_) => {
                    for chain in chains_of(&source)? {
                        for record in capgate::audit::query_rows(chain.rows, &filter)? {
                            let mut line = serde_json::to_value(&record)?;
                            line["chain"] = chain.id.clone().into();
                            println!("{line}");
                        }
                    }
                }
            }
            Ok(())
        }
        AuditCommand::Export { location } => {
            let source = log_source(config, location)?;
            let with_chain = matches!(source, LogSource::Database(_));
            for chain in chains_of(&source)? {
                for (seq, record, prev_hash, hash) in chain.rows {
                    let record: serde_json::Value = serde_json::from_str(&record)?;
                    let mut line = serde_json::json!({"seq": seq, "prev_hash": prev_hash, "hash": hash, "record": record});
                    if with_chain {
                        line["chain"] = chain.id.clone().into();
                    }
                    println!("{line}");
                }
            }
            Ok(())
        }
        AuditCommand::PublicKey { key_file } => {
            let file = match key_file {
                Some(file) => file,
                None => signing_key_file(config, None)?,
            };
            let key = capgate::audit::load_signing_key(&file, false)?;
            println!("{}", hex::encode(key.verifying_key().to_bytes()));
            Ok(())
        }
        AuditCommand::Keygen { out } => {
            let key = capgate::audit::generate_signing_key(&out)?;
            eprintln!("wrote {} (owner-only); its public key:", out.display());
            println!("{}", hex::encode(key.verifying_key().to_bytes()));
            Ok(())
        }
    }
}

fn store_command(config: Option<&PathBuf>, command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Migrate { database_url } => {
            let options = match database_url {
                Some(url) => capgate::store::PostgresOptions {
                    url,
                    pool_size: 1,
                    connect_timeout: std::time::Duration::from_secs(10),
                },
                None => match load_config(config)?.store {
                    capgate::config::StoreConfig::Postgres { options, .. } => options,
                    capgate::config::StoreConfig::Sqlite => bail!(
                        "no [store] url is configured: the embedded SQLite store migrates itself when the gateway starts; pass --database-url for PostgreSQL"
                    ),
                },
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let applied = runtime.block_on(capgate::store::migrate_postgres(&options))?;
            for (version, name) in &applied {
                println!("applied {version:03}_{name}");
            }
            let newest = capgate::store::MIGRATIONS_POSTGRES
                .last()
                .map(|m| m.0)
                .unwrap_or(0);
            println!(
                "the store is at schema version {newest} ({} migration(s) applied now)",
                applied.len()
            );
            Ok(())
        }
    }
}

fn policies_dir(config: Option<&PathBuf>, given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(dir) => dir,
        None => load_config(config)?.policies_dir,
    })
}

fn policy_command(config: Option<&PathBuf>, command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check { dir } => {
            let dir = policies_dir(config, dir)?;
            let (set, relationships) = CompiledPolicySet::load(&dir)?;
            for warning in &set.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: {} policies valid (strict), policy set {} ({}), {} relationship entities, {} warning(s)",
                dir.display(),
                set.policy_count(),
                set.label(),
                set.digest,
                relationships.len(),
                set.warnings.len()
            );
            Ok(())
        }
        PolicyCommand::Test {
            policies,
            capabilities,
            tests,
            verbose,
        } => {
            let policies = policies_dir(config, policies)?;
            let capabilities = match capabilities {
                Some(dir) => dir,
                None => load_config(config)?.capabilities_dir,
            };
            let tests = tests.unwrap_or_else(|| policies.join("tests"));
            let engine = PolicyEngine::load(&policies, None)?;
            let registry = Registry::load(&capabilities, None)?;
            let results = capgate::scenarios::run_dir(&tests, &engine, &registry)
                .map_err(anyhow::Error::msg)?;
            let mut failed = 0;
            for result in &results {
                match &result.failure {
                    None => {
                        println!("test {}::{} ... ok", result.file, result.name);
                        if verbose {
                            if let Some(decision) = &result.decision {
                                println!("    {}", decision.reason);
                            }
                        }
                    }
                    Some(failure) => {
                        failed += 1;
                        println!(
                            "test {}::{} ... FAILED\n    {failure}",
                            result.file, result.name
                        );
                    }
                }
            }
            println!();
            println!("{} passed, {} failed", results.len() - failed, failed);
            if results.is_empty() {
                bail!("no scenarios found in {}", tests.display());
            }
            if failed > 0 {
                bail!("{failed} scenario(s) failed");
            }
            Ok(())
        }
        PolicyCommand::Explain { request, policies } => {
            let policies = policies_dir(config, policies)?;
            let text = if request.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&request)
                    .with_context(|| format!("reading {}", request.display()))?
            };
            let request: PolicyRequest = serde_json::from_str(&text).with_context(|| {
                "the request does not match the PolicyRequest schema (see `capgate schema`)"
            })?;
            let engine = PolicyEngine::load(&policies, None)?;
            let decision = engine.decide(&request);
            println!("{}", serde_json::to_string_pretty(&decision)?);
            Ok(())
        }
        PolicyCommand::Replay {
            candidate,
            location,
        } => {
            let source = log_source(config, location)?;
            let engine = PolicyEngine::load(&candidate, None)?;
            let mut replayed = 0;
            let mut changes = Vec::new();
            for chain in chains_of(&source)? {
                let records = capgate::audit::query_rows(chain.rows, &Default::default())?;
                let (count, changed) = capgate::audit::replay_records(records, &engine);
                replayed += count;
                changes.extend(changed.into_iter().map(|change| (chain.id.clone(), change)));
            }
            let mut by_change: std::collections::BTreeMap<(String, String), usize> =
                Default::default();
            for (chain, change) in &changes {
                let at = if chain.is_empty() {
                    change.seq.to_string()
                } else {
                    format!("{chain}:{}", change.seq)
                };
                println!(
                    "record {at}: {} {} {} -> {} (policy {} -> {})",
                    change.actor,
                    change.resource,
                    change.before,
                    change.after,
                    change.policy_before.as_deref().unwrap_or("-"),
                    change.policy_after.as_deref().unwrap_or("-")
                );
                *by_change
                    .entry((
                        format!("{} -> {}", change.before, change.after),
                        change.resource.clone(),
                    ))
                    .or_default() += 1;
            }
            println!(
                "\nimpact of {} on {replayed} logged decisions:",
                candidate.display()
            );
            for ((change, tool), count) in &by_change {
                println!("  {count:>5}  {change:<40} {tool}");
            }
            println!(
                "{} changed, {} unchanged",
                changes.len(),
                replayed - changes.len()
            );
            if !changes.is_empty() {
                std::process::exit(3);
            }
            Ok(())
        }
        PolicyCommand::Fmt { check, dir } => {
            let dir = policies_dir(config, dir)?;
            let formatter = cedar_policy_formatter::Config {
                line_width: 100,
                indent_width: 2,
            };
            let mut unformatted = Vec::new();
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file)?;
                let pretty = cedar_policy_formatter::policies_str_to_pretty(&text, &formatter)
                    .map_err(|e| anyhow::anyhow!("{}: {e:?}", file.display()))?;
                if pretty != text {
                    if check {
                        unformatted.push(file.display().to_string());
                    } else {
                        std::fs::write(&file, pretty)?;
                        println!("formatted {}", file.display());
                    }
                }
            }
            if !unformatted.is_empty() {
                bail!(
                    "not formatted (run `capgate policy fmt`): {}",
                    unformatted.join(", ")
                );
            }
            Ok(())
        }
    }
}
