//! The decision log's records of requests: what was asked, by whom, what was decided and why,
//! with the configured arguments masked before anything is written.

use crate::audit::DecisionRecord;
use crate::identity::CompositeActor;
use crate::policy::{Action, AttributeValue};

use super::pipeline::Trail;
use super::refusal::Refusal;
use super::Gateway;

impl Gateway {
    /// The record of a request as its trail stands: its decision, or the refusal that ended it.
    ///
    /// Once the decision record is written (`trail.logged`), what this makes is the request's
    /// outcome record, which leaves the request out: the decision record under the same
    /// request id holds it, and writing, hashing and storing it twice per call was the largest
    /// part of the outcome record.
    pub(super) fn decision_record(
        &self,
        trail: &Trail<'_>,
        refusal: Option<&Refusal>,
    ) -> DecisionRecord {
        let decision = trail.decision.as_ref();
        let mut record = blank_record(
            trail.actor,
            trail.action,
            &trail.capability,
            trail.request_id.clone(),
        );
        record.mode = trail.mode;
        record.action_digest = trail.digest.as_ref().map(|d| d.0.clone());
        record.policy_version = decision
            .map(|d| d.policy_version.clone())
            .unwrap_or_else(|| self.policy.latest().label().to_string());
        if let Some(decision) = decision {
            record.decision = decision.outcome.as_str().into();
            record.reason = decision.reason.clone();
            record.policy_id = decision.policy_id.clone();
            record.obligations = decision.obligations.clone();
            record.shadow_decision = decision
                .shadow
                .as_ref()
                .map(|s| s.outcome.as_str().to_string());
        }
        if let Some(refusal) = refusal {
            record.decision = refusal.outcome().as_str().into();
            record.reason = refusal.detailed();
            record.refused_by = refusal.control().map(str::to_string);
        }
        if trail.logged {
            // An outcome record: the request is in the decision record under the same id.
            return record;
        }
        record.request = trail.request.as_ref().map(|request| {
            let mut logged = request.clone();
            for name in &self.audit.mask_arguments {
                if let Some(value) = logged.arguments.get_mut(name) {
                    *value = AttributeValue::String("***".into());
                }
            }
            logged
        });
        record
    }
}

/// A record with the actor and the capability filled in and nothing decided yet.
pub(super) fn blank_record(
    actor: &CompositeActor,
    action: Action,
    resource: &str,
    request_id: String,
) -> DecisionRecord {
    DecisionRecord {
        request_id,
        tenant: actor.tenant.clone(),
        run_id: actor.run_id.clone(),
        action: action.as_str().into(),
        actor: actor_label(actor),
        delegation_chain: actor.delegation_chain.clone(),
        ..DecisionRecord::blank(resource, String::new())
    }
}

/// The actor as records name it: `<user>/<agent>` for people reading logs (records keep the
/// tenant, run and delegation chain in their own fields; nothing is keyed on this text).
pub(super) fn actor_label(actor: &CompositeActor) -> String {
    format!(
        "{}/{}",
        actor.user.id,
        actor.agent.as_ref().map(|a| a.id.as_str()).unwrap_or("-")
    )
}
