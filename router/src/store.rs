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
//! Schema (`PRAGMA user_version = 1`):
//! - `clients(key PK, last_seq, balance)`
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
             PRAGMA user_version = 1;",
        )?;
        Ok(Store { db })
    }

    /// A client's last sequence number and balance.
    pub fn client(&self, key: &[u8; 32]) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(self
            .db
            .query_row("SELECT last_seq, balance FROM clients WHERE key = ?1", [&key[..]], |r| Ok((u(r.get(0)?), u(r.get(1)?))))
            .optional()?)
    }

    /// Record `seq` as the client's last sequence number if it is greater
    /// than the stored one; a client seen for the first time is created with
    /// `grant` credits (a ledger entry). Returns `Ok(Err(last))` when `seq`
    /// is not greater than the last accepted, else the balance.
    pub fn accept_seq(&mut self, key: &[u8; 32], seq: u64, grant: u64, now_ms: u64) -> Result<Result<u64, u64>, StoreError> {
        let tx = self.db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(i64, i64)> =
            tx.query_row("SELECT last_seq, balance FROM clients WHERE key = ?1", [&key[..]], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let balance = match row {
            Some((last, _)) if u(last) >= seq => return Ok(Err(u(last))),
            Some((_, b)) => {
                tx.execute("UPDATE clients SET last_seq = ?2 WHERE key = ?1", params![&key[..], i(seq)])?;
                u(b)
            }
            None => {
                tx.execute("INSERT INTO clients(key, last_seq, balance) VALUES (?1, ?2, ?3)", params![&key[..], i(seq), i(grant)])?;
                tx.execute(
                    "INSERT INTO ledger(client, at_ms, delta, balance, what) VALUES (?1, ?2, ?3, ?3, 'grant')",
                    params![&key[..], i(now_ms), i(grant)],
                )?;
                grant
            }
        };
        tx.commit()?;
        Ok(Ok(balance))
    }

    /// Admit: store the bundle, the lease and the debit in one transaction.
    /// Returns the lease id and the balance after the debit. Fails (and
    /// changes nothing) if the balance does not cover the payment.
    pub fn admit(&mut self, l: &NewLease<'_>, now_ms: u64) -> Result<(u64, u64), StoreError> {
        let tx = self.db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hash = blake3::hash(l.bundle);
        tx.execute("INSERT OR IGNORE INTO bundles(hash, bytes) VALUES (?1, ?2)", params![&hash.as_bytes()[..], l.bundle])?;
        tx.execute(
            "INSERT INTO leases(id, client, identity, bundle, params, start_ms, end_ms, paid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![i(l.id), &l.client[..], l.identity, &hash.as_bytes()[..], l.params, i(l.start_ms), i(l.end_ms), i(l.paid)],
        )?;
        let lease = l.id;
        let balance = debit(&tx, &l.client, l.paid, now_ms, "upload", lease)?;
        tx.commit()?;
        Ok((lease, balance))
    }

    /// Renew: set a lease's end and debit the payment, in one transaction.
    pub fn renew(&mut self, lease: u64, client: &[u8; 32], end_ms: u64, paid: u64, now_ms: u64) -> Result<u64, StoreError> {
        let tx = self.db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE leases SET end_ms = ?2, paid = paid + ?3 WHERE id = ?1 AND ended_ms IS NULL AND client = ?4",
            params![i(lease), i(end_ms), i(paid), &client[..]],
        )?;
        if n != 1 {
            return Err(StoreError(format!("lease {lease} is not active")));
        }
        let balance = debit(&tx, client, paid, now_ms, "renew", lease)?;
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
        assert_eq!(s.accept_seq(&k, 5, 100, 1).unwrap(), Ok(100));
        assert_eq!(s.accept_seq(&k, 5, 100, 2).unwrap(), Err(5), "replay");
        assert_eq!(s.accept_seq(&k, 4, 100, 2).unwrap(), Err(5), "reordered");
        assert_eq!(s.accept_seq(&k, 6, 100, 3).unwrap(), Ok(100), "granted once");
        let l = NewLease { id: 1, client: k, identity: b"id", bundle: b"bundle", params: b"", start_ms: 10, end_ms: 20, paid: 30 };
        assert_eq!(s.admit(&l, 4).unwrap(), (1, 70));
        assert!(s.admit(&NewLease { id: 2, paid: 71, ..l.clone() }, 5).is_err(), "overdraft refused");
        assert!(s.admit(&NewLease { paid: 1, ..l.clone() }, 5).is_err(), "ids are never reused");
        assert_eq!(s.max_lease_id().unwrap(), 1);
        assert_eq!(s.renew(1, &k, 40, 20, 6).unwrap(), 50);
        assert!(s.renew(1, &[8; 32], 40, 20, 6).is_err(), "not the owner");
        drop(s);
        // Reopen: everything is there.
        let mut s = Store::open(&p).unwrap();
        assert_eq!(s.client(&k).unwrap(), Some((6, 50)));
        let a = s.active_leases().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].end_ms, a[0].paid), (40, 50));
        assert_eq!(s.bundle(&a[0].bundle).unwrap().as_deref(), Some(&b"bundle"[..]));
        let led = s.ledger(&k).unwrap();
        assert_eq!(led.iter().map(|e| e.0).collect::<Vec<_>>(), vec![100, -30, -20]);
        s.end_lease(1, 50, "withdrawn").unwrap();
        assert!(s.active_leases().unwrap().is_empty());
        assert!(s.renew(1, &k, 60, 1, 7).is_err());
        s.add_lemma(&[1; 32], b"a").unwrap();
        s.add_lemma(&[2; 32], b"b").unwrap();
        s.add_lemma(&[1; 32], b"a").unwrap();
        assert_eq!(s.lemmas().unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}
