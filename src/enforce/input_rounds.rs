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

use std::future::Future;
use std::pin::Pin;

use rmcp::model::{CallToolResult, ErrorData, InputRequiredResult, InputResponses};
use serde::{Deserialize, Serialize};

use crate::downstream::{AnswerAsks, DownstreamError};

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

/// Who gathers the input a tool call's downstream asks for (the call's asker,
/// `input_asks.rs`): by asking a session now, or by passing it back to a 2026-07-28 client and
/// taking its answers with the retry.
pub(super) trait InputRounds: Sync {
    /// Asks a session's client now.
    fn answerer(&self) -> &dyn AnswerAsks;
    /// Whether the client is a 2026-07-28 one (no session to ask on).
    fn stateless(&self) -> bool;
    /// Decides and restricts every input a downstream asks for, and seals its state for the
    /// client's retry of `call` (the call's action digest).
    fn pass_back<'b>(
        &'b self,
        asked: InputRequiredResult,
        call: &'b str,
    ) -> Pin<Box<dyn Future<Output = Result<InputRequiredResult, DownstreamError>> + Send + 'b>>;
    /// The responses of a retry, checked against the sealed state of `call` and restricted,
    /// with the downstream's own state.
    #[allow(clippy::type_complexity)]
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
    >;
}
