//! The admin API (`server::admin`) with arbitrary requests: every endpoint of the router's own
//! table (`Endpoint::ALL`; the policy reload, which reads the policy directory and takes no
//! input, rarely, and by the platform admin once per gateway), as a platform admin,
//! tenant admins of two tenants, a plain user, an agent acting for an admin, and without a
//! token; path ids, query strings and JSON bodies (kill switches, break-glass grants,
//! relationship entities) built from their shapes with junk in them, or arbitrary bytes. The
//! gateway behind it is real (the example policies and admin policy set, the SQLite store and
//! decision log in a scratch directory), without downstreams.
//!
//! Invariants:
//! - no panic, and no 5xx but 503 (the store unavailable);
//! - every request to one of its routes but `/metrics` without a valid token is 401 (an empty
//!   id makes a path no route has: 404, as for any other);
//! - junk never turns a refusal into an allow: a body that was refused (4xx) is refused again
//!   with unknown members added;
//! - tenant isolation: a tenant admin's kill switches, grants and relationship entities are of
//!   its own tenant only; the kill switches and decision records (listed, one by one, in the
//!   overview) shown to anyone but the platform admin are of the caller's own tenant. The
//!   gateway starts on a decision log a real gateway wrote, with records of two tenants.

#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::Router;
use capgate::enforce::Gateway;
use capgate::policy::{AdminResource, AdminRoles};
use capgate::server::admin::Endpoint;
use capgate_fuzz::tokens::{self, person_token};
use capgate_fuzz::admin_inputs::{body_of, query_of};
use capgate_fuzz::{json_value, runtime, text};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The callers: (user, tenant, roles, agent).
const CALLERS: [(&str, &str, &[&str], Option<&str>); 5] = [
    ("pat", "acme", &["capgate-platform-admin"], None),
    ("alice", "acme", &["capgate-admin"], None),
    ("gina", "globex", &["capgate-admin"], None),
    ("bob", "acme", &["analyst"], None),
    ("alice", "acme", &["capgate-admin"], Some("drafting-agent")),
];

/// The tenant a caller administers, when it is a tenant admin acting in person.
fn tenant_admin_of(user: &str) -> Option<&'static str> {
    match user {
        "alice" => Some("acme"),
        "gina" => Some("globex"),
        _ => None,
    }
}

struct Admin {
    gateway: Arc<Gateway>,
    router: Router,
    shutdown: CancellationToken,
    requests: usize,
    /// Whether the platform admin has reloaded the policies of this gateway: a reload reads
    /// and compiles the whole policy directory, which does not change, so one is enough.
    reloaded: bool,
    /// The last relationship update checked for isolation: each is checked once, when new
    /// (reading and resolving every update after every input took a quarter of the time).
    checked_update: i64,
}

fn tokens_of_callers() -> &'static Vec<String> {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        CALLERS
            .iter()
            .map(|(user, tenant, roles, agent)| person_token(user, tenant, roles, *agent))
            .collect()
    })
}

/// A fresh gateway in a fresh scratch directory.
fn start() -> Admin {
    static GENERATION: Mutex<u32> = Mutex::new(0);
    let generation = {
        let mut g = GENERATION.lock().expect("generation lock");
        *g += 1;
        *g
    };
    let dir = capgate_fuzz::decision_log::scratch(&format!("admin-{generation}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("capabilities")).expect("scratch dir");
    // The decision log a real gateway wrote (records of two tenants), for the record pages.
    std::fs::create_dir_all(dir.join("data")).expect("scratch data dir");
    std::fs::copy(
        capgate_fuzz::decision_log::fixtures().join("decision-log.db"),
        capgate::audit::log_path(&dir.join("data")),
    )
    .expect("the reference decision log copies");
    let mut config = tokens::config(&dir.join("data"), "");
    config.capabilities_dir = dir.join("capabilities");
    config.downstreams.clear();
    let shutdown = CancellationToken::new();
    let gateway = runtime()
        .block_on(capgate::startup::start_gateway(&config, shutdown.clone()))
        .expect("the admin fuzz gateway starts");
    let router = capgate::server::admin::admin_router(
        gateway.clone(),
        tokens::authenticator().clone(),
        capgate::server::admin::AdminOptions {
            roles: AdminRoles::default(),
            public_url: tokens::AUDIENCE.into(),
            log_key: None,
            sessions: None,
        },
    );
    Admin {
        gateway,
        router,
        shutdown,
        requests: 0,
        reloaded: false,
        checked_update: 0,
    }
}

fn admin() -> &'static Mutex<Option<Admin>> {
    static ADMIN: OnceLock<Mutex<Option<Admin>>> = OnceLock::new();
    ADMIN.get_or_init(|| Mutex::new(None))
}

#[derive(Debug)]
struct Req {
    endpoint: Endpoint,
    /// Index into CALLERS, or None for no token.
    caller: Option<usize>,
    id: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    raw_body: Option<Vec<u8>>,
    junk: Vec<(String, Value)>,
    content_type: bool,
}

impl<'a> Arbitrary<'a> for Req {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // A reload reads and compiles the whole policy directory (a tenth of a second, with no
        // input of its own to fuzz): one request in 512. A flush waits for the log: one in 64.
        // The others are drawn from the router's own table, so that an endpoint added to the
        // admin API is fuzzed without a change here. (Short inputs read zeros: zero is a cheap
        // endpoint.)
        let endpoint = match u.int_in_range(0u16..=511)? {
            511 => Endpoint::PolicyReload,
            n if n % 64 == 63 => Endpoint::AuditFlush,
            _ => {
                let others: Vec<Endpoint> = Endpoint::ALL
                    .iter()
                    .copied()
                    .filter(|e| !matches!(e, Endpoint::PolicyReload | Endpoint::AuditFlush))
                    .collect();
                *u.choose(&others)?
            }
        };
        let caller = if u.ratio(9, 10)? {
            Some(u.choose_index(CALLERS.len())?)
        } else {
            None
        };
        let id = if endpoint == Endpoint::DecisionRecord && u.ratio(3, 4)? {
            u.int_in_range(-1i64..=40)?.to_string()
        } else {
            text(u)?
        };
        let query = query_of(u, endpoint)?;
        let raw = u.ratio(1, 8)?;
        let body = if raw { None } else { body_of(u, endpoint)? };
        let raw_body = if raw { Some(u.arbitrary()?) } else { None };
        let mut junk = Vec::new();
        for _ in 0..u.int_in_range(1u8..=2)? {
            let mut name = text(u)?;
            if ["scope", "target", "tenant", "reason", "user", "agent_role", "tool", "expires_in_seconds"]
                .contains(&name.as_str())
            {
                name.insert_str(0, "x-");
            }
            junk.push((name, json_value(u, 1)?));
        }
        Ok(Req {
            endpoint,
            caller,
            id,
            query,
            body,
            raw_body,
            junk,
            content_type: u.ratio(15, 16)?,
        })
    }
}

#[derive(Debug)]
struct Input(Vec<Req>);

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut requests = Vec::new();
        for _ in 0..u.int_in_range(1u8..=4)? {
            requests.push(u.arbitrary()?);
        }
        Ok(Input(requests))
    }
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The request line: the router's own method and path, the path's id filled in.
fn route(req: &Req) -> (Method, String) {
    let (method, path) = req.endpoint.route();
    let path = path
        .replace("{id}", &encode(&req.id))
        .replace("{seq}", &encode(&req.id));
    let method = Method::from_bytes(method.as_bytes()).expect("the router's methods are valid");
    let query: Vec<String> = req
        .query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if query.is_empty() {
        (method, path)
    } else {
        (method, format!("{path}?{}", query.join("&")))
    }
}

fn send(router: &Router, req: &Req, body: Option<Vec<u8>>) -> (StatusCode, Value) {
    let (method, uri) = route(req);
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(caller) = req.caller {
        builder = builder.header("authorization", format!("Bearer {}", tokens_of_callers()[caller]));
    }
    if req.content_type {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(Body::from(body.unwrap_or_default()))
        .expect("an encoded path is a valid URI");
    runtime().block_on(async {
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    })
}

fn check_status(req: &Req, status: StatusCode) {
    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status} for {req:?}"
    );
    if req.caller.is_none() && req.endpoint != Endpoint::Metrics {
        // An empty id leaves a path no route has (`/approvals//approve`): not found, as any
        // path the router lacks is, with a token or without.
        let no_route = req.id.is_empty() && req.endpoint.route().1.contains('{');
        if no_route && status == StatusCode::NOT_FOUND {
            return;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{req:?}");
    }
}

/// What a tenant admin (in person) or a plain user is shown is of its own tenant only: kill
/// switches, decision records (listed, one by one, counted in the overview).
fn check_shown(req: &Req, answer: &Value) {
    let Some(caller) = req.caller else { return };
    let (user, tenant, _, agent) = CALLERS[caller];
    if user == "pat" && agent.is_none() {
        return; // the platform admin sees every tenant
    }
    let own = Value::String(tenant.into());
    match req.endpoint {
        Endpoint::KillSwitches => {
            if tenant_admin_of(user).is_some() && agent.is_none() {
                for switch in answer["kill_switches"].as_array().into_iter().flatten() {
                    assert_eq!(switch["tenant"], own, "{switch}");
                }
            }
        }
        Endpoint::Decisions | Endpoint::Overview => {
            assert_eq!(answer["tenant"], own, "{} shown {answer} for {req:?}", user);
            for record in answer["records"].as_array().into_iter().flatten() {
                assert_eq!(record["tenant"], own, "{user} shown {record}");
            }
        }
        Endpoint::DecisionRecord => {
            assert_eq!(answer["record"]["tenant"], own, "{user} shown {answer}");
        }
        Endpoint::PolicyStatus
        | Endpoint::PolicyReload
        | Endpoint::Relationships
        | Endpoint::AuditFlush
        | Endpoint::Health
        | Endpoint::KillSwitchSet
        | Endpoint::KillSwitchLift
        | Endpoint::Budgets
        | Endpoint::Runs
        | Endpoint::Approvals
        | Endpoint::Approve
        | Endpoint::Reject
        | Endpoint::BreakGlassGrants
        | Endpoint::BreakGlassOpen
        | Endpoint::BreakGlassRevoke
        | Endpoint::ToolPins
        | Endpoint::ToolAccept
        | Endpoint::Me
        | Endpoint::LogVerification
        | Endpoint::Metrics => {}
    }
}

/// Everything the store holds that a tenant admin made is of that admin's tenant (of the
/// relationship updates, those after `checked_update`, which moves past them).
fn check_isolation(gateway: &Gateway, checked_update: &mut i64) {
    for switch in gateway.controls().kill_switches() {
        if let Some(tenant) = tenant_admin_of(&switch.set_by) {
            assert_eq!(
                switch.tenant.as_deref(),
                Some(tenant),
                "tenant admin {} set a switch beyond its tenant: {switch:?}",
                switch.set_by
            );
            assert!(
                ["tenant", "user", "agent_role"].contains(&switch.scope.kind()),
                "tenant admin {} set a {} switch",
                switch.set_by,
                switch.scope.kind()
            );
        }
    }
    let grants = runtime()
        .block_on(gateway.controls().break_glass_grants())
        .unwrap_or_default();
    for grant in grants {
        if let Some(tenant) = tenant_admin_of(&grant.opened_by) {
            assert_eq!(grant.tenant, tenant, "a tenant admin's grant beyond its tenant: {grant:?}");
        }
    }
    let updates = runtime()
        .block_on(gateway.controls().store().relationship_updates_after(*checked_update))
        .unwrap_or_default();
    for update in updates {
        *checked_update = update.seq;
        if let Some(tenant) = tenant_admin_of(&update.by) {
            for entity in &update.entities {
                let resource = gateway.policy().relationship_resource(entity);
                if let AdminResource::Relationship { tenant: owner, .. } = resource {
                    assert_eq!(
                        owner.as_deref(),
                        Some(tenant),
                        "tenant admin {} wrote an entity of another tenant: {entity}",
                        update.by
                    );
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let mut slot = admin().lock().expect("admin lock");
    // A fresh gateway now and then, so that what earlier inputs wrote does not pile up.
    if slot.as_ref().is_none_or(|a| a.requests > 2_000) {
        if let Some(old) = slot.take() {
            old.shutdown.cancel();
        }
        *slot = Some(start());
    }
    let admin = slot.as_mut().expect("started");
    for req in &input.0 {
        // A second reload by the one caller allowed to reload costs a tenth of a second and
        // finds nothing the first did not (other callers' refusals are cheap, and still run).
        if req.endpoint == Endpoint::PolicyReload && req.caller == Some(0) && admin.reloaded {
            continue;
        }
        admin.requests += 1;
        let body = match (&req.body, &req.raw_body) {
            (Some(value), _) => Some(value.to_string().into_bytes()),
            (None, Some(raw)) => Some(raw.clone()),
            (None, None) => None,
        };
        let (status, answer) = send(&admin.router, req, body);
        check_status(req, status);
        if req.endpoint == Endpoint::PolicyReload && status.is_success() {
            admin.reloaded = true;
        }
        // The same body with junk members, after a refusal: refused again.
        if status.is_client_error() {
            if let Some(Value::Object(map)) = &req.body {
                let mut junked = map.clone();
                for (name, value) in &req.junk {
                    junked.entry(name.clone()).or_insert(value.clone());
                }
                let (again, _) = send(&admin.router, req, Some(Value::Object(junked).to_string().into_bytes()));
                check_status(req, again);
                assert!(
                    !again.is_success(),
                    "junk turned a refusal ({status}) into {again}: {req:?}"
                );
            }
        }
        if status.is_success() {
            check_shown(req, &answer);
        }
    }
    check_isolation(&admin.gateway, &mut admin.checked_update);
});
