//! The manager's routers file and a router's own configuration, in TOML.
//!
//! The routers file is the manager's picture of the network:
//!
//! ```toml
//! [[router]]
//! id = 1                      # its NodeId in the decision log: never reuse one
//! name = "a"
//! address = "127.0.0.1:7101"
//! key = "64 hex digits"       # its ed25519 public key
//! capacity = { bps = 1000000, pps = 1000, units = 100 }
//!
//! [[link]]
//! a = "a"
//! b = "b"
//! weight = 1                  # optional, 1 by default
//! ```

use crate::wire::parse_public;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use vinet_overlay::partition::Resources;
use vinet_overlay::paths::Graph;
use vinet_overlay::twopc::NodeId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutersFile {
    router: Vec<RouterEntry>,
    #[serde(default)]
    link: Vec<LinkEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterEntry {
    id: u32,
    name: String,
    address: SocketAddr,
    key: String,
    capacity: Resources,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    a: String,
    b: String,
    #[serde(default = "one")]
    weight: u64,
}

fn one() -> u64 {
    1
}

/// A router as the manager knows it.
#[derive(Clone, Debug)]
pub struct RouterInfo {
    /// Its name in the decision log.
    pub id: NodeId,
    /// Its name for the operator.
    pub name: String,
    /// Where its participant server listens.
    pub address: SocketAddr,
    /// Its public key.
    pub key: VerifyingKey,
    /// What it can give out.
    pub capacity: Resources,
}

/// The manager's picture of the network: routers `0..n` and their links.
#[derive(Clone, Debug)]
pub struct Network {
    /// The routers; an index here is a node of [`Network::graph`].
    pub routers: Vec<RouterInfo>,
    /// The links.
    pub graph: Graph,
}

impl Network {
    /// Reads and checks a routers file.
    pub fn load(path: &Path) -> Result<Network, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Network::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks a routers file's text.
    pub fn parse(text: &str) -> Result<Network, String> {
        let f: RoutersFile = toml::from_str(text).map_err(|e| e.to_string().lines().next().unwrap_or("").to_string())?;
        let mut routers = Vec::new();
        let mut names = HashMap::new();
        let mut ids = HashMap::new();
        for r in f.router {
            let key = parse_public(&r.key).map_err(|e| format!("router {}: {e}", r.name))?;
            if names.insert(r.name.clone(), routers.len()).is_some() || ids.insert(r.id, ()).is_some() {
                return Err(format!("router {} (id {}) named twice", r.name, r.id));
            }
            routers.push(RouterInfo { id: NodeId(r.id), name: r.name, address: r.address, key, capacity: r.capacity });
        }
        let mut graph = Graph::new(routers.len());
        for l in f.link {
            let a = *names.get(&l.a).ok_or_else(|| format!("link to unknown router {}", l.a))?;
            let b = *names.get(&l.b).ok_or_else(|| format!("link to unknown router {}", l.b))?;
            graph.add_link(a, b, l.weight).map_err(|e| e.to_string())?;
        }
        Ok(Network { routers, graph })
    }

    /// The index of the router named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.routers.iter().position(|r| r.name == name)
    }

    /// The index of the router `id`.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.routers.iter().position(|r| r.id == id)
    }
}

/// A router's own configuration (`vinet-onmgr router --config FILE`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFile {
    /// Its id in the manager's routers file.
    pub id: u32,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Its SQLite store.
    pub store: std::path::PathBuf,
    /// Its secret key file.
    pub key: std::path::PathBuf,
    /// The manager's public key.
    pub manager_key: String,
    /// Its capacity.
    pub capacity: Resources,
    /// The lease refresh period R, in milliseconds (RSVP's 30 s by default).
    #[serde(default = "rsvp_ms")]
    pub refresh_ms: u64,
}

fn rsvp_ms() -> u64 {
    30_000
}
