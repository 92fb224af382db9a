//! Generated packets: IPv4/UDP or IPv6/UDP headers and their checksums.

use super::{Effects, GENERATE_PORT, MAX_PAYLOAD};
use crate::packet::is_mapped;

/// Internet checksum (RFC 1071) of `data` added to `sum`, folded to 16
/// bits. Big-endian 32-bit words are summed (2^16 is 1 modulo
/// 2^16 - 1, so this is the sum of the 16-bit words), eight bytes a step.
fn sum16(sum: u32, data: &[u8]) -> u32 {
    let mut acc = u64::from(sum);
    let mut words = data.chunks_exact(8);
    for c in &mut words {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for c in &mut pairs {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = pairs.remainder() {
        acc += u64::from(*b) << 8;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Bytes of IPv4 and UDP headers of a generated packet.
pub(super) const HEADERS_V4: usize = 28;
/// Bytes of IPv6 and UDP headers of a generated packet: the checker's bound
/// a packet, whatever its family.
pub(super) const HEADERS_V6: usize = vinet_checker::vcgen::HEADERS as usize;

/// The family of a packet from `src` to `dst`: `Some(false)` for IPv4 (both
/// IPv4-mapped), `Some(true)` for IPv6 (neither), `None` when they differ
/// (no packet can carry them: the GENERATE is skipped and counted).
#[inline]
pub(super) fn family(src: u128, dst: u128) -> Option<bool> {
    match (is_mapped(src), is_mapped(dst)) {
        (true, true) => Some(false),
        (false, false) => Some(true),
        _ => None,
    }
}

/// Append one IPv4/UDP or IPv6/UDP packet (SEMANTICS "GENERATE") from `src`
/// to `dst` to `fx`: IPv4 when both are IPv4-mapped, else IPv6 (the caller
/// has checked that they are of one family, [`family`]).
pub(super) fn emit(fx: &mut Effects, src: u128, dst: u128, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD && family(src, dst).is_some());
    if is_mapped(src) {
        emit4(fx, src as u32, dst as u32, payload);
    } else {
        emit6(fx, src, dst, payload);
    }
}

/// An IPv4/UDP packet: TTL 64, DF clear, id 0, both checksums.
fn emit4(fx: &mut Effects, src: u32, dst: u32, payload: &[u8]) {
    let udp_len = 8 + payload.len();
    let total = HEADERS_V4 + payload.len();
    let off = fx.gen_bytes.len();
    let b = &mut fx.gen_bytes;
    // version/IHL, TOS, total length, id 0, flags/fragment 0 (DF clear), TTL 64, UDP, checksum
    b.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 17, 0, 0]);
    b.extend_from_slice(&src.to_be_bytes());
    b.extend_from_slice(&dst.to_be_bytes());
    let ip_sum = fold(sum16(0, &b[off..off + 20]));
    b[off + 10..off + 12].copy_from_slice(&ip_sum.to_be_bytes());
    udp(b, udp_len, payload);
    // UDP checksum over the pseudo-header, the UDP header and the payload.
    let mut s = sum16(0, &b[off + 12..off + 20]);
    s += 17 + udp_len as u32;
    s = sum16(s, &b[off + 20..]);
    set_udp_checksum(b, off + 26, s);
    fx.gen.push((off as u32, total as u32));
}

/// An IPv6/UDP packet: traffic class and flow label 0, hop limit 64, the UDP
/// checksum (mandatory over IPv6, RFC 8200 8.1) over the IPv6 pseudo-header.
fn emit6(fx: &mut Effects, src: u128, dst: u128, payload: &[u8]) {
    let udp_len = 8 + payload.len();
    let off = fx.gen_bytes.len();
    let b = &mut fx.gen_bytes;
    // version 6, traffic class 0, flow label 0, payload length, next header UDP, hop limit 64
    b.extend_from_slice(&[0x60, 0, 0, 0, (udp_len >> 8) as u8, udp_len as u8, 17, 64]);
    b.extend_from_slice(&src.to_be_bytes());
    b.extend_from_slice(&dst.to_be_bytes());
    udp(b, udp_len, payload);
    // Pseudo-header: source, destination, upper-layer length (32 bits), next header.
    let mut s = sum16(0, &b[off + 8..off + 40]);
    s += 17 + udp_len as u32;
    s = sum16(s, &b[off + 40..]);
    set_udp_checksum(b, off + 46, s);
    fx.gen.push((off as u32, (HEADERS_V6 + payload.len()) as u32));
}

/// The UDP header (from and to [`GENERATE_PORT`], checksum 0 for now) and the payload.
fn udp(b: &mut Vec<u8>, udp_len: usize, payload: &[u8]) {
    b.extend_from_slice(&GENERATE_PORT.to_be_bytes());
    b.extend_from_slice(&GENERATE_PORT.to_be_bytes());
    b.extend_from_slice(&(udp_len as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(payload);
}

/// Write the UDP checksum of sum `s` at `at`: a computed 0 is sent as
/// 0xffff (0 means "no checksum", which IPv6 forbids).
fn set_udp_checksum(b: &mut [u8], at: usize, s: u32) {
    let mut c = fold(s);
    if c == 0 {
        c = 0xffff;
    }
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::{emit, family, Effects};
    use vinet_checker::mapped;

    const A6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
    const B6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0002;

    /// Both checksums of both families, verified by etherparse, for payloads
    /// of every length up to 300; a UDP checksum that computes to 0 is sent as
    /// 0xffff (IPv6 forbids 0, "no checksum").
    #[test]
    fn checksums_of_both_families() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for len in 0..data.len() {
            for (s, d) in [(mapped(0xc633_6407), mapped(0x0a00_0007)), (A6, B6)] {
                let mut fx = Effects::default();
                emit(&mut fx, s, d, &data[..len]);
                let g = fx.generated().next().unwrap();
                let p = etherparse::SlicedPacket::from_ip(g).expect("parses");
                let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else { panic!("not UDP") };
                let want = match &p.net {
                    Some(etherparse::NetSlice::Ipv4(ip)) => {
                        let h = ip.header();
                        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                        assert_eq!((g.len(), h.ttl()), (super::HEADERS_V4 + len, 64));
                        u.to_header().calc_checksum_ipv4(&h.to_header(), u.payload()).unwrap()
                    }
                    Some(etherparse::NetSlice::Ipv6(ip)) => {
                        let h = ip.header();
                        assert_eq!((g.len(), h.hop_limit(), h.payload_length() as usize), (super::HEADERS_V6 + len, 64, 8 + len));
                        u.to_header().calc_checksum_ipv6(&h.to_header(), u.payload()).unwrap()
                    }
                    _ => panic!("not IP"),
                };
                assert_eq!(u.checksum(), want, "length {len}");
                assert_eq!(u.payload(), &data[..len]);
            }
        }
        // A payload word that makes the sum all ones: the checksum computes to 0, is sent as 0xffff.
        for (s, d, at) in [(mapped(0xc633_6407), mapped(0x0a00_0007), 26), (A6, B6, 46)] {
            let mut fx = Effects::default();
            emit(&mut fx, s, d, &[0, 0]);
            let c = fx.gen_bytes[at..at + 2].to_vec();
            let mut fx = Effects::default();
            emit(&mut fx, s, d, &c);
            assert_eq!(&fx.gen_bytes[at..at + 2], &[0xff, 0xff]);
        }
    }

    #[test]
    fn families() {
        assert_eq!(family(mapped(1), mapped(2)), Some(false));
        assert_eq!(family(A6, B6), Some(true));
        assert_eq!(family(mapped(1), B6), None);
        assert_eq!(family(A6, mapped(2)), None);
    }

    /// The eight-bytes-a-step sum is the RFC 1071 sum of 16-bit words.
    #[test]
    fn the_wide_sum_is_the_sum_of_16_bit_words() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for start in [0u32, 1, 0xffff, 0x1_fffe] {
            for len in 0..data.len() {
                let d = &data[..len];
                let mut naive = u64::from(start);
                for (i, b) in d.iter().enumerate() {
                    naive += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
                }
                while naive >> 16 != 0 {
                    naive = (naive & 0xffff) + (naive >> 16);
                }
                assert_eq!(super::fold(super::sum16(start, d)), super::fold(naive as u32), "length {len}, start {start}");
            }
        }
    }
}
