//! Fragments get the datagram's verdict.
//!
//! Only the first fragment of a datagram holds its transport header, so a
//! program that decides by port (or by anything else a later fragment lacks)
//! sees the first fragment for what it is and the later ones as packets
//! without ports: a port firewall would drop the first fragment of a
//! datagram to port 25 and forward the rest. The engine therefore remembers,
//! for a bounded time and number of datagrams, the verdict of each first
//! IPv6 fragment by (source, destination, identification), and gives the
//! later fragments of that datagram the same verdict, dropped or forwarded,
//! whatever the programs said of them alone: in the same window (whatever
//! the order of the fragments in it) or in a later one.
//!
//! **Where.** [`crate::runner::Runner`] applies it to every window it
//! closes, after the dispatch table has committed the programs' drops and
//! before the window's output: pcap replay and the live router (both
//! `Runner`s) give fragments the same verdicts. A window run directly by
//! [`crate::dispatch::Dispatch::run_window`] (the differential oracle, the
//! analyzer's tests) sees the programs' verdicts alone.
//!
//! **Bounds.** At most [`MAX_DATAGRAMS`] datagrams are remembered (a ring:
//! when it is full the oldest first fragment is forgotten), each for at most
//! [`TTL_NS`] of capture time after its first fragment (RFC 8200 4.5: a
//! reassembly gives up after 60 seconds), so the table takes a fixed
//! 4096 x 56 bytes and a hash map of as many entries, whatever the traffic.
//! A later fragment whose datagram is not (or no longer) remembered keeps the
//! programs' verdict. The map hashes with a random key (the traffic chooses
//! the identifications).
//!
//! IPv4 fragments keep the programs' verdicts, as before (an IPv4
//! identification is 16 bits, and wraps within seconds at line rate).

use std::collections::HashMap;

use crate::window::Window;

/// Most datagrams whose first fragment's verdict is remembered.
pub const MAX_DATAGRAMS: usize = 4096;
/// How long (capture time, ns) a first fragment's verdict is remembered: 60 s.
pub const TTL_NS: u64 = 60_000_000_000;

/// A datagram: source, destination, identification.
type Key = (u128, u128, u32);

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Key,
    ts_ns: u64,
    dropped: bool,
}

/// The remembered verdicts of first fragments (see the module documentation).
#[derive(Debug, Default)]
pub struct FragmentVerdicts {
    index: HashMap<Key, u32>,
    /// The ring of remembered datagrams, at most [`MAX_DATAGRAMS`].
    ring: Vec<Entry>,
    /// The ring slot the next new datagram takes once the ring is full.
    next: usize,
}

impl FragmentVerdicts {
    /// An empty table.
    pub fn new() -> FragmentVerdicts {
        FragmentVerdicts::default()
    }

    /// Datagrams remembered (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The verdict remembered for datagram `key` at capture time `ts_ns`.
    fn get(&self, key: &Key, ts_ns: u64) -> Option<bool> {
        let e = self.ring.get(*self.index.get(key)? as usize)?;
        (ts_ns.saturating_sub(e.ts_ns) <= TTL_NS).then_some(e.dropped)
    }

    fn remember(&mut self, key: Key, ts_ns: u64, dropped: bool) {
        let e = Entry { key, ts_ns, dropped };
        if let Some(&i) = self.index.get(&key) {
            // The same first fragment again: the latest verdict.
            self.ring[i as usize] = e;
        } else if self.ring.len() < MAX_DATAGRAMS {
            self.index.insert(key, self.ring.len() as u32);
            self.ring.push(e);
        } else {
            let i = self.next;
            self.index.remove(&self.ring[i].key);
            self.ring[i] = e;
            self.index.insert(key, i as u32);
            self.next = (i + 1) % MAX_DATAGRAMS;
        }
    }

    /// Give the later IPv6 fragments of `window` (whose programs' drops are
    /// committed) the verdict of their datagram's first fragment, remembering
    /// the first fragments of this window first. Returns the number of later
    /// fragments given a remembered verdict.
    pub(crate) fn apply(&mut self, window: &mut Window) -> u64 {
        if window.fragments().is_empty() {
            return 0;
        }
        // By index (rows are `Copy`): no allocation a window.
        let n = window.fragments().len();
        for k in 0..n {
            let r = window.fragments()[k];
            if r.frag.offset == 0 {
                self.remember((r.src, r.dst, r.frag.id), r.ts_ns, window.is_dropped(r.packet));
            }
        }
        let mut given = 0;
        for k in 0..n {
            let r = window.fragments()[k];
            if r.frag.offset == 0 {
                continue;
            }
            if let Some(dropped) = self.get(&(r.src, r.dst, r.frag.id), r.ts_ns) {
                window.set_dropped(r.packet, dropped);
                given += 1;
            }
        }
        given
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::packet::tests::{fragment_header, ipv4_bytes, ipv6_bytes, tcp_bytes_with};
    use crate::packet::LinkType;
    use crate::pcap::Frame;
    use crate::runner::Runner;
    use crate::vm::tests::{policy, BAD, BAD6, GOOD6, ME, ME6};
    use crate::vm::transport_tests::port_firewall;
    use crate::vm::{Binding, Program};
    use crate::window::{FrameMeta, Sink, WindowConfig};
    use vinet_checker::bytecode::Const;
    use vinet_checker::mapped;

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

    /// A fragment of an IPv6 TCP datagram `id` from `src` to ME6: the first
    /// (offset 0, with the TCP header to `dport`), or a later one at `offset`.
    fn fragment(src: u128, id: u32, offset: u16, more: bool, dport: u16) -> Vec<u8> {
        let data = if offset == 0 { tcp_bytes_with(40_000, dport, 1, 0x18, &[], b"MAIL FROM:<x>") } else { b"the rest of it".to_vec() };
        ipv6_bytes(src, ME6, 44, &[fragment_header(6, offset, more, id), data].concat())
    }

    /// A router with a port firewall for ME6: TCP to port 25 from BAD6 dropped.
    fn router() -> Runner {
        let mut r = Runner::new(WindowConfig::new(256, 1000));
        let p = Arc::new(Program::unchecked(port_firewall(), 256 * 6, &policy()));
        let b = Binding { this_ip: ME6, this_subnet: None, params: vec![Const::Addr6(BAD6), Const::Num(25)] };
        r.dispatch_mut().install_program(Arc::clone(&p), &b).unwrap();
        let b4 = Binding { this_ip: mapped(ME), this_subnet: None, params: vec![Const::Addr(BAD), Const::Num(25)] };
        r.dispatch_mut().install_program(p, &b4).unwrap();
        r
    }

    /// One window of `frames` at time `ts_s` seconds: their verdicts.
    fn window(r: &mut Runner, ts_s: u64, frames: &[Vec<u8>]) -> Vec<bool> {
        let mut v = Verdicts::default();
        for f in frames {
            r.push(Frame { link: LinkType::Raw, ts_ns: ts_s * 1_000_000_000, orig_len: f.len() as u32, data: f }, &mut v);
        }
        r.flush(&mut v);
        v.0
    }

    /// The port firewall drops the first fragment of a datagram to port 25
    /// (it has the ports); the later fragments of that datagram (which have
    /// none) are dropped too, in the same window, whatever their order, and
    /// in later windows, until the entry expires; another datagram's
    /// fragments pass.
    #[test]
    fn later_fragments_get_the_verdict_of_their_first() {
        let mut r = router();
        let w1 = [
            fragment(BAD6, 1, 0, true, 25), // the first of datagram 1: port 25, dropped
            fragment(BAD6, 1, 5, true, 0),  // a later one: dropped with it
            fragment(BAD6, 2, 0, true, 80), // datagram 2, to port 80: passes
            fragment(BAD6, 2, 5, true, 0),  // and its later fragment
            fragment(BAD6, 3, 7, false, 0), // datagram 3's last fragment, before its first:
            fragment(BAD6, 3, 0, true, 25), // dropped with it
            fragment(GOOD6, 1, 5, true, 0), // another source's datagram 1: passes
        ];
        assert_eq!(window(&mut r, 0, &w1), [false, false, true, true, false, false, true]);
        assert_eq!(r.stats().fragment_verdicts, 3, "datagrams 1, 2 and 3 of BAD6");
        // Alone (a dispatch table, no runner), the later fragments pass: no ports.
        let mut d = crate::dispatch::Dispatch::new(256);
        let p = Arc::new(Program::unchecked(port_firewall(), 256 * 6, &policy()));
        d.install_program(p, &Binding { this_ip: ME6, this_subnet: None, params: vec![Const::Addr6(BAD6), Const::Num(25)] }).unwrap();
        let mut w = crate::window::Window::new();
        for f in &w1 {
            w.push(LinkType::Raw, 0, 0, f);
        }
        d.run_window(&mut w);
        assert_eq!((0..7).map(|i| w.is_dropped(i)).collect::<Vec<_>>(), [true, false, false, false, false, true, false]);
        // A later window: datagram 1's last fragment is dropped, datagram 2's passes.
        let w2 = [fragment(BAD6, 1, 10, false, 0), fragment(BAD6, 2, 10, false, 0), fragment(GOOD6, 2, 10, false, 0)];
        assert_eq!(window(&mut r, 2, &w2), [false, true, true]);
        // 60 s after the first fragment: still remembered; past it, forgotten.
        assert_eq!(window(&mut r, 60, &[fragment(BAD6, 1, 12, false, 0)]), [false]);
        assert_eq!(window(&mut r, 61, &[fragment(BAD6, 1, 12, false, 0)]), [true]);
        assert_eq!(r.stats().fragment_verdicts, 3 + 2 + 1);
        // IPv4 fragments keep the programs' verdicts: the first dropped, a later one not.
        let mut first = ipv4_bytes(BAD, ME, 6, &tcp_bytes_with(40_000, 25, 1, 0x18, &[], b"x"));
        first[4..8].copy_from_slice(&[0, 9, 0x20, 0]);
        let mut later = ipv4_bytes(BAD, ME, 6, b"the rest");
        later[4..8].copy_from_slice(&[0, 9, 0, 5]);
        assert_eq!(window(&mut r, 62, &[first, later]), [false, true]);
    }

    #[test]
    fn the_ring_is_bounded_and_forgets_the_oldest() {
        let mut t = FragmentVerdicts::new();
        for i in 0..(MAX_DATAGRAMS as u32 + 10) {
            t.remember((1, 2, i), 0, i % 2 == 0);
        }
        assert_eq!((t.len(), t.index.len()), (MAX_DATAGRAMS, MAX_DATAGRAMS));
        assert_eq!(t.get(&(1, 2, 3), 0), None, "evicted");
        assert_eq!(t.get(&(1, 2, 10), 0), Some(true));
        assert_eq!(t.get(&(1, 2, MAX_DATAGRAMS as u32 + 9), 0), Some(false));
        // The same datagram again keeps its slot and takes the latest verdict.
        t.remember((1, 2, 10), 5, false);
        assert_eq!((t.len(), t.get(&(1, 2, 10), 5)), (MAX_DATAGRAMS, Some(false)));
        // Expiry: 60 s of capture time after the first fragment.
        assert_eq!(t.get(&(1, 2, 10), 5 + TTL_NS), Some(false));
        assert_eq!(t.get(&(1, 2, 10), 6 + TTL_NS), None);
        assert_eq!(t.get(&(1, 3, 10), 5), None, "another destination");
    }
}
