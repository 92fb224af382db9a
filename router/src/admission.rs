//! The admission pipeline of `vinetd`: authenticate -> replay check ->
//! payment -> scheduler -> checker -> install (the order of the paper's
//! Fig. 1), leases, quotas, the "drop for everyone" rule, and the reload of
//! everything after a restart.
//!
//! - **Authenticate.** The request's ed25519 signature by the key it names;
//!   the identity certificate by a trusted authority, valid now; the two
//!   keys equal; the identity's destination served here. THIS_IP and
//!   THIS_SUBNET_IP come from the verified identity and nowhere else.
//! - **Replay.** A sequence number is taken once, in any order, within the
//!   store's window, and recorded (one transaction) before anything else
//!   happens; a retry of a request gets its first answer
//!   ([`crate::store`]).
//! - **Payment.** `pay` (the most the client agrees to pay) must cover the
//!   price of the declared cost, which is what is charged, and the
//!   client's balance minus what its queued requests have reserved. Nothing
//!   is debited until the admission commits, in the same transaction as the
//!   lease; a refusal (scheduler, quota, checker) releases the reservation,
//!   which is the refund, and a crash can never debit without admitting.
//! - **Scheduler.** Requests wait in [`Queues`] (per cost class, FIFO by
//!   arrival; served by payment per cost). One scheduler thread takes the
//!   next request; it is admitted only if its complexity fits in capacity
//!   minus load (an instance already running for another lease, same module,
//!   policy and parameters, adds nothing) and its functionality class quota
//!   for each source it discards ([`crate::sources`]) has room.
//! - **Checker.** Only then is the bundle checked, against the policy of the
//!   client's kind and the router's verified lemmas. A certificate citing
//!   lemmas the router lacks gets "need lemmas [..]"; the client sends them,
//!   each is verified by the kernel, cached and stored.
//! - **Install.** The checked program, bound to the identity and the
//!   parameters, goes to the packet path; then bundle, lease, debit and
//!   ledger entry commit in one transaction; then the client hears
//!   "admitted".
//!
//! **Architecture Invariant:** the state lock is never held while checking a
//! proof or waiting for the packet path, and the packet path never waits for
//! this module: a flood of bad requests costs admissions time, not packets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use vinet_checker::bytecode::{Class, Const};
use vinet_checker::cert::{decode_file, Bundle, Lemma, LemmaCache, LemmaHash, LemmaRef, ProofError, BUNDLE_MAGIC};
use vinet_checker::policy::ClientKind;
use vinet_checker::{mapped, netmask, CheckError, Checked, Module, ModuleId, Policy};

use crate::config::{class_name, Config, LiveMode};
use crate::live::PacketPath;
use crate::metrics::{labels, Metrics};
use crate::scheduler::{price, Load, Queues};
use crate::sources::discarded_sources;
use crate::store::{NewLease, Store, Taken};
use vinet_engine::vm::{Binding, Program};
use vinet_proto::clock::now_ms;
use vinet_proto::identity::{hex, IdentityError, SignedIdentity, Subject};
use vinet_proto::protocol::{self, LeaseInfo, Op, Refusal, Reply, Status, Wire};
use vinet_vocab::{addr_text, parse_addr, IpPrefix};

/// A running program: module, policy, parameters and how many instances (addresses or
/// prefixes of the identity) it has; leases with one key share its load.
type InstanceKey = (ModuleId, [u8; 32], Vec<u8>, usize);

/// An installed program's lease.
#[derive(Clone, Debug)]
struct Lease {
    client: [u8; 32],
    subject: Subject,
    class: Class,
    module: ModuleId,
    complexity: u64,
    cost: u64,
    lifetime_ms: u64,
    instance: InstanceKey,
    sources: BTreeSet<u128>,
    end_ms: u64,
    /// Its parameters as bound: (name, value as text), for the client's status.
    params: Vec<(String, String)>,
    /// The latest end any renewal may give it: the policy's `max_lifetime`
    /// from its start, and the end of its identity's validity.
    limit_ms: u64,
}

/// How far a request's timestamp may be from this router's clock: outside
/// it, a request is refused as a possible replay (its sequence number may
/// have left the replay window).
const MAX_CLOCK_SKEW_MS: u64 = 300_000;

/// How many independent networks the destinations discarding a source are
/// in: each IPv4 /24 and each IPv6 /48 (a site) once (a longer prefix counts
/// as its /24 or /48, a shorter one as itself), so that many identities in one
/// network count once.
fn networks(destinations: &HashMap<IpPrefix, usize>) -> usize {
    let site = |p: &IpPrefix| {
        let l = if p.is_v4() { 96 + 24 } else { 48 };
        if p.length() >= l {
            (p.net() & netmask(l), l)
        } else {
            (p.net(), p.length())
        }
    };
    destinations.keys().map(site).collect::<BTreeSet<_>>().len()
}

/// The key a lease's destinations count under in the quotas and the
/// drop-for-everyone rule: its identity's first destination (a client with
/// several addresses is one client).
fn dest_key(s: &Subject) -> IpPrefix {
    s.dests()[0]
}

/// A module's parameters, named, with their bound values as text.
fn named(m: &Module, values: &[Const]) -> Vec<(String, String)> {
    m.params.iter().zip(values).map(|(p, v)| (p.name.clone(), vinet_vocab::params::value_text(v))).collect()
}

/// The latest end of a lease that began at `start_ms` under `policy` for an
/// identity valid until `not_after` (seconds).
fn lease_limit(start_ms: u64, policy: &Policy, not_after: u64) -> u64 {
    start_ms.saturating_add(policy.max_lifetime_secs.saturating_mul(1000)).min(not_after.saturating_mul(1000))
}

struct Job {
    client: [u8; 32],
    /// The request's sequence number, under which the answer is stored.
    seq: u64,
    identity: Vec<u8>,
    /// The end of the identity's validity (seconds).
    not_after: u64,
    subject: Subject,
    policy: Policy,
    bundle: Vec<u8>,
    module: Module,
    complexity: u64,
    params: Vec<Const>,
    pay: u64,
    reply: Sender<Reply>,
}

struct State {
    store: Store,
    queues: Queues<Job>,
    load: Load,
    leases: BTreeMap<u64, Lease>,
    /// Running instances: complexity and number of leases sharing them.
    instances: HashMap<InstanceKey, (u64, usize)>,
    reserved: HashMap<[u8; 32], u64>,
    pending: HashMap<[u8; 32], usize>,
    checked: HashMap<[u8; 32], Checked>,
    arrivals: u64,
    next_lease: u64,
    blocked: BTreeSet<u128>,
    /// Lemmas this router asked each client for (in memory: after a restart
    /// the client is simply asked again).
    asked: HashMap<[u8; 32], BTreeSet<LemmaRef>>,
    /// Lease ends, for expiry: (end_ms, lease).
    ends: BTreeSet<(u64, u64)>,
    /// Per discarded source: the destinations discarding it, with how many
    /// of their leases do (the drop-for-everyone rule).
    discards: HashMap<u128, HashMap<IpPrefix, usize>>,
    /// The same per functionality class (the quotas).
    class_discards: HashMap<(Class, u128), HashMap<IpPrefix, usize>>,
    /// Client keys the operator banned (revoked), and why.
    banned: BTreeMap<[u8; 32], String>,
    /// Sources whose drop-for-everyone block the operator lifted.
    lifted: BTreeSet<u128>,
    /// The latest refusals, newest last: (ms, reason, message).
    refusals: std::collections::VecDeque<(u64, &'static str, String)>,
    stopping: bool,
}

/// What `vinetd ctl help` says.
pub const OPERATOR_HELP: &str = "\
commands:
  leases                  every running lease: client, destination, module, parameters, end
  clients                 every client seen: balance, leases, whether banned
  blocks                  sources dropped for everyone (and lifted ones), with who discards them
  evict LEASE             end a lease now
  ban KEY [REASON...]     revoke a client key: its leases end, its requests are refused (kept across restarts)
  unban KEY               take a ban back
  lift SOURCE             lift a source's drop-for-everyone block (kept across restarts)
  refusals                the latest refusals, newest last
";

/// Refusals kept for the operator's `refusals` command.
const KEPT_REFUSALS: usize = 100;

/// The router's admission side. Shared by the connection threads and the
/// scheduler thread.
pub struct Admission {
    cfg: Config,
    router_key: [u8; 32],
    trusted: Vec<VerifyingKey>,
    state: Mutex<State>,
    wake: Condvar,
    lemmas: RwLock<LemmaCache>,
    packets: PacketPath,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

type Refused = (Refusal, String);

fn refused(r: Refused) -> Reply {
    Reply::Refused { reason: r.0, message: r.1 }
}

fn internal(e: impl std::fmt::Display) -> Refused {
    (Refusal::Internal, format!("the router could not record the request ({e}); nothing was admitted"))
}

/// The client's destinations as text: addresses bare, prefixes with their length.
fn dest_text(s: &Subject) -> String {
    let one = |p: &IpPrefix| if p.length() == 128 { addr_text(p.net()) } else { p.to_string() };
    s.dests().iter().map(one).collect::<Vec<_>>().join(", ")
}

fn kind_of(s: &Subject) -> ClientKind {
    s.kind()
}

/// What each instance of a client's program binds: one per address (an end
/// user) or prefix (an edge router) of its identity.
fn bindings(s: &Subject, params: &[Const]) -> Vec<Binding> {
    let one = |(ip, net): (u128, Option<IpPrefix>)| Binding { this_ip: ip, this_subnet: net.map(Into::into), params: params.to_vec() };
    s.instances().into_iter().map(one).collect()
}

/// What a lease costs the router's capacity: its program's complexity once for
/// each instance (each address or prefix of the client's identity).
fn load_of(s: &Subject, complexity: u64) -> u64 {
    complexity.saturating_mul(s.instances().len() as u64)
}

/// Parameter values in declaration order: given by name, else the defaults.
fn resolve_params(module: &Module, given: &[(String, Const)]) -> Result<Vec<Const>, String> {
    for (n, _) in given {
        if !module.params.iter().any(|p| &p.name == n) {
            let names: Vec<&str> = module.params.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "the program has no parameter {n} (it declares: {})",
                if names.is_empty() { "none".into() } else { names.join(", ") }
            ));
        }
    }
    module
        .params
        .iter()
        .map(|p| {
            let v = given.iter().rev().find(|(n, _)| n == &p.name).map_or(&p.default, |(_, v)| v);
            if v.ty() != p.default.ty() {
                return Err(format!("parameter {}: expected {:?}, got {:?}", p.name, p.default.ty(), v.ty()));
            }
            Ok(v.clone())
        })
        .collect()
}

impl Admission {
    /// Open the store, verify the stored lemmas, re-check and re-install
    /// every lease still running, and return the admission side. `packets`
    /// is the started packet path.
    pub fn start(cfg: Config, router_key: [u8; 32], packets: PacketPath, metrics: Arc<Metrics>) -> Result<Arc<Admission>, String> {
        describe(&metrics);
        let store = Store::open(&cfg.database).map_err(|e| format!("{}: {e}", cfg.database.display()))?;
        let mut cache = LemmaCache::new();
        if let Some(lib) = &cfg.lemmas {
            let bytes = std::fs::read(lib).map_err(|e| format!("lemmas {}: {e}", lib.display()))?;
            let n = cache.admit_library(&bytes).map_err(|e| format!("lemma library {} refused: {e}", lib.display()))?;
            tracing::info!(lemmas = n.len(), library = %lib.display(), "lemma library verified");
        }
        let stored = store.lemmas().map_err(|e| e.to_string())?;
        let mut reloaded = 0usize;
        for bytes in &stored {
            match protocol::decode::<Lemma>(bytes).map_err(|e| e.to_string()).and_then(|l| cache.admit(&l).map_err(|e| e.to_string())) {
                Ok(_) => reloaded += 1,
                Err(e) => tracing::error!(error = %e, "a stored lemma does not check; dropped from the cache"),
            }
        }
        let trusted = cfg.authorities.iter().map(|a| a.key).collect();
        let next_lease = store.max_lease_id().map_err(|e| e.to_string())? + 1;
        let mut banned: BTreeMap<[u8; 32], String> = BTreeMap::new();
        for (k, _, note) in store.marks("ban").map_err(|e| e.to_string())? {
            if let Ok(k) = <[u8; 32]>::try_from(k.as_slice()) {
                banned.insert(k, note);
            }
        }
        for k in &cfg.revoked_keys {
            banned.insert(*k, "revoked by the router's config (revoked_keys)".into());
        }
        let lifted = store
            .marks("lift")
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|(x, ..)| match x.len() {
                4 => x.as_slice().try_into().ok().map(|b| mapped(u32::from_be_bytes(b))),
                _ => x.as_slice().try_into().ok().map(u128::from_be_bytes),
            })
            .collect();
        let state = State {
            store,
            queues: Queues::new(cfg.max_queue),
            load: Load { capacity: cfg.capacity, load: 0 },
            leases: BTreeMap::new(),
            instances: HashMap::new(),
            reserved: HashMap::new(),
            pending: HashMap::new(),
            checked: HashMap::new(),
            arrivals: 0,
            next_lease,
            blocked: BTreeSet::new(),
            asked: HashMap::new(),
            ends: BTreeSet::new(),
            discards: HashMap::new(),
            class_discards: HashMap::new(),
            banned,
            lifted,
            refusals: Default::default(),
            stopping: false,
        };
        let adm = Arc::new(Admission {
            cfg,
            router_key,
            trusted,
            state: Mutex::new(state),
            wake: Condvar::new(),
            lemmas: RwLock::new(cache),
            packets,
            metrics,
        });
        tracing::info!(lemmas = reloaded, "stored lemmas re-verified");
        adm.reload()?;
        Ok(adm)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; the state is still
        // consistent with the store (which is the truth), so go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The packet path.
    pub fn packets(&self) -> &PacketPath {
        &self.packets
    }

    /// Re-check and re-install the stored leases (the store is not trusted).
    fn reload(&self) -> Result<(), String> {
        let rows = self.lock().store.active_leases().map_err(|e| e.to_string())?;
        let now = now_ms();
        let (mut resumed, mut ended) = (0, 0);
        for row in rows {
            let end = |st: &mut State, why: &str| {
                tracing::warn!(lease = row.id, reason = why, "stored lease not resumed");
                let _ = st.store.end_lease(row.id, now, why);
            };
            let banned = self.lock().banned.get(&row.client).cloned(); // (the guard ends here)
            if let Some(why) = banned {
                end(&mut self.lock(), "banned");
                tracing::warn!(lease = row.id, %why, "its client is banned");
                ended += 1;
                continue;
            }
            if row.end_ms <= now {
                end(&mut self.lock(), "expired while the router was down");
                self.metrics.inc("vinet_leases_ended_total", &labels(&[("reason", "expired")]));
                ended += 1;
                continue;
            }
            let r = (|| -> Result<(), String> {
                let bundle = self.lock().store.bundle(&row.bundle).map_err(|e| e.to_string())?.ok_or("its bundle is missing")?;
                if blake3::hash(&bundle).as_bytes() != &row.bundle {
                    return Err("its stored bundle does not match its hash".into());
                }
                let id = SignedIdentity::from_file(&row.identity).map_err(|e| e.to_string())?;
                // The identity was valid when the lease began; the authority
                // must still be trusted.
                let v = id.verify(&self.trusted, row.start_ms / 1000).map_err(|e| e.to_string())?;
                if v.client.to_bytes() != row.client {
                    return Err("its identity binds another key".into());
                }
                let policy = *self.cfg.policy(kind_of(&v.subject)).ok_or("no policy for its client kind")?;
                let params: Vec<Const> = protocol::decode(&row.params)?;
                let t0 = Instant::now();
                let checked = vinet_checker::check(&bundle, &policy, &self.lemmas.read().unwrap_or_else(|p| p.into_inner()))
                    .map_err(|e| format!("re-check failed: {e}"))?;
                self.observe_check(t0);
                let program = Arc::new(Program::new(&checked));
                program.instantiate(&params).map_err(|e| e.to_string())?;
                let key: InstanceKey = (checked.id(), vinet_vocab::policy_digest(&policy), row.params.clone(), v.subject.instances().len());
                let st = self.lock();
                let shared = st.instances.contains_key(&key);
                let load = load_of(&v.subject, checked.complexity());
                if !shared && !st.load.fits(load) {
                    return Err(format!(
                        "complexity {} no longer fits (capacity {}, load {})",
                        checked.complexity(),
                        st.load.capacity,
                        st.load.load
                    ));
                }
                drop(st);
                self.packets.install(row.id, program, bindings(&v.subject, &params))?;
                let mut st = self.lock();
                let module = checked.module();
                let lease = Lease {
                    client: row.client,
                    subject: v.subject.clone(),
                    class: module.header.class,
                    module: checked.id(),
                    complexity: load,
                    cost: checked.cost(),
                    lifetime_ms: module.header.lifetime_secs.saturating_mul(1000),
                    instance: key.clone(),
                    sources: discarded_sources(module, &params),
                    end_ms: row.end_ms,
                    params: named(module, &params),
                    limit_ms: lease_limit(row.start_ms, &policy, v.not_after),
                };
                st.add_lease(row.id, lease);
                if self.cfg.check_cache {
                    st.checked.insert(check_key(&bundle, &policy), checked);
                }
                Ok(())
            })();
            match r {
                Ok(()) => resumed += 1,
                Err(why) => {
                    end(&mut self.lock(), &why);
                    self.metrics.inc("vinet_leases_ended_total", &labels(&[("reason", "reload_refused")]));
                    ended += 1;
                }
            }
        }
        let mut st = self.lock();
        self.update_blocks(&mut st);
        tracing::info!(resumed, ended, load = st.load.load, capacity = st.load.capacity, "leases reloaded and re-checked");
        Ok(())
    }

    fn observe_check(&self, t0: Instant) {
        self.metrics.observe("vinet_check_duration_seconds", t0.elapsed().as_secs_f64());
    }

    /// Handle one request message; never panics on any bytes.
    pub fn handle(&self, bytes: &[u8]) -> Reply {
        let reply = match protocol::decode::<Wire>(bytes) {
            Err(e) => refused((Refusal::Malformed, format!("malformed request: {e}"))),
            Ok(Wire::PublicStatus) => {
                self.metrics.inc("vinet_requests_total", &labels(&[("op", "public_status")]));
                Reply::Status(self.status(None))
            }
            Ok(Wire::Signed(s)) => {
                let t0 = Instant::now();
                let r = self.signed(&s);
                self.metrics.observe("vinet_request_duration_seconds", t0.elapsed().as_secs_f64());
                r
            }
        };
        if let Reply::Refused { reason, message } = &reply {
            let mut st = self.lock();
            st.refusals.push_back((now_ms(), reason.label(), message.clone()));
            if st.refusals.len() > KEPT_REFUSALS {
                st.refusals.pop_front();
            }
            drop(st);
            self.metrics.inc("vinet_refusals_total", &labels(&[("reason", reason.label())]));
            tracing::warn!(reason = reason.label(), %message, "request refused");
        }
        reply
    }

    /// Count a refusal that happened before a request could be read
    /// (oversized, busy, malformed framing).
    pub fn count_refusal(&self, r: Refusal, message: &str) {
        self.metrics.inc("vinet_refusals_total", &labels(&[("reason", r.label())]));
        tracing::warn!(reason = r.label(), %message, "request refused");
    }

    fn signed(&self, s: &protocol::SignedRequest) -> Reply {
        let a = match protocol::open(s) {
            Ok(a) => a,
            Err(r) => return refused(r),
        };
        let req = a.request;
        let op = match &req.op {
            Op::Upload { .. } => "upload",
            Op::Renew { .. } => "renew",
            Op::Withdraw { .. } => "withdraw",
            Op::Status => "status",
            Op::Lemmas { .. } => "lemmas",
        };
        self.metrics.inc("vinet_requests_total", &labels(&[("op", op)]));
        if req.router != self.router_key {
            return refused((Refusal::Malformed, "the request is addressed to another router (its router key differs)".into()));
        }
        let id = match req.identity.verify(&self.trusted, now_ms() / 1000) {
            Ok(v) => v,
            Err(e) => {
                let r = match e {
                    IdentityError::UnknownAuthority(_) => Refusal::UnknownAuthority,
                    IdentityError::Expired { .. } | IdentityError::NotYetValid { .. } => Refusal::Expired,
                    IdentityError::BadSignature(_) => Refusal::BadSignature,
                    IdentityError::Malformed { .. } => Refusal::Malformed,
                };
                return refused((r, e.to_string()));
            }
        };
        if id.client != a.key {
            return refused((
                Refusal::KeyMismatch,
                format!(
                    "the request is signed by key {} but the identity binds key {}",
                    hex(&a.key.as_bytes()[..8]),
                    hex(&id.client.as_bytes()[..8])
                ),
            ));
        }
        let dests = id.subject.dests();
        let served = |d: &IpPrefix| self.cfg.serves.iter().any(|p| p.covers(*d));
        if !self.cfg.serves.is_empty() && !dests.iter().all(served) {
            return refused((
                Refusal::NotServed,
                format!("this router does not serve {} (the identity's {})", dest_text(&id.subject), id.subject),
            ));
        }
        let Some(policy) = self.cfg.policy(kind_of(&id.subject)).copied() else {
            return refused((
                Refusal::NotServed,
                format!(
                    "this router takes no programs from {} clients",
                    if kind_of(&id.subject) == ClientKind::EndUser { "end-user" } else { "edge-router" }
                ),
            ));
        };
        let client = a.key.to_bytes();
        let grant = self
            .cfg
            .grants
            .iter()
            .find(|(p, _)| p.covers(dests[0]))
            .map(|g| g.1)
            .or_else(|| self.cfg.authorities.iter().find(|x| x.key == id.authority).map(|x| x.grant))
            .unwrap_or(0);
        let banned = self.lock().banned.get(&client).cloned();
        if let Some(why) = banned {
            return refused((Refusal::Revoked, format!("this router's operator revoked this key: {why}")));
        }
        let skew = req.timestamp_ms.abs_diff(now_ms());
        if skew > MAX_CLOCK_SKEW_MS {
            return refused((
                Refusal::Replay,
                format!(
                    "the request was signed {} s from this router's clock (at most {} s are taken)",
                    skew / 1000,
                    MAX_CLOCK_SKEW_MS / 1000
                ),
            ));
        }
        let hash = *blake3::hash(&protocol::encode(s)).as_bytes();
        let taken = self.lock().store.accept_seq(&client, req.seq, &hash, grant, now_ms());
        match taken {
            Ok(Taken::Fresh(_)) => {}
            Ok(Taken::Answered(bytes)) => {
                // A retry: the first answer, and nothing done or charged again.
                self.metrics.inc("vinet_retries_answered_total", "");
                return protocol::decode(&bytes).unwrap_or_else(|e| refused(internal(e)));
            }
            Ok(Taken::InFlight) => {
                return refused((Refusal::Busy, "this request is still being acted on; send it again for its answer".into()));
            }
            Ok(Taken::Refused(why)) => return refused((Refusal::Replay, why)),
            Err(e) => return refused(internal(e)),
        }
        let who = dest_text(&id.subject);
        let seq = req.seq;
        let reply = match req.op {
            Op::Status => Reply::Status(self.status(Some(&client))),
            Op::Withdraw { lease } => self.withdraw(&client, lease),
            Op::Renew { lease, pay } => self.renew(&client, seq, lease, pay),
            Op::Lemmas { lemmas } => self.admit_lemmas(&client, &lemmas),
            Op::Upload { bundle, pay, params } => {
                let t0 = Instant::now();
                let r = self.upload(client, seq, &req.identity, id.subject, policy, bundle, pay, &params);
                if let Reply::Admitted { lease, shared, complexity, .. } = &r {
                    tracing::info!(lease, client = %who, complexity, shared, ms = t0.elapsed().as_secs_f64() * 1e3, "admitted");
                }
                r
            }
        };
        // Admissions and renewals stored their answer with their effects.
        if let Err(e) = self.lock().store.answer(&client, seq, &protocol::encode(&reply)) {
            tracing::error!(error = %e, "the answer to a request could not be stored; a retry will be served afresh");
        }
        reply
    }

    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_arguments)]
    fn upload(
        &self, client: [u8; 32], seq: u64, identity: &SignedIdentity, subject: Subject, policy: Policy, bundle: Vec<u8>, pay: u64,
        given: &[(String, Const)],
    ) -> Reply {
        let b: Bundle = match decode_file(&bundle, BUNDLE_MAGIC, "bundle") {
            Ok(b) => b,
            Err(e) => return refused((Refusal::Malformed, format!("not a bundle: {e}"))),
        };
        let module = match Module::decode(&b.module) {
            Ok(m) => m,
            Err(e) => return refused((Refusal::Proof, format!("the checker refused the bundle: bytecode: {e}"))),
        };
        let params = match resolve_params(&module, given) {
            Ok(p) => p,
            Err(e) => return refused((Refusal::Malformed, e)),
        };
        let cost = b.declared.cost;
        let p = price(cost, self.cfg.cost_units_per_credit);
        if pay < p {
            return refused((
                Refusal::Payment,
                format!(
                    "pays {pay} credits, but the price of declared cost {cost} is {p} (1 credit per {} cost units)",
                    self.cfg.cost_units_per_credit
                ),
            ));
        }
        // Only the price is charged: what the client offered beyond it stays in its balance.
        let pay = p;
        {
            let lemmas = self.lemmas.read().unwrap_or_else(|p| p.into_inner());
            let lacking = |r: &&LemmaRef| matches!(lemmas.resolve(r), Err(ProofError::MissingLemma(_)));
            let missing: Vec<LemmaRef> = b.certificate.proof.lemmas.iter().filter(lacking).cloned().collect();
            if !missing.is_empty() {
                tracing::info!(missing = missing.len(), "certificate cites lemmas this router lacks: asking for them");
                drop(lemmas);
                self.lock().asked.entry(client).or_default().extend(missing.iter().cloned());
                return Reply::NeedLemmas { hashes: missing };
            }
        }
        let (tx, rx) = mpsc::channel();
        {
            let mut st = self.lock();
            let balance = match st.store.client(&client) {
                Ok(c) => c.map_or(0, |c| c.1),
                Err(e) => return refused(internal(e)),
            };
            let reserved = st.reserved.get(&client).copied().unwrap_or(0);
            let avail = balance.saturating_sub(reserved);
            if pay > avail {
                return refused((Refusal::Payment, format!("the balance ({avail} credits available) cannot cover the payment of {pay}")));
            }
            if st.pending.get(&client).copied().unwrap_or(0) >= self.cfg.max_pending_per_client {
                return refused((
                    Refusal::Busy,
                    format!("this client already has {} requests waiting; try again later", self.cfg.max_pending_per_client),
                ));
            }
            st.arrivals += 1;
            let arrival = st.arrivals;
            let job = Job {
                client,
                seq,
                identity: identity.to_file(),
                not_after: identity.cert.not_after,
                subject,
                policy,
                bundle,
                module,
                complexity: b.declared.complexity,
                params,
                pay,
                reply: tx,
            };
            if st.queues.push(arrival, pay, cost, job).is_err() {
                return refused((
                    Refusal::Busy,
                    format!("the router's admission queue is full ({} requests waiting); try again later", self.cfg.max_queue),
                ));
            }
            *st.reserved.entry(client).or_default() += pay;
            *st.pending.entry(client).or_default() += 1;
        }
        self.wake.notify_all();
        rx.recv().unwrap_or_else(|_| refused((Refusal::Internal, "the scheduler stopped before answering; nothing was admitted".into())))
    }

    /// The scheduler thread's loop: serve queued requests, end leases that
    /// expire. Returns when [`Admission::stop`] is called.
    pub fn run_scheduler(&self) {
        loop {
            let job = {
                let mut st = self.lock();
                loop {
                    if st.stopping {
                        return;
                    }
                    self.expire(&mut st);
                    if let Some(j) = st.queues.pop() {
                        break j;
                    }
                    let next = st.ends.first().map(|&(e, _)| e);
                    let wait = next.map_or(Duration::from_secs(1), |e| Duration::from_millis(e.saturating_sub(now_ms()).clamp(1, 1000)));
                    st = self.wake.wait_timeout(st, wait).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
                }
            };
            let reply = self.serve(&job);
            let mut st = self.lock();
            if let Some(r) = st.reserved.get_mut(&job.client) {
                *r = r.saturating_sub(job.pay);
            }
            if let Some(p) = st.pending.get_mut(&job.client) {
                *p = p.saturating_sub(1);
            }
            drop(st);
            // The connection thread counts and logs the reply.
            let _ = job.reply.send(reply);
        }
    }

    /// Stop the scheduler thread.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }

    /// Scheduler -> checker -> install -> commit, for one request.
    fn serve(&self, job: &Job) -> Reply {
        let module_id = Module::id_of(&decode_file::<Bundle>(&job.bundle, BUNDLE_MAGIC, "bundle").map(|b| b.module).unwrap_or_default());
        let key: InstanceKey =
            (module_id, vinet_vocab::policy_digest(&job.policy), protocol::encode(&job.params), job.subject.instances().len());
        let class = job.module.header.class;
        let sources = discarded_sources(&job.module, &job.params);
        let dest = dest_key(&job.subject);
        let load = load_of(&job.subject, job.complexity);
        // Scheduler: capacity and quotas.
        let shared = {
            let st = self.lock();
            let shared = st.instances.contains_key(&key);
            if !shared && !st.load.fits(load) {
                return refused((
                    Refusal::Capacity,
                    format!(
                        "complexity {load} ({} an instance, {} instances) does not fit: capacity {}, load {} ({} free)",
                        job.complexity,
                        job.subject.instances().len(),
                        st.load.capacity,
                        st.load.load,
                        st.load.capacity.saturating_sub(st.load.load)
                    ),
                ));
            }
            let quota = self.cfg.quota(class);
            for &x in &sources {
                let others = st.class_discards.get(&(class, x)).map_or(0, |d| d.len() - usize::from(d.contains_key(&dest)));
                if others >= quota {
                    return refused((
                        Refusal::Quota,
                        format!(
                            "the quota of {} programs against source {} is full ({quota} destinations)",
                            class_name(class),
                            addr_text(x)
                        ),
                    ));
                }
            }
            shared
        };
        // Checker.
        let ck = check_key(&job.bundle, &job.policy);
        let cached = if self.cfg.check_cache { self.lock().checked.get(&ck).cloned() } else { None };
        let checked = match cached {
            Some(c) => c,
            None => {
                let t0 = Instant::now();
                let r = vinet_checker::check(&job.bundle, &job.policy, &self.lemmas.read().unwrap_or_else(|p| p.into_inner()));
                self.observe_check(t0);
                match r {
                    Ok(c) => c,
                    Err(CheckError::Proof(ProofError::MissingLemma(h))) => {
                        self.lock().asked.entry(job.client).or_default().insert(h.clone());
                        return Reply::NeedLemmas { hashes: vec![h] };
                    }
                    Err(e) => return refused((Refusal::Proof, format!("the checker refused the bundle: {e}"))),
                }
            }
        };
        let program = Arc::new(Program::new(&checked));
        if let Err(e) = program.instantiate(&job.params) {
            return refused((Refusal::Malformed, e.to_string()));
        }
        // Install, then commit, then answer.
        let id = {
            let mut st = self.lock();
            st.next_lease += 1;
            st.next_lease - 1
        };
        if let Err(e) = self.packets.install(id, Arc::clone(&program), bindings(&job.subject, &job.params)) {
            return refused((Refusal::Internal, format!("the program could not be installed: {e}")));
        }
        let now = now_ms();
        let lifetime_ms = checked.module().header.lifetime_secs.saturating_mul(1000);
        let limit_ms = lease_limit(now, &job.policy, job.not_after);
        let end_ms = now.saturating_add(lifetime_ms).min(limit_ms);
        let params = protocol::encode(&job.params);
        let mut st = self.lock();
        let nl = NewLease {
            id,
            client: job.client,
            identity: &job.identity,
            bundle: &job.bundle,
            params: &params,
            start_ms: now,
            end_ms,
            paid: job.pay,
        };
        let (module, complexity, paid) = (checked.id().to_string(), checked.complexity(), job.pay);
        let notice = self.would_block(&st, &sources, dest);
        let stored = notice.clone();
        let answer = |balance| {
            protocol::encode(&Reply::Admitted { lease: id, module, complexity, expires_ms: end_ms, shared, paid, balance, notice: stored })
        };
        let balance = match st.store.admit(&nl, now, job.seq, answer) {
            Ok((_, b)) => b,
            Err(e) => {
                drop(st);
                self.packets.remove(id);
                return refused(internal(e));
            }
        };
        let lease = Lease {
            client: job.client,
            subject: job.subject.clone(),
            class,
            module: checked.id(),
            complexity: load,
            cost: checked.cost(),
            lifetime_ms,
            instance: key,
            sources,
            end_ms,
            params: named(&job.module, &job.params),
            limit_ms,
        };
        st.add_lease(id, lease);
        if self.cfg.check_cache {
            st.checked.insert(ck, checked.clone());
        }
        self.update_blocks(&mut st);
        self.metrics.inc("vinet_admissions_total", "");
        Reply::Admitted {
            lease: id,
            module: checked.id().to_string(),
            complexity: checked.complexity(),
            expires_ms: end_ms,
            shared,
            paid: job.pay,
            balance,
            notice,
        }
    }

    fn expire(&self, st: &mut State) {
        let now = now_ms();
        let due: Vec<u64> = st.ends.range(..=(now, u64::MAX)).map(|&(_, i)| i).collect();
        for id in due {
            self.end(st, id, "expired");
        }
    }

    /// End a lease: store, packet path, load, quotas, blocks.
    fn end(&self, st: &mut State, id: u64, reason: &'static str) {
        if let Err(e) = st.store.end_lease(id, now_ms(), reason) {
            tracing::error!(lease = id, error = %e, "could not record the end of a lease");
        }
        if let Some(l) = st.remove_lease(id) {
            self.packets.remove(id);
            self.metrics.inc("vinet_leases_ended_total", &labels(&[("reason", reason)]));
            tracing::info!(lease = id, reason, client = %dest_text(&l.subject), load = st.load.load, "lease ended");
        }
        self.update_blocks(st);
    }

    fn withdraw(&self, client: &[u8; 32], lease: u64) -> Reply {
        let mut st = self.lock();
        if st.leases.get(&lease).is_none_or(|l| &l.client != client) {
            return refused((Refusal::NoSuchLease, format!("no lease {lease} of this client is running")));
        }
        self.end(&mut st, lease, "withdrawn");
        Reply::Withdrawn { lease }
    }

    fn renew(&self, client: &[u8; 32], seq: u64, lease: u64, pay: u64) -> Reply {
        let mut st = self.lock();
        let Some(l) = st.leases.get(&lease).filter(|l| &l.client == client).cloned() else {
            return refused((Refusal::NoSuchLease, format!("no lease {lease} of this client is running")));
        };
        let p = price(l.cost, self.cfg.cost_units_per_credit);
        if pay < p {
            return refused((Refusal::Payment, format!("pays {pay} credits, but renewing costs {p}")));
        }
        let pay = p; // only the price is charged
        let balance = match st.store.client(client) {
            Ok(c) => c.map_or(0, |c| c.1),
            Err(e) => return refused(internal(e)),
        };
        let avail = balance.saturating_sub(st.reserved.get(client).copied().unwrap_or(0));
        if pay > avail {
            return refused((Refusal::Payment, format!("the balance ({avail} credits available) cannot cover the payment of {pay}")));
        }
        let now = now_ms();
        let end_ms = l.end_ms.max(now).saturating_add(l.lifetime_ms).min(l.limit_ms);
        if end_ms <= l.end_ms {
            return refused((
                Refusal::Lifetime,
                format!(
                    "lease {lease} already runs to {} ms, the latest this router allows it (the policy's max_lifetime from its start, \
                     and its identity's validity); nothing was charged",
                    l.limit_ms
                ),
            ));
        }
        let answer = |balance| protocol::encode(&Reply::Renewed { lease, expires_ms: end_ms, balance });
        match st.store.renew(lease, client, end_ms, pay, now, seq, answer) {
            Ok(balance) => {
                if let Some(x) = st.leases.get_mut(&lease) {
                    let old = std::mem::replace(&mut x.end_ms, end_ms);
                    st.ends.remove(&(old, lease));
                    st.ends.insert((end_ms, lease));
                }
                tracing::info!(lease, end_ms, "lease renewed");
                Reply::Renewed { lease, expires_ms: end_ms, balance }
            }
            Err(e) => refused(internal(e)),
        }
    }

    /// Verify and cache lemmas a client sends. Only lemmas this router asked
    /// that client for, and the lemmas those cite (sent in the same request),
    /// are taken: a client cannot fill the router's store with lemmas nobody
    /// needs.
    fn admit_lemmas(&self, client: &[u8; 32], lemmas: &[Lemma]) -> Reply {
        let mut wanted = self.lock().asked.get(client).cloned().unwrap_or_default();
        let hashes: Vec<LemmaHash> = lemmas.iter().map(Lemma::hash).collect();
        let asked_for = |wanted: &BTreeSet<LemmaRef>, h: &LemmaHash| wanted.iter().any(|r| r.names(h));
        for (l, h) in lemmas.iter().zip(&hashes).rev() {
            if asked_for(&wanted, h) {
                wanted.extend(l.proof.lemmas.iter().cloned());
            }
        }
        if let Some(h) = hashes.iter().find(|h| !asked_for(&wanted, h)) {
            return refused((
                Refusal::Lemma,
                format!("lemma {h} was not asked for (the router takes only the lemmas it asked for and what they cite)"),
            ));
        }
        let mut new = 0;
        for (l, h) in lemmas.iter().zip(&hashes) {
            // Replayed under the read lock, so that checks of other clients' bundles
            // go on meanwhile; only the insertion takes the write lock.
            let verified = {
                let cache = self.lemmas.read().unwrap_or_else(|p| p.into_inner());
                if cache.get(h).is_some() {
                    continue;
                }
                cache.verify(l)
            };
            match verified {
                Ok(v) => self.lemmas.write().unwrap_or_else(|p| p.into_inner()).insert(v),
                Err(e) => return refused((Refusal::Lemma, format!("lemma refused: {e}"))),
            };
            if let Err(e) = self.lock().store.add_lemma(&h.0, &protocol::encode(l)) {
                return refused(internal(e));
            }
            new += 1;
        }
        {
            let cache = self.lemmas.read().unwrap_or_else(|p| p.into_inner());
            let mut st = self.lock();
            if let Some(a) = st.asked.get_mut(client) {
                a.retain(|r| matches!(cache.resolve(r), Err(ProofError::MissingLemma(_))));
                if a.is_empty() {
                    st.asked.remove(client);
                }
            }
        }
        self.metrics.add("vinet_lemmas_admitted_total", "", new as f64);
        tracing::info!(new, sent = lemmas.len(), "lemmas verified and cached");
        Reply::LemmasAdmitted { new }
    }

    /// The sources more than N destinations discard are dropped for everyone.
    /// The notice an admission from `dest` discarding `sources` would set off:
    /// a source it would make the router drop for everyone.
    fn would_block(&self, st: &State, sources: &BTreeSet<u128>, dest: IpPrefix) -> Option<String> {
        let n = self.cfg.drop_for_everyone;
        let hit: Vec<String> = sources
            .iter()
            .filter(|x| !st.blocked.contains(x) && !st.lifted.contains(x))
            .filter(|x| {
                let mut d = st.discards.get(x).cloned().unwrap_or_default();
                *d.entry(dest).or_default() += 1;
                networks(&d) > n
            })
            .map(|&x| addr_text(x))
            .collect();
        (!hit.is_empty()).then(|| {
            format!(
                "with this program more than {n} networks discard {}: the router now drops it for everyone, and its operator is alerted",
                hit.join(", ")
            )
        })
    }

    /// The sources more than N independent networks discard are dropped for
    /// everyone (see [`networks`]); returns the alerts raised.
    fn update_blocks(&self, st: &mut State) -> Vec<String> {
        let n = self.cfg.drop_for_everyone;
        let blocked: BTreeSet<u128> =
            st.discards.iter().filter(|(x, d)| d.len() > n && networks(d) > n && !st.lifted.contains(x)).map(|(&x, _)| x).collect();
        if blocked == st.blocked {
            return vec![];
        }
        let mut alerts = vec![];
        for &x in blocked.difference(&st.blocked) {
            let d = st.discards.get(&x).map(|d| d.keys().map(IpPrefix::to_string).collect::<Vec<_>>()).unwrap_or_default();
            let why = format!(
                "source {} is dropped for everyone: {} destinations in more than {n} networks discard it ({})",
                addr_text(x),
                d.len(),
                d.join(", ")
            );
            tracing::warn!(alert = "source_dropped_for_everyone", source = %addr_text(x), threshold = n, "ALERT: {why}");
            self.metrics.inc("vinet_alerts_total", &labels(&[("kind", "source_dropped_for_everyone")]));
            alerts.push(why);
        }
        for &x in st.blocked.difference(&blocked) {
            tracing::info!(source = %addr_text(x), "source no longer dropped for everyone");
        }
        st.blocked = blocked.clone();
        self.packets.block(blocked);
        alerts
    }

    /// Start taking live traffic (after [`Admission::start`] reloaded every
    /// stored lease): vinetd's kernel hooks, then its queues.
    pub fn go_live(&self) -> Result<(), String> {
        self.packets.go_live()?;
        let (local, windowed) = self.packets.lanes();
        tracing::info!(local_lanes = local, windowed_lanes = windowed, "taking live traffic");
        Ok(())
    }

    /// The status, with a client's balance and leases if given.
    pub fn status(&self, client: Option<&[u8; 32]>) -> Status {
        let snap = self.packets.snapshot();
        let st = self.lock();
        let mut s = Status {
            capacity: st.load.capacity,
            load: st.load.load,
            installed: st.leases.len() as u64,
            instances: st.instances.len() as u64,
            queues: st.queues.lengths(),
            blocked_sources: st.blocked.iter().map(|&x| addr_text(x)).collect(),
            block_reasons: st
                .blocked
                .iter()
                .map(|x| {
                    let d = st.discards.get(x).map_or(0, |d| d.len());
                    let nets = st.discards.get(x).map_or(0, networks);
                    format!(
                        "{}: {d} destinations in {nets} networks discard it, more than this router's {} (drop_for_everyone); its operator can lift the block",
                        addr_text(*x),
                        self.cfg.drop_for_everyone
                    )
                })
                .collect(),
            balance: None,
            leases: vec![],
            cost_units_per_credit: self.cfg.cost_units_per_credit,
        };
        if let Some(c) = client {
            s.balance = st.store.client(c).ok().flatten().map(|x| x.1);
            s.leases = st
                .leases
                .iter()
                .filter(|(_, l)| &l.client == c)
                .map(|(&id, l)| {
                    let ps = snap.programs.get(&id).copied().unwrap_or_default();
                    LeaseInfo {
                        lease: id,
                        dest: dest_text(&l.subject),
                        module: l.module.to_string(),
                        complexity: l.complexity,
                        shared: st.instances.get(&l.instance).is_some_and(|i| i.1 > 1),
                        expires_ms: l.end_ms,
                        limit_ms: l.limit_ms,
                        params: l.params.clone(),
                        packets: ps.packets_in,
                        dropped: ps.discarded,
                        generated: ps.generated,
                    }
                })
                .collect();
        }
        s
    }

    /// The Prometheus page.
    pub fn render_metrics(&self) -> String {
        let snap = self.packets.snapshot();
        let mut extra: Vec<(&'static str, String, f64)> = vec![];
        {
            let st = self.lock();
            extra.push(("vinet_capacity", String::new(), st.load.capacity as f64));
            extra.push(("vinet_load", String::new(), st.load.load as f64));
            extra.push(("vinet_leases", String::new(), st.leases.len() as f64));
            extra.push(("vinet_instances", String::new(), st.instances.len() as f64));
            extra.push(("vinet_queued_requests", String::new(), st.queues.len() as f64));
            for (c, n) in st.queues.lengths() {
                extra.push(("vinet_queue_length", labels(&[("class", &c.to_string())]), n as f64));
            }
            extra.push(("vinet_sources_blocked", String::new(), st.blocked.len() as f64));
        }
        let r = snap.router;
        for (n, v) in [
            ("vinet_packets_received_total", snap.received),
            ("vinet_frames_total", r.frames_in),
            ("vinet_frames_forwarded_total", r.forwarded),
            ("vinet_frames_dropped_total", r.discarded),
            ("vinet_packets_generated_total", r.generated),
            ("vinet_windows_total", r.windows),
            ("vinet_frames_unparsed_total", r.unparsed),
            ("vinet_frames_not_ip_total", r.not_ip),
            ("vinet_fragment_verdicts_total", r.fragment_verdicts),
            ("vinet_generations_skipped_total", r.skipped_generations),
            ("vinet_program_runs_total", r.runs),
            ("vinet_program_faults_total", r.faults),
            ("vinet_blocked_source_dropped_total", snap.blocked_dropped),
            ("vinet_generated_sent_total", snap.generated_sent),
            ("vinet_generated_failed_total", snap.generated_failed),
            ("vinet_verdict_errors_total", snap.verdict_errors),
        ] {
            extra.push((n, String::new(), v as f64));
        }
        extra.push(("vinet_nfqueue_malformed_total", String::new(), snap.malformed as f64));
        extra.push(("vinet_read_batches_total", String::new(), snap.batches as f64));
        #[cfg(target_os = "linux")]
        if let LiveMode::Nfqueue(n) = self.cfg.live {
            let queues = if n.hooks { n.queue..=n.queue + n.threads + n.window_threads - 1 } else { n.queue..=n.queue };
            let (mut full, mut user) = (0, 0);
            for q in queues {
                if let Some((f, u)) = nfqueue_drops(q) {
                    full += f;
                    user += u;
                }
            }
            extra.push(("vinet_nfqueue_dropped_total", labels(&[("reason", "queue_full")]), full as f64));
            extra.push(("vinet_nfqueue_dropped_total", labels(&[("reason", "user")]), user as f64));
            if n.hooks {
                // The kernel's own counts, from vinetd's nftables table.
                for (name, packets) in crate::live::hooks::counters().unwrap_or_default() {
                    let metric = match name.as_str() {
                        "blocked" => "vinet_kernel_blocked_dropped_total",
                        "window" => "vinet_kernel_queued_windowed_total",
                        "local" => "vinet_kernel_queued_local_total",
                        "ipv6" if n.ipv6_drop => "vinet_ipv6_dropped_total",
                        "ipv6" => "vinet_ipv6_forwarded_total",
                        _ => continue,
                    };
                    extra.push((metric, String::new(), packets as f64));
                }
            }
        }
        self.metrics.render(&extra)
    }

    /// One operator command (`vinetd ctl`, over the local socket only the
    /// operator can reach): the answer's lines, or why the command failed.
    pub fn operate(&self, words: &[&str]) -> Result<String, String> {
        use std::fmt::Write as _;
        let key = |w: Option<&&str>| -> Result<[u8; 32], String> {
            let w = w.ok_or("which client? give the hex of its key (as `clients` lists it)")?;
            vinet_proto::identity::unhex::<32>(w).map_err(|e| format!("{w:?} is not a client key: {e}"))
        };
        let source = |w: Option<&&str>| -> Result<u128, String> {
            let w = w.ok_or("which source? give its address")?;
            parse_addr(w).ok_or_else(|| format!("{w:?} is not an IPv4 or IPv6 address"))
        };
        let now = now_ms();
        let mut out = String::new();
        match words.first().copied().unwrap_or("help") {
            "leases" => {
                let st = self.lock();
                for (id, l) in &st.leases {
                    let params: Vec<String> = l.params.iter().map(|(n, v)| format!("{n}={v}")).collect();
                    let _ = writeln!(
                        out,
                        "lease {id}: client {} for {}, module {}, {} complexity {}, ends in {} s (renewable to {} s){}",
                        vinet_proto::identity::hex(&l.client),
                        dest_text(&l.subject),
                        &l.module.to_string()[..16],
                        class_name(l.class),
                        l.complexity,
                        l.end_ms.saturating_sub(now) / 1000,
                        l.limit_ms.saturating_sub(now) / 1000,
                        if params.is_empty() { String::new() } else { format!(", {}", params.join(" ")) }
                    );
                }
            }
            "clients" => {
                let st = self.lock();
                for (k, seq, balance) in st.store.clients().map_err(|e| e.to_string())? {
                    let leases = st.leases.values().filter(|l| l.client == k).count();
                    let ban = st.banned.get(&k).map_or(String::new(), |why| format!(", BANNED: {why}"));
                    let _ = writeln!(
                        out,
                        "client {}: balance {balance}, {leases} leases, last request {seq}{ban}",
                        vinet_proto::identity::hex(&k)
                    );
                }
            }
            "blocks" => {
                let st = self.lock();
                for (&x, d) in &st.discards {
                    let state = if st.blocked.contains(&x) {
                        "DROPPED FOR EVERYONE"
                    } else if st.lifted.contains(&x) {
                        "lifted by the operator"
                    } else {
                        continue;
                    };
                    let dests: Vec<String> = d.keys().map(IpPrefix::to_string).collect();
                    let _ = writeln!(out, "source {}: {state}; {} destinations discard it: {}", addr_text(x), d.len(), dests.join(", "));
                }
            }
            "evict" => {
                let id: u64 = words.get(1).and_then(|w| w.parse().ok()).ok_or("which lease? give its number (as `leases` lists it)")?;
                let mut st = self.lock();
                if !st.leases.contains_key(&id) {
                    return Err(format!("no lease {id} is running"));
                }
                self.end(&mut st, id, "evicted");
                let _ = writeln!(out, "lease {id} evicted");
            }
            "ban" => {
                let k = key(words.get(1))?;
                let why = if words.len() > 2 { words[2..].join(" ") } else { "banned by the operator".into() };
                let mut st = self.lock();
                st.store.mark("ban", &k, now, &why).map_err(|e| e.to_string())?;
                st.banned.insert(k, why);
                let ids: Vec<u64> = st.leases.iter().filter(|(_, l)| l.client == k).map(|(&i, _)| i).collect();
                for &id in &ids {
                    self.end(&mut st, id, "banned");
                }
                let _ = writeln!(out, "client {} banned; {} of its leases ended", vinet_proto::identity::hex(&k), ids.len());
            }
            "unban" => {
                let k = key(words.get(1))?;
                if self.cfg.revoked_keys.contains(&k) {
                    return Err("this key is revoked by the router's config (revoked_keys): remove it there".into());
                }
                let mut st = self.lock();
                let was = st.store.unmark("ban", &k).map_err(|e| e.to_string())?;
                st.banned.remove(&k);
                let _ = writeln!(out, "client {} {}", vinet_proto::identity::hex(&k), if was { "unbanned" } else { "was not banned" });
            }
            "lift" => {
                let x = source(words.get(1))?;
                let mut st = self.lock();
                st.store.mark("lift", &x.to_be_bytes(), now, "lifted by the operator").map_err(|e| e.to_string())?;
                st.lifted.insert(x);
                self.update_blocks(&mut st);
                let _ = writeln!(out, "source {}: the drop-for-everyone block is lifted", addr_text(x));
            }
            "refusals" => {
                for (at, reason, message) in &self.lock().refusals {
                    let _ = writeln!(out, "{} s ago: {reason}: {message}", now.saturating_sub(*at) / 1000);
                }
            }
            "help" => out.push_str(OPERATOR_HELP),
            other => return Err(format!("unknown command {other:?}\n{OPERATOR_HELP}")),
        }
        Ok(out)
    }

    /// Lease ids and ends of a client (tests).
    pub fn leases_of(&self, client: &[u8; 32]) -> Vec<(u64, u64)> {
        self.lock().leases.iter().filter(|(_, l)| &l.client == client).map(|(&i, l)| (i, l.end_ms)).collect()
    }
}

fn check_key(bundle: &[u8], policy: &Policy) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&vinet_vocab::policy_digest(policy));
    h.update(bundle);
    *h.finalize().as_bytes()
}

impl State {
    fn add_lease(&mut self, id: u64, l: Lease) {
        let e = self.instances.entry(l.instance.clone()).or_insert((l.complexity, 0));
        if e.1 == 0 {
            self.load.add(l.complexity);
        }
        e.1 += 1;
        self.ends.insert((l.end_ms, id));
        let dest = dest_key(&l.subject);
        for &x in &l.sources {
            *self.discards.entry(x).or_default().entry(dest).or_default() += 1;
            *self.class_discards.entry((l.class, x)).or_default().entry(dest).or_default() += 1;
        }
        self.leases.insert(id, l);
    }

    fn remove_lease(&mut self, id: u64) -> Option<Lease> {
        let l = self.leases.remove(&id)?;
        self.ends.remove(&(l.end_ms, id));
        let dest = dest_key(&l.subject);
        for &x in &l.sources {
            for map in [self.discards.get_mut(&x), self.class_discards.get_mut(&(l.class, x))].into_iter().flatten() {
                if let Some(c) = map.get_mut(&dest) {
                    *c -= 1;
                    if *c == 0 {
                        map.remove(&dest);
                    }
                }
            }
            if self.discards.get(&x).is_some_and(HashMap::is_empty) {
                self.discards.remove(&x);
            }
            if self.class_discards.get(&(l.class, x)).is_some_and(HashMap::is_empty) {
                self.class_discards.remove(&(l.class, x));
            }
        }
        if let Some(e) = self.instances.get_mut(&l.instance) {
            e.1 -= 1;
            if e.1 == 0 {
                self.load.release(e.0);
                self.instances.remove(&l.instance);
                if !self.leases.values().any(|x| x.module == l.module) {
                    self.checked.retain(|_, c| c.id() != l.module);
                }
            }
        }
        Some(l)
    }
}

/// The kernel's drop counts of an NFQUEUE queue: (dropped because the queue
/// was full, dropped because vinetd's socket could not take them), from
/// `/proc/net/netfilter/nfnetlink_queue` (absent while nothing is bound).
fn nfqueue_drops(queue: u16) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        (f.len() >= 7 && f[0] == u64::from(queue)).then(|| (f[5], f[6]))
    })
}

fn describe(m: &Metrics) {
    m.describe_histogram("vinet_check_duration_seconds", "Seconds the checker took over a bundle.");
    m.describe_histogram("vinet_request_duration_seconds", "Seconds from a signed request's arrival to its answer.");
    // Every label value known in advance is there from the start, at zero.
    for r in Refusal::ALL {
        m.add("vinet_refusals_total", &labels(&[("reason", r.label())]), 0.0);
    }
    for op in ["upload", "renew", "withdraw", "status", "lemmas", "public_status"] {
        m.add("vinet_requests_total", &labels(&[("op", op)]), 0.0);
    }
    for (n, k, h) in [
        ("vinet_requests_total", "counter", "Requests received, by operation."),
        ("vinet_admissions_total", "counter", "Programs admitted and installed."),
        ("vinet_refusals_total", "counter", "Requests refused, by reason."),
        ("vinet_retries_answered_total", "counter", "Retried requests answered with their first answer."),
        ("vinet_connections_shed_total", "counter", "Connections cut off to make room: the ones that waited longest for their client."),
        ("vinet_leases_ended_total", "counter", "Leases ended, by reason."),
        ("vinet_alerts_total", "counter", "Alerts raised (sources dropped for everyone)."),
        ("vinet_lemmas_admitted_total", "counter", "Lemmas received from clients, verified and cached."),
        ("vinet_connections_total", "counter", "Connections accepted."),
        ("vinet_disconnects_total", "counter", "Connections that failed or closed mid-request."),
        ("vinet_capacity", "gauge", "Capacity: cost units per window."),
        ("vinet_load", "gauge", "Load: sum of the complexities of the distinct running instances."),
        ("vinet_leases", "gauge", "Leases running."),
        ("vinet_instances", "gauge", "Distinct program instances running."),
        ("vinet_queued_requests", "gauge", "Uploads waiting for the scheduler."),
        ("vinet_queue_length", "gauge", "Uploads waiting, by cost class."),
        ("vinet_sources_blocked", "gauge", "Sources dropped for everyone (which ones: vinetc status)."),
        ("vinet_program_runs_total", "counter", "Program runs (one a window and installed client with packets)."),
        ("vinet_program_faults_total", "counter", "Program runs that faulted (their effects thrown away)."),
        ("vinet_frames_unparsed_total", "counter", "Frames that did not parse (forwarded untouched)."),
        ("vinet_frames_not_ip_total", "counter", "Frames that parsed but are no packet of a window: neither IPv4 nor IPv6, or IPv6 with an IPv4-mapped address (forwarded untouched)."),
        ("vinet_fragment_verdicts_total", "counter", "Later IPv6 fragments given the verdict of their datagram's first fragment."),
        ("vinet_generations_skipped_total", "counter", "GENERATEs that sent nothing: their source and destination are of different families."),
        ("vinet_nfqueue_dropped_total", "counter", "Packets the kernel dropped before vinetd saw them, by reason."),
        ("vinet_packets_received_total", "counter", "Packets received from the live source."),
        ("vinet_frames_total", "counter", "Frames that entered a window."),
        ("vinet_frames_forwarded_total", "counter", "Frames accepted."),
        ("vinet_frames_dropped_total", "counter", "Frames dropped by programs."),
        ("vinet_packets_generated_total", "counter", "Packets generated by programs."),
        ("vinet_windows_total", "counter", "Windows run."),
        ("vinet_blocked_source_dropped_total", "counter", "Packets dropped because their source is dropped for everyone."),
        ("vinet_generated_sent_total", "counter", "Generated packets sent."),
        ("vinet_generated_failed_total", "counter", "Generated packets the raw socket refused."),
        ("vinet_verdict_errors_total", "counter", "Verdicts the kernel refused."),
        ("vinet_nfqueue_malformed_total", "counter", "Messages from NFQUEUE that were not whole packets."),
        ("vinet_read_batches_total", "counter", "Batches of packets read from NFQUEUE (a packet-local lane decides each at once)."),
        ("vinet_kernel_blocked_dropped_total", "counter", "Packets from sources dropped for everyone, dropped in the kernel."),
        ("vinet_kernel_queued_windowed_total", "counter", "Packets the kernel queued to the windowed lane."),
        ("vinet_kernel_queued_local_total", "counter", "Packets the kernel queued to the packet-local lanes."),
        ("vinet_ipv6_forwarded_total", "counter", "Forwarded IPv6 packets to no client with programs (no program sees them), forwarded untouched (ipv6 = \"forward\")."),
        ("vinet_ipv6_dropped_total", "counter", "Forwarded IPv6 packets to no client with programs (no program sees them), dropped (ipv6 = \"drop\")."),
    ] {
        m.describe(n, k, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveSource;
    use proptest::prelude::*;
    use vinet_engine::window::WindowConfig;
    use vinet_proto::identity::{issue, SigningKey};

    /// An admission side over a scratch database, no live traffic.
    fn admission(name: &str, authority: &SigningKey) -> (Arc<Admission>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vinet-adm-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = std::fs::read_to_string(root.join("examples/router.toml"))
            .unwrap()
            .replace("/var/lib/vinet/", &format!("{}/", dir.display()))
            .replace("\"policies/", &format!("\"{}/examples/policies/", root.display()))
            .replace("key_file = \"operator.key.pub\"", &format!("key = \"{}\"", hex(authority.verifying_key().as_bytes())));
        let cfg = Config::parse(&text, &dir).unwrap();
        let packets = PacketPath::start(WindowConfig::new(256, 5), LiveSource::None).unwrap();
        (Admission::start(cfg, [9; 32], packets, Arc::new(Metrics::default())).unwrap(), dir)
    }

    fn status_request(authority: &SigningKey, seq: u64) -> Vec<u8> {
        let k = SigningKey::from_bytes(&[3; 32]);
        let id = issue(authority, &k.verifying_key(), Subject::EndUser { ip: 0x0a00_0001 }, 0, u64::MAX / 2).unwrap();
        let r = protocol::Request {
            version: protocol::PROTOCOL_VERSION,
            router: [9; 32],
            seq,
            timestamp_ms: now_ms(),
            client: k.verifying_key().to_bytes(),
            identity: id,
            op: Op::Status,
        };
        protocol::encode(&Wire::Signed(protocol::sign(&r, &k)))
    }

    #[test]
    fn lemmas_are_taken_only_when_asked_for() {
        use vinet_checker::cert::{Proof, Step, TermNode};
        use vinet_checker::logic::Sym;
        let auth = SigningKey::from_bytes(&[1; 32]);
        let (a, dir) = admission("lemmas", &auth);
        // |- true, a valid lemma nobody asked for.
        let lemma = Lemma {
            name: "spam".into(),
            statement: 0,
            proof: Proof { lemmas: vec![], terms: vec![TermNode::App(Sym::True, vec![])], steps: vec![Step::Eval { t: 0 }] },
        };
        let k = SigningKey::from_bytes(&[3; 32]);
        let id = issue(&auth, &k.verifying_key(), Subject::EndUser { ip: 0x0a00_0001 }, 0, u64::MAX / 2).unwrap();
        let send = |seq: u64, lemmas: Vec<Lemma>| {
            let r = protocol::Request {
                version: protocol::PROTOCOL_VERSION,
                router: [9; 32],
                seq,
                timestamp_ms: now_ms(),
                client: k.verifying_key().to_bytes(),
                identity: id.clone(),
                op: Op::Lemmas { lemmas },
            };
            a.handle(&protocol::encode(&Wire::Signed(protocol::sign(&r, &k))))
        };
        assert!(matches!(send(1, vec![lemma.clone()]), Reply::Refused { reason: Refusal::Lemma, .. }));
        // Once asked for, it is verified, cached and stored.
        a.lock().asked.entry(k.verifying_key().to_bytes()).or_default().insert(LemmaRef(lemma.hash().0[..4].to_vec()));
        assert_eq!(send(2, vec![lemma.clone()]), Reply::LemmasAdmitted { new: 1 });
        assert_eq!(a.lock().store.lemmas().unwrap().len(), 1);
        assert!(a.lock().asked.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any bytes, and any one-byte change of a valid request, get an
        /// answer (a refusal, or the status for an intact request), never a
        /// panic; a replay of the same bytes is refused.
        #[test]
        fn hostile_requests_get_answers(bytes in proptest::collection::vec(any::<u8>(), 0..400), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let auth = SigningKey::from_bytes(&[1; 32]);
            thread_local!(static A: (Arc<Admission>, std::path::PathBuf) = admission("fuzz", &SigningKey::from_bytes(&[1; 32])));
            A.with(|(a, _)| {
                let r = a.handle(&bytes);
                prop_assert!(matches!(r, Reply::Refused { .. } | Reply::Status(_)), "{:?}", r);
                static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut m = status_request(&auth, seq);
                let i = pos.index(m.len());
                m[i] ^= flip;
                match a.handle(&m) {
                    Reply::Refused { .. } => {}
                    Reply::Status(_) => prop_assert!(false, "a changed request was accepted"),
                    other => prop_assert!(false, "{:?}", other),
                }
                let ok = status_request(&auth, 1_000_000 + seq);
                let r = a.handle(&ok);
                prop_assert!(matches!(r, Reply::Status(_)), "{:?}", r);
                // The same request again is a retry: the same answer, nothing done twice.
                let again = a.handle(&ok);
                prop_assert_eq!(protocol::encode(&again), protocol::encode(&r));
                Ok(())
            })?;
        }
    }

    #[test]
    fn params_resolve_by_name() {
        let m = vinet_lang::compile("t", b"LIFETIME = 1 hours\nPARAM A = 1.2.3.4; PARAM W = \"x\";\nDISCARD(GROUP_BY_SOURCE(GROUP_BY_DESTINATION(AllPackets, THIS_IP), A));\nB = CONTAINS_STRING(AllPackets, W);", &[]);
        let m = m.unwrap_or_else(|d| panic!("{}", d.render())).module;
        assert_eq!(resolve_params(&m, &[]).unwrap(), vec![Const::Addr(0x0102_0304), Const::Str("x".into())]);
        assert_eq!(resolve_params(&m, &[("A".into(), Const::Addr(9))]).unwrap()[0], Const::Addr(9));
        assert!(resolve_params(&m, &[("B".into(), Const::Addr(9))]).unwrap_err().contains("no parameter B"));
        assert!(resolve_params(&m, &[("A".into(), Const::Num(9))]).unwrap_err().contains("expected Addr"));
    }

    /// Destinations in one IPv4 /24 or one IPv6 /48 are one network.
    #[test]
    fn networks_are_sites_of_either_family() {
        let d = |ps: &[&str]| ps.iter().map(|p| (p.parse::<IpPrefix>().unwrap(), 1)).collect::<HashMap<_, _>>();
        assert_eq!(networks(&d(&["10.0.3.2", "10.0.3.7", "10.0.4.2", "10.0.0.0/8"])), 3);
        assert_eq!(networks(&d(&["2001:db8:1::2", "2001:db8:1:ff::9", "2001:db8:2::1", "2001:db8::/32"])), 3);
        assert_eq!(networks(&d(&["10.0.3.2", "::ffff:10.0.3.9", "fd00:3::2"])), 2);
    }
}
