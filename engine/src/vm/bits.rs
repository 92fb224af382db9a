//! Packet sets as bitmaps of `u64` words over view positions, and the
//! encoding of prefixes in scalar registers.

/// Bit j set when `col[j] & mask == net` (`col` at most 64 long). Written as
/// a byte-per-lane compare, which the compiler vectorizes, then packed eight
/// lanes at a time with one multiply.
#[inline]
pub(super) fn match_bits(col: &[u32], net: u32, mask: u32) -> u64 {
    let mut lanes = [0u8; 64];
    for (o, &x) in lanes.iter_mut().zip(col) {
        *o = u8::from(x & mask == net);
    }
    let mut bits = 0u64;
    for (k, eight) in lanes.chunks_exact(8).enumerate() {
        let b = u64::from_le_bytes([eight[0], eight[1], eight[2], eight[3], eight[4], eight[5], eight[6], eight[7]]);
        // Gathers the low bit of each byte into the top byte, byte j to bit j.
        bits |= (b.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
    }
    bits
}

#[inline]
pub(super) fn for_each_bit(words: &[u64], mut f: impl FnMut(usize)) {
    for (wi, &w) in words.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            f(wi * 64 + w.trailing_zeros() as usize);
            w &= w - 1;
        }
    }
}

#[inline]
pub(super) fn popcount(words: &[u64]) -> u64 {
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

#[inline]
pub(super) fn enc_prefix(net: u32, len: u8) -> u64 {
    (u64::from(net) << 8) | u64::from(len)
}

#[inline]
pub(super) fn dec_prefix(x: u64) -> (u32, u8) {
    ((x >> 8) as u32, x as u8)
}
