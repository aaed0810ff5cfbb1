//! Tool grants: which agent was granted which tool, and by whom.

use serde_json::json;

use super::error::{require_text, DomainResult};
use super::model::{Actor, Grant};
use super::platform::Platform;

impl Platform {
    /// `grant_tool_access`: records a grant of `tool` to `agent`.
    pub fn grant_tool_access(&mut self, actor: &Actor, agent: &str, tool: &str) -> DomainResult {
        require_text("agent", agent)?;
        require_text("tool", tool)?;
        let grant = Grant {
            id: self.mint("grant"),
            agent: agent.to_owned(),
            tool: tool.to_owned(),
            granted_by: actor.user.clone(),
        };
        let out = json!({ "grant": grant });
        self.tenant_mut(&actor.tenant).grants.push(grant);
        Ok(out)
    }
}
