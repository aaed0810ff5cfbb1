//! Connections to the downstream MCP servers that platform teams registered.
//!
//! Each server has a supervisor task: it connects (a stdio child process, or streamable HTTP with
//! the gateway's own credential), lists the server's tools, prompts and resource templates into
//! a catalogue, refreshes the catalogue on `list_changed`, and reconnects with backoff when the
//! connection ends (a crashed child is restarted). Calls carry a per-server timeout. A dead server
//! fails only its own calls, with an error that says which server and why.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
#[allow(deprecated)] // resources/subscribe is how 2025-11-25 servers take subscriptions.
use rmcp::model::{
    CancelledNotificationParam, ClientRequest, CompleteRequest, CompleteRequestParams,
    CompleteResult, PaginatedRequestParams, Prompt, RequestMetaObject, Resource, ResourceTemplate,
    ServerResult, SubscribeRequest, SubscribeRequestParams, Tool, UnsubscribeRequest,
    UnsubscribeRequestParams,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::DownstreamConfig;

mod asks;
mod calls;
mod connection;
mod events;
mod logging;
mod names;
mod relay;
mod subscriptions;

use asks::AskRoutes;
pub use asks::{Answer, AnswerAsks, Ask};
pub use calls::{Inputs, ToolAnswer};

use logging::LogRoutes;
use names::each_name_once;
use relay::ProgressRoutes;
pub use relay::Relay;
pub use subscriptions::Listener;
use subscriptions::Subscriptions;

const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a downstream call did not produce a result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DownstreamError {
    #[error("downstream server `{server}` is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("downstream server `{server}` did not answer within {timeout_ms} ms")]
    Timeout { server: String, timeout_ms: u128 },
    #[error("downstream server `{server}` failed the call: {reason}")]
    Failed { server: String, reason: String },
    #[error("no downstream server `{0}` is configured")]
    UnknownServer(String),
    #[error("the client cancelled the request to downstream server `{server}`")]
    Cancelled { server: String },
    /// What a downstream asked of the client could not be shown under its obligations.
    #[error("the request to the client was withheld: {reason}")]
    Withheld { reason: String },
    /// The client did not answer what a downstream asked of it.
    #[error("the client did not answer: {reason}")]
    Client { reason: String },
    /// A 2026-07-28 client's retry carried a request state or input responses capgate refuses
    /// (nothing was sent to the downstream).
    #[error("{0}")]
    InputState(String),
    /// A 2026-07-28 downstream asked for input capgate could not gather (`input_required`).
    #[error("downstream server `{server}` asked for input that was not given: {reason}")]
    InputNotGiven { server: String, reason: String },
}

/// Tells whether a downstream tool (server id, tool name) has a contract; the others are warned
/// about at every catalogue refresh.
pub type ContractCheck = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// A downstream tool with the digests of its definition as last listed: the whole listing
/// (approvals bind to it) and the part a pin holds (description, input and output schema,
/// annotations).
#[derive(Debug, Clone)]
pub struct CatalogueTool {
    pub tool: Tool,
    pub definition_hash: String,
    pub pinned_part: PinnedPart,
}

/// The part of a tool's definition a pin holds, in canonical JSON (RFC 8785), and its digest
/// (`sha256:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedPart {
    pub digest: String,
    pub canonical: String,
}

impl PinnedPart {
    pub fn of(tool: &Tool) -> Self {
        let part = serde_json::json!({
            "description": tool.description,
            "inputSchema": tool.input_schema,
            "outputSchema": tool.output_schema,
            "annotations": tool.annotations,
        });
        // The same canonical form as every other digest: integers with all their digits, so
        // that a definition whose bound changes beyond 2^53 is a changed definition.
        let canonical = crate::store::canonical_json(&part);
        Self {
            digest: format!(
                "sha256:{}",
                hex::encode(Sha256::digest(canonical.as_bytes()))
            ),
            canonical,
        }
    }
}

/// What a downstream server offers, as of its last listing (each name once).
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub tools: Vec<CatalogueTool>,
    pub prompts: Vec<Prompt>,
    pub resource_templates: Vec<ResourceTemplate>,
    /// Where each tool is in `tools`, by name: a call finds its tool without a scan.
    tool_at: HashMap<String, usize>,
}

impl Catalogue {
    pub fn new(
        tools: Vec<CatalogueTool>,
        prompts: Vec<Prompt>,
        resource_templates: Vec<ResourceTemplate>,
    ) -> Self {
        let tool_at = tools
            .iter()
            .enumerate()
            .map(|(at, t)| (t.tool.name.to_string(), at))
            .collect();
        Self {
            tools,
            prompts,
            resource_templates,
            tool_at,
        }
    }

    pub fn tool(&self, name: &str) -> Option<&CatalogueTool> {
        self.tool_at.get(name).and_then(|&at| self.tools.get(at))
    }
}

/// The connection state shown in errors and health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Starting,
    Up,
    Down(String),
}

/// One downstream server: its live peer, catalogue and health.
pub struct DownstreamServer {
    pub id: String,
    config: DownstreamConfig,
    peer: ArcSwapOption<Peer<RoleClient>>,
    catalogue: ArcSwap<Catalogue>,
    health: ArcSwap<Health>,
    /// Bumped on every (re)connection and catalogue refresh; lets observers wait for changes.
    generation: watch::Sender<u64>,
    contract_check: ContractCheck,
    /// Calls in flight whose progress goes back to a client.
    progress: ProgressRoutes,
    /// Client sessions listening to resource URIs.
    subscriptions: Subscriptions,
    /// Tool calls in flight that answer what the downstream asks of their client.
    asks: AskRoutes,
    /// Calls in flight whose client may receive the downstream's log messages.
    logs: LogRoutes,
}

impl DownstreamServer {
    pub fn health(&self) -> Health {
        Health::clone(&self.health.load())
    }

    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue.load_full()
    }

    pub fn call_timeout(&self) -> Duration {
        self.config.call_timeout
    }

    /// A receiver that changes whenever the server reconnects or its catalogue is refreshed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Whether the server is connected now (a call would not be refused as unavailable).
    pub fn available(&self) -> Result<(), DownstreamError> {
        self.live_peer().map(|_| ())
    }

    fn live_peer(&self) -> Result<Arc<Peer<RoleClient>>, DownstreamError> {
        self.peer
            .load_full()
            .ok_or_else(|| DownstreamError::Unavailable {
                server: self.id.clone(),
                reason: match self.health() {
                    Health::Starting => "still starting".into(),
                    Health::Up => "reconnecting".into(),
                    Health::Down(reason) => reason,
                },
            })
    }

    async fn with_timeout<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, rmcp::ServiceError>>,
    ) -> Result<T, DownstreamError> {
        match tokio::time::timeout(self.config.call_timeout, call).await {
            Err(_) => Err(self.timed_out()),
            Ok(result) => result.map_err(|e| self.failed(e)),
        }
    }

    pub(super) fn timed_out(&self) -> DownstreamError {
        DownstreamError::Timeout {
            server: self.id.clone(),
            timeout_ms: self.config.call_timeout.as_millis(),
        }
    }

    fn failed(&self, error: rmcp::ServiceError) -> DownstreamError {
        DownstreamError::Failed {
            server: self.id.clone(),
            reason: match error {
                rmcp::ServiceError::McpError(e) => e.message.to_string(),
                other => other.to_string(),
            },
        }
    }

    /// Sends one request with `meta`, relaying progress to the client and the client's
    /// cancellation to the downstream, and letting `asks` answer what the downstream asks of
    /// the client meanwhile; the downstream is told when the call is given up on (cancelled
    /// or timed out).
    pub(super) async fn request(
        &self,
        request: ClientRequest,
        meta: RequestMetaObject,
        relay: Option<&Relay>,
        asks: Option<&dyn AnswerAsks>,
    ) -> Result<ServerResult, DownstreamError> {
        let peer = self.live_peer()?;
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::default().with_meta(meta))
            .await
            .map_err(|e| self.failed(e))?;
        let _route = self.progress.open(handle.progress_token.clone(), relay);
        let id = handle.id.clone();
        let _logs = self.logs.open(id.clone(), relay);
        let mut asked = asks.map(|answerer| (answerer, self.asks.open(id.clone())));
        let cancelled = relay.map(|r| r.cancelled.clone()).unwrap_or_default();
        let response = handle.await_response();
        tokio::pin!(response);
        let deadline = tokio::time::sleep(self.config.call_timeout);
        tokio::pin!(deadline);
        let (error, reason) = loop {
            let next_ask = async {
                match asked.as_mut() {
                    Some((_, (_, receiver))) => receiver.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                answered = &mut response => return answered.map_err(|e| self.failed(e)),
                Some(pending) = next_ask => {
                    let Some((answerer, _)) = asked.as_ref() else { continue };
                    // The downstream waits for this answer; the call's own limits still hold.
                    tokio::select! {
                        answer = answerer.answer(pending.ask) => {
                            // The downstream may have given up on it meanwhile.
                            let _ = pending.reply.send(answer);
                        }
                        _ = cancelled.cancelled() => break (
                            DownstreamError::Cancelled { server: self.id.clone() },
                            "the client cancelled the request",
                        ),
                        _ = &mut deadline => break (self.timed_out(), "capgate's call timeout passed"),
                    }
                }
                _ = cancelled.cancelled() => break (
                    DownstreamError::Cancelled { server: self.id.clone() },
                    "the client cancelled the request",
                ),
                _ = &mut deadline => break (self.timed_out(), "capgate's call timeout passed"),
            }
        };
        let notice = CancelledNotificationParam::new(Some(id), Some(reason.to_string()));
        if let Err(error) = peer.notify_cancelled(notice).await {
            tracing::debug!(server = %self.id, %error, "the downstream could not be told of a cancellation");
        }
        Err(error)
    }

    pub(super) fn unexpected(&self, what: &str) -> DownstreamError {
        DownstreamError::Failed {
            server: self.id.clone(),
            reason: format!("the server answered a {what} with another kind of result"),
        }
    }

    pub async fn complete(
        &self,
        params: CompleteRequestParams,
        relay: Option<&Relay>,
    ) -> Result<CompleteResult, DownstreamError> {
        let meta = params.meta.clone().unwrap_or_default();
        match self
            .request(
                ClientRequest::CompleteRequest(CompleteRequest::new(params)),
                meta,
                relay,
                None,
            )
            .await?
        {
            ServerResult::CompleteResult(result) => Ok(result),
            _ => Err(self.unexpected("completion/complete")),
        }
    }

    #[allow(deprecated)]
    /// Adds the relay's session to `uri`'s listeners, subscribing the downstream for the first.
    pub async fn subscribe_resource(
        &self,
        uri: &str,
        meta: RequestMetaObject,
        relay: Option<&Relay>,
    ) -> Result<(), DownstreamError> {
        let Some(relay) = relay else {
            return Err(DownstreamError::Failed {
                server: self.id.clone(),
                reason: "a subscription needs a client session to notify".into(),
            });
        };
        let listener = match &relay.updates {
            Some(sink) => Listener::Listen(sink.clone()),
            None => Listener::Session(relay.peer.clone()),
        };
        if !self.subscriptions.add(uri, &relay.session, listener) {
            return Ok(());
        }
        let mut params = SubscribeRequestParams::new(uri);
        params.meta = Some(meta.clone());
        let answered = self
            .request(
                ClientRequest::SubscribeRequest(SubscribeRequest::new(params)),
                meta,
                Some(relay),
                None,
            )
            .await;
        if answered.is_err() {
            self.subscriptions.remove(uri, &relay.session);
        }
        answered.map(|_| ())
    }

    #[allow(deprecated)]
    /// Removes a session from `uri`'s listeners, unsubscribing the downstream after the last.
    pub async fn unsubscribe_resource(
        &self,
        uri: &str,
        session: &str,
    ) -> Result<(), DownstreamError> {
        if !self.subscriptions.remove(uri, session) {
            return Ok(());
        }
        let params = UnsubscribeRequestParams::new(uri);
        self.request(
            ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(params)),
            RequestMetaObject::new(),
            None,
            None,
        )
        .await
        .map(|_| ())
    }

    /// Whether the connected server lets clients subscribe to resources.
    pub fn offers_subscriptions(&self) -> bool {
        self.peer
            .load()
            .as_ref()
            .and_then(|peer| {
                peer.peer_info().map(|info| {
                    info.capabilities
                        .resources
                        .as_ref()
                        .is_some_and(|r| r.subscribe == Some(true))
                })
            })
            .unwrap_or(false)
    }

    /// Whether the connected server advertises completions.
    pub fn offers_completions(&self) -> bool {
        self.peer
            .load()
            .as_ref()
            .and_then(|peer| {
                peer.peer_info()
                    .map(|info| info.capabilities.completions.is_some())
            })
            .unwrap_or(false)
    }

    /// Lists concrete resources as the downstream shows them for this request's context
    /// (resource lists are often per tenant, so they are not cached).
    pub async fn list_resources(
        &self,
        meta: RequestMetaObject,
    ) -> Result<Vec<Resource>, DownstreamError> {
        let peer = self.live_peer()?;
        let mut resources = Vec::new();
        let mut cursor = None;
        loop {
            let mut params = PaginatedRequestParams::default().with_cursor(cursor);
            params.meta = Some(meta.clone());
            let page = self.with_timeout(peer.list_resources(Some(params))).await?;
            resources.extend(page.resources);
            match page.next_cursor {
                Some(next) if resources.len() < 10_000 => cursor = Some(next),
                _ => return Ok(resources),
            }
        }
    }

    /// Re-lists tools, prompts and resource templates into the catalogue.
    async fn refresh(&self, peer: &Peer<RoleClient>) {
        let listed = tokio::time::timeout(LIST_TIMEOUT, async {
            let tools = peer.list_all_tools().await?;
            let prompts = peer.list_all_prompts().await.unwrap_or_default();
            let templates = peer.list_all_resource_templates().await.unwrap_or_default();
            Ok::<_, rmcp::ServiceError>((tools, prompts, templates))
        })
        .await;
        let (tools, prompts, resource_templates) = match listed {
            Ok(Ok(listed)) => listed,
            Ok(Err(e)) => {
                tracing::warn!(server = %self.id, error = %e, "listing the downstream's tools failed");
                return;
            }
            Err(_) => {
                tracing::warn!(server = %self.id, "listing the downstream's tools timed out");
                return;
            }
        };
        let tools = each_name_once(tools, |t| &t.name, &self.id, "tool");
        let prompts = each_name_once(prompts, |p| &p.name, &self.id, "prompt");
        let resource_templates = each_name_once(
            resource_templates,
            |t| &t.uri_template,
            &self.id,
            "resource template",
        );
        let tools: Vec<CatalogueTool> = tools
            .into_iter()
            .filter_map(|tool| match serde_json::to_vec(&tool) {
                Ok(listed) => Some(CatalogueTool {
                    definition_hash: hex::encode(Sha256::digest(&listed)),
                    pinned_part: PinnedPart::of(&tool),
                    tool,
                }),
                // Approvals bind to the digest of the listing: a tool without one is withheld.
                Err(e) => {
                    tracing::warn!(server = %self.id, tool = %tool.name, error = %e, "the tool's definition does not serialise; it is withheld");
                    None
                }
            })
            .collect();
        for tool in &tools {
            if !(self.contract_check)(&self.id, &tool.tool.name) {
                tracing::warn!(
                    server = %self.id,
                    tool = %tool.tool.name,
                    "downstream tool has no contract in capabilities/; it is not exposed"
                );
            }
        }
        tracing::info!(server = %self.id, tools = tools.len(), prompts = prompts.len(), "catalogue refreshed");
        self.catalogue
            .store(Arc::new(Catalogue::new(tools, prompts, resource_templates)));
        self.generation.send_modify(|g| *g += 1);
    }
}

/// All downstream servers, by id.
pub struct Downstreams {
    servers: HashMap<String, Arc<DownstreamServer>>,
}

impl Downstreams {
    /// Starts a supervisor per configured server. `has_contract(server, tool)` tells which
    /// listed tools are registered (the others are warned about at every refresh).
    pub fn start(
        configs: &[DownstreamConfig],
        has_contract: ContractCheck,
        shutdown: CancellationToken,
    ) -> Self {
        let mut servers = HashMap::new();
        for config in configs {
            let server = Arc::new(DownstreamServer {
                id: config.id.clone(),
                config: config.clone(),
                peer: ArcSwapOption::empty(),
                catalogue: ArcSwap::from_pointee(Catalogue::default()),
                health: ArcSwap::from_pointee(Health::Starting),
                generation: watch::channel(0).0,
                contract_check: has_contract.clone(),
                progress: ProgressRoutes::default(),
                subscriptions: Subscriptions::default(),
                asks: AskRoutes::default(),
                logs: LogRoutes::default(),
            });
            tokio::spawn(server.clone().supervise(shutdown.clone()));
            servers.insert(config.id.clone(), server);
        }
        Self { servers }
    }

    pub fn get(&self, id: &str) -> Result<&Arc<DownstreamServer>, DownstreamError> {
        self.servers
            .get(id)
            .ok_or_else(|| DownstreamError::UnknownServer(id.to_string()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<DownstreamServer>> {
        self.servers.values()
    }

    /// Waits until every server has been up once, or the deadline passes (start-up readiness).
    pub async fn wait_until_up(&self, deadline: Duration) -> Vec<(String, Health)> {
        let until = tokio::time::Instant::now() + deadline;
        for server in self.servers.values() {
            let mut changes = server.subscribe();
            while server.health() != Health::Up {
                if tokio::time::timeout_at(until, changes.changed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        self.servers
            .values()
            .map(|s| (s.id.clone(), s.health()))
            .collect()
    }
}
