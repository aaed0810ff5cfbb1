//! The `[store]` table: where the enforcement state lives. Absent (or without a URL), it is the
//! embedded SQLite database in `data_dir`; with `url` (or `url_env`) naming a PostgreSQL
//! database, every replica configured with the same database shares budgets, idempotency
//! claims, approvals, kill switches, break-glass grants and relationship updates, and appends
//! its decision log there as a chain of its own (`replica_id`).

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use crate::store::SqliteLocking;

/// The `[store]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `postgres://user@host:port/database` (libpq URL syntax).
    url: Option<String>,
    /// The environment variable holding the URL (keeps a password out of the file).
    url_env: Option<String>,
    /// Connections in this replica's pool (default 8; one more is held for LISTEN and one by
    /// the decision-log writer).
    pool_size: Option<usize>,
    /// How long to wait for a connection, to the server or from the pool (default 2000 ms).
    /// A call that waits longer is refused: the store is unavailable.
    connect_timeout_ms: Option<u64>,
    /// This replica's id: the decision-log chain it appends to. Default: the id in
    /// `<data_dir>/replica-id`, generated there on first start (so a restart resumes its chain).
    replica_id: Option<String>,
    /// The embedded store only: `"exclusive"` (default) or `"shared"`.
    sqlite_locking: Option<String>,
}

/// Where the enforcement state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `<data_dir>/capgate.db`: one gateway process (other tools may open the file too when
    /// `shared`).
    Sqlite(SqliteLocking),
    /// A PostgreSQL database shared by every replica, which also holds the decision log (one
    /// chain per replica).
    Postgres {
        options: crate::store::PostgresOptions,
        /// `None`: the one persisted in `data_dir`.
        replica_id: Option<String>,
    },
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Sqlite(SqliteLocking::Exclusive)
    }
}

/// Checks the `[store]` table.
pub(super) fn parse_store(
    raw: RawStore,
    err: &impl Fn(&str, String, &str) -> ConfigError,
) -> Result<StoreConfig, ConfigError> {
    let url = match (raw.url, raw.url_env) {
        (None, None) => {
            if raw.pool_size.is_some()
                || raw.connect_timeout_ms.is_some()
                || raw.replica_id.is_some()
            {
                return Err(err(
                    "store",
                    "pool_size, connect_timeout_ms and replica_id apply to PostgreSQL only, and no url is set".into(),
                    "add url = \"postgres://…\" (or url_env), or remove the [store] table to use the embedded SQLite store",
                ));
            }
            let locking = match raw.sqlite_locking.as_deref() {
                None | Some("exclusive") => SqliteLocking::Exclusive,
                Some("shared") => SqliteLocking::Shared,
                Some(other) => {
                    return Err(err(
                        "store.sqlite_locking",
                        format!("`{other}` is not a locking mode"),
                        "write \"exclusive\" (the default) or \"shared\"",
                    ))
                }
            };
            return Ok(StoreConfig::Sqlite(locking));
        }
        (Some(_), Some(_)) => {
            return Err(err(
                "store.url",
                "both url and url_env are set".into(),
                "keep one of them",
            ))
        }
        (Some(_), None) | (None, Some(_)) if raw.sqlite_locking.is_some() => return Err(err(
            "store.sqlite_locking",
            "sqlite_locking applies to the embedded SQLite store only, and a PostgreSQL url is set"
                .into(),
            "remove sqlite_locking, or the url to use the embedded store",
        )),
        (Some(url), None) => url,
        (None, Some(variable)) => std::env::var(&variable).map_err(|_| {
            err(
                "store.url_env",
                format!("the environment variable `{variable}` is not set"),
                "export it with the database URL, or name another variable",
            )
        })?,
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(err(
            "store.url",
            "only PostgreSQL URLs (postgres://…) are supported".into(),
            "write url = \"postgres://user@host:5432/database\", or remove [store] for SQLite",
        ));
    }
    if let Err(problem) = url.parse::<tokio_postgres::Config>() {
        return Err(err(
            "store.url",
            format!("the URL cannot be read: {problem}"),
            "use the libpq URL syntax: postgres://user[:password]@host[:port]/database[?options]",
        ));
    }
    let pool_size = raw.pool_size.unwrap_or(8);
    if pool_size == 0 {
        return Err(err(
            "store.pool_size",
            "a pool of 0 connections".into(),
            "set at least 1",
        ));
    }
    let connect_timeout = Duration::from_millis(raw.connect_timeout_ms.unwrap_or(2000));
    if connect_timeout.is_zero() {
        return Err(err(
            "store.connect_timeout_ms",
            "a timeout of 0".into(),
            "set a positive number of milliseconds",
        ));
    }
    if let Some(id) = raw
        .replica_id
        .as_deref()
        .filter(|id| !crate::audit::is_valid_chain_id(id))
    {
        return Err(err(
            "store.replica_id",
            format!("`{id}` cannot be a replica id"),
            "use 1 to 64 letters, digits, '.', '_' or '-', different for every replica",
        ));
    }
    Ok(StoreConfig::Postgres {
        options: crate::store::PostgresOptions {
            url,
            pool_size,
            connect_timeout,
        },
        replica_id: raw.replica_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StoreConfig, ConfigError> {
        let raw: RawStore = toml::from_str(text).expect("toml");
        parse_store(raw, &|key, problem, fix| ConfigError {
            file: "t.toml".into(),
            key: key.into(),
            problem,
            fix: fix.into(),
        })
    }

    #[test]
    fn sqlite_without_a_url_postgres_with_one() {
        assert_eq!(
            parse("").expect("empty"),
            StoreConfig::Sqlite(SqliteLocking::Exclusive)
        );
        let StoreConfig::Postgres {
            options,
            replica_id,
        } = parse(
            "url = \"postgres://postgres@127.0.0.1:5432/capgate\"\npool_size = 3\nreplica_id = \"r-1\"",
        )
        .expect("postgres")
        else {
            panic!("a URL selects PostgreSQL");
        };
        assert_eq!(options.pool_size, 3);
        assert_eq!(replica_id.as_deref(), Some("r-1"));
        assert_eq!(options.connect_timeout, Duration::from_millis(2000));
    }

    /// `sqlite_locking`: (table body, the store, or the key of the error and words of its
    /// message). With a PostgreSQL url, any value is refused as SQLite-only.
    #[test]
    fn sqlite_locking_is_exclusive_unless_shared_and_sqlite_only() {
        let url = "url = \"postgres://postgres@127.0.0.1:5432/capgate\"\n";
        // The key of the error and words of its message.
        type Refused = (&'static str, &'static str);
        let sqlite_only = ("store.sqlite_locking", "embedded SQLite store only");
        let table: [(String, Result<StoreConfig, Refused>); 6] = [
            (
                String::new(),
                Ok(StoreConfig::Sqlite(SqliteLocking::Exclusive)),
            ),
            (
                "sqlite_locking = \"exclusive\"".into(),
                Ok(StoreConfig::Sqlite(SqliteLocking::Exclusive)),
            ),
            (
                "sqlite_locking = \"shared\"".into(),
                Ok(StoreConfig::Sqlite(SqliteLocking::Shared)),
            ),
            (
                "sqlite_locking = \"none\"".into(),
                Err(("store.sqlite_locking", "not a locking mode")),
            ),
            (
                format!("{url}sqlite_locking = \"shared\""),
                Err(sqlite_only),
            ),
            (format!("{url}sqlite_locking = \"none\""), Err(sqlite_only)),
        ];
        for (text, expected) in table {
            match (parse(&text), expected) {
                (Ok(store), Ok(expected)) => assert_eq!(store, expected, "{text}"),
                (Err(error), Err((key, words))) => {
                    assert_eq!(error.key, key, "{text}");
                    assert!(error.to_string().contains(words), "{text}: {error}");
                }
                (got, expected) => panic!("{text}: {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn the_two_replica_examples_load_on_postgres() {
        for n in [1, 2] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("examples/replicas/replica-{n}.toml"));
            let config = crate::config::GatewayConfig::load(&path).expect("the example loads");
            assert!(
                matches!(config.store, StoreConfig::Postgres { .. }),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn bad_store_tables_name_the_key() {
        assert_eq!(parse("url = \"mysql://x\"").unwrap_err().key, "store.url");
        assert_eq!(parse("pool_size = 3").unwrap_err().key, "store");
        assert_eq!(
            parse("url = \"postgres://h/d\"\npool_size = 0")
                .unwrap_err()
                .key,
            "store.pool_size"
        );
        assert_eq!(
            parse("url = \"postgres://h/d\"\nreplica_id = \"a b\"")
                .unwrap_err()
                .key,
            "store.replica_id"
        );
        assert_eq!(
            parse("url_env = \"CAPGATE_TEST_SURELY_UNSET_VARIABLE\"")
                .unwrap_err()
                .key,
            "store.url_env"
        );
    }
}
