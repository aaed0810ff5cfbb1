//! The policy enforcement point (PEP): the path every discovery and every call takes.
//!
//! For a call: resolve the exposed name to its contract → stop it if a kill switch covers it →
//! bind the arguments that name domain entities, with the run's budget as trusted context → ask
//! the PDP → record the decision → claim the idempotency key (side effects) and debit the run's
//! budget → forward to the downstream only on allow → store the result for replays → return the
//! result, or a specific refusal. Discovery runs the same PDP for every capability and
//! returns only what the actor may use. Nothing reaches a downstream server without an allow.

mod controls;
mod listing;
mod obligations;
mod requests;

pub use obligations::{ContentKind, Obligation, ObligationError, Obligations};

pub use controls::{
    ActionDigest, ApprovalDecisionError, BreakGlassError, BreakGlassRequest, ControlRefusal,
    Controls, EnforcementConfig, IdempotencyStart, WithoutRunId, APPROVAL_META_KEY,
    IDEMPOTENCY_META_KEY, REPLAY_META_KEY,
};

/// What capgate reads from a call's `_meta` (model-controlled: references, never authority).
#[derive(Debug, Clone, Default)]
pub struct CallMeta {
    pub idempotency_key: Option<String>,
    pub approval: Option<String>,
}

pub use requests::{
    bind_entities, prompt_request, resource_request, tool_request, Asker, BindError,
};

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ErrorCode, ErrorData,
    GetPromptRequestParams, GetPromptResult, JsonObject, Prompt, ReadResourceRequestParams,
    ReadResourceResult, RequestMetaObject, Resource, ResourceTemplate, Tool,
};
use serde_json::{json, Value};

use crate::audit::{DecisionLog, DecisionRecord, Mode};
use crate::config::AgentExplanations;
use crate::downstream::{DownstreamError, Downstreams};
use crate::identity::CompositeActor;
use crate::metrics::Metrics;
use crate::policy::{Action, ActorFacts, Decision, Outcome, PolicyEngine, PolicyRequest};
use crate::registry::Registry;
use listing::Listing;

/// The `_meta` key under which capgate tells a downstream server who the call is for. Downstream
/// servers trust it because only the gateway can reach them; the agent's token is never forwarded.
pub const ACTOR_META_KEY: &str = "dev.capgate/actor";
/// The `_meta` key marking a result let through by dry-run although policy refused it.
pub const DRY_RUN_META_KEY: &str = "dev.capgate/dry-run";
/// The `_meta` key marking a result allowed under a break-glass grant (its id).
pub const BREAK_GLASS_META_KEY: &str = "dev.capgate/break-glass";
/// The `_meta` key marking a result served while the enforcement store was unavailable.
pub const DEGRADED_META_KEY: &str = "dev.capgate/degraded";
/// The `_meta` key of refusals, carrying the decision in machine-readable form.
pub const DECISION_META_KEY: &str = "dev.capgate/decision";

/// The gateway's shared state: contracts, the PDP, downstream connections.
pub struct Gateway {
    registry: Arc<Registry>,
    policy: Arc<PolicyEngine>,
    downstreams: Downstreams,
    controls: Controls,
    log: DecisionLog,
    metrics: Arc<Metrics>,
    audit: crate::config::AuditConfig,
    explain_to_agent: AgentExplanations,
}

impl Gateway {
    pub fn new(
        registry: Arc<Registry>,
        policy: Arc<PolicyEngine>,
        downstreams: Downstreams,
        controls: Controls,
        log: DecisionLog,
        audit: crate::config::AuditConfig,
        explain_to_agent: AgentExplanations,
    ) -> Self {
        Self {
            registry,
            policy,
            downstreams,
            controls,
            log,
            metrics: Arc::new(Metrics::default()),
            audit,
            explain_to_agent,
        }
    }

    /// A decision's log record, keeping the request (for replay) with the configured arguments
    /// masked.
    fn logged(
        &self,
        request: &PolicyRequest,
        decision: &Decision,
        mode: Mode,
        digest: Option<&ActionDigest>,
    ) -> DecisionRecord {
        let mut record = decision_record(request, decision, mode, digest);
        let mut logged = request.clone();
        for name in &self.audit.mask_arguments {
            if let Some(value) = logged.arguments.get_mut(name) {
                *value = crate::policy::AttributeValue::String("***".into());
            }
        }
        record.request = Some(logged);
        record
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The `/metrics` exposition, with its gauges read now.
    pub fn render_metrics(&self) -> String {
        let metrics = &self.metrics;
        match self.controls.pending_approvals() {
            Ok(pending) => {
                metrics.set_gauge("capgate_pending_approvals", pending as f64);
                metrics.set_gauge("capgate_store_up", 1.0);
            }
            Err(error) => {
                tracing::warn!(%error, "the store did not answer the metrics scrape");
                metrics.clear_gauge("capgate_pending_approvals");
                metrics.set_gauge("capgate_store_up", 0.0);
            }
        }
        metrics.set_gauge(
            "capgate_decision_log_write_failures_total",
            self.log.failed_records() as f64,
        );
        metrics.set_gauge(
            "capgate_kill_switches_active",
            self.controls.active_kill_switches() as f64,
        );
        metrics.set_gauge(
            "capgate_break_glass_grants_active",
            self.controls.active_break_glass_grants() as f64,
        );
        metrics.render()
    }

    pub fn decision_log(&self) -> &DecisionLog {
        &self.log
    }

    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    pub fn downstreams(&self) -> &Downstreams {
        &self.downstreams
    }

    pub fn policy(&self) -> &Arc<PolicyEngine> {
        &self.policy
    }

    /// Decides, then holds an allow to its obligations: an allow whose obligations this gateway
    /// cannot enforce becomes a deny.
    fn decide(&self, request: &PolicyRequest) -> Decision {
        let started = std::time::Instant::now();
        let mut decision = self.policy.decide(request);
        self.metrics
            .observe("capgate_decision_seconds", vec![], started.elapsed());
        if decision.shadow.as_ref().is_some_and(|s| s.differs) {
            self.metrics.inc(
                "capgate_shadow_differences_total",
                vec![("action", request.action.as_str().into())],
            );
        }
        if decision.outcome == Outcome::Allow {
            if let Err(unenforceable) = Obligations::parse(&decision.obligations) {
                decision.reason = format!(
                    "denied: obligation(s) {unenforceable:?} cannot be enforced by this gateway, so the allow does not stand ({})",
                    decision.reason
                );
                decision.outcome = Outcome::Deny;
                decision.agent_reason = "not permitted: a required safeguard is unavailable".into();
                self.metrics
                    .inc("capgate_obligation_failures_total", vec![]);
            }
        }
        let capability = match request.action.kind() {
            crate::policy::CapabilityKind::Resource => {
                match request.resource.attributes.get("name") {
                    Some(crate::policy::AttributeValue::String(name)) => format!("resource:{name}"),
                    _ => "resource".to_string(),
                }
            }
            _ => request.resource.id.clone(),
        };
        self.metrics.inc(
            "capgate_decisions_total",
            vec![
                ("outcome", decision.outcome.as_str().into()),
                ("action", request.action.as_str().into()),
                ("tool", capability),
                ("policy_version", decision.policy_version.clone()),
            ],
        );
        decision
    }

    // ---- tools ------------------------------------------------------------------------------

    /// The tools this actor may use: contracted, offered by a live downstream, and allowed.
    /// Logs one summary record for the request.
    pub fn list_tools(&self, actor: &CompositeActor) -> Vec<Tool> {
        let facts = ActorFacts::from_actor(actor);
        let mut listing = Listing::new(Action::DiscoverTool, "tools/list");
        let mut visible = Vec::new();
        for server in self.downstreams.iter() {
            for listed in &server.catalogue().tools {
                let Some(contract) = self.registry.tool_of(&server.id, &listed.tool.name) else {
                    continue;
                };
                let name = &contract.exposed_name;
                if let Some(switch) = self.controls.kill_switch_for(actor, &contract.server, name) {
                    let refusal = ControlRefusal::killed_by(switch);
                    listing.hide_undecided(name, refusal.kind(), refusal.to_string());
                    continue;
                }
                let decision = match tool_request(
                    asker(actor, &facts),
                    Action::DiscoverTool,
                    contract,
                    None,
                ) {
                    Ok(request) => self.decide(&request),
                    Err(error) => {
                        listing.hide_undecided(name, "unbound", error.to_string());
                        continue;
                    }
                };
                let granted = self.controls.break_glass_for(actor, name).is_some();
                if granted || decision.is_allow() {
                    listing.show(name, Some(&decision));
                    let mut tool = listed.tool.clone();
                    tool.name = name.clone().into();
                    visible.push(tool);
                } else {
                    listing.hide_decided(name, &decision);
                }
            }
        }
        self.log.append(listing.into_record(actor, &self.policy));
        visible.sort_by(|a, b| a.name.cmp(&b.name));
        visible
    }

    /// One `tools/call`, from request to response (see the module documentation).
    pub async fn call_tool(
        &self,
        actor: &CompositeActor,
        name: &str,
        arguments: Option<JsonObject>,
        call_meta: &CallMeta,
    ) -> Result<CallToolResult, ErrorData> {
        let started = std::time::Instant::now();
        // Resolve. An uncontracted or unknown name is "unknown" whatever the downstream offers.
        let contract = self
            .registry
            .tool(name)
            .ok_or_else(|| ErrorData::invalid_params(format!("unknown tool: {name}"), None))?;
        let arguments = arguments.unwrap_or_default();

        // Stop what admins stopped.
        if let Some(switch) = self.controls.kill_switch_for(actor, &contract.server, name) {
            return Ok(self.refused_by_control(actor, name, ControlRefusal::killed_by(switch)));
        }

        // Bind the arguments that name entities and carry attributes, add the run's budget as
        // trusted context, then decide. A store failure fails closed (low-risk fail_open reads
        // pass, degraded and logged).
        let facts = ActorFacts::from_actor(actor);
        let mut policy_request = match tool_request(
            asker(actor, &facts),
            Action::CallTool,
            contract,
            Some(&arguments),
        ) {
            Ok(request) => request,
            Err(e) => return Ok(refusal_text(&e.to_string())),
        };
        let run = match self.controls.run_of(actor) {
            Ok(run) => run,
            Err(refusal) => return Ok(self.refused_by_control(actor, name, refusal)),
        };
        let mut degraded = false;
        let mut tool_calls_in_run = 0;
        match self.controls.usage(&run, name).await {
            Ok(usage) => {
                tool_calls_in_run = usage.tool_calls;
                policy_request.runtime.budget_remaining = Some(self.controls.remaining(&usage))
            }
            Err(refusal) if contract.fail_open => {
                tracing::warn!(target: "capgate::decision", tool = name, %refusal, "fail_open read passes degraded");
                degraded = true;
            }
            Err(refusal) => return Ok(self.refused_by_control(actor, name, refusal)),
        }
        // The exact call, for approvals: an approval reference counts only for this digest.
        let server = self.downstreams.get(&contract.server).map_err(internal)?;
        let Some(definition_hash) = server
            .catalogue()
            .tool(&contract.name)
            .map(|t| t.definition_hash.clone())
        else {
            return Ok(refusal_text(&format!(
                "tool `{name}` is not currently offered by downstream server `{}`",
                contract.server
            )));
        };
        let digest = ActionDigest::of(actor, name, &definition_hash, &arguments, &run);
        match self
            .controls
            .replay_of(
                actor,
                contract,
                call_meta.idempotency_key.as_deref(),
                &arguments,
            )
            .await
        {
            Ok(Some(stored)) => return Ok(replayed(&stored)),
            Ok(None) => {}
            Err(refusal) => return Ok(self.refused_by_control(actor, name, refusal)),
        }
        if let Some(approval) = &call_meta.approval {
            match self.controls.check_approval(approval, actor, &digest).await {
                Ok(_) => policy_request.runtime.approval_granted = Some(true),
                Err(refusal) => return Ok(self.refused_by_control(actor, name, refusal)),
            }
        }

        let mut decision = self.decide(&policy_request);
        let span = tracing::Span::current();
        span.record("outcome", decision.outcome.as_str());
        span.record("policy_id", decision.policy_id.as_deref().unwrap_or("-"));
        span.record("policy_version", decision.policy_version.as_str());
        record(&policy_request, &decision);
        // Break-glass: a time-limited grant allows what policy refused, never silently.
        let mut break_glass = None;
        if !decision.is_allow() {
            if let Some(grant) = self.controls.break_glass_for(actor, name) {
                tracing::warn!(target: "capgate::break_glass", grant = %grant.id, tool = name, user = %actor.user.id, overridden = decision.outcome.as_str(), reason = %decision.reason, "BREAK-GLASS: call allowed against policy");
                self.metrics.inc(
                    "capgate_break_glass_uses_total",
                    vec![("tool", name.to_string())],
                );
                if let Err(refusal) = self.controls.record_break_glass_use(&grant).await {
                    return Ok(self.refused_by_control(actor, name, refusal));
                }
                decision.outcome = Outcome::Allow;
                decision.obligations.clear();
                decision.reason = format!("break-glass grant {}: {}", grant.id, decision.reason);
                break_glass = Some(grant);
            }
        }
        // Dry-run: decide and log as if enforcing, but let a refused call through, marked.
        let dry_run = !decision.is_allow() && self.audit.dry_run_for(&contract.server, name);

        // Log the decision; a side effect goes ahead only once its record is durable.
        let mode = match (&break_glass, degraded, dry_run) {
            (Some(_), _, _) => Mode::BreakGlass,
            (None, _, true) => Mode::DryRun,
            (None, true, false) => Mode::Degraded,
            (None, false, false) => Mode::Enforce,
        };
        span.record("mode", mode.as_str());
        let entry = self.logged(&policy_request, &decision, mode, Some(&digest));
        if dry_run {
            tracing::warn!(target: "capgate::decision", tool = name, refused = decision.outcome.as_str(), reason = %decision.reason, "DRY-RUN: a refused call is let through");
            decision.outcome = Outcome::Allow;
            decision.obligations.clear();
        }
        let must_be_durable = contract.effect.is_side_effect()
            || self.audit.durable_for == crate::config::DurableFor::EveryCall;
        if (decision.is_allow() || dry_run) && must_be_durable {
            if let Err(error) = self.log.append_durable(entry).await {
                return Ok(self.refused_by_control(
                    actor,
                    name,
                    ControlRefusal::DecisionLogUnavailable(error.to_string()),
                ));
            }
        } else {
            self.log.append(entry);
        }
        match decision.outcome {
            Outcome::Allow => {}
            Outcome::RequireApproval => {
                return Ok(self
                    .approval_required(actor, name, &digest, &arguments, &decision)
                    .await)
            }
            Outcome::Deny | Outcome::RequireMoreContext => return Ok(self.refusal(&decision)),
        }
        // The allow stands only with its obligations (`decide` refused unenforceable ones).
        let obligations = Obligations::parse(&decision.obligations).unwrap_or_default();
        if let Some(limit) = obligations.max_calls() {
            if tool_calls_in_run >= limit {
                let refusal = ControlRefusal::MaxCalls {
                    tool: name.to_string(),
                    limit,
                };
                return Ok(self.refused_by_control(actor, name, refusal));
            }
        }
        for tag in obligations.audit_tags() {
            tracing::info!(target: "capgate::audit", tag, tool = name, tenant = %actor.tenant, user = %actor.user.id, request_id = %policy_request.request_id, "audited call");
        }

        // Use the approval and claim the idempotency key of a side effect in one transaction
        // (a replay returns the stored result), then debit the run's budget.
        let key = call_meta.idempotency_key.as_deref();
        let needs_key = contract.effect.is_side_effect() || obligations.requires_idempotency();
        let start = match &call_meta.approval {
            Some(approval) => {
                self.controls
                    .consume_approval(
                        approval,
                        actor,
                        &digest,
                        &decision.policy_version,
                        contract,
                        key,
                        needs_key,
                        &arguments,
                    )
                    .await
            }
            None if needs_key => self
                .controls
                .start_idempotent(actor, contract, key, &arguments)
                .await
                .map(Some),
            None => Ok(None),
        };
        let claim = match start {
            Ok(Some(IdempotencyStart::Perform(scope))) => Some(scope),
            Ok(Some(IdempotencyStart::Replay(stored))) => return Ok(replayed(&stored)),
            Ok(None) => None,
            Err(refusal) => return Ok(self.refused_by_control(actor, name, refusal)),
        };
        if !degraded {
            match self.controls.debit(&run, contract).await {
                Ok(_) => {}
                Err(ControlRefusal::StoreUnavailable(error)) if contract.fail_open => {
                    tracing::warn!(target: "capgate::decision", tool = name, %error, "fail_open read passes degraded: budget not debited");
                    degraded = true;
                }
                Err(refusal) => {
                    if let Some(scope) = claim {
                        let _ = self.controls.release(scope).await;
                    }
                    return Ok(self.refused_by_control(actor, name, refusal));
                }
            }
        }

        // Forward, as the gateway, with the actor's context in `_meta`.
        let mut params =
            CallToolRequestParams::new(contract.name.clone()).with_arguments(arguments);
        params.meta = Some(actor_meta(actor));
        let downstream_started = std::time::Instant::now();
        let forwarded = server.call_tool(params).await;
        let downstream_time = downstream_started.elapsed();
        let server_label = vec![("server", contract.server.clone())];
        self.metrics.observe(
            "capgate_downstream_seconds",
            server_label.clone(),
            downstream_time,
        );
        if forwarded.is_err() {
            self.metrics
                .inc("capgate_downstream_errors_total", server_label);
        }
        self.metrics.observe(
            "capgate_gateway_overhead_seconds",
            vec![],
            started.elapsed().saturating_sub(downstream_time),
        );
        let mut outcome = decision_record(&policy_request, &decision, mode, Some(&digest));
        outcome.downstream_outcome = Some(match &forwarded {
            Ok(result) if result.is_error == Some(true) => "tool_error".to_string(),
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        });
        outcome.added_latency_us = Some(
            started
                .elapsed()
                .saturating_sub(downstream_time)
                .as_micros() as u64,
        );
        self.log.append(outcome);
        let result = match forwarded {
            Ok(result) => result,
            // Certainly not performed: the key may be used again.
            Err(e @ DownstreamError::Unavailable { .. }) => {
                if let Some(scope) = claim {
                    let _ = self.controls.release(scope).await;
                }
                return Ok(downstream_failure(&e));
            }
            // Maybe performed (timeout, crash mid-call): the key stays spent on this outcome.
            Err(e) => downstream_failure(&e),
        };

        let mut result = result;
        obligations.apply(&mut result);
        if degraded || dry_run || break_glass.is_some() {
            let mut meta = result.meta.take().unwrap_or_default();
            if dry_run {
                meta.0.insert(DRY_RUN_META_KEY.into(), Value::Bool(true));
            }
            if degraded {
                meta.0.insert(DEGRADED_META_KEY.into(), Value::Bool(true));
            }
            if let Some(grant) = &break_glass {
                meta.0
                    .insert(BREAK_GLASS_META_KEY.into(), Value::String(grant.id.clone()));
            }
            result.meta = Some(meta);
        }

        // Keep the result for replays of the same key.
        if let Some(scope) = claim {
            let stored = serde_json::to_string(&result).unwrap_or_default();
            if let Err(refusal) = self.controls.complete(scope, stored).await {
                tracing::error!(tool = name, %refusal, "could not store the idempotent result");
            }
        }
        Ok(result)
    }

    /// Opens an approval request bound to this exact call and tells the agent how to proceed.
    async fn approval_required(
        &self,
        actor: &CompositeActor,
        tool: &str,
        digest: &ActionDigest,
        arguments: &JsonObject,
        decision: &Decision,
    ) -> CallToolResult {
        let approval = match self
            .controls
            .request_approval(
                actor,
                tool,
                digest,
                arguments,
                decision.approver_role.as_deref(),
                &decision.policy_version,
            )
            .await
        {
            Ok(approval) => approval,
            Err(refusal) => return self.refused_by_control(actor, tool, refusal),
        };
        tracing::info!(target: "capgate::decision", approval = %approval.id, tool, approver_role = %approval.approver_role, "approval requested");
        self.metrics.inc(
            "capgate_approvals_requested_total",
            vec![("tool", tool.to_string())],
        );
        let mut result = refusal_text(&format!(
            "{}; approval request {} was created for this exact call (approver role: {}, expires at {}). Once it is approved, retry the same call with _meta[\"{APPROVAL_META_KEY}\"] = \"{}\"",
            self.agent_message(decision),
            approval.id,
            approval.approver_role,
            approval.expires_at,
            approval.id
        ));
        let mut summary = self.decision_summary(decision);
        summary["approval"] = json!({
            "id": approval.id,
            "approver_role": approval.approver_role,
            "expires_at": approval.expires_at,
            "status": approval.status,
        });
        let mut meta = rmcp::model::MetaObject::new();
        meta.0.insert(DECISION_META_KEY.into(), summary);
        result.meta = Some(meta);
        result
    }

    /// Logs and returns a refusal by a control (kill switch, budget, idempotency, store).
    fn refused_by_control(
        &self,
        actor: &CompositeActor,
        tool: &str,
        refusal: ControlRefusal,
    ) -> CallToolResult {
        match &refusal {
            ControlRefusal::Killed { .. } => self.metrics.inc(
                "capgate_kill_switch_hits_total",
                vec![("tool", tool.to_string())],
            ),
            ControlRefusal::BudgetExhausted(_) | ControlRefusal::MaxCalls { .. } => {
                self.metrics.inc(
                    "capgate_budget_exhausted_total",
                    vec![("tool", tool.to_string())],
                )
            }
            _ => {}
        }
        let span = tracing::Span::current();
        span.record("outcome", Outcome::Deny.as_str());
        span.record("refused_by", refusal.kind());
        tracing::info!(
            target: "capgate::decision",
            tenant = %actor.tenant,
            user = %actor.user.id,
            agent = actor.agent.as_ref().map(|a| a.id.as_str()).unwrap_or("-"),
            capability = tool,
            outcome = "deny",
            reason = %refusal,
            "refused by an enforcement control"
        );
        self.log.append(actor_record(
            actor,
            Action::CallTool,
            tool,
            Outcome::Deny.as_str(),
            refusal.to_string(),
            self.policy.latest().label().to_string(),
        ));
        let mut result = refusal_text(&refusal.to_string());
        let mut meta = rmcp::model::MetaObject::new();
        meta.0.insert(
            DECISION_META_KEY.into(),
            json!({"decision": "deny", "reason": refusal.to_string()}),
        );
        result.meta = Some(meta);
        result
    }

    // ---- resources --------------------------------------------------------------------------

    /// Concrete resources the actor may see, from every server with resource contracts.
    /// Logs one summary record for the request.
    pub async fn list_resources(&self, actor: &CompositeActor) -> Vec<Resource> {
        let mut listing = Listing::new(Action::DiscoverResource, "resources/list");
        let mut visible = Vec::new();
        for server in self.downstreams.iter() {
            if self.registry.resources_of(&server.id).next().is_none() {
                continue;
            }
            let listed = match server.list_resources(actor_meta(actor)).await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(server = %server.id, error = %e, "resources/list failed");
                    continue;
                }
            };
            for resource in listed {
                match self.decide_resource(
                    actor,
                    Action::DiscoverResource,
                    &resource.uri,
                    &server.id,
                ) {
                    Some((_, decision)) if decision.is_allow() => {
                        listing.show(&resource.uri, Some(&decision));
                        visible.push(resource);
                    }
                    Some((_, decision)) => listing.hide_decided(&resource.uri, &decision),
                    None => listing.hide_undecided(
                        &resource.uri,
                        "uncontracted",
                        format!("no resource contract of server `{}` covers it", server.id),
                    ),
                }
            }
        }
        self.log.append(listing.into_record(actor, &self.policy));
        visible
    }

    /// Resource templates the actor may see: only those a contract registers.
    /// Logs one summary record for the request.
    pub fn list_resource_templates(&self, actor: &CompositeActor) -> Vec<ResourceTemplate> {
        let facts = ActorFacts::from_actor(actor);
        let mut listing = Listing::new(Action::DiscoverResource, "resources/templates/list");
        let mut visible = Vec::new();
        for server in self.downstreams.iter() {
            for template in &server.catalogue().resource_templates {
                let Some(contract) = self
                    .registry
                    .resources_of(&server.id)
                    .find(|c| c.template.source == template.uri_template)
                else {
                    continue;
                };
                // A template names no entity yet: it is decided on the contract alone.
                let decision = self.decide(&resource_request(
                    asker(actor, &facts),
                    Action::DiscoverResource,
                    contract,
                    &template.uri_template,
                    None,
                ));
                if decision.is_allow() {
                    listing.show(&template.uri_template, Some(&decision));
                    visible.push(template.clone());
                } else {
                    listing.hide_decided(&template.uri_template, &decision);
                }
            }
        }
        self.log.append(listing.into_record(actor, &self.policy));
        visible
    }

    /// Decides a resource URI for one server; `None` when no contract of that server covers it.
    fn decide_resource(
        &self,
        actor: &CompositeActor,
        action: Action,
        uri: &str,
        expected_server: &str,
    ) -> Option<(PolicyRequest, Decision)> {
        let (contract, variables) = self.registry.resource_for_uri(uri)?;
        if contract.server != expected_server {
            return None;
        }
        let facts = ActorFacts::from_actor(actor);
        let policy_request = resource_request(
            asker(actor, &facts),
            action,
            contract,
            uri,
            Some(&variables),
        );
        let decision = self.decide(&policy_request);
        Some((policy_request, decision))
    }

    /// One `resources/read`: resolve the URI to its contract → decide → record → forward.
    pub async fn read_resource(
        &self,
        actor: &CompositeActor,
        uri: &str,
    ) -> Result<ReadResourceResult, ErrorData> {
        let not_found = || ErrorData::resource_not_found(format!("unknown resource: {uri}"), None);
        let (contract, _) = self.registry.resource_for_uri(uri).ok_or_else(not_found)?;
        let server_id = contract.server.clone();
        let (policy_request, decision) = self
            .decide_resource(actor, Action::ReadResource, uri, &server_id)
            .ok_or_else(not_found)?;
        record(&policy_request, &decision);
        self.log
            .append(self.logged(&policy_request, &decision, Mode::Enforce, None));
        if !decision.is_allow() {
            return Err(self.refusal_error(&decision));
        }
        let server = self.downstreams.get(&server_id).map_err(internal)?;
        let params = ReadResourceRequestParams::new(uri).with_meta(actor_meta(actor));
        server.read_resource(params).await.map_err(internal)
    }

    // ---- prompts ----------------------------------------------------------------------------

    /// The prompts this actor may use; logs one summary record for the request.
    pub fn list_prompts(&self, actor: &CompositeActor) -> Vec<Prompt> {
        let facts = ActorFacts::from_actor(actor);
        let mut listing = Listing::new(Action::DiscoverPrompt, "prompts/list");
        let mut visible = Vec::new();
        for server in self.downstreams.iter() {
            for listed in &server.catalogue().prompts {
                let Some(contract) = self.registry.prompt_of(&server.id, &listed.name) else {
                    continue;
                };
                let name = &contract.exposed_name;
                match prompt_request(asker(actor, &facts), Action::DiscoverPrompt, contract, None)
                    .map(|request| self.decide(&request))
                {
                    Ok(decision) if decision.is_allow() => {
                        listing.show(name, Some(&decision));
                        let mut prompt = listed.clone();
                        prompt.name = name.clone();
                        visible.push(prompt);
                    }
                    Ok(decision) => listing.hide_decided(name, &decision),
                    Err(error) => listing.hide_undecided(name, "unbound", error.to_string()),
                }
            }
        }
        self.log.append(listing.into_record(actor, &self.policy));
        visible.sort_by(|a, b| a.name.cmp(&b.name));
        visible
    }

    /// One `prompts/get`: resolve → bind → decide → record → forward.
    pub async fn get_prompt(
        &self,
        actor: &CompositeActor,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<GetPromptResult, ErrorData> {
        let contract = self
            .registry
            .prompt(name)
            .ok_or_else(|| ErrorData::invalid_params(format!("unknown prompt: {name}"), None))?;
        let arguments = arguments.unwrap_or_default();
        let facts = ActorFacts::from_actor(actor);
        let policy_request = prompt_request(
            asker(actor, &facts),
            Action::GetPrompt,
            contract,
            Some(&arguments),
        )
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let decision = self.decide(&policy_request);
        record(&policy_request, &decision);
        self.log
            .append(self.logged(&policy_request, &decision, Mode::Enforce, None));
        if !decision.is_allow() {
            return Err(self.refusal_error(&decision));
        }
        let server = self.downstreams.get(&contract.server).map_err(internal)?;
        let params = GetPromptRequestParams::new(contract.name.clone())
            .with_arguments(arguments)
            .with_meta(actor_meta(actor));
        server.get_prompt(params).await.map_err(internal)
    }

    // ---- refusals ---------------------------------------------------------------------------

    fn agent_message(&self, decision: &Decision) -> String {
        match self.explain_to_agent {
            AgentExplanations::Safe => decision.agent_reason.clone(),
            AgentExplanations::Detailed => decision.reason.clone(),
        }
    }

    fn refusal(&self, decision: &Decision) -> CallToolResult {
        let mut result = refusal_text(&self.agent_message(decision));
        let mut meta = rmcp::model::MetaObject::new();
        meta.0
            .insert(DECISION_META_KEY.into(), self.decision_summary(decision));
        result.meta = Some(meta);
        result
    }

    fn refusal_error(&self, decision: &Decision) -> ErrorData {
        ErrorData::new(
            ErrorCode::INVALID_REQUEST,
            self.agent_message(decision),
            Some(json!({ DECISION_META_KEY: self.decision_summary(decision) })),
        )
    }

    /// What a refused agent may learn about the decision.
    fn decision_summary(&self, decision: &Decision) -> Value {
        match self.explain_to_agent {
            AgentExplanations::Detailed => json!({
                "decision": decision.outcome,
                "reason": decision.reason,
                "advice": decision.advice,
                "missing": decision.missing,
                "policy_ids": decision.policy_ids,
                "policy_version": decision.policy_version,
            }),
            AgentExplanations::Safe => json!({
                "decision": decision.outcome,
                "reason": decision.agent_reason,
                "advice": decision.advice,
            }),
        }
    }
}

fn asker<'a>(actor: &'a CompositeActor, facts: &'a ActorFacts) -> Asker<'a> {
    Asker {
        facts,
        tenant: &actor.tenant,
        run_id: actor.run_id.as_deref(),
    }
}

/// The trusted actor context a downstream receives in `_meta`.
fn actor_meta(actor: &CompositeActor) -> RequestMetaObject {
    let mut meta = RequestMetaObject::new();
    meta.0 .0.insert(
        ACTOR_META_KEY.into(),
        json!({
            "tenant": actor.tenant,
            "user": actor.user.id,
            "agent": actor.agent.as_ref().map(|a| a.id.clone()),
            "run_id": actor.run_id,
        }),
    );
    meta
}

/// Emits a decision as a structured tracing event (the durable record goes to the decision log).
fn record(request: &PolicyRequest, decision: &Decision) {
    tracing::info!(
        target: "capgate::decision",
        request_id = %request.request_id,
        tenant = request.tenant.as_deref().unwrap_or("-"),
        user = %request.actor.user.id,
        agent = request.actor.agent.as_ref().map(|a| a.id.as_str()).unwrap_or("-"),
        run_id = request.run_id.as_deref().unwrap_or("-"),
        action = request.action.as_str(),
        capability = %request.resource.id,
        outcome = decision.outcome.as_str(),
        policies = ?decision.policy_ids,
        policy_version = %decision.policy_version,
        obligations = ?decision.obligations,
        shadow = ?decision.shadow.as_ref().map(|s| (s.outcome, s.differs)),
        reason = %decision.reason,
        "decision"
    );
}

fn actor_label(user: &str, agent: Option<&str>) -> String {
    format!("{user}/{}", agent.unwrap_or("-"))
}

/// A record made without a PDP request: a control's refusal, a discovery summary.
fn actor_record(
    actor: &CompositeActor,
    action: Action,
    resource: &str,
    decision: &str,
    reason: String,
    policy_version: String,
) -> DecisionRecord {
    DecisionRecord {
        time: crate::policy::now_unix(),
        request_id: requests::new_request_id(),
        tenant: actor.tenant.clone(),
        run_id: actor.run_id.clone(),
        action: action.as_str().into(),
        resource: resource.into(),
        decision: decision.into(),
        reason,
        policy_id: None,
        policy_version,
        actor: actor_label(&actor.user.id, actor.agent.as_ref().map(|a| a.id.as_str())),
        delegation_chain: actor.delegation_chain.clone(),
        action_digest: None,
        obligations: Vec::new(),
        mode: Mode::Enforce,
        shadow_decision: None,
        downstream_outcome: None,
        added_latency_us: None,
        request: None,
        listing: None,
    }
}

/// The decision-log record of a decision, without its request.
fn decision_record(
    request: &PolicyRequest,
    decision: &Decision,
    mode: Mode,
    digest: Option<&ActionDigest>,
) -> DecisionRecord {
    DecisionRecord {
        time: crate::policy::now_unix(),
        request_id: request.request_id.clone(),
        tenant: request.tenant.clone().unwrap_or_default(),
        run_id: request.run_id.clone(),
        action: request.action.as_str().into(),
        resource: request.resource.id.clone(),
        decision: decision.outcome.as_str().into(),
        reason: decision.reason.clone(),
        policy_id: decision.policy_id.clone(),
        policy_version: decision.policy_version.clone(),
        actor: actor_label(
            &request.actor.user.id,
            request.actor.agent.as_ref().map(|a| a.id.as_str()),
        ),
        delegation_chain: request.actor.delegation_chain.clone(),
        action_digest: digest.map(|d| d.0.clone()),
        obligations: decision.obligations.clone(),
        mode,
        shadow_decision: decision
            .shadow
            .as_ref()
            .map(|s| s.outcome.as_str().to_string()),
        downstream_outcome: None,
        added_latency_us: None,
        request: None,
        listing: None,
    }
}

/// A stored result returned again for a retried idempotency key, marked as a replay.
fn replayed(stored: &str) -> CallToolResult {
    let mut result = serde_json::from_str::<CallToolResult>(stored).unwrap_or_else(|_| {
        refusal_text("the stored result of this idempotency key could not be read")
    });
    let mut meta = result.meta.take().unwrap_or_default();
    meta.0.insert(REPLAY_META_KEY.into(), Value::Bool(true));
    result.meta = Some(meta);
    result
}

fn refusal_text(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_string())])
}

fn downstream_failure(error: &DownstreamError) -> CallToolResult {
    refusal_text(&error.to_string())
}

fn internal(error: DownstreamError) -> ErrorData {
    ErrorData::internal_error(error.to_string(), None)
}
