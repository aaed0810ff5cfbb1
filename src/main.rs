//! The `capgate` command line: `serve`, `token` (dev tokens), `policy check`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use capgate::config::GatewayConfig;
use capgate::identity::{mint_dev_token, DevTokenRequest};
use capgate::policy::PolicyEngine;

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
    /// Policy tooling.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Parse and strictly validate the policy directory; non-zero exit on any problem.
    Check {
        /// Policies directory; defaults to the config's policies_dir.
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAPGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("capgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { stdio, token_env } => {
            let config = load_config(cli.config.as_ref())?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(async move {
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
            })
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
        Command::Policy {
            command: PolicyCommand::Check { dir },
        } => {
            let dir = match dir {
                Some(dir) => dir,
                None => load_config(cli.config.as_ref())?.policies_dir,
            };
            let engine = PolicyEngine::load(&dir)?;
            println!(
                "{}: {} policies valid (strict), version {}",
                dir.display(),
                engine.policy_count(),
                engine.version()
            );
            Ok(())
        }
    }
}
