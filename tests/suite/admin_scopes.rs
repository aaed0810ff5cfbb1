//! Tenant-scoped administration, with real traffic. Every admin endpoint, as the router lists
//! them ([`Endpoint::ALL`]), asked by every kind of caller — acme's tenant admin, globex's
//! tenant admin, a platform admin, an agent token, a plain user — gives the documented status,
//! as the admin policy set (`policies/admin/`) decides: kill switches at every scope,
//! relationship updates across tenants (refused ones change nothing), approvals and
//! break-glass across tenants. A row missing for one endpoint and caller fails the table.
//!
//! Beside the table: a tenant admin's user switch stops that user in its tenant only, and a
//! break-glass grant never lets anyone across tenants (tools and resources alike).

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use capgate::server::admin::Endpoint;
use rmcp::model::ReadResourceRequestParams;
use serde_json::{json, Value};

/// The kinds of caller. Every person also holds the roles approvals and break-glass need
/// (`break-glass`, `senior_reviewer`), so that what refuses them is the admin policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    /// ann, tenant admin of acme.
    AcmeAdmin,
    /// gus, tenant admin of globex.
    GlobexAdmin,
    /// pat, platform admin (tenant ops).
    PlatformAdmin,
    /// ann's token with an agent acting, her roles and the platform role too.
    Agent,
    /// paul, an acme analyst: no admin role.
    Plain,
}

use Caller::*;

const CALLERS: [Caller; 5] = [AcmeAdmin, GlobexAdmin, PlatformAdmin, Agent, Plain];

fn token(gateway: &TestGateway, caller: Caller) -> String {
    let person = |user, tenant, admin_role| TokenSpec {
        user,
        tenant: Some(tenant),
        roles: vec![admin_role, "break-glass", "senior_reviewer"],
        agent: None,
        service: None,
    };
    let spec = match caller {
        AcmeAdmin => person("ann", "acme", "capgate-admin"),
        GlobexAdmin => person("gus", "globex", "capgate-admin"),
        PlatformAdmin => person("pat", "ops", "capgate-platform-admin"),
        Agent => TokenSpec {
            user: "ann",
            tenant: Some("acme"),
            roles: vec![
                "capgate-admin",
                "capgate-platform-admin",
                "break-glass",
                "senior_reviewer",
            ],
            agent: Some("supervisor-agent"),
            service: Some("agent-runtime"),
        },
        Plain => TokenSpec {
            user: "paul",
            tenant: Some("acme"),
            roles: vec!["analyst"],
            agent: None,
            service: None,
        },
    };
    gateway.token(&spec)
}

/// 200 for the callers named, 403 for the others.
fn only(allowed: &[Caller]) -> Vec<(Caller, u16)> {
    CALLERS
        .iter()
        .map(|c| (*c, if allowed.contains(c) { 200 } else { 403 }))
        .collect()
}

/// The table: every request asked, its answer, and which callers asked each endpoint.
struct Table<'g> {
    gateway: &'g TestGateway,
    tokens: BTreeMap<Caller, String>,
    asked: BTreeMap<(&'static str, &'static str), BTreeSet<Caller>>,
    lines: Vec<String>,
    failures: usize,
}

impl<'g> Table<'g> {
    fn new(gateway: &'g TestGateway) -> Self {
        Self {
            gateway,
            tokens: CALLERS.iter().map(|c| (*c, token(gateway, *c))).collect(),
            asked: BTreeMap::new(),
            lines: Vec::new(),
            failures: 0,
        }
    }

    /// `endpoint` at `path` (its route with ids and query filled in) as `caller`, which must
    /// answer `expected`; the answer.
    async fn ask_one(
        &mut self,
        endpoint: Endpoint,
        path: &str,
        body: Option<&Value>,
        caller: Caller,
        expected: u16,
    ) -> Value {
        let (method, route) = endpoint.route();
        let (status, answer) = self
            .gateway
            .admin_request(Some(&self.tokens[&caller]), method, path, body)
            .await;
        self.asked
            .entry((method, route))
            .or_default()
            .insert(caller);
        let body_text = body.map(|b| format!(" {b}")).unwrap_or_default();
        let verdict = if status == expected {
            "ok".to_string()
        } else {
            self.failures += 1;
            format!("FAILED (expected {expected}): {answer}")
        };
        self.lines.push(format!(
            "{method} {path}{body_text} as {caller:?} -> {status} {verdict}"
        ));
        answer
    }

    /// `endpoint` as each caller in turn; the answers.
    async fn ask(
        &mut self,
        endpoint: Endpoint,
        path: &str,
        body: Option<&Value>,
        expected: &[(Caller, u16)],
    ) -> BTreeMap<Caller, Value> {
        let mut answers = BTreeMap::new();
        for (caller, status) in expected {
            let answer = self.ask_one(endpoint, path, body, *caller, *status).await;
            answers.insert(*caller, answer);
        }
        answers
    }

    /// Every endpoint was asked by every kind of caller, and every answer was the documented one.
    fn finish(self) {
        let mut missing = Vec::new();
        for endpoint in Endpoint::ALL {
            let route = endpoint.route();
            let asked = self.asked.get(&route).cloned().unwrap_or_default();
            for caller in CALLERS {
                if !asked.contains(&caller) {
                    missing.push(format!("{} {} as {caller:?}", route.0, route.1));
                }
            }
        }
        let table = self.lines.join("\n");
        assert!(missing.is_empty(), "rows missing: {missing:?}\n{table}");
        assert_eq!(self.failures, 0, "answers differ:\n{table}");
    }
}

fn entities() -> Vec<Value> {
    serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("policies/entities/case-platform.json"))
            .expect("entities"),
    )
    .expect("entity json")
}

fn entity(id: &str) -> Value {
    entities()
        .into_iter()
        .find(|e| e["uid"]["id"] == id)
        .unwrap_or_else(|| panic!("no entity {id}"))
}

fn ids(answer: &Value, list: &str, id: impl Fn(&Value) -> &Value) -> Vec<String> {
    answer[list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| id(item).as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn reads_case(
    gateway: &TestGateway,
    user: &'static str,
    tenant: &'static str,
    case: &str,
) -> bool {
    let client = gateway
        .client(&gateway.token(&analyst(tenant, user, "drafting-agent")))
        .await;
    let result = call(&client, "case__read_case", json!({"case_id": case})).await;
    result.is_error != Some(true)
}

#[tokio::test]
async fn every_admin_endpoint_answers_every_kind_of_caller_as_documented() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let mut table = Table::new(&gateway);
    let admins = [AcmeAdmin, GlobexAdmin, PlatformAdmin];
    let people = [AcmeAdmin, GlobexAdmin, PlatformAdmin, Plain];
    let empty = json!({});

    // The gateway as a whole: the policy status for any admin; the rest for platform admins.
    table
        .ask(
            Endpoint::PolicyStatus,
            "/admin/policy",
            None,
            &only(&admins),
        )
        .await;
    for (endpoint, path) in [
        (Endpoint::PolicyReload, "/admin/policy/reload"),
        (Endpoint::AuditFlush, "/admin/audit/flush"),
    ] {
        table
            .ask(endpoint, path, Some(&empty), &only(&[PlatformAdmin]))
            .await;
    }
    table
        .ask(
            Endpoint::Health,
            "/admin/health",
            None,
            &only(&[PlatformAdmin]),
        )
        .await;
    // Tool pins: platform admins only; accepting names the digest listed now (a stale one is
    // 422 even for them).
    table
        .ask(
            Endpoint::ToolPins,
            "/admin/tools",
            None,
            &only(&[PlatformAdmin]),
        )
        .await;
    let stale = json!({"server": "case", "tool": "read_case", "digest": format!("sha256:{}", "0".repeat(64))});
    let accept: Vec<(Caller, u16)> = only(&[PlatformAdmin])
        .into_iter()
        .map(|(c, s)| (c, if s == 200 { 422 } else { s }))
        .collect();
    table
        .ask(
            Endpoint::ToolAccept,
            "/admin/tools/accept",
            Some(&stale),
            &accept,
        )
        .await;
    // Metrics need no token (the admin listener is kept off the agents' network).
    table
        .ask(Endpoint::Metrics, "/metrics", None, &only(&CALLERS))
        .await;
    let (status, _) = gateway.admin_request(None, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let (status, _) = gateway
        .admin_request(None, "GET", "/admin/policy", None)
        .await;
    assert_eq!(status, 401, "everything else needs a token");

    // Kill switches at every scope, flipped and lifted by each caller.
    let switches: Vec<(Value, Vec<Caller>)> = vec![
        (json!({"scope": "global"}), vec![PlatformAdmin]),
        (
            json!({"scope": "global", "tenant": "acme"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "server", "target": "case", "tenant": "acme"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "tool", "target": "case__delete_evidence"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "tool", "target": "case__delete_evidence", "tenant": "acme"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "tenant", "target": "acme"}),
            vec![AcmeAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "tenant", "target": "globex"}),
            vec![GlobexAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "agent_role", "target": "risk-agent", "tenant": "acme"}),
            vec![AcmeAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "agent_role", "target": "risk-agent"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "user", "target": "bob", "tenant": "acme"}),
            vec![AcmeAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "user", "target": "bob", "tenant": "globex"}),
            vec![GlobexAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "user", "target": "bob"}),
            vec![PlatformAdmin],
        ),
    ];
    for (switch, allowed) in &switches {
        let mut set = switch.clone();
        set["reason"] = json!("admin scope table");
        for (caller, status) in only(allowed) {
            table
                .ask_one(
                    Endpoint::KillSwitchSet,
                    "/admin/kill-switches",
                    Some(&set),
                    caller,
                    status,
                )
                .await;
            let lifted = table
                .ask_one(
                    Endpoint::KillSwitchLift,
                    "/admin/kill-switches/lift",
                    Some(switch),
                    caller,
                    status,
                )
                .await;
            if status == 200 {
                assert_eq!(
                    lifted["lifted"], true,
                    "{caller:?} lifts {switch}: {lifted}"
                );
            }
        }
    }
    // What is invalid is invalid for whoever may flip it; who may not is refused first.
    let inconsistent =
        json!({"scope": "tenant", "target": "acme", "tenant": "globex", "reason": "r"});
    table
        .ask_one(
            Endpoint::KillSwitchSet,
            "/admin/kill-switches",
            Some(&inconsistent),
            PlatformAdmin,
            422,
        )
        .await;
    let no_reason = json!({"scope": "tool", "target": "case__delete_evidence"});
    table
        .ask_one(
            Endpoint::KillSwitchSet,
            "/admin/kill-switches",
            Some(&no_reason),
            PlatformAdmin,
            422,
        )
        .await;
    table
        .ask_one(
            Endpoint::KillSwitchSet,
            "/admin/kill-switches",
            Some(&no_reason),
            AcmeAdmin,
            403,
        )
        .await;

    // Listing: each admin sees the switches it may see.
    let on = [
        (
            AcmeAdmin,
            json!({"scope": "user", "target": "bob", "tenant": "acme"}),
        ),
        (
            GlobexAdmin,
            json!({"scope": "user", "target": "erin", "tenant": "globex"}),
        ),
        (
            PlatformAdmin,
            json!({"scope": "tool", "target": "case__delete_evidence"}),
        ),
    ];
    for (caller, switch) in &on {
        let mut set = switch.clone();
        set["reason"] = json!("listed");
        table
            .ask_one(
                Endpoint::KillSwitchSet,
                "/admin/kill-switches",
                Some(&set),
                *caller,
                200,
            )
            .await;
    }
    let listed = table
        .ask(
            Endpoint::KillSwitches,
            "/admin/kill-switches",
            None,
            &only(&admins),
        )
        .await;
    let targets = |caller: Caller| {
        let mut targets = ids(&listed[&caller], "kill_switches", |s| &s["target"]);
        targets.sort();
        targets
    };
    assert_eq!(targets(AcmeAdmin), ["bob"]);
    assert_eq!(targets(GlobexAdmin), ["erin"]);
    assert_eq!(
        targets(PlatformAdmin),
        ["bob", "case__delete_evidence", "erin"]
    );
    for (_, switch) in &on {
        table
            .ask_one(
                Endpoint::KillSwitchLift,
                "/admin/kill-switches/lift",
                Some(switch),
                PlatformAdmin,
                200,
            )
            .await;
    }

    // Runs and budgets: a tenant admin's own tenant; a platform admin's any.
    let acme_run = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-7"))
        .await;
    call(&acme_run, "case__read_case", json!({"case_id": "case-101"})).await;
    post(
        &gateway,
        &gateway.platform_admin_token(),
        "/admin/audit/flush",
        &json!({}),
    )
    .await;
    let manifests = table
        .ask(
            Endpoint::Runs,
            "/admin/runs?tenant=acme&run=run-7",
            None,
            &only(&[AcmeAdmin, PlatformAdmin]),
        )
        .await;
    assert_eq!(
        manifests[&AcmeAdmin]["decisions"], 1,
        "{}",
        manifests[&AcmeAdmin]
    );
    table
        .ask(
            Endpoint::Runs,
            "/admin/runs?tenant=globex&run=run-7",
            None,
            &only(&[GlobexAdmin, PlatformAdmin]),
        )
        .await;
    let budgets = table
        .ask(
            Endpoint::Budgets,
            "/admin/budgets?run=run-7",
            None,
            &only(&admins),
        )
        .await;
    assert_eq!(
        budgets[&AcmeAdmin]["usage"]["calls"], 1,
        "{}",
        budgets[&AcmeAdmin]
    );
    assert_eq!(budgets[&GlobexAdmin]["tenant"], "globex");
    assert_eq!(
        budgets[&GlobexAdmin]["usage"]["calls"], 0,
        "globex's own run-7"
    );
    for (tenant, admin) in [("acme", AcmeAdmin), ("globex", GlobexAdmin)] {
        table
            .ask(
                Endpoint::Budgets,
                &format!("/admin/budgets?run=run-7&tenant={tenant}"),
                None,
                &only(&[admin, PlatformAdmin]),
            )
            .await;
    }

    // Relationships: a tenant admin writes its own tenant's entities only.
    let path = "/admin/relationships";
    table
        .ask(
            Endpoint::Relationships,
            path,
            Some(&json!([entity("case-102")])),
            &only(&[AcmeAdmin, PlatformAdmin]),
        )
        .await;
    table
        .ask(
            Endpoint::Relationships,
            path,
            Some(&json!([entity("drafting-agent")])),
            &only(&[PlatformAdmin]),
        )
        .await;
    // A globex case assigned to gil: refused to acme's admin, and nothing changes.
    assert!(!reads_case(&gateway, "gil", "globex", "case-201").await);
    let mut assigned = entity("case-201");
    assigned["attrs"]["assignees"]
        .as_array_mut()
        .expect("assignees")
        .push(json!({"__entity": {"type": "User", "id": "gil"}}));
    let assign = json!([assigned.clone()]);
    table
        .ask_one(Endpoint::Relationships, path, Some(&assign), AcmeAdmin, 403)
        .await;
    let mixed = json!([entity("case-102"), assigned.clone()]);
    table
        .ask_one(Endpoint::Relationships, path, Some(&mixed), AcmeAdmin, 403)
        .await;
    // Taking globex's case over by naming acme is refused to both tenants' admins.
    let mut taken = assigned.clone();
    taken["attrs"]["tenant"] = json!({"__entity": {"type": "Tenant", "id": "acme"}});
    taken["parents"] = json!([{"type": "Tenant", "id": "acme"}]);
    for caller in [AcmeAdmin, GlobexAdmin] {
        table
            .ask_one(
                Endpoint::Relationships,
                path,
                Some(&json!([taken.clone()])),
                caller,
                403,
            )
            .await;
    }
    assert!(
        !reads_case(&gateway, "gil", "globex", "case-201").await,
        "refused updates changed nothing"
    );
    table
        .ask(
            Endpoint::Relationships,
            path,
            Some(&assign),
            &[
                (Agent, 403),
                (Plain, 403),
                (GlobexAdmin, 200),
                (PlatformAdmin, 200),
            ],
        )
        .await;
    assert!(
        reads_case(&gateway, "gil", "globex", "case-201").await,
        "globex's own admin may assign its case"
    );
    table
        .ask_one(
            Endpoint::Relationships,
            path,
            Some(&json!([])),
            PlatformAdmin,
            422,
        )
        .await;

    // Approvals: people of the approval's tenant (and its approver role) only.
    let notifier = gateway.client(&gateway.token(&notifier())).await;
    let mut approvals = Vec::new();
    for key_text in ["table-1", "table-2"] {
        let refused = call_with_meta(
            &notifier,
            "case__send_approved_notice",
            json!({"draft_id": "draft-906"}),
            key(key_text),
        )
        .await;
        approvals.push(approval_id(&refused));
    }
    let listed = table
        .ask(Endpoint::Approvals, "/approvals", None, &only(&people))
        .await;
    for (caller, sees) in [
        (AcmeAdmin, true),
        (Plain, true),
        (GlobexAdmin, false),
        (PlatformAdmin, false),
    ] {
        assert_eq!(
            ids(&listed[&caller], "approvals", |a| &a["id"]).contains(&approvals[0]),
            sees,
            "{caller:?}: {}",
            listed[&caller]
        );
    }
    // Refused by the admin policy (other tenants, the agent) and by the controls (paul has
    // no approver role), then decided by acme's admin.
    let decided_by_acme = [
        (GlobexAdmin, 403),
        (PlatformAdmin, 403),
        (Agent, 403),
        (Plain, 403),
        (AcmeAdmin, 200),
    ];
    for (endpoint, approval, verb) in [
        (Endpoint::Approve, &approvals[0], "approve"),
        (Endpoint::Reject, &approvals[1], "reject"),
    ] {
        table
            .ask(
                endpoint,
                &format!("/approvals/{approval}/{verb}"),
                None,
                &decided_by_acme,
            )
            .await;
    }
    table
        .ask(
            Endpoint::Approve,
            "/approvals/apr-none/approve",
            None,
            &[(AcmeAdmin, 404), (Agent, 403)],
        )
        .await;

    // Break-glass: opened in the opener's own tenant; listed and revoked within it.
    let grant_request = json!({"user": "alice", "reason": "incident 90: admin scope table", "expires_in_seconds": 600});
    let opened = table
        .ask(
            Endpoint::BreakGlassOpen,
            "/break-glass",
            Some(&grant_request),
            &[
                (Agent, 403),
                (Plain, 403),
                (AcmeAdmin, 200),
                (GlobexAdmin, 200),
                (PlatformAdmin, 200),
            ],
        )
        .await;
    for (caller, tenant) in [
        (AcmeAdmin, "acme"),
        (GlobexAdmin, "globex"),
        (PlatformAdmin, "ops"),
    ] {
        assert_eq!(
            opened[&caller]["grant"]["tenant"], tenant,
            "{}",
            opened[&caller]
        );
    }
    let mut elsewhere = grant_request.clone();
    elsewhere["tenant"] = json!("globex");
    table
        .ask_one(
            Endpoint::BreakGlassOpen,
            "/break-glass",
            Some(&elsewhere),
            AcmeAdmin,
            422,
        )
        .await;
    let acme_grant = opened[&AcmeAdmin]["grant"]["id"]
        .as_str()
        .expect("grant id")
        .to_string();
    let listed = table
        .ask(
            Endpoint::BreakGlassGrants,
            "/break-glass",
            None,
            &only(&people),
        )
        .await;
    for (caller, sees) in [
        (AcmeAdmin, true),
        (Plain, true),
        (GlobexAdmin, false),
        (PlatformAdmin, false),
    ] {
        assert_eq!(
            ids(&listed[&caller], "grants", |g| &g["grant"]["id"]).contains(&acme_grant),
            sees,
            "{caller:?}: {}",
            listed[&caller]
        );
    }
    table
        .ask(
            Endpoint::BreakGlassRevoke,
            &format!("/break-glass/{acme_grant}/revoke"),
            Some(&empty),
            &decided_by_acme,
        )
        .await;
    table
        .ask(
            Endpoint::BreakGlassRevoke,
            "/break-glass/bg-none/revoke",
            Some(&empty),
            &[(AcmeAdmin, 404), (Agent, 403)],
        )
        .await;

    // Who one is, for everyone with a token; the decision log and the overview for admins,
    // each of their own tenant (platform admins: any, or every tenant); the chain's status
    // for admins.
    table
        .ask(Endpoint::Me, "/admin/me", None, &only(&CALLERS))
        .await;
    let own = table
        .ask(
            Endpoint::Decisions,
            "/admin/decisions",
            None,
            &only(&admins),
        )
        .await;
    for (caller, tenant) in [
        (AcmeAdmin, "acme"),
        (GlobexAdmin, "globex"),
        (PlatformAdmin, "ops"),
    ] {
        let records = own[&caller]["records"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            records.iter().all(|r| r["tenant"] == tenant),
            "{caller:?} sees only {tenant}: {}",
            own[&caller]
        );
    }
    table
        .ask(
            Endpoint::Decisions,
            "/admin/decisions?tenant=acme",
            None,
            &only(&[AcmeAdmin, PlatformAdmin]),
        )
        .await;
    table
        .ask(
            Endpoint::Decisions,
            "/admin/decisions?tenant=*",
            None,
            &only(&[PlatformAdmin]),
        )
        .await;
    let acme_record = own[&AcmeAdmin]["records"][0]["seq"]
        .as_i64()
        .expect("acme has decision records by now");
    table
        .ask(
            Endpoint::DecisionRecord,
            &format!("/admin/decisions/{acme_record}"),
            None,
            &only(&[AcmeAdmin, PlatformAdmin]),
        )
        .await;
    table
        .ask_one(
            Endpoint::DecisionRecord,
            "/admin/decisions/999999",
            None,
            AcmeAdmin,
            404,
        )
        .await;
    table
        .ask(
            Endpoint::LogVerification,
            "/admin/audit/verification",
            None,
            &only(&admins),
        )
        .await;
    table
        .ask(Endpoint::Overview, "/admin/overview", None, &only(&admins))
        .await;
    table
        .ask(
            Endpoint::Overview,
            "/admin/overview?tenant=globex",
            None,
            &only(&[GlobexAdmin, PlatformAdmin]),
        )
        .await;

    table.finish();
}

/// `POST path` with a JSON body on the admin listener as `token`; the status and the answer.
async fn post(gateway: &TestGateway, token: &str, path: &str, body: &Value) -> (u16, Value) {
    gateway
        .admin_request(Some(token), "POST", path, Some(body))
        .await
}

#[tokio::test]
async fn a_tenant_admins_user_switch_stops_that_user_in_its_tenant_only() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let acme_bob = gateway
        .client(&gateway.token(&analyst("acme", "bob", "drafting-agent")))
        .await;
    let globex_bob = gateway
        .client(&gateway.token(&analyst("globex", "bob", "drafting-agent")))
        .await;
    assert!(!tool_names(&acme_bob).await.is_empty());
    assert!(!tool_names(&globex_bob).await.is_empty());
    let acme_admin = gateway.admin_token();
    let globex_admin = token(&gateway, GlobexAdmin);
    let bob_in_acme =
        json!({"scope": "user", "target": "bob", "tenant": "acme", "reason": "incident 12"});

    let (status, body) = post(&gateway, &acme_admin, "/admin/kill-switches", &bob_in_acme).await;
    assert_eq!(status, 200, "{body}");
    assert!(tool_names(&acme_bob).await.is_empty());
    let stopped = call(&acme_bob, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_eq!(stopped.is_error, Some(true));
    assert!(
        text_of(&stopped).contains("kill switch"),
        "{}",
        text_of(&stopped)
    );
    assert!(
        !tool_names(&globex_bob).await.is_empty(),
        "bob of globex is another user's business"
    );

    // globex's admin can neither lift nor see it; acme's cannot widen it to every tenant.
    let lift = json!({"scope": "user", "target": "bob", "tenant": "acme"});
    let (status, _) = post(&gateway, &globex_admin, "/admin/kill-switches/lift", &lift).await;
    assert_eq!(status, 403);
    let (status, listed) = gateway
        .admin_request(Some(&globex_admin), "GET", "/admin/kill-switches", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["kill_switches"], json!([]), "{listed}");
    assert!(tool_names(&acme_bob).await.is_empty());
    let everywhere = json!({"scope": "user", "target": "bob", "reason": "incident 12"});
    let (status, _) = post(&gateway, &acme_admin, "/admin/kill-switches", &everywhere).await;
    assert_eq!(status, 403);
    assert!(!tool_names(&globex_bob).await.is_empty());

    // A platform admin's switch without a tenant stops bob everywhere.
    let platform = gateway.platform_admin_token();
    let (status, _) = post(&gateway, &platform, "/admin/kill-switches", &everywhere).await;
    assert_eq!(status, 200);
    assert!(tool_names(&globex_bob).await.is_empty());
    let (status, _) = post(
        &gateway,
        &platform,
        "/admin/kill-switches/lift",
        &json!({"scope": "user", "target": "bob"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!tool_names(&globex_bob).await.is_empty());
    assert!(
        tool_names(&acme_bob).await.is_empty(),
        "acme's own switch is still on"
    );

    let (status, body) = post(&gateway, &acme_admin, "/admin/kill-switches/lift", &lift).await;
    assert_eq!(status, 200);
    assert_eq!(body["lifted"], true, "{body}");
    let restored = call(&acme_bob, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_ne!(restored.is_error, Some(true), "{}", text_of(&restored));
}

#[tokio::test]
async fn a_break_glass_grant_never_crosses_tenants() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let read = |case: &'static str| call(&alice, "case__read_case", json!({"case_id": case}));
    let read_uri = |uri: &'static str| alice.read_resource(ReadResourceRequestParams::new(uri));
    assert_eq!(
        read("case-103").await.is_error,
        Some(true),
        "not alice's case"
    );
    assert_eq!(read("case-201").await.is_error, Some(true), "globex's case");

    // acme's officer opens a grant for alice over every capability.
    let grant = json!({"user": "alice", "reason": "incident 91: cross-tenant probe", "expires_in_seconds": 600});
    let (status, opened) = post(
        &gateway,
        &token(&gateway, AcmeAdmin),
        "/break-glass",
        &grant,
    )
    .await;
    assert_eq!(status, 200, "{opened}");

    // Within acme it overrides the assignment rule, for tools and resources alike.
    let unassigned = read("case-103").await;
    assert_ne!(unassigned.is_error, Some(true), "{}", text_of(&unassigned));
    let meta = serde_json::to_value(&unassigned.meta).expect("meta");
    assert_eq!(
        meta["dev.capgate/break-glass"], opened["grant"]["id"],
        "{meta}"
    );
    read_uri("case://acme/cases/case-103")
        .await
        .expect("the grant covers acme's resource");

    // Across tenants it does nothing: tenant isolation is never overridden.
    let across = read("case-201").await;
    assert_eq!(across.is_error, Some(true), "{}", text_of(&across));
    assert!(
        text_of(&across).contains("tenant-isolation-case"),
        "{}",
        text_of(&across)
    );
    assert!(
        read_uri("case://globex/cases/case-201").await.is_err(),
        "the grant does not cover globex's resource"
    );

    // Nor does a grant globex opens for a user called alice reach acme's alice.
    let (status, _) = post(
        &gateway,
        &token(&gateway, GlobexAdmin),
        "/break-glass",
        &grant,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read("case-201").await.is_error, Some(true));

    let forwarded: Vec<Value> = gateway
        .journal_entries()
        .into_iter()
        .filter(|e| e.to_string().contains("case-201"))
        .collect();
    assert!(
        forwarded.is_empty(),
        "nothing of globex was forwarded: {forwarded:?}"
    );
}

/// The OpenAPI document against the running listener: every operation it describes is served
/// (a platform admin's request reaches a handler: no 405, and a 404 is a handler's JSON answer,
/// not the router's), and those it marks as needing a token refuse a request without one.
#[tokio::test]
async fn every_operation_the_openapi_document_describes_is_served() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let admin = gateway.platform_admin_token();
    let doc = capgate::server::admin::openapi();
    let paths = doc["paths"].as_object().expect("paths");
    let mut described = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "no-such-id")
            .replace("{seq}", "999999");
        for (method, operation) in item.as_object().expect("a path item") {
            described += 1;
            let method = method.to_uppercase();
            // An empty JSON object: each body-reading handler answers it without acting.
            let body = (method == "POST").then(|| json!({}));
            let (status, answer) = gateway
                .admin_request(Some(&admin), &method, &concrete, body.as_ref())
                .await;
            assert_ne!(status, 405, "{method} {path}: not served");
            assert!(
                status != 404 || answer.is_object(),
                "{method} {path}: the router does not know it"
            );
            let (status, _) = gateway
                .admin_request(None, &method, &concrete, body.as_ref())
                .await;
            let needs_token = operation.get("security").is_some();
            assert_eq!(
                status == 401,
                needs_token,
                "{method} {path}: {status} without a token"
            );
        }
    }
    assert_eq!(described, Endpoint::ALL.len());
}
