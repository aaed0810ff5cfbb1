//! The optimised decision path against the reference, on every scenario request of
//! `policies/tests/` and variations of each (attributes dropped, other actors, other
//! actions, malformed contracts), over the repository's policies, each of their forbids
//! turned into a permit, and a set that exercises evaluation errors and action groups.

use std::path::{Path, PathBuf};

use super::ReferencePdp;
use crate::policy::contract::{AgentFacts, AttributeValue, EntityRef, PolicyRequest};
use crate::policy::{Action, Outcome};
use crate::registry::Registry;
use crate::scenarios::{parse_file, scenario_files, scenario_request};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scenario_requests() -> Vec<(String, PolicyRequest)> {
    let registry = Registry::load(&repo().join("capabilities"), None).expect("load capabilities");
    let mut requests = Vec::new();
    for path in scenario_files(&repo().join("policies/tests")).expect("scenario files") {
        for scenario in parse_file(&path).expect("scenario file").scenarios {
            let request = scenario_request(&scenario, &registry)
                .unwrap_or_else(|e| panic!("`{}`: {e}", scenario.name));
            requests.push((scenario.name, request));
        }
    }
    assert!(requests.len() >= 100, "only {} scenarios", requests.len());
    requests
}

/// `request` and requests near it: one thing dropped, changed or malformed at a time.
fn variants(name: &str, request: &PolicyRequest) -> Vec<(String, PolicyRequest)> {
    let mut out = vec![(name.to_string(), request.clone())];
    let mut add = |what: &str, edit: &dyn Fn(&mut PolicyRequest)| {
        let mut changed = request.clone();
        edit(&mut changed);
        if changed != *request {
            out.push((format!("{name} / {what}"), changed));
        }
    };
    add("no tenant", &|r| r.tenant = None);
    add("empty tenant", &|r| r.tenant = Some(String::new()));
    add("other tenant", &|r| r.tenant = Some("globex".into()));
    for key in request.resource.attributes.keys() {
        add(&format!("without resource.{key}"), &|r| {
            r.resource.attributes.remove(key);
        });
    }
    for key in request.entities.keys() {
        add(&format!("without entity {key}"), &|r| {
            r.entities.remove(key);
        });
        add(&format!("unknown entity {key}"), &|r| {
            if let Some(e) = r.entities.get_mut(key) {
                e.id = "no-such-entity".into();
            }
        });
        add(&format!("entity {key} of a malformed type"), &|r| {
            if let Some(e) = r.entities.get_mut(key) {
                e.entity_type = "Not A Type".into();
            }
        });
        add(
            &format!("entity {key} of a type spelled with spaces"),
            &|r| {
                if let Some(e) = r.entities.get_mut(key) {
                    e.entity_type = format!(" {} ", e.entity_type);
                }
            },
        );
    }
    for key in request.arguments.keys() {
        add(&format!("without argument {key}"), &|r| {
            r.arguments.remove(key);
        });
    }
    add("no runtime facts", &|r| r.runtime = Default::default());
    add("approval granted", &|r| {
        r.runtime.approval_granted = Some(true)
    });
    add("approval not granted", &|r| {
        r.runtime.approval_granted = Some(false)
    });
    add("at workflow node draft", &|r| {
        r.runtime.workflow_node = Some("draft".into())
    });
    add("at an unknown workflow node", &|r| {
        r.runtime.workflow_node = Some("nowhere".into())
    });
    add("budget", &|r| {
        r.runtime.budget_remaining = Some(3);
        r.runtime.pending_approvals = Some(1);
    });
    add("high risk score", &|r| r.risk.score = Some(95));
    add("no risk score", &|r| r.risk.score = None);
    add("risk signals", &|r| {
        r.risk.signals = vec!["prompt_injection".into()]
    });
    add("no service", &|r| r.actor.service = None);
    add("notification service", &|r| {
        r.actor.service = Some("notification-service".into())
    });
    add("run id", &|r| r.run_id = Some("run-7".into()));
    add("no run id", &|r| r.run_id = None);
    add("in person", &|r| r.actor.agent = None);
    for role in [
        "drafting-agent",
        "risk-agent",
        "supervisor-agent",
        "memory-curator-agent",
        "notification-service",
        "rogue-agent",
    ] {
        add(&format!("as {role}"), &|r| {
            r.actor.agent = Some(AgentFacts {
                id: format!("{role}-1"),
                role: role.into(),
            })
        });
    }
    add("senior reviewer", &|r| {
        r.actor.user.roles = vec!["senior_reviewer".into(), "analyst".into()]
    });
    add("no roles", &|r| r.actor.user.roles.clear());
    add("scopes", &|r| {
        r.actor.user.scopes = vec!["cases:read".into(), "cases:read".into()]
    });
    add("user dana", &|r| r.actor.user.id = "dana".into());
    add("long delegation chain", &|r| {
        r.actor.delegation_chain = vec!["a".into(), "b".into(), "c".into()]
    });
    let other_action = match request.action {
        Action::DiscoverTool => Action::CallTool,
        Action::CallTool => Action::DiscoverTool,
        Action::DiscoverResource => Action::ReadResource,
        Action::ReadResource => Action::DiscoverResource,
        Action::DiscoverPrompt => Action::GetPrompt,
        Action::GetPrompt => Action::DiscoverPrompt,
        Action::Elicit => Action::Sample,
        Action::Sample => Action::Elicit,
    };
    add("the other action of its kind", &|r| r.action = other_action);
    add("an unknown risk level", &|r| {
        r.resource
            .attributes
            .insert("risk".into(), AttributeValue::String("extreme".into()));
    });
    add("risk that is not a string", &|r| {
        r.resource
            .attributes
            .insert("risk".into(), AttributeValue::Long(2));
    });
    add("an effect that is not a string", &|r| {
        r.resource
            .attributes
            .insert("effect".into(), AttributeValue::Bool(true));
    });
    add("a server that is not a string", &|r| {
        r.resource
            .attributes
            .insert("server".into(), AttributeValue::Long(1));
    });
    add("a contract risk_level and uri", &|r| {
        r.resource
            .attributes
            .insert("risk_level".into(), AttributeValue::Long(0));
        r.resource
            .attributes
            .insert("uri".into(), AttributeValue::String("x://y".into()));
    });
    add("a set attribute", &|r| {
        r.resource.attributes.insert(
            "tags".into(),
            AttributeValue::Set(vec!["a".into(), "b".into()]),
        );
        r.arguments
            .insert("flag".into(), AttributeValue::Bool(true));
    });
    for key in ["user", "service", "arguments"] {
        add(&format!("an entity bound as context.{key}"), &|r| {
            r.entities.insert(
                key.into(),
                EntityRef {
                    entity_type: "Case".into(),
                    id: "case-101".into(),
                },
            );
        });
    }
    add("a second case", &|r| {
        r.entities.insert(
            "draft".into(),
            EntityRef {
                entity_type: "Draft".into(),
                id: "draft-1".into(),
            },
        );
    });
    out
}

fn assert_same(dir: &Path, requests: &[(String, PolicyRequest)]) -> usize {
    let (reference, optimised, store) = ReferencePdp::load(dir);
    for (name, request) in requests {
        let expected = reference.decide(request, &store);
        let actual = optimised.decide(request, &store);
        assert_eq!(
            actual,
            expected,
            "`{name}` over {}: the optimised decision differs from the reference",
            dir.display()
        );
    }
    requests.len()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            if entry.file_name() != "tests" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn all_requests() -> Vec<(String, PolicyRequest)> {
    scenario_requests()
        .iter()
        .flat_map(|(name, request)| variants(name, request))
        .collect()
}

#[test]
fn every_scenario_and_its_variants_are_decided_as_the_reference_decides() {
    let requests = all_requests();
    let decided = assert_same(&repo().join("policies"), &requests);
    assert!(decided > 2_000, "only {decided} requests compared");
}

/// The forbid `id` in `text` turned into a permit, its `@outcome`, `@approver` and
/// `@break_glass` dropped.
fn forbid_to_permit(text: &str, id: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == format!("@id(\"{id}\")"))?;
    let mut out: Vec<String> = Vec::new();
    let mut in_head = false;
    for (i, line) in lines.iter().enumerate() {
        let annotation = line.trim_start().starts_with('@');
        if i == at {
            in_head = true;
        }
        if in_head
            && annotation
            && (line.contains("@outcome")
                || line.contains("@approver")
                || line.contains("@break_glass"))
        {
            continue;
        }
        if in_head && line.trim_start().starts_with("forbid") {
            out.push(line.replacen("forbid", "permit", 1));
            in_head = false;
            continue;
        }
        out.push(line.to_string());
    }
    Some(out.join("\n"))
}

#[test]
fn each_forbid_turned_into_a_permit_is_decided_as_the_reference_decides() {
    let requests: Vec<(String, PolicyRequest)> = scenario_requests();
    let policies = repo().join("policies");
    let mut mutations = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&policies)
        .expect("read policies")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read policy file");
        let ids: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("@id(\""))
            .filter_map(|l| l.strip_suffix("\")"))
            .map(str::to_string)
            .collect();
        for id in ids {
            let Some(mutated) = forbid_to_permit(&text, &id) else {
                continue;
            };
            if mutated == text {
                continue;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            copy_dir(&policies, dir.path());
            let name = file.file_name().expect("file name");
            std::fs::write(dir.path().join(name), mutated).expect("write mutation");
            if crate::policy::load_policies(dir.path()).is_err() {
                continue;
            }
            assert_same(dir.path(), &requests);
            mutations += 1;
        }
    }
    assert!(mutations >= 10, "only {mutations} mutations compared");
}

/// Policies whose evaluation errors (missing data, overflow), overlapping permits and
/// forbids, and an action group, which the repository's policies do not have.
const EXOTIC: &str = r#"
@id("exotic-overflow")
@reason("costs overflow")
@break_glass("never")
forbid (principal, action == Action::"call_tool", resource is Tool)
when { context.arguments has scope && resource.cost * 4611686018427387904 > 0 };

@id("exotic-unknown-profile")
@obligation("audit:exotic")
permit (principal is Agent, action in Action::"tool_actions", resource is Tool)
when { !principal.profile.workflow_nodes.contains("nowhere") && resource.server == "case" };

@id("exotic-second-permit")
@obligation("redact:exotic")
@advice("exotic advice")
permit (principal, action in [Action::"discover_tool", Action::"call_tool"], resource is Tool)
when { resource.server == "case" && resource.effect == "read" };

@id("exotic-approval")
@reason("exotic approval")
@advice("ask someone")
@approver("exotic_approver")
@outcome("require_approval")
forbid (principal, action in Action::"tool_actions", resource is Tool)
when { context has run_id && context.run_id == "run-7" };

@id("exotic-more-context")
@outcome("require_more_context")
forbid (principal, action, resource)
when { context.risk.signals.contains("prompt_injection") };

@id("exotic-draft-status")
@reason("drafts in review")
forbid (principal, action, resource)
when { context has draft && context.draft.status == "approval_requested" && context.delegation_depth > 1 };

@id("exotic-unless-service")
@reason("no runtime service stated")
forbid (principal is User, action == Action::"discover_tool", resource)
unless { context has service && context.service == Service::"agent-runtime" };

@id("exotic-late-guard")
@break_glass("never")
forbid (principal is Agent, action == Action::"call_tool", resource)
when { principal.profile.workflow_nodes.contains("closing") && context has draft };

@id("exotic-either-guard")
@outcome("require_more_context")
forbid (principal, action == Action::"call_tool", resource)
when { context has draft || context.delegation_depth > 1 };

@id("exotic-uri")
@reason("resource attributes as capgate derives them")
forbid (principal, action == Action::"read_resource", resource is Resource)
when { resource.uri == "x://y" || resource.risk_level == 0 };

@id("exotic-senior-prompts")
@obligation("audit:senior-prompt")
permit (principal in Role::"senior_reviewer", action == Action::"get_prompt", resource);

@id("exotic-writes-by-analysts")
@advice("writes by analysts are reviewed")
@outcome("require_more_context")
forbid (principal, action == Action::"call_tool", resource is Tool)
when
{
  resource.effect != "read" &&
  (context.user in Role::"analyst" || principal in AgentRole::"risk-agent") &&
  resource.risk == "medium"
};

@id("exotic-other-uri")
@reason("a resource read by another uri than its contract states")
forbid (principal, action == Action::"read_resource", resource is Resource)
when { resource.uri != "x://y" && context.delegation_depth > 5 };

@id("exotic-dana")
permit (principal == User::"dana", action, resource is Tool)
when { context has case && resource.server == "case" };
"#;

#[test]
fn errors_overlaps_and_action_groups_are_decided_as_the_reference_decides() {
    let policies = repo().join("policies");
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&policies, dir.path());
    let schema_path = dir.path().join(crate::policy::load::SCHEMA_FILE);
    let schema = std::fs::read_to_string(&schema_path).expect("read schema");
    let grouped = schema.replacen(
        "action discover_tool, call_tool appliesTo",
        "action tool_actions;\naction discover_tool, call_tool in [tool_actions] appliesTo",
        1,
    );
    assert_ne!(
        grouped, schema,
        "the schema's tool actions are where this test expects"
    );
    std::fs::write(&schema_path, grouped).expect("write schema");
    std::fs::write(dir.path().join("zz-exotic.cedar"), EXOTIC).expect("write policies");
    if let Err(e) = crate::policy::load_policies(dir.path()) {
        panic!("the exotic policies load: {e}");
    }
    let requests = all_requests();
    assert_same(dir.path(), &requests);

    // The set exercises what it is for.
    let (_, optimised, store) = ReferencePdp::load(dir.path());
    let decisions: Vec<_> = requests
        .iter()
        .map(|(_, r)| optimised.decide(r, &store))
        .collect();
    let reason_has = |text: &str| decisions.iter().any(|d| d.reason.contains(text));
    assert!(reason_has(
        "could not be evaluated, so capgate fails closed"
    ));
    assert!(reason_has("some policies could not be evaluated"));
    assert!(decisions
        .iter()
        .any(|d| d.approver_role.as_deref() == Some("exotic_approver")));
    assert!(decisions.iter().any(|d| d.policy_ids.len() > 1));
    assert!(decisions
        .iter()
        .any(|d| d.obligations.contains(&"audit:exotic".to_string())));
    // A refusal a forbid marked `@break_glass("never")` took part in, by matching or by
    // failing to evaluate, is not for break-glass; other denials are.
    let refused = |overridable: bool| {
        decisions
            .iter()
            .any(|d| d.outcome == Outcome::Deny && d.break_glass_may_override == overridable)
    };
    assert!(refused(true) && refused(false));
    assert!(decisions.iter().any(|d| d.outcome == Outcome::Deny
        && !d.break_glass_may_override
        && d.reason.contains("could not be evaluated")));
}

/// The engine's answers, first computed and then remembered, are the reference's: every
/// scenario and variant asked three times, the third time with another request id, decision
/// time and run budget (which no example policy reads).
#[test]
fn the_engines_remembered_answers_are_the_references() {
    let dir = repo().join("policies");
    let (reference, _, store) = ReferencePdp::load(&dir);
    let engine = crate::policy::PolicyEngine::load(&dir, None).expect("example policies load");
    let requests = all_requests();
    for pass in ["first", "again", "again, another budget"] {
        for (name, request) in &requests {
            let mut request = request.clone();
            if pass == "again, another budget" {
                request.request_id = "another".into();
                request.environment.now = Some(crate::policy::now_unix());
                request.runtime.budget_remaining =
                    Some(request.runtime.budget_remaining.unwrap_or(9) - 7);
            }
            let expected = reference.decide(&request, &store);
            assert_eq!(engine.decide(&request), expected, "`{name}` ({pass})");
        }
    }
    assert!(
        engine.cached_decisions() > 100,
        "{}",
        engine.cached_decisions()
    );
}

/// A relationship update is seen by the next decision, cached answers notwithstanding.
#[test]
fn a_relationship_update_replaces_remembered_answers() {
    let dir = repo().join("policies");
    let engine = crate::policy::PolicyEngine::load(&dir, None).expect("example policies load");
    let (_, request) = scenario_requests()
        .into_iter()
        .find(|(_, r)| {
            r.entities
                .values()
                .any(|e| e.entity_type == "Case" && e.id == "case-101")
                && engine.decide(r).outcome == Outcome::Allow
        })
        .expect("an allowed scenario about case-101");
    let mut unknown = request.clone();
    for entity in unknown.entities.values_mut() {
        if entity.entity_type == "Case" {
            entity.id = "case-777".into();
        }
    }
    // Asked twice: the second answer is the remembered one.
    for _ in 0..2 {
        assert_eq!(engine.decide(&unknown).outcome, Outcome::RequireMoreContext);
    }
    let case_101 = serde_json::json!({
        "uid": {"type": "Case", "id": "case-777"},
        "attrs": {
            "tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
            "team": {"__entity": {"type": "Team", "id": "acme-enforcement"}},
            "status": "open", "risk": "medium", "risk_level": 1,
            "assignees": [{"__entity": {"type": "User", "id": "alice"}}]
        },
        "parents": [{"type": "Tenant", "id": "acme"}]
    });
    let store = engine
        .relationships_with(vec![case_101])
        .expect("the case fits the schema");
    engine.set_relationships(store);
    assert_eq!(
        engine.decide(&unknown).outcome,
        engine.decide(&request).outcome,
        "case-777, now known as case-101 is, is decided as case-101"
    );
    assert_eq!(engine.decide(&unknown).outcome, Outcome::Allow);
}
