//! Relationship updates and policy reloads. Updates made through the admin API are durable:
//! each is validated, appended to the store, then put in force; a restart or a reload replays
//! them, in order, over the entity files. One update at a time, so none is lost.

use crate::policy::{AdminDecision, AdminResource, PolicyLoadError};
use crate::store::StoreError;

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
    /// Authorizes, validates, stores, then applies a relationship update; the entity count
    /// after it. `authorize` is asked about every entity (what it names and what it replaces,
    /// as the store holds it under the same lock the update is written under); one refusal
    /// refuses the whole update.
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
        let _one_at_a_time = self.admin_writes.lock().await;
        for entity in &updates {
            let decision = authorize(self.policy.relationship_resource(entity));
            if !decision.is_allow() {
                return Err(RelationshipError::Forbidden(Box::new(decision)));
            }
        }
        let updated = self
            .policy
            .relationships_with(updates.clone())
            .map_err(RelationshipError::Invalid)?;
        self.controls
            .store()
            .append_relationship_update(&updates, by, self.controls.now())
            .await?;
        Ok(self.policy.set_relationships(updated))
    }

    /// Replays the stored relationship updates over the entity files (at start).
    pub async fn restore_relationships(&self) -> Result<usize, ReloadError> {
        let updates = self.stored_updates().await?;
        self.policy
            .replay_relationships(&updates)
            .map_err(|message| {
                ReloadError::Store(StoreError(format!(
                    "the stored relationship updates do not fit the entity files: {message}"
                )))
            })
    }

    /// Reloads policies, schema and entity files, and replays the stored updates over them.
    pub async fn reload_policy(&self) -> Result<String, ReloadError> {
        let _one_at_a_time = self.admin_writes.lock().await;
        let updates = self.stored_updates().await?;
        Ok(self.policy.reload(&updates)?)
    }

    async fn stored_updates(&self) -> Result<Vec<Vec<serde_json::Value>>, StoreError> {
        Ok(self
            .controls
            .store()
            .relationship_updates()
            .await?
            .into_iter()
            .map(|u| u.entities)
            .collect())
    }
}
