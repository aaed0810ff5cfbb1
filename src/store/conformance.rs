//! The cases every [`Store`] must pass, run against each backend: SQLite on a temporary
//! directory, PostgreSQL on a database of its own (skipped, saying so, without a server).
//! Concurrent cases run on a multi-threaded runtime, so their transactions really overlap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

pub fn keys(user: &str, agent: &str) -> AdmissionKeys {
    AdmissionKeys {
        run: RunKey::Run {
            tenant: "acme".into(),
            run: "r1".into(),
        },
        capability: "case__create_notice_draft".into(),
        idempotency: Some(IdempotencyScope {
            tenant: "acme".into(),
            user: user.into(),
            agent: Some(agent.into()),
            tool: "case__create_notice_draft".into(),
            key: "k1".into(),
        }),
        approval: None,
        forget_before: 0,
    }
}

fn claim(request_id: &str, created_at: i64) -> AdmissionWrites {
    AdmissionWrites {
        debit: Some(2),
        claim: Some(NewClaim {
            fingerprint: "f1".into(),
            request_id: request_id.into(),
            created_at,
            lease_until: created_at + 100,
        }),
        consume_approval: false,
    }
}

/// What the store holds for `keys` now (admits with a rule that writes nothing).
async fn state_of(store: &dyn Store, keys: &AdmissionKeys) -> AdmissionState {
    let mut seen = None;
    store
        .admit(keys, &mut |state: &AdmissionState| {
            seen = Some(state.clone());
            AdmissionWrites::default()
        })
        .await
        .expect("admit");
    seen.expect("the rule ran")
}

pub async fn admission_reads_claims_writes_and_settles(store: Arc<dyn Store>) {
    let k = keys("alice", "drafting-agent");
    let mut seen = Vec::new();
    let after = store
        .admit(&k, &mut |state: &AdmissionState| {
            seen.push(state.clone());
            claim("req-1", 100)
        })
        .await
        .expect("admit");
    assert_eq!(after.calls, 1);
    assert_eq!(after.tool_calls, 1);
    assert_eq!(after.cost, 2);
    assert!(seen[0].idempotency.is_none());
    let record = state_of(store.as_ref(), &k)
        .await
        .idempotency
        .expect("claimed");
    assert_eq!(record.request_id, "req-1");
    assert_eq!(record.state, ClaimState::InFlight { lease_until: 200 });
    let scope = k.idempotency.clone().expect("scope");
    store
        .settle(&scope, &Settlement::Completed("{\"ok\":true}".into()))
        .await
        .expect("settle");
    assert_eq!(
        state_of(store.as_ref(), &k)
            .await
            .idempotency
            .expect("done")
            .state,
        ClaimState::Done {
            result: "{\"ok\":true}".into()
        }
    );
    // Another actor whose ids join to the same string has its own scope.
    let other = state_of(store.as_ref(), &keys("alice/drafting-agent", "x")).await;
    assert!(other.idempotency.is_none());
    // Usage is per run and per capability; reading it writes nothing.
    let usage = store
        .budget_usage(&k.run, "case__create_notice_draft")
        .await
        .expect("usage");
    assert_eq!(usage, after);
    let usage = store
        .budget_usage(&k.run, "case__read_case")
        .await
        .expect("usage");
    assert_eq!((usage.calls, usage.tool_calls), (1, 0));
}

pub async fn released_and_forgotten_keys_are_free_again(store: Arc<dyn Store>) {
    let mut k = keys("bob", "drafting-agent");
    let scope = k.idempotency.clone().expect("scope");
    store
        .admit(&k, &mut |_: &AdmissionState| claim("req-1", 100))
        .await
        .expect("admit");
    store
        .settle(&scope, &Settlement::Released)
        .await
        .expect("release");
    assert!(state_of(store.as_ref(), &k).await.idempotency.is_none());
    // A completed key is not released, and is forgotten only after its retention.
    store
        .admit(&k, &mut |_: &AdmissionState| claim("req-2", 100))
        .await
        .expect("admit");
    store
        .settle(&scope, &Settlement::Completed("{}".into()))
        .await
        .expect("complete");
    store
        .settle(&scope, &Settlement::Released)
        .await
        .expect("release is a no-op");
    k.forget_before = 100;
    assert!(state_of(store.as_ref(), &k).await.idempotency.is_some());
    k.forget_before = 101;
    assert!(state_of(store.as_ref(), &k).await.idempotency.is_none());
}

pub async fn kill_switches_set_replace_and_lift(store: Arc<dyn Store>) {
    let switch = |scope: KillScope, reason: &str| KillSwitch {
        scope,
        tenant: None,
        reason: reason.into(),
        set_by: "admin".into(),
        set_at: 1,
    };
    store
        .set_kill_switch(&switch(KillScope::Tool("case__read_case".into()), "first"))
        .await
        .expect("set");
    store
        .set_kill_switch(&switch(
            KillScope::Tool("case__read_case".into()),
            "incident 42",
        ))
        .await
        .expect("replace");
    store
        .set_kill_switch(&switch(KillScope::Global, "all"))
        .await
        .expect("set");
    let switches = store.kill_switches().await.expect("list");
    assert_eq!(switches.len(), 2);
    assert!(
        switches
            .iter()
            .any(|s| s.reason == "incident 42"
                && s.scope == KillScope::Tool("case__read_case".into()))
    );
    assert!(store
        .lift_kill_switch(&KillScope::Tool("case__read_case".into()), None)
        .await
        .expect("lift"));
    assert!(!store
        .lift_kill_switch(&KillScope::Tool("case__read_case".into()), None)
        .await
        .expect("lift again"));
    assert_eq!(
        store.kill_switches().await.expect("list"),
        vec![switch(KillScope::Global, "all")]
    );
    // One scope, two tenants: each its own switch; lifting one leaves the other.
    for tenant in ["acme", "globex"] {
        let mut one = switch(KillScope::User("bob".into()), "bob's incident");
        one.tenant = Some(tenant.into());
        store.set_kill_switch(&one).await.expect("set for a tenant");
    }
    let bobs = |switches: Vec<KillSwitch>| {
        switches
            .into_iter()
            .filter(|s| s.scope == KillScope::User("bob".into()))
            .count()
    };
    assert_eq!(bobs(store.kill_switches().await.expect("list")), 2);
    assert!(store
        .lift_kill_switch(&KillScope::User("bob".into()), Some("acme"))
        .await
        .expect("lift acme's"));
    let left = store.kill_switches().await.expect("list");
    assert!(
        left.iter()
            .any(|s| s.scope == KillScope::User("bob".into())
                && s.tenant.as_deref() == Some("globex"))
    );
    assert_eq!(bobs(left), 1);
}

pub async fn grants_are_used_and_revoked_once(store: Arc<dyn Store>) {
    let grant = BreakGlassGrant {
        id: "bg-1".into(),
        tenant: "acme".into(),
        user: "alice".into(),
        agent_role: None,
        tool: Some("case__read_case".into()),
        reason: "incident review".into(),
        opened_by: "erin".into(),
        opened_at: 10,
        expires_at: 70,
        uses: 0,
        revoked_by: None,
        revoked_at: None,
    };
    store.open_grant(&grant).await.expect("open");
    store.record_grant_use("bg-1").await.expect("use");
    store.record_grant_use("bg-1").await.expect("use");
    assert!(store
        .revoke_grant("bg-1", "erin", 20)
        .await
        .expect("revoke"));
    assert!(!store.revoke_grant("bg-1", "erin", 21).await.expect("again"));
    assert!(!store.revoke_grant("bg-2", "erin", 21).await.expect("none"));
    assert_eq!(
        store.grants().await.expect("grants"),
        vec![BreakGlassGrant {
            uses: 2,
            revoked_by: Some("erin".into()),
            revoked_at: Some(20),
            ..grant
        }]
    );
}

fn approval(id: &str, status: ApprovalStatus) -> Approval {
    Approval {
        id: id.into(),
        tenant: "acme".into(),
        requester: "alice".into(),
        tool: "case__send_approved_notice".into(),
        action_digest: "d".into(),
        arguments: "{}".into(),
        approver_role: "senior_reviewer".into(),
        policy_version: "v1".into(),
        created_at: 10,
        expires_at: 1000,
        status,
        decided_by: None,
        note: None,
    }
}

pub async fn approvals_are_decided_once(store: Arc<dyn Store>) {
    store
        .create_approval(&approval("ap-1", ApprovalStatus::Pending))
        .await
        .expect("create");
    store
        .create_approval(&approval("ap-2", ApprovalStatus::Pending))
        .await
        .expect("create");
    assert_eq!(store.pending_approval_count(999).await.expect("count"), 2);
    assert_eq!(store.pending_approval_count(1000).await.expect("count"), 0);
    assert!(store
        .decide_approval(
            "ap-1",
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            "sam",
            Some("checked")
        )
        .await
        .expect("decide"));
    assert!(!store
        .decide_approval(
            "ap-1",
            ApprovalStatus::Pending,
            ApprovalStatus::Rejected,
            "tom",
            None
        )
        .await
        .expect("a second decision loses"));
    let decided = store.approval("ap-1").await.expect("read").expect("exists");
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("sam"));
    assert_eq!(decided.note.as_deref(), Some("checked"));
    assert!(store.approval("ap-9").await.expect("read").is_none());
    assert_eq!(store.approvals("acme").await.expect("list").len(), 2);
    assert!(store.approvals("globex").await.expect("list").is_empty());
}

pub async fn relationship_updates_keep_their_order(store: Arc<dyn Store>) {
    let first = store
        .append_relationship_update(&[serde_json::json!({"uid": 1})], "admin", 5)
        .await
        .expect("append");
    let second = store
        .append_relationship_update(&[serde_json::json!({"uid": 2})], "admin", 6)
        .await
        .expect("append");
    assert!(second > first);
    let all = store.relationship_updates().await.expect("updates");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].entities, vec![serde_json::json!({"uid": 1})]);
    assert_eq!((all[1].by.as_str(), all[1].at), ("admin", 6));
    let after = store
        .relationship_updates_after(first)
        .await
        .expect("after");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, second);
}

/// Spawns `n` admissions of `keys_for(i)` at once under `rule`; how many wrote something.
async fn concurrently(
    store: &Arc<dyn Store>,
    n: usize,
    keys_for: impl Fn(usize) -> AdmissionKeys,
    rule: fn(&AdmissionState, usize) -> AdmissionWrites,
) -> usize {
    let admitted = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (store, admitted, start, keys) =
            (store.clone(), admitted.clone(), start.clone(), keys_for(i));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store
                .admit(&keys, &mut |state: &AdmissionState| {
                    // Widens the window between the read and the writes, as a slow PDP would.
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    let writes = rule(state, i);
                    if writes != AdmissionWrites::default() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                    writes
                })
                .await
                .expect("admit");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    admitted.load(Ordering::SeqCst)
}

pub async fn concurrent_calls_never_pass_the_budget(store: Arc<dyn Store>) {
    let with_own_key = |i: usize| {
        let mut k = keys("carol", "drafting-agent");
        if let Some(scope) = k.idempotency.as_mut() {
            scope.key = format!("k{i}");
        }
        k
    };
    let within_five = |state: &AdmissionState, _: usize| {
        if state.usage.calls < 5 {
            AdmissionWrites {
                debit: Some(1),
                ..AdmissionWrites::default()
            }
        } else {
            AdmissionWrites::default()
        }
    };
    assert_eq!(concurrently(&store, 24, with_own_key, within_five).await, 5);
    let usage = store
        .budget_usage(&with_own_key(0).run, "case__create_notice_draft")
        .await
        .expect("usage");
    assert_eq!(usage.calls, 5);
}

pub async fn concurrent_calls_with_one_key_claim_it_once(store: Arc<dyn Store>) {
    // Each call in a run of its own: only the key is shared.
    let own_run = |i: usize| {
        let mut k = keys("dave", "drafting-agent");
        k.run = RunKey::Run {
            tenant: "acme".into(),
            run: format!("run-{i}"),
        };
        k
    };
    let claim_if_free = |state: &AdmissionState, i: usize| match state.idempotency {
        None => claim(&format!("req-{i}"), 100),
        Some(_) => AdmissionWrites::default(),
    };
    assert_eq!(concurrently(&store, 24, own_run, claim_if_free).await, 1);
}

pub async fn an_approval_is_used_once_under_concurrency(store: Arc<dyn Store>) {
    store
        .create_approval(&approval("ap-once", ApprovalStatus::Approved))
        .await
        .expect("create");
    // Different runs and keys: only the approval is shared.
    let using_it = |i: usize| {
        let mut k = keys("erin", &format!("agent-{i}"));
        k.run = RunKey::Run {
            tenant: "acme".into(),
            run: format!("run-{i}"),
        };
        k.approval = Some("ap-once".into());
        k
    };
    let use_if_approved = |state: &AdmissionState, _: usize| match &state.approval {
        Some(a) if a.status == ApprovalStatus::Approved => AdmissionWrites {
            consume_approval: true,
            ..AdmissionWrites::default()
        },
        _ => AdmissionWrites::default(),
    };
    assert_eq!(concurrently(&store, 16, using_it, use_if_approved).await, 1);
    assert_eq!(
        store
            .approval("ap-once")
            .await
            .expect("read")
            .expect("exists")
            .status,
        ApprovalStatus::Consumed
    );
}

/// Runs every case, each on a store of its own from `open`: an async fn giving
/// `Option<(Arc<dyn Store>, guard)>` (`None`: skipped), the guard kept until the case ends.
macro_rules! store_conformance_cases {
    ($open:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn admission_reads_claims_writes_and_settles() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::admission_reads_claims_writes_and_settles(store).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn released_and_forgotten_keys_are_free_again() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::released_and_forgotten_keys_are_free_again(store).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn kill_switches_set_replace_and_lift() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::kill_switches_set_replace_and_lift(store).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn grants_are_used_and_revoked_once() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::grants_are_used_and_revoked_once(store).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn approvals_are_decided_once() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::approvals_are_decided_once(store).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn relationship_updates_keep_their_order() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::relationship_updates_keep_their_order(store).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_calls_never_pass_the_budget() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::concurrent_calls_never_pass_the_budget(store).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_calls_with_one_key_claim_it_once() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::concurrent_calls_with_one_key_claim_it_once(store)
                    .await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_approval_is_used_once_under_concurrency() {
            if let Some((store, _guard)) = $open().await {
                $crate::store::conformance::an_approval_is_used_once_under_concurrency(store).await;
            }
        }
    };
}
