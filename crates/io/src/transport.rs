//! The network seam: connect to and listen on `host:port` addresses.
//!
//! [`TcpTransport`] is real TCP. The simulator supplies a transport over its
//! simulated network (`fenced_sim::net`), so partitions, loss and delay reach
//! the real replica, store and client code.

use futures::future::BoxFuture;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream.
pub trait Conn: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Conn for T {}

/// A boxed connection, so that code above the seam is not generic over it.
pub type BoxConn = Box<dyn Conn>;

/// An accepted connection, with who is on the other end as far as the
/// transport knows.
pub struct Accepted {
    pub conn: BoxConn,
    /// The peer's address.
    pub peer: String,
    /// The identity the peer proved at the transport level (a TLS client
    /// certificate, see [`crate::tls`]); `None` on plaintext transports.
    pub identity: Option<String>,
}

/// Accepts incoming connections.
pub trait Listener: Send + 'static {
    /// The next connection and the peer's address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>>;
    /// The next connection with the identity the transport established, if
    /// any. Plaintext transports need not implement this.
    fn accept_identified(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (conn, peer) = self.accept().await?;
            Ok(Accepted { conn, peer, identity: None })
        })
    }
    /// The address actually bound (useful after binding port 0).
    fn local_addr(&self) -> io::Result<String>;
}

/// Opens connections and listeners.
pub trait Transport: Send + Sync + 'static {
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxConn>>;
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
}

/// Is `addr` (`host:port`, or a bare host) a loopback address, reachable
/// only from this machine? `localhost` counts; names and the unspecified
/// address (`0.0.0.0`, `[::]`, which listen on every interface) do not.
pub fn is_loopback(addr: &str) -> bool {
    if let Ok(a) = addr.parse::<std::net::SocketAddr>() {
        return a.ip().is_loopback();
    }
    let host = match addr.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Real TCP, with Nagle off: requests are small and latency matters.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpTransport;

struct TcpAcceptor(tokio::net::TcpListener);

impl Listener for TcpAcceptor {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            s.set_nodelay(true)?;
            Ok((Box::new(s) as BoxConn, peer.to_string()))
        })
    }

    fn local_addr(&self) -> io::Result<String> {
        Ok(self.0.local_addr()?.to_string())
    }
}

impl Transport for TcpTransport {
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxConn>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(&addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxConn)
        })
    }

    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let l = tokio::net::TcpListener::bind(&addr).await?;
            Ok(Box::new(TcpAcceptor(l)) as Box<dyn Listener>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses_are_told_apart_from_exposed_ones() {
        for a in ["127.0.0.1:7400", "127.3.2.1:1", "[::1]:7400", "localhost:7400", "LOCALHOST", "127.0.0.1"] {
            assert!(is_loopback(a), "{a} is loopback");
        }
        for a in ["0.0.0.0:7400", "[::]:7400", "10.0.0.5:7400", "store.example:7400", "192.168.1.1"] {
            assert!(!is_loopback(a), "{a} is not loopback");
        }
    }
}
