//! The official Python MCP SDK (PyPI `mcp`) lists and calls a tool through capgate with a bearer
//! token. The test sets up `.venv` with the SDK when it is missing (`.ci/run` does the same).

use std::process::Command;

use crate::common::*;
use serde_json::Value;

#[tokio::test]
async fn the_official_python_sdk_lists_and_calls_through_capgate() {
    let python = python_venv();
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let token = gateway.token(&analyst("acme", "alice", "drafting-agent"));
    let script = repo_root().join("tests/python/sdk_client.py");
    let url = gateway.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(url)
            .arg(token)
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK client failed:\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    // The SDK closes its session with DELETE and warns unless the answer is 200 or 204.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Session termination failed"),
        "the SDK warned on close:\n{stderr}"
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"case__read_case"), "{tools:?}");
    assert!(!tools.contains(&"case__delete_evidence"), "{tools:?}");
    assert_eq!(report["allowed"]["is_error"], false, "{report}");
    assert!(report["allowed"]["text"]
        .as_str()
        .unwrap_or_default()
        .contains("Northwind"));
    assert_eq!(report["denied"]["is_error"], true, "{report}");
    assert!(report["denied"]["text"]
        .as_str()
        .unwrap_or_default()
        .contains("tenant-isolation-case"));

    let received: Vec<Value> = gateway
        .journal_entries()
        .into_iter()
        .filter(|e| e["name"] == "read_case")
        .collect();
    assert_eq!(
        received.len(),
        1,
        "only the allowed call reaches the downstream"
    );
}
