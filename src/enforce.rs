//! The policy enforcement point (PEP): the path every discovery and every call takes.
//!
//! For a call: resolve the exposed name to its contract → bind the arguments that name domain
//! entities → ask the PDP → record the decision → forward to the downstream only on allow →
//! return the result, or a specific refusal. Discovery runs the same PDP for every capability and
//! returns only what the actor may use. Nothing reaches a downstream server without an allow.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ErrorCode, ErrorData,
    GetPromptRequestParams, GetPromptResult, JsonObject, Prompt, ReadResourceRequestParams,
    ReadResourceResult, RequestMetaObject, Resource, ResourceTemplate, Tool,
};
use serde_json::{json, Value};

use crate::downstream::{DownstreamError, Downstreams};
use crate::identity::CompositeActor;
use crate::policy::{
    Action, BoundEntity, CapabilityFacts, CapabilityKind, Decision, DecisionInput, PolicyEngine,
};
use crate::registry::{EntityBinding, Registry, ToolContract};

/// The `_meta` key under which capgate tells a downstream server who the call is for. Downstream
/// servers trust it because only the gateway can reach them; the agent's token is never forwarded.
pub const ACTOR_META_KEY: &str = "dev.capgate/actor";
/// The `_meta` key of refusals, carrying the decision in machine-readable form.
pub const DECISION_META_KEY: &str = "dev.capgate/decision";

/// The gateway's shared state: contracts, the current policy set, downstream connections.
pub struct Gateway {
    registry: Arc<Registry>,
    policy: ArcSwap<PolicyEngine>,
    downstreams: Downstreams,
    agent_sees_policy_ids: bool,
}

/// Why a capability could not be resolved or its arguments bound, before any decision.
#[derive(Debug, thiserror::Error)]
enum BindError {
    #[error(
        "argument `{argument}` is required: it names the {entity_type} this call is decided on"
    )]
    Missing {
        argument: String,
        entity_type: String,
    },
    #[error("argument `{argument}` must be a string or number naming a {entity_type}")]
    NotAnId {
        argument: String,
        entity_type: String,
    },
}

impl Gateway {
    pub fn new(
        registry: Arc<Registry>,
        policy: Arc<PolicyEngine>,
        downstreams: Downstreams,
        agent_sees_policy_ids: bool,
    ) -> Self {
        Self {
            registry,
            policy: ArcSwap::new(policy),
            downstreams,
            agent_sees_policy_ids,
        }
    }

    pub fn downstreams(&self) -> &Downstreams {
        &self.downstreams
    }

    pub fn policy(&self) -> Arc<PolicyEngine> {
        self.policy.load_full()
    }

    // ---- tools ------------------------------------------------------------------------------

    /// The tools this actor may use: contracted, offered by a live downstream, and allowed.
    pub fn list_tools(&self, actor: &CompositeActor) -> Vec<Tool> {
        let policy = self.policy.load();
        let mut visible = Vec::new();
        for server in self.downstreams.iter() {
            for listed in &server.catalogue().tools {
                let Some(contract) = self.registry.tool_of(&server.id, &listed.tool.name) else {
                    continue;
                };
                let decision = policy.decide(&DecisionInput {
                    actor,
                    action: Action::DiscoverTool,
                    capability: tool_facts(contract),
                    bound: Vec::new(),
                });
                if decision.is_allow() {
                    let mut tool = listed.tool.clone();
                    tool.name = contract.exposed_name.clone().into();
                    visible.push(tool);
                }
            }
        }
        visible.sort_by(|a, b| a.name.cmp(&b.name));
        visible
    }

    /// One `tools/call`, from request to response: resolve → bind → decide → record → forward.
    pub async fn call_tool(
        &self,
        actor: &CompositeActor,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        // Resolve. An uncontracted or unknown name is "unknown" whatever the downstream offers.
        let contract = self
            .registry
            .tool(name)
            .ok_or_else(|| ErrorData::invalid_params(format!("unknown tool: {name}"), None))?;
        let arguments = arguments.unwrap_or_default();

        // Bind the arguments that name entities, then decide.
        let bound = match bind_entities(&contract.entities, |arg| arguments.get(arg).cloned()) {
            Ok(bound) => bound,
            Err(e) => return Ok(refusal_text(&e.to_string())),
        };
        let decision = self.policy.load().decide(&DecisionInput {
            actor,
            action: Action::CallTool,
            capability: tool_facts(contract),
            bound,
        });
        record(actor, Action::CallTool, name, &decision);
        if !decision.is_allow() {
            return Ok(self.refusal(&decision));
        }

        // Forward, as the gateway, with the actor's context in `_meta`.
        let server = self.downstreams.get(&contract.server).map_err(internal)?;
        if server.catalogue().tool(&contract.name).is_none() {
            return Ok(refusal_text(&format!(
                "tool `{name}` is not currently offered by downstream server `{}`",
                contract.server
            )));
        }
        let mut params =
            CallToolRequestParams::new(contract.name.clone()).with_arguments(arguments);
        params.meta = Some(actor_meta(actor));
        match server.call_tool(params).await {
            Ok(result) => Ok(result),
            Err(e) => Ok(downstream_failure(&e)),
        }
    }

    // ---- resources --------------------------------------------------------------------------

    /// Concrete resources the actor may see, from every server with resource contracts.
    pub async fn list_resources(&self, actor: &CompositeActor) -> Vec<Resource> {
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
                if self
                    .decide_resource(actor, Action::DiscoverResource, &resource.uri, &server.id)
                    .is_some_and(|d| d.is_allow())
                {
                    visible.push(resource);
                }
            }
        }
        visible
    }

    /// Resource templates the actor may see: only those a contract registers.
    pub fn list_resource_templates(&self, actor: &CompositeActor) -> Vec<ResourceTemplate> {
        let policy = self.policy.load();
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
                let decision = policy.decide(&DecisionInput {
                    actor,
                    action: Action::DiscoverResource,
                    capability: CapabilityFacts {
                        kind: CapabilityKind::Resource,
                        id: &template.uri_template,
                        server: &contract.server,
                        name: &contract.name,
                        effect: None,
                        risk: contract.risk,
                        cost: 0,
                    },
                    bound: Vec::new(),
                });
                if decision.is_allow() {
                    visible.push(template.clone());
                }
            }
        }
        visible
    }

    /// Decides a resource URI for one server; `None` when no contract of that server covers it.
    fn decide_resource(
        &self,
        actor: &CompositeActor,
        action: Action,
        uri: &str,
        expected_server: &str,
    ) -> Option<Decision> {
        let (contract, variables) = self.registry.resource_for_uri(uri)?;
        if contract.server != expected_server {
            return None;
        }
        let bound = bind_entities(&contract.entities, |arg| {
            variables.get(arg).map(|v| Value::String(v.clone()))
        });
        let decision = match bound {
            Ok(bound) => self.policy.load().decide(&DecisionInput {
                actor,
                action,
                capability: CapabilityFacts {
                    kind: CapabilityKind::Resource,
                    id: uri,
                    server: &contract.server,
                    name: &contract.name,
                    effect: None,
                    risk: contract.risk,
                    cost: 0,
                },
                bound,
            }),
            Err(e) => Decision {
                outcome: crate::policy::Outcome::Deny,
                reason: e.to_string(),
                policy_ids: Vec::new(),
                policy_version: self.policy.load().version().to_string(),
            },
        };
        Some(decision)
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
        let decision = self
            .decide_resource(actor, Action::ReadResource, uri, &server_id)
            .ok_or_else(not_found)?;
        record(actor, Action::ReadResource, uri, &decision);
        if !decision.is_allow() {
            return Err(self.refusal_error(&decision));
        }
        let server = self.downstreams.get(&server_id).map_err(internal)?;
        let params = ReadResourceRequestParams::new(uri).with_meta(actor_meta(actor));
        server.read_resource(params).await.map_err(internal)
    }

    // ---- prompts ----------------------------------------------------------------------------

    pub fn list_prompts(&self, actor: &CompositeActor) -> Vec<Prompt> {
        let policy = self.policy.load();
        let mut visible = Vec::new();
        for server in self.downstreams.iter() {
            for listed in &server.catalogue().prompts {
                let Some(contract) = self.registry.prompt_of(&server.id, &listed.name) else {
                    continue;
                };
                let decision = policy.decide(&DecisionInput {
                    actor,
                    action: Action::DiscoverPrompt,
                    capability: prompt_facts(contract),
                    bound: Vec::new(),
                });
                if decision.is_allow() {
                    let mut prompt = listed.clone();
                    prompt.name = contract.exposed_name.clone();
                    visible.push(prompt);
                }
            }
        }
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
        let bound = bind_entities(&contract.entities, |arg| arguments.get(arg).cloned())
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let decision = self.policy.load().decide(&DecisionInput {
            actor,
            action: Action::GetPrompt,
            capability: prompt_facts(contract),
            bound,
        });
        record(actor, Action::GetPrompt, name, &decision);
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

    fn refusal(&self, decision: &Decision) -> CallToolResult {
        let mut result = refusal_text(&decision.agent_message(self.agent_sees_policy_ids));
        let mut meta = rmcp::model::MetaObject::new();
        meta.0
            .insert(DECISION_META_KEY.into(), self.decision_summary(decision));
        result.meta = Some(meta);
        result
    }

    fn refusal_error(&self, decision: &Decision) -> ErrorData {
        ErrorData::new(
            ErrorCode::INVALID_REQUEST,
            decision.agent_message(self.agent_sees_policy_ids),
            Some(json!({ DECISION_META_KEY: self.decision_summary(decision) })),
        )
    }

    /// What a refused agent may learn about the decision.
    fn decision_summary(&self, decision: &Decision) -> Value {
        if self.agent_sees_policy_ids {
            json!({
                "decision": decision.outcome,
                "reason": decision.reason,
                "policy_ids": decision.policy_ids,
                "policy_version": decision.policy_version,
            })
        } else {
            json!({
                "decision": decision.outcome,
                "reason": decision.agent_message(false),
            })
        }
    }
}

fn tool_facts(contract: &ToolContract) -> CapabilityFacts<'_> {
    CapabilityFacts {
        kind: CapabilityKind::Tool,
        id: &contract.exposed_name,
        server: &contract.server,
        name: &contract.name,
        effect: Some(contract.effect),
        risk: contract.risk,
        cost: contract.cost,
    }
}

fn prompt_facts(contract: &crate::registry::PromptContract) -> CapabilityFacts<'_> {
    CapabilityFacts {
        kind: CapabilityKind::Prompt,
        id: &contract.exposed_name,
        server: &contract.server,
        name: &contract.name,
        effect: None,
        risk: contract.risk,
        cost: 0,
    }
}

/// Reads each bound argument as an entity id. Arguments come from the model, so they are only
/// ids here: what the entity *is* comes from the trusted entity store.
fn bind_entities<'a>(
    bindings: &'a [EntityBinding],
    value_of: impl Fn(&str) -> Option<Value>,
) -> Result<Vec<BoundEntity<'a>>, BindError> {
    bindings
        .iter()
        .map(|binding| {
            let id = match value_of(&binding.argument) {
                Some(Value::String(s)) if !s.is_empty() => s,
                Some(Value::Number(n)) => n.to_string(),
                None | Some(Value::Null) => {
                    return Err(BindError::Missing {
                        argument: binding.argument.clone(),
                        entity_type: binding.entity_type.clone(),
                    })
                }
                Some(_) => {
                    return Err(BindError::NotAnId {
                        argument: binding.argument.clone(),
                        entity_type: binding.entity_type.clone(),
                    })
                }
            };
            Ok(BoundEntity {
                context_key: &binding.context_key,
                entity_type: &binding.entity_type,
                id,
            })
        })
        .collect()
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

/// Records a decision. The durable, hash-chained decision log replaces this in its own module;
/// until then every decision is a structured tracing event.
fn record(actor: &CompositeActor, action: Action, capability: &str, decision: &Decision) {
    tracing::info!(
        target: "capgate::decision",
        tenant = %actor.tenant,
        user = %actor.user.id,
        agent = actor.agent.as_ref().map(|a| a.id.as_str()).unwrap_or("-"),
        run_id = actor.run_id.as_deref().unwrap_or("-"),
        action = action.as_str(),
        capability,
        outcome = ?decision.outcome,
        policies = ?decision.policy_ids,
        policy_version = %decision.policy_version,
        reason = %decision.reason,
        "decision"
    );
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
