//! What differs between capability kinds, behind one trait: how a request resolves to its
//! contract, how its policy request is built, how it is forwarded, how obligations reach its
//! result, and how a refusal is expressed to the client. Everything else — the pipeline in
//! `pipeline.rs` — is the same for tools, resources and prompts.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ErrorCode, ErrorData,
    GetPromptRequestParams, GetPromptResult, JsonObject, MetaObject, ReadResourceRequestParams,
    ReadResourceResult, RequestMetaObject,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::downstream::{DownstreamError, Inputs, Relay, ToolAnswer};
use crate::policy::{Action, PolicyRequest};
use crate::registry::{Effect, PromptContract, ResourceContract, ToolContract};

use super::input_rounds::{InputRounds, Resume, ToolOutput};
use super::obligations::Obligations;
use super::pinning::PinState;
use super::refusal::Refusal;
use super::requests::{prompt_request, resource_request, tool_request, Asker};
use super::Gateway;

/// The facts of a resolved capability every control needs.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    /// The exposed name: kill switches, grants, budgets and records use it.
    pub name: String,
    pub effect: Effect,
    pub cost: u32,
    pub fail_open: bool,
    /// The pinned definition an approval binds to (tools), else empty.
    pub definition_hash: String,
}

impl Target {
    pub fn of_tool(contract: &ToolContract, definition_hash: String) -> Self {
        Self {
            server: contract.server.clone(),
            name: contract.exposed_name.clone(),
            effect: contract.effect,
            cost: contract.cost,
            fail_open: contract.fail_open,
            definition_hash,
        }
    }

    pub fn of_resource(contract: &ResourceContract) -> Self {
        Self {
            server: contract.server.clone(),
            name: contract.exposed_name.clone(),
            effect: Effect::Read,
            cost: contract.cost,
            fail_open: contract.fail_open,
            definition_hash: String::new(),
        }
    }

    pub fn of_prompt(contract: &PromptContract) -> Self {
        Self {
            server: contract.server.clone(),
            name: contract.exposed_name.clone(),
            effect: Effect::Read,
            cost: contract.cost,
            fail_open: contract.fail_open,
            definition_hash: String::new(),
        }
    }
}

/// What a request carries to the downstream besides itself.
pub struct Hop<'a> {
    /// The client's `_meta` to pass on, with the trusted actor.
    pub meta: RequestMetaObject,
    /// The way back to the client: progress, cancellation, its session.
    pub relay: Option<&'a Relay>,
    /// What the request's allow obliges (they also bind what the downstream asks of the
    /// client while serving it).
    pub obligations: &'a Obligations,
    /// Who answers what the downstream asks of the client while serving the request (tool
    /// calls with a client to ask).
    pub asks: Option<&'a dyn InputRounds>,
    /// The request's action digest: a 2026-07-28 client's request state is bound to it.
    pub call: &'a str,
    /// A 2026-07-28 client's retry with the input it was asked for.
    pub resume: Option<&'a Resume>,
}

/// What a request's asks are decided on: the tool whose call the downstream is serving, and
/// the call's arguments.
pub struct AskOrigin<'a> {
    pub tool: &'a Arc<ToolContract>,
    pub arguments: &'a JsonObject,
}

/// One capability kind's part of the pipeline.
pub trait Capability: Sync {
    /// The contract and bindings a request resolved to.
    type Bound: Send + Sync;
    type Output: Serialize + DeserializeOwned + Send;

    /// The action the PDP decides (per request: a completion is a read of what it completes).
    fn action(&self) -> Action;
    /// `tool`, `resource` or `prompt`, for messages.
    const KIND: &'static str;

    /// The name or URI as the client sent it.
    fn requested(&self) -> &str;
    /// The arguments an approval and an idempotency key are bound to.
    fn arguments(&self) -> Cow<'_, JsonObject>;
    fn resolve(&self, gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal>;
    fn policy_request(
        &self,
        bound: &Self::Bound,
        asker: Asker<'_>,
    ) -> Result<PolicyRequest, Refusal>;
    fn forward(
        &self,
        gateway: &Gateway,
        target: &Target,
        bound: &Self::Bound,
        hop: Hop<'_>,
    ) -> impl Future<Output = Result<Self::Output, DownstreamError>> + Send;
    fn apply_obligations(
        output: &mut Self::Output,
        obligations: &Obligations,
    ) -> Result<(), String>;
    /// `ok`, or `tool_error` for a tool result that reports failure.
    fn downstream_outcome(_output: &Self::Output) -> &'static str {
        "ok"
    }
    fn meta_mut(output: &mut Self::Output) -> &mut Option<MetaObject>;
    /// The tool call a downstream may ask the client things for while serving this request
    /// (tool calls only).
    fn ask_origin<'a>(&'a self, _bound: &'a Self::Bound) -> Option<AskOrigin<'a>> {
        None
    }
    /// Whether the request is made while another is being forwarded (what a downstream asks
    /// of the client): it must not wait on the forwarding gate its own call holds.
    const NESTED: bool = false;
    /// How a refusal reaches the client.
    fn refused(
        refusal: &Refusal,
        message: String,
        summary: Value,
    ) -> Result<Self::Output, ErrorData>;
    /// What a retry of a call that may have acted, with unknown outcome, replays (`None`: the
    /// retry is refused instead).
    fn unfinished(_message: String) -> Option<Self::Output> {
        None
    }
    /// Whether the output is not the request's result yet (the client must answer and retry):
    /// an idempotency key is then given back, not settled.
    fn interim(_output: &Self::Output) -> bool {
        false
    }
}

/// `tools/call`.
pub struct ToolCall {
    pub name: String,
    pub arguments: JsonObject,
}

impl Capability for ToolCall {
    type Bound = Arc<ToolContract>;
    type Output = ToolOutput;
    fn action(&self) -> Action {
        Action::CallTool
    }
    const KIND: &'static str = "tool";

    fn requested(&self) -> &str {
        &self.name
    }

    fn ask_origin<'a>(&'a self, bound: &'a Self::Bound) -> Option<AskOrigin<'a>> {
        Some(AskOrigin {
            tool: bound,
            arguments: &self.arguments,
        })
    }

    fn arguments(&self) -> Cow<'_, JsonObject> {
        Cow::Borrowed(&self.arguments)
    }

    fn resolve(&self, gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal> {
        let unknown = || Refusal::Unknown {
            kind: Self::KIND,
            name: self.name.clone(),
        };
        let contract = gateway.registry.tool(&self.name).ok_or_else(unknown)?;
        let server = gateway
            .downstreams
            .get(&contract.server)
            .map_err(|_| unknown())?;
        let catalogue = server.catalogue();
        let Some(listed) = catalogue.tool(&contract.name) else {
            return Err(Refusal::NotOffered {
                name: self.name.clone(),
                server: contract.server.clone(),
            });
        };
        match gateway.pin_state(contract, listed) {
            PinState::Matches | PinState::Unpinned => {}
            PinState::Quarantined { pinned, seen } => {
                return Err(Refusal::Quarantined {
                    name: contract.exposed_name.clone(),
                    pinned,
                    seen,
                })
            }
        }
        Ok((
            Target::of_tool(contract, listed.definition_hash.clone()),
            contract.clone(),
        ))
    }

    fn policy_request(
        &self,
        bound: &Self::Bound,
        asker: Asker<'_>,
    ) -> Result<PolicyRequest, Refusal> {
        tool_request(asker, self.action(), bound, Some(&self.arguments)).map_err(Refusal::Unbound)
    }

    async fn forward(
        &self,
        gateway: &Gateway,
        target: &Target,
        bound: &Self::Bound,
        hop: Hop<'_>,
    ) -> Result<Self::Output, DownstreamError> {
        let Hop {
            meta,
            relay,
            asks,
            call,
            resume,
            ..
        } = hop;
        let mut params =
            CallToolRequestParams::new(bound.name.clone()).with_arguments(self.arguments.clone());
        params.meta = Some(meta);
        // A retry with the input asked for: only as capgate sealed it, for this very call.
        if let Some(resume) = resume {
            let asker = asks.ok_or_else(|| {
                DownstreamError::InputState("this request cannot carry input responses".into())
            })?;
            let (responses, state) = asker.resume(resume, call).await?;
            params.input_responses = Some(responses);
            params.request_state = state;
        }
        // A stateless client cannot be asked while it waits: the input goes back to it.
        let inputs = match asks {
            Some(asker) if asker.stateless() => Inputs::PassBack,
            Some(asker) => Inputs::Ask(asker.answerer()),
            None => Inputs::Refuse,
        };
        let answer = gateway
            .downstreams
            .get(&target.server)?
            .call_tool(params, relay, inputs)
            .await?;
        match (answer, asks) {
            (ToolAnswer::Complete(result), _) => Ok(ToolOutput::Result(result)),
            (ToolAnswer::InputRequired(asked), Some(asker)) => asker
                .pass_back(asked, call)
                .await
                .map(ToolOutput::InputRequired),
            (ToolAnswer::InputRequired(_), None) => Err(DownstreamError::Client {
                reason: "the downstream asked for input, and no client can be asked".into(),
            }),
        }
    }

    fn apply_obligations(
        output: &mut Self::Output,
        obligations: &Obligations,
    ) -> Result<(), String> {
        match output {
            ToolOutput::Result(result) => obligations
                .apply_to_tool_result(result)
                .map_err(|e| e.to_string()),
            // Each input shown was restricted when it was decided.
            ToolOutput::InputRequired(_) => Ok(()),
        }
    }

    fn interim(output: &Self::Output) -> bool {
        matches!(output, ToolOutput::InputRequired(_))
    }

    fn downstream_outcome(output: &Self::Output) -> &'static str {
        match output {
            ToolOutput::Result(result) if result.is_error == Some(true) => "tool_error",
            ToolOutput::Result(_) => "ok",
            ToolOutput::InputRequired(_) => "input_required",
        }
    }

    fn meta_mut(output: &mut Self::Output) -> &mut Option<MetaObject> {
        match output {
            ToolOutput::Result(result) => &mut result.meta,
            ToolOutput::InputRequired(asked) => &mut asked.meta,
        }
    }

    fn unfinished(message: String) -> Option<Self::Output> {
        Some(ToolOutput::Result(CallToolResult::error(vec![
            ContentBlock::text(message),
        ])))
    }

    fn refused(
        refusal: &Refusal,
        message: String,
        summary: Value,
    ) -> Result<Self::Output, ErrorData> {
        match refusal {
            // Protocol errors for names that do not exist, as MCP servers answer them.
            Refusal::Unknown { .. } => Err(ErrorData::invalid_params(
                message,
                Some(serde_json::json!({ super::DECISION_META_KEY: summary })),
            )),
            _ => {
                let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
                let mut meta = MetaObject::new();
                meta.0.insert(super::DECISION_META_KEY.into(), summary);
                result.meta = Some(meta);
                Ok(ToolOutput::Result(result))
            }
        }
    }
}

/// `resources/read`.
pub struct ResourceRead {
    pub uri: String,
}

impl Capability for ResourceRead {
    type Bound = UriBound;
    type Output = ReadResourceResult;
    fn action(&self) -> Action {
        Action::ReadResource
    }
    const KIND: &'static str = "resource";

    fn requested(&self) -> &str {
        &self.uri
    }

    fn arguments(&self) -> Cow<'_, JsonObject> {
        let mut arguments = JsonObject::new();
        arguments.insert("uri".into(), Value::String(self.uri.clone()));
        Cow::Owned(arguments)
    }

    fn resolve(&self, gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal> {
        resolve_uri(gateway, &self.uri)
    }

    fn policy_request(
        &self,
        bound: &Self::Bound,
        asker: Asker<'_>,
    ) -> Result<PolicyRequest, Refusal> {
        Ok(uri_request(asker, self.action(), bound, &self.uri))
    }

    async fn forward(
        &self,
        gateway: &Gateway,
        target: &Target,
        _bound: &Self::Bound,
        hop: Hop<'_>,
    ) -> Result<Self::Output, DownstreamError> {
        let Hop { meta, relay, .. } = hop;
        let params = ReadResourceRequestParams::new(self.uri.clone()).with_meta(meta);
        gateway
            .downstreams
            .get(&target.server)?
            .read_resource(params, relay)
            .await
    }

    fn apply_obligations(
        output: &mut Self::Output,
        obligations: &Obligations,
    ) -> Result<(), String> {
        obligations
            .apply_to_resource(output)
            .map_err(|e| e.to_string())
    }

    fn meta_mut(output: &mut Self::Output) -> &mut Option<MetaObject> {
        &mut output.meta
    }

    fn refused(
        refusal: &Refusal,
        message: String,
        summary: Value,
    ) -> Result<Self::Output, ErrorData> {
        Err(resource_refusal(refusal, message, summary))
    }
}

/// What a URI names: its resource contract and the template's variables.
pub(super) type UriBound = (Arc<ResourceContract>, HashMap<String, String>);

/// Resolves a concrete resource URI to the contract whose template matches it.
pub(super) fn resolve_uri(gateway: &Gateway, uri: &str) -> Result<(Target, UriBound), Refusal> {
    let (contract, variables) =
        gateway
            .registry
            .resource_for_uri(uri)
            .ok_or_else(|| Refusal::Unknown {
                kind: "resource",
                name: uri.to_string(),
            })?;
    Ok((Target::of_resource(contract), (contract.clone(), variables)))
}

/// The policy request of an action on a concrete resource URI.
pub(super) fn uri_request(
    asker: Asker<'_>,
    action: Action,
    (contract, variables): &UriBound,
    uri: &str,
) -> PolicyRequest {
    resource_request(asker, action, contract, uri, Some(variables))
}

/// A refusal of a resource request: an unknown URI is "not found", as MCP servers say it.
pub(super) fn resource_refusal(refusal: &Refusal, message: String, summary: Value) -> ErrorData {
    match refusal {
        Refusal::Unknown { .. } => ErrorData::resource_not_found(
            message,
            Some(serde_json::json!({ super::DECISION_META_KEY: summary })),
        ),
        _ => refusal_error(message, summary),
    }
}

/// `prompts/get`.
pub struct PromptGet {
    pub name: String,
    pub arguments: JsonObject,
}

impl Capability for PromptGet {
    type Bound = Arc<PromptContract>;
    type Output = GetPromptResult;
    fn action(&self) -> Action {
        Action::GetPrompt
    }
    const KIND: &'static str = "prompt";

    fn requested(&self) -> &str {
        &self.name
    }

    fn arguments(&self) -> Cow<'_, JsonObject> {
        Cow::Borrowed(&self.arguments)
    }

    fn resolve(&self, gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal> {
        let contract = gateway
            .registry
            .prompt(&self.name)
            .ok_or_else(|| Refusal::Unknown {
                kind: Self::KIND,
                name: self.name.clone(),
            })?;
        Ok((Target::of_prompt(contract), contract.clone()))
    }

    fn policy_request(
        &self,
        bound: &Self::Bound,
        asker: Asker<'_>,
    ) -> Result<PolicyRequest, Refusal> {
        prompt_request(asker, self.action(), bound, Some(&self.arguments)).map_err(Refusal::Unbound)
    }

    async fn forward(
        &self,
        gateway: &Gateway,
        target: &Target,
        bound: &Self::Bound,
        hop: Hop<'_>,
    ) -> Result<Self::Output, DownstreamError> {
        let Hop { meta, relay, .. } = hop;
        let params = GetPromptRequestParams::new(bound.name.clone())
            .with_arguments(self.arguments.clone())
            .with_meta(meta);
        gateway
            .downstreams
            .get(&target.server)?
            .get_prompt(params, relay)
            .await
    }

    fn apply_obligations(
        output: &mut Self::Output,
        obligations: &Obligations,
    ) -> Result<(), String> {
        obligations
            .apply_to_prompt(output)
            .map_err(|e| e.to_string())
    }

    fn meta_mut(output: &mut Self::Output) -> &mut Option<MetaObject> {
        &mut output.meta
    }

    fn refused(
        refusal: &Refusal,
        message: String,
        summary: Value,
    ) -> Result<Self::Output, ErrorData> {
        Err(match refusal {
            Refusal::Unknown { .. } => ErrorData::invalid_params(
                message,
                Some(serde_json::json!({ super::DECISION_META_KEY: summary })),
            ),
            _ => refusal_error(message, summary),
        })
    }
}

pub(super) fn refusal_error(message: String, summary: Value) -> ErrorData {
    ErrorData::new(
        ErrorCode::INVALID_REQUEST,
        message,
        Some(serde_json::json!({ super::DECISION_META_KEY: summary })),
    )
}
