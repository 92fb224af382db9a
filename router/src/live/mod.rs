//! The packet path of `vinetd`: lanes, each a thread that owns a
//! [`Runner`] (window and dispatch table), reads packets from its own
//! NFQUEUE queue in batches, and gives its verdicts in batches.
//!
//! - **Packet-local lanes** (`[live] threads` of them) run the clients all
//!   of whose programs are packet-local (the firewall, a worm blocker that
//!   filters by source): each batch read is a window of its own, decided at
//!   once, so a packet waits for nothing but its own batch. The kernel
//!   spreads their traffic over the lanes by flow (`--queue-balance`).
//! - **Windowed lanes** (`[live] window_threads` of them) run the clients
//!   with a program that reads a window (the spam filter, counts,
//!   GENERATE), spread over the lanes by destination: a window closes at W
//!   packets or `window_millis` after its first packet, which is the
//!   deadline of its verdicts.
//! - A client whose destination overlaps a windowed client's (an end user
//!   inside an edge router's prefix) runs on that client's windowed lane
//!   too (overlapping destinations all go to the lane of the widest), so
//!   that every program whose client a packet belongs to sees it.
//! - **Both families.** Destinations are 128-bit (IPv4 as IPv4-mapped): an
//!   identity with an IPv4 and an IPv6 address has an installation for
//!   each, placed like any other, and the kernel's sets of its family
//!   (`hooks.rs`) queue its packets to its lane. Queued packets are raw IP
//!   of either version, which the engine parses (`LinkType::Raw`);
//!   GENERATEd packets leave by the raw socket of their version
//!   (`rawsock.rs`). Sources dropped for everyone are of either family too.
//!
//! **Architecture Invariant:** nothing on the admission side ever holds a
//! lock a lane needs. Admissions prepare a program (checked, bound,
//! validated) and hand it to [`PacketPath::install`], which sends it to its
//! lane and waits for the lane's acknowledgement, then puts the client's
//! destination in the kernel's set (`hooks.rs`), so that "admitted" means
//! "running": the first packet the kernel queues for it meets it.
//!
//! Sources: [`LiveSource::Nfqueue`] (Linux: packets vinetd's own hooks
//! queue; see `nfqueue.rs` and `hooks.rs`), or [`LiveSource::None`] (no live
//! traffic: the lanes only keep their dispatch tables, for routers under
//! test or fed otherwise; offline captures go through `vinetc run`). No lane
//! takes a packet before [`PacketPath::go_live`], which the daemon calls
//! once every stored lease is installed.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vinet_checker::netmask;
use vinet_checker::policy::ClientKind;
use vinet_engine::dispatch::{Dest, InstallId, ProgramStats};
use vinet_engine::runner::{Runner, RunnerStats};
use vinet_engine::vm::{Binding, Program};
use vinet_engine::window::{FrameMeta, Sink, WindowConfig};

#[cfg(target_os = "linux")]
pub mod hooks;
#[cfg(target_os = "linux")]
pub mod nfqueue;
#[cfg(target_os = "linux")]
pub mod overlay;
pub mod rawsock;

/// What the admission side asks of a lane.
enum Command {
    /// Install a prepared program for an instance of a lease; the ack says
    /// whether it runs.
    Install { inst: Inst, program: Arc<Program>, binding: Binding, ack: Sender<Result<(), String>> },
    /// Remove an instance's installation; its last counters go to `ack`.
    Remove { inst: Inst, ack: Option<Sender<Option<ProgramStats>>> },
    /// The sources dropped for everyone (IPv4 as IPv4-mapped).
    Block(HashSet<u128>),
    /// Bind the lane's queue: packets start to flow.
    #[cfg(target_os = "linux")]
    Bind { queue_full_accept: bool, ack: Sender<Result<(), String>> },
    /// Stop the thread (after the current window).
    Stop,
}

/// One installation of a lease's program: the lease and the index of its
/// binding (a lease runs once for each address or prefix of its client's
/// identity, each instance with THIS_IP or THIS_SUBNET_IP bound to one).
type Inst = (u64, u32);

/// Counters the packet path publishes.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Runner-wide counters.
    pub router: RunnerStats,
    /// Per lease (over all of its instances).
    pub programs: HashMap<u64, ProgramStats>,
    /// Packets dropped because their source is dropped for everyone.
    pub blocked_dropped: u64,
    /// Generated packets sent on the wire.
    pub generated_sent: u64,
    /// Generated packets the raw socket refused.
    pub generated_failed: u64,
    /// Verdicts the kernel refused.
    pub verdict_errors: u64,
    /// Packets received from the kernel.
    pub received: u64,
    /// Netlink messages from the queue that were not whole packets.
    pub malformed: u64,
    /// Read batches (a packet-local lane decides each as a window).
    pub batches: u64,
}

impl Snapshot {
    fn add(&mut self, o: &Snapshot) {
        self.router += o.router;
        for (&l, p) in &o.programs {
            let e = self.programs.entry(l).or_default();
            *e = merge(*e, *p);
        }
        self.blocked_dropped += o.blocked_dropped;
        self.generated_sent += o.generated_sent;
        self.generated_failed += o.generated_failed;
        self.verdict_errors += o.verdict_errors;
        self.received += o.received;
        self.malformed += o.malformed;
        self.batches += o.batches;
    }
}

/// The counters of one lease run in several places (instances, lanes, or
/// before and after a move).
fn merge(a: ProgramStats, b: ProgramStats) -> ProgramStats {
    ProgramStats {
        windows: a.windows + b.windows,
        packets_in: a.packets_in + b.packets_in,
        discarded: a.discarded + b.discarded,
        total_cost: a.total_cost + b.total_cost,
        max_cost: a.max_cost.max(b.max_cost),
        generated: a.generated + b.generated,
        skipped_generations: a.skipped_generations + b.skipped_generations,
        faults: a.faults + b.faults,
        certified: a.certified.max(b.certified),
    }
}

/// Where live packets come from.
pub enum LiveSource {
    /// None: only commands.
    None,
    /// NFQUEUE queues.
    #[cfg(target_os = "linux")]
    Nfqueue(NfqueueSource),
}

/// The NFQUEUE side of the config.
#[cfg(target_os = "linux")]
#[derive(Clone, Debug)]
pub struct NfqueueSource {
    /// Queues and down-behaviour of the hooks.
    pub hooks: hooks::HookConfig,
    /// vinetd installs its hooks (else the operator queues every packet to
    /// `hooks.first_queue`, read by one windowed lane).
    pub manage_hooks: bool,
    /// While a queue is full, the kernel lets packets pass.
    pub queue_full_accept: bool,
    /// With `[overlay]` (and `hooks.overlay`): the data plane the ON lane
    /// serves forwarded GRE packets by.
    pub overlay: Option<Arc<crate::overlay::DataPlane>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LaneKind {
    Local,
    Window,
}

/// Where an installation runs: on every packet-local lane, or on one
/// windowed lane (its shard).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Local,
    Window(u16),
}

struct LaneHandle {
    kind: LaneKind,
    /// The windowed lane's shard (0 for packet-local lanes).
    shard: u16,
    tx: Sender<Command>,
    #[cfg(unix)]
    wake: std::os::unix::net::UnixDatagram,
    snapshot: Arc<Mutex<Snapshot>>,
    thread: Option<JoinHandle<()>>,
}

impl LaneHandle {
    fn send(&self, c: Command) -> bool {
        let ok = self.tx.send(c).is_ok();
        #[cfg(unix)]
        let _ = self.wake.send(&[1]);
        ok
    }
}

/// One instance as the packet path places it.
struct Entry {
    program: Arc<Program>,
    binding: Binding,
    dest: Dest,
    local: bool,
    lane: Place,
}

/// A destination as (network, length) in the 128-bit address space.
fn net_of(d: Dest) -> (u128, u8) {
    match d {
        Dest::Addr(a) => (a, 128),
        Dest::Prefix(n, l) => {
            let l = l.min(128);
            (n & netmask(l), l)
        }
    }
}

fn overlaps(a: Dest, b: Dest) -> bool {
    let ((an, al), (bn, bl)) = (net_of(a), net_of(b));
    let m = netmask(al.min(bl));
    an & m == bn & m
}

/// Which lane runs what, and the kernel's sets.
struct Placement {
    entries: HashMap<Inst, Entry>,
    /// Counters of instances that moved lanes, from the lane they left, by lease.
    carried: HashMap<u64, ProgramStats>,
    blocked: BTreeSet<u128>,
    #[cfg(target_os = "linux")]
    hooks: hooks::Hooks,
    /// Whether lanes of both kinds exist (else everything is windowed).
    split: bool,
    /// Windowed lanes.
    shards: u16,
}

fn len_of(d: Dest) -> u8 {
    net_of(d).1
}

impl Placement {
    /// Where an entry belongs: packet-local, unless it or a client whose
    /// destination overlaps its own reads windows. Then on the windowed lane
    /// of the widest windowed destination it overlaps (so that every client
    /// a packet belongs to is on one lane: overlapping destinations pick the
    /// same widest one).
    fn place_of(&self, inst: Inst, dest: Dest, local: bool) -> Place {
        let mut root = (!local).then_some(dest);
        for (&l, e) in &self.entries {
            if l != inst && !e.local && overlaps(e.dest, dest) && root.is_none_or(|r| len_of(e.dest) < len_of(r)) {
                root = Some(e.dest);
            }
        }
        match root {
            None if self.split => Place::Local,
            None => Place::Window(self.shard(dest)),
            Some(r) => Place::Window(self.shard(r)),
        }
    }

    fn shard(&self, d: Dest) -> u16 {
        let (n, l) = net_of(d);
        // Both halves of the address and the length, mixed (Fibonacci hashing).
        let k = (n as u64) ^ ((n >> 64) as u64).rotate_left(29) ^ u64::from(l) << 56;
        let h = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        (h % u64::from(self.shards.max(1))) as u16
    }

    #[cfg(target_os = "linux")]
    fn sets(&self) -> (hooks::Elements, Vec<hooks::Elements>, hooks::Elements) {
        let of = |k: Place| hooks::minimal(self.entries.values().filter(|e| e.lane == k).map(|e| e.dest));
        let windows = (0..self.shards).map(|k| of(Place::Window(k))).collect();
        (of(Place::Local), windows, self.blocked.iter().map(|&s| (s, 128)).collect())
    }
}

/// The running packet path.
pub struct PacketPath {
    lanes: Vec<LaneHandle>,
    placement: Mutex<Placement>,
    #[cfg(target_os = "linux")]
    nfqueue: Option<NfqueueSource>,
    /// The ON lane, with `[overlay]` and vinetd's own hooks.
    #[cfg(target_os = "linux")]
    overlay: Option<overlay::OverlayLane>,
}

impl std::fmt::Debug for PacketPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketPath").field("lanes", &self.lanes.len()).finish_non_exhaustive()
    }
}

/// How long an install may wait for a lane.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a lane publishes its counters while packets flow.
const PUBLISH: Duration = Duration::from_millis(100);

/// A packet-local lane whose batches come less than BUSY apart is under
/// load: it lets the packets of the next LINGER join a batch before
/// deciding it (so a packet waits at most about LINGER more, and only then).
const BUSY: Duration = Duration::from_micros(200);
const LINGER: Duration = Duration::from_micros(50);

/// Where an edge-router or end-user program's bucket is, as the dispatch
/// table keys it (an IPv4 or IPv6 address or prefix: the kernel's sets of
/// its family send its packets to its lane).
fn dest_of(program: &Program, binding: &Binding) -> Result<Dest, String> {
    match program.client_kind() {
        ClientKind::EndUser => Ok(Dest::Addr(binding.this_ip)),
        ClientKind::EdgeRouter => {
            let (net, len) = binding.this_subnet.ok_or("an edge-router program needs THIS_SUBNET_IP")?;
            Ok(Dest::Prefix(net, len.min(128)))
        }
        ClientKind::OnOwner => Err("overlay-network owners' programs are not yet run by routers".into()),
    }
}

impl PacketPath {
    /// Start the lanes (their queues opened, not bound).
    pub fn start(cfg: WindowConfig, source: LiveSource) -> std::io::Result<PacketPath> {
        #[cfg(target_os = "linux")]
        let mut nfq_cfg = None;
        let plan: Vec<(LaneKind, u16, Option<u16>)> = match &source {
            LiveSource::None => vec![(LaneKind::Local, 0, None), (LaneKind::Window, 0, None)],
            #[cfg(target_os = "linux")]
            LiveSource::Nfqueue(n) => {
                nfq_cfg = Some(n.clone());
                if n.manage_hooks {
                    let mut v: Vec<_> =
                        (0..n.hooks.local_lanes.max(1)).map(|i| (LaneKind::Local, 0, Some(n.hooks.first_queue + i))).collect();
                    v.extend((0..n.hooks.window_lanes.max(1)).map(|k| (LaneKind::Window, k, Some(n.hooks.window_queue(k)))));
                    v
                } else {
                    vec![(LaneKind::Window, 0, Some(n.hooks.first_queue))]
                }
            }
        };
        PacketPath::start_plan(
            cfg,
            plan,
            #[cfg(target_os = "linux")]
            nfq_cfg,
        )
    }

    /// Start lanes of these kinds, shards and queues.
    fn start_plan(
        cfg: WindowConfig, plan: Vec<(LaneKind, u16, Option<u16>)>, #[cfg(target_os = "linux")] nfq_cfg: Option<NfqueueSource>,
    ) -> std::io::Result<PacketPath> {
        let mut lanes = vec![];
        let split = plan.iter().any(|p| p.0 == LaneKind::Local);
        let shards = plan.iter().filter(|p| p.0 == LaneKind::Window).count() as u16;
        for (i, (kind, shard, queue)) in plan.into_iter().enumerate() {
            #[cfg(target_os = "linux")]
            let q = queue.map(nfqueue::NfQueue::open).transpose()?;
            #[cfg(not(target_os = "linux"))]
            let _ = queue;
            let raw = match queue {
                Some(_) => Some(rawsock::RawSender::open()?),
                None => None,
            };
            let (tx, rx) = mpsc::channel();
            #[cfg(unix)]
            let (wake, wake_rx) = std::os::unix::net::UnixDatagram::pair()?;
            #[cfg(unix)]
            wake_rx.set_nonblocking(true)?;
            // A full wake-up queue means the lane has wake-ups waiting
            // already: the sender never blocks on it (an idle lane, which
            // reads commands only, never drains it).
            #[cfg(unix)]
            wake.set_nonblocking(true)?;
            let snapshot = Arc::new(Mutex::new(Snapshot::default()));
            let snap = Arc::clone(&snapshot);
            let thread = std::thread::Builder::new().name(format!("vinet-lane{i}")).spawn(move || {
                let mut lane = Lane {
                    kind,
                    runner: Runner::new(cfg),
                    installs: HashMap::new(),
                    blocked: HashSet::new(),
                    snap,
                    stats: Snapshot::default(),
                    raw,
                    last_publish: Instant::now(),
                    dirty: false,
                };
                #[cfg(target_os = "linux")]
                if let Some(q) = q {
                    lane.run_nfqueue(rx, q, wake_rx);
                    return;
                }
                lane.run_idle(rx);
            })?;
            lanes.push(LaneHandle {
                kind,
                shard,
                tx,
                #[cfg(unix)]
                wake,
                snapshot,
                thread: Some(thread),
            });
        }
        #[cfg(target_os = "linux")]
        let overlay = match &nfq_cfg {
            Some(NfqueueSource { hooks, manage_hooks: true, overlay: Some(data), .. }) if hooks.overlay => {
                Some(overlay::OverlayLane::start(hooks.overlay_queue(), Arc::clone(data))?)
            }
            _ => None,
        };
        let placement = Placement {
            entries: HashMap::new(),
            carried: HashMap::new(),
            blocked: BTreeSet::new(),
            #[cfg(target_os = "linux")]
            hooks: hooks::Hooks::unmanaged(),
            split,
            shards,
        };
        Ok(PacketPath {
            lanes,
            placement: Mutex::new(placement),
            #[cfg(target_os = "linux")]
            nfqueue: nfq_cfg,
            #[cfg(target_os = "linux")]
            overlay,
        })
    }

    fn placement(&self) -> std::sync::MutexGuard<'_, Placement> {
        self.placement.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lanes_of(&self, place: Place) -> impl Iterator<Item = &LaneHandle> + '_ {
        self.lanes.iter().filter(move |l| match place {
            Place::Local => l.kind == LaneKind::Local,
            Place::Window(k) => l.kind == LaneKind::Window && l.shard == k,
        })
    }

    /// Install on the lanes of `place` and wait for their acks.
    fn install_on(&self, place: Place, inst: Inst, program: &Arc<Program>, binding: &Binding) -> Result<(), String> {
        let mut acks = vec![];
        for l in self.lanes_of(place) {
            let (ack, rx) = mpsc::channel();
            if !l.send(Command::Install { inst, program: Arc::clone(program), binding: binding.clone(), ack }) {
                return Err("the packet path has stopped".into());
            }
            acks.push(rx);
        }
        let mut result = Ok(());
        for rx in acks {
            let r = rx.recv_timeout(ACK_TIMEOUT).map_err(|_| "the packet path did not answer".to_string()).and_then(|r| r);
            if result.is_ok() {
                result = r;
            }
        }
        if result.is_err() {
            self.remove_from(place, inst);
        }
        result
    }

    /// Remove from the lanes of `place`; their last counters, merged.
    fn remove_from(&self, place: Place, inst: Inst) -> Option<ProgramStats> {
        let mut acks = vec![];
        for l in self.lanes_of(place) {
            let (ack, rx) = mpsc::channel();
            if l.send(Command::Remove { inst, ack: Some(ack) }) {
                acks.push(rx);
            }
        }
        acks.into_iter().filter_map(|rx| rx.recv_timeout(ACK_TIMEOUT).ok().flatten()).reduce(merge)
    }

    /// Bring the kernel's sets in step with the placement.
    fn sync_hooks(&self, p: &mut Placement) -> Result<(), String> {
        #[cfg(target_os = "linux")]
        {
            let (local, windows, blocked) = p.sets();
            p.hooks.update(Some(local), Some(windows), Some(blocked))?;
        }
        let _ = p;
        Ok(())
    }

    /// Re-place the entries whose destination overlaps `around` (a windowed
    /// client came or went): each that moves is installed where it now
    /// belongs. Returns the moved ones with the place they left, from which
    /// the caller removes them once the kernel's sets follow.
    fn rebalance(&self, p: &mut Placement, around: Dest, except: Inst) -> Vec<(Inst, Place)> {
        let candidates: Vec<(Inst, Place)> = p
            .entries
            .iter()
            .filter(|(&l, e)| l != except && overlaps(e.dest, around))
            .map(|(&l, e)| (l, p.place_of(l, e.dest, e.local)))
            .filter(|&(l, to)| p.entries[&l].lane != to)
            .collect();
        let mut moved = vec![];
        for (l, to) in candidates {
            let e = &p.entries[&l];
            if self.install_on(to, l, &e.program, &e.binding).is_ok() {
                moved.push((l, e.lane));
                if let Some(e) = p.entries.get_mut(&l) {
                    e.lane = to;
                }
            }
        }
        moved
    }

    /// Remove moved entries from the places they left, keeping their counters.
    fn settle(&self, p: &mut Placement, moved: Vec<(Inst, Place)>) {
        for (l, from) in moved {
            if let Some(s) = self.remove_from(from, l) {
                let c = p.carried.entry(l.0).or_default();
                *c = merge(*c, s);
            }
        }
    }

    /// Install a lease's program once for each of `bindings` (an instance
    /// for each address or prefix of its client's identity, IPv4 or IPv6),
    /// and wait until the lanes run them all and the kernel sends their
    /// packets there. All or nothing: if one instance cannot run, none does.
    pub fn install(&self, lease: u64, program: Arc<Program>, bindings: Vec<Binding>) -> Result<(), String> {
        let first = bindings.first().ok_or("a program runs for at least one address or prefix of its client")?;
        let dests = bindings.iter().map(|b| dest_of(&program, b)).collect::<Result<Vec<_>, _>>()?;
        // The instances differ in THIS_IP and THIS_SUBNET_IP only, never in
        // what makes a program packet-local (its parameters).
        let local = program.instantiate(&first.params).map_err(|e| e.to_string())?.is_packet_local();
        let n = bindings.len() as u32;
        let mut p = self.placement();
        let mut moved = vec![];
        let mut left = vec![];
        let mut failed = None;
        for (i, (binding, dest)) in bindings.into_iter().zip(dests).enumerate() {
            let inst = (lease, i as u32);
            let place = p.place_of(inst, dest, local);
            if let Err(e) = self.install_on(place, inst, &program, &binding) {
                failed = Some(e);
                break;
            }
            let old = p.entries.insert(inst, Entry { program: Arc::clone(&program), binding, dest, local, lane: place });
            left.extend(old.filter(|o| o.lane != place).map(|o| (inst, o.lane)));
            // A windowed program pulls the clients it overlaps onto its lane:
            // installed there first, moved in the kernel's sets, then removed
            // from where they were.
            if !local {
                moved.extend(self.rebalance(&mut p, dest, inst));
            }
        }
        // Instances of an earlier install of the lease beyond this one's.
        let stale: Vec<Inst> = p.entries.keys().filter(|k| k.0 == lease && k.1 >= n).copied().collect();
        for k in stale {
            if let Some(e) = p.entries.remove(&k) {
                left.push((k, e.lane));
            }
        }
        let synced = self.sync_hooks(&mut p);
        self.settle(&mut p, moved);
        for (inst, lane) in left {
            self.remove_from(lane, inst);
        }
        if let Some(e) = failed.or(synced.err()) {
            // Not admitted, so not running: undone, lanes and kernel sets.
            drop(p);
            self.remove(lease);
            return Err(e);
        }
        Ok(())
    }

    /// Remove a lease's program (every instance of it).
    pub fn remove(&self, lease: u64) {
        let mut p = self.placement();
        let insts: Vec<Inst> = p.entries.keys().filter(|k| k.0 == lease).copied().collect();
        let entries: Vec<(Inst, Entry)> = insts.into_iter().filter_map(|k| p.entries.remove(&k).map(|e| (k, e))).collect();
        if entries.is_empty() {
            return;
        }
        p.carried.remove(&lease);
        // Clients they held on their lanes may go back to a packet-local lane
        // or to another windowed one: installed there first.
        let mut moved = vec![];
        for (k, e) in &entries {
            if !e.local {
                moved.extend(self.rebalance(&mut p, e.dest, *k));
            }
        }
        // Out of the kernel's sets before they are removed: nothing is queued
        // for them after.
        if let Err(err) = self.sync_hooks(&mut p) {
            tracing::error!(error = %err, "cannot update vinetd's kernel sets");
        }
        for (k, e) in entries {
            self.remove_from(e.lane, k);
        }
        self.settle(&mut p, moved);
    }

    /// Set the sources dropped for everyone, IPv4 (as IPv4-mapped) and IPv6
    /// (in the kernel's sets of their family, and in every lane for packets
    /// that reach it anyway).
    pub fn block(&self, sources: BTreeSet<u128>) {
        let mut p = self.placement();
        p.blocked = sources.clone();
        if let Err(err) = self.sync_hooks(&mut p) {
            tracing::error!(error = %err, "cannot update vinetd's kernel sets");
        }
        let set: HashSet<u128> = sources.into_iter().collect();
        for l in &self.lanes {
            l.send(Command::Block(set.clone()));
        }
    }

    /// Start taking traffic: install the kernel hooks (when vinetd manages
    /// them) with every installed client in its set, then bind the queues.
    /// Until this returns, the hooks' down-behaviour applies.
    pub fn go_live(&self) -> Result<(), String> {
        #[cfg(target_os = "linux")]
        if let Some(n) = &self.nfqueue {
            let mut p = self.placement();
            if n.manage_hooks {
                let (local, windows, blocked) = p.sets();
                p.hooks = hooks::Hooks::install(n.hooks.clone(), local, windows, blocked)?;
            }
            drop(p);
            let mut acks = vec![];
            for l in &self.lanes {
                let (ack, rx) = mpsc::channel();
                l.send(Command::Bind { queue_full_accept: n.queue_full_accept, ack });
                acks.push(rx);
            }
            if let Some(o) = &self.overlay {
                let (ack, rx) = mpsc::channel();
                o.send(overlay::Command::Bind { queue_full_accept: n.queue_full_accept, ack });
                acks.push(rx);
            }
            for rx in acks {
                rx.recv_timeout(ACK_TIMEOUT).map_err(|_| "a lane did not answer".to_string())??;
            }
        }
        Ok(())
    }

    /// The ON lane's counters (received, verdict errors, malformed), if it runs.
    pub fn overlay_lane(&self) -> Option<(u64, u64, u64)> {
        #[cfg(target_os = "linux")]
        if let Some(o) = &self.overlay {
            use std::sync::atomic::Ordering::Relaxed;
            return Some((o.stats.received.load(Relaxed), o.stats.verdict_errors.load(Relaxed), o.stats.malformed.load(Relaxed)));
        }
        None
    }

    /// The latest counters, over every lane.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for l in &self.lanes {
            if let Ok(x) = l.snapshot.lock() {
                s.add(&x);
            }
        }
        let p = self.placement();
        for (lease, c) in &p.carried {
            if let Some(e) = s.programs.get_mut(lease) {
                *e = merge(*e, *c);
            }
        }
        s
    }

    /// The lanes: (packet-local, windowed).
    pub fn lanes(&self) -> (usize, usize) {
        let local = self.lanes.iter().filter(|l| l.kind == LaneKind::Local).count();
        (local, self.lanes.len() - local)
    }
}

impl Drop for PacketPath {
    fn drop(&mut self) {
        for l in &self.lanes {
            l.send(Command::Stop);
        }
        for l in &mut self.lanes {
            if let Some(t) = l.thread.take() {
                let _ = t.join();
            }
        }
    }
}

struct Lane {
    kind: LaneKind,
    runner: Runner,
    installs: HashMap<Inst, InstallId>,
    blocked: HashSet<u128>,
    snap: Arc<Mutex<Snapshot>>,
    stats: Snapshot,
    raw: Option<rawsock::RawSender>,
    last_publish: Instant,
    dirty: bool,
}

/// Collects a window's verdicts (in frame order) and generated packets.
#[derive(Default)]
pub(crate) struct Verdicts {
    pub(crate) accept: Vec<bool>,
    pub(crate) generated: Vec<Vec<u8>>,
}

impl Sink for Verdicts {
    fn forward(&mut self, _meta: &FrameMeta, _data: &[u8]) {
        self.accept.push(true);
    }
    fn dropped(&mut self, _index: usize, _meta: &FrameMeta, _data: &[u8]) {
        self.accept.push(false);
    }
    fn generated(&mut self, _ts_ns: u64, packet: &[u8]) {
        self.generated.push(packet.to_vec());
    }
}

/// The source of a raw IP packet: IPv4 (as IPv4-mapped) or IPv6.
fn ip_source(data: &[u8]) -> Option<u128> {
    match data.first()? >> 4 {
        4 if data.len() >= 20 => Some(vinet_checker::mapped(u32::from_be_bytes([data[12], data[13], data[14], data[15]]))),
        6 if data.len() >= 40 => Some(u128::from_be_bytes(data[8..24].try_into().ok()?)),
        _ => None,
    }
}

impl Lane {
    /// Apply one command; false on Stop. (`bind`: the lane's queue.)
    fn apply(&mut self, cmd: Command, bind: &mut dyn FnMut(bool) -> Result<(), String>) -> bool {
        match cmd {
            Command::Install { inst, program, binding, ack } => {
                if let Some(id) = self.installs.remove(&inst) {
                    self.runner.dispatch_mut().remove(id);
                }
                let r = self.runner.dispatch_mut().install_program(program, &binding).map(|id| {
                    self.installs.insert(inst, id);
                });
                let _ = ack.send(r.map_err(|e| e.to_string()));
            }
            Command::Remove { inst, ack } => {
                let stats = self.installs.remove(&inst).and_then(|id| self.runner.dispatch_mut().remove(id));
                if let Some(a) = ack {
                    let _ = a.send(stats);
                }
            }
            Command::Block(s) => self.blocked = s,
            #[cfg(target_os = "linux")]
            Command::Bind { queue_full_accept, ack } => {
                let _ = ack.send(bind(queue_full_accept));
            }
            Command::Stop => return false,
        }
        let _ = bind;
        self.dirty = true;
        self.publish(true);
        true
    }

    fn publish(&mut self, now: bool) {
        if !now && (!self.dirty || self.last_publish.elapsed() < PUBLISH) {
            return;
        }
        self.last_publish = Instant::now();
        self.dirty = false;
        self.stats.router = self.runner.stats();
        let d = self.runner.dispatch();
        let mut programs: HashMap<u64, ProgramStats> = HashMap::new();
        for (&(lease, _), &id) in &self.installs {
            if let Some(s) = d.stats(id) {
                let e = programs.entry(lease).or_default();
                *e = merge(*e, s);
            }
        }
        self.stats.programs = programs;
        if let Ok(mut s) = self.snap.lock() {
            *s = self.stats.clone();
        }
    }

    fn run_idle(&mut self, rx: Receiver<Command>) {
        let mut no_bind = |_| Err("this packet path has no queue".to_string());
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(cmd) => {
                    if !self.apply(cmd, &mut no_bind) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.publish(false),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn send_generated(&mut self, v: &mut Verdicts) {
        for g in v.generated.drain(..) {
            match self.raw.as_ref().map(|r| r.send(&g)) {
                Some(Ok(())) => self.stats.generated_sent += 1,
                _ => self.stats.generated_failed += 1,
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn run_nfqueue(&mut self, rx: Receiver<Command>, mut q: nfqueue::NfQueue, wake: std::os::unix::net::UnixDatagram) {
        use std::os::fd::AsRawFd;
        let t = Duration::from_millis(self.runner.config().millis.max(1));
        let mut pending: VecDeque<u32> = VecDeque::new();
        let mut opened: Option<Instant> = None;
        let mut v = Verdicts::default();
        let mut batch = Vec::with_capacity(nfqueue::BATCH);
        let clock = (Instant::now(), wall_ns());
        let mut drain = [0u8; 64];
        // Whether the last read took a whole batch (so more is queued), and
        // when the last batch came.
        let (mut full, mut last_batch) = (false, Instant::now());
        loop {
            loop {
                match rx.try_recv() {
                    Ok(cmd) => {
                        let mut bind = |accept: bool| q.bind(accept).map_err(|e| format!("cannot bind NFQUEUE {}: {e}", q.num()));
                        if !self.apply(cmd, &mut bind) {
                            self.runner.flush(&mut v);
                            self.verdicts(&mut q, &mut pending, &mut v);
                            return;
                        }
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
            // Close a window whose time is up.
            if opened.is_some_and(|o| o.elapsed() >= t) {
                self.runner.flush(&mut v);
                self.verdicts(&mut q, &mut pending, &mut v);
                opened = None;
            }
            // Asleep until a packet, a command, the window's deadline, or the
            // next publication of counters that changed; not at all when the
            // last read left packets queued.
            if !full {
                let mut timeout = opened.map(|o| t.saturating_sub(o.elapsed()));
                if self.dirty {
                    let p = PUBLISH.saturating_sub(self.last_publish.elapsed());
                    timeout = Some(timeout.map_or(p, |x| x.min(p)));
                }
                match q.wait(wake.as_raw_fd(), timeout) {
                    Ok(true) => while wake.recv(&mut drain).is_ok() {},
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "waiting on NFQUEUE failed");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            if let Err(e) = q.recv_batch(&mut batch) {
                tracing::error!(error = %e, "NFQUEUE receive failed");
                full = false;
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            full = batch.len() == nfqueue::BATCH;
            if batch.is_empty() {
                self.publish(false);
                continue;
            }
            self.take(&mut q, &batch, &mut pending, &mut v, &mut opened, clock);
            if self.kind == LaneKind::Local && !pending.is_empty() {
                // Under load (batches close together), the packets of the
                // next LINGER join this window: a wake-up, a read and a
                // verdict serve several packets instead of one each. When
                // packets are sparse, nothing waits.
                let busy = last_batch.elapsed() < BUSY;
                last_batch = Instant::now();
                if busy && !full {
                    std::thread::sleep(LINGER);
                    if q.recv_batch(&mut batch).is_ok() && !batch.is_empty() {
                        full = batch.len() == nfqueue::BATCH;
                        self.take(&mut q, &batch, &mut pending, &mut v, &mut opened, clock);
                    }
                }
                // A packet-local lane decides every batch at once.
                self.runner.flush(&mut v);
                self.verdicts(&mut q, &mut pending, &mut v);
                opened = None;
            }
            self.publish(false);
        }
    }

    /// Take a read batch into the window: sources dropped for everyone get
    /// their verdict at once; the others wait in `pending` for their window.
    #[cfg(target_os = "linux")]
    fn take(
        &mut self, q: &mut nfqueue::NfQueue, batch: &[nfqueue::Queued], pending: &mut VecDeque<u32>, v: &mut Verdicts,
        opened: &mut Option<Instant>, (epoch, wall0): (Instant, u64),
    ) {
        use vinet_engine::packet::LinkType;
        use vinet_engine::pcap::Frame;
        self.dirty = true;
        self.stats.batches += 1;
        self.stats.malformed = q.malformed;
        for m in batch {
            self.stats.received += 1;
            let data = q.payload(m);
            if ip_source(data).is_some_and(|s| self.blocked.contains(&s)) {
                self.stats.blocked_dropped += 1;
                if q.verdict(m.id, false).is_err() {
                    self.stats.verdict_errors += 1;
                }
                continue;
            }
            let ts_ns = wall0 + epoch.elapsed().as_nanos() as u64;
            // The runner may close the previous window (W reached, or T
            // elapsed in packet time) before taking this frame: the
            // verdicts gathered are for the oldest pending packets.
            self.runner.push(Frame { link: LinkType::Raw, ts_ns, orig_len: m.original_len, data }, v);
            pending.push_back(m.id);
            let closed = !v.accept.is_empty();
            if closed {
                self.verdicts(q, pending, v);
            }
            *opened = match (pending.is_empty(), closed, *opened) {
                (true, _, _) => None,
                (false, true, _) | (false, false, None) => Some(Instant::now()),
                (false, false, o) => o,
            };
        }
    }

    /// A closed window's verdicts: its drops one by one, then one batch
    /// verdict that accepts the rest (every packet up to its last id).
    #[cfg(target_os = "linux")]
    fn verdicts(&mut self, q: &mut nfqueue::NfQueue, pending: &mut VecDeque<u32>, v: &mut Verdicts) {
        let mut last = None;
        let mut accepted = false;
        for accept in v.accept.drain(..) {
            let Some(id) = pending.pop_front() else { break };
            last = Some(id);
            if accept {
                accepted = true;
            } else if q.verdict(id, false).is_err() {
                self.stats.verdict_errors += 1;
            }
        }
        if let (Some(id), true) = (last, accepted) {
            if q.accept_through(id, None).is_err() {
                self.stats.verdict_errors += 1;
            }
        }
        self.send_generated(v);
    }
}

/// Wall-clock nanoseconds since the epoch.
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinet_checker::bytecode::Const;
    use vinet_checker::mapped;

    /// The paper's firewall, checked from the engine benchmark's pre-proved
    /// bundle (the router links no prover, not even in tests).
    fn firewall() -> Arc<Program> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/benches/fixtures");
        let mut cache = vinet_checker::cert::LemmaCache::new();
        cache.admit_library(&std::fs::read(dir.join("lemmas.lib")).unwrap()).unwrap();
        let policy =
            vinet_engine::policy_file::load(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/end-user.toml"))
                .unwrap();
        let checked = vinet_checker::check(&std::fs::read(dir.join("firewall.vpc")).unwrap(), &policy, &cache).unwrap();
        Arc::new(Program::new(&checked))
    }

    #[test]
    fn commands_apply_and_installs_are_acknowledged() {
        let p = PacketPath::start(WindowConfig::new(256, 5), LiveSource::None).unwrap();
        let b = Binding { this_ip: mapped(0x0a00_0007), this_subnet: None, params: vec![Const::Addr(0x0a00_0102)] };
        p.install(1, firewall(), vec![b.clone()]).unwrap();
        p.install(2, firewall(), vec![b.clone()]).unwrap();
        // A binding the program refuses is refused by the packet thread too.
        let bad = Binding { params: vec![Const::Num(1)], ..b };
        assert!(p.install(3, firewall(), vec![bad]).unwrap_err().contains("SrcIP"));
        assert!(p.install(4, firewall(), vec![]).is_err(), "an install needs an address to run for");
        p.remove(2);
        p.block(BTreeSet::from([mapped(0x0a00_0102), 0xfd00_0001 << 96 | 2]));
        let t0 = Instant::now();
        loop {
            let s = p.snapshot();
            if s.programs.len() == 1 && s.programs.contains_key(&1) {
                assert_eq!(s.programs[&1].certified, 1030);
                break;
            }
            // A hang deadline, not a speed requirement: the packet thread
            // applies the commands in order, this only stops a real hang.
            assert!(t0.elapsed() < Duration::from_secs(120), "hang: the packet thread did not apply the commands in 120 s: {s:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(p);
    }

    fn fixture(name: &str) -> Arc<Program> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/benches/fixtures");
        let mut cache = vinet_checker::cert::LemmaCache::new();
        cache.admit_library(&std::fs::read(dir.join("lemmas.lib")).unwrap()).unwrap();
        let policy =
            vinet_engine::policy_file::load(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/end-user.toml"))
                .unwrap();
        let checked = vinet_checker::check(&std::fs::read(dir.join(name)).unwrap(), &policy, &cache).unwrap();
        Arc::new(Program::new(&checked))
    }

    /// Which lanes have the lease installed: (packet-local, windowed).
    fn placed(p: &PacketPath, lease: u64) -> (bool, bool) {
        let t0 = Instant::now();
        loop {
            let on = |k: LaneKind| p.lanes.iter().filter(|l| l.kind == k).any(|l| l.snapshot.lock().unwrap().programs.contains_key(&lease));
            let got = (on(LaneKind::Local), on(LaneKind::Window));
            // Lanes publish after each command; wait for the last one.
            if got.0 != got.1 || t0.elapsed() > Duration::from_secs(120) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn windowed_programs_pull_overlapping_clients_into_the_windowed_lane() {
        let p = PacketPath::start(WindowConfig::new(256, 5), LiveSource::None).unwrap();
        let me = Binding { this_ip: mapped(0x0a00_0007), this_subnet: None, params: vec![Const::Addr(0x0a00_0102)] };
        let other = Binding { this_ip: mapped(0x0a00_0008), ..me.clone() };
        p.install(1, fixture("firewall.vpc"), vec![me.clone()]).unwrap();
        p.install(2, fixture("firewall.vpc"), vec![other.clone()]).unwrap();
        assert_eq!(placed(&p, 1), (true, false), "a firewall alone is decided packet by packet");
        // A spam filter for the same client: both now read its windows.
        p.install(3, fixture("spam_filter.vpc"), vec![Binding { params: vec![], ..me.clone() }]).unwrap();
        assert_eq!(placed(&p, 3), (false, true));
        assert_eq!(placed(&p, 1), (false, true), "the firewall of a client with a windowed program moves with it");
        assert_eq!(placed(&p, 2), (true, false), "another client's firewall stays packet-local");
        // Without the spam filter, the firewall goes back.
        p.remove(3);
        assert_eq!(placed(&p, 1), (true, false));
        let s = p.snapshot();
        assert_eq!((s.programs.len(), s.programs[&1].certified), (2, 1030));
    }

    #[test]
    fn a_lease_runs_once_for_each_address_of_both_families() {
        let p = PacketPath::start(WindowConfig::new(256, 5), LiveSource::None).unwrap();
        let c6: u128 = 0xfd00_0003 << 96 | 2;
        let v4 = Binding { this_ip: mapped(0x0a00_0302), this_subnet: None, params: vec![Const::Addr(0x0a00_0102)] };
        let v6 = Binding { this_ip: c6, ..v4.clone() };
        p.install(1, fixture("firewall.vpc"), vec![v4.clone(), v6.clone()]).unwrap();
        {
            let pl = p.placement();
            let dests: BTreeSet<(u128, u8)> = pl.entries.values().map(|e| net_of(e.dest)).collect();
            assert_eq!(dests, BTreeSet::from([(mapped(0x0a00_0302), 128), (c6, 128)]));
            assert!(pl.entries.values().all(|e| e.lane == Place::Local));
            // Both instances are in the kernel's packet-local set (hooks.rs
            // splits it by family).
            #[cfg(target_os = "linux")]
            assert_eq!(pl.sets().0, dests);
        }
        // One lease on the counters, both instances' packets in it.
        assert_eq!(placed(&p, 1), (true, false));
        // A spam filter for C's IPv6 address pulls that instance, and only
        // that one, onto a windowed lane.
        p.install(2, fixture("spam_filter.vpc"), vec![Binding { params: vec![], ..v6.clone() }]).unwrap();
        {
            let pl = p.placement();
            assert_eq!(pl.entries[&(1, 0)].lane, Place::Local, "the IPv4 instance stays packet-local");
            assert_eq!(pl.entries[&(1, 1)].lane, pl.entries[&(2, 0)].lane, "the IPv6 instance joins the spam filter's lane");
        }
        // Installed anew with one address: the other instance goes.
        p.install(1, fixture("firewall.vpc"), vec![v4]).unwrap();
        assert_eq!(p.placement().entries.keys().filter(|k| k.0 == 1).count(), 1);
        p.remove(1);
        p.remove(2);
        assert!(p.placement().entries.is_empty());
        #[cfg(target_os = "linux")]
        assert!(p.placement().sets().0.is_empty());
    }

    #[test]
    fn many_commands_never_block_on_a_lane_that_does_not_read_its_wake_ups() {
        // An idle lane reads its commands only; its wake-up queue (ten
        // datagrams by default) fills, and the sender must not wait on it.
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let p = PacketPath::start(WindowConfig::new(256, 5), LiveSource::None).unwrap();
            let fw = fixture("firewall.vpc");
            for i in 0..200u32 {
                let b = Binding { this_ip: mapped(0x0a01_0000 + i), this_subnet: None, params: vec![Const::Addr(1)] };
                p.install(u64::from(i), Arc::clone(&fw), vec![b]).unwrap();
                p.block(BTreeSet::from([mapped(i)]));
            }
            for i in 0..100u64 {
                p.remove(i);
            }
            let _ = done.send(p.placement().entries.len());
        });
        // A hang deadline, not a speed requirement.
        let left = finished.recv_timeout(Duration::from_secs(120)).expect("hang: 200 installs to idle lanes did not finish in 120 s");
        assert_eq!(left, 100);
    }

    #[test]
    fn windowed_clients_spread_over_lanes_and_overlapping_ones_share_one() {
        let plan = vec![(LaneKind::Local, 0, None), (LaneKind::Window, 0, None), (LaneKind::Window, 1, None), (LaneKind::Window, 2, None)];
        let p = PacketPath::start_plan(
            WindowConfig::new(256, 5),
            plan,
            #[cfg(target_os = "linux")]
            None,
        )
        .unwrap();
        let spam = fixture("spam_filter.vpc");
        for i in 0..12u32 {
            let b = Binding { this_ip: mapped(0x0a00_0100 + i), this_subnet: None, params: vec![] };
            p.install(u64::from(i), Arc::clone(&spam), vec![b]).unwrap();
        }
        let shards: BTreeSet<u16> = p
            .placement()
            .entries
            .values()
            .map(|e| match e.lane {
                Place::Window(k) => k,
                Place::Local => panic!("a spam filter is windowed"),
            })
            .collect();
        assert!(shards.len() >= 2, "12 clients over 3 windowed lanes: {shards:?}");
        // A firewall of one of them joins its lane; the lanes agree.
        let b = Binding { this_ip: mapped(0x0a00_0105), this_subnet: None, params: vec![Const::Addr(1)] };
        p.install(100, fixture("firewall.vpc"), vec![b]).unwrap();
        let pl = p.placement();
        assert_eq!(pl.entries[&(100, 0)].lane, pl.entries[&(5, 0)].lane);
        drop(pl);
        // Every installation runs on exactly the lanes of its place.
        for (&l, e) in p.placement().entries.iter() {
            let want: Vec<usize> =
                p.lanes.iter().enumerate().filter(|(_, h)| p.lanes_of(e.lane).any(|x| std::ptr::eq(x, *h))).map(|(i, _)| i).collect();
            assert_eq!(want.len(), 1, "instance {l:?}");
        }
    }

    #[test]
    fn sources_are_read_from_either_family() {
        let mut v4 = vec![0x45u8; 20];
        v4[12..16].copy_from_slice(&[10, 0, 1, 2]);
        assert_eq!(ip_source(&v4), Some(mapped(0x0a00_0102)));
        assert_eq!(ip_source(&v4[..19]), None);
        let a6: u128 = 0xfd00_0001 << 96 | 2;
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[8..24].copy_from_slice(&a6.to_be_bytes());
        assert_eq!(ip_source(&v6), Some(a6));
        assert_eq!(ip_source(&v6[..39]), None);
        assert_eq!(ip_source(&[]), None);
        assert_eq!(ip_source(&[0x50; 40]), None);
    }

    #[test]
    fn verdicts_follow_frame_order() {
        let mut v = Verdicts::default();
        let mut w = vinet_engine::window::Window::new();
        w.push(vinet_engine::packet::LinkType::Raw, 0, 3, &[1, 2, 3]);
        let (meta, _) = w.frame(0).unwrap();
        v.forward(meta, &[]);
        v.dropped(1, meta, &[]);
        v.forward(meta, &[]);
        v.generated(0, &[0x45]);
        assert_eq!(v.accept, vec![true, false, true]);
        assert_eq!(v.generated.len(), 1);
    }
}
