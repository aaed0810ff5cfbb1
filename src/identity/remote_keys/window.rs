//! The bound on refreshes caused by tokens: at most `limit` in any 60 seconds (a sliding
//! window, so that no burst at a minute's edge doubles it).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

/// When the last refreshes of the window were taken.
#[derive(Debug)]
pub(super) struct FetchWindow {
    limit: usize,
    taken: VecDeque<Instant>,
}

impl FetchWindow {
    pub(super) fn per_minute(limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Self {
            limit,
            taken: VecDeque::with_capacity(limit.min(64)),
        }
    }

    /// Takes one refresh at `now` if fewer than `limit` were taken in the 60 seconds before.
    pub(super) fn try_take(&mut self, now: Instant) -> bool {
        while self
            .taken
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= WINDOW)
        {
            self.taken.pop_front();
        }
        if self.taken.len() < self.limit {
            self.taken.push_back(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_limit_in_any_sixty_seconds() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut window = FetchWindow::per_minute(3);
        assert!(window.try_take(at(0)));
        assert!(window.try_take(at(10)));
        assert!(window.try_take(at(59)));
        assert!(!window.try_take(at(59)));
        // The first one leaves the window at 60 s; the others are still in it.
        assert!(window.try_take(at(60)));
        assert!(!window.try_take(at(69)));
        assert!(window.try_take(at(70)));
        assert!(!window.try_take(at(118)));
        assert!(window.try_take(at(119)));
    }

    #[test]
    fn a_limit_of_zero_takes_nothing() {
        let mut window = FetchWindow::per_minute(0);
        assert!(!window.try_take(Instant::now()));
    }
}
