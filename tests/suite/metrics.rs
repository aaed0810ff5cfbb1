//! `/metrics` parses with the Prometheus text-format parser (PyPI `prometheus-client`) and its
//! counters match the calls the test made.

use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        out.setdefault(sample.name, []).append({"labels": sample.labels, "value": sample.value})
print(json.dumps(out))
"#;

fn total(samples: &Value, name: &str, filter: &[(&str, &str)]) -> f64 {
    samples[name]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|s| filter.iter().all(|(k, v)| s["labels"][*k] == *v))
                .filter_map(|s| s["value"].as_f64())
                .sum()
        })
        .unwrap_or(0.0)
}

/// Fetches `/metrics` and parses it with prometheus-client: the text and its samples by name.
async fn scrape(gateway: &TestGateway, python: &std::path::Path) -> (String, Value) {
    let text = reqwest::get(format!("{}/metrics", gateway.admin()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    let output = child.wait_with_output().expect("parse");
    assert!(
        output.status.success(),
        "the exposition did not parse:\n{text}"
    );
    let samples = serde_json::from_slice(&output.stdout).expect("json");
    (text, samples)
}

#[tokio::test]
async fn metrics_parse_and_count_the_calls_made() {
    let python = python_venv();
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    for _ in 0..3 {
        call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    }
    for _ in 0..2 {
        call(&alice, "case__read_case", json!({"case_id": "case-201"})).await;
    }
    let (text, samples) = scrape(&gateway, &python).await;
    let calls = |outcome: &str| {
        total(
            &samples,
            "capgate_decisions_total",
            &[
                ("action", "call_tool"),
                ("tool", "case__read_case"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(calls("allow"), 3.0, "{text}");
    assert_eq!(calls("deny"), 2.0, "{text}");
    assert_eq!(
        total(&samples, "capgate_gateway_overhead_seconds_count", &[]),
        3.0
    );
    assert_eq!(
        total(
            &samples,
            "capgate_downstream_seconds_count",
            &[("server", "case")]
        ),
        3.0
    );
    assert!(total(&samples, "capgate_decision_seconds_count", &[]) >= 5.0);

    // Each call runs in a span that carries its decision.
    let log = gateway.log();
    let span_line = log
        .lines()
        .find(|l| l.contains("capgate.tools_call{") && l.contains("case-agents-read"))
        .unwrap_or_else(|| panic!("no decision span in the log:\n{log}"));
    assert!(
        span_line.contains("outcome=") && span_line.contains("policy_version="),
        "{span_line}"
    );
    // A call refused by a control before any decision names the control on its span.
    let refused = call(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "no key"}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    until("the refusal is logged", || async {
        gateway.log().contains("refused_by=\"idempotency\"")
    })
    .await;
    let log = gateway.log();
    assert!(
        log.lines().any(|l| l.contains("capgate.tools_call{")
            && l.contains("outcome=\"deny\"")
            && l.contains("refused_by=\"idempotency\"")),
        "{log}"
    );
}

/// Gauges are read at scrape time: pending approvals rise when a call needs approval and fall
/// when it is decided; kill switches on are counted.
#[tokio::test]
async fn pending_approvals_and_kill_switches_are_gauges() {
    let python = python_venv();
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let gauge = |samples: &Value, name: &str| total(samples, name, &[]);
    let (text, samples) = scrape(&gateway, &python).await;
    assert_eq!(gauge(&samples, "capgate_pending_approvals"), 0.0, "{text}");
    assert_eq!(gauge(&samples, "capgate_store_up"), 1.0, "{text}");
    assert_eq!(gauge(&samples, "capgate_kill_switches_active"), 0.0);

    let notifier = gateway.client(&gateway.token(&notifier())).await;
    let mut approvals = Vec::new();
    for (draft, key_text) in [("draft-906", "gauge-a"), ("draft-906", "gauge-b")] {
        let asked = call_with_meta(
            &notifier,
            "case__send_approved_notice",
            json!({"draft_id": draft}),
            key(key_text),
        )
        .await;
        let meta = serde_json::to_value(&asked.meta).expect("meta");
        approvals.push(
            meta["dev.capgate/decision"]["approval"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no approval in {meta}"))
                .to_string(),
        );
    }
    let (text, samples) = scrape(&gateway, &python).await;
    assert_eq!(gauge(&samples, "capgate_pending_approvals"), 2.0, "{text}");

    let bob = gateway.token(&TokenSpec {
        user: "bob",
        tenant: Some("acme"),
        roles: vec!["senior_reviewer"],
        agent: None,
        service: None,
    });
    let admin_url = gateway.admin_url.clone().expect("admin");
    let http = reqwest::Client::new();
    let approved = http
        .post(format!("{admin_url}/approvals/{}/approve", approvals[0]))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("approve");
    assert!(approved.status().is_success(), "{}", approved.status());
    let switched = http
        .post(format!("{admin_url}/admin/kill-switches"))
        .bearer_auth(gateway.platform_admin_token())
        .json(&json!({"scope": "tool", "target": "case__read_case", "reason": "incident 7"}))
        .send()
        .await
        .expect("kill switch");
    assert!(switched.status().is_success(), "{}", switched.status());
    let (text, samples) = scrape(&gateway, &python).await;
    assert_eq!(gauge(&samples, "capgate_pending_approvals"), 1.0, "{text}");
    assert_eq!(
        gauge(&samples, "capgate_kill_switches_active"),
        1.0,
        "{text}"
    );
}

/// `capgate_store_transactions_total`, read from the exposition's text.
async fn store_transactions(gateway: &TestGateway) -> u64 {
    let text = gateway.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix("capgate_store_transactions_total "))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no capgate_store_transactions_total in:\n{text}")) as u64
}

/// The store cost of one call, from the gateway's own count: a read runs at most one store
/// transaction, a side effect two (admission before forwarding, its result after). A scrape runs
/// its own (the pending approvals gauge); two scrapes in a row measure it.
#[tokio::test]
async fn a_read_costs_at_most_one_store_transaction_and_a_side_effect_two() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let first = store_transactions(&gateway).await;
    let per_scrape = store_transactions(&gateway).await - first;

    let calls = 5;
    let before = store_transactions(&gateway).await;
    for _ in 0..calls {
        let read = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
        assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    }
    let after_reads = store_transactions(&gateway).await;
    for i in 0..calls {
        let draft = call_with_meta(
            &alice,
            "case__create_notice_draft",
            json!({"case_id": "case-101", "body": format!("Notice {i}")}),
            key(&format!("store-cost-{i}")),
        )
        .await;
        assert_ne!(draft.is_error, Some(true), "{}", text_of(&draft));
    }
    let after_drafts = store_transactions(&gateway).await;

    let reads = after_reads - before - per_scrape;
    let drafts = after_drafts - after_reads - per_scrape;
    assert!(
        reads <= calls,
        "{calls} reads ran {reads} store transactions"
    );
    assert_eq!(
        drafts,
        2 * calls,
        "{calls} side effects ran {drafts} store transactions"
    );
}
