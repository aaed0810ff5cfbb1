//! An error's text with its causes, for the errors of drivers and clients whose own `Display`
//! says little ("error sending request", "db error"): what the operator reads in logs, health
//! details and start-up refusals is the whole chain.

use std::error::Error;

/// `error`, then each of its causes, joined by `: `.
pub(crate) fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_said() {
        let error = Outer(std::io::Error::other("the cause"));
        assert_eq!(error_chain(&error), "outer: the cause");
    }
}
