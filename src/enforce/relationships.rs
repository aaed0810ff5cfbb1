//! Relationship updates and policy reloads. Updates made through the admin API are durable:
//! each is validated, appended to the store, then put in force; a restart or a reload replays
//! them, in order, over the entity files. One update at a time, so none is lost. With several
//! replicas, each one applies the updates stored after the last one it applied (its own or
//! another replica's: sequence numbers are committed in order), when told of a change.

use crate::policy::{AdminDecision, AdminResource, PolicyLoadError};
use crate::store::{RelationshipUpdate, StoreError};

use super::Gateway;

/// Why a relationship update was refused.
#[derive(Debug, thiserror::Error)]
pub enum RelationshipError {
    /// The admin PDP refused one of the update's entities; nothing was written.
    #[error("{}", .0.reason)]
    Forbidden(Box<AdminDecision>),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a policy reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Gateway {
    /// Authorizes, validates, stores, then applies a relationship update (with any stored
    /// before it that this replica has not applied yet); the entity count after it.
    /// `authorize` is asked about every entity (what it names and what it replaces, as the
    /// store holds it under the same lock the update is written under); one refusal refuses
    /// the whole update.
    pub async fn update_relationships(
        &self,
        updates: Vec<serde_json::Value>,
        by: &str,
        authorize: impl Fn(AdminResource) -> AdminDecision,
    ) -> Result<usize, RelationshipError> {
        if updates.is_empty() {
            return Err(RelationshipError::Invalid(
                "an update names at least one entity".into(),
            ));
        }
        let mut applied = self.admin_writes.lock().await;
        for entity in &updates {
            let decision = authorize(self.policy.relationship_resource(entity));
            if !decision.is_allow() {
                return Err(RelationshipError::Forbidden(Box::new(decision)));
            }
        }
        self.policy
            .relationships_with(updates.clone())
            .map_err(RelationshipError::Invalid)?;
        self.controls
            .store()
            .append_relationship_update(&updates, by, self.controls.now())
            .await?;
        let stored = self.stored_after(*applied).await?;
        self.apply_updates(&mut applied, &stored)
            .map_err(RelationshipError::Invalid)
    }

    /// Applies the updates stored since the last one this replica applied (another replica
    /// made them); the entity count after them.
    pub async fn catch_up_relationships(&self) -> Result<usize, ReloadError> {
        let mut applied = self.admin_writes.lock().await;
        let stored = self.stored_after(*applied).await?;
        self.apply_updates(&mut applied, &stored)
            .map_err(|message| ReloadError::Store(StoreError(message)))
    }

    /// Replays the stored relationship updates over the entity files (at start, when none
    /// is applied yet: catching up is replaying them all).
    pub async fn restore_relationships(&self) -> Result<usize, ReloadError> {
        self.catch_up_relationships().await
    }

    /// Reloads policies, schema and entity files, and replays the stored updates over them.
    pub async fn reload_policy(&self) -> Result<String, ReloadError> {
        let mut applied = self.admin_writes.lock().await;
        let stored = self.controls.store().relationship_updates().await?;
        let updates: Vec<Vec<serde_json::Value>> =
            stored.iter().map(|u| u.entities.clone()).collect();
        let version = self.policy.reload(&updates)?;
        *applied = stored.last().map_or(*applied, |u| u.seq);
        Ok(version)
    }

    /// The stored updates after sequence number `applied`, in order.
    async fn stored_after(&self, applied: i64) -> Result<Vec<RelationshipUpdate>, StoreError> {
        self.controls
            .store()
            .relationship_updates_after(applied)
            .await
    }

    /// Puts `stored` (in sequence order, all after `applied`) in force over what is in force
    /// now, and advances `applied`; nothing changes when one does not fit.
    fn apply_updates(
        &self,
        applied: &mut i64,
        stored: &[RelationshipUpdate],
    ) -> Result<usize, String> {
        let updates: Vec<Vec<serde_json::Value>> =
            stored.iter().map(|u| u.entities.clone()).collect();
        let count = self
            .policy
            .replay_relationships(&updates)
            .map_err(|message| {
                format!("the stored relationship updates do not fit the entity files: {message}")
            })?;
        if let Some(last) = stored.last() {
            *applied = last.seq;
        }
        Ok(count)
    }
}
