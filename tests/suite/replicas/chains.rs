//! The decision log over replicas: a replica SIGKILLed under load leaves every effect it
//! performed with a durable record and every chain verifiable, and a run's manifest, asked of
//! any replica, spans every replica's chain.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

/// A side-effect call over raw HTTP that may meet a gateway being killed: `Some(performed)`
/// when it was answered, `None` when the connection broke or nothing answered in time.
async fn try_draft(raw: &Raw, token: &str, session: &str, key_text: &str) -> Option<bool> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "case__create_notice_draft",
        "arguments": {"case_id": "case-101", "body": key_text},
        "_meta": {"dev.capgate/idempotency-key": key_text}}});
    let response = raw.try_post(token, Some(session), body).await.ok()?;
    let text = response.text().await.ok()?;
    let answer = messages(&text)
        .into_iter()
        .find(|m| m.get("id").is_some())?;
    Some(answer["result"]["isError"] != true && answer.get("error").is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_ten_times_under_load_leaves_every_effect_recorded() {
    let Some(r) = replicas(
        "sigkill",
        2,
        GatewayOptions {
            enforcement: Some(
                "max_calls_per_run = 100000\nmax_calls_per_tool = 100000\nmax_cost_per_run = 1000000".into(),
            ),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let token =
        |g: &TestGateway| g.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-kill");
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let steady = Raw {
        http: quick.clone(),
        url: r.gateways[0].url.clone(),
    };
    let steady_token = token(&r.gateways[0]);
    let steady_session = steady.open(&steady_token).await.expect("a session");
    let victim = Arc::new(Raw {
        http: quick,
        url: r.gateways[1].url.clone(),
    });
    let victim_token = token(&r.gateways[1]);
    let mut answered = 0;
    for round in 0..10 {
        let session = victim
            .open(&victim_token)
            .await
            .expect("a session on the (restarted) replica");
        let done = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(AtomicUsize::new(0));
        let load: Vec<_> = (0..3)
            .map(|worker| {
                let (raw, token, session, done, answers) = (
                    victim.clone(),
                    victim_token.clone(),
                    session.clone(),
                    done.clone(),
                    answers.clone(),
                );
                tokio::spawn(async move {
                    let mut answered = 0;
                    let mut n = 0;
                    while !done.load(Ordering::SeqCst) {
                        let key_text = format!("kill-{round}-{worker}-{n}");
                        match try_draft(&raw, &token, &session, &key_text).await {
                            Some(_) => {
                                answered += 1;
                                answers.fetch_add(1, Ordering::SeqCst);
                            }
                            None => break,
                        }
                        n += 1;
                    }
                    answered
                })
            })
            .collect();
        // The other replica keeps serving meanwhile.
        let served = try_draft(
            &steady,
            &steady_token,
            &steady_session,
            &format!("steady-{round}"),
        )
        .await;
        assert_eq!(served, Some(true));
        // SIGKILL mid-load (once the load is being answered), then the same replica
        // (data_dir, replica id, chain) again.
        let loaded = within(Duration::from_secs(20), || async {
            answers.load(Ordering::SeqCst) >= 6
        })
        .await;
        assert!(
            loaded.is_some(),
            "round {round}: the replica answers its load"
        );
        r.gateways[1].restart().await;
        done.store(true, Ordering::SeqCst);
        for task in load {
            answered += tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the load on the killed replica ends")
                .expect("load task");
        }
    }
    assert!(
        answered > 0,
        "the killed replica served calls between kills"
    );

    let verified = verify_every_chain(&r).await;
    assert!(verified.contains("2 chain(s)"), "{verified}");
    let effects = r.effects("create_notice_draft").len();
    let allowed = allow_records(&r, "case__create_notice_draft");
    println!(
        "{effects} effects, {allowed} durable allow records, {answered} answers from the killed replica"
    );
    assert!(
        allowed >= effects,
        "{allowed} durable allow records for {effects} effects"
    );
}

/// `GET /admin/runs` of `run` in `tenant` on `g`, as a platform admin.
async fn manifest(g: &TestGateway, tenant: &str, run: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!(
            "{}/admin/runs?tenant={tenant}&run={run}",
            g.admin()
        ))
        .bearer_auth(g.platform_admin_token())
        .send()
        .await
        .expect("run manifest");
    assert_eq!(response.status(), 200);
    response.json().await.expect("manifest json")
}

#[tokio::test]
async fn a_runs_manifest_asked_of_one_replica_lists_the_calls_on_every_replica() {
    let Some(r) = replicas("manifest", 2, GatewayOptions::default()).await else {
        return;
    };
    let alice = analyst("acme", "alice", "drafting-agent");
    let clients = r.clients(&alice, "run-spread").await;
    let case = |id: &str| json!({"case_id": id});
    // Replica 1: two reads. Replica 2: a read, a search, and a read policy refuses.
    for id in ["case-101", "case-102"] {
        assert!(ok(&call(&clients[0], "case__read_case", case(id)).await));
    }
    assert!(ok(
        &call(&clients[1], "case__read_case", case("case-101")).await
    ));
    let search = json!({"case_id": "case-101", "query": "loan"});
    assert!(ok(&call(&clients[1], "case__search_evidence", search).await));
    assert!(!ok(
        &call(&clients[1], "case__read_case", case("case-103")).await
    ));
    // Another run's call is not this run's.
    let other = r.gateways[1]
        .client(&r.gateways[1].token_in_run(&alice, "run-other"))
        .await;
    assert!(ok(&call(&other, "case__read_case", case("case-101")).await));
    // A replica's manifest writes its own queued records first; the other's are flushed here.
    for g in &r.gateways {
        flush_log(g).await;
    }

    let replica_id = |g: &TestGateway| {
        std::fs::read_to_string(g.dir.path().join("data/replica-id"))
            .expect("the replica id")
            .trim()
            .to_string()
    };
    let mut chains = serde_json::Map::new();
    chains.insert(replica_id(&r.gateways[0]), json!(2));
    chains.insert(replica_id(&r.gateways[1]), json!(3));
    for (i, g) in r.gateways.iter().enumerate() {
        let manifest = manifest(g, "acme", "run-spread").await;
        assert_eq!(manifest["decisions"], 5, "replica {}: {manifest}", i + 1);
        assert_eq!(
            manifest["tools"]["case__read_case"]["allow"], 3,
            "{manifest}"
        );
        assert_eq!(
            manifest["tools"]["case__read_case"]["deny"], 1,
            "{manifest}"
        );
        assert_eq!(
            manifest["tools"]["case__search_evidence"]["allow"], 1,
            "{manifest}"
        );
        assert_eq!(manifest["policy_versions"], json!(["case-platform@3"]));
        assert_eq!(
            manifest["chains"],
            Value::Object(chains.clone()),
            "{manifest}"
        );
    }
    // Another tenant's run of the same name is empty.
    let globex = manifest(&r.gateways[0], "globex", "run-spread").await;
    assert_eq!(globex["decisions"], 0, "{globex}");
}
