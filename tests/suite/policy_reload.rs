//! Policy versioning at run time: hot reload through the admin API and on SIGHUP (validate, then
//! swap atomically), an invalid reload that keeps enforcement as it was and names file and line,
//! relationship updates without restart, and the admin API's own authorization.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

async fn admin_post(gateway: &TestGateway, path: &str, token: &str, body: Value) -> (u16, Value) {
    gateway.admin_post_as(token, path, body).await
}

fn set_manifest_version(gateway: &TestGateway, version: &str) {
    let path = gateway.policies_dir().join("manifest.toml");
    let text = std::fs::read_to_string(&path).expect("manifest");
    let updated: String = text
        .lines()
        .map(|l| {
            if l.starts_with("version") {
                format!("version = \"{version}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(path, updated).expect("write manifest");
}

/// A reload refused (422) for a problem in the file ending in `file` at `line`.
fn assert_refused_at(status: u16, body: &Value, file: &str, line: u64) {
    assert_eq!(status, 422, "{body}");
    let problem = &body["problems"][0];
    assert!(
        problem["file"].as_str().unwrap_or_default().ends_with(file),
        "{body}"
    );
    assert_eq!(problem["line"], line, "{body}");
}

#[tokio::test]
async fn reloads_swap_atomically_and_invalid_ones_change_nothing() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let admin = gateway.platform_admin_token();
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let read = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));

    // An invalid policy: refused with file and line; enforcement unchanged.
    std::fs::write(
        gateway.policies_dir().join("zz-broken.cedar"),
        "// comment\n@id(\"broken\")\nforbid(principal, action resource);\n",
    )
    .expect("write");
    let (status, body) = admin_post(&gateway, "/admin/policy/reload", &admin, json!({})).await;
    assert_refused_at(status, &body, "/zz-broken.cedar", 3);
    let still = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(still.is_error, Some(true), "{}", text_of(&still));
    assert_eq!(gateway.health().await["policy_version"], "case-platform@3");

    // An invalid admin policy refuses the reload the same way, naming its file and line.
    std::fs::remove_file(gateway.policies_dir().join("zz-broken.cedar")).expect("remove");
    let broken_admin = gateway.policies_dir().join("admin/zz-broken.cedar");
    std::fs::write(
        &broken_admin,
        "@id(\"broken-admin\")\n@reason(\"r\")\npermit(principal, action resource);\n",
    )
    .expect("write");
    let (status, body) = admin_post(&gateway, "/admin/policy/reload", &admin, json!({})).await;
    assert_refused_at(status, &body, "admin/zz-broken.cedar", 3);
    std::fs::remove_file(&broken_admin).expect("remove");
    // The admin policy set in force still answers.
    let (status, body) = admin_post(&gateway, "/admin/policy/reload", &admin, json!({})).await;
    assert_eq!(status, 200, "{body}");

    // A valid new version that forbids reads: swapped in, the next call sees it.
    std::fs::write(
        gateway.policies_dir().join("zz-broken.cedar"),
        "@id(\"read-freeze\")\n@reason(\"reads are frozen for maintenance\")\nforbid(principal, action == Action::\"call_tool\", resource is Tool) when { resource.name == \"read_case\" };\n",
    )
    .expect("write");
    set_manifest_version(&gateway, "4");
    let (status, body) = admin_post(&gateway, "/admin/policy/reload", &admin, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reloaded"], "case-platform@4");
    let frozen = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_eq!(frozen.is_error, Some(true));
    let reason = text_of(&frozen);
    assert!(
        reason.contains("read-freeze") && reason.contains("case-platform@4"),
        "{reason}"
    );

    // SIGHUP reloads too.
    std::fs::remove_file(gateway.policies_dir().join("zz-broken.cedar")).expect("remove");
    set_manifest_version(&gateway, "5");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    until_within(
        Duration::from_secs(10),
        || async { gateway.health().await["policy_version"] == "case-platform@5" },
        || format!("SIGHUP did not reload; log:\n{}", gateway.log()),
    )
    .await;
    let thawed = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(thawed.is_error, Some(true), "{}", text_of(&thawed));
}

#[tokio::test]
async fn relationship_updates_apply_without_restart() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let before = call(&alice, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_eq!(
        before.is_error,
        Some(true),
        "alice is not assigned to case-103"
    );

    let assign = json!([{
        "uid": {"type": "Case", "id": "case-103"},
        "attrs": {
            "tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
            "team": {"__entity": {"type": "Team", "id": "acme-enforcement"}},
            "status": "open", "risk": "critical", "risk_level": 3,
            "assignees": [{"__entity": {"type": "User", "id": "bob"}},
                          {"__entity": {"type": "User", "id": "alice"}}]
        },
        "parents": [{"type": "Tenant", "id": "acme"}]
    }]);
    let (status, body) = admin_post(
        &gateway,
        "/admin/relationships",
        &gateway.admin_token(),
        assign,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after = call(&alice, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_ne!(after.is_error, Some(true), "{}", text_of(&after));

    // Data that does not fit the schema is refused and changes nothing (acme's admin may write
    // acme's case-104; the schema still refuses it).
    let bad = json!([{"uid": {"type": "Case", "id": "case-104"},
                      "attrs": {"tenant": {"__entity": {"type": "Tenant", "id": "acme"}}, "risk": 7},
                      "parents": []}]);
    let (status, _) = admin_post(
        &gateway,
        "/admin/relationships",
        &gateway.admin_token(),
        bad,
    )
    .await;
    assert_eq!(status, 422);
    let still = call(&alice, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_ne!(still.is_error, Some(true));

    // SIGHUP re-reads the entity files (alice is assigned case-104 on disk) and replays the
    // stored update (case-103) over them.
    let refused = call(&alice, "case__read_case", json!({"case_id": "case-104"})).await;
    assert_eq!(
        refused.is_error,
        Some(true),
        "alice is not assigned to case-104"
    );
    let file = gateway.policies_dir().join("entities/case-platform.json");
    let mut entities: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("entities")).expect("json");
    let case = entities
        .as_array_mut()
        .expect("entity list")
        .iter_mut()
        .find(|e| e["uid"]["id"] == "case-104")
        .expect("case-104");
    case["attrs"]["assignees"]
        .as_array_mut()
        .expect("assignees")
        .push(json!({"__entity": {"type": "User", "id": "alice"}}));
    std::fs::write(&file, entities.to_string()).expect("write entities");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    until_within(
        Duration::from_secs(10),
        || async {
            let read = call(&alice, "case__read_case", json!({"case_id": "case-104"})).await;
            read.is_error != Some(true)
        },
        || {
            format!(
                "SIGHUP did not reload the entity files; log:\n{}",
                gateway.log()
            )
        },
    )
    .await;
    let replayed = call(&alice, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_ne!(
        replayed.is_error,
        Some(true),
        "the stored update survives the reload: {}",
        text_of(&replayed)
    );
}

#[tokio::test]
async fn the_admin_api_requires_an_admin_person() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let analyst_token = gateway.token(&analyst("acme", "alice", "drafting-agent"));
    let (status, _) = admin_post(&gateway, "/admin/policy/reload", &analyst_token, json!({})).await;
    assert_eq!(status, 403);
    let (status, body) = admin_post(
        &gateway,
        "/admin/policy/reload",
        &gateway.admin_token(),
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "reloading is for platform admins: {body}");
    let agent_admin = gateway.token(&TokenSpec {
        user: "root-admin",
        tenant: Some("acme"),
        roles: vec!["capgate-admin", "capgate-platform-admin"],
        agent: Some("supervisor-agent"),
        service: None,
    });
    let (status, _) = admin_post(&gateway, "/admin/policy/reload", &agent_admin, json!({})).await;
    assert_eq!(status, 403, "an agent acting for an admin is not an admin");
    let (status, _) = admin_post(&gateway, "/admin/policy/reload", "not-a-token", json!({})).await;
    assert_eq!(status, 401);
}
