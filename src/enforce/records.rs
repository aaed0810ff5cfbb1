//! The decision log's records of requests: what was asked, by whom, what was decided and why,
//! with the configured arguments masked before anything is written.

use crate::audit::{DecisionRecord, Mode};
use crate::identity::CompositeActor;
use crate::policy::{Action, AttributeValue};

use super::pipeline::Trail;
use super::refusal::Refusal;
use super::Gateway;

impl Gateway {
    /// The record of a request as its trail stands: its decision, or the refusal that ended it.
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
        ..blank_record_parts(resource)
    }
}

/// A record of something capgate itself did or saw, not a request: a tool quarantined, a
/// definition accepted. Its actor is `capgate`, its tenant `-` (the whole gateway).
pub(super) fn new_system_record(action: &str, resource: &str) -> DecisionRecord {
    let mut record = DecisionRecord {
        tenant: "-".into(),
        actor: "capgate".into(),
        ..blank_record_parts(resource)
    };
    record.action = action.into();
    record
}

fn blank_record_parts(resource: &str) -> DecisionRecord {
    DecisionRecord {
        time: crate::policy::now_unix(),
        request_id: super::requests::new_request_id(),
        tenant: String::new(),
        run_id: None,
        action: String::new(),
        resource: resource.into(),
        decision: String::new(),
        reason: String::new(),
        policy_id: None,
        policy_version: String::new(),
        actor: String::new(),
        delegation_chain: Vec::new(),
        action_digest: None,
        obligations: Vec::new(),
        mode: Mode::Enforce,
        shadow_decision: None,
        downstream_outcome: None,
        added_latency_us: None,
        request: None,
        listing: None,
        refused_by: None,
        replay_of: None,
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
