//! The scenario file: what network to build, what traffic to run in it, and
//! what happens when. `emu/README.md` is the reference of the format; this
//! module parses it (serde, every table `deny_unknown_fields`) and then
//! checks what serde cannot (names that must exist, numbers in range),
//! reporting each problem at the line of the table it is in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A problem with a scenario file, located.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{col}: {msg}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub msg: String,
}

/// The whole scenario file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (names the output directory).
    pub name: String,
    /// The seed every random choice derives from.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Seconds of scenario time, after the network is up.
    pub duration: f64,
    /// Seconds between two samples of the measurements.
    #[serde(default = "d_sample")]
    pub sample_every: f64,
    /// A generated topology (instead of, or besides, listed routers and hosts).
    #[serde(default)]
    pub generate: Option<Spanned<Generate>>,
    /// Listed routers.
    #[serde(default, rename = "router")]
    pub routers: Vec<Spanned<RouterSpec>>,
    /// Listed hosts.
    #[serde(default, rename = "host")]
    pub hosts: Vec<Spanned<HostSpec>>,
    /// Listed router-to-router links.
    #[serde(default, rename = "link")]
    pub links: Vec<Spanned<LinkSpec>>,
    /// Where vinet runs, and the routers' settings.
    #[serde(default)]
    pub vinet: Option<Spanned<VinetSpec>>,
    /// Traffic sources.
    #[serde(default, rename = "traffic")]
    pub traffic: Vec<Spanned<TrafficSpec>>,
    /// The script of timed events.
    #[serde(default, rename = "event")]
    pub events: Vec<Spanned<EventSpec>>,
    /// Repeat the scenario over deployments and seeds (`vinet-emu run` runs
    /// every combination and aggregates).
    #[serde(default)]
    pub sweep: Option<Spanned<Sweep>>,
    /// What a run's plot shows (default: the infected fraction if there is
    /// a worm, the datagrams delivered a second if the script attacks a
    /// router, else the bytes on each router-to-router link).
    #[serde(default)]
    pub plot: Option<PlotKind>,
    /// Whether a `link-down` (and a `link-up`) recomputes every router's
    /// shortest paths over the links that are up and installs them (default);
    /// false: routes stay as built, so a failed link's traffic is lost.
    #[serde(default = "d_true")]
    pub reroute: bool,
    /// Virtual overlay networks: the ON manager(s) and the routers that
    /// take part (issue 13).
    #[serde(default)]
    pub overlay: Option<Spanned<OverlaySpec>>,
    /// The ONs the script may request.
    #[serde(default, rename = "on")]
    pub ons: Vec<Spanned<OnSpec>>,
}

/// `[overlay]`: the ON manager(s), where their state is kept, and the
/// routers of their picture of the network.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OverlaySpec {
    /// Managers run at once (1, or 2 and more sharing etcd).
    #[serde(default = "d_managers")]
    pub managers: usize,
    /// Where the managers keep their state: "sqlite" (one manager) or "etcd".
    #[serde(default)]
    pub store: OverlayStore,
    /// The lease refresh period R, milliseconds (a lease lives 5.25 R).
    #[serde(default = "d_refresh")]
    pub refresh_ms: u64,
    /// How long a router holds a prepared, undecided reservation, milliseconds.
    #[serde(default = "d_prepare")]
    pub prepare_timeout_ms: u64,
    /// How often the manager resends an unanswered message, milliseconds.
    #[serde(default = "d_retry")]
    pub retry_ms: u64,
    /// The routers in the managers' picture (default: every router); each
    /// running vinetd hosts its participant, the others run `vinet-onmgr
    /// router`. The picture's links are the links among them.
    #[serde(default)]
    pub routers: Vec<String>,
    /// What each router can reserve.
    pub capacity: Capacity,
    /// How an ON's policed packets get priority on a congested link:
    /// "vinetd" (vinetd's `[overlay] mark` on every packet it passes within
    /// a contract), "emulator" (an nftables rule marks each ON's key while
    /// the manager says it is up) or "none" (no priority: plain tbf).
    #[serde(default)]
    pub priority: Priority,
    /// The netfilter mark of priority packets (bits vinetd does not use).
    #[serde(default = "d_mark")]
    pub mark: u32,
    /// The share of each shaped link of an overlay router guaranteed to the
    /// priority class (HTB: the rest to the others; each may borrow all).
    #[serde(default = "d_share")]
    pub priority_share: f64,
}

/// An overlay router's capacity.
#[derive(Debug, Deserialize, Clone, Copy, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Bits a second.
    pub bps: u64,
    /// Packets a second.
    pub pps: u64,
    /// Program capacity units.
    #[serde(default = "d_units")]
    pub units: u64,
}

/// Where the managers keep their state.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverlayStore {
    /// SQLite, one file per manager.
    #[default]
    Sqlite,
    /// One etcd (etcd-server, started by the emulator) shared by every manager.
    Etcd,
}

/// How ON packets get priority.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// vinetd marks what it passes within a contract.
    Vinetd,
    /// The emulator marks each up ON's key with nftables.
    Emulator,
    /// No priority class.
    #[default]
    None,
}

/// An ON the script may request.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OnSpec {
    /// Its name.
    pub name: String,
    /// Its two access hosts (the ON's access points are their edge routers).
    pub access: [String; 2],
    /// Contracted bits a second.
    pub bps: u64,
    /// Contracted packets a second.
    pub pps: u64,
    /// Program capacity units.
    #[serde(default = "d_units")]
    pub units: u64,
    /// Two node-disjoint paths.
    #[serde(default)]
    pub redundant: bool,
    /// Once it is up, run the user-space ON endpoint (`vinet-traffic
    /// tunnel`) at both access hosts, each path pinned to addresses of its
    /// own (static /32 routes on the path's routers).
    #[serde(default)]
    pub tunnel: bool,
}

fn d_managers() -> usize {
    1
}
fn d_refresh() -> u64 {
    2_000
}
fn d_prepare() -> u64 {
    3_000
}
fn d_retry() -> u64 {
    100
}
fn d_mark() -> u32 {
    0x800
}
fn d_share() -> f64 {
    0.5
}
fn d_units() -> u64 {
    1
}

/// What a run's plot shows.
#[derive(Debug, Deserialize, serde::Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PlotKind {
    /// The fraction of hosts infected over time.
    Infected,
    /// The bytes on each router-to-router link, by class.
    Links,
    /// The datagrams delivered each second, by traffic source, with the
    /// script's events, and the attacked routers' refusals by reason.
    Delivery,
    /// Overlay networks: each GRE source's packets delivered a second, the
    /// cross traffic's throughput, each router's reserved capacity.
    Overlay,
}

fn d_seed() -> u64 {
    1
}
fn d_sample() -> f64 {
    1.0
}

/// A generated topology: a core graph of routers, edge routers hanging off
/// it, hosts hanging off the edge routers.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// The core graph's model.
    pub model: GraphModel,
    /// Core routers (plain routers: no hosts, no vinet).
    pub core_routers: usize,
    /// Barabasi-Albert: links of each new router; Watts-Strogatz: neighbours
    /// on each side in the ring.
    #[serde(default = "d_m")]
    pub m: usize,
    /// Watts-Strogatz: probability of rewiring each ring link.
    #[serde(default)]
    pub rewire: f64,
    /// Edge routers, each attached to one core router (preferentially to
    /// well-connected ones).
    pub edge_routers: usize,
    /// Hosts, spread over the edge routers by preferential attachment (at
    /// least one each), so subnet sizes are uneven.
    pub hosts: usize,
    /// Bandwidth of core links (e.g. "100mbit"); none: unlimited.
    #[serde(default)]
    pub core_bandwidth: Option<String>,
    /// Bandwidth of edge-to-core uplinks.
    #[serde(default)]
    pub uplink_bandwidth: Option<String>,
    /// Bandwidth of host links.
    #[serde(default)]
    pub host_bandwidth: Option<String>,
}

fn d_m() -> usize {
    2
}

/// Core graph models.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GraphModel {
    /// Preferential attachment (AS-like, heavy-tailed degrees).
    BarabasiAlbert,
    /// A rewired ring (small world).
    WattsStrogatz,
}

/// A listed router.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    /// Its name (letters, digits, '-' and '_'; at most 12 characters).
    pub name: String,
    /// "edge" (has a subnet of hosts) or "core".
    pub kind: RouterKind,
    /// Whether an edge router runs vinetd (with `[vinet] placement =
    /// "listed"`, the default).
    #[serde(default)]
    pub vinet: bool,
}

/// A router's role.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// Has a /24 of hosts behind it; may run vinetd.
    Edge,
    /// Forwards only.
    Core,
}

/// A listed host.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Its name.
    pub name: String,
    /// The edge router it hangs off.
    pub router: String,
    /// Its link's bandwidth.
    #[serde(default)]
    pub bandwidth: Option<String>,
    /// Whether the worm can infect it (default: drawn from the worm's
    /// `vulnerable` fraction).
    #[serde(default)]
    pub vulnerable: Option<bool>,
}

/// A listed link between two routers.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// One end.
    pub a: String,
    /// The other end.
    pub b: String,
    /// Bandwidth (tc tbf on both ends), e.g. "10mbit".
    #[serde(default)]
    pub bandwidth: Option<String>,
}

/// Where vinetd runs, and how it is configured.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct VinetSpec {
    /// Which edge routers run vinetd.
    #[serde(default)]
    pub placement: Placement,
    /// With placement "degree" or "random": the fraction of edge routers
    /// (rounded to the nearest count).
    #[serde(default = "d_one")]
    pub fraction: f64,
    /// vinetd's window deadline, milliseconds.
    #[serde(default = "d_window")]
    pub window_millis: u64,
    /// vinetd's capacity (cost units per window).
    #[serde(default = "d_capacity")]
    pub capacity: u64,
    /// What vinetd's hooks do while it is down (killed, restarting):
    /// "closed" drops packets to clients with programs, "open" forwards them.
    #[serde(default)]
    pub down: Down,
}

/// vinetd's `[live] down`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Down {
    /// Drop (vinetd's default).
    #[default]
    Closed,
    /// Forward untouched.
    Open,
}

impl Default for VinetSpec {
    fn default() -> VinetSpec {
        VinetSpec { placement: Placement::Listed, fraction: 1.0, window_millis: d_window(), capacity: d_capacity(), down: Down::Closed }
    }
}

fn d_one() -> f64 {
    1.0
}
fn d_window() -> u64 {
    1000
}
fn d_capacity() -> u64 {
    1_000_000
}

/// How the vinet edge routers are chosen.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Each router's own `vinet` field.
    #[default]
    Listed,
    /// The edge routers with the most hosts first (ties by name).
    Degree,
    /// At random (from the seed).
    Random,
}

/// A traffic source.
#[derive(Debug, Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TrafficSpec {
    /// Constant-rate UDP from each sender to one peer drawn from the seed.
    Background {
        /// Its name (events start and stop it by name).
        name: String,
        /// Datagrams per second per sender.
        rate: f64,
        /// Payload bytes.
        #[serde(default = "d_size")]
        size: usize,
        /// Sending hosts (empty: every host).
        #[serde(default)]
        from: Vec<String>,
        /// The hosts each sender's peer is drawn from (empty: every other host).
        #[serde(default)]
        to: Vec<String>,
        /// Whether it runs from t = 0 (else an event starts it).
        #[serde(default = "d_true")]
        running: bool,
    },
    /// UDP datagrams carrying two spam words, from spammers to victims.
    Spam {
        /// Its name.
        name: String,
        /// Spamming hosts.
        from: Vec<String>,
        /// Receiving hosts (each spammer sends to each, in turn).
        to: Vec<String>,
        /// Datagrams per second per spammer.
        rate: f64,
        /// Payload bytes (the words come first).
        #[serde(default = "d_size")]
        size: usize,
        /// Whether it runs from t = 0.
        #[serde(default = "d_true")]
        running: bool,
    },
    /// One source sending each datagram to every receiver (a broadcast as
    /// unicast copies: what the paper's multicast aggregator collapses).
    Multicast {
        /// Its name.
        name: String,
        /// The broadcasting host.
        from: String,
        /// The receivers: each datagram goes to each, with the same payload.
        to: Vec<String>,
        /// Datagrams a second (each sent once to every receiver).
        rate: f64,
        /// Payload bytes.
        #[serde(default = "d_size")]
        size: usize,
        /// Whether it runs from t = 0.
        #[serde(default = "d_true")]
        running: bool,
    },
    /// GRE packets (an ON's, or of a key of no ON) from one host to
    /// another, sent by `vinet-traffic gre` in the sender's namespace
    /// (120-byte packets: a 92-byte inner UDP datagram), counted by key at
    /// both ends.
    Gre {
        /// Its name.
        name: String,
        /// The sending host.
        from: String,
        /// The receiving host.
        to: String,
        /// The GRE key: an ON's flow id (`on`, known once it is requested) ...
        #[serde(default)]
        on: Option<String>,
        /// ... or a key of its own.
        #[serde(default)]
        key: Option<u32>,
        /// Packets a second.
        pps: f64,
        /// Whether it runs from t = 0 (not with `on`: the key is known
        /// only when the ON is set up).
        #[serde(default)]
        running: bool,
    },
    /// A scanning worm: each infected host sends scans at `scan_rate` to
    /// random addresses of the subnets; a vulnerable host that receives one
    /// is infected with `infection_probability` and starts scanning.
    Worm {
        /// Its name.
        name: String,
        /// Scans per second per infected host.
        scan_rate: f64,
        /// Probability that a scan reaching a vulnerable host infects it.
        #[serde(default = "d_one")]
        infection_probability: f64,
        /// Fraction of hosts that are vulnerable (drawn from the seed; a
        /// host's own `vulnerable` field wins).
        #[serde(default = "d_one")]
        vulnerable: f64,
        /// Hosts infected at t = 0 (drawn from the vulnerable hosts), unless
        /// `initial_hosts` names them.
        #[serde(default = "d_initial")]
        initial: usize,
        /// Named initially infected hosts.
        #[serde(default)]
        initial_hosts: Vec<String>,
        /// Probability that a scan goes to the scanner's own subnet (as
        /// Code Red II preferred nearby addresses).
        #[serde(default)]
        local_preference: f64,
        /// Addresses scanned in each subnet: .2 to .(1 + scan_space).
        #[serde(default = "d_space")]
        scan_space: u8,
        /// The UDP port the worm scans.
        #[serde(default = "d_worm_port")]
        port: u16,
        /// Seconds from the start at which the initial hosts are infected.
        #[serde(default)]
        start: f64,
    },
}

fn d_size() -> usize {
    200
}
fn d_true() -> bool {
    true
}
fn d_initial() -> usize {
    1
}
fn d_space() -> u8 {
    64
}
fn d_worm_port() -> u16 {
    4444
}

impl TrafficSpec {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            TrafficSpec::Background { name, .. }
            | TrafficSpec::Spam { name, .. }
            | TrafficSpec::Multicast { name, .. }
            | TrafficSpec::Gre { name, .. }
            | TrafficSpec::Worm { name, .. } => name,
        }
    }
}

/// One timed event, as written: `action` says which fields it needs.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Seconds from the start.
    #[serde(default)]
    pub at: Option<f64>,
    /// Instead of `at`: when the fraction of hosts the worm infected first
    /// reaches this (detection).
    #[serde(default)]
    pub when_infected: Option<f64>,
    /// What happens.
    pub action: ActionKind,
    /// start, stop: the traffic source.
    #[serde(default)]
    pub traffic: Option<String>,
    /// link-down, link-up: the link's two ends.
    #[serde(default)]
    pub link: Option<[String; 2]>,
    /// kill-router, restart-router: the router; upload: the router, or
    /// "vinet" for every router that runs vinetd (the default).
    #[serde(default)]
    pub router: Option<String>,
    /// upload: the program (a .vinet file, relative to the scenario file).
    #[serde(default)]
    pub program: Option<String>,
    /// upload: its parameters (a value "@HOST" is that host's address).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// upload: who uploads: "owner" (each router's subnet owner, with an
    /// edge-router identity for the router's /24: the default), an edge
    /// router (its subnet's owner, uploading to other routers), or a host
    /// (an end-user identity for its address).
    #[serde(default)]
    pub client: Option<String>,
    /// upload, forged-upload, unsafe-upload: credits paid.
    #[serde(default)]
    pub pay: Option<u64>,
    /// forged-upload: "bad-signature", "stolen-identity", "unknown-authority"
    /// or "replay"; unsafe-upload: "unsafe-program" or "tampered".
    #[serde(default)]
    pub attack: Option<String>,
    /// forged-upload: the host whose identity (or signed request) the
    /// attacker forges (or replays).
    #[serde(default)]
    pub victim: Option<String>,
    /// flood: connections the attacker keeps open at once.
    #[serde(default)]
    pub connections: Option<usize>,
    /// flood: how long it goes on, seconds.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// flood: whether each connection sends garbage (else it sends nothing
    /// and holds the connection open).
    #[serde(default)]
    pub garbage: Option<bool>,
    /// load: uploads (programs installed, one instance each).
    #[serde(default)]
    pub programs: Option<usize>,
    /// load: clients (end-user identities) the uploads are spread over.
    #[serde(default)]
    pub clients: Option<usize>,
    /// load: uploads in flight at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// load: the program's parameter (an address) each upload binds to a
    /// value of its own.
    #[serde(default)]
    pub vary: Option<String>,
    /// on-request, on-release: the ON.
    #[serde(default)]
    pub on: Option<String>,
    /// on-request: the managers asked (1-based; several at once, each in
    /// turn `count` times); on-release, manager-stop, manager-start: one.
    #[serde(default)]
    pub manager: Option<Managers>,
    /// on-request: requests per manager (each a new ON of the same spec).
    #[serde(default)]
    pub count: Option<usize>,
    /// manager-start: the coordinator's crash point; restart-router: the
    /// participant's (`VINET_ONMGR_CRASH_AT`, `VINET_ONMGR_ROUTER_CRASH_AT`).
    #[serde(default)]
    pub crash_at: Option<String>,
    /// on-request: what the event expects (its `ok`): "granted" (every
    /// request gets an id: the default), "refused" (none does: e.g. cut short
    /// by a crash) or "any".
    #[serde(default)]
    pub expect: Option<String>,
    /// on-check: seconds to wait for the overlay to settle (no transaction
    /// undecided, no prepared lease) before checking.
    #[serde(default)]
    pub wait: Option<f64>,
    /// on-transfer: TCP bytes.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// on-transfer: the TCP sender's pace (a bandwidth, e.g. "8mbit").
    #[serde(default)]
    pub rate: Option<String>,
    /// on-transfer: the UDP stream's datagrams a second.
    #[serde(default)]
    pub pps: Option<f64>,
}

/// One manager (`manager = 1`) or several (`manager = [1, 2]`), 1-based.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum Managers {
    /// One.
    One(usize),
    /// Several.
    Many(Vec<usize>),
}

impl Managers {
    /// As a list.
    pub fn list(&self) -> Vec<usize> {
        match self {
            Managers::One(m) => vec![*m],
            Managers::Many(v) => v.clone(),
        }
    }
}

/// The event kinds.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Prove (before the run) and upload a program.
    Upload,
    /// Start a traffic source.
    Start,
    /// Stop a traffic source.
    Stop,
    /// Take a link down (both ends; routes are static, so its traffic is lost).
    LinkDown,
    /// Bring it back.
    LinkUp,
    /// SIGKILL a router's vinetd.
    KillRouter,
    /// Start it again on its state.
    RestartRouter,
    /// A malicious host floods a router's admission port with connections
    /// (idle, or sending garbage), in the background.
    Flood,
    /// A malicious host uploads with a forged identity or a replayed request.
    ForgedUpload,
    /// A malicious host uploads a program that fails the router's check.
    UnsafeUpload,
    /// Many clients upload many programs to one router, from a host.
    Load,
    /// Ask a manager for an ON.
    OnRequest,
    /// Release an ON (every id the script got for it).
    OnRelease,
    /// SIGKILL a manager.
    ManagerStop,
    /// Start a manager again (on its state), possibly with a crash point.
    ManagerStart,
    /// Check the overlay: every reservation on all routers of its ON's
    /// paths or on none, no router over capacity, no id given twice.
    OnCheck,
    /// A TCP transfer and a paced UDP stream inside an ON's tunnel (in the
    /// background).
    OnTransfer,
}

impl ActionKind {
    /// Its name in the file.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Upload => "upload",
            ActionKind::Start => "start",
            ActionKind::Stop => "stop",
            ActionKind::LinkDown => "link-down",
            ActionKind::LinkUp => "link-up",
            ActionKind::KillRouter => "kill-router",
            ActionKind::RestartRouter => "restart-router",
            ActionKind::Flood => "flood",
            ActionKind::ForgedUpload => "forged-upload",
            ActionKind::UnsafeUpload => "unsafe-upload",
            ActionKind::Load => "load",
            ActionKind::OnRequest => "on-request",
            ActionKind::OnRelease => "on-release",
            ActionKind::ManagerStop => "manager-stop",
            ActionKind::ManagerStart => "manager-start",
            ActionKind::OnCheck => "on-check",
            ActionKind::OnTransfer => "on-transfer",
        }
    }
}

/// A sweep over deployments and seeds.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Fractions of edge routers running vinet.
    #[serde(default)]
    pub fraction: Vec<f64>,
    /// Placements.
    #[serde(default)]
    pub placement: Vec<Placement>,
    /// Seeds.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Programs each `load` event uploads (its `programs`, and `clients` at
    /// most as many).
    #[serde(default)]
    pub programs: Vec<usize>,
}

/// A scenario read from its file, with where it came from (programs are
/// relative to it).
#[derive(Debug)]
pub struct Loaded {
    /// The scenario.
    pub scenario: Scenario,
    /// Its file.
    pub path: PathBuf,
    /// Its text (for locating problems found later).
    pub text: String,
}

impl Loaded {
    /// Locate a byte offset of the file.
    pub fn error_at(&self, offset: usize, msg: impl Into<String>) -> ScenarioError {
        locate(&self.path, &self.text, offset, msg.into())
    }

    /// The directory programs are relative to.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

fn locate(path: &Path, text: &str, offset: usize, msg: String) -> ScenarioError {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    ScenarioError { file: path.display().to_string(), line, col, msg }
}

/// Read and parse a scenario file (its meaning is checked by
/// [`crate::topology::Plan::new`]).
pub fn load(path: &Path) -> Result<Loaded, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.display().to_string(),
        line: 0,
        col: 0,
        msg: format!("cannot read: {e}"),
    })?;
    parse(path, text)
}

/// Parse a scenario's text.
pub fn parse(path: &Path, text: String) -> Result<Loaded, ScenarioError> {
    match toml::from_str::<Scenario>(&text) {
        Ok(scenario) => Ok(Loaded { scenario, path: path.to_path_buf(), text }),
        Err(e) => {
            let off = e.span().map_or(0, |s| s.start);
            Err(locate(path, &text, off, e.message().trim().to_string()))
        }
    }
}

/// A bandwidth such as "10mbit", "512kbit", "1gbit" or "2000bit", in bits
/// per second (tc's units, decimal).
pub fn bandwidth(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = [("gbit", 1_000_000_000u64), ("mbit", 1_000_000), ("kbit", 1_000), ("bit", 1)]
        .iter()
        .find_map(|(u, m)| t.strip_suffix(u).map(|n| (n.trim().to_string(), *m)))
        .ok_or_else(|| format!("bandwidth {s:?} needs a unit: bit, kbit, mbit or gbit (e.g. \"10mbit\")"))?;
    let v: f64 = num.parse().map_err(|_| format!("bandwidth {s:?}: {num:?} is not a number"))?;
    let bits = v * mult as f64;
    if !(8_000.0..=100e9).contains(&bits) {
        return Err(format!("bandwidth {s:?} is out of range (8kbit to 100gbit)"));
    }
    Ok(bits as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Loaded, ScenarioError> {
        parse(Path::new("s.toml"), text.to_string())
    }

    #[test]
    fn unknown_fields_are_refused_at_their_line() {
        let e = p("name = \"x\"\nduration = 5\n\n[[host]]\nname = \"a\"\nrouter = \"r\"\ncolour = \"red\"\n").unwrap_err();
        assert_eq!((e.line, e.col), (7, 1), "{e}");
        assert!(e.msg.contains("unknown field `colour`"), "{e}");
        let e = p("name = \"x\"\nduration = 5\n[[traffic]]\nkind = \"worm\"\nname = \"w\"\nscan_rate = 1\nspeed = 3\n").unwrap_err();
        assert!(e.msg.contains("speed"), "{e}");
        assert!(e.line >= 3, "{e}");
        let e = p("name = \"x\"\nduration = 5\n[[event]]\nat = 1\naction = \"explode\"\n").unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.msg.contains("explode"), "{e}");
    }

    #[test]
    fn a_full_scenario_parses() {
        let l = p(r#"
name = "x"
seed = 4
duration = 10
[generate]
model = "barabasi-albert"
core_routers = 4
edge_routers = 3
hosts = 9
[vinet]
placement = "degree"
fraction = 0.5
[[traffic]]
kind = "background"
name = "bg"
rate = 5
[[traffic]]
kind = "worm"
name = "w"
scan_rate = 10
local_preference = 0.5
[[event]]
when_infected = 0.1
action = "upload"
program = "../../examples/worm_blocker.vinet"
params = { N = "2" }
[[event]]
at = 3
action = "link-down"
link = ["c0", "c1"]
[sweep]
fraction = [0, 0.5, 1]
placement = ["degree", "random"]
seeds = [1, 2]
"#)
        .unwrap();
        let s = &l.scenario;
        assert_eq!(s.seed, 4);
        assert_eq!(s.traffic.len(), 2);
        assert_eq!(s.events[0].get_ref().action, ActionKind::Upload);
        assert_eq!(s.sweep.as_ref().unwrap().get_ref().placement, vec![Placement::Degree, Placement::Random]);
    }

    #[test]
    fn bandwidths() {
        assert_eq!(bandwidth("10mbit"), Ok(10_000_000));
        assert_eq!(bandwidth("1.5Mbit"), Ok(1_500_000));
        assert!(bandwidth("10").unwrap_err().contains("needs a unit"));
        assert!(bandwidth("fastmbit").unwrap_err().contains("not a number"));
        assert!(bandwidth("1bit").unwrap_err().contains("out of range"));
    }
}
