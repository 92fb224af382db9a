//! The packet path of `vinetd`: one thread that owns the [`Runner`] (window
//! and dispatch table), reads packets, runs windows and gives verdicts.
//!
//! **Architecture Invariant:** nothing on the admission side ever holds a
//! lock the packet path needs. Admissions prepare a program (checked, bound,
//! validated) and send an [`Command`] over a channel; the packet thread
//! applies pending commands between packets and windows, and acknowledges
//! installs so that "admitted" means "running". Statistics flow back as a
//! [`Snapshot`] the thread publishes a few times a second.
//!
//! Sources: [`LiveSource::Nfqueue`] (Linux: the packets an iptables
//! `NFQUEUE` rule hands over; see `nfqueue.rs`), or [`LiveSource::None`] (no
//! live traffic: the thread only keeps the dispatch table, for routers under
//! test or fed otherwise; offline captures go through `vinetc run`).
//!
//! A window closes at W packets or T ms after its first packet, whichever
//! first; then every packet of the window gets its verdict (accept, or drop
//! when a program discarded it), and generated packets leave through a raw
//! socket toward their destination. Sources dropped for everyone (the
//! paper's alert rule) are dropped before they enter a window.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vinet_engine::dispatch::{InstallId, ProgramStats};
use vinet_engine::runner::{Runner, RunnerStats};
use vinet_engine::vm::{Binding, Program};
use vinet_engine::window::{FrameMeta, Sink, WindowConfig};

#[cfg(target_os = "linux")]
pub mod nfqueue;
pub mod rawsock;

/// What the admission side asks of the packet path.
pub enum Command {
    /// Install a prepared program for a lease; the ack says whether it runs.
    Install {
        /// The lease.
        lease: u64,
        /// The program (made from a `Checked`).
        program: Arc<Program>,
        /// THIS_IP / THIS_SUBNET_IP from the identity, and parameter values.
        binding: Binding,
        /// Where to acknowledge.
        ack: Sender<Result<(), String>>,
    },
    /// Remove a lease's installation.
    Remove {
        /// The lease.
        lease: u64,
    },
    /// The sources dropped for everyone.
    Block(BTreeSet<u32>),
    /// Stop the thread (after the current window).
    Stop,
}

/// Counters the packet path publishes.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Runner-wide counters.
    pub router: RunnerStats,
    /// Per lease.
    pub programs: HashMap<u64, ProgramStats>,
    /// Packets dropped because their source is dropped for everyone.
    pub blocked_dropped: u64,
    /// Generated packets sent on the wire.
    pub generated_sent: u64,
    /// Generated packets the raw socket refused.
    pub generated_failed: u64,
    /// Verdicts the kernel refused.
    pub verdict_errors: u64,
    /// Packets received from the source.
    pub received: u64,
}

/// Where live packets come from.
pub enum LiveSource {
    /// None: only commands.
    None,
    /// An NFQUEUE queue.
    #[cfg(target_os = "linux")]
    Nfqueue(nfqueue::NfQueue),
}

/// The running packet path.
pub struct PacketPath {
    tx: Sender<Command>,
    snapshot: Arc<Mutex<Snapshot>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PacketPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketPath").finish_non_exhaustive()
    }
}

/// How long an install may wait for the packet thread.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

impl PacketPath {
    /// Start the packet thread.
    pub fn start(cfg: WindowConfig, source: LiveSource) -> std::io::Result<PacketPath> {
        let (tx, rx) = mpsc::channel();
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let snap = Arc::clone(&snapshot);
        let raw = match source {
            LiveSource::None => None,
            #[cfg(target_os = "linux")]
            LiveSource::Nfqueue(_) => Some(rawsock::RawSender::open()?),
        };
        let thread = std::thread::Builder::new().name("vinet-packets".into()).spawn(move || {
            let mut p = Path {
                router: Runner::new(cfg),
                installs: HashMap::new(),
                blocked: BTreeSet::new(),
                snap,
                stats: Snapshot::default(),
                raw,
                last_publish: Instant::now(),
            };
            match source {
                LiveSource::None => p.run_idle(rx),
                #[cfg(target_os = "linux")]
                LiveSource::Nfqueue(q) => p.run_nfqueue(rx, q),
            }
        })?;
        Ok(PacketPath { tx, snapshot, thread: Some(thread) })
    }

    /// Install, and wait until the packet thread runs it.
    pub fn install(&self, lease: u64, program: Arc<Program>, binding: Binding) -> Result<(), String> {
        let (ack, rx) = mpsc::channel();
        self.tx.send(Command::Install { lease, program, binding, ack }).map_err(|_| "the packet path has stopped".to_string())?;
        rx.recv_timeout(ACK_TIMEOUT).map_err(|_| "the packet path did not answer".to_string())?
    }

    /// Remove a lease's program.
    pub fn remove(&self, lease: u64) {
        let _ = self.tx.send(Command::Remove { lease });
    }

    /// Set the sources dropped for everyone.
    pub fn block(&self, sources: BTreeSet<u32>) {
        let _ = self.tx.send(Command::Block(sources));
    }

    /// The latest counters.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for PacketPath {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Path {
    router: Runner,
    installs: HashMap<u64, InstallId>,
    blocked: BTreeSet<u32>,
    snap: Arc<Mutex<Snapshot>>,
    stats: Snapshot,
    raw: Option<rawsock::RawSender>,
    last_publish: Instant,
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
    fn generated(&mut self, _ts_ns: u64, ipv4: &[u8]) {
        self.generated.push(ipv4.to_vec());
    }
}

impl Path {
    /// Apply one command; false on Stop.
    fn apply(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Install { lease, program, binding, ack } => {
                let r = self.router.dispatch_mut().install_program(program, &binding).map(|id| {
                    self.installs.insert(lease, id);
                });
                let _ = ack.send(r.map_err(|e| e.to_string()));
            }
            Command::Remove { lease } => {
                if let Some(id) = self.installs.remove(&lease) {
                    self.router.dispatch_mut().remove(id);
                    self.stats.programs.remove(&lease);
                }
            }
            Command::Block(s) => self.blocked = s,
            Command::Stop => return false,
        }
        self.publish(false);
        true
    }

    fn publish(&mut self, now: bool) {
        if !now && self.last_publish.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last_publish = Instant::now();
        self.stats.router = self.router.stats();
        let d = self.router.dispatch();
        self.stats.programs = self.installs.iter().filter_map(|(&l, &id)| d.stats(id).map(|s| (l, s))).collect();
        if let Ok(mut s) = self.snap.lock() {
            *s = self.stats.clone();
        }
    }

    fn run_idle(&mut self, rx: Receiver<Command>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(cmd) => {
                    if !self.apply(cmd) {
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
    fn run_nfqueue(&mut self, rx: Receiver<Command>, mut q: nfqueue::NfQueue) {
        use vinet_engine::packet::LinkType;
        use vinet_engine::pcap::Frame;
        let t = Duration::from_millis(self.router.config().millis.max(1));
        let mut pending: std::collections::VecDeque<nfqueue::Msg> = std::collections::VecDeque::new();
        let mut opened: Option<Instant> = None;
        let mut v = Verdicts::default();
        let epoch = Instant::now();
        let wall0 = wall_ns();
        loop {
            loop {
                match rx.try_recv() {
                    Ok(cmd) => {
                        if !self.apply(cmd) {
                            self.router.flush(&mut v);
                            self.verdicts(&mut q, &mut pending, &mut v);
                            return;
                        }
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
            // Close a window whose time is up.
            if let Some(o) = opened {
                if o.elapsed() >= t {
                    self.router.flush(&mut v);
                    self.verdicts(&mut q, &mut pending, &mut v);
                    opened = None;
                }
            }
            let wait = match opened {
                Some(o) => t.saturating_sub(o.elapsed()),
                // Idle: come back soon for commands (an install waits for its ack).
                None => Duration::from_millis(2),
            };
            match q.recv(wait) {
                Ok(Some(msg)) => {
                    self.stats.received += 1;
                    let data = msg.payload();
                    let src = (data.len() >= 20 && data[0] >> 4 == 4).then(|| u32::from_be_bytes([data[12], data[13], data[14], data[15]]));
                    if src.is_some_and(|s| self.blocked.contains(&s)) {
                        self.stats.blocked_dropped += 1;
                        if q.verdict(msg, false).is_err() {
                            self.stats.verdict_errors += 1;
                        }
                        continue;
                    }
                    let ts_ns = wall0 + epoch.elapsed().as_nanos() as u64;
                    let orig_len = u32::try_from(msg.original_len()).unwrap_or(u32::MAX);
                    let frame = Frame { link: LinkType::Raw, ts_ns, orig_len, data: msg.payload() };
                    // The router may close the previous window (T elapsed in
                    // packet time) before taking this frame: the verdicts
                    // gathered are for the oldest pending messages.
                    self.router.push(frame, &mut v);
                    pending.push_back(msg);
                    let closed = !v.accept.is_empty();
                    if closed {
                        self.verdicts(&mut q, &mut pending, &mut v);
                    }
                    // A window is open while messages wait; it began with this
                    // packet if the router just closed the previous one.
                    opened = match (pending.is_empty(), closed, opened) {
                        (true, _, _) => None,
                        (false, true, _) | (false, false, None) => Some(Instant::now()),
                        (false, false, o) => o,
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "NFQUEUE receive failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            self.publish(false);
        }
    }

    #[cfg(target_os = "linux")]
    fn verdicts(&mut self, q: &mut nfqueue::NfQueue, pending: &mut std::collections::VecDeque<nfqueue::Msg>, v: &mut Verdicts) {
        for accept in v.accept.drain(..) {
            let Some(msg) = pending.pop_front() else { break };
            if q.verdict(msg, accept).is_err() {
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
        let b = Binding { this_ip: 0x0a00_0007, this_subnet: None, params: vec![Const::Addr(0x0a00_0102)] };
        p.install(1, firewall(), b.clone()).unwrap();
        p.install(2, firewall(), b.clone()).unwrap();
        // A binding the program refuses is refused by the packet thread too.
        let bad = Binding { params: vec![Const::Num(1)], ..b };
        assert!(p.install(3, firewall(), bad).unwrap_err().contains("SrcIP"));
        p.remove(2);
        p.block(BTreeSet::from([0x0a00_0102]));
        let t0 = Instant::now();
        loop {
            let s = p.snapshot();
            if s.programs.len() == 1 && s.programs.contains_key(&1) {
                assert_eq!(s.programs[&1].certified, 1024);
                break;
            }
            // A hang deadline, not a speed requirement: the packet thread
            // applies the commands in order, this only stops a real hang.
            assert!(t0.elapsed() < Duration::from_secs(120), "hang: the packet thread did not apply the commands in 120 s: {s:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(p);
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
