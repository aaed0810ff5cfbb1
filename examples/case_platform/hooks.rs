//! Test hooks that make the server ask its client for something while serving a call, or change
//! a tool under its clients:
//! `debug_elicit` (form elicitation), `debug_sample` (sampling), `debug_log` (log messages
//! at every level) and `debug_redefine` (a tool's description changes). Listed only with `CASE_PLATFORM_TEST_HOOKS=1`.

#![allow(deprecated)] // sampling and logging are how 2025-11-25 servers use them.

use rmcp::model::{
    CallToolResponse, CallToolResult, CreateMessageRequest, CreateMessageRequestParams,
    ElicitRequest, ElicitRequestParams, ElicitationSchema, InputRequest, InputRequests,
    InputRequiredResult, InputResponses, JsonObject, LoggingLevel, LoggingMessageNotificationParam,
    SamplingMessage, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::tools;

pub const DEBUG_ELICIT: &str = "debug_elicit";
pub const DEBUG_SAMPLE: &str = "debug_sample";
pub const DEBUG_LOG: &str = "debug_log";
pub const DEBUG_REDEFINE: &str = "debug_redefine";

/// Arguments of `debug_redefine`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RedefineArgs {
    /// The tool whose definition changes.
    pub name: String,
    /// Its new description.
    pub description: String,
}

/// Arguments of `debug_elicit` and `debug_sample`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskArgs {
    /// What to ask.
    pub message: String,
}

pub fn hook_tools() -> Result<Vec<Tool>, String> {
    Ok(vec![
        tools::tool::<AskArgs>(
            DEBUG_ELICIT,
            "Test hook: ask the client (form elicitation) for `answer`, then report it.",
            tools::annotations(true, false, true),
        )?,
        tools::tool::<AskArgs>(
            DEBUG_SAMPLE,
            "Test hook: ask the client's model (sampling) about `message`, then report its answer.",
            tools::annotations(true, false, true),
        )?,
        tools::tool::<RedefineArgs>(
            DEBUG_REDEFINE,
            "Test hook: change the description of tool `name` (a rug pull) and send notifications/tools/list_changed.",
            tools::annotations(false, false, true),
        )?,
        Tool::new(
            DEBUG_LOG,
            "Test hook: send one log message at each level (debug to error), then answer `logged`.",
            rmcp::handler::server::common::schema_for_empty_input(),
        ),
    ])
}

/// Runs a hook; `None` when `name` is not one.
pub async fn call(
    name: &str,
    args: &JsonObject,
    ctx: &RequestContext<RoleServer>,
) -> Option<CallToolResult> {
    Some(match name {
        DEBUG_ELICIT => match tools::parse::<AskArgs>(name, args) {
            Ok(a) => elicit(a.message, ctx).await,
            Err(invalid) => *invalid,
        },
        DEBUG_SAMPLE => match tools::parse::<AskArgs>(name, args) {
            Ok(a) => sample(a.message, ctx).await,
            Err(invalid) => *invalid,
        },
        DEBUG_LOG => log(ctx).await,
        _ => return None,
    })
}

fn elicit_params(message: String) -> Result<ElicitRequestParams, String> {
    let schema = ElicitationSchema::builder()
        .required_string("answer")
        .build()
        .map_err(|e| e.to_string())?;
    Ok(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: schema,
    })
}

fn sample_params(message: String) -> CreateMessageRequestParams {
    CreateMessageRequestParams::new(vec![SamplingMessage::user_text(message)], 100)
}

fn elicited(action: &serde_json::Value, content: &serde_json::Value) -> CallToolResult {
    tools::success_text(
        &format!(
            "elicited {action}: {}",
            if content.is_null() {
                json!({})
            } else {
                content.clone()
            }
        ),
        json!({ "action": action, "content": content }),
    )
}

fn sampled(model: &serde_json::Value, content: &serde_json::Value) -> CallToolResult {
    tools::success_text(
        &format!("sampled {}: {content}", model.as_str().unwrap_or_default()),
        json!({ "model": model, "content": content }),
    )
}

async fn elicit(message: String, ctx: &RequestContext<RoleServer>) -> CallToolResult {
    let request = match elicit_params(message) {
        Ok(request) => request,
        Err(e) => return tools::failure("internal", &e),
    };
    match ctx.peer.create_elicitation(request).await {
        Ok(result) => elicited(
            &json!(result.action),
            &serde_json::to_value(&result.content).unwrap_or_default(),
        ),
        Err(e) => tools::failure("elicitation_refused", &e.to_string()),
    }
}

async fn sample(message: String, ctx: &RequestContext<RoleServer>) -> CallToolResult {
    match ctx.peer.create_message(sample_params(message)).await {
        Ok(result) => sampled(
            &json!(result.model),
            &serde_json::to_value(&result.message.content).unwrap_or_default(),
        ),
        Err(e) => tools::failure("sampling_refused", &e.to_string()),
    }
}

/// The request state of the round that asked: echoed back, it says the answer is there.
const ASKED: &str = "asked-for-answer";

/// `debug_elicit` and `debug_sample` as a 2026-07-28 server does them (multi round-trip
/// requests): the first call answers `input_required` (input `answer`, state [`ASKED`]), the
/// call made again with the input reports it. `None` when `name` is neither.
pub fn call_rounds(
    name: &str,
    args: &JsonObject,
    responses: Option<&InputResponses>,
    state: Option<&str>,
) -> Option<CallToolResponse> {
    if name != DEBUG_ELICIT && name != DEBUG_SAMPLE {
        return None;
    }
    let message = match tools::parse::<AskArgs>(name, args) {
        Ok(a) => a.message,
        Err(invalid) => return Some((*invalid).into()),
    };
    let answer = responses.and_then(|r| r.get("answer"));
    Some(match (state, answer) {
        (Some(ASKED), Some(answer)) if name == DEBUG_ELICIT => {
            elicited(&answer["action"], &answer["content"]).into()
        }
        (Some(ASKED), Some(answer)) => sampled(&answer["model"], &answer["content"]).into(),
        (Some(other), _) => {
            tools::failure("bad_state", &format!("unexpected request state {other:?}")).into()
        }
        (None, _) => {
            let request = if name == DEBUG_ELICIT {
                match elicit_params(message) {
                    Ok(params) => InputRequest::Elicitation(ElicitRequest::new(params)),
                    Err(e) => return Some(tools::failure("internal", &e).into()),
                }
            } else {
                InputRequest::CreateMessage(CreateMessageRequest::new(sample_params(message)))
            };
            let mut requests = InputRequests::new();
            requests.insert("answer".into(), request);
            InputRequiredResult::new(Some(requests), Some(ASKED.into())).into()
        }
    })
}

async fn log(ctx: &RequestContext<RoleServer>) -> CallToolResult {
    let levels = [
        LoggingLevel::Debug,
        LoggingLevel::Info,
        LoggingLevel::Warning,
        LoggingLevel::Error,
    ];
    for (n, level) in levels.into_iter().enumerate() {
        let mut message = LoggingMessageNotificationParam::new(level, json!({ "n": n }));
        message.logger = Some("case-platform".into());
        if let Err(e) = ctx.peer.notify_logging_message(message).await {
            return tools::failure("log_failed", &e.to_string());
        }
    }
    tools::success_text("logged", json!({ "sent": levels.len() }))
}
