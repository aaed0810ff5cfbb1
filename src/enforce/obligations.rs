//! Obligations: what a permit requires the PEP to do for its allow to stand. Each kind here is
//! enforced; a decision carrying any other obligation is refused (an unenforced obligation
//! would make the allow a lie).
//!
//! - `redact:<field>` removes the field (at any depth) from structured content and from text
//!   content that is JSON;
//! - `mask:<field>` keeps only the last four characters of the field's value;
//! - `redact_pattern:<ssn|email|account>` replaces matches in all text;
//! - `audit:<tag>` records the call under the tag;
//! - `max_calls:<n>` allows at most n calls of the tool per run;
//! - `require_idempotency` demands an idempotency key even for a read.

use std::sync::OnceLock;

use regex::Regex;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

/// Built-in text patterns for `redact_pattern:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Ssn,
    Email,
    Account,
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obligation {
    Redact(String),
    Mask(String),
    RedactPattern(Pattern),
    Audit(String),
    MaxCalls(u64),
    RequireIdempotency,
}

impl Obligation {
    /// Parses one obligation; `None` when this gateway cannot enforce it.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "require_idempotency" {
            return Some(Obligation::RequireIdempotency);
        }
        let (kind, argument) = text.split_once(':')?;
        let argument = argument.trim();
        if argument.is_empty() {
            return None;
        }
        Some(match kind.trim() {
            "redact" => Obligation::Redact(argument.to_string()),
            "mask" => Obligation::Mask(argument.to_string()),
            "redact_pattern" => Obligation::RedactPattern(match argument {
                "ssn" => Pattern::Ssn,
                "email" => Pattern::Email,
                "account" => Pattern::Account,
                _ => return None,
            }),
            "audit" => Obligation::Audit(argument.to_string()),
            "max_calls" => Obligation::MaxCalls(argument.parse().ok()?),
            _ => return None,
        })
    }
}

/// The obligations of one decision, all enforceable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Obligations(pub Vec<Obligation>);

impl Obligations {
    /// Parses a decision's obligations, or names those this gateway cannot enforce.
    pub fn parse(texts: &[String]) -> Result<Self, Vec<String>> {
        let mut parsed = Vec::new();
        let mut unenforceable = Vec::new();
        for text in texts {
            match Obligation::parse(text) {
                Some(obligation) => parsed.push(obligation),
                None => unenforceable.push(text.clone()),
            }
        }
        if unenforceable.is_empty() {
            Ok(Self(parsed))
        } else {
            Err(unenforceable)
        }
    }

    pub fn requires_idempotency(&self) -> bool {
        self.0.contains(&Obligation::RequireIdempotency)
    }

    /// The smallest `max_calls` limit, if any.
    pub fn max_calls(&self) -> Option<u64> {
        self.0
            .iter()
            .filter_map(|o| match o {
                Obligation::MaxCalls(n) => Some(*n),
                _ => None,
            })
            .min()
    }

    pub fn audit_tags(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|o| match o {
                Obligation::Audit(tag) => Some(tag.as_str()),
                _ => None,
            })
            .collect()
    }

    fn transforms_content(&self) -> bool {
        self.0.iter().any(|o| {
            matches!(
                o,
                Obligation::Redact(_) | Obligation::Mask(_) | Obligation::RedactPattern(_)
            )
        })
    }

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

// Application to every content kind: interim entry points (tool results as before; resources
// and prompts refuse any content-transforming obligation until they are applied there).
impl Obligations {
    pub fn apply_to_tool_result(&self, result: &mut CallToolResult) -> Result<(), String> {
        self.apply(result);
        Ok(())
    }

    pub fn apply_to_resource(
        &self,
        _result: &mut rmcp::model::ReadResourceResult,
    ) -> Result<(), String> {
        if self.transforms_content() {
            return Err("resource contents cannot be redacted yet".into());
        }
        Ok(())
    }

    pub fn apply_to_prompt(
        &self,
        _result: &mut rmcp::model::GetPromptResult,
    ) -> Result<(), String> {
        if self.transforms_content() {
            return Err("prompt messages cannot be redacted yet".into());
        }
        Ok(())
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
    fn unknown_obligations_are_named() {
        let parsed = Obligations::parse(&["audit:x".into(), "encrypt:y".into(), "redact:".into()]);
        assert_eq!(
            parsed,
            Err(vec!["encrypt:y".to_string(), "redact:".to_string()])
        );
    }

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
