//! `capgate serve` refuses to start on a bad policy, schema violation, contract or config, and
//! says which file and line to fix.

use std::process::{Command, Stdio};

use crate::common::*;

fn config_with_policy(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = GatewayOptions {
        extra_policies: vec![(name.to_string(), text.to_string())],
        ..Default::default()
    };
    let config = write_config(dir.path(), 1, &options);
    (dir, config)
}

#[test]
fn a_policy_syntax_error_refuses_start_naming_file_and_line() {
    let (_dir, config) = config_with_policy(
        "broken.cedar",
        "// fine first line\n@id(\"broken\")\npermit(principal, action resource);\n",
    );
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains("broken.cedar:3:"), "{stderr}");
}

#[test]
fn a_schema_violation_refuses_start_naming_file_and_line() {
    let (_dir, config) = config_with_policy(
        "violation.cedar",
        "@id(\"uses-unknown-attribute\")\npermit(principal, action == Action::\"call_tool\", resource is Tool)\nwhen {\n  resource.owner == \"me\"\n};\n",
    );
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains("violation.cedar:4:"), "{stderr}");
    assert!(stderr.contains("uses-unknown-attribute"), "{stderr}");
    assert!(stderr.contains("owner"), "{stderr}");
}

/// The admin policy set is validated as strictly as the capability set; a gateway with an
/// admin listener and no admin policy set does not start either.
#[test]
fn a_bad_or_missing_admin_policy_set_refuses_start_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 1, &GatewayOptions::default());
    add_admin(&config);
    let admin = dir.path().join("policies/admin");
    std::fs::write(
        admin.join("zz-broken.cedar"),
        "@id(\"broken\")\n@reason(\"why\")\npermit (\n  principal in AdminRole::\"tenant_admin\",\n  action == Action::\"reload_policy\",\n  resource is Platform\n) when { resource.owner == principal };\n",
    )
    .expect("write");
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains("admin/zz-broken.cedar:7:"), "{stderr}");
    assert!(stderr.contains("broken"), "{stderr}");

    std::fs::write(
        admin.join("zz-broken.cedar"),
        "@id(\"unexplained\")\npermit (principal, action, resource is Platform);\n",
    )
    .expect("write");
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains("admin/zz-broken.cedar"), "{stderr}");
    assert!(stderr.contains("no @reason"), "{stderr}");

    std::fs::remove_dir_all(&admin).expect("remove the admin policy set");
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains("no admin policy set"), "{stderr}");
}

#[test]
fn a_contract_naming_an_undeclared_entity_type_refuses_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 1, &GatewayOptions::default());
    let contracts = dir.path().join("capabilities/case-platform.toml");
    let text = std::fs::read_to_string(&contracts).expect("read");
    std::fs::write(
        &contracts,
        text.replacen("case_id = \"Case\"", "case_id = \"Dossier\"", 1),
    )
    .expect("write");
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains("Dossier"), "{stderr}");
}

#[test]
fn a_bad_config_names_the_file_the_key_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 1, &GatewayOptions::default());
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(
        &config,
        text.replace("algorithm = \"RS256\"", "algorithm = \"HS256\""),
    )
    .expect("write");
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(stderr.contains("issuers[1].algorithm"), "{stderr}");
    assert!(stderr.contains("Fix:"), "{stderr}");
}

#[test]
fn a_missing_hs256_secret_refuses_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 1, &GatewayOptions::default());
    let output = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("CAPGATE_TEST_SECRET")
        .stdin(Stdio::null())
        .output()
        .expect("run capgate");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CAPGATE_TEST_SECRET"), "{stderr}");
}

fn policy_check(policies: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["policy", "check"])
        .arg(policies)
        .output()
        .expect("run capgate policy check")
}

#[test]
fn policy_check_accepts_the_example_policies_and_rejects_a_broken_set() {
    let ok = policy_check(&repo_root().join("policies"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (dir, _config) =
        config_with_policy("broken.cedar", "permit(principal, action, resource)\n");
    let bad = policy_check(&dir.path().join("policies"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("broken.cedar"));
}

/// Every `@obligation` is parsed at load: one the gateway cannot enforce refuses the set, for
/// `policy check` and `serve` alike, naming the file, the policy and the obligation.
#[test]
fn an_obligation_the_gateway_cannot_enforce_refuses_the_policy_set() {
    let (dir, config) = config_with_policy(
        "zz-encrypt.cedar",
        "@id(\"needs-encryption\")\n@obligation(\"audit:case-read, encrypt:case\")\npermit(principal in AgentRole::\"drafting-agent\", action == Action::\"call_tool\", resource is Tool) when { resource.name == \"read_case\" };\n",
    );
    let check = policy_check(&dir.path().join("policies"));
    assert!(!check.status.success());
    let refusals = [
        String::from_utf8_lossy(&check.stderr).into_owned(),
        serve_must_refuse(&config),
    ];
    for stderr in refusals {
        for named in ["zz-encrypt.cedar:1:", "needs-encryption", "encrypt:case"] {
            assert!(stderr.contains(named), "{named}: {stderr}");
        }
    }
}

/// A configured checkpoint key that does not exist is never replaced by a new one: a log whose
/// checkpoints suddenly verify under another key would hide tampering.
#[test]
fn a_configured_checkpoint_key_that_is_missing_refuses_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("keys/checkpoint.key");
    let options = GatewayOptions {
        audit: Some(format!("signing_key_file = \"{}\"", missing.display())),
        ..Default::default()
    };
    let config = write_config(dir.path(), 1, &options);
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains("checkpoint.key"), "{stderr}");
    assert!(stderr.contains("capgate audit keygen"), "{stderr}");
    assert!(!missing.exists(), "no key was made in its place");
}
