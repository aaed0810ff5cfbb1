//! `capgate store`: the enforcement store's schema (PostgreSQL; the embedded SQLite store
//! migrates itself when opened).

use std::path::PathBuf;

use anyhow::{bail, Context};

use super::files::load_config;

/// `migrate`: apply the PostgreSQL migrations not applied yet; prints each one applied.
pub fn migrate(config: Option<&PathBuf>, database_url: Option<String>) -> anyhow::Result<()> {
    let options = match database_url {
        Some(url) => capgate::store::PostgresOptions {
            url,
            pool_size: 1,
            connect_timeout: std::time::Duration::from_secs(10),
        },
        None => match load_config(config)?.store {
            capgate::config::StoreConfig::Postgres { options, .. } => options,
            capgate::config::StoreConfig::Sqlite(_) => bail!(
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
