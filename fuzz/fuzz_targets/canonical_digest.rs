//! Canonical JSON and the action digest an approval is bound to
//! (`enforce::approval_rules::ActionDigest`): a call's tenant, user, agent, tool, tool
//! definition, arguments and run.
//!
//! Invariants: no panic; canonical JSON reads back as the same value, does not depend on the
//! order of members, and is a fixed point; two calls get the same digest exactly when they are
//! the same call (an approval granted for one call never authorizes another, and the same call
//! always finds its approval).
//!
//! JSON numbers are compared by value, exactly (as RFC 8785, which canonical JSON follows,
//! compares them): `1` and `1.0`, `0` and `-0.0` are one number; `2^53` and `2^53 + 1` are two.

#![no_main]

use arbitrary::Unstructured;
use capgate::enforce::ActionDigest;
use capgate::identity::{AgentIdentity, CompositeActor, UserIdentity};
use capgate::store::{canonical_json, RunKey};
use capgate_fuzz::{json_object, json_value, text};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
struct Call {
    tenant: String,
    user: String,
    agent: Option<String>,
    tool: String,
    definition: String,
    arguments: Map<String, Value>,
    run: RunKey,
}

fn call(u: &mut Unstructured) -> arbitrary::Result<Call> {
    Ok(Call {
        tenant: text(u)?,
        user: text(u)?,
        agent: if u.arbitrary()? { Some(text(u)?) } else { None },
        tool: text(u)?,
        definition: text(u)?,
        arguments: json_object(u, 3)?,
        run: if u.arbitrary()? {
            RunKey::Run { tenant: text(u)?, run: text(u)? }
        } else {
            RunKey::UserDay { tenant: text(u)?, user: text(u)?, day: u.arbitrary()? }
        },
    })
}

/// The second call: the first with small edits (so that equal and nearly equal calls are met),
/// or another call altogether.
fn variant(u: &mut Unstructured, first: &Call) -> arbitrary::Result<Call> {
    if u.ratio(1, 4)? {
        return call(u);
    }
    let mut second = first.clone();
    for _ in 0..u.int_in_range(0u8..=2)? {
        match u.int_in_range(0u8..=7)? {
            0 => second.tenant = text(u)?,
            1 => second.user = text(u)?,
            2 => second.agent = if u.arbitrary()? { Some(text(u)?) } else { None },
            3 => second.tool = text(u)?,
            4 => {
                // Move a separator between two fields: `a/b` + `c` against `a` + `b/c`.
                let joined = format!("{}/{}", second.tenant, second.user);
                if let Some((a, b)) = joined.split_once('/') {
                    second.tenant = format!("{a}/");
                    second.user = b.to_string();
                }
            }
            5 => {
                second.arguments.insert(text(u)?, json_value(u, 2)?);
            }
            6 => {
                // The same arguments in another member order.
                let mut members: Vec<(String, Value)> = second.arguments.clone().into_iter().collect();
                members.reverse();
                second.arguments = members.into_iter().collect();
            }
            _ => second.definition = text(u)?,
        }
    }
    Ok(second)
}

fn digest(call: &Call) -> String {
    let actor = CompositeActor {
        issuer: "https://issuer".into(),
        user: UserIdentity { id: call.user.clone(), roles: Vec::new(), scopes: Vec::new() },
        agent: call.agent.as_ref().map(|id| AgentIdentity { id: id.clone(), role: id.clone() }),
        service: None,
        tenant: call.tenant.clone(),
        run_id: None,
        delegation_chain: Vec::new(),
    };
    ActionDigest::of(&actor, &call.tool, &call.definition, &call.arguments, &call.run).0
}

/// The value with every object's members in reverse order.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().rev().map(|(k, v)| (k.clone(), reversed(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

fn check_canonical(value: &Value) {
    let text = canonical_json(value);
    let read: Value = serde_json::from_str(&text).expect("canonical JSON is JSON");
    assert!(same_value(&read, value), "canonical JSON reads back as another value: {text} from {value}");
    assert_eq!(canonical_json(&read), text, "canonical JSON is not a fixed point");
    assert_eq!(canonical_json(&reversed(value)), text, "canonical JSON depends on member order");
}

fuzz_target!(|data: &[u8]| {
    // Any JSON text (seeds: real arguments and records) is canonicalized as it reads.
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        check_canonical(&value);
        return;
    }
    let mut u = Unstructured::new(data);
    let Ok(first) = call(&mut u) else { return };
    let Ok(second) = variant(&mut u, &first) else { return };
    check_canonical(&Value::Object(first.arguments.clone()));
    let same = same_call(&first, &second);
    let (a, b) = (digest(&first), digest(&second));
    assert_eq!(a, digest(&first), "the digest is not deterministic");
    assert_eq!(same, a == b, "calls {first:?} and {second:?}: same call {same}, same digest {}", a == b);
});

/// Two JSON numbers of the same value, exactly: an integer and a float are equal only when the
/// float is that integer (no rounding through f64, which would make 2^53 + 1 equal 2^53).
fn same_number(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    let integer = |n: &serde_json::Number| {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    };
    // Exact for every float that is an integer within i128 (all of i64 and u64).
    let float_is = |f: f64, i: i128| f.fract() == 0.0 && f.abs() < 1e38 && f as i128 == i;
    match (integer(x), integer(y), x.as_f64(), y.as_f64()) {
        (Some(a), Some(b), _, _) => a == b,
        (Some(a), None, _, Some(fb)) => float_is(fb, a),
        (None, Some(b), Some(fa), _) => float_is(fa, b),
        (None, None, Some(fa), Some(fb)) => fa == fb,
        _ => false,
    }
}

/// JSON values alike, numbers compared by value.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => same_number(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

fn same_call(a: &Call, b: &Call) -> bool {
    a.tenant == b.tenant
        && a.user == b.user
        && a.agent == b.agent
        && a.tool == b.tool
        && a.definition == b.definition
        && a.run == b.run
        && same_value(&Value::Object(a.arguments.clone()), &Value::Object(b.arguments.clone()))
}
