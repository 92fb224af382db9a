//! Virtual overlay networks in a run (issue 13): the ON manager(s), the
//! routers' participants, the management network that joins them, GRE
//! traffic and its counters, and the overlay's consistency check.
//!
//! **Management network.** The control plane is out of band, as an
//! operator's is: a namespace of its own (`<prefix>.mgmt`, a name no node can
//! have) holds the managers (and etcd), with a veth to every overlay router,
//! `10.254.k.1/30` on its side and `10.254.k.2/30` on the router's (k: the
//! router's place in the `[overlay]`'s list). Each router's participant
//! listens on `10.254.k.2:7403`: vinetd's own (`[overlay]`) on a router that
//! runs vinetd, else a stand-alone `vinet-onmgr router` in the router's
//! namespace. The managers' control ports are `127.0.0.1:7400 + m` in the
//! management namespace; requests and checks are `vinet-onmgr` commands run
//! there. So the control plane never competes with the data plane's cross
//! traffic (nor do its packets pass vinetd's hooks: they are the router's
//! own, not forwarded).
//!
//! **GRE traffic** is `vinet-traffic gre` in the sender's namespace; each
//! source is counted by its key and addresses at the sender (output, what
//! was offered) and at the receiver (input, what was delivered; then dropped,
//! the host has no GRE to hand it to), by an nftables table `inet emugre`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::netns::{self, Network, Procs};
use crate::run::{RunError, Tools};
use crate::scenario::{OverlayStore, Priority, TrafficSpec};
use crate::topology::{Plan, Traffic};

/// The port of every participant (on its management address).
pub const PARTICIPANT_PORT: u16 = 7403;
/// The first manager's control port (on the management namespace's loopback).
pub const MANAGER_PORT: u16 = 7400;
/// etcd's client port (management namespace, loopback).
const ETCD_CLIENT: &str = "127.0.0.1:2379";
/// etcd's peer port.
const ETCD_PEER: &str = "127.0.0.1:2380";

fn fail(m: impl Into<String>) -> RunError {
    RunError::Failed(m.into())
}

fn p(x: &Path) -> &str {
    x.to_str().expect("utf-8 path")
}

/// The management address of the overlay router at place `k`.
pub fn mgmt_addr(k: usize) -> String {
    format!("10.254.{k}.2")
}

/// One manager process.
struct Manager {
    log: PathBuf,
    proc_ix: Option<usize>,
}

/// A participant.
struct Participant {
    /// `10.254.k.2:7403`.
    addr: String,
    /// Its public key (hex).
    public: String,
    /// Stand-alone: its config file and log (None: vinetd hosts it).
    standalone: Option<(PathBuf, PathBuf)>,
    proc_ix: Option<usize>,
}

/// An ON's user-space endpoints.
struct Tunnel {
    /// The paths, router node indices from the first access point.
    paths: Vec<Vec<usize>>,
    /// Each end: (label, process, stats file).
    ends: Vec<(String, usize, PathBuf)>,
}

/// A transfer under way: (ON, sender process and its output, receiver's).
struct Transfer {
    on: usize,
    send: (usize, PathBuf),
    recv: (usize, PathBuf),
}

/// The address of path `k` at access host `side` (0: the ON's first, 1:
/// its second) of ON `n`: `10.253.n.(1 + 2k + side)`.
pub fn path_addr(n: usize, k: usize, side: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 253, n as u8, (1 + 2 * k + side) as u8)
}

/// The TUN address of access host `side` of ON `n`: `172.16.n.(1 + side)/30`.
pub fn tun_addr(n: usize, side: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(172, 16, n as u8, (1 + side) as u8)
}

/// The TCP and UDP ports of a transfer inside an ON.
const TRANSFER_PORTS: (u16, u16) = (7001, 7002);

/// A GRE source under way.
struct Gre {
    key: u32,
    proc_ix: Option<usize>,
}

/// The overlay of a run.
pub struct Overlay {
    /// The management namespace.
    pub mgmt: String,
    dir: PathBuf,
    manager_key: PathBuf,
    manager_pub: String,
    routers_file: PathBuf,
    participants: BTreeMap<usize, Participant>,
    managers: Vec<Manager>,
    /// The flow ids the script got, per ON: (flow, manager).
    pub flows: BTreeMap<usize, Vec<(u32, usize)>>,
    gre: BTreeMap<usize, Gre>,
    /// Every id any request returned, in order (to check none is given twice).
    pub granted: Vec<u32>,
    /// Samples.
    pub samples: Vec<OverlaySample>,
    tunnels: BTreeMap<usize, Tunnel>,
    transfers: Vec<Transfer>,
    /// Each tunnel end's statistics (`vinet-traffic tunnel`'s), by "ON host".
    tunnel_stats: BTreeMap<String, serde_json::Value>,
    /// Each transfer's two ends' reports.
    transfer_results: Vec<serde_json::Value>,
}

/// One sample of the overlay.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct OverlaySample {
    /// Seconds from the start (when it was taken).
    pub t: f64,
    /// Per GRE source: [offered packets, offered bytes, delivered packets,
    /// delivered bytes] so far.
    pub gre: BTreeMap<String, [u64; 4]>,
    /// Per vinetd overlay router that answered: its reserved [bps, pps]
    /// (prepared reservations included) and its ONs in force.
    pub reserved: BTreeMap<String, [f64; 3]>,
}

/// What a run's overlay measured, in its results.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct OverlayResult {
    /// The samples.
    pub samples: Vec<OverlaySample>,
    /// Per ON name: the ids the script got.
    pub ons: BTreeMap<String, Vec<u32>>,
    /// Per GRE source: its key, rate, sender, receiver and whether it is an ON's.
    pub gre: BTreeMap<String, GreInfo>,
    /// The check at the end (as `on-check` reports it).
    pub final_check: Option<Check>,
    /// Each ON's contract (pps, bps), by name.
    pub contracts: BTreeMap<String, [u64; 2]>,
    /// The payload size of each UDP source (for its throughput).
    #[serde(default)]
    pub sizes: BTreeMap<String, usize>,
    /// Each manager's and stand-alone participant's log: every line about a
    /// crash point, then the last 20 (what recovery decided); and each
    /// overlay vinetd's lines about a crash point.
    #[serde(default)]
    pub logs: BTreeMap<String, Vec<String>>,
    /// The paths of each ON with a tunnel, as its manager chose them.
    #[serde(default)]
    pub paths: BTreeMap<String, Vec<Vec<String>>>,
    /// Each tunnel end's statistics (`tunnel-stats`), by "ON host".
    #[serde(default)]
    pub tunnels: BTreeMap<String, serde_json::Value>,
    /// Each `on-transfer`'s sender and receiver reports.
    #[serde(default)]
    pub transfers: Vec<serde_json::Value>,
}

/// A GRE source, for the results.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct GreInfo {
    /// Its key (the last one used).
    pub key: Option<u32>,
    /// The ON it belongs to, if any.
    pub on: Option<String>,
    /// Packets a second offered.
    pub pps: f64,
    /// Sender and receiver.
    pub from: String,
    /// Receiver.
    pub to: String,
}

/// A lease as a participant lists it (`vinet-onmgr leases`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    /// The ON.
    pub flow: u32,
    /// Committed (else prepared only).
    pub active: bool,
    /// Its rates.
    pub rates: Rates,
    /// When it lapses (Unix ns).
    pub expires_ns: u64,
    /// The transaction.
    pub tx: Option<u64>,
}

/// bps, pps, units.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct Rates {
    /// Bits a second.
    pub bps: u64,
    /// Packets a second.
    pub pps: u64,
    /// Units.
    pub units: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct LeasesOut {
    capacity: Rates,
    leases: Vec<Lease>,
}

/// An ON as a manager's `status --json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnStatus {
    /// Its id.
    pub flow: u32,
    /// preparing, committing, up, releasing, released.
    pub state: String,
    /// Routers it reserves on.
    pub routers: Vec<String>,
    /// Rates on each.
    pub rates: Rates,
    /// Access points and paths.
    pub label: serde_json::Value,
}

/// The overlay's state at one moment, and what is wrong with it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Check {
    /// Nothing wrong.
    pub ok: bool,
    /// Whether it had settled (no transaction undecided, no lease only prepared).
    pub settled: bool,
    /// Seconds waited for it to settle.
    pub waited: f64,
    /// ONs per state, over every manager's status.
    pub states: BTreeMap<String, usize>,
    /// Per router: leases in force, only prepared, and the sum of their pps
    /// and bps, and the capacity's pps.
    pub routers: BTreeMap<String, RouterCheck>,
    /// The ids granted by requests, and how many were granted twice.
    pub granted: usize,
    /// Granted twice.
    pub duplicates: usize,
    /// Everything wrong, one line each.
    pub violations: Vec<String>,
}

/// One router in a check.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RouterCheck {
    /// Leases in force.
    pub active: usize,
    /// Leases only prepared.
    pub prepared: usize,
    /// Their sum.
    pub reserved: Rates,
    /// Its capacity.
    pub capacity: Rates,
}

fn onmgr_out(tools: &Tools, ns: &str, args: &[&str]) -> Result<String, String> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(&tools.onmgr)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("vinet-onmgr: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        Err(err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed with no message").trim().to_string())
    }
}

/// The `[overlay]` section of vinetd's config on overlay router `r`.
pub fn vinetd_section(plan: &Plan, work: &Path, r: usize) -> Option<String> {
    let o = plan.overlay.as_ref()?;
    let k = o.routers.iter().position(|x| *x == r)?;
    let dir = work.join("overlay");
    let name = &plan.nodes[r].name;
    let c = o.spec.capacity;
    let mark = if o.spec.priority == Priority::Vinetd { format!("mark = {}\n", o.spec.mark) } else { String::new() };
    Some(format!(
        "\n[overlay]\nnode = {id}\nlisten = \"{addr}:{PARTICIPANT_PORT}\"\nmanager_key = \"{mk}\"\nkey = \"{key}\"\nstore = \"{store}\"\nrefresh_ms = {rf}\ncapacity = {{ bps = {bps}, pps = {pps}, units = {units} }}\nunreserved = {{ burst_bytes = {bb}, burst_packets = {bp} }}\n{mark}",
        id = k + 1,
        addr = mgmt_addr(k),
        mk = dir.join("manager.pub").display(),
        key = dir.join(format!("{name}.key")).display(),
        store = dir.join(format!("{name}.db")).display(),
        rf = o.spec.refresh_ms,
        bps = c.bps,
        pps = c.pps,
        units = c.units,
        bb = (c.bps / 8 / 10).max(3_000),
        bp = (c.pps / 10).max(2),
    ))
}

impl Overlay {
    /// Keys and files, before the network is built (vinetd's configs need the keys).
    pub fn prepare(plan: &Plan, tools: &Tools, work: &Path) -> Result<Option<Overlay>, RunError> {
        let Some(o) = plan.overlay.as_ref() else { return Ok(None) };
        let dir = work.join("overlay");
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        let keygen = |f: &Path| -> Result<String, RunError> {
            let out = Command::new(&tools.onmgr)
                .arg("keygen")
                .arg(f)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| fail(format!("vinet-onmgr: {e}")))?;
            if !out.status.success() {
                return Err(fail(format!("vinet-onmgr keygen: {}", String::from_utf8_lossy(&out.stderr))));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let manager_key = dir.join("manager.key");
        let manager_pub = keygen(&manager_key)?;
        std::fs::write(dir.join("manager.pub"), format!("{manager_pub}\n")).map_err(|e| fail(e.to_string()))?;
        let c = o.spec.capacity;
        let cap = format!("capacity = {{ bps = {}, pps = {}, units = {} }}", c.bps, c.pps, c.units);
        let mut routers = String::from("# written by vinet-emu: the managers' picture of the network\n");
        let mut participants = BTreeMap::new();
        for (k, r) in o.routers.iter().enumerate() {
            let name = &plan.nodes[*r].name;
            let public = keygen(&dir.join(format!("{name}.key")))?;
            let addr = format!("{}:{PARTICIPANT_PORT}", mgmt_addr(k));
            routers += &format!("\n[[router]]\nid = {}\nname = \"{name}\"\naddress = \"{addr}\"\nkey = \"{public}\"\n{cap}\n", k + 1);
            let standalone = if plan.nodes[*r].vinet {
                None
            } else {
                let cfg = dir.join(format!("{name}.toml"));
                std::fs::write(
                    &cfg,
                    format!(
                        "id = {}\nlisten = \"{addr}\"\nstore = \"{}\"\nkey = \"{}\"\nmanager_key = \"{manager_pub}\"\nrefresh_ms = {}\n{cap}\n",
                        k + 1,
                        dir.join(format!("{name}.db")).display(),
                        dir.join(format!("{name}.key")).display(),
                        o.spec.refresh_ms
                    ),
                )
                .map_err(|e| fail(e.to_string()))?;
                Some((cfg, dir.join(format!("{name}.log"))))
            };
            participants.insert(*r, Participant { addr, public, standalone, proc_ix: None });
        }
        for l in &o.links {
            let l = &plan.links[*l];
            routers += &format!("\n[[link]]\na = \"{}\"\nb = \"{}\"\n", plan.nodes[l.a].name, plan.nodes[l.b].name);
        }
        let routers_file = dir.join("routers.toml");
        std::fs::write(&routers_file, routers).map_err(|e| fail(e.to_string()))?;
        let managers = (0..o.spec.managers).map(|m| Manager { log: dir.join(format!("manager{}.log", m + 1)), proc_ix: None }).collect();
        Ok(Some(Overlay {
            mgmt: String::new(),
            dir,
            manager_key,
            manager_pub,
            routers_file,
            participants,
            managers,
            flows: BTreeMap::new(),
            gre: BTreeMap::new(),
            granted: vec![],
            samples: vec![],
            tunnels: BTreeMap::new(),
            transfers: vec![],
            tunnel_stats: BTreeMap::new(),
            transfer_results: vec![],
        }))
    }

    /// The management namespace and its links, after the network is built
    /// and before vinetd starts (its participant listens on them); and the
    /// GRE counting tables of the hosts.
    pub fn build(&mut self, plan: &Plan, net: &mut Network) -> Result<(), RunError> {
        let o = plan.overlay.as_ref().expect("overlay");
        self.mgmt = format!("{}.mgmt", net.prefix);
        netns::sh(&["ip", "netns", "add", &self.mgmt])?;
        net.adopt(self.mgmt.clone());
        let mut script = String::from("link set lo up\n");
        for (k, r) in o.routers.iter().enumerate() {
            script.push_str(&format!("link add m{k} type veth peer name mgmt0 netns {}\n", net.of(*r)));
            script.push_str(&format!("addr add 10.254.{k}.1/30 dev m{k}\nlink set m{k} up\n"));
        }
        netns::sh_stdin(&["ip", "-n", &self.mgmt, "-batch", "-"], &script)?;
        for (k, r) in o.routers.iter().enumerate() {
            netns::sh_stdin(
                &["ip", "-n", net.of(*r), "-batch", "-"],
                &format!("addr add {}/30 dev mgmt0\nlink set mgmt0 up\n", mgmt_addr(k)),
            )?;
        }
        // GRE counters: one pair per source, the rules added when it starts (its key may be an ON's).
        let mut tables: BTreeMap<usize, String> = BTreeMap::new();
        for (i, t) in plan.traffic.iter().enumerate() {
            if !matches!(t.spec, TrafficSpec::Gre { .. }) {
                continue;
            }
            tables.entry(t.from[0]).or_default().push_str(&format!("  counter g{i}_out {{}}\n"));
            tables.entry(t.to[0][0]).or_default().push_str(&format!("  counter g{i}_in {{}}\n"));
        }
        for (h, counters) in tables {
            let text = format!(
                "table inet emugre {{\n{counters}  chain out {{\n    type filter hook output priority 0; policy accept;\n  }}\n  chain in {{\n    type filter hook input priority 0; policy accept;\n  }}\n}}\n"
            );
            netns::sh_stdin(&["ip", "netns", "exec", net.of(h), "nft", "-f", "-"], &text)?;
        }
        Ok(())
    }

    /// Start etcd (if the managers share it), the stand-alone participants
    /// and the managers; after vinetd is up.
    pub fn start(&mut self, plan: &Plan, tools: &Tools, net: &Network, procs: &mut Procs, stop: &AtomicBool) -> Result<(), RunError> {
        let o = plan.overlay.as_ref().expect("overlay");
        if o.spec.store == OverlayStore::Etcd {
            let log = std::fs::File::create(self.dir.join("etcd.log")).map_err(|e| fail(e.to_string()))?;
            let child = Command::new("ip")
                .args(["netns", "exec", &self.mgmt, "etcd", "--name", "emu", "--data-dir"])
                .arg(self.dir.join("etcd"))
                .args(["--listen-client-urls", &format!("http://{ETCD_CLIENT}")])
                .args(["--advertise-client-urls", &format!("http://{ETCD_CLIENT}")])
                .args(["--listen-peer-urls", &format!("http://{ETCD_PEER}")])
                .args(["--initial-advertise-peer-urls", &format!("http://{ETCD_PEER}")])
                .args(["--initial-cluster", &format!("emu=http://{ETCD_PEER}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| fail(format!("etcd (scripts/setup installs etcd-server): {e}")))?;
            procs.push("etcd", child);
            wait_until(stop, Duration::from_secs(60), "etcd to be healthy", || {
                netns::sh(&["ip", "netns", "exec", &self.mgmt, "curl", "-s", "--max-time", "2", &format!("http://{ETCD_CLIENT}/health")])
                    .is_ok_and(|b| b.contains("true"))
            })?;
        }
        let standalone: Vec<usize> = self.participants.iter().filter(|(_, x)| x.standalone.is_some()).map(|(r, _)| *r).collect();
        for r in standalone {
            self.start_participant(plan, tools, net, procs, stop, r, None)?;
        }
        for m in 0..self.managers.len() {
            self.start_manager(plan, tools, procs, stop, m, None)?;
        }
        Ok(())
    }

    /// Whether router `r`'s participant is a stand-alone one.
    pub fn standalone(&self, r: usize) -> bool {
        self.participants.get(&r).is_some_and(|x| x.standalone.is_some())
    }

    /// Start (again) the stand-alone participant of router `r`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_participant(
        &mut self, plan: &Plan, tools: &Tools, net: &Network, procs: &mut Procs, stop: &AtomicBool, r: usize, crash_at: Option<&str>,
    ) -> Result<String, RunError> {
        let part = self.participants.get_mut(&r).expect("a participant");
        let (cfg, log) = part.standalone.clone().expect("stand-alone");
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| fail(e.to_string()))?;
        let from = f.metadata().map_or(0, |m| m.len() as usize);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", net.of(r)]).arg(&tools.onmgr).args(["router", "--config", p(&cfg)]);
        match crash_at {
            Some(c) => cmd.env("VINET_ONMGR_ROUTER_CRASH_AT", c),
            None => cmd.env_remove("VINET_ONMGR_ROUTER_CRASH_AT"),
        };
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(f).spawn().map_err(|e| fail(format!("vinet-onmgr router: {e}")))?;
        let ix = procs.push(format!("participant {}", net.of(r)), child);
        part.proc_ix = Some(ix);
        let name = plan.nodes[r].name.clone();
        wait_until(stop, Duration::from_secs(30), &format!("the participant on {name}"), || {
            std::fs::read_to_string(&log).unwrap_or_default().get(from..).is_some_and(|t| t.contains("listening on"))
                || procs.list[ix].1.try_wait().ok().flatten().is_some()
        })?;
        if let Ok(Some(st)) = procs.list[ix].1.try_wait() {
            return Err(fail(format!("the participant on {name} exited ({st}): {}", std::fs::read_to_string(&log).unwrap_or_default())));
        }
        Ok(format!("participant on {name} listening on {}", part.addr))
    }

    /// SIGKILL the stand-alone participant of router `r`.
    pub fn kill_participant(&mut self, procs: &mut Procs, r: usize) -> bool {
        let part = self.participants.get_mut(&r).expect("a participant");
        let Some(ix) = part.proc_ix.take() else { return false };
        let c = &mut procs.list[ix].1;
        let ok = c.kill().is_ok() || c.try_wait().ok().flatten().is_some();
        let _ = c.wait();
        ok
    }

    fn manager_addr(m: usize) -> String {
        format!("127.0.0.1:{}", MANAGER_PORT + m as u16)
    }

    /// Start (again) manager `m`, with a crash point if given; returns once
    /// it answers `status` (it recovered from its log).
    pub fn start_manager(
        &mut self, plan: &Plan, tools: &Tools, procs: &mut Procs, stop: &AtomicBool, m: usize, crash_at: Option<&str>,
    ) -> Result<String, RunError> {
        let o = plan.overlay.as_ref().expect("overlay");
        let log = self.managers[m].log.clone();
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| fail(e.to_string()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.mgmt]).arg(&tools.onmgr).arg("serve");
        match o.spec.store {
            OverlayStore::Sqlite => cmd.args(["--db", p(&self.dir.join(format!("manager{}.db", m + 1)))]),
            OverlayStore::Etcd => cmd.args(["--etcd", &format!("http://{ETCD_CLIENT}"), "--manager-id", &format!("m{}", m + 1)]),
        };
        cmd.args(["--listen", &Self::manager_addr(m), "--routers", p(&self.routers_file), "--key", p(&self.manager_key)]);
        cmd.args(["--refresh-ms", &o.spec.refresh_ms.to_string(), "--prepare-timeout-ms", &o.spec.prepare_timeout_ms.to_string()]);
        cmd.args(["--retry-ms", &o.spec.retry_ms.to_string()]);
        match crash_at {
            Some(c) => cmd.env("VINET_ONMGR_CRASH_AT", c),
            None => cmd.env_remove("VINET_ONMGR_CRASH_AT"),
        };
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(f).spawn().map_err(|e| fail(format!("vinet-onmgr serve: {e}")))?;
        let ix = procs.push(format!("manager {}", m + 1), child);
        self.managers[m].proc_ix = Some(ix);
        let t0 = Instant::now();
        let mut exited = None;
        wait_until(stop, Duration::from_secs(60), &format!("manager {} to answer", m + 1), || {
            if let Ok(Some(st)) = procs.list[ix].1.try_wait() {
                exited = Some(st);
                return true;
            }
            onmgr_out(tools, &self.mgmt, &["status", "--json", "--manager", &Self::manager_addr(m)]).is_ok()
        })?;
        if let Some(st) = exited {
            return Err(fail(format!("manager {} exited ({st}): {}", m + 1, std::fs::read_to_string(&log).unwrap_or_default())));
        }
        Ok(format!(
            "manager {} up in {:.2} s{}",
            m + 1,
            t0.elapsed().as_secs_f64(),
            crash_at.map_or(String::new(), |c| format!(", to crash at {c:?}"))
        ))
    }

    /// SIGKILL manager `m` (false if it was not running).
    pub fn stop_manager(&mut self, procs: &mut Procs, m: usize) -> bool {
        let Some(ix) = self.managers[m].proc_ix.take() else { return false };
        let c = &mut procs.list[ix].1;
        let running = c.try_wait().ok().flatten().is_none();
        let _ = c.kill();
        let _ = c.wait();
        running
    }

    /// Whether manager `m` runs (has not exited, e.g. at a crash point).
    fn manager_running(&self, procs: &mut Procs, m: usize) -> bool {
        self.managers[m].proc_ix.is_some_and(|ix| procs.list[ix].1.try_wait().ok().flatten().is_none())
    }

    /// `on-request`: `count` requests of ON `on` to each manager of
    /// `managers`, the managers at once. Returns (ok, outcome as JSON).
    pub fn request(&mut self, plan: &Plan, tools: &Tools, on: usize, managers: &[usize], count: usize, expect: &str) -> (bool, String) {
        let spec = &plan.ons[on];
        let access = format!("{},{}", plan.nodes[spec.routers[0]].name, plan.nodes[spec.routers[1]].name);
        let (bps, pps, units) = (spec.bps.to_string(), spec.pps.to_string(), spec.units.to_string());
        let results: Vec<(usize, Vec<Result<u32, String>>)> = std::thread::scope(|s| {
            let handles: Vec<_> = managers
                .iter()
                .map(|&m| {
                    let (access, bps, pps, units, mgmt) = (&access, &bps, &pps, &units, &self.mgmt);
                    s.spawn(move || {
                        let addr = Self::manager_addr(m);
                        let mut args =
                            vec!["request", "--access", access, "--bps", bps, "--pps", pps, "--units", units, "--manager", &addr];
                        if spec.redundant {
                            args.push("--redundant");
                        }
                        let got: Vec<Result<u32, String>> = (0..count)
                            .map(|_| onmgr_out(tools, mgmt, &args).and_then(|o| o.parse::<u32>().map_err(|_| format!("not an id: {o}"))))
                            .collect();
                        (m, got)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("request thread")).collect()
        });
        let mut ids = vec![];
        let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
        let mut per_manager: BTreeMap<String, usize> = BTreeMap::new();
        for (m, got) in results {
            for g in got {
                match g {
                    Ok(f) => {
                        ids.push(f);
                        *per_manager.entry((m + 1).to_string()).or_default() += 1;
                        self.granted.push(f);
                        self.flows.entry(on).or_default().push((f, m));
                    }
                    Err(e) => *refusals.entry(e.trim_start_matches("vinet-onmgr: ").to_string()).or_default() += 1,
                }
            }
        }
        let asked = count * managers.len();
        let ok = match expect {
            "refused" => ids.is_empty(),
            "any" => true,
            _ => ids.len() == asked,
        };
        let out = serde_json::json!({ "asked": asked, "granted": ids.len(), "by_manager": per_manager, "ids": ids, "refused": refusals });
        (ok, out.to_string())
    }

    /// `on-release`: every id the script got for ON `on`.
    pub fn release(&mut self, tools: &Tools, on: usize) -> (bool, String) {
        let flows = self.flows.remove(&on).unwrap_or_default();
        let mut out = vec![];
        let mut ok = !flows.is_empty();
        for (f, m) in flows {
            match onmgr_out(tools, &self.mgmt, &["release", &f.to_string(), "--manager", &Self::manager_addr(m)]) {
                Ok(o) => out.push(o),
                Err(e) => {
                    ok = false;
                    out.push(format!("{f}: {e}"));
                }
            }
        }
        (ok, out.join("; "))
    }

    /// The key of GRE source `t` now: its own, or its ON's latest id.
    pub fn key_of(&self, plan: &Plan, t: &Traffic) -> Option<u32> {
        let TrafficSpec::Gre { on, key, .. } = &t.spec else { return None };
        match (on, key) {
            (_, Some(k)) => Some(*k),
            (Some(o), None) => {
                let i = plan.ons.iter().position(|x| &x.name == o)?;
                self.flows.get(&i)?.last().map(|x| x.0)
            }
            _ => None,
        }
    }

    /// Start GRE source `i` (its counting rules first); `t` seconds into the run.
    pub fn start_gre(&mut self, plan: &Plan, tools: &Tools, net: &Network, procs: &mut Procs, i: usize, t: f64) -> Result<String, String> {
        let tr = &plan.traffic[i];
        let TrafficSpec::Gre { pps, .. } = &tr.spec else { return Err("not GRE".into()) };
        let key = self.key_of(plan, tr).ok_or("its ON has no id (request it first)")?;
        if self.gre.get(&i).is_some_and(|g| g.proc_ix.is_some()) {
            return Err("already running".into());
        }
        let (f, to) = (tr.from[0], tr.to[0][0]);
        let (fa, ta) = (plan.nodes[f].addr.expect("address"), plan.nodes[to].addr.expect("address"));
        let m = format!("ip protocol gre ip saddr {fa} ip daddr {ta} @th,32,32 {key}");
        netns::sh(&["ip", "netns", "exec", net.of(f), "nft", &format!("add rule inet emugre out {m} counter name g{i}_out")])
            .map_err(|e| e.0)?;
        netns::sh(&["ip", "netns", "exec", net.of(to), "nft", &format!("add rule inet emugre in {m} counter name g{i}_in drop")])
            .map_err(|e| e.0)?;
        let count = (pps * (plan.duration - t + 2.0).max(1.0)).ceil() as u64;
        let child = Command::new("ip")
            .args(["netns", "exec", net.of(f)])
            .arg(&tools.traffic)
            .args(["gre", "--from", &fa.to_string(), "--to", &ta.to_string(), "--key", &key.to_string()])
            .args(["--count", &count.to_string(), "--pps", &format!("{}", pps.round().max(1.0) as u64)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("vinet-traffic gre: {e}"))?;
        let ix = procs.push(format!("gre {}", tr.spec.name()), child);
        self.gre.insert(i, Gre { key, proc_ix: Some(ix) });
        Ok(format!("key {key}, {pps} packets a second, {} to {}", plan.nodes[f].name, plan.nodes[to].name))
    }

    /// Stop GRE source `i`.
    pub fn stop_gre(&mut self, procs: &mut Procs, i: usize) -> bool {
        let Some(ix) = self.gre.get_mut(&i).and_then(|g| g.proc_ix.take()) else { return false };
        let c = &mut procs.list[ix].1;
        let _ = c.kill();
        let _ = c.wait();
        true
    }

    /// The emulator's priority marks (priority = "emulator"): on every
    /// overlay router, mark the GRE of each ON the managers say is up.
    pub fn mark_ons(&self, plan: &Plan, net: &Network, ons: &[OnStatus]) -> Result<(), String> {
        let o = plan.overlay.as_ref().expect("overlay");
        let mut rules = String::new();
        for s in ons.iter().filter(|s| s.state == "up") {
            rules.push_str(&format!("    ip protocol gre @th,32,32 {} meta mark set meta mark | {}\n", s.flow, o.spec.mark));
        }
        let text = format!(
            "table ip emumark {{}}\ndelete table ip emumark\ntable ip emumark {{\n  chain pre {{\n    type filter hook prerouting priority mangle; policy accept;\n{rules}  }}\n}}\n"
        );
        for r in &o.routers {
            netns::sh_stdin(&["ip", "netns", "exec", net.of(*r), "nft", "-f", "-"], &text).map_err(|e| e.0)?;
        }
        Ok(())
    }

    /// Every running manager's ONs (deduplicated by flow id: with etcd each
    /// manager lists every manager's).
    pub fn status(&self, tools: &Tools, procs: &mut Procs) -> (Vec<OnStatus>, Vec<String>) {
        let mut all: BTreeMap<u32, OnStatus> = BTreeMap::new();
        let mut errors = vec![];
        for m in 0..self.managers.len() {
            if !self.manager_running(procs, m) {
                continue;
            }
            match onmgr_out(tools, &self.mgmt, &["status", "--json", "--manager", &Self::manager_addr(m)]) {
                Ok(o) => match serde_json::from_str::<Vec<OnStatus>>(&o) {
                    Ok(v) => {
                        for s in v {
                            all.insert(s.flow, s);
                        }
                    }
                    Err(e) => errors.push(format!("manager {}: status: {e}", m + 1)),
                },
                Err(e) => errors.push(format!("manager {}: status: {e}", m + 1)),
            }
        }
        (all.into_values().collect(), errors)
    }

    /// Every participant's leases: router name -> (capacity, leases), or why not.
    fn leases(&self, plan: &Plan, tools: &Tools) -> BTreeMap<String, Result<(Rates, Vec<Lease>), String>> {
        let mut out = BTreeMap::new();
        for (r, part) in &self.participants {
            let got = onmgr_out(
                tools,
                &self.mgmt,
                &["leases", "--router", &part.addr, "--router-key", &part.public, "--key", p(&self.manager_key)],
            )
            .and_then(|o| serde_json::from_str::<LeasesOut>(&o).map_err(|e| format!("leases: {e}")))
            .map(|l| (l.capacity, l.leases));
            out.insert(plan.nodes[*r].name.clone(), got);
        }
        out
    }

    /// `on-check`: wait up to `wait` s for the overlay to settle, then check it.
    pub fn check(&self, plan: &Plan, tools: &Tools, procs: &mut Procs, stop: &AtomicBool, wait: f64) -> Check {
        let t0 = Instant::now();
        loop {
            let (ons, errors) = self.status(tools, procs);
            let leases = self.leases(plan, tools);
            let settled = errors.is_empty()
                && ons.iter().all(|s| s.state == "up" || s.state == "released")
                && leases.values().all(|l| l.as_ref().is_ok_and(|(_, v)| v.iter().all(|x| x.active)));
            let waited = t0.elapsed().as_secs_f64();
            if settled || waited >= wait || stop.load(Ordering::SeqCst) {
                let mut c = evaluate(&ons, &errors, &leases, &self.granted);
                c.settled = settled;
                c.waited = waited;
                if !settled {
                    c.ok = false;
                    c.violations.push(format!("not settled after {waited:.1} s"));
                }
                return c;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A sample: the GRE counters at the hosts, the reserved capacity of the
    /// overlay's vinetds.
    pub fn sample(&mut self, plan: &Plan, net: &Network, t: f64) {
        let mut s = OverlaySample { t, ..OverlaySample::default() };
        let mut hosts: BTreeMap<usize, BTreeMap<String, (u64, u64)>> = BTreeMap::new();
        for (i, tr) in plan.traffic.iter().enumerate() {
            if !matches!(tr.spec, TrafficSpec::Gre { .. }) {
                continue;
            }
            for h in [tr.from[0], tr.to[0][0]] {
                hosts.entry(h).or_insert_with(|| gre_counters(net.of(h)));
            }
            let get = |h: usize, n: String| hosts.get(&h).and_then(|c| c.get(&n)).copied().unwrap_or((0, 0));
            let (op, ob) = get(tr.from[0], format!("g{i}_out"));
            let (dp, db) = get(tr.to[0][0], format!("g{i}_in"));
            s.gre.insert(tr.spec.name().to_string(), [op, ob, dp, db]);
        }
        for (on, t) in &self.tunnels {
            let [ha, hb] = plan.ons[*on].hosts;
            let (ca, cb) = (tunnel_counters(net.of(ha)), tunnel_counters(net.of(hb)));
            for k in 0..t.paths.len() {
                let c = format!("t{on}p{k}");
                let (op, ob) = ca.get(&c).copied().unwrap_or((0, 0));
                let (dp, db) = cb.get(&c).copied().unwrap_or((0, 0));
                s.gre.insert(format!("{} path {}", plan.ons[*on].name, k + 1), [op, ob, dp, db]);
            }
        }
        for r in plan.overlay.iter().flat_map(|o| o.routers.iter()).filter(|r| plan.nodes[**r].vinet) {
            let addr = format!("{}:{}", plan.nodes[*r].addr.expect("address"), crate::run::METRICS_PORT);
            let m = crate::run::metrics(net.of(*r), &addr);
            let g = |k: &str| m.get(k).copied();
            // A vinetd that is down (killed, restarting) has no page: no figure for it in this sample.
            if let (Some(bps), Some(pps), Some(ons)) = (
                g("vinet_overlay_reserved{resource=\"bps\"}"),
                g("vinet_overlay_reserved{resource=\"pps\"}"),
                g("vinet_overlay_ons{standing=\"active\"}"),
            ) {
                s.reserved.insert(plan.nodes[*r].name.clone(), [bps, pps, ons]);
            }
        }
        self.samples.push(s);
    }

    /// Pin the paths of ON `on` (id `flow`, as its manager's status has
    /// them) to per-path addresses of its access hosts, and start the
    /// endpoints at both. Returns what it did.
    pub fn start_tunnel(
        &mut self, plan: &Plan, tools: &Tools, net: &Network, procs: &mut Procs, on: usize, flow: u32,
    ) -> Result<String, String> {
        let spec = &plan.ons[on];
        let (ons, _) = self.status(tools, procs);
        let st = ons.iter().find(|s| s.flow == flow).ok_or(format!("ON {flow} is not in the managers' status"))?;
        let names: Vec<Vec<String>> = serde_json::from_value(st.label["paths"].clone()).map_err(|e| format!("its paths: {e}"))?;
        let index = |n: &String| plan.nodes.iter().position(|x| &x.name == n).ok_or(format!("no router {n}"));
        let paths: Vec<Vec<usize>> = names.iter().map(|p| p.iter().map(index).collect::<Result<_, _>>()).collect::<Result<_, _>>()?;
        if paths.is_empty() || spec.redundant && paths.len() < 2 {
            return Err(format!("ON {flow} has {} paths", paths.len()));
        }
        let [ha, hb] = spec.hosts;
        let hop = |r: usize, s: usize| -> Result<(String, std::net::Ipv4Addr), String> {
            let l = plan
                .links
                .iter()
                .find(|l| !l.host_link && ((l.a, l.b) == (r, s) || (l.a, l.b) == (s, r)))
                .ok_or(format!("no link {}-{}", plan.nodes[r].name, plan.nodes[s].name))?;
            Ok(if l.a == r { (l.a_if.clone(), l.b_addr.0) } else { (l.b_if.clone(), l.a_addr.0) })
        };
        let host_if = |r: usize, h: usize| -> Result<String, String> {
            plan.links.iter().find(|l| l.host_link && l.a == r && l.b == h).map(|l| l.a_if.clone()).ok_or("no host link".to_string())
        };
        let mut scripts: BTreeMap<usize, String> = BTreeMap::new();
        let mut counters: BTreeMap<usize, (String, String)> = BTreeMap::new();
        for (k, path) in paths.iter().enumerate() {
            let (a_k, b_k) = (path_addr(on, k, 0), path_addr(on, k, 1));
            scripts.entry(ha).or_default().push_str(&format!("addr add {a_k}/32 dev eth0\n"));
            scripts.entry(hb).or_default().push_str(&format!("addr add {b_k}/32 dev eth0\n"));
            for (j, &r) in path.iter().enumerate() {
                let to_b = if j + 1 < path.len() {
                    let (dev, via) = hop(r, path[j + 1])?;
                    format!("route replace {b_k}/32 via {via} dev {dev}\n")
                } else {
                    format!("route replace {b_k}/32 dev {}\n", host_if(r, hb)?)
                };
                let to_a = if j > 0 {
                    let (dev, via) = hop(r, path[j - 1])?;
                    format!("route replace {a_k}/32 via {via} dev {dev}\n")
                } else {
                    format!("route replace {a_k}/32 dev {}\n", host_if(r, ha)?)
                };
                scripts.entry(r).or_default().push_str(&(to_b + &to_a));
            }
            let c = format!("t{on}p{k}");
            let rule = format!("ip protocol gre ip daddr {b_k} counter name {c}");
            let (ca, _) = counters.entry(ha).or_default();
            ca.push_str(&format!(
                "  counter {c} {{}}\n  chain out {{\n    type filter hook output priority 0; policy accept;\n    {rule}\n  }}\n"
            ));
            let (cb, _) = counters.entry(hb).or_default();
            cb.push_str(&format!(
                "  counter {c} {{}}\n  chain in {{\n    type filter hook input priority 0; policy accept;\n    {rule}\n  }}\n"
            ));
        }
        for (node, script) in &scripts {
            netns::sh_stdin(&["ip", "-n", net.of(*node), "-batch", "-"], script).map_err(|e| e.0)?;
        }
        for (h, (text, _)) in &counters {
            netns::sh_stdin(&["ip", "netns", "exec", net.of(*h), "nft", "-f", "-"], &format!("table inet emutun {{\n{text}}}\n"))
                .map_err(|e| e.0)?;
        }
        // The endpoints: each sends a copy to each of the other's path addresses.
        let mut ends = vec![];
        for (side, h) in [(0, ha), (1, hb)] {
            let name = &plan.nodes[h].name;
            let remotes: Vec<String> = (0..paths.len()).map(|k| path_addr(on, k, 1 - side).to_string()).collect();
            let stats = self.dir.join(format!("tunnel-{}-{name}.json", spec.name));
            let out = self.dir.join(format!("tunnel-{}-{name}.out", spec.name));
            let o = std::fs::File::create(&out).map_err(|e| e.to_string())?;
            let child = Command::new("ip")
                .args(["netns", "exec", net.of(h)])
                .arg(&tools.traffic)
                .args(["tunnel", "--key", &flow.to_string(), "--local", &plan.nodes[h].addr.expect("address").to_string()])
                .args(["--remote", &remotes.join(","), "--tun", &format!("on{on}"), "--address", &format!("{}/30", tun_addr(on, side))])
                .args(["--stats", p(&stats), "--lifetime", &format!("{}", (plan.duration + 120.0) as u64)])
                .stdin(Stdio::piped())
                .stdout(o)
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("vinet-traffic tunnel: {e}"))?;
            let ix = procs.push(format!("tunnel {name}"), child);
            let t0 = Instant::now();
            loop {
                if std::fs::read_to_string(&out).unwrap_or_default().contains("tunnel-ready") {
                    break;
                }
                if procs.list[ix].1.try_wait().ok().flatten().is_some() || t0.elapsed() > Duration::from_secs(20) {
                    return Err(format!("the endpoint on {name} did not come up: {}", std::fs::read_to_string(&out).unwrap_or_default()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            ends.push((format!("{} {name}", spec.name), ix, stats));
        }
        let shown: Vec<String> = names.iter().map(|p| p.join("-")).collect();
        self.tunnels.insert(on, Tunnel { paths, ends });
        Ok(format!("tunnel key {flow} up on {} and {}, paths {}", plan.nodes[ha].name, plan.nodes[hb].name, shown.join(" | ")))
    }

    /// `on-transfer`: the receiver at the ON's second access host, then the
    /// sender at its first (both in the background).
    #[allow(clippy::too_many_arguments)]
    pub fn start_transfer(
        &mut self, plan: &Plan, tools: &Tools, net: &Network, procs: &mut Procs, on: usize, bytes: u64, rate: u64, pps: f64,
    ) -> Result<String, String> {
        if !self.tunnels.contains_key(&on) {
            return Err("the ON's tunnel is not up (request it first)".into());
        }
        let [ha, hb] = plan.ons[on].hosts;
        let dst = tun_addr(on, 1);
        let (tcp, udp) = (format!("{dst}:{}", TRANSFER_PORTS.0), format!("{dst}:{}", TRANSFER_PORTS.1));
        let n = self.transfers.len();
        let spawn = |h: usize, role: &str, extra: &[String], out: &Path| -> Result<std::process::Child, String> {
            let f = std::fs::File::create(out).map_err(|e| e.to_string())?;
            Command::new("ip")
                .args(["netns", "exec", net.of(h)])
                .arg(&tools.emu)
                .args(["transfer", role, "--tcp", &tcp, "--udp", &udp])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(f)
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("vinet-emu transfer: {e}"))
        };
        let rout = self.dir.join(format!("transfer{n}-recv.out"));
        let rc = spawn(hb, "recv", &["--seconds".into(), format!("{}", plan.duration + 60.0)], &rout)?;
        let rix = procs.push("transfer recv", rc);
        let t0 = Instant::now();
        while !std::fs::read_to_string(&rout).unwrap_or_default().contains("ready") {
            if procs.list[rix].1.try_wait().ok().flatten().is_some() || t0.elapsed() > Duration::from_secs(10) {
                return Err(format!("the receiver did not start: {}", std::fs::read_to_string(&rout).unwrap_or_default()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let sout = self.dir.join(format!("transfer{n}-send.out"));
        let extra = ["--bytes".into(), bytes.to_string(), "--rate".into(), rate.to_string(), "--pps".into(), pps.to_string()];
        let sc = spawn(ha, "send", &extra, &sout)?;
        let six = procs.push("transfer send", sc);
        self.transfers.push(Transfer { on, send: (six, sout), recv: (rix, rout) });
        Ok(format!(
            "{bytes} bytes of TCP at {} Mbit/s and {pps} UDP datagrams a second, {} to {}, inside the tunnel",
            rate as f64 / 1e6,
            plan.nodes[ha].name,
            plan.nodes[hb].name
        ))
    }

    /// At the end: wait for the transfers (at most 60 s), then end the
    /// endpoints (their stdin closed) and read their statistics.
    pub fn finish(&mut self, plan: &Plan, procs: &mut Procs) {
        let t0 = Instant::now();
        for t in &self.transfers {
            for (ix, _) in [&t.send, &t.recv] {
                while procs.list[*ix].1.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(60) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        for t in &self.transfers {
            let read = |f: &Path| -> serde_json::Value {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| l.strip_prefix("transfer "))
                    .and_then(|j| serde_json::from_str(j).ok())
                    .unwrap_or(serde_json::Value::Null)
            };
            self.transfer_results.push(serde_json::json!({
                "on": plan.ons[t.on].name,
                "sender": read(&t.send.1),
                "receiver": read(&t.recv.1),
            }));
        }
        for tun in self.tunnels.values() {
            for (_, ix, _) in &tun.ends {
                drop(procs.list[*ix].1.stdin.take());
            }
        }
        for tun in self.tunnels.values() {
            for (label, ix, stats) in &tun.ends {
                let t1 = Instant::now();
                while procs.list[*ix].1.try_wait().ok().flatten().is_none() && t1.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let v = std::fs::read_to_string(stats).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(serde_json::Value::Null);
                self.tunnel_stats.insert(label.clone(), v);
            }
        }
    }

    /// The results.
    pub fn result(&self, plan: &Plan, final_check: Option<Check>) -> OverlayResult {
        let mut ons = BTreeMap::new();
        let mut contracts = BTreeMap::new();
        for (i, o) in plan.ons.iter().enumerate() {
            ons.insert(o.name.clone(), self.flows.get(&i).map_or(vec![], |v| v.iter().map(|x| x.0).collect()));
            contracts.insert(o.name.clone(), [o.pps, o.bps]);
        }
        let mut gre = BTreeMap::new();
        for (i, t) in plan.traffic.iter().enumerate() {
            let TrafficSpec::Gre { on, pps, .. } = &t.spec else { continue };
            gre.insert(
                t.spec.name().to_string(),
                GreInfo {
                    key: self.gre.get(&i).map(|g| g.key).or_else(|| self.key_of(plan, t)),
                    on: on.clone(),
                    pps: *pps,
                    from: plan.nodes[t.from[0]].name.clone(),
                    to: plan.nodes[t.to[0][0]].name.clone(),
                },
            );
        }
        let mut sizes = BTreeMap::new();
        for t in &plan.traffic {
            if let TrafficSpec::Background { size, .. } | TrafficSpec::Spam { size, .. } | TrafficSpec::Multicast { size, .. } = &t.spec {
                sizes.insert(t.spec.name().to_string(), *size);
            }
        }
        let mut logs = BTreeMap::new();
        let tail = |f: &Path| -> Vec<String> { log_lines(f) };
        for (m, x) in self.managers.iter().enumerate() {
            logs.insert(format!("manager {}", m + 1), tail(&x.log));
        }
        for (r, x) in &self.participants {
            if let Some((_, log)) = &x.standalone {
                logs.insert(format!("participant {}", plan.nodes[*r].name), tail(log));
            }
        }
        let paths = self
            .tunnels
            .iter()
            .map(|(on, t)| {
                let names = t.paths.iter().map(|p| p.iter().map(|r| plan.nodes[*r].name.clone()).collect()).collect();
                (plan.ons[*on].name.clone(), names)
            })
            .collect();
        OverlayResult {
            samples: self.samples.clone(),
            ons,
            gre,
            final_check,
            contracts,
            sizes,
            logs,
            paths,
            tunnels: self.tunnel_stats.clone(),
            transfers: self.transfer_results.clone(),
        }
    }

    /// The managers' public key (hex).
    pub fn manager_public(&self) -> &str {
        &self.manager_pub
    }
}

/// A log's lines about a crash point, then its last 20.
pub fn log_lines(f: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(f).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let (before, last) = lines.split_at(lines.len().saturating_sub(20));
    before.iter().filter(|l| l.contains("crashing at")).chain(last).map(|l| l.to_string()).collect()
}

/// The `inet emugre` counters of a host: name -> (packets, bytes).
fn gre_counters(ns: &str) -> BTreeMap<String, (u64, u64)> {
    nft_counters(ns, "emugre")
}

/// The `inet emutun` counters of a host (per tunnel path).
fn tunnel_counters(ns: &str) -> BTreeMap<String, (u64, u64)> {
    nft_counters(ns, "emutun")
}

fn nft_counters(ns: &str, table: &str) -> BTreeMap<String, (u64, u64)> {
    let out = netns::sh(&["ip", "netns", "exec", ns, "nft", "-j", "list", "counters", "table", "inet", table]).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let mut got = BTreeMap::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = item.get("counter") {
            got.insert(
                c["name"].as_str().unwrap_or_default().to_string(),
                (c["packets"].as_u64().unwrap_or(0), c["bytes"].as_u64().unwrap_or(0)),
            );
        }
    }
    got
}

fn wait_until(stop: &AtomicBool, limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result<(), RunError> {
    let t0 = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(RunError::Interrupted);
        }
        if f() {
            return Ok(());
        }
        if t0.elapsed() > limit {
            return Err(fail(format!("waited {} s for {what}", limit.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The check itself, on what the managers and the participants said: no
/// router over its capacity; every reservation of an ON that is up held
/// (in force) on every router of its paths, and a lease on no router for an
/// ON that is not (released, refused, or unknown to every manager: leaked);
/// each router's leases summing to what the managers' ONs reserve on it
/// (the totals match); no id granted twice.
pub fn evaluate(
    ons: &[OnStatus], errors: &[String], leases: &BTreeMap<String, Result<(Rates, Vec<Lease>), String>>, granted: &[u32],
) -> Check {
    let mut c = Check { violations: errors.to_vec(), granted: granted.len(), ..Check::default() };
    for s in ons {
        *c.states.entry(s.state.clone()).or_default() += 1;
    }
    let mut seen = std::collections::BTreeSet::new();
    for g in granted {
        if !seen.insert(*g) {
            c.duplicates += 1;
            c.violations.push(format!("id {g} granted twice"));
        }
    }
    let by_flow: BTreeMap<u32, &OnStatus> = ons.iter().map(|s| (s.flow, s)).collect();
    for (router, got) in leases {
        let (cap, ls) = match got {
            Ok(x) => x,
            Err(e) => {
                c.violations.push(format!("{router}: {e}"));
                continue;
            }
        };
        let mut rc = RouterCheck { capacity: *cap, ..RouterCheck::default() };
        for l in ls {
            if l.active {
                rc.active += 1;
            } else {
                rc.prepared += 1;
            }
            rc.reserved.bps += l.rates.bps;
            rc.reserved.pps += l.rates.pps;
            rc.reserved.units += l.rates.units;
            match by_flow.get(&l.flow) {
                None => c.violations.push(format!("{router}: a lease of ON {} that no manager knows (leaked)", l.flow)),
                Some(s) if !s.routers.contains(router) => {
                    c.violations.push(format!("{router}: a lease of ON {}, which does not reserve on it", l.flow))
                }
                Some(s) if l.active && s.state != "up" && s.state != "committing" => {
                    c.violations.push(format!("{router}: ON {} in force here but {} at its manager", l.flow, s.state))
                }
                Some(s) if l.rates != s.rates => c.violations.push(format!("{router}: ON {}'s lease differs from its contract", l.flow)),
                Some(_) => {}
            }
        }
        if rc.reserved.bps > cap.bps || rc.reserved.pps > cap.pps || rc.reserved.units > cap.units {
            c.violations.push(format!("{router}: over capacity: {:?} reserved of {:?}", rc.reserved, cap));
        }
        // The managers' own sum for this router.
        let mut want = Rates::default();
        for s in ons.iter().filter(|s| (s.state == "up" || s.state == "committing") && s.routers.contains(router)) {
            want.bps += s.rates.bps;
            want.pps += s.rates.pps;
            want.units += s.rates.units;
        }
        let held = ls.iter().filter(|l| l.active).fold(Rates::default(), |a, l| Rates {
            bps: a.bps + l.rates.bps,
            pps: a.pps + l.rates.pps,
            units: a.units + l.rates.units,
        });
        if held != want {
            c.violations.push(format!("{router}: holds {held:?} in force, its managers' ONs up reserve {want:?}"));
        }
        c.routers.insert(router.clone(), rc);
    }
    for s in ons.iter().filter(|s| s.state == "up") {
        for r in &s.routers {
            let held = leases.get(r).and_then(|x| x.as_ref().ok()).is_some_and(|(_, ls)| ls.iter().any(|l| l.flow == s.flow && l.active));
            if !held {
                c.violations.push(format!("ON {} is up but {r} does not hold it", s.flow));
            }
        }
    }
    c.ok = c.violations.is_empty();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(flow: u32, state: &str, routers: &[&str]) -> OnStatus {
        OnStatus {
            flow,
            state: state.into(),
            routers: routers.iter().map(|r| r.to_string()).collect(),
            rates: Rates { bps: 1000, pps: 10, units: 1 },
            label: serde_json::Value::Null,
        }
    }

    fn lease(flow: u32, active: bool) -> Lease {
        Lease { flow, active, rates: Rates { bps: 1000, pps: 10, units: 1 }, expires_ns: 0, tx: Some(1) }
    }

    fn cap() -> Rates {
        Rates { bps: 10_000, pps: 25, units: 5 }
    }

    #[test]
    fn a_consistent_overlay_passes() {
        let ons = [on(1, "up", &["a", "b"]), on(2, "released", &["a", "b"])];
        let mut leases = BTreeMap::new();
        leases.insert("a".to_string(), Ok((cap(), vec![lease(1, true)])));
        leases.insert("b".to_string(), Ok((cap(), vec![lease(1, true)])));
        let c = evaluate(&ons, &[], &leases, &[1, 2]);
        assert!(c.ok, "{:?}", c.violations);
        assert_eq!(c.routers["a"].active, 1);
        assert_eq!(c.states["up"], 1);
    }

    #[test]
    fn leaks_half_commits_overbooking_and_duplicates_are_found() {
        let ons = [on(1, "up", &["a", "b"]), on(3, "up", &["a"]), on(4, "up", &["a"])];
        let mut leases = BTreeMap::new();
        // a holds 1, 3, 4 and a leaked 9 (40 pps > 25); b is missing 1.
        leases.insert("a".to_string(), Ok((cap(), vec![lease(1, true), lease(3, true), lease(4, true), lease(9, true)])));
        leases.insert("b".to_string(), Ok((cap(), vec![])));
        let c = evaluate(&ons, &[], &leases, &[1, 3, 3]);
        assert!(!c.ok);
        let v = c.violations.join("\n");
        assert!(v.contains("ON 9 that no manager knows"), "{v}");
        assert!(v.contains("a: over capacity"), "{v}");
        assert!(v.contains("ON 1 is up but b does not hold it"), "{v}");
        assert!(v.contains("id 3 granted twice"), "{v}");
        assert_eq!(c.duplicates, 1);
    }
}
