//! MCP over stdio: one identity for the whole process, read from the environment at start,
//! because the process itself is the session.

use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::identity::{Authenticator, CompositeActor};
use crate::startup::{start_gateway, StartError};

use super::front::McpFront;

/// Serves MCP over stdio for one identity, read from `token_env` at start.
pub async fn serve_stdio(
    config: GatewayConfig,
    token_env: &str,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let auth = Authenticator::from_config(&config)?;
    let token = std::env::var(token_env).map_err(|_| {
        StartError::StdioIdentity(format!(
            "environment variable {token_env} holds no token; export a JWT for this agent in it"
        ))
    })?;
    let actor: CompositeActor = auth.authenticate(&token).await.map_err(|e| {
        StartError::StdioIdentity(format!("the token in {token_env} is refused: {e}"))
    })?;
    let gateway = start_gateway(&config, shutdown.clone()).await?;
    gateway
        .downstreams()
        .wait_until_up(Duration::from_secs(10))
        .await;
    let front = McpFront::new(
        gateway.clone(),
        Some(Arc::new(actor)),
        config.limits.list_page_size,
    );
    let running = front
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StartError::Serve(e.to_string()))?;
    tokio::select! {
        quit = running.waiting() => { tracing::info!(?quit, "stdio client closed"); }
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancel();
    super::flush_log_on_exit(&gateway).await;
    Ok(())
}
