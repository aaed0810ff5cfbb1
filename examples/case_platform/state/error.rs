//! Why an operation failed ([`DomainError`], a tool error for the caller), and the argument check
//! that operations share.

use serde_json::Value;

/// Why an operation failed; shown to the caller as a tool error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The object does not exist in the caller's tenant.
    #[error("{kind} not found: {id}")]
    NotFound {
        /// Kind of object.
        kind: &'static str,
        /// Identifier asked for.
        id: String,
    },
    /// `send_approved_notice` on a draft that is not approved.
    #[error("draft not approved")]
    DraftNotApproved,
    /// The object is in the wrong state for the operation.
    #[error("{0}")]
    InvalidState(String),
    /// An argument is unacceptable.
    #[error("{0}")]
    InvalidArgument(String),
}

impl DomainError {
    /// Short machine-readable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::DraftNotApproved => "draft_not_approved",
            Self::InvalidState(_) => "invalid_state",
            Self::InvalidArgument(_) => "invalid_argument",
        }
    }

    pub(super) fn not_found(kind: &'static str, id: &str) -> Self {
        Self::NotFound {
            kind,
            id: id.to_owned(),
        }
    }
}

/// Result of a domain operation: the structured JSON result or an error.
pub type DomainResult = Result<Value, DomainError>;

pub(super) fn require_text(field: &str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        Err(DomainError::InvalidArgument(format!(
            "{field} must not be empty"
        )))
    } else {
        Ok(())
    }
}
