//! The policy scenario suite (`policies/tests/*.yaml`) as a cargo test: every scenario passes
//! through the library, and `capgate policy test` reports the same, exiting non-zero (with a
//! runner-style `FAILED` line) when one expectation is wrong.

use std::path::Path;
use std::process::Command;

use crate::common::{copy_dir, repo_root};
use capgate::policy::{
    AdminAction, AdminDecision, AdminOutcome, AdminPolicySet, AdminRoles, Outcome, PolicyEngine,
};
use capgate::registry::Registry;
use capgate::scenarios::{self, ScenarioResult};

/// Scenario names ending in this must be denied with no determining policy (deny by default).
const DEFAULT_DENY_MARK: &str = "(default deny)";

fn run(policies: &Path, tests: &Path) -> Vec<ScenarioResult> {
    let engine = PolicyEngine::load(policies, None)
        .unwrap_or_else(|e| panic!("loading {}: {e}", policies.display()));
    let registry = Registry::load(&repo_root().join("capabilities"), None)
        .unwrap_or_else(|e| panic!("loading the capabilities: {e}"));
    scenarios::run_dir(tests, &engine, &registry).unwrap_or_else(|e| panic!("{e}"))
}

fn repo_results() -> Vec<ScenarioResult> {
    run(
        &repo_root().join("policies"),
        &repo_root().join("policies/tests"),
    )
}

fn admin_results() -> Vec<ScenarioResult<AdminDecision>> {
    let dir = repo_root().join("policies/admin");
    let set =
        AdminPolicySet::load(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    scenarios::run_admin_dir(&dir.join("tests"), &set, &AdminRoles::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn short_file<D>(result: &ScenarioResult<D>) -> String {
    Path::new(&result.file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| result.file.clone())
}

#[test]
fn every_scenario_passes() {
    let results = repo_results();
    let failures: Vec<&ScenarioResult> = results.iter().filter(|r| r.failure.is_some()).collect();
    for failure in &failures {
        eprintln!(
            "FAILED {}::{}\n    {}",
            short_file(failure),
            failure.name,
            failure.failure.as_deref().unwrap_or_default()
        );
    }
    assert!(
        results.len() >= 40,
        "the scenario suite has only {} scenarios; it must keep at least 40",
        results.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} scenario(s) failed (listed above)",
        failures.len(),
        results.len()
    );
}

/// The admin policy set's scenarios pass, and every admin action is both allowed and denied
/// by some scenario: a new action without scenarios fails here.
#[test]
fn every_admin_scenario_passes_and_covers_every_action() {
    let results = admin_results();
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.failure
                .as_ref()
                .map(|f| format!("{}::{}\n    {f}", short_file(r), r.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let mut names = std::collections::HashSet::new();
    for result in &results {
        assert!(
            names.insert(&result.name),
            "`{}` is used twice",
            result.name
        );
    }
    let files: Vec<std::path::PathBuf> =
        scenarios::scenario_files(&repo_root().join("policies/admin/tests")).expect("files");
    let mut seen: std::collections::HashSet<(AdminAction, AdminOutcome)> = Default::default();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let file: scenarios::AdminScenarioFile = serde_norway::from_str(&text).expect("parse");
        for scenario in file.scenarios {
            seen.insert((scenario.action, scenario.expect.outcome));
        }
    }
    let missing: Vec<String> = AdminAction::ALL
        .iter()
        .flat_map(|action| {
            [
                (*action, AdminOutcome::Allow),
                (*action, AdminOutcome::Deny),
            ]
        })
        .filter(|pair| !seen.contains(pair))
        .map(|(action, outcome)| format!("{outcome:?} {}", action.as_str()))
        .collect();
    assert!(missing.is_empty(), "no admin scenario expects: {missing:?}");
}

#[test]
fn scenario_names_are_unique() {
    let results = repo_results();
    let mut seen = std::collections::HashSet::new();
    for result in &results {
        assert!(
            seen.insert(result.name.clone()),
            "scenario name `{}` is used twice; names identify scenarios in reports",
            result.name
        );
    }
}

/// `expect` cannot say "no policy decided"; the name convention can, and this checks it.
#[test]
fn default_deny_scenarios_have_no_determining_policy() {
    let results = repo_results();
    let marked: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| r.name.ends_with(DEFAULT_DENY_MARK))
        .collect();
    assert!(marked.len() >= 5, "expected several default-deny scenarios");
    for result in marked {
        let decision = result
            .decision
            .as_ref()
            .unwrap_or_else(|| panic!("`{}`: no decision", result.name));
        assert_eq!(
            decision.outcome,
            Outcome::Deny,
            "`{}`: {}",
            result.name,
            decision.reason
        );
        assert!(
            decision.policy_ids.is_empty() && decision.policy_id.is_none(),
            "`{}` must be denied by default, but policies decided: {:?} ({})",
            result.name,
            decision.policy_ids,
            decision.reason
        );
    }
}

/// An agent told "approval required" must be told how to get it.
#[test]
fn approval_decisions_carry_advice() {
    let results = repo_results();
    let approvals: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| {
            r.decision
                .as_ref()
                .is_some_and(|d| d.outcome == Outcome::RequireApproval)
        })
        .collect();
    assert!(!approvals.is_empty(), "no scenario requires approval");
    for result in approvals {
        let decision = result.decision.as_ref().expect("filtered on the decision");
        assert!(
            !decision.advice.is_empty(),
            "`{}`: require_approval without advice ({})",
            result.name,
            decision.reason
        );
        for advice in &decision.advice {
            assert!(
                decision.agent_reason.contains(advice.as_str()),
                "`{}`: the agent reason `{}` lacks the advice `{advice}`",
                result.name,
                decision.agent_reason
            );
        }
    }
    let high = results
        .iter()
        .find(|r| {
            r.decision.as_ref().is_some_and(|d| {
                d.outcome == Outcome::RequireApproval
                    && d.policy_ids
                        .iter()
                        .any(|p| p == "high-risk-senior-approval")
            })
        })
        .expect("a scenario where a high-risk mutation requires approval");
    let decision = high.decision.as_ref().expect("decided");
    assert!(
        decision
            .advice
            .iter()
            .any(|a| a.contains("senior reviewer")),
        "high-risk approval advice should send the agent to a senior reviewer: {:?}",
        decision.advice
    );
}

fn capgate_policy_test(policies: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["policy", "test", "--policies"])
        .arg(policies)
        .arg("--capabilities")
        .arg(repo_root().join("capabilities"))
        .env_remove("CAPGATE_CONFIG")
        .output()
        .expect("run capgate policy test")
}

#[test]
fn cli_passes_on_the_repo_policies() {
    let output = capgate_policy_test(&repo_root().join("policies"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "capgate policy test failed on the repo's policies:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    let expected = repo_results().len() + admin_results().len();
    assert!(
        stdout.contains(&format!("{expected} passed, 0 failed")),
        "expected `{expected} passed, 0 failed` in:\n{stdout}"
    );
}

#[test]
fn cli_fails_when_one_expectation_is_flipped() {
    // The first scenario that passes; its expected outcome is flipped in a copy of policies/.
    let results = repo_results();
    let target = results
        .iter()
        .find(|r| r.failure.is_none())
        .expect("a passing scenario");
    let file_name = Path::new(&target.file)
        .file_name()
        .expect("scenario file name")
        .to_owned();

    let temp = tempfile::tempdir().expect("tempdir");
    let policies = temp.path().join("policies");
    copy_dir(&repo_root().join("policies"), &policies);
    let scenario_file = policies.join("tests").join(&file_name);
    let text = std::fs::read_to_string(&scenario_file).expect("read scenario file");
    let mut document: serde_norway::Value = serde_norway::from_str(&text).expect("parse scenarios");
    let scenario = document["scenarios"]
        .as_sequence_mut()
        .expect("a scenarios list")
        .iter_mut()
        .find(|s| s["name"].as_str() == Some(target.name.as_str()))
        .expect("the target scenario in its file");
    let original = scenario["expect"]["outcome"]
        .as_str()
        .expect("an expected outcome")
        .to_string();
    let flipped = if original == "allow" { "deny" } else { "allow" };
    scenario["expect"]["outcome"] = serde_norway::Value::String(flipped.into());
    std::fs::write(
        &scenario_file,
        serde_norway::to_string(&document).expect("write yaml"),
    )
    .expect("write scenario file");

    let output = capgate_policy_test(&policies);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "capgate policy test passed although `{}` now expects {flipped}:\n{stdout}",
        target.name
    );
    let failed_line = format!("::{} ... FAILED", target.name);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("test ") && l.ends_with(&failed_line)),
        "expected a line `test <file>{failed_line}` in:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("expected {flipped}, got {original}")),
        "the failure should say what was expected and what was decided:\n{stdout}"
    );
    assert!(stderr.contains("scenario(s) failed"), "{stderr}");
}
