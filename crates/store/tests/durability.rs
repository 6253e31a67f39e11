//! Restart, torn tails, compaction, and crashes that drop unsynced data.

mod common;

use common::*;
use fenced_io::disk::{Disk, MemDisk};
use fenced_store::engine::{SNAPSHOT, WAL};
use fenced_store::StoreError;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn restart_keeps_values_and_max_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    for (k, t) in [("a", 3), ("b", 9), ("a", 5)] {
        c.put(k, format!("{k}{t}"), t, &fence(k, t).signed, None).await.expect("put");
    }
    s.stop().await;
    let s = start_dir(dir.path(), config(false)).await;
    assert_eq!(s.recovery.wal_records, 3);
    let c = client(&s.addr);
    let a = c.get("a").await.expect("get").expect("a present");
    assert_eq!((&a.value[..], a.version, a.token), (&b"a5"[..], 2, 5));
    assert_eq!(c.max_token("a").await.expect("fence"), 5);
    assert_eq!(c.max_token("b").await.expect("fence"), 9);
    assert!(matches!(
        c.put("a", "x", 4, &fence("a", 4).signed, None).await,
        Err(StoreError::StaleToken { current: 5, .. })
    ));
    s.stop().await;
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn torn_tail_is_truncated_and_reported_and_data_is_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    c.put("k", "v1", 1, &fence("k", 1).signed, None).await.expect("put");
    c.put("k", "v2", 2, &fence("k", 2).signed, None).await.expect("put");
    s.stop().await;
    let wal = dir.path().join(WAL);
    let good_len = std::fs::metadata(&wal).expect("wal").len();
    // A crash mid-append: half a frame header and some garbage.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&wal)
        .expect("open")
        .write_all(&[9, 0, 0, 0, 1, 2, 3])
        .expect("append");

    let logs = LogBuf::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let s = start_dir(dir.path(), config(false)).await;
    drop(guard);
    assert_eq!(s.recovery.torn_bytes, 7);
    let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf8");
    assert!(text.contains("WARN") && text.contains("torn or corrupt tail"), "no warning logged: {text}");
    assert_eq!(std::fs::metadata(&wal).expect("wal").len(), good_len, "tail truncated");
    let c = client(&s.addr);
    let o = c.get("k").await.expect("get").expect("present");
    assert_eq!((&o.value[..], o.token), (&b"v2"[..], 2));
    // And the store appends cleanly after the cut.
    c.put("k", "v3", 3, &fence("k", 3).signed, None).await.expect("put after repair");
    s.stop().await;
    let s = start_dir(dir.path(), config(false)).await;
    assert_eq!((s.recovery.torn_bytes, s.recovery.wal_records), (0, 3));
    s.stop().await;
}

#[tokio::test]
async fn corrupt_record_in_the_middle_of_the_wal_stops_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    for t in 1..=3 {
        c.put("k", format!("v{t}"), t, &fence("k", t).signed, None).await.expect("put");
    }
    s.stop().await;
    let wal = dir.path().join(WAL);
    let mut bytes = std::fs::read(&wal).expect("wal");
    // Bit rot in the first record's payload; the two after it are intact.
    bytes[10] ^= 0x01;
    std::fs::write(&wal, &bytes).expect("write");

    let seams = fenced_store::StoreSeams {
        transport: Arc::new(fenced_io::transport::TcpTransport),
        disk: Arc::new(fenced_io::disk::FsDisk::open(dir.path()).expect("disk")),
        clock: Arc::new(fenced_io::clock::SystemClock::new()),
    };
    let err = fenced_store::start(config(false), seams).await.err().expect("the store must not start");
    let msg = err.to_string();
    assert!(msg.contains("store WAL") && msg.contains("not a torn tail") && msg.contains("byte 0"), "{msg}");
    assert_eq!(std::fs::read(&wal).expect("wal"), bytes, "nothing was truncated");
}

#[tokio::test]
async fn compaction_snapshots_and_empties_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(false);
    cfg.compact_wal_bytes = 512;
    let s = start_dir(dir.path(), cfg.clone()).await;
    let c = client(&s.addr);
    for t in 1..=60u64 {
        let k = format!("k{}", t % 7);
        c.put(&k, format!("v{t}"), t, &fence(&k, t).signed, None).await.expect("put");
    }
    c.delete("k0", &fence("k0", 100), None).await.expect("delete");
    s.stop().await;
    assert!(dir.path().join(SNAPSHOT).exists(), "a snapshot was written");
    assert!(std::fs::metadata(dir.path().join(WAL)).expect("wal").len() < 512 + 256);
    let s = start_dir(dir.path(), cfg).await;
    assert!(s.recovery.snapshot_keys > 0);
    let c = client(&s.addr);
    for t in 54..=60u64 {
        let k = format!("k{}", t % 7);
        if k == "k0" {
            assert_eq!(c.get(&k).await.expect("get"), None);
            assert_eq!(c.max_token(&k).await.expect("fence"), 100);
            continue;
        }
        let o = c.get(&k).await.expect("get").expect("present");
        assert_eq!((o.value.to_vec(), o.token), (format!("v{t}").into_bytes(), t));
        assert_eq!(c.max_token(&k).await.expect("fence"), t);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loses_only_unsynced_data_never_an_acknowledged_write() {
    let disk = MemDisk::new();
    let s = start_on(Arc::new(disk.clone()), config(false)).await;
    let addr = s.addr.clone();
    let acked = Arc::new(Mutex::new(Vec::new()));
    // Answers of any kind: a write with a token older than its key's is
    // refused (not acknowledged), so how many are acknowledged depends on the
    // interleaving; counting answers bounds the wait whatever it is.
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..20u64 {
        let (addr, acked, answered) = (addr.clone(), acked.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let c = client(&addr);
            for i in 0..25u64 {
                let key = format!("k{}", (w + i) % 5);
                let token = i * 100 + w;
                if let Ok(ok) = c.put(&key, format!("{token}"), token, &fence(&key, token).signed, None).await {
                    acked.lock().expect("acked").push((key, token, ok.version));
                }
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    // Crash in the middle of the load: after 200 of the 500 writes were
    // answered (a bounded wait: the test fails saying so if they never are).
    let mut polls = 0;
    while answered.load(std::sync::atomic::Ordering::SeqCst) < 200 {
        polls += 1;
        assert!(polls < 60_000, "the writers answered fewer than 200 writes in 60,000 polls (2 ms apart)");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let before_crash = acked.lock().expect("acked").clone();
    assert!(!before_crash.is_empty(), "no write was acknowledged before the crash; nothing would be checked");
    // Unsynced bytes at the crash: must vanish, not be read as a torn tail.
    disk.append(WAL, b"unsynced garbage").expect("append");
    disk.crash();
    s.stop().await;
    for t in tasks {
        let _ = t.await;
    }
    let s = start_on(Arc::new(disk.clone()), config(false)).await;
    assert_eq!(s.recovery.torn_bytes, 0, "unsynced bytes were dropped by the crash");
    for (key, token, _) in &before_crash {
        let max = s.store.max_token(key).expect("fence");
        assert!(max >= *token, "{key}: acknowledged token {token} lost (max_token {max})");
    }
    // Per key, the last acknowledged version before the crash is still readable (or a later one).
    for key in ["k0", "k1", "k2", "k3", "k4"] {
        let Some(last) = before_crash.iter().filter(|(k, ..)| k == key).map(|(_, _, v)| *v).max() else { continue };
        let o = s.store.get(key).expect("get").expect("present");
        assert!(o.version >= last, "{key}: version {} < acknowledged {last}", o.version);
    }
    s.stop().await;
}
