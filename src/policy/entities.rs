//! Cedar entities for one decision: the composite actor, the capability, and the domain entities
//! its arguments name, looked up in the long-lived static entity store.
//!
//! Per-request entities are built with typed constructors (no JSON parsing per call). Static
//! entity data (`policies/entities/*.json`) is parsed and validated against the schema once at
//! load, and kept in an index with each entity's ancestors precomputed, so that only the entities
//! a request touches are copied into it.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression, Schema,
};

use super::contract::ActorFacts;

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
    /// Every type above: the schema must declare them all.
    pub const GATEWAY_TYPES: [&str; 10] = [
        USER, ROLE, AGENT, AGENT_ROLE, SERVICE, TENANT, SERVER, TOOL, RESOURCE, PROMPT,
    ];
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
    pub fn build(actor: &ActorFacts, tenant: &str) -> Result<Self, String> {
        let tenant = uid(types::TENANT, tenant)?;
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

/// The relationship store: entity data (cases, evidence, drafts, assignments, supervision),
/// validated against the schema when loaded or updated, indexed by uid with each entity's
/// ancestors precomputed. Decisions only copy the few entities they touch; nothing is parsed
/// per call.
#[derive(Default)]
pub struct RelationshipStore {
    /// Each entity together with its ancestors, ready to be copied into a request.
    closure: HashMap<EntityUid, Vec<Entity>>,
    /// The source data, kept so that updates and schema changes re-validate the whole store.
    source: Vec<serde_json::Value>,
}

impl RelationshipStore {
    /// Validates Cedar entity JSON against the schema and indexes it.
    pub fn from_json(source: Vec<serde_json::Value>, schema: &Schema) -> Result<Self, String> {
        let entities =
            Entities::from_json_value(serde_json::Value::Array(source.clone()), Some(schema))
                .map_err(|e| format!("entity data does not match the schema: {e}"))?;
        let mut store = Self::index(&entities);
        store.source = source;
        Ok(store)
    }

    /// A new store with `updates` replacing entities of the same uid and adding the others.
    pub fn upsert(&self, updates: Vec<serde_json::Value>, schema: &Schema) -> Result<Self, String> {
        let key = |v: &serde_json::Value| v.get("uid").map(|u| u.to_string());
        let replaced: std::collections::HashSet<String> = updates.iter().filter_map(key).collect();
        let mut source: Vec<serde_json::Value> = self
            .source
            .iter()
            .filter(|v| key(v).is_none_or(|k| !replaced.contains(&k)))
            .cloned()
            .collect();
        source.extend(updates);
        Self::from_json(source, schema)
    }

    /// The same data re-validated against another schema (on policy reload).
    pub fn revalidate(&self, schema: &Schema) -> Result<Self, String> {
        Self::from_json(self.source.clone(), schema)
    }

    /// Indexes validated entities; ancestors come from the transitive closure Cedar computed.
    fn index(entities: &Entities) -> Self {
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
        Self {
            closure,
            source: Vec::new(),
        }
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
