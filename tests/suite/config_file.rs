//! Which configuration a command runs on without `--config`: `./capgate.toml` when the current
//! directory has one (so editing the checkout's file takes effect), else the default compiled
//! into the binary; `--config` and `CAPGATE_CONFIG` win over both. `serve` says which at start.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::common::*;

const EMBEDDED_ISSUER: &str = "https://dev.capgate.local";

fn capgate(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_capgate"));
    command
        .current_dir(dir)
        .env_remove("CAPGATE_CONFIG")
        .env_remove("CAPGATE_LOG")
        .stdin(Stdio::null());
    command
}

/// The repository's `capgate.toml` with its dev issuer renamed.
fn checkout_config_with_issuer(issuer: &str) -> String {
    std::fs::read_to_string(repo_root().join("capgate.toml"))
        .expect("read capgate.toml")
        .replace(EMBEDDED_ISSUER, issuer)
}

/// `capgate token` in `dir`, for alice of acme.
fn token(dir: &Path) -> Command {
    let mut command = capgate(dir);
    command.args(["token", "--user", "alice", "--tenant", "acme"]);
    command
}

/// The `iss` of the dev token `command` mints.
fn minted_issuer(command: &mut Command) -> String {
    let output = command.output().expect("run capgate token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url payload"),
    )
    .expect("JSON claims");
    claims["iss"].as_str().expect("an iss claim").to_string()
}

#[test]
fn a_command_reads_the_given_file_then_the_working_directory_then_the_embedded_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(minted_issuer(&mut token(dir.path())), EMBEDDED_ISSUER);

    let local = "https://local.capgate.test";
    std::fs::write(
        dir.path().join("capgate.toml"),
        checkout_config_with_issuer(local),
    )
    .expect("write ./capgate.toml");
    assert_eq!(minted_issuer(&mut token(dir.path())), local);

    let given = "https://given.capgate.test";
    std::fs::write(
        dir.path().join("other.toml"),
        checkout_config_with_issuer(given),
    )
    .expect("write other.toml");
    assert_eq!(
        minted_issuer(token(dir.path()).args(["--config", "other.toml"])),
        given
    );
    assert_eq!(
        minted_issuer(token(dir.path()).env("CAPGATE_CONFIG", "other.toml")),
        given
    );

    // A ./capgate.toml that does not parse is an error naming it, never the default instead.
    std::fs::write(dir.path().join("capgate.toml"), "data_dir = [").expect("write");
    let broken = token(dir.path()).output().expect("run capgate token");
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("./capgate.toml"), "{stderr}");
}

fn serve_in(dir: &Path) -> std::process::Child {
    let log = std::fs::File::create(dir.join("serve.log")).expect("log file");
    capgate(dir)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn capgate serve")
}

#[tokio::test]
async fn serve_runs_on_the_working_directory_file_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = copy_checkout(dir.path());
    let mut child = serve_in(dir.path());
    let log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    // Up on the copy's port (the embedded default would listen on 8080).
    let health = format!("http://127.0.0.1:{}/healthz", ports.mcp);
    // Our process says when it has bound the port; before that, another test could answer.
    let bound = format!("capgate listening on http://127.0.0.1:{}/mcp", ports.mcp);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = log().contains(&bound)
            && reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        let exited = child.try_wait().expect("wait");
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("capgate did not come up ({exited:?}):\n{}", log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log().contains("configuration: ./capgate.toml (in the current directory)"),
        "{}",
        log()
    );
    assert!(dir.path().join("data/capgate.db").exists());
}

#[test]
fn serve_without_a_local_file_says_it_runs_the_embedded_default() {
    // An empty directory: the embedded default, which then misses its capabilities/ here and
    // stops before it listens.
    let dir = tempfile::tempdir().expect("tempdir");
    let output: Output = capgate(dir.path())
        .arg("serve")
        .output()
        .expect("run capgate serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "configuration: the embedded default (no capgate.toml in the current directory)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("capabilities"), "{stderr}");
}
