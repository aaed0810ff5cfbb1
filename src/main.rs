//! The `capgate` command line: `serve`, `token` (dev tokens), `schema`, `audit`, `admin`,
//! `store migrate` and the policy tooling (`policy check | test | explain | replay | fmt`).
//!
//! This file is the command line as clap reads it, and the dispatch: each command is handed to
//! its module under `cli/`, which does the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod cli;

/// mimalloc: the per-call path allocates many small, short-lived values (JSON, Cedar entities,
/// records); glibc's allocator spent about a sixth of the gateway's CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use capgate::identity::DevTokenRequest;
use cli::files::LogLocation;

#[derive(Parser)]
#[command(
    name = "capgate",
    version,
    about = "Policy enforcement point for MCP agents"
)]
struct Cli {
    /// Configuration file; without it, ./capgate.toml when the current directory has one, else
    /// the embedded default (example platform, dev issuer).
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
        command: cli::admin::AdminCommand,
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
    /// Parse and strictly validate the policy directory (and its admin policy set, `admin/`, when
    /// there is one), with warnings; non-zero exit on errors.
    Check {
        /// Policies directory; defaults to the config's policies_dir.
        dir: Option<PathBuf>,
    },
    /// Run the scenario files (policies/tests/*.yaml, and policies/admin/tests/*.yaml beside an
    /// admin policy set); non-zero exit on any failure.
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
    /// Format the Cedar policy files in place (or only check with --check), the admin policy
    /// set's too.
    Fmt {
        #[arg(long)]
        check: bool,
        dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    // Before anything is created: secrets, keys and databases are their owner's only.
    capgate::files::restrict_umask();
    let cli = Cli::parse();
    // `serve` sets logging up once its configuration says whether spans are exported as well.
    if !matches!(cli.command, Command::Serve { .. }) {
        cli::logging::init_logging(None);
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("capgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_ref();
    match cli.command {
        Command::Serve { stdio, token_env } => cli::serve::run(config, stdio, token_env),
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
        } => cli::token::run(
            config,
            issuer,
            DevTokenRequest {
                user,
                tenant,
                roles: roles.into_iter().filter(|r| !r.is_empty()).collect(),
                agent,
                agent_role,
                service,
                run_id,
                ttl_seconds: ttl,
            },
        ),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&capgate::policy::contract::json_schemas())?
            );
            Ok(())
        }
        Command::Policy { command } => policy(config, command),
        Command::Store {
            command: StoreCommand::Migrate { database_url },
        } => cli::store::migrate(config, database_url),
        Command::Audit { command } => audit(config, command),
        Command::Admin {
            url,
            token_env,
            command,
        } => {
            let url = cli::admin::url(config, url, &command)?;
            cli::admin::run(&url, &token_env, command)
        }
    }
}

fn audit(config: Option<&PathBuf>, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            location,
            public_key,
        } => cli::audit::verify(config, location, public_key),
        AuditCommand::Query {
            location,
            run,
            actor,
            tool,
            decision,
            since,
            until,
        } => cli::audit::query(
            config,
            location,
            capgate::audit::Query {
                run,
                actor,
                tool,
                decision,
                since,
                until,
            },
        ),
        AuditCommand::Export { location } => cli::audit::export(config, location),
        AuditCommand::PublicKey { key_file } => cli::audit::public_key(config, key_file),
        AuditCommand::Keygen { out } => cli::audit::keygen(out),
    }
}

fn policy(config: Option<&PathBuf>, command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check { dir } => cli::policy::check(config, dir),
        PolicyCommand::Test {
            policies,
            capabilities,
            tests,
            verbose,
        } => cli::policy::test(config, policies, capabilities, tests, verbose),
        PolicyCommand::Explain { request, policies } => {
            cli::policy::explain(config, request, policies)
        }
        PolicyCommand::Replay {
            candidate,
            location,
        } => cli::policy::replay(config, candidate, location),
        PolicyCommand::Fmt { check, dir } => cli::policy::fmt(config, check, dir),
    }
}
