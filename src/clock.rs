//! Time as the enforcement path sees it: the system clock in production, a clock a test sets
//! in tests, so that expiry (leases, approvals, grants) is tested without waiting.
//!
//! A whole gateway process under test moves its clock through a file: with
//! `CAPGATE_TEST_CLOCK_FILE` set, the enforcement clock is the system clock plus the whole
//! seconds that file holds (0 while it does not exist). It is for tests of the real binary;
//! the gateway warns at start when it is in force.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicI64, Ordering},
};

/// The environment variable naming an [`OffsetFileClock`]'s file.
pub const TEST_CLOCK_ENV: &str = "CAPGATE_TEST_CLOCK_FILE";

/// Seconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        crate::policy::now_unix()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(now: i64) -> Self {
        Self(AtomicI64::new(now))
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system clock moved forward by the seconds a file holds (see the module doc). A file
/// that cannot be read or parsed keeps the last offset read, and says so.
#[derive(Debug)]
pub struct OffsetFileClock {
    path: PathBuf,
    last: AtomicI64,
}

impl OffsetFileClock {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            last: AtomicI64::new(0),
        }
    }

    /// The clock `CAPGATE_TEST_CLOCK_FILE` names, if it is set and not empty.
    pub fn from_env() -> Option<Self> {
        std::env::var_os(TEST_CLOCK_ENV)
            .filter(|p| !p.is_empty())
            .map(Self::new)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn offset(&self) -> i64 {
        let read = match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.to_string()),
        };
        match read {
            Ok(offset) => {
                self.last.store(offset, Ordering::SeqCst);
                offset
            }
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "test clock file unreadable; its last offset holds");
                self.last.load(Ordering::SeqCst)
            }
        }
    }
}

impl Clock for OffsetFileClock {
    fn now(&self) -> i64 {
        crate::policy::now_unix().saturating_add(self.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_file_moves_the_clock_and_a_bad_one_keeps_the_last_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = OffsetFileClock::new(dir.path().join("offset"));
        let system = || crate::policy::now_unix();
        let within = |clock: &OffsetFileClock, offset: i64| {
            let before = system();
            let now = clock.now();
            (before + offset..=system() + offset).contains(&now)
        };
        assert!(within(&clock, 0), "no file: the system clock");
        std::fs::write(clock.path(), "3600\n").expect("write");
        assert!(within(&clock, 3600));
        std::fs::write(clock.path(), "soon").expect("write");
        assert!(within(&clock, 3600), "unparsable: the last offset");
        std::fs::write(clock.path(), "-60").expect("write");
        assert!(within(&clock, -60));
    }
}
