//! A router's side: the participant server.
//!
//! [`serve`] owns an overlay [`Participant`] (its SQLite store and its
//! partition), listens for its manager on TCP, answers prepare, commit,
//! abort and refresh ([`crate::wire::ToRouter`]), and sweeps lapsed leases
//! (prepared entries past their timeout, active leases not refreshed) on a
//! timer. It is a library function so that vinetd can host it; the
//! `vinet-onmgr router` command hosts it for the tests. A host that serves
//! the reservations on a data path of its own (vinetd) starts it with
//! [`serve_observed`] and mirrors the lease table from its [`Observer`], so
//! that its packets never wait for the participant's store writes.
//!
//! The clock is Unix nanoseconds, so that leases read back from the store
//! after a restart lapse when they would have.
//!
//! Only the configured manager key is accepted; any other, and any frame
//! that fails the wire's checks, drops the connection with a one-line
//! reason, counted in [`Stats::refused`].

use crate::wire::{Channel, FromRouter, LeaseView, ToRouter, WireError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vinet_overlay::lease::{LeaseConfig, LeaseTable};
use vinet_overlay::partition::{PartitionConfig, Standing};
use vinet_overlay::store::Store;
use vinet_overlay::twopc::{NodeId, Participant, ToParticipant};

/// Unix time in nanoseconds (0 before 1970, saturating after 2554).
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Where a test makes the router abort, to be restarted from its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// On receiving a prepare, before handling it.
    BeforePrepare,
    /// After a prepare's store write, before the vote is sent.
    AfterPrepare,
    /// On receiving a commit, before handling it.
    BeforeCommit,
    /// After a commit's store write, before the ack is sent.
    AfterCommit,
}

impl std::str::FromStr for CrashPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<CrashPoint, String> {
        Ok(match s {
            "before-prepare" => CrashPoint::BeforePrepare,
            "after-prepare" => CrashPoint::AfterPrepare,
            "before-commit" => CrashPoint::BeforeCommit,
            "after-commit" => CrashPoint::AfterCommit,
            _ => return Err(format!("unknown crash point {s:?}")),
        })
    }
}

/// A participant server's configuration.
pub struct RouterConfig {
    /// The router's name in the manager's log.
    pub node: NodeId,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The SQLite store of its leases.
    pub store: PathBuf,
    /// Its signing key.
    pub key: SigningKey,
    /// The only manager it answers.
    pub manager: VerifyingKey,
    /// Its capacity.
    pub partition: PartitionConfig,
    /// The refresh period R its leases expect.
    pub lease: LeaseConfig,
    /// How often to sweep lapsed leases.
    pub sweep_every: Duration,
    /// A test's crash point (the process aborts there).
    pub crash_at: Option<CrashPoint>,
}

/// What the server has seen.
#[derive(Default, Debug)]
pub struct Stats {
    /// Connections or frames refused (unknown key, bad signature, replay, malformed).
    pub refused: AtomicU64,
    /// Messages answered.
    pub answered: AtomicU64,
    /// Leases released by the sweeper.
    pub lapsed: AtomicU64,
}

/// A running participant server; dropping it stops it.
pub struct RouterServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    threads: Vec<JoinHandle<()>>,
}

impl RouterServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Blocks until the server stops (it does not stop by itself).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RouterServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Told of the lease table each time its reservations may have changed: once
/// when the store is opened, after every prepare, commit, abort and refresh
/// (each sweeps first), and after each sweep that released leases. It runs under the participant's lock, so
/// it sees every change in order; it must be quick and must not call back
/// into the server. vinetd's data path mirrors the reservations from it.
pub type Observer = Arc<dyn Fn(&LeaseTable) + Send + Sync>;

/// Opens the router's store and starts serving.
pub fn serve(cfg: RouterConfig) -> Result<RouterServer, String> {
    serve_observed(cfg, Arc::new(|_: &LeaseTable| {}))
}

/// [`serve`], telling `observer` of every change of the reservations.
pub fn serve_observed(cfg: RouterConfig, observer: Observer) -> Result<RouterServer, String> {
    let store = Store::open(&cfg.store).map_err(|e| format!("{}: {e}", cfg.store.display()))?;
    let participant =
        Participant::open(cfg.node, store, cfg.lease, cfg.partition, now_ns()).map_err(|e| format!("{}: {e}", cfg.store.display()))?;
    let listener = TcpListener::bind(cfg.listen).map_err(|e| format!("listen {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    observer(participant.leases());
    let shared = Arc::new(Mutex::new(participant));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let cfg = Arc::new(cfg);

    let sweeper = {
        let (shared, stop, stats, every, observer) = (shared.clone(), stop.clone(), stats.clone(), cfg.sweep_every, observer.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(every.min(Duration::from_millis(50)));
                let mut p = shared.lock().unwrap_or_else(|e| e.into_inner());
                match p.tick(now_ns()) {
                    Ok(gone) => {
                        stats.lapsed.fetch_add(gone.len() as u64, Ordering::Relaxed);
                        if !gone.is_empty() {
                            observer(p.leases());
                        }
                    }
                    Err(e) => eprintln!("vinet-onmgr router: sweep: {e}"),
                }
            }
        })
    };
    let acceptor = {
        let (stop, stats) = (stop.clone(), stats.clone());
        std::thread::spawn(move || {
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, peer)) => {
                        let (shared, stop, stats, cfg, observer) =
                            (shared.clone(), stop.clone(), stats.clone(), cfg.clone(), observer.clone());
                        conns.retain(|c| !c.is_finished());
                        conns.push(std::thread::spawn(move || {
                            if s.set_nonblocking(false).is_err() {
                                return;
                            }
                            if let Err(e) = connection(s, &shared, &stop, &stats, &cfg, &observer) {
                                if !matches!(&e, WireError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof) {
                                    stats.refused.fetch_add(1, Ordering::Relaxed);
                                    eprintln!("vinet-onmgr router: {peer}: {e}");
                                }
                            }
                        }));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => {
                        eprintln!("vinet-onmgr router: accept: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            for c in conns {
                let _ = c.join();
            }
        })
    };
    Ok(RouterServer { addr, stop, stats, threads: vec![sweeper, acceptor] })
}

fn connection(
    s: std::net::TcpStream, shared: &Mutex<Participant>, stop: &AtomicBool, stats: &Stats, cfg: &RouterConfig, observer: &Observer,
) -> Result<(), WireError> {
    // A short read timeout so that the thread notices a stop; an idle
    // manager's connection is kept open through timeouts.
    let mut ch = Channel::accept(s, &cfg.key, Duration::from_secs(5), |k| (*k == cfg.manager).then_some(*k))?;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let msg: ToRouter = match ch.recv() {
            Ok(m) => m,
            Err(WireError::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                // Nothing arrived within the timeout: an idle manager. A
                // frame cut in the middle of the timeout desynchronises the
                // stream, so the connection is dropped (the manager redials).
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let answer = handle(shared, cfg, &msg, observer);
        stats.answered.fetch_add(1, Ordering::Relaxed);
        ch.send(&answer)?;
    }
}

fn crash_if(cfg: &RouterConfig, at: CrashPoint) {
    if cfg.crash_at == Some(at) {
        eprintln!("vinet-onmgr router: crashing at {at:?} (test hook)");
        std::process::abort();
    }
}

fn handle(shared: &Mutex<Participant>, cfg: &RouterConfig, msg: &ToRouter, observer: &Observer) -> FromRouter {
    let mut p = shared.lock().unwrap_or_else(|e| e.into_inner());
    let now = now_ns();
    match msg {
        ToRouter::TwoPc(m) => {
            let (before, after) = match m {
                ToParticipant::Prepare { .. } => (CrashPoint::BeforePrepare, CrashPoint::AfterPrepare),
                ToParticipant::Commit { .. } => (CrashPoint::BeforeCommit, CrashPoint::AfterCommit),
                ToParticipant::Abort { .. } => {
                    let r = p.handle(m, now);
                    observer(p.leases());
                    return r.map_or_else(|e| FromRouter::Failed(e.to_string()), FromRouter::TwoPc);
                }
            };
            crash_if(cfg, before);
            let r = p.handle(m, now);
            crash_if(cfg, after);
            observer(p.leases());
            r.map_or_else(|e| FromRouter::Failed(e.to_string()), FromRouter::TwoPc)
        }
        ToRouter::Refresh(flows) => {
            // A refresh sweeps first, which may release other leases.
            let answer = FromRouter::Refreshed(flows.iter().map(|&f| (f, p.refresh(f, now).map_err(|e| e.to_string()))).collect());
            observer(p.leases());
            answer
        }
        ToRouter::Leases => {
            match p.tick(now) {
                Ok(gone) if !gone.is_empty() => observer(p.leases()),
                Ok(_) => {}
                Err(e) => return FromRouter::Failed(e.to_string()),
            }
            let leases = p
                .leases()
                .iter()
                .map(|l| LeaseView {
                    flow: l.flow,
                    reservation: l.reservation,
                    active: l.standing == Standing::Active,
                    expires_ns: l.expires_ns,
                    tx: p.tx_of(l.flow),
                })
                .collect();
            FromRouter::Leases { node: p.node(), capacity: cfg.partition.capacity, leases }
        }
    }
}
