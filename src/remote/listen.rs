//! The appliance's connections, kept safe from its network: a connection must send a
//! request's head within `header_read` (which also ends a kept-alive connection idle
//! that long), a request must be answered within `request` (its body included), at
//! most `max_connections` are open, and at most `max_unauthenticated` of them have not
//! yet shown a valid token — past that, the oldest such connection is closed to make
//! room, so a crowd of idle or slow connections never keeps a runner out. Failed
//! authentications are limited per peer address. Each refusal is counted by reason
//! ([`Guard::refusals`], exported in `/metrics`).
//!
//! The TLS handshake (when there is one) runs inside the connection's task, under the
//! same deadline and the same eviction as an unauthenticated connection.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The bounds on connections and requests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Time to send a request's head, and to send the next one on a kept-alive
    /// connection (and, with TLS, to finish the handshake).
    pub header_read: Duration,
    /// Time to send a request's body and get its answer.
    pub request: Duration,
    pub max_connections: usize,
    /// Connections that have not shown a valid token yet.
    pub max_unauthenticated: usize,
    /// Failed authentications a peer address may make per second, and at once.
    pub failed_auth_rate: f64,
    pub failed_auth_burst: f64,
    /// Requests of any kind a peer address may make per second, and at once (a runner
    /// polls a few tasks a second; this bounds a peer that floods).
    pub request_rate: f64,
    pub request_burst: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(60),
            max_connections: 512,
            max_unauthenticated: 64,
            failed_auth_rate: 2.0,
            failed_auth_burst: 20.0,
            request_rate: 200.0,
            request_burst: 400.0,
        }
    }
}

/// Why a connection or request was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TurnedAway {
    /// No valid bearer token.
    Unauthorized,
    /// Too many failed authentications from the peer.
    RateLimited,
    /// Closed to make room: the oldest connection without a valid token.
    Evicted,
    /// `max_connections` open.
    TooManyConnections,
    /// No request head (or TLS handshake) in time.
    HeaderTimeout,
    /// No answer to the request in time.
    RequestTimeout,
    /// The TLS handshake failed.
    Handshake,
}

impl TurnedAway {
    pub const ALL: [TurnedAway; 7] = [
        TurnedAway::Unauthorized,
        TurnedAway::RateLimited,
        TurnedAway::Evicted,
        TurnedAway::TooManyConnections,
        TurnedAway::HeaderTimeout,
        TurnedAway::RequestTimeout,
        TurnedAway::Handshake,
    ];

    /// As `/metrics` labels it.
    pub fn label(self) -> &'static str {
        match self {
            TurnedAway::Unauthorized => "unauthorized",
            TurnedAway::RateLimited => "rate_limited",
            TurnedAway::Evicted => "evicted",
            TurnedAway::TooManyConnections => "too_many_connections",
            TurnedAway::HeaderTimeout => "header_timeout",
            TurnedAway::RequestTimeout => "request_timeout",
            TurnedAway::Handshake => "tls_handshake",
        }
    }
}

/// A connection, as the requests on it know it (a request extension).
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    pub id: u64,
    pub peer: SocketAddr,
}

/// A failed-authentication budget of one peer.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The connections' bookkeeping, shared by the accept loop and the routes.
pub struct Guard {
    pub limits: Limits,
    next: AtomicU64,
    open: AtomicUsize,
    /// Connections without a valid token yet, oldest first, with what closes each.
    unauthenticated: Mutex<VecDeque<(u64, Arc<Notify>)>>,
    failed: Mutex<HashMap<IpAddr, Bucket>>,
    requests: Mutex<HashMap<IpAddr, Bucket>>,
    refused: Mutex<BTreeMap<TurnedAway, u64>>,
}

impl Guard {
    pub fn new(limits: Limits) -> Arc<Guard> {
        Arc::new(Guard {
            limits,
            next: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            unauthenticated: Mutex::default(),
            failed: Mutex::default(),
            requests: Mutex::default(),
            refused: Mutex::default(),
        })
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn refuse(&self, why: TurnedAway) {
        *Guard::lock(&self.refused).entry(why).or_default() += 1;
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> BTreeMap<TurnedAway, u64> {
        Guard::lock(&self.refused).clone()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A new connection: its id and what closes it (when it is evicted). `None`: too
    /// many are open.
    fn admit(&self) -> Option<(u64, Arc<Notify>)> {
        if self.open.fetch_add(1, Ordering::SeqCst) >= self.limits.max_connections {
            self.open.fetch_sub(1, Ordering::SeqCst);
            self.refuse(TurnedAway::TooManyConnections);
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        let mut waiting = Guard::lock(&self.unauthenticated);
        while waiting.len() >= self.limits.max_unauthenticated.max(1) {
            if let Some((_, oldest)) = waiting.pop_front() {
                oldest.notify_one();
                self.refuse(TurnedAway::Evicted);
            }
        }
        waiting.push_back((id, close.clone()));
        Some((id, close))
    }

    fn closed(&self, id: u64) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        Guard::lock(&self.unauthenticated).retain(|(c, _)| *c != id);
    }

    /// The connection showed a valid token: it is no longer one to evict.
    pub fn authenticated(&self, id: u64) {
        Guard::lock(&self.unauthenticated).retain(|(c, _)| *c != id);
    }

    /// A failed authentication from `peer`; `false` when the peer is over its budget
    /// (the answer is then 429).
    pub fn failed_auth(&self, peer: IpAddr) -> bool {
        let (rate, burst) = (self.limits.failed_auth_rate, self.limits.failed_auth_burst);
        let within = take(&self.failed, peer, rate, burst);
        self.refuse(match within {
            true => TurnedAway::Unauthorized,
            false => TurnedAway::RateLimited,
        });
        within
    }

    /// A request from `peer`; `false` when the peer is over its request budget.
    pub fn request(&self, peer: IpAddr) -> bool {
        let (rate, burst) = (self.limits.request_rate, self.limits.request_burst);
        let within = take(&self.requests, peer, rate, burst);
        if !within {
            self.refuse(TurnedAway::RateLimited);
        }
        within
    }
}

/// Takes one from `peer`'s bucket (refilled at `rate` a second up to `burst`); `false`
/// when it is empty.
fn take(buckets: &Mutex<HashMap<IpAddr, Bucket>>, peer: IpAddr, rate: f64, burst: f64) -> bool {
    let now = Instant::now();
    let mut all = Guard::lock(buckets);
    if all.len() > 10_000 {
        // Forget peers whose budget is full again.
        all.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
    }
    let b = all.entry(peer).or_insert(Bucket {
        tokens: burst,
        at: now,
    });
    b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
    b.at = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// How a connection becomes the stream HTTP is spoken on: as it is, or after a TLS
/// handshake.
pub trait Handshake: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

/// Plain HTTP.
#[derive(Clone, Copy, Debug)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;
    async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Serves `app` on `tcp` within the guard's limits until `shutdown` completes; then it
/// takes no connection and returns (connections still open end with the runtime).
pub async fn serve<H: Handshake>(
    tcp: TcpListener,
    handshake: H,
    app: Router,
    guard: Arc<Guard>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = tcp.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some((id, close)) = guard.admit() else {
            drop(stream);
            continue;
        };
        let conn = Connection { id, peer };
        let (guard, handshake) = (guard.clone(), handshake.clone());
        let app = app.clone().layer(axum::Extension(conn));
        tokio::spawn(async move {
            tokio::select! {
                _ = connection(stream, &handshake, app, &guard) => {}
                _ = close.notified() => {}
            }
            guard.closed(id);
        });
    }
}

/// One connection: the handshake, then HTTP/1.1 with the head deadline.
async fn connection<H: Handshake>(stream: TcpStream, handshake: &H, app: Router, guard: &Guard) {
    let _ = stream.set_nodelay(true);
    let limit = guard.limits.header_read;
    let io = match tokio::time::timeout(limit, handshake.handshake(stream)).await {
        Ok(Ok(io)) => io,
        Ok(Err(_)) => return guard.refuse(TurnedAway::Handshake),
        Err(_) => return guard.refuse(TurnedAway::HeaderTimeout),
    };
    let svc = hyper_util::service::TowerToHyperService::new(app);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limit)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .await;
    if let Err(e) = served
        && e.is_timeout()
    {
        guard.refuse(TurnedAway::HeaderTimeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_per_peer() {
        let guard = Guard::new(Limits {
            request_rate: 0.001,
            request_burst: 3.0,
            failed_auth_rate: 0.001,
            failed_auth_burst: 2.0,
            ..Limits::default()
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let asked: Vec<bool> = (0..4).map(|_| guard.request(a)).collect();
        assert_eq!(asked, [true, true, true, false]);
        assert!(guard.request(b), "another peer has its own budget");
        let failed: Vec<bool> = (0..3).map(|_| guard.failed_auth(a)).collect();
        assert_eq!(failed, [true, true, false]);
        let refused = guard.refusals();
        assert_eq!(refused.get(&TurnedAway::RateLimited), Some(&2));
        assert_eq!(refused.get(&TurnedAway::Unauthorized), Some(&2));
    }
}
