//! Enforcement controls that make decisions stick across calls, retries and restarts: kill
//! switches and break-glass grants (kept in memory, so checking them costs no I/O on the call
//! path, and re-read from the store after every change, made here or, announced by the
//! store's change feed, through another replica), and the store and clock the admission of
//! every call uses.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::{EnforcementConfig, WithoutRunId};
use crate::identity::CompositeActor;
use crate::store::{
    BreakGlassGrant, BudgetUsage, KillScope, KillSwitch, RunKey, Store, StoreError,
};

use super::capability::Target;
use super::refusal::Refusal;

/// The controls and their durable state.
pub struct Controls {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    switches: ArcSwap<Vec<KillSwitch>>,
    grants: ArcSwap<Vec<BreakGlassGrant>>,
    config: EnforcementConfig,
    /// Fires when what agents may see changes (kill switches, break-glass grants).
    visibility: tokio::sync::watch::Sender<u64>,
    /// Held (shared) by each call from its last kill-switch check until its downstream answers;
    /// taken (exclusive) by a flip before it answers, so that once a flip has answered no call
    /// it covers is being forwarded or will be.
    forwarding: tokio::sync::RwLock<()>,
}

/// Why a break-glass grant could not be opened or revoked.
#[derive(Debug, thiserror::Error)]
pub enum BreakGlassError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("break-glass grant `{0}` does not exist or is already revoked")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a person asks for when opening a break-glass grant.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassRequest {
    /// The user the grant is for (of the caller's tenant).
    pub user: String,
    /// Only calls through this agent role; omitted: any.
    pub agent_role: Option<String>,
    /// An exposed capability name; omitted: every capability.
    pub tool: Option<String>,
    /// Why (logged with every use).
    #[schema(min_length = 10)]
    pub reason: String,
    /// How long the grant lasts, at most `[controls] break_glass_max_seconds`.
    #[schema(minimum = 1)]
    pub expires_in_seconds: i64,
}

/// Whether `switch` stops `target` for `actor`: within the switch's tenant (all of them when it
/// names none), its scope covers the actor or the capability.
pub fn kill_covers(switch: &KillSwitch, actor: &CompositeActor, target: &Target) -> bool {
    if switch.tenant.as_ref().is_some_and(|t| *t != actor.tenant) {
        return false;
    }
    match &switch.scope {
        KillScope::Global => true,
        KillScope::Tenant(tenant) => *tenant == actor.tenant,
        KillScope::Server(server) => *server == target.server,
        KillScope::Tool(name) => *name == target.name,
        KillScope::AgentRole(role) => actor.agent.as_ref().is_some_and(|a| a.role == *role),
        KillScope::User(user) => *user == actor.user.id,
    }
}

/// Whether `grant` lets `actor` use `capability` at `now`.
pub fn grant_covers(
    grant: &BreakGlassGrant,
    actor: &CompositeActor,
    capability: &str,
    now: i64,
) -> bool {
    let role = actor.agent.as_ref().map(|a| a.role.as_str());
    grant.revoked_at.is_none()
        && now < grant.expires_at
        && grant.tenant == actor.tenant
        && grant.user == actor.user.id
        && grant.agent_role.as_deref().is_none_or(|r| Some(r) == role)
        && grant.tool.as_deref().is_none_or(|t| t == capability)
}

impl Controls {
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: EnforcementConfig,
    ) -> Result<Self, StoreError> {
        let switches = store.kill_switches().await?;
        let grants = store.grants().await?;
        Ok(Self {
            store,
            clock,
            switches: ArcSwap::from_pointee(switches),
            grants: ArcSwap::from_pointee(grants),
            config,
            visibility: tokio::sync::watch::channel(0).0,
            forwarding: tokio::sync::RwLock::new(()),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn config(&self) -> &EnforcementConfig {
        &self.config
    }

    /// A receiver that changes whenever a control changes what agents may see.
    pub fn visibility_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.visibility.subscribe()
    }

    pub(super) fn visibility_changed(&self) {
        self.visibility.send_modify(|generation| *generation += 1);
    }

    // ---- kill switches ------------------------------------------------------------------------

    /// The kill switch that stops `target` for `actor`, if any (no I/O).
    pub fn kill_switch_for(&self, actor: &CompositeActor, target: &Target) -> Option<KillSwitch> {
        self.switches
            .load()
            .iter()
            .find(|s| kill_covers(s, actor, target))
            .cloned()
    }

    /// Refuses `target` for `actor` when a kill switch covers it.
    pub fn stop(&self, actor: &CompositeActor, target: &Target) -> Result<(), Refusal> {
        match self.kill_switch_for(actor, target) {
            Some(switch) => Err(Refusal::Killed(switch)),
            None => Ok(()),
        }
    }

    /// The gate a call holds from its last kill-switch check through forwarding.
    pub async fn forwarding(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.forwarding.read().await
    }

    pub fn kill_switches(&self) -> Vec<KillSwitch> {
        self.switches.load().as_ref().clone()
    }

    /// Kill switches currently on.
    pub fn active_kill_switches(&self) -> usize {
        self.switches.load().len()
    }

    /// Sets a switch. When this returns, no call it covers is being forwarded or will be:
    /// calls already past their last check have finished, later ones see the switch.
    pub async fn set_kill_switch(&self, switch: KillSwitch) -> Result<(), StoreError> {
        self.store.set_kill_switch(&switch).await?;
        // Always drained: a change notification may have put the switch in force already,
        // and this answer must still wait for the calls it covers.
        self.load_kill_switches(true).await
    }

    /// Re-reads the switches from the store (a change made elsewhere). When one was added, this
    /// returns once no call it covers is being forwarded by this replica.
    pub async fn reload_kill_switches(&self) -> Result<(), StoreError> {
        self.load_kill_switches(false).await
    }

    /// Puts the stored switches in force; when one was added (or `drain` says so) waits until
    /// no call being forwarded started before it; tells sessions when anything changed.
    async fn load_kill_switches(&self, drain: bool) -> Result<(), StoreError> {
        let stored = self.store.kill_switches().await?;
        let before = self.switches.load_full();
        let changed = *before != stored;
        let added = stored.iter().any(|switch| !before.contains(switch));
        self.switches.store(Arc::new(stored));
        if added || drain {
            drop(self.forwarding.write().await);
        }
        if changed {
            self.visibility_changed();
        }
        Ok(())
    }

    /// Lifts the switch of this scope and tenant (`None`: the one for every tenant).
    pub async fn lift_kill_switch(
        &self,
        scope: &KillScope,
        tenant: Option<&str>,
    ) -> Result<bool, StoreError> {
        let lifted = self.store.lift_kill_switch(scope, tenant).await?;
        self.reload_kill_switches().await?;
        Ok(lifted)
    }

    // ---- break-glass ----------------------------------------------------------------------------

    /// The unexpired, unrevoked grant covering this capability for this actor, if any (no I/O).
    pub fn break_glass_for(
        &self,
        actor: &CompositeActor,
        capability: &str,
    ) -> Option<BreakGlassGrant> {
        let now = self.now();
        self.grants
            .load()
            .iter()
            .find(|g| grant_covers(g, actor, capability, now))
            .cloned()
    }

    /// The grant with this id, in whichever tenant, open or not (no I/O).
    pub fn break_glass_grant(&self, id: &str) -> Option<BreakGlassGrant> {
        self.grants.load().iter().find(|g| g.id == id).cloned()
    }

    /// Break-glass grants in force.
    pub fn active_break_glass_grants(&self) -> usize {
        let now = self.now();
        self.grants
            .load()
            .iter()
            .filter(|g| g.revoked_at.is_none() && now < g.expires_at)
            .count()
    }

    /// Opens a break-glass grant: a person with the break-glass role, in the grant's tenant,
    /// for a reason, for at most the configured time. Loudly logged.
    pub async fn open_break_glass(
        &self,
        opener: &CompositeActor,
        request: BreakGlassRequest,
    ) -> Result<BreakGlassGrant, BreakGlassError> {
        if opener.agent.is_some() || !opener.user.roles.contains(&self.config.break_glass_role) {
            return Err(BreakGlassError::Forbidden(format!(
                "opening break-glass needs a person with role `{}`",
                self.config.break_glass_role
            )));
        }
        if request.reason.trim().len() < 10 {
            return Err(BreakGlassError::Invalid(
                "a break-glass grant needs a reason (at least 10 characters)".into(),
            ));
        }
        if request.expires_in_seconds <= 0
            || request.expires_in_seconds > self.config.break_glass_max_seconds
        {
            return Err(BreakGlassError::Invalid(format!(
                "expires_in_seconds must be between 1 and {}",
                self.config.break_glass_max_seconds
            )));
        }
        let now = self.now();
        let grant = BreakGlassGrant {
            id: format!("bg-{:016x}", rand::random::<u64>()),
            tenant: opener.tenant.clone(),
            user: request.user,
            agent_role: request.agent_role,
            tool: request.tool,
            reason: request.reason,
            opened_by: opener.user.id.clone(),
            opened_at: now,
            expires_at: now + request.expires_in_seconds,
            uses: 0,
            revoked_by: None,
            revoked_at: None,
        };
        self.store.open_grant(&grant).await?;
        self.reload_grants().await?;
        tracing::warn!(target: "capgate::break_glass", grant = %grant.id, opened_by = %grant.opened_by, user = %grant.user, tool = ?grant.tool, reason = %grant.reason, expires_at = grant.expires_at, "BREAK-GLASS grant opened");
        Ok(grant)
    }

    /// Revokes a grant of the revoker's tenant; it covers nothing from the next request on.
    pub async fn revoke_break_glass(
        &self,
        revoker: &CompositeActor,
        id: &str,
    ) -> Result<BreakGlassGrant, BreakGlassError> {
        if revoker.agent.is_some() || !revoker.user.roles.contains(&self.config.break_glass_role) {
            return Err(BreakGlassError::Forbidden(format!(
                "revoking break-glass needs a person with role `{}`",
                self.config.break_glass_role
            )));
        }
        let own = self
            .grants
            .load()
            .iter()
            .find(|g| g.id == id && g.tenant == revoker.tenant)
            .cloned();
        let Some(grant) = own else {
            return Err(BreakGlassError::Unknown(super::echo::echo(id)));
        };
        let now = self.now();
        if !self
            .store
            .revoke_grant(&grant.id, &revoker.user.id, now)
            .await?
        {
            return Err(BreakGlassError::Unknown(grant.id));
        }
        self.reload_grants().await?;
        tracing::warn!(target: "capgate::break_glass", grant = %grant.id, revoked_by = %revoker.user.id, "BREAK-GLASS grant revoked");
        Ok(BreakGlassGrant {
            revoked_by: Some(revoker.user.id.clone()),
            revoked_at: Some(now),
            ..grant
        })
    }

    /// Re-reads the grants from the store; sessions are told when they changed.
    pub async fn reload_grants(&self) -> Result<(), StoreError> {
        let stored = self.store.grants().await?;
        // Uses are not part of what a grant covers: a use changes nothing agents may see.
        let covers = |grants: &[BreakGlassGrant]| -> Vec<BreakGlassGrant> {
            grants
                .iter()
                .map(|g| BreakGlassGrant {
                    uses: 0,
                    ..g.clone()
                })
                .collect()
        };
        let changed = covers(&self.grants.load()) != covers(&stored);
        self.grants.store(Arc::new(stored));
        if changed {
            self.visibility_changed();
        }
        Ok(())
    }

    /// Every grant, open, expired and revoked, with its uses (for review).
    pub async fn break_glass_grants(&self) -> Result<Vec<BreakGlassGrant>, StoreError> {
        self.store.grants().await
    }

    /// Counts a use of a grant.
    pub async fn record_break_glass_use(&self, grant: &BreakGlassGrant) -> Result<(), StoreError> {
        self.store.record_grant_use(&grant.id).await
    }

    // ---- budgets --------------------------------------------------------------------------------

    /// The run a call is counted against, per the configured rule for calls without a run id.
    pub fn run_of(&self, actor: &CompositeActor) -> Result<RunKey, Refusal> {
        match (&actor.run_id, self.config.without_run_id) {
            (Some(run), _) => Ok(RunKey::Run {
                tenant: actor.tenant.clone(),
                run: run.clone(),
            }),
            (None, WithoutRunId::Deny) => Err(Refusal::NoRun),
            (None, WithoutRunId::UserDay) => Ok(RunKey::UserDay {
                tenant: actor.tenant.clone(),
                user: actor.user.id.clone(),
                day: self.now() / 86_400,
            }),
        }
    }

    /// What a run has used.
    pub async fn usage(&self, run: &RunKey, capability: &str) -> Result<BudgetUsage, StoreError> {
        self.store.budget_usage(run, capability).await
    }

    /// Calls left in the run after `usage`.
    pub fn remaining(&self, usage: &BudgetUsage) -> i64 {
        self.config.max_calls_per_run as i64 - usage.calls as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::identity::{AgentIdentity, UserIdentity};

    fn person(id: &str, roles: &[&str]) -> CompositeActor {
        CompositeActor {
            issuer: "test".into(),
            user: UserIdentity {
                id: id.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                scopes: Vec::new(),
            },
            agent: None,
            service: None,
            tenant: "acme".into(),
            run_id: None,
            delegation_chain: Vec::new(),
        }
    }

    async fn controls(clock: Arc<ManualClock>) -> (tempfile::TempDir, Controls) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::SqliteStore::open(dir.path()).expect("store");
        let controls = Controls::new(Arc::new(store), clock, EnforcementConfig::default())
            .await
            .expect("controls");
        (dir, controls)
    }

    #[tokio::test]
    async fn grants_end_at_their_expiry_or_revocation_by_the_injected_clock() {
        let clock = Arc::new(ManualClock::at(1_000_000));
        let (_dir, controls) = controls(clock.clone()).await;
        let opener = person("erin", &["break-glass"]);
        let mut agent = person("alice", &["analyst"]);
        agent.agent = Some(AgentIdentity {
            id: "drafting-agent".into(),
            role: "drafting-agent".into(),
        });
        let request = |tool: &str| BreakGlassRequest {
            user: "alice".into(),
            agent_role: None,
            tool: Some(tool.into()),
            reason: "incident review of the case".into(),
            expires_in_seconds: 60,
        };
        let grant = controls
            .open_break_glass(&opener, request("case__read_case"))
            .await
            .expect("opened");
        assert!(controls
            .break_glass_for(&agent, "case__read_case")
            .is_some());
        assert!(controls.break_glass_for(&agent, "case__other").is_none());
        clock.advance(59);
        assert!(controls
            .break_glass_for(&agent, "case__read_case")
            .is_some());
        clock.advance(1);
        assert!(
            controls
                .break_glass_for(&agent, "case__read_case")
                .is_none(),
            "expired at its expiry"
        );

        let second = controls
            .open_break_glass(&opener, request("case__read_case"))
            .await
            .expect("opened");
        assert_ne!(grant.id, second.id);
        assert!(controls
            .break_glass_for(&agent, "case__read_case")
            .is_some());
        let not_allowed = controls.revoke_break_glass(&agent, &second.id).await;
        assert!(matches!(not_allowed, Err(BreakGlassError::Forbidden(_))));
        controls
            .revoke_break_glass(&opener, &second.id)
            .await
            .expect("revoked");
        assert!(controls
            .break_glass_for(&agent, "case__read_case")
            .is_none());
        let again = controls.revoke_break_glass(&opener, &second.id).await;
        assert!(matches!(again, Err(BreakGlassError::Unknown(_))));
    }

    /// A switch limited to a tenant stops its scope in that tenant only; one without a tenant
    /// stops it in every tenant.
    #[test]
    fn a_tenant_qualified_switch_covers_its_tenant_only() {
        let target = Target {
            server: "case".into(),
            name: "case__read_case".into(),
            effect: crate::registry::Effect::Read,
            cost: 1,
            fail_open: false,
            definition_hash: String::new(),
        };
        let mut bob = person("bob", &["analyst"]);
        bob.agent = Some(AgentIdentity {
            id: "d-1".into(),
            role: "drafting-agent".into(),
        });
        let mut globex_bob = bob.clone();
        globex_bob.tenant = "globex".into();
        let switch = |scope: KillScope, tenant: Option<&str>| KillSwitch {
            scope,
            tenant: tenant.map(str::to_string),
            reason: "r".into(),
            set_by: "admin".into(),
            set_at: 1,
        };
        for scope in [
            KillScope::Global,
            KillScope::Tenant("acme".into()),
            KillScope::Server("case".into()),
            KillScope::Tool("case__read_case".into()),
            KillScope::AgentRole("drafting-agent".into()),
            KillScope::User("bob".into()),
        ] {
            let in_acme = switch(scope.clone(), Some("acme"));
            assert!(kill_covers(&in_acme, &bob, &target), "{scope:?} in acme");
            assert!(
                !kill_covers(&in_acme, &globex_bob, &target),
                "{scope:?} in acme spares globex"
            );
            let everywhere = switch(scope.clone(), None);
            assert!(kill_covers(&everywhere, &bob, &target), "{scope:?}");
            assert_eq!(
                kill_covers(&everywhere, &globex_bob, &target),
                !matches!(scope, KillScope::Tenant(_)),
                "{scope:?} without a tenant covers globex unless it names acme"
            );
        }
        assert!(!kill_covers(
            &switch(KillScope::User("carol".into()), None),
            &bob,
            &target
        ));
    }

    #[tokio::test]
    async fn runs_without_an_id_are_per_user_and_day_by_the_injected_clock() {
        let clock = Arc::new(ManualClock::at(86_400 * 10 + 5));
        let (_dir, controls) = controls(clock.clone()).await;
        let alice = person("alice", &[]);
        let today = controls.run_of(&alice).expect("a run");
        clock.advance(86_400);
        let tomorrow = controls.run_of(&alice).expect("a run");
        assert_ne!(today, tomorrow);
        assert_eq!(
            tomorrow,
            RunKey::UserDay {
                tenant: "acme".into(),
                user: "alice".into(),
                day: 11
            }
        );
    }
}
