//! Serving connections: one accept loop per listener, who is on the other end (the peer),
//! and the limits that keep a slow or hostile client from holding the daemon.
//!
//! - A connection gets `request_timeout` to send its request headers; the same timer
//!   closes a kept-alive connection that sends nothing (hyper's header-read timeout runs
//!   whenever the connection waits for a request).
//! - A client that stops reading its answer is dropped after `request_timeout` without
//!   progress (`StallGuard`); the body of a request has the same time (see `guard`).
//! - Each listener has its own connection cap and a cap per peer (a UNIX socket user id, a
//!   TCP address). Listeners count separately, and the file descriptor limit is raised at
//!   start so that a full TCP listener leaves room for the UNIX socket: root can always get
//!   in.
//! - On the TLS listener the handshake happens in the connection's own task, within
//!   `request_timeout`: a client that opens a connection and says nothing holds no accept
//!   loop. Each handshake takes the certificate the resolver holds then, so a reload
//!   (SIGHUP) reaches new connections while open ones keep theirs.

use crate::config::ApiPolicy;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::time::Sleep;
use tower::Service;

pub use crate::caller::Peer;

/// The key a per-peer limit counts by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PeerKey {
    Uid(u32),
    Ip(std::net::IpAddr),
}

impl Peer {
    fn key(&self) -> PeerKey {
        match self {
            Peer::Unix { uid, .. } => PeerKey::Uid(*uid),
            Peer::Tcp(a) => PeerKey::Ip(a.ip()),
        }
    }
}

/// Open connections of one listener, in total and per peer.
pub struct ConnLimits {
    max_total: usize,
    max_per_peer: usize,
    /// Peers exempt from the per-peer cap (root on the UNIX socket).
    exempt: Option<PeerKey>,
    counts: Mutex<(usize, HashMap<PeerKey, usize>)>,
}

/// A counted connection; the count drops with it.
pub struct ConnSlot {
    limits: Arc<ConnLimits>,
    key: PeerKey,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = self.limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.0 = c.0.saturating_sub(1);
        if let Some(n) = c.1.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.1.remove(&self.key);
            }
        }
    }
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Listener,
    Peer,
}

impl ConnLimits {
    pub fn new(max_total: usize, max_per_peer: usize, exempt_root: bool) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max_total,
            max_per_peer,
            exempt: exempt_root.then_some(PeerKey::Uid(0)),
            counts: Mutex::new((0, HashMap::new())),
        })
    }

    pub fn acquire(self: &Arc<Self>, peer: &Peer) -> Result<ConnSlot, Refusal> {
        let key = peer.key();
        let exempt = self.exempt.as_ref() == Some(&key);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.0 >= self.max_total && !exempt {
            return Err(Refusal::Listener);
        }
        let mine = c.1.get(&key).copied().unwrap_or(0);
        if mine >= self.max_per_peer && !exempt {
            return Err(Refusal::Peer);
        }
        c.0 += 1;
        *c.1.entry(key.clone()).or_insert(0) += 1;
        Ok(ConnSlot {
            limits: self.clone(),
            key,
        })
    }
}

/// An I/O stream that fails a write which makes no progress for `limit`: a client that
/// does not read its answer cannot hold the connection (and its buffers) forever.
pub struct StallGuard<T> {
    inner: T,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            stalled: None,
        }
    }

    /// A write's outcome, watched: progress (or an error) stops the stall timer; a write
    /// that is pending starts it, and fails once it has run out.
    fn watched<R>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read its answer",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watched(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watched(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.watched(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Unix,
    Tcp,
}

/// The answer to a connection over the limits, written before it is closed.
fn refusal_response(why: Refusal) -> Vec<u8> {
    let message = match why {
        Refusal::Listener => "too many open connections to uvmmd; try again later",
        Refusal::Peer => "too many open connections from your address or user; close some",
    };
    let body = serde_json::json!({
        "error": { "code": "too_many_connections", "message": message }
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 5\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serve one accepted connection until it ends or the daemon stops.
async fn serve_conn<IO>(
    io: IO,
    peer: Peer,
    secure: bool,
    app: Router,
    policy: Arc<ApiPolicy>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(StallGuard::new(io, policy.request_timeout));
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        if secure {
            req.extensions_mut().insert(crate::http::auth::Tls);
        }
        let mut app = app.clone();
        async move { app.call(req.map(axum::body::Body::new)).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(policy.request_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection ended: {e}");
            }
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            // Finish the request in progress, then close (event streams end on the same
            // signal by themselves).
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// What the accept loop needs of a listener: the next connection and who is on the other
/// end of it.
pub trait Listener {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// What it is, for the log.
    const WHAT: &'static str;
    /// Whether its connections are counted per UNIX uid (else per TCP address).
    const UNIX: bool;
    /// The next connection (an error: none could be accepted), with its peer (an error:
    /// the peer cannot be told, so the connection is dropped).
    fn accept_peer(
        &self,
    ) -> impl Future<Output = std::io::Result<(Self::Stream, std::io::Result<Peer>)>> + Send;
}

impl Listener for UnixListener {
    type Stream = tokio::net::UnixStream;
    const WHAT: &'static str = "UNIX socket";
    const UNIX: bool = true;

    async fn accept_peer(&self) -> std::io::Result<(Self::Stream, std::io::Result<Peer>)> {
        let (stream, _) = self.accept().await?;
        let peer = stream.peer_cred().map(|c| Peer::Unix {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        });
        Ok((stream, peer))
    }
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;
    const WHAT: &'static str = "TCP";
    const UNIX: bool = false;

    async fn accept_peer(&self) -> std::io::Result<(Self::Stream, std::io::Result<Peer>)> {
        let (stream, addr) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Ok(Peer::Tcp(addr))))
    }
}

/// The accept loop of a listener (the UNIX socket, the TCP port), until `stop`.
pub async fn serve<L: Listener>(
    listener: L,
    tls: Option<Arc<uvmm_auth::tls::server::ServerTls>>,
    app: Router,
    policy: Arc<ApiPolicy>,
    stop: watch::Receiver<bool>,
) {
    let limits = ConnLimits::new(
        policy.max_connections,
        policy.max_connections_per_peer,
        L::UNIX,
    );
    let mut stopping = stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept_peer() => a,
            _ = async { let _ = stopping.wait_for(|s| *s).await; } => return,
        };
        match accepted {
            Ok((stream, Ok(peer))) => {
                spawn_conn(stream, peer, tls.as_deref(), &limits, &app, &policy, &stop)
            }
            Ok((_, Err(e))) => tracing::warn!("{}: no peer credentials: {e}", L::WHAT),
            Err(e) => {
                // Out of descriptors, most likely: wait instead of spinning.
                tracing::warn!("{}: accept failed: {e}", L::WHAT);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn spawn_conn<IO>(
    mut stream: IO,
    peer: Peer,
    tls: Option<&uvmm_auth::tls::server::ServerTls>,
    limits: &Arc<ConnLimits>,
    app: &Router,
    policy: &Arc<ApiPolicy>,
    stop: &watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match limits.acquire(&peer) {
        Ok(slot) => {
            let (app, policy, stop) = (app.clone(), policy.clone(), stop.clone());
            let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config()));
            tokio::spawn(async move {
                match acceptor {
                    None => serve_conn(stream, peer, false, app, policy, stop).await,
                    Some(a) => {
                        match tokio::time::timeout(policy.request_timeout, a.accept(stream)).await {
                            Ok(Ok(tls)) => serve_conn(tls, peer, true, app, policy, stop).await,
                            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
                drop(slot);
            });
        }
        // A TLS client cannot read a plain answer: it is just closed.
        Err(why) if tls.is_some() => {
            tracing::warn!(%peer, ?why, "connection refused: over the limit");
        }
        Err(why) => {
            tracing::warn!(%peer, ?why, "connection refused: over the limit");
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    stream.write_all(&refusal_response(why)).await?;
                    stream.shutdown().await
                })
                .await;
            });
        }
    }
}

/// Raise the soft limit of open files to the hard limit, so that connections, libvirt
/// sockets and files do not run out at the soft default of 1024. Returns the new limit.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(uid: u32) -> Peer {
        Peer::Unix {
            uid,
            gid: uid,
            pid: None,
        }
    }

    #[test]
    fn limits_per_peer_and_listener() {
        let l = ConnLimits::new(3, 2, true);
        let a1 = l.acquire(&unix(1000)).unwrap();
        let _a2 = l.acquire(&unix(1000)).unwrap();
        assert_eq!(l.acquire(&unix(1000)).err(), Some(Refusal::Peer));
        let _b1 = l.acquire(&unix(1001)).unwrap();
        assert_eq!(l.acquire(&unix(1002)).err(), Some(Refusal::Listener));
        // Root is never locked out of the UNIX socket.
        let _r1 = l.acquire(&unix(0)).unwrap();
        let _r2 = l.acquire(&unix(0)).unwrap();
        let _r3 = l.acquire(&unix(0)).unwrap();
        drop(a1);
        // Root's connections count towards the total, so others wait for them.
        assert_eq!(l.acquire(&unix(1000)).err(), Some(Refusal::Listener));
        let tcp = ConnLimits::new(10, 1, false);
        let peer: Peer = Peer::Tcp("127.0.0.1:1000".parse().unwrap());
        let other_port: Peer = Peer::Tcp("127.0.0.1:2000".parse().unwrap());
        let _t = tcp.acquire(&peer).unwrap();
        // The per-peer cap counts the address, not the port.
        assert_eq!(tcp.acquire(&other_port).err(), Some(Refusal::Peer));
    }

    #[test]
    fn refusal_is_json_http() {
        let r = String::from_utf8(refusal_response(Refusal::Peer)).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 "));
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_connections");
        let len: usize = r
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
    }
}
