//! The VM against the language's reference interpreter
//! (`vinet_lang::reference`) on random windows, for the example programs
//! compiled from source (SEMANTICS: "a property test checks that the two
//! agree"), and one program of every transport routine.
//!
//! A window is random frames of both families: TCP (random flags), UDP,
//! ICMP and GRE packets over IPv4 and over IPv6 (some behind extension
//! headers), some damaged (a transport header cut short at any length, a
//! non-first fragment, a TCP data offset below 5). The engine parses each
//! frame; the reference gets the packet the engine's [`Fields`] describe,
//! `has_ports` and `tcp_flags` included, so the two see one packet.
//!
//! Every program runs for an IPv4 client, for an IPv6 one (with IPv6
//! parameter values), and the multicast aggregator also with an IPv4
//! source for an IPv6 client (its GENERATEs then skipped, in both).
//!
//! Two properties per program and window:
//! 1. over the whole window, the VM and the reference have the same drops,
//!    the same generated packets and the same metered cost;
//! 2. run through the dispatch table (over the client's bucket only), the
//!    VM has the same drops and generated packets as the reference over the
//!    whole window.

use std::sync::Arc;

use proptest::prelude::*;
use vinet_checker::mapped;
use vinet_checker::policy::ClientKind;
use vinet_lang::reference::{self, RefEnv, RefPacket};

use crate::dispatch::Dispatch;
use crate::packet::tests::{fragment_header, ipv4_bytes, ipv6_bytes, ipv6_chain, tcp_bytes_with, udp_bytes};
use crate::packet::{parse_frame, Fields, LinkType, Parsed};
use crate::vm::tests::metered_policy as policy;
use crate::vm::{Binding, Machine, Program, This};
use crate::window::Window;

const ME: u32 = 0x0a01_0007; // 10.1.0.7, inside the edge client's subnet
const SUBNET: (u32, u8) = (0x0a01_0000, 16);
const ROUTER: u32 = 0x0a01_0001;
/// 2001:db8:1::7, inside the IPv6 edge client's 2001:db8:1::/48.
const ME6: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0007;
const SUBNET6: (u128, u8) = (0x2001_0db8_0001 << 80, 48);
const ROUTER6: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0001;
/// An overlay-network owner's flow id (THIS_ON).
const ON: u32 = 0x00c0_ffee;
const SRCS: [u32; 5] = [0xcb00_7109, 0xc633_6407, 0x0808_0808, 0x0a01_0003, 0xc000_0235];
const DSTS: [u32; 8] = [ME, ME, 0x0a01_0002, 0x0a01_0004, 0x0a01_0005, 0x0a01_0006, 0x0a02_0001, 0x0101_0101];
/// 2001:db8:bad::9, 2001:db8:b0::7, 2001:4860:4860::8888, 2001:db8:1::3, 2001:db8::53.
const SRCS6: [u128; 5] = [
    0x2001_0db8_0bad_0000_0000_0000_0000_0009,
    0x2001_0db8_00b0_0000_0000_0000_0000_0007,
    0x2001_4860_4860_0000_0000_0000_0000_8888,
    0x2001_0db8_0001_0000_0000_0000_0000_0003,
    0x2001_0db8_0000_0000_0000_0000_0000_0053,
];
const DSTS6: [u128; 8] = [
    ME6,
    ME6,
    0x2001_0db8_0001_0000_0000_0000_0000_0002,
    0x2001_0db8_0001_0000_0000_0000_0000_0004,
    0x2001_0db8_0001_0000_0000_0000_0000_0005,
    0x2001_0db8_0001_0000_0000_0000_0000_0006,
    0x2001_0db8_0002_0000_0000_0000_0000_0001,
    0x2606_4700_0000_0000_0000_0000_0000_1111,
];
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
/// data offset below 5 words; for IPv6, made a first fragment (which keeps
/// its transport header).
#[derive(Clone, Copy, Debug)]
enum Damage {
    None,
    Cut(usize),
    Fragment,
    Offset(u8),
    FirstFragment,
}

/// One packet of a random window: its frame, IPv4 or IPv6 (behind no
/// extension header, or Hop-by-Hop and Destination Options).
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
            1 => Just(Damage::FirstFragment),
        ],
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(|((s, d, proto), (sport, dport), flags, seq, pieces, damage, (v6, exts))| {
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
            let mut ip = match (v6, damage) {
                (false, _) => ipv4_bytes(SRCS[s], DSTS[d], proto, &l4),
                (true, Damage::Fragment | Damage::FirstFragment) => {
                    let offset = if matches!(damage, Damage::Fragment) { 2 } else { 0 };
                    ipv6_bytes(SRCS6[s], DSTS6[d], 44, &[fragment_header(proto, offset, true, 7), l4.clone()].concat())
                }
                // (An IPv6 packet of payload length 0 is no packet of the window: one header at least.)
                (true, _) => ipv6_chain(SRCS6[s], DSTS6[d], if exts || l4.is_empty() { &[0, 60] } else { &[] }, proto, &l4),
            };
            let header = ip.len() - l4.len();
            match damage {
                Damage::Cut(n) => ip.truncate(header + n.min(l4.len())),
                Damage::Fragment if !v6 => ip[6..8].copy_from_slice(&0x0010u16.to_be_bytes()),
                Damage::FirstFragment if !v6 => ip[6..8].copy_from_slice(&0x2000u16.to_be_bytes()),
                _ => {}
            }
            ip
        })
}

/// The reference's packet for a frame, from the engine's [`Fields`]: the
/// two see one packet.
fn ref_packet(frame: &[u8]) -> RefPacket {
    let Parsed::Packet(f) = parse_frame(LinkType::Raw, frame) else { panic!("not a packet: {frame:?}") };
    let Fields { src, dst, proto, sport, dport, has_ports, tcp_flags, seq, on_key, payload_start, payload_len, .. } = f;
    let payload = frame[payload_start as usize..][..payload_len as usize].to_vec();
    RefPacket { src, dst, proto, sport, dport, has_ports, tcp_flags, seq, on_key, payload }
}

/// (src, dst, UDP payload) of a generated IPv4/UDP or IPv6/UDP packet,
/// whose checksums are right.
fn decode(g: &[u8]) -> (u128, u128, Vec<u8>) {
    let s = etherparse::SlicedPacket::from_ip(g).expect("generated packet parses");
    let Some(etherparse::TransportSlice::Udp(u)) = &s.transport else { panic!("not UDP") };
    let (src, dst, sum) = match &s.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            let h = ip.header().to_header();
            (
                mapped(u32::from_be_bytes(h.source)),
                mapped(u32::from_be_bytes(h.destination)),
                u.to_header().calc_checksum_ipv4(&h, u.payload()),
            )
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => {
            let h = ip.header().to_header();
            (u128::from_be_bytes(h.source), u128::from_be_bytes(h.destination), u.to_header().calc_checksum_ipv6(&h, u.payload()))
        }
        _ => panic!("not IP"),
    };
    assert_eq!(Ok(u.checksum()), sum, "UDP checksum");
    (src, dst, u.payload().to_vec())
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
        ClientKind::EndUser => This::end_user(mapped(ME)),
        ClientKind::EdgeRouter => This { ip: mapped(ROUTER), subnet: (mapped(SUBNET.0), 96 + SUBNET.1) },
        ClientKind::OnOwner => This::on_owner(ON),
    };
    Case { compiled, program, this }
}

/// A case for an IPv6 client: an end user at ME6, an edge router ROUTER6 of SUBNET6.
fn case6(name: &str, params: &[(&str, &str)], kind: ClientKind) -> Case {
    let mut c = case(name, params, kind);
    c.this = match kind {
        ClientKind::EdgeRouter => This { ip: ROUTER6, subnet: SUBNET6 },
        _ => This::end_user(ME6),
    };
    c
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
    prop_assert_eq!(u64::from(st.skipped_generations), want.skipped, "skipped generations");
    // 2. Through the dispatch table, over the client's bucket.
    let mut d = Dispatch::new(256);
    let b = Binding { this_ip: c.this.ip, this_subnet: Some(c.this.subnet), params: vec![] };
    d.install_program(Arc::clone(&c.program), &b).unwrap();
    let rep = d.run_window(&mut w);
    prop_assert_eq!(rep.faults, 0);
    // (A client without packets in the window is not run.)
    prop_assert_eq!(u64::from(rep.skipped_generations), if rep.runs > 0 { want.skipped } else { 0 }, "skipped over the bucket");
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

    #[test]
    fn firewall_for_ipv6_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case6("firewall.vinet", &[("SrcIP", "2001:db8:bad::9")], ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn spam_filter_for_ipv6_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case6("spam_filter.vinet", &[], ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn multicast_for_ipv6_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case6("multicast.vinet", &[("BroadcastIP", "2001:db8:b0::7")], ClientKind::EdgeRouter));
        C.with(|c| agree(c, &packets))?;
    }

    /// An IPv4 source for an IPv6 client: GENERATE skipped in both.
    #[test]
    fn multicast_across_families_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case6("multicast.vinet", &[("BroadcastIP", "198.51.100.7")], ClientKind::EdgeRouter));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn worm_blocker_for_ipv6_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case6("worm_blocker.vinet", &[("N", "2")], ClientKind::EdgeRouter));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn port_firewall_for_ipv6_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case6("port_firewall.vinet", &[("Spammer", "2001:db8:bad::9")], ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn syn_worm_blocker_for_ipv6_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case6("syn_worm_blocker.vinet", &[("N", "0"), ("M", "1")], ClientKind::EdgeRouter));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn anti_amplification_for_ipv6_agrees_with_reference(packets in window()) {
        thread_local!(static C: Case = case6("anti_amplification.vinet", &[("Resolver", "2001:4860:4860::8888")], ClientKind::EndUser));
        C.with(|c| agree(c, &packets))?;
    }

    #[test]
    fn transport_groupings_for_ipv6_agree_with_reference(packets in window()) {
        thread_local!(static C: Case = {
            let mut c = case_of(compile_source("groupings", GROUPINGS.as_bytes(), &[]), ClientKind::EndUser);
            c.this = This::end_user(ME6);
            c
        });
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
