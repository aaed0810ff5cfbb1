//! The PDP alone (PolicyRequest → Decision) at 10, 1,000 and 10,000 policies, and on the
//! repository's example policies.
//!
//! The table asks each row twice over: the same request again (the decision cache answers)
//! and a request of a new run each time (a full Cedar decision, never cached).
//!
//! Each synthetic set is the example tenancy policies plus per-tool permits scoped to one tool
//! each (`resource == Tool::"synthetic__tool_N"`), the shape a large deployment has. Slicing
//! should keep the cost flat. The example row decides a drafting agent's `case__read_case` call
//! over `policies/` as shipped (every guardrail, tool and tenancy policy applies to it), with the
//! request built from the contract as the gateway builds it. Criterion times the mean; the
//! percentile table (p50, p99 over individually timed decisions) is printed after it and written
//! to target/capgate-bench/pdp.json. The bench runs on the system allocator (the capgate binary
//! uses mimalloc, under which allocation-heavy work such as building Cedar entities is cheaper).

use std::path::Path;
use std::time::Instant;

use capgate::policy::contract::{
    AgentFacts, RiskContext, RuntimeContext, UserFacts, NO_WORKFLOW_NODE,
};
use capgate::policy::{
    Action, ActorFacts, AttributeValue, EntityRef, Outcome, PolicyEngine, PolicyRequest,
    ResourceFacts,
};
use capgate::registry::Registry;
use capgate::scenarios::{scenario_request, Scenario};
use criterion::{criterion_group, Criterion};

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const TARGET_TOOL: usize = 3;

fn write_policy_dir(dir: &Path, total: usize) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::create_dir_all(dir.join("entities")).expect("mkdir");
    for file in [
        "schema.cedarschema",
        "manifest.toml",
        "tenancy.cedar",
        "entities/case-platform.json",
    ] {
        std::fs::copy(repo.join(file), dir.join(file)).expect("copy");
    }
    let tenancy = 5;
    let mut synthetic = String::new();
    for i in 0..total.saturating_sub(tenancy) {
        synthetic.push_str(&format!(
            "@id(\"synthetic-{i}\")\npermit(principal in AgentRole::\"drafting-agent\", action in [Action::\"discover_tool\", Action::\"call_tool\"], resource == Tool::\"synthetic__tool_{i}\")\nwhen {{ context.user in Role::\"analyst\" && resource.risk_level <= 1 }};\n"
        ));
    }
    std::fs::write(dir.join("synthetic.cedar"), synthetic).expect("write");
}

fn request() -> PolicyRequest {
    PolicyRequest {
        request_id: "bench".into(),
        tenant: Some("acme".into()),
        run_id: Some("run-1".into()),
        actor: ActorFacts {
            user: UserFacts {
                id: "alice".into(),
                roles: vec!["analyst".into()],
                scopes: vec![],
            },
            agent: Some(AgentFacts {
                id: "drafting-agent".into(),
                role: "drafting-agent".into(),
            }),
            service: Some("agent-runtime".into()),
            delegation_chain: vec!["alice".into(), "drafting-agent".into()],
        },
        action: Action::CallTool,
        resource: ResourceFacts {
            id: format!("synthetic__tool_{TARGET_TOOL}"),
            attributes: [
                ("server", AttributeValue::String("synthetic".into())),
                (
                    "name",
                    AttributeValue::String(format!("tool_{TARGET_TOOL}")),
                ),
                ("effect", AttributeValue::String("read".into())),
                ("risk", AttributeValue::String("low".into())),
                ("cost", AttributeValue::Long(1)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            requires: vec!["case".into()],
        },
        entities: [(
            "case".to_string(),
            EntityRef {
                entity_type: "Case".into(),
                id: "case-101".into(),
            },
        )]
        .into_iter()
        .collect(),
        arguments: Default::default(),
        environment: Default::default(),
        risk: RiskContext {
            score: Some(0),
            signals: vec![],
        },
        runtime: RuntimeContext {
            workflow_node: Some(NO_WORKFLOW_NODE.into()),
            ..Default::default()
        },
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The example row's request: built from the contract, as for a scenario of policies/tests.
fn example_request() -> PolicyRequest {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let registry = Registry::load(&repo.join("capabilities"), None).expect("capabilities load");
    let scenario: Scenario = serde_norway::from_str(
        r#"
name: bench
actor: {user: alice, tenant: acme, roles: [analyst], agent: drafting-agent, service: agent-runtime, run_id: run-1}
capability: case__read_case
arguments: {case_id: case-101}
expect: {outcome: allow}
"#,
    )
    .expect("scenario");
    scenario_request(&scenario, &registry).expect("the example request builds")
}

/// One row of the table: its label, its engine (and the directory it was loaded from, kept
/// alive), and the request it decides.
struct Row {
    label: String,
    policies: usize,
    _dir: Option<tempfile::TempDir>,
    engine: std::sync::Arc<PolicyEngine>,
    request: PolicyRequest,
}

fn engines() -> Vec<Row> {
    let mut rows: Vec<Row> = SIZES
        .iter()
        .map(|&size| {
            let dir = tempfile::tempdir().expect("tempdir");
            write_policy_dir(dir.path(), size);
            let engine = PolicyEngine::load(dir.path(), None).expect("policy set loads");
            Row {
                label: size.to_string(),
                policies: size,
                _dir: Some(dir),
                engine,
                request: request(),
            }
        })
        .collect();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let engine = PolicyEngine::load(&repo.join("policies"), None).expect("example policies load");
    rows.push(Row {
        label: "example".into(),
        policies: engine.latest().policy_count(),
        _dir: None,
        engine,
        request: example_request(),
    });
    for row in &rows {
        let decision = row.engine.decide(&row.request);
        assert_eq!(decision.outcome, Outcome::Allow, "{}", decision.reason);
    }
    rows
}

fn bench_pdp(c: &mut Criterion) {
    let mut group = c.benchmark_group("pdp_decide");
    for row in engines() {
        let name = match row.label.parse::<usize>() {
            Ok(size) => format!("{size}_policies"),
            Err(_) => format!("{}_policies", row.label),
        };
        group.bench_function(name, |b| {
            b.iter(|| row.engine.decide(std::hint::black_box(&row.request)))
        });
    }
    group.finish();
}

/// p50 and p99 of `decide` over `requests` (cycled), each call timed alone.
fn timed(engine: &PolicyEngine, requests: &[PolicyRequest]) -> (f64, f64, usize) {
    for request in requests.iter().cycle().take(2_000) {
        std::hint::black_box(engine.decide(request));
    }
    let mut samples: Vec<f64> = requests
        .iter()
        .cycle()
        .take(20_000)
        .map(|request| {
            let start = Instant::now();
            std::hint::black_box(engine.decide(std::hint::black_box(request)));
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len(),
    )
}

/// Two ways each row is asked: the same request again (answered by the decision cache), and a
/// request of a new run every time (never cached before: the full Cedar decision, plus the
/// cache's lookup and insertion).
fn percentile_table() {
    let mut rows = Vec::new();
    println!("\nPDP decision latency (PolicyRequest -> Decision), individually timed:");
    println!(
        "{:>16} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "policies", "again p50", "again p99", "new p50", "new p99", "samples"
    );
    for row in engines() {
        let (engine, request) = (&row.engine, &row.request);
        let (again_p50, again_p99, samples) = timed(engine, std::slice::from_ref(request));
        // 40,000 distinct runs: more than the cache holds, so none is answered from it.
        let fresh: Vec<PolicyRequest> = (0..40_000)
            .map(|i| {
                let mut request = request.clone();
                request.run_id = Some(format!("bench-run-{i}"));
                request
            })
            .collect();
        let (new_p50, new_p99, _) = timed(engine, &fresh);
        let label = match row.label.parse::<usize>() {
            Ok(_) => row.label.clone(),
            Err(_) => format!("{} ({})", row.label, row.policies),
        };
        println!(
            "{label:>16} {again_p50:>12.2} {again_p99:>12.2} {new_p50:>12.2} {new_p99:>12.2} {samples:>8}"
        );
        rows.push(
            serde_json::json!({"set": row.label, "policies": row.policies,
            "cached_p50_us": again_p50, "cached_p99_us": again_p99,
            "uncached_p50_us": new_p50, "uncached_p99_us": new_p99, "samples": samples}),
        );
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/capgate-bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("pdp.json"),
        serde_json::to_string_pretty(&rows).unwrap_or_default(),
    );
}

criterion_group!(benches, bench_pdp);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    percentile_table();
}
