//! Token verification cost: `jsonwebtoken::decode` alone (RS256 2048-bit and HS256, with the
//! issuer and audience checks capgate sets) and capgate's whole `Authenticator::authenticate`
//! (duplicate-member scan, pinned-algorithm check, verification, claims → actor) for an RS256
//! and an HS256 issuer. The RS256 rows show what the JWT crypto backend costs per request.
//! `authenticate` is async (a key fetched by URL may need a refresh); with file keys it never
//! waits, and the rows include one `block_on` on a current-thread runtime.
//!
//! `authenticate` is timed twice: the same token again (remembered: a SHA-256 and a lookup) and
//! a token never seen before each time (verified in full).
//!
//! Run: `cargo bench --bench jwt`. Criterion reports the mean per verification.
//!
//! Measured when jsonwebtoken moved from its RustCrypto backend to aws-lc-rs (same bench built
//! at both commits, run alternately twice on a shared, loaded 2-vCPU machine, criterion means):
//! `decode RS256` 176–226 µs → 31–42 µs; `authenticate RS256` 239–253 µs → 41–42 µs; the
//! HS256 rows unchanged (decode 5.5–7.1 µs, authenticate 14.0–16.7 µs).

use std::path::Path;

use capgate::config::GatewayConfig;
use capgate::identity::Authenticator;
use criterion::{criterion_group, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};

const AUDIENCE: &str = "http://127.0.0.1:8080/mcp";
const RS_ISSUER: &str = "https://rs.bench.local";
const HS_ISSUER: &str = "https://hs.bench.local";
/// More than the 10,000 verified tokens capgate remembers.
const DISTINCT_TOKENS: usize = 12_000;
const SECRET: &str = "capgate-bench-secret-0123456789abcdef0123456789";

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn claims(issuer: &str) -> Map<String, Value> {
    let now = jsonwebtoken::get_current_timestamp();
    let Value::Object(claims) = json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "alice", "tenant": "acme",
        "roles": ["analyst"], "act": {"sub": "drafting-agent"}, "run_id": "run-1",
        "iat": now, "nbf": now - 5, "exp": now + 3600,
    }) else {
        unreachable!("a JSON object literal is an object")
    };
    claims
}

fn validation(issuer: &str, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation
}

fn authenticator(dir: &Path) -> Authenticator {
    let secret = dir.join("hs.secret");
    std::fs::write(&secret, SECRET).expect("write the bench secret");
    let text = format!(
        r#"
capabilities_dir = "capabilities"
policies_dir = "policies"
data_dir = "data"
[server]
listen = "127.0.0.1:8080"
public_url = "{AUDIENCE}"
[[issuers]]
issuer = "{RS_ISSUER}"
algorithm = "RS256"
public_key_file = "{rs}"
[[issuers]]
issuer = "{HS_ISSUER}"
algorithm = "HS256"
secret_file = "{hs}"
"#,
        rs = fixture("test-rs256-public.pem").display(),
        hs = secret.display(),
    );
    let config = GatewayConfig::parse(&text, "bench.toml", dir).expect("bench config");
    Authenticator::from_config(&config).expect("bench keys")
}

fn bench_jwt(c: &mut Criterion) {
    let rsa_private = std::fs::read(fixture("test-rs256-private.pem")).expect("fixture");
    let rsa_public = std::fs::read(fixture("test-rs256-public.pem")).expect("fixture");
    let rs_token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(RS_ISSUER),
        &EncodingKey::from_rsa_pem(&rsa_private).expect("rsa key"),
    )
    .expect("sign RS256");
    let hs_token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(HS_ISSUER),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign HS256");

    let rs_key = DecodingKey::from_rsa_pem(&rsa_public).expect("rsa public key");
    let rs_validation = validation(RS_ISSUER, Algorithm::RS256);
    let hs_key = DecodingKey::from_secret(SECRET.as_bytes());
    let hs_validation = validation(HS_ISSUER, Algorithm::HS256);
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = authenticator(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");

    let mut group = c.benchmark_group("jwt");
    group.bench_function("decode RS256", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Map<String, Value>>(
                std::hint::black_box(&rs_token),
                &rs_key,
                &rs_validation,
            )
            .expect("valid RS256")
        })
    });
    group.bench_function("decode HS256", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Map<String, Value>>(
                std::hint::black_box(&hs_token),
                &hs_key,
                &hs_validation,
            )
            .expect("valid HS256")
        })
    });
    // The same token again: capgate remembers tokens that verified (src/identity/verified.rs).
    for (name, token) in [
        ("authenticate RS256, remembered", &rs_token),
        ("authenticate HS256, remembered", &hs_token),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(auth.authenticate(std::hint::black_box(token)))
                    .expect("actor")
            })
        });
    }
    // A token never seen before, every time: more distinct tokens than capgate remembers,
    // cycled, so each is verified in full (and then remembered, evicting another).
    for (name, algorithm, key) in [
        (
            "authenticate RS256, first sight",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&rsa_private).expect("rsa key"),
        ),
        (
            "authenticate HS256, first sight",
            Algorithm::HS256,
            EncodingKey::from_secret(SECRET.as_bytes()),
        ),
    ] {
        let issuer = match algorithm {
            Algorithm::RS256 => RS_ISSUER,
            _ => HS_ISSUER,
        };
        let tokens: Vec<String> = (0..DISTINCT_TOKENS)
            .map(|i| {
                let mut claims = claims(issuer);
                claims.insert("jti".into(), json!(format!("bench-{i}")));
                jsonwebtoken::encode(&Header::new(algorithm), &claims, &key).expect("sign")
            })
            .collect();
        let mut next = tokens.iter().cycle();
        group.bench_function(name, |b| {
            b.iter(|| {
                let token = next.next().expect("a cycle never ends");
                runtime
                    .block_on(auth.authenticate(std::hint::black_box(token)))
                    .expect("actor")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_jwt);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
