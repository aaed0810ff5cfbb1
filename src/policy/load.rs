//! Loading `policies/`: the Cedar schema, every `*.cedar` file and the static entity data,
//! validated strictly. Every problem is reported as `file:line: message`, and any problem at all
//! refuses the whole set: a half-loaded policy set would silently allow or deny the wrong things.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{Effect, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::contract::Outcome;
use super::obligation::Obligation;
pub use super::source::PolicyProblem;
use super::source::{first_label_offset, read, sorted_files, SourceFile};

/// The schema file inside the policies directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// Static entity data (relationships, case attributes) inside the policies directory.
pub const ENTITIES_DIR: &str = "entities";
/// The policy set's manifest: id, version, owner, effective window.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// `policies/manifest.toml`: who owns this policy set, which version it is, and when it is in
/// effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub version: String,
    pub owner: String,
    #[serde(default)]
    pub description: String,
    /// RFC 3339; the set decides nothing before this instant.
    #[serde(default)]
    pub effective_from: Option<String>,
    /// RFC 3339; the set decides nothing from this instant on.
    #[serde(default)]
    pub effective_until: Option<String>,
}

/// The manifest's effective window in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveWindow {
    pub from: Option<i64>,
    pub until: Option<i64>,
}

impl EffectiveWindow {
    pub fn contains(&self, now: i64) -> bool {
        self.from.is_none_or(|from| now >= from) && self.until.is_none_or(|until| now < until)
    }
}

/// What the annotations of one policy say, read once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyMeta {
    pub file: String,
    pub line: Option<usize>,
    pub is_forbid: bool,
    /// For forbids: `require_approval` / `require_more_context` instead of a plain deny.
    pub outcome: Option<Outcome>,
    /// For permits: obligations the PEP must enforce when this permit determines an allow.
    pub obligations: Vec<String>,
    pub advice: Vec<String>,
    pub reason: Option<String>,
    /// For `@outcome("require_approval")` forbids: the role whose holders may approve.
    pub approver_role: Option<String>,
    /// For forbids marked `@break_glass("never")` (tenant isolation): no break-glass grant
    /// overrides a refusal this forbid takes part in.
    pub break_glass_never: bool,
}

/// Why a policy directory was refused; lists every problem found.
#[derive(Debug, thiserror::Error)]
pub struct PolicyLoadError {
    pub problems: Vec<PolicyProblem>,
}

impl fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the policy set is invalid ({} problem(s)):",
            self.problems.len()
        )?;
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
        }
        write!(f, "Fix the files named above; nothing was loaded.")
    }
}

/// A parsed, strictly validated policy directory.
pub struct LoadedPolicies {
    pub manifest: Manifest,
    pub window: EffectiveWindow,
    pub schema: Schema,
    pub policies: PolicySet,
    /// Annotations of every policy, by id.
    pub meta: HashMap<PolicyId, PolicyMeta>,
    /// The relationship data (`entities/*.json`), as JSON, validated by the relationship store.
    pub entity_json: Vec<serde_json::Value>,
    /// Content digest of manifest, schema, policies and entities.
    pub digest: String,
    /// Things worth a policy author's attention that do not refuse the set.
    pub warnings: Vec<PolicyProblem>,
}

/// Loads and strictly validates a policies directory.
pub fn load_policies(dir: &Path) -> Result<LoadedPolicies, PolicyLoadError> {
    let fail = |problem: PolicyProblem| PolicyLoadError {
        problems: vec![problem],
    };
    let mut digest = Sha256::new();

    let manifest_file = read(&dir.join(MANIFEST_FILE)).map_err(fail)?;
    digest.update(manifest_file.text.as_bytes());
    let manifest: Manifest = toml::from_str(&manifest_file.text).map_err(|e| {
        fail(PolicyProblem {
            file: manifest_file.name(),
            line: e.span().map(|s| manifest_file.line_of(s.start)),
            message: format!(
                "{}; expected id, version, owner, description, effective_from, effective_until",
                e.message()
            ),
        })
    })?;
    let parse_time = |key: &str, value: &Option<String>| -> Result<Option<i64>, PolicyLoadError> {
        match value {
            None => Ok(None),
            Some(text) => humantime::parse_rfc3339_weak(text)
                .map(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0)
                })
                .map(Some)
                .map_err(|e| {
                    fail(PolicyProblem {
                        file: manifest_file.name(),
                        line: manifest_file
                            .text
                            .find(key)
                            .map(|o| manifest_file.line_of(o)),
                        message: format!("{key} `{text}` is not an RFC 3339 time: {e}"),
                    })
                }),
        }
    };
    let window = EffectiveWindow {
        from: parse_time("effective_from", &manifest.effective_from)?,
        until: parse_time("effective_until", &manifest.effective_until)?,
    };

    let schema = read_schema(&dir.join(SCHEMA_FILE), &mut digest)?;
    let ParsedPolicies {
        policies,
        meta,
        warnings,
    } = parse_policy_files(dir, &schema, &mut digest, read_annotations)?;
    let mut problems = Vec::new();

    let mut entity_json = Vec::new();
    for path in sorted_files(&dir.join(ENTITIES_DIR), "json").map_err(fail)? {
        let source = read(&path).map_err(fail)?;
        digest.update(source.text.as_bytes());
        match serde_json::from_str::<serde_json::Value>(&source.text) {
            Ok(serde_json::Value::Array(items)) => entity_json.extend(items),
            Ok(_) => problems.push(PolicyProblem {
                file: source.name(),
                line: Some(1),
                message: "expected a JSON array of Cedar entities".into(),
            }),
            Err(e) => problems.push(PolicyProblem {
                file: source.name(),
                line: Some(e.line()),
                message: e.to_string(),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(PolicyLoadError { problems });
    }

    Ok(LoadedPolicies {
        manifest,
        window,
        schema,
        policies,
        meta,
        entity_json,
        digest: format!("sha256:{}", &hex::encode(digest.finalize())[..16]),
        warnings,
    })
}

/// Reads and parses a Cedar schema file (its text goes into `digest`).
pub(super) fn read_schema(path: &Path, digest: &mut Sha256) -> Result<Schema, PolicyLoadError> {
    let fail = |problem: PolicyProblem| PolicyLoadError {
        problems: vec![problem],
    };
    let schema_file = read(path).map_err(fail)?;
    digest.update(schema_file.text.as_bytes());
    Schema::from_cedarschema_str(&schema_file.text)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| {
            fail(PolicyProblem {
                file: schema_file.name(),
                line: first_label_offset(&e).map(|o| schema_file.line_of(o)),
                message: e.to_string(),
            })
        })
}

/// The policies of one directory's `*.cedar` files, parsed and strictly validated, with what
/// each one's annotations say.
pub(super) struct ParsedPolicies<M> {
    pub policies: PolicySet,
    /// By policy id, as `read_meta` read them.
    pub meta: HashMap<PolicyId, M>,
    pub warnings: Vec<PolicyProblem>,
}

/// Reads one policy's annotations: the policy, its id, its file and line.
pub(super) type ReadMeta<M> =
    fn(&cedar_policy::Policy, &str, &str, Option<usize>) -> Result<M, PolicyProblem>;

/// Where a policy is written.
struct Location {
    file: String,
    line: Option<usize>,
}

/// Parses every `*.cedar` file of `dir` (in name order; their names and texts go into
/// `digest`), names each policy by its `@id` (else `<file stem>#<index>`), reads its annotations
/// with `read_meta` and validates the whole set strictly against `schema`. Every problem names
/// its file and line; any problem refuses the set.
pub(super) fn parse_policy_files<M>(
    dir: &Path,
    schema: &Schema,
    digest: &mut Sha256,
    read_meta: ReadMeta<M>,
) -> Result<ParsedPolicies<M>, PolicyLoadError> {
    let fail = |problem: PolicyProblem| PolicyLoadError {
        problems: vec![problem],
    };
    let mut problems = Vec::new();
    let mut sources: Vec<SourceFile> = Vec::new();
    let mut policies = PolicySet::new();
    let mut meta: HashMap<PolicyId, M> = HashMap::new();
    let mut locations: HashMap<PolicyId, Location> = HashMap::new();
    let mut policy_source_index: HashMap<PolicyId, usize> = HashMap::new();

    let files = sorted_files(dir, "cedar").map_err(fail)?;
    if files.is_empty() {
        return Err(fail(PolicyProblem {
            file: dir.display().to_string(),
            line: None,
            message: "no *.cedar policy files: everything would be denied".into(),
        }));
    }
    for path in files {
        let source = match read(&path) {
            Ok(source) => source,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        digest.update(
            source
                .path
                .file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        digest.update(source.text.as_bytes());
        let parsed = match PolicySet::from_str(&source.text) {
            Ok(parsed) => parsed,
            Err(e) => {
                for error in e.iter() {
                    problems.push(PolicyProblem {
                        file: source.name(),
                        line: first_label_offset(error).map(|o| source.line_of(o)),
                        message: error.to_string(),
                    });
                }
                sources.push(source);
                continue;
            }
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (index, policy) in parsed.policies().enumerate() {
            let id = match policy.annotation("id") {
                Some(id) => id.to_string(),
                None => format!("{stem}#{index}"),
            };
            let policy_id = PolicyId::new(&id);
            let line = source.id_offset(&id).map(|o| source.line_of(o));
            if let Some(other) = locations.get(&policy_id) {
                problems.push(PolicyProblem {
                    file: source.name(),
                    line,
                    message: format!("policy id `{id}` is already used in {}", other.file),
                });
                continue;
            }
            locations.insert(
                policy_id.clone(),
                Location {
                    file: source.name(),
                    line,
                },
            );
            match read_meta(policy, &id, &source.name(), line) {
                Ok(policy_meta) => {
                    meta.insert(policy_id.clone(), policy_meta);
                }
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            }
            if let Err(e) = policies.add(policy.new_id(policy_id.clone())) {
                problems.push(PolicyProblem {
                    file: source.name(),
                    line: None,
                    message: e.to_string(),
                });
                continue;
            }
            policy_source_index.insert(policy_id, sources.len());
        }
        sources.push(source);
    }
    if !problems.is_empty() {
        return Err(PolicyLoadError { problems });
    }

    let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    let located = |policy_id: &PolicyId, diagnostic: &dyn Diagnostic, message: String| {
        let source = policy_source_index
            .get(policy_id)
            .and_then(|i| sources.get(*i));
        PolicyProblem {
            file: source
                .map(SourceFile::name)
                .unwrap_or_else(|| dir.display().to_string()),
            line: source.and_then(|s| first_label_offset(diagnostic).map(|o| s.line_of(o))),
            message,
        }
    };
    for error in validation.validation_errors() {
        problems.push(located(
            error.policy_id(),
            error,
            format!("policy `{}`: {error}", error.policy_id()),
        ));
    }
    if !problems.is_empty() {
        return Err(PolicyLoadError { problems });
    }
    let mut warnings: Vec<PolicyProblem> = validation
        .validation_warnings()
        .map(|warning| {
            located(
                warning.policy_id(),
                warning,
                format!("policy `{}` (warning): {warning}", warning.policy_id()),
            )
        })
        .collect();
    warnings.extend(never_applies_warnings(&policies, &locations));
    Ok(ParsedPolicies {
        policies,
        meta,
        warnings,
    })
}

/// Splits an annotation value on commas into trimmed, non-empty items.
fn annotation_list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads `@outcome`, `@obligation`, `@advice`, `@reason`, `@approver`, `@break_glass`;
/// misplaced or unknown ones, and obligations this gateway cannot enforce, refuse the set.
fn read_annotations(
    policy: &cedar_policy::Policy,
    id: &str,
    file: &str,
    line: Option<usize>,
) -> Result<PolicyMeta, PolicyProblem> {
    let problem = |message: String| PolicyProblem {
        file: file.to_string(),
        line,
        message,
    };
    let is_forbid = policy.effect() == Effect::Forbid;
    let outcome = match policy.annotation("outcome") {
        None => None,
        Some(_) if !is_forbid => {
            return Err(problem(
                "@outcome belongs on forbid policies (a permit cannot require approval)".into(),
            ))
        }
        Some("require_approval") => Some(Outcome::RequireApproval),
        Some("require_more_context") => Some(Outcome::RequireMoreContext),
        Some(other) => {
            return Err(problem(format!(
                "@outcome(\"{other}\") is unknown; use require_approval or require_more_context"
            )))
        }
    };
    if policy.annotation("approver").is_some() && outcome != Some(Outcome::RequireApproval) {
        return Err(problem(
            "@approver belongs on forbids with @outcome(\"require_approval\")".into(),
        ));
    }
    let break_glass_never = match policy.annotation("break_glass") {
        None => false,
        Some(_) if !is_forbid => {
            return Err(problem(
                "@break_glass belongs on forbid policies (it says what a grant may not override)"
                    .into(),
            ))
        }
        Some("never") => true,
        Some(other) => {
            return Err(problem(format!(
                "@break_glass(\"{other}\") is unknown; use @break_glass(\"never\") on forbids no break-glass grant may override"
            )))
        }
    };
    let obligations = annotation_list(policy.annotation("obligation"));
    if is_forbid && !obligations.is_empty() {
        return Err(problem(
            "@obligation belongs on permit policies (obligations come with an allow)".into(),
        ));
    }
    // Parsed once here, so that the PEP never meets an obligation it cannot enforce.
    for obligation in &obligations {
        if let Err(e) = obligation.parse::<Obligation>() {
            return Err(problem(format!(
                "policy `{id}`: @obligation(\"{obligation}\") cannot be enforced: {e}"
            )));
        }
    }
    Ok(PolicyMeta {
        file: file.to_string(),
        line,
        is_forbid,
        outcome,
        obligations,
        advice: policy
            .annotation("advice")
            .map(|a| vec![a.to_string()])
            .unwrap_or_default(),
        reason: policy.annotation("reason").map(str::to_string),
        approver_role: policy.annotation("approver").map(str::to_string),
        break_glass_never,
    })
}

/// Warnings beyond the validator's: policies that can never apply, and policies that can
/// error at evaluation.
fn never_applies_warnings(
    policies: &PolicySet,
    locations: &HashMap<PolicyId, Location>,
) -> Vec<PolicyProblem> {
    let mut warnings = Vec::new();
    for policy in policies.policies() {
        let Some(location) = locations.get(policy.id()) else {
            continue;
        };
        let text = policy.to_string();
        // Arithmetic can overflow and extension constructors can reject their input at
        // evaluation time; capgate then denies, which authors should know.
        let can_error = [
            " + ",
            " - ",
            " * ",
            "decimal(",
            "ip(",
            "datetime(",
            "duration(",
        ]
        .iter()
        .find(|op| text.contains(**op));
        if let Some(op) = can_error {
            warnings.push(PolicyProblem {
                file: location.file.clone(),
                line: location.line,
                message: format!(
                    "policy `{}` can error at evaluation (`{}`); an error denies",
                    policy.id(),
                    op.trim()
                ),
            });
        }
        if text.contains("when { false }") || text.contains("unless { true }") {
            warnings.push(PolicyProblem {
                file: location.file.clone(),
                line: location.line,
                message: format!("policy `{}` can never apply", policy.id()),
            });
        }
    }
    warnings
}

#[cfg(test)]
mod tests;
