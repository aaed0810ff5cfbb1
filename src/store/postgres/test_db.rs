//! For tests (unit and integration): a database of its own for each test, on the server
//! `CAPGATE_TEST_DATABASE_URL` names (default the local one), dropped when the test ends.
//! Without a reachable server the test prints one SKIPPED line naming the variable (to the
//! process's stderr, past the test harness's capture) and passes.

use std::io::Write;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::PostgresOptions;

/// The variable naming the test server.
pub const TEST_DATABASE_URL_VAR: &str = "CAPGATE_TEST_DATABASE_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server's URL for tests.
pub fn server_url() -> String {
    std::env::var(TEST_DATABASE_URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// `url` with its database name replaced by `name` (query options kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn skipped(why: &str) {
    let line = format!(
        "SKIPPED: {why}; set {TEST_DATABASE_URL_VAR} to a PostgreSQL server URL to run this test\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A fresh database, dropped (connections and all) on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    server: String,
}

impl TestDatabase {
    /// Creates `capgate_<prefix>_<random>`; `None` (after printing SKIPPED) when no server.
    pub async fn create(prefix: &str) -> Option<Self> {
        let server = server_url();
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_postgres::connect(&server, NoTls),
        )
        .await;
        let (client, connection) = match connected {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => {
                skipped(&format!(
                    "no PostgreSQL server at {server} ({})",
                    super::failed(error).0
                ));
                return None;
            }
            Err(_) => {
                skipped(&format!("no PostgreSQL server answers at {server}"));
                return None;
            }
        };
        let driver = tokio::spawn(connection);
        let name = format!("capgate_{prefix}_{:012x}", rand::random::<u64>() >> 16);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("the test server lets us create a database");
        drop(client);
        let _ = driver.await;
        Some(Self {
            url: with_database(&server, &name),
            name,
            server,
        })
    }

    /// A plain connection to the test database (to look at it, or tamper with it).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("a connection to the test database");
        tokio::spawn(connection);
        client
    }

    pub fn options(&self, pool_size: usize) -> PostgresOptions {
        PostgresOptions {
            url: self.url.clone(),
            pool_size,
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&server, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_options_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
