//! What a capability is, according to its contract: its effect, risk and cost, and which of
//! its arguments name which domain entities; and how capabilities and context keys are named.

use serde::{Deserialize, Serialize};

use super::uri_template::UriTemplate;

/// Separator between server id and downstream name in exposed names. Server ids cannot
/// contain it (see `config::is_valid_server_id`), so the split is unambiguous.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// What running a capability does to the world. Exhaustive on purpose: a new effect must be
/// decided at every enforcement point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Read,
    Write,
    ExternalSideEffect,
    Irreversible,
    MemoryRead,
    MemoryWrite,
    WorkflowTransition,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Write => "write",
            Effect::ExternalSideEffect => "external_side_effect",
            Effect::Irreversible => "irreversible",
            Effect::MemoryRead => "memory_read",
            Effect::MemoryWrite => "memory_write",
            Effect::WorkflowTransition => "workflow_transition",
        }
    }

    /// Whether a call changes state somewhere (and so needs idempotency and a durable record).
    pub fn is_side_effect(self) -> bool {
        match self {
            Effect::Read | Effect::MemoryRead => false,
            Effect::Write
            | Effect::ExternalSideEffect
            | Effect::Irreversible
            | Effect::MemoryWrite
            | Effect::WorkflowTransition => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }

    /// Ordinal for comparisons in policies (`resource.risk_level >= 2`).
    pub fn level(self) -> i64 {
        match self {
            Risk::Low => 0,
            Risk::Medium => 1,
            Risk::High => 2,
            Risk::Critical => 3,
        }
    }
}

/// One argument (or URI variable) that names a domain entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityBinding {
    /// The argument or URI-template variable that carries the id.
    pub argument: String,
    /// The Cedar entity type it names, e.g. `Case`.
    pub entity_type: String,
    /// The key under which the entity reaches policies in `context` (`Case` → `case`).
    pub context_key: String,
}

#[derive(Debug, Clone)]
pub struct ToolContract {
    pub server: String,
    /// The downstream's own name for the tool.
    pub name: String,
    /// The name agents see: `<server>__<name>`.
    pub exposed_name: String,
    pub effect: Effect,
    pub risk: Risk,
    pub cost: u32,
    pub entities: Vec<EntityBinding>,
    /// Arguments whose values reach policies as `context.arguments.<name>` (ABAC on arguments).
    pub attributes: Vec<String>,
    /// A low-risk read that may pass, degraded and audited, when the enforcement store is down.
    pub fail_open: bool,
    /// The definition digest pinned in the contract file; without one the store pins the
    /// definition first seen.
    pub pin: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ResourceContract {
    pub server: String,
    pub name: String,
    /// The name kill switches, grants and budgets use: `<server>__<name>`.
    pub exposed_name: String,
    pub template: UriTemplate,
    pub risk: Risk,
    /// What one read costs the run's budget.
    pub cost: u32,
    pub entities: Vec<EntityBinding>,
    /// A low-risk read that may pass, degraded and audited, when the enforcement store is down.
    pub fail_open: bool,
}

#[derive(Debug, Clone)]
pub struct PromptContract {
    pub server: String,
    pub name: String,
    pub exposed_name: String,
    pub risk: Risk,
    /// What one `prompts/get` costs the run's budget.
    pub cost: u32,
    pub entities: Vec<EntityBinding>,
    /// A low-risk read that may pass, degraded and audited, when the enforcement store is down.
    pub fail_open: bool,
}

pub fn exposed_name(server: &str, name: &str) -> String {
    Naming::default().expose(server, name)
}

/// How a downstream's capability names are shown to agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// `<server id><separator><name>` (the default separator is `__`).
    Prefix { separator: String },
    /// The downstream's own names; two servers offering one name refuse start.
    Unprefixed,
}

impl Default for Naming {
    fn default() -> Self {
        Naming::Prefix {
            separator: NAMESPACE_SEPARATOR.into(),
        }
    }
}

impl Naming {
    /// The name agents see for `name` of `server`.
    pub fn expose(&self, server: &str, name: &str) -> String {
        match self {
            Naming::Prefix { separator } => format!("{server}{separator}{name}"),
            Naming::Unprefixed => name.to_string(),
        }
    }
}

/// `Case` → `case`, `EvidenceDocument` → `evidence_document`.
pub fn context_key_for(entity_type: &str) -> String {
    let mut key = String::new();
    for (i, c) in entity_type.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                key.push('_');
            }
            key.push(c.to_ascii_lowercase());
        } else {
            key.push(c);
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keys_are_snake_case() {
        assert_eq!(context_key_for("Case"), "case");
        assert_eq!(context_key_for("EvidenceDocument"), "evidence_document");
    }

    #[test]
    fn exposed_names_are_namespaced() {
        assert_eq!(exposed_name("case", "read_case"), "case__read_case");
    }
}
