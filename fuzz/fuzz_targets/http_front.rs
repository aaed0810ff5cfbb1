//! The HTTP front door up to dispatch: a short sequence of requests (method, path, headers,
//! `Authorization`, `Mcp-Session-Id`, body) through the layers every `/mcp` request passes
//! (authentication, per-principal limits, the body's parse errors and `Peek`, sessions bound
//! to their principal), in front of a recorder standing where rmcp stands.
//!
//! Invariants:
//! - no panic;
//! - a request reaches dispatch only with a valid token, carrying that token's actor; junk
//!   headers never let an unauthenticated request through (it is answered 401 with a
//!   `WWW-Authenticate` challenge);
//! - a POST reaches dispatch only with a JSON body of at most 4 MiB, passed on byte for byte,
//!   with a `Peek` naming its JSON-RPC method; an authenticated POST whose body is not JSON is
//!   answered 400 with the JSON-RPC parse error -32700, and one over 4 MiB 413;
//! - a session id reaches dispatch only from the principal whose `initialize` opened it.

#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use capgate::fuzzing::{front_door, Peek, MAX_BODY_BYTES};
use capgate::identity::ActorRef;
use capgate_fuzz::tokens::{self, Signer, AUDIENCE, HS_ISSUER};
use capgate_fuzz::{json_value, runtime, text};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;

/// The principals with valid tokens: (user, tenant, roles, agent).
const PRINCIPALS: [(&str, &str, &[&str], Option<&str>); 4] = [
    ("alice", "acme", &["analyst"], Some("drafting-agent")),
    ("alice", "acme", &["analyst"], None),
    ("bob", "globex", &["analyst"], Some("drafting-agent")),
    ("carol", "acme", &["supervisor"], Some("risk-agent")),
];

struct Tokens {
    valid: Vec<String>,
    expired: String,
    forged: String,
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let valid = PRINCIPALS
            .iter()
            .map(|(user, tenant, roles, agent)| tokens::person_token(user, tenant, roles, *agent))
            .collect();
        let claims = |exp: i64| {
            serde_json::json!({"iss": HS_ISSUER, "aud": AUDIENCE, "sub": "alice",
                               "tenant": "acme", "exp": exp})
        };
        let header = serde_json::json!({"alg": "HS256"});
        Tokens {
            valid,
            expired: tokens::sign(Signer::Hs, &header, &claims(tokens::now() - 86_400)),
            forged: tokens::sign(
                Signer::HsOther,
                &header,
                &claims(tokens::now() + 86_400),
            ),
        }
    })
}

#[derive(Debug)]
enum Auth {
    Valid(usize),
    Expired,
    Forged,
    Missing,
    Raw(String),
    /// Two `Authorization` headers: a valid token first or second.
    Two { valid: usize, first: bool, other: String },
    /// A valid token under another scheme spelling.
    Scheme { valid: usize, scheme: String },
}

#[derive(Debug)]
enum Session {
    None,
    /// A session an earlier response of this input opened.
    Earlier(usize),
    Raw(String),
}

#[derive(Debug)]
enum BodyKind {
    Empty,
    Raw(Vec<u8>),
    JsonRpc(Value),
    /// The JSON text of a value with bytes appended (trailing garbage, a second document).
    JsonThen(Value, Vec<u8>),
    Oversize,
}

#[derive(Debug)]
struct Req {
    method: Method,
    path: String,
    auth: Auth,
    session: Session,
    headers: Vec<(HeaderName, Vec<u8>)>,
    body: BodyKind,
}

const HEADER_NAMES: &[&str] = &[
    "content-type",
    "accept",
    "host",
    "origin",
    "last-event-id",
    "mcp-protocol-version",
    "content-encoding",
    "transfer-encoding",
    "x-forwarded-for",
    "cookie",
    "authorization",
    "mcp-session-id",
];

const RPC_METHODS: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "tools/list",
    "tools/call",
    "resources/read",
    "resources/subscribe",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/cancelled",
    "ping",
];

fn jsonrpc(u: &mut Unstructured) -> arbitrary::Result<Value> {
    let mut message = serde_json::Map::new();
    if u.ratio(7, 8)? {
        message.insert("jsonrpc".into(), Value::String("2.0".into()));
    }
    if u.ratio(3, 4)? {
        let id = if u.arbitrary()? {
            Value::from(u.int_in_range(0u32..=1000)?)
        } else {
            json_value(u, 1)?
        };
        message.insert("id".into(), id);
    }
    let method = if u.ratio(7, 8)? {
        Value::String(u.choose(RPC_METHODS)?.to_string())
    } else {
        json_value(u, 1)?
    };
    message.insert("method".into(), method);
    if u.ratio(3, 4)? {
        message.insert("params".into(), json_value(u, 3)?);
    }
    for _ in 0..u.int_in_range(0u8..=1)? {
        message.insert(text(u)?, json_value(u, 1)?);
    }
    Ok(Value::Object(message))
}

impl<'a> Arbitrary<'a> for Req {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let method = match u.int_in_range(0u8..=9)? {
            0..=4 => Method::POST,
            5 => Method::GET,
            6 => Method::DELETE,
            7 => Method::PUT,
            8 => Method::OPTIONS,
            _ => Method::from_bytes(text(u)?.as_bytes()).unwrap_or(Method::PATCH),
        };
        let path = match u.int_in_range(0u8..=7)? {
            0..=4 => "/mcp".to_string(),
            5 => "/mcp/".to_string(),
            6 => "/mcp?x=1".to_string(),
            _ => format!("/{}", text(u)?),
        };
        let principal = |u: &mut Unstructured| u.choose_index(PRINCIPALS.len());
        let auth = match u.int_in_range(0u8..=11)? {
            0..=5 => Auth::Valid(principal(u)?),
            6 => Auth::Expired,
            7 => Auth::Forged,
            8 => Auth::Missing,
            9 => Auth::Raw(text(u)?),
            10 => Auth::Two {
                valid: principal(u)?,
                first: u.arbitrary()?,
                other: text(u)?,
            },
            _ => Auth::Scheme {
                valid: principal(u)?,
                scheme: text(u)?,
            },
        };
        let session = match u.int_in_range(0u8..=5)? {
            0..=2 => Session::None,
            3 | 4 => Session::Earlier(u.int_in_range(0usize..=3)?),
            _ => Session::Raw(text(u)?),
        };
        let mut headers = Vec::new();
        for _ in 0..u.int_in_range(0u8..=3)? {
            let name = HeaderName::from_static(u.choose(HEADER_NAMES)?);
            let value = if u.arbitrary()? {
                text(u)?.into_bytes()
            } else {
                u.arbitrary()?
            };
            headers.push((name, value));
        }
        // An oversize body costs milliseconds: one in 64.
        let body = match u.int_in_range(0u8..=63)? {
            0..=3 => BodyKind::Empty,
            4..=15 => BodyKind::Raw(u.arbitrary()?),
            16..=47 => BodyKind::JsonRpc(jsonrpc(u)?),
            48..=51 => BodyKind::JsonRpc(Value::Array(vec![jsonrpc(u)?, jsonrpc(u)?])),
            52..=62 => BodyKind::JsonThen(jsonrpc(u)?, u.arbitrary()?),
            _ => BodyKind::Oversize,
        };
        Ok(Req {
            method,
            path,
            auth,
            session,
            headers,
            body,
        })
    }
}

#[derive(Debug)]
struct Input(Vec<Req>);

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut requests = Vec::new();
        for _ in 0..u.int_in_range(1u8..=5)? {
            requests.push(u.arbitrary()?);
        }
        Ok(Input(requests))
    }
}

/// What the recorder saw of one dispatched request.
struct Dispatched {
    actor: Option<ActorRef>,
    peek: Option<Peek>,
    body: Vec<u8>,
    session: Option<String>,
}

type Seen = Arc<Mutex<Vec<Dispatched>>>;

/// Stands where rmcp stands: records the request; answers `initialize` with a new session id
/// and DELETE with 202 (as rmcp does).
async fn recorder(seen: Seen, counter: Arc<Mutex<u32>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let peek = parts.extensions.get::<Peek>().cloned();
    let opens = peek.as_ref().and_then(|p| p.method.as_deref()) == Some("initialize");
    seen.lock().expect("recorder lock").push(Dispatched {
        actor: parts.extensions.get::<ActorRef>().cloned(),
        peek,
        body,
        session: parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    if parts.method == Method::DELETE {
        return StatusCode::ACCEPTED.into_response();
    }
    if opens {
        let mut n = counter.lock().expect("counter lock");
        *n += 1;
        let mut response = StatusCode::OK.into_response();
        response.headers_mut().insert(
            "mcp-session-id",
            HeaderValue::from_str(&format!("session-{n}")).expect("an ascii header"),
        );
        return response;
    }
    StatusCode::OK.into_response()
}

fn config() -> &'static capgate::config::GatewayConfig {
    static CONFIG: OnceLock<capgate::config::GatewayConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        tokens::config(
            &std::env::temp_dir().join("capgate-fuzz-unused"),
            "[limits]\nsessions_per_principal = 2\nmax_sessions = 3\nrequests_per_second = 1000\nrequest_burst = 1000\n",
        )
    })
}

fn principal_of(actor: &ActorRef) -> (String, String, Option<String>) {
    (
        actor.user.id.clone(),
        actor.tenant.clone(),
        actor.agent.as_ref().map(|a| a.id.clone()),
    )
}

fn expected_principal(index: usize) -> (String, String, Option<String>) {
    let (user, tenant, _, agent) = PRINCIPALS[index];
    (user.into(), tenant.into(), agent.map(str::to_string))
}

/// An input that is a JSON-RPC body (a seed: a real MCP request) is posted as each principal
/// and with each kind of bad token; any other input is a structured sequence of requests.
fn input_of(data: &[u8]) -> Option<Input> {
    if data.first().is_some_and(|b| *b == b'{' || *b == b'[') {
        let request = |auth: Auth| Req {
            method: Method::POST,
            path: "/mcp".into(),
            auth,
            session: Session::None,
            headers: vec![(
                HeaderName::from_static("content-type"),
                b"application/json".to_vec(),
            )],
            body: BodyKind::Raw(data.to_vec()),
        };
        let mut requests: Vec<Req> = (0..PRINCIPALS.len()).map(|i| request(Auth::Valid(i))).collect();
        requests.push(request(Auth::Expired));
        requests.push(request(Auth::Forged));
        return Some(Input(requests));
    }
    Input::arbitrary_take_rest(Unstructured::new(data)).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = input_of(data) else {
        return;
    };
    let seen: Seen = Arc::default();
    let counter = Arc::new(Mutex::new(0u32));
    let inner = {
        let seen = seen.clone();
        let counter = counter.clone();
        Router::new().nest_service(
            "/mcp",
            axum::routing::any(move |request: Request| recorder(seen.clone(), counter.clone(), request)),
        )
    };
    let app = front_door(inner, config(), tokens::authenticator().clone());
    let tokens = tokens();
    // Sessions opened so far, with the principal that opened them.
    let mut opened: Vec<(String, (String, String, Option<String>))> = Vec::new();

    for req in input.0 {
        let mut builder = http::Request::builder().method(req.method.clone()).uri(&req.path);
        let valid_principal = match &req.auth {
            Auth::Valid(i) => {
                builder = builder.header("authorization", format!("Bearer {}", tokens.valid[*i]));
                Some(*i)
            }
            Auth::Expired => {
                builder = builder.header("authorization", format!("Bearer {}", tokens.expired));
                None
            }
            Auth::Forged => {
                builder = builder.header("authorization", format!("Bearer {}", tokens.forged));
                None
            }
            Auth::Missing => None,
            Auth::Raw(raw) => {
                builder = builder.header("authorization", raw.as_bytes());
                None
            }
            Auth::Two {
                valid,
                first,
                other,
            } => {
                let good = format!("Bearer {}", tokens.valid[*valid]);
                if *first {
                    builder = builder
                        .header("authorization", good)
                        .header("authorization", other.as_bytes());
                    Some(*valid)
                } else {
                    builder = builder
                        .header("authorization", other.as_bytes())
                        .header("authorization", good);
                    // Only the first header is read: the second never authenticates.
                    None
                }
            }
            Auth::Scheme { valid, scheme } => {
                builder = builder.header(
                    "authorization",
                    format!("{scheme}{}", tokens.valid[*valid]).as_bytes(),
                );
                // Only `Bearer ` and `bearer ` carry a token.
                (scheme == "Bearer " || scheme == "bearer ").then_some(*valid)
            }
        };
        let presented_session = match &req.session {
            Session::None => None,
            Session::Earlier(i) => opened.get(*i).map(|(id, _)| id.clone()),
            Session::Raw(raw) => Some(raw.clone()),
        };
        if let Some(session) = &presented_session {
            builder = builder.header("mcp-session-id", session.as_bytes());
        }
        for (name, value) in &req.headers {
            // Junk may not stand in for the token or the session: those are set above.
            if name == "authorization" || name == "mcp-session-id" {
                continue;
            }
            builder = builder.header(name, value.as_slice());
        }
        let body: Vec<u8> = match &req.body {
            BodyKind::Empty => Vec::new(),
            BodyKind::Raw(bytes) => bytes.clone(),
            BodyKind::JsonRpc(value) => value.to_string().into_bytes(),
            BodyKind::JsonThen(value, tail) => {
                let mut bytes = value.to_string().into_bytes();
                bytes.extend_from_slice(tail);
                bytes
            }
            BodyKind::Oversize => {
                let mut bytes = b"{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"pad\":\"".to_vec();
                bytes.resize(MAX_BODY_BYTES + 8, b'a');
                bytes.extend_from_slice(b"\"}");
                bytes
            }
        };
        let Ok(request) = builder.body(Body::from(body.clone())) else {
            // Not a request hyper would have parsed (a header value it refuses).
            continue;
        };
        let before = seen.lock().expect("lock").len();
        let response = runtime().block_on(async {
            let response = app.clone().oneshot(request).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            (parts, bytes)
        });
        let (parts, response_body) = response;
        let dispatched = seen.lock().expect("lock").drain(before..).collect::<Vec<_>>();
        assert!(dispatched.len() <= 1);

        // The path decides whether the recorder is reached at all; the rest is the front door's.
        let routed = req.path == "/mcp" || req.path.starts_with("/mcp?") || req.path.starts_with("/mcp/");
        match dispatched.into_iter().next() {
            Some(d) => {
                let Some(index) = valid_principal else {
                    panic!("a request without a valid token reached dispatch: {req:?}");
                };
                let actor = d.actor.expect("a dispatched request carries its actor");
                assert_eq!(principal_of(&actor), expected_principal(index));
                if req.method == Method::POST {
                    assert_eq!(d.body, body, "the body changed on its way to dispatch");
                    assert!(d.body.len() <= MAX_BODY_BYTES);
                    let parsed: Value = serde_json::from_slice(&d.body)
                        .expect("only a JSON body reaches dispatch");
                    let peek = d.peek.expect("a dispatched POST carries its Peek");
                    assert_eq!(
                        peek.method.as_deref(),
                        parsed.get("method").and_then(Value::as_str),
                        "the Peek does not name the body's method"
                    );
                }
                if let Some(session) = &d.session {
                    let owner = opened.iter().find(|(id, _)| id == session).map(|(_, p)| p);
                    assert_eq!(
                        owner,
                        Some(&principal_of(&actor)),
                        "session {session:?} reached dispatch for a principal that did not open it"
                    );
                }
                if let Some(created) = parts.headers.get("mcp-session-id") {
                    if let Ok(created) = created.to_str() {
                        opened.push((created.to_string(), principal_of(&actor)));
                    }
                }
            }
            None if !routed => {}
            None => {
                let status = parts.status;
                if valid_principal.is_none() {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{req:?}");
                    assert!(parts.headers.contains_key("www-authenticate"));
                    continue;
                }
                match status {
                    StatusCode::BAD_REQUEST => {
                        assert!(serde_json::from_slice::<Value>(&body).is_err());
                        let answer: Value = serde_json::from_slice(&response_body)
                            .expect("a parse error is JSON-RPC");
                        assert_eq!(answer["error"]["code"], -32700);
                    }
                    StatusCode::PAYLOAD_TOO_LARGE => assert!(body.len() > MAX_BODY_BYTES),
                    // Another principal's (or an unknown) session; a session cap; a rate or
                    // concurrency limit.
                    StatusCode::NOT_FOUND
                    | StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::SERVICE_UNAVAILABLE => {}
                    other => panic!("an authenticated request stopped with {other}: {req:?}"),
                }
                if req.method == Method::POST && status != StatusCode::NOT_FOUND {
                    let json = serde_json::from_slice::<Value>(&body).is_ok();
                    let fits = body.len() <= MAX_BODY_BYTES;
                    assert!(
                        !(json && fits) || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE,
                        "a valid POST was stopped with {status}"
                    );
                }
            }
        }
    }
});
