//! What a downstream asks of the client while it serves a tool call — `elicitation/create`
//! and `sampling/createMessage` — as capabilities of their own, through the same pipeline:
//! resolved to the call's tool, stopped by what stops that tool, decided by the PDP as
//! `elicit` / `sample` on the call's tool, actor and arguments, recorded, forwarded to the
//! client that made the call (only when it declared the capability), and settled. Both the
//! call's obligations and the ask's own apply to what the client is shown; the ask's own
//! apply to the client's answer before the downstream sees it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[allow(deprecated)] // sampling is how 2025-11-25 servers ask for completions.
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, ErrorData,
    JsonObject, MetaObject, RequestMetaObject,
};
use serde_json::Value;

use crate::downstream::{Answer, AnswerAsks, Ask, DownstreamError, Relay};
use crate::identity::CompositeActor;
use crate::policy::{Action, PolicyRequest};
use crate::registry::{Effect, ToolContract};

use super::capability::{refusal_error, Capability, Hop, Target};
use super::obligations::Obligations;
use super::refusal::Refusal;
use super::requests::{tool_request, Asker};
use super::{CallMeta, Gateway, OWN_META_PREFIX};

/// Answers the asks of one forwarded tool call, for its actor.
pub(super) struct ServerAsker<'a> {
    pub gateway: &'a Gateway,
    pub actor: &'a CompositeActor,
    pub tool: Arc<ToolContract>,
    /// The tool's exposed name.
    pub exposed: String,
    /// The call's arguments: the ask is decided on them as the call was.
    pub arguments: JsonObject,
    pub relay: &'a Relay,
    /// The call's obligations: they bind what the client is shown.
    pub obligations: &'a Obligations,
}

impl AnswerAsks for ServerAsker<'_> {
    fn answer<'b>(
        &'b self,
        ask: Ask,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, ErrorData>> + Send + 'b>> {
        Box::pin(async move {
            let meta = CallMeta {
                idempotency_key: None,
                approval: None,
                forward: RequestMetaObject::new(),
                relay: Some(self.relay.clone()),
            };
            match ask {
                Ask::Elicit(params) => {
                    let ask = Asked {
                        origin: self,
                        params,
                    };
                    self.gateway
                        .execute(self.actor, ask, &meta)
                        .await
                        .map(Answer::Elicited)
                }
                Ask::Sample(params) => {
                    let ask = Asked {
                        origin: self,
                        params,
                    };
                    self.gateway
                        .execute(self.actor, ask, &meta)
                        .await
                        .map(|result| Answer::Sampled(Box::new(result)))
                }
            }
        })
    }
}

/// One ask, with the call it belongs to.
pub(super) struct Asked<'a, P> {
    origin: &'a ServerAsker<'a>,
    params: P,
}

/// What differs between elicitation and sampling.
pub(super) trait AskKind: Clone + Send + Sync {
    type Answer: serde::Serialize + serde::de::DeserializeOwned + Send;
    const ACTION: Action;
    const KIND: &'static str;
    /// Whether the client declared the capability this ask needs.
    fn client_declared(&self, relay: &Relay) -> bool;
    /// Takes capgate's own `_meta` keys out of what the client is sent.
    fn strip_own_meta(&mut self);
    fn restrict(&mut self, obligations: &Obligations) -> Result<(), String>;
    fn send(self, relay: &Relay) -> impl Future<Output = Result<Self::Answer, String>> + Send;
    fn restrict_answer(answer: &mut Self::Answer, obligations: &Obligations) -> Result<(), String>;
    fn answer_meta(answer: &mut Self::Answer) -> &mut Option<MetaObject>;
}

impl AskKind for ElicitRequestParams {
    type Answer = ElicitResult;
    const ACTION: Action = Action::Elicit;
    const KIND: &'static str = "elicitation";

    fn client_declared(&self, relay: &Relay) -> bool {
        let modes = relay.peer.supported_elicitation_modes();
        match self {
            ElicitRequestParams::FormElicitationParams { .. } => {
                modes.contains(&rmcp::service::ElicitationMode::Form)
            }
            ElicitRequestParams::UrlElicitationParams { .. } => {
                modes.contains(&rmcp::service::ElicitationMode::Url)
            }
            // A mode capgate does not know is not relayed.
            _ => false,
        }
    }

    fn strip_own_meta(&mut self) {
        match self {
            ElicitRequestParams::FormElicitationParams { meta, .. }
            | ElicitRequestParams::UrlElicitationParams { meta, .. } => strip_own(meta),
            // Never sent: `client_declared` refuses modes capgate does not know.
            _ => {}
        }
    }

    fn restrict(&mut self, obligations: &Obligations) -> Result<(), String> {
        obligations
            .apply_to_elicitation(self)
            .map_err(|e| e.to_string())
    }

    async fn send(self, relay: &Relay) -> Result<ElicitResult, String> {
        relay
            .peer
            .create_elicitation(self)
            .await
            .map_err(|e| e.to_string())
    }

    fn restrict_answer(answer: &mut ElicitResult, obligations: &Obligations) -> Result<(), String> {
        obligations
            .apply_to_elicited(answer)
            .map_err(|e| e.to_string())
    }

    fn answer_meta(answer: &mut ElicitResult) -> &mut Option<MetaObject> {
        &mut answer.meta
    }
}

#[allow(deprecated)]
impl AskKind for CreateMessageRequestParams {
    type Answer = CreateMessageResult;
    const ACTION: Action = Action::Sample;
    const KIND: &'static str = "sampling request";

    fn client_declared(&self, relay: &Relay) -> bool {
        relay
            .peer
            .peer_info()
            .is_some_and(|info| info.capabilities.sampling.is_some())
    }

    fn strip_own_meta(&mut self) {
        strip_own(&mut self.meta);
    }

    fn restrict(&mut self, obligations: &Obligations) -> Result<(), String> {
        obligations
            .apply_to_sampling(self)
            .map_err(|e| e.to_string())
    }

    async fn send(self, relay: &Relay) -> Result<CreateMessageResult, String> {
        relay
            .peer
            .create_message(self)
            .await
            .map_err(|e| e.to_string())
    }

    fn restrict_answer(
        answer: &mut CreateMessageResult,
        obligations: &Obligations,
    ) -> Result<(), String> {
        obligations
            .apply_to_sampled(answer)
            .map_err(|e| e.to_string())
    }

    fn answer_meta(answer: &mut CreateMessageResult) -> &mut Option<MetaObject> {
        &mut answer.message.meta
    }
}

fn strip_own(meta: &mut Option<RequestMetaObject>) {
    if let Some(meta) = meta {
        meta.0 .0.retain(|key, _| !key.starts_with(OWN_META_PREFIX));
    }
}

impl<P: AskKind> Capability for Asked<'_, P> {
    type Bound = ();
    type Output = P::Answer;
    const KIND: &'static str = P::KIND;
    const NESTED: bool = true;

    fn action(&self) -> Action {
        P::ACTION
    }

    fn requested(&self) -> &str {
        &self.origin.exposed
    }

    fn arguments(&self) -> JsonObject {
        self.origin.arguments.clone()
    }

    fn resolve(&self, _gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal> {
        if !self.params.client_declared(self.origin.relay) {
            return Err(Refusal::ClientUndeclared(P::KIND));
        }
        let tool = &self.origin.tool;
        Ok((
            Target {
                server: tool.server.clone(),
                name: self.origin.exposed.clone(),
                // Asking is not acting: no budget, no idempotency key.
                effect: Effect::Read,
                cost: 0,
                fail_open: false,
                definition_hash: String::new(),
            },
            (),
        ))
    }

    fn policy_request(
        &self,
        _bound: &Self::Bound,
        asker: Asker<'_>,
    ) -> Result<PolicyRequest, Refusal> {
        tool_request(
            asker,
            P::ACTION,
            &self.origin.tool,
            Some(&self.origin.arguments),
        )
        .map_err(Refusal::Unbound)
    }

    async fn forward(
        &self,
        _gateway: &Gateway,
        _target: &Target,
        _bound: &Self::Bound,
        hop: Hop<'_>,
    ) -> Result<Self::Output, DownstreamError> {
        let mut params = self.params.clone();
        params.strip_own_meta();
        // The call's obligations bind what the downstream shows the client through it, and so
        // do the ask's own.
        for obligations in [self.origin.obligations, hop.obligations] {
            params
                .restrict(obligations)
                .map_err(|reason| DownstreamError::Withheld { reason })?;
        }
        params
            .send(self.origin.relay)
            .await
            .map_err(|reason| DownstreamError::Client { reason })
    }

    fn apply_obligations(
        output: &mut Self::Output,
        obligations: &Obligations,
    ) -> Result<(), String> {
        P::restrict_answer(output, obligations)
    }

    fn meta_mut(output: &mut Self::Output) -> &mut Option<MetaObject> {
        P::answer_meta(output)
    }

    fn refused(
        _refusal: &Refusal,
        message: String,
        summary: Value,
    ) -> Result<Self::Output, ErrorData> {
        Err(refusal_error(message, summary))
    }
}
