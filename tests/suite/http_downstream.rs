//! A streamable-HTTP downstream, reached with the gateway's own credential: an outer capgate
//! federates an inner capgate (which fronts the case platform). The agent's token stays at the
//! outer gateway; the inner one sees only the outer gateway's credential.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn an_http_downstream_is_called_with_the_gateways_own_credential() {
    // The revision the outer gateway speaks to the inner one: a session by default ("auto"),
    // or 2026-07-28 (server/discover, each request on its own).
    for protocol in ["auto", "2026-07-28"] {
        called_with_the_gateways_own_credential(protocol).await;
    }
}

async fn called_with_the_gateways_own_credential(protocol: &str) {
    let inner = TestGateway::start(GatewayOptions::default()).await;
    // The outer gateway's own identity at the inner one: a service account, not the agent.
    let credential = inner.token(&TokenSpec {
        user: "outer-gateway",
        tenant: Some("acme"),
        roles: vec!["senior_reviewer"],
        agent: Some("supervisor-agent"),
        service: Some("capgate-outer"),
    });

    let outer = TestGateway::start(GatewayOptions {
        downstreams: Some(Downstreams {
            contracts: vec![(
                "inner.toml".into(),
                "server = \"inner\"\n[tools.case__read_case]\neffect = \"read\"\nrisk = \"low\"\n"
                    .into(),
            )],
            tables: format!(
                r#"
[[downstream]]
id = "inner"
url = "{inner_url}"
credential_env = "INNER_CREDENTIAL"
timeout_ms = 10000
protocol = "{protocol}"
"#,
                inner_url = inner.url
            ),
        }),
        bare_policies: true,
        extra_policies: vec![(
            "inner.cedar".into(),
            "@id(\"inner-reads\")\npermit(principal in AgentRole::\"drafting-agent\", action in [Action::\"discover_tool\", Action::\"call_tool\"], resource is Tool)\nwhen { resource.server == \"inner\" };\n".into(),
        )],
        env: vec![("INNER_CREDENTIAL".into(), credential)],
        ..Default::default()
    })
    .await;

    {
        let client = outer
            .client(&outer.token(&analyst("acme", "alice", "drafting-agent")))
            .await;
        let names = tool_names(&client).await;
        assert_eq!(names, vec!["inner__case__read_case".to_string()]);
        let read = call(
            &client,
            "inner__case__read_case",
            json!({"case_id": "case-102"}),
        )
        .await;
        assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
        assert!(text_of(&read).contains("Contoso"), "{}", text_of(&read));
    }

    // The inner gateway decided for the outer gateway's own identity, not alice's.
    let journal = inner.journal_entries();
    assert_eq!(journal.len(), 1, "{protocol}: {journal:?}");
    assert_eq!(journal[0]["actor"]["user"], "outer-gateway");
    assert!(inner.log().contains("supervisor-agent"));
    // And it spoke the revision asked for.
    let connected = outer
        .log()
        .lines()
        .find(|l| l.contains("downstream connected") && l.contains("inner"))
        .map(str::to_string)
        .unwrap_or_default();
    let revision = if protocol == "auto" {
        "2025-11-25"
    } else {
        protocol
    };
    assert!(connected.contains(revision), "{protocol}: {connected}");
}
