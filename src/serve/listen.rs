//! The connections of `serve`: accepting, TLS, HTTP/1.1, and the limits that keep one client
//! (or a thousand idle sockets) from making the service unreachable.
//!
//! In: a bound TCP listener, an optional TLS acceptor, the router and [`Limits`]. Out: every
//! accepted connection served in a task of its own until the shutdown future resolves.
//!
//! Contracts:
//! - At most `max_connections` connections are open, TLS handshakes included. When a new one
//!   arrives at the limit, the connection idle longest (no request in flight: silent, sending
//!   headers slowly, or kept alive between requests) is closed to make room; when every
//!   connection has a request in flight, the new one is closed at once. When the process runs
//!   out of file descriptors first, the longest-idle connection is closed likewise.
//! - A client has `header_timeout` to finish its TLS handshake, and to send a request's
//!   headers once the connection opens or the previous answer went out (hyper's header read
//!   timer, which runs while a kept-alive connection waits).
//! - A connection with no request in flight for `idle_timeout` is closed.
//! - Each request carries its peer's address as a [`Peer`] extension.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// How long connections may wait and how many may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// The address a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Longest wait for connections with a request in flight to finish once shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// One open connection, as the registry sees it.
#[derive(Debug)]
struct Conn {
    /// Requests in flight.
    busy: AtomicUsize,
    /// When it last became idle (opened, or answered its last request).
    idle_since: Mutex<Instant>,
    /// Asks the connection to close (idle: at once; busy: after its answer).
    close: Notify,
}

impl Conn {
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since.lock().map(|s| *s).unwrap_or(now);
        Some(now.saturating_duration_since(since))
    }
}

/// The open connections.
#[derive(Debug, Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

impl Registry {
    /// Registers a new connection, closing the longest-idle one when at `max`; `None` when
    /// every connection is busy.
    fn admit(&self, max: usize) -> Option<(u64, Arc<Conn>)> {
        let mut conns = self.conns.lock().ok()?;
        if conns.len() >= max && !Self::evict(&mut conns) {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            close: Notify::new(),
        });
        conns.insert(id, conn.clone());
        Some((id, conn))
    }

    /// Closes the connection idle longest; whether there was one.
    fn evict_longest_idle(&self) -> bool {
        self.conns.lock().is_ok_and(|mut c| Self::evict(&mut c))
    }

    fn evict(conns: &mut HashMap<u64, Arc<Conn>>) -> bool {
        let now = Instant::now();
        let longest = conns
            .iter()
            .filter_map(|(id, c)| c.idle_for(now).map(|d| (*id, d)))
            .max_by_key(|(_, d)| *d)
            .map(|(id, _)| id);
        match longest.and_then(|id| conns.remove(&id)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
    }

    fn len(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn close_all(&self) {
        if let Ok(conns) = self.conns.lock() {
            for c in conns.values() {
                c.close.notify_one();
            }
        }
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// Marks a request in flight until dropped.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn new(conn: Arc<Conn>) -> InFlight {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut since) = self.0.idle_since.lock() {
            *since = Instant::now();
        }
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` resolves, then lets
/// requests in flight finish (at most [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors (the process limit is below `max_connections`),
                    // or a connection reset before it was accepted. Closing the longest-idle
                    // connection frees a descriptor for the next one.
                    tracing::warn!(error = %e, "accepting a connection");
                    let pause = if registry.evict_longest_idle() { 5 } else { 50 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    continue;
                }
            },
        };
        let Some((id, conn)) = registry.admit(limits.max_connections) else {
            tracing::warn!(
                %peer,
                limit = limits.max_connections,
                "connection refused: every connection has a request in flight"
            );
            drop(tcp);
            continue;
        };
        let registered = Registered {
            registry: registry.clone(),
            id,
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _registered = registered;
            connection(tcp, peer, tls, router, limits, conn).await;
        });
    }
    registry.close_all();
    let deadline = Instant::now() + DRAIN;
    while registry.len() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    conn: Arc<Conn>,
) {
    let Some(acceptor) = tls else {
        return http(tcp, peer, router, limits, conn).await;
    };
    let handshake = tokio::select! {
        r = tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)) => r,
        () = conn.close.notified() => return,
    };
    match handshake {
        Ok(Ok(stream)) => http(stream, peer, router, limits, conn).await,
        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
    }
}

/// HTTP/1.1 on one connection until the client closes it, a timeout, or eviction.
async fn http<I>(io: I, peer: SocketAddr, router: Router, limits: Limits, conn: Arc<Conn>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_service = conn.clone();
    let service = hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
        let mut router = router.clone();
        let in_flight = InFlight::new(in_service.clone());
        request.extensions_mut().insert(Peer(peer));
        async move {
            let response =
                tower_service::Service::call(&mut router, request.map(axum::body::Body::new)).await;
            drop(in_flight);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let served = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    let tick = (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    let mut closing = false;
    loop {
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            () = conn.close.notified(), if !closing => {
                if conn.idle_for(Instant::now()).is_some() {
                    return;
                }
                closing = true;
                served.as_mut().graceful_shutdown();
            }
            _ = ticker.tick() => {
                if conn.idle_for(Instant::now()).is_some_and(|d| d >= limits.idle_timeout) {
                    tracing::debug!(%peer, "closing an idle connection");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_longest_idle_connection_makes_room() {
        let r = Registry::default();
        let (oldest, _a) = r.admit(3).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let (busy, b) = r.admit(3).unwrap();
        let (newer, _c) = r.admit(3).unwrap();
        let _in_flight = InFlight::new(b);
        // At the limit: the oldest idle connection goes, not the busy one.
        let (_, _d) = r.admit(3).unwrap();
        let open = |id: u64| r.conns.lock().unwrap().contains_key(&id);
        assert_eq!(r.len(), 3);
        assert!(!open(oldest) && open(busy) && open(newer));
        // When every connection has a request in flight, the newcomer is refused.
        let r = Registry::default();
        let (_, x) = r.admit(1).unwrap();
        let in_flight = InFlight::new(x);
        assert!(r.admit(1).is_none());
        // Once the answer is out, the connection is idle again and makes room.
        drop(in_flight);
        assert!(r.admit(1).is_some());
    }
}
