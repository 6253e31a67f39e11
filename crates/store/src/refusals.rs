//! The store's recent refusals, for its console (`GET /v1/refusals`, and the
//! last few per key in `GET /v1/keys`): which write (or fenced read) was
//! refused, why, with which token against which fence, who sent it and when.
//!
//! Observability, not state: kept in memory only, bounded, lost on restart,
//! and never consulted by a decision. A refusal is recorded after it was
//! answered, so it changes nothing the API promises. Every bound is a count
//! of entries whose size is itself bounded (a key is at most
//! `key_len_max`, a message at most [`MESSAGE_MAX`]), so the whole record
//! stays within a few MiB whatever callers send:
//!
//! - [`RECENT_MAX`] refusals in one ring, newest last, for the feed;
//! - [`PER_KEY_MAX`] per key, for [`KEYS_MAX`] keys, so that one key's
//!   refusals stay visible while other keys are refused many times (the
//!   key refused longest ago is forgotten first).
//!
//! Entries are shared (`Arc`) between the ring and the per-key lists, so a
//! refusal costs one allocation however many lists hold it.

use fenced_core::toolbox::clock::Clock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Refusals kept for the feed. A thousand covers minutes of a misbehaving
/// client at the rates the console can show, and at most about 2.5 MiB
/// (a 1 KiB key, a message, a sender each).
pub const RECENT_MAX: usize = 1000;
/// Refusals kept per key: the last few tell the story of one key (a paused
/// client's stale write, a retry, a forgery) without growing with traffic.
pub const PER_KEY_MAX: usize = 5;
/// Keys whose last refusals are kept. Keys in refusals are chosen by the
/// caller (a forged write may name any key), so this must be a fixed bound,
/// not the store's key count.
pub const KEYS_MAX: usize = 1000;
/// A refusal's message is cut to this many bytes: it is the store's own
/// text, but it quotes names the caller chose.
pub const MESSAGE_MAX: usize = 300;

/// One refused request, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Increases by one per refusal since the store started: newer is
    /// larger. Not served: its gaps would count the refusals of keys a
    /// caller may not read.
    #[serde(skip_serializing, default)]
    pub seq: u64,
    /// The store's wall clock when it refused (display only).
    pub at_ms: u64,
    pub key: String,
    /// The lock that guards the key.
    pub lock: String,
    /// `put`, `delete`, or `read` (a fenced read refused as stale).
    pub op: String,
    pub status: u16,
    /// The error code answered (`stale_token`, `bad_token`, `forbidden`, ...).
    pub code: String,
    pub message: String,
    /// The token presented, when the refusal compared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presented: Option<u64>,
    /// The fence it was compared with (`stale_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Who sent it: the authenticated identity when the caller proved one,
    /// else the peer address (`host:port`).
    pub sender: String,
    /// Whether `sender` is an authenticated identity.
    pub authenticated: bool,
    /// The `Fenced-Client` header, when sent: what the caller says it is,
    /// not proved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// A refusal to record (its `seq` and `at_ms` are the record's).
#[derive(Debug, Clone)]
pub struct NewRefusal {
    pub key: String,
    pub lock: String,
    pub op: &'static str,
    pub status: u16,
    pub code: String,
    pub message: String,
    pub presented: Option<u64>,
    pub current: Option<u64>,
    pub sender: String,
    pub authenticated: bool,
    pub client: Option<String>,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    recent: VecDeque<Arc<Refusal>>,
    per_key: BTreeMap<String, VecDeque<Arc<Refusal>>>,
    /// The seq of each kept key's last refusal, to forget the key refused
    /// longest ago in O(log n).
    by_last: BTreeMap<u64, String>,
}

/// The bounded record (see the module documentation).
pub struct Refusals {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    recent_max: usize,
    keys_max: usize,
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push('…');
    }
    s
}

impl Refusals {
    /// The record with the documented bounds.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_bounds(clock, RECENT_MAX, KEYS_MAX)
    }

    /// Smaller bounds, for tests.
    pub fn with_bounds(clock: Arc<dyn Clock>, recent_max: usize, keys_max: usize) -> Self {
        Refusals {
            inner: Mutex::new(Inner::default()),
            clock,
            recent_max: recent_max.max(1),
            keys_max: keys_max.max(1),
        }
    }

    /// Keep `r`, forgetting the oldest beyond the bounds.
    pub fn record(&self, r: NewRefusal) {
        let at_ms = self.clock.wall_ms();
        // A poisoned lock only means a panic elsewhere mid-record: the
        // record is observability, so keep using it.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.seq += 1;
        let seq = inner.seq;
        let entry = Arc::new(Refusal {
            seq,
            at_ms,
            key: r.key,
            lock: r.lock,
            op: r.op.to_string(),
            status: r.status,
            code: r.code,
            message: cut(r.message, MESSAGE_MAX),
            presented: r.presented,
            current: r.current,
            sender: r.sender,
            authenticated: r.authenticated,
            client: r.client,
        });
        inner.recent.push_back(entry.clone());
        while inner.recent.len() > self.recent_max {
            inner.recent.pop_front();
        }
        let Inner { per_key, by_last, .. } = &mut *inner;
        let list = per_key.entry(entry.key.clone()).or_default();
        if let Some(prev) = list.back() {
            by_last.remove(&prev.seq);
        }
        list.push_back(entry.clone());
        while list.len() > PER_KEY_MAX {
            list.pop_front();
        }
        by_last.insert(seq, entry.key.clone());
        while per_key.len() > self.keys_max {
            match by_last.pop_first() {
                Some((_, key)) => {
                    per_key.remove(&key);
                }
                None => break,
            }
        }
    }

    /// Up to `limit` refusals on keys starting with `prefix` that `visible`
    /// admits, newest first.
    pub fn recent(&self, prefix: &str, limit: usize, visible: impl Fn(&str) -> bool) -> Vec<Refusal> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .recent
            .iter()
            .rev()
            .filter(|r| r.key.starts_with(prefix) && visible(&r.key))
            .take(limit)
            .map(|r| Refusal::clone(r))
            .collect()
    }

    /// The last refusals of `key` (at most [`PER_KEY_MAX`]), newest first.
    pub fn of_key(&self, key: &str) -> Vec<Refusal> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.per_key.get(key).map_or_else(Vec::new, |l| l.iter().rev().map(|r| Refusal::clone(r)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenced_core::toolbox::clock::Mono;

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> Mono {
            Mono::ZERO
        }
        fn wall_ms(&self) -> u64 {
            1_700_000_000_000
        }
    }

    fn refusal(key: &str, token: u64) -> NewRefusal {
        NewRefusal {
            key: key.into(),
            lock: key.into(),
            op: "put",
            status: 409,
            code: "stale_token".into(),
            message: "stale".into(),
            presented: Some(token),
            current: Some(token + 1),
            sender: "127.0.0.1:5000".into(),
            authenticated: false,
            client: None,
        }
    }

    #[test]
    fn the_ring_is_bounded_and_keeps_the_newest_in_order() {
        let r = Refusals::with_bounds(Arc::new(Fixed), 10, 100);
        for t in 1..=25 {
            r.record(refusal(&format!("k{}", t % 3), t));
        }
        let all = r.recent("", usize::MAX, |_| true);
        assert_eq!(all.len(), 10, "bounded at 10");
        let seqs: Vec<u64> = all.iter().map(|x| x.seq).collect();
        assert_eq!(seqs, (16..=25).rev().collect::<Vec<_>>(), "the newest 10, newest first");
        assert_eq!(all[0].presented, Some(25));
        assert_eq!(all[0].at_ms, 1_700_000_000_000);
        // Prefix, visibility and limit.
        let k1: Vec<u64> = r.recent("k1", 100, |_| true).iter().map(|x| x.seq).collect();
        assert_eq!(k1, vec![25, 22, 19, 16]);
        let shown = r.recent("", 100, |k| k != "k1");
        assert!(shown.len() == 6 && shown.iter().all(|x| x.key != "k1"), "hidden keys stay hidden");
        assert_eq!(r.recent("", 2, |_| true).len(), 2);
    }

    #[test]
    fn each_key_keeps_its_last_few_and_the_longest_quiet_key_is_forgotten() {
        let r = Refusals::with_bounds(Arc::new(Fixed), 3, 2);
        for t in 1..=8 {
            r.record(refusal("a", t));
        }
        let a: Vec<u64> = r.of_key("a").iter().map(|x| x.presented.unwrap_or(0)).collect();
        assert_eq!(a, vec![8, 7, 6, 5, 4], "the last {PER_KEY_MAX} of a, newest first");
        // The ring (3) no longer holds a's refusals, but a's own list does.
        r.record(refusal("b", 100));
        r.record(refusal("b", 101));
        r.record(refusal("b", 102));
        assert!(r.recent("a", 10, |_| true).is_empty());
        assert_eq!(r.of_key("a").len(), PER_KEY_MAX);
        // A third key: a (refused longest ago) is forgotten, b is kept.
        r.record(refusal("c", 200));
        assert!(r.of_key("a").is_empty());
        assert_eq!(r.of_key("b").len(), 3);
        assert_eq!(r.of_key("c").len(), 1);
        // b refused again: c is now the one refused longest ago.
        r.record(refusal("b", 103));
        r.record(refusal("d", 300));
        assert!(r.of_key("c").is_empty());
        assert_eq!(r.of_key("b")[0].presented, Some(103));
    }

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary() {
        let r = Refusals::new(Arc::new(Fixed));
        let mut n = refusal("k", 1);
        n.message = "é".repeat(MESSAGE_MAX);
        r.record(n);
        let m = &r.of_key("k")[0].message;
        assert!(m.len() <= MESSAGE_MAX + '…'.len_utf8() && m.ends_with('…'), "{} bytes", m.len());
    }
}
