//! Policy versions and tooling: effective windows, the shadow set, `policy explain`, `policy fmt`,
//! `capgate schema`, and agent-safe explanations on the wire.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use capgate::policy::{now_unix, Outcome, PolicyEngine};
use capgate::registry::Registry;
use capgate::scenarios::{parse_file, scenario_request};
use serde_json::{json, Value};

fn set_manifest(dir: &Path, version: &str, from: &str, until: Option<&str>) {
    let until = until
        .map(|u| format!("effective_until = \"{u}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        dir.join("manifest.toml"),
        format!("id = \"case-platform\"\nversion = \"{version}\"\nowner = \"test\"\neffective_from = \"{from}\"\n{until}"),
    )
    .expect("manifest");
}

/// The request of the first scenario in simulation.yaml whose name contains `needle`.
fn scenario(needle: &str) -> capgate::policy::PolicyRequest {
    let registry = Registry::load(&repo_root().join("capabilities"), None).expect("contracts");
    let file = parse_file(&repo_root().join("policies/tests/simulation.yaml")).expect("scenarios");
    let found = file
        .scenarios
        .iter()
        .find(|s| s.name.contains(needle))
        .expect("scenario exists");
    scenario_request(found, &registry).expect("request")
}

#[test]
fn effective_windows_are_honoured_and_a_future_version_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join("policies"), dir.path());
    let mut request = scenario("drafting agent creates a draft");
    request.environment.now = Some(now_unix());

    // A set that is not yet in effect decides nothing but deny, and says why.
    set_manifest(dir.path(), "9", "2999-01-01T00:00:00Z", None);
    let engine = PolicyEngine::load(dir.path(), None).expect("loads");
    let decision = engine.decide(&request);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert!(
        decision.reason.contains("no policy set is in effect"),
        "{}",
        decision.reason
    );

    // An expired one likewise.
    set_manifest(
        dir.path(),
        "8",
        "2000-01-01T00:00:00Z",
        Some("2001-01-01T00:00:00Z"),
    );
    let engine = PolicyEngine::load(dir.path(), None).expect("loads");
    assert_eq!(engine.decide(&request).outcome, Outcome::Deny);

    // In effect: decides, and the decision carries the version.
    set_manifest(dir.path(), "3", "2020-01-01T00:00:00Z", None);
    let engine = PolicyEngine::load(dir.path(), None).expect("loads");
    let decision = engine.decide(&request);
    assert_eq!(decision.outcome, Outcome::Allow, "{}", decision.reason);
    assert_eq!(decision.policy_version, "case-platform@3");

    // Reloading a version that starts in the future keeps version 3 in effect until then.
    set_manifest(dir.path(), "4", "2999-01-01T00:00:00Z", None);
    assert_eq!(engine.reload(&[]).expect("valid"), "case-platform@4");
    let decision = engine.decide(&request);
    assert_eq!(decision.policy_version, "case-platform@3");
    let mut later = request.clone();
    later.environment.now = Some(32_503_680_000 + 10); // 3000-01-01
    assert_eq!(engine.decide(&later).policy_version, "case-platform@4");
}

#[test]
fn the_shadow_set_is_decided_beside_the_enforced_one() {
    let candidate = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join("policies"), candidate.path());
    set_manifest(
        candidate.path(),
        "4-candidate",
        "2020-01-01T00:00:00Z",
        None,
    );
    std::fs::write(
        candidate.path().join("stricter.cedar"),
        "@id(\"no-drafts-on-fridays\")\nforbid(principal, action == Action::\"call_tool\", resource is Tool) when { resource.name == \"create_notice_draft\" };\n",
    )
    .expect("write");
    let engine = PolicyEngine::load(&repo_root().join("policies"), Some(candidate.path()))
        .expect("both sets load");

    let draft = engine.decide(&scenario("drafting agent creates a draft"));
    assert_eq!(draft.outcome, Outcome::Allow);
    let shadow = draft.shadow.expect("shadow decision");
    assert_eq!(shadow.outcome, Outcome::Deny);
    assert!(shadow.differs);
    assert_eq!(shadow.policy_version, "case-platform@4-candidate");
    assert_eq!(shadow.policy_ids, vec!["no-drafts-on-fridays".to_string()]);

    let other = engine.decide(&scenario("globex analyst reads acme"));
    let shadow = other.shadow.expect("shadow decision");
    assert!(!shadow.differs, "both sets deny a cross-tenant read");
}

#[test]
fn policy_explain_prints_the_decision_for_a_request_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let request = scenario("risk agent tries to send");
    let path = dir.path().join("request.json");
    std::fs::write(&path, serde_json::to_string(&request).expect("json")).expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["policy", "explain"])
        .arg(&path)
        .args(["--policies"])
        .arg(repo_root().join("policies"))
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decision: Value = serde_json::from_slice(&output.stdout).expect("decision JSON");
    assert_eq!(decision["outcome"], "deny");
    assert!(decision["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("risk-agent"));
    assert!(!decision["agent_reason"]
        .as_str()
        .unwrap_or_default()
        .contains("@"));
}

#[test]
fn policy_fmt_checks_and_formats_and_schema_prints_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("messy.cedar"),
        "@id(\"x\") permit(principal,action,resource)when{true};",
    )
    .expect("write");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_capgate"))
            .args(args)
            .arg(dir.path())
            .output()
            .expect("run")
    };
    assert!(!run(&["policy", "fmt", "--check"]).status.success());
    assert!(run(&["policy", "fmt"]).status.success());
    assert!(run(&["policy", "fmt", "--check"]).status.success());
    let formatted = std::fs::read_to_string(dir.path().join("messy.cedar")).expect("read");
    assert!(formatted.contains("permit ("), "{formatted}");

    let schema = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .arg("schema")
        .output()
        .expect("run");
    let schemas: Value = serde_json::from_slice(&schema.stdout).expect("JSON");
    assert!(schemas["PolicyRequest"]["properties"]["actor"].is_object());
    let outcomes = schemas["Decision"].to_string();
    for outcome in ["allow", "deny", "require_approval", "require_more_context"] {
        assert!(
            outcomes.contains(outcome),
            "{outcome} missing from the Decision schema"
        );
    }
    // The repo's own policies are formatted.
    let repo = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["policy", "fmt", "--check"])
        .arg(repo_root().join("policies"))
        .output()
        .expect("run");
    assert!(
        repo.status.success(),
        "{}",
        String::from_utf8_lossy(&repo.stderr)
    );
}

#[tokio::test]
async fn agents_get_audience_safe_reasons_by_default() {
    let gateway = TestGateway::start(GatewayOptions {
        safe_explanations: true,
        ..Default::default()
    })
    .await;
    let carol = gateway
        .client(&gateway.token(&analyst("globex", "carol", "drafting-agent")))
        .await;
    let refused = call(&carol, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_eq!(refused.is_error, Some(true));
    let text = text_of(&refused);
    assert_eq!(text, "not permitted by policy");
    let meta = serde_json::to_string(&refused.meta).expect("json");
    for leak in ["tenant-isolation", "acme", "case-platform@", "forbid"] {
        assert!(
            !meta.contains(leak) && !text.contains(leak),
            "{leak} leaked: {text} {meta}"
        );
    }
    // The log keeps the specific reason for admins.
    assert!(gateway.log().contains("tenant-isolation-case"));
}
