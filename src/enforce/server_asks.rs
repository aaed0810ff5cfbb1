//! What a downstream asks of the client while it serves a tool call — `elicitation/create`
//! and `sampling/createMessage` — as capabilities of their own, through the same pipeline:
//! resolved to the call's tool, stopped by what stops that tool, decided by the PDP as
//! `elicit` / `sample` on the call's tool, actor and arguments, recorded, forwarded to the
//! client that made the call (only when it declared the capability), and settled. Both the
//! call's obligations and the ask's own apply to what the client is shown; the ask's own
//! apply to the client's answer before the downstream sees it.
//!
//! An ask is decided at one of three [`Stage`]s: sent to a session's client and answered at
//! once; shown to a 2026-07-28 client in an `input_required` result; or, with that client's
//! retry, its answer (decided again, restricted). `input_asks.rs` drives the last two.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[allow(deprecated)] // sampling is how 2025-11-25 servers ask for completions.
use rmcp::model::{
    ClientCapabilities, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ErrorData, JsonObject, MetaObject, RequestMetaObject,
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
            match ask {
                Ask::Elicit(params) => match self.decide(Stage::Send(params)).await? {
                    AskOutput::Answered(answer) => Ok(Answer::Elicited(answer)),
                    AskOutput::Shown { .. } => Err(changed_stage()),
                },
                Ask::Sample(params) => match self.decide(Stage::Send(params)).await? {
                    AskOutput::Answered(answer) => Ok(Answer::Sampled(Box::new(answer))),
                    AskOutput::Shown { .. } => Err(changed_stage()),
                },
            }
        })
    }
}

fn changed_stage() -> ErrorData {
    ErrorData::internal_error("an ask came back at another stage", None)
}

impl ServerAsker<'_> {
    /// Runs one ask at `stage` through the pipeline, for the call's actor.
    pub(super) async fn decide<P: AskKind>(
        &self,
        stage: Stage<P>,
    ) -> Result<AskOutput<P>, ErrorData> {
        let meta = CallMeta {
            idempotency_key: None,
            approval: None,
            forward: RequestMetaObject::new(),
            relay: Some(self.relay.clone()),
            resume: None,
        };
        let asked = Asked {
            origin: self,
            stage,
        };
        self.gateway.execute(self.actor, asked, &meta).await
    }
}

/// Where an ask is on its way: sent to a session and answered now (a 2025-11-25 client), or
/// shown to a 2026-07-28 client in an `input_required` result, then its answer received with
/// the client's retry.
pub(super) enum Stage<P: AskKind> {
    /// To send to the client, who answers it now.
    Send(P),
    /// To show the client (restricted), who answers with its retry.
    Show(P),
    /// The client's answer (to restrict before the downstream sees it).
    Answer(P::Answer),
}

/// What comes of an ask: what the client is shown (marks on it are capgate's, not sent), or
/// its answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub(super) enum AskOutput<P: AskKind> {
    Shown {
        params: P,
        marks: Option<MetaObject>,
    },
    Answered(P::Answer),
}

/// One ask, with the call it belongs to.
pub(super) struct Asked<'a, P: AskKind> {
    origin: &'a ServerAsker<'a>,
    stage: Stage<P>,
}

/// What differs between elicitation and sampling.
pub(super) trait AskKind:
    Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned
{
    type Answer: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync;
    const ACTION: Action;
    const KIND: &'static str;
    /// Whether the client declared the capability this ask needs.
    fn declared_by(&self, capabilities: &ClientCapabilities) -> bool;
    /// Whether the client declared this kind of ask at all (its answer comes later).
    fn kind_declared(capabilities: &ClientCapabilities) -> bool;
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

    fn kind_declared(capabilities: &ClientCapabilities) -> bool {
        capabilities.elicitation.is_some()
    }

    fn declared_by(&self, capabilities: &ClientCapabilities) -> bool {
        let Some(elicitation) = &capabilities.elicitation else {
            return false;
        };
        // Neither mode named: form (the 2025-06-18 declaration).
        let form = elicitation.form.is_some() || elicitation.url.is_none();
        match self {
            ElicitRequestParams::FormElicitationParams { .. } => form,
            ElicitRequestParams::UrlElicitationParams { .. } => elicitation.url.is_some(),
            // A mode capgate does not know is not relayed.
            _ => false,
        }
    }

    fn strip_own_meta(&mut self) {
        match self {
            ElicitRequestParams::FormElicitationParams { meta, .. }
            | ElicitRequestParams::UrlElicitationParams { meta, .. } => strip_own(meta),
            // Never sent: `declared_by` refuses modes capgate does not know.
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

    fn kind_declared(capabilities: &ClientCapabilities) -> bool {
        capabilities.sampling.is_some()
    }

    fn declared_by(&self, capabilities: &ClientCapabilities) -> bool {
        Self::kind_declared(capabilities)
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
    type Output = AskOutput<P>;
    const KIND: &'static str = P::KIND;
    const NESTED: bool = true;

    fn action(&self) -> Action {
        P::ACTION
    }

    fn requested(&self) -> &str {
        &self.origin.exposed
    }

    fn arguments(&self) -> std::borrow::Cow<'_, JsonObject> {
        std::borrow::Cow::Borrowed(&self.origin.arguments)
    }

    fn resolve(&self, _gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal> {
        let declared = self
            .origin
            .relay
            .capabilities
            .as_ref()
            .is_some_and(|c| match &self.stage {
                Stage::Send(params) | Stage::Show(params) => params.declared_by(c),
                // Answered: it was shown, so it was declared; the declaration is per request now.
                Stage::Answer(_) => P::kind_declared(c),
            });
        if !declared {
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
        let shown = |params: &P| {
            let mut params = params.clone();
            params.strip_own_meta();
            // The call's obligations bind what the downstream shows the client through it, and
            // so do the ask's own.
            for obligations in [self.origin.obligations, hop.obligations] {
                params
                    .restrict(obligations)
                    .map_err(|reason| DownstreamError::Withheld { reason })?;
            }
            Ok(params)
        };
        match &self.stage {
            Stage::Send(params) => shown(params)?
                .send(self.origin.relay)
                .await
                .map(AskOutput::Answered)
                .map_err(|reason| DownstreamError::Client { reason }),
            Stage::Show(params) => shown(params).map(|params| AskOutput::Shown {
                params,
                marks: None,
            }),
            Stage::Answer(answer) => Ok(AskOutput::Answered(answer.clone())),
        }
    }

    fn apply_obligations(
        output: &mut Self::Output,
        obligations: &Obligations,
    ) -> Result<(), String> {
        match output {
            AskOutput::Answered(answer) => P::restrict_answer(answer, obligations),
            // Restricted before it left `forward`.
            AskOutput::Shown { .. } => Ok(()),
        }
    }

    fn meta_mut(output: &mut Self::Output) -> &mut Option<MetaObject> {
        match output {
            AskOutput::Answered(answer) => P::answer_meta(answer),
            AskOutput::Shown { marks, .. } => marks,
        }
    }

    fn refused(
        _refusal: &Refusal,
        message: String,
        summary: Value,
    ) -> Result<Self::Output, ErrorData> {
        Err(refusal_error(message, summary))
    }
}
