//! How a configuration problem is reported: the file, the key, the problem and the fix.

/// A configuration problem, phrased so that the operator can fix it without reading code.
#[derive(Debug, thiserror::Error)]
#[error("config error in {file}: `{key}`: {problem}. Fix: {fix}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
    pub fix: String,
}
