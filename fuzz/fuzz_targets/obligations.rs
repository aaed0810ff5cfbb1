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
use capgate_fuzz::planted::*;
use capgate_fuzz::spellings::*;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use unicode_normalization::UnicodeNormalization;

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
