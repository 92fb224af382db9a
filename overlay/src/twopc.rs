//! Two-phase commit of an ON's reservations on every router of its paths.
//!
//! Birman's ON manager "first check\[s\] the request against an approximation
//! of the network state, then ... perform\[s\] a 2-phase commit to actually
//! allocate the desired router resources". Here are both ends of that
//! commit, as deterministic state machines: they are driven by messages and
//! a clock (`now_ns` arguments) and answer with messages; no sockets, no
//! threads, no sleeping. Whoever carries the messages may lose, repeat or
//! reorder them: every handler is idempotent.
//!
//! **Participant** (a router, [`Participant`]). `Prepare` sets the
//! reservation aside as a *tentative* lease ([`crate::lease`]) that lapses
//! at the prepare's timeout, and votes yes; or refuses (admission, or the
//! flow already reserved) and votes no. `Commit` puts the tentative lease in
//! force with a full lease lifetime; `Abort` releases whatever the
//! transaction holds. A participant writes its store before it answers.
//!
//! **Coordinator** (the manager, [`Coordinator`]). It logs a transaction
//! and its participants before it sends a prepare, and **logs the decision
//! before it announces it**. It decides commit when every participant has
//! voted yes before the deadline (begin + timeout), abort on any no or when
//! the deadline passes; it resends prepares and decisions every retry
//! period until answered. On restart it resolves from its log: decided
//! transactions are announced again; undecided ones are aborted (presumed
//! abort: nobody can have been told to commit). Its log is a
//! [`DecisionLog`]: the SQLite [`Store`] here, or one shared by several
//! managers (vinet-onmgr keeps one in etcd).
//!
//! **Timeouts and revocation.** A participant's prepared entry lapses at
//! its own receipt time plus the timeout, never before the coordinator's
//! deadline, so a commit decided in time finds every entry in place when it
//! is decided. It may still *arrive* late: a participant whose entry has
//! lapsed answers `held: false`, and the coordinator then revokes the
//! commit (logs an abort, announces it) so that the reservation ends up in
//! force nowhere rather than somewhere. Classic 2PC forbids a prepared
//! participant to give up; leases make giving up safe, because a committed
//! reservation is itself only a lease that the manager must keep refreshing.
//!
//! **Architecture Invariant:** every handler does at most one store
//! transaction, and does it before it returns messages; so the crash points
//! are exactly "before a handler" and "after its write, before its
//! messages", and the tests enumerate both for every handler of every node.
//! After recovery, and once messages flow and timeouts pass: no resources
//! leaked or double-booked, and every transaction's reservation is in force
//! on all its routers or on none.

use crate::lease::{Lease, LeaseConfig, LeaseError, LeaseTable};
use crate::partition::{AdmissionError, PartitionConfig, Reservation, Standing, Verdict};
use crate::store::{LoggedTx, Store, StoreError, StoredLease};
use crate::FlowId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use thiserror::Error;

/// A transaction's id, unique in its coordinator's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxId(pub u64);

/// A router, as the manager names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u32);

/// A coordinator's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Put the reservation in force everywhere.
    Commit,
    /// Release it everywhere.
    Abort,
}

/// A message from the coordinator to a participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToParticipant {
    /// Set `reservation` aside for `flow` for `timeout_ns`, and vote.
    Prepare {
        /// The transaction.
        tx: TxId,
        /// The ON.
        flow: FlowId,
        /// What to set aside.
        reservation: Reservation,
        /// How long to hold it undecided.
        timeout_ns: u64,
    },
    /// Put the transaction's reservation in force.
    Commit {
        /// The transaction.
        tx: TxId,
    },
    /// Release whatever the transaction holds.
    Abort {
        /// The transaction.
        tx: TxId,
    },
}

/// A message from a participant to the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToCoordinator {
    /// The answer to a prepare.
    Vote {
        /// The transaction.
        tx: TxId,
        /// The participant.
        from: NodeId,
        /// Whether it has set the reservation aside.
        yes: bool,
    },
    /// The answer to a decision.
    Ack {
        /// The transaction.
        tx: TxId,
        /// The participant.
        from: NodeId,
        /// Whether it now holds the transaction's reservation in force.
        held: bool,
    },
}

/// A message for a participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The participant.
    pub to: NodeId,
    /// The message.
    pub msg: ToParticipant,
}

/// Why two-phase commit could not proceed.
#[derive(Debug, Error)]
pub enum TwoPcError {
    /// The store failed; the state machine's memory is unchanged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored lease no longer fits the router (its capacity was lowered).
    #[error("restoring a stored lease: {0}")]
    Restore(AdmissionError),
    /// A transaction needs at least one participant, each named once.
    #[error("participants must be non-empty and distinct")]
    Participants,
    /// A lease refresh was refused.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

type Result<T> = std::result::Result<T, TwoPcError>;

// ------------------------------------------------------------------------
// The participant
// ------------------------------------------------------------------------

/// A router's side: its leases, durable in its store.
pub struct Participant {
    node: NodeId,
    store: Store,
    leases: LeaseTable,
    /// The transaction of each lease made by two-phase commit, both ways.
    tx_of: HashMap<FlowId, TxId>,
    flow_of: HashMap<TxId, FlowId>,
}

impl Participant {
    /// Opens a router's state from its store: its leases, tentative and
    /// active, with their expiry times (the first handler sweeps the lapsed).
    pub fn open(node: NodeId, store: Store, lease: LeaseConfig, partition: PartitionConfig, now_ns: u64) -> Result<Participant> {
        let mut p =
            Participant { node, leases: LeaseTable::new(lease, partition, now_ns), store, tx_of: HashMap::new(), flow_of: HashMap::new() };
        for s in p.store.leases()? {
            p.leases.restore(s.lease, now_ns).map_err(TwoPcError::Restore)?;
            if let Some(tx) = s.tx {
                p.map(s.lease.flow, tx);
            }
        }
        Ok(p)
    }

    /// This router's name.
    pub fn node(&self) -> NodeId {
        self.node
    }

    fn map(&mut self, flow: FlowId, tx: TxId) {
        self.tx_of.insert(flow, tx);
        self.flow_of.insert(tx, flow);
    }

    fn unmap(&mut self, flow: FlowId) {
        if let Some(tx) = self.tx_of.remove(&flow) {
            self.flow_of.remove(&tx);
        }
    }

    /// Handles one message from the coordinator and returns the answer.
    pub fn handle(&mut self, msg: &ToParticipant, now_ns: u64) -> Result<ToCoordinator> {
        self.tick(now_ns)?;
        let from = self.node;
        match *msg {
            ToParticipant::Prepare { tx, flow, reservation, timeout_ns } => {
                if self.flow_of.contains_key(&tx) {
                    // A repeated prepare, or one whose commit came first.
                    return Ok(ToCoordinator::Vote { tx, from, yes: true });
                }
                if self.leases.check(flow, &reservation).is_err() {
                    return Ok(ToCoordinator::Vote { tx, from, yes: false });
                }
                let until = now_ns.saturating_add(timeout_ns);
                let lease = Lease { flow, reservation, standing: Standing::Tentative, expires_ns: until };
                self.store.put_lease(&StoredLease { lease, tx: Some(tx) })?;
                self.leases.hold(flow, reservation, until, now_ns).expect("checked just before");
                self.map(flow, tx);
                Ok(ToCoordinator::Vote { tx, from, yes: true })
            }
            ToParticipant::Commit { tx } => {
                let Some(&flow) = self.flow_of.get(&tx) else {
                    // Never prepared here, or lapsed: nothing is held.
                    return Ok(ToCoordinator::Ack { tx, from, held: false });
                };
                let lease = self.leases.get(flow).expect("mapped flows have leases");
                if lease.standing == Standing::Tentative {
                    let expires_ns = now_ns.saturating_add(self.leases.config().lifetime_ns());
                    let active = Lease { standing: Standing::Active, expires_ns, ..lease };
                    self.store.put_lease(&StoredLease { lease: active, tx: Some(tx) })?;
                    let confirmed = self.leases.confirm(flow, now_ns);
                    debug_assert_eq!(confirmed, Ok(expires_ns));
                }
                Ok(ToCoordinator::Ack { tx, from, held: true })
            }
            ToParticipant::Abort { tx } => {
                if let Some(&flow) = self.flow_of.get(&tx) {
                    self.store.delete_leases(&[flow])?;
                    self.leases.release(flow, now_ns);
                    self.unmap(flow);
                }
                Ok(ToCoordinator::Ack { tx, from, held: false })
            }
        }
    }

    /// Releases every lapsed lease, tentative or active, and returns them.
    /// (Memory first: if the store then fails, a restart finds them lapsed
    /// and releases them again.)
    pub fn tick(&mut self, now_ns: u64) -> Result<Vec<Lease>> {
        let gone = self.leases.sweep(now_ns);
        if !gone.is_empty() {
            let flows: Vec<FlowId> = gone.iter().map(|l| l.flow).collect();
            for f in &flows {
                self.unmap(*f);
            }
            self.store.delete_leases(&flows)?;
        }
        Ok(gone)
    }

    /// Refreshes an ON's active lease (the manager's periodic message).
    pub fn refresh(&mut self, flow: FlowId, now_ns: u64) -> Result<u64> {
        self.tick(now_ns)?;
        let expires_ns = self.leases.refresh(flow, now_ns)?;
        let lease = self.leases.get(flow).expect("just refreshed");
        self.store.put_lease(&StoredLease { lease, tx: self.tx_of.get(&flow).copied() })?;
        Ok(expires_ns)
    }

    /// Serves one packet ([`crate::partition::Partition::serve`]).
    pub fn serve(&mut self, flow: Option<FlowId>, bytes: u64, now_ns: u64) -> Verdict {
        self.leases.serve(flow, bytes, now_ns)
    }

    /// The leases, to read.
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// The transaction that made `flow`'s lease.
    pub fn tx_of(&self, flow: FlowId) -> Option<TxId> {
        self.tx_of.get(&flow).copied()
    }
}

// ------------------------------------------------------------------------
// The coordinator
// ------------------------------------------------------------------------

/// Where a [`Coordinator`] logs its transactions and decisions: the
/// manager's SQLite [`Store`], or a store shared by several managers (the
/// ON manager's etcd backend). Each method is one atomic, durable write or
/// one read; the coordinator's rule "log the decision before announcing it"
/// is only as good as the implementation's durability.
///
/// Transaction ids must be unique among every coordinator whose
/// participants overlap (a router maps a transaction to its flow), so a
/// shared implementation allocates them from one shared counter.
pub trait DecisionLog {
    /// Logs a new, undecided transaction and returns its id.
    fn begin_tx(
        &mut self, flow: FlowId, reservation: &Reservation, participants: &[NodeId], deadline_ns: u64,
    ) -> std::result::Result<TxId, StoreError>;
    /// Logs `tx`'s decision (a commit may later be revoked to an abort),
    /// and marks it not done; [`StoreError::UnknownTx`] if it is not in the log.
    fn decide(&mut self, tx: TxId, decision: Decision) -> std::result::Result<(), StoreError>;
    /// Marks a decided `tx` as acknowledged by every participant;
    /// [`StoreError::UnknownTx`] if it is not in the log or undecided.
    fn finish(&mut self, tx: TxId) -> std::result::Result<(), StoreError>;
    /// `tx` as logged.
    fn transaction(&self, tx: TxId) -> std::result::Result<Option<LoggedTx>, StoreError>;
    /// This coordinator's transactions not yet done, oldest first.
    fn open_transactions(&self) -> std::result::Result<Vec<LoggedTx>, StoreError>;
}

impl DecisionLog for Store {
    fn begin_tx(
        &mut self, flow: FlowId, reservation: &Reservation, participants: &[NodeId], deadline_ns: u64,
    ) -> std::result::Result<TxId, StoreError> {
        Store::begin_tx(self, flow, reservation, participants, deadline_ns)
    }
    fn decide(&mut self, tx: TxId, decision: Decision) -> std::result::Result<(), StoreError> {
        Store::decide(self, tx, decision)
    }
    fn finish(&mut self, tx: TxId) -> std::result::Result<(), StoreError> {
        Store::finish(self, tx)
    }
    fn transaction(&self, tx: TxId) -> std::result::Result<Option<LoggedTx>, StoreError> {
        Store::transaction(self, tx)
    }
    fn open_transactions(&self) -> std::result::Result<Vec<LoggedTx>, StoreError> {
        Store::open_transactions(self)
    }
}

/// A transaction the coordinator has not finished.
#[derive(Clone, Debug)]
struct Pending {
    flow: FlowId,
    reservation: Reservation,
    participants: Vec<NodeId>,
    /// Zero for transactions recovered from the log: they are decided and
    /// never prepared again.
    timeout_ns: u64,
    deadline_ns: u64,
    yes: BTreeSet<NodeId>,
    decision: Option<Decision>,
    acked: BTreeSet<NodeId>,
    next_send_ns: u64,
}

/// What the log says of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxStatus {
    /// The decision, once made.
    pub decision: Option<Decision>,
    /// Whether every participant has acknowledged it.
    pub done: bool,
}

/// The manager's side: its decision log (a [`Store`] unless said
/// otherwise) and the transactions under way.
pub struct Coordinator<L: DecisionLog = Store> {
    store: L,
    retry_ns: u64,
    open: BTreeMap<TxId, Pending>,
}

impl<L: DecisionLog> Coordinator<L> {
    /// Opens the coordinator from its log and resolves what it finds:
    /// returns the messages to send (each decision again; aborts for the
    /// undecided, whose abort it logs first).
    pub fn open(mut store: L, retry_ns: u64, now_ns: u64) -> Result<(Coordinator<L>, Vec<Envelope>)> {
        let mut open = BTreeMap::new();
        let mut out = Vec::new();
        for t in store.open_transactions()? {
            let decision = match t.decision {
                Some(d) => d,
                None => {
                    store.decide(t.tx, Decision::Abort)?;
                    Decision::Abort
                }
            };
            out.extend(t.participants.iter().map(|&to| Envelope { to, msg: announce(t.tx, decision) }));
            let p = Pending {
                flow: t.flow,
                reservation: t.reservation,
                participants: t.participants,
                timeout_ns: 0,
                deadline_ns: t.deadline_ns,
                yes: BTreeSet::new(),
                decision: Some(decision),
                acked: BTreeSet::new(),
                next_send_ns: now_ns.saturating_add(retry_ns),
            };
            open.insert(t.tx, p);
        }
        Ok((Coordinator { store, retry_ns, open }, out))
    }

    /// Begins a transaction: logs it, and returns the prepares to send.
    pub fn begin(
        &mut self, flow: FlowId, reservation: Reservation, participants: &[NodeId], timeout_ns: u64, now_ns: u64,
    ) -> Result<(TxId, Vec<Envelope>)> {
        let distinct: BTreeSet<_> = participants.iter().collect();
        if participants.is_empty() || distinct.len() != participants.len() {
            return Err(TwoPcError::Participants);
        }
        let deadline_ns = now_ns.saturating_add(timeout_ns);
        let tx = self.store.begin_tx(flow, &reservation, participants, deadline_ns)?;
        let p = Pending {
            flow,
            reservation,
            participants: participants.to_vec(),
            timeout_ns,
            deadline_ns,
            yes: BTreeSet::new(),
            decision: None,
            acked: BTreeSet::new(),
            next_send_ns: now_ns.saturating_add(self.retry_ns),
        };
        let out = prepares(tx, &p, |_| true);
        self.open.insert(tx, p);
        Ok((tx, out))
    }

    /// Handles one answer from a participant and returns what to send.
    pub fn handle(&mut self, msg: &ToCoordinator, now_ns: u64) -> Result<Vec<Envelope>> {
        match *msg {
            ToCoordinator::Vote { tx, from, yes } => self.on_vote(tx, from, yes, now_ns),
            ToCoordinator::Ack { tx, from, held } => self.on_ack(tx, from, held, now_ns),
        }
    }

    fn on_vote(&mut self, tx: TxId, from: NodeId, yes: bool, now_ns: u64) -> Result<Vec<Envelope>> {
        let Some(p) = self.open.get_mut(&tx) else {
            // A late vote for a finished (or never logged) transaction: tell
            // the voter the decision, abort if there is none.
            let decision = self.store.transaction(tx)?.and_then(|t| t.decision).unwrap_or(Decision::Abort);
            return Ok(vec![Envelope { to: from, msg: announce(tx, decision) }]);
        };
        if !p.participants.contains(&from) {
            return Ok(Vec::new());
        }
        if let Some(d) = p.decision {
            return Ok(vec![Envelope { to: from, msg: announce(tx, d) }]);
        }
        if yes {
            p.yes.insert(from);
        }
        let decision = if !yes || now_ns >= p.deadline_ns {
            Decision::Abort
        } else if p.yes.len() == p.participants.len() {
            Decision::Commit
        } else {
            return Ok(Vec::new());
        };
        self.decide(tx, decision, now_ns)
    }

    fn on_ack(&mut self, tx: TxId, from: NodeId, held: bool, now_ns: u64) -> Result<Vec<Envelope>> {
        let Some(p) = self.open.get_mut(&tx) else { return Ok(Vec::new()) };
        match (p.decision, held) {
            (Some(Decision::Commit), true) | (Some(Decision::Abort), false) => {
                if p.participants.contains(&from) {
                    p.acked.insert(from);
                }
            }
            (Some(Decision::Commit), false) => {
                // The participant's prepared entry lapsed before the commit
                // reached it: revoke, so that the reservation is nowhere.
                p.acked.clear();
                return self.decide(tx, Decision::Abort, now_ns);
            }
            // A stale ack of a commit since revoked (the abort on its way
            // will release it), or an ack before any decision.
            (Some(Decision::Abort), true) | (None, _) => {}
        }
        if p.acked.len() == p.participants.len() {
            self.store.finish(tx)?;
            self.open.remove(&tx);
        }
        Ok(Vec::new())
    }

    /// Logs `decision` for `tx`, then returns its announcement to every participant.
    fn decide(&mut self, tx: TxId, decision: Decision, now_ns: u64) -> Result<Vec<Envelope>> {
        self.store.decide(tx, decision)?;
        let retry = self.retry_ns;
        let p = self.open.get_mut(&tx).expect("decided transactions are open");
        p.decision = Some(decision);
        p.next_send_ns = now_ns.saturating_add(retry);
        Ok(p.participants.iter().map(|&to| Envelope { to, msg: announce(tx, decision) }).collect())
    }

    /// Revokes `tx`'s reservation (a release, or a lease that could not be
    /// refreshed): logs an abort, and returns it for every participant; it
    /// is resent like any decision until acknowledged. An undecided
    /// transaction is aborted; an aborted one is announced again. Returns
    /// [`StoreError::UnknownTx`] for a transaction not in the log.
    pub fn revoke(&mut self, tx: TxId, now_ns: u64) -> Result<Vec<Envelope>> {
        if !self.open.contains_key(&tx) {
            let t = self.store.transaction(tx)?.ok_or(StoreError::UnknownTx(tx))?;
            let p = Pending {
                flow: t.flow,
                reservation: t.reservation,
                participants: t.participants,
                timeout_ns: 0,
                deadline_ns: t.deadline_ns,
                yes: BTreeSet::new(),
                decision: t.decision,
                acked: BTreeSet::new(),
                next_send_ns: now_ns,
            };
            self.open.insert(tx, p);
        }
        if let Some(p) = self.open.get_mut(&tx) {
            p.acked.clear();
        }
        self.decide(tx, Decision::Abort, now_ns)
    }

    /// Aborts the transactions whose deadline has passed undecided, and
    /// resends what has not been answered within the retry period.
    pub fn tick(&mut self, now_ns: u64) -> Result<Vec<Envelope>> {
        let mut out = Vec::new();
        let late: Vec<TxId> = self.open.iter().filter(|(_, p)| p.decision.is_none() && now_ns >= p.deadline_ns).map(|(t, _)| *t).collect();
        for tx in late {
            out.extend(self.decide(tx, Decision::Abort, now_ns)?);
        }
        for (&tx, p) in self.open.iter_mut().filter(|(_, p)| now_ns >= p.next_send_ns) {
            p.next_send_ns = now_ns.saturating_add(self.retry_ns);
            match p.decision {
                None => out.extend(prepares(tx, p, |n| !p.yes.contains(&n))),
                Some(d) => {
                    out.extend(p.participants.iter().filter(|n| !p.acked.contains(n)).map(|&to| Envelope { to, msg: announce(tx, d) }))
                }
            }
        }
        Ok(out)
    }

    /// What the log says of `tx`.
    pub fn status(&self, tx: TxId) -> Result<Option<TxStatus>> {
        Ok(self.store.transaction(tx)?.map(|t| TxStatus { decision: t.decision, done: t.done }))
    }

    /// The number of transactions not yet finished.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The store, to read (the flow-id pool lives there too).
    pub fn store(&self) -> &L {
        &self.store
    }

    /// The store, to allocate flow ids ([`Store::allocate_flow`]).
    pub fn store_mut(&mut self) -> &mut L {
        &mut self.store
    }
}

fn announce(tx: TxId, d: Decision) -> ToParticipant {
    match d {
        Decision::Commit => ToParticipant::Commit { tx },
        Decision::Abort => ToParticipant::Abort { tx },
    }
}

fn prepares(tx: TxId, p: &Pending, to: impl Fn(NodeId) -> bool) -> Vec<Envelope> {
    let msg = ToParticipant::Prepare { tx, flow: p.flow, reservation: p.reservation, timeout_ns: p.timeout_ns };
    p.participants.iter().filter(|n| to(**n)).map(|&n| Envelope { to: n, msg }).collect()
}

#[cfg(test)]
mod tests;
