//! The MCP face of the case platform: a [`ServerHandler`] exposing the tools, the case
//! resources and the prompts.
//!
//! Every `tools/call`, `resources/read` and `prompts/get` takes its tenant from the request's
//! `_meta["dev.capgate/actor"]` (injected by the trusted gateway; rmcp moves a request's
//! `_meta` into `RequestContext::meta`). Without a tenant a domain tool answers a tool error
//! and resources/prompts answer `invalid_params`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rmcp::{
    model::{
        CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
        CompletionInfo, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
        InitializeRequestParams, InitializeResult, JsonObject, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        Prompt, PromptArgument, PromptMessage, ProtocolVersion, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
        ResourceUpdatedNotificationParam, Role, ServerCapabilities, ServerConfig,
        SubscribeRequestParams, Tool, UnsubscribeRequestParams,
    },
    service::RequestContext,
    ErrorData, RoleServer, ServerHandler,
};
use serde_json::{json, Value};

use crate::{
    journal::Journal,
    prompts,
    state::{Actor, Platform},
    tools::{self, MISSING_TENANT},
};

/// `_meta` key under which the gateway passes the calling actor.
pub const ACTOR_META_KEY: &str = "dev.capgate/actor";
/// Environment variable that enables the test-hook tools when set to `1`.
pub const TEST_HOOKS_ENV: &str = "CASE_PLATFORM_TEST_HOOKS";
/// Environment variable that, set to `2026-07-28`, makes the server speak only that revision.
pub const PROTOCOL_ENV: &str = "CASE_PLATFORM_PROTOCOL";
/// Exit code of `debug_crash`.
pub const CRASH_EXIT_CODE: i32 = 70;

const CASE_URI_PREFIX: &str = "case://";
const CASE_URI_TEMPLATE: &str = "case://{tenant}/cases/{case_id}";
const JSON_MIME: &str = "application/json";

/// Reads the actor from the value of `_meta["dev.capgate/actor"]`: an object whose `tenant`
/// is a non-empty string. `user`, `agent` and `run_id` are optional strings.
pub fn actor_from_meta(value: Option<&Value>) -> Option<Actor> {
    let object = value?.as_object()?;
    let tenant = object.get("tenant")?.as_str()?.trim();
    if tenant.is_empty() {
        return None;
    }
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(Actor {
        tenant: tenant.to_owned(),
        user: text("user"),
        agent: text("agent"),
        run_id: text("run_id"),
    })
}

/// Splits `case://<tenant>/cases/<case_id>` into `(tenant, case_id)`.
fn parse_case_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix(CASE_URI_PREFIX)?;
    let mut parts = rest.split('/');
    let (tenant, cases, case_id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || cases != "cases" || tenant.is_empty() || case_id.is_empty() {
        return None;
    }
    Some((tenant, case_id))
}

fn case_uri(tenant: &str, case_id: &str) -> String {
    format!("{CASE_URI_PREFIX}{tenant}/cases/{case_id}")
}

/// The case-platform MCP server. Cheap to clone; clones share the state.
#[derive(Debug, Clone)]
pub struct CasePlatform {
    platform: Arc<Mutex<Platform>>,
    journal: Option<Arc<Journal>>,
    pub(crate) test_hooks: bool,
    domain_tools: Arc<Vec<Tool>>,
    hook_tools: Arc<Vec<Tool>>,
    pub(crate) runtime_tools: Arc<RwLock<Vec<Tool>>>,
    /// Descriptions changed at run time by `debug_redefine`, by tool name.
    pub(crate) redefined: Arc<RwLock<HashMap<String, String>>>,
    /// Case URIs the client subscribed to: a status change of one is announced.
    subscribed: Arc<Mutex<std::collections::BTreeSet<String>>>,
    /// Speaks only MCP 2026-07-28 (`server/discover`; `initialize` is refused) and asks for
    /// input as multi round-trip requests (`CASE_PLATFORM_PROTOCOL=2026-07-28`).
    modern_only: bool,
}

impl CasePlatform {
    /// A server over `platform`.
    pub fn new(
        platform: Platform,
        journal: Option<Journal>,
        test_hooks: bool,
    ) -> anyhow::Result<Self> {
        let domain_tools = tools::domain_tools().map_err(anyhow::Error::msg)?;
        let hook_tools = if test_hooks {
            let mut hooks = tools::test_hook_tools().map_err(anyhow::Error::msg)?;
            hooks.extend(crate::hooks::hook_tools().map_err(anyhow::Error::msg)?);
            hooks
        } else {
            Vec::new()
        };
        Ok(Self {
            platform: Arc::new(Mutex::new(platform)),
            journal: journal.map(Arc::new),
            test_hooks,
            domain_tools: Arc::new(domain_tools),
            hook_tools: Arc::new(hook_tools),
            runtime_tools: Arc::new(RwLock::new(Vec::new())),
            redefined: Arc::default(),
            subscribed: Arc::new(Mutex::new(Default::default())),
            modern_only: false,
        })
    }

    /// A server over the seed data, configured from `CASE_PLATFORM_JOURNAL` and
    /// `CASE_PLATFORM_TEST_HOOKS`.
    pub fn from_env() -> anyhow::Result<Self> {
        let test_hooks = std::env::var(TEST_HOOKS_ENV).is_ok_and(|v| v == "1");
        let mut server = Self::new(crate::seed::platform(), Journal::from_env(), test_hooks)?;
        server.modern_only = match std::env::var(PROTOCOL_ENV) {
            Err(_) => false,
            Ok(v) if v == "2026-07-28" => true,
            Ok(other) => anyhow::bail!("{PROTOCOL_ENV}={other}: only 2026-07-28 can be chosen"),
        };
        Ok(server)
    }

    fn platform(&self) -> MutexGuard<'_, Platform> {
        self.platform.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn runtime_tools(&self) -> Vec<Tool> {
        self.runtime_tools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every tool currently offered.
    pub(crate) fn all_tools(&self) -> Vec<Tool> {
        let mut all: Vec<Tool> = self.domain_tools.as_ref().clone();
        all.extend(self.hook_tools.iter().cloned());
        all.extend(self.runtime_tools());
        let redefined = self
            .redefined
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for tool in &mut all {
            if let Some(description) = redefined.get(tool.name.as_ref()) {
                tool.description = Some(description.clone().into());
            }
        }
        all
    }

    /// Appends a journal line (if journaling is on) before the request is worked on.
    pub(crate) fn journal(
        &self,
        method: &str,
        name: &str,
        extra: JsonObject,
        actor_meta: Option<&Value>,
    ) {
        let Some(journal) = &self.journal else {
            return;
        };
        let tenant = actor_from_meta(actor_meta).map(|a| a.tenant);
        let mut entry = JsonObject::new();
        entry.insert("method".into(), json!(method));
        entry.insert("name".into(), json!(name));
        entry.extend(extra);
        entry.insert("tenant".into(), json!(tenant));
        entry.insert("actor".into(), actor_meta.cloned().unwrap_or(Value::Null));
        entry.insert("pid".into(), json!(std::process::id()));
        if let Err(e) = journal.record(&Value::Object(entry)) {
            tracing::error!(error = %e, "cannot write the request journal");
        }
    }

    fn case_resources(&self, tenant: &str) -> Vec<Resource> {
        let platform = self.platform();
        platform
            .tenant(tenant)
            .cases
            .values()
            .map(|c| {
                Resource::new(case_uri(tenant, &c.id), c.title.clone())
                    .with_description(format!(
                        "Enforcement case {} (status {}, risk {})",
                        c.id,
                        c.status.as_str(),
                        c.risk.as_str()
                    ))
                    .with_mime_type(JSON_MIME)
            })
            .collect()
    }
}

fn prompt_with_case(name: &str, description: &str) -> Prompt {
    Prompt::new(
        name,
        Some(description),
        Some(vec![PromptArgument::new("case_id")
            .with_description("Case identifier, e.g. case-101")
            .with_required(true)]),
    )
}

impl ServerHandler for CasePlatform {
    #[allow(deprecated)] // capgate speaks 2025-11-25 to this server.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.journal(
            "resources/subscribe",
            &request.uri,
            JsonObject::new(),
            ctx.meta.get(ACTOR_META_KEY),
        );
        self.subscribed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.uri);
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.journal(
            "resources/unsubscribe",
            &request.uri,
            JsonObject::new(),
            None,
        );
        self.subscribed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request.uri);
        Ok(())
    }

    /// Completes a `case_id` argument (of any prompt or template) with the caller's tenant's
    /// case ids that start with what was typed.
    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let actor_meta = ctx.meta.get(ACTOR_META_KEY);
        let mut extra = JsonObject::new();
        extra.insert("argument".into(), json!(request.argument.name));
        self.journal(
            "completion/complete",
            &request.argument.name,
            extra,
            actor_meta,
        );
        let Some(actor) = actor_from_meta(actor_meta) else {
            return Err(ErrorData::invalid_params(MISSING_TENANT, None));
        };
        if request.argument.name != "case_id" {
            return Ok(CompleteResult::default());
        }
        let values: Vec<String> = self
            .platform()
            .tenant(&actor.tenant)
            .cases
            .keys()
            .filter(|id| id.starts_with(&request.argument.value))
            .cloned()
            .collect();
        let completion = CompletionInfo::new(values)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(CompleteResult::new(completion))
    }

    /// Log messages are sent only by the `debug_log` hook, at every level: the client filters.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    /// Refused when the server speaks only 2026-07-28.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        if self.modern_only {
            return Err(ErrorData::invalid_request(
                "this server speaks only MCP 2026-07-28: use server/discover",
                None,
            ));
        }
        ctx.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.modern_only {
            std::borrow::Cow::Owned(vec![ProtocolVersion::V_2026_07_28])
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    #[allow(deprecated)] // logging is how 2025-11-25 servers report.
    fn get_info(&self) -> ServerConfig {
        let info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_completions()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new(
            "case-platform",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Enforcement-case platform (example downstream server of capgate). Every call is \
             scoped to the tenant in _meta[\"dev.capgate/actor\"].",
        );
        if self.modern_only {
            info.with_protocol_version(ProtocolVersion::V_2026_07_28)
        } else {
            info
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.all_tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let input_responses = request.input_responses;
        let request_state = request.request_state;
        let args = request.arguments.unwrap_or_default();
        let actor_meta = ctx.meta.get(ACTOR_META_KEY);
        let mut extra = JsonObject::new();
        extra.insert("arguments".into(), Value::Object(args.clone()));
        let received: Vec<&String> = ctx.meta.0.keys().collect();
        extra.insert("meta_keys".into(), json!(received));
        if let Some(trace) = ctx.meta.get("traceparent") {
            extra.insert("traceparent".into(), trace.clone());
        }
        if let Some(state) = &request_state {
            extra.insert("request_state".into(), json!(state));
        }
        if let Some(responses) = &input_responses {
            extra.insert("input_responses".into(), json!(responses));
        }
        self.journal("tools/call", &name, extra, actor_meta);
        let actor = actor_from_meta(actor_meta);

        if self.modern_only && self.test_hooks {
            if let Some(response) = crate::hooks::call_rounds(
                &name,
                &args,
                input_responses.as_ref(),
                request_state.as_deref(),
            ) {
                return Ok(response);
            }
        }

        if let Some(result) = self.call_test_tool(&name, &args, &ctx).await {
            return Ok(result.into());
        }
        if !self.domain_tools.iter().any(|t| t.name == name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
        let Some(actor) = actor else {
            return Ok(tools::failure("missing_tenant", MISSING_TENANT).into());
        };
        tracing::info!(tool = %name, tenant = %actor.tenant, user = ?actor.user, "tools/call");
        let result = tools::call_domain_tool(&mut self.platform(), &actor, &name, &args);
        if name == "update_case_status" && result.as_ref().is_some_and(|r| r.is_error != Some(true))
        {
            let case_id = args
                .get("case_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let uri = format!("{CASE_URI_PREFIX}{}/cases/{case_id}", actor.tenant);
            let subscribed = self
                .subscribed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&uri);
            if subscribed {
                let _ = ctx
                    .peer
                    .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                    .await;
            }
        }
        result.map(Into::into).ok_or_else(|| {
            ErrorData::internal_error(format!("tool {name} has no implementation"), None)
        })
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = actor_from_meta(ctx.meta.get(ACTOR_META_KEY))
            .map(|actor| self.case_resources(&actor.tenant))
            .unwrap_or_default();
        Ok(ListResourcesResult::with_all_items(resources).with_cache_scope(CacheScope::Private))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(CASE_URI_TEMPLATE, "case")
                .with_title("Enforcement case")
                .with_description("An enforcement case of the calling tenant, as JSON")
                .with_mime_type(JSON_MIME),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let actor_meta = ctx.meta.get(ACTOR_META_KEY);
        let mut extra = JsonObject::new();
        extra.insert("uri".into(), json!(uri));
        self.journal("resources/read", &uri, extra, actor_meta);
        let actor = actor_from_meta(actor_meta)
            .ok_or_else(|| ErrorData::invalid_params(MISSING_TENANT, None))?;
        let not_found = || {
            ErrorData::resource_not_found(
                format!("resource not found: {uri}"),
                Some(json!({ "uri": uri })),
            )
        };
        let (tenant, case_id) = parse_case_uri(&uri).ok_or_else(not_found)?;
        if tenant != actor.tenant {
            return Err(not_found());
        }
        let document = self
            .platform()
            .case_document(tenant, case_id)
            .ok_or_else(not_found)?;
        let text = serde_json::to_string_pretty(&document)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri.clone()).with_mime_type(JSON_MIME)
        ])
        .with_cache_scope(CacheScope::Private)
        .into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![
            prompt_with_case(
                prompts::SUMMARIZE_CASE,
                "Ask for a summary of an enforcement case.",
            ),
            prompt_with_case(
                prompts::DRAFT_NOTICE,
                "Ask for a formal notice to be drafted for an enforcement case.",
            ),
        ]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let name = request.name;
        let args = request.arguments.unwrap_or_default();
        let actor_meta = ctx.meta.get(ACTOR_META_KEY);
        let mut extra = JsonObject::new();
        extra.insert("arguments".into(), Value::Object(args.clone()));
        self.journal("prompts/get", &name, extra, actor_meta);
        if name != prompts::SUMMARIZE_CASE && name != prompts::DRAFT_NOTICE {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt: {name}"),
                None,
            ));
        }
        let actor = actor_from_meta(actor_meta)
            .ok_or_else(|| ErrorData::invalid_params(MISSING_TENANT, None))?;
        let case_id = args
            .get("case_id")
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorData::invalid_params("missing required argument: case_id", None))?;
        let platform = self.platform();
        let case = platform
            .tenant(&actor.tenant)
            .cases
            .get(case_id)
            .ok_or_else(|| ErrorData::invalid_params(format!("case not found: {case_id}"), None))?;
        let evidence: Vec<&str> = platform
            .tenant(&actor.tenant)
            .evidence
            .values()
            .filter(|e| e.case_id == case.id)
            .map(|e| e.id.as_str())
            .collect();
        let (description, text) = prompts::render(&name, case, &evidence)
            .ok_or_else(|| ErrorData::invalid_params(format!("unknown prompt: {name}"), None))?;
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description(description)
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{DEBUG_ADD_TOOL, DEBUG_CRASH, DEBUG_SLEEP};

    #[test]
    fn actor_parsing() {
        let full = json!({"tenant": "acme", "user": "alice", "agent": "a1", "run_id": null});
        let actor = actor_from_meta(Some(&full)).expect("actor");
        assert_eq!(actor.tenant, "acme");
        assert_eq!(actor.user.as_deref(), Some("alice"));
        assert_eq!(actor.run_id, None);
        assert!(actor_from_meta(None).is_none());
        assert!(actor_from_meta(Some(&json!({"user": "alice"}))).is_none());
        assert!(actor_from_meta(Some(&json!({"tenant": ""}))).is_none());
        assert!(actor_from_meta(Some(&json!({"tenant": 7}))).is_none());
        assert!(actor_from_meta(Some(&json!("acme"))).is_none());
    }

    #[test]
    fn case_uris() {
        assert_eq!(
            parse_case_uri("case://acme/cases/case-101"),
            Some(("acme", "case-101"))
        );
        assert_eq!(parse_case_uri("case://acme/cases/"), None);
        assert_eq!(parse_case_uri("case://acme/cases/case-101/x"), None);
        assert_eq!(parse_case_uri("case://acme/drafts/d"), None);
        assert_eq!(parse_case_uri("file:///etc/passwd"), None);
        assert_eq!(
            case_uri("globex", "case-201"),
            "case://globex/cases/case-201"
        );
    }

    #[test]
    fn hooks_are_hidden_unless_enabled() {
        let off = CasePlatform::new(crate::seed::platform(), None, false).expect("server");
        assert!(off
            .all_tools()
            .iter()
            .all(|t| !t.name.starts_with("debug_")));
        let on = CasePlatform::new(crate::seed::platform(), None, true).expect("server");
        let names: Vec<String> = on.all_tools().iter().map(|t| t.name.to_string()).collect();
        assert!(names.iter().any(|n| n == DEBUG_CRASH));
        assert!(names.iter().any(|n| n == DEBUG_SLEEP));
        assert!(names.iter().any(|n| n == DEBUG_ADD_TOOL));
    }
}
