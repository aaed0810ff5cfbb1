//! An identity provider's key server for the tests: HTTPS on 127.0.0.1, with a certificate for
//! that address signed by a CA made for this server alone (its PEM is written to `ca_file`, which
//! the gateway trusts through `[issuers.jwks_fetch] ca_file`). It serves, under `/tenant`, the
//! JWKS (`/tenant/keys`) and the OpenID provider configuration
//! (`/tenant/.well-known/openid-configuration`, issuer `<base>/tenant`). A test publishes and
//! withdraws keys, takes the server down (every answer 503) and up, and counts the requests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_rustls::rustls;

/// A test RSA signing key: the fixture's, or a second one.
pub struct TestKey(EncodingKey);

impl TestKey {
    pub fn from_fixture(name: &str) -> Self {
        let pem = std::fs::read(super::fixtures().join(name)).expect("fixture key");
        Self(EncodingKey::from_rsa_pem(&pem).expect("an RSA private key"))
    }

    /// The public half as a JWK with `kid`, declared for RS256 and signatures.
    pub fn jwk(&self, kid: &str) -> Value {
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.0, Algorithm::RS256)
            .expect("the public key of an RSA key");
        let mut jwk = serde_json::to_value(jwk).expect("jwk json");
        jwk["kid"] = kid.into();
        jwk["use"] = "sig".into();
        jwk
    }

    /// An RS256 token naming `kid`, with the standard test claims for `audience` and `iss`.
    pub fn token(
        &self,
        kid: &str,
        issuer: &str,
        spec: &super::TokenSpec,
        audience: &str,
    ) -> String {
        let mut claims = super::claims(spec, audience);
        claims.insert("iss".into(), issuer.into());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &self.0).expect("sign")
    }
}

#[derive(Default)]
struct Provider {
    keys: Vec<Value>,
    down: bool,
    jwks_requests: usize,
    discovery_requests: usize,
    issuer: String,
    jwks_uri: String,
}

type Shared = Arc<Mutex<Provider>>;

pub struct JwksServer {
    /// `https://127.0.0.1:<port>`
    pub base: String,
    /// The PEM of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    provider: Shared,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    /// Starts the server (up, with no keys) on a free port.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tls, ca_pem) = tls_config();
        let ca_file = dir.path().join("provider-ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write the CA");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the key server");
        let base = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().expect("address").port()
        );
        let provider: Shared = Arc::new(Mutex::new(Provider {
            issuer: format!("{base}/tenant"),
            jwks_uri: format!("{base}/tenant/keys"),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/tenant/keys", get(jwks))
            .route("/tenant/.well-known/openid-configuration", get(discovery))
            .with_state(provider.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(stream),
                            hyper_util::service::TowerToHyperService::new(app),
                        )
                        .await;
                });
            }
        });
        Self {
            base,
            ca_file,
            provider,
            task,
            _dir: dir,
        }
    }

    /// The issuer whose configuration document the server serves (for `discovery = true`).
    pub fn issuer(&self) -> String {
        format!("{}/tenant", self.base)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/tenant/keys", self.base)
    }

    /// Adds a key to the published set.
    pub fn publish(&self, jwk: Value) {
        self.with(|p| p.keys.push(jwk));
    }

    /// Removes the key with `kid` from the published set.
    pub fn withdraw(&self, kid: &str) {
        self.with(|p| p.keys.retain(|k| k["kid"] != kid));
    }

    /// Down: every request is answered 503 (and still counted).
    pub fn set_down(&self, down: bool) {
        self.with(|p| p.down = down);
    }

    pub fn jwks_requests(&self) -> usize {
        self.with(|p| p.jwks_requests)
    }

    pub fn discovery_requests(&self) -> usize {
        self.with(|p| p.discovery_requests)
    }

    /// Waits until the JWKS has been asked for at least `n` times.
    pub async fn wait_for_jwks_requests(&self, n: usize) {
        super::until_within(
            Duration::from_secs(30),
            || async { self.jwks_requests() >= n },
            || {
                format!(
                    "the key server got {} JWKS requests, not {n}",
                    self.jwks_requests()
                )
            },
        )
        .await
    }

    fn with<R>(&self, f: impl FnOnce(&mut Provider) -> R) -> R {
        f(&mut self.provider.lock().expect("provider state"))
    }
}

async fn jwks(State(provider): State<Shared>) -> Response {
    let (down, keys) = {
        let mut p = provider.lock().expect("provider state");
        p.jwks_requests += 1;
        (p.down, p.keys.clone())
    };
    if down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    (
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        Json(json!({ "keys": keys })),
    )
        .into_response()
}

async fn discovery(State(provider): State<Shared>) -> Response {
    let (down, issuer, jwks_uri) = {
        let mut p = provider.lock().expect("provider state");
        p.discovery_requests += 1;
        (p.down, p.issuer.clone(), p.jwks_uri.clone())
    };
    if down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

/// A CA made for one server, and the server's TLS configuration with a certificate for
/// 127.0.0.1 signed by it; the CA's PEM.
fn tls_config() -> (rustls::ServerConfig, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "capgate test key-server CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let server_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&server_key, &*ca)
        .expect("server certificate");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .expect("server TLS configuration");
    (config, certificate_pem(ca.der()))
}

/// A DER certificate as PEM (rcgen's own `pem` feature would bring a second `pem` crate).
fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
