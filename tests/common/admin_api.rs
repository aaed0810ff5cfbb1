//! The admin listener as tests use it: requests with a token, and the decision log once it is
//! committed.

use serde_json::Value;

use super::TestGateway;

/// POSTs `body` to `path` on the admin listener with `token`: the status and the JSON answer.
pub async fn admin_request(
    gateway: &TestGateway,
    token: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    gateway
        .admin_request(Some(token), "POST", path, Some(&body))
        .await
}

/// Waits until everything the gateway logged so far is committed, then exports the log: each
/// record's `record` object, in order.
pub async fn flushed_records(gateway: &TestGateway) -> Vec<Value> {
    flush_log(gateway).await;
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["audit", "export", "--data-dir"])
        .arg(gateway.dir.path().join("data"))
        .output()
        .expect("capgate audit export");
    String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["record"].clone())
        .collect()
}

/// Returns once every record the gateway has logged so far is committed.
pub async fn flush_log(gateway: &TestGateway) {
    let (status, body) = admin_request(
        gateway,
        &gateway.platform_admin_token(),
        "/admin/audit/flush",
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "flush: {body}");
}

/// Notice drafts the case platform created (calls it actually received).
pub fn drafts_created(gateway: &TestGateway) -> usize {
    gateway
        .journal_entries()
        .iter()
        .filter(|e| e["name"] == "create_notice_draft")
        .count()
}
