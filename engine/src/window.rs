//! The execution window: up to W packets (or T milliseconds of capture time)
//! stored as columns, so that one VM instruction runs over a whole column.
//!
//! A window owns one byte arena holding every frame it was given (IP or
//! not, in arrival order), one row per frame, and one column per packet field
//! for the frames that parsed as IPv4 or IPv6 packets (the window's
//! `AllPackets`; addresses are 128-bit, IPv4 as IPv4-mapped). Payloads
//! are offsets into the arena. Per-window output is a drop bitmap over the
//! packets and the generated packets, also in one arena. Buffers are cleared,
//! never freed, so a router reuses one window without allocating per packet.
//!
//! **Zero copy.** A window may also *borrow* its frames from a caller's slab
//! (one contiguous buffer holding many frames: an in-memory replay buffer, a
//! capture ring), through [`crate::runner::Runner::push_slab`]: then frame and
//! payload offsets are offsets into the slab, and nothing is copied. A window
//! is in one mode at a time; a borrowed window still open when the slab is
//! given back is *internalized* (its frames copied into the arena), so a
//! window may span calls.
//!
//! The window also lists its IPv6 fragments (packet, addresses,
//! identification, offset, capture time), so that the runner can give the
//! later fragments of a datagram the verdict of its first
//! ([`crate::fragments`]).
//!
//! **Invariant:** every column has one entry per packet, and every payload
//! range lies inside the arena, or in borrowed mode inside the slab the
//! window was filled from (enforced by the push methods, the only writers).

use vinet_checker::bytecode::Field;

use crate::packet::{parse_frame, Fragment, LinkType, Parsed};
use crate::stream::StreamNotes;

/// When a window closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// W: IP packets per window (the policy's `window_packets`).
    pub packets: u32,
    /// T: a window spans at most this much capture time, in milliseconds.
    pub millis: u64,
    /// Frames (of any kind) per window, so that a flood of non-IP frames
    /// still closes windows. At least `packets`.
    pub max_frames: u32,
}

impl WindowConfig {
    /// W packets or T ms; frames capped at 4 W.
    pub fn new(packets: u32, millis: u64) -> WindowConfig {
        let packets = packets.max(1);
        WindowConfig { packets, millis, max_frames: packets.saturating_mul(4) }
    }
}

/// Bytes of frames a window holds before it closes early (keeps arena offsets
/// in `u32` with a wide margin).
pub const MAX_WINDOW_BYTES: usize = 64 << 20;

/// What a frame of the window is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// An IPv4 or IPv6 packet: the packet's index in the window.
    Packet(u32),
    /// Parsed, not a packet of the window ([`Parsed::NotIp`]): forwarded untouched.
    NotIp,
    /// Not parsed: forwarded untouched.
    Unparsed,
}

/// One frame of the window.
#[derive(Clone, Copy, Debug)]
pub struct FrameMeta {
    /// Where its bytes start in the arena.
    off: usize,
    /// Captured length.
    len: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// Capture time, ns since the epoch.
    pub ts_ns: u64,
    /// Its link type.
    pub link: LinkType,
    /// What it is.
    pub kind: FrameKind,
}

/// An IPv6 fragment of the window ([`Window::fragments`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FragRow {
    /// Its packet index in the window.
    pub(crate) packet: u32,
    pub(crate) src: u128,
    pub(crate) dst: u128,
    /// Its identification and offset.
    pub(crate) frag: Fragment,
    /// Its capture time, ns since the epoch.
    pub(crate) ts_ns: u64,
}

/// Packet fields as columns. Used for a window and for the dispatch table's
/// per-client buckets.
#[derive(Default, Debug, Clone)]
pub(crate) struct Columns {
    /// Source addresses (IPv4 as IPv4-mapped).
    pub(crate) src: Vec<u128>,
    /// Destination addresses (IPv4 as IPv4-mapped).
    pub(crate) dst: Vec<u128>,
    pub(crate) proto: Vec<u8>,
    pub(crate) sport: Vec<u16>,
    pub(crate) dport: Vec<u16>,
    /// Whether the packet has ports ([`crate::packet::Fields::has_ports`]).
    pub(crate) has_ports: Vec<bool>,
    /// The TCP flags byte (0 for a packet without flags).
    pub(crate) tcp_flags: Vec<u8>,
    pub(crate) seq: Vec<u32>,
    /// The overlay-network flow id each packet carries ([`crate::packet::Fields::on_key`]).
    pub(crate) on_key: Vec<Option<u32>>,
    pub(crate) pay_off: Vec<u32>,
    pub(crate) pay_len: Vec<u32>,
    /// Window packet index of each row.
    pub(crate) origin: Vec<u32>,
}

impl Columns {
    pub(crate) fn clear(&mut self) {
        self.src.clear();
        self.dst.clear();
        self.proto.clear();
        self.sport.clear();
        self.dport.clear();
        self.has_ports.clear();
        self.tcp_flags.clear();
        self.seq.clear();
        self.on_key.clear();
        self.pay_off.clear();
        self.pay_len.clear();
        self.origin.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.src.len()
    }

    /// Replace the rows with rows `perm` of `from`, one column at a time.
    pub(crate) fn gather(&mut self, from: &Columns, perm: &[u32]) {
        fn col<T: Copy>(dst: &mut Vec<T>, src: &[T], perm: &[u32]) {
            dst.clear();
            dst.extend(perm.iter().map(|&i| src[i as usize]));
        }
        col(&mut self.src, &from.src, perm);
        col(&mut self.dst, &from.dst, perm);
        col(&mut self.proto, &from.proto, perm);
        col(&mut self.sport, &from.sport, perm);
        col(&mut self.dport, &from.dport, perm);
        col(&mut self.has_ports, &from.has_ports, perm);
        col(&mut self.tcp_flags, &from.tcp_flags, perm);
        col(&mut self.seq, &from.seq, perm);
        col(&mut self.on_key, &from.on_key, perm);
        col(&mut self.pay_off, &from.pay_off, perm);
        col(&mut self.pay_len, &from.pay_len, perm);
        col(&mut self.origin, &from.origin, perm);
    }

    /// A view of rows `[start, end)` over payload arena `bytes`, with the
    /// window's stream notes.
    pub(crate) fn view<'a>(&'a self, bytes: &'a [u8], notes: &'a StreamNotes, start: usize, end: usize) -> View<'a> {
        View {
            src: &self.src[start..end],
            dst: &self.dst[start..end],
            proto: &self.proto[start..end],
            sport: &self.sport[start..end],
            dport: &self.dport[start..end],
            has_ports: &self.has_ports[start..end],
            tcp_flags: &self.tcp_flags[start..end],
            seq: &self.seq[start..end],
            on_key: Some(&self.on_key[start..end]),
            pay_off: &self.pay_off[start..end],
            pay_len: &self.pay_len[start..end],
            origin: &self.origin[start..end],
            bytes,
            notes: (!notes.is_empty()).then_some(notes),
        }
    }
}

/// The packets a program run sees (its `AllPackets`): a window, or one
/// client's bucket of it. Position `i` of the view is packet `origin[i]` of
/// the window.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub(crate) src: &'a [u128],
    pub(crate) dst: &'a [u128],
    pub(crate) proto: &'a [u8],
    pub(crate) sport: &'a [u16],
    pub(crate) dport: &'a [u16],
    pub(crate) has_ports: &'a [bool],
    pub(crate) tcp_flags: &'a [u8],
    pub(crate) seq: &'a [u32],
    /// The flow ids packets carry; `None` for a view of caller-held columns
    /// ([`View::from_columns`]), whose packets carry none.
    pub(crate) on_key: Option<&'a [Option<u32>]>,
    pub(crate) pay_off: &'a [u32],
    pub(crate) pay_len: &'a [u32],
    pub(crate) origin: &'a [u32],
    pub(crate) bytes: &'a [u8],
    /// What the router's stream tracker noted, by window packet (none for
    /// views of caller-held columns, and for windows not run by a router).
    pub(crate) notes: Option<&'a StreamNotes>,
}

/// Packet columns held by the caller, to make a [`View`] of (for packet
/// sources that keep their own columns, and for measurements).
#[derive(Clone, Copy, Debug)]
pub struct ColumnSlices<'a> {
    /// Source addresses (IPv4 as IPv4-mapped, [`vinet_checker::mapped`]).
    pub src: &'a [u128],
    /// Destination addresses (IPv4 as IPv4-mapped).
    pub dst: &'a [u128],
    /// IP protocols.
    pub proto: &'a [u8],
    /// Source ports.
    pub sport: &'a [u16],
    /// Destination ports.
    pub dport: &'a [u16],
    /// Whether each packet has ports (a packet without is never port 0):
    /// only TCP and UDP packets can, as the parser sets it.
    pub has_ports: &'a [bool],
    /// TCP flags bytes (0 for a packet without flags).
    pub tcp_flags: &'a [u8],
    /// TCP sequence numbers.
    pub seq: &'a [u32],
    /// Payload offsets into `bytes`.
    pub pay_off: &'a [u32],
    /// Payload lengths.
    pub pay_len: &'a [u32],
    /// The window packet index of each row.
    pub origin: &'a [u32],
    /// The bytes payloads are in.
    pub bytes: &'a [u8],
}

impl<'a> View<'a> {
    /// A view of caller-held columns; `None` unless every column has one
    /// entry per packet, and only TCP and UDP packets have ports. (Payload
    /// ranges outside `bytes` read as empty.)
    pub fn from_columns(c: ColumnSlices<'a>) -> Option<View<'a>> {
        let n = c.src.len();
        let same = [
            c.dst.len(),
            c.proto.len(),
            c.sport.len(),
            c.dport.len(),
            c.has_ports.len(),
            c.tcp_flags.len(),
            c.seq.len(),
            c.pay_off.len(),
            c.pay_len.len(),
            c.origin.len(),
        ];
        let ports_ok = c.has_ports.iter().zip(c.proto).all(|(&has, &p)| !has || p == 6 || p == 17);
        (ports_ok && same.iter().all(|&k| k == n)).then_some(View {
            src: c.src,
            dst: c.dst,
            proto: c.proto,
            sport: c.sport,
            dport: c.dport,
            has_ports: c.has_ports,
            tcp_flags: c.tcp_flags,
            seq: c.seq,
            on_key: None,
            pay_off: c.pay_off,
            pay_len: c.pay_len,
            origin: c.origin,
            bytes: c.bytes,
            notes: None,
        })
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    /// True when there are no packets.
    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// The payload of packet `i` (empty if `i` is out of range).
    #[inline]
    pub fn payload(&self, i: usize) -> &'a [u8] {
        let (Some(&off), Some(&len)) = (self.pay_off.get(i), self.pay_len.get(i)) else { return &[] };
        let off = off as usize;
        self.bytes.get(off..off + len as usize).unwrap_or(&[])
    }

    /// Window packet index of view position `i`.
    pub fn origin(&self, i: usize) -> Option<u32> {
        self.origin.get(i).copied()
    }

    /// The overlay-network flow id packet `i` carries, if any.
    #[inline]
    pub(crate) fn on_key(&self, i: usize) -> Option<u32> {
        self.on_key.and_then(|k| k.get(i).copied().flatten())
    }

    /// Field `f` of packet `i` as the VM tests it: [`ABSENT`] when the
    /// packet does not have it (ports, flags) or `i` is out of range.
    #[inline]
    pub(crate) fn field(&self, f: Field, i: usize) -> u32 {
        field_of(f, self.proto, self.sport, self.dport, self.has_ports, self.tcp_flags, i)
    }
}

/// A field value no packet has: what [`View::field`] and [`Columns::field`]
/// give for a packet without the field. Above every value a field can hold
/// (protocols to 255, ports to 65,535, flags to 255), and with every bit set,
/// so that no range test and no flags test of [`crate::vm`] matches it.
pub(crate) const ABSENT: u32 = u32::MAX;

/// Field `f` of row `i` of these columns (SEMANTICS "Packet fields"): the
/// protocol of every packet; ports only of a packet with ports; flags only of
/// a TCP packet with ports; else [`ABSENT`].
#[inline]
fn field_of(f: Field, proto: &[u8], sport: &[u16], dport: &[u16], ports: &[bool], flags: &[u8], i: usize) -> u32 {
    const TCP: u8 = 6;
    let has = ports.get(i).copied().unwrap_or(false);
    let v = match f {
        Field::Proto => proto.get(i).map(|&p| u32::from(p)),
        Field::SrcPort => sport.get(i).filter(|_| has).map(|&p| u32::from(p)),
        Field::DstPort => dport.get(i).filter(|_| has).map(|&p| u32::from(p)),
        Field::TcpFlags => flags.get(i).filter(|_| has && proto.get(i) == Some(&TCP)).map(|&b| u32::from(b)),
    };
    v.unwrap_or(ABSENT)
}

impl Columns {
    /// Field `f` of row `i`, as [`View::field`].
    #[inline]
    pub(crate) fn field(&self, f: Field, i: usize) -> u32 {
        field_of(f, &self.proto, &self.sport, &self.dport, &self.has_ports, &self.tcp_flags, i)
    }
}

/// A window of frames and its output.
#[derive(Default, Debug)]
pub struct Window {
    bytes: Vec<u8>,
    /// Frames are borrowed: offsets are into the caller's slab.
    borrowed: bool,
    /// Bytes of frames held (arena or slab).
    held: usize,
    frames: Vec<FrameMeta>,
    pub(crate) cols: Columns,
    /// Borrowed packets not yet in `cols` (see [`Window::materialize`]).
    pending: Vec<crate::packet::Fields>,
    dropped: Vec<u64>,
    gen_bytes: Vec<u8>,
    gen: Vec<(u32, u32)>,
    /// The window's IPv6 fragments, in arrival order.
    frags: Vec<FragRow>,
    unparsed: u32,
    not_ip: u32,
    /// The stream tracker's notes on this window's TCP packets.
    pub(crate) notes: StreamNotes,
}

impl Window {
    /// An empty window.
    pub fn new() -> Window {
        Window::default()
    }

    /// Empty the window, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.borrowed = false;
        self.held = 0;
        self.frames.clear();
        self.cols.clear();
        self.pending.clear();
        self.dropped.clear();
        self.gen_bytes.clear();
        self.gen.clear();
        self.frags.clear();
        self.unparsed = 0;
        self.not_ip = 0;
        self.notes.clear();
    }

    /// Whether a frame captured at `ts_ns` may join this window; if not, the
    /// window must be closed first. A full window accepts nothing.
    pub fn accepts(&self, cfg: &WindowConfig, ts_ns: u64) -> bool {
        if self.is_full(cfg) {
            return false;
        }
        match self.frames.first() {
            None => true,
            Some(first) => ts_ns.saturating_sub(first.ts_ns) < cfg.millis.saturating_mul(1_000_000),
        }
    }

    /// Capture time of the window's first frame.
    #[inline]
    pub(crate) fn first_ts(&self) -> Option<u64> {
        self.frames.first().map(|m| m.ts_ns)
    }

    /// W packets, `max_frames` frames or [`MAX_WINDOW_BYTES`] reached.
    pub fn is_full(&self, cfg: &WindowConfig) -> bool {
        self.packet_count() >= cfg.packets as usize
            || self.frames.len() >= cfg.max_frames.max(cfg.packets) as usize
            || self.held >= MAX_WINDOW_BYTES
    }

    /// Add a frame (copied into the window's arena) and parse it. A window
    /// holding borrowed frames must be internalized first.
    pub fn push(&mut self, link: LinkType, ts_ns: u64, orig_len: u32, data: &[u8]) -> FrameKind {
        assert!(!self.borrowed, "Window::push on a window of borrowed frames (internalize it first)");
        let off = self.bytes.len();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let data = &data[..len as usize];
        let parsed = match u32::try_from(off + data.len()) {
            Ok(_) => parse_frame(link, data),
            // Payload offsets are u32: a frame beyond 4 GiB of window is not parsed.
            Err(_) => Parsed::Unparsed,
        };
        self.bytes.extend_from_slice(data);
        self.record(off, len, link, ts_ns, orig_len, parsed)
    }

    /// Whether the window's frames are borrowed from a slab.
    pub(crate) fn is_borrowed(&self) -> bool {
        self.borrowed
    }

    /// Add the frame `slab[off..off + len]` without copying it. The window
    /// must be empty or already borrowing from this same slab, and the slab
    /// at most `u32::MAX` bytes long (the caller, `Runner::push_slab`,
    /// checks both).
    pub(crate) fn push_borrowed(&mut self, slab: &[u8], off: usize, len: usize, link: LinkType, ts_ns: u64, orig_len: u32) -> FrameKind {
        debug_assert!(self.borrowed || self.frames.is_empty());
        debug_assert!(u32::try_from(slab.len()).is_ok() && off + len <= slab.len());
        self.borrowed = true;
        let data = slab.get(off..off + len).unwrap_or(&[]);
        let parsed = parse_frame(link, data);
        self.record(off, data.len() as u32, link, ts_ns, orig_len, parsed)
    }

    /// Copy borrowed frames into the arena (the slab is going away), moving
    /// every frame and payload offset with them.
    pub(crate) fn internalize(&mut self, slab: &[u8]) {
        if !self.borrowed {
            return;
        }
        self.materialize();
        self.bytes.clear();
        for m in &mut self.frames {
            let new = self.bytes.len();
            self.bytes.extend_from_slice(slab.get(m.off..m.off + m.len as usize).unwrap_or(&[]));
            if let FrameKind::Packet(p) = m.kind {
                // The payload lies inside the frame: move it by the same amount.
                let po = &mut self.cols.pay_off[p as usize];
                *po = (*po as usize - m.off + new) as u32;
            }
            m.off = new;
        }
        self.borrowed = false;
    }

    #[inline]
    fn record(&mut self, off: usize, len: u32, link: LinkType, ts_ns: u64, orig_len: u32, parsed: Parsed) -> FrameKind {
        self.held += len as usize;
        if let Parsed::Packet(f @ crate::packet::Fields { v6: true, fragment: Some(frag), .. }) = parsed {
            let packet = (self.cols.len() + self.pending.len()) as u32;
            self.frags.push(FragRow { packet, src: f.src, dst: f.dst, frag, ts_ns });
        }
        let kind = match parsed {
            Parsed::Packet(mut f) if self.borrowed => {
                // Rows first, columns when the window closes (one push here
                // instead of nine).
                let i = (self.cols.len() + self.pending.len()) as u32;
                // In range: the slab is at most u32::MAX bytes and the
                // payload lies inside it.
                f.payload_start += off as u32;
                self.pending.push(f);
                FrameKind::Packet(i)
            }
            Parsed::Packet(f) => {
                let i = self.cols.len() as u32;
                let c = &mut self.cols;
                c.src.push(f.src);
                c.dst.push(f.dst);
                c.proto.push(f.proto);
                c.sport.push(f.sport);
                c.dport.push(f.dport);
                c.has_ports.push(f.has_ports);
                c.tcp_flags.push(f.tcp_flags);
                c.seq.push(f.seq);
                c.on_key.push(f.on_key);
                // In range: checked above that off + len fits in u32, and the
                // parser's payload lies inside the frame.
                c.pay_off.push(off as u32 + f.payload_start);
                c.pay_len.push(f.payload_len);
                c.origin.push(i);
                FrameKind::Packet(i)
            }
            Parsed::NotIp => {
                self.not_ip += 1;
                FrameKind::NotIp
            }
            Parsed::Unparsed => {
                self.unparsed += 1;
                FrameKind::Unparsed
            }
        };
        self.frames.push(FrameMeta { off, len, orig_len, ts_ns, link, kind });
        kind
    }

    /// Move the rows of borrowed packets into the columns (before the
    /// window runs, or its frames are internalized).
    pub(crate) fn materialize(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (c, p) = (&mut self.cols, &self.pending);
        let base = c.len() as u32;
        c.src.extend(p.iter().map(|f| f.src));
        c.dst.extend(p.iter().map(|f| f.dst));
        c.proto.extend(p.iter().map(|f| f.proto));
        c.sport.extend(p.iter().map(|f| f.sport));
        c.dport.extend(p.iter().map(|f| f.dport));
        c.has_ports.extend(p.iter().map(|f| f.has_ports));
        c.tcp_flags.extend(p.iter().map(|f| f.tcp_flags));
        c.seq.extend(p.iter().map(|f| f.seq));
        c.on_key.extend(p.iter().map(|f| f.on_key));
        c.pay_off.extend(p.iter().map(|f| f.payload_start));
        c.pay_len.extend(p.iter().map(|f| f.payload_len));
        c.origin.extend(base..base + p.len() as u32);
        self.pending.clear();
    }

    /// Frames in the window.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// IP packets in the window.
    pub fn packet_count(&self) -> usize {
        self.cols.len() + self.pending.len()
    }

    /// Frames that did not parse.
    pub fn unparsed(&self) -> u32 {
        self.unparsed
    }

    /// Frames that parsed but are not packets of the window ([`FrameKind::NotIp`]).
    pub fn not_ip(&self) -> u32 {
        self.not_ip
    }

    /// The window's IPv6 fragments, in arrival order.
    pub(crate) fn fragments(&self) -> &[FragRow] {
        &self.frags
    }

    /// Frame `i`: its metadata and bytes (`None` for a window of borrowed
    /// frames, whose bytes are the caller's).
    pub fn frame(&self, i: usize) -> Option<(&FrameMeta, &[u8])> {
        let m = self.frames.get(i)?;
        let b = self.bytes_with(&[]).get(m.off..m.off + m.len as usize)?;
        Some((m, b))
    }

    /// The whole window as one view (AllPackets = every IP packet). For a
    /// window of borrowed frames, see `Window::view_with`.
    pub fn view(&self) -> View<'_> {
        self.view_with(&[])
    }

    /// The whole window as one view, the window's frames borrowed from `slab`.
    pub(crate) fn view_with<'a>(&'a self, slab: &'a [u8]) -> View<'a> {
        debug_assert!(self.pending.is_empty(), "a view of a window whose rows are not in its columns");
        self.cols.view(self.bytes_with(slab), &self.notes, 0, self.cols.len())
    }

    /// The bytes frame offsets refer to: the arena, or the slab.
    pub(crate) fn bytes_with<'a>(&'a self, slab: &'a [u8]) -> &'a [u8] {
        if self.borrowed {
            slab
        } else {
            &self.bytes
        }
    }

    /// Whether packet `i` was dropped by some program.
    pub fn is_dropped(&self, packet: u32) -> bool {
        let w = packet as usize / 64;
        self.dropped.get(w).is_some_and(|&x| x >> (packet % 64) & 1 == 1)
    }

    /// Set the verdict of packet `packet`: dropped or forwarded, whatever
    /// the programs said (the verdict of its datagram, [`crate::fragments`]).
    pub(crate) fn set_dropped(&mut self, packet: u32, dropped: bool) {
        let w = packet as usize / 64;
        if packet as usize >= self.packet_count() {
            return;
        }
        if w >= self.dropped.len() {
            if !dropped {
                return;
            }
            self.dropped.resize(w + 1, 0);
        }
        let bit = 1u64 << (packet % 64);
        if dropped {
            self.dropped[w] |= bit;
        } else {
            self.dropped[w] &= !bit;
        }
    }

    /// Packets dropped so far.
    pub fn dropped_count(&self) -> u32 {
        self.dropped.iter().map(|w| w.count_ones()).sum()
    }

    /// Generated packets (IPv4 or IPv6 bytes), in generation order.
    pub fn generated(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.gen.iter().map(|&(o, l)| &self.gen_bytes[o as usize..o as usize + l as usize])
    }

    /// Number of generated packets.
    pub fn generated_count(&self) -> usize {
        self.gen.len()
    }

    /// Commit the effects of a window's runs: `drops` is a bitmap over the
    /// window's packets (OR-ed into the drops so far), `gen` are generated
    /// packets as ranges of `gen_bytes`, appended in order.
    pub(crate) fn commit(&mut self, drops: &[u64], gen_bytes: &[u8], gen: &[(u32, u32)]) {
        let words = self.cols.len().div_ceil(64);
        if self.dropped.len() < words {
            self.dropped.resize(words, 0);
        }
        for (d, s) in self.dropped.iter_mut().zip(drops) {
            *d |= s;
        }
        for &(o, l) in gen {
            let Some(b) = gen_bytes.get(o as usize..o as usize + l as usize) else { continue };
            let off = self.gen_bytes.len() as u32;
            self.gen_bytes.extend_from_slice(b);
            self.gen.push((off, l));
        }
    }

    /// The window's output (SEMANTICS "Effects and the output"): every frame
    /// no program dropped, in arrival order, then the generated packets.
    /// `dropped` is told of the frames that are not forwarded.
    pub fn output(&self, sink: &mut dyn Sink) {
        self.output_with(&[], sink);
    }

    /// [`Window::output`] for a window whose frames may be borrowed from `slab`.
    pub(crate) fn output_with(&self, slab: &[u8], sink: &mut dyn Sink) {
        let bytes = self.bytes_with(slab);
        for (i, m) in self.frames.iter().enumerate() {
            let data = bytes.get(m.off..m.off + m.len as usize).unwrap_or(&[]);
            let drop = matches!(m.kind, FrameKind::Packet(p) if self.is_dropped(p));
            if drop {
                sink.dropped(i, m, data);
            } else {
                sink.forward(m, data);
            }
        }
        let ts = self.frames.last().map_or(0, |m| m.ts_ns);
        for g in self.generated() {
            sink.generated(ts, g);
        }
    }
}

/// Where a window's output goes.
pub trait Sink {
    /// A frame forwarded (untouched).
    fn forward(&mut self, meta: &FrameMeta, data: &[u8]);
    /// A frame dropped (frame index in its window).
    fn dropped(&mut self, _index: usize, _meta: &FrameMeta, _data: &[u8]) {}
    /// A generated IPv4 or IPv6 packet (its version nibble tells), stamped
    /// with the window's last capture time.
    fn generated(&mut self, ts_ns: u64, packet: &[u8]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::{eth, ipv4_bytes, udp_bytes};

    #[derive(Default)]
    struct Collect {
        fwd: Vec<Vec<u8>>,
        drop: usize,
        gen: Vec<Vec<u8>>,
    }
    impl Sink for Collect {
        fn forward(&mut self, _m: &FrameMeta, d: &[u8]) {
            self.fwd.push(d.to_vec());
        }
        fn dropped(&mut self, _i: usize, _m: &FrameMeta, _d: &[u8]) {
            self.drop += 1;
        }
        fn generated(&mut self, _ts: u64, d: &[u8]) {
            self.gen.push(d.to_vec());
        }
    }

    #[test]
    fn columns_output_and_limits() {
        let cfg = WindowConfig::new(2, 10);
        let mut w = Window::new();
        let p1 = eth(0x0800, &ipv4_bytes(1, 2, 17, &udp_bytes(1, 2, b"ab")));
        let p2 = eth(0x0800, &ipv4_bytes(3, 4, 17, &udp_bytes(1, 2, b"cde")));
        assert!(w.accepts(&cfg, 1_000_000));
        assert_eq!(w.push(LinkType::Ethernet, 1_000_000, 60, &p1), FrameKind::Packet(0));
        assert_eq!(w.push(LinkType::Ethernet, 2_000_000, 60, &[1, 2, 3]), FrameKind::Unparsed);
        assert!(w.accepts(&cfg, 10_999_999));
        assert!(!w.accepts(&cfg, 11_000_000), "T elapsed");
        assert_eq!(w.push(LinkType::Ethernet, 3_000_000, 60, &p2), FrameKind::Packet(1));
        assert!(w.is_full(&cfg));
        let v = w.view();
        assert_eq!(v.len(), 2);
        assert_eq!(v.payload(0), b"ab");
        assert_eq!(v.payload(1), b"cde");
        assert_eq!(v.payload(7), b"");
        w.commit(&[0b10], b"xyz", &[(0, 3)]);
        let mut c = Collect::default();
        w.output(&mut c);
        assert_eq!(c.fwd, vec![p1.clone(), vec![1, 2, 3]]);
        assert_eq!(c.drop, 1);
        assert_eq!(c.gen, vec![b"xyz".to_vec()]);
        w.clear();
        assert_eq!((w.frame_count(), w.packet_count(), w.generated_count()), (0, 0, 0));
    }

    /// The transport columns (protocol, ports, whether it has them, flags)
    /// hold each packet's fields, in a window that copies its frames and in
    /// one that borrows them (and then copies them in), and through a
    /// bucket's gather; `field` reads them as the VM does.
    #[test]
    fn transport_columns_in_every_mode() {
        use crate::packet::tests::tcp_bytes_with;
        let mut frames = vec![
            ipv4_bytes(1, 2, 6, &tcp_bytes_with(443, 25, 7, 0x12, &[], b"x")),
            ipv4_bytes(1, 2, 17, &udp_bytes(53, 5353, b"q")),
            ipv4_bytes(1, 2, 1, &[8, 0, 0, 0]),
            ipv4_bytes(1, 2, 6, &tcp_bytes_with(443, 25, 7, 0x12, &[], b"x"))[..30].to_vec(),
        ];
        let mut frag = ipv4_bytes(1, 2, 17, &udp_bytes(53, 5353, b"q"));
        frag[7] = 9;
        frames.push(frag);
        let want_ports = [true, true, false, false, false];
        let want = |f: Field| -> Vec<u32> {
            match f {
                Field::Proto => vec![6, 17, 1, 6, 17],
                Field::SrcPort => vec![443, 53, ABSENT, ABSENT, ABSENT],
                Field::DstPort => vec![25, 5353, ABSENT, ABSENT, ABSENT],
                Field::TcpFlags => vec![0x12, ABSENT, ABSENT, ABSENT, ABSENT],
            }
        };
        let check = |c: &Columns, what: &str| {
            assert_eq!(c.has_ports, want_ports, "{what}");
            assert_eq!(c.tcp_flags, [0x12, 0, 0, 0, 0], "{what}");
            for f in [Field::Proto, Field::SrcPort, Field::DstPort, Field::TcpFlags] {
                assert_eq!((0..c.len()).map(|i| c.field(f, i)).collect::<Vec<_>>(), want(f), "{what}: {f:?}");
                let notes = StreamNotes::default();
                let v = c.view(&[], &notes, 0, c.len());
                assert_eq!((0..v.len()).map(|i| v.field(f, i)).collect::<Vec<_>>(), want(f), "{what}: {f:?} of the view");
                assert_eq!(v.field(f, 99), ABSENT, "out of range");
            }
        };
        let mut copied = Window::new();
        for f in &frames {
            copied.push(LinkType::Raw, 0, 0, f);
        }
        check(&copied.cols, "copied");
        let slab: Vec<u8> = frames.concat();
        let mut borrowed = Window::new();
        let mut off = 0;
        for f in &frames {
            borrowed.push_borrowed(&slab, off, f.len(), LinkType::Raw, 0, 0);
            off += f.len();
        }
        borrowed.materialize();
        check(&borrowed.cols, "borrowed");
        borrowed.internalize(&slab);
        check(&borrowed.cols, "internalized");
        let mut bucket = Columns::default();
        bucket.gather(&copied.cols, &[4, 0, 2]);
        assert_eq!((bucket.has_ports.clone(), bucket.tcp_flags.clone()), (vec![false, true, false], vec![0, 0x12, 0]));
        assert_eq!((0..3).map(|i| bucket.field(Field::DstPort, i)).collect::<Vec<_>>(), [ABSENT, 25, ABSENT]);
        // Caller-held columns must have the two new columns as long as the others.
        let c = &copied.cols;
        let slices = |has_ports| ColumnSlices {
            src: &c.src,
            dst: &c.dst,
            proto: &c.proto,
            sport: &c.sport,
            dport: &c.dport,
            has_ports,
            tcp_flags: &c.tcp_flags,
            seq: &c.seq,
            pay_off: &c.pay_off,
            pay_len: &c.pay_len,
            origin: &c.origin,
            bytes: &[],
        };
        assert!(View::from_columns(slices(&c.has_ports)).is_some());
        assert!(View::from_columns(slices(&c.has_ports[1..])).is_none());
        // An ICMP packet (row 2) with ports is no packet.
        assert!(View::from_columns(slices(&[true, true, true, false, false])).is_none());
        assert!(View::from_columns(slices(&[false, false, false, true, true])).is_some(), "TCP and UDP may");
    }

    /// Both families in one window, copied and borrowed: 128-bit address
    /// columns (IPv4 as IPv4-mapped), IPv6 with a mapped address counted as
    /// not IP, the IPv6 fragments listed, verdicts set.
    #[test]
    fn dual_stack_columns_and_fragments() {
        use crate::packet::tests::{fragment_header, ipv6_bytes, A6, B6};
        use vinet_checker::mapped;
        let frames = [
            ipv4_bytes(1, 2, 17, &udp_bytes(53, 5353, b"q")),
            ipv6_bytes(A6, B6, 17, &udp_bytes(53, 5353, b"q6")),
            ipv6_bytes(mapped(1), B6, 17, &udp_bytes(1, 2, b"")),
            ipv6_bytes(A6, B6, 44, &[fragment_header(17, 0, true, 77), udp_bytes(1, 2, b"first")].concat()),
            ipv6_bytes(A6, B6, 44, &[fragment_header(17, 3, false, 77), b"rest".to_vec()].concat()),
        ];
        let slab: Vec<u8> = frames.concat();
        let mut copied = Window::new();
        let mut borrowed = Window::new();
        let mut off = 0;
        for f in &frames {
            copied.push(LinkType::Raw, 5, 0, f);
            borrowed.push_borrowed(&slab, off, f.len(), LinkType::Raw, 5, 0);
            off += f.len();
        }
        borrowed.materialize();
        for w in [&mut copied, &mut borrowed] {
            assert_eq!((w.packet_count(), w.not_ip(), w.unparsed()), (4, 1, 0));
            assert_eq!(w.cols.src, [mapped(1), A6, A6, A6]);
            assert_eq!(w.cols.dst, [mapped(2), B6, B6, B6]);
            let frags: Vec<(u32, u32, u16)> = w.fragments().iter().map(|r| (r.packet, r.frag.id, r.frag.offset)).collect();
            assert_eq!(frags, [(2, 77, 0), (3, 77, 3)]);
            assert!(w.fragments().iter().all(|r| (r.src, r.dst, r.ts_ns) == (A6, B6, 5)));
            w.set_dropped(3, true);
            assert!(w.is_dropped(3) && !w.is_dropped(2));
            w.set_dropped(3, false);
            w.set_dropped(9, true);
            assert_eq!(w.dropped_count(), 0, "no packet 9");
        }
        assert_eq!(copied.view().payload(1), b"q6");
        assert_eq!(borrowed.view_with(&slab).payload(2), b"first");
        borrowed.internalize(&slab);
        assert_eq!(borrowed.view().payload(3), b"rest");
        copied.clear();
        assert!(copied.fragments().is_empty());
    }
}
