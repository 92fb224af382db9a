//! Measured cost per window against the certified bound, for every example
//! (the figure (d) of `benchmarks/runtime.md`; a correctness figure, so a
//! test). Each example is proved and checked, installed in a dispatch table,
//! and run over windows built to be its worst case (full buckets of W
//! packets shaped to make every routine touch as many packets as it can),
//! over random windows, and over its shipped capture. The VM meters every
//! run; the test asserts that
//! - no run ever costs more than the certified complexity (a run that did
//!   would fault), and
//! - the certified complexity is within 2x of the worst case measured: the
//!   bound is not loose.
//!
//! `cargo test --test cost_bounds -- --nocapture` prints the table.

use std::path::PathBuf;

use vinet_checker::bytecode::Const;
use vinet_checker::{check, Checked, Policy};
use vinet_engine::dispatch::Dispatch;
use vinet_engine::packet::LinkType;
use vinet_engine::pcap::CaptureReader;
use vinet_engine::policy_file;
use vinet_engine::runner::{NullSink, Runner};
use vinet_engine::vm::Binding;
use vinet_engine::window::{Window, WindowConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn checked(prover: &vinet_prover::Prover, name: &str, policy: &Policy) -> Checked {
    let src = std::fs::read(root().join("examples").join(name)).expect("example source");
    let compiled = vinet_lang::compile(name, &src, &[]).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let proved = prover.prove(&compiled.module, policy).unwrap_or_else(|f| panic!("{name}: {f:?}"));
    check(&proved.bytes, policy, &prover.lemmas().cache).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const ME: u32 = 0x0a00_0007; // 10.0.0.7
const ROUTER: u32 = 0x0a00_0001; // 10.0.0.1
const NET: (u32, u8) = (0x0a00_0000, 24);
const PEST: u32 = 0xcb00_7109; // 203.0.113.9, the firewall's SrcIP
const CASTER: u32 = 0xc633_6407; // 198.51.100.7, the multicast's BroadcastIP

/// A raw IPv4/UDP packet (link type IPv4).
fn udp(src: u32, dst: u32, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut v = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 17, 0, 0];
    v.extend_from_slice(&src.to_be_bytes());
    v.extend_from_slice(&dst.to_be_bytes());
    v.extend_from_slice(&[0x13, 0x88, 0x00, 0x19]);
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Run `windows` (lists of packets) through a dispatch table holding `c`
/// for its client: the largest metered cost of one run.
fn max_cost(c: &Checked, binding: &Binding, windows: &[Vec<Vec<u8>>]) -> u64 {
    let mut d = Dispatch::new(c.policy().window_packets);
    let id = d.install(c, binding).expect("install");
    for packets in windows {
        let mut w = Window::new();
        for p in packets {
            w.push(LinkType::Ipv4, 0, p.len() as u32, p);
        }
        let rep = d.run_window(&mut w);
        assert_eq!(rep.faults, 0, "a run went over its certified bound");
    }
    let st = d.stats(id).expect("installed");
    assert!(st.max_cost <= st.certified, "metered {} > certified {}", st.max_cost, st.certified);
    st.max_cost
}

/// The largest metered cost of one run on the shipped capture.
fn on_capture(c: &Checked, binding: &Binding, capture: &str) -> u64 {
    let mut r = Runner::new(WindowConfig::new(c.policy().window_packets, 50));
    let id = r.dispatch_mut().install(c, binding).expect("install");
    let mut reader = CaptureReader::open(root().join("examples/traffic").join(capture)).expect("capture");
    while let Some(f) = reader.next_frame() {
        r.push(f.expect("frame"), &mut NullSink);
    }
    r.flush(&mut NullSink);
    assert_eq!(r.stats().faults, 0);
    r.dispatch().stats(id).expect("installed").max_cost
}

fn random_windows(seed: u64, w: usize, make: impl Fn(&mut Rng) -> Vec<u8>) -> Vec<Vec<Vec<u8>>> {
    let mut r = Rng(seed);
    (0..40).map(|k| (0..(if k % 2 == 0 { w } else { 1 + k * 5 })).map(|_| make(&mut r)).collect()).collect()
}

#[test]
fn certified_bounds_hold_and_are_within_2x_of_the_worst_case() {
    let user = policy_file::load(root().join("examples/policies/end-user.toml")).expect("end-user policy");
    let edge = policy_file::load(root().join("examples/policies/edge-router.toml")).expect("edge-router policy");
    let prover = vinet_prover::Prover::new().expect("lemma library");
    let w = user.window_packets as usize;
    let words: [&[u8]; 4] = [b"viagra lottery", b"viagra", b"lottery", b"hello"];
    let end_user = Binding::end_user(vinet_checker::mapped(ME));
    let subnet =
        Binding { this_ip: vinet_checker::mapped(ROUTER), this_subnet: Some((vinet_checker::mapped(NET.0), NET.1 + 96)), params: vec![] };
    let mut rows = Vec::new();

    // Firewall: every packet of a full bucket from SrcIP.
    let fw = checked(&prover, "firewall.vinet", &user);
    let worst = max_cost(&fw, &end_user, &[(0..w).map(|_| udp(PEST, ME, b"x")).collect()]);
    let random = max_cost(
        &fw,
        &end_user,
        &random_windows(1, w, |r| {
            let src = if r.next() % 3 == 0 { PEST } else { r.next() as u32 };
            let dst = if r.next() % 2 == 0 { ME } else { r.next() as u32 };
            udp(src, dst, b"x")
        }),
    );
    rows.push(("firewall", fw.complexity(), worst, random, on_capture(&fw, &end_user, "firewall.pcap")));

    // Spam filter: a full bucket of distinct sources, each with both words:
    // one group per packet, both CONTAINS_STRING and DISCARD on each.
    let spam = checked(&prover, "spam_filter.vinet", &user);
    let worst = max_cost(&spam, &end_user, &[(0..w as u32).map(|i| udp(0xc000_0200 + i, ME, words[0])).collect()]);
    let random = max_cost(
        &spam,
        &end_user,
        &random_windows(2, w, |r| {
            let src = 0xc000_0200 + (r.next() % 64) as u32;
            let dst = if r.next() % 4 == 0 { r.next() as u32 } else { ME };
            udp(src, dst, words[(r.next() % 4) as usize])
        }),
    );
    rows.push(("spam filter", spam.complexity(), worst, random, on_capture(&spam, &end_user, "spam.pcap")));

    // Multicast: a full bucket from BroadcastIP, every destination and
    // every content distinct (both GENERATEs at their largest).
    let mc = checked(&prover, "multicast.vinet", &edge);
    let worst = max_cost(&mc, &subnet, &[(0..w as u32).map(|i| udp(CASTER, NET.0 + i, &i.to_be_bytes())).collect()]);
    let random = max_cost(
        &mc,
        &subnet,
        &random_windows(3, w, |r| {
            let src = if r.next() % 4 == 0 { r.next() as u32 } else { CASTER };
            udp(src, NET.0 + (r.next() % 256) as u32, &[(r.next() % 8) as u8])
        }),
    );
    rows.push(("multicast", mc.complexity(), worst, random, on_capture(&mc, &subnet, "multicast.pcap")));

    // Worm blocker (N = 8): as many sources as can each reach 9 distinct
    // hosts (so that every packet is discarded), 28 of them.
    let worm = checked(&prover, "worm_blocker.vinet", &edge);
    let scan: Vec<Vec<u8>> = (0..w as u32).map(|i| udp(0xcb00_7100 + (i / 9).min(27), NET.0 + i % 256, b"x")).collect();
    let singles: Vec<Vec<u8>> = (0..w as u32).map(|i| udp(0xcb00_7100 + i, NET.0 + i % 256, b"x")).collect();
    let worst = max_cost(&worm, &subnet, &[scan, singles]);
    let random = max_cost(
        &worm,
        &subnet,
        &random_windows(4, w, |r| udp(0xcb00_7100 + (r.next() % 20) as u32, NET.0 + (r.next() % 256) as u32, b"x")),
    );
    let worm_default = Binding { params: vec![Const::Num(8)], ..subnet.clone() };
    rows.push(("worm blocker", worm.complexity(), worst, random, on_capture(&worm, &worm_default, "worm.pcap")));

    eprintln!(
        "| example | certified bound (units/window) | worst case measured | bound / worst | random windows, max | shipped capture, max |"
    );
    eprintln!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for &(name, bound, worst, random, capture) in &rows {
        eprintln!("| {name} | {bound} | {worst} | {:.3} | {random} | {capture} |", bound as f64 / worst as f64);
    }
    for &(name, bound, worst, random, capture) in &rows {
        assert!(worst <= bound && random <= bound && capture <= bound, "{name}: a run above the bound");
        assert!(random <= worst && capture <= worst, "{name}: the constructed worst case is not the worst seen");
        assert!(bound <= 2 * worst, "{name}: bound {bound} is more than twice the worst case {worst}");
    }
    // The exact figures, from the unit costs of the policy: the firewall's is its 6
    // instructions and 1 + 2 + 1 units a packet of the window, 6 + 4 x 256; the spam
    // filter's worst case stays under its bound because the bound charges each
    // parameter word its policy's longest (256 bytes), the run the word's own 6 or 7.
    let exact: Vec<(u64, u64)> = rows.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(exact, [(1030, 1030), (10245, 7173), (5133, 5133), (3333, 2821)]);
}
