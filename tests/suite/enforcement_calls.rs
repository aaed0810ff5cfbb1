//! Enforcement controls on each call, with real MCP traffic: idempotency of side effects, run
//! budgets that survive a restart, fail-closed side effects and fail-open reads while the store
//! is down, and obligations applied before the agent sees a result.

use crate::common::*;
use serde_json::json;

fn drafts_received(gateway: &TestGateway) -> usize {
    gateway
        .journal_entries()
        .iter()
        .filter(|e| e["name"] == "create_notice_draft")
        .count()
}

#[tokio::test]
async fn concurrent_identical_side_effects_with_one_key_run_once() {
    // All 50 calls in progress at once must reach the key: above the default of 32 a principal
    // may have in progress, a busy machine answers the rest 429 before they do.
    let gateway = TestGateway::start(GatewayOptions {
        limits: Some("concurrent_requests_per_principal = 64".into()),
        ..GatewayOptions::default()
    })
    .await;
    let token = gateway.token(&analyst("acme", "alice", "drafting-agent"));
    let client = std::sync::Arc::new(gateway.client(&token).await);
    let draft = json!({"case_id": "case-101", "body": "Notice of investigation"});

    // No key: refused with a clear error, nothing reaches the downstream.
    let keyless = call(&client, "case__create_notice_draft", draft.clone()).await;
    assert_eq!(keyless.is_error, Some(true));
    assert!(
        text_of(&keyless).contains("idempotency key"),
        "{}",
        text_of(&keyless)
    );
    assert_eq!(drafts_received(&gateway), 0);

    // 50 concurrent identical calls with one key: the downstream performs exactly one.
    let calls = (0..50).map(|_| {
        let client = client.clone();
        let draft = draft.clone();
        tokio::spawn(async move {
            call_with_meta(&client, "case__create_notice_draft", draft, key("notice-1")).await
        })
    });
    let results: Vec<_> = futures::future::join_all(calls).await;
    let mut performed_or_replayed = 0;
    let mut in_flight = 0;
    for result in results {
        let result = result.expect("task");
        if result.is_error == Some(true) {
            assert!(
                text_of(&result).contains("still in progress"),
                "{}",
                text_of(&result)
            );
            in_flight += 1;
        } else {
            performed_or_replayed += 1;
        }
    }
    assert_eq!(drafts_received(&gateway), 1, "exactly one draft created");
    assert!(performed_or_replayed >= 1);
    assert_eq!(performed_or_replayed + in_flight, 50);

    // A retry with the key returns the stored result, marked as a replay, with no new call.
    let replay = call_with_meta(
        &client,
        "case__create_notice_draft",
        draft.clone(),
        key("notice-1"),
    )
    .await;
    assert_ne!(replay.is_error, Some(true), "{}", text_of(&replay));
    let meta = serde_json::to_value(&replay.meta).expect("meta");
    assert_eq!(meta["dev.capgate/replay"], true, "{meta}");
    assert_eq!(drafts_received(&gateway), 1);

    // The same key with a changed argument is refused.
    let changed = call_with_meta(
        &client,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "A different notice"}),
        key("notice-1"),
    )
    .await;
    assert_eq!(changed.is_error, Some(true));
    assert!(
        text_of(&changed).contains("different call"),
        "{}",
        text_of(&changed)
    );
    assert_eq!(drafts_received(&gateway), 1);

    // Another actor's same key is another scope.
    let carol = gateway
        .client(&gateway.token(&analyst("globex", "carol", "drafting-agent")))
        .await;
    let other = call_with_meta(
        &carol,
        "case__create_notice_draft",
        json!({"case_id": "case-201", "body": "Notice"}),
        key("notice-1"),
    )
    .await;
    assert_ne!(other.is_error, Some(true), "{}", text_of(&other));
    assert_eq!(drafts_received(&gateway), 2);
}

#[tokio::test]
async fn an_exhausted_run_is_denied_and_stays_denied_across_a_restart() {
    let gateway = TestGateway::start(GatewayOptions {
        enforcement: Some(
            "max_calls_per_run = 3\nmax_calls_per_tool = 10\nmax_cost_per_run = 100".into(),
        ),
        ..Default::default()
    })
    .await;
    let token = gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-7");
    let client = gateway.client(&token).await;
    for _ in 0..3 {
        let read = call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
        assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    }
    let fourth = call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_eq!(fourth.is_error, Some(true));
    assert!(text_of(&fourth).contains("budget"), "{}", text_of(&fourth));

    gateway.restart().await;
    let client = gateway.client(&token).await;
    let after = call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_eq!(after.is_error, Some(true), "the budget is durable");
    assert!(text_of(&after).contains("budget"), "{}", text_of(&after));
    // Another run has its own budget.
    let other_run = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-8"))
        .await;
    let fresh = call(
        &other_run,
        "case__read_case",
        json!({"case_id": "case-101"}),
    )
    .await;
    assert_ne!(fresh.is_error, Some(true), "{}", text_of(&fresh));
    let reads = gateway
        .journal_entries()
        .iter()
        .filter(|e| e["name"] == "read_case")
        .count();
    assert_eq!(reads, 4, "refused calls never reached the downstream");
}

#[tokio::test]
async fn with_the_store_unavailable_side_effects_fail_closed_and_fail_open_reads_pass() {
    // A shared store (another process may open it, as the sqlite3 shell does) can be held up
    // by that process; the default, exclusive store refuses such a process at start.
    let gateway = TestGateway::start(GatewayOptions {
        store: Some("sqlite_locking = \"shared\"".into()),
        ..Default::default()
    })
    .await;
    let client = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    // Another process-level writer holds the database's write lock: the store cannot commit.
    let db =
        rusqlite::Connection::open(gateway.dir.path().join("data/capgate.db")).expect("open db");
    db.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");

    let side_effect = call_with_meta(
        &client,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "Notice"}),
        key("while-down-1"),
    )
    .await;
    assert_eq!(side_effect.is_error, Some(true));
    assert!(
        text_of(&side_effect).contains("fails closed"),
        "{}",
        text_of(&side_effect)
    );
    assert_eq!(drafts_received(&gateway), 0);

    let read = call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    let meta = serde_json::to_value(&read.meta).expect("meta");
    assert_eq!(meta["dev.capgate/degraded"], true, "{meta}");
    // Reads that are not fail_open are refused.
    let search = call(
        &client,
        "case__search_evidence",
        json!({"case_id": "case-101", "query": "loan"}),
    )
    .await;
    assert_eq!(search.is_error, Some(true));

    // Both are recorded.
    let log = gateway.log();
    assert!(log.contains("fail_open read passes degraded"), "{log}");
    assert!(log.contains("refused_by=\"store_unavailable\""), "{log}");

    db.execute_batch("ROLLBACK").expect("release");
    let after = call_with_meta(
        &client,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "Notice"}),
        key("after-recovery"),
    )
    .await;
    assert_ne!(after.is_error, Some(true), "{}", text_of(&after));
}

#[tokio::test]
async fn obligations_redact_before_the_agent_sees_the_result() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let risk = gateway
        .client(&gateway.token(&analyst("acme", "alice", "risk-agent")))
        .await;
    let drafting = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;

    // redact:assigned_users for the risk agent, in structured and text content alike.
    let redacted = call(&risk, "case__read_case", json!({"case_id": "case-102"})).await;
    assert_ne!(redacted.is_error, Some(true), "{}", text_of(&redacted));
    let structured = redacted
        .structured_content
        .clone()
        .expect("structured")
        .to_string();
    assert!(
        !structured.contains("assigned_users") && !structured.contains("bob"),
        "{structured}"
    );
    assert!(
        !text_of(&redacted).contains("assigned_users"),
        "{}",
        text_of(&redacted)
    );
    assert!(
        structured.contains("Contoso"),
        "the rest stays: {structured}"
    );
    // The drafting agent's permit carries no such obligation.
    let full = call(&drafting, "case__read_case", json!({"case_id": "case-102"})).await;
    assert!(full
        .structured_content
        .expect("structured")
        .to_string()
        .contains("assigned_users"));

    // redact_pattern:email on memory reads.
    let curator = gateway
        .client(&gateway.token(&analyst("acme", "alice", "memory-curator-agent")))
        .await;
    let wrote = call_with_meta(
        &curator,
        "case__write_memory",
        json!({"scope": "user", "key": "contact", "value": "reach j.smith@northwind.example", "sensitivity": "internal"}),
        key("mem-1"),
    )
    .await;
    assert_ne!(wrote.is_error, Some(true), "{}", text_of(&wrote));
    let read = call(
        &curator,
        "case__read_memory",
        json!({"scope": "user", "key": "contact"}),
    )
    .await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    let everything = format!(
        "{} {}",
        text_of(&read),
        read.structured_content.clone().unwrap_or_default()
    );
    assert!(!everything.contains("northwind.example"), "{everything}");
    assert!(everything.contains("[redacted email]"), "{everything}");
}
