//! The ON manager: admission, paths, two-phase commit and lease refresh.
//!
//! Its durable state is a [`State`]: an overlay [`vinet_overlay::store::Store`]
//! of its own, or etcd shared with other managers ([`crate::etcd`]). Either
//! holds the flow-id pool (each allocated id labelled with the ON's access
//! points and paths, as JSON) and the coordinator's decision log.
//! Everything else is derived from them, so a restarted manager is the one
//! that crashed:
//!
//! - an ON's *state* is that of its latest transaction: undecided
//!   (preparing), committed (committing until every router acknowledged,
//!   then up), aborted (releasing until acknowledged, then its id is freed);
//! - the *picture* of each router's free capacity is its capacity minus the
//!   reservations of every ON whose latest transaction is not aborted
//!   (undecided ones count: they are set aside on the routers); with etcd,
//!   the sums kept there, which count an ON until its id is freed;
//! - an id allocated with no transaction (a crash between the two writes)
//!   is freed at start.
//!
//! With etcd, a manager sees every manager's ONs (`status` is the same
//! from each) but refreshes, releases and frees only its own: only its
//! log has their transactions.
//!
//! A request is admitted against the picture: routers without room are
//! left out of the graph, then the shortest path (or two node-disjoint
//! paths, `--redundant`) between the access points is asked of
//! [`vinet_overlay::paths::node_disjoint`]. Two-phase commit runs over every
//! router of every path through the overlay [`Coordinator`], whose log
//! gives recovery (decided transactions announced again, undecided ones
//! aborted). Committed ONs are refreshed on each of their routers every R;
//! one that a router no longer holds is revoked everywhere.
//!
//! One lock serialises the manager: requests, the timer and the control
//! connections take turns. Messages to a router are synchronous calls over
//! one cached authenticated connection; a lost one is resent by the
//! coordinator's retry timer.

use crate::config::Network;
use crate::router::now_ns;
use crate::state::State;
use crate::wire::{Channel, FromRouter, ToRouter};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;
use vinet_overlay::partition::{Reservation, Resources};
use vinet_overlay::paths::node_disjoint;
use vinet_overlay::store::LoggedTx;
use vinet_overlay::twopc::{Coordinator, Decision, Envelope, NodeId, ToParticipant, TxId};
use vinet_overlay::FlowId;

/// Where a test makes the manager abort, to be restarted from its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the transaction is logged, before any prepare.
    Logged,
    /// After the first prepare has been answered.
    Prepared,
    /// After the commit is logged, before it is announced.
    Decided,
    /// After the first commit has been announced.
    Committed,
}

impl std::str::FromStr for CrashPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<CrashPoint, String> {
        Ok(match s {
            "logged" => CrashPoint::Logged,
            "prepared" => CrashPoint::Prepared,
            "decided" => CrashPoint::Decided,
            "committed" => CrashPoint::Committed,
            _ => return Err(format!("unknown crash point {s:?}")),
        })
    }
}

/// The manager's timing.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The lease refresh period R.
    pub refresh: Duration,
    /// How long routers hold a prepared reservation undecided.
    pub prepare_timeout: Duration,
    /// How often unanswered messages are resent.
    pub retry: Duration,
}

/// The label kept with an allocated flow id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnLabel {
    /// The two access points.
    pub access: [String; 2],
    /// The paths, as router names from the first access point.
    pub paths: Vec<Vec<String>>,
}

/// An ON as `status` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnStatus {
    /// Its id.
    pub flow: u32,
    /// preparing, committing, up, releasing or released.
    pub state: String,
    /// The access points and paths.
    pub label: OnLabel,
    /// The routers it reserves on.
    pub routers: Vec<String>,
    /// What it reserves on each.
    pub rates: Resources,
}

/// What `request`, `release` and `status` ask a running manager (one JSON line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Control {
    /// Set up an ON.
    Request {
        /// Its access points.
        access: [String; 2],
        /// Its rates.
        rates: Resources,
        /// Two node-disjoint paths instead of one.
        redundant: bool,
    },
    /// Tear one down.
    Release(u32),
    /// List the ONs.
    Status,
}

/// A running manager's answer (one JSON line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControlReply {
    /// The ON's id: committed.
    Flow(u32),
    /// Why not, in one line.
    Refused(String),
    /// Release under way.
    Releasing(u32),
    /// The ONs.
    Status(Vec<OnStatus>),
}

/// The bucket depths of a reservation of `rates`: 100 ms of each rate, at
/// least one 1,500-byte packet.
pub fn reservation_of(rates: Resources) -> Result<Reservation, String> {
    let bytes = (rates.bps / 8 / 10).max(1_500);
    let packets = (rates.pps / 10).max(1);
    Reservation::new(rates, bytes, packets).map_err(|e| e.to_string())
}

struct Links {
    me: SigningKey,
    conns: HashMap<NodeId, Channel>,
}

impl Links {
    /// One call to a router, on the cached connection or, if that fails, a
    /// new one; `None` if the router cannot be reached (the message is lost).
    fn call(&mut self, net: &Network, to: NodeId, msg: &ToRouter) -> Option<FromRouter> {
        let r = net.routers.iter().find(|r| r.id == to)?;
        for _ in 0..2 {
            let ch = match self.conns.remove(&to) {
                Some(c) => c,
                None => match Channel::connect(r.address, &self.me, &r.key, Duration::from_secs(2)) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("vinet-onmgr: router {}: {e}", r.name);
                        return None;
                    }
                },
            };
            let mut ch = ch;
            match ch.call::<_, FromRouter>(msg) {
                Ok(a) => {
                    self.conns.insert(to, ch);
                    return Some(a);
                }
                Err(e) => eprintln!("vinet-onmgr: router {}: {e}", r.name),
            }
        }
        None
    }
}

/// An allocated flow id, its label (if it parses), its latest transaction,
/// and whether this manager owns it.
type FlowRow = (FlowId, Option<OnLabel>, Option<LoggedTx>, bool);

/// The manager's state, behind one lock.
pub struct Manager {
    net: Network,
    coord: Coordinator<State>,
    links: Links,
    timing: Timing,
    crash_at: Option<CrashPoint>,
    next_refresh_ns: u64,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Admission against the picture `reserved`: leaves out the routers
/// without room for `rates`, asks for the shortest path (or two
/// node-disjoint ones) between the access points `ends`, and returns the
/// routers of the paths, in order, and the ON's label as JSON.
fn choose_paths(
    net: &Network, access: &[String; 2], ends: [usize; 2], rates: Resources, redundant: bool, reserved: &BTreeMap<NodeId, Resources>,
) -> Result<(Vec<NodeId>, String), String> {
    let mut g = vinet_overlay::paths::Graph::new(net.routers.len());
    let fits = |i: usize| {
        let r = &net.routers[i];
        let used = reserved.get(&r.id).copied().unwrap_or_default();
        used.bps.saturating_add(rates.bps) <= r.capacity.bps
            && used.pps.saturating_add(rates.pps) <= r.capacity.pps
            && used.units.saturating_add(rates.units) <= r.capacity.units
    };
    for e in ends {
        if !fits(e) {
            return Err(format!("router {} has no room", net.routers[e].name));
        }
    }
    for a in 0..net.routers.len() {
        for &(b, w) in net.graph.neighbours(a) {
            if a < b && fits(a) && fits(b) {
                g.add_link(a, b, w).map_err(|e| e.to_string())?;
            }
        }
    }
    let k = if redundant { 2 } else { 1 };
    let paths = node_disjoint(&g, ends[0], ends[1], k).map_err(|e| e.to_string())?;
    if paths.len() < k {
        return Err(format!(
            "no {} path{} with room between {} and {}",
            if redundant { "two disjoint" } else { "" },
            if redundant { "s" } else { "" },
            access[0],
            access[1]
        )
        .replace("no  path", "no path"));
    }
    let mut participants = Vec::new();
    for p in &paths {
        for &n in &p.nodes {
            let id = net.routers[n].id;
            if !participants.contains(&id) {
                participants.push(id);
            }
        }
    }
    let label = OnLabel {
        access: access.clone(),
        paths: paths.iter().map(|p| p.nodes.iter().map(|&n| net.routers[n].name.clone()).collect()).collect(),
    };
    Ok((participants, serde_json::to_string(&label).map_err(|e| e.to_string())?))
}

impl Manager {
    /// Opens the manager's state, recovers from its log and announces
    /// what recovery decided.
    pub fn open(store: State, net: Network, me: SigningKey, timing: Timing, crash_at: Option<CrashPoint>) -> Result<Manager, String> {
        let now = now_ns();
        let (coord, out) = Coordinator::open(store, ns(timing.retry), now).map_err(|e| e.to_string())?;
        let mut m = Manager { net, coord, links: Links { me, conns: HashMap::new() }, timing, crash_at, next_refresh_ns: now };
        m.deliver(out)?;
        m.cleanup()?;
        Ok(m)
    }

    /// Every allocated flow id, its label, its latest transaction and
    /// whether it is this manager's.
    fn flows(&self) -> Result<Vec<FlowRow>, String> {
        Ok(self.coord.store().rows()?.into_iter().map(|r| (r.flow, serde_json::from_str(&r.label).ok(), r.latest, r.mine)).collect())
    }

    /// Each router's reservations, as the manager's state has them.
    pub fn reserved(&self) -> Result<BTreeMap<NodeId, Resources>, String> {
        self.coord.store().reserved()
    }

    /// Admits a request, logs it and sends its prepares; returns the
    /// transaction, whose decision the caller waits for.
    pub fn begin(&mut self, access: &[String; 2], rates: Resources, redundant: bool) -> Result<(FlowId, TxId), String> {
        let reservation = reservation_of(rates)?;
        let ends = [self.index(&access[0])?, self.index(&access[1])?];
        if ends[0] == ends[1] {
            return Err("the access points are the same router".into());
        }
        let net = &self.net;
        let mut participants = Vec::new();
        let mut choose = |reserved: &BTreeMap<NodeId, Resources>| {
            let (p, label) = choose_paths(net, access, ends, rates, redundant, reserved)?;
            participants.clone_from(&p);
            Ok((p, label))
        };
        let flow = self.coord.store_mut().admit(rates, &mut choose)?;
        let now = now_ns();
        let (tx, out) = match self.coord.begin(flow, reservation, &participants, ns(self.timing.prepare_timeout), now) {
            Ok(x) => x,
            Err(e) => {
                let _ = self.coord.store_mut().free(flow);
                return Err(e.to_string());
            }
        };
        self.crash(CrashPoint::Logged);
        self.deliver(out)?;
        Ok((flow, tx))
    }

    fn index(&self, name: &str) -> Result<usize, String> {
        self.net.index(name).ok_or_else(|| format!("no router {name}"))
    }

    fn crash(&self, at: CrashPoint) {
        if self.crash_at == Some(at) {
            eprintln!("vinet-onmgr: crashing at {at:?} (test hook)");
            std::process::abort();
        }
    }

    /// Carries messages to the routers and their answers back to the
    /// coordinator until nothing is left to send now.
    fn deliver(&mut self, out: Vec<Envelope>) -> Result<(), String> {
        let mut queue: VecDeque<Envelope> = out.into();
        // Each answer yields at most one announcement per participant, and
        // a decision is made at most twice (commit, then a revoking abort).
        let mut budget = 64 + 8 * queue.len() * self.net.routers.len().max(1);
        while let Some(e) = queue.pop_front() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
            if matches!(e.msg, ToParticipant::Commit { .. }) {
                self.crash(CrashPoint::Decided);
            }
            let answer = self.links.call(&self.net, e.to, &ToRouter::TwoPc(e.msg));
            if matches!(e.msg, ToParticipant::Commit { .. }) {
                self.crash(CrashPoint::Committed);
            }
            match answer {
                Some(FromRouter::TwoPc(a)) => {
                    let from = match a {
                        vinet_overlay::twopc::ToCoordinator::Vote { from, .. } | vinet_overlay::twopc::ToCoordinator::Ack { from, .. } => {
                            from
                        }
                    };
                    if from != e.to {
                        eprintln!("vinet-onmgr: router {:?} answered as {from:?}: ignored", e.to);
                        continue;
                    }
                    let more = self.coord.handle(&a, now_ns()).map_err(|e| e.to_string())?;
                    if matches!(e.msg, ToParticipant::Prepare { .. }) {
                        self.crash(CrashPoint::Prepared);
                    }
                    queue.extend(more);
                }
                Some(FromRouter::Failed(why)) => eprintln!("vinet-onmgr: router {:?}: {why}", e.to),
                Some(other) => eprintln!("vinet-onmgr: router {:?}: unexpected answer {other:?}", e.to),
                None => {}
            }
        }
        Ok(())
    }

    /// What the log says of `tx`.
    pub fn decision(&self, tx: TxId) -> Result<Option<Decision>, String> {
        Ok(self.coord.status(tx).map_err(|e| e.to_string())?.and_then(|s| s.decision))
    }

    /// The timer: resends, refreshes, frees what is finished.
    pub fn tick(&mut self) -> Result<(), String> {
        let now = now_ns();
        let out = self.coord.tick(now).map_err(|e| e.to_string())?;
        self.deliver(out)?;
        if now >= self.next_refresh_ns {
            self.next_refresh_ns = now.saturating_add(ns(self.timing.refresh));
            self.refresh()?;
        }
        self.cleanup()
    }

    fn refresh(&mut self) -> Result<(), String> {
        let mut per_router: BTreeMap<NodeId, Vec<FlowId>> = BTreeMap::new();
        let mut tx_of = HashMap::new();
        for (f, _, t, mine) in self.flows()? {
            let Some(t) = t.filter(|t| mine && t.decision == Some(Decision::Commit) && t.done) else { continue };
            tx_of.insert(f, t.tx);
            for n in &t.participants {
                per_router.entry(*n).or_default().push(f);
            }
        }
        let mut revoke = BTreeSet::new();
        for (n, flows) in per_router {
            match self.links.call(&self.net, n, &ToRouter::Refresh(flows)) {
                Some(FromRouter::Refreshed(answers)) => {
                    for (f, r) in answers {
                        if let (Err(why), Some(tx)) = (r, tx_of.get(&f)) {
                            eprintln!("vinet-onmgr: ON {} lost on router {n:?} ({why}): revoking", f.0);
                            revoke.insert(*tx);
                        }
                    }
                }
                Some(other) => eprintln!("vinet-onmgr: router {n:?}: unexpected answer {other:?}"),
                None => {}
            }
        }
        for tx in revoke {
            let out = self.coord.revoke(tx, now_ns()).map_err(|e| e.to_string())?;
            self.deliver(out)?;
        }
        Ok(())
    }

    /// Frees the ids of ONs aborted everywhere, and of ids with no
    /// transaction (a crash between allocation and logging; the lock keeps
    /// a request under way from being seen between the two).
    fn cleanup(&mut self) -> Result<(), String> {
        for (f, _, t, mine) in self.flows()? {
            let finished = match t {
                None => true,
                Some(t) => t.decision == Some(Decision::Abort) && t.done,
            };
            if finished && mine {
                self.coord.store_mut().free(f)?;
            }
        }
        Ok(())
    }

    /// Releases an ON on all its routers.
    pub fn release(&mut self, flow: FlowId) -> Result<(), String> {
        let row = self.coord.store().rows()?.into_iter().find(|r| r.flow == flow).ok_or_else(|| format!("no ON {}", flow.0))?;
        if !row.mine {
            return Err(format!("ON {} is manager {}'s: release it there", flow.0, row.owner));
        }
        let t = row.latest.ok_or_else(|| format!("no ON {}", flow.0))?;
        let out = self.coord.revoke(t.tx, now_ns()).map_err(|e| e.to_string())?;
        self.deliver(out)
    }

    /// Every ON.
    pub fn status(&self) -> Result<Vec<OnStatus>, String> {
        let mut out = Vec::new();
        for (f, label, t, _) in self.flows()? {
            let Some(t) = t else { continue };
            let state = match (t.decision, t.done) {
                (None, _) => "preparing",
                (Some(Decision::Commit), false) => "committing",
                (Some(Decision::Commit), true) => "up",
                (Some(Decision::Abort), false) => "releasing",
                (Some(Decision::Abort), true) => "released",
            };
            let routers = t
                .participants
                .iter()
                .map(|n| self.net.index_of(*n).map_or_else(|| format!("#{}", n.0), |i| self.net.routers[i].name.clone()))
                .collect();
            let label = label.unwrap_or(OnLabel { access: [String::new(), String::new()], paths: Vec::new() });
            out.push(OnStatus { flow: f.0, state: state.into(), label, routers, rates: t.reservation.rates() });
        }
        Ok(out)
    }
}
