//! The gateway's configuration as the tests write it: `GatewayOptions` says what differs from
//! the standard test gateway (the case platform behind it, the repo's contracts and policies,
//! the test issuers), and `write_config` lays out the directory and `capgate.toml` for it.

use std::path::{Path, PathBuf};

use super::{fixtures, free_port, repo_root, HS_ISSUER, RS_ISSUER};

/// What differs from the standard test gateway; `Default` is the standard one.
#[derive(Default, Clone)]
pub struct GatewayOptions {
    /// Adds a second downstream, `flaky`: another case-platform with test hooks
    /// (debug_crash, debug_sleep, debug_add_tool) and its own contracts and policy.
    pub with_flaky: bool,
    pub flaky_timeout_ms: Option<u64>,
    /// The only MCP revision `flaky` speaks (`CASE_PLATFORM_PROTOCOL`): with `2026-07-28` it
    /// refuses `initialize` and asks for input as multi round-trip requests.
    pub flaky_protocol: Option<&'static str>,
    /// The case platform's call timeout (default 10 s).
    pub case_timeout_ms: Option<u64>,
    /// Extra policy files (name, text) added to a copy of the repo's policies.
    pub extra_policies: Vec<(String, String)>,
    /// Starts the admin API on its own port (every test gateway has it; kept for the tests
    /// that say so): tenant admins hold `capgate-admin`, platform admins
    /// `capgate-platform-admin`.
    pub admin: bool,
    /// Agents get the audience-safe reason instead of the detailed one.
    pub safe_explanations: bool,
    /// An `[enforcement]` table body (budgets, idempotency retention).
    pub enforcement: Option<String>,
    /// A `[limits]` table body (connections, sessions, rates).
    pub limits: Option<String>,
    /// An `[audit]` table body (dry-run scopes, argument masking).
    pub audit: Option<String>,
    /// A `[telemetry]` table body (OTLP trace export).
    pub telemetry: Option<String>,
    /// A `[store]` table body (a PostgreSQL store shared by replicas).
    pub store: Option<String>,
    /// `[[issuers]]` tables in place of the test HS256 and RS256 issuers.
    pub issuers: Option<String>,
    /// Other downstreams (and their contracts) in place of the case platform.
    pub downstreams: Option<Downstreams>,
    /// The policies directory gets only the repo's schema and manifest (and `extra_policies`),
    /// none of its policies or scenarios; the admin policy set is copied whole, so that the
    /// admin API answers as it does everywhere.
    pub bare_policies: bool,
    /// Extra environment for the gateway process.
    pub env: Vec<(String, String)>,
}

/// Downstreams a test brings instead of the case platform.
#[derive(Default, Clone)]
pub struct Downstreams {
    /// Contract files (name, text) for the capabilities directory.
    pub contracts: Vec<(String, String)>,
    /// The `[[downstream]]` tables.
    pub tables: String,
}

/// Copies a directory tree (the repo's policies/ into a test's own, for instance).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// The `[[issuers]]` tables of the standard test gateway: the HS256 issuer (secret from
/// `CAPGATE_TEST_SECRET`) and the RS256 one (the fixture key).
pub fn test_issuers() -> String {
    format!(
        r#"
[[issuers]]
issuer = "{HS_ISSUER}"
algorithm = "HS256"
secret_env = "CAPGATE_TEST_SECRET"

[[issuers]]
issuer = "{RS_ISSUER}"
algorithm = "RS256"
public_key_file = "{rs_key}"
"#,
        rs_key = fixtures().join("test-rs256-public.pem").display(),
    )
}

/// Writes a config for a gateway on `port` into `dir` and returns its path.
pub fn write_config(dir: &Path, port: u16, options: &GatewayOptions) -> PathBuf {
    let capabilities = dir.join("capabilities");
    std::fs::create_dir_all(&capabilities).expect("mkdir");
    match &options.downstreams {
        Some(downstreams) => {
            for (name, text) in &downstreams.contracts {
                std::fs::write(capabilities.join(name), text).expect("write contracts");
            }
        }
        None => {
            std::fs::copy(
                repo_root().join("capabilities/case-platform.toml"),
                capabilities.join("case-platform.toml"),
            )
            .expect("copy contracts");
        }
    }
    let policies = dir.join("policies");
    if options.bare_policies {
        std::fs::create_dir_all(&policies).expect("mkdir");
        for name in ["schema.cedarschema", "manifest.toml"] {
            std::fs::copy(repo_root().join("policies").join(name), policies.join(name))
                .expect("copy schema and manifest");
        }
        copy_dir(&repo_root().join("policies/admin"), &policies.join("admin"));
    } else {
        copy_dir(&repo_root().join("policies"), &policies);
    }
    if options.with_flaky {
        std::fs::copy(
            fixtures().join("capabilities/flaky.toml"),
            capabilities.join("flaky.toml"),
        )
        .expect("copy flaky contracts");
        std::fs::copy(
            fixtures().join("policies/flaky.cedar"),
            policies.join("flaky.cedar"),
        )
        .expect("copy flaky policy");
    }
    for (name, text) in &options.extra_policies {
        std::fs::write(policies.join(name), text).expect("write extra policy");
    }
    let downstream_bin = env!("CARGO_BIN_EXE_case-platform");
    let issuers = options.issuers.clone().unwrap_or_else(test_issuers);
    let downstreams = match &options.downstreams {
        Some(downstreams) => downstreams.tables.clone(),
        None => format!(
            r#"
[[downstream]]
id = "case"
command = "{downstream_bin}"
timeout_ms = {timeout}
env = {{ CASE_PLATFORM_JOURNAL = "{journal}" }}
"#,
            timeout = options.case_timeout_ms.unwrap_or(10_000),
            journal = dir.join("case-journal.jsonl").display(),
        ),
    };
    let mut config = format!(
        r#"
capabilities_dir = "capabilities"
policies_dir = "policies"
data_dir = "data"

[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}/mcp"
explain_to_agent = "detailed"
{issuers}{downstreams}"#
    );
    if options.with_flaky {
        config.push_str(&format!(
            r#"
[[downstream]]
id = "flaky"
command = "{downstream_bin}"
timeout_ms = {timeout}
env = {{ CASE_PLATFORM_JOURNAL = "{journal}", CASE_PLATFORM_TEST_HOOKS = "1"{protocol} }}
"#,
            timeout = options.flaky_timeout_ms.unwrap_or(3000),
            journal = dir.join("flaky-journal.jsonl").display(),
            protocol = options
                .flaky_protocol
                .map(|p| format!(", CASE_PLATFORM_PROTOCOL = \"{p}\""))
                .unwrap_or_default(),
        ));
    }
    if let Some(enforcement) = &options.enforcement {
        // Top-level tables go before the first [[array]] table.
        config = config.replacen(
            "[server]",
            &format!("[enforcement]\n{enforcement}\n\n[server]"),
            1,
        );
    }
    if let Some(limits) = &options.limits {
        config = config.replacen("[server]", &format!("[limits]\n{limits}\n\n[server]"), 1);
    }
    if let Some(audit) = &options.audit {
        config = config.replacen("[server]", &format!("[audit]\n{audit}\n\n[server]"), 1);
    }
    if let Some(telemetry) = &options.telemetry {
        config = config.replacen(
            "[server]",
            &format!("[telemetry]\n{telemetry}\n\n[server]"),
            1,
        );
    }
    if let Some(store) = &options.store {
        config = config.replacen("[server]", &format!("[store]\n{store}\n\n[server]"), 1);
    }
    if options.safe_explanations {
        config = config.replace(
            "explain_to_agent = \"detailed\"",
            "explain_to_agent = \"safe\"",
        );
    }
    let path = dir.join("capgate.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// Adds an admin listener to a written config; returns its base URL.
pub fn add_admin(config: &Path) -> String {
    let port = free_port();
    let mut text = std::fs::read_to_string(config).expect("read config");
    // Top-level tables must precede the first array table, so prepend.
    text = format!(
        "[admin]\nlisten = \"127.0.0.1:{port}\"\nrole = \"capgate-admin\"\nplatform_role = \"capgate-platform-admin\"\n{text}"
    );
    // `[admin]` before top-level keys would swallow them: move the keys above it.
    let (keys, rest): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| {
        l.starts_with("capabilities_dir")
            || l.starts_with("policies_dir")
            || l.starts_with("data_dir")
    });
    std::fs::write(
        config,
        format!("{}\n{}\n", keys.join("\n"), rest.join("\n")),
    )
    .expect("write config");
    format!("http://127.0.0.1:{port}")
}

/// The ports of a checkout copy's two listeners.
pub struct CheckoutPorts {
    /// `[server] listen` (the README's 8080).
    pub mcp: u16,
    /// `[admin] listen` (the README's 8081).
    pub admin: u16,
}

/// Copies what a user has in the checkout into `dir`: `capgate.toml`, `capabilities/` and
/// `policies/`, and no data directory. Only the two listeners' port numbers change (to free
/// ones), so that the copy runs beside anything already on 8080 or 8081.
pub fn copy_checkout(dir: &Path) -> CheckoutPorts {
    let mcp = free_port();
    let admin = std::iter::repeat_with(free_port)
        .find(|port| *port != mcp)
        .expect("the OS hands out more than one free port");
    let ports = CheckoutPorts { mcp, admin };
    let text =
        std::fs::read_to_string(repo_root().join("capgate.toml")).expect("read capgate.toml");
    for address in ["127.0.0.1:8080", "127.0.0.1:8081"] {
        assert!(
            text.contains(address),
            "the checkout's capgate.toml no longer listens on {address}; update copy_checkout"
        );
    }
    let text = text
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ports.mcp))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{}", ports.admin));
    std::fs::write(dir.join("capgate.toml"), text).expect("write capgate.toml");
    copy_dir(&repo_root().join("capabilities"), &dir.join("capabilities"));
    copy_dir(&repo_root().join("policies"), &dir.join("policies"));
    ports
}
