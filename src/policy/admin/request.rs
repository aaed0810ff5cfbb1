//! What the admin PDP is asked: the admin operations ([`AdminAction`]), what they act on with
//! the tenant it belongs to ([`AdminResource`]), who asks ([`AdminRequest`]), and how each
//! becomes a Cedar entity (built with typed constructors, checked against the admin schema).

use std::collections::{HashMap, HashSet};

use cedar_policy::{Entity, EntityUid, RestrictedExpression};
use serde::{Deserialize, Serialize};

use super::super::contract::ActorFacts;
use super::super::entities::{entity_tenant, json_type_and_id, uid, RelationshipStore};

/// The one platform entity: the gateway as a whole.
const PLATFORM_ID: &str = "capgate";

/// The configured role names that make a person a tenant admin or a platform admin
/// (`[admin] role`, `[admin] platform_role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRoles {
    pub tenant_admin: String,
    pub platform_admin: String,
}

impl Default for AdminRoles {
    fn default() -> Self {
        Self {
            tenant_admin: "capgate-admin".into(),
            platform_admin: "capgate-platform-admin".into(),
        }
    }
}

/// The admin operations, one Cedar action each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdminAction {
    ViewPolicy,
    ReloadPolicy,
    FlushAudit,
    ViewHealth,
    ListKillSwitches,
    ViewKillSwitch,
    SetKillSwitch,
    LiftKillSwitch,
    ViewRun,
    ViewBudget,
    UpdateRelationship,
    ListApprovals,
    DecideApproval,
    ListBreakGlass,
    OpenBreakGlass,
    RevokeBreakGlass,
    /// See tool-definition pins and quarantined tools.
    ViewToolPins,
    /// Accept a quarantined tool's new definition.
    AcceptToolDefinition,
    ViewDecisions,
    VerifyDecisionLog,
}

impl AdminAction {
    pub const ALL: [AdminAction; 20] = [
        AdminAction::ViewPolicy,
        AdminAction::ReloadPolicy,
        AdminAction::FlushAudit,
        AdminAction::ViewHealth,
        AdminAction::ListKillSwitches,
        AdminAction::ViewKillSwitch,
        AdminAction::SetKillSwitch,
        AdminAction::LiftKillSwitch,
        AdminAction::ViewRun,
        AdminAction::ViewBudget,
        AdminAction::UpdateRelationship,
        AdminAction::ListApprovals,
        AdminAction::DecideApproval,
        AdminAction::ListBreakGlass,
        AdminAction::OpenBreakGlass,
        AdminAction::RevokeBreakGlass,
        AdminAction::ViewToolPins,
        AdminAction::AcceptToolDefinition,
        AdminAction::ViewDecisions,
        AdminAction::VerifyDecisionLog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminAction::ViewPolicy => "view_policy",
            AdminAction::ReloadPolicy => "reload_policy",
            AdminAction::FlushAudit => "flush_audit",
            AdminAction::ViewHealth => "view_health",
            AdminAction::ListKillSwitches => "list_kill_switches",
            AdminAction::ViewKillSwitch => "view_kill_switch",
            AdminAction::SetKillSwitch => "set_kill_switch",
            AdminAction::LiftKillSwitch => "lift_kill_switch",
            AdminAction::ViewRun => "view_run",
            AdminAction::ViewBudget => "view_budget",
            AdminAction::UpdateRelationship => "update_relationship",
            AdminAction::ListApprovals => "list_approvals",
            AdminAction::DecideApproval => "decide_approval",
            AdminAction::ListBreakGlass => "list_break_glass",
            AdminAction::OpenBreakGlass => "open_break_glass",
            AdminAction::RevokeBreakGlass => "revoke_break_glass",
            AdminAction::ViewToolPins => "view_tool_pins",
            AdminAction::AcceptToolDefinition => "accept_tool_definition",
            AdminAction::ViewDecisions => "view_decisions",
            AdminAction::VerifyDecisionLog => "verify_decision_log",
        }
    }
}

/// What an admin operation acts on, with the tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminResource {
    /// The gateway as a whole: its policy, decision log and health.
    Platform,
    /// One tenant, as a whole: its approvals, break-glass grants and decision records.
    Tenant { id: String },
    /// A kill switch: its scope kind (`global`, `tenant`, `server`, `tool`, `agent_role`,
    /// `user`), its target, and the tenant it is limited to (none: every tenant).
    KillSwitch {
        scope: String,
        #[serde(default)]
        target: String,
        #[serde(default)]
        tenant: Option<String>,
    },
    /// A run of a tenant (its manifest, its budget).
    Run {
        tenant: String,
        #[serde(default)]
        run: String,
    },
    /// A relationship entity as an update would write it: the tenant it names (`attrs.tenant`,
    /// or its own id for a `Tenant`), and whether it replaces an entity of the same uid, with
    /// that entity's tenant.
    Relationship {
        entity_type: String,
        id: String,
        #[serde(default)]
        tenant: Option<String>,
        #[serde(default)]
        replaces: bool,
        #[serde(default)]
        existing_tenant: Option<String>,
    },
    /// An approval request of a tenant.
    Approval { id: String, tenant: String },
    /// A break-glass grant of a tenant.
    BreakGlassGrant { id: String, tenant: String },
}

impl AdminResource {
    /// An entity of a relationship update (Cedar entity JSON) as the admin PDP judges it: the
    /// tenant it names, and the entity of the same uid `store` holds now, if any. An entity
    /// without a readable uid names no type, id or tenant.
    pub fn relationship(entity: &serde_json::Value, store: &RelationshipStore) -> Self {
        let (entity_type, id) = entity
            .get("uid")
            .and_then(json_type_and_id)
            .map(|(t, i)| (t.to_string(), i.to_string()))
            .unwrap_or_default();
        let existing = store.existing_tenant(entity);
        AdminResource::Relationship {
            entity_type,
            id,
            tenant: entity_tenant(entity),
            replaces: existing.is_some(),
            existing_tenant: existing.flatten(),
        }
    }

    /// "kill switch user `bob` in acme", for reasons.
    fn describe(&self) -> String {
        let within = |tenant: &Option<String>| match tenant {
            Some(tenant) => format!(" in {tenant}"),
            None => " in every tenant".to_string(),
        };
        match self {
            AdminResource::Platform => "the platform".into(),
            AdminResource::Tenant { id } => format!("tenant {id}"),
            AdminResource::KillSwitch {
                scope,
                target,
                tenant,
            } => format!("{scope} kill switch `{target}`{}", within(tenant)),
            AdminResource::Run { tenant, run } => format!("run `{run}` of {tenant}"),
            AdminResource::Relationship {
                entity_type,
                id,
                tenant,
                ..
            } => format!("entity {entity_type}::{id:?}{}", within(tenant)),
            AdminResource::Approval { id, tenant } => format!("approval `{id}` of {tenant}"),
            AdminResource::BreakGlassGrant { id, tenant } => {
                format!("break-glass grant `{id}` of {tenant}")
            }
        }
    }

    /// The resource as a Cedar entity.
    pub(super) fn entity(&self) -> Result<Entity, String> {
        let tenant = |id: &str| uid("Tenant", id).map(RestrictedExpression::new_entity_uid);
        let mut attrs: HashMap<String, RestrictedExpression> = HashMap::new();
        let resource_uid = match self {
            AdminResource::Platform => uid("Platform", PLATFORM_ID)?,
            AdminResource::Tenant { id } => uid("Tenant", id)?,
            AdminResource::KillSwitch {
                scope,
                target,
                tenant: qualifier,
            } => {
                attrs.insert(
                    "scope".into(),
                    RestrictedExpression::new_string(scope.clone()),
                );
                attrs.insert(
                    "target".into(),
                    RestrictedExpression::new_string(target.clone()),
                );
                if let Some(qualifier) = qualifier {
                    attrs.insert("tenant".into(), tenant(qualifier)?);
                }
                // An id for reasons only: switches are never looked up by it.
                uid(
                    "KillSwitch",
                    &serde_json::json!([scope, target, qualifier]).to_string(),
                )?
            }
            AdminResource::Run { tenant: owner, run } => {
                attrs.insert("tenant".into(), tenant(owner)?);
                uid("Run", run)?
            }
            AdminResource::Relationship {
                entity_type,
                id,
                tenant: owner,
                replaces,
                existing_tenant,
            } => {
                attrs.insert(
                    "entity_type".into(),
                    RestrictedExpression::new_string(entity_type.clone()),
                );
                attrs.insert("replaces".into(), RestrictedExpression::new_bool(*replaces));
                if let Some(owner) = owner {
                    attrs.insert("tenant".into(), tenant(owner)?);
                }
                if let Some(existing) = existing_tenant {
                    attrs.insert("existing_tenant".into(), tenant(existing)?);
                }
                uid(
                    "Relationship",
                    &serde_json::json!([entity_type, id]).to_string(),
                )?
            }
            AdminResource::Approval { id, tenant: owner } => {
                attrs.insert("tenant".into(), tenant(owner)?);
                uid("Approval", id)?
            }
            AdminResource::BreakGlassGrant { id, tenant: owner } => {
                attrs.insert("tenant".into(), tenant(owner)?);
                uid("BreakGlassGrant", id)?
            }
        };
        Entity::new(resource_uid, attrs, HashSet::new()).map_err(|e| e.to_string())
    }
}

/// One question to the admin PDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest {
    /// Who asks, from the verified token.
    pub actor: ActorFacts,
    /// The asker's tenant, from the verified token.
    pub tenant: String,
    pub action: AdminAction,
    pub resource: AdminResource,
}

impl AdminRequest {
    pub(super) fn describe(&self) -> String {
        format!(
            "{} of {} {} {}",
            self.actor.describe(),
            self.tenant,
            self.action.as_str(),
            self.resource.describe()
        )
    }

    /// The principal (the person, or the agent acting for them) and the entities it needs.
    pub(super) fn principal(&self, roles: &AdminRoles) -> Result<(EntityUid, Entity), String> {
        if let Some(agent) = &self.actor.agent {
            let agent_uid = uid("Agent", &agent.id)?;
            let entity = Entity::new_no_attrs(agent_uid.clone(), HashSet::new());
            return Ok((agent_uid, entity));
        }
        let user = &self.actor.user;
        let mut parents = HashSet::new();
        for role in &user.roles {
            parents.insert(uid("Role", role)?);
        }
        if user.roles.contains(&roles.tenant_admin) {
            parents.insert(uid("AdminRole", "tenant_admin")?);
        }
        if user.roles.contains(&roles.platform_admin) {
            parents.insert(uid("AdminRole", "platform_admin")?);
        }
        let user_uid = uid("User", &user.id)?;
        let entity = Entity::new(
            user_uid.clone(),
            HashMap::from([(
                "tenant".to_string(),
                RestrictedExpression::new_entity_uid(uid("Tenant", &self.tenant)?),
            )]),
            parents,
        )
        .map_err(|e| e.to_string())?;
        Ok((user_uid, entity))
    }
}
