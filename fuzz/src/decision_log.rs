//! The reference decision log (`fuzz/fixtures/decision-log.db`, written by a real gateway
//! serving real MCP requests; see `fuzz/README.md`) and the public half of the key its
//! checkpoints are signed with.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One chain read into memory: rows (seq, record, prev_hash, hash) and checkpoints (seq,
/// hash, signature), as `capgate::audit::verify_chain` takes them.
pub struct Reference {
    pub bytes: Vec<u8>,
    pub rows: Vec<(i64, String, String, String)>,
    pub checkpoints: Vec<(i64, String, String)>,
    pub key: ed25519_dalek::VerifyingKey,
}

pub fn fixtures() -> PathBuf {
    crate::repo().join("fuzz/fixtures")
}

/// Checkpoints of a log file, in order.
pub fn checkpoints(path: &Path) -> rusqlite::Result<Vec<(i64, String, String)>> {
    let connection = rusqlite::Connection::open(path)?;
    let mut statement =
        connection.prepare("SELECT seq, hash, signature FROM checkpoints ORDER BY seq")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    rows.collect()
}

/// The reference log, read once.
pub fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let path = fixtures().join("decision-log.db");
        let bytes = std::fs::read(&path).expect("the reference decision log");
        let rows = capgate::audit::read_all(&path).expect("the reference log reads");
        let checkpoints = checkpoints(&path).expect("the reference checkpoints read");
        let key = capgate::audit::parse_public_key(
            fixtures()
                .join("decision-log.pub")
                .to_str()
                .expect("a UTF-8 path"),
        )
        .expect("the reference log's public key");
        assert!(
            capgate::audit::verify_chain(&rows, &checkpoints, &[key]).is_empty(),
            "the reference log verifies"
        );
        assert!(!checkpoints.is_empty(), "the reference log has a checkpoint");
        Reference {
            bytes,
            rows,
            checkpoints,
            key,
        }
    })
}

/// A scratch file path for this process (in memory when `/dev/shm` exists).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("capgate-fuzz-{}-{name}", std::process::id()))
}

/// Writes `bytes` as the log at `path`, with no `-wal`/`-journal` left from before.
pub fn write_log(path: &Path, bytes: &[u8]) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    std::fs::write(path, bytes).expect("the scratch file is writable");
}
