//! `capgate serve`: the gateway over streamable HTTP, or over stdio for one agent, until Ctrl-C
//! or SIGTERM; with telemetry configured, spans are exported and flushed after shutdown.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::files::ConfigFile;
use super::logging::init_logging;

/// Serves until a signal; `stdio` serves one agent whose token is in `token_env`.
pub fn run(config: Option<&PathBuf>, stdio: bool, token_env: String) -> anyhow::Result<()> {
    let file = ConfigFile::choose(config, Path::new("."));
    let config = file.load()?;
    // Started before the runtime: the exporter's HTTP client runs on its own threads.
    let telemetry = capgate::telemetry::Telemetry::start(&config.telemetry)?;
    init_logging(telemetry.as_ref());
    // Which file is in force, so that editing one that is not read is noticed at once.
    tracing::info!("configuration: {file}");
    if let Some(telemetry) = &telemetry {
        tracing::info!(endpoint = %telemetry.traces_url(), "exporting traces over OTLP/HTTP");
    }
    let workers = config.server.runtime_workers();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    tracing::info!(workers, "async runtime started");
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
