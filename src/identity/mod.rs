//! Authentication only: a bearer JWT becomes a [`CompositeActor`], or a 401.
//!
//! Each issuer is pinned to one algorithm and one key source; the token's audience must be
//! capgate's own resource URL; `exp` and `nbf` are checked with a small leeway. What the actor
//! may *do* is decided elsewhere (`policy`): this module only says *who* is asking.
//! It also renders the RFC 9728 protected-resource metadata that a 401 points to.
//!
//! Where each part lives: `actor` is who is asking; `authenticator` verifies a token against
//! its issuer, or refuses it with an `auth_error`; `keys` loads the issuers' key material at
//! start, `remote_keys` fetches and refreshes the keys an issuer publishes at a URL, and
//! `jwk_set` says which keys of a JWKS an issuer may use; `unique_members` refuses a header or payload that names a member twice; `verified` remembers
//! tokens that verified, so that each is checked in full once; `claims`
//! turns verified claims into the actor, after `ids` has checked every id it names; `facts` is
//! what the policy is told of that actor; `dev_token` mints tokens for dev issuers only.

mod actor;
mod auth_error;
mod authenticator;
mod claims;
mod dev_token;
mod facts;
mod ids;
mod jwk_set;
mod keys;
mod remote_keys;
mod unique_members;
mod verified;

pub use actor::{ActorRef, AgentIdentity, CompositeActor, UserIdentity};
pub use auth_error::{AuthError, TokenPart};
pub use authenticator::{protected_resource_metadata, Authenticator};
pub use dev_token::{mint_dev_token, DevTokenRequest};
pub use ids::{check_id, IdProblem};
pub use keys::{read_or_create_secret, KeyError};
