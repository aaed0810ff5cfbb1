//! The ids a token names — tenant, user (`sub`), agent (`act.sub`, and each prior actor) and
//! agent role — checked before anything uses them. Each id is a key into policy, kill switches,
//! budgets and sessions, and is passed on to downstreams; one that a later step would read
//! differently (`"acme "` trimmed to `acme`, an invisible control or format character, a
//! look-alike built from combining tricks) would let a caller slip past a rule written for the
//! id it resembles. So an id is refused unless it is:
//!
//! - not empty, and at most [`MAX_ID_CHARS`] characters;
//! - free of control characters, and of whitespace at either end;
//! - made only of Unicode letters (`\p{L}`), combining marks (`\p{M}`) and numbers (`\p{N}`),
//!   and the ASCII punctuation [`ID_PUNCTUATION`] (`. _ - @ : / + = ~ |`).
//!
//! That keeps the ids real issuers hand out working: UUIDs, e-mail addresses, URNs and SPIFFE
//! ids (`spiffe://org/ns/agent`), Auth0's `auth0|123`, base64 (`+/=`), and names in any script,
//! while spaces, quotes, brackets, `#`, `,`, `;`, and invisible characters (zero-width spaces,
//! bidi overrides) are not id characters.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// The longest id accepted, in characters (Unicode scalar values).
pub const MAX_ID_CHARS: usize = 256;

/// The punctuation an id may hold besides letters, marks and numbers.
pub const ID_PUNCTUATION: &str = "._-@:/+=~|";

/// Why an id is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdProblem {
    Empty,
    TooLong { chars: usize },
    ControlCharacter { at: usize },
    SurroundingWhitespace,
    DisallowedCharacter { found: char, at: usize },
}

impl fmt::Display for IdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdProblem::Empty => f.write_str("it is empty"),
            IdProblem::TooLong { chars } => {
                write!(f, "it is {chars} characters long, over the limit of {MAX_ID_CHARS}")
            }
            IdProblem::ControlCharacter { at } => {
                write!(f, "it holds a control character at position {at}")
            }
            IdProblem::SurroundingWhitespace => f.write_str("it begins or ends with whitespace"),
            IdProblem::DisallowedCharacter { found, at } => write!(
                f,
                "it holds U+{:04X} at position {at}; ids use letters, digits and `{ID_PUNCTUATION}`",
                u32::from(*found)
            ),
        }
    }
}

/// The first character an id may not hold, if any.
fn disallowed_character() -> &'static Regex {
    static DISALLOWED: OnceLock<Regex> = OnceLock::new();
    DISALLOWED.get_or_init(|| {
        Regex::new(r"[^\p{L}\p{M}\p{N}._\-@:/+=~|]")
            .expect("the id character class is a valid regex")
    })
}

/// Checks one id against the rules in the module doc; positions count characters from 0.
pub fn check_id(id: &str) -> Result<(), IdProblem> {
    if id.is_empty() {
        return Err(IdProblem::Empty);
    }
    let chars = id.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(IdProblem::TooLong { chars });
    }
    if let Some(at) = id.chars().position(char::is_control) {
        return Err(IdProblem::ControlCharacter { at });
    }
    if id.starts_with(char::is_whitespace) || id.ends_with(char::is_whitespace) {
        return Err(IdProblem::SurroundingWhitespace);
    }
    match disallowed_character().find(id) {
        None => Ok(()),
        Some(found) => Err(IdProblem::DisallowedCharacter {
            found: id[found.start()..]
                .chars()
                .next()
                .unwrap_or(char::REPLACEMENT_CHARACTER),
            at: id[..found.start()].chars().count(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_world_ids_are_accepted() {
        for id in [
            "acme",
            "org/alice",
            "alice/bot",
            "alice@example.com",
            "first.last+tag@example.co.uk",
            "auth0|5f7c8ec7c33c6c004bbafe82",
            "google-oauth2|104",
            "urn:example:tenant:42",
            "spiffe://acme.example/ns/agents/sa/drafting-agent",
            "550e8400-e29b-41d4-a716-446655440000",
            "dGVzdA+/==",
            "~svc_account",
            "Müller",
            "東京-tenant",
            "नमस्ते",
            "user_٣",
            &"a".repeat(MAX_ID_CHARS),
        ] {
            assert_eq!(check_id(id), Ok(()), "{id:?}");
        }
    }

    #[test]
    fn each_bad_id_is_refused_with_its_reason() {
        use IdProblem as P;
        let too_long = "a".repeat(MAX_ID_CHARS + 1);
        let table: [(&str, IdProblem); 14] = [
            ("", P::Empty),
            (
                &too_long,
                P::TooLong {
                    chars: MAX_ID_CHARS + 1,
                },
            ),
            ("acme ", P::SurroundingWhitespace),
            (" acme", P::SurroundingWhitespace),
            ("acme\u{3000}", P::SurroundingWhitespace),
            ("ac\u{0}me", P::ControlCharacter { at: 2 }),
            ("acme\n", P::ControlCharacter { at: 4 }),
            ("\u{7f}acme", P::ControlCharacter { at: 0 }),
            ("ac me", P::DisallowedCharacter { found: ' ', at: 2 }),
            (
                "ac\u{200b}me",
                P::DisallowedCharacter {
                    found: '\u{200b}',
                    at: 2,
                },
            ),
            (
                "acme\u{202e}",
                P::DisallowedCharacter {
                    found: '\u{202e}',
                    at: 4,
                },
            ),
            ("a\"b", P::DisallowedCharacter { found: '"', at: 1 }),
            ("team#1", P::DisallowedCharacter { found: '#', at: 4 }),
            ("a,b", P::DisallowedCharacter { found: ',', at: 1 }),
        ];
        for (id, problem) in table {
            assert_eq!(check_id(id), Err(problem), "{id:?}");
        }
    }

    #[test]
    fn reasons_name_the_fix() {
        let reason = check_id("ac#me").expect_err("refused").to_string();
        assert!(reason.contains("U+0023"), "{reason}");
        assert!(reason.contains(ID_PUNCTUATION), "{reason}");
    }
}
