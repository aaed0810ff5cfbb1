//! Resource subscriptions at one downstream connection: which clients listen to which URI (a
//! session that sent `resources/subscribe`, or a 2026-07-28 client's `subscriptions/listen`).
//! The downstream is subscribed once per URI and unsubscribed when no one listens any more;
//! its `notifications/resources/updated` go to exactly those who subscribed.

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::model::{
    ResourceUpdatedNotification, ResourceUpdatedNotificationParam, ServerNotification,
};
use rmcp::service::{Peer, RoleServer, SubscriptionSink};

/// Where one listener hears of updates.
#[derive(Clone)]
pub enum Listener {
    /// A session's own stream.
    Session(Peer<RoleServer>),
    /// A `subscriptions/listen` request's stream.
    Listen(SubscriptionSink),
}

impl Listener {
    /// Tells of one update; `false` when the listener is gone.
    async fn tell(&self, params: ResourceUpdatedNotificationParam) -> bool {
        match self {
            Listener::Session(peer) => peer.notify_resource_updated(params).await.is_ok(),
            Listener::Listen(sink) => sink
                .send(ServerNotification::ResourceUpdatedNotification(
                    ResourceUpdatedNotification::new(params),
                ))
                .await
                .is_ok(),
        }
    }
}

type Listeners = HashMap<String, HashMap<String, Listener>>;

/// URI → (listener id → where it hears).
#[derive(Default)]
pub(super) struct Subscriptions(Mutex<Listeners>);

impl Subscriptions {
    fn map(&self) -> std::sync::MutexGuard<'_, Listeners> {
        // Each update is one insert or remove: a poisoned lock still holds consistent data.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a listener; `true` when it is the URI's first (the downstream must be asked).
    pub(super) fn add(&self, uri: &str, session: &str, listener: Listener) -> bool {
        let mut map = self.map();
        let listeners = map.entry(uri.to_string()).or_default();
        let first = listeners.is_empty();
        listeners.insert(session.to_string(), listener);
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

    /// Tells everyone listening to the URI; listeners that are gone are dropped.
    pub(super) async fn updated(&self, params: ResourceUpdatedNotificationParam) {
        let listeners: Vec<(String, Listener)> = self
            .map()
            .get(&params.uri)
            .map(|l| l.iter().map(|(s, p)| (s.clone(), p.clone())).collect())
            .unwrap_or_default();
        for (session, listener) in listeners {
            if !listener.tell(params.clone()).await {
                self.remove(&params.uri, &session);
            }
        }
    }
}
