//! Mutation check of the policy scenario suite: every policy file and every `forbid` must be
//! needed by some scenario. Each mutation (a `*.cedar` file removed, or one forbid turned into a
//! permit) is applied to a copy of `policies/`, and the suite is run through the library; a
//! mutation is caught when a scenario that passes on the unmutated policies fails on the
//! mutated ones. A surviving mutation means the suite would not notice that policy vanishing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::common::{copy_dir, repo_root};
use capgate::policy::PolicyEngine;
use capgate::registry::Registry;
use capgate::scenarios;
use cedar_policy::{Effect, PolicySet};

fn cedar_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read policies dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    files.sort();
    files
}

/// The ids (`@id`) of the forbid policies in one file.
fn forbid_ids(text: &str, file: &Path) -> Vec<String> {
    let set = PolicySet::from_str(text)
        .unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()));
    let mut ids: Vec<String> = set
        .policies()
        .filter(|p| p.effect() == Effect::Forbid)
        .map(|p| {
            p.annotation("id")
                .unwrap_or_else(|| panic!("{}: a forbid without @id", file.display()))
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// `text` with the forbid `id` turned into a permit (its `@outcome` dropped: an outcome on a
/// permit refuses the set). Checked by parsing: exactly that policy changed effect.
fn forbid_to_permit(text: &str, id: &str, file: &Path) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let id_line = lines
        .iter()
        .position(|l| l.trim() == format!("@id(\"{id}\")"))
        .unwrap_or_else(|| panic!("{}: no line `@id(\"{id}\")`", file.display()));
    let is_annotation = |l: &str| l.trim_start().starts_with('@');
    let mut first = id_line;
    while first > 0 && is_annotation(lines[first - 1]) {
        first -= 1;
    }
    let mut head = id_line;
    while head < lines.len() && is_annotation(lines[head]) {
        head += 1;
    }
    assert!(
        head < lines.len() && lines[head].trim_start().starts_with("forbid"),
        "{}: the annotations of `{id}` are not followed by `forbid`",
        file.display()
    );
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        if (first..head).contains(&index) && line.trim_start().starts_with("@outcome(") {
            continue;
        }
        if index == head {
            out.push(line.replacen("forbid", "permit", 1));
        } else {
            out.push((*line).to_string());
        }
    }
    let mutated = out.join("\n") + "\n";

    let before = PolicySet::from_str(text).expect("original parses");
    let after = PolicySet::from_str(&mutated).unwrap_or_else(|e| {
        panic!(
            "{}: turning `{id}` into a permit broke the file: {e}",
            file.display()
        )
    });
    let effects = |set: &PolicySet| -> BTreeMap<String, (Effect, bool)> {
        set.policies()
            .map(|p| {
                (
                    p.annotation("id").unwrap_or_default().to_string(),
                    (p.effect(), p.annotation("outcome").is_some()),
                )
            })
            .collect()
    };
    let (before, after) = (effects(&before), effects(&after));
    assert_eq!(
        before.len(),
        after.len(),
        "{}: policy count changed",
        file.display()
    );
    for (policy, (effect, outcome)) in &after {
        if policy == id {
            assert_eq!(*effect, Effect::Permit, "`{id}` is not a permit now");
            assert!(!outcome, "`{id}` kept its @outcome");
        } else {
            assert_eq!(
                Some(&(*effect, *outcome)),
                before.get(policy),
                "mutating `{id}` changed `{policy}`"
            );
        }
    }
    mutated
}

struct Suite {
    registry: Registry,
    /// Scenario name → passed on the unmutated policies.
    baseline: BTreeMap<String, bool>,
}

enum Verdict {
    /// Scenarios that passed before and fail now.
    Caught(Vec<String>),
    /// The mutated set was refused, for a reason naming the mutation.
    RefusedAtLoad(String),
    Survived,
}

impl Suite {
    fn new(policies: &Path) -> Self {
        let registry =
            Registry::load(&repo_root().join("capabilities"), None).expect("load capabilities");
        let engine = PolicyEngine::load(policies, None).expect("load the unmutated policies");
        let results = scenarios::run_dir(&policies.join("tests"), &engine, &registry)
            .expect("run the scenarios");
        let baseline = results
            .iter()
            .map(|r| (r.name.clone(), r.failure.is_none()))
            .collect();
        Self { registry, baseline }
    }

    /// Runs the suite on a mutated policies directory. `about` are strings a load error must
    /// mention for the refusal to count as catching this mutation.
    fn verdict(&self, policies: &Path, about: &[&str]) -> Verdict {
        let engine = match PolicyEngine::load(policies, None) {
            Ok(engine) => engine,
            Err(error) => {
                let message = error.to_string();
                assert!(
                    about.iter().any(|a| message.contains(a)),
                    "the mutated policy set was refused for a reason unrelated to the mutation \
                     ({about:?}); this hides a real problem:\n{message}"
                );
                return Verdict::RefusedAtLoad(message);
            }
        };
        let results = scenarios::run_dir(&policies.join("tests"), &engine, &self.registry)
            .expect("run the scenarios");
        let caught: Vec<String> = results
            .iter()
            .filter(|r| r.failure.is_some() && self.baseline.get(&r.name) == Some(&true))
            .map(|r| r.name.clone())
            .collect();
        if caught.is_empty() {
            Verdict::Survived
        } else {
            Verdict::Caught(caught)
        }
    }
}

#[test]
fn every_policy_file_and_every_forbid_is_needed_by_a_scenario() {
    let temp = tempfile::tempdir().expect("tempdir");
    let pristine = temp.path().join("pristine");
    copy_dir(&repo_root().join("policies"), &pristine);
    let suite = Suite::new(&pristine);
    let passing = suite.baseline.values().filter(|ok| **ok).count();
    assert!(
        passing > 0,
        "no scenario passes on the unmutated policies; nothing can catch a mutation"
    );

    // (mutation, verdict)
    let mut table: Vec<(String, Verdict)> = Vec::new();
    let mut forbids_seen = 0;
    for (index, file) in cedar_files(&pristine).iter().enumerate() {
        let file_name = file
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(file).expect("read policy file");

        // The file removed.
        let mutated = temp.path().join(format!("without-{index}"));
        copy_dir(&pristine, &mutated);
        std::fs::remove_file(mutated.join(&file_name)).expect("remove policy file");
        table.push((
            format!("remove {file_name}"),
            suite.verdict(&mutated, &[file_name.as_str()]),
        ));

        // Each forbid turned into a permit.
        for id in forbid_ids(&text, file) {
            forbids_seen += 1;
            let mutated = temp.path().join(format!("permit-{id}"));
            copy_dir(&pristine, &mutated);
            std::fs::write(mutated.join(&file_name), forbid_to_permit(&text, &id, file))
                .expect("write mutated policy file");
            table.push((
                format!("{file_name}: forbid `{id}` -> permit"),
                suite.verdict(&mutated, &[id.as_str()]),
            ));
        }
    }
    assert!(forbids_seen > 0, "no forbid policies found");

    let width = table.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    println!("\n{:width$}  caught by", "mutation");
    let mut survivors = Vec::new();
    for (mutation, verdict) in &table {
        let by = match verdict {
            Verdict::Caught(names) if names.len() == 1 => format!("`{}`", names[0]),
            Verdict::Caught(names) => format!("`{}` (+{} more)", names[0], names.len() - 1),
            Verdict::RefusedAtLoad(message) => format!(
                "refused at load: {}",
                message.lines().nth(1).unwrap_or_default().trim()
            ),
            Verdict::Survived => {
                survivors.push(mutation.clone());
                "SURVIVED".to_string()
            }
        };
        println!("{mutation:width$}  {by}");
    }
    println!(
        "\n{} mutations ({} forbids), {} caught, {} survived; {} of {} scenarios pass unmutated",
        table.len(),
        forbids_seen,
        table.len() - survivors.len(),
        survivors.len(),
        passing,
        suite.baseline.len()
    );
    assert!(
        survivors.is_empty(),
        "no scenario notices these mutations; add scenarios that catch them: {survivors:#?}"
    );
}
