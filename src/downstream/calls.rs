//! The requests a downstream may answer with `input_required` (2026-07-28 multi round-trip
//! requests): `tools/call`, `prompts/get` and `resources/read`. Each is forwarded; when the
//! downstream answers that it needs input first (an elicitation, a sampling, the client's
//! roots), the input is gathered through the call's [`AnswerAsks`] — the same decided, logged
//! and relayed path as a 2025-11-25 server's `elicitation/create` — and the request is sent
//! again with the answers and the downstream's `requestState`, up to [`MAX_INPUT_ROUNDS`].
//!
//! The downstream's `requestState` never leaves capgate: it goes back to the downstream that
//! issued it, within the same forwarded call, so neither the client nor another downstream can
//! see or forge it. A client's own `inputResponses` and `requestState` are never forwarded (the
//! pipeline builds each downstream request anew).

#[allow(deprecated)] // sampling/createMessage is how 2025-11-25 servers sample.
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, GetPromptRequest,
    GetPromptRequestParams, GetPromptResult, InputRequest, InputRequiredResult, InputResponses,
    ReadResourceRequest, ReadResourceRequestParams, ReadResourceResult, ServerResult,
};

use super::asks::{Answer, AnswerAsks, Ask};
use super::{DownstreamError, DownstreamServer, Relay};

/// What becomes of the input a downstream asks for during a call.
#[derive(Clone, Copy)]
pub enum Inputs<'a> {
    /// Gathered by asking the client (a session) through this answerer.
    Ask(&'a dyn AnswerAsks),
    /// Handed back to the caller, who passes it on to a 2026-07-28 client.
    PassBack,
    /// Refused (no client to ask).
    Refuse,
}

/// A tool call's answer: its result, or the input the downstream needs first (when passed
/// back).
pub enum ToolAnswer {
    Complete(CallToolResult),
    InputRequired(InputRequiredResult),
}

/// How many times one forwarded request may be answered `input_required` (rmcp's own bound).
pub const MAX_INPUT_ROUNDS: usize = rmcp::model::DEFAULT_MRTR_MAX_ROUNDS;

/// A request that may be sent again with the input its downstream asked for.
trait Retried: Clone {
    const METHOD: &'static str;
    fn request(self) -> ClientRequest;
    fn meta(&self) -> rmcp::model::RequestMetaObject;
    fn with_input(&mut self, responses: InputResponses, state: Option<String>);
}

macro_rules! retried {
    ($params:ty, $request:ident, $variant:ident, $method:literal) => {
        impl Retried for $params {
            const METHOD: &'static str = $method;
            fn request(self) -> ClientRequest {
                ClientRequest::$variant($request::new(self))
            }
            fn meta(&self) -> rmcp::model::RequestMetaObject {
                self.meta.clone().unwrap_or_default()
            }
            fn with_input(&mut self, responses: InputResponses, state: Option<String>) {
                self.input_responses = Some(responses);
                self.request_state = state;
            }
        }
    };
}

retried!(
    CallToolRequestParams,
    CallToolRequest,
    CallToolRequest,
    "tools/call"
);
retried!(
    GetPromptRequestParams,
    GetPromptRequest,
    GetPromptRequest,
    "prompts/get"
);
retried!(
    ReadResourceRequestParams,
    ReadResourceRequest,
    ReadResourceRequest,
    "resources/read"
);

impl DownstreamServer {
    /// Calls a tool; what the downstream asks of the client meanwhile (as a request of its
    /// own, or as `input_required`) goes to `asks`.
    pub async fn call_tool(
        &self,
        params: CallToolRequestParams,
        relay: Option<&Relay>,
        inputs: Inputs<'_>,
    ) -> Result<ToolAnswer, DownstreamError> {
        match self.with_input_rounds(params, relay, inputs).await? {
            ServerResult::CallToolResult(result) => Ok(ToolAnswer::Complete(result)),
            ServerResult::InputRequiredResult(asked) => Ok(ToolAnswer::InputRequired(asked)),
            _ => Err(self.unexpected("tools/call")),
        }
    }

    /// Reads a resource. Input a downstream asks for is not gathered for reads: refused.
    pub async fn read_resource(
        &self,
        params: ReadResourceRequestParams,
        relay: Option<&Relay>,
    ) -> Result<ReadResourceResult, DownstreamError> {
        match self
            .with_input_rounds(params, relay, Inputs::Refuse)
            .await?
        {
            ServerResult::ReadResourceResult(result) => Ok(result),
            _ => Err(self.unexpected("resources/read")),
        }
    }

    /// Gets a prompt. Input a downstream asks for is not gathered for prompts: refused.
    pub async fn get_prompt(
        &self,
        params: GetPromptRequestParams,
        relay: Option<&Relay>,
    ) -> Result<GetPromptResult, DownstreamError> {
        match self
            .with_input_rounds(params, relay, Inputs::Refuse)
            .await?
        {
            ServerResult::GetPromptResult(result) => Ok(result),
            _ => Err(self.unexpected("prompts/get")),
        }
    }

    /// Sends `params`, and again with the input gathered each time the downstream answers
    /// `input_required`; returns the first other answer (or that one, to pass back).
    async fn with_input_rounds<P: Retried>(
        &self,
        mut params: P,
        relay: Option<&Relay>,
        inputs: Inputs<'_>,
    ) -> Result<ServerResult, DownstreamError> {
        let asks = match inputs {
            Inputs::Ask(answerer) => Some(answerer),
            Inputs::PassBack | Inputs::Refuse => None,
        };
        for _ in 0..=MAX_INPUT_ROUNDS {
            let meta = params.meta();
            match self
                .request(params.clone().request(), meta, relay, asks)
                .await?
            {
                ServerResult::InputRequiredResult(asked) if matches!(inputs, Inputs::PassBack) => {
                    return Ok(ServerResult::InputRequiredResult(asked))
                }
                ServerResult::InputRequiredResult(asked) => {
                    let state = asked.request_state.clone();
                    let responses = self.gather(asked, P::METHOD, relay, asks).await?;
                    params.with_input(responses, state);
                }
                answer => return Ok(answer),
            }
        }
        Err(self.input_not_given(format!(
            "it asked for input more than {MAX_INPUT_ROUNDS} times in one {}",
            P::METHOD
        )))
    }

    /// Gathers every input one `input_required` answer asks for, in key order; the first that
    /// cannot be given fails the request (no partial answer reaches the downstream).
    async fn gather(
        &self,
        asked: InputRequiredResult,
        method: &str,
        relay: Option<&Relay>,
        asks: Option<&dyn AnswerAsks>,
    ) -> Result<InputResponses, DownstreamError> {
        let cancelled = relay.map(|r| r.cancelled.clone()).unwrap_or_default();
        let requests = asked.input_requests.unwrap_or_default();
        if requests.is_empty() && asked.request_state.is_none() {
            return Err(self.input_not_given(
                "it answered input_required with neither input requests nor request state".into(),
            ));
        }
        let mut responses = InputResponses::new();
        for (key, request) in requests {
            let Some(answerer) = asks else {
                return Err(self.input_not_given(format!(
                    "capgate relays what a downstream asks of the client during tool calls only, not during {method}"
                )));
            };
            let ask = match request {
                InputRequest::Elicitation(request) => Ask::Elicit(request.params),
                InputRequest::CreateMessage(request) => Ask::Sample(request.params),
                InputRequest::ListRoots(_) => {
                    return Err(self.input_not_given(
                        "it asked for the client's roots, which capgate does not relay".into(),
                    ))
                }
                _ => {
                    return Err(self.input_not_given(format!(
                        "it asked for an input (`{key}`) of a kind capgate does not know"
                    )))
                }
            };
            // The call's own limits hold while the client answers.
            let answered = tokio::select! {
                answered = tokio::time::timeout(self.call_timeout(), answerer.answer(ask)) => answered,
                _ = cancelled.cancelled() => {
                    return Err(DownstreamError::Cancelled { server: self.id.clone() })
                }
            };
            let answer = answered
                .map_err(|_| self.timed_out())?
                .map_err(|refused| self.input_not_given(refused.message.to_string()))?;
            let value = match answer {
                Answer::Elicited(result) => serde_json::to_value(result),
                Answer::Sampled(result) => serde_json::to_value(result),
            }
            .map_err(|e| self.input_not_given(format!("the answer cannot be encoded: {e}")))?;
            responses.insert(key, value);
        }
        Ok(responses)
    }

    fn input_not_given(&self, reason: String) -> DownstreamError {
        DownstreamError::InputNotGiven {
            server: self.id.clone(),
            reason,
        }
    }
}
