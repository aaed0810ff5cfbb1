//! Relationship entities (Cedar entity JSON), as the admin API's `POST /admin/relationships`
//! takes them: the tenant each names for the admin decision, and the relationship store
//! validated against the example schema with them applied (seeds: the repository's entity file
//! and the updates the tests send).
//!
//! Invariants:
//! - no panic;
//! - the tenant the admin decision sees for an entity is the tenant the policies will see:
//!   once the store takes an update, each entity's `tenant` attribute (a `Tenant` entity's
//!   own id) is exactly the tenant `AdminResource::relationship` named for it;
//! - a tenant admin may write an entity only of its own tenant, and replace only one of its
//!   own tenant.

#![no_main]

use std::str::FromStr;

use capgate::policy::contract::UserFacts;
use capgate::policy::{ActorFacts, AdminAction, AdminRequest, AdminResource, AdminRoles};
use cedar_policy::{EntityUid, EvalResult};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn tenant_admin(user: &str, tenant: &str) -> AdminRequest {
    AdminRequest {
        actor: ActorFacts {
            user: UserFacts {
                id: user.into(),
                roles: vec!["capgate-admin".into()],
                scopes: Vec::new(),
            },
            agent: None,
            service: None,
            delegation_chain: vec![user.into()],
        },
        tenant: tenant.into(),
        action: AdminAction::UpdateRelationship,
        resource: AdminResource::Platform,
    }
}

/// The entity's uid as Cedar reads it.
fn uid_of(entity: &Value) -> Option<EntityUid> {
    let (kind, id) = capgate::policy::entities::json_type_and_id(entity.get("uid")?)?;
    let type_name = cedar_policy::EntityTypeName::from_str(kind).ok()?;
    Some(EntityUid::from_type_name_and_id(type_name, cedar_policy::EntityId::new(id)))
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let updates = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    let engine = capgate_fuzz::engine();
    let admin = engine.admin().expect("the example policies have an admin set");
    let roles = AdminRoles::default();
    let mut named = Vec::new();
    for entity in &updates {
        let resource = engine.relationship_resource(entity);
        for tenant in ["acme", "globex"] {
            let mut request = tenant_admin("ada", tenant);
            request.resource = resource.clone();
            if admin.decide(&request, &roles).is_allow() {
                let AdminResource::Relationship { tenant: owner, replaces, existing_tenant, .. } = &resource else {
                    panic!("a relationship update judged as {resource:?}");
                };
                assert_eq!(owner.as_deref(), Some(tenant), "a tenant admin of {tenant} may write {entity}");
                assert!(
                    !replaces || existing_tenant.as_deref() == Some(tenant),
                    "a tenant admin of {tenant} may replace an entity of {existing_tenant:?}"
                );
            }
        }
        named.push((entity.clone(), resource));
    }
    let Ok(store) = engine.relationships_with(updates) else {
        return;
    };
    // Only the last update of a uid is the one in force.
    let mut checked: Vec<EntityUid> = Vec::new();
    for (entity, resource) in named.into_iter().rev() {
        let AdminResource::Relationship { tenant: named_tenant, entity_type, .. } = resource else {
            continue;
        };
        let Some(uid) = uid_of(&entity) else { continue };
        if checked.contains(&uid) {
            continue;
        }
        checked.push(uid.clone());
        let Some(known) = store.with_ancestors(&uid) else { continue };
        let Some((_, stored)) = known.iter().find(|(u, _)| *u == uid) else { continue };
        let seen = if entity_type == "Tenant" {
            Some(uid.id().unescaped().to_string())
        } else {
            match stored.attr("tenant") {
                Some(Ok(EvalResult::EntityUid(t))) if t.type_name().to_string() == "Tenant" => {
                    Some(t.id().unescaped().to_string())
                }
                _ => None,
            }
        };
        assert!(
            seen == named_tenant || seen.is_none() && named_tenant.is_none(),
            "the admin decision saw tenant {named_tenant:?}, the policies see {seen:?}: {entity}"
        );
    }
});
