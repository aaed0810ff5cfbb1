//! Policy scenario tests (`capgate policy test`), in the spirit of `opa test`: YAML files under
//! `policies/tests/` list requests and the decision each must get. A scenario names an actor, an
//! action, a capability and its arguments; the request is built by the same code the gateway
//! uses on every call (`enforce::tool_request` and friends), so contract bindings are tested too.
//!
//! The admin policy set has scenarios of the same style (`policies/admin/tests/`): an actor, an
//! admin action, the resource it acts on, and the answer.

use std::path::{Path, PathBuf};

use rmcp::model::JsonObject;
use serde::Deserialize;

use crate::enforce::{prompt_request, resource_request, tool_request, Asker};
use crate::policy::contract::{AgentFacts, Environment, RiskContext, RuntimeContext, UserFacts};
use crate::policy::{
    Action, ActorFacts, AdminAction, AdminDecision, AdminOutcome, AdminPolicySet, AdminRequest,
    AdminResource, AdminRoles, CapabilityKind, Decision, Outcome, PolicyEngine, PolicyRequest,
};
use crate::registry::Registry;

/// One scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub scenarios: Vec<Scenario>,
}

/// The actor, briefly: what a token would say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSpec {
    pub user: String,
    pub tenant: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub agent: Option<String>,
    pub agent_role: Option<String>,
    pub service: Option<String>,
    pub run_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub actor: Option<ActorSpec>,
    #[serde(default = "default_action")]
    pub action: Action,
    /// Exposed tool or prompt name, or a resource URI.
    pub capability: Option<String>,
    /// Call arguments (omit for discovery actions).
    pub arguments: Option<JsonObject>,
    #[serde(default)]
    pub runtime: RuntimeContext,
    #[serde(default)]
    pub risk: RiskContext,
    #[serde(default)]
    pub environment: Environment,
    /// A complete request instead of actor + capability.
    pub request: Option<PolicyRequest>,
    pub expect: Expectation,
}

fn default_action() -> Action {
    Action::CallTool
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub outcome: Outcome,
    /// The exact obligations (sorted), when given.
    pub obligations: Option<Vec<String>>,
    /// A policy that must be among the determining ones.
    pub policy: Option<String>,
    /// Fragments that must each appear in some `missing` entry.
    #[serde(default)]
    pub missing: Vec<String>,
    /// Whether a break-glass grant may override the decision, when given.
    pub break_glass: Option<bool>,
}

/// One admin scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminScenarioFile {
    pub scenarios: Vec<AdminScenario>,
}

/// An admin request and the answer it must get. The actor's roles are token roles; the admin
/// roles they map to are the configured ones (by default `capgate-admin` and
/// `capgate-platform-admin`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminScenario {
    pub name: String,
    pub actor: ActorSpec,
    pub action: AdminAction,
    pub resource: AdminResource,
    pub expect: AdminExpectation,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminExpectation {
    pub outcome: AdminOutcome,
    /// A policy that must be among the deciding ones.
    pub policy: Option<String>,
}

/// The result of one scenario, with the decision it got.
#[derive(Debug, Clone)]
pub struct ScenarioResult<D = Decision> {
    pub file: String,
    pub name: String,
    pub failure: Option<String>,
    pub decision: Option<D>,
}

impl ActorSpec {
    pub fn facts(&self) -> ActorFacts {
        let agent = self.agent.as_ref().map(|id| AgentFacts {
            id: id.clone(),
            role: self.agent_role.clone().unwrap_or_else(|| id.clone()),
        });
        let mut chain = vec![self.user.clone()];
        if let Some(agent) = &agent {
            chain.push(agent.id.clone());
        }
        ActorFacts {
            user: UserFacts {
                id: self.user.clone(),
                roles: self.roles.clone(),
                scopes: Vec::new(),
            },
            agent,
            service: self.service.clone(),
            delegation_chain: chain,
        }
    }
}

/// Builds the request a scenario describes, as the gateway would.
pub fn scenario_request(scenario: &Scenario, registry: &Registry) -> Result<PolicyRequest, String> {
    if let Some(request) = &scenario.request {
        return Ok(request.clone());
    }
    let actor = scenario
        .actor
        .as_ref()
        .ok_or("a scenario needs `actor` and `capability`, or a full `request`")?;
    let capability = scenario
        .capability
        .as_deref()
        .ok_or("a scenario needs `capability`")?;
    let facts = actor.facts();
    let asker = Asker {
        facts: &facts,
        tenant: actor.tenant.as_deref().unwrap_or_default(),
        run_id: actor.run_id.as_deref(),
    };
    // Calls always carry arguments (possibly none): only discovery is decided on the contract
    // alone, exactly as in the gateway.
    let no_arguments = JsonObject::new();
    let discovery = matches!(
        scenario.action,
        Action::DiscoverTool | Action::DiscoverResource | Action::DiscoverPrompt
    );
    let arguments = match (&scenario.arguments, discovery) {
        (_, true) => None,
        (Some(arguments), false) => Some(arguments),
        (None, false) => Some(&no_arguments),
    };
    let mut request = match scenario.action.kind() {
        CapabilityKind::Tool => {
            let contract = registry
                .tool(capability)
                .ok_or_else(|| format!("no contract for tool `{capability}`"))?;
            tool_request(asker, scenario.action, contract, arguments).map_err(|e| e.to_string())?
        }
        CapabilityKind::Prompt => {
            let contract = registry
                .prompt(capability)
                .ok_or_else(|| format!("no contract for prompt `{capability}`"))?;
            prompt_request(asker, scenario.action, contract, arguments)
                .map_err(|e| e.to_string())?
        }
        CapabilityKind::Resource => {
            let (contract, variables) = registry
                .resource_for_uri(capability)
                .ok_or_else(|| format!("no resource contract matches `{capability}`"))?;
            resource_request(
                asker,
                scenario.action,
                contract,
                capability,
                Some(&variables),
            )
        }
    };
    if actor.tenant.is_none() {
        request.tenant = None;
    }
    request.request_id = format!("scenario: {}", scenario.name);
    // What the scenario states overrides what the gateway would state.
    let runtime = &scenario.runtime;
    if runtime.budget_remaining.is_some() {
        request.runtime.budget_remaining = runtime.budget_remaining;
    }
    if runtime.pending_approvals.is_some() {
        request.runtime.pending_approvals = runtime.pending_approvals;
    }
    if runtime.workflow_node.is_some() {
        request.runtime.workflow_node = runtime.workflow_node.clone();
    }
    if runtime.approval_granted.is_some() {
        request.runtime.approval_granted = runtime.approval_granted;
    }
    if scenario.risk.score.is_some() {
        request.risk.score = scenario.risk.score;
    }
    if !scenario.risk.signals.is_empty() {
        request.risk.signals = scenario.risk.signals.clone();
    }
    request.environment = scenario.environment.clone();
    Ok(request)
}

fn check(expect: &Expectation, decision: &Decision) -> Option<String> {
    let mut problems = Vec::new();
    if decision.outcome != expect.outcome {
        problems.push(format!(
            "expected {}, got {}",
            expect.outcome.as_str(),
            decision.outcome.as_str()
        ));
    }
    if let Some(obligations) = &expect.obligations {
        let mut expected = obligations.clone();
        expected.sort();
        if expected != decision.obligations {
            problems.push(format!(
                "expected obligations {expected:?}, got {:?}",
                decision.obligations
            ));
        }
    }
    if let Some(policy) = &expect.policy {
        if !decision.policy_ids.contains(policy) {
            problems.push(format!(
                "expected policy `{policy}` to decide, got {:?}",
                decision.policy_ids
            ));
        }
    }
    if let Some(overridable) = expect.break_glass {
        if decision.break_glass_may_override != overridable {
            problems.push(format!(
                "expected break_glass {overridable}, got {}",
                decision.break_glass_may_override
            ));
        }
    }
    for fragment in &expect.missing {
        if !decision
            .missing
            .iter()
            .any(|m| m.contains(fragment.as_str()))
        {
            problems.push(format!(
                "expected missing context `{fragment}`, got {:?}",
                decision.missing
            ));
        }
    }
    (!problems.is_empty()).then(|| format!("{}; reason: {}", problems.join("; "), decision.reason))
}

/// The scenario files in a directory, sorted.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read scenario directory: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Parses one scenario file; errors name the file and line.
pub fn parse_file(path: &Path) -> Result<ScenarioFile, String> {
    parse_yaml(path)
}

fn parse_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse_yaml_text(&text, &path.display().to_string())
}

/// A scenario file's text (capability or admin scenarios); `name` names it in errors.
pub(crate) fn parse_yaml_text<T: serde::de::DeserializeOwned>(
    text: &str,
    name: &str,
) -> Result<T, String> {
    serde_norway::from_str(text).map_err(|e| match e.location() {
        Some(at) => format!("{name}:{}: {e}", at.line()),
        None => format!("{name}: {e}"),
    })
}

fn check_admin(expect: &AdminExpectation, decision: &AdminDecision) -> Option<String> {
    let mut problems = Vec::new();
    if decision.outcome != expect.outcome {
        problems.push(format!(
            "expected {:?}, got {:?}",
            expect.outcome, decision.outcome
        ));
    }
    if let Some(policy) = &expect.policy {
        if !decision.policy_ids.contains(policy) {
            problems.push(format!(
                "expected policy `{policy}` to decide, got {:?}",
                decision.policy_ids
            ));
        }
    }
    (!problems.is_empty()).then(|| format!("{}; reason: {}", problems.join("; "), decision.reason))
}

/// Runs every admin scenario of every file in `dir` against the admin policy set.
pub fn run_admin_dir(
    dir: &Path,
    set: &AdminPolicySet,
    roles: &AdminRoles,
) -> Result<Vec<ScenarioResult<AdminDecision>>, String> {
    let mut results = Vec::new();
    for path in scenario_files(dir)? {
        let file: AdminScenarioFile = parse_yaml(&path)?;
        results.extend(run_admin_file(
            &path.display().to_string(),
            file,
            set,
            roles,
        ));
    }
    Ok(results)
}

/// Runs the admin scenarios of one file (`name` names it in the results).
pub(crate) fn run_admin_file(
    name: &str,
    file: AdminScenarioFile,
    set: &AdminPolicySet,
    roles: &AdminRoles,
) -> Vec<ScenarioResult<AdminDecision>> {
    let mut results = Vec::new();
    for scenario in file.scenarios {
        let Some(tenant) = scenario.actor.tenant.clone() else {
            results.push(ScenarioResult {
                file: name.to_string(),
                name: scenario.name,
                failure: Some("an admin scenario's actor needs a tenant".into()),
                decision: None,
            });
            continue;
        };
        let request = AdminRequest {
            actor: scenario.actor.facts(),
            tenant,
            action: scenario.action,
            resource: scenario.resource,
        };
        let decision = set.decide(&request, roles);
        results.push(ScenarioResult {
            file: name.to_string(),
            name: scenario.name,
            failure: check_admin(&scenario.expect, &decision),
            decision: Some(decision),
        });
    }
    results
}

/// Runs every scenario of every file in `dir`.
pub fn run_dir(
    dir: &Path,
    engine: &PolicyEngine,
    registry: &Registry,
) -> Result<Vec<ScenarioResult>, String> {
    let mut results = Vec::new();
    for path in scenario_files(dir)? {
        let file = parse_file(&path)?;
        results.extend(run_file(
            &path.display().to_string(),
            &file,
            engine,
            registry,
        ));
    }
    Ok(results)
}

/// Runs the scenarios of one file (`name` names it in the results).
pub(crate) fn run_file(
    name: &str,
    file: &ScenarioFile,
    engine: &PolicyEngine,
    registry: &Registry,
) -> Vec<ScenarioResult> {
    file.scenarios
        .iter()
        .map(|scenario| {
            let (failure, decision) = match scenario_request(scenario, registry) {
                Err(problem) => (Some(format!("cannot build the request: {problem}")), None),
                Ok(request) => {
                    let decision = engine.decide(&request);
                    (check(&scenario.expect, &decision), Some(decision))
                }
            };
            ScenarioResult {
                file: name.to_string(),
                name: scenario.name.clone(),
                failure,
                decision,
            }
        })
        .collect()
}
