//! The maintenance API: membership changes, drain, handshake reports
//! (`docs/operations.md`).

use crate::client::Attempt;
use crate::{Client, ClientError};
use bytes::Bytes;
use fenced_core::admin::{AddMember, DrainStatus, Membership, PeersReport, RemoveMember, ReplaceMember};
use hyper::Method;
use std::time::Duration;

/// How long a drain may take: handing leadership off and letting in-flight
/// calls finish.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// A membership change may wait for a new learner to catch up.
const CHANGE_WAIT: Duration = Duration::from_secs(90);

impl Client {
    /// The replicated membership, as the first replica that answers knows it.
    pub async fn members(&self) -> Result<Membership, ClientError> {
        self.call_waiting(Method::GET, "/v1/cluster/members", &(), Duration::ZERO).await
    }

    /// The membership as the replica at `endpoint` knows it (not failed
    /// over: a removed or lagging replica answers with its stale view).
    pub async fn members_of(&self, endpoint: &str) -> Result<Membership, ClientError> {
        match self.attempt(endpoint, &Method::GET, "/v1/cluster/members", &Bytes::new(), Duration::ZERO).await {
            Attempt::Done(r) => r,
            Attempt::Next(e) => Err(ClientError::Unavailable(e)),
        }
    }

    /// Add replica `id` at `addr`: learner first, voter once caught up.
    pub async fn add_member(&self, id: u64, addr: &str, force: bool) -> Result<Membership, ClientError> {
        let body = AddMember { id, addr: addr.into(), learner_only: false, force };
        self.call_waiting(Method::POST, "/v1/cluster/members/add", &body, CHANGE_WAIT).await
    }

    /// Remove replica `id` from the cluster.
    pub async fn remove_member(&self, id: u64, force: bool) -> Result<Membership, ClientError> {
        self.call_waiting(Method::POST, "/v1/cluster/members/remove", &RemoveMember { id, force }, CHANGE_WAIT).await
    }

    /// Replica `new` at `addr` takes voter `old`'s place.
    pub async fn replace_member(&self, old: u64, new: u64, addr: &str, force: bool) -> Result<Membership, ClientError> {
        let body = ReplaceMember { old, new, addr: addr.into(), force };
        self.call_waiting(Method::POST, "/v1/cluster/members/replace", &body, CHANGE_WAIT).await
    }

    /// A client of the one replica at `endpoint`, with this one's timeouts,
    /// credentials and transport. (It used to be a plain TCP client: against
    /// TLS replicas, `fenced cluster drain` failed with `invalid HTTP
    /// version parsed`, issue 17.)
    fn only(&self, endpoint: &str) -> Result<Client, ClientError> {
        self.with_endpoints(vec![endpoint.to_string()])
    }

    /// Drain the replica at `endpoint` (not failed over: that one).
    pub async fn drain_at(&self, endpoint: &str) -> Result<DrainStatus, ClientError> {
        self.only(endpoint)?.call_waiting(Method::POST, "/v1/cluster/drain", &(), DRAIN_WAIT).await
    }

    /// What the replica at `endpoint` saw at its peer handshakes.
    pub async fn peers_of(&self, endpoint: &str) -> Result<PeersReport, ClientError> {
        self.only(endpoint)?.call_waiting(Method::GET, "/v1/cluster/peers", &(), Duration::ZERO).await
    }
}
