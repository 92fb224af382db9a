//! One run of a plan: prepare the keys, identities, router configs and
//! bundles; build the network; start vinetd on the vinet edge routers and an
//! agent on every host; play the script while sampling; collect what was
//! measured; tear everything down. Everything started is owned by a guard
//! ([`Network`], [`Procs`]), so an error, a panic or an interrupt (the `stop`
//! flag, set by the SIGINT/SIGTERM handler) leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::agent::{AgentSpec, Flow, Summary, Worm};
use crate::netns::{self, Network, OsError, Procs};
use crate::overlay::{Overlay, OverlayResult};
use crate::scenario::{Placement, TrafficSpec};
use crate::topology::{Action, Forgery, Kind, Plan, Unsafe, When, BACKGROUND_PORT, GENERATE_PORT, MULTICAST_PORT, SPAM_PORT};

/// Where the tools and the project's files are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// vinetc.
    pub vinetc: PathBuf,
    /// vinetd.
    pub vinetd: PathBuf,
    /// This binary (runs the agents).
    pub emu: PathBuf,
    /// vinet-onmgr (overlay scenarios).
    pub onmgr: PathBuf,
    /// vinet-traffic (GRE traffic).
    pub traffic: PathBuf,
    /// The repository (for examples/policies).
    pub root: PathBuf,
}

/// A run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The stop flag was set (SIGINT or SIGTERM).
    #[error("interrupted")]
    Interrupted,
    /// Something else.
    #[error("{0}")]
    Failed(String),
}

impl From<OsError> for RunError {
    fn from(e: OsError) -> RunError {
        if e.0 == "interrupted" {
            RunError::Interrupted
        } else {
            RunError::Failed(e.0)
        }
    }
}

fn fail(m: impl Into<String>) -> RunError {
    RunError::Failed(m.into())
}

/// A sample of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds from the start.
    pub t: f64,
    /// Hosts infected so far.
    pub infected: usize,
    /// Each running vinetd's CPU time so far (user and system, all its
    /// threads), seconds.
    #[serde(default)]
    pub router_cpu: BTreeMap<String, f64>,
}

/// An infection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Infection {
    /// The host.
    pub host: String,
    /// When (seconds; the host's own clock from `go`).
    pub t: f64,
    /// By whom ("initial" or the scanner's address).
    pub by: String,
}

/// What an event did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventLog {
    /// When it fired.
    pub t: f64,
    /// When it was done.
    pub done: f64,
    /// What it was.
    pub action: String,
    /// Whether it worked; for a forged or unsafe upload: whether the router
    /// refused it (the outcome the scenario expects of a sound router).
    pub ok: bool,
    /// What the tools said.
    pub outcome: String,
    /// A forged or unsafe upload: the router's reason for refusing it (its
    /// metric label, e.g. "key_mismatch"), if it refused.
    #[serde(default)]
    pub refused: Option<String>,
    /// A load: what it did.
    #[serde(default)]
    pub load: Option<crate::load::LoadResult>,
}

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// Bytes (IP, as the kernel counts them).
    pub bytes: u64,
}

/// What crossed a link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkResult {
    /// "a-b".
    pub name: String,
    /// Whether it is a host's link.
    pub host_link: bool,
    /// From a to b.
    pub a_to_b: Count,
    /// From b to a.
    pub b_to_a: Count,
    /// Per class, each direction, where a router sends it (bytes).
    pub classes: BTreeMap<String, [u64; 2]>,
}

/// What a host sent and received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostResult {
    /// The host.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// Its edge router.
    pub router: String,
    /// Whether the worm could infect it.
    pub vulnerable: bool,
    /// The agent's report.
    pub summary: Summary,
}

/// Delivery of one sender's flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowResult {
    /// The traffic source.
    pub traffic: String,
    /// Its class.
    pub class: String,
    /// The sender.
    pub from: String,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams its receivers got.
    pub delivered: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The scenario.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Fraction of edge routers with vinet (as configured).
    pub fraction: f64,
    /// Their placement.
    pub placement: Placement,
    /// Scenario seconds.
    pub duration: f64,
    /// Namespaces the run held.
    pub namespaces: usize,
    /// Hosts.
    pub hosts: usize,
    /// Edge and core routers.
    pub routers: usize,
    /// The routers that ran vinetd.
    pub vinet_routers: Vec<String>,
    /// Vulnerable hosts.
    pub vulnerable: usize,
    /// Samples.
    pub samples: Vec<Sample>,
    /// Infections.
    pub infections: Vec<Infection>,
    /// The script as played.
    pub events: Vec<EventLog>,
    /// Links.
    pub links: Vec<LinkResult>,
    /// Hosts.
    pub host_results: Vec<HostResult>,
    /// Flows.
    pub flows: Vec<FlowResult>,
    /// Each vinetd's metrics page at the end (series -> value).
    pub router_metrics: BTreeMap<String, BTreeMap<String, f64>>,
    /// Seconds it took to build the network and start everything.
    pub setup_secs: f64,
    /// What its plot shows, if the scenario says.
    #[serde(default)]
    pub plot: Option<crate::scenario::PlotKind>,
    /// With a sweep over programs: this run's count.
    #[serde(default)]
    pub programs: Option<usize>,
    /// Overlay networks: the per-source GRE counts and routers' reservations
    /// over time, the ids granted, the check at the end.
    #[serde(default)]
    pub overlay: Option<OverlayResult>,
}

/// The traffic classes and their ports (the counters' names).
fn classes(plan: &Plan) -> Vec<(String, u16)> {
    let mut c = vec![];
    if plan.traffic.iter().any(|t| matches!(t.spec, TrafficSpec::Background { .. })) {
        c.push(("background".to_string(), BACKGROUND_PORT));
    }
    if plan.traffic.iter().any(|t| matches!(t.spec, TrafficSpec::Spam { .. })) {
        c.push(("spam".to_string(), SPAM_PORT));
    }
    if plan.traffic.iter().any(|t| matches!(t.spec, TrafficSpec::Multicast { .. })) {
        c.push(("multicast".to_string(), MULTICAST_PORT));
    }
    if let Some(w) = plan.worm() {
        c.push(("worm".to_string(), w.port));
    }
    if plan.events.iter().any(|e| matches!(e.action, Action::Upload { .. })) {
        c.push(("generated".to_string(), GENERATE_PORT));
    }
    c
}

fn class_of(spec: &TrafficSpec) -> &'static str {
    match spec {
        TrafficSpec::Background { .. } => "background",
        TrafficSpec::Spam { .. } => "spam",
        TrafficSpec::Multicast { .. } => "multicast",
        TrafficSpec::Worm { .. } => "worm",
        TrafficSpec::Gre { .. } => "gre",
    }
}

struct Files {
    work: PathBuf,
    operator: PathBuf,
}

fn vinetc(tools: &Tools, args: &[&str]) -> Result<String, RunError> {
    let o = Command::new(&tools.vinetc).args(args).stdin(Stdio::null()).output().map_err(|e| fail(format!("vinetc: {e}")))?;
    if !o.status.success() {
        return Err(fail(format!(
            "vinetc {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into())
}

fn p(x: &Path) -> &str {
    x.to_str().expect("utf-8 path")
}

/// vinetd's ports on its edge router's address.
const LISTEN_PORT: u16 = 7700;
pub(crate) const METRICS_PORT: u16 = 9100;
/// The longest one upload may take (`timeout` kills vinetc after it).
const UPLOAD_SECS: u32 = 30;

fn router_config(plan: &Plan, tools: &Tools, files: &Files, r: usize) -> Result<PathBuf, RunError> {
    let node = &plan.nodes[r];
    let dir = files.work.join(&node.name);
    std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let addr = node.addr.expect("edge address");
    let pubkey = std::fs::read_to_string(format!("{}.pub", files.operator.display())).map_err(|e| fail(e.to_string()))?;
    let key = pubkey.split_whitespace().nth(1).ok_or_else(|| fail("operator key.pub has no key"))?;
    let root = tools.root.display();
    let text = format!(
        r#"# written by vinet-emu for router {name}
listen = "{addr}:{LISTEN_PORT}"
metrics = "{addr}:{METRICS_PORT}"
database = "{db}"
router_key = "{rk}"
capacity = {cap}
window_millis = {wm}
cost_units_per_credit = 1_000_000
drop_for_everyone = 100
max_connections = 64
request_timeout_secs = 10

[policies]
end-user = "{root}/examples/policies/end-user.toml"
edge-router = "{root}/examples/policies/edge-router.toml"

[[authorities]]
name = "operator"
key = "{key}"
grant = 1_000_000

[quotas]
filtering = 100
multicast = 100
monitoring = 100

[live]
mode = "nfqueue"
queue = 0
threads = 1
window_threads = 1
down = "{down}"
{overlay}"#,
        name = node.name,
        db = dir.join("router.db").display(),
        rk = dir.join("router.key").display(),
        cap = plan.vinet.capacity,
        wm = plan.vinet.window_millis,
        down = if plan.vinet.down == crate::scenario::Down::Open { "open" } else { "closed" },
        overlay = crate::overlay::vinetd_section(plan, &files.work, r).unwrap_or_default(),
    );
    let cfg = dir.join("router.toml");
    std::fs::write(&cfg, text).map_err(|e| fail(e.to_string()))?;
    let o = Command::new(&tools.vinetd)
        .args(["--config", p(&cfg), "--print-key"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("vinetd: {e}")))?;
    if !o.status.success() {
        return Err(fail(format!("vinetd --print-key: {}", String::from_utf8_lossy(&o.stderr))));
    }
    std::fs::write(dir.join("router.pub"), &o.stdout).map_err(|e| fail(e.to_string()))?;
    owner_identity(plan, tools, files, r)?;
    Ok(cfg)
}

/// The subnet's owner of edge router `r`: a key and an edge-router identity
/// for its /24 with the router's address, in `work/<r>/owner.{key,vid}`.
fn owner_identity(plan: &Plan, tools: &Tools, files: &Files, r: usize) -> Result<(), RunError> {
    let node = &plan.nodes[r];
    let dir = files.work.join(&node.name);
    let addr = node.addr.expect("edge address");
    if dir.join("owner.vid").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let owner = dir.join("owner.key");
    vinetc(tools, &["keygen", "-o", p(&owner)])?;
    let prefix = format!("10.1.{}.0/24", node.subnet.expect("subnet"));
    vinetc(
        tools,
        &[
            "identity",
            "issue",
            "--authority",
            p(&files.operator),
            "--client",
            &format!("{}.pub", owner.display()),
            "--prefix",
            &prefix,
            "--router-ip",
            &addr.to_string(),
            "-o",
            p(&dir.join("owner.vid")),
        ],
    )?;
    Ok(())
}

/// An end-user key and identity for host `h`'s address, issued by
/// `authority`: `work/<stem>.key` and `work/<stem>.vid`.
fn host_identity(plan: &Plan, tools: &Tools, files: &Files, h: usize, authority: &Path, stem: &str) -> Result<(), RunError> {
    let key = files.work.join(format!("{stem}.key"));
    if !key.exists() {
        vinetc(tools, &["keygen", "-o", p(&key)])?;
    }
    let addr = plan.nodes[h].addr.expect("address").to_string();
    let id = files.work.join(format!("{stem}.vid"));
    let pubk = format!("{}.pub", key.display());
    vinetc(tools, &["identity", "issue", "--authority", p(authority), "--client", &pubk, "--address", &addr, "-o", p(&id)])?;
    Ok(())
}

/// What a forged or unsafe upload sends: the key and identity it signs
/// with, and the bundle (or, for a replay, the request file).
struct AttackFiles {
    key: PathBuf,
    id: PathBuf,
    bundle: PathBuf,
}

/// The signed request that upload event `ix` by `client` to `router` saves
/// (what a replay sends again).
fn saved_request(files: &Files, plan: &Plan, ix: usize, client: usize, router: usize) -> PathBuf {
    files.work.join(format!("request{ix}-{}-{}.bin", plan.nodes[client].name, plan.nodes[router].name))
}

/// LEB128, as postcard writes an integer.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Make, before the run, the forged identities and unsafe bundles of the
/// script's attacks, by event index. Each is made the way an attacker
/// would, with the tools and files an attacker has: its own key and
/// identity, the victim's identity certificate (public: it is sent with
/// every request), an authority key of its own, a prover, and a hex editor.
fn prepare_attacks(
    plan: &Plan, tools: &Tools, files: &Files, bundles: &BTreeMap<(PathBuf, bool), PathBuf>,
) -> Result<BTreeMap<usize, AttackFiles>, RunError> {
    let mut out = BTreeMap::new();
    let name = |i: usize| plan.nodes[i].name.clone();
    for (i, e) in plan.events.iter().enumerate() {
        let w = |f: &str| files.work.join(format!("attack{i}-{f}"));
        match &e.action {
            Action::ForgedUpload { client, router, victim, forgery, program, .. } => {
                let own = (files.work.join(format!("{}.key", name(*client))), files.work.join(format!("{}.vid", name(*client))));
                let bundle = program.as_ref().map(|p| bundles[&(p.clone(), false)].clone());
                let (key, id, bundle) = match forgery {
                    Forgery::BadSignature => {
                        // The attacker's own identity, its address overwritten with the victim's.
                        let mut bytes = std::fs::read(&own.1).map_err(|e| fail(e.to_string()))?;
                        let ip = |h: usize| varint(u64::from(u32::from(plan.nodes[h].addr.expect("address"))));
                        let (mine, theirs) = (ip(*client), ip(*victim));
                        let at = bytes
                            .windows(mine.len())
                            .position(|x| x == mine.as_slice())
                            .filter(|_| mine.len() == theirs.len())
                            .ok_or_else(|| {
                                fail(format!("event {}: cannot find {}'s address in its identity file", i + 1, name(*client)))
                            })?;
                        bytes[at..at + theirs.len()].copy_from_slice(&theirs);
                        std::fs::write(w("forged.vid"), bytes).map_err(|e| fail(e.to_string()))?;
                        (own.0, w("forged.vid"), bundle.expect("program"))
                    }
                    Forgery::StolenIdentity => (own.0, files.work.join(format!("{}.vid", name(*victim))), bundle.expect("program")),
                    Forgery::UnknownAuthority => {
                        let rogue = files.work.join("rogue-authority.key");
                        if !rogue.exists() {
                            vinetc(tools, &["keygen", "-o", p(&rogue)])?;
                        }
                        // A key of the attacker's, certified by its own authority for the victim's address.
                        std::fs::copy(&own.0, w("rogue.key")).map_err(|e| fail(e.to_string()))?;
                        let addr = plan.nodes[*victim].addr.expect("address").to_string();
                        let pubk = format!("{}.pub", own.0.display());
                        vinetc(
                            tools,
                            &[
                                "identity",
                                "issue",
                                "--authority",
                                p(&rogue),
                                "--client",
                                &pubk,
                                "--address",
                                &addr,
                                "-o",
                                p(&w("rogue.vid")),
                            ],
                        )?;
                        (w("rogue.key"), w("rogue.vid"), bundle.expect("program"))
                    }
                    Forgery::Replay => {
                        // The victim's first upload to this router (the plan checked there is one before).
                        let first = plan
                            .events
                            .iter()
                            .position(|x| matches!(&x.action, Action::Upload { client: Some(c), routers, .. } if c == victim && routers.contains(router)))
                            .expect("an earlier upload");
                        (own.0, own.1, saved_request(files, plan, first, *victim, *router))
                    }
                };
                out.insert(i, AttackFiles { key, id, bundle });
            }
            Action::UnsafeUpload { client, how, program, .. } => {
                let key = files.work.join(format!("{}.key", name(*client)));
                let id = files.work.join(format!("{}.vid", name(*client)));
                let bundle = match how {
                    // Proved under the edge-router policy, sent under an end-user identity.
                    Unsafe::UnsafeProgram => bundles[&(program.clone(), true)].clone(),
                    Unsafe::Tampered => tamper(tools, &bundles[&(program.clone(), false)], &w("tampered.vpc"))?,
                };
                out.insert(i, AttackFiles { key, id, bundle });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A copy of a proved bundle with one bit changed: the first, from byte 8
/// (the module's bytes come first), whose change `vinetc check` refuses for
/// a reason other than an undecodable bundle or module (the program was
/// altered after it was proved, and its certificate no longer holds). Not
/// every change is refused: the checker certifies safety, not where the
/// bytes came from, so a change that leaves a safe module (another address
/// constant, say) is a safe program, and is accepted.
fn tamper(tools: &Tools, vpc: &Path, out: &Path) -> Result<PathBuf, RunError> {
    let bytes = std::fs::read(vpc).map_err(|e| fail(format!("{}: {e}", vpc.display())))?;
    let policy = tools.root.join("examples/policies/end-user.toml");
    for at in 8..bytes.len().min(64) {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        std::fs::write(out, &b).map_err(|e| fail(e.to_string()))?;
        let o = Command::new(&tools.vinetc)
            .args(["check", p(out), "--policy", p(&policy)])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("vinetc: {e}")))?;
        let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        if !o.status.success() && !said.contains("malformed") {
            return Ok(out.to_path_buf());
        }
    }
    Err(fail(format!("{}: no single-bit change of its first 64 bytes makes a bundle the checker refuses", vpc.display())))
}

struct Router {
    cfg: PathBuf,
    log: PathBuf,
    proc_ix: Option<usize>,
}

fn start_vinetd(
    net: &Network, tools: &Tools, r: usize, router: &mut Router, procs: &mut Procs, stop: &AtomicBool, crash_at: Option<&str>,
) -> Result<(), RunError> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(&router.log).map_err(|e| fail(e.to_string()))?;
    let from = f.metadata().map_or(0, |m| m.len() as usize);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", net.of(r)]).arg(&tools.vinetd).args(["--config", p(&router.cfg)]);
    match crash_at {
        // The participant vinetd hosts honours the stand-alone one's crash points.
        Some(c) => cmd.env("VINET_ONMGR_ROUTER_CRASH_AT", c),
        None => cmd.env_remove("VINET_ONMGR_ROUTER_CRASH_AT"),
    };
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(f).spawn().map_err(|e| fail(format!("vinetd: {e}")))?;
    let ix = procs.push(format!("vinetd {}", net.of(r)), child);
    router.proc_ix = Some(ix);
    let t0 = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(RunError::Interrupted);
        }
        let log = std::fs::read_to_string(&router.log).unwrap_or_default();
        if log.get(from..).is_some_and(|t| t.contains("vinetd ready")) {
            return Ok(());
        }
        if let Ok(Some(st)) = procs.list[ix].1.try_wait() {
            return Err(fail(format!("vinetd in {} exited ({st}):\n{}", net.of(r), log.get(from..).unwrap_or_default())));
        }
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(fail(format!("vinetd in {} not ready after 120 s:\n{log}", net.of(r))));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Agent {
    stdin: ChildStdin,
}

impl Agent {
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
    }
}

fn agent_spec(plan: &Plan, h: usize) -> AgentSpec {
    let node = &plan.nodes[h];
    let addr = node.addr.expect("host address");
    let mut flows = vec![];
    let mut listen = vec![];
    for t in &plan.traffic {
        let class = class_of(&t.spec);
        if class != "worm" && class != "gre" && !listen.iter().any(|(c, _): &(String, u16)| c == class) {
            listen.push((class.to_string(), t.port));
        }
        let (rate, size, running, text) = match &t.spec {
            TrafficSpec::Background { rate, size, running, .. } => (*rate, *size, *running, String::new()),
            TrafficSpec::Spam { rate, size, running, .. } => (*rate, *size, *running, "viagra lottery ".repeat(2)),
            TrafficSpec::Multicast { rate, size, running, .. } => (*rate, *size, *running, String::new()),
            TrafficSpec::Worm { .. } | TrafficSpec::Gre { .. } => continue,
        };
        if let Some(k) = t.from.iter().position(|f| *f == h) {
            let to = t.to[k].iter().map(|x| plan.nodes[*x].addr.expect("address")).collect();
            let fanout = matches!(t.spec, TrafficSpec::Multicast { .. });
            flows.push(Flow {
                traffic: t.spec.name().to_string(),
                class: class.to_string(),
                port: t.port,
                to,
                rate,
                size,
                running,
                text,
                fanout,
            });
        }
    }
    let worm = plan.worm().map(|w| {
        let TrafficSpec::Worm { scan_rate, infection_probability, local_preference, scan_space, port, start, .. } = &w.spec else {
            unreachable!("worm")
        };
        Worm {
            port: *port,
            scan_rate: *scan_rate,
            infection_probability: *infection_probability,
            local_preference: *local_preference,
            own_subnet: node.subnet.expect("subnet"),
            subnets: plan.nodes.iter().filter(|n| n.kind == Kind::Edge).filter_map(|n| n.subnet).collect(),
            scan_space: *scan_space,
            vulnerable: node.vulnerable,
            infected: w.initial.contains(&h),
            start: *start,
        }
    });
    AgentSpec { name: node.name.clone(), addr, seed: plan.seed, max_secs: plan.duration + 30.0, listen, flows, worm }
}

/// Prove each program the script uploads, once per policy; cached in
/// `cache` by the program's content and the policy.
fn bundles(plan: &Plan, tools: &Tools, cache: &Path) -> Result<BTreeMap<(PathBuf, bool), PathBuf>, RunError> {
    let mut out = BTreeMap::new();
    std::fs::create_dir_all(cache).map_err(|e| fail(format!("{}: {e}", cache.display())))?;
    for e in &plan.events {
        let (program, edge) = match &e.action {
            Action::Upload { program, client, .. } => (program, client.is_none_or(|c| plan.nodes[c].kind == Kind::Edge)),
            // An attacker is a host (end-user policy); an unsafe program is proved under the other one.
            Action::ForgedUpload { program: Some(program), .. } => (program, false),
            Action::UnsafeUpload { program, how, .. } => (program, *how == Unsafe::UnsafeProgram),
            Action::Load { program, .. } => (program, false),
            _ => continue,
        };
        if out.contains_key(&(program.clone(), edge)) {
            continue;
        }
        let text = std::fs::read(program).map_err(|e| fail(format!("{}: {e}", program.display())))?;
        let policy = tools.root.join(if edge { "examples/policies/edge-router.toml" } else { "examples/policies/end-user.toml" });
        let policy_text = std::fs::read(&policy).map_err(|e| fail(format!("{}: {e}", policy.display())))?;
        // Keyed by the program, the policy and the prover that proves it (vinetc's size and time), so
        // that a bundle of another version of the tools (another certificate format) is never reused.
        let prover = std::fs::metadata(&tools.vinetc).map_err(|e| fail(format!("{}: {e}", tools.vinetc.display())))?;
        let stamp = format!("{}:{:?}", prover.len(), prover.modified().ok());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.iter().chain(b"\0").chain(&policy_text).chain(b"\0").chain(stamp.as_bytes()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let stem = program.file_stem().and_then(|s| s.to_str()).unwrap_or("program");
        let vpc = cache.join(format!("{stem}-{h:016x}.vpc"));
        if !vpc.exists() {
            vinetc(tools, &["prove", p(program), "--policy", p(&policy), "-o", p(&vpc)])?;
        }
        out.insert((program.clone(), edge), vpc);
    }
    Ok(out)
}

/// A process's CPU time (user and system, all its threads), seconds, from
/// /proc (in clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The longest a load event may take (`timeout` kills the client after it).
const LOAD_SECS: u32 = 300;

pub(crate) fn metrics(ns: &str, addr: &str) -> BTreeMap<String, f64> {
    let page =
        netns::sh(&["ip", "netns", "exec", ns, "curl", "-s", "--max-time", "5", &format!("http://{addr}/metrics")]).unwrap_or_default();
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Progress reporting: a bar on a terminal, nothing otherwise.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A bar when `show`.
    pub fn new(show: bool) -> Progress {
        Progress(show.then(indicatif::ProgressBar::hidden))
    }
    fn phase(&self, len: u64, label: &str) {
        if let Some(b) = &self.0 {
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b.set_style(
                indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:32}] {pos}/{len} {msg}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            b.set_length(len);
            b.set_position(0);
            b.set_prefix(label.to_string());
        }
    }
    fn set(&self, pos: u64, msg: String) {
        if let Some(b) = &self.0 {
            b.set_position(pos);
            b.set_message(msg);
        }
    }
    fn line(&self, msg: &str) {
        match &self.0 {
            Some(b) if !b.is_hidden() => b.println(msg),
            _ => eprintln!("{msg}"),
        }
    }
    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Run a plan. `work` is a scratch directory (removed after), `cache` keeps
/// proved bundles between runs, `stop` is the interrupt flag.
pub fn run(plan: &Plan, tools: &Tools, work: &Path, cache: &Path, stop: &AtomicBool, progress: &Progress) -> Result<RunResult, RunError> {
    let t_setup = Instant::now();
    let check = || if stop.load(Ordering::SeqCst) { Err(RunError::Interrupted) } else { Ok(()) };
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).map_err(|e| fail(format!("{}: {e}", work.display())))?;
    let files = Files { work: work.to_path_buf(), operator: work.join("operator.key") };
    vinetc(tools, &["keygen", "-o", p(&files.operator)])?;
    let bundles = bundles(plan, tools, cache)?;
    let mut overlay = Overlay::prepare(plan, tools, work)?;
    let mut routers: BTreeMap<usize, Router> = BTreeMap::new();
    for r in plan.vinet_routers() {
        check()?;
        let cfg = router_config(plan, tools, &files, r)?;
        routers.insert(r, Router { cfg, log: work.join(&plan.nodes[r].name).join("vinetd.log"), proc_ix: None });
    }
    // End-user identities of hosts that upload, attack or are impersonated.
    let mut host_ids: BTreeSet<usize> = BTreeSet::new();
    for e in &plan.events {
        let hosts: Vec<usize> = match e.action {
            Action::Upload { client: Some(h), .. } if plan.nodes[h].kind == Kind::Edge => {
                owner_identity(plan, tools, &files, h)?;
                vec![]
            }
            Action::Upload { client: Some(h), .. } => vec![h],
            Action::ForgedUpload { client, victim, .. } => vec![client, victim],
            Action::UnsafeUpload { client, .. } => vec![client],
            _ => vec![],
        };
        for h in hosts {
            if host_ids.insert(h) {
                host_identity(plan, tools, &files, h, &files.operator, &plan.nodes[h].name)?;
            }
        }
    }
    let attacks = prepare_attacks(plan, tools, &files, &bundles)?;

    let classes = classes(plan);
    progress.line(&format!(
        "{} seed {}: {} namespaces ({} hosts, {} routers, {} running vinetd), {} links",
        plan.name,
        plan.seed,
        plan.nodes.len(),
        plan.hosts().count(),
        plan.nodes.len() - plan.hosts().count(),
        routers.len(),
        plan.links.len()
    ));
    let mut net = Network::build(plan, &netns::run_prefix(), &classes, &|| stop.load(Ordering::SeqCst))?;
    if let Some(o) = overlay.as_mut() {
        o.build(plan, &mut net)?;
    }
    let mut procs = Procs::default();
    progress.phase(routers.len() as u64, "vinetd");
    for (i, (r, router)) in routers.iter_mut().enumerate() {
        start_vinetd(&net, tools, *r, router, &mut procs, stop, None)?;
        progress.set(i as u64 + 1, plan.nodes[*r].name.clone());
    }
    if let Some(o) = overlay.as_mut() {
        progress.line("overlay: participants and managers");
        o.start(plan, tools, &net, &mut procs, stop)?;
    }

    // Agents.
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    let mut agents: BTreeMap<usize, Agent> = BTreeMap::new();
    let hosts: Vec<usize> = plan.hosts().collect();
    progress.phase(hosts.len() as u64, "agents");
    let adir = work.join("agents");
    std::fs::create_dir_all(&adir).map_err(|e| fail(e.to_string()))?;
    for h in &hosts {
        check()?;
        let spec = agent_spec(plan, *h);
        let file = adir.join(format!("{}.json", plan.nodes[*h].name));
        std::fs::write(&file, serde_json::to_string_pretty(&spec).expect("json")).map_err(|e| fail(e.to_string()))?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", net.of(*h)])
            .arg(&tools.emu)
            .args(["agent", p(&file)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail(format!("agent: {e}")))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let tx = tx.clone();
        let hh = *h;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((hh, line)).is_err() {
                    break;
                }
            }
        });
        procs.push(format!("agent {}", net.of(*h)), child);
        agents.insert(*h, Agent { stdin });
    }
    drop(tx);
    let mut ready = BTreeSet::new();
    let t0 = Instant::now();
    while ready.len() < hosts.len() {
        check()?;
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((h, l)) if l == "ready" => {
                ready.insert(h);
                progress.set(ready.len() as u64, plan.nodes[h].name.clone());
            }
            Ok((h, l)) => return Err(fail(format!("agent {}: {l}", plan.nodes[h].name))),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(fail("the agents ended before they were ready")),
            Err(mpsc::RecvTimeoutError::Timeout) if t0.elapsed() > Duration::from_secs(60) => {
                return Err(fail(format!("only {} of {} agents ready after 60 s", ready.len(), hosts.len())))
            }
            Err(_) => {}
        }
    }
    let setup_secs = t_setup.elapsed().as_secs_f64();

    // The run.
    for a in agents.values_mut() {
        a.say("go");
    }
    let start = Instant::now();
    if let Some(o) = overlay.as_mut() {
        for (i, t) in plan.traffic.iter().enumerate() {
            if matches!(t.spec, TrafficSpec::Gre { running: true, .. }) {
                o.start_gre(plan, tools, &net, &mut procs, i, 0.0).map_err(|e| fail(format!("GRE source {}: {e}", t.spec.name())))?;
            }
        }
        o.sample(plan, &net, 0.0);
    }
    let ticks = (plan.duration * 10.0).round() as u64;
    progress.phase(ticks, "running");
    let mut infections: Vec<Infection> = vec![];
    let mut infected: BTreeSet<usize> = BTreeSet::new();
    let cpu_of = |routers: &BTreeMap<usize, Router>, procs: &Procs| -> BTreeMap<String, f64> {
        routers.iter().filter_map(|(r, x)| Some((plan.nodes[*r].name.clone(), cpu_secs(procs.list[x.proc_ix?].1.id())?))).collect()
    };
    let mut samples = vec![Sample { t: 0.0, infected: 0, router_cpu: cpu_of(&routers, &procs) }];
    let mut fired = vec![false; plan.events.len()];
    let mut routing = Routing { down: BTreeSet::new(), installed: plan.routes.clone() };
    let mut log: Vec<EventLog> = vec![];
    let mut summaries: BTreeMap<usize, Summary> = BTreeMap::new();
    let mut next_sample = plan.sample_every;
    let n_hosts = hosts.len().max(1);
    let handle =
        |h: usize, l: String, infections: &mut Vec<Infection>, infected: &mut BTreeSet<usize>, summaries: &mut BTreeMap<usize, Summary>| {
            let mut w = l.splitn(3, ' ');
            match (w.next(), w.next(), w.next()) {
                (Some("infected"), Some(t), Some(by)) if infected.insert(h) => {
                    infections.push(Infection { host: plan.nodes[h].name.clone(), t: t.parse().unwrap_or(0.0), by: by.to_string() });
                }
                (Some("summary"), Some(_), _) => {
                    if let Ok(s) = serde_json::from_str::<Summary>(&l["summary ".len()..]) {
                        summaries.insert(h, s);
                    }
                }
                _ => {}
            }
        };
    loop {
        check()?;
        let t = start.elapsed().as_secs_f64();
        while let Ok((h, l)) = rx.try_recv() {
            handle(h, l, &mut infections, &mut infected, &mut summaries);
        }
        if t >= plan.duration {
            break;
        }
        if t >= next_sample && next_sample <= plan.duration + 1e-9 {
            if let Some(o) = overlay.as_mut() {
                o.sample(plan, &net, start.elapsed().as_secs_f64());
            }
        }
        while t >= next_sample && next_sample <= plan.duration + 1e-9 {
            samples.push(Sample { t: next_sample, infected: infected.len(), router_cpu: cpu_of(&routers, &procs) });
            next_sample += plan.sample_every;
        }
        for (i, e) in plan.events.iter().enumerate() {
            if fired[i] {
                continue;
            }
            let due = match e.when {
                When::At(at) => t >= at,
                When::Infected(f) => infected.len() as f64 / n_hosts as f64 >= f,
            };
            if !due {
                continue;
            }
            fired[i] = true;
            let ctx = Ctx { plan, tools, net: &net, files: &files, bundles: &bundles, attacks: &attacks, stop };
            let (ok, action, outcome) =
                fire(&ctx, i, &e.action, &mut routers, &mut procs, &mut agents, &mut routing, &mut overlay, start.elapsed().as_secs_f64())?;
            let done = start.elapsed().as_secs_f64();
            let refused = refusal_of(&e.action, &outcome);
            let verdict = match (&refused, ok) {
                (Some(r), true) => format!("refused ({r})"),
                (None, true) if outcome.contains("answered as a retry") => "answered as a retry (nothing done again)".into(),
                (_, true) => "ok".into(),
                (_, false) => "FAILED".into(),
            };
            progress.line(&format!("t={t:6.2}s {action}: {verdict}"));
            let load = if matches!(e.action, Action::Load { .. }) { serde_json::from_str(&outcome).ok() } else { None };
            log.push(EventLog { t, done, action, ok, outcome, refused, load });
        }
        progress.set(
            ((t * 10.0) as u64).min(ticks),
            format!("infected {}/{}, events {}/{}", infected.len(), hosts.len(), fired.iter().filter(|f| **f).count(), plan.events.len()),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while samples.last().is_some_and(|s| s.t + plan.sample_every <= plan.duration + 1e-9) {
        let t = samples.last().expect("sample").t + plan.sample_every;
        samples.push(Sample { t, infected: infected.len(), router_cpu: cpu_of(&routers, &procs) });
    }

    // Collect: the agents' summaries, the counters, the metrics.
    for a in agents.values_mut() {
        a.say("end");
    }
    let t_end = Instant::now();
    while summaries.len() < hosts.len() && t_end.elapsed() < Duration::from_secs(15) {
        check()?;
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((h, l)) => handle(h, l, &mut infections, &mut infected, &mut summaries),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {}
        }
    }
    if summaries.len() < hosts.len() {
        return Err(fail(format!("only {} of {} agents reported", summaries.len(), hosts.len())));
    }
    let overlay_result = match overlay.as_mut() {
        Some(o) => {
            o.sample(plan, &net, start.elapsed().as_secs_f64());
            o.finish(plan, &mut procs);
            let c = o.check(plan, tools, &mut procs, stop, 5.0);
            progress.line(&format!(
                "overlay at the end: {} ({} ids granted, {} violations)",
                if c.ok { "consistent" } else { "INCONSISTENT" },
                c.granted,
                c.violations.len()
            ));
            let mut res = o.result(plan, Some(c));
            for (r, x) in &routers {
                let crashes: Vec<String> = crate::overlay::log_lines(&x.log).into_iter().filter(|l| l.contains("crashing at")).collect();
                if !crashes.is_empty() {
                    res.logs.insert(format!("vinetd {}", plan.nodes[*r].name), crashes);
                }
            }
            Some(res)
        }
        None => None,
    };
    let mut router_metrics = BTreeMap::new();
    for r in routers.keys() {
        let addr = format!("{}:{METRICS_PORT}", plan.nodes[*r].addr.expect("address"));
        router_metrics.insert(plan.nodes[*r].name.clone(), metrics(net.of(*r), &addr));
    }
    let mut counters: BTreeMap<usize, BTreeMap<String, (u64, u64)>> = BTreeMap::new();
    let mut ifstats: BTreeMap<usize, BTreeMap<String, [u64; 5]>> = BTreeMap::new();
    for (i, n) in plan.nodes.iter().enumerate() {
        if n.kind != Kind::Host {
            counters.insert(i, netns::counters(net.of(i))?.into_iter().map(|(k, p, b)| (k, (p, b))).collect());
            ifstats.insert(i, netns::link_stats(net.of(i))?.into_iter().collect());
        }
    }
    let mut links = vec![];
    for l in &plan.links {
        let egress = |node: usize, ifn: &str, class: &str| counters.get(&node).and_then(|c| c.get(&format!("c_{ifn}_{class}"))).copied();
        let a_to_b = egress(l.a, &l.a_if, "all").map_or(Count::default(), |(p, b)| Count { packets: p, bytes: b });
        let b_to_a = match egress(l.b, &l.b_if, "all") {
            Some((p, b)) => Count { packets: p, bytes: b },
            // A host's link: what the router received on it.
            None => ifstats.get(&l.a).and_then(|s| s.get(&l.a_if)).map_or(Count::default(), |s| Count { packets: s[1], bytes: s[0] }),
        };
        let mut cl = BTreeMap::new();
        for (c, _) in &classes {
            let ab = egress(l.a, &l.a_if, c).map_or(0, |x| x.1);
            let ba = egress(l.b, &l.b_if, c).map_or(0, |x| x.1);
            cl.insert(c.clone(), [ab, ba]);
        }
        links.push(LinkResult { name: l.name.clone(), host_link: l.host_link, a_to_b, b_to_a, classes: cl });
    }
    let host_results: Vec<HostResult> = hosts
        .iter()
        .map(|h| HostResult {
            name: plan.nodes[*h].name.clone(),
            addr: plan.nodes[*h].addr.expect("address").to_string(),
            router: plan.nodes[plan.nodes[*h].router.expect("router")].name.clone(),
            vulnerable: plan.nodes[*h].vulnerable,
            summary: summaries.get(h).cloned().unwrap_or_default(),
        })
        .collect();
    let mut flows = vec![];
    for t in &plan.traffic {
        let class = class_of(&t.spec);
        if class == "worm" || class == "gre" {
            continue;
        }
        for (k, f) in t.from.iter().enumerate() {
            let from = plan.nodes[*f].addr.expect("address").to_string();
            let name = t.spec.name();
            let sent = summaries.get(f).and_then(|s| s.sent.get(name)).copied().unwrap_or(0);
            let delivered: u64 =
                t.to[k].iter().filter_map(|r| summaries.get(r)).filter_map(|s| s.received.get(name).and_then(|m| m.get(&from))).sum();
            flows.push(FlowResult {
                traffic: t.spec.name().to_string(),
                class: class.to_string(),
                from: plan.nodes[*f].name.clone(),
                sent,
                delivered,
            });
        }
    }
    infections.sort_by(|a, b| a.t.total_cmp(&b.t));
    let result = RunResult {
        scenario: plan.name.clone(),
        seed: plan.seed,
        fraction: plan.deployment.0,
        placement: plan.deployment.1,
        duration: plan.duration,
        namespaces: plan.nodes.len(),
        hosts: hosts.len(),
        routers: plan.nodes.len() - hosts.len(),
        vinet_routers: routers.keys().map(|r| plan.nodes[*r].name.clone()).collect(),
        vulnerable: hosts.iter().filter(|h| plan.nodes[**h].vulnerable).count(),
        samples,
        infections,
        events: log,
        links,
        host_results,
        flows,
        router_metrics,
        setup_secs,
        plot: plan.plot,
        programs: plan.programs,
        overlay: overlay_result,
    };
    drop(agents);
    drop(procs);
    drop(net);
    Ok(result)
}

/// What the events of a run read.
struct Ctx<'a> {
    plan: &'a Plan,
    tools: &'a Tools,
    net: &'a Network,
    files: &'a Files,
    bundles: &'a BTreeMap<(PathBuf, bool), PathBuf>,
    attacks: &'a BTreeMap<usize, AttackFiles>,
    stop: &'a AtomicBool,
}

/// A hostile upload's refusal reason, from vinetc's last line
/// ("vinetc: refused (key_mismatch): ...").
fn refusal_of(action: &Action, outcome: &str) -> Option<String> {
    if !matches!(action, Action::ForgedUpload { .. } | Action::UnsafeUpload { .. }) {
        return None;
    }
    let (_, rest) = outcome.split_once("refused (")?;
    Some(rest.split(')').next()?.to_string())
}

/// Start `vinetc upload` of `bundle` from namespace `ns` to router `r`
/// (killed after UPLOAD_SECS), the rest of its arguments in `args`.
fn upload(ctx: &Ctx, ns: &str, r: usize, bundle: &Path, args: &[String]) -> Result<std::process::Child, RunError> {
    let dir = ctx.files.work.join(&ctx.plan.nodes[r].name);
    let mut cmd = Command::new("ip");
    // At most UPLOAD_SECS: an upload that hangs must not hold the script up for long.
    cmd.args(["netns", "exec", ns, "timeout", "-s", "KILL", &UPLOAD_SECS.to_string()]).arg(&ctx.tools.vinetc).arg("upload").arg(bundle);
    cmd.args(["--router", &format!("{}:{LISTEN_PORT}", ctx.plan.nodes[r].addr.expect("address"))]);
    cmd.args(["--router-key", p(&dir.join("router.pub"))]);
    cmd.args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| fail(format!("vinetc: {e}")))
}

/// Wait for an upload: (exit code, its last non-empty line).
fn finish(c: std::process::Child) -> Result<(Option<i32>, String), RunError> {
    let o = c.wait_with_output().map_err(|e| fail(format!("vinetc: {e}")))?;
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    Ok((o.status.code(), text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()))
}

/// The links down and the routes installed in each namespace.
struct Routing {
    down: BTreeSet<usize>,
    installed: Vec<Vec<crate::topology::Route>>,
}

/// Install the shortest paths over the links that are up: in each router
/// whose routes changed, one `ip -batch` of `route replace` for a new or
/// changed route, and `ip route del` for a subnet it can no longer reach.
/// Returns how many routes changed in how many namespaces.
fn reroute(plan: &Plan, net: &Network, routing: &mut Routing) -> Result<(usize, usize), String> {
    let new = plan.routes_without(&routing.down);
    let (mut changed, mut namespaces) = (0, 0);
    for (i, (now, was)) in new.iter().zip(&routing.installed).enumerate() {
        let mut script = String::new();
        for r in now.iter().filter(|r| !was.contains(r)) {
            script.push_str(&netns::route_args(r).join(" "));
            script.push('\n');
            changed += 1;
        }
        let gone: Vec<&str> = was.iter().filter(|r| !now.iter().any(|x| x.to == r.to)).map(|r| r.to.as_str()).collect();
        if !script.is_empty() || !gone.is_empty() {
            namespaces += 1;
        }
        if !script.is_empty() {
            netns::sh_stdin(&["ip", "-n", net.of(i), "-batch", "-"], &script).map_err(|e| e.0)?;
        }
        for to in gone {
            // Unreachable now; the kernel may have removed it with its device already (so a
            // failure here is no error).
            let _ = netns::sh(&["ip", "-n", net.of(i), "route", "del", to]);
            changed += 1;
        }
    }
    routing.installed = new;
    Ok((changed, namespaces))
}

#[allow(clippy::too_many_arguments)]
fn fire(
    ctx: &Ctx, ix: usize, action: &Action, routers: &mut BTreeMap<usize, Router>, procs: &mut Procs, agents: &mut BTreeMap<usize, Agent>,
    routing: &mut Routing, overlay: &mut Option<Overlay>, now: f64,
) -> Result<(bool, String, String), RunError> {
    if let Some(r) = overlay_event(ctx, action, procs, overlay, now)? {
        return Ok(r);
    }
    let (plan, tools, net, files, bundles, stop) = (ctx.plan, ctx.tools, ctx.net, ctx.files, ctx.bundles, ctx.stop);
    let name = |i: usize| plan.nodes[i].name.clone();
    Ok(match action {
        Action::Flood { client, router, connections, seconds, garbage } => {
            let to = format!("{}:{LISTEN_PORT}", plan.nodes[*router].addr.expect("address"));
            let a = agents.get_mut(client).expect("an agent on every host");
            a.say(&format!("flood {to} {connections} {seconds} {}", u8::from(*garbage)));
            let what = format!(
                "flood by {} of {}'s admission port: {connections} {} connections for {seconds} s",
                name(*client),
                name(*router),
                if *garbage { "garbage" } else { "idle" }
            );
            (true, what, String::new())
        }
        Action::ForgedUpload { client, router, victim, forgery, params, pay, .. } => {
            let f = &ctx.attacks[&ix];
            let args: Vec<String> = if *forgery == Forgery::Replay {
                // (--pay is required by vinetc's arguments; nothing of it is sent.)
                vec!["--send-raw".into(), p(&f.bundle).into(), "--pay".into(), "0".into()]
            } else {
                let mut a = vec!["--key".into(), p(&f.key).into(), "--identity".into(), p(&f.id).into(), "--pay".into(), pay.to_string()];
                for pa in params {
                    a.extend(["--param".into(), pa.clone()]);
                }
                a
            };
            let scrape = || {
                let m = metrics(net.of(*router), &format!("{}:{METRICS_PORT}", plan.nodes[*router].addr.expect("address")));
                let g = |k: &str| m.get(k).copied().unwrap_or(0.0);
                (g("vinet_admissions_total"), g("vinet_retries_answered_total"))
            };
            let before = scrape();
            let (code, last) = finish(upload(ctx, net.of(*client), *router, &f.bundle, &args)?)?;
            let what = format!("forged upload ({}) by {} as {} to {}", forgery.name(), name(*client), name(*victim), name(*router));
            // Sound: the router answered and refused (vinetc exits 1); or, for a replay, answered
            // it as a retry of the request it already acted on: with that request's first answer,
            // nothing admitted or charged again.
            let refused = code == Some(1) && last.contains("refused (");
            if *forgery == Forgery::Replay && !refused {
                let after = scrape();
                let retry = code == Some(0) && after.0 == before.0 && after.1 == before.1 + 1.0;
                let note = format!(
                    "{last}\n(answered as a retry: vinet_admissions_total {} -> {}, vinet_retries_answered_total {} -> {})",
                    before.0, after.0, before.1, after.1
                );
                (retry, what, note)
            } else {
                (refused, what, last)
            }
        }
        Action::Load { client, router, program, programs, clients, concurrency, vary, pay } => {
            let addr = plan.nodes[*router].addr.expect("address");
            let spec = crate::load::LoadSpec {
                router: format!("{addr}:{LISTEN_PORT}"),
                router_key: files.work.join(&plan.nodes[*router].name).join("router.pub"),
                authority: files.operator.clone(),
                bundle: bundles[&(program.clone(), false)].clone(),
                programs: *programs,
                clients: *clients,
                concurrency: *concurrency,
                // Clients are end users in 10.200.0.0/16, outside every subnet of the network (no
                // traffic is for them); the parameter's values come from 198.18.0.0/15 (RFC 2544's).
                first_client: u32::from(std::net::Ipv4Addr::new(10, 200, 0, 1)),
                vary: vary.clone(),
                first_value: u32::from(std::net::Ipv4Addr::new(198, 18, 0, 1)),
                pay: *pay,
                max_secs: f64::from(LOAD_SECS) - 10.0,
            };
            let file = files.work.join(format!("load{ix}.json"));
            std::fs::write(&file, serde_json::to_string_pretty(&spec).expect("json")).map_err(|e| fail(e.to_string()))?;
            let o = Command::new("ip")
                .args(["netns", "exec", net.of(*client), "timeout", "-s", "KILL", &LOAD_SECS.to_string()])
                .arg(&tools.emu)
                .args(["load", p(&file)])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| fail(format!("load: {e}")))?;
            let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let prog = program.file_name().and_then(|f| f.to_str()).unwrap_or("?");
            let what = format!("load: {programs} uploads of {prog} by {clients} clients to {}", name(*router));
            match serde_json::from_str::<crate::load::LoadResult>(&out) {
                Ok(r) => (r.admitted == *programs, what, out),
                Err(_) => (false, what, format!("{out}{}", String::from_utf8_lossy(&o.stderr))),
            }
        }
        Action::UnsafeUpload { client, router, how, program, params, pay } => {
            let f = &ctx.attacks[&ix];
            let mut args: Vec<String> =
                vec!["--key".into(), p(&f.key).into(), "--identity".into(), p(&f.id).into(), "--pay".into(), pay.to_string()];
            for pa in params {
                args.extend(["--param".into(), pa.clone()]);
            }
            let (code, last) = finish(upload(ctx, net.of(*client), *router, &f.bundle, &args)?)?;
            let what = format!(
                "unsafe upload ({}) of {} by {} to {}",
                how.name(),
                program.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
                name(*client),
                name(*router)
            );
            (code == Some(1) && last.contains("refused ("), what, last)
        }
        Action::Upload { program, params, routers: targets, client, pay } => {
            let vpc = &bundles[&(program.clone(), client.is_none_or(|c| plan.nodes[c].kind == Kind::Edge))];
            let mut children = vec![];
            for r in targets {
                let dir = files.work.join(&plan.nodes[*r].name);
                let (ns, key, id) = match client {
                    None => (net.of(*r), dir.join("owner.key"), dir.join("owner.vid")),
                    Some(e) if plan.nodes[*e].kind == Kind::Edge => {
                        let od = files.work.join(&plan.nodes[*e].name);
                        (net.of(*e), od.join("owner.key"), od.join("owner.vid"))
                    }
                    Some(h) => (net.of(*h), files.work.join(format!("{}.key", name(*h))), files.work.join(format!("{}.vid", name(*h)))),
                };
                let mut args: Vec<String> =
                    vec!["--key".into(), p(&key).into(), "--identity".into(), p(&id).into(), "--pay".into(), pay.to_string()];
                for pa in params {
                    args.extend(["--param".into(), pa.clone()]);
                }
                if let Some(h) = client.filter(|c| plan.nodes[*c].kind == Kind::Host) {
                    // Kept for a `forged-upload` replay of this request.
                    args.extend(["--save-request".into(), p(&saved_request(files, plan, ix, h, *r)).into()]);
                }
                children.push((*r, upload(ctx, ns, *r, vpc, &args)?));
            }
            let mut ok = true;
            let mut outcome = String::new();
            for (r, c) in children {
                let (code, last) = finish(c)?;
                ok &= code == Some(0);
                outcome.push_str(&format!("{}: {last}\n", name(r)));
            }
            let who = client.map_or("owner".to_string(), |c| {
                if plan.nodes[c].kind == Kind::Edge {
                    format!("owner of {}", name(c))
                } else {
                    name(c)
                }
            });
            let what = format!(
                "upload {} ({}) by {who} to {}",
                program.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
                params.join(" "),
                if targets.is_empty() { "no router".to_string() } else { targets.iter().map(|r| name(*r)).collect::<Vec<_>>().join(",") }
            );
            (ok, what, outcome)
        }
        Action::Start { traffic } | Action::Stop { traffic } => {
            let verb = if matches!(action, Action::Start { .. }) { "start" } else { "stop" };
            let t = plan.traffic[*traffic].spec.name();
            for a in agents.values_mut() {
                a.say(&format!("{verb} {t}"));
            }
            (true, format!("{verb} {t}"), String::new())
        }
        Action::LinkDown { link } | Action::LinkUp { link } => {
            let l = &plan.links[*link];
            let up = matches!(action, Action::LinkUp { .. });
            let mut out = String::new();
            let mut ok = true;
            for (node, ifn) in [(l.a, &l.a_if), (l.b, &l.b_if)] {
                if let Err(e) = netns::sh(&["ip", "-n", net.of(node), "link", "set", ifn, if up { "up" } else { "down" }]) {
                    ok = false;
                    out.push_str(&e.0);
                }
                if up && (l.host_link || !plan.reroute) {
                    // The kernel removed the routes over the device when it went down: put them back
                    // (rerouting, below, installs what is shortest now instead).
                    for r in plan.routes[node].iter().filter(|r| &r.dev == ifn) {
                        let mut args: Vec<String> = vec!["ip".into(), "-n".into(), net.of(node).into()];
                        args.extend(netns::route_args(r));
                        let a: Vec<&str> = args.iter().map(String::as_str).collect();
                        if let Err(e) = netns::sh(&a) {
                            ok = false;
                            out.push_str(&e.0);
                        }
                    }
                }
            }
            if plan.reroute && !l.host_link {
                if up {
                    routing.down.remove(link);
                } else {
                    routing.down.insert(*link);
                }
                match reroute(plan, net, routing) {
                    Ok((n, ns)) => out.push_str(&format!("rerouted: {n} routes changed in {ns} routers")),
                    Err(e) => {
                        ok = false;
                        out.push_str(&e);
                    }
                }
            }
            (ok, format!("link {} {}", l.name, if up { "up" } else { "down" }), out)
        }
        Action::KillRouter { router } if !plan.nodes[*router].vinet => {
            let o = overlay.as_mut().expect("an overlay participant");
            (o.kill_participant(procs, *router), format!("kill -9 the participant on {}", name(*router)), String::new())
        }
        Action::RestartRouter { router, crash_at } if !plan.nodes[*router].vinet => {
            let o = overlay.as_mut().expect("an overlay participant");
            let what = format!(
                "restart the participant on {}{}",
                name(*router),
                crash_at.as_ref().map_or(String::new(), |c| format!(" (to crash at {c})"))
            );
            match o.start_participant(plan, tools, net, procs, stop, *router, crash_at.as_deref()) {
                Err(RunError::Interrupted) => return Err(RunError::Interrupted),
                Err(e) => (false, what, e.to_string()),
                Ok(out) => (true, what, out),
            }
        }
        Action::KillRouter { router } => {
            let r = routers.get_mut(router).expect("vinet router");
            let mut ok = false;
            if let Some(ix) = r.proc_ix.take() {
                let c = &mut procs.list[ix].1;
                ok = c.kill().is_ok();
                let _ = c.wait();
            }
            (ok, format!("kill -9 vinetd on {}", name(*router)), String::new())
        }
        Action::RestartRouter { router, crash_at } => {
            let r = routers.get_mut(router).expect("vinet router");
            let res = start_vinetd(net, tools, *router, r, procs, stop, crash_at.as_deref());
            let what = format!(
                "restart vinetd on {}{}",
                name(*router),
                crash_at.as_ref().map_or(String::new(), |c| format!(" (its participant to crash at {c})"))
            );
            match res {
                Err(RunError::Interrupted) => return Err(RunError::Interrupted),
                Err(e) => (false, what, e.to_string()),
                Ok(()) => {
                    let log = std::fs::read_to_string(&r.log).unwrap_or_default();
                    let resumed = log.lines().rev().find(|l| l.contains("resumed=")).unwrap_or("").trim().to_string();
                    (true, what, resumed)
                }
            }
        }
        Action::OnRequest { .. }
        | Action::OnRelease { .. }
        | Action::ManagerStop { .. }
        | Action::ManagerStart { .. }
        | Action::OnCheck { .. }
        | Action::OnTransfer { .. } => (false, "an overlay event".into(), "the scenario has no [overlay]".into()),
    })
}

/// The overlay's events (and a GRE source's start and stop); None for the others.
fn overlay_event(
    ctx: &Ctx, action: &Action, procs: &mut Procs, overlay: &mut Option<Overlay>, now: f64,
) -> Result<Option<(bool, String, String)>, RunError> {
    let (plan, tools, net, stop) = (ctx.plan, ctx.tools, ctx.net, ctx.stop);
    let Some(o) = overlay.as_mut() else { return Ok(None) };
    let on_name = |i: usize| plan.ons[i].name.clone();
    let r = match action {
        Action::Start { traffic } | Action::Stop { traffic } if matches!(plan.traffic[*traffic].spec, TrafficSpec::Gre { .. }) => {
            let t = plan.traffic[*traffic].spec.name();
            if matches!(action, Action::Start { .. }) {
                match o.start_gre(plan, tools, net, procs, *traffic, now) {
                    Ok(out) => (true, format!("start {t}"), out),
                    Err(e) => (false, format!("start {t}"), e),
                }
            } else {
                (o.stop_gre(procs, *traffic), format!("stop {t}"), String::new())
            }
        }
        Action::OnRequest { on, managers, count, expect } => {
            let (mut ok, mut out) = o.request(plan, tools, *on, managers, *count, expect);
            let last = o.flows.get(on).and_then(|v| v.last()).map(|x| x.0);
            if let (true, Some(flow)) = (plan.ons[*on].tunnel, last) {
                match o.start_tunnel(plan, tools, net, procs, *on, flow) {
                    Ok(t) => out = format!("{out}; {t}"),
                    Err(e) => {
                        ok = false;
                        out = format!("{out}; tunnel: {e}");
                    }
                }
            }
            let ms: Vec<String> = managers.iter().map(|m| (m + 1).to_string()).collect();
            let what = format!(
                "on-request {} x{count} of manager {}{}",
                on_name(*on),
                ms.join(" and "),
                if expect == "granted" { String::new() } else { format!(" (expected: {expect})") }
            );
            (ok, what, out)
        }
        Action::OnRelease { on } => {
            let (ok, out) = o.release(tools, *on);
            (ok, format!("on-release {}", on_name(*on)), out)
        }
        Action::ManagerStop { manager } => (o.stop_manager(procs, *manager), format!("kill -9 manager {}", manager + 1), String::new()),
        Action::ManagerStart { manager, crash_at } => {
            let what =
                format!("start manager {}{}", manager + 1, crash_at.as_ref().map_or(String::new(), |c| format!(" (to crash at {c})")));
            match o.start_manager(plan, tools, procs, stop, *manager, crash_at.as_deref()) {
                Err(RunError::Interrupted) => return Err(RunError::Interrupted),
                Err(e) => (false, what, e.to_string()),
                Ok(out) => (true, what, out),
            }
        }
        Action::OnCheck { wait } => {
            let c = o.check(plan, tools, procs, stop, *wait);
            (c.ok, "on-check".to_string(), serde_json::to_string(&c).expect("json"))
        }
        Action::OnTransfer { on, bytes, rate, pps } => match o.start_transfer(plan, tools, net, procs, *on, *bytes, *rate, *pps) {
            Ok(out) => (true, format!("on-transfer {}", on_name(*on)), out),
            Err(e) => (false, format!("on-transfer {}", on_name(*on)), e),
        },
        _ => return Ok(None),
    };
    if plan.overlay.as_ref().is_some_and(|x| x.spec.priority == crate::scenario::Priority::Emulator)
        && matches!(action, Action::OnRequest { .. } | Action::OnRelease { .. } | Action::OnCheck { .. })
    {
        let (ons, _) = o.status(tools, procs);
        if let Err(e) = o.mark_ons(plan, net, &ons) {
            return Ok(Some((false, r.1, format!("{}; marks: {e}", r.2))));
        }
    }
    Ok(Some(r))
}
