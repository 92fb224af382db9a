//! The load test: 1,000 uploads from 50 concurrent clients against a real
//! vinetd over loopback (a new Noise connection per upload, each signed,
//! paid, scheduled, checked and installed). Every upload is answered; the
//! admitted ones are exactly those that fit capacity; nothing admitted is
//! lost across a kill -9 and restart.
//!
//! The uploads bind 400 distinct parameter values (the firewall's SrcIP), each
//! asked for by 2 or 3 clients, against a capacity of 300 instances: an
//! upload joining a running instance adds no load and must be admitted; an
//! upload needing a new instance is admitted only while one more fits.

mod router_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use router_support::*;
use vinet_checker::bytecode::Const;
use vinet_proto::client::Client;
use vinet_proto::identity::{issue, parse_secret_key, Subject};
use vinet_proto::keyfile::parse_router_public;
use vinet_proto::protocol::{Op, Refusal, Reply};

const CLIENTS: usize = 50;
const PER_CLIENT: usize = 20;
const DISTINCT: usize = 400;
const FIT: u64 = 300;
const COMPLEXITY: u64 = 1030;

#[test]
fn thousand_uploads_fifty_clients_capacity_exact_nothing_lost() {
    let env = Env::new("router-load");
    let lib = env.p("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", &lib]).ok();
    let cfg = env.config(&Settings {
        lemmas: Some(lib.into()),
        capacity: FIT * COMPLEXITY,
        max_connections: 128,
        max_connections_per_address: Some(128),
        ..Settings::default()
    });
    let mut d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let bundle = Arc::new(std::fs::read(env.firewall("fw", "2 days")).unwrap());
    let router = parse_router_public(&std::fs::read_to_string(env.p("router.key.pub")).unwrap()).unwrap();
    let authority = parse_secret_key(&std::fs::read_to_string(&env.operator).unwrap()).unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let k = vinet_proto::identity::generate_key().unwrap();
            let now = vinet_proto::clock::unix_now();
            let id =
                issue(&authority, &k.verifying_key(), Subject::EndUser { ip: 0x0a32_0000 + i as u32 + 1 }, now - 10, now + 3600).unwrap();
            (k, id)
        })
        .collect();
    let src = |j: usize| Const::Addr(0x0a4d_0000 + j as u32);
    let t0 = Instant::now();
    let handles: Vec<_> = clients
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, (k, id))| {
            let (bundle, listen) = (Arc::clone(&bundle), env.listen.clone());
            std::thread::spawn(move || {
                let mut out = vec![];
                for n in 0..PER_CLIENT {
                    let j = (i * PER_CLIENT + n) * 7 % DISTINCT;
                    let mut c =
                        Client::connect(&listen, router, Duration::from_secs(60)).unwrap().with_identity(k.clone(), id.clone(), None);
                    let r = c.request(Op::Upload { bundle: bundle.to_vec(), pay: 178, params: vec![("SrcIP".into(), src(j))] }).unwrap();
                    out.push((i, j, r));
                }
                out
            })
        })
        .collect();
    let answers: Vec<(usize, usize, Reply)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let elapsed = t0.elapsed();
    assert_eq!(answers.len(), CLIENTS * PER_CLIENT, "every upload answered");
    let mut admitted_sources = BTreeSet::new();
    let mut per_client: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
    let (mut admitted, mut refused) = (0, 0);
    for (i, j, r) in &answers {
        match r {
            Reply::Admitted { lease, .. } => {
                admitted += 1;
                admitted_sources.insert(*j);
                per_client.entry(*i).or_default().insert(*lease);
            }
            Reply::Refused { reason: Refusal::Capacity, .. } => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // Exactly the capacity's worth of distinct instances runs...
    assert_eq!(admitted_sources.len() as u64, FIT);
    // ...and every upload of a running instance was admitted, every other refused.
    for (_, j, r) in &answers {
        assert_eq!(matches!(r, Reply::Admitted { .. }), admitted_sources.contains(j), "source {j}: {r:?}");
    }
    eprintln!(
        "load test: {} uploads from {CLIENTS} clients in {:.2} s ({:.0} answered/s): {admitted} admitted, {refused} refused (capacity); {} instances, load {}",
        answers.len(),
        elapsed.as_secs_f64(),
        answers.len() as f64 / elapsed.as_secs_f64(),
        admitted_sources.len(),
        FIT * COMPLEXITY
    );
    let status = |k: &vinet_proto::identity::SigningKey, id: &vinet_proto::identity::SignedIdentity| {
        let mut c = Client::connect(&env.listen, router, Duration::from_secs(10)).unwrap().with_identity(k.clone(), id.clone(), None);
        match c.request(Op::Status).unwrap() {
            Reply::Status(s) => s,
            other => panic!("{other:?}"),
        }
    };
    let check_all = |phase: &str| {
        for (i, (k, id)) in clients.iter().enumerate() {
            let s = status(k, id);
            assert_eq!((s.load, s.capacity, s.installed), (FIT * COMPLEXITY, FIT * COMPLEXITY, admitted as u64), "{phase}");
            let mine: BTreeSet<u64> = s.leases.iter().map(|l| l.lease).collect();
            let want = per_client.get(&i).cloned().unwrap_or_default();
            assert_eq!(mine, want, "{phase}: client {i}'s leases");
            assert_eq!(s.balance, Some(10_000 - 178 * want.len() as u64), "{phase}: client {i}'s balance");
        }
    };
    check_all("before the restart");
    d.kill9();
    let t1 = Instant::now();
    let _d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    eprintln!("restart with {admitted} leases re-checked and re-installed: {:.2} s", t1.elapsed().as_secs_f64());
    check_all("after kill -9 and restart");
}
