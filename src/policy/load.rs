//! Loading `policies/`: the Cedar schema, every `*.cedar` file and the static entity data,
//! validated strictly. Every problem is reported as `file:line: message`, and any problem at all
//! refuses the whole set: a half-loaded policy set would silently allow or deny the wrong things.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{Entities, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use super::entities::EntityStore;

/// The schema file inside the policies directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// Static entity data (relationships, case attributes) inside the policies directory.
pub const ENTITIES_DIR: &str = "entities";

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
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
    pub schema: Schema,
    pub policies: PolicySet,
    pub entities: EntityStore,
    /// Which file each policy came from (for messages).
    pub policy_files: HashMap<PolicyId, String>,
    /// Human-readable reasons from `@reason("...")` annotations, read once here.
    pub reasons: HashMap<PolicyId, String>,
    /// Content digest of schema, policies and entities: the version decisions carry.
    pub version: String,
}

struct SourceFile {
    path: PathBuf,
    text: String,
}

impl SourceFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }
}

fn first_label_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset())
}

fn sorted_files(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, PolicyProblem> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && extension == "json" => {
            return Ok(Vec::new())
        }
        Err(e) => {
            return Err(PolicyProblem {
                file: dir.display().to_string(),
                line: None,
                message: format!("cannot read the directory: {e}"),
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<SourceFile, PolicyProblem> {
    std::fs::read_to_string(path)
        .map(|text| SourceFile {
            path: path.to_path_buf(),
            text,
        })
        .map_err(|e| PolicyProblem {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })
}

/// Loads and strictly validates a policies directory.
pub fn load_policies(dir: &Path) -> Result<LoadedPolicies, PolicyLoadError> {
    let fail = |problem: PolicyProblem| PolicyLoadError {
        problems: vec![problem],
    };
    let mut digest = Sha256::new();

    let schema_file = read(&dir.join(SCHEMA_FILE)).map_err(fail)?;
    digest.update(schema_file.text.as_bytes());
    let schema = Schema::from_cedarschema_str(&schema_file.text)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| {
            fail(PolicyProblem {
                file: schema_file.name(),
                line: first_label_offset(&e).map(|o| schema_file.line_of(o)),
                message: e.to_string(),
            })
        })?;

    let mut problems = Vec::new();
    let mut sources: Vec<SourceFile> = Vec::new();
    let mut policies = PolicySet::new();
    let mut policy_files: HashMap<PolicyId, String> = HashMap::new();
    let mut policy_source_index: HashMap<PolicyId, usize> = HashMap::new();
    let mut reasons = HashMap::new();

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
            if let Some(other) = policy_files.get(&policy_id) {
                problems.push(PolicyProblem {
                    file: source.name(),
                    line: source
                        .text
                        .find(&format!("@id(\"{id}\")"))
                        .map(|o| source.line_of(o)),
                    message: format!("policy id `{id}` is already used in {other}"),
                });
                continue;
            }
            if let Some(reason) = policy.annotation("reason") {
                reasons.insert(policy_id.clone(), reason.to_string());
            }
            if let Err(e) = policies.add(policy.new_id(policy_id.clone())) {
                problems.push(PolicyProblem {
                    file: source.name(),
                    line: None,
                    message: e.to_string(),
                });
                continue;
            }
            policy_files.insert(policy_id.clone(), source.name());
            policy_source_index.insert(policy_id, sources.len());
        }
        sources.push(source);
    }
    if !problems.is_empty() {
        return Err(PolicyLoadError { problems });
    }

    let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    for error in validation.validation_errors() {
        let source = policy_source_index
            .get(error.policy_id())
            .and_then(|i| sources.get(*i));
        problems.push(PolicyProblem {
            file: source
                .map(SourceFile::name)
                .unwrap_or_else(|| dir.display().to_string()),
            line: source.and_then(|s| first_label_offset(error).map(|o| s.line_of(o))),
            message: format!("policy `{}`: {error}", error.policy_id()),
        });
    }
    if !problems.is_empty() {
        return Err(PolicyLoadError { problems });
    }

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
    let entities = Entities::from_json_value(serde_json::Value::Array(entity_json), Some(&schema))
        .map_err(|e| {
            fail(PolicyProblem {
                file: dir.join(ENTITIES_DIR).display().to_string(),
                line: None,
                message: format!("entity data does not match the schema: {e}"),
            })
        })?;

    Ok(LoadedPolicies {
        entities: EntityStore::index(&entities),
        schema,
        policies,
        policy_files,
        reasons,
        version: format!("sha256:{}", &hex::encode(digest.finalize())[..16]),
    })
}
