//! Resource subscriptions at one downstream connection: which client sessions listen to which
//! URI. The downstream is subscribed once per URI and unsubscribed when no session listens any
//! more; its `notifications/resources/updated` go to exactly the sessions that subscribed.

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, RoleServer};

/// URI → (session id → the session's peer).
#[derive(Default)]
pub(super) struct Subscriptions(Mutex<HashMap<String, HashMap<String, Peer<RoleServer>>>>);

impl Subscriptions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Peer<RoleServer>>>> {
        // Each update is one insert or remove: a poisoned lock still holds consistent data.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a session; `true` when it is the URI's first (the downstream must be asked).
    pub(super) fn add(&self, uri: &str, session: &str, peer: Peer<RoleServer>) -> bool {
        let mut map = self.map();
        let listeners = map.entry(uri.to_string()).or_default();
        let first = listeners.is_empty();
        listeners.insert(session.to_string(), peer);
        first
    }

    /// Removes a session; `true` when no session listens to the URI any more.
    pub(super) fn remove(&self, uri: &str, session: &str) -> bool {
        let mut map = self.map();
        let Some(listeners) = map.get_mut(uri) else {
            return false;
        };
        let removed = listeners.remove(session).is_some();
        let empty = listeners.is_empty();
        if empty {
            map.remove(uri);
        }
        removed && empty
    }

    /// Tells every session listening to the URI; sessions that are gone are dropped.
    pub(super) async fn updated(&self, params: ResourceUpdatedNotificationParam) {
        let listeners: Vec<(String, Peer<RoleServer>)> = self
            .map()
            .get(&params.uri)
            .map(|l| l.iter().map(|(s, p)| (s.clone(), p.clone())).collect())
            .unwrap_or_default();
        for (session, peer) in listeners {
            if peer.notify_resource_updated(params.clone()).await.is_err() {
                self.remove(&params.uri, &session);
            }
        }
    }
}
