//! Network faults on madsim's simulated network: partitions, clogged nodes, packet loss.
//!
//! Owns: which links are cut and which nodes are clogged, so that a `heal` undoes exactly
//! what was done. A partition cuts every link (both directions) between nodes on different
//! sides; nodes on no side keep every link. A new partition replaces the previous one.
//! madsim's TCP stalls on a cut link and delivers its backlog once healed (possibly seconds
//! later), so protocols see silence, then stale messages — what a real partition does.

use madsim::net::NetSim;
use madsim::task::NodeId;
use std::collections::BTreeSet;

/// The network faults in force.
#[derive(Default)]
pub struct Network {
    /// Cut links, directed.
    cut: BTreeSet<(NodeId, NodeId)>,
    clogged: BTreeSet<NodeId>,
    loss: bool,
}

impl Network {
    /// Cuts every link between nodes of different sides (after healing any earlier partition).
    pub fn partition(&mut self, sides: &[Vec<NodeId>]) {
        self.heal_partition();
        let net = NetSim::current();
        for (i, a_side) in sides.iter().enumerate() {
            for b_side in &sides[i + 1..] {
                for &a in a_side {
                    for &b in b_side {
                        if a != b {
                            for link in [(a, b), (b, a)] {
                                if self.cut.insert(link) {
                                    net.clog_link(link.0, link.1);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reconnects every cut link.
    pub fn heal_partition(&mut self) {
        let net = NetSim::current();
        for (a, b) in std::mem::take(&mut self.cut) {
            net.unclog_link(a, b);
        }
    }

    /// Stops all traffic to and from a node.
    pub fn clog(&mut self, node: NodeId) {
        if self.clogged.insert(node) {
            NetSim::current().clog_node(node);
        }
    }

    /// Lets a clogged node's traffic flow again.
    pub fn unclog(&mut self, node: NodeId) {
        if self.clogged.remove(&node) {
            NetSim::current().unclog_node(node);
        }
    }

    /// Drops this fraction of packets everywhere (TCP retransmits; datagrams are lost).
    pub fn set_loss(&mut self, rate: f64) {
        self.loss = rate > 0.0;
        NetSim::current().update_config(|config| config.packet_loss_rate = rate);
    }

    /// Undoes every network fault.
    pub fn heal_all(&mut self) {
        self.heal_partition();
        for node in std::mem::take(&mut self.clogged) {
            NetSim::current().unclog_node(node);
        }
        if self.loss {
            self.set_loss(0.0);
        }
    }

    /// Whether a node is clogged.
    pub fn is_clogged(&self, node: NodeId) -> bool {
        self.clogged.contains(&node)
    }

    /// Whether any network fault is in force.
    pub fn is_faulty(&self) -> bool {
        !self.cut.is_empty() || !self.clogged.is_empty() || self.loss
    }
}
