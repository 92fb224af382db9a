//! The router's persistent state, in SQLite (rusqlite, bundled): clients with
//! their last sequence number and balance, the ledger, the bundles and leases
//! of installed programs, and the verified lemmas.
//!
//! **Durability invariant:** every change the router answers for is one
//! transaction committed (WAL, `synchronous = FULL`) before the reply is
//! sent. An admission is one transaction (bundle, lease, debit and its
//! ledger entry together), so a `kill -9` at any moment leaves either all of
//! it or none of it, and an admitted program (one whose client heard
//! "admitted") is never lost.
//!
//! **Not trusted on reload:** the store keeps bytes, not verdicts. The daemon
//! re-admits each lemma through the kernel and re-checks each bundle with the
//! checker when it starts ([`crate::admission`]).
//!
//! **Requests are idempotent.** Every signed request the router acts on is
//! recorded by (client, sequence number) with the hash of its bytes, and its
//! reply is stored in the same transaction as its effects (an admission's
//! lease and debit, a renewal's). A retried request gets the stored reply and
//! is never acted on, or charged, twice; a request a stop interrupted was
//! never answered and committed nothing, so its row is dropped on open and a
//! retry is served afresh.
//!
//! **Replay window.** A sequence number is taken once, in any order, if it is
//! above the client's floor and within [`SEQ_WINDOW`] of the highest taken
//! (the client numbers requests in microseconds); the newest
//! [`KEPT_REQUESTS`] requests of a client are kept, and the floor rises past
//! the ones dropped.
//!
//! Schema (`PRAGMA user_version = 2`):
//! - `clients(key PK, last_seq, balance, floor)`: the highest sequence number
//!   taken, the balance, and the number at or below which none is taken
//! - `marks(kind, subject, at_ms, note)`: the operator's decisions: `ban` (a
//!   client key, revoked until unbanned) and `lift` (a source the operator
//!   lifted the drop-for-everyone block of)
//! - `requests(client, seq, request, reply)`: blake3 of each taken request,
//!   and its reply once answered
//! - `ledger(id PK, client, at_ms, delta, balance, what, lease)`: every credit
//!   and debit, with the balance after it
//! - `bundles(hash PK, bytes)`: blake3 of the bundle file, its bytes
//! - `leases(id PK, client, identity, bundle, params, start_ms, end_ms, paid, ended_ms, end_reason)`
//! - `lemmas(n PK, hash UNIQUE, bytes)`: postcard lemmas in admission order

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError(e.to_string())
    }
}

/// A lease as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    /// Its id.
    pub id: u64,
    /// The client's key.
    pub client: [u8; 32],
    /// The client's identity file bytes (re-verified on reload).
    pub identity: Vec<u8>,
    /// blake3 of the bundle.
    pub bundle: [u8; 32],
    /// postcard(Vec<Const>): the bound parameter values.
    pub params: Vec<u8>,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// End, ms since the epoch.
    pub end_ms: u64,
    /// Credits paid.
    pub paid: u64,
}

/// A ledger entry: the change (credits), the balance after it, what it was
/// for ("grant", "upload", "renew") and the lease it paid for.
pub type LedgerEntry = (i64, u64, String, Option<u64>);

/// What a new lease records.
#[derive(Clone, Debug)]
pub struct NewLease<'a> {
    /// The lease id (chosen by the caller: ids are never reused).
    pub id: u64,
    /// The client's key.
    pub client: [u8; 32],
    /// The identity file's bytes.
    pub identity: &'a [u8],
    /// The bundle's bytes.
    pub bundle: &'a [u8],
    /// postcard of the parameter values.
    pub params: &'a [u8],
    /// Start.
    pub start_ms: u64,
    /// End.
    pub end_ms: u64,
    /// Credits to debit.
    pub paid: u64,
}

/// The database.
pub struct Store {
    db: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn key32(v: Vec<u8>) -> Result<[u8; 32], rusqlite::Error> {
    v.try_into().map_err(|_| rusqlite::Error::InvalidColumnType(0, "32-byte key".into(), rusqlite::types::Type::Blob))
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// How far below the highest sequence number taken a new one may be (60 s
/// of the client's microsecond numbering): requests sent at once may arrive
/// in any order.
pub const SEQ_WINDOW: u64 = 60_000_000;
/// Requests of one client whose replies are kept for its retries.
pub const KEPT_REQUESTS: i64 = 1024;

/// What [`Store::accept_seq`] made of a request's sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Taken {
    /// A new request: act on it. The client's balance.
    Fresh(u64),
    /// A retry of a request already answered: this was the answer.
    Answered(Vec<u8>),
    /// A retry of a request still being acted on.
    InFlight,
    /// A sequence number that cannot be taken: why.
    Refused(String),
}

impl Store {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
        }
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS clients(key BLOB PRIMARY KEY, last_seq INTEGER NOT NULL, balance INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS ledger(id INTEGER PRIMARY KEY AUTOINCREMENT, client BLOB NOT NULL, at_ms INTEGER NOT NULL,
                 delta INTEGER NOT NULL, balance INTEGER NOT NULL, what TEXT NOT NULL, lease INTEGER);
             CREATE TABLE IF NOT EXISTS bundles(hash BLOB PRIMARY KEY, bytes BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS leases(id INTEGER PRIMARY KEY AUTOINCREMENT, client BLOB NOT NULL, identity BLOB NOT NULL,
                 bundle BLOB NOT NULL REFERENCES bundles(hash), params BLOB NOT NULL, start_ms INTEGER NOT NULL,
                 end_ms INTEGER NOT NULL, paid INTEGER NOT NULL, ended_ms INTEGER, end_reason TEXT);
             CREATE INDEX IF NOT EXISTS leases_active ON leases(ended_ms);
             CREATE TABLE IF NOT EXISTS lemmas(n INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB UNIQUE NOT NULL, bytes BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS marks(kind TEXT NOT NULL, subject BLOB NOT NULL, at_ms INTEGER NOT NULL, note TEXT NOT NULL,
                 PRIMARY KEY(kind, subject));
             CREATE TABLE IF NOT EXISTS requests(client BLOB NOT NULL, seq INTEGER NOT NULL, request BLOB NOT NULL, reply BLOB,
                 PRIMARY KEY(client, seq));",
        )?;
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version < 2 {
            // From the high-water mark of version 1: nothing at or below it is taken.
            let has_floor = db.prepare("SELECT floor FROM clients LIMIT 0").is_ok();
            if !has_floor {
                db.execute_batch("ALTER TABLE clients ADD COLUMN floor INTEGER NOT NULL DEFAULT 0; UPDATE clients SET floor = last_seq;")?;
            }
            db.execute_batch("PRAGMA user_version = 2;")?;
        }
        // A request a stop interrupted committed nothing and was never answered.
        db.execute("DELETE FROM requests WHERE reply IS NULL", [])?;
        Ok(Store { db })
    }

    /// A client's last sequence number and balance.
    pub fn client(&self, key: &[u8; 32]) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(self
            .db
            .query_row("SELECT last_seq, balance FROM clients WHERE key = ?1", [&key[..]], |r| Ok((u(r.get(0)?), u(r.get(1)?))))
            .optional()?)
    }

    /// Take request `seq` of `key` (whose bytes hash to `request`), or say
    /// why not, or give the stored answer of a retry. A client seen for the
    /// first time is created with `grant` credits (a ledger entry).
    pub fn accept_seq(&mut self, key: &[u8; 32], seq: u64, request: &[u8; 32], grant: u64, now_ms: u64) -> Result<Taken, StoreError> {
        let tx = self.db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(i64, i64, i64)> = tx
            .query_row("SELECT last_seq, balance, floor FROM clients WHERE key = ?1", [&key[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (last, balance, floor) = match row {
            Some((l, b, f)) => (u(l), u(b), u(f)),
            None => {
                tx.execute("INSERT INTO clients(key, last_seq, balance, floor) VALUES (?1, 0, ?2, 0)", params![&key[..], i(grant)])?;
                tx.execute(
                    "INSERT INTO ledger(client, at_ms, delta, balance, what) VALUES (?1, ?2, ?3, ?3, 'grant')",
                    params![&key[..], i(now_ms), i(grant)],
                )?;
                (0, grant, 0)
            }
        };
        let seen: Option<(Vec<u8>, Option<Vec<u8>>)> = tx
            .query_row("SELECT request, reply FROM requests WHERE client = ?1 AND seq = ?2", params![&key[..], i(seq)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let taken = match seen {
            Some((h, reply)) if h == request[..] => reply.map_or(Taken::InFlight, Taken::Answered),
            Some(_) => Taken::Refused(format!("sequence number {seq} was already used by another request of this key (a replay)")),
            None if seq <= floor => {
                Taken::Refused(format!("sequence number {seq} is at or below {floor}, the oldest this router still takes from this key"))
            }
            None if seq.saturating_add(SEQ_WINDOW) <= last => Taken::Refused(format!(
                "sequence number {seq} is more than {SEQ_WINDOW} below {last}, the highest this router took from this key (a replay)"
            )),
            None => {
                tx.execute("INSERT INTO requests(client, seq, request) VALUES (?1, ?2, ?3)", params![&key[..], i(seq), &request[..]])?;
                tx.execute("UPDATE clients SET last_seq = MAX(last_seq, ?2) WHERE key = ?1", params![&key[..], i(seq)])?;
                // Keep the newest requests; the floor rises past the others.
                let old: Option<i64> = tx
                    .query_row(
                        "SELECT seq FROM requests WHERE client = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
                        params![&key[..], KEPT_REQUESTS],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(old) = old {
                    tx.execute("DELETE FROM requests WHERE client = ?1 AND seq <= ?2", params![&key[..], old])?;
                    tx.execute("UPDATE clients SET floor = MAX(floor, ?2) WHERE key = ?1", params![&key[..], old])?;
                }
                Taken::Fresh(balance)
            }
        };
        tx.commit()?;
        Ok(taken)
    }

    /// Store the reply to request `seq` of `key`, unless it has one (an
    /// admission or a renewal stores its own with its effects).
    pub fn answer(&mut self, key: &[u8; 32], seq: u64, reply: &[u8]) -> Result<(), StoreError> {
        self.db
            .execute("UPDATE requests SET reply = ?3 WHERE client = ?1 AND seq = ?2 AND reply IS NULL", params![&key[..], i(seq), reply])?;
        Ok(())
    }

    /// Admit: store the bundle, the lease and the debit in one transaction.
    /// Returns the lease id and the balance after the debit. Fails (and
    /// changes nothing) if the balance does not cover the payment.
    /// `reply(balance)` is stored as request `seq`'s answer in the same
    /// transaction.
    pub fn admit(&mut self, l: &NewLease<'_>, now_ms: u64, seq: u64, reply: impl FnOnce(u64) -> Vec<u8>) -> Result<(u64, u64), StoreError> {
        let tx = self.db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hash = blake3::hash(l.bundle);
        tx.execute("INSERT OR IGNORE INTO bundles(hash, bytes) VALUES (?1, ?2)", params![&hash.as_bytes()[..], l.bundle])?;
        tx.execute(
            "INSERT INTO leases(id, client, identity, bundle, params, start_ms, end_ms, paid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![i(l.id), &l.client[..], l.identity, &hash.as_bytes()[..], l.params, i(l.start_ms), i(l.end_ms), i(l.paid)],
        )?;
        let lease = l.id;
        let balance = debit(&tx, &l.client, l.paid, now_ms, "upload", lease)?;
        store_reply(&tx, &l.client, seq, &reply(balance))?;
        tx.commit()?;
        Ok((lease, balance))
    }

    /// Renew: set a lease's end and debit the payment, and store
    /// `reply(balance)` as request `seq`'s answer, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn renew(
        &mut self, lease: u64, client: &[u8; 32], end_ms: u64, paid: u64, now_ms: u64, seq: u64, reply: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<u64, StoreError> {
        let tx = self.db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE leases SET end_ms = ?2, paid = paid + ?3 WHERE id = ?1 AND ended_ms IS NULL AND client = ?4",
            params![i(lease), i(end_ms), i(paid), &client[..]],
        )?;
        if n != 1 {
            return Err(StoreError(format!("lease {lease} is not active")));
        }
        let balance = debit(&tx, client, paid, now_ms, "renew", lease)?;
        store_reply(&tx, client, seq, &reply(balance))?;
        tx.commit()?;
        Ok(balance)
    }

    /// End a lease (withdrawn, expired, or refused on reload).
    pub fn end_lease(&mut self, lease: u64, now_ms: u64, reason: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE leases SET ended_ms = ?2, end_reason = ?3 WHERE id = ?1 AND ended_ms IS NULL",
            params![i(lease), i(now_ms), reason],
        )?;
        Ok(())
    }

    /// The leases not ended, oldest first.
    pub fn active_leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let mut st = self.db.prepare(
            "SELECT id, client, identity, bundle, params, start_ms, end_ms, paid FROM leases WHERE ended_ms IS NULL ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(LeaseRow {
                id: u(r.get(0)?),
                client: key32(r.get(1)?)?,
                identity: r.get(2)?,
                bundle: key32(r.get(3)?)?,
                params: r.get(4)?,
                start_ms: u(r.get(5)?),
                end_ms: u(r.get(6)?),
                paid: u(r.get(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The largest lease id ever used (0 if none).
    pub fn max_lease_id(&self) -> Result<u64, StoreError> {
        let m: Option<i64> = self.db.query_row("SELECT MAX(id) FROM leases", [], |r| r.get(0))?;
        Ok(m.map_or(0, u))
    }

    /// A stored bundle's bytes.
    pub fn bundle(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.query_row("SELECT bytes FROM bundles WHERE hash = ?1", [&hash[..]], |r| r.get(0)).optional()?)
    }

    /// Store a verified lemma (postcard bytes), if new.
    pub fn add_lemma(&mut self, hash: &[u8; 32], bytes: &[u8]) -> Result<(), StoreError> {
        self.db.execute("INSERT OR IGNORE INTO lemmas(hash, bytes) VALUES (?1, ?2)", params![&hash[..], bytes])?;
        Ok(())
    }

    /// Every stored lemma, in the order they were admitted.
    pub fn lemmas(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut st = self.db.prepare("SELECT bytes FROM lemmas ORDER BY n")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The subjects marked `kind` by the operator, with when and why.
    pub fn marks(&self, kind: &str) -> Result<Vec<(Vec<u8>, u64, String)>, StoreError> {
        let mut st = self.db.prepare("SELECT subject, at_ms, note FROM marks WHERE kind = ?1 ORDER BY at_ms")?;
        let rows = st.query_map([kind], |r| Ok((r.get(0)?, u(r.get(1)?), r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Mark `subject` as `kind` (again: the note is replaced).
    pub fn mark(&mut self, kind: &str, subject: &[u8], now_ms: u64, note: &str) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT OR REPLACE INTO marks(kind, subject, at_ms, note) VALUES (?1, ?2, ?3, ?4)",
            params![kind, subject, i(now_ms), note],
        )?;
        Ok(())
    }

    /// Unmark; whether it was marked.
    pub fn unmark(&mut self, kind: &str, subject: &[u8]) -> Result<bool, StoreError> {
        Ok(self.db.execute("DELETE FROM marks WHERE kind = ?1 AND subject = ?2", params![kind, subject])? > 0)
    }

    /// Every client the router has seen: key, highest sequence number, balance.
    pub fn clients(&self) -> Result<Vec<([u8; 32], u64, u64)>, StoreError> {
        let mut st = self.db.prepare("SELECT key, last_seq, balance FROM clients ORDER BY key")?;
        let rows = st.query_map([], |r| Ok((key32(r.get(0)?)?, u(r.get(1)?), u(r.get(2)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ledger entries of a client, oldest first.
    pub fn ledger(&self, key: &[u8; 32]) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut st = self.db.prepare("SELECT delta, balance, what, lease FROM ledger WHERE client = ?1 ORDER BY id")?;
        let rows = st.query_map([&key[..]], |r| Ok((r.get(0)?, u(r.get(1)?), r.get(2)?, r.get::<_, Option<i64>>(3)?.map(u))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of ledger entries and of leases ever made (for tests and status).
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let l: i64 = self.db.query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0))?;
        let s: i64 = self.db.query_row("SELECT COUNT(*) FROM leases", [], |r| r.get(0))?;
        Ok((u(l), u(s)))
    }
}

fn store_reply(tx: &rusqlite::Transaction<'_>, client: &[u8; 32], seq: u64, reply: &[u8]) -> Result<(), StoreError> {
    tx.execute("UPDATE requests SET reply = ?3 WHERE client = ?1 AND seq = ?2", params![&client[..], i(seq), reply])?;
    Ok(())
}

fn debit(tx: &rusqlite::Transaction<'_>, client: &[u8; 32], paid: u64, now_ms: u64, what: &str, lease: u64) -> Result<u64, StoreError> {
    let balance: i64 = tx.query_row("SELECT balance FROM clients WHERE key = ?1", [&client[..]], |r| r.get(0))?;
    let after = u(balance).checked_sub(paid).ok_or_else(|| StoreError(format!("balance {balance} does not cover {paid}")))?;
    tx.execute("UPDATE clients SET balance = ?2 WHERE key = ?1", params![&client[..], i(after)])?;
    tx.execute(
        "INSERT INTO ledger(client, at_ms, delta, balance, what, lease) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![&client[..], i(now_ms), -i(paid), i(after), what, i(lease)],
    )?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vinet-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.join("router.db")
    }

    #[test]
    fn sequence_numbers_grants_and_ledger() {
        let p = tmp("seq");
        let mut s = Store::open(&p).unwrap();
        let k = [7u8; 32];
        let (h5, h6, h4) = ([5u8; 32], [6u8; 32], [4u8; 32]);
        assert_eq!(s.accept_seq(&k, 5, &h5, 100, 1).unwrap(), Taken::Fresh(100));
        assert_eq!(s.accept_seq(&k, 5, &h5, 100, 2).unwrap(), Taken::InFlight, "a retry before the answer");
        s.answer(&k, 5, b"five").unwrap();
        assert_eq!(s.accept_seq(&k, 5, &h5, 100, 2).unwrap(), Taken::Answered(b"five".to_vec()), "a retry gets the answer");
        assert!(matches!(s.accept_seq(&k, 5, &h6, 100, 2).unwrap(), Taken::Refused(_)), "another request with a used number");
        assert_eq!(s.accept_seq(&k, 6, &h6, 100, 3).unwrap(), Taken::Fresh(100), "granted once");
        assert_eq!(s.accept_seq(&k, 4, &h4, 100, 3).unwrap(), Taken::Fresh(100), "reordered within the window");
        assert!(matches!(s.accept_seq(&k, 6 + SEQ_WINDOW, &[9; 32], 100, 3).unwrap(), Taken::Fresh(_)));
        assert!(matches!(s.accept_seq(&k, 3, &[3; 32], 100, 3).unwrap(), Taken::Refused(_)), "below the window");
        for n in 0..KEPT_REQUESTS as u64 {
            assert!(matches!(s.accept_seq(&k, 10 + SEQ_WINDOW + n, &[1; 32], 100, 3).unwrap(), Taken::Fresh(_)));
        }
        assert!(matches!(s.accept_seq(&k, 6 + SEQ_WINDOW, &[9; 32], 100, 3).unwrap(), Taken::Refused(_)), "dropped: under the floor");
        let k = [8u8; 32];
        s.accept_seq(&k, 1, &[1; 32], 100, 1).unwrap();
        let l = NewLease { id: 1, client: k, identity: b"id", bundle: b"bundle", params: b"", start_ms: 10, end_ms: 20, paid: 30 };
        assert_eq!(s.admit(&l, 4, 1, |b| format!("admitted, {b} left").into_bytes()).unwrap(), (1, 70));
        assert_eq!(s.accept_seq(&k, 1, &[1; 32], 100, 5).unwrap(), Taken::Answered(b"admitted, 70 left".to_vec()));
        assert!(s.admit(&NewLease { id: 2, paid: 71, ..l.clone() }, 5, 2, |_| vec![]).is_err(), "overdraft refused");
        assert!(s.admit(&NewLease { paid: 1, ..l.clone() }, 5, 2, |_| vec![]).is_err(), "ids are never reused");
        assert_eq!(s.max_lease_id().unwrap(), 1);
        s.accept_seq(&k, 2, &[2; 32], 100, 6).unwrap();
        assert_eq!(s.renew(1, &k, 40, 20, 6, 2, |_| vec![]).unwrap(), 50);
        assert!(s.renew(1, &[9; 32], 40, 20, 6, 2, |_| vec![]).is_err(), "not the owner");
        drop(s);
        // Reopen: everything is there.
        let mut s = Store::open(&p).unwrap();
        assert_eq!(s.client(&k).unwrap(), Some((2, 50)));
        let a = s.active_leases().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].end_ms, a[0].paid), (40, 50));
        assert_eq!(s.bundle(&a[0].bundle).unwrap().as_deref(), Some(&b"bundle"[..]));
        let led = s.ledger(&k).unwrap();
        assert_eq!(led.iter().map(|e| e.0).collect::<Vec<_>>(), vec![100, -30, -20]);
        s.end_lease(1, 50, "withdrawn").unwrap();
        assert!(s.active_leases().unwrap().is_empty());
        assert!(s.renew(1, &k, 60, 1, 7, 2, |_| vec![]).is_err());
        s.add_lemma(&[1; 32], b"a").unwrap();
        s.add_lemma(&[2; 32], b"b").unwrap();
        s.add_lemma(&[1; 32], b"a").unwrap();
        assert_eq!(s.lemmas().unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}
