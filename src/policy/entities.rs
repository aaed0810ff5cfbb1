//! Entity names and the long-lived relationship store: the domain entities that arguments name
//! (cases, evidence, drafts), with what they are related to.
//!
//! Static entity data (`policies/entities/*.json`) is parsed and validated against the schema once
//! at load, and kept in an index with each entity's ancestors precomputed, so that only the
//! entities a request touches are copied into it (see `request.rs`, which builds the rest of a
//! request's entities with typed constructors, never by parsing JSON per call).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Entities, Entity, EntityId, EntityTypeName, EntityUid, Schema};

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

/// Parsed entity type names, kept: parsing one runs Cedar's parser, which would otherwise
/// happen several times per decision. (A loaded policy set also keeps its own parsed names, so
/// that its decisions do not take this cache's lock; see `request::TypeNames`.)
pub(super) fn type_name(name: &str) -> Result<EntityTypeName, String> {
    static PARSED: std::sync::OnceLock<std::sync::RwLock<HashMap<String, EntityTypeName>>> =
        std::sync::OnceLock::new();
    let cache = PARSED.get_or_init(Default::default);
    if let Some(parsed) = cache.read().ok().and_then(|c| c.get(name).cloned()) {
        return Ok(parsed);
    }
    let parsed = EntityTypeName::from_str(name)
        .map_err(|e| format!("`{name}` is not an entity type name: {e}"))?;
    if let Ok(mut cache) = cache.write() {
        // Type names come from the schema and contracts: a small, bounded set.
        if cache.len() < 1024 {
            cache.insert(name.to_string(), parsed.clone());
        }
    }
    Ok(parsed)
}

/// Builds an entity uid from a type name and an arbitrary id.
pub fn uid(type_name_text: &str, id: &str) -> Result<EntityUid, String> {
    let type_name = type_name(type_name_text)?;
    // EntityId::from_str accepts any string; it cannot fail.
    let id = EntityId::from_str(id).map_err(|e| format!("entity id `{id}`: {e}"))?;
    Ok(EntityUid::from_type_name_and_id(type_name, id))
}

/// The relationship store: entity data (cases, evidence, drafts, assignments, supervision),
/// validated against the schema when loaded or updated, indexed by uid with each entity's
/// ancestors precomputed. Decisions only copy the few entities they touch; nothing is parsed
/// per call.
#[derive(Default)]
pub struct RelationshipStore {
    /// Each entity together with its ancestors, ready to be copied into a request; each with its
    /// uid, so that a request can tell which ones it already holds without rebuilding uids.
    closure: HashMap<EntityUid, Vec<(EntityUid, Entity)>>,
    /// The source data, kept so that updates and schema changes re-validate the whole store.
    source: Vec<serde_json::Value>,
}

impl RelationshipStore {
    /// Validates Cedar entity JSON against the schema and indexes it.
    pub fn from_json(source: Vec<serde_json::Value>, schema: &Schema) -> Result<Self, String> {
        for item in &source {
            unambiguous_entity(item)?;
        }
        let entities =
            Entities::from_json_value(serde_json::Value::Array(source.clone()), Some(schema))
                .map_err(|e| format!("entity data does not match the schema: {e}"))?;
        let mut references: HashMap<EntityUid, Vec<EntityUid>> = HashMap::new();
        for item in &source {
            let Some(owner) = item.get("uid").and_then(json_uid) else {
                continue;
            };
            let mut found = Vec::new();
            if let Some(attrs) = item.get("attrs") {
                collect_references(attrs, &mut found);
            }
            references.insert(owner, found);
        }
        let mut store = Self::index(&entities, &references);
        store.source = source;
        Ok(store)
    }

    /// A new store with `updates` replacing entities of the same uid and adding the others.
    pub fn upsert(&self, updates: Vec<serde_json::Value>, schema: &Schema) -> Result<Self, String> {
        let key = |v: &serde_json::Value| v.get("uid").map(|u| u.to_string());
        let replaced: HashSet<String> = updates.iter().filter_map(key).collect();
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

    /// Indexes validated entities. An entity's closure is what a decision touching it may
    /// dereference: its ancestors (Cedar's transitive closure) and the entities its attributes
    /// name (a case's team), transitively.
    fn index(entities: &Entities, references: &HashMap<EntityUid, Vec<EntityUid>>) -> Self {
        let mut closure = HashMap::new();
        for entity in entities.iter() {
            let mut members: Vec<EntityUid> = vec![entity.uid()];
            let mut next = 0;
            while next < members.len() {
                let current = members[next].clone();
                next += 1;
                let ancestors = entities.ancestors(&current).into_iter().flatten().cloned();
                let referenced = references.get(&current).into_iter().flatten().cloned();
                for candidate in ancestors.chain(referenced) {
                    if entities.get(&candidate).is_some() && !members.contains(&candidate) {
                        members.push(candidate);
                    }
                }
            }
            let with_ancestors = members
                .into_iter()
                .filter_map(|m| entities.get(&m).cloned().map(|e| (m, e)))
                .collect();
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

    /// The entity of the same uid as `entity` (Cedar entity JSON) the store holds now: `None`
    /// when it holds none, else the tenant that one belongs to (see [`entity_tenant`]).
    pub fn existing_tenant(&self, entity: &serde_json::Value) -> Option<Option<String>> {
        let wanted = entity.get("uid").and_then(json_uid)?;
        self.source
            .iter()
            .find(|held| held.get("uid").and_then(json_uid).as_ref() == Some(&wanted))
            .map(entity_tenant)
    }

    /// The entity and its ancestors (and the entities its attributes name), each with its uid,
    /// if the store knows it.
    pub fn with_ancestors(&self, uid: &EntityUid) -> Option<&[(EntityUid, Entity)]> {
        self.closure.get(uid).map(Vec::as_slice)
    }
}

/// Refuses an entity (Cedar entity JSON) in which a reference could be read two ways. Cedar takes
/// `{"__entity": {"type", "id", ..}}` for an entity whatever else the inner object holds, and,
/// where the schema expects an entity, `{"type", "id", ..}` too; capgate reads a reference
/// (for the tenant an admin decision sees, and for what a decision may dereference) only from
/// exactly `type` and `id`. So an `__entity` escape must be alone in its object and hold
/// exactly `type` and `id`, and no other object may hold `type` and `id` beside other members:
/// the tenant the admin decision sees is then always the one policies see.
fn unambiguous_entity(item: &serde_json::Value) -> Result<(), String> {
    let Some(members) = item.as_object() else {
        // Not an entity at all: Cedar refuses it.
        return Ok(());
    };
    for (name, value) in members {
        match (name.as_str(), value) {
            // An entity's attributes and tags are records of named values, never a reference
            // themselves (an attribute may be called `type` or `id`); their values may be.
            ("attrs" | "tags", serde_json::Value::Object(named)) => {
                named.values().try_for_each(unambiguous_references)?
            }
            _ => unambiguous_references(value)?,
        }
    }
    Ok(())
}

/// See [`unambiguous_entity`]: one value, at any depth.
fn unambiguous_references(value: &serde_json::Value) -> Result<(), String> {
    match value {
        serde_json::Value::Object(object) => {
            let exactly_type_and_id = |object: &serde_json::Map<String, serde_json::Value>| {
                object.len() == 2 && object.contains_key("type") && object.contains_key("id")
            };
            if let Some(inner) = object.get("__entity") {
                let alone = object.len() == 1;
                if !alone || !inner.as_object().is_some_and(exactly_type_and_id) {
                    return Err(format!(
                        "an entity reference must be {{\"__entity\": {{\"type\": .., \"id\": ..}}}} and nothing else: {value}"
                    ));
                }
            } else if object.contains_key("type") && object.contains_key("id") && object.len() > 2 {
                return Err(format!(
                    "an object with \"type\" and \"id\" beside other members could be read as an entity reference or not: {value}"
                ));
            }
            object.values().try_for_each(unambiguous_references)
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(unambiguous_references),
        serde_json::Value::Null
        | serde_json::Value::Bool(_)
        | serde_json::Value::Number(_)
        | serde_json::Value::String(_) => Ok(()),
    }
}

/// Reads `{"type": .., "id": ..}` (or `{"__entity": {..}}`) as a type name and an id.
pub fn json_type_and_id(value: &serde_json::Value) -> Option<(&str, &str)> {
    let value = value.get("__entity").unwrap_or(value);
    let object = value.as_object()?;
    if object.len() != 2 {
        return None;
    }
    Some((object.get("type")?.as_str()?, object.get("id")?.as_str()?))
}

/// Reads `{"type": .., "id": ..}` (or `{"__entity": {..}}`) as an entity uid.
fn json_uid(value: &serde_json::Value) -> Option<EntityUid> {
    let (entity_type, id) = json_type_and_id(value)?;
    uid(entity_type, id).ok()
}

/// The tenant an entity (Cedar entity JSON) belongs to: the tenant its `attrs.tenant` names, or
/// its own id when it is a `Tenant`; `None` when it names none (users, roles, agent roles).
pub fn entity_tenant(entity: &serde_json::Value) -> Option<String> {
    let tenant_id = |value: &serde_json::Value| match json_type_and_id(value) {
        Some((types::TENANT, id)) => Some(id.to_string()),
        _ => None,
    };
    let own = entity.get("uid").and_then(tenant_id);
    own.or_else(|| entity.get("attrs")?.get("tenant").and_then(tenant_id))
}

/// Every entity reference inside an attribute value (records and sets included).
fn collect_references(value: &serde_json::Value, found: &mut Vec<EntityUid>) {
    if let Some(reference) = json_uid(value) {
        found.push(reference);
        return;
    }
    match value {
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_references(i, found)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_references(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the relationships fuzz target after 3,240,180 executions: a `Draft` whose
    /// `tenant` was `{"__entity": {"type": "Tenant", "e": "Tenant", "id": "acme"}}`. Cedar
    /// read tenant acme, the admin decision no tenant. Every ambiguous form is refused; the
    /// plain forms, and attributes named `type` and `id`, are not.
    #[test]
    fn references_that_could_be_read_two_ways_are_refused() {
        let entity = |tenant: serde_json::Value| {
            json!({"uid": {"type": "Draft", "id": "draft-901"},
                   "attrs": {"tenant": tenant, "status": "draft"}, "parents": []})
        };
        for ambiguous in [
            entity(json!({"__entity": {"type": "Tenant", "e": "Tenant", "id": "acme"}})),
            entity(json!({"__entity": {"type": "Tenant", "id": "acme"}, "x": 1})),
            entity(json!({"__entity": "Tenant::acme"})),
            entity(json!({"type": "Tenant", "id": "acme", "e": "x"})),
            entity(json!([{"note": {"type": "Tenant", "id": "acme", "e": 1}}])),
            json!({"uid": {"type": "Draft", "id": "d", "e": 1}, "attrs": {}, "parents": []}),
            json!({"uid": {"type": "Draft", "id": "d"}, "attrs": {},
                   "parents": [{"__entity": {"type": "Case", "id": "c", "e": 1}}]}),
        ] {
            assert!(unambiguous_entity(&ambiguous).is_err(), "{ambiguous}");
        }
        for plain in [
            entity(json!({"__entity": {"type": "Tenant", "id": "acme"}})),
            entity(json!({"type": "Tenant", "id": "acme"})),
            json!({"uid": {"type": "Thing", "id": "t"}, "attrs": {"type": "a", "id": "b", "c": 1},
                   "parents": []}),
        ] {
            assert_eq!(unambiguous_entity(&plain), Ok(()), "{plain}");
        }
    }

    #[test]
    fn an_entity_belongs_to_the_tenant_it_names_or_is() {
        let case = json!({"uid": {"type": "Case", "id": "c"},
                          "attrs": {"tenant": {"__entity": {"type": "Tenant", "id": "acme"}}}});
        assert_eq!(entity_tenant(&case).as_deref(), Some("acme"));
        let plain = json!({"uid": {"__entity": {"type": "Team", "id": "t"}},
                           "attrs": {"tenant": {"type": "Tenant", "id": "globex"}}});
        assert_eq!(entity_tenant(&plain).as_deref(), Some("globex"));
        let tenant = json!({"uid": {"type": "Tenant", "id": "acme"}, "attrs": {}});
        assert_eq!(entity_tenant(&tenant).as_deref(), Some("acme"));
        let role = json!({"uid": {"type": "AgentRole", "id": "drafting-agent"}, "attrs": {}});
        assert_eq!(entity_tenant(&role), None);
        let not_a_tenant = json!({"uid": {"type": "Case", "id": "c"},
                                  "attrs": {"tenant": {"type": "Team", "id": "acme"}}});
        assert_eq!(entity_tenant(&not_a_tenant), None);
    }
}
