//! In-memory, per-tenant state of the case platform and the domain operations on it.
//!
//! Every operation takes the calling [`Actor`] and works only on that actor's tenant: an
//! identifier that belongs to another tenant is indistinguishable from one that does not
//! exist. Operations return the JSON document that the tool layer hands back as structured
//! content, or a [`DomainError`] that becomes a tool error.
//!
//! Where each part lives: `model` holds the records; `platform` the tenants and the identifier
//! counters; `error` how an operation fails; and one module per group of operations: `cases`
//! (cases, evidence and risk proposals), `notices` (the draft approval workflow), `memory`,
//! `graph` and `grants`.

mod cases;
mod error;
mod grants;
mod graph;
mod memory;
mod model;
mod notices;
mod platform;
#[cfg(test)]
mod tests;

pub use error::{DomainError, DomainResult};
pub use model::{
    Actor, Case, CaseStatus, Draft, DraftStatus, Edge, Entity, Evidence, EvidenceSensitivity,
    MemoryScope, MemorySensitivity, Risk, TenantState,
};
pub use platform::Platform;
