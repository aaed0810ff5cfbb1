//! Who is asking: the [`CompositeActor`] behind one request (user, agent, runtime service,
//! tenant and delegation chain), as authentication leaves it for every later step.

use std::sync::Arc;

use serde::Serialize;

/// The human on whose behalf the request runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserIdentity {
    pub id: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

/// The LLM agent that acts for the user (RFC 8693 `act`, or a configured claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentIdentity {
    pub id: String,
    pub role: String,
}

/// Everyone behind one request: user, agent, runtime service and tenant, with the delegation
/// chain (outermost first: the user, then each actor that was delegated to) kept for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompositeActor {
    pub issuer: String,
    pub user: UserIdentity,
    pub agent: Option<AgentIdentity>,
    pub service: Option<String>,
    pub tenant: String,
    pub run_id: Option<String>,
    pub delegation_chain: Vec<String>,
}

/// Shared handle to an actor, as stored in HTTP request extensions.
pub type ActorRef = Arc<CompositeActor>;
