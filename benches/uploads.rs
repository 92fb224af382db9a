//! Benchmark of uploads admitted per second, end to end: a real vinetd, and
//! for each upload a new TCP connection, the Noise handshake, an ed25519
//! signed request with a fresh sequence number, the identity's verification,
//! the replay check (one SQLite commit), the scheduler, the proof check (the
//! router's check cache is off, so every upload is checked), the install
//! into the packet path, and the admission's SQLite commit, before the reply.
//!
//! `cargo bench --bench uploads` runs 5 rounds of 2,000 uploads from 16
//! concurrent clients and prints the median rate, and the median latency of
//! 200 sequential uploads from one client (benchmarks/router.md has the
//! figures); `-- --quick` (or VINET_BENCH_QUICK=1) runs one round of 200
//! uploads from 8 clients and 20 sequential ones, a smoke run that checks
//! they are all admitted. Run without `--bench` (as `cargo test --benches`
//! does) it does the quick run too.

#[path = "../tests/router_support/mod.rs"]
mod router_support;

use router_support::*;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vinet_checker::bytecode::Const;
use vinet_proto::client::Client;
use vinet_proto::identity::{issue, parse_secret_key, Subject};
use vinet_proto::keyfile::parse_router_public;
use vinet_proto::protocol::{Op, Reply};

fn main() -> ExitCode {
    let quick = match bench_quick("uploads") {
        Ok(q) => q,
        Err(code) => return code,
    };
    let full = !quick;
    let (rounds, clients, per_client) = if full { (5, 16, 125) } else { (1, 8, 25) };
    let env = Env::new("router-bench");
    let lib = env.p("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", &lib]).ok();
    let cfg = env.config(&Settings {
        lemmas: Some(lib.into()),
        capacity: u64::MAX / 2,
        check_cache: false,
        max_connections: 128,
        max_connections_per_address: Some(128),
        grant: 1 << 40,
        ..Settings::default()
    });
    let _d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let bundle = Arc::new(std::fs::read(env.firewall("fw", "2 days")).unwrap());
    let router = parse_router_public(&std::fs::read_to_string(env.p("router.key.pub")).unwrap()).unwrap();
    let authority = parse_secret_key(&std::fs::read_to_string(&env.operator).unwrap()).unwrap();
    let ids: Vec<_> = (0..clients)
        .map(|i| {
            let k = vinet_proto::identity::generate_key().unwrap();
            let now = vinet_proto::clock::unix_now();
            (
                k.clone(),
                issue(&authority, &k.verifying_key(), Subject::EndUser { ip: 0x0a40_0000 + i as u32 }, now - 10, now + 36_000).unwrap(),
            )
        })
        .collect();
    let mut rates = vec![];
    let mut next = 0u32;
    for round in 0..rounds {
        let t0 = Instant::now();
        let hs: Vec<_> = ids
            .iter()
            .cloned()
            .map(|(k, id)| {
                let (bundle, listen) = (Arc::clone(&bundle), env.listen.clone());
                let base = next;
                next += per_client as u32;
                std::thread::spawn(move || {
                    for n in 0..per_client as u32 {
                        let mut c =
                            Client::connect(&listen, router, Duration::from_secs(60)).unwrap().with_identity(k.clone(), id.clone(), None);
                        let r = c
                            .request(Op::Upload {
                                bundle: bundle.to_vec(),
                                pay: 177,
                                params: vec![("SrcIP".into(), Const::Addr(0x0b00_0000 + base + n))],
                            })
                            .unwrap();
                        assert!(matches!(r, Reply::Admitted { shared: false, .. }), "{r:?}");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let rate = (clients * per_client) as f64 / t0.elapsed().as_secs_f64();
        eprintln!("round {round}: {} uploads from {clients} clients admitted at {rate:.0}/s", clients * per_client);
        rates.push(rate);
    }
    // Sequential latency from one client.
    let (k, id) = ids[0].clone();
    let mut lat = vec![];
    for n in 0..(if full { 200 } else { 20 }) {
        let t = Instant::now();
        let mut c = Client::connect(&env.listen, router, Duration::from_secs(60)).unwrap().with_identity(k.clone(), id.clone(), None);
        let r = c
            .request(Op::Upload { bundle: bundle.to_vec(), pay: 177, params: vec![("SrcIP".into(), Const::Addr(0x0c00_0000 + n))] })
            .unwrap();
        assert!(matches!(r, Reply::Admitted { .. }), "{r:?}");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let checks = env.metric("vinet_check_duration_seconds_count");
    let check_ms = env.metric("vinet_check_duration_seconds_sum") / checks * 1e3;
    println!(
        "uploads admitted per second, end to end: median {:.0}/s over {rounds} rounds ({clients} concurrent clients); one client sequentially: median {:.2} ms per upload; checker: {checks} checks, mean {check_ms:.3} ms",
        median(&mut rates),
        median(&mut lat)
    );
    let (admitted, sent) = (env.metric("vinet_admissions_total") as usize, rounds * clients * per_client + lat.len());
    if admitted != sent {
        eprintln!("uploads: {sent} uploads sent, {admitted} admitted");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
