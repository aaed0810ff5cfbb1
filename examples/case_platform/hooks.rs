//! Test hooks that make the server ask its client for something while serving a call, or change
//! a tool under its clients:
//! `debug_elicit` (form elicitation), `debug_sample` (sampling), `debug_log` (log messages
//! at every level) and `debug_redefine` (a tool's description changes). Listed only with `CASE_PLATFORM_TEST_HOOKS=1`.

#![allow(deprecated)] // sampling and logging are how 2025-11-25 servers use them.

use rmcp::model::{
    CallToolResult, CreateMessageRequestParams, ElicitRequestParams, ElicitationSchema, JsonObject,
    LoggingLevel, LoggingMessageNotificationParam, SamplingMessage, Tool,
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

async fn elicit(message: String, ctx: &RequestContext<RoleServer>) -> CallToolResult {
    let schema = match ElicitationSchema::builder()
        .required_string("answer")
        .build()
    {
        Ok(schema) => schema,
        Err(e) => return tools::failure("internal", e),
    };
    let request = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: schema,
    };
    match ctx.peer.create_elicitation(request).await {
        Ok(result) => tools::success_text(
            &format!(
                "elicited {}: {}",
                serde_json::to_string(&result.action).unwrap_or_default(),
                result.content.clone().unwrap_or_default()
            ),
            json!({ "action": result.action, "content": result.content }),
        ),
        Err(e) => tools::failure("elicitation_refused", &e.to_string()),
    }
}

async fn sample(message: String, ctx: &RequestContext<RoleServer>) -> CallToolResult {
    let request = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(message)], 100);
    match ctx.peer.create_message(request).await {
        Ok(result) => {
            let text = serde_json::to_value(&result.message.content).unwrap_or_default();
            tools::success_text(
                &format!("sampled {}: {text}", result.model),
                json!({ "model": result.model, "content": text }),
            )
        }
        Err(e) => tools::failure("sampling_refused", &e.to_string()),
    }
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
