//! How content-transforming obligations reach one piece of text or one JSON value: the rule
//! the result walkers in `mod.rs` apply to every text they find.
//!
//! - JSON text (an object or array): fields are removed or masked at any depth, and every
//!   string in it is itself text under these rules (a string can hold `ssn: ...` or JSON).
//! - Other text: each mention of a field must be a key with a value this module can delimit,
//!   `field: value`, `"field": "value"`, `field=value` and the like; the value is replaced
//!   (redact) or masked. A value runs to the end of its line unless it is quoted or bracketed,
//!   so a list such as `field: alice, bob` goes whole. Any other mention (the name alone, a key
//!   whose value starts on the next line, an unclosed quote or bracket) cannot be redacted
//!   safely and fails the text.
//! - Then the `redact_pattern:` patterns replace their matches, in the text brought to NFKC
//!   (`patterns.rs`).
//!
//! A field name matches without regard to case or to how its words are joined:
//! `customer_ssn` also matches `Customer SSN`, `customer-ssn` and `customerSsn`.

use std::ops::Range;

use serde_json::{Map, Value};

use super::delimit::{ends_cleanly, normalizing_invents_delimiters, value_after_key, REDACTED};
use super::patterns::redact_patterns;
use super::{mask, mask_text, Obligation, Obligations, Pattern};

/// What the text rule does with a field it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Redact,
    Mask,
}

/// A field named by `redact:` or `mask:`, split into its words for matching.
struct FieldRule<'a> {
    name: &'a str,
    words: Vec<String>,
    action: Action,
}

/// A text that mentions `field` in a form the rule cannot redact safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unredactable {
    pub field: String,
}

/// The content-transforming obligations of one decision, ready to apply.
pub(super) struct Rules<'a> {
    fields: Vec<FieldRule<'a>>,
    patterns: Vec<Pattern>,
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The words of a field name: split at `_` and `-` and where a lower-case letter or digit is
/// followed by an upper-case one, lower-cased.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous: Option<char> = None;
    for c in name.chars() {
        let camel_break = c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
        if (c == '_' || c == '-' || camel_break) && !current.is_empty() {
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

impl<'a> FieldRule<'a> {
    fn new(name: &'a str, action: Action) -> Self {
        Self {
            name,
            words: words(name),
            action,
        }
    }

    /// Where a mention of the field starting at `start` ends: the name as written, or its
    /// words in order, each pair joined by at most one of `_`, `-` or a space; with no word
    /// character on either side.
    fn mention_at(&self, text: &[u8], start: usize) -> Option<usize> {
        if start > 0 && is_word(text[start - 1]) {
            return None;
        }
        let bounded = |end: usize| match text.get(end) {
            Some(byte) if is_word(*byte) => None,
            _ => Some(end),
        };
        // As written: a name whose separators its words drop (`p_`, `a__b`, `-x`) is
        // mentioned so too.
        let literal_end = start + self.name.len();
        if text
            .get(start..literal_end)
            .is_some_and(|t| t.eq_ignore_ascii_case(self.name.as_bytes()))
        {
            if let Some(end) = bounded(literal_end) {
                return Some(end);
            }
        }
        let mut at = start;
        for (index, word) in self.words.iter().enumerate() {
            if index > 0 && matches!(text.get(at), Some(b'_' | b'-' | b' ')) {
                at += 1;
            }
            let end = at + word.len();
            if !text.get(at..end)?.eq_ignore_ascii_case(word.as_bytes()) {
                return None;
            }
            at = end;
        }
        bounded(at)
    }

    fn is_key(&self, key: &str) -> bool {
        self.mention_at(key.as_bytes(), 0) == Some(key.len())
    }

    fn unredactable(&self) -> Unredactable {
        Unredactable {
            field: self.name.to_string(),
        }
    }

    /// The text with every `field: value` redacted or masked; an error at any other mention,
    /// and where a key of any of `all` inside the value has a value of its own that runs past
    /// the end of this one (`f: a; g: 'b` / `c'`): rewriting this value would cut that one in
    /// two and leave its second part as it was.
    /// `invented`: the text was normalized and normalizing made delimiters that were not
    /// there, so no value in it can be delimited: every mention fails.
    fn rewrite(
        &self,
        text: &str,
        all: &[FieldRule<'_>],
        invented: bool,
    ) -> Result<String, Unredactable> {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut at = 0;
        while at < bytes.len() {
            let Some(name_end) = self.mention_at(bytes, at) else {
                at += 1;
                continue;
            };
            if invented {
                return Err(self.unredactable());
            }
            let value = value_after_key(bytes, at, name_end).ok_or_else(|| self.unredactable())?;
            if !ends_cleanly(bytes, value.end) {
                return Err(self.unredactable());
            }
            if overlaps_a_value(bytes, value.clone(), all) {
                return Err(self.unredactable());
            }
            out.push_str(&text[copied..value.start]);
            let raw = &text[value.clone()];
            match self.action {
                Action::Redact => out.push_str(REDACTED),
                Action::Mask => match raw.chars().next() {
                    Some(quote @ ('"' | '\'')) => {
                        out.push(quote);
                        out.push_str(&mask_text(&raw[1..raw.len() - 1]));
                        out.push(quote);
                    }
                    _ => out.push_str(&mask_text(raw)),
                },
            }
            copied = value.end;
            at = value.end;
        }
        out.push_str(&text[copied..]);
        Ok(out)
    }
}

/// Whether a key of one of `rules` inside `value` has a value that ends after `value` does.
fn overlaps_a_value(text: &[u8], value: Range<usize>, rules: &[FieldRule<'_>]) -> bool {
    value.clone().any(|at| {
        rules.iter().any(|rule| {
            rule.mention_at(text, at)
                .and_then(|name_end| value_after_key(text, at, name_end))
                .is_some_and(|inner| inner.end > value.end)
        })
    })
}

impl<'a> Rules<'a> {
    /// The rules of these obligations; `None` when none transforms content.
    pub(super) fn new(obligations: &'a Obligations) -> Option<Self> {
        let mut fields = Vec::new();
        let mut patterns = Vec::new();
        for obligation in &obligations.0 {
            match obligation {
                Obligation::Redact(field) => fields.push(FieldRule::new(field, Action::Redact)),
                Obligation::Mask(field) => fields.push(FieldRule::new(field, Action::Mask)),
                Obligation::RedactPattern(pattern) => patterns.push(*pattern),
                Obligation::Audit(_) | Obligation::MaxCalls(_) | Obligation::RequireIdempotency => {
                    // Not about what the result shows.
                }
            }
        }
        // Redaction first; a field both redacted and masked is redacted.
        fields.sort_by_key(|rule| rule.action == Action::Mask);
        let redacted: Vec<Vec<String>> = fields
            .iter()
            .filter(|rule| rule.action == Action::Redact)
            .map(|rule| rule.words.clone())
            .collect();
        // The masked name stays (as written, it may be found where the redacted one's words
        // are not: `__y` beside `___y`), redacted.
        for rule in &mut fields {
            if redacted.contains(&rule.words) {
                rule.action = Action::Redact;
            }
        }
        (!fields.is_empty() || !patterns.is_empty()).then_some(Self { fields, patterns })
    }

    /// One text: JSON text keeps its shape, other text is rewritten (see the module doc).
    pub(super) fn text(&self, text: &str) -> Result<String, Unredactable> {
        if text.trim_start().starts_with(['{', '[']) {
            if let Ok(mut value @ (Value::Object(_) | Value::Array(_))) =
                serde_json::from_str::<Value>(text)
            {
                self.value(&mut value)?;
                return Ok(value.to_string());
            }
        }
        // Patterns first: a masked value keeps its last characters, which must not be the
        // digits of a number a pattern hides.
        let mut out = if self.patterns.is_empty() {
            text.to_string()
        } else {
            redact_patterns(&self.patterns, text)
        };
        // Patterns normalize the text (NFKC), which can make brackets and quotes out of other
        // characters (`f: ⒴;secret` reads `f: (y);secret`): then no value can be delimited.
        let invented = !self.patterns.is_empty() && normalizing_invents_delimiters(text);
        // Redactions before masks: a masked value keeps its last characters, which must not
        // be those of a value another rule redacts.
        for action in [Action::Redact, Action::Mask] {
            for rule in self.fields.iter().filter(|r| r.action == action) {
                out = rule.rewrite(&out, &self.fields, invented)?;
            }
        }
        Ok(out)
    }

    /// One JSON value, at any depth.
    pub(super) fn value(&self, value: &mut Value) -> Result<(), Unredactable> {
        match value {
            Value::Object(map) => self.object(map),
            Value::Array(items) => items.iter_mut().try_for_each(|item| self.value(item)),
            Value::String(text) => {
                *text = self.text(text)?;
                Ok(())
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        }
    }

    /// One JSON object (a structured result, a `_meta`), at any depth. A member named after a
    /// field is removed or masked; every other member's name is text under these rules too (a
    /// downstream can write `{"ssn: 123-45-6789": true}`). Two names that read alike once
    /// rewritten cannot both be kept: that fails the object.
    pub(super) fn object(&self, map: &mut Map<String, Value>) -> Result<(), Unredactable> {
        for rule in &self.fields {
            match rule.action {
                Action::Redact => map.retain(|key, _| !rule.is_key(key)),
                Action::Mask => {
                    for (key, found) in map.iter_mut() {
                        if rule.is_key(key) {
                            // What the value holds that the rules hide is hidden before its
                            // last characters are shown.
                            self.value(found)?;
                            *found = Value::String(mask(found));
                        }
                    }
                }
            }
        }
        for (key, child) in std::mem::take(map) {
            let mut child = child;
            self.value(&mut child)?;
            let key = if self.fields.iter().any(|rule| rule.is_key(&key)) {
                // A masked member: its name is the field's own.
                key
            } else {
                self.text(&key)?
            };
            if map.contains_key(&key) {
                return Err(Unredactable { field: key });
            }
            map.insert(key, child);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
