//! Why a token was refused ([`AuthError`]), and the RFC 6750 error code each refusal carries.

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
    #[error("no key matches the token's key id")]
    UnknownKey,
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
            | AuthError::UnknownKey => Some("invalid_token"),
        }
    }
}
