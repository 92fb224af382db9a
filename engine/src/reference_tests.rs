//! The VM against the language's reference interpreter
//! (`vinet_lang::reference`) on random windows, for the example programs
//! compiled from source (SEMANTICS: "a property test checks that the two
//! agree"), and one program of every transport routine.
//!
//! A window is random frames: TCP (random flags), UDP, ICMP and GRE
//! packets, some damaged (a transport header cut short at any length, a
//! non-first fragment, a TCP data offset below 5). The engine parses each
//! frame; the reference gets the packet the engine's [`Fields`] describe,
//! `has_ports` and `tcp_flags` included, so the two see one packet.
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
use crate::packet::tests::{ipv4_bytes, tcp_bytes_with, udp_bytes};
use crate::packet::{parse_frame, Fields, LinkType, Parsed};
use crate::vm::tests::metered_policy as policy;
use crate::vm::{Binding, Machine, Program, This};
use crate::window::Window;

const ME: u32 = 0x0a01_0007; // 10.1.0.7, inside the edge client's subnet
const SUBNET: (u32, u8) = (0x0a01_0000, 16);
const ROUTER: u32 = 0x0a01_0001;
/// An overlay-network owner's flow id (THIS_ON).
const ON: u32 = 0x00c0_ffee;
const SRCS: [u32; 5] = [0xcb00_7109, 0xc633_6407, 0x0808_0808, 0x0a01_0003, 0xc000_0235];
const DSTS: [u32; 8] = [ME, ME, 0x0a01_0002, 0x0a01_0004, 0x0a01_0005, 0x0a01_0006, 0x0a02_0001, 0x0101_0101];
const PIECES: [&[u8]; 8] = [b"", b"via", b"gra", b"viagra", b"lot", b"tery", b"lottery ", b"hello"];
/// Ports the example programs name (SMTP, DNS, NTP, SMB, a well-known
/// bound), and others.
const PORTS: [u16; 8] = [25, 53, 123, 445, 1023, 1024, 40_000, 0];
/// SYN, SYN-ACK, ACK, PSH-ACK, FIN-ACK, RST, none, all.
const FLAGS: [u8; 8] = [0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x00, 0xff];

fn compile(name: &str, params: &[(&str, &str)]) -> vinet_lang::Compiled {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let src = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    compile_source(name, &src, params)
}

fn compile_source(name: &str, src: &[u8], params: &[(&str, &str)]) -> vinet_lang::Compiled {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    vinet_lang::compile(name, src, &params).unwrap_or_else(|d| panic!("{name} does not compile: {d:?}"))
}

/// How a packet's frame is damaged: not at all; its transport header cut
/// short by the capture at byte `n`; made a non-first fragment; for TCP, a
/// data offset below 5 words.
#[derive(Clone, Copy, Debug)]
enum Damage {
    None,
    Cut(usize),
    Fragment,
    Offset(u8),
}

/// One packet of a random window: its frame.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    (
        (0..SRCS.len(), 0..DSTS.len(), prop_oneof![4 => Just(6u8), 3 => Just(17u8), 1 => Just(1u8), 1 => Just(47u8)]),
        (
            prop_oneof![3 => 1..3u16, 2 => (0..PORTS.len()).prop_map(|i| PORTS[i])],
            // The ports the programs name, often.
            prop_oneof![2 => Just(25u16), 1 => Just(445u16), 1 => Just(53u16), 3 => (0..PORTS.len()).prop_map(|i| PORTS[i])],
        ),
        prop_oneof![2 => Just(0x02u8), 3 => (0..FLAGS.len()).prop_map(|i| FLAGS[i]), 1 => any::<u8>()],
        0..4u32,
        prop::collection::vec(0..PIECES.len(), 0..3),
        prop_oneof![
            12 => Just(Damage::None),
            2 => (0..20usize).prop_map(Damage::Cut),
            1 => Just(Damage::Fragment),
            1 => (0..5u8).prop_map(Damage::Offset),
        ],
    )
        .prop_map(|((s, d, proto), (sport, dport), flags, seq, pieces, damage)| {
            let payload: Vec<u8> = pieces.iter().flat_map(|&i| PIECES[i].iter().copied()).collect();
            // Sequence numbers on a 3-byte grid, so that "via" + "gra"
            // segments often continue each other.
            let seq = 1000 + 3 * seq;
            let mut l4 = match proto {
                6 => tcp_bytes_with(sport, dport, seq, flags, &[], &payload),
                17 => udp_bytes(sport, dport, &payload),
                _ => payload,
            };
            if let Damage::Offset(words) = damage {
                if let Some(b) = l4.get_mut(12).filter(|_| proto == 6) {
                    *b = words << 4;
                }
            }
            let mut ip = ipv4_bytes(SRCS[s], DSTS[d], proto, &l4);
            match damage {
                Damage::Cut(n) => ip.truncate(20 + n.min(l4.len())),
                Damage::Fragment => ip[6..8].copy_from_slice(&0x0010u16.to_be_bytes()),
                _ => {}
            }
            ip
        })
}

/// The reference's packet for a frame, from the engine's [`Fields`]: the
/// two see one packet.
fn ref_packet(frame: &[u8]) -> RefPacket {
    let Parsed::Ipv4(f) = parse_frame(LinkType::Raw, frame) else { panic!("not IPv4: {frame:?}") };
    let Fields { src, dst, proto, sport, dport, has_ports, tcp_flags, seq, on_key, payload_start, payload_len } = f;
    let payload = frame[payload_start as usize..][..payload_len as usize].to_vec();
    RefPacket { src, dst, proto, sport, dport, has_ports, tcp_flags, seq, on_key, payload }
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
    case_of(compile(name, params), kind)
}

/// The shipped unit costs, with GROUPING (0 in the shipped policies) priced, so that the
/// two implementations are held to it too.
fn ref_policy() -> vinet_checker::Policy {
    let mut p = policy();
    p.unit_costs.grouping = 5;
    p
}

fn case_of(compiled: vinet_lang::Compiled, kind: ClientKind) -> Case {
    let mut pol = ref_policy();
    pol.client = kind;
    let program = Arc::new(Program::unchecked(compiled.module.clone(), u64::MAX / 2, &pol));
    let this = match kind {
        ClientKind::EndUser => This { ip: ME, subnet: (ME, 32) },
        ClientKind::EdgeRouter => This { ip: ROUTER, subnet: SUBNET },
        ClientKind::OnOwner => This::on_owner(ON),
    };
    Case { compiled, program, this }
}

fn agree(c: &Case, frames: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let packets: Vec<RefPacket> = frames.iter().map(|f| ref_packet(f)).collect();
    let env = RefEnv { this_ip: c.this.ip, this_subnet: c.this.subnet, params: vec![], unit_costs: ref_policy().unit_costs, fuel: None };
    let want = reference::run(&c.compiled.program, &packets, &env).map_err(|f| TestCaseError::fail(format!("reference faulted: {f:?}")))?;
    let mut w = Window::new();
    for f in frames {
        w.push(LinkType::Raw, 0, 0, f);
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

fn window() -> impl Strategy<Value = Vec<Vec<u8>>> {
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

    #[test]
    fn port_firewall_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case("port_firewall.vinet", &[("Spammer", "203.0.113.9")], ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn syn_worm_blocker_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case("syn_worm_blocker.vinet", &[("N", "0"), ("M", "1")], ClientKind::EdgeRouter));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn anti_amplification_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case("anti_amplification.vinet", &[("Resolver", "8.8.8.8")], ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn transport_groupings_agree_with_reference(packets in window()) {
        thread_local!(static C: Case = case_of(compile_source("groupings", GROUPINGS.as_bytes(), &[]), ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }
}

/// Every transport routine in one program: groups by protocol, by source
/// port and by destination port, a TCP_FLAGS of a sum of flags and a
/// protocol range, DISTINCT_DESTINATION_PORTS.
const GROUPINGS: &str = "
LIFETIME = 1 days
CLASS = filtering
Mine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);
Proto(i), ByProto(i) = GROUP_BY_PROTOCOL(Mine);
foreach i do
  if Proto(i) == UDP and DISTINCT_DESTINATION_PORTS(ByProto(i)) > 1 then
    DISCARD(GROUP_BY_DESTINATION_PORT(ByProto(i), 50, 130));
Port(j), BySport(j) = GROUP_BY_SOURCE_PORT(Mine);
foreach j do
  if COUNT(BySport(j)) > 2 then
    DISCARD(TCP_FLAGS(BySport(j), SYN + ACK, FIN));
Dport(k), ByDport(k) = GROUP_BY_DESTINATION_PORT(GROUP_BY_PROTOCOL(Mine, 6, 17));
foreach k do
  if Dport(k) == 445 and COUNT(ByDport(k)) > 1 then
    DISCARD(ByDport(k));
DISCARD(GROUP_BY_PROTOCOL(Mine, 40, 50));
";
