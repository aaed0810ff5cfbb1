//! The obligations target's inputs: results that plant secrets where obligations must find
//! them (a field's value in text, JSON members and keys; pattern values standing alone) among
//! clean text and JSON that hold no secret and no digit, in every content kind a result carries.

use arbitrary::Unstructured;
use serde_json::{json, Map, Value};
use unicode_normalization::UnicodeNormalization;

use crate::spellings::{pattern_value, standing_alone};
use Plant::{FieldKey, FieldMember, FieldText};

/// The first character of the Private Use Area block secrets are made of.
pub const SECRET_BASE: u32 = 0xE000;

pub fn is_secret(c: char) -> bool {
    (0xE000..=0xF8FF).contains(&u32::from(c))
}

/// Whether `c` (in NFKC) is or holds a number or a secret character, or is a control
/// character JSON escapes with digits (`\u0001`).
pub fn forbidden(c: char) -> bool {
    if c < ' ' && !matches!(c, '\n' | '\r' | '\t') {
        return true;
    }
    let mut buf = [0u8; 4];
    c.encode_utf8(&mut buf)
        .nfkc()
        .any(|d| d.is_numeric() || is_secret(d))
}

/// Text that holds no secret and no number.
pub fn clean(u: &mut Unstructured) -> arbitrary::Result<String> {
    let raw = crate::text(u)?;
    Ok(raw.chars().filter(|c| !forbidden(*c)).collect())
}

/// [`clean`] without line breaks (the inside of an unquoted value).
pub fn clean_line(u: &mut Unstructured) -> arbitrary::Result<String> {
    Ok(clean(u)?
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .collect())
}

/// A clean JSON value: no numbers (they would be digits once JSON is text), no secrets.
pub fn clean_json(u: &mut Unstructured, depth: u32) -> arbitrary::Result<Value> {
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
pub fn secret(u: &mut Unstructured) -> arbitrary::Result<String> {
    let mut out = String::new();
    for _ in 0..u.int_in_range(1u8..=8)? {
        let offset = u32::from(u.int_in_range(0u8..=255)?);
        out.push(char::from_u32(SECRET_BASE + offset).expect("the Private Use Area"));
    }
    Ok(out)
}

/// How an obligation treats a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldAction {
    Redact,
    Mask,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub action: FieldAction,
}

/// The words of a field name, as the obligation matches them (split at `_`, `-` and where a
/// lower-case letter or digit meets an upper-case one). Written apart from the library's
/// splitter, as an oracle: it marks where each word starts, then drops the empty ones.
pub fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out: Vec<String> = vec![String::new()];
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' {
            out.push(String::new());
            continue;
        }
        let after = i.checked_sub(1).map(|p| chars[p]);
        if c.is_ascii_uppercase() && after.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
            out.push(String::new());
        }
        if let Some(word) = out.last_mut() {
            word.push(c.to_ascii_lowercase());
        }
    }
    out.retain(|w| !w.is_empty());
    out
}

/// One of the spellings of a field name the obligation promises to match.
pub fn spelling(u: &mut Unstructured, name: &str) -> arbitrary::Result<String> {
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
pub fn field_name(u: &mut Unstructured) -> arbitrary::Result<String> {
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
pub fn plain_value(u: &mut Unstructured, secret: &str, action: FieldAction) -> arbitrary::Result<String> {
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
pub fn secret_json(u: &mut Unstructured, secret: &str, depth: u32) -> arbitrary::Result<Value> {
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
pub enum Plant {
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

pub struct Planter<'a> {
    pub fields: &'a [Field],
    pub patterns: &'a [&'static str],
}

impl Planter<'_> {
    pub fn plant(&self, u: &mut Unstructured) -> arbitrary::Result<Plant> {
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
    pub fn text(&self, u: &mut Unstructured) -> arbitrary::Result<String> {
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
    pub fn json(&self, u: &mut Unstructured, depth: u32) -> arbitrary::Result<Value> {
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

    pub fn object(&self, u: &mut Unstructured) -> arbitrary::Result<Value> {
        Ok(match self.json(u, 2)? {
            Value::Object(map) => Value::Object(map),
            other => {
                let mut map = Map::new();
                map.insert(clean(u)?, other);
                Value::Object(map)
            }
        })
    }

    pub fn meta(&self, u: &mut Unstructured, into: &mut Map<String, Value>) -> arbitrary::Result<()> {
        if u.ratio(1, 3)? {
            into.insert("_meta".into(), self.object(u)?);
        }
        Ok(())
    }

    /// A content block of any kind.
    pub fn block(&self, u: &mut Unstructured) -> arbitrary::Result<(Value, bool)> {
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
