//! The router's configuration file (`vinetd --config ROUTER.toml`; an
//! example is `examples/router.toml`).
//!
//! As with the policy, every unknown field is an error (a misspelt field must
//! not silently fall back to a default). Relative paths are relative to the
//! configuration file's directory.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use vinet_checker::bytecode::Class;
use vinet_checker::policy::ClientKind;
use vinet_checker::Policy;
use vinet_proto::identity::{parse_public_key, parse_secret_key, unhex};
/// The class names and indices are the vocabulary's (re-exported for the
/// router's modules, which name classes in refusals, logs and metrics).
pub use vinet_vocab::names::{class_index, class_name};
use vinet_vocab::IpPrefix;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: String,
    metrics: Option<String>,
    database: PathBuf,
    router_key: PathBuf,
    capacity: u64,
    window_millis: u64,
    lemmas: Option<PathBuf>,
    #[serde(default)]
    serves: Vec<String>,
    #[serde(default = "d_max_request")]
    max_request_bytes: usize,
    #[serde(default = "d_max_connections")]
    max_connections: usize,
    #[serde(default)]
    max_connections_per_address: Option<usize>,
    #[serde(default = "d_max_queue")]
    max_queue: usize,
    #[serde(default = "d_max_pending")]
    max_pending_per_client: usize,
    #[serde(default = "d_timeout")]
    request_timeout_secs: u64,
    cost_units_per_credit: u64,
    drop_for_everyone: usize,
    #[serde(default = "d_true")]
    check_cache: bool,
    #[serde(default = "d_log")]
    log_format: String,
    policies: RawPolicies,
    authorities: Vec<RawAuthority>,
    #[serde(default)]
    grants: Vec<RawGrant>,
    #[serde(default)]
    revoked_keys: Vec<String>,
    #[serde(default)]
    operator_socket: Option<PathBuf>,
    quotas: RawQuotas,
    live: RawLive,
    #[serde(default)]
    announce: Option<RawAnnounce>,
    #[serde(default)]
    overlay: Option<RawOverlay>,
}

/// `[overlay]`: virtual overlay networks (issue 13).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    node: u32,
    listen: String,
    manager_key: PathBuf,
    key: PathBuf,
    store: PathBuf,
    capacity: RawResources,
    #[serde(default)]
    unreserved: RawUnreserved,
    #[serde(default = "d_refresh_ms")]
    refresh_ms: u64,
    #[serde(default)]
    mark: Option<u32>,
    #[serde(default = "d_alert_drop_fraction")]
    alert_drop_fraction: f64,
    #[serde(default = "d_sample_ms")]
    sample_ms: u64,
}

fn d_alert_drop_fraction() -> f64 {
    0.01
}

fn d_sample_ms() -> u64 {
    1_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    bps: u64,
    pps: u64,
    units: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnreserved {
    #[serde(default = "d_burst_bytes")]
    burst_bytes: u64,
    #[serde(default = "d_burst_packets")]
    burst_packets: u64,
}

impl Default for RawUnreserved {
    fn default() -> RawUnreserved {
        RawUnreserved { burst_bytes: d_burst_bytes(), burst_packets: d_burst_packets() }
    }
}

fn d_refresh_ms() -> u64 {
    30_000
}
fn d_burst_bytes() -> u64 {
    64 * 1024
}
fn d_burst_packets() -> u64 {
    64
}

/// `[announce]`: what `vinetd --config R.toml announce` signs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnnounce {
    key: PathBuf,
    identity: PathBuf,
    address: Option<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default = "d_valid_for")]
    valid_for: String,
}

fn d_valid_for() -> String {
    "1 days".into()
}

fn d_max_request() -> usize {
    1 << 20
}
fn d_max_connections() -> usize {
    256
}
fn d_max_queue() -> usize {
    1024
}
fn d_max_pending() -> usize {
    8
}
fn d_timeout() -> u64 {
    10
}
fn d_true() -> bool {
    true
}
fn d_log() -> String {
    "text".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    #[serde(rename = "end-user")]
    end_user: Option<PathBuf>,
    #[serde(rename = "edge-router")]
    edge_router: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthority {
    name: String,
    /// The public key in hex (or a public key file's text).
    key: Option<String>,
    /// A public key file (`vinetc keygen`'s `.pub`); exactly one of the two.
    key_file: Option<PathBuf>,
    grant: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    prefix: String,
    credits: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuotas {
    filtering: usize,
    multicast: usize,
    monitoring: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLive {
    mode: String,
    #[serde(default)]
    queue: u16,
    #[serde(default = "one")]
    threads: u16,
    #[serde(default = "one")]
    window_threads: u16,
    #[serde(default = "yes")]
    hooks: bool,
    #[serde(default = "closed")]
    down: String,
    #[serde(default = "drop_word")]
    queue_full: String,
    #[serde(default = "forward_word")]
    ipv6: String,
}

fn one() -> u16 {
    1
}
fn yes() -> bool {
    true
}
fn closed() -> String {
    "closed".into()
}
fn drop_word() -> String {
    "drop".into()
}
fn forward_word() -> String {
    "forward".into()
}

/// An authority's public key, from exactly one of `key` (hex) and `key_file`
/// (a path taken through `rel`, the config's relative-path rule).
fn authority_key(a: &RawAuthority, rel: &dyn Fn(&Path) -> PathBuf) -> Result<VerifyingKey, String> {
    match (&a.key, &a.key_file) {
        (Some(hex), None) => parse_public_key(hex).map_err(|e| e.to_string()),
        (None, Some(file)) => {
            let path = rel(file);
            let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => match path.to_str().and_then(|p| p.strip_suffix(".pub")) {
                    Some(secret) => format!("key_file {} does not exist (`vinetc keygen -o {secret}` makes it)", path.display()),
                    None => format!("key_file {} does not exist (`vinetc keygen -o KEY` makes KEY.pub)", path.display()),
                },
                _ => format!("cannot read key_file {}: {e}", path.display()),
            })?;
            if parse_secret_key(&text).is_ok() {
                return Err(format!(
                    "key_file {} is a secret key: point key_file at its public half (the .pub file), and keep the secret one off the router",
                    path.display()
                ));
            }
            parse_public_key(&text).map_err(|e| format!("key_file {}: {e}", path.display()))
        }
        (Some(_), Some(_)) => Err("has both `key` and `key_file`: give exactly one".into()),
        (None, None) => Err("has no key: give `key_file = \"FILE.pub\"` (a `vinetc keygen` public key file) or `key = \"HEX\"`".into()),
    }
}

/// A trusted authority.
#[derive(Clone, Debug)]
pub struct Authority {
    /// Its name (logs).
    pub name: String,
    /// Its public key.
    pub key: VerifyingKey,
    /// Credits granted to each client it vouches for, on first contact.
    pub grant: u64,
}

/// The router's directory announcement (`[announce]`): its files, read
/// only when `vinetd announce` signs one.
#[derive(Clone, Debug)]
pub struct AnnounceConfig {
    /// The announcement key (a `vinetc keygen` secret key).
    pub key: PathBuf,
    /// The authority's edge-router identity for that key (`vinetc identity issue --prefix`).
    pub identity: PathBuf,
    /// Where clients reach the router [default: `listen`].
    pub address: std::net::SocketAddrV4,
    /// The source prefixes it sits in front of [default: the identity's prefixes].
    pub prefixes: Vec<IpPrefix>,
    /// How long an announcement is valid, seconds.
    pub valid_for_secs: u64,
}

/// `[overlay]`: the router's side of virtual overlay networks (issue 13).
///
/// vinetd hosts the participant server of the ON manager
/// (`vinet_onmgr::router`) and, with `[live] mode = "nfqueue"`, serves
/// forwarded IPv4 GRE packets within their ON's reservation. The
/// unreserved share (GRE packets of no ON in force) gets the capacity that
/// no reservation holds, with the bursts given here.
#[derive(Clone, Debug)]
pub struct OverlayConfig {
    /// This router's id in the manager's routers file (its name in the
    /// manager's decision log: never reuse one).
    pub node: u32,
    /// Where the participant server listens for the manager.
    pub listen: std::net::SocketAddr,
    /// The only manager it answers.
    pub manager_key: VerifyingKey,
    /// This router's signing key file (`vinet-onmgr keygen FILE`), read at start.
    pub key: PathBuf,
    /// The SQLite store of its leases (they survive a restart).
    pub store: PathBuf,
    /// What reservations may sum to: bits/s, packets/s, program units.
    pub capacity: vinet_overlay::partition::Resources,
    /// The unreserved share's bucket sizes, bytes.
    pub unreserved_burst_bytes: u64,
    /// The unreserved share's bucket sizes, packets.
    pub unreserved_burst_packets: u64,
    /// The manager's refresh period R in ms: a lease not refreshed within
    /// 5.25 R lapses (RFC 2205's lifetime).
    pub refresh_ms: u64,
    /// The netfilter mark the ON lane sets on the packets that an ON's
    /// reservation passes (none if absent): the operator's egress qdisc
    /// gives that mark priority (a priority class it is classified into), so that a
    /// policed ON also gets its rate on a congested link.
    pub mark: Option<u32>,
    /// The VON monitor alerts when more than this fraction of an ON's
    /// packets are dropped over contract in a sampling period.
    pub alert_drop_fraction: f64,
    /// The VON monitor's sampling period, milliseconds.
    pub sample_ms: u64,
}

/// The manager's public key from a file: 64 hex digits, as `vinet-onmgr
/// keygen` prints them (a secret key file is refused).
fn manager_key(path: &Path) -> Result<VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("manager_key {}: {e}", path.display()))?;
    if text.trim_start().starts_with("vinet-onmgr-key-v1") {
        return Err(format!(
            "manager_key {} is a secret key: give the file of its public half (the 64 hex digits `vinet-onmgr keygen` prints)",
            path.display()
        ));
    }
    vinet_onmgr::wire::parse_public(&text).map_err(|e| format!("manager_key {}: {e}", path.display()))
}

/// Where live packets come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveMode {
    /// No live traffic (admission only; tests, or a router fed otherwise).
    None,
    /// Packets the kernel hands over through NFQUEUE.
    Nfqueue(NfqueueConfig),
}

/// `[live]` with `mode = "nfqueue"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NfqueueConfig {
    /// The first queue: packet-local lanes read `queue .. queue + threads`,
    /// the windowed lane `queue + threads`.
    pub queue: u16,
    /// Packet-local lanes (threads), 1 to 64.
    pub threads: u16,
    /// Windowed lanes (threads), 1 to 64; clients are spread over them by
    /// destination (overlapping destinations on one lane).
    pub window_threads: u16,
    /// vinetd installs and keeps its own kernel hooks (else the operator
    /// queues every packet to `queue`, read by one windowed lane).
    pub hooks: bool,
    /// While vinetd is down, packets to clients with programs pass
    /// (`down = "open"`) instead of being dropped (`"closed"`).
    pub down_open: bool,
    /// While a queue is full, packets pass (`queue_full = "accept"`)
    /// instead of being dropped (`"drop"`).
    pub queue_full_accept: bool,
    /// Forwarded IPv6 that no program sees (to no client with programs) is
    /// dropped (`ipv6 = "drop"`) instead of forwarded untouched
    /// (`"forward"`, the default); counted either way. IPv6 to a client
    /// with programs (an identity with IPv6 addresses) is seen by them.
    pub ipv6_drop: bool,
}

/// The router's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where requests are accepted (HOST:PORT).
    pub listen: String,
    /// Where the Prometheus endpoint listens, if anywhere.
    pub metrics: Option<String>,
    /// The SQLite database.
    pub database: PathBuf,
    /// The router's Noise static key file (created if missing).
    pub router_key: PathBuf,
    /// Capacity: cost units per window that installed distinct instances may sum to.
    pub capacity: u64,
    /// T: a live window closes this many ms after its first packet.
    pub window_millis: u64,
    /// A lemma library to verify and cache at start.
    pub lemmas: Option<PathBuf>,
    /// Client destinations this router serves, IPv4 and IPv6 prefixes
    /// (empty: any).
    pub serves: Vec<IpPrefix>,
    /// Largest request, bytes.
    pub max_request_bytes: usize,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Connections one address may hold at once (default: a quarter of
    /// `max_connections`, at least 4).
    pub max_connections_per_address: usize,
    /// Most requests waiting for the scheduler.
    pub max_queue: usize,
    /// Most requests of one client waiting for the scheduler.
    pub max_pending_per_client: usize,
    /// Seconds a request (the handshake too) has to arrive whole from its first
    /// byte, and that a connection may stay silent between requests.
    pub request_timeout_secs: u64,
    /// Price: credits = ceil(declared cost / this).
    pub cost_units_per_credit: u64,
    /// N: when more than N destinations run programs that discard a source,
    /// the source is dropped for everyone.
    pub drop_for_everyone: usize,
    /// Reuse the check of a byte-identical bundle already checked.
    pub check_cache: bool,
    /// "text" or "json".
    pub log_format: String,
    /// The policy of end-user clients.
    pub policy_end_user: Option<Policy>,
    /// The policy of edge-router clients.
    pub policy_edge_router: Option<Policy>,
    /// Trusted authorities.
    pub authorities: Vec<Authority>,
    /// Credit grants by client prefix (first match wins over the authority's grant).
    pub grants: Vec<(IpPrefix, u64)>,
    /// Client keys revoked by the operator's config: refused, their leases ended.
    pub revoked_keys: Vec<[u8; 32]>,
    /// The operator's local socket (`vinetd ctl`), mode 0600; by default
    /// `operator.sock` beside the database.
    pub operator_socket: PathBuf,
    /// Most destinations per source, per functionality class.
    pub quotas: [usize; 3],
    /// Live packets.
    pub live: LiveMode,
    /// The directory announcement, if configured.
    pub announce: Option<AnnounceConfig>,
    /// Virtual overlay networks, if configured.
    pub overlay: Option<OverlayConfig>,
}

impl Config {
    /// Read a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, dir)
    }

    /// Parse configuration text; relative paths are taken from `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Config, ConfigError> {
        let err = |m: String| ConfigError(format!("invalid router config: {m}"));
        let raw: Raw = toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        let rel = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
        let policy = |p: &Option<PathBuf>, kind: ClientKind| -> Result<Option<Policy>, ConfigError> {
            let Some(p) = p else { return Ok(None) };
            let pol = vinet_engine::policy_file::load(rel(p)).map_err(|e| err(e.to_string()))?;
            if pol.client != kind {
                return Err(err(format!("policy {} is for {:?} clients, listed under {:?}", p.display(), pol.client, kind)));
            }
            Ok(Some(pol))
        };
        let policy_end_user = policy(&raw.policies.end_user, ClientKind::EndUser)?;
        let policy_edge_router = policy(&raw.policies.edge_router, ClientKind::EdgeRouter)?;
        if policy_end_user.is_none() && policy_edge_router.is_none() {
            return Err(err("[policies] names no policy".into()));
        }
        if let (Some(a), Some(b)) = (&policy_end_user, &policy_edge_router) {
            if a.window_packets != b.window_packets {
                return Err(err("the two policies must have the same window_packets (the router runs one window)".into()));
            }
        }
        if raw.authorities.is_empty() {
            return Err(err("no [[authorities]]: the router would trust no identity".into()));
        }
        let authorities = raw
            .authorities
            .into_iter()
            .map(|a| {
                let key = authority_key(&a, &rel).map_err(|e| err(format!("authority {}: {e}", a.name)))?;
                Ok(Authority { name: a.name, key, grant: a.grant })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let serves = raw.serves.iter().map(|s| s.parse().map_err(|e| err(format!("serves: {e}")))).collect::<Result<Vec<_>, _>>()?;
        let revoked_keys = raw
            .revoked_keys
            .iter()
            .map(|k| unhex::<32>(k.trim()).map_err(|e| err(format!("revoked_keys: {k:?}: {e} (the hex of a client's key.pub)"))))
            .collect::<Result<Vec<_>, _>>()?;
        let grants = raw
            .grants
            .iter()
            .map(|g| g.prefix.parse().map(|p| (p, g.credits)).map_err(|e| err(format!("grants: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if raw.drop_for_everyone == 0 {
            return Err(
                err("drop_for_everyone must be at least 1 (the source is dropped when MORE than N destinations discard it)".into()),
            );
        }
        if raw.cost_units_per_credit == 0 {
            return Err(err("cost_units_per_credit must be at least 1".into()));
        }
        if raw.max_request_bytes < 1024 || raw.max_request_bytes > 64 << 20 {
            return Err(err("max_request_bytes must be between 1 KiB and 64 MiB".into()));
        }
        if raw.max_connections == 0 || raw.max_queue == 0 || raw.max_pending_per_client == 0 {
            return Err(err("max_connections, max_queue and max_pending_per_client must be at least 1".into()));
        }
        if !matches!(raw.log_format.as_str(), "text" | "json") {
            return Err(err(format!("log_format = {:?}: expected \"text\" or \"json\"", raw.log_format)));
        }
        let live = match raw.live.mode.as_str() {
            "none" => LiveMode::None,
            "nfqueue" => {
                let l = &raw.live;
                let word = |field: &str, v: &str, no: &str, yes: &str| match v {
                    x if x == no => Ok(false),
                    x if x == yes => Ok(true),
                    other => Err(err(format!("[live] {field} = {other:?}: expected {no:?} or {yes:?}"))),
                };
                for (field, n) in [("threads", l.threads), ("window_threads", l.window_threads)] {
                    if !(1..=64).contains(&n) {
                        return Err(err(format!("[live] {field} = {n}: expected 1 to 64")));
                    }
                }
                if u32::from(l.queue) + u32::from(l.threads) + u32::from(l.window_threads) > u32::from(u16::MAX) {
                    return Err(err("[live] queue + threads + window_threads must be at most 65535".into()));
                }
                LiveMode::Nfqueue(NfqueueConfig {
                    queue: l.queue,
                    threads: l.threads,
                    window_threads: l.window_threads,
                    hooks: l.hooks,
                    down_open: word("down", &l.down, "closed", "open")?,
                    queue_full_accept: word("queue_full", &l.queue_full, "drop", "accept")?,
                    ipv6_drop: word("ipv6", &l.ipv6, "forward", "drop")?,
                })
            }
            other => return Err(err(format!("[live] mode = {other:?}: expected \"none\" or \"nfqueue\""))),
        };
        let announce = match &raw.announce {
            None => None,
            Some(a) => {
                let at = a.address.as_deref().unwrap_or(&raw.listen);
                let address: std::net::SocketAddrV4 = at.parse().map_err(|_| {
                    err(format!("[announce] address {at:?}: expected IPV4:PORT, where clients reach this router (default: listen)"))
                })?;
                if address.ip().is_unspecified() || address.port() == 0 {
                    return Err(err(format!("[announce] address {at}: clients cannot connect there; give address = \"IPV4:PORT\"")));
                }
                let prefixes = a
                    .prefixes
                    .iter()
                    .map(|s| s.parse().map_err(|e| err(format!("[announce] prefixes: {e}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                let valid_for_secs =
                    vinet_vocab::names::parse_duration(&a.valid_for).map_err(|e| err(format!("[announce] valid_for: {e}")))?.max(1);
                Some(AnnounceConfig { key: rel(&a.key), identity: rel(&a.identity), address, prefixes, valid_for_secs })
            }
        };
        let overlay = match &raw.overlay {
            None => None,
            Some(o) => {
                let listen =
                    o.listen.parse().map_err(|_| err(format!("[overlay] listen {:?}: expected HOST:PORT (an IP address)", o.listen)))?;
                if let LiveMode::Nfqueue(n) = live {
                    if !n.hooks {
                        return Err(err(
                            "[overlay] needs vinetd's own hooks ([live] hooks = true): they queue the forwarded GRE packets to the ON lane"
                                .into(),
                        ));
                    }
                    if u32::from(n.queue) + u32::from(n.threads) + u32::from(n.window_threads) + 1 > u32::from(u16::MAX) {
                        return Err(err(
                            "[overlay]'s queue comes after the windowed lanes': queue + threads + window_threads must be at most 65534"
                                .into(),
                        ));
                    }
                }
                let c = &o.capacity;
                if c.bps == 0 || c.pps == 0 {
                    return Err(err("[overlay] capacity: bps and pps must be positive".into()));
                }
                if o.unreserved.burst_bytes == 0 || o.unreserved.burst_packets == 0 {
                    return Err(err("[overlay] unreserved: burst_bytes and burst_packets must be positive".into()));
                }
                if o.refresh_ms == 0 || o.refresh_ms > u64::MAX / 1_000_000 / 6 {
                    return Err(err(format!("[overlay] refresh_ms = {}: expected a positive number of milliseconds", o.refresh_ms)));
                }
                Some(OverlayConfig {
                    node: o.node,
                    listen,
                    manager_key: manager_key(&rel(&o.manager_key)).map_err(|e| err(format!("[overlay] {e}")))?,
                    key: rel(&o.key),
                    store: rel(&o.store),
                    capacity: vinet_overlay::partition::Resources { bps: c.bps, pps: c.pps, units: c.units },
                    unreserved_burst_bytes: o.unreserved.burst_bytes,
                    unreserved_burst_packets: o.unreserved.burst_packets,
                    refresh_ms: o.refresh_ms,
                    alert_drop_fraction: match o.alert_drop_fraction {
                        f if (0.0..=1.0).contains(&f) => f,
                        f => return Err(err(format!("[overlay] alert_drop_fraction = {f}: expected a fraction from 0 to 1"))),
                    },
                    sample_ms: match o.sample_ms {
                        0 => return Err(err("[overlay] sample_ms: expected a positive number of milliseconds".into())),
                        ms => ms,
                    },
                    mark: match o.mark {
                        Some(m) if m & crate::live::hooks::HOOK_BITS != 0 || m == 0 => {
                            return Err(err(format!(
                                "[overlay] mark = 0x{m:x}: expected a nonzero mark clear of vinetd's own bits (0x{:x})",
                                crate::live::hooks::HOOK_BITS
                            )))
                        }
                        m => m,
                    },
                })
            }
        };
        Ok(Config {
            overlay,
            announce,
            listen: raw.listen,
            metrics: raw.metrics,
            operator_socket: raw.operator_socket.as_deref().map_or_else(|| rel(&raw.database).with_file_name("operator.sock"), rel),
            database: rel(&raw.database),
            router_key: rel(&raw.router_key),
            capacity: raw.capacity,
            window_millis: raw.window_millis.max(1),
            lemmas: raw.lemmas.as_deref().map(rel),
            serves,
            max_request_bytes: raw.max_request_bytes,
            max_connections: raw.max_connections,
            max_connections_per_address: raw
                .max_connections_per_address
                .unwrap_or_else(|| raw.max_connections.div_ceil(4).max(4))
                .clamp(1, raw.max_connections),
            max_queue: raw.max_queue,
            max_pending_per_client: raw.max_pending_per_client,
            request_timeout_secs: raw.request_timeout_secs.max(1),
            cost_units_per_credit: raw.cost_units_per_credit,
            drop_for_everyone: raw.drop_for_everyone,
            check_cache: raw.check_cache,
            log_format: raw.log_format,
            policy_end_user,
            policy_edge_router,
            authorities,
            grants,
            revoked_keys,
            // In class_index order.
            quotas: [raw.quotas.filtering, raw.quotas.multicast, raw.quotas.monitoring],
            live,
        })
    }

    /// The policy for a client kind.
    pub fn policy(&self, kind: ClientKind) -> Option<&Policy> {
        match kind {
            ClientKind::EndUser => self.policy_end_user.as_ref(),
            ClientKind::EdgeRouter => self.policy_edge_router.as_ref(),
            // Overlay-network owners' programs are checked (vinetc) but not yet run by routers.
            ClientKind::OnOwner => None,
        }
    }

    /// W: the window size of the router (the policies').
    pub fn window_packets(&self) -> u32 {
        self.policy_end_user.or(self.policy_edge_router).map_or(256, |p| p.window_packets)
    }

    /// The quota of a functionality class.
    pub fn quota(&self, class: Class) -> usize {
        self.quotas[class_index(class)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinet_proto::identity::{public_key_text, secret_key_text, SigningKey};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// A scratch copy of `examples/` as the README's steps leave it: the
    /// example config, its policies, and the operator's public key file that
    /// `vinetc keygen -o examples/operator.key` writes. Returns the config's
    /// directory and the operator key.
    fn examples(name: &str) -> (PathBuf, SigningKey) {
        let dir = std::env::temp_dir().join(format!("vinet-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        std::fs::copy(root().join("examples/router.toml"), dir.join("router.toml")).unwrap();
        for p in ["end-user.toml", "edge-router.toml"] {
            std::fs::copy(root().join("examples/policies").join(p), dir.join("policies").join(p)).unwrap();
        }
        let operator = SigningKey::from_bytes(&[7; 32]);
        std::fs::write(dir.join("operator.key.pub"), public_key_text(&operator.verifying_key())).unwrap();
        (dir, operator)
    }

    /// `[announce]`: defaults, refusals, and the entry `vinetd announce` signs.
    #[test]
    fn announce_section_signs_a_verifiable_entry() {
        use vinet_proto::directory::SignedAnnouncement;
        use vinet_proto::identity::{issue, Subject};
        let (dir, operator) = examples("announce");
        let base = std::fs::read_to_string(dir.join("router.toml")).unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        std::fs::write(dir.join("announce.key"), secret_key_text(&key)).unwrap();
        let subject = Subject::EdgeRouter { prefix: "10.9.0.0/16".parse().unwrap(), router_ip: 0x0a09_0001 };
        let id = issue(&operator, &key.verifying_key(), subject, 0, u64::MAX / 2).unwrap();
        std::fs::write(dir.join("announce.vid"), id.to_file()).unwrap();
        let with =
            |extra: &str| Config::parse(&format!("{base}\n[announce]\nkey = \"announce.key\"\nidentity = \"announce.vid\"\n{extra}"), &dir);
        let c = with("").unwrap();
        assert!(Config::parse(&base, &dir).unwrap().announce.is_none());
        let a = c.announce.as_ref().unwrap();
        assert_eq!((a.address.to_string(), a.valid_for_secs, a.prefixes.len()), ("127.0.0.1:7700".into(), 86_400, 0));
        let signed = crate::announce::announcement(&c, 1000).unwrap();
        let line = crate::announce::lines(&signed);
        assert!(line.starts_with("# vinetd at 127.0.0.1:7700 for 10.9.0.0/16, Noise key "), "{line}");
        let back = SignedAnnouncement::from_line(line.lines().nth(1).unwrap()).unwrap();
        let e = back.verify(&[operator.verifying_key()], 1000).unwrap();
        assert_eq!(e.prefixes, vec!["10.9.0.0/16".parse().unwrap()]);
        assert_eq!(e.noise_key, vinet_proto::keyfile::router_key(&c.router_key).unwrap().1);
        // Prefixes outside the identity's, bad addresses and durations are refused.
        let c = with("prefixes = [\"10.8.0.0/16\"]").unwrap();
        assert!(crate::announce::announcement(&c, 1000).unwrap_err().contains("outside 10.9.0.0/16"));
        for (extra, want) in [
            ("address = \"0.0.0.0:7700\"", "clients cannot connect there"),
            ("address = \"router:7700\"", "expected IPV4:PORT"),
            ("valid_for = \"2 weeks\"", "valid_for"),
            ("prefixes = [\"10.9.0.1/16\"]", "host bits"),
            ("colour = 1", "unknown field"),
        ] {
            let e = with(extra).unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
        // An end user's identity announces nothing.
        let user = issue(&operator, &key.verifying_key(), Subject::EndUser { ip: 1 }, 0, u64::MAX / 2).unwrap();
        std::fs::write(dir.join("announce.vid"), user.to_file()).unwrap();
        assert!(crate::announce::announcement(&with("").unwrap(), 1000).unwrap_err().contains("end user"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `[overlay]`: absent, the config is as before; present, it is checked.
    #[test]
    fn overlay_section_is_optional_and_checked() {
        let (dir, _) = examples("overlay");
        let base = std::fs::read_to_string(dir.join("router.toml")).unwrap();
        assert!(Config::parse(&base, &dir).unwrap().overlay.is_none());
        let manager = SigningKey::from_bytes(&[5; 32]);
        let hex = vinet_proto::identity::hex(manager.verifying_key().as_bytes());
        std::fs::write(dir.join("manager.pub"), format!("{hex}\n")).unwrap();
        std::fs::write(dir.join("manager.key"), format!("vinet-onmgr-key-v1 {hex}\n")).unwrap();
        let section = "\n[overlay]\nnode = 2\nlisten = \"127.0.0.1:7403\"\nmanager_key = \"manager.pub\"\nkey = \"r.key\"\nstore = \"ov.db\"\ncapacity = { bps = 1000, pps = 10, units = 1 }\n";
        let c = Config::parse(&format!("{base}{section}"), &dir).unwrap();
        let o = c.overlay.unwrap();
        assert_eq!((o.node, o.refresh_ms, o.unreserved_burst_packets), (2, 30_000, 64));
        assert_eq!((o.manager_key, o.store), (manager.verifying_key(), dir.join("ov.db")));
        let e = |t: &str| Config::parse(t, &dir).unwrap_err().to_string();
        assert!(e(&format!("{base}{}", section.replace("manager.pub", "manager.key"))).contains("is a secret key"));
        assert!(e(&format!("{base}{}", section.replace("pps = 10", "pps = 0"))).contains("bps and pps must be positive"));
        assert!(e(&format!("{base}{section}colour = 1\n")).contains("unknown field"));
        assert_eq!(o.mark, None);
        assert_eq!(Config::parse(&format!("{base}{section}mark = 16\n"), &dir).unwrap().overlay.unwrap().mark, Some(16));
        assert_eq!((o.alert_drop_fraction, o.sample_ms), (0.01, 1_000));
        assert!(e(&format!("{base}{section}alert_drop_fraction = 1.5\n")).contains("expected a fraction"));
        assert!(e(&format!("{base}{section}sample_ms = 0\n")).contains("sample_ms"));
        for bad in ["0", "0x40000000", "0x10000001"] {
            assert!(e(&format!("{base}{section}mark = {bad}\n")).contains("clear of vinetd's own bits"), "{bad}");
        }
        let nfq = base.replace("mode = \"none\"", "mode = \"nfqueue\"").replace("hooks = true", "hooks = false");
        assert!(nfq.contains("hooks = false"));
        assert!(e(&format!("{nfq}{section}")).contains("[overlay] needs vinetd's own hooks"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn example_config_parses() {
        let (dir, operator) = examples("parses");
        let c = Config::load(&dir.join("router.toml")).unwrap();
        assert!(c.policy(ClientKind::EndUser).is_some());
        assert_eq!(c.window_packets(), 256);
        // The README's steps run as a user who is not root: the example's
        // state lives under the config's directory, its authority is the key
        // file those steps create, and it has no live packet path.
        assert_eq!(c.database, dir.join("state/router.db"));
        assert_eq!(c.router_key, dir.join("state/router.key"));
        assert_eq!(c.authorities.len(), 1);
        assert_eq!(c.authorities[0].key, operator.verifying_key());
        assert_eq!(c.live, LiveMode::None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_authority_is_given_by_exactly_one_of_key_and_key_file() {
        let (dir, operator) = examples("authority");
        let text = std::fs::read_to_string(dir.join("router.toml")).unwrap();
        let by_file = "key_file = \"operator.key.pub\"";
        assert!(text.contains(by_file), "the example config names its authority by {by_file}");
        let parse = |t: &str| Config::parse(t, &dir).map(|c| c.authorities[0].key).map_err(|e| e.to_string());
        let hex = vinet_proto::identity::hex(operator.verifying_key().as_bytes());

        // By hex, and by a file relative to the config's directory: the same key.
        assert_eq!(parse(&text.replace(by_file, &format!("key = \"{hex}\""))), Ok(operator.verifying_key()));
        assert_eq!(parse(&text), Ok(operator.verifying_key()));
        // An absolute path is taken as it is.
        let absolute = format!("key_file = \"{}\"", dir.join("operator.key.pub").display());
        assert_eq!(parse(&text.replace(by_file, &absolute)), Ok(operator.verifying_key()));

        let both = parse(&text.replace(by_file, &format!("{by_file}\nkey = \"{hex}\""))).unwrap_err();
        assert_eq!(both, "invalid router config: authority operator: has both `key` and `key_file`: give exactly one");
        let neither = parse(&text.replace(by_file, "")).unwrap_err();
        assert_eq!(
            neither,
            "invalid router config: authority operator: has no key: give `key_file = \"FILE.pub\"` (a `vinetc keygen` public key file) or `key = \"HEX\"`"
        );
        let missing = parse(&text.replace(by_file, "key_file = \"nobody.key.pub\"")).unwrap_err();
        assert_eq!(
            missing,
            format!(
                "invalid router config: authority operator: key_file {} does not exist (`vinetc keygen -o {}` makes it)",
                dir.join("nobody.key.pub").display(),
                dir.join("nobody.key").display()
            )
        );
        std::fs::write(dir.join("operator.key"), secret_key_text(&operator)).unwrap();
        let secret = parse(&text.replace(by_file, "key_file = \"operator.key\"")).unwrap_err();
        assert!(secret.contains("operator.key is a secret key: point key_file at its public half"), "{secret}");
        std::fs::write(dir.join("garbled.pub"), "vinet-public-key-v1 00ff\n").unwrap();
        let garbled = parse(&text.replace(by_file, "key_file = \"garbled.pub\"")).unwrap_err();
        assert!(garbled.contains("garbled.pub: ") && garbled.contains("expected 64 hex digits"), "{garbled}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let (dir, _) = examples("bad");
        let text = std::fs::read_to_string(dir.join("router.toml")).unwrap();
        let e = |t: &str| Config::parse(t, &dir).unwrap_err().to_string();
        assert!(e(&text.replace("capacity =", "capacty =")).contains("unknown field"));
        assert!(e(&text.replace("mode = \"none\"", "mode = \"pcap\"")).contains("[live] mode"));
        let nfq = text.replace("mode = \"none\"", "mode = \"nfqueue\"");
        let live = Config::parse(&nfq.replace("down = \"closed\"", "down = \"open\"").replace("\nthreads = 1 ", "\nthreads = 2 "), &dir)
            .unwrap()
            .live;
        assert_eq!(
            live,
            LiveMode::Nfqueue(NfqueueConfig {
                queue: 0,
                threads: 2,
                window_threads: 1,
                hooks: true,
                down_open: true,
                queue_full_accept: false,
                ipv6_drop: false
            })
        );
        assert!(e(&nfq.replace("down = \"closed\"", "down = \"ajar\"")).contains("[live] down = \"ajar\": expected \"closed\" or \"open\""));
        assert!(e(&nfq.replace("ipv6 = \"forward\"", "ipv6 = \"see\"")).contains("[live] ipv6"));
        assert!(e(&nfq.replace("\nthreads = 1 ", "\nthreads = 0 ")).contains("[live] threads = 0"));
        assert!(e(&nfq.replace("window_threads = 1 ", "window_threads = 65 ")).contains("[live] window_threads = 65"));
        assert!(e(&text.replace("cost_units_per_credit = 1_000_000", "cost_units_per_credit = 0")).contains("cost_units_per_credit"));
        let host_bits = e(&text.replace("# serves = [\"10.0.3.0/24\", \"2001:db8:3::/64\"]", "serves = [\"10.0.0.1/8\"]"));
        assert!(host_bits.contains("serves: `10.0.0.1/8` has host bits set (did you mean 10.0.0.0/8?)"), "{host_bits}");
        assert!(e(&text.replace("drop_for_everyone = 3", "drop_for_everyone = 0")).contains("drop_for_everyone"));
        // Both families: IPv4 prefixes and addresses, and IPv6 ones.
        let ok = Config::parse(
            &text.replace(
                "# serves = [\"10.0.3.0/24\", \"2001:db8:3::/64\"]",
                "serves = [\"10.0.3.0/24\", \"10.0.4.7\", \"fd00:3::/64\", \"fd00:4::7\"]",
            ),
            &dir,
        )
        .unwrap();
        assert_eq!(
            ok.serves.iter().map(|p| <(u128, u8)>::from(*p)).collect::<Vec<_>>(),
            [
                (vinet_checker::mapped(0x0a00_0300), 120),
                (vinet_checker::mapped(0x0a00_0407), 128),
                (0xfd00_0003 << 96, 64),
                (0xfd00_0004 << 96 | 7, 128)
            ]
        );
        assert_eq!(
            ok.serves.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.3.0/24", "10.0.4.7/32", "fd00:3::/64", "fd00:4::7/128"]
        );
        assert!(e(&text.replace("# serves = [\"10.0.3.0/24\", \"2001:db8:3::/64\"]", "serves = [\"ten\"]"))
            .contains("serves: `ten` is not an address or prefix"));
        let v6_bits = e(&text.replace("# serves = [\"10.0.3.0/24\", \"2001:db8:3::/64\"]", "serves = [\"fd00:3::1/64\"]"));
        assert!(v6_bits.contains("serves: `fd00:3::1/64` has host bits set (did you mean fd00:3::/64?)"), "{v6_bits}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
