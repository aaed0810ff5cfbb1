//! The rmcp handler behind `/mcp` and stdio: finds each request's actor, gives capability
//! requests a span, and hands every request to the PEP (`enforce`).

use std::sync::Arc;

#[allow(deprecated)] // logging/setLevel is how 2025-11-25 clients set a level.
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    ErrorData, GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, RequestMetaObject,
    ServerCapabilities, ServerConfig, ServerNotification, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, RoleServer, SubscriptionContext};
use rmcp::ServerHandler;

use super::paging::{self, ListKind};
use crate::downstream::Relay;
use crate::enforce::{CallMeta, Gateway, Resume, ToolOutput};
use crate::identity::{ActorRef, CompositeActor};

/// The rmcp handler: finds the request's actor, then delegates to the PEP.
#[derive(Clone)]
pub struct McpFront {
    pub(super) gateway: Arc<Gateway>,
    /// Set in stdio mode only, where the process has one identity.
    pub(super) stdio_actor: Option<ActorRef>,
    /// The level this session set with `logging/setLevel` (one handler serves one session).
    #[allow(deprecated)]
    pub(super) log_level: Arc<std::sync::Mutex<Option<LoggingLevel>>>,
    /// Items per page of the lists.
    page_size: usize,
}

impl McpFront {
    pub(super) fn new(
        gateway: Arc<Gateway>,
        stdio_actor: Option<ActorRef>,
        page_size: usize,
    ) -> Self {
        Self {
            gateway,
            stdio_actor,
            log_level: Arc::default(),
            page_size,
        }
    }

    /// The handler of a new session: the same gateway, the session's own state.
    pub(super) fn for_session(&self) -> Self {
        Self::new(
            self.gateway.clone(),
            self.stdio_actor.clone(),
            self.page_size,
        )
    }

    /// One page of a list.
    fn page<T>(
        &self,
        items: Vec<T>,
        kind: ListKind,
        request: Option<&PaginatedRequestParams>,
    ) -> Result<(Vec<T>, Option<String>), ErrorData> {
        paging::page(items, kind, cursor_of(request), self.page_size)
    }

    #[allow(deprecated)]
    fn session_log_level(&self) -> Option<LoggingLevel> {
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The cursor a list request names, if any.
fn cursor_of(request: Option<&PaginatedRequestParams>) -> Option<&str> {
    request.and_then(|r| r.cursor.as_deref())
}

/// The capability requests that get a span of their own.
enum RequestKind {
    ToolCall,
    ResourceRead,
    PromptGet,
}

/// One span per request, carrying its decision (recorded by `enforce` when the request ends).
fn request_span(kind: RequestKind, capability: &str, actor: &CompositeActor) -> tracing::Span {
    let agent = actor.agent.as_ref().map(|a| a.id.as_str()).unwrap_or("-");
    let capability = crate::enforce::echo(capability);
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                $name,
                tool = %capability,
                tenant = %actor.tenant,
                user = %actor.user.id,
                agent,
                outcome = tracing::field::Empty,
                policy_id = tracing::field::Empty,
                policy_version = tracing::field::Empty,
                mode = tracing::field::Empty,
                refused_by = tracing::field::Empty,
            )
        };
    }
    match kind {
        RequestKind::ToolCall => span!("capgate.tools_call"),
        RequestKind::ResourceRead => span!("capgate.resources_read"),
        RequestKind::PromptGet => span!("capgate.prompts_get"),
    }
}

/// The `_meta` key of a 2026-07-28 request's protocol version.
const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

/// What the front takes from a request for the PEP: capgate's own `_meta` references, the rest
/// of the client's `_meta` to pass on (without the transport's progress token and the
/// protocol's own `io.modelcontextprotocol/*` entries, which belong to each hop), and the way
/// back to the client (its peer, progress token, cancellation, declared capabilities).
#[allow(deprecated)]
fn call_meta(ctx: &RequestContext<RoleServer>, log_level: Option<LoggingLevel>) -> CallMeta {
    let entries = &ctx.meta.0 .0;
    let own = |key: &str| {
        entries
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let mut forward = RequestMetaObject::new();
    for (key, value) in entries {
        let hop_only = key == "progressToken"
            || key.starts_with("io.modelcontextprotocol/")
            || key.starts_with(crate::enforce::OWN_META_PREFIX);
        if !hop_only {
            forward.0 .0.insert(key.clone(), value.clone());
        }
    }
    CallMeta {
        idempotency_key: own(crate::enforce::IDEMPOTENCY_META_KEY),
        approval: own(crate::enforce::APPROVAL_META_KEY),
        forward,
        relay: Some(Relay {
            peer: ctx.peer.clone(),
            progress_token: ctx.meta.get_progress_token(),
            cancelled: ctx.ct.clone(),
            session: session_of(ctx),
            log_level,
            capabilities: ctx.client_capabilities(),
            // 2026-07-28 requests carry their protocol version (and all else) on their own.
            stateless: ctx.meta.get(PROTOCOL_VERSION_META).is_some(),
            updates: None,
        }),
        resume: None,
    }
}

/// The request's session: its `Mcp-Session-Id` over HTTP; over stdio the process is one.
fn session_of(ctx: &RequestContext<RoleServer>) -> String {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("stdio")
        .to_string()
}

impl McpFront {
    fn actor(&self, ctx: &RequestContext<RoleServer>) -> Result<ActorRef, ErrorData> {
        if let Some(actor) = &self.stdio_actor {
            return Ok(actor.clone());
        }
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ActorRef>())
            .cloned()
            // Unreachable behind the auth middleware; refusing is the safe answer regardless.
            .ok_or_else(|| ErrorData::invalid_request("unauthenticated request", None))
    }
}

/// What a client may see changes: a kill switch, a break-glass grant, or a downstream's
/// catalogue.
struct VisibilityChanges {
    controls: tokio::sync::watch::Receiver<u64>,
    catalogues: Vec<tokio::sync::watch::Receiver<u64>>,
}

impl VisibilityChanges {
    fn of(gateway: &Gateway) -> Self {
        Self {
            controls: gateway.controls().visibility_changes(),
            catalogues: gateway
                .downstreams()
                .iter()
                .map(|s| s.subscribe())
                .collect(),
        }
    }

    /// Waits for the next change; `false` when no change can come any more.
    async fn next(&mut self) -> bool {
        if self.catalogues.is_empty() {
            return self.controls.changed().await.is_ok();
        }
        let catalogue_change =
            futures::future::select_all(self.catalogues.iter_mut().map(|c| Box::pin(c.changed())));
        tokio::select! {
            r = self.controls.changed() => r.is_ok(),
            (r, _, _) = catalogue_change => r.is_ok(),
        }
    }
}

impl McpFront {
    /// Tells a listening client that its tools changed, each time they do, until it stops.
    async fn tell_list_changes(&self, context: &SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = VisibilityChanges::of(&self.gateway);
        let tools = context.accepted().tools_list_changed == Some(true);
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = changes.next() => {
                    if !changed {
                        // No change can come any more: wait for the client to stop.
                        context.cancelled().await;
                        return Ok(());
                    }
                    if !tools {
                        continue;
                    }
                    let notice = ServerNotification::ToolListChangedNotification(Default::default());
                    if context.sink().send(notice).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Tells one session's client, for as long as it is connected, whenever what it may see
    /// changes.
    fn notify_list_changes(&self, peer: rmcp::Peer<RoleServer>) {
        let mut changes = VisibilityChanges::of(&self.gateway);
        tokio::spawn(async move {
            while changes.next().await {
                if peer.notify_tool_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }
}

impl ServerHandler for McpFront {
    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        self.notify_list_changes(context.peer);
    }

    /// A 2026-07-28 client listens (`subscriptions/listen`) for what a session is told: that
    /// the tools it may see changed, and updates of resources it may read. Which URIs it may
    /// hear of is decided per actor when the subscription starts (below): one it may not read
    /// ends the subscription with the refusal.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::default();
        accepted.tools_list_changed = requested.tools_list_changed;
        accepted.resource_subscriptions = requested.resource_subscriptions.clone();
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let ctx = context.request_context();
        let actor = self.actor(ctx)?;
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        // Each listen is a listener of its own, for as long as it lasts.
        let mut meta = call_meta(ctx, None);
        let listener = format!("listen-{:032x}", rand::random::<u128>());
        if let Some(relay) = meta.relay.as_mut() {
            relay.session = listener.clone();
            relay.updates = Some(context.sink().clone());
        }
        let mut subscribed = Vec::new();
        let mut refused = None;
        for uri in &uris {
            match self.gateway.subscribe(&actor, uri, &meta).await {
                Ok(()) => subscribed.push(uri),
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            }
        }
        let ended = match refused {
            Some(error) => Err(error),
            None => self.tell_list_changes(&context).await,
        };
        for uri in subscribed {
            let _ = self.gateway.unsubscribe(uri, &listener).await;
        }
        ended
    }

    fn get_info(&self) -> ServerConfig {
        // Tools always (capgate announces list changes itself); resources and prompts where
        // contracts expose some, since nothing else can pass.
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        if self.gateway.exposes_resources() {
            capabilities.resources = Some(Default::default());
        }
        if self.gateway.exposes_prompts() {
            capabilities.prompts = Some(Default::default());
        }
        // Completions and subscriptions only where a downstream offers them (capgate decides
        // and forwards them).
        if self.gateway.offers_completions() {
            capabilities.completions = Some(Default::default());
        }
        if self.gateway.offers_logging() {
            capabilities.logging = Some(Default::default());
        }
        if self.gateway.offers_subscriptions() {
            if let Some(resources) = capabilities.resources.as_mut() {
                resources.subscribe = Some(true);
            }
        }
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("capgate", env!("CARGO_PKG_VERSION")))
    }

    #[allow(deprecated)] // resources/subscribe is how 2025-11-25 clients subscribe.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let actor = self.actor(&ctx)?;
        let span = request_span(RequestKind::ResourceRead, &request.uri, &actor);
        tracing::Instrument::instrument(
            self.gateway.subscribe(
                &actor,
                &request.uri,
                &call_meta(&ctx, self.session_log_level()),
            ),
            span,
        )
        .await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.actor(&ctx)?;
        self.gateway
            .unsubscribe(&request.uri, &session_of(&ctx))
            .await
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.actor(&ctx)?;
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) = Some(request.level);
        self.gateway.log_level_requested(request.level).await;
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        self.gateway
            .complete(&actor, request, &call_meta(&ctx, self.session_log_level()))
            .await
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        let after = paging::after(ListKind::Tools, cursor_of(request.as_ref()))?;
        let page = self
            .gateway
            .list_tools(&actor, after.as_deref(), self.page_size);
        let next = page
            .items
            .last()
            .filter(|_| page.more)
            .map(|last| paging::after_cursor(ListKind::Tools, &last.name));
        let mut result =
            ListToolsResult::with_all_items(page.items).with_cache_scope(CacheScope::Private);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let actor = self.actor(&ctx)?;
        let mut call_meta = call_meta(&ctx, self.session_log_level());
        call_meta.resume = Resume::of(request.input_responses, request.request_state)?;
        let span = request_span(RequestKind::ToolCall, &request.name, &actor);
        let output = tracing::Instrument::instrument(
            self.gateway
                .call_tool(&actor, &request.name, request.arguments, &call_meta),
            span,
        )
        .await?;
        Ok(match output {
            ToolOutput::Result(result) => CallToolResponse::Complete(result),
            ToolOutput::InputRequired(asked) => CallToolResponse::InputRequired(asked),
        })
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        let (resources, next) = self.page(
            self.gateway.list_resources(&actor).await,
            ListKind::Resources,
            request.as_ref(),
        )?;
        let mut result =
            ListResourcesResult::with_all_items(resources).with_cache_scope(CacheScope::Private);
        result.next_cursor = next;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        let (templates, next) = self.page(
            self.gateway.list_resource_templates(&actor),
            ListKind::ResourceTemplates,
            request.as_ref(),
        )?;
        let mut result = ListResourceTemplatesResult::with_all_items(templates)
            .with_cache_scope(CacheScope::Private);
        result.next_cursor = next;
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let actor = self.actor(&ctx)?;
        let span = request_span(RequestKind::ResourceRead, &request.uri, &actor);
        tracing::Instrument::instrument(
            self.gateway.read_resource(
                &actor,
                &request.uri,
                &call_meta(&ctx, self.session_log_level()),
            ),
            span,
        )
        .await
        .map(Into::into)
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let actor = self.actor(&ctx)?;
        let after = paging::after(ListKind::Prompts, cursor_of(request.as_ref()))?;
        let page = self
            .gateway
            .list_prompts(&actor, after.as_deref(), self.page_size);
        let next = page
            .items
            .last()
            .filter(|_| page.more)
            .map(|last| paging::after_cursor(ListKind::Prompts, &last.name));
        let mut result =
            ListPromptsResult::with_all_items(page.items).with_cache_scope(CacheScope::Private);
        result.next_cursor = next;
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let actor = self.actor(&ctx)?;
        let span = request_span(RequestKind::PromptGet, &request.name, &actor);
        tracing::Instrument::instrument(
            self.gateway.get_prompt(
                &actor,
                &request.name,
                request.arguments,
                &call_meta(&ctx, self.session_log_level()),
            ),
            span,
        )
        .await
        .map(Into::into)
    }
}
