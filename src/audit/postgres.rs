//! The decision log in PostgreSQL, for replicas: each replica appends its own hash chain
//! (chain id = its replica id) to the shared database, with the same group commit, records and
//! signed checkpoints as the SQLite log, and `capgate audit …` reads every chain back.
//!
//! One writer per chain: the writer holds a session advisory lock on its chain on its own
//! connection (never a pooled one), so a second process started with the same replica id is
//! refused instead of forking the chain. The writer thread owns a small runtime for its
//! connection; after a failed batch it reconnects (and re-locks) on the next one, reading the
//! chain's head from the database, so a replica that restarts resumes its chain.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::keys::checkpoint_message;
use super::log::DecisionLog;
use super::sink::{encode, CheckpointPolicy, Sink};
use super::{chain_hash, AuditError, DecisionRecord, GENESIS};
use crate::store::{advisory_key, postgres_failure};

/// How a chain held by another writer is reported.
const IN_USE: &str = "is being written by another process";

/// Longest wait for one database round of the writer; longer counts as a failed write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `id` can name a chain: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn is_valid_chain_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl DecisionLog {
    /// Opens replica `chain`'s log in the database at `url` (migrated already) and starts its
    /// writer; refused when another process writes that chain.
    pub fn open_postgres(
        url: &str,
        chain: &str,
        key: ed25519_dalek::SigningKey,
        checkpoints: CheckpointPolicy,
    ) -> Result<Self, AuditError> {
        if !is_valid_chain_id(chain) {
            return Err(AuditError(format!(
                "`{chain}` cannot be a replica id: use 1 to 64 letters, digits, '.', '_' or '-'"
            )));
        }
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| AuditError(format!("the store URL cannot be read: {e}")))?;
        let chain = chain.to_string();
        let database: Arc<str> = Arc::from(url);
        let mut log = Self::start_with(
            PathBuf::from(format!("postgres:decisions/{chain}")),
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| AuditError(format!("cannot start the log writer: {e}")))?;
                let mut sink = PostgresSink {
                    runtime,
                    config,
                    chain,
                    client: None,
                };
                // A restarted replica may find its previous process's session still closing:
                // wait a little for it to let go of the chain before refusing.
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                loop {
                    match sink.client() {
                        Ok(_) => break,
                        Err(error)
                            if error.contains(IN_USE) && std::time::Instant::now() < deadline =>
                        {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(error) => return Err(AuditError(error)),
                    }
                }
                Ok(Box::new(sink) as Box<dyn Sink>)
            },
            key,
            checkpoints,
        )?;
        log.database = Some(database);
        Ok(log)
    }
}

/// One replica's chain in the database.
struct PostgresSink {
    runtime: tokio::runtime::Runtime,
    config: tokio_postgres::Config,
    chain: String,
    /// The connection holding the chain's lock; `None` after a failure.
    client: Option<Client>,
}

impl PostgresSink {
    /// The connection, (re)connecting and taking the chain's lock when there is none.
    fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let (config, chain) = (self.config.clone(), self.chain.clone());
            let client = self.runtime.block_on(async move {
                let connect = tokio::time::timeout(WRITE_TIMEOUT, config.connect(NoTls));
                let (client, connection) = connect
                    .await
                    .map_err(|_| "the database did not answer".to_string())?
                    .map_err(|e| postgres_failure(e).0)?;
                tokio::spawn(connection);
                let locked: bool = client
                    .query_one(
                        "SELECT pg_try_advisory_lock($1)",
                        &[&advisory_key("decision-chain", &chain)],
                    )
                    .await
                    .map_err(|e| postgres_failure(e).0)?
                    .get(0);
                if !locked {
                    return Err(format!(
                        "decision chain `{chain}` {IN_USE}: give each replica its own [store] replica_id"
                    ));
                }
                client
                    .execute(
                        "INSERT INTO decision_chains (chain) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[&chain],
                    )
                    .await
                    .map_err(|e| postgres_failure(e).0)?;
                Ok::<_, String>(client)
            })?;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| "no connection to the decision log".to_string())
    }

    /// Runs one database round on the connection within the write timeout; a failure drops
    /// the connection (and with it the lock), to be made again for the next batch.
    fn round<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut Client, &str) -> Result<T, String>,
    ) -> Result<T, String> {
        self.client()?;
        let Self {
            runtime,
            client,
            chain,
            ..
        } = self;
        let Some(connection) = client.as_mut() else {
            return Err("no connection to the decision log".into());
        };
        let result = runtime.block_on(async {
            tokio::time::timeout(WRITE_TIMEOUT, work(connection, chain))
                .await
                .unwrap_or_else(|_| Err("the database did not answer in time".into()))
        });
        if result.is_err() {
            *client = None;
        }
        result
    }
}

fn text(error: tokio_postgres::Error) -> String {
    postgres_failure(error).0
}

/// The head of `chain`: its last record's sequence number and hash.
async fn head(
    tx: &tokio_postgres::Transaction<'_>,
    chain: &str,
) -> Result<Option<(i64, String)>, String> {
    Ok(tx
        .query_opt(
            "SELECT seq, hash FROM decisions WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
            &[&chain],
        )
        .await
        .map_err(text)?
        .map(|row| (row.get(0), row.get(1))))
}

impl Sink for PostgresSink {
    fn write_batch(
        &mut self,
        records: &[&DecisionRecord],
        key: &ed25519_dalek::SigningKey,
        every: i64,
    ) -> Result<Vec<i64>, String> {
        let encoded: Vec<String> = records.iter().map(|r| encode(r)).collect();
        self.round(async |client: &mut Client, chain: &str| {
            let tx = client.transaction().await.map_err(text)?;
            let (mut seq, mut prev) = head(&tx, chain).await?.unwrap_or((0, GENESIS.to_string()));
            let (mut seqs, mut prevs, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
            let mut signed = Vec::new();
            for json in &encoded {
                let hash = chain_hash(&prev, json);
                seq += 1;
                if seq % every == 0 {
                    signed.push((seq, hash.clone()));
                }
                seqs.push(seq);
                prevs.push(prev);
                hashes.push(hash.clone());
                prev = hash;
            }
            tx.execute(
                "INSERT INTO decisions (chain, seq, record, prev_hash, hash)
                 SELECT $1, * FROM unnest($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[])",
                &[&chain, &seqs, &encoded, &prevs, &hashes],
            )
            .await
            .map_err(text)?;
            for (seq, hash) in signed {
                sign(&tx, key, chain, seq, &hash).await?;
            }
            tx.commit().await.map_err(text)?;
            Ok(seqs)
        })
    }

    fn checkpoint_tail(&mut self, key: &ed25519_dalek::SigningKey) -> Result<bool, String> {
        self.round(async |client: &mut Client, chain: &str| {
            let tx = client.transaction().await.map_err(text)?;
            let Some((seq, hash)) = head(&tx, chain).await? else {
                return Ok(false);
            };
            let written = sign(&tx, key, chain, seq, &hash).await?;
            tx.commit().await.map_err(text)?;
            Ok(written)
        })
    }

    /// The database going away is expected to pass: what it could not take is written later.
    fn keeps_unwritten(&self) -> bool {
        true
    }

    fn recent(&mut self, n: usize) -> Result<Vec<String>, String> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        self.round(async |client: &mut Client, chain: &str| {
            Ok(client
                .query(
                    "SELECT record FROM decisions WHERE chain = $1 ORDER BY seq DESC LIMIT $2",
                    &[&chain, &limit],
                )
                .await
                .map_err(text)?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
    }
}

/// Signs a checkpoint over (`seq`, `hash`) unless there is one; whether it was written.
async fn sign(
    tx: &tokio_postgres::Transaction<'_>,
    key: &ed25519_dalek::SigningKey,
    chain: &str,
    seq: i64,
    hash: &str,
) -> Result<bool, String> {
    use ed25519_dalek::Signer;
    let signature = hex::encode(
        key.sign(checkpoint_message(seq, hash).as_bytes())
            .to_bytes(),
    );
    tx.execute(
        "INSERT INTO decision_checkpoints (chain, seq, hash, signature) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        &[&chain, &seq, &hash, &signature],
    )
    .await
    .map(|n| n > 0)
    .map_err(text)
}

/// One chain as read back: its records (seq, record, prev_hash, hash) and checkpoints
/// (seq, hash, signature), in order.
#[derive(Debug, Clone)]
pub struct Chain {
    pub id: String,
    pub rows: Vec<(i64, String, String, String)>,
    pub checkpoints: Vec<(i64, String, String)>,
}

/// Reads every chain from the database at `url`, ordered by chain id. Blocks (on a thread of
/// its own, so it may be called from anywhere).
pub fn read_chains(url: &str) -> Result<Vec<Chain>, AuditError> {
    let url = url.to_string();
    std::thread::spawn(move || read_chains_here(&url))
        .join()
        .map_err(|_| AuditError("reading the decision chains failed".into()))?
}

fn read_chains_here(url: &str) -> Result<Vec<Chain>, AuditError> {
    let failed = |e: tokio_postgres::Error| AuditError(postgres_failure(e).0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AuditError(e.to_string()))?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| AuditError(format!("cannot reach the database: {}", postgres_failure(e).0)))?;
        tokio::spawn(connection);
        let ids: Vec<String> = client
            .query("SELECT chain FROM decision_chains ORDER BY chain", &[])
            .await
            .map_err(failed)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut chains = Vec::new();
        for id in ids {
            let rows = client
                .query(
                    "SELECT seq, record, prev_hash, hash FROM decisions WHERE chain = $1 ORDER BY seq",
                    &[&id],
                )
                .await
                .map_err(failed)?
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
                .collect();
            let checkpoints = client
                .query(
                    "SELECT seq, hash, signature FROM decision_checkpoints WHERE chain = $1 ORDER BY seq",
                    &[&id],
                )
                .await
                .map_err(failed)?
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect();
            chains.push(Chain {
                id,
                rows,
                checkpoints,
            });
        }
        Ok(chains)
    })
}

/// The records of run `run`, over every chain in the database at `url`: (chain, record JSON),
/// in each chain's order.
pub(super) async fn run_records(url: &str, run: &str) -> Result<Vec<(String, String)>, AuditError> {
    let unreachable = |why: String| AuditError(format!("cannot reach the database: {why}"));
    let (client, connection) =
        tokio::time::timeout(WRITE_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| unreachable("it did not answer in time".into()))?
            .map_err(|e| unreachable(postgres_failure(e).0))?;
    let driver = tokio::spawn(connection);
    // The expression is the one `decisions_by_run` indexes.
    let rows = tokio::time::timeout(
        WRITE_TIMEOUT,
        client.query(
            "SELECT chain, record FROM decisions WHERE ((record::jsonb) ->> 'run_id') = $1
             ORDER BY chain, seq",
            &[&run],
        ),
    )
    .await
    .map_err(|_| AuditError("the database did not answer in time".into()))?
    .map_err(|e| AuditError(postgres_failure(e).0))?;
    drop(client);
    let _ = driver.await;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::record;
    use crate::store::test_db::TestDatabase;

    fn policy() -> CheckpointPolicy {
        CheckpointPolicy {
            every: 4,
            interval: Duration::from_millis(100),
        }
    }

    async fn database() -> Option<TestDatabase> {
        let db = TestDatabase::create("log").await?;
        crate::store::migrate_postgres(&db.options(1))
            .await
            .expect("migrate");
        Some(db)
    }

    /// Opens `chain`, waiting (up to 2 s) for a writer that is stopping to let go of it.
    async fn reopen(url: &str, chain: &str, key: &ed25519_dalek::SigningKey) -> DecisionLog {
        for _ in 0..40 {
            if let Ok(log) = DecisionLog::open_postgres(url, chain, key.clone(), policy()) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chain {chain} was not let go");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_replica_appends_its_own_chain_and_every_chain_verifies() {
        let Some(db) = database().await else {
            return;
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let public = key.verifying_key();
        let a = DecisionLog::open_postgres(&db.url, "replica-a", key.clone(), policy())
            .expect("open a");
        let b = DecisionLog::open_postgres(&db.url, "replica-b", key.clone(), policy())
            .expect("open b");
        for i in 0..10 {
            a.append(record(i));
            b.append(record(100 + i));
        }
        assert_eq!(a.append_durable(record(10)).await.expect("durable"), 11);
        b.flush().await.expect("flush");

        let refused = DecisionLog::open_postgres(&db.url, "replica-a", key.clone(), policy())
            .err()
            .expect("a second writer of one chain is refused");
        assert!(refused.0.contains("another process"), "{refused}");

        // A restarted replica resumes its chain.
        drop(a);
        let a = reopen(&db.url, "replica-a", &key).await;
        assert_eq!(a.append_durable(record(11)).await.expect("durable"), 12);

        let chains = read_chains(&db.url).expect("read");
        let ids: Vec<&str> = chains.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["replica-a", "replica-b"]);
        assert_eq!(chains[0].rows.len(), 12);
        assert_eq!(chains[1].rows.len(), 10);
        assert!(chains[0].checkpoints.len() >= 3, "every 4 records");
        for chain in &chains {
            let problems = super::super::verify_chain(&chain.rows, &chain.checkpoints, &[public]);
            assert!(problems.is_empty(), "{}: {problems:?}", chain.id);
        }

        // An edit in one chain is named there, and only there.
        let client = db.client().await;
        client
            .execute(
                "UPDATE decisions SET record = replace(record, 'req-', 'REQ-') WHERE chain = 'replica-b' AND seq = 3",
                &[],
            )
            .await
            .expect("tamper");
        let chains = read_chains(&db.url).expect("read");
        let edited = super::super::verify_chain(&chains[1].rows, &chains[1].checkpoints, &[public]);
        assert!(
            edited
                .iter()
                .any(|p| p.seq == 3 && p.problem.contains("edited")),
            "{edited:?}"
        );
        assert!(
            super::super::verify_chain(&chains[0].rows, &chains[0].checkpoints, &[public])
                .is_empty()
        );
        drop((a, b));
    }

    #[test]
    fn chain_ids_are_plain_names() {
        assert!(is_valid_chain_id("replica-0a1b.eu_1"));
        assert!(!is_valid_chain_id(""));
        assert!(!is_valid_chain_id("a b"));
        assert!(!is_valid_chain_id(&"x".repeat(65)));
    }
}
