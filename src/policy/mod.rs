//! The policy decision point (PDP): Cedar policies from `policies/`, deny by default.
//!
//! The decision rule, in one place ([`CompiledPolicySet::decide`]):
//! 1. a request that lacks what the capability is decided on (tenant, a contract attribute, a
//!    bound entity, an entity the relationship store does not know) is `require_more_context`,
//!    naming what is missing; it is never decided without it;
//! 2. a policy that errors during evaluation never silently drops out: an error about missing
//!    data is `require_more_context`, any other error is `deny`;
//! 3. a matching plain `forbid` is `deny`; a matching `@outcome("require_more_context")` forbid
//!    comes next, then `@outcome("require_approval")`;
//! 4. otherwise a matching `permit` is `allow`, with the union of the determining permits'
//!    `@obligation`s; without one, `deny` (deny by default).
//!
//! A refusal says whether a break-glass grant may override it
//! ([`Decision::break_glass_may_override`]): a `deny` or `require_approval` may be, unless a
//! forbid marked `@break_glass("never")` (tenant isolation) matched or could not be evaluated;
//! `require_more_context`, and a request that could not be built, never.
//!
//! The PDP is pure and does no I/O per decision. Versions swap atomically on reload; the
//! version in effect is chosen by the manifest's effective window; a shadow (candidate) set can
//! be evaluated beside the enforced one on every decision.
//!
//! Per decision, the PDP builds only what depends on the request (`request.rs`): whatever can
//! be known from the policy set alone (type names, action uids and entities, policy slices, each
//! policy's rendered id and reason) is prepared when the set is loaded. Cedar is asked once;
//! a second time, over the permits alone, only when a forbid with an `@outcome` matched and
//! its answer depends on whether anything would permit the request.
//!
//! Where each part lives: `compiled` loads and prepares one policy set; `decide` is the rule
//! above; `engine` holds the versions in force, the shadow set and the relationship store;
//! `decision_cache` remembers answers (keyed by all they
//! depend on, `runtime_reads` telling which runtime facts that is); `contract` is what is asked
//! and answered, `obligation` the typed `@obligation`s an answer
//! carries; `load`, `slice`, `guards`, `request` and `entities` are what a compiled set is made
//! of.

pub mod admin;
mod compiled;
pub mod contract;
mod decide;
mod decision_cache;
mod engine;
pub mod entities;
mod guards;
pub mod load;
pub mod obligation;
#[cfg(test)]
mod reference;
mod request;
mod runtime_reads;
pub mod slice;
mod source;

pub use admin::{
    AdminAction, AdminDecision, AdminOutcome, AdminPolicySet, AdminRequest, AdminResource,
    AdminRoles,
};
pub use compiled::CompiledPolicySet;
pub use contract::{
    Action, ActorFacts, AttributeValue, CapabilityKind, Decision, EntityRef, Outcome,
    PolicyRequest, ResourceFacts, ShadowDecision,
};
pub use engine::{now_unix, PolicyEngine};
pub use load::{
    load_policies, EffectiveWindow, LoadedPolicies, Manifest, PolicyLoadError, PolicyMeta,
    PolicyProblem,
};
pub use obligation::{Obligation, ObligationParseError, Obligations, Pattern};
