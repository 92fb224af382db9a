//! The manager's shared state in etcd (`serve --etcd`): the flow-id pool,
//! each router's reservations and every manager's decision log, so that
//! several managers admit ONs onto the same routers at once.
//!
//! **Keys**, under [`ROOT`]; values are JSON, numbers in keys zero-padded
//! so that etcd's key order is numeric order:
//!
//! | key | value | written by |
//! | --- | --- | --- |
//! | `pool/cursor` | the next flow id to try | any manager, by compare-and-swap |
//! | `pool/flow/ID` | the ON: owner (manager id), label, routers, rates, its transaction | its owner |
//! | `room/NODE` | the sum of what the ONs hold on the router | any manager, by compare-and-swap |
//! | `tx/next` | the next transaction id (shared: routers key on it) | any manager, by compare-and-swap |
//! | `log/MANAGER/TX` | a transaction of the manager's decision log | that manager |
//! | `managers/MANAGER` | the manager's liveness, attached to its lease | that manager |
//!
//! **Compare-and-swap, no consensus of our own.** Every write is one etcd
//! transaction that compares the `mod_revision` of each key it read (0 for
//! a key that must be absent) and is retried from a fresh read when another
//! manager got there first, at most [`ATTEMPTS`] times. Admission reads the
//! rooms, chooses the paths, and in one transaction allocates the flow id
//! (cursor and an absent `pool/flow/ID`) and adds the ON to the room of
//! every router of its paths: so two managers never hand out one id, and
//! never both fill the last room of a router. The room is given back in one
//! transaction with the flow id, when the ON's abort has been acknowledged
//! by its routers (or it never had a transaction).
//!
//! **Leases: a manager's liveness.** A manager holds `managers/ID` on an
//! etcd lease of [`TTL_S`] seconds that a task of its runtime keeps alive,
//! and every one of its writes also compares that key's lease with its own
//! (a fence): a second process with the same id waits for the first one's
//! lease to lapse (a restart after a crash) or is refused, and a manager
//! that loses its lease stops writing and exits. Reservations are *not* on
//! leases: the routers' own leases already make them soft state, and room
//! in etcd freed while a router may still hold the ON would let another
//! manager oversubscribe that router. So a dead manager's ONs keep their
//! room until it is restarted with its id and resolves its log (its
//! committed ONs lapse on the routers meanwhile, and the restarted manager
//! revokes them at its first refresh).
//!
//! The client is async (tonic); the runtime here is this backend's own,
//! and the manager calls it synchronously (`block_on`) under its lock.

use crate::state::Choose;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use vinet_overlay::partition::{Reservation, Resources};
use vinet_overlay::store::{LoggedTx, StoreError};
use vinet_overlay::twopc::{Decision, DecisionLog, NodeId, TxId};
use vinet_overlay::FlowId;

/// The prefix of every key.
pub const ROOT: &str = "/vinet/onmgr/";

/// The time to live of a manager's lease, in seconds.
pub const TTL_S: i64 = 5;

/// How many times a compare-and-swap is tried before giving up.
pub const ATTEMPTS: usize = 1_000;

/// An ON in the pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FlowRec {
    owner: String,
    label: String,
    participants: Vec<NodeId>,
    rates: Resources,
    tx: Option<TxId>,
}

/// A transaction in a manager's log.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TxRec {
    flow: FlowId,
    reservation: Reservation,
    participants: Vec<NodeId>,
    deadline_ns: u64,
    decision: Option<Decision>,
    done: bool,
}

/// An allocated flow id as the pool has it.
pub struct PoolRow {
    /// The id.
    pub flow: FlowId,
    /// The manager that owns it.
    pub owner: String,
    /// Its label (the manager's JSON).
    pub label: String,
    /// Its transaction, from its owner's log.
    pub latest: Option<LoggedTx>,
}

/// One manager's connection to the shared state.
pub struct Etcd {
    rt: tokio::runtime::Runtime,
    client: Client,
    me: String,
    lease: i64,
}

fn shared(e: impl std::fmt::Display) -> StoreError {
    StoreError::Shared(e.to_string().lines().next().unwrap_or("").to_string())
}

fn key_flow(f: FlowId) -> String {
    format!("{ROOT}pool/flow/{:010}", f.0)
}

fn key_room(n: NodeId) -> String {
    format!("{ROOT}room/{:010}", n.0)
}

fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T, StoreError> {
    serde_json::from_slice(kv.value()).map_err(|e| StoreError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(kv.key()))))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("plain data serializes")
}

/// The number at the end of a key (`.../0000000007`).
fn tail_number(kv: &KeyValue) -> Result<u64, StoreError> {
    let k = String::from_utf8_lossy(kv.key());
    k.rsplit('/').next().and_then(|n| n.parse().ok()).ok_or_else(|| StoreError::Corrupt(format!("key {k}")))
}

fn add(a: Resources, b: Resources) -> Resources {
    Resources { bps: a.bps.saturating_add(b.bps), pps: a.pps.saturating_add(b.pps), units: a.units.saturating_add(b.units) }
}

fn sub(a: Resources, b: Resources) -> Result<Resources, StoreError> {
    match (a.bps.checked_sub(b.bps), a.pps.checked_sub(b.pps), a.units.checked_sub(b.units)) {
        (Some(bps), Some(pps), Some(units)) => Ok(Resources { bps, pps, units }),
        _ => Err(StoreError::Corrupt(format!("a router's room {a:?} is less than an ON's {b:?}"))),
    }
}

/// A manager id: what goes into keys.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("manager id {id:?}: 1 to 64 of A-Z a-z 0-9 - _"));
    }
    Ok(())
}

impl Etcd {
    /// Connects to `endpoints` (http URLs) and claims the manager id `me`:
    /// waits (bounded, twice the lease's time to live) for a previous
    /// holder's lease to lapse, and refuses if it does not.
    pub fn connect(endpoints: &[String], me: &str) -> Result<Etcd, String> {
        check_id(me)?;
        if endpoints.is_empty() {
            return Err("--etcd: no endpoints".into());
        }
        for e in endpoints {
            if !e.starts_with("http://") {
                return Err(format!("--etcd {e}: only http:// endpoints (this build has no TLS)"));
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vinet-onmgr-etcd")
            .enable_all()
            .build()
            .map_err(|e| format!("etcd runtime: {e}"))?;
        let opts = ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(Duration::from_secs(5));
        let mut client = rt.block_on(Client::connect(endpoints, Some(opts))).map_err(|e| format!("etcd {}: {e}", endpoints.join(",")))?;
        let lease = rt.block_on(client.lease_grant(TTL_S, None)).map_err(|e| format!("etcd lease: {e}"))?.id();
        let mine = format!("{ROOT}managers/{me}");
        let claim = Txn::new().when([Compare::version(mine.as_str(), CompareOp::Equal, 0)]).and_then([TxnOp::put(
            mine.as_str(),
            std::process::id().to_string(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
        // Kept alive from now on, so that it outlives the wait for a previous holder.
        let keeper = rt.spawn(keep_alive(client.clone(), lease, me.to_string()));
        let polls = (TTL_S as u64) * 2 * 4;
        let mut claimed = false;
        for _ in 0..polls {
            if rt.block_on(client.txn(claim.clone())).map_err(|e| format!("etcd: {e}"))?.succeeded() {
                claimed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if !claimed {
            keeper.abort();
            let _ = rt.block_on(client.lease_revoke(lease));
            return Err(format!("manager id {me} is held by a live manager (etcd key {mine})"));
        }
        Ok(Etcd { rt, client, me: me.to_string(), lease })
    }

    /// This manager's id.
    pub fn id(&self) -> &str {
        &self.me
    }

    fn key_me(&self) -> String {
        format!("{ROOT}managers/{}", self.me)
    }

    fn key_log(&self, tx: TxId) -> String {
        format!("{ROOT}log/{}/{:020}", self.me, tx.0)
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let mut c = self.client.clone();
        let mut r = self.rt.block_on(c.get(key, None)).map_err(shared)?;
        Ok(r.take_kvs().pop())
    }

    /// Several ranges, each the keys under a prefix (a whole key reads
    /// itself: no key extends another), read at one revision.
    fn snapshot(&self, prefixes: &[String]) -> Result<Vec<Vec<KeyValue>>, StoreError> {
        let ops: Vec<TxnOp> = prefixes.iter().map(|p| TxnOp::get(p.as_str(), Some(GetOptions::new().with_prefix()))).collect();
        let mut c = self.client.clone();
        let r = self.rt.block_on(c.txn(Txn::new().and_then(ops))).map_err(shared)?;
        r.op_responses()
            .into_iter()
            .map(|o| match o {
                TxnOpResponse::Get(mut g) => Ok(g.take_kvs()),
                _ => Err(shared("etcd answered a range with something else")),
            })
            .collect()
    }

    /// Runs one compare-and-swap, fenced by this manager's lease: true if
    /// it was applied, false if another writer got there first (retry);
    /// an error if this manager no longer holds its id.
    fn swap(&self, mut when: Vec<Compare>, ops: Vec<TxnOp>) -> Result<bool, StoreError> {
        let me = self.key_me();
        when.push(Compare::lease(me.as_str(), CompareOp::Equal, self.lease));
        let mut c = self.client.clone();
        if self.rt.block_on(c.txn(Txn::new().when(when).and_then(ops))).map_err(shared)?.succeeded() {
            return Ok(true);
        }
        match self.get(&me)? {
            Some(kv) if kv.lease() == self.lease => Ok(false),
            _ => Err(StoreError::Shared(format!("manager id {} lost its etcd lease", self.me))),
        }
    }

    /// A compare-and-swap retried on conflict: `attempt` reads and returns
    /// the transaction to try, or its final answer.
    fn retry<T>(&self, mut attempt: impl FnMut() -> Result<Attempt<T>, StoreError>) -> Result<T, StoreError> {
        for _ in 0..ATTEMPTS {
            match attempt()? {
                Attempt::Done(v) => return Ok(v),
                Attempt::Swap { when, ops, then } => {
                    if self.swap(when, ops)? {
                        return Ok(then);
                    }
                }
            }
        }
        Err(StoreError::Shared(format!("gave up after {ATTEMPTS} conflicting attempts")))
    }

    fn log_entry(&self, tx: TxId) -> Result<Option<(TxRec, i64)>, StoreError> {
        self.get(&self.key_log(tx))?.map(|kv| Ok((decode(&kv)?, kv.mod_revision()))).transpose()
    }

    fn update_log(&self, tx: TxId, f: impl Fn(&mut TxRec) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let key = self.key_log(tx);
        self.retry(|| {
            let (mut rec, rev) = self.log_entry(tx)?.ok_or(StoreError::UnknownTx(tx))?;
            f(&mut rec)?;
            Ok(Attempt::Swap {
                when: vec![Compare::mod_revision(key.as_str(), CompareOp::Equal, rev)],
                ops: vec![TxnOp::put(key.as_str(), encode(&rec), None)],
                then: (),
            })
        })
    }

    /// Each router's room taken, as etcd has it.
    pub fn reserved(&self) -> Result<BTreeMap<NodeId, Resources>, StoreError> {
        Ok(self.rooms()?.into_iter().map(|(n, (r, _))| (n, r)).collect())
    }

    fn rooms(&self) -> Result<BTreeMap<NodeId, (Resources, i64)>, StoreError> {
        let kvs = self.snapshot(&[format!("{ROOT}room/")])?.remove(0);
        kvs.iter()
            .map(|kv| {
                let n = u32::try_from(tail_number(kv)?).map_err(|_| StoreError::Corrupt("room key".into()))?;
                Ok((NodeId(n), (decode(kv)?, kv.mod_revision())))
            })
            .collect()
    }

    /// Admits an ON: reads the rooms, asks `choose` for its routers and
    /// label, and in one compare-and-swap allocates its flow id and adds
    /// `rates` to the room of each of its routers. `choose`'s refusal is
    /// returned as it is; a conflict is retried from a fresh read.
    pub fn admit(&mut self, rates: Resources, choose: Choose<'_>) -> Result<FlowId, String> {
        let cursor_key = format!("{ROOT}pool/cursor");
        for _ in 0..ATTEMPTS {
            let mut snap =
                self.snapshot(&[format!("{ROOT}room/"), cursor_key.clone(), format!("{ROOT}pool/flow/")]).map_err(|e| e.to_string())?;
            let flows = snap.pop().unwrap_or_default();
            let cursor = snap.pop().unwrap_or_default();
            let room_kvs = snap.pop().unwrap_or_default();
            let mut rooms: BTreeMap<NodeId, (Resources, i64)> = BTreeMap::new();
            for kv in &room_kvs {
                let n = u32::try_from(tail_number(kv).map_err(|e| e.to_string())?).map_err(|_| "etcd: corrupt room key".to_string())?;
                rooms.insert(NodeId(n), (decode(kv).map_err(|e: StoreError| e.to_string())?, kv.mod_revision()));
            }
            let view: BTreeMap<NodeId, Resources> = rooms.iter().map(|(n, (r, _))| (*n, *r)).collect();
            let (participants, label) = choose(&view)?;
            // The flow id: the first free one from the cursor on, wrapping (as the SQLite pool).
            let used: BTreeSet<u64> = flows.iter().map(tail_number).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
            if used.len() >= u32::MAX as usize {
                return Err(StoreError::PoolExhausted.to_string());
            }
            let (start, cursor_rev) = match cursor.first() {
                Some(kv) => (kv.value_str().ok().and_then(|v| v.parse::<u32>().ok()).filter(|&c| c >= 1).unwrap_or(1), kv.mod_revision()),
                None => (1, 0),
            };
            let mut id = start;
            while used.contains(&u64::from(id)) {
                id = if id == u32::MAX { 1 } else { id + 1 };
            }
            let flow = FlowId(id);
            let next = if id == u32::MAX { 1 } else { id + 1 };
            let rec = FlowRec { owner: self.me.clone(), label: label.clone(), participants: participants.clone(), rates, tx: None };
            let fk = key_flow(flow);
            let mut when = vec![
                Compare::mod_revision(cursor_key.as_str(), CompareOp::Equal, cursor_rev),
                Compare::version(fk.as_str(), CompareOp::Equal, 0),
            ];
            let mut ops = vec![TxnOp::put(fk.as_str(), encode(&rec), None), TxnOp::put(cursor_key.as_str(), next.to_string(), None)];
            for p in &participants {
                let (have, rev) = rooms.get(p).copied().unwrap_or_default();
                let k = key_room(*p);
                when.push(Compare::mod_revision(k.as_str(), CompareOp::Equal, rev));
                ops.push(TxnOp::put(k.as_str(), encode(&add(have, rates)), None));
            }
            if self.swap(when, ops).map_err(|e| e.to_string())? {
                return Ok(flow);
            }
        }
        Err(format!("etcd: admission gave up after {ATTEMPTS} conflicting attempts"))
    }

    /// Frees this manager's `flow` and gives its room back, in one
    /// compare-and-swap; false if it is not allocated (or not this manager's).
    pub fn free(&mut self, flow: FlowId) -> Result<bool, StoreError> {
        let fk = key_flow(flow);
        self.retry(|| {
            let Some(kv) = self.get(&fk)? else { return Ok(Attempt::Done(false)) };
            let rec: FlowRec = decode(&kv)?;
            if rec.owner != self.me {
                return Ok(Attempt::Done(false));
            }
            let rooms = self.rooms()?;
            let mut when = vec![Compare::mod_revision(fk.as_str(), CompareOp::Equal, kv.mod_revision())];
            let mut ops = vec![TxnOp::delete(fk.as_str(), None)];
            for p in &rec.participants {
                let (have, rev) = rooms.get(p).copied().unwrap_or_default();
                let k = key_room(*p);
                when.push(Compare::mod_revision(k.as_str(), CompareOp::Equal, rev));
                ops.push(TxnOp::put(k.as_str(), encode(&sub(have, rec.rates)?), None));
            }
            Ok(Attempt::Swap { when, ops, then: true })
        })
    }

    /// Every allocated flow id (every manager's), with its latest
    /// transaction, read at one revision.
    pub fn rows(&self) -> Result<Vec<PoolRow>, StoreError> {
        let mut snap = self.snapshot(&[format!("{ROOT}pool/flow/"), format!("{ROOT}log/")])?;
        let logs = snap.pop().unwrap_or_default();
        let flows = snap.pop().unwrap_or_default();
        let mut log: HashMap<String, TxRec> = HashMap::new();
        for kv in &logs {
            log.insert(String::from_utf8_lossy(kv.key()).into_owned(), decode(kv)?);
        }
        let mut out = Vec::new();
        for kv in &flows {
            let rec: FlowRec = decode(kv)?;
            let flow = FlowId(u32::try_from(tail_number(kv)?).map_err(|_| StoreError::Corrupt("flow key".into()))?);
            let latest = rec.tx.and_then(|tx| {
                let t = log.get(&format!("{ROOT}log/{}/{:020}", rec.owner, tx.0))?;
                Some(logged(tx, t.clone()))
            });
            out.push(PoolRow { flow, owner: rec.owner, label: rec.label, latest });
        }
        Ok(out)
    }
}

/// What one try of a compare-and-swap does.
enum Attempt<T> {
    /// Nothing to write: the answer.
    Done(T),
    /// Apply `ops` if `when` holds, then answer `then`.
    Swap { when: Vec<Compare>, ops: Vec<TxnOp>, then: T },
}

fn logged(tx: TxId, t: TxRec) -> LoggedTx {
    LoggedTx {
        tx,
        flow: t.flow,
        reservation: t.reservation,
        participants: t.participants,
        deadline_ns: t.deadline_ns,
        decision: t.decision,
        done: t.done,
    }
}

/// Keeps the manager's lease alive every third of its time to live; a
/// manager whose lease has lapsed (etcd unreachable for longer than the
/// time to live) exits, since another process may now claim its id.
async fn keep_alive(mut client: Client, lease: i64, me: String) {
    let ttl = Duration::from_secs(TTL_S as u64);
    let mut last_ok = Instant::now();
    let mut stream = None;
    loop {
        tokio::time::sleep(ttl / 3).await;
        if stream.is_none() {
            stream = client.lease_keep_alive(lease).await.ok();
        }
        let ok = match stream.as_mut() {
            Some((keeper, answers)) => keeper.keep_alive().await.is_ok() && matches!(answers.message().await, Ok(Some(r)) if r.ttl() > 0),
            None => false,
        };
        if ok {
            last_ok = Instant::now();
        } else {
            stream = None;
            if last_ok.elapsed() >= ttl {
                eprintln!("vinet-onmgr: manager id {me}: the etcd lease lapsed; stopping (another process may claim the id)");
                std::process::exit(1);
            }
        }
    }
}

impl DecisionLog for Etcd {
    fn begin_tx(&mut self, flow: FlowId, reservation: &Reservation, participants: &[NodeId], deadline_ns: u64) -> Result<TxId, StoreError> {
        let next_key = format!("{ROOT}tx/next");
        let fk = key_flow(flow);
        self.retry(|| {
            let (id, next_rev) = match self.get(&next_key)? {
                Some(kv) => (
                    kv.value_str().ok().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| StoreError::Corrupt("tx/next".into()))?,
                    kv.mod_revision(),
                ),
                None => (1, 0),
            };
            let kv = self.get(&fk)?.ok_or_else(|| StoreError::Shared(format!("flow {} is not allocated", flow.0)))?;
            let mut rec: FlowRec = decode(&kv)?;
            if rec.owner != self.me {
                return Err(StoreError::Shared(format!("flow {} belongs to manager {}", flow.0, rec.owner)));
            }
            let tx = TxId(id);
            rec.tx = Some(tx);
            let t =
                TxRec { flow, reservation: *reservation, participants: participants.to_vec(), deadline_ns, decision: None, done: false };
            let lk = self.key_log(tx);
            Ok(Attempt::Swap {
                when: vec![
                    Compare::mod_revision(next_key.as_str(), CompareOp::Equal, next_rev),
                    Compare::mod_revision(fk.as_str(), CompareOp::Equal, kv.mod_revision()),
                    Compare::version(lk.as_str(), CompareOp::Equal, 0),
                ],
                ops: vec![
                    TxnOp::put(next_key.as_str(), (id + 1).to_string(), None),
                    TxnOp::put(lk.as_str(), encode(&t), None),
                    TxnOp::put(fk.as_str(), encode(&rec), None),
                ],
                then: tx,
            })
        })
    }

    fn decide(&mut self, tx: TxId, decision: Decision) -> Result<(), StoreError> {
        self.update_log(tx, |t| {
            t.decision = Some(decision);
            t.done = false;
            Ok(())
        })
    }

    fn finish(&mut self, tx: TxId) -> Result<(), StoreError> {
        self.update_log(tx, |t| {
            if t.decision.is_none() {
                return Err(StoreError::UnknownTx(tx));
            }
            t.done = true;
            Ok(())
        })
    }

    fn transaction(&self, tx: TxId) -> Result<Option<LoggedTx>, StoreError> {
        Ok(self.log_entry(tx)?.map(|(t, _)| logged(tx, t)))
    }

    fn open_transactions(&self) -> Result<Vec<LoggedTx>, StoreError> {
        let kvs = self.snapshot(&[format!("{ROOT}log/{}/", self.me)])?.remove(0);
        let mut out = Vec::new();
        for kv in &kvs {
            let t: TxRec = decode(kv)?;
            if !t.done {
                out.push(logged(TxId(tail_number(kv)?), t));
            }
        }
        Ok(out)
    }
}
