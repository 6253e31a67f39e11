//! The address plan of one run: namespace names, interface names and
//! addresses. Pure, so that it can be tested and so that a later run can
//! recognise the leftovers of a crashed one by name alone.
//!
//! Every name carries the driver's pid: two runs on one machine (a test and
//! a manual run) never collide, and a leftover whose pid is dead is known to
//! be abandoned.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Every namespace this crate creates starts with this.
pub const NS_PREFIX: &str = "fchaos-";
/// The replicas' client and peer port.
pub const REPLICA_PORT: u16 = 7001;
/// etcd's peer port (its client port is [`REPLICA_PORT`]).
pub const ETCD_PEER_PORT: u16 = 7002;
/// The fenced store's port.
pub const STORE_PORT: u16 = 7400;

/// Names and addresses of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPlan {
    /// The driver's pid: the run id.
    pub run: u32,
    pub nodes: u64,
    /// The third octet of `10.77.X.0/24`, derived from the run id.
    pub subnet: u8,
    /// Spare replica namespaces (ids `nodes + 1…`): empty machines that a
    /// membership change (`replace`) puts in a voter's place.
    pub spares: u64,
}

impl AddressPlan {
    pub fn new(run: u32, nodes: u64) -> Self {
        AddressPlan { run, nodes, subnet: (run % 250) as u8 + 1, spares: 0 }
    }

    /// The same plan with `spares` spare replica namespaces.
    pub fn with_spares(self, spares: u64) -> Self {
        AddressPlan { spares, ..self }
    }

    /// The spare replicas' ids (not members at the start).
    pub fn spare_ids(&self) -> impl Iterator<Item = u64> {
        (self.nodes + 1)..=(self.nodes + self.spares)
    }

    pub fn prefix(&self) -> String {
        format!("{NS_PREFIX}{}-", self.run)
    }

    /// The namespace holding the bridge.
    pub fn bridge_ns(&self) -> String {
        format!("{}br", self.prefix())
    }

    pub fn node_ns(&self, id: u64) -> String {
        format!("{}n{id}", self.prefix())
    }

    pub fn store_ns(&self) -> String {
        format!("{}store", self.prefix())
    }

    /// The host-side end of the root namespace's veth. Interface names are
    /// limited to 15 bytes; a pid has at most 7 digits.
    pub fn root_veth(&self) -> String {
        format!("fc{}r", self.run)
    }

    /// The bridge-side end of a member's veth (`n1`…, `s`, `r`), inside the
    /// bridge namespace, where names cannot collide with the host's.
    pub fn bridge_port(member: &str) -> String {
        format!("p-{member}")
    }

    fn addr(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, last)
    }

    pub fn node_ip(&self, id: u64) -> Ipv4Addr {
        self.addr(id as u8)
    }

    pub fn store_ip(&self) -> Ipv4Addr {
        self.addr(100)
    }

    /// The root namespace's address on the bridge: the driver and the client
    /// processes talk from it.
    pub fn root_ip(&self) -> Ipv4Addr {
        self.addr(254)
    }

    pub fn cidr(&self) -> String {
        format!("10.77.{}.0/24", self.subnet)
    }

    pub fn node_addr(&self, id: u64) -> String {
        format!("{}:{REPLICA_PORT}", self.node_ip(id))
    }

    pub fn store_addr(&self) -> String {
        format!("{}:{STORE_PORT}", self.store_ip())
    }

    /// `1=10.77.X.1:7001,2=…`, as `fenced serve --peers` wants it.
    pub fn peers_arg(&self) -> String {
        self.ids().map(|i| format!("{i}={}", self.node_addr(i))).collect::<Vec<_>>().join(",")
    }

    /// `n1=http://10.77.X.1:7002,…`, as `etcd --initial-cluster` wants it.
    pub fn etcd_initial_cluster(&self) -> String {
        self.ids().map(|i| format!("n{i}=http://{}:{ETCD_PEER_PORT}", self.node_ip(i))).collect::<Vec<_>>().join(",")
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.ids().map(|i| self.node_addr(i)).collect()
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> {
        1..=self.nodes
    }

    /// Every member namespace (not the bridge) with its address and the
    /// short member name used for the bridge port.
    pub fn members(&self) -> BTreeMap<String, (String, Ipv4Addr)> {
        let mut m = BTreeMap::new();
        for i in self.ids().chain(self.spare_ids()) {
            m.insert(self.node_ns(i), (format!("n{i}"), self.node_ip(i)));
        }
        m.insert(self.store_ns(), ("s".to_string(), self.store_ip()));
        m
    }
}

/// The run id (driver pid) of one of our namespaces, if the name is ours.
pub fn run_of(ns: &str) -> Option<u32> {
    ns.strip_prefix(NS_PREFIX)?.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_distinct_and_short() {
        let p = AddressPlan::new(4_194_303, 5);
        assert!(p.root_veth().len() <= 15, "{}", p.root_veth());
        assert!(AddressPlan::bridge_port("store").len() <= 15);
        let mut ips: Vec<_> = p.ids().map(|i| p.node_ip(i)).collect();
        ips.push(p.store_ip());
        ips.push(p.root_ip());
        let n = ips.len();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), n);
        assert_eq!(p.members().len(), 6);
        let spared = p.clone().with_spares(1);
        assert_eq!(spared.spare_ids().collect::<Vec<_>>(), vec![6]);
        assert_eq!(spared.members().len(), 7);
        assert_eq!(spared.endpoints().len(), 5, "spares are no endpoints of the clients");
        assert!(!spared.peers_arg().contains("6="), "a spare is no initial peer: {}", spared.peers_arg());
    }

    #[test]
    fn peers_and_endpoints() {
        let p = AddressPlan::new(7, 3);
        assert_eq!(p.subnet, 8);
        assert_eq!(p.peers_arg(), "1=10.77.8.1:7001,2=10.77.8.2:7001,3=10.77.8.3:7001");
        assert_eq!(p.endpoints().len(), 3);
        assert_eq!(p.cidr(), "10.77.8.0/24");
        assert_eq!(
            p.etcd_initial_cluster(),
            "n1=http://10.77.8.1:7002,n2=http://10.77.8.2:7002,n3=http://10.77.8.3:7002"
        );
    }

    #[test]
    fn leftovers_are_recognised_by_name() {
        let p = AddressPlan::new(1234, 3);
        assert_eq!(run_of(&p.node_ns(2)), Some(1234));
        assert_eq!(run_of(&p.bridge_ns()), Some(1234));
        assert_eq!(run_of("other-ns"), None);
        assert_eq!(run_of("fchaos-x-n1"), None);
    }
}
