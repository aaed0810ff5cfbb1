//! Properties cheaper to state than to fuzz (issue 16), each over generated inputs with proptest:
//!
//! - an argument or attribute the contract does not declare never decides more permissively:
//!   undeclared arguments never reach the policy request, and an undeclared attribute added to
//!   a request's arguments never turns a refusal into an allow nor drops an obligation;
//! - a redacted result never holds the redacted value, in any Unicode normalization form (NFC,
//!   NFD, NFKC, NFKD) of the input or of the output, whatever digits, letters or separators the
//!   value is spelled with;
//! - a decision log a real gateway wrote (`fuzz/fixtures/decision-log.db`) fails verification
//!   when any single byte of any stored field (a record, a hash, a sequence number, a
//!   checkpoint's hash or signature) is changed.

use std::path::Path;
use std::sync::OnceLock;

use capgate::enforce::{tool_request, Asker, Obligations};
use capgate::policy::contract::{AgentFacts, UserFacts};
use capgate::policy::{
    Action, ActorFacts, AttributeValue, Decision, Outcome, PolicyEngine, PolicyRequest,
};
use capgate::registry::{Registry, ToolContract};
use capgate::scenarios::{parse_file, scenario_files, scenario_request};
use proptest::prelude::*;
use rmcp::model::CallToolResult;
use serde_json::{json, Map, Value};
use unicode_normalization::UnicodeNormalization;

use crate::common::repo_root;

fn engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<std::sync::Arc<PolicyEngine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        PolicyEngine::load(&repo_root().join("policies"), None).expect("the example policies load")
    })
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Registry::load(&repo_root().join("capabilities"), None).expect("the example contracts load")
    })
}

/// Every scenario's request of `policies/tests/`, by name.
fn scenario_requests() -> &'static [(String, PolicyRequest)] {
    static REQUESTS: OnceLock<Vec<(String, PolicyRequest)>> = OnceLock::new();
    REQUESTS.get_or_init(|| {
        let mut out = Vec::new();
        for path in scenario_files(&repo_root().join("policies/tests")).expect("scenario files") {
            let file = parse_file(&path).expect("a scenario file");
            for scenario in &file.scenarios {
                let request = scenario_request(scenario, registry())
                    .unwrap_or_else(|e| panic!("`{}`: {e}", scenario.name));
                out.push((scenario.name.clone(), request));
            }
        }
        assert!(out.len() >= 40, "only {} scenarios", out.len());
        out
    })
}

fn tools() -> Vec<&'static ToolContract> {
    let mut tools: Vec<&ToolContract> = registry().tools().map(|t| t.as_ref()).collect();
    tools.sort_by(|a, b| a.exposed_name.cmp(&b.exposed_name));
    tools
}

/// Ids and words policies compare against: the likeliest to change a decision.
const WORDS: &[&str] = &[
    "acme",
    "globex",
    "alice",
    "carol",
    "analyst",
    "supervisor",
    "admin",
    "capgate-admin",
    "drafting-agent",
    "risk-agent",
    "case-101",
    "case-201",
    "public",
    "internal",
    "confidential",
    "restricted",
    "user",
    "team",
    "tenant",
    "high",
    "low",
    "true",
    "approved",
    "none",
    "*",
    "",
];

/// Attribute names an agent might add hoping to be let through.
const NAMES: &[&str] = &[
    "approved",
    "approval_granted",
    "admin",
    "override",
    "break_glass",
    "force",
    "dry_run",
    "tenant",
    "role",
    "roles",
    "user",
    "risk",
    "scope",
    "sensitivity",
    "status",
    "case_id",
    "body",
    "query",
    "owner",
    "allow",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => "[a-z0-9_-]{0,12}",
    ]
}

fn attribute_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(NAMES).prop_map(str::to_string),
        1 => "[a-zA-Z_][a-zA-Z0-9_]{0,15}",
    ]
}

fn attribute_value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        any::<bool>().prop_map(AttributeValue::Bool),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(-1),
            Just(100),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(AttributeValue::Long),
        word().prop_map(AttributeValue::String),
        prop::collection::vec(word(), 0..4).prop_map(AttributeValue::Set),
    ]
}

fn argument_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => word().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => prop::collection::vec(word(), 0..3).prop_map(|w| json!(w)),
        1 => (word(), word()).prop_map(|(k, v)| json!({ k: v })),
    ]
}

/// How much a decision lets through: refusals alike, then approval, then allow.
fn rank(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Deny | Outcome::RequireMoreContext => 0,
        Outcome::RequireApproval => 1,
        Outcome::Allow => 2,
    }
}

fn no_more_permissive(before: &Decision, after: &Decision) -> Result<(), String> {
    if rank(after.outcome) > rank(before.outcome) {
        return Err(format!(
            "{} ({}) became {} ({})",
            before.outcome.as_str(),
            before.reason,
            after.outcome.as_str(),
            after.reason
        ));
    }
    if after.outcome == Outcome::Allow {
        if let Some(dropped) = before
            .obligations
            .iter()
            .find(|o| !after.obligations.contains(o))
        {
            return Err(format!("the obligation {dropped} was dropped"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A scenario's request with one attribute no contract of its capability declares added
    /// to its arguments: never decided more permissively, never with fewer obligations.
    #[test]
    fn an_undeclared_attribute_never_decides_more_permissively(
        index in any::<prop::sample::Index>(),
        name in attribute_name(),
        value in attribute_value(),
    ) {
        let (scenario, request) = index.get(scenario_requests());
        let declared = registry()
            .tool(&request.resource.id)
            .is_some_and(|tool| tool.attributes.contains(&name));
        prop_assume!(!declared && !request.arguments.contains_key(&name));
        let before = engine().decide(request);
        let mut junked = request.clone();
        junked.arguments.insert(name.clone(), value.clone());
        let after = engine().decide(&junked);
        if let Err(problem) = no_more_permissive(&before, &after) {
            prop_assert!(false, "`{scenario}` with {name} = {value:?}: {problem}");
        }
    }

    /// A tool call's arguments with arguments the contract does not declare added: the policy
    /// request is the same (so is its decision), or it fails to build the same way.
    #[test]
    fn undeclared_arguments_never_change_the_policy_request(
        tool in any::<prop::sample::Index>(),
        declared in prop::collection::vec(argument_value(), 0..6),
        junk in prop::collection::vec((attribute_name(), argument_value()), 1..4),
        user in prop::sample::select(&["alice", "carol", "dana"][..]),
        tenant in prop::sample::select(&["acme", "globex"][..]),
        agent in prop::sample::select(&["drafting-agent", "risk-agent", "memory-curator-agent"][..]),
        roles in prop::collection::vec(prop::sample::select(&["analyst", "supervisor", "memory-curator"][..]), 0..3),
    ) {
        let tools = tools();
        let contract = tool.get(&tools);
        let names: Vec<&str> = contract
            .attributes
            .iter()
            .map(String::as_str)
            .chain(contract.entities.iter().map(|b| b.argument.as_str()))
            .collect();
        let mut arguments = Map::new();
        for (name, value) in names.iter().zip(declared) {
            arguments.insert(name.to_string(), value);
        }
        let mut with_junk = arguments.clone();
        for (name, value) in junk {
            if !names.contains(&name.as_str()) {
                with_junk.insert(name, value);
            }
        }
        prop_assume!(with_junk.len() > arguments.len());
        let facts = ActorFacts {
            user: UserFacts { id: user.into(), roles: roles.iter().map(|r| r.to_string()).collect(), scopes: Vec::new() },
            agent: Some(AgentFacts { id: agent.into(), role: agent.into() }),
            service: None,
            delegation_chain: vec![user.into(), agent.into()],
        };
        let asker = Asker { facts: &facts, tenant, run_id: Some("run-1") };
        let plain = tool_request(asker, Action::CallTool, contract, Some(&arguments));
        let junked = tool_request(asker, Action::CallTool, contract, Some(&with_junk));
        match (plain, junked) {
            (Ok(plain), Ok(mut junked)) => {
                junked.request_id = plain.request_id.clone();
                prop_assert_eq!(&plain, &junked, "undeclared arguments reached the request");
                let (before, after) = (engine().decide(&plain), engine().decide(&junked));
                prop_assert_eq!(before.outcome, after.outcome);
                prop_assert_eq!(before.obligations, after.obligations);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "{:?} against {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }
}

// --- Redaction under every normalization form -------------------------------------------------

fn normalize(form: usize, text: &str) -> String {
    match form {
        0 => text.nfc().collect(),
        1 => text.nfd().collect(),
        2 => text.nfkc().collect(),
        _ => text.nfkd().collect(),
    }
}

/// Characters a field's secret value is made of: capitals (Greek, fullwidth Latin, composed
/// and decomposed accented Latin, the Kelvin and Ångström signs), none of which, in any form,
/// is in the filler text, a field name or a redaction label.
const SECRET_CHARS: &[&str] = &[
    "Α", "Β", "Γ", "Δ", "Ω", "\u{2126}", "Ｑ", "Ｘ", "Ｚ", "É", "E\u{301}", "\u{212a}", "\u{212b}",
    "Å", "A\u{30a}", "Ǆ",
];

/// Text around the values: lower-case letters, spaces and punctuation, no digit.
const FILLER: &[&str] = &[
    "note", "the", "case", "é", "ﬁle", " ", ", ", ". ", "; ", "(", ")", "\u{3000}", "–",
];

/// Decimal digits of several scripts (their zero): ASCII, Arabic-Indic, Devanagari, fullwidth,
/// mathematical bold.
const ZEROS: &[u32] = &[0x30, 0x660, 0x966, 0xFF10, 0x1D7CE];
const DASHES: &[&str] = &[
    "-", "\u{2010}", "\u{2011}", "\u{2013}", "\u{2212}", "\u{fe63}", "\u{ff0d}",
];
const GAPS: &[&str] = &["", "", " ", "\u{a0}", "\u{3000}"];

fn filler() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FILLER), 0..4).prop_map(|p| p.concat())
}

fn secret() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SECRET_CHARS), 3..8).prop_map(|p| p.concat())
}

/// What may follow a digit unseen: nothing mostly, or an invisible format character or a mark.
const ON_DIGIT: &[&str] = &[
    "", "", "", "", "\u{200b}", "\u{ad}", "\u{2060}", "\u{feff}", "\u{301}",
];

fn digits(n: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(ZEROS),
            0u32..10,
            prop::sample::select(ON_DIGIT),
        ),
        n,
    )
    .prop_map(|ds| {
        ds.into_iter()
            .filter_map(|(zero, d, on)| char::from_u32(zero + d).map(|c| format!("{c}{on}")))
            .collect()
    })
}

fn separator() -> impl Strategy<Value = String> {
    (
        prop::sample::select(GAPS),
        prop::sample::select(DASHES),
        prop::sample::select(GAPS),
    )
        .prop_map(|(a, d, b)| format!("{a}{d}{b}"))
}

/// An SSN or account number, in any digits and dashes.
fn pattern_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (digits(3), separator(), digits(2), separator(), digits(4))
            .prop_map(|(a, s, b, t, c)| format!("{a}{s}{b}{t}{c}")),
        (
            prop::sample::select(&["acct", "ACCT", "ａｃｃｔ"][..]),
            separator(),
            1usize..10
        )
            .prop_flat_map(|(acct, sep, n)| digits(n).prop_map(move |d| format!("{acct}{sep}{d}"))),
    ]
}

/// Where a value is planted.
#[derive(Debug, Clone)]
enum Plant {
    /// `field: value` on a line of text.
    Line { key: &'static str, value: String },
    /// A member of the structured content.
    Member { key: &'static str, value: String },
    /// An SSN or account number in text.
    Pattern(String),
}

fn plant() -> impl Strategy<Value = Plant> {
    let key = prop::sample::select(
        &[
            "customer_ssn",
            "Customer SSN",
            "customerSsn",
            "notes",
            "NOTES",
        ][..],
    );
    prop_oneof![
        (key.clone(), secret()).prop_map(|(key, value)| Plant::Line { key, value }),
        (key, secret()).prop_map(|(key, value)| Plant::Member { key, value }),
        pattern_value().prop_map(Plant::Pattern),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Values planted in a tool result (`field: value` in text, a structured member, an SSN
    /// or account number in any digits), the input brought to any normalization form first:
    /// no normalization form of the output holds any normalization form of a redacted value,
    /// and the output (in NFKC) holds no digit at all.
    #[test]
    fn a_redacted_result_never_holds_the_value_under_any_normalization(
        plants in prop::collection::vec((filler(), plant(), filler()), 1..5),
        input_form in 0usize..5,
    ) {
        let obligations = Obligations::parse(&[
            "redact:customer_ssn".to_string(),
            "redact:notes".to_string(),
            "redact_pattern:ssn".to_string(),
            "redact_pattern:account".to_string(),
        ])
        .expect("enforceable");
        let spell = |text: String| if input_form == 4 { text } else { normalize(input_form, &text) };
        let mut text = String::new();
        let mut structured = Map::new();
        let mut secrets = Vec::new();
        for (before, plant, after) in &plants {
            match plant {
                Plant::Line { key, value } => {
                    text.push_str(&format!("{before}\n{key}: {value}\n{after}"));
                    secrets.push(value.clone());
                }
                Plant::Member { key, value } => {
                    structured.insert(spell(key.to_string()), Value::String(spell(value.clone())));
                    secrets.push(value.clone());
                }
                Plant::Pattern(value) => {
                    text.push_str(&format!("{before} {value} {after}"));
                    // Next to a joiner or `_`, which neither letters nor digits.
                    text.push_str(&format!("\n_{value}\u{200d}\n"));
                    secrets.push(value.clone());
                }
            }
        }
        let mut result = CallToolResult::structured(Value::Object(structured));
        result.content = vec![rmcp::model::ContentBlock::text(spell(text))];
        let applied = obligations.apply_to_tool_result(&mut result);
        prop_assert!(applied.is_ok(), "withheld: {applied:?}");
        let out = serde_json::to_string(&result).expect("serializes");
        let out = serde_json::from_str::<Value>(&out).expect("JSON");
        let mut strings = Vec::new();
        collect_strings(&out, &mut strings);
        for shown in &strings {
            let nfkc = normalize(2, shown);
            prop_assert!(!nfkc.chars().any(|c| c.is_numeric()), "a digit is left: {shown:?}");
            for out_form in 0..4 {
                let shown = normalize(out_form, shown);
                for secret in &secrets {
                    for secret_form in 0..4 {
                        let value = normalize(secret_form, secret);
                        prop_assert!(!shown.contains(&value), "{value:?} is left in {shown:?}");
                    }
                }
            }
        }
    }
}

/// Every string of a JSON value, keys included.
fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        Value::Object(map) => {
            for (key, item) in map {
                out.push(key.clone());
                collect_strings(item, out);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

// --- A decision log with one byte changed -----------------------------------------------------

/// The reference log's stored fields: (table, column, key column).
const FIELDS: &[(&str, &str)] = &[
    ("decisions", "record"),
    ("decisions", "prev_hash"),
    ("decisions", "hash"),
    ("decisions", "seq"),
    ("checkpoints", "hash"),
    ("checkpoints", "signature"),
    ("checkpoints", "seq"),
];

fn reference_log() -> std::path::PathBuf {
    repo_root().join("fuzz/fixtures/decision-log.db")
}

/// The reference log's public key, once the log is known to verify as it is.
fn reference() -> &'static ed25519_dalek::VerifyingKey {
    static KEY: OnceLock<ed25519_dalek::VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = repo_root().join("fuzz/fixtures/decision-log.pub");
        let key = capgate::audit::parse_public_key(path.to_str().expect("a UTF-8 path"))
            .expect("the log's key");
        let (count, problems) = capgate::audit::verify(&reference_log(), &key).expect("it reads");
        assert!(
            count > 16 && problems.is_empty(),
            "{count} records: {problems:?}"
        );
        key
    })
}

/// A directory for one copy of the log, in memory where the system has `/dev/shm`.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

/// Changes byte `at` (modulo the field's length) of one stored field of row `row` (modulo the
/// table's rows) to `byte`. `None` when that byte already is `byte`, or when SQLite refuses
/// the change (a sequence number another row has).
fn change_one_byte(
    log: &Path,
    field: (&str, &str),
    row: usize,
    at: usize,
    byte: u8,
) -> Option<String> {
    let (table, column) = field;
    let db = rusqlite::Connection::open(log).expect("the copy opens");
    db.pragma_update(None, "synchronous", "OFF")
        .expect("a scratch copy");
    let seqs: Vec<i64> = db
        .prepare(&format!("SELECT seq FROM {table} ORDER BY seq"))
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("sequence numbers");
    let seq = seqs[row % seqs.len()];
    let what = format!("{table}.{column} of {seq}");
    if column == "seq" {
        let mut bytes = seq.to_be_bytes();
        let at = at % bytes.len();
        if bytes[at] == byte {
            return None;
        }
        bytes[at] = byte;
        let changed = i64::from_be_bytes(bytes);
        db.execute(
            &format!("UPDATE {table} SET seq = ?1 WHERE seq = ?2"),
            [changed, seq],
        )
        .ok()?;
        return Some(format!("{what}: {seq} -> {changed}"));
    }
    let mut bytes: Vec<u8> = db
        .query_row(
            &format!("SELECT CAST({column} AS BLOB) FROM {table} WHERE seq = ?1"),
            [seq],
            |r| r.get(0),
        )
        .expect("the field");
    let at = at % bytes.len();
    if bytes[at] == byte {
        return None;
    }
    bytes[at] = byte;
    let sql = format!("UPDATE {table} SET {column} = ?1 WHERE seq = ?2");
    // Text that is still UTF-8 is stored as text; other bytes as a blob, as a hex editor would.
    match String::from_utf8(bytes) {
        Ok(text) => db.execute(&sql, rusqlite::params![text, seq]),
        Err(e) => db.execute(&sql, rusqlite::params![e.into_bytes(), seq]),
    }
    .expect("the change is stored");
    Some(format!("{what}, byte {at} -> {byte:#04x}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any single byte of any stored field of a real decision log changed: `audit verify`
    /// names a problem (or cannot read the log), never accepts it.
    #[test]
    fn a_decision_log_with_any_single_byte_changed_fails_verification(
        field in prop::sample::select(FIELDS),
        row in any::<usize>(),
        at in any::<usize>(),
        byte in prop_oneof![any::<u8>(), prop::sample::select(&b"0123456789abcdefABCDEF{}\":, "[..])],
    ) {
        let key = reference();
        let dir = scratch_dir();
        let log = dir.path().join("audit.db");
        std::fs::copy(reference_log(), &log).expect("copy the reference log");
        let Some(change) = change_one_byte(&log, field, row, at, byte) else {
            return Ok(());
        };
        match capgate::audit::verify(&log, key) {
            Err(_) => {}
            Ok((_, problems)) => prop_assert!(!problems.is_empty(), "verify accepted {change}"),
        }
    }
}
