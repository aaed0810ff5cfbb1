//! The one path every capability request takes, whatever its kind:
//!
//! resolve → stop → decide and admit (one store transaction) → record (durable first for side
//! effects) → stop again → forward → settle → answer.
//!
//! Every request ends in [`Gateway::finish`]: one decision record under its own request id
//! (plus one outcome record when it was forwarded), one increment of
//! `capgate_decisions_total` with its final outcome, its span attributes, and — for a
//! refusal — one agent message rendered per `explain_to_agent`.

use std::time::{Duration, Instant};

use rmcp::model::ErrorData;
use serde_json::{json, Value};

use crate::audit::Mode;
use crate::config::{AgentExplanations, DurableFor};
use crate::downstream::DownstreamError;
use crate::identity::CompositeActor;
use crate::metrics::{DecisionLabels, Ended, ToolEvent};
use crate::policy::{Action, ActorFacts, Decision, Outcome, PolicyRequest};
use crate::store::{AdmissionKeys, AdmissionState, BreakGlassGrant, Settlement};

use super::admission::{Admission, Admitted, Verdict};
use super::approval_rules::ActionDigest;
use super::capability::{Capability, Hop, Target};
use super::refusal::Refusal;
use super::requests::{new_request_id, Asker};
use super::server_asks::ServerAsker;
use super::{
    downstream_meta, CallMeta, Gateway, APPROVAL_META_KEY, BREAK_GLASS_META_KEY, DEGRADED_META_KEY,
    DRY_RUN_META_KEY, REPLAY_META_KEY,
};

/// What an idempotency key keeps when its call may have acted but its outcome is unknown.
const UNFINISHED: &str = "null";

/// What one request has gathered on its way, for its records.
pub(super) struct Trail<'a> {
    pub actor: &'a CompositeActor,
    pub action: Action,
    pub request_id: String,
    pub started: Instant,
    /// The exposed name once resolved; until then what the client asked for.
    pub capability: String,
    pub request: Option<PolicyRequest>,
    pub decision: Option<Decision>,
    pub digest: Option<ActionDigest>,
    pub mode: Mode,
    /// The decision record is written; what follows goes into the outcome record.
    pub logged: bool,
    pub downstream_time: Duration,
}

/// How a request that was not refused ended.
enum Done<O> {
    Forwarded { output: O, downstream: &'static str },
    Replayed { output: O, original: String },
}

impl Gateway {
    /// Runs one `tools/call`, `resources/read` or `prompts/get` through the pipeline.
    pub(super) async fn execute<C: Capability>(
        &self,
        actor: &CompositeActor,
        call: C,
        meta: &CallMeta,
    ) -> Result<C::Output, ErrorData> {
        let mut trail = Trail {
            actor,
            action: call.action(),
            request_id: new_request_id(),
            started: Instant::now(),
            capability: super::echo::echo(call.requested()),
            request: None,
            decision: None,
            digest: None,
            mode: Mode::Enforce,
            logged: false,
            downstream_time: Duration::ZERO,
        };
        let ended = self.run(&mut trail, &call, meta).await;
        self.finish::<C>(trail, ended, &call).await
    }

    async fn run<C: Capability>(
        &self,
        trail: &mut Trail<'_>,
        call: &C,
        meta: &CallMeta,
    ) -> Result<Done<C::Output>, Refusal> {
        let actor = trail.actor;
        // Resolve: an unknown or uncontracted name is refused whatever the downstream offers.
        let (target, bound) = call.resolve(self)?;
        trail.capability = target.name.clone();

        // Stop what admins stopped.
        self.controls.stop(actor, &target)?;
        self.downstreams
            .get(&target.server)
            .and_then(|server| server.available())
            .map_err(Refusal::DownstreamUnavailable)?;

        // Bind the arguments that name entities.
        let facts = ActorFacts::from_actor(actor);
        let asker = Asker {
            facts: &facts,
            tenant: &actor.tenant,
            run_id: actor.run_id.as_deref(),
        };
        let mut request = call.policy_request(&bound, asker)?;
        request.request_id = trail.request_id.clone();
        let run = self.controls.run_of(actor)?;
        let arguments = call.arguments();
        let digest = ActionDigest::of(
            actor,
            &target.name,
            &target.definition_hash,
            &arguments,
            &run,
        );

        // Decide and admit in one store transaction.
        let now = self.controls.now();
        let mut admission = Admission {
            gateway: self,
            actor,
            target: &target,
            key: meta.idempotency_key.as_deref(),
            approval: meta.approval.as_deref(),
            digest: &digest,
            arguments: &arguments,
            request_id: &trail.request_id,
            now,
            degraded: false,
        };
        let keys = AdmissionKeys {
            run,
            capability: target.name.clone(),
            idempotency: admission.scope(),
            approval: meta.approval.clone(),
            forget_before: now - self.controls.config().idempotency_retention_seconds,
        };
        let mut verdict = None;
        let admitted = self
            .controls
            .store()
            .admit(&keys, &mut |state: &AdmissionState| {
                let (reached, writes) = admission.rule(state, &mut request);
                verdict = Some(reached);
                writes
            })
            .await;
        let verdict = match (admitted, verdict) {
            (Ok(_), Some(verdict)) => verdict,
            (Ok(_), None) => {
                return Err(Refusal::StoreUnavailable(crate::store::StoreError(
                    "the admission transaction did not run its rule".into(),
                )))
            }
            (Err(error), _) if target.fail_open => {
                tracing::warn!(target: "capgate::decision", capability = %target.name, %error, "fail_open read passes degraded");
                admission.degraded = true;
                let (verdict, writes) = admission.rule(&AdmissionState::default(), &mut request);
                if writes.claim.is_some() || writes.consume_approval {
                    return Err(Refusal::StoreUnavailable(error));
                }
                // Decided without the store: whatever the decision, its record says so.
                trail.mode = Mode::Degraded;
                verdict
            }
            (Err(error), _) => return Err(Refusal::StoreUnavailable(error)),
        };
        trail.digest = Some(digest);
        trail.request = Some(request);
        let admitted = match verdict {
            Verdict::Replay { result, original } => {
                if result == UNFINISHED {
                    let key = meta.idempotency_key.clone().unwrap_or_default();
                    return Err(Refusal::Unfinished(key));
                }
                let output = serde_json::from_str::<C::Output>(&result).map_err(|e| {
                    Refusal::StoreUnavailable(crate::store::StoreError(format!(
                        "the stored result of this idempotency key cannot be read: {e}"
                    )))
                })?;
                return Ok(Done::Replayed { output, original });
            }
            Verdict::Refused(refusal) => {
                if let Some(decision) = refusal.decision() {
                    trail.decision = Some(decision.clone());
                }
                return Err(refusal);
            }
            Verdict::Admitted(admitted) => *admitted,
        };
        let Admitted {
            decision,
            obligations,
            claim,
            grant,
            mode,
        } = admitted;
        trail.mode = mode;
        trail.decision = Some(decision);
        // Refusing from here on gives the claim back: the call was certainly not performed.
        let released = |refusal: Refusal| async {
            self.release(claim.as_ref()).await;
            refusal
        };
        if let Some(grant) = &grant {
            if let Err(refusal) = self.break_glass_used(trail, grant).await {
                return Err(released(refusal).await);
            }
        }
        for tag in obligations.audit_tags() {
            tracing::info!(target: "capgate::audit", tag, capability = %target.name, tenant = %actor.tenant, user = %actor.user.id, request_id = %trail.request_id, "audited call");
        }

        // Record the decision; a side effect goes ahead only once its record is durable.
        let record = self.decision_record(trail, None);
        let durable =
            target.effect.is_side_effect() || self.audit.durable_for == DurableFor::EveryCall;
        if durable {
            if let Err(error) = self.log.append_durable(record).await {
                return Err(released(Refusal::DecisionLogUnavailable(error.to_string())).await);
            }
        } else {
            self.log.append(record);
        }
        trail.logged = true;

        // A switch flipped while this call waited is in force now; the gate keeps a flip from
        // answering while this call is between its check and the downstream's answer.
        // A nested request runs inside a call that holds the gate already.
        let gate = if C::NESTED {
            None
        } else {
            Some(self.controls.forwarding().await)
        };
        if let Err(refusal) = self.controls.stop(actor, &target) {
            drop(gate);
            return Err(released(refusal).await);
        }

        // Forward, as the gateway, with the actor's context in `_meta`.
        let downstream_started = Instant::now();
        // What the downstream asks of the client meanwhile is decided for this call's actor.
        let asker = call
            .ask_origin(&bound)
            .zip(meta.relay.as_ref())
            .map(|(origin, relay)| ServerAsker {
                gateway: self,
                actor,
                tool: origin.tool.clone(),
                exposed: target.name.clone(),
                arguments: origin.arguments.clone(),
                relay,
                obligations: &obligations,
            });
        let call_digest = trail
            .digest
            .as_ref()
            .map(|d| d.0.clone())
            .unwrap_or_default();
        let hop = Hop {
            meta: downstream_meta(actor, &meta.forward),
            relay: meta.relay.as_ref(),
            obligations: &obligations,
            asks: asker
                .as_ref()
                .map(|asker| asker as &dyn super::input_rounds::InputRounds),
            call: &call_digest,
            resume: meta.resume.as_ref(),
        };
        let forwarded = call.forward(self, &target, &bound, hop).await;
        drop(gate);
        trail.downstream_time = downstream_started.elapsed();
        self.observe_downstream(&target, trail.downstream_time, forwarded.is_err());
        let mut output = match forwarded {
            Ok(output) => output,
            // Certainly not performed: the key may be used again.
            Err(error @ DownstreamError::Unavailable { .. }) => {
                return Err(released(Refusal::DownstreamUnavailable(error)).await)
            }
            // Withheld before it was sent: certainly not performed.
            Err(DownstreamError::Withheld { reason }) => {
                return Err(released(Refusal::Obligation(reason)).await)
            }
            // A retry's input refused before anything was sent.
            Err(DownstreamError::InputState(problem)) => {
                return Err(released(Refusal::InputState(problem)).await)
            }
            // Maybe performed (timeout, crash mid-call): the key stays spent.
            Err(error) => {
                let refusal = Refusal::DownstreamFailed(error);
                self.settle(claim.as_ref(), C::unfinished(refusal.safe()).as_ref())
                    .await;
                return Err(refusal);
            }
        };
        let downstream = C::downstream_outcome(&output);

        // Settle: obligations on every content kind, marks, the result kept for replays.
        if let Err(failure) = C::apply_obligations(&mut output, &obligations) {
            let refusal = Refusal::Obligation(failure);
            self.settle(claim.as_ref(), C::unfinished(refusal.safe()).as_ref())
                .await;
            return Err(refusal);
        }
        mark::<C>(&mut output, mode, grant.as_ref());
        if C::interim(&output) {
            // Not the result yet: the retry with the client's input uses the key again.
            self.release(claim.as_ref()).await;
        } else {
            self.settle(claim.as_ref(), Some(&output)).await;
        }
        Ok(Done::Forwarded { output, downstream })
    }

    /// Gives an idempotency key back: its call was certainly not performed (or not yet).
    async fn release(&self, claim: Option<&crate::store::IdempotencyScope>) {
        let Some(scope) = claim else { return };
        if let Err(error) = self
            .controls
            .store()
            .settle(scope, &Settlement::Released)
            .await
        {
            tracing::error!(%error, "could not release an idempotency claim; it frees when its lease passes");
        }
    }

    /// Stores a performed call's result for replays: the result, or (when it cannot be shown or
    /// is unknown) what the kind answers for such a call, or the [`UNFINISHED`] marker.
    async fn settle<O: serde::Serialize>(
        &self,
        claim: Option<&crate::store::IdempotencyScope>,
        output: Option<&O>,
    ) {
        let Some(scope) = claim else { return };
        let stored = match output.map(serde_json::to_string) {
            Some(Ok(text)) => text,
            Some(Err(_)) | None => UNFINISHED.to_string(),
        };
        if let Err(error) = self
            .controls
            .store()
            .settle(scope, &Settlement::Completed(stored))
            .await
        {
            tracing::error!(%error, "could not store the idempotent result; the key stays claimed until its lease passes");
        }
    }

    async fn break_glass_used(
        &self,
        trail: &Trail<'_>,
        grant: &BreakGlassGrant,
    ) -> Result<(), Refusal> {
        let actor = trail.actor;
        tracing::warn!(target: "capgate::break_glass", grant = %grant.id, capability = %trail.capability, user = %actor.user.id, "BREAK-GLASS: call allowed against policy");
        self.metrics
            .count(ToolEvent::BreakGlassUse, &trail.capability);
        self.controls
            .record_break_glass_use(grant)
            .await
            .map_err(Refusal::StoreUnavailable)
    }

    fn observe_downstream(&self, target: &Target, time: Duration, failed: bool) {
        self.metrics
            .observe_downstream(&target.server, time, failed);
    }

    /// Ends a request: its records, its count, its span, its answer.
    async fn finish<C: Capability>(
        &self,
        trail: Trail<'_>,
        ended: Result<Done<C::Output>, Refusal>,
        call: &C,
    ) -> Result<C::Output, ErrorData> {
        let overhead = trail
            .started
            .elapsed()
            .saturating_sub(trail.downstream_time);
        match ended {
            Ok(Done::Forwarded { output, downstream }) => {
                // The latency capgate adds to a forwarded call.
                self.metrics.observe_overhead(overhead);
                let mut record = self.decision_record(&trail, None);
                record.downstream_outcome = Some(downstream.to_string());
                record.added_latency_us = Some(overhead.as_micros() as u64);
                self.log.append(record);
                self.count(&trail, Ended::Decided(Outcome::Allow), None);
                if trail.mode == Mode::Degraded {
                    self.metrics
                        .count(ToolEvent::DegradedCall, &trail.capability);
                }
                Ok(output)
            }
            Ok(Done::Replayed {
                mut output,
                original,
            }) => {
                let mut record = self.decision_record(&trail, None);
                record.decision = "replay".into();
                record.reason = format!("idempotency replay of request {original}");
                record.replay_of = Some(original);
                self.log.append(record);
                self.count(&trail, Ended::Replay, None);
                let meta = C::meta_mut(&mut output).get_or_insert_with(Default::default);
                meta.0.insert(REPLAY_META_KEY.into(), Value::Bool(true));
                Ok(output)
            }
            Err(refusal) => {
                let approval = match &refusal {
                    Refusal::Policy(decision) if decision.outcome == Outcome::RequireApproval => {
                        self.open_approval(&trail, decision, call).await
                    }
                    _ => None,
                };
                let (refusal, approval) = match approval {
                    Some(Err(failed)) => (failed, None),
                    Some(Ok(approval)) => (refusal, Some(approval)),
                    None => (refusal, None),
                };
                let mut record = self.decision_record(&trail, Some(&refusal));
                if trail.logged {
                    record.downstream_outcome = Some(refusal.downstream_outcome().into());
                }
                self.log.append(record);
                self.count(&trail, Ended::Decided(refusal.outcome()), Some(&refusal));
                self.metrics_for_control(&refusal, &trail.capability);
                let mut message = match self.explain_to_agent {
                    AgentExplanations::Safe => refusal.safe(),
                    AgentExplanations::Detailed => refusal.detailed(),
                };
                let mut summary = self.summary(&trail, &refusal, &message);
                if let Some(approval) = approval {
                    message = format!(
                        "{message}; approval request {} was created for this exact call (approver role: {}, expires at {}). Once it is approved, retry the same call with _meta[\"{APPROVAL_META_KEY}\"] = \"{}\"",
                        approval.id, approval.approver_role, approval.expires_at, approval.id
                    );
                    summary["approval"] = json!({
                        "id": approval.id,
                        "approver_role": approval.approver_role,
                        "expires_at": approval.expires_at,
                        "status": approval.status,
                    });
                }
                C::refused(&refusal, message, summary)
            }
        }
    }

    /// Opens the approval request a `require_approval` decision asks for.
    async fn open_approval<C: Capability>(
        &self,
        trail: &Trail<'_>,
        decision: &Decision,
        call: &C,
    ) -> Option<Result<crate::store::Approval, Refusal>> {
        let digest = trail.digest.as_ref()?;
        let opened = self
            .controls
            .request_approval(
                trail.actor,
                &trail.capability,
                digest,
                &call.arguments(),
                decision.approver_role.as_deref(),
                &decision.policy_version,
            )
            .await
            .map_err(Refusal::StoreUnavailable);
        if let Ok(approval) = &opened {
            tracing::info!(target: "capgate::decision", approval = %approval.id, capability = %trail.capability, approver_role = %approval.approver_role, "approval requested");
            self.metrics
                .count(ToolEvent::ApprovalRequested, &trail.capability);
        }
        Some(opened)
    }

    /// One increment of the decisions counter, and the span's attributes, per request.
    fn count(&self, trail: &Trail<'_>, ended: Ended, refusal: Option<&Refusal>) {
        let outcome = ended.as_str();
        let version = trail
            .decision
            .as_ref()
            .map(|d| d.policy_version.clone())
            .unwrap_or_else(|| self.policy.latest().label().to_string());
        let control = refusal.and_then(Refusal::control);
        let refused_by = control.unwrap_or("");
        // An unknown name is the agent's text: it never becomes a label value.
        let capability = match refusal {
            Some(Refusal::Unknown { .. }) => "unknown".to_string(),
            _ => trail.capability.clone(),
        };
        let span = tracing::Span::current();
        span.record("outcome", outcome);
        span.record("mode", trail.mode.as_str());
        span.record("policy_version", version.as_str());
        if let Some(id) = trail.decision.as_ref().and_then(|d| d.policy_id.as_deref()) {
            span.record("policy_id", id);
        }
        if !refused_by.is_empty() {
            span.record("refused_by", refused_by);
        }
        // One line per refusal at the default level; allowed calls only at `debug` (the
        // decision log holds every one, and the span carries the outcome).
        macro_rules! decision_line {
            ($level:expr) => {
                tracing::event!(
                    target: "capgate::decision",
                    $level,
                    request_id = %trail.request_id,
                    tenant = %trail.actor.tenant,
                    user = %trail.actor.user.id,
                    agent = trail.actor.agent.as_ref().map(|a| a.id.as_str()).unwrap_or("-"),
                    action = trail.action.as_str(),
                    capability = %trail.capability,
                    outcome,
                    refused_by,
                    mode = trail.mode.as_str(),
                    "decision"
                )
            };
        }
        let quiet = match ended {
            Ended::Decided(Outcome::Allow) | Ended::Replay => refusal.is_none(),
            Ended::Decided(
                Outcome::Deny | Outcome::RequireApproval | Outcome::RequireMoreContext,
            ) => false,
        };
        if quiet {
            decision_line!(tracing::Level::DEBUG);
        } else {
            decision_line!(tracing::Level::INFO);
        }
        self.metrics.count_decision(&DecisionLabels {
            outcome: ended,
            action: trail.action,
            tool: capability,
            policy_version: version,
            refused_by: control,
        });
    }

    fn metrics_for_control(&self, refusal: &Refusal, capability: &str) {
        if let Some(event) = refusal.counted_as() {
            self.metrics.count(event, capability);
        }
    }

    /// What a refused agent may learn about the decision.
    fn summary(&self, trail: &Trail<'_>, refusal: &Refusal, message: &str) -> Value {
        let decision = refusal.decision();
        let outcome = refusal.outcome();
        match self.explain_to_agent {
            AgentExplanations::Detailed => json!({
                "request_id": trail.request_id,
                "decision": outcome,
                "reason": message,
                "refused_by": refusal.kind(),
                "advice": decision.map(|d| d.advice.clone()).unwrap_or_default(),
                "missing": decision.map(|d| d.missing.clone()).unwrap_or_default(),
                "policy_ids": decision.map(|d| d.policy_ids.clone()).unwrap_or_default(),
                "policy_version": decision.map(|d| d.policy_version.clone()),
            }),
            AgentExplanations::Safe => json!({
                "request_id": trail.request_id,
                "decision": outcome,
                "reason": message,
                "advice": decision.map(|d| d.advice.clone()).unwrap_or_default(),
            }),
        }
    }
}

/// Marks a result let through by break-glass, dry-run or a degraded store.
fn mark<C: Capability>(output: &mut C::Output, mode: Mode, grant: Option<&BreakGlassGrant>) {
    let (key, value) = match (mode, grant) {
        (Mode::Enforce, _) => return,
        (Mode::BreakGlass, Some(grant)) => (BREAK_GLASS_META_KEY, Value::String(grant.id.clone())),
        (Mode::BreakGlass, None) => (BREAK_GLASS_META_KEY, Value::Bool(true)),
        (Mode::DryRun, _) => (DRY_RUN_META_KEY, Value::Bool(true)),
        (Mode::Degraded, _) => (DEGRADED_META_KEY, Value::Bool(true)),
    };
    let meta = C::meta_mut(output).get_or_insert_with(Default::default);
    meta.0.insert(key.into(), value);
}
