//! The policy enforcement point (PEP): the path every discovery and every request takes.
//!
//! Every `tools/call`, `resources/read` and `prompts/get` walks one pipeline (`pipeline.rs`):
//! resolve the name or URI to its contract → stop it if a kill switch covers it → decide and
//! admit in one store transaction (budget, `max_calls`, approval use, idempotency claim) →
//! record the decision (durable first for side effects) → stop again → forward → settle
//! (obligations on every content kind, the result kept for replays) → answer. What differs
//! between the kinds is one small trait (`capability.rs`); discovery is one generic function
//! over the same controls (`discovery.rs`); every refusal is one type (`refusal.rs`). Nothing
//! reaches a downstream server without an allow.

mod admission;
mod approval_rules;
mod approvals;
mod capability;
mod changes;
mod completion;
mod controls;
mod discovery;
mod echo;
mod input_asks;
mod input_rounds;
mod input_state;
mod listing;
mod obligations;
mod pinning;
mod pipeline;
mod records;
mod refusal;
mod relationships;
mod requests;
mod server_asks;
mod subscription;

pub use approval_rules::{ActionDigest, ApprovalProblem};
pub use approvals::ApprovalDecisionError;
pub use capability::Target;
pub use controls::{grant_covers, kill_covers, BreakGlassError, BreakGlassRequest, Controls};
pub use echo::echo;
pub use input_rounds::{Resume, ToolOutput};
pub use input_state::{InputSeal, INPUT_STATE_KEY_FILE};
pub use obligations::{ContentKind, Obligation, ObligationError, Obligations};
pub use pinning::{AcceptError, PinState, Quarantined, FIRST_SIGHT};
pub use refusal::Refusal;
pub use relationships::{RelationshipError, ReloadError};
pub use requests::{
    bind_entities, prompt_request, resource_request, tool_request, Asker, BindError,
};

use std::sync::Arc;

use rmcp::model::{ErrorData, GetPromptResult, JsonObject, ReadResourceResult, RequestMetaObject};
use serde_json::json;

use crate::audit::DecisionLog;
use crate::config::{AgentExplanations, AuditConfig};
use crate::downstream::Downstreams;
use crate::identity::CompositeActor;
use crate::metrics::{Metrics, Scraped, ToolEvent};
use crate::policy::{Decision, Outcome, PolicyEngine, PolicyRequest};
use crate::registry::Registry;
use capability::{PromptGet, ResourceRead, ToolCall};

/// The `_meta` key carrying the agent's idempotency key on side-effecting calls.
pub const IDEMPOTENCY_META_KEY: &str = "dev.capgate/idempotency-key";
/// The `_meta` key carrying an approval reference on a retried call.
pub const APPROVAL_META_KEY: &str = "dev.capgate/approval";
/// The `_meta` key marking a result replayed from the idempotency record.
pub const REPLAY_META_KEY: &str = "dev.capgate/replay";
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

/// What capgate takes from a request besides its name and arguments: the references it reads
/// from `_meta` (model-controlled: references, never authority), the rest of the client's
/// `_meta` to pass on, and the way back to the client.
#[derive(Clone, Default)]
pub struct CallMeta {
    pub idempotency_key: Option<String>,
    pub approval: Option<String>,
    /// The client's `_meta` the downstream receives (capgate's own keys and the transport's
    /// progress token already taken out).
    pub forward: RequestMetaObject,
    /// Progress back to the client, cancellation from it.
    pub relay: Option<crate::downstream::Relay>,
    /// A 2026-07-28 client's retry of a tool call with the input it was asked for.
    pub resume: Option<Resume>,
}

/// The `_meta` prefix of capgate's own keys: read by capgate, never passed on.
pub const OWN_META_PREFIX: &str = "dev.capgate/";

/// The gateway's shared state: contracts, the PDP, downstream connections, controls, the log.
pub struct Gateway {
    registry: Arc<Registry>,
    policy: Arc<PolicyEngine>,
    downstreams: Downstreams,
    controls: Controls,
    log: DecisionLog,
    metrics: Arc<Metrics>,
    audit: AuditConfig,
    explain_to_agent: AgentExplanations,
    /// Serialises relationship updates and reloads; holds the sequence number of the last
    /// stored relationship update in force here.
    admin_writes: tokio::sync::Mutex<i64>,
    /// Tool-definition pins (the store's; contracts carry their own).
    pins: pinning::Pins,
    /// Seals the request state of 2026-07-28 clients' multi round-trip calls.
    input_seal: InputSeal,
}

impl Gateway {
    pub fn new(
        registry: Arc<Registry>,
        policy: Arc<PolicyEngine>,
        downstreams: Downstreams,
        controls: Controls,
        log: DecisionLog,
        audit: AuditConfig,
        explain_to_agent: AgentExplanations,
    ) -> Self {
        Self {
            registry,
            policy,
            downstreams,
            controls,
            log,
            metrics: Arc::new(Metrics::default()),
            pins: pinning::Pins::default(),
            audit,
            explain_to_agent,
            admin_writes: tokio::sync::Mutex::new(0),
            input_seal: InputSeal::ephemeral(),
        }
    }

    /// Seals request states with `seal` (a key kept in the data directory, so that a retry
    /// after a restart still opens).
    pub fn with_input_seal(mut self, seal: InputSeal) -> Self {
        self.input_seal = seal;
        self
    }

    /// Counts in `metrics` (shared with the authenticator) rather than in a registry of its own.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The `/metrics` exposition, with its gauges read now.
    pub async fn render_metrics(&self) -> String {
        let pending_approvals = match self.controls.pending_approvals().await {
            Ok(pending) => Some(pending),
            Err(error) => {
                tracing::warn!(%error, "the store did not answer the metrics scrape");
                None
            }
        };
        let store = self.controls.store();
        self.metrics.set_scraped(&Scraped {
            pending_approvals,
            store_up: pending_approvals.is_some(),
            change_feed_up: store.change_feed_up(),
            store_transactions: store.transactions(),
            log_write_failures: self.log.failed_records(),
            unwritten_records: self.log.unwritten_records(),
            kill_switches_active: self.controls.active_kill_switches() as u64,
            break_glass_grants_active: self.controls.active_break_glass_grants() as u64,
        });
        self.metrics.render()
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

    /// The capability contracts (what a kill switch covers, for the console).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Argument names whose values are masked wherever the gateway shows them
    /// (`[audit] mask_arguments`).
    pub fn masked_arguments(&self) -> &[String] {
        &self.audit.mask_arguments
    }

    /// Asks the PDP, timing it; an allow whose obligations this gateway cannot enforce
    /// becomes a deny. The PDP's own figures (time, a shadow difference, an allow turned into
    /// a deny) are counted now, under `capability` (the exposed name, a metrics label only);
    /// the request's decision counter when the request ends.
    /// With the decision, its obligations as parsed (none unless it allows).
    fn decide(&self, request: &PolicyRequest, capability: &str) -> (Decision, Obligations) {
        let judged = self.decide_uncounted(request);
        self.count_pdp_answer(&judged, capability);
        (judged.decision, judged.obligations)
    }

    /// [`Gateway::decide`] without its metrics, which [`Gateway::count_pdp_answer`] counts when
    /// the answer is used: discovery looks one candidate past a full page, and the next page
    /// judges it again.
    fn decide_uncounted(&self, request: &PolicyRequest) -> Judged {
        let started = std::time::Instant::now();
        let mut decision = self.policy.decide(request);
        let took = started.elapsed();
        let mut unenforceable = false;
        let mut obligations = Obligations::default();
        if decision.outcome == Outcome::Allow {
            match Obligations::parse(&decision.obligations) {
                Ok(parsed) => obligations = parsed,
                Err(unknown) => {
                    decision.reason = format!(
                        "denied: obligation(s) {unknown:?} cannot be enforced by this gateway, so the allow does not stand ({})",
                        decision.reason
                    );
                    decision.outcome = Outcome::Deny;
                    decision.agent_reason =
                        "not permitted: a required safeguard is unavailable".into();
                    unenforceable = true;
                }
            }
        }
        Judged {
            decision,
            obligations,
            action: request.action,
            took,
            unenforceable,
        }
    }

    /// Counts one used PDP answer: its time, a shadow difference, an allow turned into a deny.
    fn count_pdp_answer(&self, judged: &Judged, capability: &str) {
        self.metrics.observe_decision_time(judged.took);
        if judged.decision.shadow.as_ref().is_some_and(|s| s.differs) {
            self.metrics.count_shadow_difference(judged.action);
        }
        if judged.unenforceable {
            self.metrics.count(ToolEvent::ObligationFailure, capability);
        }
    }

    /// One `tools/call`.
    pub async fn call_tool(
        &self,
        actor: &CompositeActor,
        name: &str,
        arguments: Option<JsonObject>,
        meta: &CallMeta,
    ) -> Result<ToolOutput, ErrorData> {
        let call = ToolCall {
            name: name.to_string(),
            arguments: arguments.unwrap_or_default(),
        };
        self.execute(actor, call, meta).await
    }

    /// One `resources/read`.
    pub async fn read_resource(
        &self,
        actor: &CompositeActor,
        uri: &str,
        meta: &CallMeta,
    ) -> Result<ReadResourceResult, ErrorData> {
        let call = ResourceRead {
            uri: uri.to_string(),
        };
        self.execute(actor, call, meta).await
    }

    /// One `completion/complete`.
    pub async fn complete(
        &self,
        actor: &CompositeActor,
        params: rmcp::model::CompleteRequestParams,
        meta: &CallMeta,
    ) -> Result<rmcp::model::CompleteResult, ErrorData> {
        self.execute(actor, completion::Completion::new(params), meta)
            .await
    }

    /// One `resources/subscribe`: decided like a read of the URI.
    pub async fn subscribe(
        &self,
        actor: &CompositeActor,
        uri: &str,
        meta: &CallMeta,
    ) -> Result<(), ErrorData> {
        let call = subscription::Subscription {
            uri: uri.to_string(),
        };
        self.execute(actor, call, meta).await.map(|_| ())
    }

    /// One `resources/unsubscribe`: the caller's own session stops listening to `uri`.
    pub async fn unsubscribe(&self, uri: &str, session: &str) -> Result<(), ErrorData> {
        let Some((contract, _)) = self.registry.resource_for_uri(uri) else {
            return Ok(());
        };
        let server = self
            .downstreams
            .get(&contract.server)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        server
            .unsubscribe_resource(uri, session)
            .await
            .map_err(|e| {
                tracing::warn!(%e, "unsubscribing the downstream failed");
                ErrorData::internal_error("the downstream could not be unsubscribed", None)
            })
    }

    /// Whether any downstream lets clients subscribe to resources.
    pub fn offers_subscriptions(&self) -> bool {
        self.downstreams.iter().any(|s| s.offers_subscriptions())
    }

    /// Whether any resource is contracted (capgate then advertises resources).
    pub fn exposes_resources(&self) -> bool {
        self.registry.resources().next().is_some()
    }

    /// Whether any prompt is contracted (capgate then advertises prompts).
    pub fn exposes_prompts(&self) -> bool {
        self.registry.prompts().next().is_some()
    }

    /// Whether any downstream offers logging (capgate then advertises it).
    pub fn offers_logging(&self) -> bool {
        self.downstreams.iter().any(|s| s.offers_logging())
    }

    /// A client session set its log level: every downstream that logs sends at least that.
    #[allow(deprecated)]
    pub async fn log_level_requested(&self, level: rmcp::model::LoggingLevel) {
        for server in self.downstreams.iter() {
            server.request_log_level(level).await;
        }
    }

    /// Whether any downstream offers completions (capgate then advertises them).
    pub fn offers_completions(&self) -> bool {
        self.downstreams.iter().any(|s| s.offers_completions())
    }

    /// One `prompts/get`.
    pub async fn get_prompt(
        &self,
        actor: &CompositeActor,
        name: &str,
        arguments: Option<JsonObject>,
        meta: &CallMeta,
    ) -> Result<GetPromptResult, ErrorData> {
        let call = PromptGet {
            name: name.to_string(),
            arguments: arguments.unwrap_or_default(),
        };
        self.execute(actor, call, meta).await
    }
}

/// What a downstream receives in `_meta`: the client's own entries, and the trusted actor
/// context under capgate's key (which no client entry can stand in for).
fn downstream_meta(actor: &CompositeActor, forward: &RequestMetaObject) -> RequestMetaObject {
    let mut meta = forward.clone();
    meta.0 .0.retain(|key, _| !key.starts_with(OWN_META_PREFIX));
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

/// A PDP answer and what its metrics count, not yet counted.
struct Judged {
    decision: Decision,
    /// The allow's obligations, parsed once (none for any other outcome).
    obligations: Obligations,
    action: crate::policy::Action,
    took: std::time::Duration,
    /// An allow turned into a deny: its obligations cannot be enforced here.
    unenforceable: bool,
}
