//! Obligations as typed values: what a permit requires the PEP to do for its allow to stand.
//! Every `@obligation` is parsed here when the policy set loads (`load.rs`), so a set naming
//! an obligation this gateway cannot enforce is refused before it decides anything. Applying
//! obligations to results is the PEP's job (`enforce::obligations`).
//!
//! - `redact:<field>` removes the field from what the result shows the agent;
//! - `mask:<field>` keeps only the last four characters of the field's value;
//! - `redact_pattern:<ssn|email|account>` replaces matches in all text (matched in Unicode
//!   normalization form NFKC, so fullwidth and other look-alike spellings count);
//! - `audit:<tag>` records the call under the tag;
//! - `max_calls:<n>` allows at most n calls of the tool per run;
//! - `require_idempotency` demands an idempotency key even for a read.

use std::str::FromStr;

/// Built-in text patterns for `redact_pattern:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Ssn,
    Email,
    Account,
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

/// Why an obligation's text is not one this gateway can enforce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObligationParseError {
    #[error("unknown obligation kind `{0}`; known: redact, mask, redact_pattern, audit, max_calls, require_idempotency")]
    UnknownKind(String),
    #[error("`{0}` needs an argument, as in `{0}:<argument>`")]
    MissingArgument(String),
    #[error("require_idempotency takes no argument")]
    UnexpectedArgument,
    #[error("`{0}` is not a field name: use letters, digits, `_` and `-`")]
    BadField(String),
    #[error("`{0}` is not a built-in pattern: use ssn, email or account")]
    UnknownPattern(String),
    #[error("max_calls needs a whole number, not `{0}`")]
    BadLimit(String),
}

/// A field name `redact:`/`mask:` can be applied to in JSON and in plain text alike.
fn is_field_name(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name.bytes().any(|b| b.is_ascii_alphanumeric())
}

impl FromStr for Obligation {
    type Err = ObligationParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, argument) = match text.split_once(':') {
            Some((kind, argument)) => (kind.trim(), argument.trim()),
            None => (text.trim(), ""),
        };
        let argument = || {
            if argument.is_empty() {
                Err(ObligationParseError::MissingArgument(kind.to_string()))
            } else {
                Ok(argument)
            }
        };
        let field = || {
            let name = argument()?;
            if is_field_name(name) {
                Ok(name.to_string())
            } else {
                Err(ObligationParseError::BadField(name.to_string()))
            }
        };
        Ok(match kind {
            "require_idempotency" if text.contains(':') => {
                return Err(ObligationParseError::UnexpectedArgument)
            }
            "require_idempotency" => Obligation::RequireIdempotency,
            "redact" => Obligation::Redact(field()?),
            "mask" => Obligation::Mask(field()?),
            "redact_pattern" => Obligation::RedactPattern(match argument()? {
                "ssn" => Pattern::Ssn,
                "email" => Pattern::Email,
                "account" => Pattern::Account,
                other => return Err(ObligationParseError::UnknownPattern(other.to_string())),
            }),
            "audit" => Obligation::Audit(argument()?.to_string()),
            "max_calls" => {
                let limit = argument()?;
                Obligation::MaxCalls(
                    limit
                        .parse()
                        .map_err(|_| ObligationParseError::BadLimit(limit.to_string()))?,
                )
            }
            other => return Err(ObligationParseError::UnknownKind(other.to_string())),
        })
    }
}

impl Obligation {
    /// Parses one obligation; `None` when this gateway cannot enforce it.
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// Whether this obligation changes what the agent is shown (and so must reach every
    /// content kind of a result, or refuse it).
    pub fn transforms_content(&self) -> bool {
        match self {
            Obligation::Redact(_) | Obligation::Mask(_) | Obligation::RedactPattern(_) => true,
            Obligation::Audit(_) | Obligation::MaxCalls(_) | Obligation::RequireIdempotency => {
                false
            }
        }
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
                Obligation::Redact(_)
                | Obligation::Mask(_)
                | Obligation::RedactPattern(_)
                | Obligation::Audit(_)
                | Obligation::RequireIdempotency => None,
            })
            .min()
    }

    pub fn audit_tags(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|o| match o {
                Obligation::Audit(tag) => Some(tag.as_str()),
                Obligation::Redact(_)
                | Obligation::Mask(_)
                | Obligation::RedactPattern(_)
                | Obligation::MaxCalls(_)
                | Obligation::RequireIdempotency => None,
            })
            .collect()
    }

    /// Whether any obligation changes what the agent is shown.
    pub fn transforms_content(&self) -> bool {
        self.0.iter().any(Obligation::transforms_content)
    }
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
    fn every_kind_parses_and_malformed_ones_say_why() {
        let good = [
            (
                "redact:customer_ssn",
                Obligation::Redact("customer_ssn".into()),
            ),
            ("mask: account-no ", Obligation::Mask("account-no".into())),
            (
                "redact_pattern:email",
                Obligation::RedactPattern(Pattern::Email),
            ),
            ("audit:notice sent", Obligation::Audit("notice sent".into())),
            ("max_calls:3", Obligation::MaxCalls(3)),
            ("require_idempotency", Obligation::RequireIdempotency),
        ];
        for (text, expected) in good {
            assert_eq!(text.parse::<Obligation>(), Ok(expected), "{text}");
        }
        use ObligationParseError as E;
        let bad = [
            ("encrypt:case", E::UnknownKind("encrypt".into())),
            ("redact", E::MissingArgument("redact".into())),
            ("audit: ", E::MissingArgument("audit".into())),
            ("require_idempotency:yes", E::UnexpectedArgument),
            ("require_idempotency:", E::UnexpectedArgument),
            ("redact:a.b", E::BadField("a.b".into())),
            ("mask:\"ssn\"", E::BadField("\"ssn\"".into())),
            ("redact:_-", E::BadField("_-".into())),
            ("redact_pattern:iban", E::UnknownPattern("iban".into())),
            ("max_calls:many", E::BadLimit("many".into())),
            ("max_calls:-1", E::BadLimit("-1".into())),
            ("", E::UnknownKind(String::new())),
        ];
        for (text, expected) in bad {
            assert_eq!(text.parse::<Obligation>(), Err(expected), "{text}");
        }
    }

    #[test]
    fn only_redact_mask_and_patterns_transform_content() {
        let of = |texts: &[&str]| {
            Obligations::parse(&texts.iter().map(|t| t.to_string()).collect::<Vec<_>>())
                .expect("enforceable")
        };
        assert!(!of(&["audit:x", "max_calls:1", "require_idempotency"]).transforms_content());
        for text in ["redact:f", "mask:f", "redact_pattern:ssn"] {
            assert!(of(&["audit:x", text]).transforms_content(), "{text}");
        }
    }

    /// A policy set naming an obligation this gateway cannot enforce is refused at load, and
    /// the problem names the file, the policy and the obligation's text.
    #[test]
    fn an_unenforceable_obligation_refuses_the_policy_set() {
        use super::super::load::{load_policies, MANIFEST_FILE, SCHEMA_FILE};
        let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        load_policies(&policies).expect("the repository's policies load");
        for bad in [
            "encrypt:case",
            "redact_pattern:iban",
            "mask:a b",
            "max_calls:lots",
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            for file in [MANIFEST_FILE, SCHEMA_FILE] {
                std::fs::copy(policies.join(file), dir.path().join(file)).expect("copy");
            }
            std::fs::write(
                dir.path().join("bad.cedar"),
                format!("@id(\"bad-obligation\")\n@obligation(\"audit:fine, {bad}\")\npermit(principal, action, resource);\n"),
            )
            .expect("write");
            let error = match load_policies(dir.path()) {
                Ok(_) => panic!("`{bad}` loaded"),
                Err(error) => error,
            };
            let [problem] = error.problems.as_slice() else {
                panic!("one problem expected: {error}");
            };
            assert!(problem.file.ends_with("bad.cedar"), "{problem}");
            assert_eq!(problem.line, Some(1), "{problem}");
            assert!(problem.message.contains("`bad-obligation`"), "{problem}");
            assert!(problem.message.contains(bad), "{problem}");
        }
    }
}
