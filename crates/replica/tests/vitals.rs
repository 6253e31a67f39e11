//! Pauses, clock jumps and a limping disk, injected through the seams into
//! in-process replicas over real TCP: the clock seam makes a process believe
//! it was paused or that its wall clock jumped; the disk seam makes one
//! replica's fsync slow.

use fenced_client::{AcquireOptions, Client, ClientConfig, LostReason};
use fenced_core::toolbox::clock::{Clock, Mono};
use fenced_io::clock::SystemClock;
use fenced_io::disk::{Disk, FsDisk};
use fenced_io::timed_disk::SlowDisk;
use fenced_io::transport::{BoxConn, Listener, TcpTransport, Transport};
use fenced_replica::config::ReplicaConfig;
use fenced_replica::node::Seams;
use fenced_replica::server::{self, Running};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The system clock plus injectable jumps: `mono_skip` makes time pass at
/// once (what a paused process sees when it resumes), `wall_skip_ms` steps
/// the wall clock only.
struct JumpyClock {
    real: SystemClock,
    mono_skip: AtomicU64,
    wall_skip_ms: AtomicI64,
}

impl JumpyClock {
    fn new() -> Arc<Self> {
        Arc::new(JumpyClock { real: SystemClock::new(), mono_skip: AtomicU64::new(0), wall_skip_ms: AtomicI64::new(0) })
    }

    /// As if this process had been stopped for `d`.
    fn pause(&self, d: Duration) {
        self.mono_skip.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        self.wall_skip_ms.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for JumpyClock {
    fn now(&self) -> Mono {
        Mono::from_nanos(self.real.now().as_nanos() + self.mono_skip.load(Ordering::SeqCst))
    }
    fn wall_ms(&self) -> u64 {
        (self.real.wall_ms() as i64 + self.wall_skip_ms.load(Ordering::SeqCst)) as u64
    }
}

/// TCP whose outbound connections (the ones this replica opens: its
/// AppendEntries, probes, forwards) carry at most `rate` bytes/s when `rate`
/// is non-zero: "a Gigabit interface drops to 1 Kb/s", for the sending side.
struct ThrottledTransport {
    rate: Arc<AtomicU64>,
}

struct ThrottledConn {
    inner: BoxConn,
    rate: Arc<AtomicU64>,
    /// The time the last write's bytes take at `rate`, still to wait out.
    wait: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Transport for ThrottledTransport {
    fn connect(&self, addr: &str) -> BoxFuture<'static, std::io::Result<BoxConn>> {
        let (connect, rate) = (TcpTransport.connect(addr), self.rate.clone());
        Box::pin(async move { Ok(Box::new(ThrottledConn { inner: connect.await?, rate, wait: None }) as BoxConn) })
    }

    fn bind(&self, addr: &str) -> BoxFuture<'static, std::io::Result<Box<dyn Listener>>> {
        TcpTransport.bind(addr)
    }
}

impl AsyncRead for ThrottledConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ThrottledConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if let Some(wait) = self.wait.as_mut() {
            std::task::ready!(wait.as_mut().poll(cx));
            self.wait = None;
        }
        let rate = self.rate.load(Ordering::SeqCst);
        if rate == 0 {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        let n = buf.len().min(4096);
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..n]))?;
        self.wait = Some(Box::pin(tokio::time::sleep(Duration::from_secs_f64(written as f64 / rate as f64))));
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

async fn start(
    id: u64,
    peers: &BTreeMap<u64, String>,
    dir: &Path,
    clock: Arc<dyn Clock>,
    disk: Arc<dyn Disk>,
    transport: Arc<dyn Transport>,
) -> Running {
    let mut config = ReplicaConfig::new(id, peers[&id].clone(), peers.clone());
    config.heartbeat = Duration::from_millis(50);
    config.election_timeout_min = Duration::from_millis(500);
    config.election_timeout_max = Duration::from_millis(1000);
    config.min_ttl =
        fenced_replica::config::check::safe_min_ttl(config.election_timeout_min, config.election_timeout_max);
    let _ = dir;
    let seams = Seams { transport, disk, clock, seed: id, key_entropy: [9; 32] };
    server::start(config, seams).await.expect("replica starts")
}

struct Cluster {
    running: BTreeMap<u64, Running>,
    clocks: BTreeMap<u64, Arc<JumpyClock>>,
    delays: BTreeMap<u64, Arc<AtomicU64>>,
    /// Each replica's outbound byte rate limit (0: none).
    throttles: BTreeMap<u64, Arc<AtomicU64>>,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let peers: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{}", free_port()))).collect();
    let (mut running, mut clocks, mut delays) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut throttles = BTreeMap::new();
    for id in 1..=3u64 {
        let clock = JumpyClock::new();
        let fs: Arc<dyn Disk> = Arc::new(FsDisk::open(dir.path().join(id.to_string())).expect("disk"));
        let slow = SlowDisk::new(fs);
        delays.insert(id, slow.delay_handle());
        let rate = Arc::new(AtomicU64::new(0));
        throttles.insert(id, rate.clone());
        let transport = Arc::new(ThrottledTransport { rate });
        running.insert(id, start(id, &peers, dir.path(), clock.clone(), Arc::new(slow), transport).await);
        clocks.insert(id, clock);
    }
    let client = Client::new(ClientConfig::new(peers.values().cloned().collect())).expect("client");
    wait_until("a leader and the signing key", Duration::from_secs(30), || async {
        client.cluster_key().await.is_ok()
    })
    .await;
    Cluster { running, clocks, delays, throttles, client, _dir: dir }
}

impl Cluster {
    fn leader(&self) -> Option<u64> {
        self.running.iter().find(|(_, r)| r.replica.is_leader()).map(|(id, _)| *id)
    }

    async fn stop(self) {
        for (_, r) in self.running {
            r.stop().await;
        }
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, within: Duration, mut f: impl FnMut() -> F) {
    let clock = SystemClock::new();
    let start = clock.now();
    while !f().await {
        assert!(clock.now().since(start) < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_sees_a_long_pause_steps_down_until_a_quorum_reconfirms_it() {
    let c = cluster().await;
    let leader = c.leader().expect("a leader");
    let r = c.running[&leader].replica.clone();
    // Through the clock seam, the leader "resumes" after 3 s. No other replica
    // was actually elected, so a quorum re-confirms it.
    c.clocks[&leader].pause(Duration::from_secs(3));
    // The replica's timekeeper runs on another worker thread and may notice
    // the pause, step down and get re-confirmed by a quorum (milliseconds on
    // loopback) before this line runs on a loaded machine. So: either it
    // does not count itself leader yet, or it already recorded the step-down
    // (and so was re-confirmed). A leader that counts itself leader without
    // either fails.
    let leads = r.is_leader();
    assert!(
        !leads || r.vitals.timekeeper.health().pause_stepdowns == 1,
        "a paused leader does not count itself leader before re-confirming"
    );
    wait_until("the step-down to be recorded and cleared", Duration::from_secs(20), || async {
        let h = r.vitals.timekeeper.health();
        h.pause_stepdowns == 1 && h.pauses == 1 && !h.awaiting_reconfirm
    })
    .await;
    assert!(r.vitals.timekeeper.health().longest_pause_ms >= 2900);
    // And it serves again: a grant goes through.
    let lease = c.client.grant_lease(Duration::from_secs(30)).await.expect("lease after re-confirmation");
    c.client.acquire_on("after-pause", lease.lease, Duration::ZERO, "").await.expect("grant");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_jump_is_detected_and_reported_in_status() {
    let c = cluster().await;
    c.clocks[&2].wall_skip_ms.fetch_add(-3_600_000, Ordering::SeqCst); // an hour back
    let r = c.running[&2].replica.clone();
    wait_until("the jump to be counted", Duration::from_secs(10), || async { r.vitals.timekeeper.health().jumps == 1 })
        .await;
    let status = c.client.cluster_status_of(&r.config.listen).await.expect("status");
    let clock = status.clock.expect("clock health in status");
    assert_eq!(clock.jumps, 1);
    // Wall and monotonic deltas are truncated to ms separately: ±2 ms.
    assert!(clock.last_jump_ms.is_some_and(|j| (j + 3_600_000).abs() <= 2), "{clock:?}");
    assert!(clock.wall.earliest_ms <= clock.wall.now_ms && clock.wall.now_ms <= clock.wall.latest_ms);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_paused_longer_than_its_margin_fires_lost_then_reconfirms() {
    let c = cluster().await;
    let clock = JumpyClock::new();
    let eps: Vec<String> = c.running.values().map(|r| r.addr.clone()).collect();
    let client = Client::with_seams(ClientConfig::new(eps), Arc::new(TcpTransport), clock.clone()).expect("client");
    let guard = client.acquire("paused-holder", AcquireOptions::new(Duration::from_secs(20))).await.expect("acquire");
    let mut lost = guard.lost_signal();
    clock.pause(Duration::from_secs(2)); // far over the 200 ms margin, under the TTL
    wait_until("the pre-emptive lost signal", Duration::from_secs(10), || {
        let seen = matches!(*lost.borrow_and_update(), Some(LostReason::Paused(_))) || guard.pauses().0 == 1;
        async move { seen }
    })
    .await;
    wait_until("the re-confirmation", Duration::from_secs(20), || {
        let done = guard.pauses() == (1, 1);
        async move { done }
    })
    .await;
    assert!(guard.is_valid(), "still held after the cluster confirmed it");
    assert_eq!(*guard.lost_signal().borrow(), None);
    guard.release().await.expect("release");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_a_slow_disk_hands_leadership_to_a_peer() {
    let c = cluster().await;
    let limping = c.leader().expect("a leader");
    fenced_io::timed_disk::SlowDisk::set_delay(&c.delays[&limping], Duration::from_millis(150));
    let r = c.running[&limping].replica.clone();
    let lease = c.client.grant_lease(Duration::from_secs(60)).await.expect("lease").lease;
    // Writes make every replica fsync; the leader's take 150 ms more. They
    // still commit quickly (the followers' fsyncs make the majority while the
    // leader's own runs on its WAL writer), so the bound on their number is
    // high: the limp judgement needs five checks a second apart.
    let clock = SystemClock::new();
    let start = clock.now();
    let mut n = 0;
    while r.vitals.limp.status().transfers == 0 && clock.now().since(start) < Duration::from_secs(60) && n < 200_000 {
        let _ = c.client.keepalive(lease).await;
        n += 1;
    }
    let status = r.vitals.limp.status();
    assert_eq!(status.transfers, 1, "the limping leader transferred leadership: {status:?}");
    wait_until("another replica to lead", Duration::from_secs(20), || {
        let l = c.leader();
        async move { l.is_some_and(|l| l != limping) }
    })
    .await;
    // The cluster still works, led by a healthy replica.
    c.client.keepalive(lease).await.expect("keepalive under the new leader");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_throttled_outbound_links_shows_lower_throughput_and_hands_leadership_over() {
    let c = cluster().await;
    let limping = c.leader().expect("a leader");
    let r = c.running[&limping].replica.clone();
    // 32 KiB/s out of the leader: a heartbeat still takes a few ms (round
    // trips alone would not tell), a 64 KiB bandwidth probe takes 2 s.
    c.throttles[&limping].store(32 * 1024, Ordering::SeqCst);
    let lease = c.client.grant_lease(Duration::from_secs(60)).await.expect("lease").lease;
    let members: std::collections::BTreeSet<u64> = c.running.keys().copied().collect();
    let clock = SystemClock::new();
    let start = clock.now();
    let mut n = 0;
    let mut seen = None;
    while r.vitals.limp.status().transfers == 0 && clock.now().since(start) < Duration::from_secs(90) && n < 100_000 {
        // Replication traffic, so the leader measures its replication stream.
        let _ = c.client.keepalive(lease).await;
        n += 1;
        if r.vitals.limp.status().limping {
            seen = Some(r.vitals.peers.health(&members));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = r.vitals.limp.status();
    assert_eq!(status.transfers, 1, "the limping leader transferred leadership: {status:?}");
    let why = status.last_transfer_reason.unwrap_or_default();
    assert!(why.contains("link throughput"), "transferred for its links' throughput: {why}");
    // While it judged itself limping, its status showed why: its outbound
    // link throughput to each peer below what that peer reported of its own.
    let health = seen.expect("the limping judgement was seen before the transfer");
    for (peer, h) in &health {
        let own = h.link_throughput.busy_bytes_per_s.expect("own link rate measured");
        let theirs = h.reported_link_bytes_per_s.expect("peer reported its link rate") as f64;
        assert!(own < theirs, "peer {peer}: own link {own} B/s vs the peer's {theirs} B/s: {h:?}");
        assert!(h.replication_throughput.samples > 0, "replication to {peer} measured: {h:?}");
    }
    wait_until("another replica to lead", Duration::from_secs(20), || {
        let l = c.leader();
        async move { l.is_some_and(|l| l != limping) }
    })
    .await;
    c.throttles[&limping].store(0, Ordering::SeqCst);
    c.client.keepalive(lease).await.expect("keepalive under the new leader");
    c.stop().await;
}
