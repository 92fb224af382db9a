//! ON identity on the wire: GRE with a key and a sequence number.
//!
//! Birman asks for "a 4-byte identifier drawn from a global space of ON
//! identifiers", placed behind the IP header and read only for ON packets.
//! vinet carries it as the **Key** of a GRE header (RFC 2784, with the key and
//! sequence number extensions of RFC 2890) that encapsulates the inner IPv4
//! packet in an outer IPv4 header of protocol 47:
//!
//! ```text
//! outer IPv4 (protocol 47) | GRE: flags+ver, 0x0800 | key = flow id | [seq] | inner IPv4 packet
//! ```
//!
//! The S bit and the 32-bit sequence number are set on ONs that send each
//! packet down several disjoint paths ([`crate::paths`]); the egress removes
//! the duplicates with [`crate::frer`] by that number.
//!
//! **Why GRE.** The key is exactly the 32 bits the paper asks for. Standard
//! tools decode it: tcpdump prints `GREv0, Flags [key present, sequence#
//! present], key=0x2a, seq 7`, Wireshark dissects both fields. Linux builds
//! GRE tunnels natively (`ip link add ... type gre key K` or `ikey`/`okey`,
//! `iseq`/`oseq`), so an emulated ON can run over kernel tunnels in network
//! namespaces with no code of ours on the data path. One caution there: a
//! kernel tunnel with `iseq` drops every packet whose number is not above the
//! last one it accepted, so an egress that eliminates duplicates from two
//! reordering paths with [`crate::frer`] must not set `iseq` on the receiving
//! side (`oseq` on the sending side is what numbers the packets).
//!
//! **Why not Geneve or NSH.** Geneve (RFC 8926) rides in UDP and names its
//! network with a 24-bit VNI; a 32-bit id would need a TLV option that tools
//! show as opaque bytes, and Linux's geneve device has no sequence numbers.
//! NSH (RFC 8300) is built for service function chains: a 24-bit path id and
//! an 8-bit index that each hop decrements, a header that still needs a
//! transport of its own, and no tunnel device in the Linux kernel (only Open
//! vSwitch speaks it). VXLAN has the same 24-bit limit as Geneve.
//!
//! **Decoding untrusted bytes.** [`decode`] never panics and refuses each
//! malformed case with its own [`DecodeError`]: a short or inconsistent outer
//! header, a bad outer checksum, a fragment (its GRE header may be missing),
//! another protocol, GRE version other than 0, the RFC 1701 routing bits, a
//! checksum (vinet never sends one), a missing key, a payload other than
//! IPv4, a truncated inner packet. Bits 6 to 12 of the GRE flags are ignored
//! on receipt, as RFC 2784 says.

use crate::FlowId;
use thiserror::Error;

/// The IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// The GRE protocol type (an EtherType) of an IPv4 payload.
pub const ETHERTYPE_IPV4: u16 = 0x0800;

const FLAG_C: u16 = 0x8000;
const FLAG_R: u16 = 0x4000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
/// RFC 1701's strict source route bit and the top bit of its recursion
/// control: with R, the bits 1 to 5 that RFC 2784 says a receiver must refuse
/// (K and S, bits 2 and 3, are RFC 2890's).
const FLAGS_RFC1701: u16 = FLAG_R | 0x0800 | 0x0400;
const VERSION_MASK: u16 = 0x0007;

/// The outer IPv4 header of an encapsulated ON packet (no options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outer {
    /// Source address: the tunnel's local end.
    pub src: [u8; 4],
    /// Destination address: the tunnel's remote end.
    pub dst: [u8; 4],
    /// Time to live.
    pub ttl: u8,
    /// The type-of-service byte (DSCP and ECN).
    pub tos: u8,
    /// The identification field.
    pub identification: u16,
    /// The DF bit.
    pub dont_fragment: bool,
}

/// What an encapsulated packet carries in its GRE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The ON's flow id, in the key field.
    pub flow: FlowId,
    /// The sequence number, present on ONs with redundant paths.
    pub seq: Option<u32>,
}

/// A decoded ON packet: its outer header, its tag and the inner IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The outer IPv4 header.
    pub outer: Outer,
    /// The flow id and sequence number.
    pub tag: Tag,
    /// The inner IPv4 packet, cut to its own total length.
    pub inner: &'a [u8],
}

/// Why bytes are not an ON packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than a minimal IPv4 header.
    #[error("outer IPv4 header: {len} bytes, fewer than 20")]
    ShortIpv4 {
        /// Bytes available.
        len: usize,
    },
    /// The version nibble is not 4.
    #[error("outer header: IP version {version}, not 4")]
    NotIpv4 {
        /// The version found.
        version: u8,
    },
    /// The header length is below 5 words or beyond the bytes at hand.
    #[error("outer IPv4 header: header length {ihl} words does not fit {len} bytes")]
    BadHeaderLength {
        /// The IHL field.
        ihl: u8,
        /// Bytes available.
        len: usize,
    },
    /// The total length is below the header length or beyond the bytes at hand.
    #[error("outer IPv4 header: total length {total} does not fit header {header} and {len} bytes")]
    BadTotalLength {
        /// The total length field.
        total: usize,
        /// The header length in bytes.
        header: usize,
        /// Bytes available.
        len: usize,
    },
    /// The outer header checksum does not verify.
    #[error("outer IPv4 header: checksum does not verify")]
    Ipv4Checksum,
    /// The outer packet is a fragment: its GRE header or inner packet may be elsewhere.
    #[error("outer IPv4 packet is a fragment")]
    Fragment,
    /// The outer protocol is not GRE.
    #[error("outer IPv4 protocol {protocol}, not GRE (47)")]
    NotGre {
        /// The protocol found.
        protocol: u8,
    },
    /// The GRE header is cut short.
    #[error("GRE header: needs {needed} bytes, {len} available")]
    ShortGre {
        /// Bytes the header's flags call for.
        needed: usize,
        /// Bytes available.
        len: usize,
    },
    /// The GRE version is not 0 (1 is PPTP's enhanced GRE).
    #[error("GRE version {version}, not 0")]
    Version {
        /// The version found.
        version: u8,
    },
    /// RFC 1701's routing, strict source route or recursion bits are set.
    #[error("GRE flags {flags:#06x}: RFC 1701 routing bits set")]
    Routing {
        /// The flags and version word.
        flags: u16,
    },
    /// The checksum bit is set: vinet never sends a GRE checksum.
    #[error("GRE checksum present: ON packets carry none")]
    Checksum,
    /// The key bit is clear: no flow id.
    #[error("GRE key absent: no flow id")]
    MissingKey,
    /// The GRE payload is not IPv4.
    #[error("GRE protocol type {protocol_type:#06x}, not IPv4 (0x0800)")]
    NotIpv4Payload {
        /// The protocol type found.
        protocol_type: u16,
    },
    /// The inner packet is not a whole IPv4 packet.
    #[error("inner packet: not a whole IPv4 packet ({len} bytes)")]
    Inner {
        /// Bytes after the GRE header.
        len: usize,
    },
}

/// Why a packet cannot be encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The inner bytes are not a whole IPv4 packet.
    #[error("inner packet: not a whole IPv4 packet ({len} bytes)")]
    Inner {
        /// Bytes given.
        len: usize,
    },
    /// The encapsulated packet would exceed IPv4's 65,535 bytes.
    #[error("encapsulated packet of {len} bytes exceeds 65535")]
    TooLong {
        /// The length it would have.
        len: usize,
    },
}

/// The length of the GRE header for a tag: 8 bytes, 12 with a sequence number.
pub fn gre_header_len(tag: Tag) -> usize {
    if tag.seq.is_some() {
        12
    } else {
        8
    }
}

/// Appends the encapsulation of `inner` to `out` and returns its length.
/// Allocates nothing if `out` has the room.
pub fn encode(outer: &Outer, tag: Tag, inner: &[u8], out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let inner = whole_ipv4(inner).ok_or(EncodeError::Inner { len: inner.len() })?;
    let len = 20 + gre_header_len(tag) + inner.len();
    let total = u16::try_from(len).map_err(|_| EncodeError::TooLong { len })?;
    let start = out.len();
    let flags_frag: u16 = if outer.dont_fragment { 0x4000 } else { 0 };
    out.extend_from_slice(&[0x45, outer.tos]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&outer.identification.to_be_bytes());
    out.extend_from_slice(&flags_frag.to_be_bytes());
    out.extend_from_slice(&[outer.ttl, IPPROTO_GRE, 0, 0]);
    out.extend_from_slice(&outer.src);
    out.extend_from_slice(&outer.dst);
    let sum = ipv4_checksum(&out[start..start + 20]);
    out[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
    let flags = FLAG_K | if tag.seq.is_some() { FLAG_S } else { 0 };
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    out.extend_from_slice(&tag.flow.0.to_be_bytes());
    if let Some(seq) = tag.seq {
        out.extend_from_slice(&seq.to_be_bytes());
    }
    out.extend_from_slice(inner);
    debug_assert_eq!(out.len() - start, len);
    Ok(len)
}

/// Decodes an outer IPv4 packet (from its first byte; bytes past its total
/// length, such as Ethernet padding, are ignored) as an ON packet.
pub fn decode(packet: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let len = packet.len();
    if len < 20 {
        return Err(DecodeError::ShortIpv4 { len });
    }
    let version = packet[0] >> 4;
    if version != 4 {
        return Err(DecodeError::NotIpv4 { version });
    }
    let ihl = packet[0] & 0x0f;
    let header = usize::from(ihl) * 4;
    if ihl < 5 || header > len {
        return Err(DecodeError::BadHeaderLength { ihl, len });
    }
    let total = usize::from(be16(packet, 2));
    if total < header || total > len {
        return Err(DecodeError::BadTotalLength { total, header, len });
    }
    if ipv4_checksum(&packet[..header]) != 0 {
        return Err(DecodeError::Ipv4Checksum);
    }
    let flags_frag = be16(packet, 6);
    if flags_frag & 0x3fff != 0 {
        // MF set or a non-zero offset.
        return Err(DecodeError::Fragment);
    }
    let protocol = packet[9];
    if protocol != IPPROTO_GRE {
        return Err(DecodeError::NotGre { protocol });
    }
    let outer = Outer {
        src: [packet[12], packet[13], packet[14], packet[15]],
        dst: [packet[16], packet[17], packet[18], packet[19]],
        ttl: packet[8],
        tos: packet[1],
        identification: be16(packet, 4),
        dont_fragment: flags_frag & 0x4000 != 0,
    };
    let gre = &packet[header..total];
    if gre.len() < 4 {
        return Err(DecodeError::ShortGre { needed: 4, len: gre.len() });
    }
    let flags = be16(gre, 0);
    let version = (flags & VERSION_MASK) as u8;
    if version != 0 {
        return Err(DecodeError::Version { version });
    }
    if flags & FLAGS_RFC1701 != 0 {
        return Err(DecodeError::Routing { flags });
    }
    if flags & FLAG_C != 0 {
        return Err(DecodeError::Checksum);
    }
    if flags & FLAG_K == 0 {
        return Err(DecodeError::MissingKey);
    }
    let has_seq = flags & FLAG_S != 0;
    let needed = if has_seq { 12 } else { 8 };
    if gre.len() < needed {
        return Err(DecodeError::ShortGre { needed, len: gre.len() });
    }
    let protocol_type = be16(gre, 2);
    if protocol_type != ETHERTYPE_IPV4 {
        return Err(DecodeError::NotIpv4Payload { protocol_type });
    }
    let flow = FlowId(be32(gre, 4));
    let seq = has_seq.then(|| be32(gre, 8));
    let rest = &gre[needed..];
    let inner = whole_ipv4(rest).ok_or(DecodeError::Inner { len: rest.len() })?;
    Ok(Decoded { outer, tag: Tag { flow, seq }, inner })
}

/// The ON of an IPv4 packet: its flow id if it decodes as an ON packet.
pub fn classify_ipv4(packet: &[u8]) -> Option<FlowId> {
    decode(packet).ok().map(|d| d.tag.flow)
}

/// The ON of an Ethernet frame (up to two VLAN tags, 802.1Q or 802.1ad):
/// its flow id if it carries IPv4 that decodes as an ON packet.
pub fn classify_ethernet(frame: &[u8]) -> Option<FlowId> {
    let mut at = 12;
    for _ in 0..3 {
        let ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        match ethertype {
            ETHERTYPE_IPV4 => return classify_ipv4(frame.get(at + 2..)?),
            0x8100 | 0x88a8 => at += 4,
            _ => return None,
        }
    }
    None
}

/// `bytes` cut to the total length of the IPv4 packet they begin with, if
/// they hold a whole one (a version 4 header of at least 20 bytes).
fn whole_ipv4(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < 20 || bytes[0] >> 4 != 4 || usize::from(bytes[0] & 0x0f) < 5 {
        return None;
    }
    let total = usize::from(be16(bytes, 2));
    if total < usize::from(bytes[0] & 0x0f) * 4 {
        return None;
    }
    bytes.get(..total)
}

/// The Internet checksum of a header: 0 over a header whose checksum field is right.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Callers have checked `at + 2 <= b.len()`.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Callers have checked `at + 4 <= b.len()`.
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A UDP-in-IPv4 packet of `payload` bytes (the inner packet of the tests).
    fn inner(payload: usize) -> Vec<u8> {
        let total = 28 + payload;
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let sum = ipv4_checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, ((8 + payload) >> 8) as u8, (8 + payload) as u8, 0, 0]);
        p.extend((0..payload).map(|i| i as u8));
        p
    }

    fn outer() -> Outer {
        Outer { src: [192, 0, 2, 1], dst: [198, 51, 100, 7], ttl: 63, tos: 0xb8, identification: 0x1234, dont_fragment: true }
    }

    fn encoded(tag: Tag, payload: usize) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&outer(), tag, &inner(payload), &mut out).unwrap();
        out
    }

    /// The bytes of RFC 2890's header, written out by hand.
    #[test]
    fn header_bytes_by_hand() {
        let p = encoded(Tag { flow: FlowId(0xdead_beef), seq: Some(7) }, 4);
        assert_eq!(&p[20..32], &[0x30, 0x00, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7]);
        assert_eq!(p[9], 47);
        let p = encoded(Tag { flow: FlowId(42), seq: None }, 4);
        assert_eq!(&p[20..28], &[0x20, 0x00, 0x08, 0x00, 0, 0, 0, 42]);
        assert_eq!(&p[28..], &inner(4)[..]);
    }

    #[test]
    fn round_trip() {
        for tag in [Tag { flow: FlowId(1), seq: None }, Tag { flow: FlowId(u32::MAX), seq: Some(u32::MAX) }] {
            let p = encoded(tag, 100);
            let d = decode(&p).unwrap();
            assert_eq!(d.tag, tag);
            assert_eq!(d.outer, outer());
            assert_eq!(d.inner, &inner(100)[..]);
            assert_eq!(classify_ipv4(&p), Some(tag.flow));
        }
    }

    /// An independent IPv4 implementation reads the outer header we write.
    #[test]
    fn etherparse_reads_the_outer_header() {
        let p = encoded(Tag { flow: FlowId(9), seq: Some(3) }, 30);
        let (h, rest) = etherparse::Ipv4Header::from_slice(&p).unwrap();
        assert_eq!(h.protocol, etherparse::IpNumber::GRE);
        assert_eq!(usize::from(h.total_len), p.len());
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert!(h.dont_fragment);
        assert_eq!(rest.len(), 12 + inner(30).len());
    }

    #[test]
    fn ethernet_frames_and_vlan_tags() {
        let p = encoded(Tag { flow: FlowId(77), seq: None }, 8);
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&p);
        assert_eq!(classify_ethernet(&frame), Some(FlowId(77)));
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&[0x88, 0xa8, 0, 5, 0x81, 0x00, 0, 6, 0x08, 0x00]);
        tagged.extend_from_slice(&p);
        assert_eq!(classify_ethernet(&tagged), Some(FlowId(77)));
        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&[0x86, 0xdd]);
        v6.extend_from_slice(&p);
        assert_eq!(classify_ethernet(&v6), None);
        assert_eq!(classify_ethernet(&frame[..13]), None);
        // A plain (not encapsulated) IPv4 packet is outside every ON.
        let mut plain = vec![0u8; 12];
        plain.extend_from_slice(&[0x08, 0x00]);
        plain.extend_from_slice(&inner(8));
        assert_eq!(classify_ethernet(&plain), None);
    }

    /// Sets the GRE flags word of an encoded packet.
    fn with_flags(mut p: Vec<u8>, flags: u16) -> Vec<u8> {
        p[20..22].copy_from_slice(&flags.to_be_bytes());
        p
    }

    /// Rewrites the outer header's checksum after a change to it.
    fn resum(mut p: Vec<u8>) -> Vec<u8> {
        let ihl = usize::from(p[0] & 0x0f) * 4;
        p[10..12].copy_from_slice(&[0, 0]);
        let sum = ipv4_checksum(&p[..ihl]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    /// Each malformed case, with the error it must get.
    #[test]
    fn hostile_inputs_each_get_their_error() {
        let good = encoded(Tag { flow: FlowId(5), seq: Some(1) }, 10);
        let e = |p: &[u8]| decode(p).unwrap_err();
        assert_eq!(e(&good[..19]), DecodeError::ShortIpv4 { len: 19 });
        assert_eq!(e(&[]), DecodeError::ShortIpv4 { len: 0 });
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(e(&v6), DecodeError::NotIpv4 { version: 6 });
        let mut ihl = good.clone();
        ihl[0] = 0x44;
        assert_eq!(e(&ihl), DecodeError::BadHeaderLength { ihl: 4, len: good.len() });
        assert!(matches!(e(&good[..30]), DecodeError::BadTotalLength { .. }));
        let mut sum = good.clone();
        sum[8] ^= 1;
        assert_eq!(e(&sum), DecodeError::Ipv4Checksum);
        let mut frag = good.clone();
        frag[6] |= 0x20; // MF
        assert_eq!(e(&resum(frag)), DecodeError::Fragment);
        let mut udp = good.clone();
        udp[9] = 17;
        assert_eq!(e(&resum(udp)), DecodeError::NotGre { protocol: 17 });
        assert_eq!(e(&with_flags(good.clone(), 0x3001)), DecodeError::Version { version: 1 });
        assert_eq!(e(&with_flags(good.clone(), 0x7000)), DecodeError::Routing { flags: 0x7000 });
        assert_eq!(e(&with_flags(good.clone(), 0x3800)), DecodeError::Routing { flags: 0x3800 });
        assert_eq!(e(&with_flags(good.clone(), 0xb000)), DecodeError::Checksum);
        assert_eq!(e(&with_flags(good.clone(), 0x1000)), DecodeError::MissingKey);
        // Bits 6 to 12 are ignored on receipt.
        assert!(decode(&with_flags(good.clone(), 0x30f8)).is_ok());
        let mut proto = good.clone();
        proto[22..24].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(e(&proto), DecodeError::NotIpv4Payload { protocol_type: 0x86dd });
        // A GRE header cut short: the outer total length says 20 + 10 bytes.
        let mut short = good[..30].to_vec();
        short[2..4].copy_from_slice(&30u16.to_be_bytes());
        assert_eq!(e(&resum(short)), DecodeError::ShortGre { needed: 12, len: 10 });
        let mut tiny = good[..22].to_vec();
        tiny[2..4].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(e(&resum(tiny)), DecodeError::ShortGre { needed: 4, len: 2 });
        // An inner packet that claims more than it has.
        let mut cut = good[..good.len() - 1].to_vec();
        let n = cut.len() as u16;
        cut[2..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(e(&resum(cut)), DecodeError::Inner { len: inner(10).len() - 1 });
    }

    #[test]
    fn options_and_padding_are_tolerated() {
        let p = encoded(Tag { flow: FlowId(3), seq: None }, 5);
        // The same packet with one word of outer options (NOPs).
        let mut o = vec![0x46];
        o.extend_from_slice(&p[1..20]);
        o.extend_from_slice(&[1, 1, 1, 1]);
        o.extend_from_slice(&p[20..]);
        let n = o.len() as u16;
        o[2..4].copy_from_slice(&n.to_be_bytes());
        let mut o = resum(o);
        o.extend_from_slice(&[0; 6]); // Ethernet padding
        let d = decode(&o).unwrap();
        assert_eq!(d.tag.flow, FlowId(3));
        assert_eq!(d.inner, &inner(5)[..]);
    }

    #[test]
    fn encode_refuses() {
        let mut out = Vec::new();
        assert_eq!(encode(&outer(), Tag { flow: FlowId(1), seq: None }, &[0x45; 10], &mut out), Err(EncodeError::Inner { len: 10 }));
        let big = inner(65_535 - 28);
        assert_eq!(big.len(), 65_535);
        assert_eq!(encode(&outer(), Tag { flow: FlowId(1), seq: None }, &big, &mut out), Err(EncodeError::TooLong { len: 65_563 }));
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = decode(&bytes);
            let _ = classify_ethernet(&bytes);
        }

        /// Any single-byte change is either refused or decodes to something
        /// that encodes back to the same bytes.
        #[test]
        fn mutations_are_refused_or_consistent(flow: u32, seq: Option<u32>, at in 0usize..60, byte: u8) {
            let tag = Tag { flow: FlowId(flow), seq };
            let mut p = encoded(tag, 20);
            let at = at % p.len();
            p[at] = byte;
            if let Ok(d) = decode(&p) {
                let mut again = Vec::new();
                let encoded_again = encode(&d.outer, d.tag, d.inner, &mut again).is_ok();
                prop_assert!(encoded_again);
                prop_assert_eq!(decode(&again).unwrap(), d);
            }
        }

        #[test]
        fn round_trips(flow: u32, seq: Option<u32>, payload in 0usize..200, ttl: u8, id: u16) {
            let o = Outer { ttl, identification: id, ..outer() };
            let mut p = Vec::new();
            encode(&o, Tag { flow: FlowId(flow), seq }, &inner(payload), &mut p).unwrap();
            let d = decode(&p).unwrap();
            prop_assert_eq!(d.tag, Tag { flow: FlowId(flow), seq });
            prop_assert_eq!(d.outer, o);
            prop_assert_eq!(d.inner, &inner(payload)[..]);
        }
    }
}
