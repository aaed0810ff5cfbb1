//! Changes made through other replicas: each [`Change`] the store announces reloads the
//! in-memory view it names (kill switches, break-glass grants, relationships, tool pins), so that a
//! switch flipped or a grant revoked on one replica binds every replica within a second,
//! without reading the store on the call path. A resync (the feed reconnected, or this
//! replica fell behind the feed) reloads every view.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

use crate::store::Change;

use super::Gateway;

impl Gateway {
    /// Follows the store's change feed until `shutdown`.
    pub fn follow_store_changes(
        self: &Arc<Self>,
        mut feed: Receiver<Change>,
        shutdown: CancellationToken,
    ) {
        let gateway = self.clone();
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    received = feed.recv() => match received {
                        Ok(change) => change,
                        // Missed some: what they named is unknown, so reload everything.
                        Err(RecvError::Lagged(_)) => Change::Resync,
                        Err(RecvError::Closed) => return,
                    },
                };
                gateway.apply_change(change).await;
            }
        });
    }

    /// Reloads the view `change` names. A failure (the store is away) is logged: the feed
    /// resyncs when it is back.
    async fn apply_change(&self, change: Change) {
        let switches = matches!(change, Change::KillSwitches | Change::Resync);
        let grants = matches!(change, Change::Grants | Change::Resync);
        let relationships = matches!(change, Change::Relationships | Change::Resync);
        let pins = matches!(change, Change::ToolPins | Change::Resync);
        if pins {
            if let Err(error) = self.reload_tool_pins().await {
                tracing::error!(%error, "tool pins changed elsewhere but could not be reloaded");
            }
        }
        if switches {
            if let Err(error) = self.controls.reload_kill_switches().await {
                tracing::error!(%error, "kill switches changed elsewhere but could not be reloaded");
            }
        }
        if grants {
            if let Err(error) = self.controls.reload_grants().await {
                tracing::error!(%error, "break-glass grants changed elsewhere but could not be reloaded");
            }
        }
        if relationships {
            match self.catch_up_relationships().await {
                Ok(count) => tracing::debug!(entities = count, "relationship updates applied"),
                Err(error) => {
                    tracing::error!(%error, "relationship updates made elsewhere could not be applied")
                }
            }
        }
        tracing::debug!(change = change.as_str(), "store change applied");
    }
}
