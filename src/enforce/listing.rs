//! Discovery summaries: one decision-log record per `*/list` request, naming what the actor was
//! shown and what was hidden from it (with the decision, policy and reason for each).

use crate::audit::{DecisionRecord, HiddenEntry, ListingSummary, Mode, LISTING_SUMMARY};
use crate::identity::CompositeActor;
use crate::policy::{Action, Decision, PolicyEngine};

/// Collects one discovery request's outcome, capability by capability.
pub(super) struct Listing {
    action: Action,
    method: &'static str,
    policy_version: Option<String>,
    summary: ListingSummary,
}

impl Listing {
    pub(super) fn new(action: Action, method: &'static str) -> Self {
        Self {
            action,
            method,
            policy_version: None,
            summary: ListingSummary::default(),
        }
    }

    pub(super) fn show(&mut self, name: &str, decision: Option<&Decision>) {
        if let Some(decision) = decision {
            self.note_version(decision);
        }
        self.summary.shown.push(name.to_string());
    }

    /// A capability the PDP did not allow.
    pub(super) fn hide_decided(&mut self, name: &str, decision: &Decision) {
        self.note_version(decision);
        self.summary.hidden.push(HiddenEntry {
            name: name.to_string(),
            decision: decision.outcome.as_str().to_string(),
            policy_id: decision.policy_id.clone(),
            reason: decision.reason.clone(),
        });
    }

    /// A capability left out before any decision (a kill switch, a request that cannot be built).
    pub(super) fn hide_undecided(&mut self, name: &str, why: &str, reason: String) {
        self.summary.hidden.push(HiddenEntry {
            name: name.to_string(),
            decision: why.to_string(),
            policy_id: None,
            reason,
        });
    }

    fn note_version(&mut self, decision: &Decision) {
        if self.policy_version.is_none() {
            self.policy_version = Some(decision.policy_version.clone());
        }
    }

    /// The request's summary record.
    pub(super) fn into_record(
        mut self,
        actor: &CompositeActor,
        policy: &PolicyEngine,
    ) -> DecisionRecord {
        self.summary.shown.sort();
        self.summary.hidden.sort_by(|a, b| a.name.cmp(&b.name));
        let reason = format!(
            "{}: showed {} of {}",
            self.method,
            self.summary.shown.len(),
            self.summary.shown.len() + self.summary.hidden.len()
        );
        let version = self
            .policy_version
            .unwrap_or_else(|| policy.latest().label().to_string());
        let mut record = super::records::blank_record(
            actor,
            self.action,
            self.method,
            super::requests::new_request_id(),
        );
        record.decision = LISTING_SUMMARY.into();
        record.reason = reason;
        record.policy_version = version;
        record.listing = Some(self.summary);
        record.mode = Mode::Enforce;
        record
    }
}
