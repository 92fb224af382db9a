//! Where a manager keeps its state: its own SQLite [`Store`], or etcd
//! shared with other managers ([`crate::etcd`]).
//!
//! Both give the coordinator its decision log ([`DecisionLog`]) and the
//! manager its flow-id pool and its picture of each router's room; they
//! differ in where the picture comes from. The SQLite store derives it from
//! the log (every ON whose latest transaction is not aborted), which only
//! this manager writes, under its lock. Shared, it is kept as sums in etcd
//! that admission updates by compare-and-swap with the allocation of the
//! flow id, because another manager may be admitting onto the same routers
//! at the same moment.

#[cfg(feature = "etcd")]
use crate::etcd::Etcd;
use std::collections::BTreeMap;
use vinet_overlay::partition::{Reservation, Resources};
use vinet_overlay::store::{LoggedTx, Store, StoreError};
use vinet_overlay::twopc::{Decision, DecisionLog, NodeId, TxId};
use vinet_overlay::FlowId;

/// Admission's choice, given each router's room taken: the routers of the
/// ON's paths and its label, or a one-line refusal.
pub type Choose<'a> = &'a mut dyn FnMut(&BTreeMap<NodeId, Resources>) -> Result<(Vec<NodeId>, String), String>;

/// An allocated flow id.
pub struct Row {
    /// The id.
    pub flow: FlowId,
    /// Whether this manager owns it (always, with SQLite); only the owner
    /// refreshes, releases and frees an ON, since only its log has it.
    pub mine: bool,
    /// The owning manager's id (empty with SQLite).
    pub owner: String,
    /// The label kept with it.
    pub label: String,
    /// Its latest transaction.
    pub latest: Option<LoggedTx>,
}

/// A manager's state.
pub enum State {
    /// Its own SQLite store.
    Local(Store),
    /// etcd, shared with other managers.
    #[cfg(feature = "etcd")]
    Etcd(Box<Etcd>),
}

fn err(e: StoreError) -> String {
    e.to_string()
}

impl State {
    /// Every allocated flow id (with etcd: every manager's).
    pub fn rows(&self) -> Result<Vec<Row>, String> {
        match self {
            State::Local(s) => {
                let mut out = Vec::new();
                for (flow, label) in s.flows().map_err(err)? {
                    let latest = s.transactions_of_flow(flow).map_err(err)?.pop();
                    out.push(Row { flow, mine: true, owner: String::new(), label, latest });
                }
                Ok(out)
            }
            #[cfg(feature = "etcd")]
            State::Etcd(e) => Ok(e
                .rows()
                .map_err(err)?
                .into_iter()
                .map(|r| Row { flow: r.flow, mine: r.owner == e.id(), owner: r.owner, label: r.label, latest: r.latest })
                .collect()),
        }
    }

    /// Each router's room taken.
    pub fn reserved(&self) -> Result<BTreeMap<NodeId, Resources>, String> {
        match self {
            State::Local(_) => {
                let mut sum: BTreeMap<NodeId, Resources> = BTreeMap::new();
                for r in self.rows()? {
                    let Some(t) = r.latest.filter(|t| t.decision != Some(Decision::Abort)) else { continue };
                    for n in &t.participants {
                        let e = sum.entry(*n).or_default();
                        let r = t.reservation.rates();
                        e.bps = e.bps.saturating_add(r.bps);
                        e.pps = e.pps.saturating_add(r.pps);
                        e.units = e.units.saturating_add(r.units);
                    }
                }
                Ok(sum)
            }
            #[cfg(feature = "etcd")]
            State::Etcd(e) => e.reserved().map_err(err),
        }
    }

    /// Admits an ON of `rates` on the routers `choose` picks from the
    /// room taken, and allocates its flow id; atomically with etcd.
    pub fn admit(&mut self, rates: Resources, choose: Choose<'_>) -> Result<FlowId, String> {
        #[cfg(not(feature = "etcd"))]
        let _ = rates; // the local store derives the room from its log
        match self {
            State::Local(_) => {
                let (_, label) = choose(&self.reserved()?)?;
                match self {
                    State::Local(s) => s.allocate_flow(&label).map_err(err),
                    #[cfg(feature = "etcd")]
                    State::Etcd(_) => unreachable!("matched just above"),
                }
            }
            #[cfg(feature = "etcd")]
            State::Etcd(e) => e.admit(rates, choose),
        }
    }

    /// Frees a flow id of this manager (and with etcd, its room).
    pub fn free(&mut self, flow: FlowId) -> Result<bool, String> {
        match self {
            State::Local(s) => s.free_flow(flow).map_err(err),
            #[cfg(feature = "etcd")]
            State::Etcd(e) => e.free(flow).map_err(err),
        }
    }
}

impl DecisionLog for State {
    fn begin_tx(&mut self, flow: FlowId, reservation: &Reservation, participants: &[NodeId], deadline_ns: u64) -> Result<TxId, StoreError> {
        match self {
            State::Local(s) => s.begin_tx(flow, reservation, participants, deadline_ns),
            #[cfg(feature = "etcd")]
            State::Etcd(e) => e.begin_tx(flow, reservation, participants, deadline_ns),
        }
    }
    fn decide(&mut self, tx: TxId, decision: Decision) -> Result<(), StoreError> {
        match self {
            State::Local(s) => s.decide(tx, decision),
            #[cfg(feature = "etcd")]
            State::Etcd(e) => e.decide(tx, decision),
        }
    }
    fn finish(&mut self, tx: TxId) -> Result<(), StoreError> {
        match self {
            State::Local(s) => s.finish(tx),
            #[cfg(feature = "etcd")]
            State::Etcd(e) => e.finish(tx),
        }
    }
    fn transaction(&self, tx: TxId) -> Result<Option<LoggedTx>, StoreError> {
        match self {
            State::Local(s) => s.transaction(tx),
            #[cfg(feature = "etcd")]
            State::Etcd(e) => e.transaction(tx),
        }
    }
    fn open_transactions(&self) -> Result<Vec<LoggedTx>, StoreError> {
        match self {
            State::Local(s) => s.open_transactions(),
            #[cfg(feature = "etcd")]
            State::Etcd(e) => e.open_transactions(),
        }
    }
}
