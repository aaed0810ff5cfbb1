//! Why a token was refused ([`AuthError`]), and the RFC 6750 error code each refusal carries.

use std::fmt;

use super::ids::IdProblem;

/// The part of a JWT a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    Header,
    Payload,
}

impl fmt::Display for TokenPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenPart::Header => "header",
            TokenPart::Payload => "payload",
        })
    }
}

/// A name taken from a token, as a refusal may echo it: control characters escaped, and cut
/// after [`ECHO_LIMIT`] characters (the whole token is the caller's; a megabyte-long member
/// name is not worth repeating back).
pub(super) fn echoed(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(ECHO_LIMIT)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(ECHO_LIMIT).is_some() {
        shown.push('…');
    }
    shown
}

const ECHO_LIMIT: usize = 64;

/// Why a token was refused. Every variant becomes HTTP 401 with `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was presented")]
    MissingToken,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the token's issuer `{0}` is not trusted")]
    UnknownIssuer(String),
    #[error("the token is signed with {found}, but its issuer is pinned to {pinned}")]
    AlgorithmNotAllowed { found: String, pinned: String },
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was not issued for this gateway (audience mismatch)")]
    WrongAudience,
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(String),
    #[error("the token's claim `{0}` has the wrong type")]
    InvalidClaim(String),
    /// `member` is the path to the repeated name (`act.sub`), shortened for display.
    #[error("the token's {part} names the member `{member}` more than once; an issuer must send each claim once")]
    DuplicateMember { part: TokenPart, member: String },
    #[error("the token's claim `{claim}` is not a valid id: {problem}")]
    InvalidId { claim: String, problem: IdProblem },
    #[error("no key matches the token's key id")]
    UnknownKey,
    /// The issuer's keys are fetched by URL and none has arrived since start.
    #[error("the signing keys of issuer `{0}` have not been fetched yet (its key server has not answered); retry shortly")]
    KeysUnavailable(String),
}

impl AuthError {
    /// The RFC 6750 error code for `WWW-Authenticate` (absent when no token was sent).
    pub fn oauth_error_code(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken => None,
            AuthError::Malformed(_)
            | AuthError::UnknownIssuer(_)
            | AuthError::AlgorithmNotAllowed { .. }
            | AuthError::BadSignature
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::WrongAudience
            | AuthError::MissingClaim(_)
            | AuthError::InvalidClaim(_)
            | AuthError::DuplicateMember { .. }
            | AuthError::InvalidId { .. }
            | AuthError::UnknownKey
            | AuthError::KeysUnavailable(_) => Some("invalid_token"),
        }
    }
}
