//! Decisions remembered: a bounded cache of the PDP's answers, so that a question asked again
//! costs a lookup instead of a Cedar evaluation. The key is everything an answer depends on:
//! the exact request (less its id and decision time, which decide nothing, and less the runtime
//! facts no policy in force reads), which loaded version is in effect, and the generation of
//! what is in force. Every swap of policies, shadow set or relationships starts a new
//! generation, and an answer of an older one is never served.

use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;

use super::contract::{Decision, Environment, PolicyRequest};

/// How many answers are kept (least recently and least often asked go first).
pub(super) const CAPACITY: usize = 4096;

/// The runtime fact that changes on every call of a run; left out of the key when no policy in
/// force reads it.
pub(super) const BUDGET_FACT: &str = "budget_remaining";

/// What an answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct DecisionKey {
    generation: u64,
    /// Index of the version in effect among those loaded in this generation.
    effective: Option<usize>,
    request: PolicyRequest,
}

/// The cache and the generation of what is in force.
pub(super) struct DecisionCache {
    answers: Cache<DecisionKey, Decision>,
    generation: AtomicU64,
}

impl DecisionCache {
    pub(super) fn new() -> Self {
        Self {
            answers: Cache::new(CAPACITY),
            generation: AtomicU64::new(0),
        }
    }

    /// The generation now. Read it before loading what is in force: an answer computed from
    /// state swapped in meanwhile is then stored under the older generation, never served to a
    /// reader of the newer one.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Called after every swap of what is in force (once its stores are done).
    pub(super) fn next_generation(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.answers.clear();
    }

    /// The key of `request`; `reads_budget` says whether a policy in force (enforced or
    /// shadow) reads the run budget.
    pub(super) fn key(
        generation: u64,
        effective: Option<usize>,
        request: &PolicyRequest,
        reads_budget: bool,
    ) -> DecisionKey {
        let mut request = request.clone();
        request.request_id.clear();
        request.environment = Environment::default();
        if !reads_budget {
            request.runtime.budget_remaining = None;
        }
        DecisionKey {
            generation,
            effective,
            request,
        }
    }

    pub(super) fn get(&self, key: &DecisionKey) -> Option<Decision> {
        self.answers.get(key)
    }

    pub(super) fn insert(&self, key: DecisionKey, decision: Decision) {
        self.answers.insert(key, decision);
    }

    /// Answers held now (for tests and status).
    pub(super) fn len(&self) -> usize {
        self.answers.len()
    }
}
