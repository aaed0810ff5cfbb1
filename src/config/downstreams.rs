//! The `[[downstream]]` tables: the MCP servers behind capgate, each reached over stdio (a command
//! capgate starts) or streamable HTTP, with a call timeout. Server ids prefix exposed names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::server::host_of_url;

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
    /// How its capability names are shown to agents (`<id>__<name>` by default).
    pub naming: crate::registry::Naming,
    /// Which MCP revision capgate speaks to it.
    pub protocol: DownstreamProtocol,
}

/// The MCP revision capgate speaks to a downstream server (`protocol = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamProtocol {
    /// `"auto"` (the default): a 2025-11-25 session (`initialize`), which carries
    /// subscriptions, log levels and `list_changed`; when the server refuses `initialize`, the
    /// 2026-07-28 revision (`server/discover`, per-request `_meta`) on a new connection.
    Auto,
    /// `"2025-11-25"`: sessions only.
    Sessions,
    /// `"2026-07-28"`: `server/discover` only.
    Discover,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDownstream {
    id: String,
    command: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    url: Option<String>,
    credential_env: Option<String>,
    timeout_ms: Option<u64>,
    /// `prefix` (the default) or `none`.
    #[serde(default)]
    namespace: Option<String>,
    /// Between the server id and the name when prefixed; `__` by default.
    #[serde(default)]
    separator: Option<String>,
    /// `auto` (the default), `2025-11-25` or `2026-07-28`.
    #[serde(default)]
    protocol: Option<String>,
}

const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks the `[[downstream]]` tables: valid, distinct ids and exactly one transport each.
pub(super) fn parse_downstreams(
    raw: Vec<RawDownstream>,
    base: &Path,
    err: &impl Fn(&str, String, &str) -> ConfigError,
) -> Result<Vec<DownstreamConfig>, ConfigError> {
    let mut downstreams = Vec::new();
    for (index, raw_down) in raw.into_iter().enumerate() {
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
            _ => return Err(err(
                &key_path,
                "a downstream needs exactly one of `command` (stdio) or `url` (streamable HTTP)"
                    .into(),
                "set command = \"...\" or url = \"...\", not both",
            )),
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
        let naming = match (raw_down.namespace.as_deref(), raw_down.separator) {
            (None | Some("prefix"), None) => crate::registry::Naming::default(),
            (None | Some("prefix"), Some(separator)) => {
                let valid = !separator.is_empty()
                    && separator.len() <= 8
                    && separator
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                if !valid {
                    return Err(err(
                        &format!("{key_path}.separator"),
                        format!("`{separator}` cannot join a server id and a tool name"),
                        "use 1-8 characters of [A-Za-z0-9_.-] (tool names allow no others), e.g. \"__\" or \".\"",
                    ));
                }
                crate::registry::Naming::Prefix { separator }
            }
            (Some("none"), None) => crate::registry::Naming::Unprefixed,
            (Some("none"), Some(_)) => {
                return Err(err(
                    &format!("{key_path}.separator"),
                    "a separator without a prefix".into(),
                    "remove `separator`, or use namespace = \"prefix\"",
                ))
            }
            (Some(other), _) => {
                return Err(err(
                    &format!("{key_path}.namespace"),
                    format!("`{other}` is not a namespace"),
                    "use \"prefix\" (names become <id><separator><name>) or \"none\"",
                ))
            }
        };
        let protocol = match raw_down.protocol.as_deref() {
            None | Some("auto") => DownstreamProtocol::Auto,
            Some("2025-11-25") => DownstreamProtocol::Sessions,
            Some("2026-07-28") => DownstreamProtocol::Discover,
            Some(other) => return Err(err(
                &format!("{key_path}.protocol"),
                format!("`{other}` is not an MCP revision capgate speaks to downstreams"),
                "use \"auto\" (a session, else server/discover), \"2025-11-25\" or \"2026-07-28\"",
            )),
        };
        downstreams.push(DownstreamConfig {
            id: raw_down.id,
            transport,
            call_timeout,
            naming,
            protocol,
        });
    }
    Ok(downstreams)
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

/// Server ids prefix exposed names (`<id>__<tool>`), so they may not contain `__`.
pub fn is_valid_server_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
