//! The Cedar request for one decision: the composite actor, the capability and the domain
//! entities its arguments name, as Cedar entities, and the trusted context.
//!
//! What does not depend on the request is prepared once per loaded policy set
//! ([`RequestParts`]): the parsed entity type names, the action uids and, when the schema has
//! action groups, the action entities. Per decision only the request's own entities (user, agent,
//! capability) and its context are built, with typed constructors; the relationship store's
//! entities come with their ancestors precomputed and are copied, never parsed.

use std::collections::{BTreeMap, HashMap};

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
    Schema,
};

use super::contract::{Action, AttributeValue, CapabilityKind, PolicyRequest};
use super::entities::{type_name, types, uid, RelationshipStore};
use super::guards::{CapabilityAttributes, RequestFacts};

/// The entity type names capgate builds, parsed once.
struct TypeNames {
    user: EntityTypeName,
    role: EntityTypeName,
    agent: EntityTypeName,
    agent_role: EntityTypeName,
    service: EntityTypeName,
    tenant: EntityTypeName,
    server: EntityTypeName,
    tool: EntityTypeName,
    resource: EntityTypeName,
    prompt: EntityTypeName,
    /// Every type the schema declares, by name: the types requests name entities by.
    declared: HashMap<String, EntityTypeName>,
}

fn entity_uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

impl TypeNames {
    fn new(schema: &Schema) -> Result<Self, String> {
        Ok(Self {
            user: type_name(types::USER)?,
            role: type_name(types::ROLE)?,
            agent: type_name(types::AGENT)?,
            agent_role: type_name(types::AGENT_ROLE)?,
            service: type_name(types::SERVICE)?,
            tenant: type_name(types::TENANT)?,
            server: type_name(types::SERVER)?,
            tool: type_name(types::TOOL)?,
            resource: type_name(types::RESOURCE)?,
            prompt: type_name(types::PROMPT)?,
            // Parsed from their text by `type_name`, so that a uid built here is exactly the one
            // `uid` builds.
            declared: schema
                .entity_types()
                .filter_map(|t| {
                    let text = t.to_string();
                    type_name(&text).ok().map(|parsed| (text, parsed))
                })
                .collect(),
        })
    }

    fn capability(&self, kind: CapabilityKind) -> &EntityTypeName {
        match kind {
            CapabilityKind::Tool => &self.tool,
            CapabilityKind::Resource => &self.resource,
            CapabilityKind::Prompt => &self.prompt,
        }
    }

    /// The uid of an entity a request names: the same as [`uid`], without its shared cache
    /// for the types the schema declares (the only ones the relationship store can know).
    fn named(&self, type_text: &str, id: &str) -> Result<EntityUid, String> {
        match self.declared.get(type_text) {
            // A name spelled other than canonically (with spaces, say) is parsed by `uid`.
            Some(type_name) => Ok(entity_uid(type_name, id)),
            None => uid(type_text, id),
        }
    }
}

/// What a policy set prepares once for every request it decides.
pub struct RequestParts {
    types: TypeNames,
    actions: [EntityUid; 8],
    /// Action entities matter only for action groups (`action in Action::"group"`); without
    /// groups this is empty, and copying them into every request would only cost time.
    action_entities: Vec<Entity>,
    action_entity_uids: Vec<EntityUid>,
}

fn action_index(action: Action) -> usize {
    match action {
        Action::DiscoverTool => 0,
        Action::CallTool => 1,
        Action::DiscoverResource => 2,
        Action::ReadResource => 3,
        Action::DiscoverPrompt => 4,
        Action::GetPrompt => 5,
        Action::Elicit => 6,
        Action::Sample => 7,
    }
}

impl RequestParts {
    /// `action_uids` in the order of [`Action::ALL`]; `action_entities` as the set keeps them.
    pub fn new(
        schema: &Schema,
        action_uids: [EntityUid; 8],
        action_entities: Vec<Entity>,
    ) -> Result<Self, String> {
        debug_assert!(Action::ALL
            .iter()
            .enumerate()
            .all(|(i, a)| action_index(*a) == i));
        Ok(Self {
            types: TypeNames::new(schema)?,
            actions: action_uids,
            action_entity_uids: action_entities.iter().map(Entity::uid).collect(),
            action_entities,
        })
    }

    pub fn action_uid(&self, action: Action) -> &EntityUid {
        &self.actions[action_index(action)]
    }

    /// Resolves the entities a request names (`context.case` → `Case::"case-101"`) against the
    /// relationship store, in the request's (sorted) key order.
    pub fn bind<'r, 's>(
        &self,
        request: &'r PolicyRequest,
        store: &'s RelationshipStore,
    ) -> Vec<BoundEntity<'r, 's>> {
        request
            .entities
            .iter()
            .map(|(key, entity)| {
                let uid = self.types.named(&entity.entity_type, &entity.id);
                let known = uid.as_ref().ok().and_then(|u| store.with_ancestors(u));
                BoundEntity { key, uid, known }
            })
            .collect()
    }

    /// The Cedar request and its entities. `bound` is [`Self::bind`] of the same request, every
    /// entity known (the completeness check comes first). Errors name what is wrong with the
    /// request; the checks run in a fixed order, so that the same request always gets the same
    /// error.
    pub fn build<'r>(
        &self,
        request: &'r PolicyRequest,
        bound: &[BoundEntity<'r, '_>],
        store: &RelationshipStore,
    ) -> Result<CedarRequest<'r>, String> {
        let types = &self.types;
        let tenant = request
            .tenant
            .as_deref()
            .ok_or_else(|| "the request has no tenant".to_string())?;
        let actor = &request.actor;
        let tenant = entity_uid(&types.tenant, tenant);
        let user = entity_uid(&types.user, &actor.user.id);

        let mut entities: Vec<Entity> = Vec::with_capacity(8 + self.action_entities.len());
        // The uids of `entities`, so that a store entity already built here is not added twice
        // (what capgate builds from the request wins over a store entity of the same uid).
        let mut held: Vec<EntityUid> = Vec::with_capacity(8 + self.action_entities.len());
        entities.push(
            Entity::new_with_tags(
                user.clone(),
                [
                    (
                        "tenant".to_string(),
                        RestrictedExpression::new_entity_uid(tenant.clone()),
                    ),
                    ("scopes".to_string(), string_set(&actor.user.scopes)),
                ],
                actor
                    .user
                    .roles
                    .iter()
                    .map(|role| entity_uid(&types.role, role)),
                [],
            )
            .map_err(|e| e.to_string())?,
        );
        held.push(user.clone());
        let (principal, agent_role) = match &actor.agent {
            Some(agent) => {
                let agent_uid = entity_uid(&types.agent, &agent.id);
                let role = entity_uid(&types.agent_role, &agent.role);
                entities.push(
                    Entity::new_with_tags(
                        agent_uid.clone(),
                        [
                            (
                                "role".to_string(),
                                RestrictedExpression::new_string(agent.role.clone()),
                            ),
                            (
                                "profile".to_string(),
                                RestrictedExpression::new_entity_uid(role.clone()),
                            ),
                        ],
                        [role.clone()],
                        [],
                    )
                    .map_err(|e| e.to_string())?,
                );
                held.push(agent_uid.clone());
                (agent_uid, Some(role))
            }
            None => (user.clone(), None),
        };
        let service = actor
            .service
            .as_deref()
            .map(|s| entity_uid(&types.service, s));

        let (capability, resource, attributes) = self.capability_entity(request)?;
        entities.push(capability);
        held.push(resource.clone());
        entities.extend(self.action_entities.iter().cloned());
        held.extend(self.action_entity_uids.iter().cloned());

        let mut context: Vec<(String, RestrictedExpression)> = Vec::with_capacity(8 + bound.len());
        context.push((
            "user".into(),
            RestrictedExpression::new_entity_uid(user.clone()),
        ));
        context.push((
            "tenant".into(),
            RestrictedExpression::new_entity_uid(tenant),
        ));
        context.push((
            "delegation_depth".into(),
            RestrictedExpression::new_long(actor.delegation_chain.len().saturating_sub(1) as i64),
        ));
        context.push(("arguments".into(), record(&request.arguments)?));
        context.push(("risk".into(), risk_record(request)?));
        context.push(("runtime".into(), runtime_record(request)?));
        if let Some(service) = service {
            context.push((
                "service".into(),
                RestrictedExpression::new_entity_uid(service),
            ));
        }
        if let Some(run_id) = &request.run_id {
            context.push((
                "run_id".into(),
                RestrictedExpression::new_string(run_id.clone()),
            ));
        }
        let mut context_keys: Vec<&'r str> = Vec::with_capacity(8 + bound.len());
        context_keys.extend([
            "user",
            "tenant",
            "delegation_depth",
            "arguments",
            "risk",
            "runtime",
        ]);
        if actor.service.is_some() {
            context_keys.push("service");
        }
        if request.run_id.is_some() {
            context_keys.push("run_id");
        }
        let mut add_known = |known: &[(EntityUid, Entity)]| {
            for (known_uid, entity) in known {
                if !held.contains(known_uid) {
                    entities.push(entity.clone());
                    held.push(known_uid.clone());
                }
            }
        };
        if let Some(role) = &agent_role {
            add_known(store.with_ancestors(role).unwrap_or_default());
        }
        for entity in bound {
            let entity_uid = entity.uid.clone()?;
            add_known(entity.known.unwrap_or_default());
            context.push((
                entity.key.to_string(),
                RestrictedExpression::new_entity_uid(entity_uid),
            ));
            context_keys.push(entity.key);
        }
        let context = Context::from_pairs(context)
            .map_err(|e| format!("the request context is invalid: {e}"))?;
        // Not re-validated against the schema per call: every part is built here with typed
        // constructors, and what a request must state is checked by `missing_context` first.
        let request = Request::new(
            principal.clone(),
            self.action_uid(request.action).clone(),
            resource.clone(),
            context,
            None,
        )
        .map_err(|e| format!("the request is malformed: {e}"))?;
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| format!("the request's entities are inconsistent: {e}"))?;
        Ok(CedarRequest {
            request,
            entities,
            principal,
            user,
            resource,
            attributes,
            context_keys,
        })
    }

    /// The capability as a Cedar entity: contract attributes, parent = its server.
    fn capability_entity<'r>(
        &self,
        request: &'r PolicyRequest,
    ) -> Result<(Entity, EntityUid, CapabilityAttributes<'r>), String> {
        let kind = request.action.kind();
        let attributes = &request.resource.attributes;
        let risk_level = match attributes.get("risk") {
            Some(AttributeValue::String(risk)) => Some(match risk.as_str() {
                "low" => 0,
                "medium" => 1,
                "high" => 2,
                "critical" => 3,
                other => {
                    return Err(format!(
                        "risk `{other}` is not low, medium, high or critical"
                    ))
                }
            }),
            _ => None,
        };
        let uri = kind == CapabilityKind::Resource;
        let server = match attributes.get("server") {
            Some(AttributeValue::String(server)) => server,
            _ => return Err("the resource has no server attribute".into()),
        };
        // The derived attributes replace contract attributes of the same name.
        let mut attrs: Vec<(String, RestrictedExpression)> = attributes
            .iter()
            .filter(|(k, _)| {
                !((risk_level.is_some() && *k == "risk_level") || (uri && *k == "uri"))
            })
            .map(|(k, v)| (k.clone(), attribute_expression(v)))
            .collect();
        if let Some(level) = risk_level {
            attrs.push(("risk_level".into(), RestrictedExpression::new_long(level)));
        }
        if uri {
            attrs.push((
                "uri".into(),
                RestrictedExpression::new_string(request.resource.id.clone()),
            ));
        }
        let resource = entity_uid(self.types.capability(kind), &request.resource.id);
        let entity = Entity::new_with_tags(
            resource.clone(),
            attrs,
            [entity_uid(&self.types.server, server)],
            [],
        )
        .map_err(|e| e.to_string())?;
        let attributes = CapabilityAttributes {
            contract: attributes,
            risk_level,
            uri: uri.then_some(request.resource.id.as_str()),
        };
        Ok((entity, resource, attributes))
    }
}

/// An entity a request names, resolved: its uid (or why it has none) and, if the relationship
/// store knows it, the store's entities a decision touching it may dereference.
pub struct BoundEntity<'r, 's> {
    pub key: &'r str,
    pub uid: Result<EntityUid, String>,
    pub known: Option<&'s [(EntityUid, Entity)]>,
}

/// One decision's input to Cedar.
pub struct CedarRequest<'r> {
    pub request: Request,
    pub entities: Entities,
    pub principal: EntityUid,
    pub user: EntityUid,
    /// The capability's uid, which chooses the policy slice.
    pub resource: EntityUid,
    /// The capability's attributes, as its entity has them.
    pub attributes: CapabilityAttributes<'r>,
    /// The keys of the request's context.
    pub context_keys: Vec<&'r str>,
}

impl CedarRequest<'_> {
    /// What the request states plainly, for leaving out policies that cannot match it.
    pub fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            principal: &self.principal,
            principal_ancestors: self
                .entities
                .ancestors(&self.principal)
                .map(Iterator::collect)
                .unwrap_or_default(),
            user: &self.user,
            user_ancestors: self
                .entities
                .ancestors(&self.user)
                .map(Iterator::collect)
                .unwrap_or_default(),
            context_keys: &self.context_keys,
            resource: self.attributes,
        }
    }
}

pub(super) fn string_set(items: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(items.iter().cloned().map(RestrictedExpression::new_string))
}

pub(super) fn attribute_expression(value: &AttributeValue) -> RestrictedExpression {
    match value {
        AttributeValue::Bool(b) => RestrictedExpression::new_bool(*b),
        AttributeValue::Long(n) => RestrictedExpression::new_long(*n),
        AttributeValue::String(s) => RestrictedExpression::new_string(s.clone()),
        AttributeValue::Set(items) => string_set(items),
    }
}

pub(super) fn new_record(
    fields: impl IntoIterator<Item = (String, RestrictedExpression)>,
) -> Result<RestrictedExpression, String> {
    RestrictedExpression::new_record(fields).map_err(|e| format!("building a context record: {e}"))
}

pub(super) fn record(
    values: &BTreeMap<String, AttributeValue>,
) -> Result<RestrictedExpression, String> {
    new_record(
        values
            .iter()
            .map(|(k, v)| (k.clone(), attribute_expression(v))),
    )
}

pub(super) fn risk_record(request: &PolicyRequest) -> Result<RestrictedExpression, String> {
    let mut fields = Vec::with_capacity(2);
    fields.push(("signals".to_string(), string_set(&request.risk.signals)));
    if let Some(score) = request.risk.score {
        fields.push(("score".into(), RestrictedExpression::new_long(score)));
    }
    new_record(fields)
}

pub(super) fn runtime_record(request: &PolicyRequest) -> Result<RestrictedExpression, String> {
    let runtime = &request.runtime;
    let mut fields = Vec::with_capacity(4);
    if let Some(n) = runtime.budget_remaining {
        fields.push((
            "budget_remaining".to_string(),
            RestrictedExpression::new_long(n),
        ));
    }
    if let Some(n) = runtime.pending_approvals {
        fields.push((
            "pending_approvals".to_string(),
            RestrictedExpression::new_long(n),
        ));
    }
    if let Some(node) = &runtime.workflow_node {
        fields.push((
            "workflow_node".to_string(),
            RestrictedExpression::new_string(node.clone()),
        ));
    }
    if let Some(granted) = runtime.approval_granted {
        fields.push((
            "approval_granted".to_string(),
            RestrictedExpression::new_bool(granted),
        ));
    }
    new_record(fields)
}
