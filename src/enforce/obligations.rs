//! Obligations applied to what capgate returns. The obligation types and their parser live in
//! `policy::obligation` (every `@obligation` is parsed when the policy set loads); this module
//! holds the PEP's side: redaction and masking of structured and text content.

use std::sync::OnceLock;

use regex::Regex;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

pub use crate::policy::obligation::{Obligation, Obligations, Pattern};

impl Pattern {
    fn regex(self) -> &'static Regex {
        static SSN: OnceLock<Regex> = OnceLock::new();
        static EMAIL: OnceLock<Regex> = OnceLock::new();
        static ACCOUNT: OnceLock<Regex> = OnceLock::new();
        let (cell, source) = match self {
            Pattern::Ssn => (&SSN, r"\b\d{3}-\d{2}-\d{4}\b"),
            Pattern::Email => (&EMAIL, r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
            Pattern::Account => (&ACCOUNT, r"\bacct-\d+\b"),
        };
        cell.get_or_init(|| Regex::new(source).expect("built-in redaction patterns are valid"))
    }

    fn label(self) -> &'static str {
        match self {
            Pattern::Ssn => "[redacted ssn]",
            Pattern::Email => "[redacted email]",
            Pattern::Account => "[redacted account]",
        }
    }
}

impl Obligations {
    /// Applies redaction and masking to structured and text content.
    pub fn apply(&self, result: &mut CallToolResult) {
        if !self.transforms_content() {
            return;
        }
        if let Some(structured) = result.structured_content.as_mut() {
            self.apply_to_value(structured);
        }
        for block in result.content.iter_mut() {
            if let ContentBlock::Text(text) = block {
                text.text = match serde_json::from_str::<Value>(&text.text) {
                    Ok(mut value) if value.is_object() || value.is_array() => {
                        self.apply_to_value(&mut value);
                        value.to_string()
                    }
                    _ => self.apply_to_text(&text.text),
                };
            }
        }
    }

    fn apply_to_text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for obligation in &self.0 {
            if let Obligation::RedactPattern(pattern) = obligation {
                out = pattern
                    .regex()
                    .replace_all(&out, pattern.label())
                    .into_owned();
            }
        }
        out
    }

    fn apply_to_value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for obligation in &self.0 {
                    match obligation {
                        Obligation::Redact(field) => {
                            map.remove(field);
                        }
                        Obligation::Mask(field) => {
                            if let Some(found) = map.get_mut(field) {
                                *found = Value::String(mask(found));
                            }
                        }
                        _ => {}
                    }
                }
                for child in map.values_mut() {
                    self.apply_to_value(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.apply_to_value(i)),
            Value::String(text) => *text = self.apply_to_text(text),
            _ => {}
        }
    }
}

fn mask(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let chars: Vec<char> = text.chars().collect();
    let keep = chars.len().min(4);
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{}{tail}", "*".repeat(chars.len() - keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_reaches_structured_and_text_content() {
        let obligations = Obligations::parse(&[
            "redact:assigned_users".into(),
            "mask:account".into(),
            "redact_pattern:email".into(),
        ])
        .expect("enforceable");
        let body = serde_json::json!({"case": {"id": "c", "assigned_users": ["alice"], "account": "DE89370400440532013000", "note": "mail j.smith@northwind.example"}});
        let mut result = CallToolResult::success(vec![
            ContentBlock::text(body.to_string()),
            ContentBlock::text("plain j.smith@northwind.example"),
        ]);
        result.structured_content = Some(body);
        obligations.apply(&mut result);
        let structured = result.structured_content.expect("structured").to_string();
        assert!(!structured.contains("alice") && !structured.contains("assigned_users"));
        assert!(
            structured.contains("******************3000"),
            "{structured}"
        );
        assert!(!structured.contains("northwind.example"), "{structured}");
        for block in &result.content {
            let text = &block.as_text().expect("text").text;
            assert!(
                !text.contains("alice") && !text.contains("northwind.example"),
                "{text}"
            );
        }
    }
}
