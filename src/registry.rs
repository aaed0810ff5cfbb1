//! Capability contracts: what each downstream tool, resource and prompt *is*, according to the
//! platform team that registered it in `capabilities/*.toml` (one file per downstream server).
//!
//! The contract, not the downstream's self-description, is the source of truth: its effect, risk
//! and cost feed the policy decision, and its entity bindings say which arguments name which
//! domain entities (`case_id → Case`). A downstream capability without a contract is never
//! exposed. Exposed tool and prompt names are namespaced `<server>__<name>`, so two servers can
//! neither collide nor shadow each other.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

/// A registry problem, naming the capabilities file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("capabilities error in {file}: {problem}. Fix: {fix}")]
pub struct RegistryError {
    pub file: String,
    pub problem: String,
    pub fix: String,
}

/// Every contract, indexed for the per-call path.
#[derive(Debug, Default)]
pub struct Registry {
    tools: HashMap<String, Arc<ToolContract>>,
    tools_by_downstream: HashMap<(String, String), Arc<ToolContract>>,
    prompts: HashMap<String, Arc<PromptContract>>,
    prompts_by_downstream: HashMap<(String, String), Arc<PromptContract>>,
    resources: Vec<Arc<ResourceContract>>,
}

// ---- file format ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    server: String,
    #[serde(default)]
    tools: BTreeMap<String, RawTool>,
    #[serde(default)]
    resources: Vec<RawResource>,
    #[serde(default)]
    prompts: BTreeMap<String, RawPrompt>,
}

/// An entity binding: `case_id = "Case"` (context key derived from the type), or
/// `tenant = { type = "Tenant", key = "uri_tenant" }` (explicit context key).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawBinding {
    Type(String),
    Detailed {
        #[serde(rename = "type")]
        entity_type: String,
        key: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    effect: Effect,
    risk: Risk,
    #[serde(default = "default_cost")]
    cost: u32,
    #[serde(default)]
    entities: BTreeMap<String, RawBinding>,
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    name: String,
    uri_template: String,
    risk: Risk,
    #[serde(default = "default_cost")]
    cost: u32,
    #[serde(default)]
    entities: BTreeMap<String, RawBinding>,
    #[serde(default)]
    fail_open: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrompt {
    risk: Risk,
    #[serde(default = "default_cost")]
    cost: u32,
    #[serde(default)]
    entities: BTreeMap<String, RawBinding>,
    #[serde(default)]
    fail_open: bool,
}

fn default_cost() -> u32 {
    1
}

/// Only low-risk reads may fail open (resources and prompts are reads).
fn check_fail_open(
    file: &str,
    name: &str,
    fail_open: bool,
    risk: Risk,
) -> Result<(), RegistryError> {
    if fail_open && risk != Risk::Low {
        return Err(RegistryError {
            file: file.into(),
            problem: format!("`{name}` is fail_open but not low-risk"),
            fix: "only risk = \"low\" reads may fail open".into(),
        });
    }
    Ok(())
}

impl Registry {
    /// Loads every `*.toml` in `dir`. `known_servers` are the configured downstream ids: a
    /// contract for an unknown server, or two files for one server, refuse start. Tools that
    /// only read contracts (policy tests) pass `None`.
    pub fn load(dir: &Path, known_servers: Option<&[String]>) -> Result<Self, RegistryError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| RegistryError {
                file: dir.display().to_string(),
                problem: format!("cannot read the capabilities directory: {e}"),
                fix: "set capabilities_dir to a directory of <server>.toml contracts".into(),
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        let mut registry = Registry::default();
        let mut seen_servers: HashMap<String, String> = HashMap::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| RegistryError {
                file: file.display().to_string(),
                problem: format!("cannot read: {e}"),
                fix: "make the file readable".into(),
            })?;
            let name = file.display().to_string();
            let raw: RawFile = toml::from_str(&text).map_err(|e| {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                RegistryError {
                    file: match line {
                        Some(line) => format!("{name}:{line}"),
                        None => name.clone(),
                    },
                    problem: e.message().to_string(),
                    fix: "correct the contract; see capabilities/case-platform.toml".into(),
                }
            })?;
            if known_servers.is_some_and(|known| !known.contains(&raw.server)) {
                return Err(RegistryError {
                    file: name,
                    problem: format!("server `{}` is not a configured downstream", raw.server),
                    fix: "add a [[downstream]] with this id to the config, or fix `server`".into(),
                });
            }
            if let Some(previous) = seen_servers.insert(raw.server.clone(), name.clone()) {
                return Err(RegistryError {
                    file: name,
                    problem: format!(
                        "server `{}` already has contracts in {previous}",
                        raw.server
                    ),
                    fix: "keep one capabilities file per downstream server".into(),
                });
            }
            registry.add_file(&name, raw)?;
        }
        Ok(registry)
    }

    fn add_file(&mut self, file: &str, raw: RawFile) -> Result<(), RegistryError> {
        let server = raw.server;
        for (name, tool) in raw.tools {
            check_capability_name(file, &name)?;
            if tool.fail_open && (tool.effect != Effect::Read || tool.risk != Risk::Low) {
                return Err(RegistryError {
                    file: file.into(),
                    problem: format!("`{name}` is fail_open but not a low-risk read"),
                    fix: "only effect = \"read\", risk = \"low\" tools may fail open".into(),
                });
            }
            let contract = Arc::new(ToolContract {
                exposed_name: exposed_name(&server, &name),
                entities: bindings(file, &name, tool.entities)?,
                server: server.clone(),
                name: name.clone(),
                effect: tool.effect,
                risk: tool.risk,
                cost: tool.cost,
                attributes: tool.attributes,
                fail_open: tool.fail_open,
            });
            self.tools
                .insert(contract.exposed_name.clone(), contract.clone());
            self.tools_by_downstream
                .insert((server.clone(), name), contract);
        }
        for (name, prompt) in raw.prompts {
            check_capability_name(file, &name)?;
            check_fail_open(file, &name, prompt.fail_open, prompt.risk)?;
            let contract = Arc::new(PromptContract {
                exposed_name: exposed_name(&server, &name),
                entities: bindings(file, &name, prompt.entities)?,
                server: server.clone(),
                name: name.clone(),
                risk: prompt.risk,
                cost: prompt.cost,
                fail_open: prompt.fail_open,
            });
            self.prompts
                .insert(contract.exposed_name.clone(), contract.clone());
            self.prompts_by_downstream
                .insert((server.clone(), name), contract);
        }
        for resource in raw.resources {
            let template =
                UriTemplate::parse(&resource.uri_template).map_err(|problem| RegistryError {
                    file: file.into(),
                    problem: format!("resource `{}`: {problem}", resource.name),
                    fix: "use a URI with {variable} segments, e.g. case://{tenant}/cases/{case_id}"
                        .into(),
                })?;
            if let Some(other) = self
                .resources
                .iter()
                .find(|r| r.template.overlaps(&template))
            {
                return Err(RegistryError {
                    file: file.into(),
                    problem: format!(
                        "resource template `{}` overlaps `{}` of server `{}`",
                        resource.uri_template, other.template.source, other.server
                    ),
                    fix: "give each server's resources a distinct URI scheme or prefix".into(),
                });
            }
            for binding in resource.entities.keys() {
                if !template.variables().any(|v| v == binding) {
                    return Err(RegistryError {
                        file: file.into(),
                        problem: format!(
                            "resource `{}` binds `{binding}`, which its template does not have",
                            resource.name
                        ),
                        fix: "bind only variables of the uri_template".into(),
                    });
                }
            }
            check_fail_open(file, &resource.name, resource.fail_open, resource.risk)?;
            self.resources.push(Arc::new(ResourceContract {
                entities: bindings(file, &resource.name, resource.entities)?,
                exposed_name: exposed_name(&server, &resource.name),
                server: server.clone(),
                name: resource.name,
                template,
                risk: resource.risk,
                cost: resource.cost,
                fail_open: resource.fail_open,
            }));
        }
        Ok(())
    }

    /// The contract behind an exposed tool name.
    pub fn tool(&self, exposed_name: &str) -> Option<&Arc<ToolContract>> {
        self.tools.get(exposed_name)
    }

    /// The contract for a downstream's tool, if the platform team registered one.
    pub fn tool_of(&self, server: &str, name: &str) -> Option<&Arc<ToolContract>> {
        self.tools_by_downstream
            .get(&(server.to_string(), name.to_string()))
    }

    pub fn prompt(&self, exposed_name: &str) -> Option<&Arc<PromptContract>> {
        self.prompts.get(exposed_name)
    }

    pub fn prompt_of(&self, server: &str, name: &str) -> Option<&Arc<PromptContract>> {
        self.prompts_by_downstream
            .get(&(server.to_string(), name.to_string()))
    }

    /// The resource contract whose template matches `uri`, with the variables it captured.
    pub fn resource_for_uri(
        &self,
        uri: &str,
    ) -> Option<(&Arc<ResourceContract>, HashMap<String, String>)> {
        self.resources
            .iter()
            .find_map(|r| r.template.capture(uri).map(|vars| (r, vars)))
    }

    /// The resource contracts of one server (for listing its templates).
    pub fn resources_of<'a>(
        &'a self,
        server: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceContract>> + 'a {
        self.resources.iter().filter(move |r| r.server == server)
    }

    pub fn tools(&self) -> impl Iterator<Item = &Arc<ToolContract>> {
        self.tools.values()
    }

    pub fn prompts(&self) -> impl Iterator<Item = &Arc<PromptContract>> {
        self.prompts.values()
    }

    pub fn resources(&self) -> impl Iterator<Item = &Arc<ResourceContract>> {
        self.resources.iter()
    }

    /// Every entity type any contract binds (checked against the policy schema at start).
    pub fn bound_entity_types(&self) -> impl Iterator<Item = (&str, &EntityBinding)> {
        let tools = self
            .tools
            .values()
            .flat_map(|t| t.entities.iter().map(move |b| (t.exposed_name.as_str(), b)));
        let prompts = self
            .prompts
            .values()
            .flat_map(|p| p.entities.iter().map(move |b| (p.exposed_name.as_str(), b)));
        let resources = self
            .resources
            .iter()
            .flat_map(|r| r.entities.iter().map(move |b| (r.name.as_str(), b)));
        tools.chain(prompts).chain(resources)
    }
}

pub fn exposed_name(server: &str, name: &str) -> String {
    format!("{server}{NAMESPACE_SEPARATOR}{name}")
}

fn check_capability_name(file: &str, name: &str) -> Result<(), RegistryError> {
    let valid = !name.is_empty()
        && name.len() <= 90
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(RegistryError {
            file: file.into(),
            problem: format!("`{name}` is not a valid capability name"),
            fix: "use 1-90 characters of [A-Za-z0-9_-]".into(),
        })
    }
}

/// Context keys capgate itself fills; a binding may not shadow them.
const RESERVED_CONTEXT_KEYS: [&str; 8] = [
    "user",
    "tenant",
    "delegation_depth",
    "service",
    "run_id",
    "arguments",
    "risk",
    "runtime",
];

fn bindings(
    file: &str,
    capability: &str,
    raw: BTreeMap<String, RawBinding>,
) -> Result<Vec<EntityBinding>, RegistryError> {
    let mut out: Vec<EntityBinding> = Vec::new();
    for (argument, binding) in raw {
        let (entity_type, explicit_key) = match binding {
            RawBinding::Type(entity_type) => (entity_type, None),
            RawBinding::Detailed { entity_type, key } => (entity_type, Some(key)),
        };
        let valid_type = entity_type
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase())
            && entity_type.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid_type {
            return Err(RegistryError {
                file: file.into(),
                problem: format!("`{capability}`: `{entity_type}` is not an entity type name"),
                fix: "name a Cedar entity type of the policy schema, e.g. Case".into(),
            });
        }
        let context_key = explicit_key.unwrap_or_else(|| context_key_for(&entity_type));
        if RESERVED_CONTEXT_KEYS.contains(&context_key.as_str()) {
            return Err(RegistryError {
                file: file.into(),
                problem: format!("`{capability}` binds `{argument}` to context key `{context_key}`, which capgate fills itself"),
                fix: "give the binding its own key: { type = \"...\", key = \"...\" }".into(),
            });
        }
        if out.iter().any(|b| b.context_key == context_key) {
            return Err(RegistryError {
                file: file.into(),
                problem: format!("`{capability}` binds two arguments to `{entity_type}`"),
                fix: "bind each entity type at most once per capability".into(),
            });
        }
        out.push(EntityBinding {
            argument,
            entity_type,
            context_key,
        });
    }
    Ok(out)
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

/// A URI template of literal text and `{variable}` parts; a variable matches one or more
/// characters other than `/`, `?` and `#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    pub source: String,
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Variable(String),
}

impl UriTemplate {
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{source}`"))?
                + open;
            let name = &rest[open + 1..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{{{name}}}` is not a simple variable"));
            }
            if matches!(parts.last(), Some(TemplatePart::Variable(_))) {
                return Err("two variables must be separated by literal text".into());
            }
            parts.push(TemplatePart::Variable(name.to_string()));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_string()));
        }
        match parts.first() {
            Some(TemplatePart::Literal(prefix)) if prefix.contains("://") => {}
            _ => return Err(format!("`{source}` must start with a scheme, e.g. case://")),
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Variable(v) => Some(v.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// The variables' values if `uri` matches the whole template.
    pub fn capture(&self, uri: &str) -> Option<HashMap<String, String>> {
        let mut vars = HashMap::new();
        let mut rest = uri;
        let mut parts = self.parts.iter().peekable();
        while let Some(part) = parts.next() {
            match part {
                TemplatePart::Literal(lit) => rest = rest.strip_prefix(lit.as_str())?,
                TemplatePart::Variable(name) => {
                    let end = match parts.peek() {
                        Some(TemplatePart::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || value.contains(['/', '?', '#']) {
                        return None;
                    }
                    vars.insert(name.clone(), value.to_string());
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(vars)
    }

    /// Conservative overlap check: two templates overlap when one's literal prefix is a prefix
    /// of the other's.
    fn overlaps(&self, other: &UriTemplate) -> bool {
        let prefix = |t: &UriTemplate| match t.parts.first() {
            Some(TemplatePart::Literal(p)) => p.clone(),
            _ => String::new(),
        };
        let (a, b) = (prefix(self), prefix(other));
        a.starts_with(&b) || b.starts_with(&a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_captures_variables_and_rejects_extra_segments() {
        let t = UriTemplate::parse("case://{tenant}/cases/{case_id}").expect("valid");
        let vars = t.capture("case://acme/cases/case-101").expect("matches");
        assert_eq!(vars["tenant"], "acme");
        assert_eq!(vars["case_id"], "case-101");
        assert!(t.capture("case://acme/cases/case-101/evidence").is_none());
        assert!(t.capture("case://acme/cases/").is_none());
        assert!(t.capture("other://acme/cases/x").is_none());
    }

    #[test]
    fn context_keys_are_snake_case() {
        assert_eq!(context_key_for("Case"), "case");
        assert_eq!(context_key_for("EvidenceDocument"), "evidence_document");
    }

    #[test]
    fn exposed_names_are_namespaced() {
        assert_eq!(exposed_name("case", "read_case"), "case__read_case");
    }

    #[test]
    fn contracts_for_unknown_servers_refuse_to_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("x.toml"),
            "server = \"ghost\"\n[tools.t]\neffect = \"read\"\nrisk = \"low\"\n",
        )
        .expect("write");
        let e = Registry::load(dir.path(), Some(&["case".to_string()])).unwrap_err();
        assert!(e.to_string().contains("ghost"), "{e}");
    }
}
