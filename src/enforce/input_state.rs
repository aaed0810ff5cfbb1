//! The request state capgate hands a 2026-07-28 client whose tool call a downstream answered
//! `input_required`: the downstream's own state, bound to the call (its action digest: tenant,
//! actor, tool, definition, arguments, run) and to the inputs asked, with an expiry, sealed with
//! HMAC-SHA256 under a key only this gateway holds. A client can neither read meaning into it
//! nor forge or edit it, nor use it for another call, actor or tenant, nor after it expires.

use std::collections::BTreeMap;
use std::path::Path;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How long a client has to answer and retry.
pub const INPUT_STATE_SECONDS: i64 = 600;

/// The file, in the data directory, holding the sealing key.
pub const INPUT_STATE_KEY_FILE: &str = "request-state.key";

const VERSION: &str = "cg1";

/// What an input asked of the client is: its answer is restricted by that kind's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Elicit,
    Sample,
}

/// What a sealed state holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputState {
    /// The action digest of the call the inputs were asked for.
    pub call: String,
    /// Unix seconds after which the state is refused.
    pub expires: i64,
    /// The inputs asked, by the downstream's keys.
    pub inputs: BTreeMap<String, InputKind>,
    /// The downstream's own `requestState`, given back to it.
    pub downstream: Option<String>,
}

/// Why a state a client sent back is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateProblem {
    #[error("the request state is not one capgate issued, or it was changed")]
    NotIssued,
    #[error("the request state was issued for another call (actor, tool, arguments or run)")]
    OtherCall,
    #[error("the request state has expired; call the tool again from the start")]
    Expired,
    #[error("the input responses do not answer exactly the inputs asked ({0})")]
    OtherInputs(String),
}

/// The gateway's sealing key.
pub struct InputSeal {
    key: hmac::Key,
}

impl InputSeal {
    /// A key of this process only (states die with it).
    pub fn ephemeral() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// The key in `path` (64 hex digits), written there first when missing (owner-only).
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| format!("{} does not hold 64 hex digits", path.display()))?;
                Ok(Self::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::fill(&mut bytes);
                crate::files::create_private_file(path, hex::encode(bytes).as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(Self::from_bytes(&bytes))
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// `cg1.<state>.<tag>`, both base64url.
    pub fn seal(&self, state: &InputState) -> String {
        // A struct of strings, numbers and a map of unit variants always encodes.
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(state).unwrap_or_default());
        let signed = format!("{VERSION}.{body}");
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The state, if this gateway sealed exactly these bytes, for this call, and it has not
    /// expired.
    pub fn open(&self, sealed: &str, call: &str, now: i64) -> Result<InputState, StateProblem> {
        let (signed, tag) = sealed.rsplit_once('.').ok_or(StateProblem::NotIssued)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateProblem::NotIssued)?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).map_err(|_| StateProblem::NotIssued)?;
        let body = signed
            .strip_prefix(VERSION)
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or(StateProblem::NotIssued)?;
        let state: InputState = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(StateProblem::NotIssued)?;
        if state.call != call {
            return Err(StateProblem::OtherCall);
        }
        if now > state.expires {
            return Err(StateProblem::Expired);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> InputState {
        InputState {
            call: "digest-1".into(),
            expires: 1_000,
            inputs: BTreeMap::from([("answer".into(), InputKind::Elicit)]),
            downstream: Some("downstream's own".into()),
        }
    }

    #[test]
    fn a_sealed_state_opens_only_as_issued_for_its_call_before_it_expires() {
        let seal = InputSeal::ephemeral();
        let sealed = seal.seal(&state());
        assert_eq!(seal.open(&sealed, "digest-1", 999), Ok(state()));
        // kind of misuse | what is sent back | call | now | problem
        let mut flipped = sealed.clone().into_bytes();
        let middle = flipped.len() / 2;
        flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        let other_key = InputSeal::ephemeral().seal(&state());
        let table = [
            (
                "a byte changed",
                flipped.as_str(),
                "digest-1",
                999,
                StateProblem::NotIssued,
            ),
            (
                "another gateway's",
                other_key.as_str(),
                "digest-1",
                999,
                StateProblem::NotIssued,
            ),
            (
                "junk",
                "cg1.e30.AAAA",
                "digest-1",
                999,
                StateProblem::NotIssued,
            ),
            ("no tag", "cg1", "digest-1", 999, StateProblem::NotIssued),
            (
                "another call",
                sealed.as_str(),
                "digest-2",
                999,
                StateProblem::OtherCall,
            ),
            (
                "expired",
                sealed.as_str(),
                "digest-1",
                1_001,
                StateProblem::Expired,
            ),
        ];
        for (kind, sent, call, now, problem) in table {
            assert_eq!(seal.open(sent, call, now), Err(problem), "{kind}");
        }
    }

    #[test]
    fn the_key_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(INPUT_STATE_KEY_FILE);
        let sealed = InputSeal::load_or_create(&path)
            .expect("made")
            .seal(&state());
        let again = InputSeal::load_or_create(&path).expect("read");
        assert_eq!(again.open(&sealed, "digest-1", 0), Ok(state()));
        std::fs::write(&path, "not hex").expect("write");
        assert!(InputSeal::load_or_create(&path).is_err());
    }
}
