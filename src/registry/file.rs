//! The `capabilities/*.toml` files: one per downstream server, read once at start. A contract
//! that is malformed, names an unknown server, binds an argument badly, overlaps another
//! server's resources or fails open without being a low-risk read refuses start with a
//! [`RegistryError`] naming the file and the fix.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::contract::{
    context_key_for, Effect, EntityBinding, Naming, PromptContract, ResourceContract, Risk,
    ToolContract,
};
use super::index::Registry;
use super::uri_template::UriTemplate;

/// A registry problem, naming the capabilities file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("capabilities error in {file}: {problem}. Fix: {fix}")]
pub struct RegistryError {
    pub file: String,
    pub problem: String,
    pub fix: String,
}

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
    /// The digest of the tool's definition, pinned here (`sha256:<hex>`).
    #[serde(default)]
    pin: Option<String>,
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

/// `sha256:` and 64 lowercase hex digits.
fn is_digest(pin: &str) -> bool {
    pin.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
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
    /// Loads every `*.toml` in `dir`. `known_servers` are the configured downstreams (id and
    /// naming): a contract for an unknown server, two files for one server, or two servers
    /// exposing one name refuse start. Tools that only read contracts (policy tests) pass
    /// `None` (every server prefixed by its id).
    pub fn load(
        dir: &Path,
        known_servers: Option<&[(String, Naming)]>,
    ) -> Result<Self, RegistryError> {
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
            registry.add_text(&name, &text, known_servers, &mut seen_servers)?;
        }
        Ok(registry)
    }

    /// One contracts file's text, read as `Registry::load` reads each file (`name` names it in
    /// errors; `None` servers: every server known, prefixed by its id).
    pub(crate) fn from_text(name: &str, text: &str) -> Result<Self, RegistryError> {
        let mut registry = Registry::default();
        registry.add_text(name, text, None, &mut HashMap::new())?;
        Ok(registry)
    }

    /// Parses and checks one file's text and adds its contracts; `seen_servers` are the servers
    /// earlier files gave contracts for (server → file).
    fn add_text(
        &mut self,
        name: &str,
        text: &str,
        known_servers: Option<&[(String, Naming)]>,
        seen_servers: &mut HashMap<String, String>,
    ) -> Result<(), RegistryError> {
        let name = name.to_string();
        let raw: RawFile = toml::from_str(text).map_err(|e| {
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
        let naming = match known_servers {
            None => Naming::default(),
            Some(known) => match known.iter().find(|(id, _)| *id == raw.server) {
                Some((_, naming)) => naming.clone(),
                None => {
                    return Err(RegistryError {
                        file: name,
                        problem: format!("server `{}` is not a configured downstream", raw.server),
                        fix: "add a [[downstream]] with this id to the config, or fix `server`"
                            .into(),
                    })
                }
            },
        };
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
        self.add_file(&name, raw, &naming)
    }

    fn add_file(&mut self, file: &str, raw: RawFile, naming: &Naming) -> Result<(), RegistryError> {
        let server = raw.server;
        // An exposed name names one capability: a second server offering it refuses start.
        let expose = |registry: &Registry, name: &str| -> Result<String, RegistryError> {
            let exposed = naming.expose(&server, name);
            let exposed = exposed.as_str();
            let owner = registry
                .tools
                .get(exposed)
                .map(|c| c.server.clone())
                .or_else(|| registry.prompts.get(exposed).map(|c| c.server.clone()))
                .or_else(|| {
                    registry
                        .resources
                        .iter()
                        .find(|c| c.exposed_name == exposed)
                        .map(|c| c.server.clone())
                });
            match owner {
                Some(other) => Err(RegistryError {
                    file: file.into(),
                    problem: format!(
                        "`{exposed}` of server `{server}` collides with `{exposed}` of server `{other}`"
                    ),
                    fix: "give one of the two downstreams a prefix (namespace = \"prefix\") or another separator".into(),
                }),
                None => Ok(exposed.to_string()),
            }
        };
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
                exposed_name: expose(self, &name)?,
                entities: bindings(file, &name, tool.entities)?,
                server: server.clone(),
                name: name.clone(),
                effect: tool.effect,
                risk: tool.risk,
                cost: tool.cost,
                attributes: tool.attributes,
                fail_open: tool.fail_open,
                pin: match tool.pin {
                    Some(pin) if is_digest(&pin) => Some(pin),
                    Some(pin) => {
                        return Err(RegistryError {
                            file: file.into(),
                            problem: format!("`{name}` has pin {pin:?}, which is not a definition digest"),
                            fix: "use the digest `capgate admin tools` or the quarantine record shows: \"sha256:\" and 64 lowercase hex digits".into(),
                        })
                    }
                    None => None,
                },
            });
            self.tools
                .insert(contract.exposed_name.clone(), contract.clone());
            self.tools_by_downstream
                .entry(server.clone())
                .or_default()
                .insert(name, contract);
        }
        for (name, prompt) in raw.prompts {
            check_capability_name(file, &name)?;
            check_fail_open(file, &name, prompt.fail_open, prompt.risk)?;
            let contract = Arc::new(PromptContract {
                exposed_name: expose(self, &name)?,
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
                .entry(server.clone())
                .or_default()
                .insert(name, contract);
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
                exposed_name: expose(self, &resource.name)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contracts_for_unknown_servers_refuse_to_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("x.toml"),
            "server = \"ghost\"\n[tools.t]\neffect = \"read\"\nrisk = \"low\"\n",
        )
        .expect("write");
        let e = Registry::load(dir.path(), Some(&[("case".to_string(), Naming::default())]))
            .unwrap_err();
        assert!(e.to_string().contains("ghost"), "{e}");
    }
}
