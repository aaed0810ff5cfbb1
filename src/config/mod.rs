//! The gateway's configuration file (`capgate.toml`).
//!
//! Parsing happens once, at start: every later module receives typed, validated values. A bad
//! configuration is refused with a [`ConfigError`] that names the file, the key and the fix, so an
//! operator never has to guess why the gateway would not start.

mod enforcement;

pub use enforcement::{EnforcementConfig, WithoutRunId};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The configuration the gateway runs on when `serve` is given no `--config`: the example
/// case platform, the example policies, and a dev-only issuer. Its relative paths resolve against
/// the current directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../capgate.toml");

/// A configuration problem, phrased so that the operator can fix it without reading code.
#[derive(Debug, thiserror::Error)]
#[error("config error in {file}: `{key}`: {problem}. Fix: {fix}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
    pub fix: String,
}

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
    /// Decision-log settings: dry-run scopes, argument masking.
    pub audit: AuditConfig,
}

/// The `[audit]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Decide and log as if enforcing, but let refused calls through, marked dry-run:
    /// the whole gateway.
    pub dry_run: bool,
    /// ... or only these downstream servers.
    pub dry_run_servers: Vec<String>,
    /// ... or only these exposed tools.
    pub dry_run_tools: Vec<String>,
    /// Argument names whose values are masked in every record before it is written.
    pub mask_arguments: Vec<String>,
    /// The decision log's database file; default `<data_dir>/audit.db`. Put it on its own disk
    /// to keep it apart from the enforcement store.
    pub log_file: Option<PathBuf>,
    /// The Ed25519 key (32-byte seed, hex) that signs checkpoints; default
    /// `<data_dir>/audit-signing.key`, generated on first start. A configured file must exist
    /// (`capgate audit keygen` makes one): a missing key is never replaced silently.
    pub signing_key_file: Option<PathBuf>,
    /// Which allowed calls wait for their record to be durable before they are forwarded (and
    /// are refused when it cannot be written).
    pub durable_for: DurableFor,
    /// Sign a checkpoint every this many records (default 64)...
    pub checkpoint_every_records: Option<u32>,
    /// ... and over the last record when it has waited this long unsigned (default 5).
    pub checkpoint_interval_seconds: Option<u32>,
}

/// `[audit] durable_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurableFor {
    /// Side-effecting calls (the default): reads are logged without waiting.
    #[default]
    SideEffects,
    /// Every call, reads too: nothing is forwarded that the log cannot account for.
    EveryCall,
}

impl AuditConfig {
    /// When checkpoints are signed.
    pub fn checkpoints(&self) -> crate::audit::CheckpointPolicy {
        let default = crate::audit::CheckpointPolicy::default();
        crate::audit::CheckpointPolicy {
            every: self
                .checkpoint_every_records
                .map(i64::from)
                .unwrap_or(default.every),
            interval: self
                .checkpoint_interval_seconds
                .map(|s| Duration::from_secs(s.into()))
                .unwrap_or(default.interval),
        }
    }

    /// The decision log's file under this configuration.
    pub fn log_path(&self, data_dir: &Path) -> PathBuf {
        self.log_file
            .clone()
            .unwrap_or_else(|| crate::audit::log_path(data_dir))
    }

    /// The checkpoint key's file, and whether it may be generated when missing (only the
    /// default one may).
    pub fn signing_key_path(&self, data_dir: &Path) -> (PathBuf, bool) {
        match &self.signing_key_file {
            Some(path) => (path.clone(), false),
            None => (data_dir.join(crate::audit::SIGNING_KEY_FILE), true),
        }
    }

    pub fn dry_run_for(&self, server: &str, tool: &str) -> bool {
        self.dry_run
            || self.dry_run_servers.iter().any(|s| s == server)
            || self.dry_run_tools.iter().any(|t| t == tool)
    }
}

/// The admin API: a separate listener; callers need a valid token whose user holds `role` and
/// that no agent acts on (admins are people).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: std::net::SocketAddr,
    pub role: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: std::net::SocketAddr,
    /// The MCP endpoint's public URL: the default token audience and the RFC 9728 `resource`.
    pub public_url: String,
    /// Host names accepted in the `Host` header (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// What refused agents are told (admins see the specific reason in the log either way).
    pub explain_to_agent: AgentExplanations,
}

/// How much of a decision's reasoning an agent sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentExplanations {
    /// The outcome, the advice and what context is missing: no policy ids or internals.
    #[default]
    Safe,
    /// The specific reason with policy ids and version, as admins see it (development).
    Detailed,
}

/// The JWS algorithm an issuer is pinned to. `none` cannot be expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PinnedAlgorithm {
    HS256,
    RS256,
    ES256,
    EdDSA,
}

/// Where an issuer's verification key comes from.
#[derive(Debug, Clone)]
pub enum IssuerKey {
    /// HS256 shared secret read from an environment variable.
    SecretEnv(String),
    /// HS256 shared secret in a file; `generate` creates it when missing (dev issuers only).
    SecretFile { path: PathBuf, generate: bool },
    /// A PEM public key (RS256, ES256, EdDSA).
    PublicKeyFile(PathBuf),
    /// A JWKS document on disk; the token's `kid` selects the key.
    JwksFile(PathBuf),
}

/// Which token claims carry which part of the composite actor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub tenant: String,
    pub roles: String,
    pub scope: String,
    pub run_id: String,
    /// `act` reads the agent from the RFC 8693 actor claim; any other name reads a string claim.
    pub agent: String,
    /// Claim (inside `act`, or top level) holding the agent's role; defaults to the agent id.
    pub agent_role: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            tenant: "tenant".into(),
            roles: "roles".into(),
            scope: "scope".into(),
            run_id: "run_id".into(),
            agent: "act".into(),
            agent_role: "agent_role".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub issuer: String,
    pub audience: String,
    pub algorithm: PinnedAlgorithm,
    pub key: IssuerKey,
    pub claims: ClaimMapping,
    /// Dev issuers may mint tokens with `capgate token`; never enable for a production issuer.
    pub dev: bool,
    pub leeway: Duration,
}

#[derive(Debug, Clone)]
pub enum DownstreamTransport {
    Stdio {
        command: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    /// Streamable HTTP with the gateway's own credential (never the agent's token).
    Http {
        url: String,
        credential_env: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct DownstreamConfig {
    pub id: String,
    pub transport: DownstreamTransport,
    pub call_timeout: Duration,
}

// ---- raw TOML shapes -------------------------------------------------------------------------

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
    audit: AuditConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: String,
    #[serde(default = "default_admin_role")]
    role: String,
}

fn default_admin_role() -> String {
    "capgate-admin".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    public_url: String,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    explain_to_agent: AgentExplanations,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    audience: Option<String>,
    algorithm: PinnedAlgorithm,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    public_key_file: Option<PathBuf>,
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    claims: ClaimMapping,
    #[serde(default)]
    dev: bool,
    leeway_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDownstream {
    id: String,
    command: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    url: Option<String>,
    credential_env: Option<String>,
    timeout_ms: Option<u64>,
}

const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const MAX_LEEWAY: Duration = Duration::from_secs(300);

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

        let listen = raw.server.listen.parse().map_err(|e| {
            err(
                "server.listen",
                format!("`{}` is not an address: {e}", raw.server.listen),
                "use host:port, e.g. \"127.0.0.1:8080\"",
            )
        })?;
        let public_url = raw.server.public_url.trim_end_matches('/').to_string();
        let Some(host) = host_of_url(&public_url) else {
            return Err(err(
                "server.public_url",
                format!("`{public_url}` is not an http(s) URL"),
                "use the MCP endpoint's full URL, e.g. \"http://127.0.0.1:8080/mcp\"",
            ));
        };
        let mut allowed_hosts = raw.server.allowed_hosts;
        if allowed_hosts.is_empty() {
            allowed_hosts = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        }
        if !allowed_hosts.iter().any(|h| h == &host) {
            allowed_hosts.push(host);
        }

        let mut issuers = Vec::new();
        for (index, raw_issuer) in raw.issuers.into_iter().enumerate() {
            let key_path = format!("issuers[{index}]");
            let key = issuer_key(&raw_issuer, base)
                .map_err(|(problem, fix)| err(&key_path, problem, fix))?;
            let algorithm_fits = matches!(
                (&key, raw_issuer.algorithm),
                (
                    IssuerKey::SecretEnv(_) | IssuerKey::SecretFile { .. },
                    PinnedAlgorithm::HS256
                ) | (
                    IssuerKey::PublicKeyFile(_) | IssuerKey::JwksFile(_),
                    PinnedAlgorithm::RS256 | PinnedAlgorithm::ES256 | PinnedAlgorithm::EdDSA
                )
            );
            if !algorithm_fits {
                return Err(err(
                    &format!("{key_path}.algorithm"),
                    format!("{:?} does not fit the key kind given", raw_issuer.algorithm),
                    "HS256 takes secret_env or secret_file; RS256/ES256/EdDSA take public_key_file or jwks_file",
                ));
            }
            if matches!(key, IssuerKey::SecretFile { generate: true, .. }) && !raw_issuer.dev {
                return Err(err(
                    &format!("{key_path}.secret_file"),
                    "a generated secret is only allowed for dev issuers".into(),
                    "set dev = true or provision the secret yourself",
                ));
            }
            let leeway = raw_issuer
                .leeway_seconds
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_LEEWAY);
            if leeway > MAX_LEEWAY {
                return Err(err(
                    &format!("{key_path}.leeway_seconds"),
                    format!("{}s is more than a small clock skew", leeway.as_secs()),
                    "use at most 300 seconds",
                ));
            }
            if issuers
                .iter()
                .any(|i: &IssuerConfig| i.issuer == raw_issuer.issuer)
            {
                return Err(err(
                    &format!("{key_path}.issuer"),
                    format!("issuer `{}` is configured twice", raw_issuer.issuer),
                    "keep one entry per issuer",
                ));
            }
            issuers.push(IssuerConfig {
                audience: raw_issuer.audience.unwrap_or_else(|| public_url.clone()),
                issuer: raw_issuer.issuer,
                algorithm: raw_issuer.algorithm,
                key,
                claims: raw_issuer.claims,
                dev: raw_issuer.dev,
                leeway,
            });
        }
        if issuers.is_empty() {
            return Err(err(
                "issuers",
                "no token issuer is configured, so no request could be authenticated".into(),
                "add an [[issuers]] table",
            ));
        }

        let mut downstreams = Vec::new();
        for (index, raw_down) in raw.downstream.into_iter().enumerate() {
            let key_path = format!("downstream[{index}]");
            if !is_valid_server_id(&raw_down.id) {
                return Err(err(
                    &format!("{key_path}.id"),
                    format!("`{}` is not a valid server id", raw_down.id),
                    "use 1-32 characters of [a-z0-9-], starting with a letter (it prefixes exposed tool names)",
                ));
            }
            if downstreams
                .iter()
                .any(|d: &DownstreamConfig| d.id == raw_down.id)
            {
                return Err(err(
                    &format!("{key_path}.id"),
                    format!("server id `{}` is used twice", raw_down.id),
                    "give each downstream server its own id",
                ));
            }
            let transport = match (raw_down.command, raw_down.url) {
                (Some(command), None) => DownstreamTransport::Stdio {
                    command: resolve_command(&command, base),
                    args: raw_down.args,
                    env: raw_down.env,
                },
                (None, Some(url)) => {
                    if host_of_url(&url).is_none() {
                        return Err(err(
                            &format!("{key_path}.url"),
                            format!("`{url}` is not an http(s) URL"),
                            "use the downstream's streamable HTTP endpoint URL",
                        ));
                    }
                    DownstreamTransport::Http {
                        url,
                        credential_env: raw_down.credential_env,
                    }
                }
                _ => {
                    return Err(err(
                        &key_path,
                        "a downstream needs exactly one of `command` (stdio) or `url` (streamable HTTP)".into(),
                        "set command = \"...\" or url = \"...\", not both",
                    ))
                }
            };
            let call_timeout = raw_down
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_CALL_TIMEOUT);
            if call_timeout.is_zero() {
                return Err(err(
                    &format!("{key_path}.timeout_ms"),
                    "a zero timeout would fail every call".into(),
                    "use a positive number of milliseconds",
                ));
            }
            downstreams.push(DownstreamConfig {
                id: raw_down.id,
                transport,
                call_timeout,
            });
        }

        let admin = match raw.admin {
            None => None,
            Some(admin) => Some(AdminConfig {
                listen: admin.listen.parse().map_err(|e| {
                    err(
                        "admin.listen",
                        format!("`{}` is not an address: {e}", admin.listen),
                        "use host:port, e.g. \"127.0.0.1:8081\"",
                    )
                })?,
                role: admin.role,
            }),
        };

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
            audit: AuditConfig {
                log_file: raw.audit.log_file.as_ref().map(|f| base.join(f)),
                signing_key_file: raw.audit.signing_key_file.as_ref().map(|f| base.join(f)),
                ..raw.audit
            },
            source: source.to_string(),
            server: ServerConfig {
                listen,
                public_url,
                allowed_hosts,
                explain_to_agent: raw.server.explain_to_agent,
            },
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

fn issuer_key(raw: &RawIssuer, base: &Path) -> Result<IssuerKey, (String, &'static str)> {
    let given = [
        raw.secret_env.is_some(),
        raw.secret_file.is_some(),
        raw.public_key_file.is_some(),
        raw.jwks_file.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err((
            format!("issuer `{}` names {given} keys", raw.issuer),
            "give exactly one of secret_env, secret_file, public_key_file, jwks_file",
        ));
    }
    if let Some(var) = &raw.secret_env {
        return Ok(IssuerKey::SecretEnv(var.clone()));
    }
    if let Some(path) = &raw.secret_file {
        return Ok(IssuerKey::SecretFile {
            path: base.join(path),
            generate: raw.dev,
        });
    }
    if let Some(path) = &raw.public_key_file {
        return Ok(IssuerKey::PublicKeyFile(base.join(path)));
    }
    match &raw.jwks_file {
        Some(path) => Ok(IssuerKey::JwksFile(base.join(path))),
        None => Err((
            "no key".into(),
            "give one of secret_env, secret_file, public_key_file, jwks_file",
        )),
    }
}

/// A bare command name (no path separator) is looked up beside the running executable first,
/// so `cargo build` output works, then on `PATH`; a path is relative to the config's directory.
fn resolve_command(command: &Path, base: &Path) -> PathBuf {
    if command.components().count() > 1 {
        return base.join(command);
    }
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(command)))
        .filter(|p| p.is_file())
    {
        return sibling;
    }
    command.to_path_buf()
}

fn host_of_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?.to_string()
    } else {
        authority.split(':').next()?.to_string()
    };
    (!host.is_empty()).then_some(host)
}

/// Server ids prefix exposed names (`<id>__<tool>`), so they may not contain `__`.
pub fn is_valid_server_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
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
