//! The VM against the language's reference interpreter
//! (`vinet_lang::reference`) on random windows, for the example programs
//! compiled from source (SEMANTICS: "a property test checks that the two
//! agree").
//!
//! Two properties per program and window:
//! 1. over the whole window, the VM and the reference have the same drops,
//!    the same generated packets and the same metered cost;
//! 2. run through the dispatch table (over the client's bucket only), the
//!    VM has the same drops and generated packets as the reference over the
//!    whole window.

use std::sync::Arc;

use proptest::prelude::*;
use vinet_checker::policy::ClientKind;
use vinet_lang::reference::{self, RefEnv, RefPacket};

use crate::dispatch::Dispatch;
use crate::packet::tests::{ipv4_bytes, tcp_bytes, udp_bytes};
use crate::packet::LinkType;
use crate::vm::tests::metered_policy as policy;
use crate::vm::{Binding, Machine, Program, This};
use crate::window::Window;

const ME: u32 = 0x0a01_0007; // 10.1.0.7, inside the edge client's subnet
const SUBNET: (u32, u8) = (0x0a01_0000, 16);
const ROUTER: u32 = 0x0a01_0001;
const SRCS: [u32; 4] = [0xcb00_7109, 0xc633_6407, 0x0808_0808, 0x0a01_0003];
const DSTS: [u32; 8] = [ME, ME, 0x0a01_0002, 0x0a01_0004, 0x0a01_0005, 0x0a01_0006, 0x0a02_0001, 0x0101_0101];
const PIECES: [&[u8]; 8] = [b"", b"via", b"gra", b"viagra", b"lot", b"tery", b"lottery ", b"hello"];

fn compile(name: &str, params: &[(&str, &str)]) -> vinet_lang::Compiled {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let src = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    vinet_lang::compile(name, &src, &params).unwrap_or_else(|d| panic!("{name} does not compile: {d:?}"))
}

fn packet() -> impl Strategy<Value = RefPacket> {
    (
        0..SRCS.len(),
        0..DSTS.len(),
        prop_oneof![Just(6u8), Just(17u8), Just(1u8)],
        1..3u16,
        0..4u32,
        prop::collection::vec(0..PIECES.len(), 0..3),
    )
        .prop_map(|(s, d, proto, port, seq, pieces)| {
            let payload: Vec<u8> = pieces.iter().flat_map(|&i| PIECES[i].iter().copied()).collect();
            let tcp_udp = proto != 1;
            RefPacket {
                src: SRCS[s],
                dst: DSTS[d],
                proto,
                sport: if tcp_udp { port } else { 0 },
                dport: if tcp_udp { 80 } else { 0 },
                // Sequence numbers on a 3-byte grid, so that "via" + "gra"
                // segments often continue each other.
                seq: if proto == 6 { 1000 + 3 * seq } else { 0 },
                payload,
            }
        })
}

fn frame(p: &RefPacket) -> Vec<u8> {
    match p.proto {
        6 => ipv4_bytes(p.src, p.dst, 6, &tcp_bytes(p.sport, p.dport, p.seq, &p.payload)),
        17 => ipv4_bytes(p.src, p.dst, 17, &udp_bytes(p.sport, p.dport, &p.payload)),
        other => ipv4_bytes(p.src, p.dst, other, &p.payload),
    }
}

/// (src, dst, UDP payload) of a generated IPv4/UDP packet.
fn decode(g: &[u8]) -> (u32, u32, Vec<u8>) {
    let s = etherparse::SlicedPacket::from_ip(g).expect("generated packet parses");
    let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else { panic!("not IPv4") };
    let Some(etherparse::TransportSlice::Udp(u)) = &s.transport else { panic!("not UDP") };
    let h = ip.header();
    (u32::from_be_bytes(h.source()), u32::from_be_bytes(h.destination()), u.payload().to_vec())
}

struct Case {
    compiled: vinet_lang::Compiled,
    program: Arc<Program>,
    this: This,
}

fn case(name: &str, params: &[(&str, &str)], kind: ClientKind) -> Case {
    let compiled = compile(name, params);
    let mut pol = policy();
    pol.client = kind;
    let program = Arc::new(Program::unchecked(compiled.module.clone(), u64::MAX / 2, &pol));
    let this = match kind {
        ClientKind::EndUser => This { ip: ME, subnet: (ME, 32) },
        ClientKind::EdgeRouter => This { ip: ROUTER, subnet: SUBNET },
    };
    Case { compiled, program, this }
}

fn agree(c: &Case, packets: &[RefPacket]) -> Result<(), TestCaseError> {
    let env = RefEnv { this_ip: c.this.ip, this_subnet: c.this.subnet, params: vec![], unit_costs: policy().unit_costs, fuel: None };
    let want = reference::run(&c.compiled.program, packets, &env).map_err(|f| TestCaseError::fail(format!("reference faulted: {f:?}")))?;
    let mut w = Window::new();
    for p in packets {
        w.push(LinkType::Raw, 0, 0, &frame(p));
    }
    prop_assert_eq!(w.packet_count(), packets.len());
    // 1. Whole window.
    let inst = c.program.instantiate(&[]).unwrap();
    let mut m = Machine::new();
    let st = inst.run(c.this, w.view(), &mut m).map_err(|f| TestCaseError::fail(format!("VM faulted: {f}")))?;
    let dropped: Vec<usize> = (0..packets.len()).filter(|&i| m.effects().is_dropped(i)).collect();
    let generated: Vec<_> = m.effects().generated().map(decode).collect();
    prop_assert_eq!(&dropped, &want.dropped, "drops over the window");
    prop_assert_eq!(&generated, &want.generated, "generated over the window");
    prop_assert_eq!(st.cost, want.cost, "cost over the window");
    // 2. Through the dispatch table, over the client's bucket.
    let mut d = Dispatch::new(256);
    let b = Binding { this_ip: c.this.ip, this_subnet: Some(c.this.subnet), params: vec![] };
    d.install_program(Arc::clone(&c.program), &b).unwrap();
    let rep = d.run_window(&mut w);
    prop_assert_eq!(rep.faults, 0);
    let dropped: Vec<usize> = (0..packets.len()).filter(|&i| w.is_dropped(i as u32)).collect();
    let generated: Vec<_> = w.generated().map(decode).collect();
    prop_assert_eq!(&dropped, &want.dropped, "drops over the bucket");
    prop_assert_eq!(&generated, &want.generated, "generated over the bucket");
    Ok(())
}

fn window() -> impl Strategy<Value = Vec<RefPacket>> {
    prop::collection::vec(packet(), 0..48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn firewall_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case("firewall.vinet", &[], ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn spam_filter_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case("spam_filter.vinet", &[], ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn multicast_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case("multicast.vinet", &[("BroadcastIP", "8.8.8.8")], ClientKind::EdgeRouter));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn worm_blocker_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case("worm_blocker.vinet", &[("N", "2")], ClientKind::EdgeRouter));
        C.with(|c| agree(c, &packets))?;
    }
}
