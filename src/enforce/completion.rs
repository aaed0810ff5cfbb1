//! `completion/complete` as a capability: a completion is decided as a read of the prompt or
//! resource template it completes (on the contract alone: its arguments are being typed), is
//! counted against the run's budget like that read, and reaches the downstream with the
//! prompt's own name. Its values are text the downstream chose: an allow whose obligations
//! would transform content is refused rather than passed unredacted.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CompleteRequestParams, CompleteResult, ErrorData, JsonObject, MetaObject, PromptReference,
    Reference,
};
use serde_json::Value;

use crate::downstream::DownstreamError;
use crate::policy::{Action, PolicyRequest};
use crate::registry::{PromptContract, ResourceContract};

use super::capability::{refusal_error, Capability, Hop, Target};
use super::obligations::Obligations;
use super::refusal::Refusal;
use super::requests::{prompt_request, resource_request, Asker};
use super::Gateway;

/// One `completion/complete` request.
pub struct Completion {
    params: CompleteRequestParams,
    /// What it completes, as capgate knows reference kinds (`None`: a kind it does not).
    reference: Option<Ref>,
}

enum Ref {
    Prompt(String),
    Template(String),
}

impl Completion {
    pub fn new(params: CompleteRequestParams) -> Self {
        let reference = match &params.r#ref {
            Reference::Prompt(prompt) => Some(Ref::Prompt(prompt.name.clone())),
            Reference::Resource(template) => Some(Ref::Template(template.uri.clone())),
            _ => None,
        };
        Self { params, reference }
    }
}

/// What a completion completes.
pub enum Completed {
    Prompt(Arc<PromptContract>),
    Template(Arc<ResourceContract>),
}

impl Completion {
    fn reference(&self) -> &str {
        match &self.reference {
            Some(Ref::Prompt(name)) => name,
            Some(Ref::Template(uri)) => uri,
            None => "an unknown kind of reference",
        }
    }
}

impl Capability for Completion {
    type Bound = Completed;
    type Output = CompleteResult;
    const KIND: &'static str = "completion reference";

    fn action(&self) -> Action {
        match &self.reference {
            Some(Ref::Template(_)) => Action::ReadResource,
            Some(Ref::Prompt(_)) | None => Action::GetPrompt,
        }
    }

    fn requested(&self) -> &str {
        self.reference()
    }

    fn arguments(&self) -> Cow<'_, JsonObject> {
        let mut arguments = JsonObject::new();
        arguments.insert("ref".into(), Value::String(self.reference().to_string()));
        arguments.insert(
            "argument".into(),
            Value::String(self.params.argument.name.clone()),
        );
        Cow::Owned(arguments)
    }

    fn resolve(&self, gateway: &Gateway) -> Result<(Target, Self::Bound), Refusal> {
        let unknown = || Refusal::Unknown {
            kind: Self::KIND,
            name: self.reference().to_string(),
        };
        match &self.reference {
            None => Err(unknown()),
            Some(Ref::Prompt(name)) => {
                let contract = gateway.registry.prompt(name).ok_or_else(unknown)?;
                Ok((
                    Target::of_prompt(contract),
                    Completed::Prompt(contract.clone()),
                ))
            }
            Some(Ref::Template(uri)) => {
                let contract = gateway
                    .registry
                    .resources()
                    .find(|c| c.template.source == *uri)
                    .ok_or_else(unknown)?;
                Ok((
                    Target::of_resource(contract),
                    Completed::Template(contract.clone()),
                ))
            }
        }
    }

    fn policy_request(
        &self,
        bound: &Self::Bound,
        asker: Asker<'_>,
    ) -> Result<PolicyRequest, Refusal> {
        match bound {
            Completed::Prompt(contract) => {
                prompt_request(asker, self.action(), contract, None).map_err(Refusal::Unbound)
            }
            Completed::Template(contract) => Ok(resource_request(
                asker,
                self.action(),
                contract,
                &contract.template.source,
                None,
            )),
        }
    }

    async fn forward(
        &self,
        gateway: &Gateway,
        target: &Target,
        bound: &Self::Bound,
        hop: Hop<'_>,
    ) -> Result<Self::Output, DownstreamError> {
        let Hop { meta, relay, .. } = hop;
        let mut params = self.params.clone();
        if let Completed::Prompt(contract) = bound {
            params.r#ref = Reference::Prompt(PromptReference::new(contract.name.clone()));
        }
        params.meta = Some(meta);
        gateway
            .downstreams
            .get(&target.server)?
            .complete(params, relay)
            .await
    }

    fn apply_obligations(
        _output: &mut Self::Output,
        obligations: &Obligations,
    ) -> Result<(), String> {
        if obligations.transforms_content() {
            return Err("completion values cannot be redacted".into());
        }
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
            // An unknown reference is invalid params, as prompts/get answers an unknown name.
            Refusal::Unknown { .. } => ErrorData::invalid_params(
                message,
                Some(serde_json::json!({ super::DECISION_META_KEY: summary })),
            ),
            _ => refusal_error(message, summary),
        })
    }
}
