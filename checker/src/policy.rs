//! The router's safety policy as a typed value. Reading it from TOML happens
//! outside the trusted base (in the packet engine and the command line).

use serde::{Deserialize, Serialize};

/// Who the client is, and so what its programs are confined to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientKind {
    /// Confinement to THIS_IP.
    EndUser,
    /// Confinement to THIS_SUBNET_IP; GENERATE to THIS_IP (the client router).
    EdgeRouter,
    /// An overlay network's owner: confinement to the packets carrying THIS_ON, its flow
    /// id; no THIS_IP, so no GENERATE (appended: older policies keep their encoding).
    OnOwner,
}

/// Cost units of each routine, per packet touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnitCosts {
    /// DISCARD
    pub discard: u64,
    /// GROUP_BY_DESTINATION, both forms
    pub group_by_destination: u64,
    /// GROUP_BY_SOURCE, both forms
    pub group_by_source: u64,
    /// GROUP_BY_CONTENT
    pub group_by_content: u64,
    /// CONTAINS_STRING
    pub contains_string: u64,
    /// GENERATE, per item generated (one per address or content; a string: one per 64 bytes or part, at least 1)
    pub generate: u64,
    /// COUNT
    pub count: u64,
    /// DISTINCT_DESTINATIONS
    pub distinct_destinations: u64,
    /// GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT, GROUP_BY_DESTINATION_PORT (both forms) and
    /// TCP_FLAGS: by [`Field`](crate::bytecode::Field), in its order
    pub by_field: [u64; 4],
    /// DISTINCT_DESTINATION_PORTS
    pub distinct_ports: u64,
    /// Each grouping made (a grouping form of GROUP_BY_*, GROUP_BY_CONTENT), once, besides its
    /// unit per packet: what grouping costs whatever the set's size
    pub grouping: u64,
    /// Every instruction executed (and each element of a grouping or list it copies)
    pub instruction: u64,
    /// Each 64 bytes (or part) of a string that an instruction copies, joins, compares, searches for or sends
    pub bytes: u64,
}

impl UnitCosts {
    /// What each iteration of a loop costs: INSTRUCTION, and never less than 1.
    pub fn loop_turn(&self) -> u64 {
        self.instruction.max(1)
    }
}

/// A router's safety policy (CONTRACT section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Policy {
    /// End user or edge router.
    pub client: ClientKind,
    /// Longest LIFETIME accepted, in seconds.
    pub max_lifetime_secs: u64,
    /// Complexity^up: cost units per window.
    pub complexity_up: u64,
    /// Cost^up: complexity times lifetime in seconds.
    pub cost_up: u64,
    /// W: packets per execution window.
    pub window_packets: u32,
    /// Unit costs.
    pub unit_costs: UnitCosts,
    /// Longest string a parameter may be bound to, in bytes.
    pub max_param_bytes: u32,
    /// Most bytes (IP packets, headers included) a program may GENERATE per window.
    pub generated_bytes_up: u64,
}
