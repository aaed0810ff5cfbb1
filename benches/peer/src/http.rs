//! One MCP client session over streamable HTTP, as an ordinary client holds it: one
//! keep-alive HTTP/1.1 connection (TCP_NODELAY on, as HTTP client libraries set it; no
//! TCP_QUICKACK, so a server that writes an answer in parts and waits for the ACK shows it),
//! `initialize` and `notifications/initialized`, then one request at a time.

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::load::Caller;
use crate::mcp::{self, CallTemplate};

const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";

/// Where the MCP endpoint is and how to authenticate to it.
#[derive(Clone)]
pub struct Endpoint {
    authority: String,
    path: String,
    host: HeaderValue,
    authorization: Option<HeaderValue>,
}

impl Endpoint {
    pub fn new(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// endpoints are measured, not {url}");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("no host in {url}"))?
            .to_string();
        let authorization = token
            .map(|token| HeaderValue::from_str(&format!("Bearer {}", token.trim())))
            .transpose()
            .context("the token is not a valid header value")?;
        Ok(Self {
            host: HeaderValue::from_str(&authority)?,
            authority,
            path: uri.path().to_owned(),
            authorization,
        })
    }
}

/// A reply: its status, content type, session id (on `initialize`) and body.
struct Reply {
    status: StatusCode,
    content_type: String,
    session: Option<HeaderValue>,
    body: Bytes,
}

pub struct HttpSession {
    endpoint: Endpoint,
    /// `None` once the client closed its connection (`disconnect`).
    sender: Option<SendRequest<Full<Bytes>>>,
    session: Option<HeaderValue>,
    protocol: Option<HeaderValue>,
    next_id: u64,
    /// Whether a connection the server closed (an idle one), or the client (`disconnect`), is
    /// replaced before the next request, instead of failing it.
    reconnect: bool,
    /// How many times one the server closed was.
    pub reconnects: u32,
}

/// One keep-alive HTTP/1.1 connection to the endpoint.
async fn connect(endpoint: &Endpoint) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(&endpoint.authority)
        .await
        .with_context(|| format!("cannot connect to {}", endpoint.authority))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("connection ended: {error}");
        }
    });
    Ok(sender)
}

impl HttpSession {
    /// Connects and initializes a session; a closed connection fails the next request.
    pub async fn open(endpoint: Endpoint) -> anyhow::Result<Self> {
        Self::open_with(endpoint, false).await
    }

    /// Connects and initializes a session that reconnects (same session id) when the server
    /// has closed its connection between requests.
    pub async fn open_reconnecting(endpoint: Endpoint) -> anyhow::Result<Self> {
        Self::open_with(endpoint, true).await
    }

    async fn open_with(endpoint: Endpoint, reconnect: bool) -> anyhow::Result<Self> {
        let sender = connect(&endpoint).await?;
        let mut session = Self {
            endpoint,
            sender: Some(sender),
            session: None,
            protocol: None,
            next_id: 1,
            reconnect,
            reconnects: 0,
        };
        session.initialize().await?;
        Ok(session)
    }

    /// Whether the session's connection is still open (as far as the client has seen).
    pub fn connected(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// Closes the session's connection (the session stays); with `open_reconnecting`, the
    /// next request opens another.
    pub fn disconnect(&mut self) {
        self.sender = None;
    }

    /// Sends one JSON-RPC request and returns its result (an error answer fails).
    pub async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.take_id();
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = self.post(body.to_string().into_bytes()).await?;
        if reply.status != StatusCode::OK {
            bail!(
                "{method} answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        let answer = mcp::answer_in_body(&reply.content_type, &reply.body, id)?;
        mcp::result_of(answer, id).with_context(|| method.to_owned())
    }

    /// Ends the session (`DELETE` with its `Mcp-Session-Id`); returns the status.
    pub async fn delete(&mut self) -> anyhow::Result<StatusCode> {
        let request = self.builder(Method::DELETE).body(Full::new(Bytes::new()))?;
        Ok(self.send(request).await?.status)
    }

    async fn initialize(&mut self) -> anyhow::Result<()> {
        let id = self.take_id();
        let reply = self.post(mcp::initialize_request(id)).await?;
        if reply.status != StatusCode::OK {
            bail!(
                "initialize answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        let answer = mcp::answer_in_body(&reply.content_type, &reply.body, id)?;
        let result = mcp::result_of(answer, id).context("initialize")?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .context("initialize result without protocolVersion")?;
        self.protocol = Some(HeaderValue::from_str(version)?);
        self.session = reply.session;
        let reply = self.post(mcp::initialized_notification()).await?;
        if !reply.status.is_success() {
            bail!("notifications/initialized answered {}", reply.status);
        }
        Ok(())
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn post(&mut self, body: Vec<u8>) -> anyhow::Result<Reply> {
        let request = self
            .builder(Method::POST)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(Full::new(Bytes::from(body)))?;
        self.send(request).await
    }

    /// A request to the endpoint with the session's headers.
    fn builder(&self, method: Method) -> hyper::http::request::Builder {
        let mut request = Request::builder()
            .method(method)
            .uri(self.endpoint.path.as_str())
            .header(HOST, self.endpoint.host.clone());
        if let Some(authorization) = &self.endpoint.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if let Some(session) = &self.session {
            request = request.header(SESSION_HEADER, session.clone());
        }
        if let Some(protocol) = &self.protocol {
            request = request.header(PROTOCOL_HEADER, protocol.clone());
        }
        request
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        if self.reconnect {
            let usable = match self.sender.as_mut() {
                Some(sender) => {
                    let ready = sender.ready().await.is_ok();
                    if !ready {
                        self.reconnects += 1;
                    }
                    ready
                }
                None => false,
            };
            if !usable {
                self.sender = Some(connect(&self.endpoint).await?);
            }
        }
        let sender = self.sender.as_mut().context("the connection was closed")?;
        sender.ready().await.context("the connection closed")?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Ok(Reply {
            status: parts.status,
            content_type,
            session: parts.headers.get(SESSION_HEADER).cloned(),
            body,
        })
    }
}

impl Caller for HttpSession {
    async fn call(&mut self, template: &CallTemplate) -> anyhow::Result<()> {
        let id = self.take_id();
        let reply = self.post(template.request(id)).await?;
        if reply.status != StatusCode::OK {
            bail!(
                "tools/call answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        let answer = mcp::answer_in_body(&reply.content_type, &reply.body, id)?;
        mcp::check_call_result(&mcp::result_of(answer, id)?)
    }
}
