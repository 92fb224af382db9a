//! Arbitrary bytes as an IPv6 packet behind every link header that carries
//! IPv6 (Ethernet 0x86DD, a VLAN tag, raw IP, raw IPv6, BSD loopback,
//! Linux cooked captures), and as the same packet with the first bytes
//! turned into a well-formed fixed header (version 6, a payload length that
//! fits) so that the extension-header chain is what gets fuzzed; then a
//! window of them through a router without programs (the fragment-verdict
//! table). Counted outcomes, never a panic; a packet's payload lies inside
//! its frame, it has ports only for TCP or UDP and never as a later
//! fragment, and an IPv6 packet never has an IPv4-mapped address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vinet_engine::packet::{is_mapped, parse_frame, LinkType, Parsed};
use vinet_engine::pcap::Frame;
use vinet_engine::runner::{NullSink, Runner};
use vinet_engine::window::WindowConfig;

fn check(frame: &[u8], p: Parsed) {
    if let Parsed::Packet(f) = p {
        assert!(f.payload_start as usize + f.payload_len as usize <= frame.len(), "payload outside the frame");
        assert!(!f.has_ports || f.proto == 6 || f.proto == 17, "ports without TCP or UDP");
        assert!(!(f.has_ports && f.fragment.is_some_and(|x| x.offset != 0)), "ports in a later fragment");
        assert!(!f.v6 || !(is_mapped(f.src) || is_mapped(f.dst)), "an IPv4-mapped address on the wire");
        assert_eq!(f.v6, !is_mapped(f.src), "the family is the address's");
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as they are, and with a well-formed fixed header.
    let mut fixed = data.to_vec();
    if fixed.len() >= 40 {
        fixed[0] = 0x60 | (fixed[0] & 0x0f);
        let avail = (fixed.len() - 40).clamp(1, 65_535) as u16;
        let plen = avail.min(u16::from_be_bytes([fixed[4], fixed[5]]).max(1));
        fixed[4..6].copy_from_slice(&plen.to_be_bytes());
    }
    let mut frames = Vec::new();
    for ip in [data, &fixed[..]] {
        let eth = [&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd][..], ip].concat();
        let vlan = [&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0, 7, 0x86, 0xdd][..], ip].concat();
        let null = [&24u32.to_le_bytes()[..], ip].concat();
        let lp = [&24u32.to_be_bytes()[..], ip].concat();
        let sll = [&[0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd][..], ip].concat();
        let sll2 = [&[0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0][..], ip].concat();
        for (link, frame) in [
            (LinkType::Ethernet, eth),
            (LinkType::Ethernet, vlan),
            (LinkType::Raw, ip.to_vec()),
            (LinkType::Ipv6, ip.to_vec()),
            (LinkType::Null, null),
            (LinkType::Loop, lp),
            (LinkType::LinuxSll, sll),
            (LinkType::LinuxSll2, sll2),
        ] {
            check(&frame, parse_frame(link, &frame));
            frames.push((link, frame));
        }
    }
    // A window of them, twice (the second window sees the first's fragments).
    let mut r = Runner::new(WindowConfig::new(256, 1000));
    for round in 0..2u64 {
        for (link, f) in &frames {
            r.push(Frame { link: *link, ts_ns: round * 2_000_000_000, orig_len: f.len() as u32, data: f }, &mut NullSink);
        }
        r.flush(&mut NullSink);
    }
    let st = r.stats();
    assert_eq!(st.frames_in, st.forwarded + st.discarded);
    assert_eq!(st.frames_in, 2 * frames.len() as u64);
});
