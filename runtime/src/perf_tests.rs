//! Performance smoke tests. They print their measurements (run with
//! `cargo test --release -p vinet-runtime --lib perf -- --nocapture`) and
//! assert only loose bounds, and only in optimized builds: the real
//! benchmarks come with the benchmark work. Until `check()` lands they use the
//! test-only program constructor, which is why they live in the crate.

use std::sync::Arc;
use std::time::Instant;

use vinet_checker::bytecode::Const;

use crate::packet::tests::{eth, ipv4_bytes, udp_bytes};
use crate::packet::LinkType;
use crate::pcap::Frame;
use crate::router::{NullSink, Router};
use crate::vm::tests::{firewall, policy, BAD};
use crate::vm::{Binding, Machine, Program, This};
use crate::window::{Window, WindowConfig};

const OPT: bool = !cfg!(debug_assertions);

#[test]
fn perf_firewall_window() {
    let p = Arc::new(Program::unchecked(firewall(), 1024, &policy()));
    let inst = p.instantiate(&[]).unwrap();
    let me = 0x0a00_0007;
    let mut w = Window::new();
    for i in 0..256u32 {
        let src = if i % 7 == 0 { BAD } else { 0xc000_0200 + i };
        w.push(LinkType::Raw, 0, 0, &ipv4_bytes(src, me, 17, &udp_bytes(1, 2, b"payload")));
    }
    let mut m = Machine::new();
    let this = This { ip: me, subnet: (me, 32) };
    let iters = if OPT { 200_000 } else { 200 };
    let t = Instant::now();
    let mut dropped = 0;
    for _ in 0..iters {
        dropped += inst.run(this, w.view(), &mut m).unwrap().dropped;
    }
    let ns = t.elapsed().as_nanos() as f64 / iters as f64;
    eprintln!("firewall over a 256-packet window: {ns:.0} ns per run, {:.2} ns per packet", ns / 256.0);
    assert_eq!(dropped, 37 * iters);
    if OPT {
        assert!(ns / 256.0 < 5.0, "firewall costs {ns} ns per window");
    }
}

/// End to end from raw Ethernet frames, with `clients` end users each running
/// the firewall. Half the traffic goes to the first `active` clients, half to
/// addresses with no client.
fn end_to_end(clients: u32, active: u32, frames: usize) -> (f64, usize) {
    let mut r = Router::new(WindowConfig::new(256, 1000));
    let p = Arc::new(Program::unchecked(firewall(), 1024, &policy()));
    let base = 0x0a00_0000u32;
    for c in 0..clients {
        let b = Binding { this_ip: base + c, this_subnet: None, params: vec![Const::Addr(BAD)] };
        r.dispatch_mut().install_program(Arc::clone(&p), &b).unwrap();
    }
    let pool: Vec<Vec<u8>> = (0..4096u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761);
            let dst = if i % 2 == 0 { base + x % active.max(1) } else { 0x0b00_0000 + x % 100_000 };
            let src = if i % 5 == 0 { BAD } else { 0xc000_0000 + x % 1000 };
            eth(0x0800, &ipv4_bytes(src, dst, 17, &udp_bytes(1000, 53, &[0u8; 18])))
        })
        .collect();
    let mut sink = NullSink;
    let t = Instant::now();
    for i in 0..frames {
        let f = &pool[i % pool.len()];
        r.push(Frame { link: LinkType::Ethernet, ts_ns: i as u64, orig_len: f.len() as u32, data: f }, &mut sink);
    }
    r.flush(&mut sink);
    let el = t.elapsed().as_secs_f64();
    let st = r.stats();
    assert_eq!(st.frames_in, frames as u64);
    assert_eq!(st.forwarded + st.discarded, frames as u64);
    assert_eq!(st.faults, 0);
    (frames as f64 / el, r.dispatch().table_bytes() / clients.max(1) as usize)
}

#[test]
fn perf_end_to_end_flat_in_installed_programs() {
    let frames = if OPT { 4_000_000 } else { 20_000 };
    // Same traffic (64 busy clients), more and more installed programs.
    let mut rates = Vec::new();
    for clients in [64u32, 1000, 10_000, 100_000] {
        let (pps, per) = end_to_end(clients, 64, frames);
        eprintln!("end to end, 64 busy of {clients:>6} installed firewalls: {:.1} M frames/s ({per} B of table per installation)", pps / 1e6);
        rates.push(pps);
    }
    // Traffic spread over every client: one run per packet or so.
    for (clients, active) in [(1u32, 1u32), (1000, 1000), (100_000, 100_000)] {
        let (pps, _) = end_to_end(clients, active, frames);
        eprintln!("end to end, traffic spread over {active:>6} clients: {:.1} M frames/s", pps / 1e6);
    }
    if OPT {
        let (lo, hi) = rates.iter().fold((f64::MAX, 0f64), |(a, b), &r| (a.min(r), b.max(r)));
        assert!(lo > hi / 3.0, "per-packet cost should be flat in installed programs: {rates:?}");
    }
}
