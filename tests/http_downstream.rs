//! A streamable-HTTP downstream, reached with the gateway's own credential: an outer capgate
//! federates an inner capgate (which fronts the case platform). The agent's token stays at the
//! outer gateway; the inner one sees only the outer gateway's credential.

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

/// Ends the outer gateway however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn an_http_downstream_is_called_with_the_gateways_own_credential() {
    let inner = TestGateway::start(GatewayOptions::default()).await;
    // The outer gateway's own identity at the inner one: a service account, not the agent.
    let credential = inner.token(&TokenSpec {
        user: "outer-gateway",
        tenant: Some("acme"),
        roles: vec!["senior_reviewer"],
        agent: Some("supervisor-agent"),
        service: Some("capgate-outer"),
    });

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("capabilities")).expect("mkdir");
    std::fs::write(
        dir.path().join("capabilities/inner.toml"),
        "server = \"inner\"\n[tools.case__read_case]\neffect = \"read\"\nrisk = \"low\"\n",
    )
    .expect("contracts");
    std::fs::create_dir_all(dir.path().join("policies")).expect("mkdir");
    std::fs::copy(
        repo_root().join("policies/schema.cedarschema"),
        dir.path().join("policies/schema.cedarschema"),
    )
    .expect("schema");
    std::fs::copy(
        repo_root().join("policies/manifest.toml"),
        dir.path().join("policies/manifest.toml"),
    )
    .expect("manifest");
    std::fs::write(
        dir.path().join("policies/inner.cedar"),
        "@id(\"inner-reads\")\npermit(principal in AgentRole::\"drafting-agent\", action in [Action::\"discover_tool\", Action::\"call_tool\"], resource is Tool)\nwhen { resource.server == \"inner\" };\n",
    )
    .expect("policy");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").port()
    };
    let config = dir.path().join("outer.toml");
    std::fs::write(
        &config,
        format!(
            r#"
capabilities_dir = "capabilities"
policies_dir = "policies"
data_dir = "data"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}/mcp"
explain_to_agent = "detailed"
[[issuers]]
issuer = "{HS_ISSUER}"
algorithm = "HS256"
secret_env = "CAPGATE_TEST_SECRET"
[[downstream]]
id = "inner"
url = "{inner_url}"
credential_env = "INNER_CREDENTIAL"
timeout_ms = 10000
"#,
            inner_url = inner.url
        ),
    )
    .expect("config");
    let _outer = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_capgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("CAPGATE_TEST_SECRET", TEST_SECRET)
            .env("INNER_CREDENTIAL", &credential)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn outer"),
    );
    let outer_url = format!("http://127.0.0.1:{port}/mcp");

    {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let up = http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if up {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let agent_token = sign_hs256(
            &claims(&analyst("acme", "alice", "drafting-agent"), &outer_url),
            TEST_SECRET.as_bytes(),
        );
        let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                outer_url.clone(),
            )
            .auth_header(agent_token),
        );
        let client = rmcp::ServiceExt::serve((), transport)
            .await
            .expect("connect outer");
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
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(journal[0]["actor"]["user"], "outer-gateway");
    assert!(inner.log().contains("supervisor-agent"));
}
