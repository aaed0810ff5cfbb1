//! What capgate's fuzz targets share: the repository's example contracts and policies loaded
//! once, arbitrary JSON and text biased toward what capgate's parsers care about, the test keys
//! and tokens signed with them, and a runtime for the async parts.
//!
//! Every target lives in `fuzz_targets/` and asserts the invariants of the code it drives
//! (see the header of each). Nothing here decides anything: the targets call capgate itself.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbitrary::{Result, Unstructured};
use capgate::policy::PolicyEngine;
use capgate::registry::Registry;
use serde_json::{Map, Value};

pub mod admin_inputs;
pub mod decision_log;
pub mod planted;
pub mod spellings;
pub mod tokens;

/// The repository (the parent of `fuzz/`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ lives inside the repository")
        .to_path_buf()
}

/// The repository's example policies (`policies/`), loaded once.
pub fn engine() -> &'static Arc<PolicyEngine> {
    static ENGINE: OnceLock<Arc<PolicyEngine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        PolicyEngine::load(&repo().join("policies"), None).expect("the example policies load")
    })
}

/// The repository's example contracts (`capabilities/`), loaded once.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Registry::load(&repo().join("capabilities"), None).expect("the example contracts load")
    })
}

/// One runtime for the async parts, on the fuzzer's own thread.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Strings capgate's parsers treat specially: ids, separators, JSON and TOML punctuation,
/// Unicode that normalizes, hides or reorders.
pub const INTERESTING: &[&str] = &[
    "",
    " ",
    "acme",
    "globex",
    "alice",
    "bob",
    "carol",
    "case-101",
    "case-201",
    "drafting-agent",
    "risk-agent",
    "capgate-admin",
    "capgate-platform-admin",
    "case__read_case",
    "case://acme/cases/case-101",
    "tenant",
    "act",
    "sub",
    "__",
    "/",
    "?",
    "#",
    "{",
    "}",
    "\"",
    "\\",
    "\n",
    "\r\n",
    "\t",
    "\u{0}",
    "\u{7f}",
    "\u{200b}",
    "\u{200d}",
    "\u{202e}",
    "\u{301}",
    "\u{3000}",
    "\u{feff}",
    "\u{ff21}",
    "\u{fb01}",
    "\u{1d7ce}",
    "\u{e000}",
    "\u{10ffff}",
    "ä",
    "a\u{308}",
    "İ",
    "ß",
    "null",
    "true",
    "-0",
    "1e309",
    "18446744073709551616",
    "-9223372036854775809",
];

/// A string: arbitrary, or built from the interesting pieces.
pub fn text(u: &mut Unstructured) -> Result<String> {
    match u.int_in_range(0u8..=3)? {
        0 => Ok(u.choose(INTERESTING)?.to_string()),
        1 => {
            let mut out = String::new();
            for _ in 0..u.int_in_range(1u8..=4)? {
                if u.arbitrary()? {
                    out.push_str(u.choose(INTERESTING)?);
                } else {
                    out.push_str(&u.arbitrary::<String>()?);
                }
            }
            Ok(out)
        }
        _ => u.arbitrary(),
    }
}

/// A JSON value at most `depth` deep.
pub fn json_value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 5u8 } else { 7 };
    Ok(match u.int_in_range(0..=kinds - 1)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => match u.int_in_range(0u8..=2)? {
            0 => Value::from(u.arbitrary::<i64>()?),
            1 => Value::from(u.arbitrary::<u64>()?),
            _ => serde_json::Number::from_f64(u.arbitrary()?)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        },
        3 | 4 => Value::String(text(u)?),
        5 => {
            let mut items = Vec::new();
            for _ in 0..u.int_in_range(0u8..=4)? {
                items.push(json_value(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => Value::Object(json_object(u, depth - 1)?),
    })
}

/// A JSON object at most `depth` deep below its members.
pub fn json_object(u: &mut Unstructured, depth: u32) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for _ in 0..u.int_in_range(0u8..=5)? {
        map.insert(text(u)?, json_value(u, depth)?);
    }
    Ok(map)
}

/// A JSON value as an `Arbitrary` input.
#[derive(Debug, Clone)]
pub struct Json(pub Value);

impl<'a> arbitrary::Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        json_value(u, 4).map(Json)
    }
}

/// A JSON object as an `Arbitrary` input.
#[derive(Debug, Clone)]
pub struct JsonObject(pub Map<String, Value>);

impl<'a> arbitrary::Arbitrary<'a> for JsonObject {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        json_object(u, 3).map(JsonObject)
    }
}

/// A string as an `Arbitrary` input, biased like [`text`].
#[derive(Debug, Clone)]
pub struct Text(pub String);

impl<'a> arbitrary::Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        text(u).map(Text)
    }
}
