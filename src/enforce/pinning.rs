//! Tool-definition pinning: a downstream can change a tool's description or schema under the
//! same name at any time (the "rug pull" of MCP security advisories). Each contracted tool's
//! definition — description, input and output schema, annotations — is pinned: in its
//! contract (`pin = "sha256:…"`), or else in the store on first sight. A tool whose listed
//! definition no longer matches its pin is quarantined: hidden from discovery and refused
//! (`refused_by = quarantine`) until an admin accepts the new definition; the change (old and
//! new digest, what changed) is logged once per new definition and counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::audit::Mode;
use crate::downstream::CatalogueTool;
use crate::metrics::ToolEvent;
use crate::registry::ToolContract;
use crate::store::{StoreError, ToolPin};

use super::requests::new_request_id;
use super::Gateway;

/// Who pins a definition seen for the first time.
pub const FIRST_SIGHT: &str = "capgate (first sight)";

/// Where a tool stands against its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinState {
    /// Nothing pinned (yet): first sight pins it.
    Unpinned,
    Matches,
    Quarantined {
        pinned: String,
        seen: String,
    },
}

/// A quarantined tool as admins see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Quarantined {
    pub server: String,
    pub tool: String,
    pub exposed_name: String,
    pub pinned: String,
    pub seen: String,
    /// Where the pin is kept: `contract` or `store`.
    pub pinned_in: &'static str,
    /// What changed, as JSON pointers (`/inputSchema/properties/x: added`).
    pub changes: Vec<String>,
}

/// The pins in force here: the store's (reloaded when any replica changes them); contract
/// pins come with the registry.
#[derive(Default)]
pub(super) struct Pins {
    /// By server, then tool (looked up without building a key).
    stored: ArcSwap<HashMap<String, HashMap<String, ToolPin>>>,
    /// (server, tool, seen digest) whose quarantine was already logged.
    announced: Mutex<HashSet<(String, String, String)>>,
}

impl Pins {
    fn stored(&self, server: &str, tool: &str) -> Option<ToolPin> {
        self.stored.load().get(server)?.get(tool).cloned()
    }
}

impl Gateway {
    /// Where `listed` stands against `contract`'s pin.
    pub(super) fn pin_state(&self, contract: &ToolContract, listed: &CatalogueTool) -> PinState {
        let seen = &listed.pinned_part.digest;
        // One snapshot of the stored pins, read without building a key or copying a pin.
        let stored = self.pins.stored.load();
        let pinned: &str = match &contract.pin {
            Some(pin) => pin,
            None => match stored
                .get(&contract.server)
                .and_then(|tools| tools.get(&contract.name))
            {
                Some(pin) => &pin.digest,
                None => return PinState::Unpinned,
            },
        };
        if pinned == seen {
            PinState::Matches
        } else {
            PinState::Quarantined {
                pinned: pinned.to_string(),
                seen: seen.clone(),
            }
        }
    }

    /// Reloads the store's pins (at start and when another replica changed them).
    pub async fn reload_tool_pins(&self) -> Result<(), StoreError> {
        let pins = self.controls.store().tool_pins().await?;
        let map = pins.into_iter().fold(
            HashMap::<String, HashMap<String, ToolPin>>::new(),
            |mut map, pin| {
                map.entry(pin.server.clone())
                    .or_default()
                    .insert(pin.tool.clone(), pin);
                map
            },
        );
        self.pins.stored.store(Arc::new(map));
        self.controls.visibility_changed();
        Ok(())
    }

    /// Pins what is seen for the first time and logs every new quarantine, whenever a
    /// downstream's catalogue changes, until `shutdown`.
    pub fn watch_tool_pins(self: &Arc<Self>, shutdown: CancellationToken) {
        let gateway = self.clone();
        let mut catalogues: Vec<_> = self.downstreams.iter().map(|s| s.subscribe()).collect();
        tokio::spawn(async move {
            loop {
                gateway.reconcile_pins().await;
                if catalogues.is_empty() {
                    return;
                }
                let changed = futures::future::select_all(
                    catalogues.iter_mut().map(|c| Box::pin(c.changed())),
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    (changed, _, _) = changed => if changed.is_err() { return },
                }
            }
        });
    }

    async fn reconcile_pins(&self) {
        let mut pinned_any = false;
        for server in self.downstreams.iter() {
            let catalogue = server.catalogue();
            for listed in &catalogue.tools {
                let Some(contract) = self.registry.tool_of(&server.id, &listed.tool.name) else {
                    continue;
                };
                match self.pin_state(contract, listed) {
                    PinState::Matches => {}
                    PinState::Unpinned => {
                        let pin = ToolPin {
                            server: server.id.clone(),
                            tool: listed.tool.name.to_string(),
                            digest: listed.pinned_part.digest.clone(),
                            definition: listed.pinned_part.canonical.clone(),
                            pinned_by: FIRST_SIGHT.into(),
                            pinned_at: self.controls.now(),
                        };
                        match self.controls.store().pin_tool(&pin, false).await {
                            Ok(_) => pinned_any = true,
                            Err(error) => {
                                tracing::error!(server = %server.id, tool = %listed.tool.name, %error, "a tool definition seen for the first time could not be pinned");
                            }
                        }
                    }
                    PinState::Quarantined { pinned, seen } => {
                        self.announce_quarantine(contract, listed, &pinned, &seen);
                    }
                }
            }
        }
        if pinned_any {
            if let Err(error) = self.reload_tool_pins().await {
                tracing::error!(%error, "tool pins could not be reloaded");
            }
        }
    }

    /// Logs and counts a quarantine, once per new definition.
    fn announce_quarantine(
        &self,
        contract: &ToolContract,
        listed: &CatalogueTool,
        pinned: &str,
        seen: &str,
    ) {
        let key = (
            contract.server.clone(),
            contract.name.clone(),
            seen.to_string(),
        );
        let first = self
            .pins
            .announced
            .lock()
            .map(|mut announced| announced.insert(key))
            .unwrap_or(true);
        if !first {
            return;
        }
        let changes = self.changes_of(contract, listed);
        let reason = format!(
            "the definition of {} changed: pinned {pinned}, listed {seen}; quarantined until an admin accepts it; changes: {}",
            contract.exposed_name,
            changes.join(", ")
        );
        tracing::warn!(target: "capgate::audit", tool = %contract.exposed_name, pinned, seen, "tool quarantined: its definition changed");
        let mut record = crate::audit::DecisionRecord::system(
            "quarantine",
            &contract.exposed_name,
            new_request_id(),
        );
        record.decision = "deny".into();
        record.reason = reason;
        record.refused_by = Some("quarantine".into());
        record.mode = Mode::Enforce;
        self.log.append(record);
        self.metrics
            .count(ToolEvent::Quarantine, &contract.exposed_name);
        self.controls.visibility_changed();
    }

    /// What changed between the pinned and the listed definition (empty when the pin is a
    /// contract's: only its digest is known).
    fn changes_of(&self, contract: &ToolContract, listed: &CatalogueTool) -> Vec<String> {
        let Some(stored) = self.pins.stored(&contract.server, &contract.name) else {
            return vec!["(pinned in the contract: only its digest is known)".into()];
        };
        let old: Value = serde_json::from_str(&stored.definition).unwrap_or(Value::Null);
        let new: Value = serde_json::from_str(&listed.pinned_part.canonical).unwrap_or(Value::Null);
        let mut changes = Vec::new();
        diff(&old, &new, String::new(), &mut changes);
        changes
    }

    /// Every contracted tool that is quarantined now.
    pub fn quarantined_tools(&self) -> Vec<Quarantined> {
        let mut out = Vec::new();
        for server in self.downstreams.iter() {
            for listed in &server.catalogue().tools {
                let Some(contract) = self.registry.tool_of(&server.id, &listed.tool.name) else {
                    continue;
                };
                if let PinState::Quarantined { pinned, seen } = self.pin_state(contract, listed) {
                    out.push(Quarantined {
                        server: server.id.clone(),
                        tool: contract.name.clone(),
                        exposed_name: contract.exposed_name.clone(),
                        pinned,
                        seen,
                        pinned_in: if contract.pin.is_some() {
                            "contract"
                        } else {
                            "store"
                        },
                        changes: self.changes_of(contract, listed),
                    });
                }
            }
        }
        out
    }

    /// An admin accepts the definition a downstream lists now for `tool` of `server`, named by
    /// its digest (so that what is accepted is what was reviewed).
    pub async fn accept_tool_definition(
        &self,
        server: &str,
        tool: &str,
        digest: &str,
        by: &str,
    ) -> Result<ToolPin, AcceptError> {
        let contract = self
            .registry
            .tool_of(server, tool)
            .ok_or(AcceptError::NotContracted)?;
        if contract.pin.is_some() {
            return Err(AcceptError::PinnedInContract);
        }
        let listed = self
            .downstreams
            .get(server)
            .ok()
            .and_then(|s| s.catalogue().tool(tool).cloned())
            .ok_or(AcceptError::NotListed)?;
        if listed.pinned_part.digest != digest {
            return Err(AcceptError::DigestDiffers {
                listed: listed.pinned_part.digest.clone(),
            });
        }
        let pin = ToolPin {
            server: server.to_string(),
            tool: tool.to_string(),
            digest: digest.to_string(),
            definition: listed.pinned_part.canonical.clone(),
            pinned_by: by.to_string(),
            pinned_at: self.controls.now(),
        };
        self.controls
            .store()
            .pin_tool(&pin, true)
            .await
            .map_err(AcceptError::Store)?;
        self.reload_tool_pins().await.map_err(AcceptError::Store)?;
        tracing::warn!(target: "capgate::audit", tool = %contract.exposed_name, digest, by, "tool definition accepted");
        let mut record = crate::audit::DecisionRecord::system(
            "accept_tool_definition",
            &contract.exposed_name,
            new_request_id(),
        );
        record.decision = "allow".into();
        record.reason = format!(
            "{by} accepted the definition {digest} of {}",
            contract.exposed_name
        );
        self.log.append(record);
        Ok(pin)
    }
}

/// Why a definition could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("no contract in capabilities/ covers this tool")]
    NotContracted,
    #[error("this tool is pinned in its contract file: update `pin` there")]
    PinnedInContract,
    #[error("the downstream does not list this tool now")]
    NotListed,
    #[error("the downstream lists this tool with definition {listed}, not the one named")]
    DigestDiffers { listed: String },
    #[error("{0}")]
    Store(StoreError),
}

/// The JSON pointers where `new` differs from `old`.
fn diff(old: &Value, new: &Value, at: String, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
            for key in keys.keys() {
                let path = format!("{at}/{key}");
                match (a.get(*key), b.get(*key)) {
                    (Some(x), Some(y)) => diff(x, y, path, out),
                    (None, Some(_)) => out.push(format!("{path}: added")),
                    (Some(_), None) => out.push(format!("{path}: removed")),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a == b => {}
        _ => out.push(format!(
            "{}: changed",
            if at.is_empty() { "/" } else { &at }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_what_changed() {
        let old = json!({"description": "a", "inputSchema": {"properties": {"x": 1}}});
        let new = json!({"description": "b", "inputSchema": {"properties": {"y": 1}}});
        let mut out = Vec::new();
        diff(&old, &new, String::new(), &mut out);
        assert_eq!(
            out,
            [
                "/description: changed",
                "/inputSchema/properties/x: removed",
                "/inputSchema/properties/y: added"
            ]
        );
    }
}
