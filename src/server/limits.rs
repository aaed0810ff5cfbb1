//! Per-principal request limits on `/mcp`: a token bucket per principal (governor), answered
//! 429 with `Retry-After` when empty, and a cap on the requests one principal has in progress
//! (held until the response body ends, so a streamed answer counts until it is done). One
//! principal's flood never takes another's share.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::config::LimitsConfig;
use crate::identity::ActorRef;

use super::edges::jsonrpc_error;
use super::sessions::Principal;

/// Principals tracked before idle entries are dropped.
const PRUNE_ABOVE: usize = 10_000;

pub struct RequestLimits {
    rate: DefaultKeyedRateLimiter<Principal>,
    in_progress: Mutex<HashMap<Principal, Arc<Semaphore>>>,
    concurrent: usize,
}

impl RequestLimits {
    pub fn new(limits: &LimitsConfig) -> Arc<Self> {
        let per_second = NonZeroU32::new(limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.request_burst).unwrap_or(per_second);
        Arc::new(Self {
            rate: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            in_progress: Mutex::new(HashMap::new()),
            concurrent: limits.concurrent_requests_per_principal as usize,
        })
    }

    fn slots_of(&self, principal: &Principal) -> Arc<Semaphore> {
        let mut map = self.in_progress.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > PRUNE_ABOVE {
            let full = self.concurrent;
            map.retain(|_, slots| slots.available_permits() < full);
            self.rate.retain_recent();
        }
        map.entry(principal.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrent)))
            .clone()
    }
}

/// Applies the limits to one authenticated request.
pub async fn limit_requests(
    State(limits): State<Arc<RequestLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(actor) = request.extensions().get::<ActorRef>().cloned() else {
        return jsonrpc_error(StatusCode::UNAUTHORIZED, -32001, "unauthenticated");
    };
    let principal = Principal::of(&actor);
    if let Err(not_until) = limits.rate.check_key(&principal) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::info!(target: "capgate::limits", user = %principal.subject, tenant = %principal.tenant, "request refused: rate limit");
        let mut response = jsonrpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            -32000,
            "too many requests from this identity; retry after the time in Retry-After",
        );
        if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
        return response;
    }
    // A standalone event stream (GET) lives as long as its session: sessions are capped apart.
    if request.method() == Method::GET {
        return next.run(request).await;
    }
    let Ok(slot) = limits.slots_of(&principal).try_acquire_owned() else {
        tracing::info!(target: "capgate::limits", user = %principal.subject, tenant = %principal.tenant, "request refused: too many in progress");
        let mut response = jsonrpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            -32000,
            "this identity has as many requests in progress as it may; retry when one has finished",
        );
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return response;
    };
    let response = next.run(request).await;
    // The slot is held until the answer's body has been sent or dropped.
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &slot;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}
