//! Tenant-scoped administration, with real traffic. Every admin endpoint, as the router lists
//! them ([`Endpoint::ALL`]), asked by every kind of caller — acme's tenant admin, globex's
//! tenant admin, a platform admin, an agent token, a plain user — gives the documented status,
//! as the admin policy set (`policies/admin/`) decides: kill switches at every scope,
//! relationship updates across tenants (refused ones change nothing), approvals and
//! break-glass across tenants. A row missing for one endpoint and caller fails the table.
//!
//! This module holds the callers, the table and the table test, which asks its rows topic by
//! topic in one gateway (the order matters: later rows read what earlier ones did); the rows
//! of each topic, and the tests beside the table, are in the submodules: `gateway_wide` (the
//! gateway as a whole, the OpenAPI document), `kill_switches` (a tenant admin's user switch
//! stops that user in its tenant only), `records` (runs, budgets, decisions, overview),
//! `relationships`, and `approvals_and_break_glass` (a break-glass grant never lets anyone
//! across tenants, tools and resources alike).

mod approvals_and_break_glass;
mod gateway_wide;
mod kill_switches;
mod records;
mod relationships;

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use capgate::server::admin::Endpoint;
use serde_json::Value;

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

/// The callers with an admin role: both tenant admins and the platform admin.
const ADMINS: [Caller; 3] = [AcmeAdmin, GlobexAdmin, PlatformAdmin];

/// The people: every caller but the agent.
const PEOPLE: [Caller; 4] = [AcmeAdmin, GlobexAdmin, PlatformAdmin, Plain];

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

/// `POST path` with a JSON body on the admin listener as `token`; the status and the answer.
async fn post(gateway: &TestGateway, token: &str, path: &str, body: &Value) -> (u16, Value) {
    gateway
        .admin_request(Some(token), "POST", path, Some(body))
        .await
}

#[tokio::test]
async fn every_admin_endpoint_answers_every_kind_of_caller_as_documented() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let mut table = Table::new(&gateway);
    gateway_wide::rows(&gateway, &mut table).await;
    kill_switches::rows(&mut table).await;
    records::run_rows(&gateway, &mut table).await;
    relationships::rows(&gateway, &mut table).await;
    approvals_and_break_glass::rows(&gateway, &mut table).await;
    records::decision_rows(&mut table).await;
    table.finish();
}
