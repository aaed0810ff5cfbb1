//! One MCP client session over streamable HTTP, as an ordinary client holds it: one
//! keep-alive HTTP/1.1 connection (TCP_NODELAY on, as HTTP client libraries set it; no
//! TCP_QUICKACK, so a server that writes an answer in parts and waits for the ACK shows it),
//! `initialize` and `notifications/initialized`, then one request at a time.

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
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
    sender: SendRequest<Full<Bytes>>,
    session: Option<HeaderValue>,
    protocol: Option<HeaderValue>,
    next_id: u64,
}

impl HttpSession {
    /// Connects and initializes a session.
    pub async fn open(endpoint: Endpoint) -> anyhow::Result<Self> {
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
        let mut session = Self {
            endpoint,
            sender,
            session: None,
            protocol: None,
            next_id: 1,
        };
        session.initialize().await?;
        Ok(session)
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
        let mut request = Request::post(self.endpoint.path.as_str())
            .header(HOST, self.endpoint.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(authorization) = &self.endpoint.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if let Some(session) = &self.session {
            request = request.header(SESSION_HEADER, session.clone());
        }
        if let Some(protocol) = &self.protocol {
            request = request.header(PROTOCOL_HEADER, protocol.clone());
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await.context("the connection closed")?;
        let response = self.sender.send_request(request).await?;
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
