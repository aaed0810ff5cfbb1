//! The downstream's log messages (`notifications/message`) back to the client whose call
//! caused them, at or above the level that client's session set with `logging/setLevel`.
//!
//! A log message names no request. It is passed on only while the calls in flight on its
//! connection (or answered within the last 100 ms) all belong to one client session:
//! with several sessions' calls in flight it could be any of theirs, and one tenant's server
//! logs must not reach another tenant's client, so it is dropped (and said in the debug log).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::model::RequestId;
#[allow(deprecated)] // logging is how 2025-11-25 servers report.
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam, SetLevelRequestParams};
use rmcp::service::{Peer, RoleClient, RoleServer};

use super::{DownstreamServer, Relay};

/// Severity order of the MCP (RFC 5424) levels.
#[allow(deprecated)]
pub fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

#[derive(Clone)]
struct Route {
    session: String,
    peer: Peer<RoleServer>,
    /// The least severe level the session wants; `None` until it sets one (all are sent).
    threshold: Option<u8>,
    /// When the call ended (`None` while it is in flight).
    ended: Option<Instant>,
}

/// How long a call's route outlives its answer: rmcp hands each notification to a task of its
/// own, so a message the downstream sent before its answer can be handled just after it. While
/// an ended route lasts it still counts: a message then reaches no one if another session's
/// call is in flight (it could be the ended call's).
const AFTER_ANSWER: Duration = Duration::from_millis(100);

/// Calls in flight on one connection, by downstream request id, with their client sessions;
/// and the calls that ended, in the order they did, to drop them when [`AFTER_ANSWER`] has
/// passed (from the front: a call does not look at every route).
#[derive(Default)]
struct Routes {
    by_request: HashMap<RequestId, Route>,
    ended: VecDeque<(Instant, RequestId)>,
}

impl Routes {
    /// Drops the routes of calls that ended [`AFTER_ANSWER`] ago or more.
    fn prune(&mut self) {
        let now = Instant::now();
        while let Some((ended, _)) = self.ended.front() {
            if now.duration_since(*ended) < AFTER_ANSWER {
                break;
            }
            if let Some((ended, request)) = self.ended.pop_front() {
                // A request id used again since keeps its new route.
                if self
                    .by_request
                    .get(&request)
                    .is_some_and(|route| route.ended == Some(ended))
                {
                    self.by_request.remove(&request);
                }
            }
        }
    }
}

/// Calls in flight on one connection (see [`Routes`]).
pub(super) struct LogRoutes {
    routes: Mutex<Routes>,
    /// The most verbose level any session asked for, as last set on the downstream
    /// ([`UNSET`] until one did): the downstream sends at least what every session wants, and
    /// each session gets what it asked for.
    requested: AtomicU8,
}

const UNSET: u8 = u8::MAX;

impl Default for LogRoutes {
    fn default() -> Self {
        Self {
            routes: Mutex::default(),
            requested: AtomicU8::new(UNSET),
        }
    }
}

impl LogRoutes {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // Each update is one insert or remove: a poisoned lock still holds consistent data.
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a call (with a client) until the guard is dropped.
    pub(super) fn open<'a>(
        &'a self,
        request: RequestId,
        relay: Option<&Relay>,
    ) -> Option<LogRouteGuard<'a>> {
        let relay = relay?;
        let route = Route {
            session: relay.session.clone(),
            peer: relay.peer.clone(),
            threshold: relay.log_level.map(severity),
            ended: None,
        };
        let mut routes = self.routes();
        routes.prune();
        routes.by_request.insert(request.clone(), route);
        drop(routes);
        Some(LogRouteGuard {
            routes: self,
            request,
        })
    }

    /// Passes one log message to the one session whose calls are in flight, if there is one.
    #[allow(deprecated)]
    pub(super) async fn forward(&self, server: &str, message: LoggingMessageNotificationParam) {
        let route = {
            let mut routes = self.routes();
            routes.prune();
            let mut calls = routes.by_request.values();
            let first = calls.next().cloned();
            match first {
                Some(first) if calls.all(|r| r.session == first.session) => Some(first),
                Some(_) => {
                    tracing::debug!(server, "a downstream log message was dropped: calls of several sessions are in flight");
                    None
                }
                None => {
                    tracing::debug!(
                        server,
                        "a downstream log message was dropped: no call is in flight"
                    );
                    None
                }
            }
        };
        let Some(route) = route else { return };
        if route
            .threshold
            .is_some_and(|threshold| severity(message.level) < threshold)
        {
            return;
        }
        if let Err(error) = route.peer.notify_logging_message(message).await {
            tracing::debug!(%error, "a log message could not reach its client");
        }
    }
}

/// Marks a call's route ended when the call ends, however it ends (it is removed once
/// [`AFTER_ANSWER`] has passed).
pub(super) struct LogRouteGuard<'a> {
    routes: &'a LogRoutes,
    request: RequestId,
}

impl Drop for LogRouteGuard<'_> {
    fn drop(&mut self) {
        let mut routes = self.routes.routes();
        let now = Instant::now();
        if let Some(route) = routes.by_request.get_mut(&self.request) {
            route.ended = Some(now);
            routes.ended.push_back((now, self.request.clone()));
        }
    }
}

impl DownstreamServer {
    /// Whether the connected server offers logging.
    pub fn offers_logging(&self) -> bool {
        self.peer
            .load()
            .as_ref()
            .and_then(|peer| {
                peer.peer_info()
                    .map(|info| info.capabilities.logging.is_some())
            })
            .unwrap_or(false)
    }

    /// A session asked for `level`: the downstream is set to it when it is more verbose than
    /// what it sends now.
    #[allow(deprecated)]
    pub async fn request_log_level(&self, level: LoggingLevel) {
        if !self.offers_logging() {
            return;
        }
        let wanted = severity(level);
        let previous = self.logs.requested.fetch_min(wanted, Ordering::AcqRel);
        if previous <= wanted {
            return;
        }
        let Some(peer) = self.peer.load_full() else {
            return;
        };
        let set = peer.set_level(SetLevelRequestParams::new(level));
        if let Err(error) = self.with_timeout(set).await {
            tracing::warn!(server = %self.id, %error, "the downstream's log level could not be set");
        }
    }

    /// After a reconnection: the new connection sends what sessions asked the old one for.
    #[allow(deprecated)]
    pub(super) async fn reapply_log_level(&self, peer: &Peer<RoleClient>) {
        let level = match self.logs.requested.load(Ordering::Acquire) {
            0 => LoggingLevel::Debug,
            1 => LoggingLevel::Info,
            2 => LoggingLevel::Notice,
            3 => LoggingLevel::Warning,
            4 => LoggingLevel::Error,
            5 => LoggingLevel::Critical,
            6 => LoggingLevel::Alert,
            7 => LoggingLevel::Emergency,
            _ => return,
        };
        let logs = peer
            .peer_info()
            .is_some_and(|info| info.capabilities.logging.is_some());
        if logs {
            if let Err(error) = self
                .with_timeout(peer.set_level(SetLevelRequestParams::new(level)))
                .await
            {
                tracing::warn!(server = %self.id, %error, "the downstream's log level could not be set again");
            }
        }
    }
}
