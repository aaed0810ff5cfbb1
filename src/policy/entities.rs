//! Cedar entities for one decision: the composite actor, the capability, and the domain entities
//! its arguments name, looked up in the long-lived static entity store.
//!
//! Per-request entities are built with typed constructors (no JSON parsing per call). Static
//! entity data (`policies/entities/*.json`) is parsed and validated against the schema once at
//! load, and kept in an index with each entity's ancestors precomputed, so that only the entities
//! a request touches are copied into it.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};

use crate::identity::CompositeActor;

/// Cedar entity type names the gateway itself constructs; the schema must declare them.
pub mod types {
    pub const USER: &str = "User";
    pub const ROLE: &str = "Role";
    pub const AGENT: &str = "Agent";
    pub const AGENT_ROLE: &str = "AgentRole";
    pub const SERVICE: &str = "Service";
    pub const TENANT: &str = "Tenant";
    pub const SERVER: &str = "Server";
    pub const TOOL: &str = "Tool";
    pub const RESOURCE: &str = "Resource";
    pub const PROMPT: &str = "Prompt";
}

/// Builds an entity uid from a type name known to be valid and an arbitrary id.
pub fn uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let type_name = EntityTypeName::from_str(type_name)
        .map_err(|e| format!("`{type_name}` is not an entity type name: {e}"))?;
    // EntityId::from_str accepts any string; it cannot fail.
    let id = EntityId::from_str(id).map_err(|e| format!("entity id `{id}`: {e}"))?;
    Ok(EntityUid::from_type_name_and_id(type_name, id))
}

fn string_set(items: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(items.iter().cloned().map(RestrictedExpression::new_string))
}

/// The actor's entities: the principal (agent, or the user when no agent acts) and the user,
/// tenant and service that travel in context.
pub struct ActorEntities {
    pub principal: EntityUid,
    pub user: EntityUid,
    pub tenant: EntityUid,
    pub service: Option<EntityUid>,
    pub entities: Vec<Entity>,
}

impl ActorEntities {
    pub fn build(actor: &CompositeActor) -> Result<Self, String> {
        let tenant = uid(types::TENANT, &actor.tenant)?;
        let user = uid(types::USER, &actor.user.id)?;
        let role_parents = actor
            .user
            .roles
            .iter()
            .map(|role| uid(types::ROLE, role))
            .collect::<Result<HashSet<_>, _>>()?;
        let user_entity = Entity::new(
            user.clone(),
            HashMap::from([
                (
                    "tenant".to_string(),
                    RestrictedExpression::new_entity_uid(tenant.clone()),
                ),
                ("scopes".to_string(), string_set(&actor.user.scopes)),
            ]),
            role_parents,
        )
        .map_err(|e| e.to_string())?;
        let mut entities = vec![user_entity];
        let principal = match &actor.agent {
            Some(agent) => {
                let agent_uid = uid(types::AGENT, &agent.id)?;
                entities.push(
                    Entity::new(
                        agent_uid.clone(),
                        HashMap::from([(
                            "role".to_string(),
                            RestrictedExpression::new_string(agent.role.clone()),
                        )]),
                        HashSet::from([uid(types::AGENT_ROLE, &agent.role)?]),
                    )
                    .map_err(|e| e.to_string())?,
                );
                agent_uid
            }
            None => user.clone(),
        };
        let service = actor
            .service
            .as_deref()
            .map(|s| uid(types::SERVICE, s))
            .transpose()?;
        Ok(Self {
            principal,
            user,
            tenant,
            service,
            entities,
        })
    }
}

/// Static entity data (cases, evidence, relationships), validated once, indexed by uid.
#[derive(Default)]
pub struct EntityStore {
    /// Each entity together with its ancestors, ready to be copied into a request.
    closure: HashMap<EntityUid, Vec<Entity>>,
}

impl EntityStore {
    /// Indexes validated entities; ancestors come from the transitive closure Cedar computed.
    pub fn index(entities: &Entities) -> Self {
        let mut closure = HashMap::new();
        for entity in entities.iter() {
            let mut with_ancestors = vec![entity.clone()];
            if let Some(ancestors) = entities.ancestors(&entity.uid()) {
                for ancestor in ancestors {
                    if let Some(found) = entities.get(ancestor) {
                        with_ancestors.push(found.clone());
                    }
                }
            }
            closure.insert(entity.uid(), with_ancestors);
        }
        Self { closure }
    }

    pub fn len(&self) -> usize {
        self.closure.len()
    }

    pub fn is_empty(&self) -> bool {
        self.closure.is_empty()
    }

    /// The entity and its ancestors, if the store knows it.
    pub fn with_ancestors(&self, uid: &EntityUid) -> Option<&[Entity]> {
        self.closure.get(uid).map(Vec::as_slice)
    }
}
