//! What the policy is told of an actor: the [`ActorFacts`] of a request, built from the verified
//! [`CompositeActor`]. The conversion lives here, beside the actor, so that the decision contract
//! knows nothing of tokens: `identity` uses `policy`'s types, and never the other way round.

use crate::policy::contract::{ActorFacts, AgentFacts, UserFacts};

use super::actor::CompositeActor;

impl ActorFacts {
    /// The facts of a verified actor, as every request it makes states them.
    pub fn from_actor(actor: &CompositeActor) -> Self {
        Self {
            user: UserFacts {
                id: actor.user.id.clone(),
                roles: actor.user.roles.clone(),
                scopes: actor.user.scopes.clone(),
            },
            agent: actor.agent.as_ref().map(|a| AgentFacts {
                id: a.id.clone(),
                role: a.role.clone(),
            }),
            service: actor.service.clone(),
            delegation_chain: actor.delegation_chain.clone(),
        }
    }
}
