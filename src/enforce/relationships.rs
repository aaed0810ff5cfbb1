//! Relationship updates and policy reloads. Updates made through the admin API are durable:
//! each is validated, appended to the store, then put in force; a restart or a reload replays
//! them, in order, over the entity files. One update at a time, so none is lost.

use crate::policy::PolicyLoadError;
use crate::store::StoreError;

use super::Gateway;

/// Why a relationship update was refused.
#[derive(Debug, thiserror::Error)]
pub enum RelationshipError {
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
    /// Validates, stores, then applies a relationship update; the entity count after it.
    pub async fn update_relationships(
        &self,
        updates: Vec<serde_json::Value>,
        by: &str,
    ) -> Result<usize, RelationshipError> {
        let _one_at_a_time = self.admin_writes.lock().await;
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
