//! The transport seam over turmoil's simulated TCP: partitions, loss and
//! latency that the nemesis sets on the simulated network reach the real
//! replica, store and client code through here.

use fenced_io::transport::{BoxConn, Listener, Transport};
use futures::future::BoxFuture;
use std::io;

/// turmoil TCP. Addresses are `host:port`, with turmoil host names.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimTransport;

struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            Ok((Box::new(s) as BoxConn, peer.to_string()))
        })
    }

    fn local_addr(&self) -> io::Result<String> {
        Ok(self.0.local_addr()?.to_string())
    }
}

impl Transport for SimTransport {
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxConn>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(addr.as_str()).await?;
            Ok(Box::new(s) as BoxConn)
        })
    }

    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        // Bind every interface of the host: turmoil routes by host address.
        let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
        Box::pin(async move {
            let l = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
            Ok(Box::new(SimListener(l)) as Box<dyn Listener>)
        })
    }
}
