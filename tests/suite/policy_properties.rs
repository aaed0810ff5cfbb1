//! Properties of the PDP over the scenario suite: for every scenario's request, drop one piece
//! of what the request carries at a time and decide again.
//!
//! - Less information never grants: if the full request is not allowed, no request with one
//!   attribute dropped is allowed.
//! - What a capability is decided on is never guessed: dropping the tenant, a bound entity or a
//!   required contract attribute is `require_more_context`.

use crate::common::repo_root;
use capgate::policy::{Decision, Outcome, PolicyEngine, PolicyRequest};
use capgate::registry::Registry;
use capgate::scenarios::{parse_file, scenario_files, scenario_request};

/// One attribute dropped from a request.
struct Drop {
    what: String,
    /// Decision rule step 1 applies: the outcome must be require_more_context.
    needs_more_context: bool,
    request: PolicyRequest,
}

/// Every single-attribute drop of `request` that changes it.
fn drops(request: &PolicyRequest) -> Vec<Drop> {
    let mut out = Vec::new();
    let mut add = |what: String, needs_more_context: bool, edit: &dyn Fn(&mut PolicyRequest)| {
        let mut mutated = request.clone();
        edit(&mut mutated);
        if mutated != *request {
            out.push(Drop {
                what,
                needs_more_context,
                request: mutated,
            });
        }
    };
    add("tenant".into(), true, &|r| r.tenant = None);
    let required = request.action.kind().required_attributes();
    for key in request.resource.attributes.keys() {
        add(
            format!("resource.attributes.{key}"),
            required.contains(&key.as_str()),
            &|r| {
                r.resource.attributes.remove(key);
            },
        );
    }
    for key in request.entities.keys() {
        add(format!("entities.{key}"), true, &|r| {
            r.entities.remove(key);
        });
    }
    for key in request.arguments.keys() {
        add(format!("arguments.{key}"), false, &|r| {
            r.arguments.remove(key);
        });
    }
    add("runtime.budget_remaining".into(), false, &|r| {
        r.runtime.budget_remaining = None
    });
    add("runtime.pending_approvals".into(), false, &|r| {
        r.runtime.pending_approvals = None
    });
    add("runtime.workflow_node".into(), false, &|r| {
        r.runtime.workflow_node = None
    });
    add("runtime.approval_granted".into(), false, &|r| {
        r.runtime.approval_granted = None
    });
    add("risk.score".into(), false, &|r| r.risk.score = None);
    add("actor.service".into(), false, &|r| r.actor.service = None);
    add("run_id".into(), false, &|r| r.run_id = None);
    for role in &request.actor.user.roles {
        add(format!("actor.user.roles[{role}]"), false, &|r| {
            r.actor.user.roles.retain(|x| x != role)
        });
    }
    out
}

struct Checked {
    scenario: String,
    original: Decision,
    dropped: String,
    needs_more_context: bool,
    decision: Decision,
}

fn check_all() -> Vec<Checked> {
    let policies = repo_root().join("policies");
    let engine = PolicyEngine::load(&policies, None).expect("load policies");
    let registry =
        Registry::load(&repo_root().join("capabilities"), None).expect("load capabilities");
    let mut checked = Vec::new();
    let mut scenarios = 0;
    for path in scenario_files(&policies.join("tests")).expect("scenario files") {
        let file = parse_file(&path).expect("parse scenario file");
        for scenario in &file.scenarios {
            scenarios += 1;
            let request = scenario_request(scenario, &registry)
                .unwrap_or_else(|e| panic!("`{}`: {e}", scenario.name));
            let original = engine.decide(&request);
            for drop in drops(&request) {
                let decision = engine.decide(&drop.request);
                checked.push(Checked {
                    scenario: scenario.name.clone(),
                    original: original.clone(),
                    dropped: drop.what,
                    needs_more_context: drop.needs_more_context,
                    decision,
                });
            }
        }
    }
    assert!(scenarios >= 40, "only {scenarios} scenarios");
    println!(
        "checked {} (scenario, dropped attribute) pairs over {scenarios} scenarios",
        checked.len()
    );
    checked
}

#[test]
fn dropping_an_attribute_never_turns_a_refusal_into_an_allow() {
    let checked = check_all();
    let violations: Vec<String> = checked
        .iter()
        .filter(|c| c.original.outcome != Outcome::Allow && c.decision.outcome == Outcome::Allow)
        .map(|c| {
            format!(
                "`{}`: {} with everything, allow without {}\n    before: {}\n    after:  {}",
                c.scenario,
                c.original.outcome.as_str(),
                c.dropped,
                c.original.reason,
                c.decision.reason
            )
        })
        .collect();
    let refusals = checked
        .iter()
        .filter(|c| c.original.outcome != Outcome::Allow)
        .count();
    println!("{refusals} pairs start from a refusal");
    assert!(
        violations.is_empty(),
        "{} of {} pairs turn a refusal into an allow by dropping information:\n{}",
        violations.len(),
        refusals,
        violations.join("\n")
    );
}

#[test]
fn dropping_what_a_capability_is_decided_on_requires_more_context() {
    let checked = check_all();
    let bound: Vec<&Checked> = checked.iter().filter(|c| c.needs_more_context).collect();
    assert!(
        bound.iter().any(|c| c.dropped.starts_with("entities.")),
        "no scenario binds an entity"
    );
    println!(
        "{} pairs drop the tenant, a bound entity or a required attribute",
        bound.len()
    );
    let wrong: Vec<String> = bound
        .iter()
        .filter(|c| c.decision.outcome != Outcome::RequireMoreContext)
        .map(|c| {
            format!(
                "`{}` without {}: {} ({})",
                c.scenario,
                c.dropped,
                c.decision.outcome.as_str(),
                c.decision.reason
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "dropping what a capability is decided on must be require_more_context:\n{}",
        wrong.join("\n")
    );
    for c in &bound {
        let named = c.dropped.rsplit('.').next().unwrap_or_default();
        assert!(
            c.decision.missing.iter().any(|m| m.contains(named)),
            "`{}` without {}: `missing` does not name it: {:?}",
            c.scenario,
            c.dropped,
            c.decision.missing
        );
    }
}
