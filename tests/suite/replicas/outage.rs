//! The database going away: calls that need the store are refused, fail-open reads pass
//! (decided, marked degraded, recorded and counted), and once it is back calls succeed on the
//! same replicas with nothing lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capgate::store::test_db::server_url;

use super::*;

/// The test database away, as an outage looks to replicas (no new connections, every open one
/// killed), and back; through a connection to the server's own database.
struct Outage {
    admin: tokio_postgres::Client,
    database: String,
}

impl Outage {
    async fn of(db: &TestDatabase) -> Self {
        let (admin, connection) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
            .await
            .expect("an admin connection to the test server");
        tokio::spawn(connection);
        Self {
            admin,
            database: db.name.clone(),
        }
    }

    async fn away(&self) {
        self.admin
            .batch_execute(&format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
                self.database
            ))
            .await
            .expect("disallow connections");
        self.admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&self.database],
            )
            .await
            .expect("terminate");
    }

    async fn back(&self) {
        self.admin
            .batch_execute(&format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                self.database
            ))
            .await
            .expect("allow connections");
    }
}

/// One side-effect call of the load: its key, when it ran, whether it was performed.
struct Attempt {
    key: String,
    started: Instant,
    ended: Instant,
    ok: bool,
    refused_by: String,
}

#[tokio::test]
async fn the_database_going_away_under_load_refuses_calls_and_loses_nothing() {
    let Some(r) = replicas(
        "outage",
        3,
        GatewayOptions {
            // A claim whose admission committed unseen (the connection died in COMMIT's
            // answer) frees after this lease; longer than the downstream timeout.
            enforcement: Some(
                "idempotency_lease_seconds = 5\nmax_calls_per_run = 100000\nmax_calls_per_tool = 100000\nmax_cost_per_run = 1000000".into(),
            ),
            case_timeout_ms: Some(3000),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let clients: Vec<Arc<Client>> = r
        .clients(&analyst("acme", "alice", "drafting-agent"), "run-outage")
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let load_from = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..6 {
        let (client, attempts, stop) =
            (clients[worker % 3].clone(), attempts.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key_text = format!("w{worker}-{n}");
                n += 1;
                let started = Instant::now();
                let result = call_with_meta(
                    &client,
                    "case__create_notice_draft",
                    json!({"case_id": "case-101", "body": key_text.clone()}),
                    key(&key_text),
                )
                .await;
                let attempt = Attempt {
                    key: key_text,
                    started,
                    ended: Instant::now(),
                    ok: ok(&result),
                    refused_by: refused_by(&result),
                };
                attempts.lock().expect("attempts").push(attempt);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    let outage = Outage::of(&r.db).await;
    let performed_since = |since: Instant| {
        let attempts = attempts.clone();
        move || {
            let attempts = attempts.clone();
            async move {
                let attempts = attempts.lock().expect("attempts");
                attempts
                    .iter()
                    .filter(|a| a.started > since && a.ok)
                    .count()
                    >= 6
            }
        }
    };
    let served = within(Duration::from_secs(30), performed_since(load_from)).await;
    assert!(served.is_some(), "calls are performed before the outage");
    outage.away().await;
    let away_from = Instant::now();
    let grace = Duration::from_millis(200);
    // The change feed says it is down (scraped on the admin listener).
    let feed_down = within(Duration::from_secs(2), || async {
        r.gateways[2]
            .metrics_text()
            .await
            .contains("capgate_store_change_feed_up 0")
    })
    .await;
    assert!(feed_down.is_some(), "the change feed reports the outage");
    // Away until every worker has met it more than once.
    let refused_enough = within(Duration::from_secs(30), || async {
        let attempts = attempts.lock().expect("attempts");
        attempts
            .iter()
            .filter(|a| a.started > away_from + grace && !a.ok)
            .count()
            >= 12
    })
    .await;
    assert!(refused_enough.is_some(), "calls are made while it is away");
    let away_until = Instant::now();
    outage.back().await;
    let recovered = within(Duration::from_secs(30), performed_since(away_until)).await;
    assert!(recovered.is_some(), "calls are performed once it is back");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    // Every replica's change feed is back (reconnected and resynced) without a restart.
    for g in &r.gateways {
        let back = within(Duration::from_secs(5), || async {
            g.metrics_text()
                .await
                .contains("capgate_store_change_feed_up 1")
        })
        .await;
        assert!(back.is_some(), "the change feed reconnects");
    }
    for worker in workers {
        worker.await.expect("worker");
    }

    let attempts = std::mem::take(&mut *attempts.lock().expect("attempts"));
    let while_away: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.started > away_from + grace && a.ended < away_until)
        .collect();
    assert!(!while_away.is_empty(), "calls were made while it was away");
    for attempt in &while_away {
        assert!(
            !attempt.ok,
            "{} was performed without its store",
            attempt.key
        );
        assert_eq!(attempt.refused_by, "store_unavailable", "{}", attempt.key);
    }
    println!(
        "{} calls: {} performed before the outage, {} refused while away, {} performed after",
        attempts.len(),
        attempts
            .iter()
            .filter(|a| a.started < away_from && a.ok)
            .count(),
        while_away.len(),
        attempts
            .iter()
            .filter(|a| a.started > away_until && a.ok)
            .count()
    );
    let recovered = attempts.iter().any(|a| a.started > away_until && a.ok);
    assert!(recovered, "calls succeed once the database is back");
    assert!(
        attempts
            .iter()
            .filter(|a| a.started < away_from && a.ok)
            .count()
            > 0,
        "calls succeeded before"
    );

    // Every refused key, retried with the same call, is performed (or replayed) once.
    let mut keys: Vec<String> = attempts.iter().map(|a| a.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in attempts.iter().filter(|a| !a.ok) {
        let index: usize = attempt.key[1..2].parse().expect("worker index");
        loop {
            let retry = call_with_meta(
                &clients[index % 3],
                "case__create_notice_draft",
                json!({"case_id": "case-101", "body": attempt.key}),
                key(&attempt.key),
            )
            .await;
            if ok(&retry) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} still refused: {}",
                attempt.key,
                text_of(&retry)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let effects = r.effects("create_notice_draft");

    // Every chain verifies, and every effect has its durable allow record in one of them.
    let verified = verify_every_chain(&r).await;
    assert!(verified.contains("3 chain(s)"), "{verified}");
    let allowed = allow_records(&r, "case__create_notice_draft");
    assert!(
        allowed >= effects.len(),
        "{allowed} allow records for {} effects",
        effects.len()
    );
    let mut performed: Vec<String> = effects
        .iter()
        .map(|e| e["arguments"]["body"].as_str().unwrap_or("").to_string())
        .collect();
    performed.sort();
    assert_eq!(performed, keys, "every key performed exactly once");
}

/// Whether a result is marked as let through while the store was away.
fn degraded(result: &rmcp::model::CallToolResult) -> bool {
    serde_json::to_value(&result.meta).expect("meta")["dev.capgate/degraded"] == true
}

/// `capgate_degraded_calls_total` for `tool` in a `/metrics` text (0 when absent).
fn degraded_count(metrics: &str, tool: &str) -> usize {
    let series = format!("capgate_degraded_calls_total{{tool=\"{tool}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.trim().parse().expect("a count"))
        .unwrap_or(0)
}

#[tokio::test]
async fn only_fail_open_reads_pass_while_the_database_is_away_marked_recorded_and_counted() {
    let Some(r) = replicas("degraded", 2, GatewayOptions::default()).await else {
        return;
    };
    let clients = r
        .clients(&analyst("acme", "alice", "drafting-agent"), "run-degraded")
        .await;
    let own_case = json!({"case_id": "case-101"});
    let evidence = json!({"case_id": "case-101", "query": "loan"});
    for client in &clients {
        let read = call(client, "case__read_case", own_case.clone()).await;
        assert!(ok(&read) && !degraded(&read), "{}", text_of(&read));
    }
    let outage = Outage::of(&r.db).await;
    outage.away().await;

    let mut passed = vec![0; clients.len()];
    for (i, client) in clients.iter().enumerate() {
        // `case__read_case` is a low-risk read with fail_open: it passes, marked degraded.
        for _ in 0..3 {
            let read = call(client, "case__read_case", own_case.clone()).await;
            assert!(ok(&read), "replica {}: {}", i + 1, text_of(&read));
            assert!(degraded(&read), "replica {}: not marked degraded", i + 1);
            passed[i] += 1;
        }
        // Degraded is still decided: a case that is not alice's is refused by policy.
        let others = call(client, "case__read_case", json!({"case_id": "case-103"})).await;
        assert!(!ok(&others), "{}", text_of(&others));
        assert_eq!(refused_by(&others), "policy", "{}", text_of(&others));
        // A low-risk read without fail_open, and a side effect, fail closed.
        let search = call(client, "case__search_evidence", evidence.clone()).await;
        assert_eq!(
            refused_by(&search),
            "store_unavailable",
            "{}",
            text_of(&search)
        );
        let draft = call_with_meta(
            client,
            "case__create_notice_draft",
            json!({"case_id": "case-101", "body": format!("while away {i}")}),
            key(&format!("away-{i}")),
        )
        .await;
        assert_eq!(
            refused_by(&draft),
            "store_unavailable",
            "{}",
            text_of(&draft)
        );
    }
    assert!(r.effects("search_evidence").is_empty());
    assert!(r.effects("create_notice_draft").is_empty());
    for (i, g) in r.gateways.iter().enumerate() {
        // Counted where they passed.
        let metrics = g.metrics_text().await;
        assert_eq!(
            degraded_count(&metrics, "case__read_case"),
            passed[i],
            "replica {}: {metrics}",
            i + 1
        );
        // Their records wait in memory for the database.
        let health = g.health().await;
        let unwritten = health["decision_log"]["unwritten_records"].as_u64();
        assert!(
            unwritten.is_some_and(|n| n > 0),
            "replica {}: {health}",
            i + 1
        );
    }

    // Back: the same replicas serve as before, without a restart.
    outage.back().await;
    // Reads that pass while the replica reconnects may still be degraded: counted too.
    let reconnecting = std::sync::atomic::AtomicUsize::new(0);
    for (i, client) in clients.iter().enumerate() {
        let (client, case, reconnecting) = (client, &own_case, &reconnecting);
        let undegraded = within(Duration::from_secs(10), move || async move {
            let read = call(client, "case__read_case", case.clone()).await;
            if ok(&read) && degraded(&read) {
                reconnecting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            ok(&read) && !degraded(&read)
        })
        .await;
        assert!(undegraded.is_some(), "replica {} reads undegraded", i + 1);
        let search = call(client, "case__search_evidence", evidence.clone()).await;
        assert!(ok(&search), "{}", text_of(&search));
        let draft = call_with_meta(
            client,
            "case__create_notice_draft",
            json!({"case_id": "case-101", "body": format!("after {i}")}),
            key(&format!("after-{i}")),
        )
        .await;
        assert!(ok(&draft), "{}", text_of(&draft));
    }
    assert_eq!(r.effects("create_notice_draft").len(), clients.len());

    // Every record made while away reached its replica's chain, nothing was lost, and every
    // chain verifies.
    let verified = verify_every_chain(&r).await;
    assert!(verified.contains("2 chain(s)"), "{verified}");
    for g in &r.gateways {
        let health = g.health().await;
        assert_eq!(health["decision_log"]["unwritten_records"], 0, "{health}");
        assert_eq!(health["decision_log"]["failed_records"], 0, "{health}");
    }
    let records: Vec<Value> = exported(&r)
        .into_iter()
        .map(|line| line["record"].clone())
        .filter(|record| {
            record["run_id"] == "run-degraded" && record["downstream_outcome"].is_null()
        })
        .collect();
    let count = |resource: &str, decision: &str, mode: &str| {
        records
            .iter()
            .filter(|r| r["resource"] == resource && r["decision"] == decision && r["mode"] == mode)
            .count()
    };
    assert_eq!(
        count("case__read_case", "allow", "degraded"),
        passed.iter().sum::<usize>() + reconnecting.into_inner(),
        "every degraded read has its decision record, marked degraded"
    );
    assert_eq!(count("case__read_case", "deny", "degraded"), clients.len());
    let fail_closed = records
        .iter()
        .filter(|r| r["refused_by"] == "store_unavailable")
        .count();
    assert_eq!(
        fail_closed,
        2 * clients.len(),
        "the refusals are recorded too"
    );
}
