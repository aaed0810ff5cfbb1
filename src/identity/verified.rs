//! Tokens verified once: a bounded cache of the actors of tokens that verified, by the token's
//! SHA-256, so that an agent's every request does not pay for a signature check again.
//!
//! Only successes are kept, so junk cannot fill it. A hit is served only while the token's
//! `exp` and `nbf` still hold (with the issuer's leeway, as on verification), and, for keys an
//! issuer publishes at a URL, only while the key that verified it is still the one its `kid`
//! names (a key the provider withdrew or replaced sends the token back to full verification).
//! The cache belongs to one [`super::Authenticator`]: a new configuration starts empty.

use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

use super::actor::CompositeActor;

/// How many verified tokens are kept.
const CAPACITY: usize = 10_000;

/// The SHA-256 of a token as presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub(super) fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

/// The key of a published set that verified a token: still in force only while `kid` names
/// this very key.
#[derive(Clone)]
pub(super) struct PublishedKey {
    pub(super) kid: String,
    pub(super) key: Arc<DecodingKey>,
}

/// A token that verified, as much as a later request needs to trust it again.
#[derive(Clone)]
pub(super) struct Verified {
    pub(super) actor: CompositeActor,
    /// `exp`, `nbf` (Unix seconds) and the issuer's leeway.
    pub(super) expires: u64,
    pub(super) not_before: Option<u64>,
    pub(super) leeway: u64,
    /// For an issuer whose keys are fetched by URL, the key that verified it.
    pub(super) published_key: Option<PublishedKey>,
}

impl Verified {
    /// Whether the token's time claims still hold at `now`, as verification checks them.
    fn in_time(&self, now: u64) -> bool {
        let expired = self.expires < now.saturating_sub(self.leeway);
        let early = self
            .not_before
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway));
        !expired && !early
    }
}

/// The verified tokens.
pub(super) struct VerifiedTokens {
    tokens: Cache<TokenDigest, Arc<Verified>>,
}

impl VerifiedTokens {
    pub(super) fn new() -> Self {
        Self {
            tokens: Cache::new(CAPACITY),
        }
    }

    /// The actor of a token verified before, if it may still be trusted at `now`;
    /// `key_held` says whether a published key is still the one its `kid` names at the
    /// (token's) issuer.
    pub(super) fn trusted(
        &self,
        digest: &TokenDigest,
        now: u64,
        key_held: impl FnOnce(&str, &PublishedKey) -> bool,
    ) -> Option<CompositeActor> {
        let verified = self.tokens.get(digest)?;
        let key_ok = verified
            .published_key
            .as_ref()
            .is_none_or(|key| key_held(&verified.actor.issuer, key));
        if verified.in_time(now) && key_ok {
            Some(verified.actor.clone())
        } else {
            self.tokens.remove(digest);
            None
        }
    }

    pub(super) fn remember(&self, digest: TokenDigest, verified: Verified) {
        self.tokens.insert(digest, Arc::new(verified));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserIdentity;

    const NOW: u64 = 1_800_000_000;

    fn verified(expires: u64, not_before: Option<u64>, key: Option<PublishedKey>) -> Verified {
        Verified {
            actor: CompositeActor {
                issuer: "https://issuer.example".into(),
                user: UserIdentity {
                    id: "alice".into(),
                    roles: vec!["analyst".into()],
                    scopes: Vec::new(),
                },
                agent: None,
                service: None,
                tenant: "acme".into(),
                run_id: None,
                delegation_chain: vec!["alice".into()],
            },
            expires,
            not_before,
            leeway: 30,
            published_key: key,
        }
    }

    fn published() -> PublishedKey {
        PublishedKey {
            kid: "k1".into(),
            key: Arc::new(DecodingKey::from_secret(b"not used to verify here")),
        }
    }

    /// Each reason a remembered token is no longer trusted, and the cases where it still is;
    /// a refusal also forgets it.
    #[test]
    fn a_remembered_token_is_trusted_only_while_time_and_key_hold() {
        let cases: &[(&str, Verified, u64, bool, bool)] = &[
            ("in time", verified(NOW + 60, None, None), NOW, true, true),
            (
                "expired within the leeway",
                verified(NOW - 20, None, None),
                NOW,
                true,
                true,
            ),
            (
                "expired past the leeway",
                verified(NOW - 31, None, None),
                NOW,
                true,
                false,
            ),
            (
                "nbf within the leeway",
                verified(NOW + 60, Some(NOW + 30), None),
                NOW,
                true,
                true,
            ),
            (
                "nbf past the leeway (clock went back)",
                verified(NOW + 60, Some(NOW + 31), None),
                NOW,
                true,
                false,
            ),
            (
                "published key still held",
                verified(NOW + 60, None, Some(published())),
                NOW,
                true,
                true,
            ),
            (
                "published key withdrawn or replaced",
                verified(NOW + 60, None, Some(published())),
                NOW,
                false,
                false,
            ),
        ];
        for (name, entry, now, key_held, trusted) in cases {
            let tokens = VerifiedTokens::new();
            let digest = TokenDigest::of(name);
            tokens.remember(digest, entry.clone());
            let got = tokens.trusted(&digest, *now, |issuer, key| {
                assert_eq!(issuer, "https://issuer.example");
                assert_eq!(key.kid, "k1");
                *key_held
            });
            assert_eq!(got.is_some(), *trusted, "{name}");
            if *trusted {
                assert_eq!(got.as_ref(), Some(&entry.actor), "{name}");
            } else {
                let again = tokens.trusted(&digest, NOW, |_, _| true);
                assert!(again.is_none(), "{name}: a refused token was not forgotten");
            }
        }
    }

    #[test]
    fn only_the_exact_token_hits() {
        let tokens = VerifiedTokens::new();
        tokens.remember(TokenDigest::of("a.b.c"), verified(NOW + 60, None, None));
        assert!(tokens
            .trusted(&TokenDigest::of("a.b.c"), NOW, |_, _| true)
            .is_some());
        for other in ["a.b.c ", "a.b.C", "a.b", ""] {
            assert!(
                tokens
                    .trusted(&TokenDigest::of(other), NOW, |_, _| true)
                    .is_none(),
                "{other:?}"
            );
        }
    }
}
