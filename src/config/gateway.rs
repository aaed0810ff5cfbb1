//! The whole configuration ([`GatewayConfig`]): reading the file, then checking it table by table
//! in a fixed order, so that the first problem found is the one reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::audit::AuditConfig;
use super::console::ConsoleConfig;
use super::downstreams::{parse_downstreams, DownstreamConfig, RawDownstream};
use super::enforcement::EnforcementConfig;
use super::error::ConfigError;
use super::issuers::{parse_issuers, IssuerConfig, RawIssuer};
use super::limits::LimitsConfig;
use super::server::{parse_admin, parse_server, AdminConfig, RawAdmin, RawServer, ServerConfig};
use super::store::{parse_store, RawStore, StoreConfig};

/// The configuration a command runs on when it is given no `--config` and the current directory
/// has no `capgate.toml`: the example case platform, the example policies, a dev-only issuer and
/// the admin API. Its relative paths resolve against the current directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../capgate.toml");

/// The whole gateway configuration, validated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where the configuration came from (a path, or `<embedded default>`), for messages.
    pub source: String,
    pub server: ServerConfig,
    pub issuers: Vec<IssuerConfig>,
    pub downstreams: Vec<DownstreamConfig>,
    pub capabilities_dir: PathBuf,
    pub policies_dir: PathBuf,
    /// A candidate policy set evaluated beside the enforced one on every decision.
    pub shadow_policies_dir: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// The admin API's separate listener, when configured.
    pub admin: Option<AdminConfig>,
    /// OTLP trace export; off unless `[telemetry] otlp_endpoint` is set.
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// Run budgets and idempotency settings.
    pub enforcement: EnforcementConfig,
    /// Connection, session, rate and concurrency limits on the agents' listener.
    pub limits: LimitsConfig,
    /// Decision-log settings: dry-run scopes, argument masking.
    pub audit: AuditConfig,
    /// Where the enforcement state lives: embedded SQLite (default) or PostgreSQL.
    pub store: StoreConfig,
    /// The web console on the admin listener.
    pub console: ConsoleConfig,
}

/// The file as TOML gives it; each table is checked by the module that owns it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    issuers: Vec<RawIssuer>,
    #[serde(default)]
    downstream: Vec<RawDownstream>,
    capabilities_dir: PathBuf,
    policies_dir: PathBuf,
    #[serde(default)]
    shadow_policies_dir: Option<PathBuf>,
    data_dir: PathBuf,
    #[serde(default)]
    admin: Option<RawAdmin>,
    #[serde(default)]
    telemetry: crate::telemetry::TelemetryTable,
    #[serde(default)]
    enforcement: EnforcementConfig,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    audit: AuditConfig,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    console: ConsoleConfig,
}

impl GatewayConfig {
    /// Loads and validates a configuration file; relative paths resolve against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: source.clone(),
            key: "(file)".into(),
            problem: format!("cannot read the file: {e}"),
            fix: "pass an existing, readable file with --config".into(),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&text, &source, base)
    }

    /// The embedded default configuration, resolved against the current directory.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::parse(
            EMBEDDED_DEFAULT,
            "<embedded default capgate.toml>",
            Path::new("."),
        )
    }

    /// Parses configuration text; `source` names it in errors, `base` anchors relative paths.
    pub fn parse(text: &str, source: &str, base: &Path) -> Result<Self, ConfigError> {
        let err = |key: &str, problem: String, fix: &str| ConfigError {
            file: source.to_string(),
            key: key.to_string(),
            problem,
            fix: fix.to_string(),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "(syntax)".into());
            err(
                &key,
                e.message().to_string(),
                "correct the TOML; the config reference is in README.md",
            )
        })?;

        let server = parse_server(raw.server, &err)?;
        raw.limits.check(&err)?;
        raw.console.check(&err)?;
        let issuers = parse_issuers(raw.issuers, &server.public_url, base, &err)?;
        let downstreams = parse_downstreams(raw.downstream, base, &err)?;
        let admin = parse_admin(raw.admin, &err)?;
        let store = parse_store(raw.store, &err)?;

        let telemetry = crate::telemetry::TelemetryConfig::from_table(raw.telemetry)
            .map_err(|e| err(&format!("telemetry.{}", e.key), e.problem, e.fix))?;

        let lease = Duration::from_secs(raw.enforcement.idempotency_lease_seconds.max(0) as u64);
        if let Some(slow) = downstreams.iter().find(|d| d.call_timeout >= lease) {
            return Err(err(
                "enforcement.idempotency_lease_seconds",
                format!(
                    "the lease ({} s) is not longer than downstream `{}`'s call timeout ({} ms): a retry could perform a call that is still running",
                    raw.enforcement.idempotency_lease_seconds,
                    slow.id,
                    slow.call_timeout.as_millis()
                ),
                "make the lease longer than every downstream's timeout_ms",
            ));
        }

        Ok(Self {
            admin,
            telemetry,
            enforcement: raw.enforcement,
            limits: raw.limits,
            console: raw.console,
            store,
            audit: AuditConfig {
                log_file: raw.audit.log_file.as_ref().map(|f| base.join(f)),
                signing_key_file: raw.audit.signing_key_file.as_ref().map(|f| base.join(f)),
                ..raw.audit
            },
            source: source.to_string(),
            server,
            issuers,
            downstreams,
            capabilities_dir: base.join(raw.capabilities_dir),
            policies_dir: base.join(raw.policies_dir),
            shadow_policies_dir: raw.shadow_policies_dir.map(|d| base.join(d)),
            data_dir: base.join(raw.data_dir),
        })
    }

    /// The RFC 9728 metadata URL for the MCP endpoint: the well-known segment goes between the
    /// origin and the endpoint path.
    pub fn resource_metadata_url(&self) -> String {
        let url = &self.server.public_url;
        match url.find("://").map(|i| i + 3) {
            Some(after_scheme) => {
                let path_start = url[after_scheme..]
                    .find('/')
                    .map(|i| after_scheme + i)
                    .unwrap_or(url.len());
                format!(
                    "{}/.well-known/oauth-protected-resource{}",
                    &url[..path_start],
                    &url[path_start..]
                )
            }
            None => format!("{url}/.well-known/oauth-protected-resource"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
capabilities_dir = "capabilities"
policies_dir = "policies"
data_dir = "data"
[server]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080/mcp"
[[issuers]]
issuer = "https://issuer.example"
algorithm = "HS256"
secret_env = "SECRET"
"#;

    #[test]
    fn minimal_config_parses_with_defaults() {
        let config = GatewayConfig::parse(MINIMAL, "t.toml", Path::new("/base")).expect("valid");
        assert_eq!(config.issuers[0].audience, "http://127.0.0.1:8080/mcp");
        assert_eq!(config.policies_dir, Path::new("/base/policies"));
        assert_eq!(
            config.resource_metadata_url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let text = format!("{MINIMAL}\nbogus = 1\n");
        let e = GatewayConfig::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("t.toml"), "{message}");
        assert!(message.contains("line"), "{message}");
        assert!(message.contains("bogus"), "{message}");
    }

    #[test]
    fn algorithm_must_fit_key_kind() {
        let text = MINIMAL.replace("\"HS256\"", "\"RS256\"");
        let e = GatewayConfig::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.key, "issuers[0].algorithm");
    }

    #[test]
    fn downstream_needs_exactly_one_transport() {
        let text = format!("{MINIMAL}\n[[downstream]]\nid = \"case\"\n");
        let e = GatewayConfig::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.key, "downstream[0]");
        let text = format!("{MINIMAL}\n[[downstream]]\nid = \"Bad__id\"\ncommand = \"x\"\n");
        let e = GatewayConfig::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.key, "downstream[0].id");
    }

    #[test]
    fn worker_threads_are_as_configured_or_one_fewer_than_the_cores() {
        // [server] line | workers, or the key of the refusal
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let table: [(&str, Result<usize, &str>); 5] = [
            ("", Ok(cores.saturating_sub(1).max(1))),
            ("worker_threads = 1", Ok(1)),
            ("worker_threads = 6", Ok(6)),
            ("worker_threads = 0", Err("server.worker_threads")),
            ("worker_threads = 100000", Err("server.worker_threads")),
        ];
        for (line, expected) in table {
            let text = MINIMAL.replace(
                "public_url = \"http://127.0.0.1:8080/mcp\"",
                &format!("public_url = \"http://127.0.0.1:8080/mcp\"\n{line}"),
            );
            let parsed = GatewayConfig::parse(&text, "t.toml", Path::new("."));
            match (parsed, expected) {
                (Ok(config), Ok(workers)) => {
                    assert_eq!(config.server.runtime_workers(), workers, "{line}")
                }
                (Err(e), Err(key)) => assert_eq!(e.key, key, "{line}"),
                (Ok(_), Err(key)) => panic!("{line}: accepted, {key} expected"),
                (Err(e), Ok(_)) => panic!("{line}: refused: {e}"),
            }
        }
    }

    #[test]
    fn a_downstreams_protocol_is_auto_unless_one_revision_is_named() {
        use crate::config::DownstreamProtocol;
        // protocol line | revision spoken
        let table = [
            ("", DownstreamProtocol::Auto),
            ("protocol = \"auto\"\n", DownstreamProtocol::Auto),
            ("protocol = \"2025-11-25\"\n", DownstreamProtocol::Sessions),
            ("protocol = \"2026-07-28\"\n", DownstreamProtocol::Discover),
        ];
        for (line, expected) in table {
            let text = format!("{MINIMAL}\n[[downstream]]\nid = \"case\"\ncommand = \"x\"\n{line}");
            let config = GatewayConfig::parse(&text, "t.toml", Path::new(".")).expect(line);
            assert_eq!(config.downstreams[0].protocol, expected, "{line}");
        }
        let text = format!(
            "{MINIMAL}\n[[downstream]]\nid = \"case\"\ncommand = \"x\"\nprotocol = \"2024-11-05\"\n"
        );
        let e = GatewayConfig::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.key, "downstream[0].protocol");
        assert!(e.to_string().contains("2024-11-05"), "{e}");
    }

    #[test]
    fn telemetry_is_off_without_an_endpoint_and_checked_with_one() {
        let config = GatewayConfig::parse(MINIMAL, "t.toml", Path::new(".")).expect("valid");
        assert_eq!(config.telemetry.otlp, None);
        let text = MINIMAL.replacen(
            "[server]",
            "[telemetry]\notlp_endpoint = \"localhost:4318\"\n[server]",
            1,
        );
        let e = GatewayConfig::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.key, "telemetry.otlp_endpoint");
    }
}
