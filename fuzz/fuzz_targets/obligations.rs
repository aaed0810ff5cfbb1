//! Obligations applied to arbitrary results of every content kind: tool results (text, embedded
//! resources, resource links, images, audio, structured content, `_meta`), resource reads,
//! prompts, and what a downstream asks of the client while it serves a call (elicitation and
//! sampling, both ways).
//!
//! The input plants secrets in the result where the obligations must find them, among arbitrary
//! text and JSON that holds none:
//! - a field's value (`redact:<field>`, `mask:<field>`), as plain text (`field: value`,
//!   `"field" = "value"`, `field=[...]`, in any of the field name's spellings), as a JSON member
//!   at any depth, as JSON text inside a string, or as a JSON object key that mentions it. The
//!   value holds characters of the Private Use Area, which nothing else in the result holds;
//! - an SSN, e-mail address or account number (`redact_pattern:`), in any spelling the patterns
//!   promise to catch (any decimal digits, fullwidth forms, any dash, spaces and invisible
//!   characters around separators and between digits, marks on digits), standing alone between
//!   characters that are neither letters nor digits. Nothing else in the result holds a digit.
//!
//! Invariants:
//! - no panic;
//! - redaction output never contains a redacted value: when the obligations are applied without
//!   an error, no string of the result (keys included) holds a planted Private Use Area
//!   character, and none, in NFKC, holds a digit (so neither does it in NFC, NFD or NFKD, nor
//!   in the text as written); a masked value shows at most its last four characters;
//! - binary content under a content-transforming obligation is refused, never passed on;
//! - without a content-transforming obligation the result is left exactly as it was.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use capgate::enforce::{ObligationError, Obligations};
use capgate_fuzz::spellings::*;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use unicode_normalization::UnicodeNormalization;

/// The first character of the Private Use Area block secrets are made of.
const SECRET_BASE: u32 = 0xE000;

fn is_secret(c: char) -> bool {
    (0xE000..=0xF8FF).contains(&u32::from(c))
}

/// Whether `c` (in NFKC) is or holds a number or a secret character, or is a control
/// character JSON escapes with digits (`\u0001`).
fn forbidden(c: char) -> bool {
    if c < ' ' && !matches!(c, '\n' | '\r' | '\t') {
        return true;
    }
    let mut buf = [0u8; 4];
    c.encode_utf8(&mut buf)
        .nfkc()
        .any(|d| d.is_numeric() || is_secret(d))
}

/// Text that holds no secret and no number.
fn clean(u: &mut Unstructured) -> arbitrary::Result<String> {
    let raw = capgate_fuzz::text(u)?;
    Ok(raw.chars().filter(|c| !forbidden(*c)).collect())
}

/// [`clean`] without line breaks (the inside of an unquoted value).
fn clean_line(u: &mut Unstructured) -> arbitrary::Result<String> {
    Ok(clean(u)?
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .collect())
}

/// A clean JSON value: no numbers (they would be digits once JSON is text), no secrets.
fn clean_json(u: &mut Unstructured, depth: u32) -> arbitrary::Result<Value> {
    let kinds = if depth == 0 { 3u8 } else { 5 };
    Ok(match u.int_in_range(0..=kinds - 1)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::String(clean(u)?),
        3 => {
            let mut items = Vec::new();
            for _ in 0..u.int_in_range(0u8..=3)? {
                items.push(clean_json(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => {
            let mut map = Map::new();
            for _ in 0..u.int_in_range(0u8..=3)? {
                map.insert(clean(u)?, clean_json(u, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}

/// A secret: one to eight characters of the Private Use Area.
fn secret(u: &mut Unstructured) -> arbitrary::Result<String> {
    let mut out = String::new();
    for _ in 0..u.int_in_range(1u8..=8)? {
        let offset = u32::from(u.int_in_range(0u8..=255)?);
        out.push(char::from_u32(SECRET_BASE + offset).expect("the Private Use Area"));
    }
    Ok(out)
}

/// How an obligation treats a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldAction {
    Redact,
    Mask,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    action: FieldAction,
}

/// The words of a field name, as the obligation matches them (split at `_`, `-` and where a
/// lower-case letter or digit meets an upper-case one).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous: Option<char> = None;
    for c in name.chars() {
        let camel = c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
        if (c == '_' || c == '-' || camel) && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        if c != '_' && c != '-' {
            current.push(c.to_ascii_lowercase());
        }
        previous = Some(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// One of the spellings of a field name the obligation promises to match.
fn spelling(u: &mut Unstructured, name: &str) -> arbitrary::Result<String> {
    let words = words(name);
    let joined = |sep: &str| words.join(sep);
    Ok(match u.int_in_range(0u8..=6)? {
        0 => name.to_string(),
        1 => joined("_"),
        2 => joined("-"),
        3 => joined(" "),
        4 => joined("_").to_uppercase(),
        5 => {
            let mut out = String::new();
            for (i, word) in words.iter().enumerate() {
                if i == 0 {
                    out.push_str(word);
                } else {
                    let mut chars = word.chars();
                    if let Some(first) = chars.next() {
                        out.push(first.to_ascii_uppercase());
                        out.extend(chars);
                    }
                }
            }
            out
        }
        _ => joined(""),
    })
}

/// Field names: the ones the example policies use, and others.
fn field_name(u: &mut Unstructured) -> arbitrary::Result<String> {
    if u.ratio(3, 4)? {
        return Ok(u
            .choose(&["customer_ssn", "account", "ssn", "notes", "assignedUsersTwoFA-code", "x"])?
            .to_string());
    }
    let raw: String = u.arbitrary()?;
    let name: String = raw
        .chars()
        // No digits: every digit in a result is a pattern value's.
        .filter(|c| c.is_ascii_alphabetic() || *c == '_' || *c == '-')
        .take(24)
        .collect();
    Ok(if name.bytes().any(|b| b.is_ascii_alphabetic()) {
        name
    } else {
        "f".into()
    })
}

/// A field's value as plain text after `field:`; what must follow it (a line break for an
/// unquoted value) is part of it.
fn plain_value(u: &mut Unstructured, secret: &str, action: FieldAction) -> arbitrary::Result<String> {
    // Masking keeps the last four characters: they are clean.
    let tail = match action {
        FieldAction::Mask => "wxyz".to_string(),
        FieldAction::Redact => String::new(),
    };
    Ok(match u.int_in_range(0u8..=4)? {
        0 | 1 => {
            let mut before = clean_line(u)?;
            if before.starts_with(['"', '\'', '[', '{', '(', ' ', '\t']) {
                before.insert(0, 'v');
            }
            format!("{before}{secret}{}{tail}\n", clean_line(u)?)
        }
        2 => {
            let inner = format!("{}{secret}{}{tail}", clean(u)?, clean(u)?);
            format!("\"{}\"", inner.replace('\\', "\\\\").replace('"', "\\\""))
        }
        3 => {
            let inner = format!("{}{secret}{}{tail}", clean(u)?, clean(u)?);
            format!("'{}'", inner.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        _ => {
            let inner = json!([format!("{}{secret}", clean(u)?), format!("{}{tail}", clean(u)?)]);
            inner.to_string()
        }
    })
}

/// A JSON value holding the secret somewhere.
fn secret_json(u: &mut Unstructured, secret: &str, depth: u32) -> arbitrary::Result<Value> {
    if depth == 0 || u.ratio(1, 2)? {
        return Ok(Value::String(format!("{}{secret}{}", clean(u)?, clean(u)?)));
    }
    if u.arbitrary()? {
        Ok(Value::Array(vec![clean_json(u, 1)?, secret_json(u, secret, depth - 1)?]))
    } else {
        let mut map = Map::new();
        map.insert(clean(u)?, secret_json(u, secret, depth - 1)?);
        Ok(Value::Object(map))
    }
}

/// What a piece of the result carries.
#[derive(Debug, Clone)]
enum Plant {
    /// Text with `field: value` (and clean text around it).
    FieldText(String),
    /// A JSON object with the field as a member, its value holding the secret.
    FieldMember(Map<String, Value>),
    /// A JSON object whose key is text mentioning the field with its value.
    FieldKey(Map<String, Value>),
    /// Text with a pattern value in it.
    PatternText(String),
    /// A JSON object whose key is text with a pattern value in it.
    PatternKey(Map<String, Value>),
    Clean(Value),
}

struct Planter<'a> {
    fields: &'a [Field],
    patterns: &'a [&'static str],
}

impl Planter<'_> {
    fn plant(&self, u: &mut Unstructured) -> arbitrary::Result<Plant> {
        let choice = u.int_in_range(0u8..=6)?;
        if (choice <= 2 || choice == 5) && !self.fields.is_empty() {
            let field = u.choose(self.fields)?;
            let secret = secret(u)?;
            let key = spelling(u, &field.name)?;
            return Ok(match choice {
                0 | 1 => {
                    let quote = *u.choose(&["", "", "\"", "'"])?;
                    let before = u.choose(&["\n", " ", "; ", "\t", "(", ", "])?;
                    let op = u.choose(&[": ", ":", " = ", "=", "\t:\t"])?;
                    FieldText(format!(
                        "{}{before}{quote}{key}{quote}{op}{}{}",
                        clean(u)?,
                        plain_value(u, &secret, field.action)?,
                        if u.arbitrary()? { format!("\n{}", clean(u)?) } else { String::new() },
                    ))
                }
                2 => {
                    let mut map = Map::new();
                    map.insert(clean(u)?, clean_json(u, 1)?);
                    let value = match field.action {
                        // Masking a value that is not a string masks its JSON text: the secret
                        // first, so that the last four characters are clean.
                        FieldAction::Mask => Value::String(format!("{secret}{}wxyz", clean(u)?)),
                        FieldAction::Redact => secret_json(u, &secret, 3)?,
                    };
                    map.insert(key, value);
                    FieldMember(map)
                }
                _ => {
                    let mut map = Map::new();
                    let text = format!(
                        "{key}: {}",
                        plain_value(u, &secret, field.action)?.trim_end_matches('\n')
                    );
                    map.insert(text, clean_json(u, 1)?);
                    FieldKey(map)
                }
            });
        }
        if (choice == 3 || choice == 4) && !self.patterns.is_empty() {
            let pattern = u.choose(self.patterns)?;
            let value = pattern_value(u, pattern)?;
            let text = format!("{}{}{}", clean(u)?, standing_alone(u, &value)?, clean(u)?);
            return Ok(if choice == 3 {
                Plant::PatternText(text)
            } else {
                let mut map = Map::new();
                map.insert(text, clean_json(u, 1)?);
                Plant::PatternKey(map)
            });
        }
        Ok(Plant::Clean(clean_json(u, 2)?))
    }

    /// A string holding the plant (JSON ones as JSON text).
    fn text(&self, u: &mut Unstructured) -> arbitrary::Result<String> {
        Ok(match self.plant(u)? {
            Plant::FieldText(text) | Plant::PatternText(text) => text,
            Plant::FieldMember(map) | Plant::FieldKey(map) | Plant::PatternKey(map) => {
                Value::Object(map).to_string()
            }
            Plant::Clean(Value::String(s)) => s,
            Plant::Clean(value) => value.to_string(),
        })
    }

    /// A JSON value holding the plant, at some depth.
    fn json(&self, u: &mut Unstructured, depth: u32) -> arbitrary::Result<Value> {
        if depth > 0 && u.ratio(1, 3)? {
            let inner = self.json(u, depth - 1)?;
            let mut map = Map::new();
            map.insert(clean(u)?, clean_json(u, 1)?);
            map.insert(clean(u)?, inner);
            return Ok(if u.arbitrary()? {
                Value::Object(map)
            } else {
                Value::Array(vec![clean_json(u, 1)?, Value::Object(map)])
            });
        }
        Ok(match self.plant(u)? {
            Plant::FieldText(text) | Plant::PatternText(text) => Value::String(text),
            Plant::FieldMember(map) | Plant::FieldKey(map) | Plant::PatternKey(map) => {
                Value::Object(map)
            }
            Plant::Clean(value) => value,
        })
    }

    fn object(&self, u: &mut Unstructured) -> arbitrary::Result<Value> {
        Ok(match self.json(u, 2)? {
            Value::Object(map) => Value::Object(map),
            other => {
                let mut map = Map::new();
                map.insert(clean(u)?, other);
                Value::Object(map)
            }
        })
    }

    fn meta(&self, u: &mut Unstructured, into: &mut Map<String, Value>) -> arbitrary::Result<()> {
        if u.ratio(1, 3)? {
            into.insert("_meta".into(), self.object(u)?);
        }
        Ok(())
    }

    /// A content block of any kind.
    fn block(&self, u: &mut Unstructured) -> arbitrary::Result<(Value, bool)> {
        let mut block = Map::new();
        let mut binary = false;
        match u.int_in_range(0u8..=7)? {
            0..=2 => {
                block.insert("type".into(), "text".into());
                block.insert("text".into(), Value::String(self.text(u)?));
            }
            3 => {
                block.insert("type".into(), "resource".into());
                let mut resource = Map::new();
                resource.insert("uri".into(), "case://acme/cases/case-x".into());
                if u.ratio(3, 4)? {
                    resource.insert("text".into(), Value::String(self.text(u)?));
                } else {
                    resource.insert("blob".into(), "MTIzLTQ1LTY3ODk=".into());
                    binary = true;
                }
                self.meta(u, &mut resource)?;
                block.insert("resource".into(), Value::Object(resource));
            }
            4 => {
                block.insert("type".into(), "resource_link".into());
                block.insert("uri".into(), "case://acme/cases/case-x".into());
                block.insert("name".into(), "case".into());
                if u.arbitrary()? {
                    block.insert("title".into(), Value::String(self.text(u)?));
                }
                if u.arbitrary()? {
                    block.insert("description".into(), Value::String(self.text(u)?));
                }
            }
            5 => {
                block.insert("type".into(), "image".into());
                block.insert("data".into(), "iVBORw0KGgo=".into());
                block.insert("mimeType".into(), "image/png".into());
                binary = true;
            }
            6 => {
                block.insert("type".into(), "audio".into());
                block.insert("data".into(), "UklGRg==".into());
                block.insert("mimeType".into(), "audio/wav".into());
                binary = true;
            }
            _ => {
                block.insert("type".into(), "text".into());
                block.insert("text".into(), Value::String(clean(u)?));
            }
        }
        self.meta(u, &mut block)?;
        Ok((Value::Object(block), binary))
    }
}

use Plant::{FieldKey, FieldMember, FieldText};

#[derive(Debug)]
enum Subject {
    Tool(rmcp::model::CallToolResult),
    Resource(rmcp::model::ReadResourceResult),
    Prompt(rmcp::model::GetPromptResult),
    Elicitation(rmcp::model::ElicitRequestParams),
    Elicited(rmcp::model::ElicitResult),
    #[allow(deprecated)]
    Sampling(rmcp::model::CreateMessageRequestParams),
    #[allow(deprecated)]
    Sampled(rmcp::model::CreateMessageResult),
}

impl Subject {
    fn apply(&mut self, obligations: &Obligations) -> Result<(), ObligationError> {
        match self {
            Subject::Tool(r) => obligations.apply_to_tool_result(r),
            Subject::Resource(r) => obligations.apply_to_resource(r),
            Subject::Prompt(r) => obligations.apply_to_prompt(r),
            Subject::Elicitation(r) => obligations.apply_to_elicitation(r),
            Subject::Elicited(r) => obligations.apply_to_elicited(r),
            Subject::Sampling(r) => obligations.apply_to_sampling(r),
            Subject::Sampled(r) => obligations.apply_to_sampled(r),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Subject::Tool(r) => serde_json::to_value(r),
            Subject::Resource(r) => serde_json::to_value(r),
            Subject::Prompt(r) => serde_json::to_value(r),
            Subject::Elicitation(r) => serde_json::to_value(r),
            Subject::Elicited(r) => serde_json::to_value(r),
            Subject::Sampling(r) => serde_json::to_value(r),
            Subject::Sampled(r) => serde_json::to_value(r),
        }
        .expect("results serialize")
    }
}

#[derive(Debug)]
struct Input {
    obligations: Vec<String>,
    subject: Subject,
    binary: bool,
    /// Extra obligation texts, parsed for robustness only.
    junk_obligations: Vec<String>,
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> arbitrary::Result<T> {
    serde_json::from_value(value).map_err(|_| arbitrary::Error::IncorrectFormat)
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut fields: Vec<Field> = Vec::new();
        let mut patterns: Vec<&'static str> = Vec::new();
        let mut obligations = Vec::new();
        for _ in 0..u.int_in_range(0u8..=4)? {
            match u.int_in_range(0u8..=5)? {
                0 | 1 => {
                    let name = field_name(u)?;
                    obligations.push(format!("redact:{name}"));
                    fields.push(Field { name, action: FieldAction::Redact });
                }
                2 => {
                    let name = field_name(u)?;
                    obligations.push(format!("mask:{name}"));
                    fields.push(Field { name, action: FieldAction::Mask });
                }
                3 | 4 => {
                    let pattern = *u.choose(&PATTERNS)?;
                    obligations.push(format!("redact_pattern:{pattern}"));
                    patterns.push(pattern);
                }
                _ => obligations.push(
                    u.choose(&["audit:notice", "max_calls:2", "require_idempotency"])?
                        .to_string(),
                ),
            }
        }
        // A field both redacted and masked is redacted; a field masked under one spelling and
        // redacted under another likewise. Plant masked values only where no redaction wins.
        let redacted: Vec<Vec<String>> = fields
            .iter()
            .filter(|f| f.action == FieldAction::Redact)
            .map(|f| words(&f.name))
            .collect();
        for field in &mut fields {
            if field.action == FieldAction::Mask && redacted.contains(&words(&field.name)) {
                field.action = FieldAction::Redact;
            }
        }
        let planter = Planter { fields: &fields, patterns: &patterns };
        let mut binary = false;
        let blocks = |u: &mut Unstructured, binary: &mut bool| -> arbitrary::Result<Vec<Value>> {
            let mut out = Vec::new();
            for _ in 0..u.int_in_range(0u8..=4)? {
                let (block, is_binary) = planter.block(u)?;
                *binary |= is_binary;
                out.push(block);
            }
            Ok(out)
        };
        let subject = match u.int_in_range(0u8..=9)? {
            0..=3 => {
                let mut result = Map::new();
                result.insert("content".into(), Value::Array(blocks(u, &mut binary)?));
                if u.arbitrary()? {
                    result.insert("structuredContent".into(), planter.json(u, 3)?);
                }
                result.insert("isError".into(), Value::Bool(u.arbitrary()?));
                planter.meta(u, &mut result)?;
                Subject::Tool(from_json(Value::Object(result))?)
            }
            4 | 5 => {
                let mut contents = Vec::new();
                for _ in 0..u.int_in_range(0u8..=3)? {
                    let mut item = Map::new();
                    item.insert("uri".into(), "case://acme/cases/case-x".into());
                    if u.ratio(4, 5)? {
                        item.insert("text".into(), Value::String(planter.text(u)?));
                    } else {
                        item.insert("blob".into(), "MTIzLTQ1LTY3ODk=".into());
                        binary = true;
                    }
                    planter.meta(u, &mut item)?;
                    contents.push(Value::Object(item));
                }
                let mut result = Map::new();
                result.insert("contents".into(), Value::Array(contents));
                planter.meta(u, &mut result)?;
                Subject::Resource(from_json(Value::Object(result))?)
            }
            6 | 7 => {
                let mut result = Map::new();
                if u.arbitrary()? {
                    result.insert("description".into(), Value::String(planter.text(u)?));
                }
                let messages: Vec<Value> = blocks(u, &mut binary)?
                    .into_iter()
                    .map(|content| json!({"role": "user", "content": content}))
                    .collect();
                result.insert("messages".into(), Value::Array(messages));
                planter.meta(u, &mut result)?;
                Subject::Prompt(from_json(Value::Object(result))?)
            }
            8 => {
                if u.arbitrary()? {
                    Subject::Elicitation(from_json(json!({
                        "mode": "form",
                        "message": planter.text(u)?,
                        "requestedSchema": {"type": "object", "properties": {}},
                    }))?)
                } else {
                    let mut result = Map::new();
                    result.insert("action".into(), "accept".into());
                    result.insert("content".into(), planter.object(u)?);
                    planter.meta(u, &mut result)?;
                    Subject::Elicited(from_json(Value::Object(result))?)
                }
            }
            _ => {
                // Sampling blocks: text, image, audio, tool use, tool result.
                let mut sampling_blocks = Vec::new();
                for _ in 0..u.int_in_range(1u8..=3)? {
                    let block = match u.int_in_range(0u8..=4)? {
                        0 | 1 => {
                            let mut block = Map::new();
                            block.insert("type".into(), "text".into());
                            block.insert("text".into(), Value::String(planter.text(u)?));
                            planter.meta(u, &mut block)?;
                            Value::Object(block)
                        }
                        2 => {
                            binary = true;
                            json!({"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"})
                        }
                        3 => json!({"type": "tool_use", "id": "tu", "name": "case__read_case",
                                    "input": planter.object(u)?}),
                        _ => {
                            let content = blocks(u, &mut binary)?;
                            let mut block = Map::new();
                            block.insert("type".into(), "tool_result".into());
                            block.insert("toolUseId".into(), "tu".into());
                            block.insert("content".into(), Value::Array(content));
                            if u.arbitrary()? {
                                block.insert("structuredContent".into(), planter.json(u, 2)?);
                            }
                            Value::Object(block)
                        }
                    };
                    sampling_blocks.push(block);
                }
                let content = if sampling_blocks.len() == 1 {
                    sampling_blocks.pop().unwrap_or(Value::Null)
                } else {
                    Value::Array(sampling_blocks)
                };
                if u.arbitrary()? {
                    let mut params = Map::new();
                    params.insert("messages".into(), json!([{"role": "user", "content": content}]));
                    params.insert("maxTokens".into(), 100.into());
                    if u.arbitrary()? {
                        params.insert("systemPrompt".into(), Value::String(planter.text(u)?));
                    }
                    Subject::Sampling(from_json(Value::Object(params))?)
                } else {
                    Subject::Sampled(from_json(json!({
                        "role": "assistant", "content": content, "model": "m",
                    }))?)
                }
            }
        };
        let mut junk_obligations = Vec::new();
        for _ in 0..u.int_in_range(0u8..=2)? {
            junk_obligations.push(capgate_fuzz::text(u)?);
        }
        Ok(Input {
            obligations,
            subject,
            binary,
            junk_obligations,
        })
    }
}

/// Every string of a JSON value, keys included.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
        Value::Object(map) => {
            for (key, item) in map {
                out.push(key.clone());
                strings(item, out);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fuzz_target!(|input: Input| {
    for text in &input.junk_obligations {
        let _ = capgate::enforce::Obligation::parse(text);
    }
    let obligations = Obligations::parse(&input.obligations).expect("the planted obligations parse");
    let mut subject = input.subject;
    let before = subject.to_json();
    let outcome = subject.apply(&obligations);
    if !obligations.transforms_content() {
        assert_eq!(outcome, Ok(()));
        assert_eq!(subject.to_json(), before, "no content-transforming obligation, yet the result changed");
        return;
    }
    if input.binary {
        assert!(outcome.is_err(), "binary content passed under {:?}", input.obligations);
        return;
    }
    if outcome.is_err() {
        // Withheld: nothing reaches the agent.
        return;
    }
    let mut all = Vec::new();
    strings(&subject.to_json(), &mut all);
    for s in &all {
        assert!(
            !s.chars().any(is_secret),
            "a redacted or masked value is left under {:?}: {s:?}",
            input.obligations
        );
        let nfkc: String = s.nfkc().collect();
        assert!(
            !nfkc.chars().any(char::is_numeric),
            "a value of a redact_pattern is left under {:?}: {s:?}",
            input.obligations
        );
    }
});
