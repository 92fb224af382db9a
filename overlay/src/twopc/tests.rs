//! Two-phase commit under crashes: a simulated world of one coordinator and
//! a few participants, each with its own store, a network that is a queue,
//! and a clock. A crash drops a node's memory (its store stays), loses the
//! messages sent to it while it is down, and restarts it from its store.

use super::*;
use crate::partition::Resources;
use crate::store::tests::scratch;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::path::PathBuf;

const MS: u64 = 1_000_000;
const TIMEOUT: u64 = 500 * MS;
const RETRY: u64 = 100 * MS;
const STEP: u64 = 100 * MS;
/// Longer than any run, so that committed leases do not lapse in one.
const REFRESH: u64 = 1_000_000 * MS;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Node {
    C,
    P(usize),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum When {
    /// The node dies before it handles the event.
    Before,
    /// The node handles the event (and writes its store), then dies before
    /// its messages leave.
    After,
}

#[derive(Clone, Copy, Debug)]
struct Crash {
    node: Node,
    /// The node's k-th event (begin, delivery or tick), from 0.
    event: usize,
    when: When,
    down_ns: u64,
}

#[derive(Clone, Debug)]
enum Msg {
    ToP(usize, ToParticipant),
    ToC(ToCoordinator),
}

#[derive(Clone, Debug)]
struct Scenario {
    name: &'static str,
    /// Each participant's capacity in bits per second.
    capacities: Vec<u64>,
    /// Each transaction: its flow, bits per second, participants.
    txs: Vec<(FlowId, u64, Vec<usize>)>,
    /// Participant `.0` is unreachable (messages to and from it lost) until `.1`.
    cut: Option<(usize, u64)>,
}

fn node_id(i: usize) -> NodeId {
    NodeId(i as u32 + 1)
}

fn res(bps: u64) -> Reservation {
    Reservation::new(Resources { bps, pps: 100, units: 1 }, 1_500, 10).unwrap()
}

fn pconfig(bps: u64) -> PartitionConfig {
    PartitionConfig { capacity: Resources { bps, pps: 10_000, units: 100 }, unreserved_burst_bytes: 1_500, unreserved_burst_packets: 10 }
}

struct World {
    sc: Scenario,
    paths: Vec<PathBuf>, // participants', then the coordinator's
    coord: Option<Coordinator>,
    parts: Vec<Option<Participant>>,
    net: VecDeque<Msg>,
    now: u64,
    events: Vec<usize>, // per node: participants, then the coordinator
    crash: Option<Crash>,
    crashed: bool,
    down: Option<(Node, u64)>,
}

impl World {
    fn new(sc: Scenario, tag: &str, crash: Option<Crash>) -> World {
        let n = sc.capacities.len();
        let paths: Vec<PathBuf> = (0..=n).map(|i| scratch(&format!("2pc-{}-{tag}-{i}", sc.name))).collect();
        let parts = (0..n).map(|i| Some(open_participant(&paths[i], i, sc.capacities[i], 0))).collect();
        let (coord, out) = Coordinator::open(Store::open_unsynced(&paths[n]).unwrap(), RETRY, 0).unwrap();
        assert!(out.is_empty());
        World {
            sc,
            paths,
            coord: Some(coord),
            parts,
            net: VecDeque::new(),
            now: 0,
            events: vec![0; n + 1],
            crash,
            crashed: false,
            down: None,
        }
    }

    fn slot(&self, node: Node) -> usize {
        match node {
            Node::P(i) => i,
            Node::C => self.parts.len(),
        }
    }

    fn cut(&self, i: usize) -> bool {
        matches!(self.sc.cut, Some((p, until)) if p == i && self.now < until)
    }

    /// Runs one event at `node`, with the crash plan applied.
    fn event(&mut self, node: Node, run: impl FnOnce(&mut World) -> Vec<Msg>) {
        if matches!(self.down, Some((n, _)) if n == node) {
            return;
        }
        let slot = self.slot(node);
        let k = self.events[slot];
        self.events[slot] += 1;
        let crash_here = match self.crash {
            Some(c) if !self.crashed && c.node == node && c.event == k => Some(c),
            _ => None,
        };
        if let Some(c) = crash_here.filter(|c| c.when == When::Before) {
            return self.kill(node, c.down_ns);
        }
        let out = run(self);
        if let Some(c) = crash_here {
            return self.kill(node, c.down_ns);
        }
        self.net.extend(out);
    }

    fn kill(&mut self, node: Node, down_ns: u64) {
        self.crashed = true;
        self.down = Some((node, self.now + down_ns));
        match node {
            Node::C => self.coord = None,
            Node::P(i) => self.parts[i] = None,
        }
    }

    fn restart_if_due(&mut self) {
        let Some((node, at)) = self.down else { return };
        if self.now < at {
            return;
        }
        self.down = None;
        match node {
            Node::C => {
                let store = Store::open_unsynced(self.paths.last().unwrap()).unwrap();
                let (c, out) = Coordinator::open(store, RETRY, self.now).unwrap();
                self.coord = Some(c);
                self.net.extend(out.into_iter().map(|e| Msg::ToP(e.to.0 as usize - 1, e.msg)));
            }
            Node::P(i) => self.parts[i] = Some(open_participant(&self.paths[i], i, self.sc.capacities[i], self.now)),
        }
    }

    fn begin(&mut self, t: usize) {
        let (flow, bps, ref ps) = self.sc.txs[t];
        let ids: Vec<NodeId> = ps.iter().map(|&i| node_id(i)).collect();
        self.event(Node::C, |w| {
            let (_, out) = w.coord.as_mut().unwrap().begin(flow, res(bps), &ids, TIMEOUT, w.now).unwrap();
            out.into_iter().map(|e| Msg::ToP(e.to.0 as usize - 1, e.msg)).collect()
        });
    }

    fn deliver(&mut self, m: Msg) {
        match m {
            Msg::ToP(i, msg) if !self.cut(i) => self.event(Node::P(i), |w| {
                let now = w.now;
                vec![Msg::ToC(w.parts[i].as_mut().unwrap().handle(&msg, now).unwrap())]
            }),
            Msg::ToC(msg) if !self.cut(from(&msg)) => self.event(Node::C, |w| {
                let now = w.now;
                let out = w.coord.as_mut().unwrap().handle(&msg, now).unwrap();
                out.into_iter().map(|e| Msg::ToP(e.to.0 as usize - 1, e.msg)).collect()
            }),
            _ => {} // lost on the cut link
        }
    }

    fn tick_all(&mut self) {
        for i in 0..self.parts.len() {
            self.event(Node::P(i), |w| {
                let now = w.now;
                w.parts[i].as_mut().unwrap().tick(now).unwrap();
                Vec::new()
            });
        }
        self.event(Node::C, |w| {
            let now = w.now;
            let out = w.coord.as_mut().unwrap().tick(now).unwrap();
            out.into_iter().map(|e| Msg::ToP(e.to.0 as usize - 1, e.msg)).collect()
        });
    }

    fn quiescent(&self) -> bool {
        self.net.is_empty()
            && self.down.is_none()
            && self.coord.as_ref().unwrap().open_count() == 0
            && self.parts.iter().flatten().all(|p| p.leases().iter().all(|l| l.standing == Standing::Active))
    }

    /// Begins every transaction at time 0, then runs until nothing is left to do.
    fn run(&mut self) {
        for t in 0..self.sc.txs.len() {
            self.begin(t);
        }
        self.run_rest();
    }

    /// The invariant: no transaction open, each one's reservation in force
    /// on all its participants or none, nothing tentative left, nothing
    /// double-booked, and memory equal to what each store restores.
    fn check(&self) -> Vec<Option<Decision>> {
        let coord = self.coord.as_ref().unwrap();
        assert!(coord.store().open_transactions().unwrap().is_empty());
        let mut outcomes = Vec::new();
        for (t, (flow, _, ps)) in self.sc.txs.iter().enumerate() {
            // Transactions are logged in order, from 1; one whose begin
            // died with the coordinator is not in the log.
            let logged =
                (1..=self.sc.txs.len() as u64).filter_map(|n| coord.store().transaction(TxId(n)).unwrap()).find(|l| l.flow == *flow);
            let decision = logged.as_ref().map(|l| l.decision.expect("decided"));
            for (i, p) in self.parts.iter().enumerate() {
                let p = p.as_ref().unwrap();
                let lease = p.leases().get(*flow);
                match (decision, ps.contains(&i)) {
                    (Some(Decision::Commit), true) => {
                        let l = lease.unwrap_or_else(|| panic!("tx {t} committed but not at {i}: {:?}", self.crash));
                        assert_eq!(l.standing, Standing::Active);
                        assert_eq!(p.tx_of(*flow), logged.as_ref().map(|l| l.tx));
                    }
                    _ => assert_eq!(lease, None, "tx {t} ({decision:?}) holds at {i}: {:?}", self.crash),
                }
            }
            outcomes.push(decision);
        }
        for (i, p) in self.parts.iter().enumerate() {
            let p = p.as_ref().unwrap();
            p.leases().audit();
            let again = open_participant(&self.paths[i], i, self.sc.capacities[i], self.now);
            let mine: Vec<_> = p.leases().iter().map(|l| (l, p.tx_of(l.flow))).collect();
            let stored: Vec<_> = again.leases().iter().map(|l| (l, again.tx_of(l.flow))).collect();
            assert_eq!(mine, stored, "participant {i}'s memory and store differ: {:?}", self.crash);
        }
        outcomes
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_dir_all(p.parent().unwrap());
        }
    }
}

fn from(m: &ToCoordinator) -> usize {
    match *m {
        ToCoordinator::Vote { from, .. } | ToCoordinator::Ack { from, .. } => from.0 as usize - 1,
    }
}

fn open_participant(path: &std::path::Path, i: usize, bps: u64, now: u64) -> Participant {
    let store = Store::open_unsynced(path).unwrap();
    Participant::open(node_id(i), store, LeaseConfig::new(REFRESH).unwrap(), pconfig(bps), now).unwrap()
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario { name: "commit", capacities: vec![1_000; 3], txs: vec![(FlowId(10), 600, vec![0, 1, 2])], cut: None },
        Scenario { name: "refused", capacities: vec![1_000, 500, 1_000], txs: vec![(FlowId(10), 600, vec![0, 1, 2])], cut: None },
        Scenario {
            name: "competing",
            capacities: vec![1_000; 3],
            txs: vec![(FlowId(10), 600, vec![0, 1]), (FlowId(11), 600, vec![1, 2])],
            cut: None,
        },
        Scenario {
            name: "unreachable",
            capacities: vec![1_000; 3],
            txs: vec![(FlowId(10), 600, vec![0, 1, 2])],
            cut: Some((2, 1_000 * MS)),
        },
    ]
}

#[test]
fn without_crashes_each_scenario_has_its_outcome() {
    let expected = [
        vec![Some(Decision::Commit)],
        vec![Some(Decision::Abort)],
        vec![Some(Decision::Commit), Some(Decision::Abort)],
        vec![Some(Decision::Abort)],
    ];
    for (sc, want) in scenarios().into_iter().zip(expected) {
        let mut w = World::new(sc, "plain", None);
        w.run();
        assert_eq!(w.check(), want, "{}", w.sc.name);
    }
}

/// Every node, every event it handles, before and after: the invariant
/// holds after recovery, for a short and for a long outage.
#[test]
fn every_crash_point_recovers() {
    let mut runs = 0;
    for sc in scenarios() {
        let nodes: Vec<Node> = std::iter::once(Node::C).chain((0..sc.capacities.len()).map(Node::P)).collect();
        for node in nodes {
            for when in [When::Before, When::After] {
                for down_ns in [50 * MS, 2_000 * MS] {
                    for event in 0.. {
                        let crash = Crash { node, event, when, down_ns };
                        let mut w = World::new(sc.clone(), "crash", Some(crash));
                        w.run();
                        if !w.crashed {
                            break; // past this node's last event
                        }
                        let outcomes = w.check();
                        if sc.name == "competing" {
                            assert!(!outcomes.iter().all(|d| *d == Some(Decision::Commit)), "both committed: {crash:?}");
                        }
                        runs += 1;
                    }
                }
            }
        }
    }
    assert!(runs > 200, "{runs} crash runs");
}

/// A commit that reaches a participant after its prepared entry lapsed is
/// revoked everywhere.
#[test]
fn a_late_commit_is_revoked() {
    let dir: Vec<PathBuf> = (0..3).map(|i| scratch(&format!("2pc-late-{i}"))).collect();
    let mut ps: Vec<Participant> = (0..2).map(|i| open_participant(&dir[i], i, 1_000, 0)).collect();
    let (mut c, _) = Coordinator::open(Store::open_unsynced(&dir[2]).unwrap(), RETRY, 0).unwrap();
    let (tx, prepares) = c.begin(FlowId(5), res(100), &[node_id(0), node_id(1)], TIMEOUT, 0).unwrap();
    let mut commits = Vec::new();
    for e in &prepares {
        let vote = ps[e.to.0 as usize - 1].handle(&e.msg, MS).unwrap();
        commits.extend(c.handle(&vote, 2 * MS).unwrap());
    }
    assert_eq!(c.status(tx).unwrap().unwrap().decision, Some(Decision::Commit));
    assert_eq!(commits.len(), 2);
    // P0 gets its commit in time; P1 only after its entry lapsed.
    let ack0 = ps[0].handle(&commits[0].msg, 3 * MS).unwrap();
    assert_eq!(ack0, ToCoordinator::Ack { tx, from: node_id(0), held: true });
    assert!(c.handle(&ack0, 3 * MS).unwrap().is_empty());
    let ack1 = ps[1].handle(&commits[1].msg, MS + TIMEOUT).unwrap();
    assert_eq!(ack1, ToCoordinator::Ack { tx, from: node_id(1), held: false });
    let aborts = c.handle(&ack1, MS + TIMEOUT).unwrap();
    assert_eq!(c.status(tx).unwrap().unwrap().decision, Some(Decision::Abort));
    for e in &aborts {
        let p = &mut ps[e.to.0 as usize - 1];
        let ack = p.handle(&e.msg, 2 * TIMEOUT).unwrap();
        c.handle(&ack, 2 * TIMEOUT).unwrap();
    }
    assert!(ps.iter().all(|p| p.leases().partition().is_empty()));
    assert_eq!(c.status(tx).unwrap().unwrap(), TxStatus { decision: Some(Decision::Abort), done: true });
    assert_eq!(c.open_count(), 0);
    for d in dir {
        let _ = std::fs::remove_dir_all(d.parent().unwrap());
    }
}

/// A release: a finished commit revoked, through a restart of the
/// coordinator between the revocation and its acknowledgement.
#[test]
fn a_finished_commit_is_revoked_on_release() {
    let dir: Vec<PathBuf> = (0..2).map(|i| scratch(&format!("2pc-revoke-{i}"))).collect();
    let mut p = open_participant(&dir[0], 0, 1_000, 0);
    let (mut c, _) = Coordinator::open(Store::open_unsynced(&dir[1]).unwrap(), RETRY, 0).unwrap();
    assert!(matches!(c.revoke(TxId(42), 0), Err(TwoPcError::Store(StoreError::UnknownTx(TxId(42))))));
    let (tx, prep) = c.begin(FlowId(3), res(300), &[node_id(0)], TIMEOUT, 0).unwrap();
    let commit = c.handle(&p.handle(&prep[0].msg, 0).unwrap(), 0).unwrap();
    c.handle(&p.handle(&commit[0].msg, 0).unwrap(), 0).unwrap();
    assert_eq!(c.open_count(), 0);
    assert_eq!(c.store().transactions_of_flow(FlowId(3)).unwrap().len(), 1);
    let aborts = c.revoke(tx, MS).unwrap();
    assert_eq!(aborts, vec![Envelope { to: node_id(0), msg: ToParticipant::Abort { tx } }]);
    assert_eq!(c.status(tx).unwrap().unwrap(), TxStatus { decision: Some(Decision::Abort), done: false });
    // The coordinator restarts before the abort arrives: it announces it again.
    drop(c);
    let (mut c, again) = Coordinator::open(Store::open_unsynced(&dir[1]).unwrap(), RETRY, 2 * MS).unwrap();
    assert_eq!(again, aborts);
    let ack = p.handle(&again[0].msg, 2 * MS).unwrap();
    assert_eq!(ack, ToCoordinator::Ack { tx, from: node_id(0), held: false });
    c.handle(&ack, 2 * MS).unwrap();
    assert!(p.leases().partition().is_empty());
    assert_eq!(c.status(tx).unwrap().unwrap(), TxStatus { decision: Some(Decision::Abort), done: true });
    assert_eq!(c.open_count(), 0);
    assert!(c.store().transactions_of_flow(FlowId(4)).unwrap().is_empty());
    for d in dir {
        let _ = std::fs::remove_dir_all(d.parent().unwrap());
    }
}

#[test]
fn repeated_and_stray_messages_are_harmless() {
    let dir: Vec<PathBuf> = (0..2).map(|i| scratch(&format!("2pc-dup-{i}"))).collect();
    let mut p = open_participant(&dir[0], 0, 1_000, 0);
    let (mut c, _) = Coordinator::open(Store::open_unsynced(&dir[1]).unwrap(), RETRY, 0).unwrap();
    assert!(matches!(c.begin(FlowId(1), res(1), &[], TIMEOUT, 0), Err(TwoPcError::Participants)));
    assert!(matches!(c.begin(FlowId(1), res(1), &[node_id(0), node_id(0)], TIMEOUT, 0), Err(TwoPcError::Participants)));
    let (tx, prep) = c.begin(FlowId(1), res(400), &[node_id(0)], TIMEOUT, 0).unwrap();
    let v1 = p.handle(&prep[0].msg, 0).unwrap();
    let v2 = p.handle(&prep[0].msg, 0).unwrap();
    assert_eq!(v1, v2);
    assert_eq!(p.leases().partition().reserved().bps, 400, "a repeated prepare books once");
    let commit = c.handle(&v1, 0).unwrap();
    // A repeated vote after the decision gets the decision again.
    assert_eq!(c.handle(&v2, 0).unwrap(), commit);
    let a1 = p.handle(&commit[0].msg, 0).unwrap();
    assert_eq!(p.handle(&commit[0].msg, 0).unwrap(), a1);
    // A delayed duplicate prepare after the commit changes nothing.
    assert_eq!(p.handle(&prep[0].msg, 0).unwrap(), v1);
    assert_eq!(p.leases().partition().reserved().bps, 400);
    c.handle(&a1, 0).unwrap();
    assert_eq!(c.open_count(), 0);
    // A vote for a finished transaction is told its decision from the log;
    // one for a transaction never logged is told to abort.
    assert_eq!(c.handle(&v1, 0).unwrap(), commit);
    let stray = ToCoordinator::Vote { tx: TxId(99), from: node_id(0), yes: true };
    assert_eq!(c.handle(&stray, 0).unwrap(), vec![Envelope { to: node_id(0), msg: ToParticipant::Abort { tx: TxId(99) } }]);
    // Abort and commit of an unknown transaction hold nothing.
    assert_eq!(
        p.handle(&ToParticipant::Abort { tx: TxId(98) }, 0).unwrap(),
        ToCoordinator::Ack { tx: TxId(98), from: node_id(0), held: false }
    );
    assert_eq!(
        p.handle(&ToParticipant::Commit { tx: TxId(98) }, 0).unwrap(),
        ToCoordinator::Ack { tx: TxId(98), from: node_id(0), held: false }
    );
    // The same flow cannot be prepared by a second transaction.
    let (tx2, prep2) = c.begin(FlowId(1), res(1), &[node_id(0)], TIMEOUT, 0).unwrap();
    assert_eq!(p.handle(&prep2[0].msg, 0).unwrap(), ToCoordinator::Vote { tx: tx2, from: node_id(0), yes: false });
    assert_eq!(p.tx_of(FlowId(1)), Some(tx));
    // Refreshes persist; an unrefreshed lease lapses and leaves the store.
    let life = LeaseConfig::new(REFRESH).unwrap().lifetime_ns();
    assert_eq!(p.refresh(FlowId(1), 10).unwrap(), 10 + life);
    assert!(matches!(p.refresh(FlowId(2), 10), Err(TwoPcError::Lease(LeaseError::Unknown(_)))));
    drop(p);
    let mut p = open_participant(&dir[0], 0, 1_000, 20);
    assert_eq!(p.leases().get(FlowId(1)).unwrap().expires_ns, 10 + life);
    assert_eq!(p.tick(10 + life).unwrap().len(), 1);
    assert!(open_participant(&dir[0], 0, 1_000, 20).leases().partition().is_empty());
    for d in dir {
        let _ = std::fs::remove_dir_all(d.parent().unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A hostile network: messages delivered in any order, repeated or lost,
    /// plus one crash anywhere; the invariant holds once it settles.
    #[test]
    fn any_schedule_settles_consistently(
        sc in 0usize..4,
        picks in proptest::collection::vec((any::<u16>(), 0u8..10), 0..80),
        crash_node in 0usize..4, crash_event in 0usize..12, after: bool,
    ) {
        let sc = scenarios().swap_remove(sc);
        let node = if crash_node == 0 { Node::C } else { Node::P(crash_node - 1) };
        let crash = Crash { node, event: crash_event, when: if after { When::After } else { When::Before }, down_ns: 300 * MS };
        let mut w = World::new(sc, &format!("prop-{crash_node}-{crash_event}-{after}-{}", picks.len()), Some(crash));
        for t in 0..w.sc.txs.len() {
            w.begin(t);
        }
        // The hostile phase: pick any message; sometimes repeat it or lose it.
        for (pick, fate) in picks {
            w.restart_if_due();
            if w.net.is_empty() {
                w.now += STEP;
                w.tick_all();
                continue;
            }
            let m = w.net.remove(usize::from(pick) % w.net.len()).unwrap();
            match fate {
                0 => {}                                   // lost
                1 => { w.net.push_back(m.clone()); w.deliver(m); } // repeated
                _ => w.deliver(m),
            }
        }
        // Then the network behaves, and the run settles.
        w.run_rest();
        w.check();
    }
}

impl World {
    /// [`World::run`] without the begins.
    fn run_rest(&mut self) {
        for _ in 0..100_000 {
            self.restart_if_due();
            if let Some(m) = self.net.pop_front() {
                self.deliver(m);
            } else if self.quiescent() {
                return;
            } else {
                self.now += STEP;
                self.tick_all();
            }
        }
        panic!("no quiescence: {:?}", self.crash);
    }
}
