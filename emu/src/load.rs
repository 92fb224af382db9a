//! The bulk upload client: `vinet-emu load SPEC.json`, run by the emulator
//! inside a host's namespace for a `load` event (question 1: how fast one
//! router admits programs, and how it forwards with many installed).
//!
//! It is the one part of the emulator that links vinet's own crates (the
//! client side of the upload protocol, vinet-proto, and the type of a
//! parameter's value, vinet-checker's `Const`): thousands of uploads a
//! second cannot be made one `vinetc` process each (a process start costs
//! more than the router's whole admission), and identities for a thousand
//! clients cannot be issued one `vinetc identity issue` each in the time of a
//! run. So it issues the clients' end-user identities itself, with the
//! run's authority key (the emulator is the run's operator), and makes each
//! upload as `vinetc upload` does: a new TCP connection, the Noise
//! handshake, a signed request with a fresh sequence number. It never links
//! the router. The uploads share one bundle and bind one parameter to a
//! different value each (so each is a new instance, none shares one).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vinet_checker::bytecode::Const;
use vinet_proto::client::Client;
use vinet_proto::identity::{generate_key, issue, parse_secret_key, Subject};
use vinet_proto::keyfile::parse_router_public;
use vinet_proto::protocol::{Op, Reply};

/// What one load does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSpec {
    /// The router's request address, HOST:PORT.
    pub router: String,
    /// The router's public key file.
    pub router_key: PathBuf,
    /// The authority's secret key (issues the clients' identities).
    pub authority: PathBuf,
    /// The bundle every upload sends.
    pub bundle: PathBuf,
    /// Uploads.
    pub programs: usize,
    /// Clients (identities); upload `j` is client `j % clients`'s.
    pub clients: usize,
    /// Uploads in flight at once (each client's own uploads go one at a time).
    pub concurrency: usize,
    /// Client `k` is the end user of this address plus `k` (host order).
    pub first_client: u32,
    /// The parameter each upload binds to an address of its own.
    pub vary: String,
    /// Upload `j` binds it to this address plus `j` (host order).
    pub first_value: u32,
    /// Credits each upload pays.
    pub pay: u64,
    /// No upload starts after this many seconds.
    pub max_secs: f64,
}

/// What a load did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Uploads asked for.
    pub programs: usize,
    /// Clients.
    pub clients: usize,
    /// Uploads in flight at once.
    pub concurrency: usize,
    /// Admitted.
    pub admitted: usize,
    /// Refused, by the router's reason (its metric label); "no_answer" for
    /// an upload that got none (connection refused or cut, timeout).
    pub refused: BTreeMap<String, usize>,
    /// Seconds issuing the identities took (before the first upload).
    pub identity_secs: f64,
    /// Seconds from the first upload's connection to the last reply.
    pub secs: f64,
    /// Admitted uploads per second over `secs`.
    pub admitted_per_sec: f64,
    /// Median time of one upload, connection to reply, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
}

fn read(p: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Run a load: returns what it did.
pub fn run(spec: &LoadSpec) -> Result<LoadResult, String> {
    if spec.programs == 0 || spec.clients == 0 || spec.concurrency == 0 {
        return Err("programs, clients and concurrency must be at least 1".into());
    }
    let router = parse_router_public(&String::from_utf8_lossy(&read(&spec.router_key)?))?;
    let authority = parse_secret_key(&String::from_utf8_lossy(&read(&spec.authority)?)).map_err(|e| e.to_string())?;
    let bundle = Arc::new(read(&spec.bundle)?);
    let t_ids = Instant::now();
    let now = vinet_proto::clock::unix_now();
    let mut ids = vec![];
    for k in 0..spec.clients {
        let key = generate_key()?;
        let id = issue(&authority, &key.verifying_key(), Subject::EndUser { ip: spec.first_client + k as u32 }, now - 60, now + 86_400)
            .map_err(|e| e.to_string())?;
        ids.push((key, id));
    }
    let identity_secs = t_ids.elapsed().as_secs_f64();
    // Thread t serves the clients k with k % threads == t, each client's uploads in order.
    let threads = spec.concurrency.min(spec.clients);
    let ids = Arc::new(ids);
    let outcomes: Arc<Mutex<Vec<(String, f64)>>> = Arc::new(Mutex::new(Vec::with_capacity(spec.programs)));
    let started = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(spec.max_secs.clamp(1.0, 600.0));
    let mut handles = vec![];
    for t in 0..threads {
        let (ids, outcomes, started, bundle, spec) = (ids.clone(), outcomes.clone(), started.clone(), bundle.clone(), spec.clone());
        handles.push(std::thread::spawn(move || {
            let mut j = t;
            while j < spec.programs {
                // Uploads j, j + clients, ... are client j % clients's; this thread takes
                // the clients t, t + threads, ...
                if (j % spec.clients) % threads != t {
                    j += 1;
                    continue;
                }
                if Instant::now() >= deadline {
                    break;
                }
                started.fetch_add(1, Ordering::SeqCst);
                let (key, id) = &ids[j % spec.clients];
                let t_up = Instant::now();
                let value = Const::Addr(spec.first_value.wrapping_add(j as u32));
                let op = Op::Upload { bundle: bundle.to_vec(), pay: spec.pay, params: vec![(spec.vary.clone(), value)] };
                let outcome = match Client::connect(&spec.router, router, Duration::from_secs(30)) {
                    Err(_) => "no_answer".to_string(),
                    Ok(c) => match c.with_identity(key.clone(), id.clone(), None).request(op) {
                        Ok(Reply::Admitted { .. }) => "admitted".into(),
                        Ok(Reply::Refused { reason, .. }) => reason.label().into(),
                        Ok(Reply::NeedLemmas { .. }) => "need_lemmas".into(),
                        Ok(_) => "unexpected_reply".into(),
                        Err(_) => "no_answer".into(),
                    },
                };
                outcomes.lock().expect("outcomes").push((outcome, t_up.elapsed().as_secs_f64() * 1000.0));
                j += 1;
            }
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    let secs = t0.elapsed().as_secs_f64();
    let outcomes = outcomes.lock().expect("outcomes").clone();
    let mut r =
        LoadResult { programs: spec.programs, clients: spec.clients, concurrency: threads, identity_secs, secs, ..LoadResult::default() };
    let mut ms: Vec<f64> = outcomes.iter().map(|o| o.1).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |q: f64| if ms.is_empty() { 0.0 } else { ms[((ms.len() - 1) as f64 * q).round() as usize] };
    r.p50_ms = pct(0.5);
    r.p99_ms = pct(0.99);
    for (o, _) in outcomes {
        if o == "admitted" {
            r.admitted += 1;
        } else {
            *r.refused.entry(o).or_default() += 1;
        }
    }
    let not_started = spec.programs - started.load(Ordering::SeqCst).min(spec.programs);
    if not_started > 0 {
        r.refused.insert("not_started_in_time".into(), not_started);
    }
    r.admitted_per_sec = r.admitted as f64 / secs.max(1e-9);
    Ok(r)
}
