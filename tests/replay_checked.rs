//! End to end on real checked bundles: the example programs are compiled
//! (vinet-lang), proved (vinet-prover), checked (vinet-checker's `check`), then
//! installed in a router (vinet-engine) for clients found in each of the
//! shared captures, and every capture is replayed through it.
//!
//! Besides "no panic, every frame accounted for", this checks the cost
//! contract end to end: no run on real traffic may exceed the complexity the
//! checker certified (a `Fault::OverBudget` would fail the test).

use std::path::PathBuf;
use std::time::Instant;

use vinet_checker::{check, Checked, Policy};
use vinet_engine::packet::{parse_frame, LinkType, Parsed};
use vinet_engine::pcap::{CaptureError, CaptureReader, PcapOut};
use vinet_engine::policy_file;
use vinet_engine::runner::Runner;
use vinet_engine::vm::Binding;
use vinet_engine::window::WindowConfig;
use vinet_vocab::{addr_const, v4_of};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn checked(prover: &vinet_prover::Prover, name: &str, params: &[(&str, &str)], policy: &Policy) -> Checked {
    let src = std::fs::read(root().join("examples").join(name)).expect("example source");
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let compiled = vinet_lang::compile(name, &src, &params).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let proved = prover.prove(&compiled.module, policy).unwrap_or_else(|f| panic!("{name} does not prove: {f:?}"));
    check(&proved.bytes, policy, &prover.lemmas().cache).unwrap_or_else(|e| panic!("{name} is rejected: {e}"))
}

fn captures() -> Vec<PathBuf> {
    let dir = root().join("tests/data/pcap");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("capture corpus {} is missing ({e}); it ships in the repository", dir.display()));
    let mut v: Vec<PathBuf> =
        entries.map(|e| e.expect("entry").path()).filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng")).collect();
    v.sort();
    v
}

#[test]
fn checked_examples_replay_every_capture_within_their_certified_cost() {
    let user = policy_file::load(root().join("examples/policies/end-user.toml")).expect("end-user policy");
    let edge = policy_file::load(root().join("examples/policies/edge-router.toml")).expect("edge-router policy");
    let prover = vinet_prover::Prover::new().expect("lemma library");
    let firewall = checked(&prover, "firewall.vinet", &[], &user);
    let spam = checked(&prover, "spam_filter.vinet", &[], &user);
    let multicast = checked(&prover, "multicast.vinet", &[], &edge);
    let worm = checked(&prover, "worm_blocker.vinet", &[("N", "2")], &edge);
    assert_eq!(firewall.complexity(), 1030, "CONTRACT section 4: the firewall costs 1,030 units at W = 256");

    let files = captures();
    assert!(files.len() >= 400, "expected the 401-capture corpus, found {}", files.len());
    let cfg = WindowConfig::new(user.window_packets, 1000);
    let start = Instant::now();
    let (mut frames, mut dropped, mut generated, mut runs) = (0u64, 0u64, 0u64, 0u64);
    let (mut v6_clients, mut v6_packets) = (0usize, 0u64);
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(CaptureError::Format(_)) => continue, // counted by the engine's own replay test
            Err(e) => panic!("{name}: {e}"),
        };
        let mut router = Runner::new(cfg);
        let link = reader.link_type().unwrap_or(LinkType::Ethernet);
        let mut out = PcapOut::new(Vec::new(), link).expect("pcap writer");
        let mut clients = Vec::new();
        let mut n = 0u64;
        while let Some(Ok(f)) = reader.next_frame() {
            if let Parsed::Packet(p) = parse_frame(f.link, f.data) {
                v6_packets += u64::from(v4_of(p.dst).is_none());
            }
            if let Parsed::Packet(p) = parse_frame(f.link, f.data) {
                // The first destinations of the file become clients: end users
                // with the firewall and the spam filter, and the /24 (IPv4) or
                // /64 (IPv6) around them as edge routers with the multicast and
                // worm programs: IPv4 and IPv6 clients alike (issue 15).
                if clients.len() < 3 && !clients.contains(&p.dst) {
                    clients.push(p.dst);
                    let d = router.dispatch_mut();
                    let end_user = |params| Binding { this_ip: p.dst, this_subnet: None, params };
                    d.install(&firewall, &end_user(vec![addr_const(p.src)])).unwrap();
                    d.install(&spam, &end_user(vec![])).unwrap();
                    let len = if v4_of(p.dst).is_some() { 96 + 24 } else { 64 };
                    let subnet = Some((p.dst & vinet_checker::netmask(len), len));
                    v6_clients += usize::from(v4_of(p.dst).is_none());
                    let router_client = |params| Binding { this_ip: p.dst | 1, this_subnet: subnet, params };
                    d.install(&multicast, &router_client(vec![addr_const(p.src)])).unwrap();
                    d.install(&worm, &router_client(vec![])).unwrap();
                }
            }
            router.push(f, &mut out);
            n += 1;
        }
        router.flush(&mut out);
        let st = router.stats();
        assert_eq!(st.frames_in, n, "{name}");
        assert_eq!(st.frames_in, st.forwarded + st.discarded, "{name}: a frame went missing");
        for i in router.dispatch().list() {
            assert!(i.last_fault.is_none(), "{name}: {} faulted: {:?}", i.module, i.last_fault);
            assert!(i.stats.max_cost <= i.stats.certified, "{name}: metered {} > certified {}", i.stats.max_cost, i.stats.certified);
        }
        frames += st.frames_in;
        dropped += st.discarded;
        generated += st.generated;
        runs += st.runs;
    }
    let took = start.elapsed();
    eprintln!(
        "checked programs on {} captures: {frames} frames, {runs} runs, {dropped} dropped, {generated} generated, {took:?}",
        files.len()
    );
    assert!(dropped > 0 && generated > 0 && runs > 0);
    eprintln!("IPv6 clients: {v6_clients}, IPv6 packets: {v6_packets}");
    assert!(v6_clients >= 20 && v6_packets >= 200, "too few IPv6 clients ({v6_clients}) or packets ({v6_packets}) in the captures");
}
