//! Reading the log newest first, for the admin API and the console: the records a page shows
//! (a visitor decides which match and when to stop), one record by its place in its chain, and
//! each chain's verification status (verified up to which record, the last signed checkpoint).
//!
//! Every question first waits for what the log has queued (`flush`), so a page shows the call
//! that was just made. A SQLite log is read backwards by sequence number, stopping early; a
//! replica's log in PostgreSQL is read whole and merged newest first across chains.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::verify::{verify_chain, ChainProblem};
use super::{AuditError, DecisionLog, DecisionRecord};

/// How far back a scan may find records a little older than the one before them: records are
/// stamped when they are built and chained when they are written, so concurrent calls
/// interleave by up to this much.
const TIME_SLACK_SECONDS: i64 = 60;

/// A record with its place: its chain (replicas on PostgreSQL; `None` for the SQLite log) and
/// its sequence number there.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub chain: Option<String>,
    pub seq: i64,
    pub hash: String,
    pub record: DecisionRecord,
}

impl Found {
    /// Where a scan that should continue after this record starts.
    pub fn place(&self) -> Place {
        Place {
            time: self.record.time,
            chain: self.chain.clone(),
            seq: self.seq,
        }
    }
}

/// A place in the log, newest-first order: a scan from it visits what comes after it in that
/// order (older records). In a SQLite log only `seq` counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub time: i64,
    pub chain: Option<String>,
    pub seq: i64,
}

impl Place {
    /// `time.seq` or `time.seq.chain`, as a page's cursor.
    pub fn encode(&self) -> String {
        match &self.chain {
            Some(chain) => format!("{}.{}.{chain}", self.time, self.seq),
            None => format!("{}.{}", self.time, self.seq),
        }
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let time = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let chain = parts.next().map(str::to_string);
        Some(Self { time, chain, seq })
    }

    /// The newest-first order key: later time first, then chain, then higher seq first.
    fn comes_after(&self, other: &Place) -> bool {
        (
            std::cmp::Reverse(self.time),
            &self.chain,
            std::cmp::Reverse(self.seq),
        ) > (
            std::cmp::Reverse(other.time),
            &other.chain,
            std::cmp::Reverse(other.seq),
        )
    }
}

/// Where a scan starts and where it gives up.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Start after this place (exclusive); from the newest record when `None`.
    pub after: Option<Place>,
    /// Stop at records older than this (unix seconds, give or take [`TIME_SLACK_SECONDS`]).
    pub since: Option<i64>,
    /// Stop after visiting this many records (0: no limit).
    pub max_records: usize,
}

/// What a visitor says after each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Continue,
    Stop,
}

/// How a scan ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanEnd {
    /// Records visited.
    pub scanned: usize,
    /// The scan reached the log's beginning or `since`: nothing older matches.
    pub complete: bool,
    /// The last record visited, to continue from when the scan did not complete.
    #[serde(skip)]
    pub last: Option<Place>,
}

/// One chain's verification status.
#[derive(Debug, Clone, Serialize)]
pub struct ChainStatus {
    /// The replica's chain id; `None` for the SQLite log.
    pub chain: Option<String>,
    pub records: usize,
    /// The last record's sequence number (0 for an empty log).
    pub last_seq: i64,
    /// Every record up to this one verifies (hash chain and signed checkpoints).
    pub verified_up_to: i64,
    pub intact: bool,
    /// The problems found (at most 20), each naming its record.
    pub problems: Vec<ChainProblem>,
    pub problem_count: usize,
    /// The last signed checkpoint: its record and that record's time.
    pub last_checkpoint: Option<CheckpointInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointInfo {
    pub seq: i64,
    pub time: Option<i64>,
}

type Row = (i64, String, String, String);

fn sqlite_error(error: rusqlite::Error) -> AuditError {
    AuditError(format!("reading the decision log: {error}"))
}

fn parse(chain: Option<String>, seq: i64, json: &str, hash: String) -> Result<Found, AuditError> {
    let record: DecisionRecord = serde_json::from_str(json)
        .map_err(|e| AuditError(format!("record {seq} cannot be read: {e}")))?;
    Ok(Found {
        chain,
        seq,
        hash,
        record,
    })
}

/// Whether a scan that met `record` has gone past `since`.
fn past(since: Option<i64>, record: &DecisionRecord) -> bool {
    since.is_some_and(|since| record.time < since.saturating_sub(TIME_SLACK_SECONDS))
}

fn scan_sqlite<T>(
    path: &Path,
    scan: &Scan,
    state: &mut T,
    visit: &mut impl FnMut(&mut T, Found) -> Visit,
) -> Result<ScanEnd, AuditError> {
    let connection = Connection::open(path).map_err(sqlite_error)?;
    connection
        .busy_timeout(std::time::Duration::from_millis(1500))
        .map_err(sqlite_error)?;
    let mut statement = connection
        .prepare("SELECT seq, record, hash FROM decisions WHERE seq < ?1 ORDER BY seq DESC")
        .map_err(sqlite_error)?;
    let before = scan.after.as_ref().map_or(i64::MAX, |p| p.seq);
    let mut rows = statement.query(params![before]).map_err(sqlite_error)?;
    let mut end = ScanEnd::default();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        let seq: i64 = row.get(0).map_err(sqlite_error)?;
        let json: String = row.get(1).map_err(sqlite_error)?;
        let found = parse(None, seq, &json, row.get(2).map_err(sqlite_error)?)?;
        if past(scan.since, &found.record) {
            end.complete = true;
            return Ok(end);
        }
        end.scanned += 1;
        end.last = Some(found.place());
        if visit(state, found) == Visit::Stop {
            return Ok(end);
        }
        if scan.max_records > 0 && end.scanned >= scan.max_records {
            return Ok(end);
        }
    }
    end.complete = true;
    Ok(end)
}

fn scan_chains<T>(
    url: &str,
    scan: &Scan,
    state: &mut T,
    visit: &mut impl FnMut(&mut T, Found) -> Visit,
) -> Result<ScanEnd, AuditError> {
    let mut all = Vec::new();
    for chain in super::read_chains(url)? {
        for (seq, json, _, hash) in chain.rows {
            all.push(parse(Some(chain.id.clone()), seq, &json, hash)?);
        }
    }
    all.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.record.time),
            &a.chain,
            std::cmp::Reverse(a.seq),
        )
            .cmp(&(
                std::cmp::Reverse(b.record.time),
                &b.chain,
                std::cmp::Reverse(b.seq),
            ))
    });
    let mut end = ScanEnd::default();
    for found in all {
        if let Some(after) = &scan.after {
            if !found.place().comes_after(after) {
                continue;
            }
        }
        if past(scan.since, &found.record) {
            end.complete = true;
            return Ok(end);
        }
        end.scanned += 1;
        end.last = Some(found.place());
        if visit(state, found) == Visit::Stop {
            return Ok(end);
        }
        if scan.max_records > 0 && end.scanned >= scan.max_records {
            return Ok(end);
        }
    }
    end.complete = true;
    Ok(end)
}

fn status_of(
    chain: Option<String>,
    rows: &[Row],
    checkpoints: &[(i64, String, String)],
    keys: &[ed25519_dalek::VerifyingKey],
) -> ChainStatus {
    let problems = verify_chain(rows, checkpoints, keys);
    let last_seq = rows.last().map_or(0, |r| r.0);
    let first_problem = problems.iter().map(|p| p.seq).min();
    let time_of = |seq: i64| {
        rows.iter()
            .find(|r| r.0 == seq)
            .and_then(|r| serde_json::from_str::<DecisionRecord>(&r.1).ok())
            .map(|r| r.time)
    };
    let last_checkpoint = checkpoints
        .iter()
        .map(|c| c.0)
        .filter(|seq| *seq <= last_seq)
        .max()
        .map(|seq| CheckpointInfo {
            seq,
            time: time_of(seq),
        });
    ChainStatus {
        chain,
        records: rows.len(),
        last_seq,
        verified_up_to: first_problem.map_or(last_seq, |seq| (seq - 1).max(0)),
        intact: problems.is_empty(),
        problem_count: problems.len(),
        problems: problems.into_iter().take(20).collect(),
        last_checkpoint,
    }
}

fn sqlite_status(
    path: &Path,
    keys: &[ed25519_dalek::VerifyingKey],
) -> Result<ChainStatus, AuditError> {
    let rows = super::read_all(path)?;
    let connection = Connection::open(path).map_err(sqlite_error)?;
    let mut statement = connection
        .prepare("SELECT seq, hash, signature FROM checkpoints ORDER BY seq")
        .map_err(sqlite_error)?;
    let checkpoints = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map_err(sqlite_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite_error)?;
    Ok(status_of(None, &rows, &checkpoints, keys))
}

fn sqlite_find(path: &Path, seq: i64) -> Result<Option<Found>, AuditError> {
    let connection = Connection::open(path).map_err(sqlite_error)?;
    let row: Option<(String, String)> = connection
        .query_row(
            "SELECT record, hash FROM decisions WHERE seq = ?1",
            params![seq],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(sqlite_error)?;
    row.map(|(json, hash)| parse(None, seq, &json, hash))
        .transpose()
}

async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, AuditError> + Send + 'static,
) -> Result<R, AuditError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AuditError(format!("reading the decision log failed: {e}")))?
}

impl DecisionLog {
    /// Visits committed records newest first (see [`Scan`]) with `visit`, which owns `state`;
    /// the state and how the scan ended.
    pub async fn newest_first<T, F>(
        &self,
        scan: Scan,
        mut state: T,
        mut visit: F,
    ) -> Result<(T, ScanEnd), AuditError>
    where
        T: Send + 'static,
        F: FnMut(&mut T, Found) -> Visit + Send + 'static,
    {
        self.flush().await?;
        let path = self.path().to_path_buf();
        let database = self.database.clone();
        blocking(move || {
            let end = match &database {
                Some(url) => scan_chains(url, &scan, &mut state, &mut visit)?,
                None => scan_sqlite(&path, &scan, &mut state, &mut visit)?,
            };
            Ok((state, end))
        })
        .await
    }

    /// The record at `seq` (of `chain`, for replicas on PostgreSQL).
    pub async fn find(&self, chain: Option<String>, seq: i64) -> Result<Option<Found>, AuditError> {
        self.flush().await?;
        let path = self.path().to_path_buf();
        let database = self.database.clone();
        blocking(move || match (&database, chain) {
            (None, _) => sqlite_find(&path, seq),
            (Some(url), Some(chain)) => {
                let found = super::read_chains(url)?
                    .into_iter()
                    .filter(|c| c.id == chain)
                    .flat_map(|c| c.rows)
                    .find(|r| r.0 == seq);
                found
                    .map(|(seq, json, _, hash)| parse(Some(chain.clone()), seq, &json, hash))
                    .transpose()
            }
            (Some(_), None) => Ok(None),
        })
        .await
    }

    /// Verifies every chain against `keys` (checkpoints must verify with one of them).
    pub async fn chain_status(
        &self,
        keys: Vec<ed25519_dalek::VerifyingKey>,
    ) -> Result<Vec<ChainStatus>, AuditError> {
        self.flush().await?;
        let path = self.path().to_path_buf();
        let database = self.database.clone();
        blocking(move || match &database {
            None => Ok(vec![sqlite_status(&path, &keys)?]),
            Some(url) => Ok(super::read_chains(url)?
                .into_iter()
                .map(|chain| status_of(Some(chain.id), &chain.rows, &chain.checkpoints, &keys))
                .collect()),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{filled, opened, signing_key, tamper};

    #[tokio::test]
    async fn a_scan_goes_newest_first_and_continues_where_it_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), 9).await;
        let log = opened(dir.path());
        let take = |n: usize| {
            move |seen: &mut Vec<i64>, found: Found| {
                seen.push(found.seq);
                if seen.len() >= n {
                    Visit::Stop
                } else {
                    Visit::Continue
                }
            }
        };
        let (first, end) = log
            .newest_first(Scan::default(), Vec::new(), take(4))
            .await
            .expect("scan");
        assert_eq!(first, [10, 9, 8, 7]);
        assert!(!end.complete);
        let after = end.last.expect("a place");
        assert_eq!(Place::decode(&after.encode()), Some(after.clone()));
        let scan = Scan {
            after: Some(after),
            ..Scan::default()
        };
        let (rest, end) = log
            .newest_first(scan, Vec::new(), take(100))
            .await
            .expect("scan");
        assert_eq!(rest, [6, 5, 4, 3, 2, 1]);
        assert!(end.complete);
        let found = log.find(None, 3).await.expect("find").expect("record 3");
        assert_eq!(found.seq, 3);
        assert!(log.find(None, 99).await.expect("find").is_none());
    }

    #[tokio::test]
    async fn the_status_says_how_far_the_chain_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), 9).await;
        let key = signing_key(dir.path()).expect("key").verifying_key();
        let log = opened(dir.path());
        let status = log.chain_status(vec![key]).await.expect("status");
        assert_eq!(status.len(), 1);
        assert!(status[0].intact, "{:?}", status[0]);
        assert_eq!(status[0].verified_up_to, status[0].last_seq);
        drop(log);
        tamper(
            dir.path(),
            "UPDATE decisions SET record = replace(record, '\"allow\"', '\"deny\"') WHERE seq = 4",
        );
        let log = opened(dir.path());
        let status = log.chain_status(vec![key]).await.expect("status");
        assert!(!status[0].intact);
        assert_eq!(status[0].verified_up_to, 3, "{:?}", status[0]);
    }
}
