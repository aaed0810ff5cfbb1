//! The decision contract: what the PEP asks ([`PolicyRequest`]) and what the PDP answers
//! ([`Decision`]). Both are plain serde types with JSON Schemas (`capgate schema`), so that
//! scenario tests, `policy explain` and the decision log speak the same language as the gateway.
//!
//! Trust: `actor`, `tenant` and `run_id` come from the verified token; `resource` from the
//! capability contract; `entities` are ids the arguments named (what those entities *are* comes
//! from the relationship store); `arguments` are the contract-declared argument values (model
//! controlled, usable only to restrict); `runtime` is capgate's own state.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The protected operations, one Cedar action each.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    DiscoverTool,
    CallTool,
    DiscoverResource,
    ReadResource,
    DiscoverPrompt,
    GetPrompt,
    /// A downstream server asks the client for input (`elicitation/create`) while serving a
    /// tool call: decided on that call's tool, actor and arguments.
    Elicit,
    /// A downstream server asks the client's model for a completion (`sampling/createMessage`)
    /// while serving a tool call: decided like [`Action::Elicit`].
    Sample,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::DiscoverTool,
        Action::CallTool,
        Action::DiscoverResource,
        Action::ReadResource,
        Action::DiscoverPrompt,
        Action::GetPrompt,
        Action::Elicit,
        Action::Sample,
    ];

    /// Whether a policy schema must declare the action. The server-to-client actions came
    /// later: a schema without them still loads, and, since no policy can name an undeclared
    /// action, such requests are denied by default there.
    pub fn required_in_schema(self) -> bool {
        match self {
            Action::DiscoverTool
            | Action::CallTool
            | Action::DiscoverResource
            | Action::ReadResource
            | Action::DiscoverPrompt
            | Action::GetPrompt => true,
            Action::Elicit | Action::Sample => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::DiscoverTool => "discover_tool",
            Action::CallTool => "call_tool",
            Action::DiscoverResource => "discover_resource",
            Action::ReadResource => "read_resource",
            Action::DiscoverPrompt => "discover_prompt",
            Action::GetPrompt => "get_prompt",
            Action::Elicit => "elicit",
            Action::Sample => "sample",
        }
    }

    /// The capability kind this action is about.
    pub fn kind(self) -> CapabilityKind {
        match self {
            Action::DiscoverTool | Action::CallTool | Action::Elicit | Action::Sample => {
                CapabilityKind::Tool
            }
            Action::DiscoverResource | Action::ReadResource => CapabilityKind::Resource,
            Action::DiscoverPrompt | Action::GetPrompt => CapabilityKind::Prompt,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityKind {
    Tool,
    Resource,
    Prompt,
}

impl CapabilityKind {
    /// The Cedar entity type of this kind of capability.
    pub fn entity_type(self) -> &'static str {
        match self {
            CapabilityKind::Tool => "Tool",
            CapabilityKind::Resource => "Resource",
            CapabilityKind::Prompt => "Prompt",
        }
    }

    /// Attributes a request must carry for this kind; a missing one is `require_more_context`.
    pub fn required_attributes(self) -> &'static [&'static str] {
        match self {
            CapabilityKind::Tool => &["server", "name", "effect", "risk", "cost"],
            CapabilityKind::Resource | CapabilityKind::Prompt => &["server", "name", "risk"],
        }
    }
}

/// An attribute value: the few shapes contracts and arguments use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AttributeValue {
    Bool(bool),
    Long(i64),
    String(String),
    Set(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserFacts {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentFacts {
    pub id: String,
    pub role: String,
}

/// The composite actor as the PDP sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorFacts {
    pub user: UserFacts,
    #[serde(default)]
    pub agent: Option<AgentFacts>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub delegation_chain: Vec<String>,
}

/// The capability the request is about, with its contract attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceFacts {
    /// Exposed name (tools, prompts) or URI (resources).
    pub id: String,
    /// Contract attributes: server, name, effect, risk, cost.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Context keys this capability is decided on (the contract's entity bindings). A call that
    /// lacks one of them is `require_more_context`, never decided without it.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// A domain entity named by an argument or URI variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityRef {
    #[serde(rename = "type")]
    pub entity_type: String,
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Decision time, Unix seconds (defaults to now); picks the effective policy version.
    #[serde(default)]
    pub now: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskContext {
    #[serde(default)]
    pub score: Option<i64>,
    #[serde(default)]
    pub signals: Vec<String>,
}

/// The workflow node of a run that is at none. The gateway always states the node (and the
/// risk score), so that a policy can tell "no workflow" from "unknown".
pub const NO_WORKFLOW_NODE: &str = "none";

/// capgate's own state about the run, never taken from the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeContext {
    #[serde(default)]
    pub budget_remaining: Option<i64>,
    #[serde(default)]
    pub pending_approvals: Option<i64>,
    #[serde(default)]
    pub workflow_node: Option<String>,
    /// An approval bound to this exact call exists and is valid.
    #[serde(default)]
    pub approval_granted: Option<bool>,
}

/// One question to the PDP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    #[serde(default)]
    pub request_id: String,
    /// The actor's tenant (from the token). Required: absent means `require_more_context`.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    pub actor: ActorFacts,
    pub action: Action,
    pub resource: ResourceFacts,
    /// Context key → the entity an argument names, e.g. `case` → `Case::"case-101"`.
    #[serde(default)]
    pub entities: BTreeMap<String, EntityRef>,
    /// Contract-declared argument values (model-controlled: use them to restrict only).
    #[serde(default)]
    pub arguments: BTreeMap<String, AttributeValue>,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub risk: RiskContext,
    #[serde(default)]
    pub runtime: RuntimeContext,
}

impl ActorFacts {
    /// "drafting-agent (agent d-7) for user alice".
    pub fn describe(&self) -> String {
        match &self.agent {
            Some(agent) if agent.id == agent.role => {
                format!("{} for user {}", agent.role, self.user.id)
            }
            Some(agent) => format!(
                "{} (agent {}) for user {}",
                agent.role, agent.id, self.user.id
            ),
            None => format!("user {}", self.user.id),
        }
    }
}

/// The four outcomes. Exhaustive: every enforcement point must handle each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    Deny,
    RequireApproval,
    RequireMoreContext,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::RequireApproval => "require_approval",
            Outcome::RequireMoreContext => "require_more_context",
        }
    }
}

/// How the candidate (shadow) policy set decided the same request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShadowDecision {
    pub policy_version: String,
    pub outcome: Outcome,
    pub policy_ids: Vec<String>,
    /// Whether the shadow outcome or obligations differ from the enforced decision.
    pub differs: bool,
}

/// The PDP's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    pub outcome: Outcome,
    /// Obligations the PEP must enforce, or else deny (`redact:ssn`, `audit:notice`, ...).
    pub obligations: Vec<String>,
    /// Guidance from the determining policies (`@advice`), safe to show the agent.
    pub advice: Vec<String>,
    /// Specific reason for logs and admins: who, what, which policy, what was missing.
    pub reason: String,
    /// Reason safe for the agent: no policy internals, no other tenant's data.
    pub agent_reason: String,
    /// The policy that decided (the first determining one), if any.
    pub policy_id: Option<String>,
    /// Every determining policy (permits on allow, forbids otherwise).
    pub policy_ids: Vec<String>,
    /// `<policy set id>@<version>`.
    pub policy_version: String,
    /// What is missing, for `require_more_context`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Who may approve, for `require_approval` (from the deciding policy's `@approver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_role: Option<String>,
    /// Whether a break-glass grant may turn this refusal into an allow. Never for an allow, for
    /// `require_more_context`, for a request that could not be built, nor when a forbid marked
    /// `@break_glass("never")` (tenant isolation) matched or could not be evaluated.
    #[serde(default)]
    pub break_glass_may_override: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowDecision>,
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        self.outcome == Outcome::Allow
    }
}

/// JSON Schemas of the contract types, for `capgate schema`.
pub fn json_schemas() -> serde_json::Value {
    serde_json::json!({
        "PolicyRequest": schemars::schema_for!(PolicyRequest),
        "Decision": schemars::schema_for!(Decision),
    })
}
