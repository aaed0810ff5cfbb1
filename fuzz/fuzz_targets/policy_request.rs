//! Binding arguments to entities and building the policy request from a contract (the
//! repository's example contracts: every tool, prompt and resource), then deciding it with the
//! example policies.
//!
//! Invariants:
//! - no panic, whatever the actor, the arguments or the URI;
//! - arguments the contract does not declare (junk the model adds) never change the request:
//!   the request built with them is the one built without them;
//! - an attribute the contract does not declare, added to the request's arguments, never
//!   decides more permissively: a refusal stays a refusal (`require_approval` never becomes
//!   `allow`, `deny` and `require_more_context` never become either), and an allow keeps every
//!   obligation it had;
//! - a bound entity is exactly what the argument named (a non-empty string, or a number).

#![no_main]

use std::collections::{BTreeMap, HashMap};

use arbitrary::{Arbitrary, Unstructured};
use capgate::enforce::{prompt_request, resource_request, tool_request, Asker, BindError};
use capgate::policy::contract::{AgentFacts, UserFacts};
use capgate::policy::{Action, ActorFacts, AttributeValue, Decision, Outcome, PolicyRequest};
use capgate_fuzz::{engine, json_value, registry, text};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const IDS: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dana",
    "erin",
    "zoe",
    "acme",
    "globex",
    "analyst",
    "supervisor",
    "viewer",
    "memory-curator",
    "drafting-agent",
    "risk-agent",
    "supervisor-agent",
    "memory-curator-agent",
    "notification-service",
    "agent-runtime",
    "case-101",
    "case-102",
    "case-105",
    "case-201",
    "draft-901",
    "draft-951",
    "ev-1001",
    "ev-2001",
    "public",
    "confidential",
    "restricted",
    "user",
    "team",
    "tenant",
    "high",
    "low",
    "closed",
];

fn id(u: &mut Unstructured) -> arbitrary::Result<String> {
    if u.ratio(7, 8)? {
        Ok(u.choose(IDS)?.to_string())
    } else {
        text(u)
    }
}

fn argument_value(u: &mut Unstructured) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0u8..=7)? {
        0..=4 => Value::String(id(u)?),
        5 => Value::from(u.arbitrary::<i64>()?),
        6 => Value::Bool(u.arbitrary()?),
        _ => json_value(u, 2)?,
    })
}

#[derive(Debug)]
enum Target {
    Tool(usize),
    Prompt(usize),
    Resource(String),
}

#[derive(Debug)]
struct Input {
    actor: ActorFacts,
    tenant: String,
    run_id: Option<String>,
    target: Target,
    /// Call (with arguments) or discovery (on the contract alone).
    call: bool,
    /// For tools: the server-to-client actions are decided on the same request.
    tool_action: Action,
    arguments: Map<String, Value>,
    junk: Vec<(String, Value)>,
    junk_attribute: (String, AttributeValue),
    budget_remaining: Option<i64>,
    approval_granted: Option<bool>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let user = id(u)?;
        let agent = if u.ratio(3, 4)? {
            let agent_id = id(u)?;
            let role = if u.ratio(1, 4)? { id(u)? } else { agent_id.clone() };
            Some(AgentFacts { id: agent_id, role })
        } else {
            None
        };
        let mut roles = Vec::new();
        for _ in 0..u.int_in_range(0u8..=2)? {
            roles.push(id(u)?);
        }
        let mut delegation_chain = vec![user.clone()];
        if let Some(agent) = &agent {
            delegation_chain.push(agent.id.clone());
        }
        for _ in 0..u.int_in_range(0u8..=2)? {
            delegation_chain.insert(1, id(u)?);
        }
        let actor = ActorFacts {
            user: UserFacts {
                id: user,
                roles,
                scopes: Vec::new(),
            },
            agent,
            service: if u.arbitrary()? { Some(id(u)?) } else { None },
            delegation_chain,
        };
        let tenant = id(u)?;
        let run_id = if u.arbitrary()? { Some(id(u)?) } else { None };
        let registry = registry();
        let target = match u.int_in_range(0u8..=5)? {
            0..=2 => Target::Tool(u.choose_index(registry.tools().count())?),
            3 => Target::Prompt(u.choose_index(registry.prompts().count())?),
            _ => Target::Resource(if u.ratio(3, 4)? {
                format!("case://{}/cases/{}", id(u)?, id(u)?)
            } else {
                text(u)?
            }),
        };
        let call = u.ratio(3, 4)?;
        let tool_action = *u.choose(&[Action::CallTool, Action::CallTool, Action::Elicit, Action::Sample])?;
        // Arguments: mostly the names contracts declare, some of anything.
        let mut arguments = Map::new();
        for _ in 0..u.int_in_range(0u8..=4)? {
            let name = if u.ratio(3, 4)? {
                u.choose(&[
                    "case_id",
                    "draft_id",
                    "evidence_id",
                    "risk",
                    "status",
                    "scope",
                    "sensitivity",
                    "query",
                    "body",
                ])?
                .to_string()
            } else {
                text(u)?
            };
            arguments.insert(name, argument_value(u)?);
        }
        let mut junk = Vec::new();
        for _ in 0..u.int_in_range(1u8..=3)? {
            junk.push((text(u)?, argument_value(u)?));
        }
        let junk_attribute = (
            text(u)?,
            match u.int_in_range(0u8..=3)? {
                0 => AttributeValue::Bool(u.arbitrary()?),
                1 => AttributeValue::Long(u.arbitrary()?),
                2 => AttributeValue::String(id(u)?),
                _ => AttributeValue::Set(vec![id(u)?, id(u)?]),
            },
        );
        Ok(Input {
            actor,
            tenant,
            run_id,
            target,
            call,
            tool_action,
            arguments,
            junk,
            junk_attribute,
            budget_remaining: if u.arbitrary()? { Some(u.arbitrary()?) } else { None },
            approval_granted: u.arbitrary()?,
        })
    }
}

/// How much a decision lets through: refusals alike, then approval, then allow.
fn rank(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Deny | Outcome::RequireMoreContext => 0,
        Outcome::RequireApproval => 1,
        Outcome::Allow => 2,
    }
}

fn never_more_permissive(before: &Decision, after: &Decision, what: &str) {
    assert!(
        rank(after.outcome) <= rank(before.outcome),
        "{what} decided more permissively: {:?} ({}) became {:?} ({})",
        before.outcome,
        before.reason,
        after.outcome,
        after.reason
    );
    if before.outcome == Outcome::Allow && after.outcome == Outcome::Allow {
        for obligation in &before.obligations {
            assert!(
                after.obligations.contains(obligation),
                "{what} dropped the obligation {obligation:?}"
            );
        }
    }
}

fn same_request(a: &PolicyRequest, b: &PolicyRequest) -> bool {
    let mut b = b.clone();
    b.request_id = a.request_id.clone();
    *a == b
}

fn check_bound(request: &PolicyRequest, arguments: &dyn Fn(&str) -> Option<Value>, bindings: &[capgate::registry::EntityBinding]) {
    for binding in bindings {
        let Some(entity) = request.entities.get(&binding.context_key) else {
            continue;
        };
        assert_eq!(entity.entity_type, binding.entity_type);
        match arguments(&binding.argument) {
            Some(Value::String(s)) => assert_eq!(entity.id, s),
            Some(Value::Number(n)) => assert_eq!(entity.id, n.to_string()),
            other => panic!("entity {entity:?} bound from {other:?}"),
        }
    }
}

fuzz_target!(|input: Input| {
    let registry = registry();
    let engine = engine();
    let asker = Asker {
        facts: &input.actor,
        tenant: &input.tenant,
        run_id: input.run_id.as_deref(),
    };
    let mut with_junk = input.arguments.clone();
    let built = match &input.target {
        Target::Tool(index) => {
            let Some(contract) = registry.tools().nth(*index) else {
                return;
            };
            let declared: Vec<&str> = contract
                .attributes
                .iter()
                .map(String::as_str)
                .chain(contract.entities.iter().map(|b| b.argument.as_str()))
                .collect();
            for (name, value) in &input.junk {
                if !declared.contains(&name.as_str()) && !with_junk.contains_key(name) {
                    with_junk.insert(name.clone(), value.clone());
                }
            }
            let action = if input.call { input.tool_action } else { Action::DiscoverTool };
            let arguments = input.call.then_some(&input.arguments);
            let plain = tool_request(asker, action, contract, arguments);
            let junked = tool_request(asker, action, contract, input.call.then_some(&with_junk));
            Some((plain, junked, declared.iter().map(|s| s.to_string()).collect::<Vec<_>>(), contract.entities.clone()))
        }
        Target::Prompt(index) => {
            let Some(contract) = registry.prompts().nth(*index) else {
                return;
            };
            let declared: Vec<String> = contract.entities.iter().map(|b| b.argument.clone()).collect();
            for (name, value) in &input.junk {
                if !declared.contains(name) && !with_junk.contains_key(name) {
                    with_junk.insert(name.clone(), value.clone());
                }
            }
            let action = if input.call { Action::GetPrompt } else { Action::DiscoverPrompt };
            let plain = prompt_request(asker, action, contract, input.call.then_some(&input.arguments));
            let junked = prompt_request(asker, action, contract, input.call.then_some(&with_junk));
            Some((plain, junked, declared, contract.entities.clone()))
        }
        Target::Resource(uri) => {
            let Some((contract, variables)) = registry.resource_for_uri(uri) else {
                return;
            };
            let action = if input.call { Action::ReadResource } else { Action::DiscoverResource };
            let vars: Option<&HashMap<String, String>> = input.call.then_some(&variables);
            let request = resource_request(asker, action, contract, uri, vars);
            if input.call {
                let lookup = |name: &str| variables.get(name).map(|v| Value::String(v.clone()));
                check_bound(&request, &lookup, &contract.entities);
            }
            let decision = engine.decide(&request);
            check_junk_attribute(&input, request, &decision, &[]);
            None
        }
    };
    let Some((plain, junked, declared, bindings)) = built else {
        return;
    };
    match (plain, junked) {
        (Ok(mut plain), Ok(junked)) => {
            assert!(
                same_request(&plain, &junked),
                "undeclared arguments changed the request:\n{plain:?}\n{junked:?}"
            );
            if input.call {
                let lookup = |name: &str| input.arguments.get(name).cloned();
                check_bound(&plain, &lookup, &bindings);
            }
            plain.runtime.budget_remaining = input.budget_remaining;
            plain.runtime.approval_granted = input.approval_granted;
            let decision = engine.decide(&plain);
            check_junk_attribute(&input, plain, &decision, &declared);
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "undeclared arguments changed the binding error"),
        (plain, junked) => panic!(
            "undeclared arguments changed whether the request builds: {:?} vs {:?}",
            plain.map(|_| ()).map_err(|e: BindError| e.to_string()),
            junked.map(|_| ()).map_err(|e| e.to_string())
        ),
    }
});

/// The request with an attribute the contract does not declare: never more permissive.
fn check_junk_attribute(input: &Input, request: PolicyRequest, decision: &Decision, declared: &[String]) {
    let (name, value) = &input.junk_attribute;
    if declared.contains(name) || request.arguments.contains_key(name) {
        return;
    }
    let mut junked = request;
    let mut arguments: BTreeMap<String, AttributeValue> = junked.arguments.clone();
    arguments.insert(name.clone(), value.clone());
    junked.arguments = arguments;
    let after = engine().decide(&junked);
    never_more_permissive(decision, &after, &format!("the undeclared attribute {name:?}"));
}
