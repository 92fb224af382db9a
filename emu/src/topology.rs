//! From a scenario to a concrete network: nodes, links, addresses, routes,
//! who runs vinet, which hosts are vulnerable, and the checked script. All of
//! it is computed here, with no system call, so it is tested anywhere and a
//! scenario's mistakes are found before any namespace exists.
//!
//! Addressing: edge router `i` (0-based, in order) owns `10.1.i.0/24`; its
//! address is `10.1.i.1` on every host link, and its `k`-th host is
//! `10.1.i.(k+2)`, each host on its own point-to-point veth (a /32 each side),
//! so that even traffic between two hosts of one subnet is forwarded by the
//! edge router and passes its packet path. The rest of the /24 is routed into
//! a dead-end device, so scans of unused addresses are forwarded (and seen by
//! vinetd) before they are dropped. Router-to-router link `l` is
//! `10.250.(l / 64).(4 (l % 64) + 1..2)/30`. Routes are static shortest paths
//! (hop count; ties to the neighbour listed first).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::rng::Rng;
use crate::scenario::{self, ActionKind, GraphModel, Loaded, Placement, RouterKind, ScenarioError, TrafficSpec};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An end host (runs a traffic agent).
    Host,
    /// An edge router (owns a /24; may run vinetd).
    Edge,
    /// A core router.
    Core,
}

/// One namespace of the network.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Node {
    /// Its name in the scenario.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// Edge routers: whether vinetd runs on it.
    pub vinet: bool,
    /// Edge routers: the subnet index `i` of `10.1.i.0/24`; hosts: their edge's.
    pub subnet: Option<u8>,
    /// Hosts: their address; edge routers: `10.1.i.1`.
    pub addr: Option<Ipv4Addr>,
    /// Hosts: the edge router (node index).
    pub router: Option<usize>,
    /// Hosts: whether the worm can infect it.
    pub vulnerable: bool,
}

/// A veth pair.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Link {
    /// "a-b".
    pub name: String,
    /// Node indices.
    pub a: usize,
    /// The other end.
    pub b: usize,
    /// Interface names in each namespace.
    pub a_if: String,
    /// In b's namespace.
    pub b_if: String,
    /// Address and prefix length of each end.
    pub a_addr: (Ipv4Addr, u8),
    /// b's.
    pub b_addr: (Ipv4Addr, u8),
    /// Bits per second (tc tbf on both ends), if limited.
    pub bandwidth: Option<u64>,
    /// Whether it joins a host to its edge router.
    pub host_link: bool,
}

/// A static route in a node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    /// Destination, e.g. "10.1.3.0/24" or "default".
    pub to: String,
    /// Gateway, if any.
    pub via: Option<Ipv4Addr>,
    /// Device.
    pub dev: String,
    /// The source address for the node's own packets (an edge router's
    /// `10.1.i.1`, so that its replies find their way back: the /30s of
    /// router links are not routed).
    pub src: Option<Ipv4Addr>,
}

/// A traffic source with its resolved hosts.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// As written.
    pub spec: TrafficSpec,
    /// Sender node indices.
    pub from: Vec<usize>,
    /// Background and spam: each sender's receivers.
    pub to: Vec<Vec<usize>>,
    /// Worm: initially infected hosts.
    pub initial: Vec<usize>,
    /// The UDP port of its class.
    pub port: u16,
}

/// When an event happens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Seconds from the start.
    At(f64),
    /// When the worm's infected fraction first reaches this.
    Infected(f64),
}

/// A checked event.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Upload a program to routers.
    Upload {
        /// The program file.
        program: PathBuf,
        /// `NAME=VALUE` parameters.
        params: Vec<String>,
        /// Target routers (node indices, all running vinetd).
        routers: Vec<usize>,
        /// The uploader: a host (end-user identity), an edge router (its
        /// subnet's owner), or None for each target router's own owner.
        client: Option<usize>,
        /// Credits.
        pay: u64,
    },
    /// Start a traffic source (index into `Plan::traffic`).
    Start {
        /// The source.
        traffic: usize,
    },
    /// Stop it.
    Stop {
        /// The source.
        traffic: usize,
    },
    /// Take a link down.
    LinkDown {
        /// The link.
        link: usize,
    },
    /// Bring it up.
    LinkUp {
        /// The link.
        link: usize,
    },
    /// SIGKILL vinetd (or an overlay router's stand-alone participant).
    KillRouter {
        /// The router.
        router: usize,
    },
    /// Start vinetd (or the participant) again.
    RestartRouter {
        /// The router.
        router: usize,
        /// Its participant's crash point (`VINET_ONMGR_ROUTER_CRASH_AT`).
        crash_at: Option<String>,
    },
    /// Ask managers for an ON: `count` requests to each, the managers at once.
    OnRequest {
        /// The ON (index into `Plan::ons`).
        on: usize,
        /// The managers (0-based).
        managers: Vec<usize>,
        /// Requests per manager.
        count: usize,
        /// What is expected: "granted", "refused" or "any".
        expect: String,
    },
    /// Release every id the script got for an ON.
    OnRelease {
        /// The ON.
        on: usize,
    },
    /// SIGKILL a manager.
    ManagerStop {
        /// The manager (0-based).
        manager: usize,
    },
    /// Start a manager again on its state.
    ManagerStart {
        /// The manager (0-based).
        manager: usize,
        /// Its crash point (`VINET_ONMGR_CRASH_AT`).
        crash_at: Option<String>,
    },
    /// Check the overlay's consistency (after waiting up to `wait` s for it
    /// to settle).
    OnCheck {
        /// Seconds.
        wait: f64,
    },
    /// A TCP transfer and a UDP stream inside an ON's tunnel, from its first
    /// access host to its second (in the background).
    OnTransfer {
        /// The ON.
        on: usize,
        /// TCP bytes.
        bytes: u64,
        /// The TCP sender's pace, bits a second.
        rate: u64,
        /// The UDP stream's datagrams a second.
        pps: f64,
    },
    /// A host floods a router's admission port (in the background: the
    /// script goes on).
    Flood {
        /// The attacking host.
        client: usize,
        /// The router (runs vinetd).
        router: usize,
        /// Connections kept open at once.
        connections: usize,
        /// Seconds it lasts.
        seconds: f64,
        /// Each connection sends garbage (else it idles).
        garbage: bool,
    },
    /// A host uploads with a forged identity or replays a signed request.
    ForgedUpload {
        /// The attacking host.
        client: usize,
        /// The router.
        router: usize,
        /// The host impersonated.
        victim: usize,
        /// How.
        forgery: Forgery,
        /// The program (none for a replay).
        program: Option<PathBuf>,
        /// `NAME=VALUE` parameters.
        params: Vec<String>,
        /// Credits.
        pay: u64,
    },
    /// Many clients upload one program many times to a router (each upload
    /// binding `vary` to an address of its own), from a host's namespace.
    Load {
        /// The host the uploads come from.
        client: usize,
        /// The router.
        router: usize,
        /// The program.
        program: PathBuf,
        /// Uploads.
        programs: usize,
        /// Clients (identities).
        clients: usize,
        /// Uploads in flight at once.
        concurrency: usize,
        /// The parameter each upload binds to an address of its own.
        vary: String,
        /// Credits each upload pays.
        pay: u64,
    },
    /// A host uploads a program the router's checker must refuse.
    UnsafeUpload {
        /// The attacking host.
        client: usize,
        /// The router.
        router: usize,
        /// How the bundle is unsafe.
        how: Unsafe,
        /// The program.
        program: PathBuf,
        /// `NAME=VALUE` parameters.
        params: Vec<String>,
        /// Credits.
        pay: u64,
    },
}

/// The most uploads of one `load` event.
pub const MAX_LOAD_PROGRAMS: usize = 20_000;
/// The most clients of one `load` event.
pub const MAX_LOAD_CLIENTS: usize = 2_000;

/// The forgeries of a `forged-upload` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forgery {
    /// The attacker's own identity with its address changed to the victim's:
    /// the authority's signature no longer verifies.
    BadSignature,
    /// The victim's identity certificate, presented with the attacker's key.
    StolenIdentity,
    /// An identity for the victim's address issued by an authority the
    /// router does not trust (the attacker's own).
    UnknownAuthority,
    /// The victim's first signed upload request to this router, sent again
    /// unchanged (after the victim's later requests, its sequence number is
    /// no longer the newest).
    Replay,
}

impl Forgery {
    /// Its name in the file.
    pub fn name(self) -> &'static str {
        match self {
            Forgery::BadSignature => "bad-signature",
            Forgery::StolenIdentity => "stolen-identity",
            Forgery::UnknownAuthority => "unknown-authority",
            Forgery::Replay => "replay",
        }
    }
}

/// The unsafe bundles of an `unsafe-upload` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unsafe {
    /// The program proved under the other client kind's policy (where it is
    /// safe) and uploaded under the attacker's own identity, whose policy
    /// it breaks: its certificate proves the wrong statement.
    UnsafeProgram,
    /// A bundle proved under the attacker's policy, then one bit of it
    /// changed, so that its certificate no longer holds.
    Tampered,
}

impl Unsafe {
    /// Its name in the file.
    pub fn name(self) -> &'static str {
        match self {
            Unsafe::UnsafeProgram => "unsafe-program",
            Unsafe::Tampered => "tampered",
        }
    }
}

/// The coordinator's crash points (`onmgr::manager::CrashPoint`).
pub const MANAGER_CRASH_POINTS: [&str; 4] = ["logged", "prepared", "decided", "committed"];
/// A participant's crash points (`onmgr::router::CrashPoint`).
pub const ROUTER_CRASH_POINTS: [&str; 4] = ["before-prepare", "after-prepare", "before-commit", "after-commit"];
/// The most managers of a scenario.
pub const MAX_MANAGERS: usize = 4;
/// The most requests of one `on-request` event, per manager.
pub const MAX_ON_REQUESTS: usize = 500;

/// The overlay of a plan: its managers and the routers of their picture.
#[derive(Debug, Clone)]
pub struct OverlayPlan {
    /// As written.
    pub spec: scenario::OverlaySpec,
    /// The routers in the picture (node indices, in node order).
    pub routers: Vec<usize>,
    /// The links among them (link indices).
    pub links: Vec<usize>,
}

impl OverlayPlan {
    /// Whether router `r` is in the picture.
    pub fn has(&self, r: usize) -> bool {
        self.routers.contains(&r)
    }
}

/// An ON of the plan.
#[derive(Debug, Clone)]
pub struct OnPlan {
    /// Its name.
    pub name: String,
    /// Its access hosts.
    pub hosts: [usize; 2],
    /// Their edge routers (the manager's access points).
    pub routers: [usize; 2],
    /// Contract.
    pub bps: u64,
    /// Contract.
    pub pps: u64,
    /// Units.
    pub units: u64,
    /// Two disjoint paths.
    pub redundant: bool,
    /// User-space endpoints at both access hosts once it is up.
    pub tunnel: bool,
}

/// The longest a flood may last, seconds.
pub const MAX_FLOOD_SECS: f64 = 120.0;
/// The most connections one flood keeps open.
pub const MAX_FLOOD_CONNECTIONS: usize = 1000;

/// A checked event of the script.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// When.
    pub when: When,
    /// What.
    pub action: Action,
}

/// The concrete network and script of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The scenario's name.
    pub name: String,
    /// The run's seed.
    pub seed: u64,
    /// Seconds of scenario time.
    pub duration: f64,
    /// Seconds between samples.
    pub sample_every: f64,
    /// Nodes (hosts, edge routers, core routers).
    pub nodes: Vec<Node>,
    /// Links.
    pub links: Vec<Link>,
    /// Routes of each node.
    pub routes: Vec<Vec<Route>>,
    /// Traffic sources.
    pub traffic: Vec<Traffic>,
    /// The script, in the order written.
    pub events: Vec<Event>,
    /// vinetd's settings.
    pub vinet: scenario::VinetSpec,
    /// The fraction and placement this run used (for results).
    pub deployment: (f64, Placement),
    /// What its plot shows, if the scenario says.
    pub plot: Option<scenario::PlotKind>,
    /// With a sweep over programs: this run's count.
    pub programs: Option<usize>,
    /// Whether a link's failure (and return) recomputes the routes.
    pub reroute: bool,
    /// Overlay networks, if the scenario has them.
    pub overlay: Option<OverlayPlan>,
    /// The ONs.
    pub ons: Vec<OnPlan>,
}

/// The background class's UDP port.
pub const BACKGROUND_PORT: u16 = 5000;
/// The spam class's UDP port.
pub const SPAM_PORT: u16 = 2525;
/// The multicast class's UDP port.
pub const MULTICAST_PORT: u16 = 6000;
/// The port of the packets programs GENERATE (vinet-engine's GENERATE_PORT).
pub const GENERATE_PORT: u16 = 9910;
/// The most edge routers a plan can have (one /24 each in 10.1.0.0/16).
pub const MAX_EDGES: usize = 250;
/// The most hosts one edge router can have (.2 to .201).
pub const MAX_HOSTS_PER_EDGE: usize = 200;

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 12 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Plan {
    /// Resolve a loaded scenario, with the deployment (fraction, placement)
    /// and seed overridden by a sweep if given.
    pub fn new(l: &Loaded, over: Option<(f64, Placement, u64)>) -> Result<Plan, ScenarioError> {
        let s = &l.scenario;
        let seed = over.map_or(s.seed, |o| o.2);
        let top = |msg: String| l.error_at(0, msg);
        if !(s.duration > 0.0 && s.duration <= 3600.0) {
            return Err(top(format!("duration = {} must be more than 0 and at most 3600 seconds", s.duration)));
        }
        if !(s.sample_every >= 0.1 && s.sample_every <= s.duration) {
            return Err(top(format!("sample_every = {} must be between 0.1 and the duration", s.sample_every)));
        }
        let mut nodes: Vec<Node> = vec![];
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut specs: Vec<(usize, usize, Option<u64>, bool)> = vec![]; // (a, b, bandwidth, host link)
        let add = |nodes: &mut Vec<Node>, index: &mut BTreeMap<String, usize>, name: &str, kind: Kind, off: usize| {
            if !valid_name(name) {
                return Err(l.error_at(off, format!("name {name:?}: use 1 to 12 letters, digits, '-' or '_'")));
            }
            if index.insert(name.to_string(), nodes.len()).is_some() {
                return Err(l.error_at(off, format!("name {name:?} is used twice")));
            }
            nodes.push(Node { name: name.into(), kind, vinet: false, subnet: None, addr: None, router: None, vulnerable: false });
            Ok(nodes.len() - 1)
        };
        let bw = |b: &Option<String>, off: usize| b.as_deref().map(scenario::bandwidth).transpose().map_err(|e| l.error_at(off, e));

        // Generated part first, so listed parts can refer to it.
        let mut host_vuln: BTreeMap<usize, bool> = BTreeMap::new();
        if let Some(g) = &s.generate {
            let off = g.span().start;
            let g = g.get_ref();
            if g.core_routers == 0 || g.edge_routers == 0 || g.hosts < g.edge_routers {
                return Err(l.error_at(off, "[generate] needs at least 1 core router, 1 edge router and a host per edge router"));
            }
            if g.core_routers > 200 || g.edge_routers > MAX_EDGES || g.hosts > 2000 {
                return Err(l.error_at(off, "[generate]: at most 200 core routers, 250 edge routers and 2000 hosts"));
            }
            if g.m == 0 || (g.model == GraphModel::WattsStrogatz && 2 * g.m >= g.core_routers && g.core_routers > 2) {
                return Err(l.error_at(off, "[generate] m must be at least 1 (and, for watts-strogatz, less than half the core routers)"));
            }
            if !(0.0..=1.0).contains(&g.rewire) {
                return Err(l.error_at(off, "[generate] rewire is a probability (0 to 1)"));
            }
            let (core_bw, up_bw, host_bw) = (bw(&g.core_bandwidth, off)?, bw(&g.uplink_bandwidth, off)?, bw(&g.host_bandwidth, off)?);
            let mut rng = Rng::new(seed, "graph");
            let core: Vec<usize> =
                (0..g.core_routers).map(|i| add(&mut nodes, &mut index, &format!("c{i}"), Kind::Core, off)).collect::<Result<_, _>>()?;
            let edges = match g.model {
                GraphModel::BarabasiAlbert => barabasi_albert(g.core_routers, g.m, &mut rng),
                GraphModel::WattsStrogatz => watts_strogatz(g.core_routers, g.m, g.rewire, &mut rng),
            };
            let mut degree = vec![0f64; g.core_routers];
            for (a, b) in &edges {
                degree[*a] += 1.0;
                degree[*b] += 1.0;
                specs.push((core[*a], core[*b], core_bw, false));
            }
            let mut edge_ix = vec![];
            for i in 0..g.edge_routers {
                let e = add(&mut nodes, &mut index, &format!("e{i}"), Kind::Edge, off)?;
                let w: Vec<f64> = degree.iter().map(|d| d + 1.0).collect();
                let c = rng.weighted(&w);
                degree[c] += 1.0;
                specs.push((e, core[c], up_bw, false));
                edge_ix.push(e);
            }
            // At least one host each, the rest preferentially.
            let mut count = vec![1f64; g.edge_routers];
            let mut owner: Vec<usize> = (0..g.edge_routers).collect();
            for _ in g.edge_routers..g.hosts {
                let e = rng.weighted(&count);
                count[e] += 1.0;
                owner.push(e);
            }
            owner.sort_unstable();
            for (k, e) in owner.iter().enumerate() {
                let h = add(&mut nodes, &mut index, &format!("h{k}"), Kind::Host, off)?;
                nodes[h].router = Some(edge_ix[*e]);
                specs.push((edge_ix[*e], h, host_bw, true));
            }
        }
        for r in &s.routers {
            let off = r.span().start;
            let r = r.get_ref();
            let kind = if r.kind == RouterKind::Edge { Kind::Edge } else { Kind::Core };
            let i = add(&mut nodes, &mut index, &r.name, kind, off)?;
            if r.vinet && kind == Kind::Core {
                return Err(l.error_at(off, format!("router {:?}: only an edge router can run vinet", r.name)));
            }
            nodes[i].vinet = r.vinet;
        }
        for h in &s.hosts {
            let off = h.span().start;
            let h = h.get_ref();
            let i = add(&mut nodes, &mut index, &h.name, Kind::Host, off)?;
            let r = *index.get(&h.router).ok_or_else(|| l.error_at(off, format!("host {:?}: no router {:?}", h.name, h.router)))?;
            if nodes[r].kind != Kind::Edge {
                return Err(l.error_at(off, format!("host {:?}: {:?} is not an edge router (kind = \"edge\")", h.name, h.router)));
            }
            nodes[i].router = Some(r);
            if let Some(v) = h.vulnerable {
                host_vuln.insert(i, v);
            }
            specs.push((r, i, bw(&h.bandwidth, off)?, true));
        }
        for k in &s.links {
            let off = k.span().start;
            let k = k.get_ref();
            let end = |n: &str| {
                let i = *index.get(n).ok_or_else(|| l.error_at(off, format!("link {}-{}: no router {n:?}", k.a, k.b)))?;
                if nodes[i].kind == Kind::Host {
                    return Err(l.error_at(off, format!("link {}-{}: {n:?} is a host (a host's link is its `router`)", k.a, k.b)));
                }
                Ok(i)
            };
            let (a, b) = (end(&k.a)?, end(&k.b)?);
            if a == b {
                return Err(l.error_at(off, format!("link {}-{} joins a router to itself", k.a, k.b)));
            }
            if specs.iter().any(|(x, y, _, _)| (*x, *y) == (a, b) || (*x, *y) == (b, a)) {
                return Err(l.error_at(off, format!("link {}-{} is listed twice", k.a, k.b)));
            }
            specs.push((a, b, bw(&k.bandwidth, off)?, false));
        }
        if nodes.is_empty() {
            return Err(top("the scenario has no network: add [generate], or [[router]] and [[host]] tables".into()));
        }

        // Subnets, addresses, interfaces.
        let edges: Vec<usize> = (0..nodes.len()).filter(|i| nodes[*i].kind == Kind::Edge).collect();
        if edges.len() > MAX_EDGES {
            return Err(top(format!("{} edge routers: at most {MAX_EDGES}", edges.len())));
        }
        for (si, e) in edges.iter().enumerate() {
            nodes[*e].subnet = Some(si as u8);
            nodes[*e].addr = Some(Ipv4Addr::new(10, 1, si as u8, 1));
        }
        let mut hosts_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (h, node) in nodes.iter().enumerate() {
            if let Some(r) = node.router {
                hosts_of.entry(r).or_default().push(h);
            }
        }
        for (r, hs) in &hosts_of {
            if hs.len() > MAX_HOSTS_PER_EDGE {
                return Err(top(format!("edge router {:?} has {} hosts: at most {MAX_HOSTS_PER_EDGE}", nodes[*r].name, hs.len())));
            }
            let si = nodes[*r].subnet.expect("edge");
            for (k, h) in hs.iter().enumerate() {
                nodes[*h].subnet = Some(si);
                nodes[*h].addr = Some(Ipv4Addr::new(10, 1, si, k as u8 + 2));
            }
        }
        let mut links = vec![];
        let mut ifcount = vec![0usize; nodes.len()];
        let mut core_link = 0usize;
        for (a, b, bandwidth, host_link) in specs {
            let name = format!("{}-{}", nodes[a].name, nodes[b].name);
            let (a_if, b_if, a_addr, b_addr);
            if host_link {
                let k = hosts_of[&a].iter().position(|h| *h == b).expect("host of its router");
                a_if = format!("h{k}");
                b_if = "eth0".to_string();
                a_addr = (nodes[a].addr.expect("edge address"), 32);
                b_addr = (nodes[b].addr.expect("host address"), 32);
            } else {
                let (x, y) = ((core_link / 64) as u8, (core_link % 64) as u8 * 4);
                core_link += 1;
                a_if = format!("l{}", ifcount[a]);
                b_if = format!("l{}", ifcount[b]);
                ifcount[a] += 1;
                ifcount[b] += 1;
                a_addr = (Ipv4Addr::new(10, 250, x, y + 1), 30);
                b_addr = (Ipv4Addr::new(10, 250, x, y + 2), 30);
            }
            links.push(Link { name, a, b, a_if, b_if, a_addr, b_addr, bandwidth, host_link });
        }
        let routes = routes(&nodes, &links, &hosts_of).map_err(top)?;

        // Deployment.
        let vinet = s.vinet.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
        let voff = s.vinet.as_ref().map_or(0, |v| v.span().start);
        let (fraction, placement) = over.map_or((vinet.fraction, vinet.placement), |o| (o.0, o.1));
        if !(0.0..=1.0).contains(&fraction) {
            return Err(l.error_at(voff, format!("[vinet] fraction = {fraction} must be between 0 and 1")));
        }
        if !(10..=60_000).contains(&vinet.window_millis) {
            return Err(l.error_at(voff, "[vinet] window_millis must be between 10 and 60000"));
        }
        if placement != Placement::Listed {
            let n = (fraction * edges.len() as f64).round() as usize;
            let mut order = edges.clone();
            match placement {
                Placement::Degree => order.sort_by_key(|e| (std::cmp::Reverse(hosts_of.get(e).map_or(0, Vec::len)), *e)),
                Placement::Random => Rng::new(seed, "placement").shuffle(&mut order),
                Placement::Listed => unreachable!(),
            }
            for (i, e) in order.iter().enumerate() {
                nodes[*e].vinet = i < n;
            }
        }

        // Overlay networks.
        let (overlay, ons) = plan_overlay(l, &nodes, &links, &index)?;

        // Traffic.
        let hosts: Vec<usize> = (0..nodes.len()).filter(|i| nodes[*i].kind == Kind::Host).collect();
        let mut traffic: Vec<Traffic> = vec![];
        let mut worms = 0;
        let host_ix: BTreeMap<&str, usize> = hosts.iter().map(|h| (nodes[*h].name.as_str(), *h)).collect();
        let host_ix: BTreeMap<String, usize> = host_ix.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        for t in &s.traffic {
            let off = t.span().start;
            let spec = t.get_ref().clone();
            let name = spec.name().to_string();
            if traffic.iter().any(|x| x.spec.name() == name) {
                return Err(l.error_at(off, format!("traffic {name:?} is defined twice")));
            }
            let host = |n: &String| host_ix.get(n).copied().ok_or_else(|| l.error_at(off, format!("traffic {name:?}: no host {n:?}")));
            let rate_ok = |r: f64| {
                if r > 0.0 && r <= 5000.0 {
                    Ok(())
                } else {
                    Err(l.error_at(off, format!("traffic {name:?}: a rate must be more than 0 and at most 5000 a second")))
                }
            };
            let size_ok = |z: usize| {
                if (16..=1400).contains(&z) {
                    Ok(())
                } else {
                    Err(l.error_at(off, format!("traffic {name:?}: size must be 16 to 1400 bytes")))
                }
            };
            let mut rng = Rng::new(seed, &format!("traffic/{name}"));
            let t = match &spec {
                TrafficSpec::Background { rate, size, from, to, .. } => {
                    rate_ok(*rate)?;
                    size_ok(*size)?;
                    let from: Vec<usize> = if from.is_empty() { hosts.clone() } else { from.iter().map(host).collect::<Result<_, _>>()? };
                    if hosts.len() < 2 {
                        return Err(l.error_at(off, format!("traffic {name:?}: background traffic needs two hosts")));
                    }
                    let pool: Vec<usize> = if to.is_empty() { hosts.clone() } else { to.iter().map(host).collect::<Result<_, _>>()? };
                    let mut peers = vec![];
                    for f in &from {
                        let others: Vec<usize> = pool.iter().copied().filter(|h| h != f).collect();
                        if others.is_empty() {
                            return Err(l.error_at(off, format!("traffic {name:?}: sender {:?} has no peer but itself", nodes[*f].name)));
                        }
                        peers.push(vec![others[rng.below(others.len())]]);
                    }
                    let to = peers;
                    Traffic { spec: spec.clone(), from, to, initial: vec![], port: BACKGROUND_PORT }
                }
                TrafficSpec::Spam { from, to, rate, size, .. } => {
                    rate_ok(*rate)?;
                    size_ok(*size)?;
                    let from: Vec<usize> = from.iter().map(host).collect::<Result<_, _>>()?;
                    let to: Vec<usize> = to.iter().map(host).collect::<Result<_, _>>()?;
                    if from.is_empty() || to.is_empty() {
                        return Err(l.error_at(off, format!("traffic {name:?}: spam needs `from` and `to` hosts")));
                    }
                    Traffic { spec: spec.clone(), to: vec![to; from.len()], from, initial: vec![], port: SPAM_PORT }
                }
                TrafficSpec::Multicast { from, to, rate, size, .. } => {
                    rate_ok(*rate)?;
                    size_ok(*size)?;
                    let from = host(from)?;
                    let to: Vec<usize> = to.iter().map(host).collect::<Result<_, _>>()?;
                    if to.is_empty() || to.contains(&from) {
                        return Err(l.error_at(off, format!("traffic {name:?}: multicast needs receivers other than its sender")));
                    }
                    Traffic { spec: spec.clone(), from: vec![from], to: vec![to], initial: vec![], port: MULTICAST_PORT }
                }
                TrafficSpec::Gre { from, to, on, key, pps, running, .. } => {
                    let (f, t) = (host(from)?, host(to)?);
                    if f == t {
                        return Err(l.error_at(off, format!("traffic {name:?}: from and to are the same host")));
                    }
                    if !(*pps > 0.0 && *pps <= 20_000.0) {
                        return Err(l.error_at(off, format!("traffic {name:?}: pps must be more than 0 and at most 20000")));
                    }
                    match (on, key) {
                        (Some(o), None) => {
                            if !ons.iter().any(|x| &x.name == o) {
                                return Err(l.error_at(off, format!("traffic {name:?}: no ON {o:?} (an [[on]] table)")));
                            }
                            if *running {
                                return Err(l.error_at(
                                    off,
                                    format!("traffic {name:?}: an ON's traffic cannot run from t = 0 (its key is known once it is requested: start it)"),
                                ));
                            }
                        }
                        (None, Some(_)) => {}
                        _ => return Err(l.error_at(off, format!("traffic {name:?}: give exactly one of `on` (an ON's key) and `key`"))),
                    }
                    Traffic { spec: spec.clone(), from: vec![f], to: vec![vec![t]], initial: vec![], port: 0 }
                }
                TrafficSpec::Worm {
                    scan_rate,
                    infection_probability,
                    vulnerable,
                    initial,
                    initial_hosts,
                    local_preference,
                    scan_space,
                    port,
                    start,
                    ..
                } => {
                    worms += 1;
                    if worms > 1 {
                        return Err(l.error_at(off, "one worm a scenario"));
                    }
                    rate_ok(*scan_rate)?;
                    for (what, p) in [
                        ("infection_probability", infection_probability),
                        ("vulnerable", vulnerable),
                        ("local_preference", local_preference),
                    ] {
                        if !(0.0..=1.0).contains(p) {
                            return Err(l.error_at(off, format!("traffic {name:?}: {what} is a probability (0 to 1)")));
                        }
                    }
                    if !(0.0..s.duration).contains(start) {
                        return Err(l.error_at(off, format!("traffic {name:?}: start = {start} is outside the run")));
                    }
                    if *scan_space == 0 || usize::from(*scan_space) > MAX_HOSTS_PER_EDGE + 50 {
                        return Err(l.error_at(off, format!("traffic {name:?}: scan_space must be 1 to 250")));
                    }
                    if [BACKGROUND_PORT, SPAM_PORT, MULTICAST_PORT, GENERATE_PORT].contains(port) || *port < 1024 {
                        return Err(l.error_at(off, format!("traffic {name:?}: port {port} is taken or privileged (use 1024 or more)")));
                    }
                    let mut vr = Rng::new(seed, "vulnerable");
                    for h in &hosts {
                        let draw = vr.unit() < *vulnerable;
                        nodes[*h].vulnerable = host_vuln.get(h).copied().unwrap_or(draw);
                    }
                    let init: Vec<usize> = if initial_hosts.is_empty() {
                        let mut v: Vec<usize> = hosts.iter().copied().filter(|h| nodes[*h].vulnerable).collect();
                        rng.shuffle(&mut v);
                        if v.len() < *initial {
                            return Err(l.error_at(
                                off,
                                format!("traffic {name:?}: {initial} initial infections but {} vulnerable hosts", v.len()),
                            ));
                        }
                        v.truncate(*initial);
                        v
                    } else {
                        initial_hosts.iter().map(host).collect::<Result<_, _>>()?
                    };
                    Traffic { spec: spec.clone(), from: hosts.clone(), to: vec![], initial: init, port: *port }
                }
            };
            traffic.push(t);
        }

        // The script.
        let mut events = vec![];
        let has_worm = worms > 0;
        for (n, e) in s.events.iter().enumerate() {
            let off = e.span().start;
            let e = e.get_ref();
            let what = format!("event {} ({})", n + 1, e.action.name());
            let bad = |m: String| l.error_at(off, format!("{what}: {m}"));
            let when = match (e.at, e.when_infected) {
                (Some(t), None) if (0.0..=s.duration).contains(&t) => When::At(t),
                (Some(t), None) => return Err(bad(format!("at = {t} is outside the run (0 to {})", s.duration))),
                (None, Some(f)) if has_worm && f > 0.0 && f <= 1.0 => When::Infected(f),
                (None, Some(_)) if !has_worm => return Err(bad("when_infected needs a worm traffic source".into())),
                (None, Some(f)) => return Err(bad(format!("when_infected = {f} must be more than 0 and at most 1"))),
                _ => return Err(bad("give exactly one of `at` and `when_infected`".into())),
            };
            let allowed: &[&str] = match e.action {
                ActionKind::Upload => &["program", "params", "router", "client", "pay"],
                ActionKind::Start | ActionKind::Stop => &["traffic"],
                ActionKind::LinkDown | ActionKind::LinkUp => &["link"],
                ActionKind::KillRouter => &["router"],
                ActionKind::RestartRouter => &["router", "crash_at"],
                ActionKind::OnRequest => &["on", "manager", "count", "expect"],
                ActionKind::OnRelease => &["on"],
                ActionKind::ManagerStop => &["manager"],
                ActionKind::ManagerStart => &["manager", "crash_at"],
                ActionKind::OnCheck => &["wait"],
                ActionKind::OnTransfer => &["on", "bytes", "rate", "pps"],
                ActionKind::Flood => &["client", "router", "connections", "seconds", "garbage"],
                ActionKind::ForgedUpload => &["client", "router", "victim", "attack", "program", "params", "pay"],
                ActionKind::UnsafeUpload => &["client", "router", "attack", "program", "params", "pay"],
                ActionKind::Load => &["client", "router", "program", "programs", "clients", "concurrency", "vary", "pay"],
            };
            let given = [
                ("traffic", e.traffic.is_some()),
                ("link", e.link.is_some()),
                ("router", e.router.is_some()),
                ("program", e.program.is_some()),
                ("params", !e.params.is_empty()),
                ("client", e.client.is_some()),
                ("pay", e.pay.is_some()),
                ("attack", e.attack.is_some()),
                ("victim", e.victim.is_some()),
                ("connections", e.connections.is_some()),
                ("seconds", e.seconds.is_some()),
                ("garbage", e.garbage.is_some()),
                ("programs", e.programs.is_some()),
                ("clients", e.clients.is_some()),
                ("concurrency", e.concurrency.is_some()),
                ("vary", e.vary.is_some()),
                ("on", e.on.is_some()),
                ("manager", e.manager.is_some()),
                ("count", e.count.is_some()),
                ("crash_at", e.crash_at.is_some()),
                ("expect", e.expect.is_some()),
                ("wait", e.wait.is_some()),
                ("bytes", e.bytes.is_some()),
                ("rate", e.rate.is_some()),
                ("pps", e.pps.is_some()),
            ];
            if let Some((f, _)) = given.iter().find(|(f, g)| *g && !allowed.contains(f)) {
                return Err(bad(format!("`{f}` is not a field of this action (it takes {})", allowed.join(", "))));
            }
            let router = |r: &Option<String>| -> Result<usize, ScenarioError> {
                let r = r.as_ref().ok_or_else(|| bad("needs `router`".into()))?;
                index.get(r).copied().filter(|i| nodes[*i].kind != Kind::Host).ok_or_else(|| bad(format!("no router {r:?}")))
            };
            let params_of = || -> Result<Vec<String>, ScenarioError> {
                let mut params = vec![];
                for (k, v) in &e.params {
                    let v = match v.strip_prefix('@') {
                        Some(h) => match host_ix.get(h).and_then(|i| nodes[*i].addr) {
                            Some(a) => a.to_string(),
                            None => return Err(bad(format!("parameter {k} = {v:?}: no host {h:?}"))),
                        },
                        None => v.clone(),
                    };
                    params.push(format!("{k}={v}"));
                }
                Ok(params)
            };
            let program_of = |p: &Option<String>| -> Result<PathBuf, ScenarioError> {
                let program = l.dir().join(p.as_ref().ok_or_else(|| bad("needs `program`".into()))?);
                if !program.is_file() {
                    return Err(bad(format!("program {} is not a file", program.display())));
                }
                Ok(program)
            };
            // An attack's `client` is a host (an agent floods; a host's end-user identity is forged),
            // its `router` one that runs vinetd.
            let attacker = |c: &Option<String>| -> Result<usize, ScenarioError> {
                let c = c.as_ref().ok_or_else(|| bad("needs `client` (the attacking host)".into()))?;
                host_ix.get(c).copied().ok_or_else(|| bad(format!("client {c:?} is not a host (an attacker is a host)")))
            };
            let attacked = |r: &Option<String>| -> Result<usize, ScenarioError> {
                let r = router(r)?;
                if !nodes[r].vinet {
                    return Err(bad(format!("router {:?} does not run vinet (an attack is on a vinetd)", nodes[r].name)));
                }
                Ok(r)
            };
            let traffic_ix = |t: &Option<String>| -> Result<usize, ScenarioError> {
                let t = t.as_ref().ok_or_else(|| bad("needs `traffic`".into()))?;
                match traffic.iter().position(|x| x.spec.name() == t) {
                    Some(i) if matches!(traffic[i].spec, TrafficSpec::Worm { .. }) => {
                        Err(bad(format!("{t:?} is the worm: it starts with its initial infections and cannot be started or stopped")))
                    }
                    Some(i) => Ok(i),
                    None => Err(bad(format!("no traffic {t:?}"))),
                }
            };
            let action = match e.action {
                ActionKind::Upload => {
                    let program = program_of(&e.program)?;
                    let routers = match e.router.as_deref() {
                        None | Some("vinet") => edges.iter().copied().filter(|e| nodes[*e].vinet).collect(),
                        Some(_) => {
                            let r = router(&e.router)?;
                            vec![r]
                        }
                    };
                    if let Some(r) = routers.iter().find(|r| !nodes[**r].vinet) {
                        return Err(bad(format!("router {:?} does not run vinet", nodes[*r].name)));
                    }
                    let client = match e.client.as_deref() {
                        None | Some("owner") => None,
                        Some(h) => Some(
                            index
                                .get(h)
                                .copied()
                                .filter(|i| nodes[*i].kind != Kind::Core)
                                .ok_or_else(|| bad(format!("client {h:?} is neither a host nor an edge router")))?,
                        ),
                    };
                    let params = params_of()?;
                    Action::Upload { program, params, routers, client, pay: e.pay.unwrap_or(1000) }
                }
                ActionKind::Start => Action::Start { traffic: traffic_ix(&e.traffic)? },
                ActionKind::Stop => Action::Stop { traffic: traffic_ix(&e.traffic)? },
                ActionKind::LinkDown | ActionKind::LinkUp => {
                    let [a, b] = e.link.as_ref().ok_or_else(|| bad("needs `link = [A, B]`".into()))?;
                    let (ia, ib) = (index.get(a), index.get(b));
                    let link = links
                        .iter()
                        .position(|k| (Some(&k.a), Some(&k.b)) == (ia, ib) || (Some(&k.a), Some(&k.b)) == (ib, ia))
                        .ok_or_else(|| bad(format!("no link between {a:?} and {b:?}")))?;
                    if e.action == ActionKind::LinkDown {
                        Action::LinkDown { link }
                    } else {
                        Action::LinkUp { link }
                    }
                }
                ActionKind::KillRouter | ActionKind::RestartRouter => {
                    let r = router(&e.router)?;
                    let participant = overlay.as_ref().is_some_and(|o| o.has(r));
                    if !nodes[r].vinet && !participant {
                        return Err(bad(format!(
                            "router {:?} does not run vinet, nor an overlay participant (only vinetd, or a participant, is killed and restarted)",
                            nodes[r].name
                        )));
                    }
                    if let Some(c) = &e.crash_at {
                        if !participant {
                            return Err(bad(format!("crash_at: router {:?} is not in the [overlay]'s routers", nodes[r].name)));
                        }
                        if !ROUTER_CRASH_POINTS.contains(&c.as_str()) {
                            return Err(bad(format!("crash_at = {c:?}: a router's crash points are {}", ROUTER_CRASH_POINTS.join(", "))));
                        }
                    }
                    if e.action == ActionKind::KillRouter {
                        Action::KillRouter { router: r }
                    } else {
                        Action::RestartRouter { router: r, crash_at: e.crash_at.clone() }
                    }
                }
                ActionKind::OnRequest
                | ActionKind::OnRelease
                | ActionKind::ManagerStop
                | ActionKind::ManagerStart
                | ActionKind::OnCheck
                | ActionKind::OnTransfer => {
                    let o = overlay.as_ref().ok_or_else(|| bad("needs an [overlay] section".into()))?;
                    let n_managers = o.spec.managers;
                    let managers = e.manager.as_ref().map_or(vec![1], scenario::Managers::list);
                    if managers.is_empty() || managers.iter().any(|m| *m == 0 || *m > n_managers) {
                        return Err(bad(format!("manager = {managers:?}: the managers are 1 to {n_managers}")));
                    }
                    let on = |name: &Option<String>| -> Result<usize, ScenarioError> {
                        let n = name.as_ref().ok_or_else(|| bad("needs `on` (an [[on]]'s name)".into()))?;
                        ons.iter().position(|x| &x.name == n).ok_or_else(|| bad(format!("no ON {n:?}")))
                    };
                    let one = || -> Result<usize, ScenarioError> {
                        match managers.as_slice() {
                            [m] => Ok(m - 1),
                            _ => Err(bad("takes one manager".into())),
                        }
                    };
                    match e.action {
                        ActionKind::OnRequest => {
                            let count = e.count.unwrap_or(1);
                            if !(1..=MAX_ON_REQUESTS).contains(&count) {
                                return Err(bad(format!("count = {count} must be 1 to {MAX_ON_REQUESTS}")));
                            }
                            let mut ms: Vec<usize> = managers.iter().map(|m| m - 1).collect();
                            ms.dedup();
                            let expect = e.expect.clone().unwrap_or_else(|| "granted".into());
                            if !["granted", "refused", "any"].contains(&expect.as_str()) {
                                return Err(bad(format!("expect = {expect:?}: \"granted\", \"refused\" or \"any\"")));
                            }
                            Action::OnRequest { on: on(&e.on)?, managers: ms, count, expect }
                        }
                        ActionKind::OnRelease => Action::OnRelease { on: on(&e.on)? },
                        ActionKind::OnTransfer => {
                            let i = on(&e.on)?;
                            if !ons[i].tunnel {
                                return Err(bad(format!("ON {:?} has no tunnel (its [[on]] needs tunnel = true)", ons[i].name)));
                            }
                            let bytes = e.bytes.unwrap_or(4_000_000);
                            if !(1..=1_000_000_000).contains(&bytes) {
                                return Err(bad(format!("bytes = {bytes}: 1 to 1000000000")));
                            }
                            let rate = scenario::bandwidth(e.rate.as_deref().unwrap_or("8mbit")).map_err(bad)?;
                            let pps = e.pps.unwrap_or(100.0);
                            if !(pps > 0.0 && pps <= 5000.0) {
                                return Err(bad(format!("pps = {pps}: more than 0 and at most 5000")));
                            }
                            Action::OnTransfer { on: i, bytes, rate, pps }
                        }
                        ActionKind::ManagerStop => Action::ManagerStop { manager: one()? },
                        ActionKind::ManagerStart => {
                            if let Some(c) = &e.crash_at {
                                if !MANAGER_CRASH_POINTS.contains(&c.as_str()) {
                                    return Err(bad(format!(
                                        "crash_at = {c:?}: the coordinator's crash points are {}",
                                        MANAGER_CRASH_POINTS.join(", ")
                                    )));
                                }
                            }
                            Action::ManagerStart { manager: one()?, crash_at: e.crash_at.clone() }
                        }
                        _ => {
                            let wait = e.wait.unwrap_or(0.0);
                            if !(0.0..=120.0).contains(&wait) {
                                return Err(bad(format!("wait = {wait} must be 0 to 120 seconds")));
                            }
                            Action::OnCheck { wait }
                        }
                    }
                }
                ActionKind::Flood => {
                    let connections = e.connections.unwrap_or(100);
                    if !(1..=MAX_FLOOD_CONNECTIONS).contains(&connections) {
                        return Err(bad(format!("connections = {connections} must be 1 to {MAX_FLOOD_CONNECTIONS}")));
                    }
                    let seconds = e.seconds.ok_or_else(|| bad("needs `seconds` (how long the flood lasts)".into()))?;
                    if !(seconds > 0.0 && seconds <= MAX_FLOOD_SECS) {
                        return Err(bad(format!("seconds = {seconds} must be more than 0 and at most {MAX_FLOOD_SECS}")));
                    }
                    Action::Flood {
                        client: attacker(&e.client)?,
                        router: attacked(&e.router)?,
                        connections,
                        seconds,
                        garbage: e.garbage.unwrap_or(false),
                    }
                }
                ActionKind::ForgedUpload => {
                    let forgery = match e.attack.as_deref() {
                        Some("bad-signature") => Forgery::BadSignature,
                        Some("stolen-identity") => Forgery::StolenIdentity,
                        Some("unknown-authority") => Forgery::UnknownAuthority,
                        Some("replay") => Forgery::Replay,
                        Some(a) => {
                            return Err(bad(format!(
                            "attack {a:?}: a forged upload is \"bad-signature\", \"stolen-identity\", \"unknown-authority\" or \"replay\""
                        )))
                        }
                        None => return Err(bad("needs `attack`".into())),
                    };
                    let (client, router) = (attacker(&e.client)?, attacked(&e.router)?);
                    let v = e.victim.as_ref().ok_or_else(|| bad("needs `victim` (the host impersonated)".into()))?;
                    let victim = host_ix.get(v).copied().ok_or_else(|| bad(format!("victim {v:?} is not a host")))?;
                    if victim == client {
                        return Err(bad("the victim is the attacker itself".into()));
                    }
                    let program = match forgery {
                        Forgery::Replay => {
                            if e.program.is_some() || !e.params.is_empty() || e.pay.is_some() {
                                return Err(bad("a replay sends the victim's request as it was: no `program`, `params` or `pay`".into()));
                            }
                            // The request replayed is the victim's last upload to this router, earlier in the script.
                            let earlier = events.iter().any(|x: &Event| {
                                matches!(&x.action, Action::Upload { client: Some(c), routers, .. } if *c == victim && routers.contains(&router))
                            });
                            if !earlier {
                                return Err(bad(format!(
                                    "a replay needs an earlier upload by {v:?} to {:?} in the script (its request is what is replayed)",
                                    nodes[router].name
                                )));
                            }
                            None
                        }
                        _ => Some(program_of(&e.program)?),
                    };
                    Action::ForgedUpload { client, router, victim, forgery, program, params: params_of()?, pay: e.pay.unwrap_or(1000) }
                }
                ActionKind::Load => {
                    let programs = e.programs.ok_or_else(|| bad("needs `programs` (how many uploads)".into()))?;
                    if !(1..=MAX_LOAD_PROGRAMS).contains(&programs) {
                        return Err(bad(format!("programs = {programs} must be 1 to {MAX_LOAD_PROGRAMS}")));
                    }
                    let clients = e.clients.unwrap_or(100);
                    if !(1..=MAX_LOAD_CLIENTS).contains(&clients) {
                        return Err(bad(format!("clients = {clients} must be 1 to {MAX_LOAD_CLIENTS}")));
                    }
                    let concurrency = e.concurrency.unwrap_or(8);
                    if !(1..=16).contains(&concurrency) {
                        return Err(bad(format!(
                            "concurrency = {concurrency} must be 1 to 16 (a router serves at most 16 connections from one address)"
                        )));
                    }
                    Action::Load {
                        client: attacker(&e.client).map_err(|_| bad("`client` must be a host (the uploads come from it)".into()))?,
                        router: attacked(&e.router)?,
                        program: program_of(&e.program)?,
                        programs,
                        clients: clients.min(programs),
                        concurrency,
                        vary: e
                            .vary
                            .clone()
                            .ok_or_else(|| bad("needs `vary` (the parameter each upload binds to an address of its own)".into()))?,
                        pay: e.pay.unwrap_or(1000),
                    }
                }
                ActionKind::UnsafeUpload => {
                    let how = match e.attack.as_deref() {
                        Some("unsafe-program") => Unsafe::UnsafeProgram,
                        Some("tampered") => Unsafe::Tampered,
                        Some(a) => return Err(bad(format!("attack {a:?}: an unsafe upload is \"unsafe-program\" or \"tampered\""))),
                        None => return Err(bad("needs `attack`".into())),
                    };
                    Action::UnsafeUpload {
                        client: attacker(&e.client)?,
                        router: attacked(&e.router)?,
                        how,
                        program: program_of(&e.program)?,
                        params: params_of()?,
                        pay: e.pay.unwrap_or(1000),
                    }
                }
            };
            events.push(Event { when, action });
        }
        Ok(Plan {
            name: s.name.clone(),
            seed,
            duration: s.duration,
            sample_every: s.sample_every,
            nodes,
            links,
            routes,
            traffic,
            events,
            vinet,
            deployment: (fraction, placement),
            plot: s.plot,
            programs: None,
            reroute: s.reroute,
            overlay,
            ons,
        })
    }

    /// Node indices of the overlay routers whose participant is a stand-alone
    /// `vinet-onmgr router` (those not running vinetd).
    pub fn standalone_participants(&self) -> Vec<usize> {
        self.overlay.as_ref().map_or(vec![], |o| o.routers.iter().copied().filter(|r| !self.nodes[*r].vinet).collect())
    }

    /// Set every `load` event's uploads to `n` (a sweep over programs
    /// installed); its clients to at most `n`.
    pub fn with_programs(mut self, n: usize) -> Plan {
        for e in &mut self.events {
            if let Action::Load { programs, clients, .. } = &mut e.action {
                *clients = (*clients).min(n).max(1);
                *programs = n;
            }
        }
        self.programs = Some(n);
        self
    }

    /// Every node's routes with the links in `down` failed: shortest paths
    /// over the others (what the emulator installs after a `link-down`, and
    /// again after a `link-up`, when the scenario reroutes). A router cut off
    /// from a subnet has no route to it.
    pub fn routes_without(&self, down: &BTreeSet<usize>) -> Vec<Vec<Route>> {
        let mut hosts_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (h, node) in self.nodes.iter().enumerate() {
            if let Some(r) = node.router {
                hosts_of.entry(r).or_default().push(h);
            }
        }
        routes_avoiding(&self.nodes, &self.links, &hosts_of, down, true).expect("split_ok: no error")
    }

    /// Node indices of hosts.
    pub fn hosts(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].kind == Kind::Host)
    }

    /// Node indices of routers running vinetd.
    pub fn vinet_routers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].vinet)
    }

    /// The worm, if any.
    pub fn worm(&self) -> Option<&Traffic> {
        self.traffic.iter().find(|t| matches!(t.spec, TrafficSpec::Worm { .. }))
    }
}

/// Barabasi-Albert: a clique of m + 1, then each new node links to m
/// distinct existing nodes with probability proportional to degree.
/// The `[overlay]` section and the `[[on]]` tables, checked against the
/// network.
fn plan_overlay(
    l: &Loaded, nodes: &[Node], links: &[Link], index: &BTreeMap<String, usize>,
) -> Result<(Option<OverlayPlan>, Vec<OnPlan>), ScenarioError> {
    let s = &l.scenario;
    let Some(o) = &s.overlay else {
        if let Some(on) = s.ons.first() {
            return Err(l.error_at(on.span().start, "an [[on]] needs an [overlay] section (the manager that sets it up)"));
        }
        return Ok((None, vec![]));
    };
    let off = o.span().start;
    let spec = o.get_ref().clone();
    let bad = |m: String| l.error_at(off, format!("[overlay] {m}"));
    if !(1..=MAX_MANAGERS).contains(&spec.managers) {
        return Err(bad(format!("managers = {}: 1 to {MAX_MANAGERS}", spec.managers)));
    }
    if spec.managers > 1 && spec.store != scenario::OverlayStore::Etcd {
        return Err(bad(format!("managers = {}: several managers share their state in etcd (store = \"etcd\")", spec.managers)));
    }
    for (what, v) in [("refresh_ms", spec.refresh_ms), ("prepare_timeout_ms", spec.prepare_timeout_ms), ("retry_ms", spec.retry_ms)] {
        if !(10..=600_000).contains(&v) {
            return Err(bad(format!("{what} = {v}: 10 to 600000 milliseconds")));
        }
    }
    if spec.capacity.bps == 0 || spec.capacity.pps == 0 {
        return Err(bad("capacity: bps and pps must be positive".into()));
    }
    if spec.mark == 0 || spec.mark & 0x7fff_0000 != 0 {
        return Err(bad(format!("mark = {:#x}: a non-zero mark in the low 16 bits (vinetd uses the others)", spec.mark)));
    }
    if !(spec.priority_share > 0.0 && spec.priority_share < 1.0) {
        return Err(bad(format!("priority_share = {}: more than 0 and less than 1", spec.priority_share)));
    }
    let mut routers: Vec<usize> = if spec.routers.is_empty() {
        (0..nodes.len()).filter(|i| nodes[*i].kind != Kind::Host).collect()
    } else {
        let mut v = vec![];
        for r in &spec.routers {
            let i =
                index.get(r).copied().filter(|i| nodes[*i].kind != Kind::Host).ok_or_else(|| bad(format!("routers: no router {r:?}")))?;
            if v.contains(&i) {
                return Err(bad(format!("routers: {r:?} is listed twice")));
            }
            v.push(i);
        }
        v
    };
    routers.sort_unstable();
    if routers.len() > 250 {
        return Err(bad(format!("{} routers: at most 250 (one management /30 each)", routers.len())));
    }
    let links: Vec<usize> =
        (0..links.len()).filter(|k| !links[*k].host_link && routers.contains(&links[*k].a) && routers.contains(&links[*k].b)).collect();
    let plan = OverlayPlan { spec, routers, links };
    let mut ons: Vec<OnPlan> = vec![];
    for on in &s.ons {
        let off = on.span().start;
        let on = on.get_ref();
        let bad = |m: String| l.error_at(off, format!("on {:?}: {m}", on.name));
        if !valid_name(&on.name) {
            return Err(bad("use 1 to 12 letters, digits, '-' or '_' for its name".into()));
        }
        if ons.iter().any(|x| x.name == on.name) {
            return Err(bad("defined twice".into()));
        }
        let mut hosts = [0; 2];
        let mut ends = [0; 2];
        for (k, h) in on.access.iter().enumerate() {
            let i = index.get(h).copied().filter(|i| nodes[*i].kind == Kind::Host).ok_or_else(|| bad(format!("access: no host {h:?}")))?;
            let r = nodes[i].router.expect("a host's router");
            if !plan.has(r) {
                return Err(bad(format!("access: {h:?}'s router {:?} is not in the [overlay]'s routers", nodes[r].name)));
            }
            hosts[k] = i;
            ends[k] = r;
        }
        if ends[0] == ends[1] {
            return Err(bad("access: the two hosts are behind one router (an ON joins two access routers)".into()));
        }
        if on.bps == 0 || on.pps == 0 {
            return Err(bad("bps and pps must be positive".into()));
        }
        if on.bps > plan.spec.capacity.bps || on.pps > plan.spec.capacity.pps || on.units > plan.spec.capacity.units {
            return Err(bad("its contract is more than a router's whole capacity".into()));
        }
        ons.push(OnPlan {
            name: on.name.clone(),
            hosts,
            routers: ends,
            bps: on.bps,
            pps: on.pps,
            units: on.units,
            redundant: on.redundant,
            tunnel: on.tunnel,
        });
    }
    Ok((Some(plan), ons))
}

fn barabasi_albert(n: usize, m: usize, rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut edges = vec![];
    let start = (m + 1).min(n);
    for a in 0..start {
        for b in a + 1..start {
            edges.push((a, b));
        }
    }
    let mut degree = vec![0f64; n];
    for (a, b) in &edges {
        degree[*a] += 1.0;
        degree[*b] += 1.0;
    }
    for v in start..n {
        let mut chosen = BTreeSet::new();
        while chosen.len() < m.min(v) {
            let w: Vec<f64> = (0..v).map(|u| if chosen.contains(&u) { 0.0 } else { degree[u] + 1e-9 }).collect();
            chosen.insert(rng.weighted(&w));
        }
        for u in chosen {
            edges.push((u, v));
            degree[u] += 1.0;
            degree[v] += 1.0;
        }
    }
    edges
}

/// Watts-Strogatz: a ring where each node links to its k nearest neighbours
/// on each side, each link rewired with probability beta (no loops, no
/// duplicates); then joined up if rewiring split it.
fn watts_strogatz(n: usize, k: usize, beta: f64, rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut set: BTreeSet<(usize, usize)> = BTreeSet::new();
    let norm = |a: usize, b: usize| (a.min(b), a.max(b));
    for a in 0..n {
        for j in 1..=k {
            let b = (a + j) % n;
            if a != b {
                set.insert(norm(a, b));
            }
        }
    }
    let ring: Vec<(usize, usize)> = set.iter().copied().collect();
    for (a, b) in ring {
        if rng.unit() < beta {
            let c = rng.below(n);
            if c != a && !set.contains(&norm(a, c)) {
                set.remove(&(a, b));
                set.insert(norm(a, c));
            }
        }
    }
    // Join components to node 0's.
    loop {
        let comp = components(n, &set);
        let Some(v) = (0..n).find(|v| comp[*v] != comp[0]) else { break };
        set.insert(norm(0, v));
    }
    set.into_iter().collect()
}

fn components(n: usize, edges: &BTreeSet<(usize, usize)>) -> Vec<usize> {
    let mut comp: Vec<usize> = (0..n).collect();
    let find = |c: &mut Vec<usize>, mut x: usize| {
        while c[x] != x {
            c[x] = c[c[x]];
            x = c[x];
        }
        x
    };
    for (a, b) in edges {
        let (ra, rb) = (find(&mut comp, *a), find(&mut comp, *b));
        comp[ra.max(rb)] = ra.min(rb);
    }
    (0..n).map(|v| find(&mut comp, v)).collect()
}

/// Static shortest-path routes for every node.
fn routes(nodes: &[Node], links: &[Link], hosts_of: &BTreeMap<usize, Vec<usize>>) -> Result<Vec<Vec<Route>>, String> {
    routes_avoiding(nodes, links, hosts_of, &BTreeSet::new(), false)
}

/// Shortest-path routes over the router links not in `down`. With `split_ok`,
/// a router that cannot reach a subnet gets no route to it (its packets there
/// are lost); else that is an error.
fn routes_avoiding(
    nodes: &[Node], links: &[Link], hosts_of: &BTreeMap<usize, Vec<usize>>, down: &BTreeSet<usize>, split_ok: bool,
) -> Result<Vec<Vec<Route>>, String> {
    let n = nodes.len();
    // Router adjacency: (neighbour, link).
    let mut adj: Vec<Vec<(usize, usize)>> = vec![vec![]; n];
    for (li, l) in links.iter().enumerate() {
        if !l.host_link && !down.contains(&li) {
            adj[l.a].push((l.b, li));
            adj[l.b].push((l.a, li));
        }
    }
    let mut routes = vec![vec![]; n];
    for (h, node) in nodes.iter().enumerate() {
        if node.kind == Kind::Host {
            let r = node.router.expect("host has a router");
            let gw = nodes[r].addr.expect("edge address");
            routes[h].push(Route { to: format!("{gw}/32"), via: None, dev: "eth0".into(), src: None });
            routes[h].push(Route { to: "default".into(), via: Some(gw), dev: "eth0".into(), src: None });
        }
    }
    for (e, node) in nodes.iter().enumerate() {
        if node.kind != Kind::Edge {
            continue;
        }
        let si = node.subnet.expect("edge subnet");
        let prefix = format!("10.1.{si}.0/24");
        for (k, h) in hosts_of.get(&e).into_iter().flatten().enumerate() {
            routes[e].push(Route {
                to: format!("{}/32", nodes[*h].addr.expect("host address")),
                via: None,
                dev: format!("h{k}"),
                src: None,
            });
        }
        routes[e].push(Route { to: prefix.clone(), via: None, dev: "void0".into(), src: None });
        // BFS from e over routers: each router's next hop towards e.
        let mut next: Vec<Option<(usize, usize)>> = vec![None; n];
        let mut seen = vec![false; n];
        seen[e] = true;
        let mut q = VecDeque::from([e]);
        while let Some(u) = q.pop_front() {
            for (v, li) in &adj[u] {
                if !seen[*v] {
                    seen[*v] = true;
                    next[*v] = Some((u, *li));
                    q.push_back(*v);
                }
            }
        }
        for (r, rn) in nodes.iter().enumerate() {
            if rn.kind == Kind::Host || r == e {
                continue;
            }
            let (hop, li) = match next[r] {
                Some(x) => x,
                None if split_ok => continue,
                None => return Err(format!("router {:?} cannot reach edge router {:?}: the network is split", rn.name, node.name)),
            };
            let l = &links[li];
            let (dev, via) = if l.a == r { (l.a_if.clone(), l.b_addr.0) } else { (l.b_if.clone(), l.a_addr.0) };
            debug_assert!(l.a == hop || l.b == hop);
            let src = if rn.kind == Kind::Edge { rn.addr } else { None };
            routes[r].push(Route { to: prefix.clone(), via: Some(via), dev, src });
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;
    use std::path::Path;

    fn plan(text: &str) -> Result<Plan, ScenarioError> {
        let l = parse(Path::new("s.toml"), text.to_string())?;
        Plan::new(&l, None)
    }

    const LINE: &str = r#"
name = "line"
duration = 5
[[router]]
name = "e1"
kind = "edge"
vinet = true
[[router]]
name = "c"
kind = "core"
[[router]]
name = "e2"
kind = "edge"
[[host]]
name = "a"
router = "e1"
[[host]]
name = "b"
router = "e2"
[[host]]
name = "b2"
router = "e2"
[[link]]
a = "e1"
b = "c"
bandwidth = "10mbit"
[[link]]
a = "c"
b = "e2"
"#;

    #[test]
    fn addresses_and_routes_of_a_line() {
        let p = plan(LINE).unwrap();
        let ix = |n: &str| p.nodes.iter().position(|x| x.name == n).unwrap();
        assert_eq!(p.nodes[ix("a")].addr, Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(p.nodes[ix("b2")].addr, Some(Ipv4Addr::new(10, 1, 1, 3)));
        // c reaches e2's subnet over its link to e2.
        let c = &p.routes[ix("c")];
        let to_e2 = c.iter().find(|r| r.to == "10.1.1.0/24").unwrap();
        assert_eq!(to_e2.via, Some(Ipv4Addr::new(10, 250, 0, 6)));
        // e1 reaches e2's subnet through c; its own /24 ends in void0, its host on h0.
        let e1 = &p.routes[ix("e1")];
        assert_eq!(e1.iter().find(|r| r.to == "10.1.1.0/24").unwrap().via, Some(Ipv4Addr::new(10, 250, 0, 2)));
        assert!(e1.contains(&Route { to: "10.1.0.2/32".into(), via: None, dev: "h0".into(), src: None }));
        assert!(e1.contains(&Route { to: "10.1.0.0/24".into(), via: None, dev: "void0".into(), src: None }));
        assert_eq!(
            e1.iter().find(|r| r.to == "10.1.1.0/24").unwrap().src,
            Some(Ipv4Addr::new(10, 1, 0, 1)),
            "e1's own packets come from its /24"
        );
        assert_eq!(p.links.iter().find(|l| l.name == "e1-c").unwrap().bandwidth, Some(10_000_000));
        assert_eq!(p.vinet_routers().map(|i| p.nodes[i].name.clone()).collect::<Vec<_>>(), ["e1"]);
    }

    #[test]
    fn mistakes_are_located() {
        let e = plan(&LINE.replace("router = \"e2\"\n[[host]]\nname = \"b2\"", "router = \"e9\"\n[[host]]\nname = \"b2\"")).unwrap_err();
        assert!(e.msg.contains("no router \"e9\""), "{e}");
        assert_eq!(e.line, 17, "{e}");
        let e = plan(&format!("{LINE}[[event]]\nat = 1\naction = \"link-down\"\nlink = [\"e1\", \"e2\"]\n")).unwrap_err();
        assert!(e.msg.contains("no link between \"e1\" and \"e2\""), "{e}");
        assert_eq!(e.line, 30, "{e}");
        let e = plan(&format!("{LINE}[[event]]\nat = 1\naction = \"kill-router\"\nrouter = \"e1\"\ntraffic = \"x\"\n")).unwrap_err();
        assert!(e.msg.contains("`traffic` is not a field of this action"), "{e}");
        let e = plan(&format!("{LINE}[[event]]\nat = 9\naction = \"kill-router\"\nrouter = \"e1\"\n")).unwrap_err();
        assert!(e.msg.contains("outside the run"), "{e}");
        let e = plan(&format!("{LINE}[[event]]\nat = 1\naction = \"kill-router\"\nrouter = \"e2\"\n")).unwrap_err();
        assert!(e.msg.contains("does not run vinet"), "{e}");
        let e = plan(&LINE.replace("name = \"c\"", "name = \"e1\"")).unwrap_err();
        assert!(e.msg.contains("used twice"), "{e}");
        let split = LINE.replace("[[link]]\na = \"c\"\nb = \"e2\"\n", "");
        assert!(plan(&split).unwrap_err().msg.contains("the network is split"));
    }

    #[test]
    fn attack_events_plan_and_their_mistakes_are_located() {
        let fw = "../../examples/firewall.vinet";
        let ev = |body: &str| format!("{LINE}[[event]]\nat = 1\n{body}");
        // Programs are relative to the scenario file: plan as if it were in emu/scenarios/.
        let plan_here = |text: String| {
            let l = parse(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/x.toml"), text)?;
            Plan::new(&l, None)
        };
        let p = plan_here(ev("action = \"flood\"\nclient = \"b\"\nrouter = \"e1\"\nseconds = 5\ngarbage = true\n")).unwrap();
        assert!(matches!(p.events[0].action, Action::Flood { connections: 100, garbage: true, .. }), "{:?}", p.events[0]);
        let forged = |attack: &str| {
            ev(&format!(
                "action = \"forged-upload\"\nattack = \"{attack}\"\nclient = \"b\"\nvictim = \"a\"\nrouter = \"e1\"\nprogram = \"{fw}\"\n"
            ))
        };
        for a in ["bad-signature", "stolen-identity", "unknown-authority"] {
            let p = plan_here(forged(a)).unwrap();
            assert!(matches!(&p.events[0].action, Action::ForgedUpload { forgery, .. } if forgery.name() == a));
        }
        let e = plan_here(forged("charm")).unwrap_err();
        assert!(e.msg.contains("attack \"charm\": a forged upload is"), "{e}");
        assert_eq!(e.line, 30, "{e}");
        // A replay needs the victim's earlier upload to that router.
        let replay = "action = \"forged-upload\"\nattack = \"replay\"\nclient = \"b\"\nvictim = \"a\"\nrouter = \"e1\"\n";
        let e = plan_here(ev(replay)).unwrap_err();
        assert!(e.msg.contains("a replay needs an earlier upload by \"a\""), "{e}");
        let upload = format!("action = \"upload\"\nclient = \"a\"\nrouter = \"e1\"\nprogram = \"{fw}\"\n");
        let p = plan_here(format!("{}[[event]]\nat = 2\n{replay}", ev(&upload))).unwrap();
        assert!(matches!(p.events[1].action, Action::ForgedUpload { forgery: Forgery::Replay, program: None, .. }));
        let e = plan_here(ev("action = \"flood\"\nclient = \"b\"\nrouter = \"e1\"\n")).unwrap_err();
        assert!(e.msg.contains("needs `seconds`"), "{e}");
        let e = plan_here(ev("action = \"flood\"\nclient = \"e2\"\nrouter = \"e1\"\nseconds = 1\n")).unwrap_err();
        assert!(e.msg.contains("is not a host (an attacker is a host)"), "{e}");
        let e = plan_here(ev("action = \"flood\"\nclient = \"b\"\nrouter = \"e2\"\nseconds = 1\n")).unwrap_err();
        assert!(e.msg.contains("does not run vinet"), "{e}");
        let e = plan_here(ev("action = \"flood\"\nclient = \"b\"\nrouter = \"e1\"\nseconds = 1\nconnections = 5000\n")).unwrap_err();
        assert!(e.msg.contains("connections = 5000 must be 1 to 1000"), "{e}");
        let e = plan_here(ev("action = \"flood\"\nclient = \"b\"\nrouter = \"e1\"\nseconds = 1\nvictim = \"a\"\n")).unwrap_err();
        assert!(e.msg.contains("`victim` is not a field of this action"), "{e}");
        let e = plan_here(ev(&format!(
            "action = \"unsafe-upload\"\nattack = \"sneaky\"\nclient = \"b\"\nrouter = \"e1\"\nprogram = \"{fw}\"\n"
        )))
        .unwrap_err();
        assert!(e.msg.contains("\"unsafe-program\" or \"tampered\""), "{e}");
    }

    #[test]
    fn a_failed_link_is_routed_around() {
        // e1 -- c0 -- e2 and e1 -- c1 -- e2: e1 reaches e2's subnet through c0 (listed first).
        let diamond = LINE.replace("[[link]]\na = \"c\"\nb = \"e2\"\n", "")
            + "[[router]]\nname = \"d\"\nkind = \"core\"\n[[link]]\na = \"c\"\nb = \"e2\"\n[[link]]\na = \"e1\"\nb = \"d\"\n[[link]]\na = \"d\"\nb = \"e2\"\n";
        let p = plan(&diamond).unwrap();
        let ix = |n: &str| p.nodes.iter().position(|x| x.name == n).unwrap();
        let link = |n: &str| p.links.iter().position(|l| l.name == n).unwrap();
        let to_e2 = |routes: &[Vec<Route>], at: &str| routes[ix(at)].iter().find(|r| r.to == "10.1.1.0/24").cloned();
        let dev_to = |a: &str, b: &str| {
            let l = p.links.iter().find(|l| l.name == format!("{a}-{b}") || l.name == format!("{b}-{a}")).unwrap();
            if p.nodes[l.a].name == a {
                l.a_if.clone()
            } else {
                l.b_if.clone()
            }
        };
        assert_eq!(p.routes_without(&BTreeSet::new()), p.routes, "nothing down: the routes as built");
        assert_eq!(to_e2(&p.routes, "e1").unwrap().dev, dev_to("e1", "c"));
        let down = BTreeSet::from([link("c-e2")]);
        let r = p.routes_without(&down);
        assert_eq!(to_e2(&r, "e1").unwrap().dev, dev_to("e1", "d"), "around the failed link, through d");
        assert_eq!(to_e2(&r, "c").unwrap().dev, dev_to("c", "e1"), "c goes back through e1");
        // Both paths down: e1 has no route to e2's subnet at all.
        let r = p.routes_without(&BTreeSet::from([link("c-e2"), link("d-e2")]));
        assert_eq!(to_e2(&r, "e1"), None);
        assert!(r[ix("e1")].iter().any(|x| x.to == "10.1.0.0/24"), "its own subnet stays");
    }

    const GEN: &str = r#"
name = "g"
seed = 3
duration = 5
[generate]
model = "barabasi-albert"
core_routers = 6
edge_routers = 5
hosts = 20
[vinet]
placement = "degree"
fraction = 0.4
[[traffic]]
kind = "worm"
name = "w"
scan_rate = 5
vulnerable = 0.5
"#;

    #[test]
    fn generated_graphs_are_reproducible_connected_and_placed() {
        let (p, q) = (plan(GEN).unwrap(), plan(GEN).unwrap());
        let names = |p: &Plan| p.links.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&p), names(&q));
        let other = plan(&GEN.replace("seed = 3", "seed = 4")).unwrap();
        assert_ne!(names(&p), names(&other), "another seed, another graph");
        assert_eq!(p.hosts().count(), 20);
        // Degree placement: the 2 edge routers with the most hosts.
        let hosts_of = |e: usize| p.nodes.iter().filter(|n| n.router == Some(e)).count();
        let mut edges: Vec<usize> = (0..p.nodes.len()).filter(|i| p.nodes[*i].kind == Kind::Edge).collect();
        edges.sort_by_key(|e| (std::cmp::Reverse(hosts_of(*e)), *e));
        let vin: Vec<usize> = p.vinet_routers().collect();
        assert_eq!(vin.len(), 2);
        assert!(vin.iter().all(|v| edges[..2].contains(v)), "{vin:?} vs {edges:?}");
        let vuln = p.hosts().filter(|h| p.nodes[*h].vulnerable).count();
        assert!((4..=16).contains(&vuln), "{vuln}");
        let w = p.worm().unwrap();
        assert_eq!(w.initial.len(), 1);
        assert!(p.nodes[w.initial[0]].vulnerable);
        let ws = plan(&GEN.replace("\"barabasi-albert\"", "\"watts-strogatz\"\nrewire = 0.3\nm = 1")).unwrap();
        assert!(ws.routes.iter().all(|r| !r.is_empty()));
    }
}
