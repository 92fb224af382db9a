//! Durable state in SQLite: a router's leases, a manager's flow-id pool and
//! two-phase-commit decision log.
//!
//! One schema serves both sides (a router uses `leases`, a manager `flows`
//! and `transactions`), versioned with `PRAGMA user_version`
//! ([`SCHEMA_VERSION`]); a database of another version is refused, not
//! migrated by guess. The journal is in WAL mode with `synchronous = FULL`,
//! so a transaction that has returned is on disk: the coordinator's rule
//! "log the decision before announcing it" needs that. Every method that
//! writes does so in one transaction, so a crash leaves the state before or
//! after it, never between.
//!
//! Times are the callers' `u64` nanoseconds, kept as SQLite's 64-bit signed
//! integers: a value above `i64::MAX` (the year 2262 in Unix nanoseconds) is
//! refused on the way in ([`StoreError::OutOfRange`]), a negative one on the
//! way out ([`StoreError::Corrupt`]).
//!
//! **Flow ids** are allocated from a cursor that moves forward through
//! 1..=u32::MAX and wraps, skipping the ids in use: an id is never handed
//! out while allocated, and a freed one is handed out again only after the
//! cursor has gone round, long after its leases have lapsed on every router.
//! Id 0 is never allocated.

use crate::lease::Lease;
use crate::partition::{Reservation, Resources, Standing};
use crate::twopc::{Decision, NodeId, TxId};
use crate::FlowId;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::Path;
use thiserror::Error;

/// The schema version this code reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE leases (
    flow INTEGER PRIMARY KEY,
    bps INTEGER NOT NULL, pps INTEGER NOT NULL, units INTEGER NOT NULL,
    burst_bytes INTEGER NOT NULL, burst_packets INTEGER NOT NULL,
    standing INTEGER NOT NULL CHECK (standing IN (0, 1)),
    expires_ns INTEGER NOT NULL,
    tx INTEGER
);
CREATE TABLE flows (flow INTEGER PRIMARY KEY CHECK (flow BETWEEN 1 AND 4294967295), label TEXT NOT NULL);
CREATE TABLE transactions (
    tx INTEGER PRIMARY KEY,
    flow INTEGER NOT NULL,
    bps INTEGER NOT NULL, pps INTEGER NOT NULL, units INTEGER NOT NULL,
    burst_bytes INTEGER NOT NULL, burst_packets INTEGER NOT NULL,
    deadline_ns INTEGER NOT NULL,
    decision INTEGER CHECK (decision IN (0, 1)),
    done INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1))
);
CREATE TABLE tx_participants (
    tx INTEGER NOT NULL REFERENCES transactions (tx),
    node INTEGER NOT NULL,
    PRIMARY KEY (tx, node)
);
INSERT INTO meta (key, value) VALUES ('next_flow', 1), ('next_tx', 1);
";

/// Why the store failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database has another schema version.
    #[error("store schema version {found}, this code knows {SCHEMA_VERSION}")]
    Version {
        /// The version found.
        found: i64,
    },
    /// A value does not fit SQLite's signed 64-bit integers.
    #[error("{what} = {value} does not fit the store")]
    OutOfRange {
        /// Which value.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A stored row is not one this code writes.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// Every flow id is allocated.
    #[error("flow-id pool exhausted")]
    PoolExhausted,
    /// The transaction is not in the log.
    #[error("no transaction {0:?} in the log")]
    UnknownTx(TxId),
    /// Another implementation of [`crate::twopc::DecisionLog`] (a store
    /// shared by several managers) failed; one line.
    #[error("shared store: {0}")]
    Shared(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// A lease as the store keeps it: with the transaction that made it, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredLease {
    /// The lease.
    pub lease: Lease,
    /// The two-phase commit that prepared it.
    pub tx: Option<TxId>,
}

/// A transaction in the coordinator's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedTx {
    /// Its id.
    pub tx: TxId,
    /// The ON it reserves for.
    pub flow: FlowId,
    /// What it reserves on each router.
    pub reservation: Reservation,
    /// The routers, in order.
    pub participants: Vec<NodeId>,
    /// When the coordinator stops waiting for votes.
    pub deadline_ns: u64,
    /// The decision, once made.
    pub decision: Option<Decision>,
    /// Whether every participant has acknowledged the decision.
    pub done: bool,
}

/// The durable state of a router or a manager.
pub struct Store {
    conn: Connection,
}

fn i(what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

fn u(what: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} = {value}")))
}

fn reservation_at(row: &Row, at: usize) -> Result<Reservation> {
    let g = |k: usize, what: &str| -> Result<u64> { u(what, row.get(at + k)?) };
    let rates = Resources { bps: g(0, "bps")?, pps: g(1, "pps")?, units: g(2, "units")? };
    Reservation::new(rates, g(3, "burst_bytes")?, g(4, "burst_packets")?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn reservation_params(r: &Reservation) -> Result<[i64; 5]> {
    let rt = r.rates();
    Ok([
        i("bps", rt.bps)?,
        i("pps", rt.pps)?,
        i("units", rt.units)?,
        i("burst_bytes", r.burst_bytes())?,
        i("burst_packets", r.burst_packets())?,
    ])
}

fn flow_of(v: i64) -> Result<FlowId> {
    u32::try_from(v).map(FlowId).map_err(|_| StoreError::Corrupt(format!("flow = {v}")))
}

fn decision_of(v: Option<i64>) -> Result<Option<Decision>> {
    match v {
        None => Ok(None),
        Some(0) => Ok(Some(Decision::Abort)),
        Some(1) => Ok(Some(Decision::Commit)),
        Some(v) => Err(StoreError::Corrupt(format!("decision = {v}"))),
    }
}

impl Store {
    /// Opens (creating if need be) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, "FULL")
    }

    /// For tests that simulate crashes by dropping the store, not the
    /// machine: the OS keeps what SQLite wrote, fsync or not.
    #[cfg(test)]
    pub(crate) fn open_unsynced(path: &Path) -> Result<Store> {
        Store::open_with(path, "OFF")
    }

    fn open_with(path: &Path, synchronous: &str) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match found {
            0 => {
                tx.execute_batch(SCHEMA)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            SCHEMA_VERSION => {}
            found => return Err(StoreError::Version { found }),
        }
        tx.commit()?;
        Ok(Store { conn })
    }

    // ---- a router's leases ----

    /// Writes a lease (replacing the flow's previous one).
    pub fn put_lease(&mut self, l: &StoredLease) -> Result<()> {
        let [bps, pps, units, bb, bp] = reservation_params(&l.lease.reservation)?;
        let standing = match l.lease.standing {
            Standing::Tentative => 0,
            Standing::Active => 1,
        };
        let tx = l.tx.map(|t| i("tx", t.0)).transpose()?;
        self.conn.execute(
            "INSERT OR REPLACE INTO leases (flow, bps, pps, units, burst_bytes, burst_packets, standing, expires_ns, tx)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![l.lease.flow.0, bps, pps, units, bb, bp, standing, i("expires_ns", l.lease.expires_ns)?, tx],
        )?;
        Ok(())
    }

    /// Deletes the leases of `flows`, in one transaction.
    pub fn delete_leases(&mut self, flows: &[FlowId]) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for f in flows {
            tx.execute("DELETE FROM leases WHERE flow = ?1", [f.0])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every lease, by flow id.
    pub fn leases(&self) -> Result<Vec<StoredLease>> {
        let mut st = self
            .conn
            .prepare("SELECT flow, bps, pps, units, burst_bytes, burst_packets, standing, expires_ns, tx FROM leases ORDER BY flow")?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let standing = match row.get::<_, i64>(6)? {
                0 => Standing::Tentative,
                1 => Standing::Active,
                v => return Err(StoreError::Corrupt(format!("standing = {v}"))),
            };
            let lease = Lease {
                flow: flow_of(row.get(0)?)?,
                reservation: reservation_at(row, 1)?,
                standing,
                expires_ns: u("expires_ns", row.get(7)?)?,
            };
            let tx = row.get::<_, Option<i64>>(8)?.map(|t| u("tx", t).map(TxId)).transpose()?;
            out.push(StoredLease { lease, tx });
        }
        Ok(out)
    }

    // ---- a manager's flow-id pool ----

    /// Allocates a flow id that is not in use, labelled for the operator.
    pub fn allocate_flow(&mut self, label: &str) -> Result<FlowId> {
        self.allocate_flow_up_to(label, u32::MAX)
    }

    /// [`Store::allocate_flow`] over the ids 1..=`max` (tests use a small space).
    fn allocate_flow_up_to(&mut self, label: &str, max: u32) -> Result<FlowId> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let in_use: i64 = tx.query_row("SELECT count(*) FROM flows WHERE flow <= ?1", [max], |r| r.get(0))?;
        if in_use >= i64::from(max) {
            return Err(StoreError::PoolExhausted);
        }
        let cursor: i64 = tx.query_row("SELECT value FROM meta WHERE key = 'next_flow'", [], |r| r.get(0))?;
        let mut id = u32::try_from(cursor).ok().filter(|c| (1..=max).contains(c)).unwrap_or(1);
        // At least one id is free, so this ends within `max` steps.
        while tx.query_row("SELECT 1 FROM flows WHERE flow = ?1", [id], |_| Ok(())).optional()?.is_some() {
            id = if id >= max { 1 } else { id + 1 };
        }
        tx.execute("INSERT INTO flows (flow, label) VALUES (?1, ?2)", params![id, label])?;
        let next = if id >= max { 1 } else { i64::from(id) + 1 };
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'next_flow'", [next])?;
        tx.commit()?;
        Ok(FlowId(id))
    }

    /// Returns `flow` to the pool; false if it was not allocated.
    pub fn free_flow(&mut self, flow: FlowId) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM flows WHERE flow = ?1", [flow.0])? == 1)
    }

    /// The allocated flow ids and their labels.
    pub fn flows(&self) -> Result<Vec<(FlowId, String)>> {
        let mut st = self.conn.prepare("SELECT flow, label FROM flows ORDER BY flow")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (f, l) = r?;
            Ok((flow_of(f)?, l))
        })
        .collect()
    }

    // ---- a coordinator's decision log ----

    /// Logs a new, undecided transaction and returns its id.
    pub fn begin_tx(&mut self, flow: FlowId, reservation: &Reservation, participants: &[NodeId], deadline_ns: u64) -> Result<TxId> {
        let [bps, pps, units, bb, bp] = reservation_params(reservation)?;
        let deadline = i("deadline_ns", deadline_ns)?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: i64 = tx.query_row("SELECT value FROM meta WHERE key = 'next_tx'", [], |r| r.get(0))?;
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'next_tx'", [id + 1])?;
        tx.execute(
            "INSERT INTO transactions (tx, flow, bps, pps, units, burst_bytes, burst_packets, deadline_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![id, flow.0, bps, pps, units, bb, bp, deadline],
        )?;
        for p in participants {
            tx.execute("INSERT INTO tx_participants (tx, node) VALUES (?1, ?2)", params![id, p.0])?;
        }
        tx.commit()?;
        Ok(TxId(u("tx", id)?))
    }

    /// Logs `tx`'s decision (a commit may later be revoked to an abort).
    pub fn decide(&mut self, tx: TxId, decision: Decision) -> Result<()> {
        let d = match decision {
            Decision::Abort => 0,
            Decision::Commit => 1,
        };
        match self.conn.execute("UPDATE transactions SET decision = ?1, done = 0 WHERE tx = ?2", params![d, i("tx", tx.0)?])? {
            1 => Ok(()),
            _ => Err(StoreError::UnknownTx(tx)),
        }
    }

    /// Marks `tx` as acknowledged by every participant.
    pub fn finish(&mut self, tx: TxId) -> Result<()> {
        match self.conn.execute("UPDATE transactions SET done = 1 WHERE tx = ?1 AND decision IS NOT NULL", [i("tx", tx.0)?])? {
            1 => Ok(()),
            _ => Err(StoreError::UnknownTx(tx)),
        }
    }

    /// `tx` as logged.
    pub fn transaction(&self, tx: TxId) -> Result<Option<LoggedTx>> {
        Ok(self.transactions_where("tx = ?1", i("tx", tx.0)?)?.pop())
    }

    /// The transactions for `flow`, oldest first.
    pub fn transactions_of_flow(&self, flow: FlowId) -> Result<Vec<LoggedTx>> {
        self.transactions_where("flow = ?1", i64::from(flow.0))
    }

    /// The transactions not yet done (undecided, or decided and not acknowledged by all).
    pub fn open_transactions(&self) -> Result<Vec<LoggedTx>> {
        self.transactions_where("done = ?1", 0)
    }

    fn transactions_where(&self, cond: &str, arg: i64) -> Result<Vec<LoggedTx>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT tx, flow, bps, pps, units, burst_bytes, burst_packets, deadline_ns, decision, done FROM transactions WHERE {cond} ORDER BY tx"
        ))?;
        let mut parts = self.conn.prepare("SELECT node FROM tx_participants WHERE tx = ?1 ORDER BY rowid")?;
        let mut rows = st.query([arg])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let participants = parts
                .query_map([id], |r| r.get::<_, i64>(0))?
                .map(|n| u32::try_from(n?).map(NodeId).map_err(|_| StoreError::Corrupt("node".into())))
                .collect::<Result<Vec<_>>>()?;
            out.push(LoggedTx {
                tx: TxId(u("tx", id)?),
                flow: flow_of(row.get(1)?)?,
                reservation: reservation_at(row, 2)?,
                participants,
                deadline_ns: u("deadline_ns", row.get(7)?)?,
                decision: decision_of(row.get(8)?)?,
                done: row.get::<_, i64>(9)? == 1,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh path for a database: in memory-backed `/dev/shm` where the
    /// machine has it (the crash tests open hundreds of stores; on a disk
    /// they take ten times as long), else under the temporary directory.
    pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let d = base.join(format!("vinet-overlay-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("store.db")
    }

    fn res(bps: u64) -> Reservation {
        Reservation::new(Resources { bps, pps: 10, units: 2 }, 1_500, 4).unwrap()
    }

    #[test]
    fn leases_survive_reopening() {
        let p = scratch("leases");
        {
            let mut s = Store::open(&p).unwrap();
            let wal: String = s.conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
            assert_eq!(wal, "wal");
            for (f, standing, tx) in
                [(1, Standing::Active, None), (2, Standing::Tentative, Some(TxId(9))), (3, Standing::Active, Some(TxId(4)))]
            {
                let lease = Lease { flow: FlowId(f), reservation: res(f as u64 * 100), standing, expires_ns: 1_000 + f as u64 };
                s.put_lease(&StoredLease { lease, tx }).unwrap();
            }
            // Replacing a lease (a refresh) keeps one row.
            let lease = Lease { flow: FlowId(1), reservation: res(100), standing: Standing::Active, expires_ns: 5_000 };
            s.put_lease(&StoredLease { lease, tx: None }).unwrap();
            s.delete_leases(&[FlowId(3), FlowId(77)]).unwrap();
        }
        let s = Store::open(&p).unwrap();
        let l = s.leases().unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].lease.expires_ns, 5_000);
        assert_eq!((l[1].lease.standing, l[1].tx), (Standing::Tentative, Some(TxId(9))));
        assert_eq!(l[1].lease.reservation, res(200));
    }

    #[test]
    fn values_beyond_i64_are_refused() {
        let mut s = Store::open(&scratch("range")).unwrap();
        let lease = Lease { flow: FlowId(1), reservation: res(1), standing: Standing::Active, expires_ns: u64::MAX };
        assert!(matches!(s.put_lease(&StoredLease { lease, tx: None }), Err(StoreError::OutOfRange { what: "expires_ns", .. })));
        s.conn.execute("INSERT INTO leases VALUES (5, -1, 1, 1, 1, 1, 1, 1, NULL)", []).unwrap();
        assert!(matches!(s.leases(), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn another_schema_version_is_refused() {
        let p = scratch("version");
        drop(Store::open(&p).unwrap());
        Connection::open(&p).unwrap().pragma_update(None, "user_version", 7).unwrap();
        assert!(matches!(Store::open(&p), Err(StoreError::Version { found: 7 })));
    }

    #[test]
    fn flow_ids_are_unique_while_allocated_and_reused_only_after_wrapping() {
        let p = scratch("pool");
        let mut s = Store::open(&p).unwrap();
        let a: Vec<_> = (0..4).map(|k| s.allocate_flow_up_to(&format!("on{k}"), 5).unwrap()).collect();
        assert_eq!(a, vec![FlowId(1), FlowId(2), FlowId(3), FlowId(4)]);
        assert!(s.free_flow(FlowId(2)).unwrap());
        assert!(!s.free_flow(FlowId(2)).unwrap());
        // The cursor goes on to 5 before it comes back to the freed 2.
        assert_eq!(s.allocate_flow_up_to("e", 5).unwrap(), FlowId(5));
        drop(s);
        let mut s = Store::open(&p).unwrap();
        assert_eq!(s.allocate_flow_up_to("f", 5).unwrap(), FlowId(2));
        assert!(matches!(s.allocate_flow_up_to("g", 5), Err(StoreError::PoolExhausted)));
        let flows = s.flows().unwrap();
        assert_eq!(flows.len(), 5);
        assert_eq!(flows[1], (FlowId(2), "f".to_string()));
        assert_eq!(s.allocate_flow("big").unwrap(), FlowId(6));
    }

    #[test]
    fn the_decision_log() {
        let p = scratch("log");
        let (t1, t2) = {
            let mut s = Store::open(&p).unwrap();
            let t1 = s.begin_tx(FlowId(7), &res(10), &[NodeId(3), NodeId(1)], 100).unwrap();
            let t2 = s.begin_tx(FlowId(8), &res(20), &[NodeId(2)], 200).unwrap();
            s.decide(t1, Decision::Commit).unwrap();
            assert!(matches!(s.decide(TxId(99), Decision::Abort), Err(StoreError::UnknownTx(TxId(99)))));
            assert!(matches!(s.finish(t2), Err(StoreError::UnknownTx(_))), "an undecided transaction cannot be done");
            (t1, t2)
        };
        let mut s = Store::open(&p).unwrap();
        let open = s.open_transactions().unwrap();
        assert_eq!(open.len(), 2);
        assert_eq!(open[0].participants, vec![NodeId(3), NodeId(1)]);
        assert_eq!(open[0].decision, Some(Decision::Commit));
        assert_eq!(open[1].decision, None);
        assert_eq!(open[1].reservation, res(20));
        s.finish(t1).unwrap();
        assert_eq!(s.open_transactions().unwrap().len(), 1);
        assert!(s.transaction(t1).unwrap().unwrap().done);
        // A revoked commit is open again until acknowledged.
        s.decide(t1, Decision::Abort).unwrap();
        assert_eq!(s.open_transactions().unwrap().len(), 2);
        assert_eq!(s.transaction(TxId(50)).unwrap(), None);
        assert_eq!(s.begin_tx(FlowId(9), &res(1), &[], 0).unwrap(), TxId(t2.0 + 1));
    }
}
