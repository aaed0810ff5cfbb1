//! `resources/subscribe` as a capability: subscribing is decided like a read of the URI (an
//! actor may only hear of changes to what it may read), counted and logged like one, and on
//! allow the client's session is added to the URI's subscribers at the downstream connection
//! (the downstream is asked once per URI). Unsubscribing removes only the caller's own session.

use rmcp::model::{ErrorData, JsonObject, MetaObject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::downstream::DownstreamError;
use crate::policy::{Action, PolicyRequest};

use super::capability::{
    resolve_uri, resource_refusal, uri_request, Capability, Hop, Target, UriBound,
};
use super::obligations::Obligations;
use super::refusal::Refusal;
use super::requests::Asker;
use super::Gateway;

/// One `resources/subscribe` request.
pub struct Subscription {
    pub uri: String,
}

/// The empty answer to a subscription, with room for capgate's marks.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Subscribed {
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetaObject>,
}

impl Capability for Subscription {
    type Bound = UriBound;
    type Output = Subscribed;
    const KIND: &'static str = "resource";

    fn action(&self) -> Action {
        Action::ReadResource
    }

    fn requested(&self) -> &str {
        &self.uri
    }

    fn arguments(&self) -> std::borrow::Cow<'_, JsonObject> {
        let mut arguments = JsonObject::new();
        arguments.insert("subscribe".into(), Value::String(self.uri.clone()));
        std::borrow::Cow::Owned(arguments)
    }

    fn resolve(&self, gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal> {
        resolve_uri(gateway, &self.uri)
    }

    fn policy_request(
        &self,
        bound: &Self::Bound,
        asker: Asker<'_>,
    ) -> Result<PolicyRequest, Refusal> {
        Ok(uri_request(asker, self.action(), bound, &self.uri))
    }

    async fn forward(
        &self,
        gateway: &Gateway,
        target: &Target,
        _bound: &Self::Bound,
        hop: Hop<'_>,
    ) -> Result<Self::Output, DownstreamError> {
        let Hop { meta, relay, .. } = hop;
        gateway
            .downstreams
            .get(&target.server)?
            .subscribe_resource(&self.uri, meta, relay)
            .await?;
        Ok(Subscribed::default())
    }

    fn apply_obligations(
        _output: &mut Self::Output,
        _obligations: &Obligations,
    ) -> Result<(), String> {
        // Updates name only the URI; what the client then reads is a read of its own.
        Ok(())
    }

    fn downstream_outcome(_output: &Self::Output) -> &'static str {
        "ok"
    }

    fn meta_mut(output: &mut Self::Output) -> &mut Option<MetaObject> {
        &mut output.meta
    }

    fn refused(
        refusal: &Refusal,
        message: String,
        summary: Value,
    ) -> Result<Self::Output, ErrorData> {
        Err(resource_refusal(refusal, message, summary))
    }
}
