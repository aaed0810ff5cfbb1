//! Duplicate member names in a token's header or payload. JSON parsers disagree on
//! `{"tenant":"acme","tenant":"globex"}` (serde keeps the last, others the first), so a token
//! that says two things is refused (RFC 7519 §4 allows exactly that) rather than read one way
//! here and another way by whoever checks it next. Objects at every depth are checked: the
//! top-level claims and the `act` objects of a delegation chain alike.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Where a JSON text's first duplicated member is, as a path like `act.act.sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MemberCheck {
    /// The text is not JSON; the caller's own parse names that.
    NotJson,
    Duplicate(String),
}

/// Checks that no object in `json` names a member twice.
pub(super) fn check_unique_members(json: &[u8]) -> Result<(), MemberCheck> {
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let checked = Unique {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    match (checked, duplicate.into_inner()) {
        (_, Some(path)) => Err(MemberCheck::Duplicate(path)),
        (Ok(()), None) => Ok(()),
        (Err(_), None) => Err(MemberCheck::NotJson),
    }
}

/// One value at `path`; the first duplicate found is left in `duplicate`.
struct Unique<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl Unique<'_> {
    fn child(&self, path: String) -> Self {
        Unique {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let path = format!("{}[]", self.path);
        while items.next_element_seed(self.child(path.clone()))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = members.next_key::<String>()? {
            let path = if self.path.is_empty() {
                name.clone()
            } else {
                format!("{}.{name}", self.path)
            };
            if !seen.insert(name) {
                *self.duplicate.borrow_mut() = Some(path);
                // Stop here: the rest of the text no longer matters.
                return Err(de::Error::custom("duplicate member"));
            }
            members.next_value_seed(self.child(path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_at_any_depth_and_named_by_path() {
        let table = [
            (r#"{"sub":"a","tenant":"acme"}"#, Ok(())),
            (r#"{"act":{"sub":"x","act":{"sub":"y"}}}"#, Ok(())),
            (r#"{"a":[{"b":1},{"b":2}]}"#, Ok(())),
            (
                r#"{"tenant":"acme","sub":"a","tenant":"globex"}"#,
                Err(MemberCheck::Duplicate("tenant".into())),
            ),
            (
                r#"{"sub":"a","act":{"sub":"x","sub":"y"}}"#,
                Err(MemberCheck::Duplicate("act.sub".into())),
            ),
            (
                r#"{"act":{"sub":"x","act":{"role":"r","role":"s"}}}"#,
                Err(MemberCheck::Duplicate("act.act.role".into())),
            ),
            (
                r#"{"alg":"HS256","alg":"none"}"#,
                Err(MemberCheck::Duplicate("alg".into())),
            ),
            (
                r#"{"x":[{"k":1,"k":2}]}"#,
                Err(MemberCheck::Duplicate("x[].k".into())),
            ),
            // An escaped name is the same name.
            (
                r#"{"tenant":"a","ten\u0061nt":"b"}"#,
                Err(MemberCheck::Duplicate("tenant".into())),
            ),
            (r#"{"a":1"#, Err(MemberCheck::NotJson)),
            (r#"{"a":1} trailing"#, Err(MemberCheck::NotJson)),
        ];
        for (json, expected) in table {
            assert_eq!(check_unique_members(json.as_bytes()), expected, "{json}");
        }
    }
}
