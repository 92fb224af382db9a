//! Generated packets: IPv4/UDP headers and their checksums.

use super::{Effects, GENERATE_PORT, MAX_PAYLOAD};

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

#[cfg(test)]
mod tests {
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
