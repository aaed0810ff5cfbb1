//! Multi round-trip tool calls of 2026-07-28 clients. A stateless client cannot be asked
//! anything while its call waits, so when a downstream answers `input_required`, capgate
//! passes the request on as the client's own `input_required`:
//!
//! - each input asked (an elicitation, a sampling) is decided as an ask of its own (`elicit` /
//!   `sample` on the call's tool, actor and arguments), logged, and restricted by the call's
//!   obligations and its own before the client sees it; one refused fails the call;
//! - the downstream's `requestState` goes into a state capgate seals ([`InputSeal`]), bound to
//!   the call's action digest and the inputs asked, with an expiry.
//!
//! The client's retry is a new `tools/call` and takes the whole pipeline again (authenticated,
//! stopped, decided, admitted, recorded); then the sealed state must open for exactly this
//! call, the responses must answer exactly the inputs asked, and each answer is decided again
//! and restricted by its ask's obligations before the downstream gets it with its own state.

#![allow(deprecated)] // sampling/createMessage is how servers sample (deprecated by SEP-2577).

use std::collections::BTreeMap;

use rmcp::model::{
    CallToolResult, CreateMessageRequest, CreateMessageRequestParams, ElicitRequest,
    ElicitRequestParams, ErrorData, InputRequest, InputRequests, InputRequiredResult,
    InputResponses,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::downstream::DownstreamError;

use super::input_state::{InputKind, InputState, INPUT_STATE_SECONDS};
use super::server_asks::{AskKind, AskOutput, ServerAsker, Stage};

/// What a `tools/call` answers: the tool's result, or (to a 2026-07-28 client) the input the
/// downstream needs first, with capgate's sealed state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolOutput {
    /// First: only an object with `resultType: "input_required"` reads as one.
    InputRequired(InputRequiredResult),
    Result(CallToolResult),
}

/// A client's retry with the input it was asked for: its responses and the state capgate gave.
#[derive(Debug, Clone)]
pub struct Resume {
    pub responses: InputResponses,
    pub state: String,
}

impl Resume {
    /// From a `tools/call`'s `inputResponses` and `requestState`: both, or neither.
    pub fn of(
        responses: Option<InputResponses>,
        state: Option<String>,
    ) -> Result<Option<Self>, ErrorData> {
        match (responses, state) {
            (None, None) => Ok(None),
            (responses, Some(state)) => Ok(Some(Self {
                responses: responses.unwrap_or_default(),
                state,
            })),
            (Some(_), None) => Err(ErrorData::invalid_params(
                "inputResponses without the requestState they answer",
                None,
            )),
        }
    }
}

impl ServerAsker<'_> {
    /// Decides and restricts every input a downstream asks for, and seals its state for the
    /// client's retry of `call` (the call's action digest).
    pub(super) async fn pass_back(
        &self,
        asked: InputRequiredResult,
        call: &str,
    ) -> Result<InputRequiredResult, DownstreamError> {
        let mut shown = InputRequests::new();
        let mut inputs = BTreeMap::new();
        for (key, request) in asked.input_requests.clone().unwrap_or_default() {
            let (kind, request) =
                match request {
                    InputRequest::Elicitation(request) => {
                        let params = self.show(request.params).await?;
                        (
                            InputKind::Elicit,
                            InputRequest::Elicitation(ElicitRequest::new(params)),
                        )
                    }
                    InputRequest::CreateMessage(request) => {
                        let params = self.show(request.params).await?;
                        (
                            InputKind::Sample,
                            InputRequest::CreateMessage(CreateMessageRequest::new(params)),
                        )
                    }
                    InputRequest::ListRoots(_) => return Err(not_given(
                        "the downstream asked for the client's roots, which capgate does not relay",
                    )),
                    _ => {
                        return Err(not_given(
                            "the downstream asked for an input of a kind capgate does not know",
                        ))
                    }
                };
            inputs.insert(key.clone(), kind);
            shown.insert(key, request);
        }
        let state = InputState {
            call: call.to_string(),
            expires: self.gateway.controls.now() + INPUT_STATE_SECONDS,
            inputs,
            downstream: asked.request_state,
        };
        let sealed = self.gateway.input_seal.seal(&state);
        let mut passed = InputRequiredResult::new(Some(shown), Some(sealed));
        passed.meta = None;
        Ok(passed)
    }

    /// One input as the client is shown it: decided, logged, restricted.
    async fn show<P: AskKind>(&self, params: P) -> Result<P, DownstreamError> {
        match self.decide(Stage::Show(params)).await {
            Ok(AskOutput::Shown { params, .. }) => Ok(params),
            Ok(AskOutput::Answered(_)) => Err(not_given("an ask came back at another stage")),
            Err(refused) => Err(not_given(&refused.message)),
        }
    }

    /// The responses of a retry, checked against the sealed state of `call` and restricted,
    /// with the downstream's own state.
    pub(super) async fn resume(
        &self,
        resume: &super::Resume,
        call: &str,
    ) -> Result<(InputResponses, Option<String>), DownstreamError> {
        let now = self.gateway.controls.now();
        let state = self
            .gateway
            .input_seal
            .open(&resume.state, call, now)
            .map_err(|problem| DownstreamError::InputState(problem.to_string()))?;
        let asked: Vec<&String> = state.inputs.keys().collect();
        let answered: Vec<&String> = resume.responses.keys().collect();
        if asked != answered {
            return Err(DownstreamError::InputState(
                super::input_state::StateProblem::OtherInputs(format!(
                    "asked {asked:?}, answered {answered:?}"
                ))
                .to_string(),
            ));
        }
        let mut restricted = InputResponses::new();
        for (key, kind) in &state.inputs {
            let given = resume.responses.get(key).cloned().unwrap_or(Value::Null);
            let value = match kind {
                InputKind::Elicit => self.answer::<ElicitRequestParams>(key, given).await?,
                InputKind::Sample => {
                    self.answer::<CreateMessageRequestParams>(key, given)
                        .await?
                }
            };
            restricted.insert(key.clone(), value);
        }
        Ok((restricted, state.downstream))
    }

    /// One answer as the downstream gets it: read as its kind's result, decided again, logged,
    /// restricted by the ask's obligations.
    async fn answer<P: AskKind>(&self, key: &str, given: Value) -> Result<Value, DownstreamError> {
        let answer: P::Answer = serde_json::from_value(given).map_err(|e| {
            DownstreamError::InputState(format!("input `{key}` is not an answer of its kind: {e}"))
        })?;
        let decided = self
            .decide::<P>(Stage::Answer(answer))
            .await
            .map_err(|refused| not_given(&refused.message))?;
        match decided {
            AskOutput::Answered(answer) => serde_json::to_value(answer)
                .map_err(|e| not_given(&format!("the answer cannot be encoded: {e}"))),
            AskOutput::Shown { .. } => Err(not_given("an ask came back at another stage")),
        }
    }
}

fn not_given(reason: &str) -> DownstreamError {
    DownstreamError::Client {
        reason: reason.to_string(),
    }
}
