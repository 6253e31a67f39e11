//! Remembered write results, so that a retried write (same client and request
//! id) gets the first answer and is not applied twice.
//!
//! Memory is bounded twice: the last `per_client` results of each client, and
//! at most `clients_max` clients, the least recently active forgotten first.
//! A retry older than what a client's window still holds is answered with
//! `request_too_old` rather than executed again, since executing it could
//! apply it twice. That assumes a client's request ids grow, as the lock
//! client's do.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<R> {
    /// Never seen: execute it.
    New,
    /// Seen: answer with this.
    Done(R),
    /// Older than the remembered window: refuse.
    TooOld,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Client<R> {
    replies: VecDeque<(u64, R)>,
    /// The highest request id pushed out of the window.
    evicted_max: Option<u64>,
    /// Recency stamp, key into `Dedup::by_recency`.
    stamp: u64,
}

/// The remembered results (`R`: the write result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dedup<R> {
    clients: BTreeMap<String, Client<R>>,
    by_recency: BTreeMap<u64, String>,
    next_stamp: u64,
}

impl<R> Default for Dedup<R> {
    fn default() -> Self {
        Dedup { clients: BTreeMap::new(), by_recency: BTreeMap::new(), next_stamp: 0 }
    }
}

impl<R: Clone> Dedup<R> {
    pub fn lookup(&self, client: &str, request_id: u64) -> Seen<R> {
        let Some(c) = self.clients.get(client) else { return Seen::New };
        if let Some((_, r)) = c.replies.iter().find(|(id, _)| *id == request_id) {
            return Seen::Done(r.clone());
        }
        match c.evicted_max {
            Some(max) if request_id <= max => Seen::TooOld,
            _ => Seen::New,
        }
    }

    /// Remember `reply` for `(client, request_id)`.
    pub fn record(&mut self, client: &str, request_id: u64, reply: R, per_client: usize, clients_max: usize) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let c = self.clients.entry(client.to_string()).or_insert_with(|| Client {
            replies: VecDeque::new(),
            evicted_max: None,
            stamp,
        });
        self.by_recency.remove(&c.stamp);
        c.stamp = stamp;
        self.by_recency.insert(stamp, client.to_string());
        c.replies.retain(|(id, _)| *id != request_id);
        c.replies.push_back((request_id, reply));
        while c.replies.len() > per_client.max(1) {
            if let Some((id, _)) = c.replies.pop_front() {
                c.evicted_max = Some(c.evicted_max.map_or(id, |m| m.max(id)));
            }
        }
        while self.clients.len() > clients_max.max(1) {
            let Some((_, oldest)) = self.by_recency.pop_first() else { break };
            self.clients.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: u16) -> u16 {
        n
    }

    #[test]
    fn remembers_window_and_refuses_older() {
        let mut d = Dedup::<u16>::default();
        for id in 1..=5 {
            d.record("a", id, r(id as u16), 3, 10);
        }
        assert_eq!(d.lookup("a", 5), Seen::Done(r(5)));
        assert_eq!(d.lookup("a", 3), Seen::Done(r(3)));
        assert_eq!(d.lookup("a", 2), Seen::TooOld);
        assert_eq!(d.lookup("a", 6), Seen::New);
        assert_eq!(d.lookup("b", 1), Seen::New);
    }

    #[test]
    fn least_recent_client_is_forgotten() {
        let mut d = Dedup::<u16>::default();
        d.record("a", 1, r(1), 3, 2);
        d.record("b", 1, r(1), 3, 2);
        d.record("a", 2, r(2), 3, 2);
        d.record("c", 1, r(1), 3, 2);
        assert_eq!(d.lookup("b", 1), Seen::New);
        assert_eq!(d.lookup("a", 1), Seen::Done(r(1)));
        assert_eq!(d.lookup("c", 1), Seen::Done(r(1)));
    }
}
