//! What a downstream connection receives from its server besides answers: notifications
//! (progress, log messages, resource updates, `list_changed`) and the server's own requests
//! to the client (elicitation, sampling), each passed to the client call or session it
//! belongs to. Also what capgate declares to the server as a client.

use std::sync::Weak;

#[allow(deprecated)] // sampling/createMessage and logging are how 2025-11-25 servers use them.
use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ElicitationCapability, ErrorData, FormElicitationCapability,
    Implementation, LoggingMessageNotificationParam, SamplingCapability, UrlElicitationCapability,
};
use rmcp::service::{InboundStreamOrigin, NotificationContext, Peer, RequestContext, RoleClient};
use rmcp::ClientHandler;

use super::asks::{Answer, Ask};
use super::DownstreamServer;

/// Receives one connection's notifications and requests; refreshes the catalogue on
/// `list_changed`.
#[derive(Clone)]
pub(super) struct DownstreamEvents {
    pub server: Weak<DownstreamServer>,
}

impl DownstreamEvents {
    fn schedule_refresh(&self, peer: Peer<RoleClient>) {
        if let Some(server) = self.server.upgrade() {
            // Off the notification path: listing is a request that must not block the loop
            // that delivers its own response.
            tokio::spawn(async move { server.refresh(&peer).await });
        }
    }

    async fn ask(
        &self,
        ask: Ask,
        context: &RequestContext<RoleClient>,
    ) -> Result<Answer, ErrorData> {
        let Some(server) = self.server.upgrade() else {
            return Err(ErrorData::internal_error("capgate is shutting down", None));
        };
        let origin = context.extensions.get::<InboundStreamOrigin>();
        server.asks.route(&server.id, origin, ask).await
    }
}

impl ClientHandler for DownstreamEvents {
    /// capgate relays elicitation (form and URL) and sampling to the client whose call caused
    /// them; one connection serves every client, so it declares both and refuses, per call,
    /// what that call's client did not declare.
    fn get_info(&self) -> ClientConfig {
        let mut elicitation = ElicitationCapability::default();
        elicitation.form = Some(FormElicitationCapability::default());
        elicitation.url = Some(UrlElicitationCapability::new());
        let mut capabilities = ClientCapabilities::default();
        capabilities.elicitation = Some(elicitation);
        capabilities.sampling = Some(SamplingCapability::default());
        ClientConfig::new(
            capabilities,
            Implementation::new("capgate", env!("CARGO_PKG_VERSION")),
        )
    }

    #[allow(deprecated)]
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        match self.ask(Ask::Sample(params), &context).await? {
            Answer::Sampled(result) => Ok(*result),
            Answer::Elicited(_) => Err(ErrorData::internal_error(
                "the client answered sampling with an elicitation result",
                None,
            )),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        match self.ask(Ask::Elicit(params), &context).await? {
            Answer::Elicited(result) => Ok(result),
            Answer::Sampled(_) => Err(ErrorData::internal_error(
                "the client answered elicitation with a sampling result",
                None,
            )),
        }
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(server) = self.server.upgrade() {
            server.logs.forward(&server.id, params).await;
        }
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(server) = self.server.upgrade() {
            server.subscriptions.updated(params).await;
        }
    }

    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(server) = self.server.upgrade() {
            server.progress.forward(params).await;
        }
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.schedule_refresh(context.peer);
    }

    async fn on_prompt_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.schedule_refresh(context.peer);
    }

    async fn on_resource_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.schedule_refresh(context.peer);
    }
}

/// A 2026-07-28 downstream has no session to send `list_changed` on: capgate listens for them
/// (`subscriptions/listen`) for as long as the connection lasts, and refreshes the catalogue
/// on each, as a 2025-11-25 session's notifications do.
pub(super) async fn listen_for_changes(server: Weak<DownstreamServer>, peer: Peer<RoleClient>) {
    use rmcp::model::{ServerNotification, SubscriptionFilter};
    let filter = SubscriptionFilter::builder()
        .tools_list_changed()
        .prompts_list_changed()
        .resources_list_changed()
        .build();
    let mut subscription = match peer.listen(filter).await {
        Ok(subscription) => subscription,
        Err(error) => {
            if let Some(server) = server.upgrade() {
                tracing::warn!(server = %server.id, %error, "the downstream takes no subscriptions/listen: its catalogue is read at connection only");
            }
            return;
        }
    };
    loop {
        let notification = match subscription.next().await {
            Ok(Some(notification)) => notification,
            Ok(None) | Err(_) => return,
        };
        let changed = matches!(
            notification,
            ServerNotification::ToolListChangedNotification(_)
                | ServerNotification::PromptListChangedNotification(_)
                | ServerNotification::ResourceListChangedNotification(_)
        );
        let Some(server) = server.upgrade() else {
            return;
        };
        if changed {
            server.refresh(&peer).await;
        }
    }
}
