//! TCP streams across windows, for CONTAINS_STRING (docs/SEMANTICS.md,
//! "CONTAINS_STRING across windows").
//!
//! A window sees a few milliseconds of traffic, and a sender who wants a
//! word past a filter splits it over segments that fall in two windows,
//! sends its two words a window apart, or lets the segment that was dropped
//! come back as a retransmission. The [`Streams`] tracker of a router
//! follows each TCP flow to a client whose programs search for words, from
//! window to window, and notes for each of the flow's packets:
//!
//! - **the bytes before it**: the last [`CONTEXT`] bytes of the flow's
//!   stream before the packet's sequence number (for a retransmission of
//!   the flow's last segment, the bytes before that segment), so that a word
//!   of up to `CONTEXT + 1` bytes split across a window boundary is found;
//! - **the words found before it**: which of its client's search words the
//!   flow's stream already held (at most [`MAX_FOUND`] a flow), so that the
//!   second word of a message counts the first even windows later.
//!
//! Every packet of the flow is scanned for every search word of its
//! destination's programs as it is noted (the work of one CONTAINS_STRING
//! per word and packet), whether or not a program's run then asks.
//!
//! **Memory bound.** At most [`MAX_FLOWS`] flows, each `2 * CONTEXT + 8 *
//! MAX_FOUND` bytes and a few counters: under 4 MiB a router (a lane), fixed
//! whatever the traffic. When the table is full, the flows not seen in the
//! current window are forgotten (a forgotten flow starts again with no bytes
//! before and no words found).

use std::collections::HashMap;

use memchr::memmem::Finder;

use crate::window::{View, Window};

/// Bytes of a flow's stream carried from one packet to the next.
pub const CONTEXT: usize = 63;
/// Search words a flow remembers having held.
pub const MAX_FOUND: usize = 8;
/// Flows followed at once.
pub const MAX_FLOWS: usize = 16_384;

const TCP: u8 = 6;
/// The search words of the programs packets to a destination belong to:
/// `words(dst, f)` calls `f` on each.
pub(crate) type Words<'a> = dyn Fn(u128, &mut dyn FnMut(&Finder<'static>)) + 'a;

/// "No note" in [`StreamNotes::per_packet`].
const NONE: u32 = u32::MAX;

/// A search word's identity in a flow's memory (FNV-1a, 64 bits).
pub(crate) fn word_hash(w: &[u8]) -> u64 {
    w.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A fixed-capacity byte tail.
#[derive(Clone, Copy, Debug)]
struct Tail {
    len: u8,
    bytes: [u8; CONTEXT],
}

impl Default for Tail {
    fn default() -> Tail {
        Tail { len: 0, bytes: [0; CONTEXT] }
    }
}

impl Tail {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
    /// The last CONTEXT bytes of `a ++ b`.
    fn of(a: &[u8], b: &[u8]) -> Tail {
        let mut t = Tail::default();
        let from_b = b.len().min(CONTEXT);
        let from_a = (CONTEXT - from_b).min(a.len());
        t.bytes[..from_a].copy_from_slice(&a[a.len() - from_a..]);
        t.bytes[from_a..from_a + from_b].copy_from_slice(&b[b.len() - from_b..]);
        t.len = (from_a + from_b) as u8;
        t
    }
}

#[derive(Clone, Debug, Default)]
struct Flow {
    /// The sequence number that continues the stream.
    next: u32,
    /// The last data segment's sequence number, and the bytes before it.
    last_seq: u32,
    last_before: Tail,
    /// The last bytes of the stream, before `next`.
    tail: Tail,
    found: [u64; MAX_FOUND],
    n_found: u8,
    /// The next slot of `found` to reuse when it is full.
    rotate: u8,
    window: u64,
    fresh: bool,
}

impl Flow {
    fn has(&self, h: u64) -> bool {
        self.found[..self.n_found as usize].contains(&h)
    }
    fn remember(&mut self, h: u64) {
        if (self.n_found as usize) < MAX_FOUND {
            self.found[self.n_found as usize] = h;
            self.n_found += 1;
        } else {
            self.found[self.rotate as usize] = h;
            self.rotate = (self.rotate + 1) % MAX_FOUND as u8;
        }
    }
}

/// One noted packet: its bytes-before and words-found, in the notes' arenas.
#[derive(Clone, Copy, Debug)]
struct Note {
    before: (u32, u16),
    found: (u32, u16),
}

/// What a window's TCP packets carry from their flows' past (see the module
/// documentation). Indexed by window packet.
#[derive(Clone, Debug, Default)]
pub struct StreamNotes {
    per_packet: Vec<u32>,
    notes: Vec<Note>,
    bytes: Vec<u8>,
    found: Vec<u64>,
}

impl StreamNotes {
    pub(crate) fn clear(&mut self) {
        self.per_packet.clear();
        self.notes.clear();
        self.bytes.clear();
        self.found.clear();
    }

    fn note(&self, packet: u32) -> Option<&Note> {
        self.per_packet.get(packet as usize).filter(|&&i| i != NONE).and_then(|&i| self.notes.get(i as usize))
    }

    /// The stream bytes before window packet `packet` (empty if none noted).
    pub(crate) fn before(&self, packet: u32) -> &[u8] {
        self.note(packet).and_then(|n| self.bytes.get(n.before.0 as usize..n.before.0 as usize + n.before.1 as usize)).unwrap_or(&[])
    }

    /// Whether packet `packet`'s flow held word `h` before it.
    pub(crate) fn held(&self, packet: u32, h: u64) -> bool {
        self.note(packet)
            .and_then(|n| self.found.get(n.found.0 as usize..n.found.0 as usize + n.found.1 as usize))
            .is_some_and(|f| f.contains(&h))
    }

    /// Whether any packet is noted.
    pub(crate) fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }
}

/// The flows a router follows (see the module documentation).
#[derive(Debug, Default)]
pub struct Streams {
    flows: HashMap<(u128, u128, u16, u16), Flow>,
    window: u64,
    joined: Vec<u8>,
}

impl Streams {
    /// Flows followed now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is followed.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Note the TCP packets of `view` (a whole window, in arrival order)
    /// whose destination searches for words, `words(dst, f)` calling `f` on
    /// each of them, into `notes`, and follow their flows.
    pub(crate) fn note(&mut self, view: &View<'_>, notes: &mut StreamNotes, words: &Words<'_>) {
        notes.clear();
        self.window += 1;
        if self.flows.len() >= MAX_FLOWS {
            let w = self.window;
            self.flows.retain(|_, f| f.window + 1 >= w);
            if self.flows.len() >= MAX_FLOWS {
                self.flows.clear();
            }
        }
        notes.per_packet.resize(view.len(), NONE);
        for i in 0..view.len() {
            if view.proto[i] != TCP {
                continue;
            }
            let mut any = false;
            words(view.dst[i], &mut |_f| any = true);
            if !any {
                continue;
            }
            let key = (view.src[i], view.dst[i], view.sport[i], view.dport[i]);
            let (seq, payload) = (view.seq[i], view.payload(i));
            if self.flows.len() >= MAX_FLOWS && !self.flows.contains_key(&key) {
                continue;
            }
            let flow = self.flows.entry(key).or_insert_with(|| Flow { next: seq, last_seq: seq, fresh: true, ..Flow::default() });
            flow.window = self.window;
            let before = if flow.fresh || seq == flow.next {
                flow.tail
            } else if seq == flow.last_seq {
                flow.last_before
            } else {
                Tail::default()
            };
            notes.per_packet[i] = notes.notes.len() as u32;
            notes.notes.push(Note {
                before: (notes.bytes.len() as u32, before.len as u16),
                found: (notes.found.len() as u32, flow.n_found as u16),
            });
            notes.bytes.extend_from_slice(before.as_slice());
            notes.found.extend_from_slice(&flow.found[..flow.n_found as usize]);
            if payload.is_empty() {
                continue;
            }
            // Every search word of the destination, over the packet and the
            // bytes before it.
            self.joined.clear();
            self.joined.extend_from_slice(before.as_slice());
            self.joined.extend_from_slice(&payload[..payload.len().min(CONTEXT)]);
            let joined = &self.joined;
            words(view.dst[i], &mut |f| {
                let h = word_hash(f.needle());
                if !flow.has(h) && (f.find(payload).is_some() || f.find(joined).is_some()) {
                    flow.remember(h);
                }
            });
            let continues = flow.fresh || seq == flow.next || seq == flow.last_seq;
            flow.last_before = if continues { before } else { Tail::default() };
            flow.tail = Tail::of(flow.last_before.as_slice(), payload);
            flow.last_seq = seq;
            flow.next = seq.wrapping_add(payload.len() as u32);
            flow.fresh = false;
        }
    }
}

/// Note `window`'s packets (its rows materialized) with `streams`, over
/// payload bytes `slab` when borrowed.
pub(crate) fn note_window(streams: &mut Streams, window: &mut Window, slab: &[u8], words: &Words<'_>) {
    let mut notes = std::mem::take(&mut window.notes);
    streams.note(&window.view_with(slab), &mut notes, words);
    window.notes = notes;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::packet::tests::{ipv4_bytes, tcp_bytes};
    use crate::packet::LinkType;
    use crate::pcap::Frame;
    use crate::runner::Runner;
    use crate::vm::tests::{policy, spam_filter, BAD, GOOD, ME};
    use crate::vm::{Binding, Program};
    use crate::window::{FrameMeta, Sink, WindowConfig};

    /// Verdicts in frame order.
    #[derive(Default)]
    struct Verdicts(Vec<bool>);

    impl Sink for Verdicts {
        fn forward(&mut self, _: &FrameMeta, _: &[u8]) {
            self.0.push(true);
        }
        fn dropped(&mut self, _: usize, _: &FrameMeta, _: &[u8]) {
            self.0.push(false);
        }
        fn generated(&mut self, _: u64, _: &[u8]) {}
    }

    /// A router running the paper's spam filter ("viagra" and "lottery")
    /// for ME.
    fn router() -> Runner {
        let pol = policy();
        let mut r = Runner::new(WindowConfig::new(pol.window_packets, 1000));
        let spam = Arc::new(Program::unchecked(spam_filter(), 1_000_000, &pol));
        r.dispatch_mut().install_program(spam, &Binding { this_ip: vinet_checker::mapped(ME), this_subnet: None, params: vec![] }).unwrap();
        r
    }

    /// One window of TCP segments (src, sport, seq, payload) to ME: whether
    /// each was forwarded.
    fn window(r: &mut Runner, segs: &[(u32, u16, u32, &[u8])]) -> Vec<bool> {
        let mut v = Verdicts::default();
        for &(src, sport, seq, payload) in segs {
            let bytes = ipv4_bytes(src, ME, 6, &tcp_bytes(sport, 25, seq, payload));
            r.push(Frame { link: LinkType::Raw, ts_ns: 0, orig_len: bytes.len() as u32, data: &bytes }, &mut v);
        }
        r.flush(&mut v);
        v.0
    }

    #[test]
    fn a_word_split_across_windows_is_found() {
        let mut r = router();
        assert_eq!(window(&mut r, &[(BAD, 1, 100, b"win the lottery, buy via")]), vec![true]);
        // The rest of the word comes in the next window: dropped.
        assert_eq!(window(&mut r, &[(BAD, 1, 124, b"gra now")]), vec![false]);
        // Control: the same second half after a sequence gap is not a
        // continuation, and "viagra" is not in the stream.
        let mut r = router();
        window(&mut r, &[(BAD, 1, 100, b"win the lottery, buy via")]);
        assert_eq!(window(&mut r, &[(BAD, 1, 125, b"gra now")]), vec![true]);
    }

    #[test]
    fn a_retransmission_gets_the_verdict_of_the_segment_it_repeats() {
        let mut r = router();
        window(&mut r, &[(BAD, 1, 100, b"lottery! via")]);
        assert_eq!(window(&mut r, &[(BAD, 1, 112, b"gra")]), vec![false]);
        // The dropped segment comes again (a retransmission): the bytes
        // before it are those before the segment it repeats.
        assert_eq!(window(&mut r, &[(BAD, 1, 112, b"gra")]), vec![false]);
        assert_eq!(window(&mut r, &[(BAD, 1, 112, b"gra")]), vec![false]);
    }

    #[test]
    fn the_second_word_counts_the_first_windows_later() {
        let mut r = router();
        assert_eq!(window(&mut r, &[(BAD, 1, 100, b"cheap viagra ")]), vec![true]);
        for k in 0..5 {
            // Windows of other traffic in between.
            assert_eq!(window(&mut r, &[(GOOD, 9, 1000 + k, b"x")]), vec![true]);
        }
        assert_eq!(window(&mut r, &[(BAD, 1, 113, b"and a lottery")]), vec![false]);
        // Another connection of the same source has its own stream.
        assert_eq!(window(&mut r, &[(BAD, 2, 5, b"a lottery")]), vec![true]);
        // UDP is not a stream: nothing is carried.
        let mut r = router();
        let mut v = Verdicts::default();
        for p in [&b"viagra"[..], b"lottery"] {
            let bytes = ipv4_bytes(BAD, ME, 17, &crate::packet::tests::udp_bytes(1, 25, p));
            r.push(Frame { link: LinkType::Raw, ts_ns: 0, orig_len: bytes.len() as u32, data: &bytes }, &mut v);
            r.flush(&mut v);
        }
        assert_eq!(v.0, vec![true, true]);
    }

    #[test]
    fn flows_are_bounded() {
        let mut r = router();
        for k in 0..(MAX_FLOWS as u32 + 4000) / 1000 {
            let segs: Vec<(u32, u16, u32, &[u8])> = (0..1000u32).map(|i| (BAD ^ (k * 1000 + i), 1, 0, &b"hi"[..])).collect();
            window(&mut r, &segs);
            assert!(r.streams.len() <= MAX_FLOWS, "{} flows", r.streams.len());
        }
        assert!(!r.streams.is_empty());
    }

    /// IPv6 flows are followed as IPv4 ones, and an IPv6 flow is not the
    /// IPv4 flow of the same ports.
    #[test]
    fn ipv6_flows_across_windows() {
        use crate::packet::tests::ipv6_chain;
        use crate::vm::tests::{BAD6, ME6};
        let pol = policy();
        let mut r = Runner::new(WindowConfig::new(pol.window_packets, 1000));
        let spam = Arc::new(Program::unchecked(spam_filter(), 1_000_000, &pol));
        r.dispatch_mut().install_program(Arc::clone(&spam), &Binding { this_ip: ME6, this_subnet: None, params: vec![] }).unwrap();
        r.dispatch_mut().install_program(spam, &Binding { this_ip: vinet_checker::mapped(ME), this_subnet: None, params: vec![] }).unwrap();
        let push = |r: &mut Runner, bytes: Vec<u8>| {
            let mut v = Verdicts::default();
            r.push(Frame { link: LinkType::Raw, ts_ns: 0, orig_len: bytes.len() as u32, data: &bytes }, &mut v);
            r.flush(&mut v);
            v.0
        };
        let seg6 = |seq: u32, p: &[u8]| ipv6_chain(BAD6, ME6, &[60], 6, &tcp_bytes(1, 25, seq, p));
        assert_eq!(push(&mut r, seg6(100, b"win the lottery, buy via")), vec![true]);
        assert_eq!(push(&mut r, seg6(124, b"gra now")), vec![false], "the word split across windows");
        // The IPv4 flow with the same ports and sequence numbers holds nothing.
        assert_eq!(push(&mut r, ipv4_bytes(BAD, ME, 6, &tcp_bytes(1, 25, 124, b"gra now"))), vec![true]);
    }

    #[test]
    fn tails_keep_the_last_bytes() {
        let t = Tail::of(b"abc", b"de");
        assert_eq!(t.as_slice(), b"abcde");
        let long = vec![7u8; 100];
        assert_eq!(Tail::of(b"abc", &long).as_slice(), &long[..CONTEXT]);
        let t = Tail::of(&long, b"xy");
        assert_eq!(t.as_slice().len(), CONTEXT);
        assert!(t.as_slice().ends_with(b"xy"));
    }
}
