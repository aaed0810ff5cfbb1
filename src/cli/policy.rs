//! `capgate policy`: check a policy directory, run its scenario tests, explain one decision,
//! replay the decision log under a candidate set, and format the Cedar files.

use std::path::PathBuf;

use anyhow::{bail, Context};
use capgate::policy::{AdminPolicySet, AdminRoles, CompiledPolicySet, PolicyEngine, PolicyRequest};
use capgate::registry::Registry;

use super::files::{chains_of, load_config, log_source, policies_dir, LogLocation};

/// `check`: parse and strictly validate, print warnings.
pub fn check(config: Option<&PathBuf>, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = policies_dir(config, dir)?;
    let (set, relationships) = CompiledPolicySet::load(&dir)?;
    for warning in &set.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "{}: {} policies valid (strict), policy set {} ({}), {} relationship entities, {} warning(s)",
        dir.display(),
        set.policy_count(),
        set.label(),
        set.digest,
        relationships.len(),
        set.warnings.len()
    );
    if let Some(admin) = AdminPolicySet::load_beside(&dir)? {
        for warning in &admin.warnings {
            eprintln!("warning: {warning}");
        }
        println!(
            "{}: {} admin policies valid (strict), admin policy set {}, {} warning(s)",
            dir.join(capgate::policy::admin::ADMIN_DIR).display(),
            admin.policy_count(),
            admin.digest,
            admin.warnings.len()
        );
    }
    Ok(())
}

/// `test`: run the scenario files; fails on any failure or when there are none.
pub fn test(
    config: Option<&PathBuf>,
    policies: Option<PathBuf>,
    capabilities: Option<PathBuf>,
    tests: Option<PathBuf>,
    verbose: bool,
) -> anyhow::Result<()> {
    let policies = policies_dir(config, policies)?;
    let capabilities = match capabilities {
        Some(dir) => dir,
        None => load_config(config)?.capabilities_dir,
    };
    let tests = tests.unwrap_or_else(|| policies.join("tests"));
    let engine = PolicyEngine::load(&policies, None)?;
    let registry = Registry::load(&capabilities, None)?;
    let results =
        capgate::scenarios::run_dir(&tests, &engine, &registry).map_err(anyhow::Error::msg)?;
    if results.is_empty() {
        bail!("no scenarios found in {}", tests.display());
    }
    let mut failed = report(&results, verbose, |d| &d.reason);
    let mut total = results.len();
    let admin_tests = policies
        .join(capgate::policy::admin::ADMIN_DIR)
        .join("tests");
    if let (Some(admin), true) = (engine.admin(), admin_tests.is_dir()) {
        let results = capgate::scenarios::run_admin_dir(&admin_tests, &admin, &admin_roles(config))
            .map_err(anyhow::Error::msg)?;
        failed += report(&results, verbose, |d| &d.reason);
        total += results.len();
    }
    println!();
    println!("{} passed, {} failed", total - failed, failed);
    if failed > 0 {
        bail!("{failed} scenario(s) failed");
    }
    Ok(())
}

/// Prints each scenario's result, runner style; the number that failed.
fn report<D>(
    results: &[capgate::scenarios::ScenarioResult<D>],
    verbose: bool,
    reason: impl Fn(&D) -> &String,
) -> usize {
    let mut failed = 0;
    for result in results {
        match &result.failure {
            None => {
                println!("test {}::{} ... ok", result.file, result.name);
                if let (true, Some(decision)) = (verbose, &result.decision) {
                    println!("    {}", reason(decision));
                }
            }
            Some(failure) => {
                failed += 1;
                println!(
                    "test {}::{} ... FAILED\n    {failure}",
                    result.file, result.name
                );
            }
        }
    }
    failed
}

/// The admin roles the configuration names (the defaults without a config or an `[admin]`).
fn admin_roles(config: Option<&PathBuf>) -> AdminRoles {
    match load_config(config).ok().and_then(|c| c.admin) {
        Some(admin) => AdminRoles {
            tenant_admin: admin.role,
            platform_admin: admin.platform_role,
        },
        None => AdminRoles::default(),
    }
}

/// `explain`: decide one request (a file, or `-` for stdin) and print the decision.
pub fn explain(
    config: Option<&PathBuf>,
    request: PathBuf,
    policies: Option<PathBuf>,
) -> anyhow::Result<()> {
    let policies = policies_dir(config, policies)?;
    let text = if request.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(&request)
            .with_context(|| format!("reading {}", request.display()))?
    };
    let request: PolicyRequest = serde_json::from_str(&text).with_context(|| {
        "the request does not match the PolicyRequest schema (see `capgate schema`)"
    })?;
    let engine = PolicyEngine::load(&policies, None)?;
    let decision = engine.decide(&request);
    println!("{}", serde_json::to_string_pretty(&decision)?);
    Ok(())
}

/// `replay`: re-decide the logged decisions under `candidate`; exits 3 when any would change.
pub fn replay(
    config: Option<&PathBuf>,
    candidate: PathBuf,
    location: LogLocation,
) -> anyhow::Result<()> {
    let source = log_source(config, location)?;
    let engine = PolicyEngine::load(&candidate, None)?;
    let mut replayed = 0;
    let mut changes = Vec::new();
    for chain in chains_of(&source)? {
        let records = capgate::audit::query_rows(chain.rows, &Default::default())?;
        let (count, changed) = capgate::audit::replay_records(records, &engine);
        replayed += count;
        changes.extend(changed.into_iter().map(|change| (chain.id.clone(), change)));
    }
    let mut by_change: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for (chain, change) in &changes {
        let at = if chain.is_empty() {
            change.seq.to_string()
        } else {
            format!("{chain}:{}", change.seq)
        };
        println!(
            "record {at}: {} {} {} -> {} (policy {} -> {})",
            change.actor,
            change.resource,
            change.before,
            change.after,
            change.policy_before.as_deref().unwrap_or("-"),
            change.policy_after.as_deref().unwrap_or("-")
        );
        *by_change
            .entry((
                format!("{} -> {}", change.before, change.after),
                change.resource.clone(),
            ))
            .or_default() += 1;
    }
    println!(
        "\nimpact of {} on {replayed} logged decisions:",
        candidate.display()
    );
    for ((change, tool), count) in &by_change {
        println!("  {count:>5}  {change:<40} {tool}");
    }
    println!(
        "{} changed, {} unchanged",
        changes.len(),
        replayed - changes.len()
    );
    if !changes.is_empty() {
        std::process::exit(3);
    }
    Ok(())
}

/// `fmt`: format the Cedar files in place, or with `check` only report those unformatted.
pub fn fmt(config: Option<&PathBuf>, check: bool, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = policies_dir(config, dir)?;
    let formatter = cedar_policy_formatter::Config {
        line_width: 100,
        indent_width: 2,
    };
    let mut unformatted = Vec::new();
    // The policies and, beside them, the admin policy set's.
    let admin = dir.join(capgate::policy::admin::ADMIN_DIR);
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in std::iter::once(&dir).chain(admin.is_dir().then_some(&admin)) {
        files.extend(
            std::fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "cedar")),
        );
    }
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let pretty = cedar_policy_formatter::policies_str_to_pretty(&text, &formatter)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", file.display()))?;
        if pretty != text {
            if check {
                unformatted.push(file.display().to_string());
            } else {
                std::fs::write(&file, pretty)?;
                println!("formatted {}", file.display());
            }
        }
    }
    if !unformatted.is_empty() {
        bail!(
            "not formatted (run `capgate policy fmt`): {}",
            unformatted.join(", ")
        );
    }
    Ok(())
}
