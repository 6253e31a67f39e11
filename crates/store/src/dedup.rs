//! Remembered write results, so that a retried write (same caller, client
//! and request id) gets the first answer and is not applied twice.
//!
//! # Whose answer is whose
//! A request id is bound to the authenticated caller: entries live under the
//! caller's identity (the *owner*, `""` when the store runs without a
//! policy), then under the `Fenced-Client` it sent. Two identities that send
//! the same client and request id therefore never see each other's answers,
//! and each entry also remembers a [`Fingerprint`] of the request it answered
//! (method, key, token, `If-Match`, a digest of the body): the same id with a
//! different request is refused ([`Seen::Reused`]) instead of being told the
//! first request's outcome.
//!
//! # Memory, and why one identity cannot evict another
//! Three bounds: the last `per_client` results of each client; at most
//! `clients_per_owner` clients per owner, the owner's least recently active
//! client forgotten first; at most `owners_max` owners. Eviction only ever
//! happens inside one owner, caused by that owner's own traffic, so no
//! identity can push another's window out (and turn a lost-reply retry into a
//! second execution). Owners are never forgotten; when `owners_max` is
//! reached a new owner's deduplicated writes are refused ([`Seen::Full`]).
//! With a policy, owners are identities that hold a write grant, a set the
//! administrator controls, so the bound is a configuration limit rather than
//! something a client can exhaust.
//!
//! A retry older than what a client's window still holds is answered with
//! `request_too_old` rather than executed again, since executing it could
//! apply it twice. That assumes a client's request ids grow, as the lock
//! client's do.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A digest of everything that makes a write the write it is.
pub type Fingerprint = [u8; 32];

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<R> {
    /// Never seen: execute it.
    New,
    /// Seen, for this very request: answer with this.
    Done(R),
    /// Seen, but for a different request: refuse, change nothing.
    Reused,
    /// Older than the remembered window: refuse.
    TooOld,
    /// A new owner, and `owners_max` owners are remembered: refuse.
    Full,
}

/// How much is remembered (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub owners_max: usize,
    pub clients_per_owner: usize,
    pub per_client: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reply<R> {
    request_id: u64,
    fingerprint: Fingerprint,
    reply: R,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Client<R> {
    replies: VecDeque<Reply<R>>,
    /// The highest request id pushed out of the window.
    evicted_max: Option<u64>,
    /// Recency stamp, key into `Owner::by_recency`.
    stamp: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Owner<R> {
    clients: BTreeMap<String, Client<R>>,
    by_recency: BTreeMap<u64, String>,
}

impl<R> Default for Owner<R> {
    fn default() -> Self {
        Owner { clients: BTreeMap::new(), by_recency: BTreeMap::new() }
    }
}

/// The remembered results (`R`: the write's outcome).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dedup<R> {
    owners: BTreeMap<String, Owner<R>>,
    next_stamp: u64,
}

impl<R> Default for Dedup<R> {
    fn default() -> Self {
        Dedup { owners: BTreeMap::new(), next_stamp: 0 }
    }
}

impl<R: Clone> Dedup<R> {
    pub fn lookup(&self, owner: &str, client: &str, request_id: u64, fp: &Fingerprint, b: Bounds) -> Seen<R> {
        let Some(o) = self.owners.get(owner) else {
            return if self.owners.len() >= b.owners_max.max(1) { Seen::Full } else { Seen::New };
        };
        let Some(c) = o.clients.get(client) else { return Seen::New };
        if let Some(r) = c.replies.iter().find(|r| r.request_id == request_id) {
            return if r.fingerprint == *fp { Seen::Done(r.reply.clone()) } else { Seen::Reused };
        }
        match c.evicted_max {
            Some(max) if request_id <= max => Seen::TooOld,
            _ => Seen::New,
        }
    }

    /// Remember `reply` for `(owner, client, request_id)`. Evicts only
    /// within `owner`.
    pub fn record(&mut self, owner: &str, client: &str, request_id: u64, fp: Fingerprint, reply: R, b: Bounds) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let o = self.owners.entry(owner.to_string()).or_default();
        let c = o.clients.entry(client.to_string()).or_insert_with(|| Client {
            replies: VecDeque::new(),
            evicted_max: None,
            stamp,
        });
        o.by_recency.remove(&c.stamp);
        c.stamp = stamp;
        o.by_recency.insert(stamp, client.to_string());
        c.replies.retain(|r| r.request_id != request_id);
        c.replies.push_back(Reply { request_id, fingerprint: fp, reply });
        while c.replies.len() > b.per_client.max(1) {
            if let Some(r) = c.replies.pop_front() {
                c.evicted_max = Some(c.evicted_max.map_or(r.request_id, |m| m.max(r.request_id)));
            }
        }
        while o.clients.len() > b.clients_per_owner.max(1) {
            let Some((_, oldest)) = o.by_recency.pop_first() else { break };
            o.clients.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds { owners_max: 10, clients_per_owner: 10, per_client: 3 };

    fn fp(n: u8) -> Fingerprint {
        [n; 32]
    }

    #[test]
    fn remembers_window_and_refuses_older() {
        let mut d = Dedup::<u16>::default();
        for id in 1..=5 {
            d.record("", "a", id, fp(id as u8), id as u16, B);
        }
        assert_eq!(d.lookup("", "a", 5, &fp(5), B), Seen::Done(5));
        assert_eq!(d.lookup("", "a", 3, &fp(3), B), Seen::Done(3));
        assert_eq!(d.lookup("", "a", 2, &fp(2), B), Seen::TooOld);
        assert_eq!(d.lookup("", "a", 6, &fp(6), B), Seen::New);
        assert_eq!(d.lookup("", "b", 1, &fp(1), B), Seen::New);
    }

    #[test]
    fn a_different_request_under_the_same_id_is_reused_not_answered() {
        let mut d = Dedup::<u16>::default();
        d.record("alice", "c", 7, fp(1), 1, B);
        assert_eq!(d.lookup("alice", "c", 7, &fp(1), B), Seen::Done(1));
        assert_eq!(d.lookup("alice", "c", 7, &fp(2), B), Seen::Reused);
    }

    #[test]
    fn owners_are_separate() {
        let mut d = Dedup::<u16>::default();
        d.record("bob", "c-shared", 7, fp(1), 1, B);
        assert_eq!(d.lookup("alice", "c-shared", 7, &fp(1), B), Seen::New, "another identity's answer is not ours");
    }

    #[test]
    fn least_recent_client_of_the_same_owner_is_forgotten() {
        let b = Bounds { clients_per_owner: 2, ..B };
        let mut d = Dedup::<u16>::default();
        d.record("o", "a", 1, fp(1), 1, b);
        d.record("o", "b", 1, fp(1), 1, b);
        d.record("o", "a", 2, fp(2), 2, b);
        d.record("o", "c", 1, fp(1), 1, b);
        assert_eq!(d.lookup("o", "b", 1, &fp(1), b), Seen::New);
        assert_eq!(d.lookup("o", "a", 1, &fp(1), b), Seen::Done(1));
        assert_eq!(d.lookup("o", "c", 1, &fp(1), b), Seen::Done(1));
    }

    #[test]
    fn one_owner_cannot_evict_another_and_a_full_table_refuses_new_owners() {
        let b = Bounds { owners_max: 2, clients_per_owner: 2, per_client: 2 };
        let mut d = Dedup::<u16>::default();
        d.record("alice", "a", 1, fp(1), 1, b);
        for c in 0..100u64 {
            d.record("mallory", &format!("m{c}"), c, fp(0), 0, b);
        }
        assert_eq!(d.lookup("alice", "a", 1, &fp(1), b), Seen::Done(1), "alice's window survives mallory's flood");
        assert_eq!(d.lookup("carol", "x", 1, &fp(1), b), Seen::Full);
    }
}
