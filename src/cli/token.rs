//! `capgate token` (DEV ONLY): mints a token from a dev issuer, never from a real one.

use std::path::PathBuf;

use anyhow::bail;
use capgate::identity::{mint_dev_token, DevTokenRequest};

use super::files::load_config;

/// Mints `request` from the dev issuer named `issuer` (or the only one) and prints it.
pub fn run(
    config: Option<&PathBuf>,
    issuer: Option<String>,
    request: DevTokenRequest,
) -> anyhow::Result<()> {
    let config = load_config(config)?;
    let dev_issuers: Vec<_> = config
        .issuers
        .iter()
        .filter(|i| i.dev && issuer.as_ref().is_none_or(|name| &i.issuer == name))
        .collect();
    let Some(chosen) = dev_issuers.first() else {
        bail!("{}: no dev issuer (dev = true) is configured; capgate never mints tokens for real issuers", config.source);
    };
    let token = mint_dev_token(chosen, &request)?;
    eprintln!(
        "DEV-ONLY token from issuer {} (never use in production)",
        chosen.issuer
    );
    println!("{token}");
    Ok(())
}
