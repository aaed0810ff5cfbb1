//! The request journal: how tests observe what actually reached the server.
//!
//! When `CASE_PLATFORM_JOURNAL` names a file, every received `tools/call`, `resources/read`
//! and `prompts/get` is appended to it as one JSON line *before* the work is done, e.g.
//! `{"method":"tools/call","name":"read_case","arguments":{..},"tenant":"acme","actor":{..},"pid":42}`.
//! Each line is written with a single `write_all` on a file opened in append mode, so lines
//! of several server processes sharing the file do not interleave.

use std::{
    fs::OpenOptions,
    io::Write,
    path::PathBuf,
    sync::{Mutex, PoisonError},
};

use serde_json::Value;

/// Environment variable naming the journal file.
pub const JOURNAL_ENV: &str = "CASE_PLATFORM_JOURNAL";

/// An append-only JSON-lines journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Journal {
    /// A journal writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// The journal named by `CASE_PLATFORM_JOURNAL`, if set and not empty.
    pub fn from_env() -> Option<Self> {
        std::env::var_os(JOURNAL_ENV)
            .filter(|p| !p.is_empty())
            .map(Self::new)
    }

    /// Appends `entry` as one line and flushes it to the file.
    pub fn record(&self, entry: &Value) -> std::io::Result<()> {
        let mut line = entry.to_string();
        line.push('\n');
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(line.as_bytes())?;
        file.flush()?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn appends_json_lines() {
        let path = std::env::temp_dir().join(format!(
            "case-platform-journal-test-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let journal = Journal::new(&path);
        journal.record(&json!({"n": 1})).expect("first");
        journal.record(&json!({"n": 2})).expect("second");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines, [json!({"n": 1}), json!({"n": 2})]);
        let _ = std::fs::remove_file(&path);
    }
}
