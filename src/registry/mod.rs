//! Capability contracts: what each downstream tool, resource and prompt *is*, according to the
//! platform team that registered it in `capabilities/*.toml` (one file per downstream server).
//!
//! The contract, not the downstream's self-description, is the source of truth: its effect, risk
//! and cost feed the policy decision, and its entity bindings say which arguments name which
//! domain entities (`case_id → Case`). A downstream capability without a contract is never
//! exposed. Exposed tool and prompt names are namespaced `<server>__<name>`, so two servers can
//! neither collide nor shadow each other.
//!
//! Where each part lives: `contract` is what a capability is (and how it is named); `file` reads
//! and checks the `capabilities/*.toml` files; `index` holds every contract for the per-call
//! path; `uri_template` matches resource URIs to their contracts.

mod contract;
mod file;
mod index;
mod uri_template;

pub use contract::{
    context_key_for, exposed_name, Effect, EntityBinding, Naming, PromptContract, ResourceContract,
    Risk, ToolContract, NAMESPACE_SEPARATOR,
};
pub use file::RegistryError;
pub use index::Registry;
pub use uri_template::UriTemplate;
