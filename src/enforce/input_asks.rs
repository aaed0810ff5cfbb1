//! How the call's asker ([`ServerAsker`]) gathers the input a 2026-07-28 downstream asks for
//! ([`InputRounds`]): asking a session's client now, or passing each input, decided and
//! restricted, back to a 2026-07-28 client with a sealed state, and taking its answers, each
//! decided again and restricted, with its retry.

#![allow(deprecated)] // sampling/createMessage is how servers sample (deprecated by SEP-2577).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use rmcp::model::{
    CreateMessageRequest, CreateMessageRequestParams, ElicitRequest, ElicitRequestParams,
    InputRequest, InputRequests, InputRequiredResult, InputResponses,
};
use serde_json::Value;

use crate::downstream::{AnswerAsks, DownstreamError};

use super::input_rounds::{InputRounds, Resume};
use super::input_state::{InputKind, InputState, StateProblem, INPUT_STATE_SECONDS};
use super::server_asks::{AskKind, AskOutput, ServerAsker, Stage};

impl InputRounds for ServerAsker<'_> {
    fn answerer(&self) -> &dyn AnswerAsks {
        self
    }

    fn stateless(&self) -> bool {
        self.relay.stateless
    }

    fn pass_back<'b>(
        &'b self,
        asked: InputRequiredResult,
        call: &'b str,
    ) -> Pin<Box<dyn Future<Output = Result<InputRequiredResult, DownstreamError>> + Send + 'b>>
    {
        Box::pin(self.passed_back(asked, call))
    }

    fn resume<'b>(
        &'b self,
        resume: &'b Resume,
        call: &'b str,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(InputResponses, Option<String>), DownstreamError>>
                + Send
                + 'b,
        >,
    > {
        Box::pin(self.resumed(resume, call))
    }
}

impl ServerAsker<'_> {
    async fn passed_back(
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
        Ok(InputRequiredResult::new(Some(shown), Some(sealed)))
    }

    /// One input as the client is shown it: decided, logged, restricted.
    async fn show<P: AskKind>(&self, params: P) -> Result<P, DownstreamError> {
        match self.decide(Stage::Show(params)).await {
            Ok(AskOutput::Shown { params, .. }) => Ok(params),
            Ok(AskOutput::Answered(_)) => Err(not_given("an ask came back at another stage")),
            Err(refused) => Err(not_given(&refused.message)),
        }
    }

    async fn resumed(
        &self,
        resume: &Resume,
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
                StateProblem::OtherInputs(format!("asked {asked:?}, answered {answered:?}"))
                    .to_string(),
            ));
        }
        let mut restricted = InputResponses::new();
        // Both maps are ordered by key and hold the same keys (checked above).
        for ((key, kind), given) in state.inputs.iter().zip(resume.responses.values()) {
            let given = given.clone();
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
        // Refused now, nothing has reached the downstream in this request.
        let decided = self
            .decide::<P>(Stage::Answer(answer))
            .await
            .map_err(|refused| DownstreamError::InputState(refused.message.to_string()))?;
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
