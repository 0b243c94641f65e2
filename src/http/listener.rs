//! Accepting TCP connections and serving HTTP/1.1 (and WebSocket upgrades) on them, in the
//! clear or over TLS (HTTPS, `crate::tls`): one router, the same caps for both.
//!
//! Invariants:
//! - At most `max_connections` connections are open at once, a number kept below the
//!   process's descriptor limit with [`RESERVED_FDS`] left over for the journal, the store,
//!   uploads and outgoing connections: a connection flood cannot leave the journal unable to
//!   open its next segment. A connection past a cap is closed at once and counted.
//! - At most `max_connections_per_address` come from one address (an IPv6 client by its
//!   /64). 127.0.0.1 and ::1 are exempt: they are the box itself (a local reverse proxy or
//!   tunnel, whose clients all look alike, or the load tool), and the total cap still holds.
//! - A connection's slot is held by its socket, not by the HTTP exchange: an upgraded
//!   WebSocket keeps counting until its socket is closed.
//! - A request's headers must arrive within `header_read_timeout`, and an idle keep-alive
//!   connection is closed after the same time (hyper's header-read timer runs while idle); a
//!   TLS handshake must finish within it too.
//! - The HTTP and HTTPS listeners share one [`Gate`]: the caps count their connections
//!   together. A request that came over TLS carries the [`Https`] extension.
//! - An `accept` error (out of descriptors, out of memory) never stops the server: it waits
//!   a moment and accepts again.
//! - On shutdown it stops accepting, asks every connection to finish its request and close,
//!   and returns once they have (the caller bounds the wait).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// Descriptors kept out of the connection cap for everything else the daemon opens.
pub const RESERVED_FDS: u64 = 256;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// 0: no per-address cap.
    pub max_connections_per_address: usize,
    pub header_read_timeout: Duration,
}

impl Limits {
    /// `configured` lowered to what the descriptor limit `fd_limit` allows.
    pub fn effective_max_connections(configured: usize, fd_limit: u64) -> usize {
        let available = fd_limit.saturating_sub(RESERVED_FDS).max(16);
        configured.min(usize::try_from(available).unwrap_or(usize::MAX))
    }
}

/// Marks a request that came over TLS (the HTTPS listener).
#[derive(Debug, Clone, Copy)]
pub struct Https;

/// The connection caps and counters every listener of the daemon shares.
#[derive(Clone)]
pub struct Gate(Arc<Admission>);

impl Gate {
    pub fn new(limits: Limits, stats: Arc<ListenerStats>) -> Gate {
        Gate(Arc::new(Admission {
            counts: Mutex::new(Counts::default()),
            limits,
            stats,
        }))
    }
}

/// Why a connection was turned away.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerAddress,
}

/// Open connections, in total and per address; the decision is here, the sockets elsewhere.
#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<u128, usize>,
}

impl Counts {
    fn admit(&mut self, ip: IpAddr, limits: &Limits) -> Result<Option<u128>, Refusal> {
        if self.total >= limits.max_connections {
            return Err(Refusal::Total);
        }
        let this_box =
            ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST);
        let key = (!this_box && limits.max_connections_per_address > 0).then(|| address_key(ip));
        if let Some(key) = key {
            let n = self.by_address.entry(key).or_default();
            if *n >= limits.max_connections_per_address {
                return Err(Refusal::PerAddress);
            }
            *n += 1;
        }
        self.total += 1;
        Ok(key)
    }

    fn release(&mut self, key: Option<u128>) {
        self.total -= 1;
        if let Some(key) = key {
            if let Some(n) = self.by_address.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.by_address.remove(&key);
                }
            }
        }
    }
}

/// An address as the caps see it: IPv4 whole, IPv6 by its /64.
fn address_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64) | (1 << 127),
        },
    }
}

/// What `/metrics` shows of the listener.
#[derive(Default)]
pub struct ListenerStats {
    pub open: AtomicU64,
    pub refused: AtomicU64,
    pub accept_errors: AtomicU64,
}

struct Admission {
    counts: Mutex<Counts>,
    limits: Limits,
    stats: Arc<ListenerStats>,
}

/// A socket holding its place under the caps until it is dropped.
struct Counted {
    stream: TcpStream,
    key: Option<u128>,
    admission: Arc<Admission>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.admission
            .counts
            .lock()
            .expect("invariant: never poisoned")
            .release(self.key);
        self.admission.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits for the open
/// connections to finish their requests. With `tls`, each connection is a TLS one.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    gate: Gate,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) {
    let admission = gate.0;
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let connections = TaskTracker::new();
    loop {
        // Cancel safety: `accept` is cancel-safe; `cancelled` too.
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE/ENFILE/ENOMEM: the connection stays in the backlog; try again soon.
                admission
                    .stats
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot accept a connection; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admitted = admission
            .counts
            .lock()
            .expect("invariant: never poisoned")
            .admit(peer.ip(), &admission.limits);
        let key = match admitted {
            Ok(key) => key,
            Err(refusal) => {
                let refused = admission.stats.refused.fetch_add(1, Ordering::Relaxed);
                // One line per 1,000 refusals: a flood must not flood the journal too.
                if refused % 1000 == 0 {
                    tracing::warn!(peer = %peer.ip(), ?refusal, refused = refused + 1, "connection refused: too many open");
                }
                drop(stream);
                continue;
            }
        };
        admission.stats.open.fetch_add(1, Ordering::Relaxed);
        // Acks and message frames are small writes back to back: without TCP_NODELAY,
        // Nagle's algorithm holds the second until the peer's delayed ACK (~40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let io = Counted {
            stream,
            key,
            admission: Arc::clone(&admission),
        };
        let (router, timeout, shutdown) = (
            router.clone(),
            admission.limits.header_read_timeout,
            shutdown.clone(),
        );
        match &tls {
            None => connections.spawn(serve_connection(io, peer, router, timeout, None, shutdown)),
            Some(acceptor) => connections.spawn(serve_tls(
                acceptor.clone(),
                io,
                peer,
                router,
                timeout,
                shutdown,
            )),
        };
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// The TLS handshake (within `header_read_timeout`, and given up at shutdown), then HTTP.
async fn serve_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    io: Counted,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) {
    // Cancel safety: an unfinished handshake is dropped with its socket, nothing is lost.
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        handshake = tokio::time::timeout(header_read_timeout, acceptor.accept(io)) => handshake,
    };
    match handshake {
        Ok(Ok(stream)) => {
            serve_connection(
                stream,
                peer,
                router,
                header_read_timeout,
                Some(Https),
                shutdown,
            )
            .await;
        }
        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    https: Option<Https>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(https) = https {
            request.extensions_mut().insert(https);
        }
        router.clone().call(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    // Cancel safety: the connection future is pinned and polled again after the shutdown
    // branch asks it to finish.
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_address: per,
            header_read_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn caps_per_address_and_in_total() {
        let mut c = Counts::default();
        let l = limits(5, 2);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let ka = c.admit(a, &l).unwrap();
        c.admit(a, &l).unwrap();
        assert_eq!(c.admit(a, &l), Err(Refusal::PerAddress));
        c.admit(b, &l).unwrap();
        c.admit(b, &l).unwrap();
        // The box itself is not capped per address, only in total.
        c.admit("127.0.0.1".parse().unwrap(), &l).unwrap();
        assert_eq!(
            c.admit("127.0.0.1".parse().unwrap(), &l),
            Err(Refusal::Total)
        );
        c.release(ka);
        c.admit(a, &l).unwrap();
        assert_eq!(c.total, 5);
    }

    #[test]
    fn ipv6_clients_count_by_their_prefix() {
        let mut c = Counts::default();
        let l = limits(100, 2);
        c.admit("2001:db8::1".parse().unwrap(), &l).unwrap();
        c.admit("2001:db8::2".parse().unwrap(), &l).unwrap();
        assert_eq!(
            c.admit("2001:db8::3".parse().unwrap(), &l),
            Err(Refusal::PerAddress)
        );
        c.admit("2001:db8:0:1::1".parse().unwrap(), &l).unwrap();
    }

    #[test]
    fn the_cap_leaves_descriptors_for_the_journal() {
        assert_eq!(Limits::effective_max_connections(100_000, 1024), 768);
        assert_eq!(Limits::effective_max_connections(500, 262_144), 500);
        assert_eq!(Limits::effective_max_connections(500, 100), 16);
    }
}
