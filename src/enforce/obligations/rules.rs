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

use super::delimit::{ends_cleanly, value_after_key, REDACTED};
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
    fn rewrite(&self, text: &str, all: &[FieldRule<'_>]) -> Result<String, Unredactable> {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut at = 0;
        while at < bytes.len() {
            let Some(name_end) = self.mention_at(bytes, at) else {
                at += 1;
                continue;
            };
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
        // Redactions before masks: a masked value keeps its last characters, which must not
        // be those of a value another rule redacts.
        for action in [Action::Redact, Action::Mask] {
            for rule in self.fields.iter().filter(|r| r.action == action) {
                out = rule.rewrite(&out, &self.fields)?;
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
mod tests {
    use super::*;

    fn rules(texts: &[&str]) -> Obligations {
        Obligations::parse(&texts.iter().map(|t| t.to_string()).collect::<Vec<_>>())
            .expect("enforceable")
    }

    #[test]
    fn field_names_match_however_their_words_are_joined() {
        let rule = FieldRule::new("customer_ssn", Action::Redact);
        for key in [
            "customer_ssn",
            "Customer SSN",
            "customer-ssn",
            "customerSsn",
            "CUSTOMERSSN",
        ] {
            assert!(rule.is_key(key), "{key}");
        }
        for key in [
            "customer",
            "customer_ssn_hash",
            "xcustomer_ssn",
            "customer  ssn",
        ] {
            assert!(!rule.is_key(key), "{key}");
        }
        assert_eq!(
            words("assignedUsers2FA-code"),
            ["assigned", "users2", "fa", "code"]
        );
    }

    #[test]
    fn plain_text_keys_lose_their_values_and_other_mentions_fail() {
        let obligations = rules(&["redact:customer_ssn"]);
        let redact = Rules::new(&obligations).expect("transforms");
        let cases = [
            (
                "customer_ssn: 123-45-6789\nname: Contoso",
                "customer_ssn: [redacted]\nname: Contoso",
            ),
            (
                "a=1 Customer SSN = 123 45 6789 ",
                "a=1 Customer SSN = [redacted] ",
            ),
            (
                "{\"customer_ssn\": \"123\", x",
                "{\"customer_ssn\": [redacted], x",
            ),
            (
                "'customer_ssn':'1\\'2', ok",
                "'customer_ssn':[redacted], ok",
            ),
            (
                "customer_ssn=[1, \"]\", {2}]; ok",
                "customer_ssn=[redacted]; ok",
            ),
            ("nothing here: ssn", "nothing here: ssn"),
        ];
        for (text, expected) in cases {
            assert_eq!(redact.text(text).as_deref(), Ok(expected), "{text}");
        }
        for text in [
            "the customer_ssn was checked",
            "customer_ssn:\n  - 123-45-6789",
            "customer_ssn: \"123",
            "customer_ssn: [1, 2",
            "customer_ssn:",
            // Found by the obligations fuzz target: the quoted "value" is a key of its own.
            "customer_ssn:\t'customer_ssn': [\"123-45-6789\"]",
            // Found by the obligations fuzz target: a key inside the value, whose quoted value
            // runs past its line, would be cut in two.
            "customer_ssn: a; customer_ssn: '123\n45-6789' ok",
            // A quoted or bracketed value followed by more on its line may run on.
            "{\"customer_ssn\": \"123\" x",
            "'customer_ssn':'1\\'2' ok",
            "customer_ssn=[1, \"]\", {2}] ok",
        ] {
            assert_eq!(
                redact.text(text),
                Err(Unredactable {
                    field: "customer_ssn".into()
                }),
                "{text}"
            );
        }
        let obligations = rules(&["mask:account", "redact_pattern:email"]);
        let mask = Rules::new(&obligations).expect("transforms");
        assert_eq!(
            mask.text("account: \"DE89370400440532013000\"; contact j@x.example")
                .as_deref(),
            Ok("account: \"******************3000\"; contact [redacted email]")
        );
        // What follows the value on its line, unseparated, might be more of it: withheld.
        assert!(mask
            .text("account: \"DE89370400440532013000\" (j@x.example)")
            .is_err());
    }

    /// Found by the obligations fuzz target (its input, replayed): the value of the first
    /// `f:` ran to the end of its line, over a second `f: '...'` whose quoted value goes on to
    /// the next line; masking the first kept its last four characters, the second value's,
    /// and left that value's rest as it was. Such text is now refused, under either action.
    #[test]
    fn a_value_holding_a_key_whose_value_runs_past_it_is_refused() {
        let text = "::f:-:___re$____y%wb'vb'v_re$y; f: '\u{7f}Decitm\u{e008}\u{e03a}\u{e0ef}\
                    \u{e001}\u{e03a}\u{e008}\u{e04f}\nwxyz'\nr_";
        for obligations in [
            ["mask:notes", "mask:f", "mask:f"],
            ["redact:notes", "redact:f", "mask:f"],
        ] {
            let obligations = rules(&obligations);
            let rules = Rules::new(&obligations).expect("transforms");
            assert_eq!(
                rules.text(text),
                Err(Unredactable { field: "f".into() }),
                "{obligations:?}"
            );
        }
        // A key whose value ends within the outer value is rewritten with it.
        let obligations = rules(&["mask:f"]);
        let mask = Rules::new(&obligations).expect("transforms");
        assert_eq!(
            mask.text("f: ab; f: cd\nok").as_deref(),
            Ok("f: *****: cd\nok")
        );
    }

    /// Found by the obligations fuzz target (its input, replayed): `redact_pattern:email`
    /// turned the start of a masked field's value into `[redacted email]`, which was then taken
    /// for the whole, bracketed value; the rest of the line (the secret) was left as it was.
    #[test]
    fn a_label_at_a_values_start_is_not_its_bracket() {
        let text = "_'_tsyttttt\n\n|[-\n\n\n\n\n\n\tK, 'KKKKKsyttttttttttstttt': \
                    j@x.example\u{e074}\u{e000}\u{e000}\u{e002}\u{200d}wxyz\n";
        let obligations = rules(&[
            "redact_pattern:email",
            "redact_pattern:account",
            "redact_pattern:email",
            "mask:KKKKKsyttttttttttstttt",
        ]);
        let applied = Rules::new(&obligations).expect("transforms");
        let out = applied.text(text).expect("delimited");
        assert!(
            !out.chars().any(|c| ('\u{e000}'..='\u{f8ff}').contains(&c)),
            "{out:?}"
        );
        assert!(out.ends_with("wxyz\n"), "{out:?}");
        // A field's own redaction label likewise, and a real bracket still delimits.
        let obligations = rules(&["redact:g", "mask:f"]);
        let both = Rules::new(&obligations).expect("transforms");
        assert_eq!(
            both.text("f: [redacted] secretwxyz\nf: [abcdef], ok")
                .as_deref(),
            Ok("f: *****************wxyz\nf: ****def], ok")
        );
    }

    /// Found by the obligations fuzz target: under `mask:<field>`, a value that starts with a
    /// bracketed part and goes on, on its line, without a separator was taken to be the
    /// bracketed part alone: `(y)` was masked and the secret after it was left as it was. What
    /// follows a quoted or bracketed value on its line must be a separator, or the text is
    /// withheld.
    #[test]
    fn a_bracket_followed_by_more_on_its_line_is_refused() {
        let text = format!(
            "[[[[[[[[[[[[{}\n\n{},{}{}\t{}{}; YTTTTTTTTTTSTTTTT:(y)\
             \u{e073}\u{e079}\u{e074}\u{e074}\u{e074}@cwxyz\n",
            "\r".repeat(36),
            "\r".repeat(40),
            "\r".repeat(9),
            "\n".repeat(18),
            "\n".repeat(6),
            "\r".repeat(13),
        );
        let text = text.as_str();
        let obligations = rules(&[
            "mask:yttttttttttsttttt",
            "redact_pattern:account",
            "require_idempotency",
        ]);
        let applied = Rules::new(&obligations).expect("transforms");
        assert!(applied.text(text).is_err(), "{:?}", applied.text(text));
        let obligations = rules(&["mask:f"]);
        let mask = Rules::new(&obligations).expect("transforms");
        for runs_on in [
            "f: (y)secret",
            "f: 'ab'cdef",
            "f: [ab] cdef\n",
            "f: {a} b",
            "f: 'f': x",
            // Found by the obligations fuzz target after 154,988 executions on the first fix:
            // a closing bracket is no separator when more follows it.
            "; F:(y)]\u{e073}\u{e079}\u{e074}@cwxyz\n",
            "{f: 'x'} y",
        ] {
            assert!(
                mask.text(runs_on).is_err(),
                "{runs_on:?}: {:?}",
                mask.text(runs_on)
            );
        }
        // Closing brackets, then a separator or the line's end, close it.
        for (closed, masked) in [
            ("f: (abcdef), g", "f: ****def), g"),
            ("{f: 'abcdef'}", "{f: '**cdef'}"),
            ("f: [abcdef] ; g\nh", "f: ****def] ; g\nh"),
            ("[{f: 'abcdef'}], g", "[{f: '**cdef'}], g"),
            ("f: \"abcdef\"  \r\n", "f: \"**cdef\"  \r\n"),
        ] {
            assert_eq!(mask.text(closed).as_deref(), Ok(masked), "{closed:?}");
        }
    }

    /// Found by the obligations fuzz target: `mask:p_` left `p_: <value>` as it was (the
    /// words of `p_` are `p`, and `p` followed by `_` is not a mention), in text and as a
    /// JSON member name alike.
    #[test]
    fn names_with_separators_their_words_drop_are_found_as_written() {
        for name in ["p_", "a__b", "_p", "p-"] {
            let obligations = rules(&[&format!("mask:{name}")]);
            let mask = Rules::new(&obligations).expect("transforms");
            let text = format!(
                "\n{name}: {}wxyz\n",
                char::from_u32(0xE000).expect("a char")
            );
            assert_eq!(
                mask.text(&text).as_deref(),
                Ok(format!("\n{name}: *wxyz\n").as_str()),
                "{name}"
            );
            let mut member = serde_json::json!({ name: "secret-value" });
            mask.value(&mut member).expect("maskable");
            assert_eq!(member[name], "********alue", "{name}");
        }
    }

    /// Found by the obligations fuzz target: `mask:y` beside `redact_pattern:account` showed
    /// the last characters of `y: acct-0`, a digit among them.
    #[test]
    fn a_masked_value_shows_no_digit_a_pattern_hides() {
        let obligations = rules(&["mask:y", "redact_pattern:account"]);
        let both = Rules::new(&obligations).expect("transforms");
        let out = both
            .text("y : acct-0\u{200b}\u{200b} ")
            .expect("redactable");
        assert!(!out.chars().any(char::is_numeric), "{out}");
        let mut member = serde_json::json!({"y": "acct-0123", "note": "y: acct-4567"});
        both.value(&mut member).expect("redactable");
        assert!(
            !member.to_string().chars().any(char::is_numeric),
            "{member}"
        );
    }

    #[test]
    fn json_strings_are_text_too() {
        let obligations = rules(&["redact:customer_ssn"]);
        let redact = Rules::new(&obligations).expect("transforms");
        let text = r#"{"note": "customer_ssn: 123-45-6789", "inner": "{\"customerSsn\": 1}"}"#;
        let out = redact.text(text).expect("redactable");
        assert!(
            !out.contains("123-45-6789") && !out.contains("Ssn"),
            "{out}"
        );
        assert_eq!(
            redact.text(r#"["the customer ssn is secret"]"#),
            Err(Unredactable {
                field: "customer_ssn".into()
            })
        );
    }

    /// Found by the `obligations` fuzz target (fuzz/corpus/obligations/crash-email-in-json-key):
    /// member names were never read, so `{"j0@0.com": null}` kept the address, and
    /// `{"customer_ssn: 123-45-6789": true}` the number, under the obligations that forbid them.
    #[test]
    fn member_names_are_text_too() {
        let obligations = rules(&[
            "redact_pattern:email",
            "redact:customer_ssn",
            "mask:account",
        ]);
        let rules = Rules::new(&obligations).expect("transforms");
        let mut value: Value = serde_json::from_str(
            r#"{"  0\u200b@0\u200b.com  ": null, "customer_ssn: 123-45-6789": true,
                "account": "DE89370400440532013000", "plain": {"x@example.com": 1}}"#,
        )
        .expect("json");
        rules.value(&mut value).expect("redactable");
        let keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "  [redacted email]  ",
                "customer_ssn: [redacted]",
                "account",
                "plain"
            ],
            "{value}"
        );
        assert_eq!(value["account"], "******************3000");
        assert_eq!(value["plain"], serde_json::json!({"[redacted email]": 1}));
        // A name that mentions a field without a value, or two names that read alike once
        // rewritten: the object cannot be shown.
        for text in [
            r#"{"Customer SSN (verified)": "123-45-6789"}"#,
            r#"{"customer_ssn: 1": "a", "customer_ssn: 2": "b"}"#,
        ] {
            let mut value: Value = serde_json::from_str(text).expect("json");
            assert!(rules.value(&mut value).is_err(), "{text}");
        }
    }

    #[test]
    fn redact_wins_over_mask_of_the_same_field() {
        let obligations = rules(&["mask:ssn", "redact:SSN", "audit:x"]);
        let both = Rules::new(&obligations).expect("transforms");
        assert!(both.fields.iter().all(|rule| rule.action == Action::Redact));
        assert_eq!(both.text("ssn: 123456").as_deref(), Ok("ssn: [redacted]"));
        assert!(Rules::new(&rules(&["audit:x", "max_calls:2"])).is_none());
        // Found by the obligations fuzz target: `mask:__y` gave way to `redact:___y` (one
        // field by its words) and `__y: value`, found only as written, was left as it was.
        let obligations = rules(&["mask:__y", "redact:___y"]);
        let both = Rules::new(&obligations).expect("transforms");
        assert_eq!(
            both.text("\n__y: 6789\n").as_deref(),
            Ok("\n__y: [redacted]\n")
        );
        let mut member = serde_json::json!({"__y": 1, "___y": 2, "y": 3});
        both.value(&mut member).expect("redactable");
        assert_eq!(member, serde_json::json!({}));
    }
}
