//! What the gateway keeps on disk is its owner's only: on a fresh data directory, after real
//! calls, the directory is 0700 and every file in it (databases with their `-wal`/`-shm`
//! files, the checkpoint signing key, the dev issuer's secret) is 0600; and a data directory
//! left readable by an older version is made private again when the gateway starts.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::json;

/// The test issuers, and a dev issuer whose secret the gateway generates into the data dir.
fn issuers_with_a_dev_secret() -> String {
    let dev = r#"
[[issuers]]
issuer = "https://dev.capgate.local"
algorithm = "HS256"
secret_file = "data/dev-issuer.secret"
dev = true
"#;
    format!("{}{dev}", test_issuers())
}

/// A real call through the gateway, which writes to both databases.
async fn read_a_case(gateway: &TestGateway) {
    let client = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let result = call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Every file and directory under `dir`, `dir` included.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).expect("read data dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(tree(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn assert_private(data: &Path) {
    let names: Vec<String> = tree(data)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "capgate.db",
        "capgate.db-wal",
        "audit.db",
        "audit.db-wal",
        "audit.db-shm",
        "audit-signing.key",
        "dev-issuer.secret",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} is in the data directory: {names:?}"
        );
    }
    // The store is held exclusively: its WAL index is in the gateway's memory, not in a file.
    assert!(
        !names.iter().any(|n| n == "capgate.db-shm"),
        "the store is not locked through a shared-memory file: {names:?}"
    );
    for path in tree(data) {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(&path),
            expected,
            "{} is {:o}, expected {expected:o}",
            path.display(),
            mode(&path)
        );
    }
}

#[tokio::test]
async fn the_data_directory_and_everything_in_it_are_private() {
    let gateway = TestGateway::start(GatewayOptions {
        issuers: Some(issuers_with_a_dev_secret()),
        ..Default::default()
    })
    .await;
    let data = gateway.dir.path().join("data");
    read_a_case(&gateway).await;
    assert_private(&data);

    // An upgrade: an older capgate left everything readable by all.
    for path in tree(&data) {
        let loose = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).expect("chmod");
    }
    gateway.restart().await;
    read_a_case(&gateway).await;
    assert_private(&data);
}
