//! `resources/subscribe` as a capability: subscribing is decided like a read of the URI (an
//! actor may only hear of changes to what it may read), counted and logged like one, and on
//! allow the client's session is added to the URI's subscribers at the downstream connection
//! (the downstream is asked once per URI). Unsubscribing removes only the caller's own session.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{ErrorData, JsonObject, MetaObject, RequestMetaObject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::downstream::{DownstreamError, Relay};
use crate::policy::{Action, PolicyRequest};
use crate::registry::ResourceContract;

use super::capability::{refusal_error, Capability, Target};
use super::obligations::Obligations;
use super::refusal::Refusal;
use super::requests::{resource_request, Asker};
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
    type Bound = (Arc<ResourceContract>, HashMap<String, String>);
    type Output = Subscribed;
    const KIND: &'static str = "resource";

    fn action(&self) -> Action {
        Action::ReadResource
    }

    fn requested(&self) -> &str {
        &self.uri
    }

    fn arguments(&self) -> JsonObject {
        let mut arguments = JsonObject::new();
        arguments.insert("subscribe".into(), Value::String(self.uri.clone()));
        arguments
    }

    fn resolve(&self, gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal> {
        let (contract, variables) =
            gateway
                .registry
                .resource_for_uri(&self.uri)
                .ok_or_else(|| Refusal::Unknown {
                    kind: Self::KIND,
                    name: self.uri.clone(),
                })?;
        Ok((Target::of_resource(contract), (contract.clone(), variables)))
    }

    fn policy_request(
        &self,
        (contract, variables): &Self::Bound,
        asker: Asker<'_>,
    ) -> Result<PolicyRequest, Refusal> {
        Ok(resource_request(
            asker,
            self.action(),
            contract,
            &self.uri,
            Some(variables),
        ))
    }

    async fn forward(
        &self,
        gateway: &Gateway,
        target: &Target,
        _bound: &Self::Bound,
        meta: RequestMetaObject,
        relay: Option<&Relay>,
    ) -> Result<Self::Output, DownstreamError> {
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
        Err(match refusal {
            Refusal::Unknown { .. } => ErrorData::resource_not_found(
                message,
                Some(serde_json::json!({ super::DECISION_META_KEY: summary })),
            ),
            _ => refusal_error(message, summary),
        })
    }
}
