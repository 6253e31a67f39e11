//! The simulated network: TCP between named hosts as in-memory byte queues,
//! event-driven on tokio's paused clock ([`crate::time`]).
//!
//! A write becomes readable at `now + latency`, in order: one direction of a
//! stream is FIFO, as TCP is. Nothing runs at a fixed step; a reader sleeps
//! until its next segment is due. Faults act on directed links between hosts:
//!
//! - a **cut** link drops what is sent on it (and what is still in flight
//!   when it is cut), and so does **loss**. A stream that lost a segment
//!   delivers nothing after it, since TCP cannot skip a gap: its reader waits
//!   for its own timeout, as behind a real partition;
//! - a **held** link delivers nothing until it is released, then everything
//!   at once, in order: the links of a paused process;
//! - a **slow** link draws its latency up to its own maximum;
//! - a **duplicating** network gives a new connection a twin: everything the
//!   client sends is delivered a second time, on another connection to the
//!   same listener, with its own latencies, and the twin's answers are
//!   dropped. TCP never repeats bytes within a stream, so this is how
//!   duplicated requests reach an application: a retrying middlebox, or a
//!   request resent after its connection was given up. The duplicate may
//!   arrive before the original, long after it, or after a later request.
//!
//! A crash revokes the host's [`Incarnation`]. What the dead incarnation
//! still does reaches no one: its connects, accepts and reads never complete
//! and its writes vanish. A peer that writes to it is answered with a reset.
//! A restarted host gets a new incarnation.
//!
//! The latency model is turmoil's (this engine replaced turmoil; see
//! `docs/design.md`): `min + (max - min) × Exp(curve)` in whole milliseconds,
//! capped at `max`.

use bytes::Bytes;
use fenced_io::transport::{BoxConn, Listener, Transport};
use futures::future::BoxFuture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

/// Ports handed to connecting sockets.
const EPHEMERAL: std::ops::Range<u16> = 40_000..60_000;

/// A poisoned lock here only means another task panicked, and that panic
/// already fails the run; the data is still the network's.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One life of a host, from its start to its crash.
#[derive(Debug)]
pub struct Incarnation {
    host: String,
    alive: AtomicBool,
}

impl Incarnation {
    fn new(host: &str) -> Arc<Self> {
        Arc::new(Incarnation { host: host.to_string(), alive: AtomicBool::new(true) })
    }

    /// False once the host crashed in this life.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// The host's name.
    pub fn host(&self) -> &str {
        &self.host
    }
}

#[derive(Clone, Copy)]
struct Latency {
    min: Duration,
    max: Duration,
    curve: f64,
}

impl Latency {
    fn sample(&self, max: Option<Duration>, rng: &mut ChaCha8Rng) -> Duration {
        let max = max.unwrap_or(self.max);
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        let mult = -u.ln() / self.curve;
        let range = max.saturating_sub(self.min).as_millis() as f64;
        (self.min + Duration::from_millis((range * mult) as u64)).min(max)
    }
}

#[derive(Clone)]
enum Seg {
    Data(Bytes),
    Fin,
    Rst,
}

/// One direction of a stream.
#[derive(Default)]
struct Dir {
    /// Segments and when each becomes readable, in order.
    q: VecDeque<(Instant, Seg)>,
    /// When the last queued segment becomes readable (FIFO).
    last: Option<Instant>,
    reader: Option<Waker>,
    /// A segment was lost: nothing after it arrives.
    broken: bool,
}

impl Dir {
    fn push(&mut self, at: Instant, seg: Seg) {
        let at = self.last.map_or(at, |l| at.max(l));
        self.last = Some(at);
        self.q.push_back((at, seg));
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }
}

/// A directed link's faults.
#[derive(Default)]
struct LinkState {
    cut: bool,
    held: bool,
    max: Option<Duration>,
    /// Streams on this link, and which of their directions it carries.
    pipes: Vec<(Weak<Pipe>, usize)>,
}

#[derive(Default)]
struct Link(Mutex<LinkState>);

/// A stream: side 0 connected, side 1 accepted. `dirs[s]` is written by
/// side `s` and read by the other; `links[s]` carries it.
struct Pipe {
    hosts: [Arc<Incarnation>; 2],
    links: [Arc<Link>; 2],
    dirs: [Mutex<Dir>; 2],
    /// A duplicate of this stream: what side 0 sends is sent on it too.
    twin: Option<Arc<Pipe>>,
    /// This stream is a twin: what side 1 answers goes nowhere.
    sink: bool,
}

type Accept = (BoxConn, String);

struct Global {
    rng: ChaCha8Rng,
    latency: Latency,
    loss: f64,
    duplication: f64,
    /// Connections given a twin so far.
    twins: u64,
}

struct Topology {
    links: BTreeMap<(String, String), Arc<Link>>,
    hosts: BTreeMap<String, Arc<Incarnation>>,
    listeners: BTreeMap<(String, u16), (Arc<Incarnation>, mpsc::UnboundedSender<Accept>)>,
    next_port: u16,
}

impl Topology {
    /// An ephemeral port, round robin.
    fn next_port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p + 1 >= EPHEMERAL.end { EPHEMERAL.start } else { p + 1 };
        p
    }
}

/// The network of one run.
pub struct Net {
    global: Mutex<Global>,
    topo: Mutex<Topology>,
    /// Bumped whenever a held link is released (a connect waits on it).
    released: watch::Sender<u64>,
}

impl Net {
    /// A network whose latency is drawn between `min` and `max` from `seed`.
    pub fn new(seed: u64, min: Duration, max: Duration) -> Arc<Net> {
        Arc::new(Net {
            global: Mutex::new(Global {
                rng: ChaCha8Rng::seed_from_u64(seed),
                latency: Latency { min, max, curve: 5.0 },
                loss: 0.0,
                duplication: 0.0,
                twins: 0,
            }),
            topo: Mutex::new(Topology {
                links: BTreeMap::new(),
                hosts: BTreeMap::new(),
                listeners: BTreeMap::new(),
                next_port: EPHEMERAL.start,
            }),
            released: watch::Sender::new(0),
        })
    }

    /// The transport of `host`'s current life (a new host starts one).
    pub fn transport(self: &Arc<Self>, host: &str) -> SimTransport {
        let me = lock(&self.topo).hosts.entry(host.to_string()).or_insert_with(|| Incarnation::new(host)).clone();
        SimTransport { net: self.clone(), me }
    }

    /// Crash `host`: revoke its current life and close its listeners. The
    /// next [`Net::transport`] for it is a new life.
    pub fn crash(&self, host: &str) {
        let mut topo = lock(&self.topo);
        if let Some(old) = topo.hosts.insert(host.to_string(), Incarnation::new(host)) {
            old.alive.store(false, Ordering::Relaxed);
        }
        topo.listeners.retain(|(h, _), _| h != host);
    }

    fn link(&self, from: &str, to: &str) -> Arc<Link> {
        lock(&self.topo).links.entry((from.to_string(), to.to_string())).or_default().clone()
    }

    /// Change a directed link, then visit the directions of its streams.
    fn on_link(&self, from: &str, to: &str, f: impl FnOnce(&mut LinkState), each: impl Fn(&mut Dir)) {
        let link = self.link(from, to);
        let mut st = lock(&link.0);
        f(&mut st);
        st.pipes.retain(|(p, _)| p.strong_count() > 0);
        for (pipe, dir) in &st.pipes {
            if let Some(pipe) = pipe.upgrade() {
                each(&mut lock(&pipe.dirs[*dir]));
            }
        }
    }

    /// Nothing sent from `from` to `to` arrives, including what is in flight.
    pub fn partition_oneway(&self, from: &str, to: &str) {
        let now = crate::time::instant();
        self.on_link(
            from,
            to,
            |l| l.cut = true,
            |d| {
                let before = d.q.len();
                d.q.retain(|(at, _)| *at <= now);
                if d.q.len() < before {
                    d.broken = true;
                }
            },
        );
    }

    /// Undo [`Net::partition_oneway`]; streams that lost data stay broken.
    pub fn repair_oneway(&self, from: &str, to: &str) {
        self.on_link(from, to, |l| l.cut = false, |_| {});
    }

    /// Cut both directions between `a` and `b`.
    pub fn partition(&self, a: &str, b: &str) {
        self.partition_oneway(a, b);
        self.partition_oneway(b, a);
    }

    pub fn repair(&self, a: &str, b: &str) {
        self.repair_oneway(a, b);
        self.repair_oneway(b, a);
    }

    /// Hold everything between `a` and `b` until [`Net::release`].
    pub fn hold(&self, a: &str, b: &str) {
        self.on_link(a, b, |l| l.held = true, |_| {});
        self.on_link(b, a, |l| l.held = true, |_| {});
    }

    /// Deliver what was held, in order, and stop holding.
    pub fn release(&self, a: &str, b: &str) {
        let wake = |d: &mut Dir| {
            if let Some(w) = d.reader.take() {
                w.wake();
            }
        };
        self.on_link(a, b, |l| l.held = false, wake);
        self.on_link(b, a, |l| l.held = false, wake);
        self.released.send_modify(|n| *n += 1);
    }

    /// Lose each segment with probability `rate`.
    pub fn set_loss(&self, rate: f64) {
        lock(&self.global).loss = rate.clamp(0.0, 1.0);
    }

    /// Give each new connection a twin with probability `rate` (see the
    /// module documentation).
    pub fn set_duplication(&self, rate: f64) {
        lock(&self.global).duplication = rate.clamp(0.0, 1.0);
    }

    /// Does the next connection get a twin?
    fn duplicate(&self) -> bool {
        let mut g = lock(&self.global);
        let rate = g.duplication;
        let twin = rate > 0.0 && g.rng.gen_bool(rate);
        g.twins += u64::from(twin);
        twin
    }

    /// How many connections were given a twin.
    pub fn duplicated_connections(&self) -> u64 {
        lock(&self.global).twins
    }

    fn next_port(&self) -> u16 {
        lock(&self.topo).next_port()
    }

    /// A stream from `me` to `them` over `links` (out, back), registered on
    /// both. A `sink` is a twin, whose answers go nowhere.
    fn pipe(
        &self,
        me: &Arc<Incarnation>,
        them: Arc<Incarnation>,
        links: [Arc<Link>; 2],
        twin: Option<Arc<Pipe>>,
        sink: bool,
    ) -> Arc<Pipe> {
        let pipe = Arc::new(Pipe { hosts: [me.clone(), them], links, dirs: Default::default(), twin, sink });
        lock(&pipe.links[0].0).pipes.push((Arc::downgrade(&pipe), 0));
        lock(&pipe.links[1].0).pipes.push((Arc::downgrade(&pipe), 1));
        pipe
    }

    pub fn set_max_latency(&self, max: Duration) {
        lock(&self.global).latency.max = max;
    }

    /// The rate of the exponential that spreads latencies (higher: shorter).
    pub fn set_latency_curve(&self, curve: f64) {
        lock(&self.global).latency.curve = curve.max(f64::MIN_POSITIVE);
    }

    /// Latency between `a` and `b` (both ways) drawn up to `max`.
    pub fn set_link_max_latency(&self, a: &str, b: &str, max: Duration) {
        self.on_link(a, b, |l| l.max = Some(max), |_| {});
        self.on_link(b, a, |l| l.max = Some(max), |_| {});
    }

    /// The delay of one segment on `link`, or `None` if it is lost.
    fn delay(&self, link: &Link) -> Option<Duration> {
        let (cut, max) = {
            let l = lock(&link.0);
            (l.cut, l.max)
        };
        let mut g = lock(&self.global);
        let loss = g.loss;
        if cut || (loss > 0.0 && g.rng.gen_bool(loss)) {
            return None;
        }
        let latency = g.latency;
        Some(latency.sample(max, &mut g.rng))
    }

    fn send(&self, pipe: &Pipe, side: usize, seg: Seg) {
        let (me, peer) = (&pipe.hosts[side], &pipe.hosts[1 - side]);
        if !me.alive() || (pipe.sink && side == 1) {
            return;
        }
        if let (0, Some(twin)) = (side, &pipe.twin) {
            self.send(twin, 0, seg.clone());
        }
        if !peer.alive() {
            // A crashed host's kernel is gone: data is answered with a reset.
            if matches!(seg, Seg::Data(_)) {
                let rtt = self.delay(&pipe.links[side]).zip(self.delay(&pipe.links[1 - side]));
                if let Some((a, b)) = rtt {
                    let mut back = lock(&pipe.dirs[1 - side]);
                    if !back.q.iter().any(|(_, s)| matches!(s, Seg::Rst)) {
                        back.push(crate::time::instant() + a + b, Seg::Rst);
                    }
                }
            }
            return;
        }
        let delay = self.delay(&pipe.links[side]);
        let mut d = lock(&pipe.dirs[side]);
        match delay {
            _ if d.broken => {}
            None => d.broken = true,
            Some(delay) => d.push(crate::time::instant() + delay, seg),
        }
    }

    /// Wait while the link `from → to` is held.
    async fn unheld(&self, link: &Link) {
        let mut rx = self.released.subscribe();
        while lock(&link.0).held {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    async fn connect(self: Arc<Self>, me: Arc<Incarnation>, addr: String) -> io::Result<BoxConn> {
        let (host, port) = split_addr(&addr)?;
        let (out, back) = (self.link(&me.host, host), self.link(host, &me.host));
        // SYN.
        self.unheld(&out).await;
        let Some(d) = self.delay(&out) else { return never().await };
        tokio::time::sleep(d).await;
        if !me.alive() {
            return never().await;
        }
        let listener = {
            let topo = lock(&self.topo);
            topo.listeners.get(&(host.to_string(), port)).filter(|(inc, tx)| inc.alive() && !tx.is_closed()).cloned()
        };
        let conn = listener.and_then(|(them, tx)| {
            let links = [out.clone(), back.clone()];
            let twin = self.duplicate().then(|| {
                let twin = self.pipe(&me, them.clone(), links.clone(), None, true);
                let end = End::new(twin.clone(), 1, self.clone());
                tx.send((Box::new(end) as BoxConn, format!("{}:{}", me.host, self.next_port()))).ok()?;
                Some(twin)
            });
            let pipe = self.pipe(&me, them, links, twin.flatten(), false);
            let server = End::new(pipe.clone(), 1, self.clone());
            tx.send((Box::new(server) as BoxConn, format!("{}:{}", me.host, self.next_port()))).ok()?;
            Some(End::new(pipe, 0, self.clone()))
        });
        // SYN-ACK, or the reset of a closed port.
        self.unheld(&back).await;
        let Some(d) = self.delay(&back) else { return never().await };
        tokio::time::sleep(d).await;
        if !me.alive() {
            return never().await;
        }
        match conn {
            Some(end) => Ok(Box::new(end)),
            None => Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("nothing listens on {addr}"))),
        }
    }
}

/// What a dead incarnation waits for.
async fn never<T>() -> T {
    std::future::pending().await
}

fn split_addr(addr: &str) -> io::Result<(&str, u16)> {
    addr.rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("not a host:port address: {addr:?}")))
}

/// One end of a stream.
struct End {
    pipe: Arc<Pipe>,
    side: usize,
    net: Arc<Net>,
    sleep: Option<Pin<Box<Sleep>>>,
    fin_sent: bool,
}

impl End {
    fn new(pipe: Arc<Pipe>, side: usize, net: Arc<Net>) -> Self {
        End { pipe, side, net, sleep: None, fin_sent: false }
    }
}

impl AsyncRead for End {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.pipe.hosts[this.side].alive() {
            return Poll::Pending;
        }
        let rx = 1 - this.side;
        loop {
            let held = lock(&this.pipe.links[rx].0).held;
            let due = {
                let mut d = lock(&this.pipe.dirs[rx]);
                let now = crate::time::instant();
                let mut filled = false;
                let due = loop {
                    if held {
                        break None;
                    }
                    match d.q.front_mut() {
                        None => break None,
                        Some((at, _)) if *at > now => break Some(*at),
                        Some((_, Seg::Fin)) => return Poll::Ready(Ok(())),
                        Some((_, Seg::Rst)) if filled => return Poll::Ready(Ok(())),
                        Some((_, Seg::Rst)) => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::ConnectionReset,
                                "connection reset: the peer crashed",
                            )))
                        }
                        Some((_, Seg::Data(b))) => {
                            let n = b.len().min(buf.remaining());
                            buf.put_slice(&b[..n]);
                            filled = true;
                            if n == b.len() {
                                d.q.pop_front();
                            } else {
                                *b = b.slice(n..);
                            }
                            if buf.remaining() == 0 {
                                return Poll::Ready(Ok(()));
                            }
                        }
                    }
                };
                if filled {
                    return Poll::Ready(Ok(()));
                }
                d.reader = Some(cx.waker().clone());
                due
            };
            let Some(due) = due else { return Poll::Pending };
            match &mut this.sleep {
                Some(s) => s.as_mut().reset(due),
                None => this.sleep = Some(Box::pin(tokio::time::sleep_until(due))),
            }
            if let Some(s) = &mut this.sleep {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncWrite for End {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.fin_sent {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "write after shutdown")));
        }
        self.net.send(&self.pipe, self.side, Seg::Data(Bytes::copy_from_slice(buf)));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.fin_sent {
            self.fin_sent = true;
            self.net.send(&self.pipe, self.side, Seg::Fin);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for End {
    fn drop(&mut self) {
        if !self.fin_sent {
            self.net.send(&self.pipe, self.side, Seg::Fin);
        }
    }
}

/// A host's transport for one life: addresses are `host:port`.
#[derive(Clone)]
pub struct SimTransport {
    net: Arc<Net>,
    me: Arc<Incarnation>,
}

impl SimTransport {
    /// The life this transport belongs to.
    pub fn incarnation(&self) -> Arc<Incarnation> {
        self.me.clone()
    }
}

struct SimListener {
    rx: mpsc::UnboundedReceiver<Accept>,
    addr: String,
    me: Arc<Incarnation>,
}

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some(a) if self.me.alive() => Ok(a),
                _ => never().await,
            }
        })
    }

    fn local_addr(&self) -> io::Result<String> {
        Ok(self.addr.clone())
    }
}

impl Transport for SimTransport {
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxConn>> {
        Box::pin(self.net.clone().connect(self.me.clone(), addr.to_string()))
    }

    /// Binds every interface of the host: the address's host part is ignored.
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let (net, me) = (self.net.clone(), self.me.clone());
        let port = split_addr(addr).map(|(_, p)| p);
        Box::pin(async move {
            let port = port?;
            if !me.alive() {
                return never().await;
            }
            let mut topo = lock(&net.topo);
            let port = if port == 0 { topo.next_port() } else { port };
            let key = (me.host.clone(), port);
            // A listener that was dropped (its receiver closed) frees its port.
            if topo.listeners.get(&key).is_some_and(|(inc, tx)| inc.alive() && !tx.is_closed()) {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{}:{port} is in use", me.host)));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            topo.listeners.insert(key, (me.clone(), tx));
            Ok(Box::new(SimListener { rx, addr: format!("{}:{port}", me.host), me }) as Box<dyn Listener>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn run<F: Future<Output = ()>>(f: F) {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
        rt.block_on(f);
    }

    /// `a` connected to `b`: (a's end, b's end).
    async fn pair(net: &Arc<Net>, a: &str, b: &str) -> (BoxConn, BoxConn) {
        let mut l = net.transport(b).bind("0.0.0.0:80").await.expect("bind");
        let c = net.transport(a).connect(&format!("{b}:80")).await.expect("connect");
        let (s, peer) = l.accept().await.expect("accept");
        assert!(peer.starts_with(&format!("{a}:")), "{peer}");
        (c, s)
    }

    /// What arrives on `conn` within `within` of simulated time.
    async fn read_for(conn: &mut BoxConn, within: Duration) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        let deadline = crate::time::instant() + within;
        loop {
            match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
                Err(_) => return Ok(out),
                Ok(Ok(0)) => return Ok(out),
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// What arrives on `conn` within a simulated second.
    async fn arrived(conn: &mut BoxConn) -> Vec<u8> {
        read_for(conn, Duration::from_secs(1)).await.expect("read")
    }

    /// A new connection from `a` to `b` carries bytes.
    async fn a_new_connection_works(net: &Arc<Net>, a: &str, b: &str) {
        let (mut x, mut y) = pair(net, a, b).await;
        x.write_all(b"fresh").await.expect("write");
        assert_eq!(arrived(&mut y).await, b"fresh");
    }

    fn net() -> Arc<Net> {
        Net::new(7, Duration::from_millis(1), Duration::from_millis(5))
    }

    #[test]
    fn bytes_arrive_in_order_and_not_before_the_least_latency() {
        run(async {
            let net = net();
            let (mut a, mut b) = pair(&net, "a", "b").await;
            let start = crate::time::instant();
            for chunk in [&b"one "[..], b"two ", b"three"] {
                a.write_all(chunk).await.expect("write");
            }
            let mut got = vec![0u8; 13];
            b.read_exact(&mut got).await.expect("read");
            assert_eq!(got, b"one two three");
            assert!(crate::time::instant() - start >= Duration::from_millis(1));
        });
    }

    #[test]
    fn a_cut_link_drops_data_and_the_stream_stays_broken_after_repair() {
        run(async {
            let net = net();
            let (mut a, mut b) = pair(&net, "a", "b").await;
            net.partition("a", "b");
            a.write_all(b"lost").await.expect("write");
            assert_eq!(arrived(&mut b).await, b"");
            net.repair("a", "b");
            a.write_all(b"after").await.expect("write");
            // TCP cannot skip the gap: nothing after the lost segment arrives.
            assert_eq!(arrived(&mut b).await, b"");
            a_new_connection_works(&net, "a", "b").await;
        });
    }

    #[test]
    fn a_one_way_cut_silences_one_direction_only() {
        run(async {
            let net = net();
            let (mut a, mut b) = pair(&net, "a", "b").await;
            net.partition_oneway("a", "b");
            a.write_all(b"unheard").await.expect("write");
            b.write_all(b"heard").await.expect("write");
            assert_eq!(arrived(&mut a).await, b"heard");
            assert_eq!(arrived(&mut b).await, b"");
            // A connect across it never completes.
            let attempt = net.transport("a").connect("b:80");
            assert!(tokio::time::timeout(Duration::from_secs(5), attempt).await.is_err());
        });
    }

    #[test]
    fn a_held_link_delivers_everything_at_its_release_in_order() {
        run(async {
            let net = net();
            let (mut a, mut b) = pair(&net, "a", "b").await;
            net.hold("a", "b");
            a.write_all(b"1").await.expect("write");
            a.write_all(b"2").await.expect("write");
            assert_eq!(read_for(&mut b, Duration::from_secs(3)).await.expect("read"), b"");
            net.release("a", "b");
            assert_eq!(read_for(&mut b, Duration::from_millis(1)).await.expect("read"), b"12");
        });
    }

    #[test]
    fn writing_to_a_crashed_host_is_answered_with_a_reset_and_its_old_life_reaches_no_one() {
        run(async {
            let net = net();
            let (mut a, mut b) = pair(&net, "a", "b").await;
            net.crash("b");
            a.write_all(b"anyone?").await.expect("write");
            let err = read_for(&mut a, Duration::from_secs(1)).await.expect_err("a reset");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
            // The dead life's writes vanish, its reads never complete.
            let (mut c, mut d) = pair(&net, "c", "a").await;
            net.crash("c");
            c.write_all(b"ghost").await.expect("write");
            assert_eq!(arrived(&mut d).await, b"");
            assert!(tokio::time::timeout(Duration::from_secs(1), b.read(&mut [0u8; 8])).await.is_err());
            // Nothing listens on the crashed host until it binds again.
            let refused = net.transport("a").connect("b:80").await.err().map(|e| e.kind());
            assert_eq!(refused, Some(io::ErrorKind::ConnectionRefused));
            a_new_connection_works(&net, "a", "b").await;
        });
    }

    #[test]
    fn a_lost_segment_breaks_its_stream() {
        run(async {
            let net = net();
            let (mut a, mut b) = pair(&net, "a", "b").await;
            net.set_loss(1.0);
            a.write_all(b"x").await.expect("write");
            net.set_loss(0.0);
            a.write_all(b"y").await.expect("write");
            assert_eq!(arrived(&mut b).await, b"");
        });
    }

    #[test]
    fn a_slow_link_draws_latency_up_to_its_own_maximum() {
        run(async {
            let net = net();
            let (mut a, mut b) = pair(&net, "a", "b").await;
            net.set_link_max_latency("a", "b", Duration::from_millis(800));
            net.set_latency_curve(0.1);
            let start = crate::time::instant();
            a.write_all(b"slow").await.expect("write");
            let mut got = [0u8; 4];
            b.read_exact(&mut got).await.expect("read");
            let took = crate::time::instant() - start;
            assert!(took > Duration::from_millis(5) && took <= Duration::from_millis(800), "{took:?}");
        });
    }

    #[test]
    fn a_duplicated_connection_delivers_every_request_twice_and_only_one_answer() {
        run(async {
            let net = net();
            net.set_duplication(1.0);
            let mut l = net.transport("b").bind("0.0.0.0:80").await.expect("bind");
            let mut a = net.transport("a").connect("b:80").await.expect("connect");
            net.set_duplication(0.0);
            let (mut first, _) = l.accept().await.expect("accept");
            let (mut second, _) = l.accept().await.expect("accept the twin");
            a.write_all(b"request").await.expect("write");
            for end in [&mut first, &mut second] {
                assert_eq!(arrived(end).await, b"request");
                end.write_all(b"answer").await.expect("answer");
            }
            // One connection's answer reaches the client; the twin's is dropped.
            assert_eq!(arrived(&mut a).await, b"answer");
            // Without duplication, one connection is one connection.
            let _b = net.transport("a").connect("b:80").await.expect("connect");
            let _only = l.accept().await.expect("accept");
            assert!(tokio::time::timeout(Duration::from_secs(1), l.accept()).await.is_err());
        });
    }

    #[test]
    fn dropping_an_end_is_an_end_of_file_for_the_other() {
        run(async {
            let net = net();
            let (a, mut b) = pair(&net, "a", "b").await;
            drop(a);
            let mut buf = [0u8; 4];
            assert_eq!(b.read(&mut buf).await.expect("eof"), 0);
        });
    }
}
