//! Generated packets: IPv4/UDP headers and their checksums.

use super::{Effects, GENERATE_PORT, MAX_PAYLOAD};

/// Internet checksum (RFC 1071) of `data` added to `sum`, unfolded.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Append one IPv4/UDP packet (SEMANTICS "GENERATE") to `fx`.
pub(super) fn emit(fx: &mut Effects, src: u32, dst: u32, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let off = fx.gen_bytes.len();
    let b = &mut fx.gen_bytes;
    // version/IHL, TOS, total length, id 0, flags/fragment 0 (DF clear), TTL 64, UDP, checksum
    b.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 17, 0, 0]);
    b.extend_from_slice(&src.to_be_bytes());
    b.extend_from_slice(&dst.to_be_bytes());
    let ip_sum = fold(sum16(0, &b[off..off + 20]));
    b[off + 10..off + 12].copy_from_slice(&ip_sum.to_be_bytes());
    b.extend_from_slice(&GENERATE_PORT.to_be_bytes());
    b.extend_from_slice(&GENERATE_PORT.to_be_bytes());
    b.extend_from_slice(&(udp_len as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(payload);
    // UDP checksum over the pseudo-header, the UDP header and the payload.
    let mut s = sum16(0, &b[off + 12..off + 20]);
    s += 17 + udp_len as u32;
    s = sum16(s, &b[off + 20..]);
    let mut c = fold(s);
    if c == 0 {
        c = 0xffff;
    }
    b[off + 26..off + 28].copy_from_slice(&c.to_be_bytes());
    fx.gen.push((off as u32, total as u32));
}
