//! The README's quick start, run as written: the one ```sh block between
//! `<!-- quickstart:begin -->` and `<!-- quickstart:end -->`, by `bash -euo pipefail` (so every
//! step must succeed), in a fresh directory holding a copy of the checkout's `capgate.toml`,
//! `capabilities/` and `policies/` and no data directory, with the built `capgate` and
//! `case-platform` first on `PATH`. It mints tokens, lists an agent's tools, calls one, is
//! refused one, and does an approval round trip with the CLI; the test reads its output.
//!
//! Ports: the test never needs 8080 or 8081 to be free. The block takes the gateway's URL from
//! `CAPGATE_URL` (default the README's `http://127.0.0.1:8080`); the test moves only the port
//! numbers of the config copy's two listeners to free ones and sets `CAPGATE_URL` to match.
//! `capgate admin` finds the admin listener in that copy (`./capgate.toml`, `[admin] listen`).
//! The block's text is run unchanged.
//!
//! It needs `bash`, `curl` and `jq`, as the README says; without them it fails saying so.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const BEGIN: &str = "<!-- quickstart:begin -->";
const END: &str = "<!-- quickstart:end -->";

/// The script between the markers: exactly one ```sh block.
fn quickstart_block(readme: &str) -> String {
    let start = readme
        .find(BEGIN)
        .unwrap_or_else(|| panic!("README.md has no {BEGIN}"))
        + BEGIN.len();
    let end = start
        + readme[start..]
            .find(END)
            .unwrap_or_else(|| panic!("README.md has no {END} after {BEGIN}"));
    let body = readme[start..end]
        .trim()
        .strip_prefix("```sh\n")
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or_else(|| panic!("the quick start is not one ```sh block between the markers"));
    assert!(
        !body.contains("```"),
        "the quick start is one fenced block, not several"
    );
    body.to_string()
}

fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(found, "the README's quick start needs `{tool}` on PATH");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    for tool in ["bash", "curl", "jq"] {
        require(tool);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = copy_checkout(dir.path());
    let script = dir.path().join("quickstart.sh");
    std::fs::write(
        &script,
        quickstart_block(&read(&repo_root().join("README.md"))),
    )
    .expect("write the script");
    let binaries = Path::new(env!("CARGO_BIN_EXE_capgate"))
        .parent()
        .expect("capgate's binary is in a directory");
    assert!(
        binaries.join("case-platform").exists(),
        "case-platform is built beside capgate"
    );
    let path = format!(
        "{}:{}",
        binaries.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = |name: &str| std::fs::File::create(dir.path().join(name)).expect("output file");
    let mut bash = Command::new("bash")
        .args(["-euo", "pipefail"])
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("CAPGATE_URL", format!("http://127.0.0.1:{}", ports.mcp))
        .env_remove("CAPGATE_CONFIG")
        .env_remove("CAPGATE_ADMIN_URL")
        .env_remove("CAPGATE_ADMIN_TOKEN")
        .env_remove("CAPGATE_TOKEN")
        .env_remove("CAPGATE_LOG")
        .stdin(Stdio::null())
        .stdout(out("stdout"))
        .stderr(out("stderr"))
        // Its own process group: a script that hangs is stopped with the gateway it started.
        .process_group(0)
        .spawn()
        .expect("run bash");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = bash.try_wait().expect("wait for bash") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", bash.id())])
                .status();
            let _ = bash.wait();
            panic!(
                "the quick start did not finish in 3 minutes\nstdout:\n{}\nstderr:\n{}\ncapgate.log:\n{}",
                read(&dir.path().join("stdout")),
                read(&dir.path().join("stderr")),
                read(&dir.path().join("capgate.log"))
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = read(&dir.path().join("stdout"));
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{}\ncapgate.log:\n{}",
        read(&dir.path().join("stderr")),
        read(&dir.path().join("capgate.log"))
    );
    assert!(
        status.success(),
        "the quick start failed ({status}):\n{context}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let has = |line: &str| lines.contains(&line);

    // The checkout's file was in force, and the gateway used a data directory of its own.
    assert!(
        has("configuration: ./capgate.toml (in the current directory)"),
        "{context}"
    );
    assert!(dir.path().join("data/capgate.db").exists(), "{context}");
    // The agent's tools, a call, a refusal.
    for tool in ["case__read_case", "case__create_notice_draft"] {
        assert!(has(tool), "{tool} listed:\n{context}");
    }
    assert!(!has("case__send_approved_notice"), "{context}");
    assert!(has("Unlicensed lending — Northwind"), "{context}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("deny: ") && l.contains("tenant-isolation-case")),
        "{context}"
    );
    // The approval round trip: requested, listed, approved, used once.
    let approval = lines
        .iter()
        .find_map(|l| l.strip_prefix("approval requested: "))
        .unwrap_or_else(|| panic!("no approval requested:\n{context}"));
    assert!(approval.starts_with("apr-"), "{context}");
    assert!(
        has(&format!(
            "{approval} case__send_approved_notice {{\"draft_id\":\"draft-906\"}}"
        )),
        "{context}"
    );
    assert!(has("approved"), "{context}");
    assert!(has("sent"), "{context}");
    assert!(
        has(&format!(
            "the approval does not authorize this call: approval `{approval}` was already used"
        )),
        "{context}"
    );

    // The script stopped the gateway it started.
    let stopped = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", ports.mcp)).is_ok() {
        assert!(
            Instant::now() < stopped,
            "the gateway still listens after the script ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // One notice was sent, under the approval: the decision log says so.
    let export = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["audit", "export", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run capgate audit export");
    let sends: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["record"].clone())
        .filter(|r| r["resource"] == "case__send_approved_notice")
        .collect();
    let decisions: Vec<&str> = sends
        .iter()
        .filter(|r| r["downstream_outcome"].is_null())
        .filter_map(|r| r["decision"].as_str())
        .collect();
    assert_eq!(
        decisions,
        ["require_approval", "allow", "deny"],
        "{sends:#?}"
    );
}
