//! Idempotency keys and the claims they take: replays are decision records pointing at the
//! original and the chain verifies; a claim left by a killed gateway performs once its lease
//! has passed; a call that may have acted is never performed again under its key; max_calls
//! holds under concurrency, and scope keys are structures (slashes never share a scope).

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn replays_are_records_pointing_at_the_original_and_the_chain_verifies() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let draft = json!({"case_id": "case-101", "body": "Notice of investigation"});
    let first = call_with_meta(
        &alice,
        "case__create_notice_draft",
        draft.clone(),
        key("replay-1"),
    )
    .await;
    assert_ne!(first.is_error, Some(true), "{}", text_of(&first));
    const N: usize = 5;
    for _ in 0..N {
        let again = call_with_meta(
            &alice,
            "case__create_notice_draft",
            draft.clone(),
            key("replay-1"),
        )
        .await;
        let meta = serde_json::to_value(&again.meta).expect("meta");
        assert_eq!(meta["dev.capgate/replay"], true, "{meta}");
        assert_eq!(text_of(&again), text_of(&first));
    }
    assert_eq!(drafts_created(&gateway), 1, "one downstream effect");

    let records = flushed_records(&gateway).await;
    let calls: Vec<&Value> = records
        .iter()
        .filter(|r| r["resource"] == "case__create_notice_draft")
        .collect();
    let original = calls
        .iter()
        .find(|r| r["decision"] == "allow" && r["downstream_outcome"].is_null())
        .expect("the original's decision record");
    let replays: Vec<&&Value> = calls.iter().filter(|r| r["decision"] == "replay").collect();
    assert_eq!(replays.len(), N, "{calls:?}");
    for replay in &replays {
        assert_eq!(replay["replay_of"], original["request_id"]);
        assert_ne!(replay["request_id"], original["request_id"]);
    }
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["audit", "verify", "--data-dir"])
        .arg(gateway.dir.path().join("data"))
        .output()
        .expect("capgate audit verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A test policy: the drafting agent's calls of the flaky server's `debug_sleep` need an
/// idempotency key, and its `read_memory` is limited to three calls per run.
const FLAKY_OBLIGATIONS: &str = r#"
@id("test-sleep-needs-a-key")
@obligation("require_idempotency")
permit (
  principal in AgentRole::"drafting-agent",
  action == Action::"call_tool",
  resource is Tool
)
when { resource.server == "flaky" && resource.name == "debug_sleep" };

@id("test-memory-three-per-run")
@obligation("max_calls:3")
permit (
  principal in AgentRole::"drafting-agent",
  action == Action::"call_tool",
  resource is Tool
)
when { resource.server == "flaky" && resource.name == "read_memory" };
"#;

fn sleeps(gateway: &TestGateway, ms: u64) -> usize {
    gateway
        .flaky_journal_entries()
        .iter()
        .filter(|e| e["name"] == "debug_sleep" && e["arguments"]["ms"] == ms)
        .count()
}

async fn flaky_gateway() -> TestGateway {
    TestGateway::start(GatewayOptions {
        admin: true,
        with_flaky: true,
        flaky_timeout_ms: Some(2_000),
        case_timeout_ms: Some(2_000),
        enforcement: Some("idempotency_lease_seconds = 3".into()),
        extra_policies: vec![("test-obligations.cedar".into(), FLAKY_OBLIGATIONS.into())],
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_claim_left_by_a_killed_gateway_performs_once_its_lease_has_passed() {
    let gateway = flaky_gateway().await;
    let token = gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-lease");
    let client = gateway.client(&token).await;
    let sleep = json!({"ms": 1500});

    // The gateway dies while the downstream works on the call: its claim stays behind.
    let pending = tokio::spawn(async move {
        call_with_meta(
            &client,
            "flaky__debug_sleep",
            json!({"ms": 1500}),
            key("lease-1"),
        )
        .await
    });
    until("the downstream starts the call", || async {
        sleeps(&gateway, 1500) > 0
    })
    .await;
    gateway.restart().await;
    pending.abort();

    // Before the lease has passed, a retry is refused as in flight.
    let client = gateway.client(&token).await;
    let early = call_with_meta(&client, "flaky__debug_sleep", sleep.clone(), key("lease-1")).await;
    assert_eq!(early.is_error, Some(true));
    assert!(
        text_of(&early).contains("still in progress"),
        "{}",
        text_of(&early)
    );

    // Once it has passed (the injected clock moves past the 3 s lease), concurrent retries
    // perform exactly once; the rest are refused as in flight.
    gateway.advance_clock(4);
    let client = std::sync::Arc::new(client);
    let retries = (0..8).map(|_| {
        let client = client.clone();
        let sleep = sleep.clone();
        tokio::spawn(async move {
            call_with_meta(&client, "flaky__debug_sleep", sleep, key("lease-1")).await
        })
    });
    let results = futures::future::join_all(retries).await;
    for result in results {
        let result = result.expect("task");
        if result.is_error == Some(true) {
            assert!(
                text_of(&result).contains("still in progress"),
                "{}",
                text_of(&result)
            );
        }
    }
    let replay = call_with_meta(&client, "flaky__debug_sleep", sleep, key("lease-1")).await;
    let meta = serde_json::to_value(&replay.meta).expect("meta");
    assert_eq!(
        meta["dev.capgate/replay"],
        true,
        "{meta} {}",
        text_of(&replay)
    );
    assert_eq!(
        sleeps(&gateway, 1500),
        2,
        "once before the crash, once after the lease"
    );
}

#[tokio::test]
async fn max_calls_holds_under_concurrency_and_slashes_never_share_a_scope() {
    let gateway = flaky_gateway().await;
    let client = std::sync::Arc::new(
        gateway
            .client(&gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-max"))
            .await,
    );
    let calls = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(
            async move { call(&client, "flaky__read_memory", json!({"scope": "user"})).await },
        )
    });
    let results = futures::future::join_all(calls).await;
    let texts: Vec<String> = results
        .iter()
        .map(|r| r.as_ref().map(text_of).unwrap_or_default())
        .collect();
    // Refusals carry capgate's decision; what the downstream answered does not.
    let refused = |r: &rmcp::model::CallToolResult| {
        serde_json::to_value(&r.meta).is_ok_and(|m| m.get("dev.capgate/decision").is_some())
    };
    let allowed = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| !refused(r)))
        .count();
    let forwarded = gateway
        .flaky_journal_entries()
        .iter()
        .filter(|e| e["name"] == "read_memory")
        .count();
    assert_eq!(forwarded, 3, "exactly max_calls forwarded: {texts:?}");
    assert_eq!(allowed, 3, "{texts:?}");

    // `org/alice` with agent `bot` and `org` with agent `alice/bot`: same key, same call, yet
    // each performs its own (the second is no replay of the first).
    let actor = |user: &str, agent: &str| {
        let mut claims = claims(
            &TokenSpec {
                user: "placeholder",
                tenant: Some("acme"),
                roles: vec!["analyst"],
                agent: None,
                service: Some("agent-runtime"),
            },
            &gateway.url,
        );
        claims.insert("sub".into(), user.into());
        claims.insert(
            "act".into(),
            json!({"sub": agent, "agent_role": "drafting-agent"}),
        );
        sign_hs256(&claims, TEST_SECRET.as_bytes())
    };
    for (user, agent) in [("org/alice", "bot"), ("org", "alice/bot")] {
        let client = gateway.client(&actor(user, agent)).await;
        let result = call_with_meta(
            &client,
            "flaky__debug_sleep",
            json!({"ms": 1}),
            key("shared"),
        )
        .await;
        assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
        let meta = serde_json::to_value(&result.meta).expect("meta");
        assert!(
            meta.get("dev.capgate/replay").is_none(),
            "{user}+{agent} got a replay: {meta}"
        );
    }
    assert_eq!(sleeps(&gateway, 1), 2, "each actor performed its own call");
}

#[tokio::test]
async fn a_call_that_may_have_acted_is_never_performed_again_under_its_key() {
    let gateway = flaky_gateway().await;
    let client = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-timeout"))
        .await;
    // Longer than the flaky server's 2 s timeout: the downstream may act after capgate gave up.
    let slow = json!({"ms": 2500});
    let first = call_with_meta(&client, "flaky__debug_sleep", slow.clone(), key("slow-1")).await;
    assert_eq!(first.is_error, Some(true));
    assert!(
        text_of(&first).contains("did not answer"),
        "{}",
        text_of(&first)
    );
    let retry = call_with_meta(&client, "flaky__debug_sleep", slow, key("slow-1")).await;
    assert_eq!(retry.is_error, Some(true));
    let meta = serde_json::to_value(&retry.meta).expect("meta");
    assert_eq!(
        meta["dev.capgate/replay"],
        true,
        "{meta} {}",
        text_of(&retry)
    );
    assert!(
        text_of(&retry).contains("may have acted"),
        "{}",
        text_of(&retry)
    );
    assert_eq!(sleeps(&gateway, 2500), 1, "performed once");
}
