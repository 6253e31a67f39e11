//! A minimal Redis client: RESP2 over the `Transport` seam, the four
//! commands Redlock needs (`PING`, `SET … NX PX`, `EVAL`, nothing else).
//!
//! Not the `redis` crate: it would add a large dependency tree for three
//! commands, and it would not run over `fenced_io`'s transport. One request
//! at a time per connection; on any error or timeout the connection is
//! dropped (a late reply must never be read as the answer to the next
//! request), and the next call reconnects.

use fenced_io::transport::{BoxConn, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A reply, as far as Redlock cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
    Error(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("redis {addr}: {message}")]
    Io { addr: String, message: String },
    #[error("redis {addr}: no reply within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("redis {addr}: malformed reply: {message}")]
    Protocol { addr: String, message: String },
}

/// The request bytes of one command.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Most bytes of one bulk reply we accept (Redlock's are tiny).
const BULK_MAX: usize = 1 << 20;
/// Deepest array nesting we accept.
const DEPTH_MAX: usize = 4;

async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, depth: usize) -> Result<Reply, String> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).await.map_err(|e| e.to_string())?;
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(format!("truncated line {:?}", String::from_utf8_lossy(&line)));
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).to_string();
    let num = || body.parse::<i64>().map_err(|_| format!("not a number: {body:?}"));
    match line[0] {
        b'+' => Ok(Reply::Simple(body)),
        b'-' => Ok(Reply::Error(body)),
        b':' => Ok(Reply::Int(num()?)),
        b'$' => {
            let n = num()?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let n = n as usize;
            if n > BULK_MAX {
                return Err(format!("bulk of {n} bytes"));
            }
            let mut buf = vec![0; n + 2];
            r.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        b'*' if depth < DEPTH_MAX => {
            let n = num()?;
            let mut items = Vec::new();
            for _ in 0..n.clamp(0, 1024) {
                items.push(Box::pin(read_reply(r, depth + 1)).await?);
            }
            Ok(Reply::Array(items))
        }
        other => Err(format!("unexpected type byte {other:#x}")),
    }
}

/// One connection to one Redis server, reconnected on demand.
pub struct Conn {
    addr: String,
    transport: Arc<dyn Transport>,
    conn: Option<BufReader<BoxConn>>,
}

impl Conn {
    pub fn new(transport: Arc<dyn Transport>, addr: impl Into<String>) -> Self {
        Conn { addr: addr.into(), transport, conn: None }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Send one command and read its reply, all within `timeout`.
    pub async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Reply, RespError> {
        let addr = self.addr.clone();
        match tokio::time::timeout(timeout, self.call_inner(args)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(RespError::Timeout { addr, timeout })
            }
        }
    }

    async fn call_inner(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let io = |message: String| RespError::Io { addr: self.addr.clone(), message };
        if self.conn.is_none() {
            let c = self.transport.connect(&self.addr).await.map_err(|e| io(e.to_string()))?;
            self.conn = Some(BufReader::new(c));
        }
        let Some(c) = self.conn.as_mut() else { return Err(io("not connected".into())) };
        c.get_mut()
            .write_all(&encode(args))
            .await
            .map_err(|e| RespError::Io { addr: self.addr.clone(), message: e.to_string() })?;
        c.get_mut().flush().await.map_err(|e| RespError::Io { addr: self.addr.clone(), message: e.to_string() })?;
        read_reply(c, 0).await.map_err(|message| RespError::Protocol { addr: self.addr.clone(), message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, String> {
        read_reply(&mut BufReader::new(bytes), 0).await
    }

    #[test]
    fn encodes_commands() {
        assert_eq!(encode(&[b"SET", b"k", b"v"]), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".to_vec());
    }

    #[tokio::test]
    async fn parses_replies() {
        assert_eq!(parse(b"+OK\r\n").await, Ok(Reply::Simple("OK".into())));
        assert_eq!(parse(b"$-1\r\n").await, Ok(Reply::Bulk(None)));
        assert_eq!(parse(b"$2\r\nab\r\n").await, Ok(Reply::Bulk(Some(b"ab".to_vec()))));
        assert_eq!(parse(b":1\r\n").await, Ok(Reply::Int(1)));
        assert_eq!(parse(b"-ERR no\r\n").await, Ok(Reply::Error("ERR no".into())));
        assert_eq!(parse(b"*2\r\n:1\r\n$-1\r\n").await, Ok(Reply::Array(vec![Reply::Int(1), Reply::Bulk(None)])));
        assert!(parse(b"+OK").await.is_err());
        assert!(parse(b"?x\r\n").await.is_err());
        assert!(parse(b":x\r\n").await.is_err());
    }
}
