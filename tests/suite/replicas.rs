//! Several capgate replicas on one PostgreSQL database, with calls spread round-robin: one
//! idempotency key performs once, a run budget of N allows exactly N, an approval is used once,
//! and kill switches, break-glass grants and relationship updates made through one replica bind
//! the others within a second. `outage`: the database going away refuses calls (fail-open reads
//! pass, marked degraded, recorded and counted) and loses nothing once it is back. `chains`: a
//! replica SIGKILLed ten times under load leaves every effect with its durable record and every
//! replica's chain verifiable, and a run's manifest spans every replica's chain.
//!
//! Each test has a database of its own on the server `CAPGATE_TEST_DATABASE_URL` names
//! (default the local one); without a reachable server each prints one SKIPPED line and passes.
//! Each replica runs its own downstream case platform, so effects are counted over every
//! replica's journal.

mod chains;
mod outage;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use capgate::store::test_db::TestDatabase;
use futures::future::join_all;
use serde_json::{json, Value};

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// Replicas sharing one database; the gateways stop before the database is dropped.
struct Replicas {
    gateways: Vec<TestGateway>,
    db: TestDatabase,
}

/// Starts `n` replicas at once (their migrations race, as in a real rollout).
async fn replicas(prefix: &str, n: usize, options: GatewayOptions) -> Option<Replicas> {
    let db = TestDatabase::create(prefix).await?;
    let store = format!(
        "url = \"{}\"\npool_size = 4\nconnect_timeout_ms = 1000",
        db.url
    );
    let gateways = join_all((0..n).map(|_| {
        TestGateway::start(GatewayOptions {
            store: Some(store.clone()),
            limits: Some("requests_per_second = 100000\nrequest_burst = 100000".into()),
            ..options.clone()
        })
    }))
    .await;
    Some(Replicas { gateways, db })
}

impl Replicas {
    /// One MCP client per replica for `spec` in run `run` (tokens carry each replica's audience).
    async fn clients(&self, spec: &TokenSpec, run: &str) -> Vec<Client> {
        let mut clients = Vec::new();
        for g in &self.gateways {
            clients.push(g.client(&g.token_in_run(spec, run)).await);
        }
        clients
    }

    /// Journal entries of `tool` over every replica's downstream.
    fn effects(&self, tool: &str) -> Vec<Value> {
        self.gateways
            .iter()
            .flat_map(|g| g.journal_entries())
            .filter(|e| e["name"] == tool)
            .collect()
    }
}

/// Flushes every replica's decision log, then checks every chain in the database with the
/// `capgate audit verify` command line, given each replica's public key; its output.
async fn verify_every_chain(r: &Replicas) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"));
    command.args(["audit", "verify", "--database-url", &r.db.url]);
    for g in &r.gateways {
        let (status, body) = g
            .admin_post_as(&g.platform_admin_token(), "/admin/audit/flush", json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        let key = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
            .args(["audit", "public-key", "--key-file"])
            .arg(g.dir.path().join("data/audit-signing.key"))
            .output()
            .expect("capgate audit public-key");
        assert!(key.status.success());
        command.args(["--public-key", String::from_utf8_lossy(&key.stdout).trim()]);
    }
    let verified = command.output().expect("capgate audit verify");
    let out = String::from_utf8_lossy(&verified.stdout).to_string();
    assert!(
        verified.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    out
}

/// Every record of every chain, as `capgate audit export` writes them.
fn exported(r: &Replicas) -> Vec<Value> {
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["audit", "export", "--database-url", &r.db.url])
        .output()
        .expect("capgate audit export");
    assert!(export.status.success());
    String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Decision records (not outcome records) allowing `tool`, over every chain.
fn allow_records(r: &Replicas, tool: &str) -> usize {
    exported(r)
        .iter()
        .filter(|line| {
            let record = &line["record"];
            record["resource"] == tool
                && record["decision"] == "allow"
                && record["downstream_outcome"].is_null()
        })
        .count()
}

fn refused_by(result: &rmcp::model::CallToolResult) -> String {
    let meta = serde_json::to_value(&result.meta).expect("meta");
    meta["dev.capgate/decision"]["refused_by"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn ok(result: &rmcp::model::CallToolResult) -> bool {
    result.is_error != Some(true)
}

/// Whether `client` may read `case` now.
async fn served(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    case: &Value,
) -> bool {
    ok(&call(client, "case__read_case", case.clone()).await)
}

/// Polls `check` every 20 ms until it holds; how long that took, or `None` after `limit`.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn fifty_identical_side_effect_calls_over_three_replicas_perform_once() {
    let Some(r) = replicas("idem", 3, GatewayOptions::default()).await else {
        return;
    };
    let clients = r
        .clients(&analyst("acme", "alice", "drafting-agent"), "run-idem")
        .await;
    let draft = json!({"case_id": "case-101", "body": "One notice, once"});
    let results = join_all((0..50).map(|i| {
        call_with_meta(
            &clients[i % 3],
            "case__create_notice_draft",
            draft.clone(),
            key("k-same"),
        )
    }))
    .await;
    assert_eq!(r.effects("create_notice_draft").len(), 1, "one effect");
    let performed = results.iter().filter(|r| ok(r)).count();
    assert!(performed >= 1);
    for result in results.iter().filter(|r| !ok(r)) {
        assert_eq!(
            refused_by(result),
            "idempotency",
            "a duplicate while the first is in flight: {}",
            text_of(result)
        );
    }
    // Once settled, every replica replays the stored result.
    for client in &clients {
        let replay = call_with_meta(
            client,
            "case__create_notice_draft",
            draft.clone(),
            key("k-same"),
        )
        .await;
        assert!(ok(&replay), "{}", text_of(&replay));
        let meta = serde_json::to_value(&replay.meta).expect("meta");
        assert_eq!(meta["dev.capgate/replay"], true, "{meta}");
    }
    assert_eq!(r.effects("create_notice_draft").len(), 1);
    // Each replica appended its own chain; all three verify, and queries and replays read
    // every chain.
    let verified = verify_every_chain(&r).await;
    assert!(verified.contains("3 chain(s)"), "{verified}");
    let capgate = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
            .args(args)
            .args(["--database-url", &r.db.url])
            .output()
            .expect("capgate runs");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let queried = capgate(&["audit", "query", "--tool", "case__create_notice_draft"]);
    let chains: std::collections::BTreeSet<String> = queried
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).expect("json");
            line["chain"]
                .as_str()
                .expect("each line names its chain")
                .to_string()
        })
        .collect();
    assert_eq!(chains.len(), 3, "records of the key on every replica");
    let policies = r.gateways[0].policies_dir();
    let replayed = capgate(&[
        "policy",
        "replay",
        "--candidate",
        policies.to_str().expect("utf-8 path"),
    ]);
    assert!(replayed.contains("0 changed"), "{replayed}");
}

#[tokio::test]
async fn a_run_budget_spread_over_replicas_allows_exactly_n() {
    const N: usize = 12;
    let Some(r) = replicas(
        "budget",
        3,
        GatewayOptions {
            enforcement: Some(format!("max_calls_per_run = {N}")),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let clients = r
        .clients(&analyst("acme", "alice", "risk-agent"), "run-budget")
        .await;
    let results = join_all((0..3 * N).map(|i| {
        call(
            &clients[i % 3],
            "case__read_case",
            json!({"case_id": "case-101"}),
        )
    }))
    .await;
    let allowed = results.iter().filter(|r| ok(r)).count();
    assert_eq!(allowed, N, "exactly the budget");
    assert_eq!(r.effects("read_case").len(), N);
    for refused in results.iter().filter(|r| !ok(r)) {
        assert_eq!(refused_by(refused), "budget", "{}", text_of(refused));
    }
}

#[tokio::test]
async fn one_approval_used_concurrently_on_two_replicas_sends_once() {
    let Some(r) = replicas("approval", 2, GatewayOptions::default()).await else {
        return;
    };
    let notifier = |g: &TestGateway| {
        g.token(&TokenSpec {
            user: "svc-notify",
            tenant: Some("acme"),
            roles: vec![],
            agent: Some("notification-service"),
            service: Some("notification-service"),
        })
    };
    let one = r.gateways[0].client(&notifier(&r.gateways[0])).await;
    let two = r.gateways[1].client(&notifier(&r.gateways[1])).await;
    let send = json!({"draft_id": "draft-906"});
    let first = call_with_meta(
        &one,
        "case__send_approved_notice",
        send.clone(),
        key("send-0"),
    )
    .await;
    let meta = serde_json::to_value(&first.meta).expect("meta");
    let approval = meta["dev.capgate/decision"]["approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an approval was opened: {meta}"))
        .to_string();
    // Approved through the other replica.
    let bob = r.gateways[1].token(&TokenSpec {
        user: "bob",
        tenant: Some("acme"),
        roles: vec!["senior_reviewer"],
        agent: None,
        service: None,
    });
    let (status, body) = r.gateways[1]
        .admin_post_as(&bob, &format!("/approvals/{approval}/approve"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Ten uses at once, five on each replica, each with its own key.
    let results = join_all((0..10).map(|i| {
        let client = if i % 2 == 0 { &one } else { &two };
        call_with_meta(
            client,
            "case__send_approved_notice",
            send.clone(),
            json!({"dev.capgate/idempotency-key": format!("send-{}", i + 1), "dev.capgate/approval": approval}),
        )
    }))
    .await;
    assert_eq!(results.iter().filter(|r| ok(r)).count(), 1, "one send");
    assert_eq!(
        r.effects("send_approved_notice").len(),
        1,
        "one notice sent"
    );
    for refused in results.iter().filter(|r| !ok(r)) {
        assert_eq!(refused_by(refused), "approval", "{}", text_of(refused));
    }
}

#[tokio::test]
async fn controls_changed_through_one_replica_bind_the_others_within_a_second() {
    let Some(r) = replicas("controls", 3, GatewayOptions::default()).await else {
        return;
    };
    let limit = Duration::from_secs(1);
    let mut alices = Vec::new();
    for g in &r.gateways {
        alices.push(
            g.client(&g.token(&analyst("acme", "alice", "drafting-agent")))
                .await,
        );
    }
    let own_case = json!({"case_id": "case-101"});
    let others_case = json!({"case_id": "case-103"});
    for alice in &alices {
        assert!(served(alice, &own_case).await);
        assert!(!served(alice, &others_case).await, "not alice's");
    }

    // A kill switch flipped through replica 1.
    let admin = r.gateways[0].platform_admin_token();
    let (status, body) = r.gateways[0]
        .admin_post_as(
            &admin,
            "/admin/kill-switches",
            json!({"scope": "tool", "target": "case__read_case", "reason": "INC-7 contain the leak"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for replica in [1, 2] {
        let (alice, case) = (&alices[replica], &own_case);
        let took = within(limit, move || async move { !served(alice, case).await }).await;
        assert!(took.is_some(), "replica {} still serves", replica + 1);
    }
    let (status, body) = r.gateways[0]
        .admin_post_as(
            &admin,
            "/admin/kill-switches/lift",
            json!({"scope": "tool", "target": "case__read_case"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for replica in [1, 2] {
        let (alice, case) = (&alices[replica], &own_case);
        let took = within(limit, move || served(alice, case)).await;
        assert!(took.is_some(), "replica {} stays stopped", replica + 1);
    }

    // A break-glass grant opened and revoked through replica 1.
    let erin = r.gateways[0].token(&TokenSpec {
        user: "erin",
        tenant: Some("acme"),
        roles: vec!["break-glass"],
        agent: None,
        service: None,
    });
    let (status, body) = r.gateways[0]
        .admin_post_as(
            &erin,
            "/break-glass",
            json!({"user": "alice", "tool": "case__read_case", "reason": "incident review of case 103", "expires_in_seconds": 600}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let grant = body["grant"]["id"].as_str().expect("grant id").to_string();
    for replica in [1, 2] {
        let (alice, case) = (&alices[replica], &others_case);
        let took = within(limit, move || served(alice, case)).await;
        assert!(took.is_some(), "replica {} ignores the grant", replica + 1);
    }
    let (status, body) = r.gateways[0]
        .admin_post_as(&erin, &format!("/break-glass/{grant}/revoke"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    for replica in [1, 2] {
        let (alice, case) = (&alices[replica], &others_case);
        let took = within(limit, move || async move { !served(alice, case).await }).await;
        assert!(
            took.is_some(),
            "replica {} still honours the revoked grant",
            replica + 1
        );
    }

    // A relationship update made through replica 1: case-103 assigned to alice.
    let entities: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("policies/entities/case-platform.json"))
            .expect("entities"),
    )
    .expect("entity json");
    let mut case = entities
        .as_array()
        .expect("entity list")
        .iter()
        .find(|e| e["uid"]["id"] == "case-103")
        .expect("case-103")
        .clone();
    case["attrs"]["assignees"]
        .as_array_mut()
        .expect("assignees")
        .push(json!({"__entity": {"type": "User", "id": "alice"}}));
    let (status, body) = r.gateways[0]
        .admin_post_as(&admin, "/admin/relationships", json!([case]))
        .await;
    assert_eq!(status, 200, "{body}");
    for replica in [1, 2] {
        let (alice, case) = (&alices[replica], &others_case);
        let took = within(limit, move || served(alice, case)).await;
        assert!(
            took.is_some(),
            "replica {} missed the relationship update",
            replica + 1
        );
    }
}

/// Side-effect calls per second through 1, 2 and 3 replicas on PostgreSQL and 1 on SQLite, and
/// the latency of one call alone on each (`cargo test --release --test suite -- --ignored replicas::side_effect_throughput
/// --nocapture`). Everything shares this machine: replicas, downstreams, database and clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it by name"]
async fn side_effect_throughput_through_replicas() {
    const WORKERS: usize = 12;
    const WINDOW: Duration = Duration::from_secs(5);
    let options = GatewayOptions {
        enforcement: Some(
            "max_calls_per_run = 10000000\nmax_calls_per_tool = 10000000\nmax_cost_per_run = 100000000".into(),
        ),
        limits: Some("requests_per_second = 100000\nrequest_burst = 100000\nconcurrent_requests_per_principal = 1000".into()),
        ..Default::default()
    };
    let mut setups: Vec<(String, Option<Replicas>, Vec<TestGateway>)> = Vec::new();
    setups.push((
        "1 replica, SQLite".into(),
        None,
        vec![TestGateway::start(options.clone()).await],
    ));
    for n in 1..=3 {
        let Some(r) = replicas("bench", n, options.clone()).await else {
            return;
        };
        setups.push((format!("{n} replica(s), PostgreSQL"), Some(r), Vec::new()));
    }
    for (label, replicas, own) in &setups {
        let gateways: Vec<&TestGateway> = match replicas {
            Some(r) => r.gateways.iter().collect(),
            None => own.iter().collect(),
        };
        let mut clients = Vec::new();
        for g in &gateways {
            let token = g.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-bench");
            clients.push(Arc::new(g.client(&token).await));
        }
        // One call alone, 50 times: the median latency.
        let mut alone = Vec::new();
        for i in 0..50 {
            let started = Instant::now();
            let result = call_with_meta(
                &clients[0],
                "case__create_notice_draft",
                json!({"case_id": "case-101", "body": format!("alone {i}")}),
                key(&format!("alone-{i}")),
            )
            .await;
            assert!(ok(&result), "{}", text_of(&result));
            alone.push(started.elapsed());
        }
        alone.sort();
        let started = Instant::now();
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                let client = clients[w % clients.len()].clone();
                tokio::spawn(async move {
                    let (mut done, mut n) = (0, 0);
                    while started.elapsed() < WINDOW {
                        let result = call_with_meta(
                            &client,
                            "case__create_notice_draft",
                            json!({"case_id": "case-101", "body": format!("w{w} {n}")}),
                            key(&format!("w{w}-{n}")),
                        )
                        .await;
                        done += usize::from(ok(&result));
                        n += 1;
                    }
                    done
                })
            })
            .collect();
        let mut performed = 0;
        for task in tasks {
            performed += task.await.expect("worker");
        }
        let rate = performed as f64 / started.elapsed().as_secs_f64();
        println!(
            "{label}: {rate:.0} side-effect calls/s with {WORKERS} concurrent clients; one call alone: p50 {:.2} ms",
            alone[alone.len() / 2].as_secs_f64() * 1000.0
        );
    }
}
