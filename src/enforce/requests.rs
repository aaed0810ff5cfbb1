//! Building [`PolicyRequest`]s from capability contracts: the same code serves the gateway's
//! per-call path and the policy scenario tests, so scenarios exercise the real bindings.

use std::collections::BTreeMap;

use rmcp::model::JsonObject;
use serde_json::Value;

use crate::policy::contract::{RiskContext, RuntimeContext, NO_WORKFLOW_NODE};
use crate::policy::{Action, ActorFacts, AttributeValue, EntityRef, PolicyRequest, ResourceFacts};
use crate::registry::{EntityBinding, PromptContract, ResourceContract, Risk, ToolContract};

/// Why a capability could not be resolved or its arguments bound, before any decision.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "argument `{argument}` is required: it names the {entity_type} this call is decided on"
    )]
    Missing {
        argument: String,
        entity_type: String,
    },
    #[error("argument `{argument}` must be a string or number naming a {entity_type}")]
    NotAnId {
        argument: String,
        entity_type: String,
    },
}

/// Who is asking: the actor's facts and the token's tenant and run.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub facts: &'a ActorFacts,
    pub tenant: &'a str,
    pub run_id: Option<&'a str>,
}

fn request(asker: Asker<'_>, action: Action, resource: ResourceFacts) -> PolicyRequest {
    PolicyRequest {
        request_id: new_request_id(),
        tenant: Some(asker.tenant.to_string()),
        run_id: asker.run_id.map(str::to_string),
        actor: asker.facts.clone(),
        action,
        resource,
        entities: Default::default(),
        arguments: Default::default(),
        environment: Default::default(),
        // Nothing scores risk yet: a known zero, not an unknown.
        risk: RiskContext {
            score: Some(0),
            signals: Vec::new(),
        },
        runtime: RuntimeContext {
            workflow_node: Some(NO_WORKFLOW_NODE.to_string()),
            ..Default::default()
        },
    }
}

/// A tool request. With `arguments` (a call) the contract's entity bindings and declared
/// attributes are bound; without (discovery) the tool is decided on its contract alone.
pub fn tool_request(
    asker: Asker<'_>,
    action: Action,
    contract: &ToolContract,
    arguments: Option<&JsonObject>,
) -> Result<PolicyRequest, BindError> {
    let mut resource = tool_resource(contract);
    let Some(arguments) = arguments else {
        resource.requires.clear();
        return Ok(request(asker, action, resource));
    };
    let mut policy_request = request(asker, action, resource);
    policy_request.entities = bind_entities(&contract.entities, |arg| arguments.get(arg).cloned())?;
    policy_request.arguments = argument_attributes(&contract.attributes, arguments);
    Ok(policy_request)
}

/// A resource request for a concrete URI (its variables bind entities), or for a template
/// (`variables` = None, decided on the contract alone).
pub fn resource_request(
    asker: Asker<'_>,
    action: Action,
    contract: &ResourceContract,
    uri: &str,
    variables: Option<&std::collections::HashMap<String, String>>,
) -> PolicyRequest {
    let mut resource = resource_facts(contract, uri);
    let Some(variables) = variables else {
        resource.requires.clear();
        return request(asker, action, resource);
    };
    let mut policy_request = request(asker, action, resource);
    // A variable that is absent leaves its entity out: the PDP answers require_more_context.
    policy_request.entities = bind_entities(&contract.entities, |arg| {
        variables.get(arg).map(|v| Value::String(v.clone()))
    })
    .unwrap_or_default();
    policy_request
}

/// A prompt request; like tools, arguments bind entities on `prompts/get`.
pub fn prompt_request(
    asker: Asker<'_>,
    action: Action,
    contract: &PromptContract,
    arguments: Option<&JsonObject>,
) -> Result<PolicyRequest, BindError> {
    let mut resource = prompt_resource(contract);
    let Some(arguments) = arguments else {
        resource.requires.clear();
        return Ok(request(asker, action, resource));
    };
    let mut policy_request = request(asker, action, resource);
    policy_request.entities = bind_entities(&contract.entities, |arg| arguments.get(arg).cloned())?;
    Ok(policy_request)
}

pub(super) fn new_request_id() -> String {
    format!("req-{:016x}", rand::random::<u64>())
}

fn base_attributes(server: &str, name: &str, risk: Risk) -> BTreeMap<String, AttributeValue> {
    std::collections::BTreeMap::from([
        (
            "server".to_string(),
            AttributeValue::String(server.to_string()),
        ),
        ("name".to_string(), AttributeValue::String(name.to_string())),
        (
            "risk".to_string(),
            AttributeValue::String(risk.as_str().to_string()),
        ),
    ])
}

fn requires(bindings: &[EntityBinding]) -> Vec<String> {
    bindings.iter().map(|b| b.context_key.clone()).collect()
}

fn tool_resource(contract: &ToolContract) -> ResourceFacts {
    let mut attributes = base_attributes(&contract.server, &contract.name, contract.risk);
    attributes.insert(
        "effect".into(),
        AttributeValue::String(contract.effect.as_str().to_string()),
    );
    attributes.insert(
        "cost".into(),
        AttributeValue::Long(i64::from(contract.cost)),
    );
    ResourceFacts {
        id: contract.exposed_name.clone(),
        attributes,
        requires: requires(&contract.entities),
    }
}

fn resource_facts(contract: &ResourceContract, uri: &str) -> ResourceFacts {
    ResourceFacts {
        id: uri.to_string(),
        attributes: base_attributes(&contract.server, &contract.name, contract.risk),
        requires: requires(&contract.entities),
    }
}

fn prompt_resource(contract: &PromptContract) -> ResourceFacts {
    ResourceFacts {
        id: contract.exposed_name.clone(),
        attributes: base_attributes(&contract.server, &contract.name, contract.risk),
        requires: requires(&contract.entities),
    }
}

/// The contract-declared arguments as attributes; values of other shapes are left out (and a
/// policy that needs them sees them missing).
fn argument_attributes(
    declared: &[String],
    arguments: &JsonObject,
) -> BTreeMap<String, AttributeValue> {
    declared
        .iter()
        .filter_map(|name| {
            let value = match arguments.get(name)? {
                Value::String(s) => AttributeValue::String(s.clone()),
                Value::Bool(b) => AttributeValue::Bool(*b),
                Value::Number(n) => AttributeValue::Long(n.as_i64()?),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect()
}

/// Reads each bound argument as an entity id. Arguments come from the model, so they are only
/// ids here: what the entity *is* comes from the trusted entity store.
pub fn bind_entities(
    bindings: &[EntityBinding],
    value_of: impl Fn(&str) -> Option<Value>,
) -> Result<BTreeMap<String, EntityRef>, BindError> {
    bindings
        .iter()
        .map(|binding| {
            let id = match value_of(&binding.argument) {
                Some(Value::String(s)) if !s.is_empty() => s,
                Some(Value::Number(n)) => n.to_string(),
                None | Some(Value::Null) => {
                    return Err(BindError::Missing {
                        argument: binding.argument.clone(),
                        entity_type: binding.entity_type.clone(),
                    })
                }
                Some(_) => {
                    return Err(BindError::NotAnId {
                        argument: binding.argument.clone(),
                        entity_type: binding.entity_type.clone(),
                    })
                }
            };
            Ok((
                binding.context_key.clone(),
                EntityRef {
                    entity_type: binding.entity_type.clone(),
                    id,
                },
            ))
        })
        .collect()
}
