//! Packet sets as bitmaps of `u64` words over view positions, the address
//! match of the keyed filters, and the one form of a field test.

use vinet_checker::bytecode::Field;

/// Bit j set when `col[j] & mask == net` (`col` at most 64 long; 128-bit
/// addresses, IPv4 as IPv4-mapped, so one compare serves both families).
/// Written as a byte-per-lane compare, which the compiler vectorizes, then
/// packed eight lanes at a time with one multiply.
#[inline]
pub(super) fn match_bits(col: &[u128], net: u128, mask: u128) -> u64 {
    let mut lanes = [0u8; 64];
    for (o, &x) in lanes.iter_mut().zip(col) {
        *o = u8::from(x & mask == net);
    }
    pack(&lanes)
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

/// A test on one field of a packet, as [`crate::window::View::field`] reads
/// it: `(value & mask) - lo <= span` in wrapping arithmetic. One form for
/// every narrowing, so that the interpreter, the plans and the dispatch
/// table's direct decisions test alike:
/// - a range `lo <= value <= hi` (protocol, ports): `mask` all ones, `span =
///   hi - lo`;
/// - TCP flags `on` set and `off` clear: `mask = on | off | 0x100`, `lo =
///   on`, `span = 0` (a packet without flags reads [`ABSENT`], whose 0x100
///   bit no flags byte has);
/// - a test nothing passes: `mask = 0`, `lo = 1`, `span = 0`.
///
/// [`ABSENT`]: crate::window::ABSENT
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FieldTest {
    pub(crate) field: Field,
    pub(crate) mask: u32,
    pub(crate) lo: u32,
    pub(crate) span: u32,
}

impl FieldTest {
    /// `Narrow { field, a, b }` with `a`, `b` the values of its registers
    /// (SEMANTICS "Routines"): for protocol and ports, the packets with the
    /// field and `a <= value <= b` (`a > b`, or `a` above every value of the
    /// field, passes none); for TCP flags, the packets with flags, every
    /// flag of `a` set and every flag of `b` clear (a flag of `a` above the
    /// flags byte, or in both, passes none).
    pub(crate) fn new(field: Field, a: u64, b: u64) -> FieldTest {
        let never = FieldTest { field, mask: 0, lo: 1, span: 0 };
        match field {
            Field::TcpFlags => {
                if a > 0xff || a & b != 0 {
                    return never;
                }
                FieldTest { field, mask: ((a | b) & 0xff) as u32 | 0x100, lo: a as u32, span: 0 }
            }
            Field::Proto | Field::SrcPort | Field::DstPort => {
                let max = if field == Field::Proto { 0xff } else { 0xffff };
                if a > b || a > max {
                    return never;
                }
                FieldTest { field, mask: u32::MAX, lo: a as u32, span: (b.min(max) - a) as u32 }
            }
        }
    }

    /// Whether a packet whose field reads `v` passes.
    #[inline]
    pub(crate) fn passes(&self, v: u32) -> bool {
        (v & self.mask).wrapping_sub(self.lo) <= self.span
    }
}

/// Bit j set when position `base + j` of `v` (j < 64, positions below
/// `v.len()`) passes `t`: one word of a narrowed set. A lane per packet,
/// one column at a time (the compiler vectorizes each), then packed as
/// [`match_bits`] packs. The same answers as testing `v.field(t.field, pos)`
/// (a packet without the field passes no test).
#[inline]
pub(super) fn field_bits(v: &crate::window::View<'_>, t: FieldTest, base: usize) -> u64 {
    const TCP: u8 = 6;
    let end = v.len().min(base + 64);
    let cut = |n: usize| base.min(n)..end.min(n);
    let mut lanes = [0u8; 64];
    let l = lanes.get_mut(..end.saturating_sub(base)).unwrap_or(&mut []);
    let ports = v.has_ports.get(cut(v.has_ports.len())).unwrap_or(&[]);
    match t.field {
        Field::Proto => {
            for (o, &p) in l.iter_mut().zip(v.proto.get(cut(v.proto.len())).unwrap_or(&[])) {
                *o = u8::from(t.passes(u32::from(p)));
            }
        }
        Field::SrcPort | Field::DstPort => {
            let col = if t.field == Field::SrcPort { v.sport } else { v.dport };
            for ((o, &p), &has) in l.iter_mut().zip(col.get(cut(col.len())).unwrap_or(&[])).zip(ports) {
                *o = u8::from(has) & u8::from(t.passes(u32::from(p)));
            }
        }
        Field::TcpFlags => {
            for ((o, &f), &has) in l.iter_mut().zip(v.tcp_flags.get(cut(v.tcp_flags.len())).unwrap_or(&[])).zip(ports) {
                *o = u8::from(has) & u8::from(t.passes(u32::from(f)));
            }
            for (o, &p) in l.iter_mut().zip(v.proto.get(cut(v.proto.len())).unwrap_or(&[])) {
                *o &= u8::from(p == TCP);
            }
        }
    }
    pack(&lanes)
}

/// Bit j of the result: the low bit of `lanes[j]`.
#[inline]
fn pack(lanes: &[u8; 64]) -> u64 {
    let mut bits = 0u64;
    for (k, eight) in lanes.chunks_exact(8).enumerate() {
        let b = u64::from_le_bytes([eight[0], eight[1], eight[2], eight[3], eight[4], eight[5], eight[6], eight[7]]);
        // Gathers the low bit of each byte into the top byte, byte j to bit j.
        bits |= (b.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
    }
    bits
}
