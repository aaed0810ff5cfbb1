//! `capgate admin ...`: the admin API from the command line. The token comes from an
//! environment variable (never a flag, so it stays out of shell history and `ps`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

use super::files::load_config;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Print the admin API's OpenAPI document.
    Openapi,
    /// Policy versions in effect, loaded and shadow.
    Policy,
    /// Validate policies/ and swap them in atomically.
    Reload,
    /// Add or replace relationship entities from a Cedar entity JSON file.
    Relationships {
        file: std::path::PathBuf,
    },
    /// List kill switches that are on.
    KillSwitches,
    /// Flip a kill switch: scope global|tenant|server|tool|agent_role|user, limited to one
    /// tenant with --tenant (tenant admins must name their own), else every tenant.
    Kill {
        #[arg(long)]
        scope: String,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Lift the kill switch of this scope (and tenant).
    Lift {
        #[arg(long)]
        scope: String,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// A run's budget usage (a run of your tenant, or of --tenant for platform admins).
    Budget {
        run: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Approval requests of your tenant.
    Approvals,
    Approve {
        id: String,
    },
    Reject {
        id: String,
    },
    /// Break-glass grants of your tenant.
    Grants,
    /// Open a time-limited break-glass grant (loudly logged).
    BreakGlass {
        #[arg(long)]
        user: String,
        #[arg(long)]
        tool: Option<String>,
        #[arg(long)]
        agent_role: Option<String>,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = 30)]
        minutes: i64,
    },
    /// Revoke a break-glass grant of your tenant (effective on the next request).
    Revoke {
        id: String,
    },
    /// Tool-definition pins and quarantined tools, with what changed (platform admins).
    Tools,
    /// Accept the definition a downstream lists now for a quarantined tool, named by the
    /// digest `capgate admin tools` shows (platform admins).
    AcceptTool {
        #[arg(long)]
        server: String,
        /// The downstream's own name for the tool.
        #[arg(long)]
        tool: String,
        #[arg(long)]
        digest: String,
    },
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for paths and queries.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn scope_body(scope: &str, target: Option<String>, tenant: Option<String>) -> Value {
    let mut body = json!({ "scope": scope });
    if let Some(target) = target {
        body["target"] = json!(target);
    }
    if let Some(tenant) = tenant {
        body["tenant"] = json!(tenant);
    }
    body
}

/// The admin listener's URL: `--url`, else the configuration's `[admin] listen` (`openapi`
/// needs none).
pub fn url(
    config: Option<&PathBuf>,
    url: Option<String>,
    command: &AdminCommand,
) -> anyhow::Result<String> {
    Ok(match (url, command) {
        (Some(url), _) => url,
        (None, AdminCommand::Openapi) => String::new(),
        (None, _) => match load_config(config)?.admin {
            Some(admin) => format!("http://{}", admin.listen),
            None => bail!("no [admin] listener is configured; pass --url"),
        },
    })
}

/// Runs one admin verb against `base_url` with the token in `token_env`.
pub fn run(base_url: &str, token_env: &str, command: AdminCommand) -> anyhow::Result<()> {
    if let AdminCommand::Openapi = command {
        println!(
            "{}",
            serde_json::to_string_pretty(&capgate::server::admin::openapi())?
        );
        return Ok(());
    }
    let token = std::env::var(token_env)
        .with_context(|| format!("export your admin JWT in {token_env}"))?;
    let (method, path, body): (&str, String, Option<Value>) = match command {
        AdminCommand::Openapi => unreachable!("handled above"),
        AdminCommand::Policy => ("GET", "/admin/policy".into(), None),
        AdminCommand::Reload => ("POST", "/admin/policy/reload".into(), None),
        AdminCommand::Relationships { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let entities: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            ("POST", "/admin/relationships".into(), Some(entities))
        }
        AdminCommand::KillSwitches => ("GET", "/admin/kill-switches".into(), None),
        AdminCommand::Kill {
            scope,
            target,
            tenant,
            reason,
        } => {
            let mut body = scope_body(&scope, target, tenant);
            body["reason"] = json!(reason);
            ("POST", "/admin/kill-switches".into(), Some(body))
        }
        AdminCommand::Lift {
            scope,
            target,
            tenant,
        } => (
            "POST",
            "/admin/kill-switches/lift".into(),
            Some(scope_body(&scope, target, tenant)),
        ),
        AdminCommand::Budget { run, tenant } => (
            "GET",
            match tenant {
                Some(tenant) => format!(
                    "/admin/budgets?run={}&tenant={}",
                    query_escape(&run),
                    query_escape(&tenant)
                ),
                None => format!("/admin/budgets?run={}", query_escape(&run)),
            },
            None,
        ),
        AdminCommand::Approvals => ("GET", "/approvals".into(), None),
        AdminCommand::Approve { id } => (
            "POST",
            format!("/approvals/{}/approve", query_escape(&id)),
            None,
        ),
        AdminCommand::Reject { id } => (
            "POST",
            format!("/approvals/{}/reject", query_escape(&id)),
            None,
        ),
        AdminCommand::Revoke { id } => (
            "POST",
            format!("/break-glass/{}/revoke", query_escape(&id)),
            None,
        ),
        AdminCommand::Grants => ("GET", "/break-glass".into(), None),
        AdminCommand::Tools => ("GET", "/admin/tools".into(), None),
        AdminCommand::AcceptTool {
            server,
            tool,
            digest,
        } => (
            "POST",
            "/admin/tools/accept".into(),
            Some(json!({"server": server, "tool": tool, "digest": digest})),
        ),
        AdminCommand::BreakGlass {
            user,
            tool,
            agent_role,
            reason,
            minutes,
        } => (
            "POST",
            "/break-glass".into(),
            Some(json!({"user": user, "tool": tool, "agent_role": agent_role,
                        "reason": reason, "expires_in_seconds": minutes * 60})),
        ),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (status, answer) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", base_url.trim_end_matches('/'));
        let request = match method {
            "GET" => client.get(&url),
            _ => client.post(&url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {url}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        Ok::<_, anyhow::Error>((status, answer))
    })?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if !status.is_success() {
        bail!("the admin API answered {status}");
    }
    Ok(())
}
