//! The tool catalogue of the case platform (names, descriptions, input schemas, annotations)
//! and the dispatch of a domain `tools/call` to the [`Platform`] operations.
//!
//! Successful calls return the result both as structured content and, serialised, as a text
//! block (as the MCP spec recommends). Failures the caller should read are tool errors whose
//! text is the message and whose structured content is `{"error": code, "message": text}`.

use std::sync::Arc;

use rmcp::{
    handler::server::common::{schema_for_empty_input, schema_for_input},
    model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations},
};
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Value};

use crate::state::{
    Actor, CaseStatus, DomainError, DomainResult, MemoryScope, MemorySensitivity, Platform, Risk,
};

/// Tool error text when the request carries no tenant in `_meta["dev.capgate/actor"]`.
pub const MISSING_TENANT: &str = "missing dev.capgate/actor tenant context";

/// Test hook: exit the process without answering.
pub const DEBUG_CRASH: &str = "debug_crash";
/// Test hook: sleep, then answer `slept`.
pub const DEBUG_SLEEP: &str = "debug_sleep";
/// Test hook: add a tool at run time and announce `tools/list_changed`.
pub const DEBUG_ADD_TOOL: &str = "debug_add_tool";

/// Longest `debug_sleep` honoured, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 600_000;

/// Arguments naming a case.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CaseIdArgs {
    /// Case identifier, e.g. `case-101`.
    pub case_id: String,
}

/// Arguments of `search_evidence`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchEvidenceArgs {
    /// Case whose evidence is searched.
    pub case_id: String,
    /// Text to look for in evidence titles and texts (case-insensitive).
    pub query: String,
}

/// Arguments of `propose_risk_update`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProposeRiskUpdateArgs {
    /// Case concerned.
    pub case_id: String,
    /// Proposed risk rating.
    pub risk: Risk,
    /// Why the rating should change.
    pub rationale: String,
}

/// Arguments of `create_notice_draft`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateNoticeDraftArgs {
    /// Case the notice is about.
    pub case_id: String,
    /// Text of the notice.
    pub body: String,
}

/// Arguments naming a notice draft.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DraftIdArgs {
    /// Draft identifier, e.g. `draft-1`.
    pub draft_id: String,
}

/// Arguments of `update_case_status`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateCaseStatusArgs {
    /// Case concerned.
    pub case_id: String,
    /// New status.
    pub status: CaseStatus,
}

/// Arguments of `write_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteMemoryArgs {
    /// Memory scope (`user` entries are private to the calling user).
    pub scope: MemoryScope,
    /// Key within the scope.
    pub key: String,
    /// Value to store.
    pub value: String,
    /// Sensitivity label of the value.
    pub sensitivity: MemorySensitivity,
}

/// Arguments of `read_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadMemoryArgs {
    /// Memory scope.
    pub scope: MemoryScope,
    /// Key within the scope.
    pub key: String,
}

/// Arguments of `traverse_entity_graph`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TraverseArgs {
    /// Entity to start from (a case id, company, person or account id).
    pub entity_id: String,
    /// How many hops to follow (at most 3; larger values are clamped).
    #[schemars(range(min = 0, max = 3))]
    pub depth: u32,
}

/// Arguments of `delete_evidence`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EvidenceIdArgs {
    /// Evidence identifier, e.g. `ev-1001`.
    pub evidence_id: String,
}

/// Arguments of `grant_tool_access`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GrantToolAccessArgs {
    /// Agent that receives access.
    pub agent: String,
    /// Tool the agent may use.
    pub tool: String,
}

/// Arguments of `debug_sleep`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// Milliseconds to sleep.
    pub ms: u64,
}

/// Arguments of `debug_add_tool`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddToolArgs {
    /// Name of the tool to add.
    pub name: String,
}

pub fn annotations(read_only: bool, destructive: bool, idempotent: bool) -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(read_only)
        .destructive(destructive)
        .idempotent(idempotent)
        .open_world(false)
}

pub fn tool<T: JsonSchema + 'static>(
    name: &'static str,
    description: &'static str,
    hints: ToolAnnotations,
) -> Result<Tool, String> {
    let schema = schema_for_input::<T>().map_err(|e| format!("tool {name}: {e}"))?;
    Ok(Tool::new(name, description, schema).with_annotations(hints))
}

/// The domain tools, in a stable order.
pub fn domain_tools() -> Result<Vec<Tool>, String> {
    let ro = annotations(true, false, true);
    Ok(vec![
        tool::<CaseIdArgs>(
            "read_case",
            "Read an enforcement case: title, status, risk, assigned users and evidence ids.",
            ro.clone(),
        )?,
        tool::<SearchEvidenceArgs>(
            "search_evidence",
            "Search the evidence documents of a case for a text (case-insensitive).",
            ro.clone(),
        )?,
        tool::<ProposeRiskUpdateArgs>(
            "propose_risk_update",
            "Record a proposal to change a case's risk rating. The case itself is not changed.",
            annotations(false, false, false),
        )?,
        tool::<CreateNoticeDraftArgs>(
            "create_notice_draft",
            "Create a notice draft for a case (status `drafted`).",
            annotations(false, false, false),
        )?,
        tool::<DraftIdArgs>(
            "request_approval",
            "Request approval of a drafted notice (status becomes `approval_requested`).",
            annotations(false, false, true),
        )?,
        tool::<DraftIdArgs>(
            "approve_notice_draft",
            "Approve a notice draft whose approval was requested (status becomes `approved`).",
            annotations(false, false, true),
        )?,
        tool::<DraftIdArgs>(
            "send_approved_notice",
            "Send an approved notice to its recipient (status becomes `sent`). Fails unless the draft is approved.",
            ToolAnnotations::new()
                .read_only(false)
                .destructive(true)
                .idempotent(false)
                .open_world(true),
        )?,
        tool::<UpdateCaseStatusArgs>(
            "update_case_status",
            "Change a case's status (open, under_review, closed).",
            annotations(false, true, true),
        )?,
        tool::<WriteMemoryArgs>(
            "write_memory",
            "Store a value in agent memory under a scope and key.",
            annotations(false, false, true),
        )?,
        tool::<ReadMemoryArgs>(
            "read_memory",
            "Read a value from agent memory by scope and key.",
            ro.clone(),
        )?,
        tool::<TraverseArgs>(
            "traverse_entity_graph",
            "Walk the entity graph (cases, companies, people, accounts) from an entity, breadth first, up to 3 hops.",
            ro.clone(),
        )?,
        tool::<EvidenceIdArgs>(
            "delete_evidence",
            "Delete an evidence document.",
            annotations(false, true, true),
        )?,
        tool::<GrantToolAccessArgs>(
            "grant_tool_access",
            "Grant an agent access to a tool.",
            annotations(false, false, false),
        )?,
        Tool::new(
            "state_snapshot",
            "Return the calling tenant's whole platform state (counts, cases, drafts, notices, proposals, memory, grants).",
            schema_for_empty_input(),
        )
        .with_annotations(ro),
    ])
}

/// The test-hook tools (listed only when `CASE_PLATFORM_TEST_HOOKS=1`).
pub fn test_hook_tools() -> Result<Vec<Tool>, String> {
    Ok(vec![
        Tool::new(
            DEBUG_CRASH,
            "Test hook: the server process exits (code 70) without answering.",
            schema_for_empty_input(),
        ),
        tool::<SleepArgs>(
            DEBUG_SLEEP,
            "Test hook: sleep for `ms` milliseconds, then answer `slept`.",
            annotations(true, false, true),
        )?,
        tool::<AddToolArgs>(
            DEBUG_ADD_TOOL,
            "Test hook: add a tool named `name` and send notifications/tools/list_changed.",
            annotations(false, false, false),
        )?,
    ])
}

/// The definition of a tool added at run time by `debug_add_tool`.
pub fn runtime_tool(name: &str) -> Tool {
    Tool::new(
        name.to_owned(),
        format!("Runtime-added test tool; answers `called {name}`."),
        Arc::new(schema_for_empty_input().as_ref().clone()),
    )
}

/// Whether `name` is a valid MCP tool name (1–128 characters of `[A-Za-z0-9_.-]`).
pub fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A successful result: structured content plus its serialisation as text.
pub fn success(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

/// A tool error with `message` as text and `{"error": code, "message": message}` as
/// structured content.
pub fn failure(code: &str, message: &str) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(message.to_owned())]);
    result.structured_content = Some(json!({ "error": code, "message": message }));
    result
}

/// A successful result whose text is `text` and whose structured content is `value`.
pub fn success_text(text: &str, value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text.to_owned())]);
    result.structured_content = Some(value);
    result
}

/// Deserialises a tool's arguments; the error is the tool result that explains them (boxed:
/// it is large and only built on the failure path).
pub fn parse<T: DeserializeOwned>(tool: &str, args: &JsonObject) -> Result<T, Box<CallToolResult>> {
    serde_json::from_value(Value::Object(args.clone())).map_err(|e| {
        Box::new(failure(
            "invalid_arguments",
            &format!("invalid arguments for {tool}: {e}"),
        ))
    })
}

fn finish(result: DomainResult) -> CallToolResult {
    match result {
        Ok(value) => success(value),
        Err(e) => domain_failure(&e),
    }
}

/// The tool error for a domain failure.
pub fn domain_failure(e: &DomainError) -> CallToolResult {
    failure(e.code(), &e.to_string())
}

/// Runs domain tool `name` for `actor`; `None` when `name` is not a domain tool.
pub fn call_domain_tool(
    platform: &mut Platform,
    actor: &Actor,
    name: &str,
    args: &JsonObject,
) -> Option<CallToolResult> {
    let result = match name {
        "read_case" => {
            parse::<CaseIdArgs>(name, args).map(|a| platform.read_case(actor, &a.case_id))
        }
        "search_evidence" => parse::<SearchEvidenceArgs>(name, args)
            .map(|a| platform.search_evidence(actor, &a.case_id, &a.query)),
        "propose_risk_update" => parse::<ProposeRiskUpdateArgs>(name, args)
            .map(|a| platform.propose_risk_update(actor, &a.case_id, a.risk, &a.rationale)),
        "create_notice_draft" => parse::<CreateNoticeDraftArgs>(name, args)
            .map(|a| platform.create_notice_draft(actor, &a.case_id, &a.body)),
        "request_approval" => {
            parse::<DraftIdArgs>(name, args).map(|a| platform.request_approval(actor, &a.draft_id))
        }
        "approve_notice_draft" => parse::<DraftIdArgs>(name, args)
            .map(|a| platform.approve_notice_draft(actor, &a.draft_id)),
        "send_approved_notice" => parse::<DraftIdArgs>(name, args)
            .map(|a| platform.send_approved_notice(actor, &a.draft_id)),
        "update_case_status" => parse::<UpdateCaseStatusArgs>(name, args)
            .map(|a| platform.update_case_status(actor, &a.case_id, a.status)),
        "write_memory" => parse::<WriteMemoryArgs>(name, args)
            .map(|a| platform.write_memory(actor, a.scope, &a.key, &a.value, a.sensitivity)),
        "read_memory" => parse::<ReadMemoryArgs>(name, args)
            .map(|a| platform.read_memory(actor, a.scope, &a.key)),
        "traverse_entity_graph" => parse::<TraverseArgs>(name, args)
            .map(|a| platform.traverse_entity_graph(actor, &a.entity_id, a.depth)),
        "delete_evidence" => parse::<EvidenceIdArgs>(name, args)
            .map(|a| platform.delete_evidence(actor, &a.evidence_id)),
        "grant_tool_access" => parse::<GrantToolAccessArgs>(name, args)
            .map(|a| platform.grant_tool_access(actor, &a.agent, &a.tool)),
        "state_snapshot" => Ok(platform.state_snapshot(actor)),
        _ => return None,
    };
    Some(match result {
        Ok(outcome) => finish(outcome),
        Err(invalid) => *invalid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;

    fn args(v: Value) -> JsonObject {
        match v {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn catalogue_is_complete_and_schemas_are_objects() {
        let tools = domain_tools().expect("tools");
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "read_case",
                "search_evidence",
                "propose_risk_update",
                "create_notice_draft",
                "request_approval",
                "approve_notice_draft",
                "send_approved_notice",
                "update_case_status",
                "write_memory",
                "read_memory",
                "traverse_entity_graph",
                "delete_evidence",
                "grant_tool_access",
                "state_snapshot",
            ]
        );
        for t in tools.iter().chain(test_hook_tools().expect("hooks").iter()) {
            assert_eq!(
                t.input_schema.get("type"),
                Some(&json!("object")),
                "{}",
                t.name
            );
        }
        let traverse = tools
            .iter()
            .find(|t| t.name == "traverse_entity_graph")
            .expect("traverse");
        assert_eq!(
            traverse.input_schema["properties"]["depth"]["maximum"],
            json!(3)
        );
    }

    #[test]
    fn dispatch_parses_and_reports() {
        let mut p = seed::platform();
        let actor = Actor::new("acme", "alice");
        let r = call_domain_tool(
            &mut p,
            &actor,
            "read_case",
            &args(json!({"case_id": "case-103"})),
        )
        .expect("known");
        assert_eq!(r.is_error, Some(false));
        assert_eq!(
            r.structured_content
                .as_ref()
                .map(|v| v["case"]["risk"].clone()),
            Some(json!("critical"))
        );

        let bad = call_domain_tool(&mut p, &actor, "read_case", &JsonObject::new()).expect("known");
        assert_eq!(bad.is_error, Some(true));

        let bad_enum = call_domain_tool(
            &mut p,
            &actor,
            "update_case_status",
            &args(json!({"case_id": "case-101", "status": "reopened"})),
        )
        .expect("known");
        assert_eq!(bad_enum.is_error, Some(true));

        let d = call_domain_tool(
            &mut p,
            &actor,
            "create_notice_draft",
            &args(json!({"case_id": "case-101", "body": "Notice"})),
        )
        .expect("known");
        let id = d
            .structured_content
            .as_ref()
            .and_then(|v| v["draft"]["id"].as_str().map(str::to_owned))
            .expect("id");
        let send = call_domain_tool(
            &mut p,
            &actor,
            "send_approved_notice",
            &args(json!({ "draft_id": id })),
        )
        .expect("known");
        assert_eq!(send.is_error, Some(true));
        assert_eq!(
            send.content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.as_str()),
            Some("draft not approved")
        );
        assert!(call_domain_tool(&mut p, &actor, "nope", &JsonObject::new()).is_none());
    }

    #[test]
    fn tool_names_are_validated() {
        assert!(valid_tool_name("late_tool.v2-x"));
        assert!(!valid_tool_name(""));
        assert!(!valid_tool_name("has space"));
        assert!(!valid_tool_name(&"x".repeat(129)));
    }
}
