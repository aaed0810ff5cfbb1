//! Bearer tokens: header and claims parsing and verification against every key type capgate
//! supports (HS256 secret, RS256, ES256 and EdDSA PEM keys, RS256 JWKS by `kid`, and an issuer
//! with its own claim mapping), through `Authenticator::authenticate_header`.
//!
//! Invariants:
//! - no panic, on any header value;
//! - a token authenticates only if a key its issuer trusts signed exactly its header and
//!   payload, with the issuer's pinned algorithm named in the header;
//! - junk (members capgate does not read, in the header, the claims or an `act` object) never
//!   changes the outcome: what was refused stays refused, and what was accepted is the same
//!   actor;
//! - every id of an accepted actor passes `check_id`, and authenticating is deterministic.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use capgate::identity::{check_id, CompositeActor};
use capgate_fuzz::tokens::{self, pinned_algorithm, Signer, AUDIENCE, ISSUERS, JWKS_KID};
use capgate_fuzz::{json_value, text, Text};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Claim names capgate (or jsonwebtoken) reads, under any issuer's mapping: never junk.
const READ_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "tenant",
    "roles",
    "scope",
    "run_id",
    "act",
    "agent_role",
    "azp",
    "client_id",
    "org",
    "groups",
    "scp",
    "run",
    "agent",
    "agent_kind",
];

/// Header members a JOSE library may read: never junk.
const READ_HEADER: &[&str] = &[
    "alg", "typ", "cty", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64",
    "zip", "enc",
];

#[derive(Debug)]
enum Input {
    /// Any `Authorization` header value.
    Raw(String),
    /// A token built from parts, then perhaps tampered with.
    Built(Box<Built>),
}

#[derive(Debug)]
struct Built {
    signer: Signer,
    issuer: Value,
    /// The header's `alg`: the signer's, the issuer's pinned one, or anything.
    alg: Value,
    kid: Option<Value>,
    header_extra: Map<String, Value>,
    claims: Map<String, Value>,
    junk_header: Vec<(String, Value)>,
    junk_claims: Vec<(String, Value)>,
    junk_act: Vec<(String, Value)>,
    tamper: Tamper,
    scheme: &'static str,
}

#[derive(Debug, Arbitrary)]
enum Tamper {
    None,
    /// XOR one byte of the token text.
    Flip { at: u16, with: u8 },
    /// Replace one dot-separated segment with other text.
    Segment { index: u8, with: String },
    /// Cut the token short.
    Truncate { keep: u16 },
    /// Append text (a fourth segment, padding, whitespace...).
    Append(String),
}

fn member_name(u: &mut Unstructured, reserved: &[&str]) -> arbitrary::Result<String> {
    let name = text(u)?;
    Ok(if reserved.contains(&name.as_str()) {
        format!("x-{name}")
    } else {
        name
    })
}

fn id_value(u: &mut Unstructured) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0u8..=5)? {
        0..=3 => Value::String(text(u)?),
        4 => Value::Null,
        _ => json_value(u, 1)?,
    })
}

/// An `act` chain: each level an object with `sub` (and perhaps a role), nested `depth` deep.
fn act_chain(u: &mut Unstructured, depth: u8) -> arbitrary::Result<Value> {
    let mut act = Map::new();
    if u.ratio(7, 8)? {
        act.insert("sub".into(), id_value(u)?);
    }
    if u.ratio(1, 3)? {
        act.insert("agent_role".into(), id_value(u)?);
    }
    if depth > 0 && u.ratio(1, 3)? {
        act.insert("act".into(), act_chain(u, depth - 1)?);
    }
    Ok(Value::Object(act))
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        if u.ratio(1, 4)? {
            return Ok(Input::Raw(Text::arbitrary(u)?.0));
        }
        // RSA signing takes milliseconds: RS256 tokens come from the seeds (and their
        // mutations, in the raw mode); built tokens use the other keys.
        let signer = *u.choose(&[
            Signer::Hs,
            Signer::Hs,
            Signer::HsOther,
            Signer::HsWithRsPublicKey,
            Signer::Es,
            Signer::EsOther,
            Signer::Ed,
            Signer::Ed,
            Signer::EdOther,
            Signer::Unsigned,
        ])?;
        let issuer = if u.ratio(7, 8)? {
            Value::String(u.choose(&ISSUERS)?.to_string())
        } else {
            id_value(u)?
        };
        let pinned = issuer.as_str().and_then(pinned_algorithm);
        let alg = match u.int_in_range(0u8..=3)? {
            0 | 1 => Value::String(
                pinned
                    .or(signer.algorithm().map(algorithm_name))
                    .unwrap_or("none")
                    .into(),
            ),
            2 => Value::String(
                u.choose(&[
                    "HS256", "HS384", "RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA",
                    "none", "None", "hs256", "",
                ])?
                .to_string(),
            ),
            _ => json_value(u, 1)?,
        };
        let kid = match u.int_in_range(0u8..=3)? {
            0 | 1 => Some(Value::String(JWKS_KID.into())),
            2 => None,
            _ => Some(id_value(u)?),
        };
        let mut header_extra = Map::new();
        if u.ratio(1, 2)? {
            header_extra.insert("typ".into(), Value::String("JWT".into()));
        }
        let now = tokens::now();
        let mut claims = Map::new();
        claims.insert("iss".into(), issuer.clone());
        let aud = match u.int_in_range(0u8..=4)? {
            0..=2 => Value::String(AUDIENCE.into()),
            3 => serde_json::json!([AUDIENCE, "https://other.example"]),
            _ => json_value(u, 1)?,
        };
        claims.insert("aud".into(), aud);
        if u.ratio(15, 16)? {
            claims.insert("sub".into(), id_value(u)?);
        }
        let tenant_claim = if issuer.as_str() == Some(tokens::MAPPED_ISSUER) {
            "org"
        } else {
            "tenant"
        };
        if u.ratio(15, 16)? {
            claims.insert(tenant_claim.into(), id_value(u)?);
        }
        // Times: valid for a while, expired, not yet valid, or anything.
        let time = |u: &mut Unstructured| -> arbitrary::Result<Value> {
            Ok(match u.int_in_range(0u8..=3)? {
                0 => Value::from(now + 3600),
                1 => Value::from(now - 3600),
                2 => Value::from(now + i64::from(u.int_in_range(-400i16..=400)?)),
                _ => json_value(u, 0)?,
            })
        };
        if u.ratio(15, 16)? {
            claims.insert("exp".into(), time(u)?);
        }
        if u.ratio(1, 3)? {
            claims.insert("nbf".into(), time(u)?);
        }
        if u.ratio(1, 2)? {
            let roles = if u.arbitrary()? {
                Value::Array((0..u.int_in_range(0u8..=3)?).map(|_| id_value(u)).collect::<Result<_, _>>()?)
            } else {
                id_value(u)?
            };
            claims.insert(if tenant_claim == "org" { "groups" } else { "roles" }.into(), roles);
        }
        if u.ratio(1, 3)? {
            claims.insert("scope".into(), id_value(u)?);
        }
        if u.ratio(1, 2)? {
            if tenant_claim == "org" {
                claims.insert("agent".into(), id_value(u)?);
                if u.arbitrary()? {
                    claims.insert("agent_kind".into(), id_value(u)?);
                }
            } else {
                let depth = u.int_in_range(0u8..=4)?;
                claims.insert("act".into(), act_chain(u, depth)?);
            }
        }
        for name in ["azp", "client_id", "run_id", "run"] {
            if u.ratio(1, 6)? {
                claims.insert(name.into(), id_value(u)?);
            }
        }
        for _ in 0..u.int_in_range(0u8..=2)? {
            claims.insert(text(u)?, json_value(u, 2)?);
        }
        let junk = |u: &mut Unstructured, reserved: &[&str]| -> arbitrary::Result<Vec<(String, Value)>> {
            let mut out = Vec::new();
            for _ in 0..u.int_in_range(0u8..=2)? {
                out.push((member_name(u, reserved)?, json_value(u, 2)?));
            }
            Ok(out)
        };
        let junk_header = junk(u, READ_HEADER)?;
        let junk_claims = junk(u, READ_CLAIMS)?;
        let junk_act = junk(u, READ_CLAIMS)?;
        let tamper = if u.ratio(1, 2)? { Tamper::None } else { u.arbitrary()? };
        let scheme = u.choose(&["Bearer ", "bearer ", "Bearer  ", "BEARER ", "Basic ", ""])?;
        Ok(Input::Built(Box::new(Built {
            signer,
            issuer,
            alg,
            kid,
            header_extra,
            claims,
            junk_header,
            junk_claims,
            junk_act,
            tamper,
            scheme,
        })))
    }
}

fn algorithm_name(alg: jsonwebtoken::Algorithm) -> &'static str {
    match alg {
        jsonwebtoken::Algorithm::HS256 => "HS256",
        jsonwebtoken::Algorithm::RS256 => "RS256",
        jsonwebtoken::Algorithm::ES256 => "ES256",
        jsonwebtoken::Algorithm::EdDSA => "EdDSA",
        _ => "other",
    }
}

/// Every id of an accepted actor is a valid id.
fn check_actor(actor: &CompositeActor) {
    assert!(check_id(&actor.user.id).is_ok(), "accepted sub {:?}", actor.user.id);
    assert!(check_id(&actor.tenant).is_ok(), "accepted tenant {:?}", actor.tenant);
    if let Some(agent) = &actor.agent {
        assert!(check_id(&agent.id).is_ok(), "accepted agent {:?}", agent.id);
        assert!(check_id(&agent.role).is_ok(), "accepted agent role {:?}", agent.role);
    }
    for id in &actor.delegation_chain {
        assert!(check_id(id).is_ok(), "accepted delegation chain id {id:?}");
    }
}

/// Authenticates twice (the outcome must not change) and checks an accepted actor.
fn authenticate(header: &str) -> Result<CompositeActor, String> {
    let auth = tokens::authenticator();
    // Authentication is async (keys by URL may be fetched); these issuers' keys are local.
    let once = || capgate_fuzz::runtime().block_on(auth.authenticate_header(Some(header)));
    match once() {
        Ok(actor) => {
            check_actor(&actor);
            assert_eq!(
                once().as_ref(),
                Ok(&actor),
                "authenticating {header:?} twice differs"
            );
            Ok(actor)
        }
        Err(error) => {
            // Every refusal renders a challenge header without panicking.
            let _ = auth.challenge(&error);
            Err(error.to_string())
        }
    }
}

fn tampered(token: &str, tamper: &Tamper) -> String {
    match tamper {
        Tamper::None => token.to_string(),
        Tamper::Flip { at, with } => {
            let mut bytes = token.as_bytes().to_vec();
            if !bytes.is_empty() {
                let at = usize::from(*at) % bytes.len();
                bytes[at] ^= with.max(&1);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Tamper::Segment { index, with } => {
            let mut parts: Vec<&str> = token.split('.').collect();
            let at = usize::from(*index) % parts.len();
            parts[at] = with;
            parts.join(".")
        }
        Tamper::Truncate { keep } => token.chars().take(usize::from(*keep)).collect(),
        Tamper::Append(extra) => format!("{token}{extra}"),
    }
}

/// The first two segments (header and payload) of a token.
fn signed_part(token: &str) -> Option<(&str, &str)> {
    let mut parts = token.split('.');
    Some((parts.next()?, parts.next()?))
}

fn run(built: &Built) {
    let mut header = built.header_extra.clone();
    header.insert("alg".into(), built.alg.clone());
    if let Some(kid) = &built.kid {
        header.insert("kid".into(), kid.clone());
    }
    let claims = Value::Object(built.claims.clone());
    let honest = tokens::sign(built.signer, &Value::Object(header.clone()), &claims);
    let token = tampered(&honest, &built.tamper);
    let outcome = authenticate(&format!("{}{token}", built.scheme));

    if outcome.is_ok() {
        // Only a key the issuer trusts, under its pinned algorithm, over exactly these bytes.
        let issuer = built.issuer.as_str().unwrap_or_default();
        assert!(
            built.signer.trusted_by().contains(&issuer),
            "{issuer:?} accepted a token signed by {:?}: {token}",
            built.signer
        );
        assert_eq!(
            built.alg.as_str(),
            pinned_algorithm(issuer),
            "accepted a token whose alg is not the issuer's pinned one: {token}"
        );
        let honest_parts = signed_part(&honest);
        let presented = signed_part(token.trim());
        assert_eq!(
            presented, honest_parts,
            "accepted a token whose header or payload was changed after signing: {token}"
        );
    }

    // The same token with junk members: the outcome must not change.
    if built.junk_header.is_empty() && built.junk_claims.is_empty() && built.junk_act.is_empty() {
        return;
    }
    let mut junk_header = header;
    for (name, value) in &built.junk_header {
        if !junk_header.contains_key(name) {
            junk_header.insert(name.clone(), value.clone());
        }
    }
    let mut junk_claims = built.claims.clone();
    for (name, value) in &built.junk_claims {
        if !junk_claims.contains_key(name) {
            junk_claims.insert(name.clone(), value.clone());
        }
    }
    // Junk in the innermost `act` object, where it is one.
    let mut act = junk_claims.get_mut("act");
    while let Some(Value::Object(object)) = act {
        if matches!(object.get("act"), Some(Value::Object(_))) {
            act = object.get_mut("act");
            continue;
        }
        for (name, value) in &built.junk_act {
            if !object.contains_key(name) {
                object.insert(name.clone(), value.clone());
            }
        }
        break;
    }
    let with_junk = tampered(
        &tokens::sign(
            built.signer,
            &Value::Object(junk_header),
            &Value::Object(junk_claims),
        ),
        match built.tamper {
            // A flip or a cut lands elsewhere in a longer token: compare untampered tokens.
            Tamper::Flip { .. } | Tamper::Truncate { .. } | Tamper::Segment { .. } => &Tamper::None,
            Tamper::None | Tamper::Append(_) => &built.tamper,
        },
    );
    let junk_outcome = authenticate(&format!("{}{with_junk}", built.scheme));
    let base = match built.tamper {
        Tamper::Flip { .. } | Tamper::Truncate { .. } | Tamper::Segment { .. } => {
            authenticate(&format!("{}{honest}", built.scheme))
        }
        Tamper::None | Tamper::Append(_) => outcome,
    };
    match (&base, &junk_outcome) {
        (Err(_), Ok(actor)) => panic!(
            "junk members turned a refusal into an allow ({:?}): {actor:?}",
            base
        ),
        (Ok(before), Ok(after)) => assert_eq!(before, after, "junk members changed the actor"),
        (Ok(_), Err(_)) | (Err(_), Err(_)) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // A seed is a real token (`eyJ...`): presented as it is, and as each scheme spelling.
    if data.starts_with(b"eyJ") {
        let token = String::from_utf8_lossy(data);
        for scheme in ["Bearer ", "bearer ", ""] {
            if let Ok(actor) = authenticate(&format!("{scheme}{token}")) {
                assert!(tokens::ISSUERS.contains(&actor.issuer.as_str()));
            }
        }
        return;
    }
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    match input {
        Input::Raw(header) => {
            if let Ok(actor) = authenticate(&header) {
                // A raw value that authenticates names a pinned algorithm and a known issuer.
                assert!(tokens::ISSUERS.contains(&actor.issuer.as_str()));
            }
        }
        Input::Built(built) => run(&built),
    }
});
