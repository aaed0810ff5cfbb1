//! stdio mode: one agent per process, its token read from the environment at start.

use crate::common::*;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::json;

#[tokio::test]
async fn stdio_mode_serves_the_token_holder_and_enforces_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 1, &GatewayOptions::default());
    let token = sign_hs256(
        &claims(
            &analyst("acme", "alice", "risk-agent"),
            "http://127.0.0.1:1/mcp",
        ),
        TEST_SECRET.as_bytes(),
    );
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_capgate"));
    command
        .args(["serve", "--stdio", "--config"])
        .arg(&config)
        .env("CAPGATE_TEST_SECRET", TEST_SECRET)
        .env("CAPGATE_TOKEN", token);
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let client = ().serve(transport).await.expect("stdio MCP session");
    let names = tool_names(&client).await;
    assert!(
        names.contains(&"case__propose_risk_update".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"case__create_notice_draft".to_string()),
        "{names:?}"
    );
    let read = call(&client, "case__read_case", json!({"case_id": "case-102"})).await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    let denied = call(&client, "case__read_case", json!({"case_id": "case-201"})).await;
    assert_eq!(denied.is_error, Some(true));
    let journal = read_journal(&dir.path().join("case-journal.jsonl"));
    assert_eq!(journal.len(), 1, "{journal:?}");
    client.cancel().await.expect("close");
}

#[test]
fn stdio_mode_refuses_to_start_with_a_bad_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 1, &GatewayOptions::default());
    let mut expired = claims(
        &analyst("acme", "alice", "risk-agent"),
        "http://127.0.0.1:1/mcp",
    );
    expired.insert("exp".into(), 1_000.into());
    expired.insert("nbf".into(), 500.into());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["serve", "--stdio", "--config"])
        .arg(&config)
        .env("CAPGATE_TEST_SECRET", TEST_SECRET)
        .env(
            "CAPGATE_TOKEN",
            sign_hs256(&expired, TEST_SECRET.as_bytes()),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("CAPGATE_TOKEN") && stderr.contains("expired"),
        "{stderr}"
    );
}
