//! An ON's access point with redundant paths: the per-packet logic of the
//! user-space tunnel endpoint (`vinet-traffic tunnel`), with no I/O.
//!
//! ```text
//!  host's stack --> TUN --> Ingress: key K, seq n, one copy per remote --> raw socket (protocol 47)
//!                                       copy to remote 1 (path 1), copy to remote 2 (path 2), ...
//!  host's stack <-- TUN <-- Egress: decode, key K?, 802.1CB vector recovery <-- raw socket (protocol 47)
//! ```
//!
//! The binary owns the TUN device and the sockets and calls [`Ingress::encapsulate`]
//! for every packet it reads from the TUN and [`Egress::receive`] for every
//! packet it reads from the raw socket; everything that decides is here, so it
//! is tested without a network, with hand-built hostile packets.
//!
//! **Why user space.** An ON's access host must send each packet down each of
//! its disjoint paths and remove the copies on the way in. Linux's GRE device
//! cannot do either: a tunnel has one remote, and its `iseq` drops every
//! packet whose number is not above the last accepted, which loses the copy
//! that a slower path delivers late and passes nothing it has not already
//! seen, so it is not 802.1CB's elimination. And the kernels vinet's
//! emulations run on need not have GRE at all (`ip link add ... type gre`
//! fails without `ip_gre`). A TUN device (in every kernel) hands the host's
//! IPv4 packets to a process, and a raw socket of protocol 47 sends and
//! receives GRE without any kernel GRE: that is all an endpoint needs. The
//! packets on the wire are still standard RFC 2890 GRE ([`crate::gre`]), so
//! routers classify them by key and tcpdump decodes them.
//!
//! **One sequence number per inner packet, shared by its copies.** The egress
//! recognises copies of one packet only by their number, so every copy of a
//! packet carries the same number and the next packet the next one: a
//! number per path would tell the egress nothing about which packets of two
//! paths are the same. The numbers start at 0 when the endpoint starts and
//! wrap around at 2^32 (the recovery reads distances modulo 2^32). Copies
//! differ only in the outer destination (remote k is routed along path k)
//! and so in the outer checksum and identification.
//!
//! **How the egress eliminates.** Packets are decoded untrusted
//! ([`crate::gre::decode`]: malformed ones are counted, never trusted), those
//! of another key are counted and dropped, and those of the ON's key go
//! through IEEE 802.1CB's vector recovery ([`crate::frer`]): the first copy
//! of each number within the history window is passed to the host, later
//! copies are discarded as duplicates, numbers a window or more away from the
//! highest passed are rogue, and numbers that leave the window unpassed are
//! counted lost. After the reset timeout without a packet passed, the next
//! packet is taken whatever its number, so a restarted sender (back at 0) is
//! followed. An ON packet without a sequence number is malformed here: an
//! endpoint with redundant paths cannot tell its copies apart.
//!
//! **Bounded.** No allocation per packet: the copies of one packet are
//! written into one buffer kept across packets (it grows to the largest
//! packet seen, once), and the recovery's window is allocated at start.

use thiserror::Error;

use crate::frer::{Recovery, RecoveryConfig, RecoveryCounters};
use crate::gre::{self, DecodeError, Outer, Tag};
use crate::FlowId;

/// The most remotes (disjoint paths) one endpoint sends to.
pub const MAX_REMOTES: usize = 8;
/// The outer header's time to live.
pub const OUTER_TTL: u8 = 64;

/// Why an endpoint cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EndpointError {
    /// No remote: nothing to send to.
    #[error("no remote address")]
    NoRemote,
    /// More remotes than [`MAX_REMOTES`].
    #[error("{0} remotes, at most {MAX_REMOTES}")]
    TooManyRemotes(usize),
    /// The same remote twice: two copies down one path protect nothing.
    #[error("remote {}.{}.{}.{} given twice", .0[0], .0[1], .0[2], .0[3])]
    DuplicateRemote([u8; 4]),
}

/// The sending side: one inner packet in, one outer packet per remote out.
#[derive(Clone, Debug)]
pub struct Ingress {
    flow: FlowId,
    local: [u8; 4],
    remotes: Vec<[u8; 4]>,
    next_seq: u32,
    identification: u16,
    /// The copies of the last packet, back to back, each `copy_len` bytes.
    buf: Vec<u8>,
    copy_len: usize,
    tun_read: u64,
    refused: u64,
}

/// The copies of one inner packet: `(remote, outer packet)` in the order of
/// the remotes. Empty if the inner packet was refused.
#[derive(Clone, Debug)]
pub struct Copies<'a> {
    remotes: std::slice::Iter<'a, [u8; 4]>,
    rest: &'a [u8],
    copy_len: usize,
}

impl<'a> Iterator for Copies<'a> {
    type Item = ([u8; 4], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < self.copy_len || self.copy_len == 0 {
            return None;
        }
        let remote = *self.remotes.next()?;
        let (copy, rest) = self.rest.split_at(self.copy_len);
        self.rest = rest;
        Some((remote, copy))
    }
}

impl Ingress {
    /// An ingress for the ON `flow`, sending from `local` to each of
    /// `remotes` (1 to [`MAX_REMOTES`], distinct), numbering from `first_seq`.
    pub fn new(flow: FlowId, local: [u8; 4], remotes: &[[u8; 4]], first_seq: u32) -> Result<Ingress, EndpointError> {
        if remotes.is_empty() {
            return Err(EndpointError::NoRemote);
        }
        if remotes.len() > MAX_REMOTES {
            return Err(EndpointError::TooManyRemotes(remotes.len()));
        }
        for (i, r) in remotes.iter().enumerate() {
            if remotes[..i].contains(r) {
                return Err(EndpointError::DuplicateRemote(*r));
            }
        }
        Ok(Ingress {
            flow,
            local,
            remotes: remotes.to_vec(),
            next_seq: first_seq,
            identification: 0,
            buf: Vec::new(),
            copy_len: 0,
            tun_read: 0,
            refused: 0,
        })
    }

    /// Encapsulates one packet read from the TUN: the same key and sequence
    /// number in every copy, the remote as outer destination, the inner
    /// packet's type-of-service byte copied out (so routers see its DSCP),
    /// DF set (a copy too large for a path is refused by the sender's kernel
    /// rather than fragmented: [`gre::decode`] refuses fragments). Bytes that
    /// are not a whole IPv4 packet (or too long to encapsulate) are refused:
    /// no copy, no number used.
    pub fn encapsulate(&mut self, inner: &[u8]) -> Copies<'_> {
        self.tun_read += 1;
        self.buf.clear();
        self.copy_len = 0;
        let tos = inner.get(1).copied().unwrap_or(0);
        let tag = Tag { flow: self.flow, seq: Some(self.next_seq) };
        for remote in &self.remotes {
            let outer =
                Outer { src: self.local, dst: *remote, ttl: OUTER_TTL, tos, identification: self.identification, dont_fragment: true };
            match gre::encode(&outer, tag, inner, &mut self.buf) {
                Ok(len) => {
                    self.copy_len = len;
                    self.identification = self.identification.wrapping_add(1);
                }
                Err(_) => {
                    // The first copy already fails (the inner packet is the
                    // same for all): nothing was written.
                    debug_assert!(self.buf.is_empty());
                    self.refused += 1;
                    return Copies { remotes: [].iter(), rest: &[], copy_len: 0 };
                }
            }
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        Copies { remotes: self.remotes.iter(), rest: &self.buf, copy_len: self.copy_len }
    }

    /// The remotes, in sending order.
    pub fn remotes(&self) -> &[[u8; 4]] {
        &self.remotes
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Packets given to [`Ingress::encapsulate`].
    pub fn tun_read(&self) -> u64 {
        self.tun_read
    }

    /// Packets refused by [`Ingress::encapsulate`] (not IPv4, too long).
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// Why a received packet was not passed to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discard {
    /// Not a well-formed ON packet.
    Malformed(DecodeError),
    /// The ON's key, but no sequence number to eliminate copies by.
    NoSequence,
    /// Another ON's key.
    OtherKey(FlowId),
    /// A copy of a number already passed.
    Duplicate,
    /// A number outside the recovery window.
    Rogue,
}

/// The receiving side: decode, filter by key, eliminate copies.
#[derive(Clone, Debug)]
pub struct Egress {
    flow: FlowId,
    recovery: Recovery,
    counters: EgressCounters,
}

/// What the egress has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EgressCounters {
    /// Every packet given to [`Egress::receive`].
    pub gre_received: u64,
    /// Well-formed ON packets of another key.
    pub other_key: u64,
    /// Packets that do not decode, and ON packets without a sequence number.
    pub malformed: u64,
    /// The recovery's counters (passed, discarded, out of order, rogue, lost, resets).
    pub recovery: RecoveryCounters,
}

impl Egress {
    /// An egress for the ON `flow` with the recovery's parameters.
    pub fn new(flow: FlowId, config: RecoveryConfig) -> Egress {
        Egress { flow, recovery: Recovery::new(config), counters: EgressCounters::default() }
    }

    /// One packet from the raw socket (the outer IPv4 packet from its first
    /// byte) at `now_ns`: the inner packet to write to the TUN, or why not.
    pub fn receive<'a>(&mut self, packet: &'a [u8], now_ns: u64) -> Result<&'a [u8], Discard> {
        self.counters.gre_received += 1;
        let verdict = self.judge(packet, now_ns);
        match verdict {
            Err(Discard::Malformed(_) | Discard::NoSequence) => self.counters.malformed += 1,
            Err(Discard::OtherKey(_)) => self.counters.other_key += 1,
            Ok(_) | Err(Discard::Duplicate | Discard::Rogue) => {}
        }
        self.counters.recovery = self.recovery.counters();
        verdict
    }

    fn judge<'a>(&mut self, packet: &'a [u8], now_ns: u64) -> Result<&'a [u8], Discard> {
        let d = gre::decode(packet).map_err(Discard::Malformed)?;
        if d.tag.flow != self.flow {
            return Err(Discard::OtherKey(d.tag.flow));
        }
        let seq = d.tag.seq.ok_or(Discard::NoSequence)?;
        let rogue = self.recovery.counters().rogue;
        if self.recovery.accept(seq, now_ns) {
            Ok(d.inner)
        } else if self.recovery.counters().rogue > rogue {
            Err(Discard::Rogue)
        } else {
            Err(Discard::Duplicate)
        }
    }

    /// Lets the recovery reset if nothing has passed for its timeout.
    pub fn tick(&mut self, now_ns: u64) {
        self.recovery.tick(now_ns);
        self.counters.recovery = self.recovery.counters();
    }

    /// The counters so far.
    pub fn counters(&self) -> EgressCounters {
        self.counters
    }
}

/// The counts of the endpoint's I/O, kept by whoever does the I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IoCounters {
    /// Outer packets the raw socket accepted.
    pub sent_copies: u64,
    /// Outer packets the raw socket refused.
    pub send_errors: u64,
    /// Inner packets written to the TUN.
    pub tun_written: u64,
}

/// The endpoint's statistics, as `vinet-traffic tunnel` reports them.
///
/// Invariants when the I/O counters are kept as documented:
/// `sent_copies + send_errors == remotes x tun_read` (a refused inner
/// packet counts one send error per remote), `passed + discarded + rogue +
/// other_key + malformed == gre_received`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The ON's key.
    pub key: u32,
    /// Packets read from the TUN.
    pub tun_read: u64,
    /// Outer packets sent.
    pub sent_copies: u64,
    /// Outer packets not sent.
    pub send_errors: u64,
    /// The egress's counters.
    pub egress: EgressCounters,
    /// Inner packets written to the TUN.
    pub tun_written: u64,
}

impl Stats {
    /// Gathers the statistics of an endpoint.
    pub fn collect(ingress: &Ingress, egress: &Egress, io: &IoCounters) -> Stats {
        let remotes = ingress.remotes.len() as u64;
        Stats {
            key: ingress.flow.0,
            tun_read: ingress.tun_read,
            sent_copies: io.sent_copies,
            send_errors: io.send_errors + ingress.refused * remotes,
            egress: egress.counters(),
            tun_written: io.tun_written,
        }
    }

    /// One line of JSON, the fields in a fixed order.
    pub fn json(&self) -> String {
        let e = &self.egress;
        let r = &e.recovery;
        format!(
            concat!(
                r#"{{"key":{},"tun_read":{},"sent_copies":{},"send_errors":{},"gre_received":{},"other_key":{},"malformed":{},"#,
                r#""passed":{},"discarded":{},"out_of_order":{},"rogue":{},"lost":{},"resets":{},"tun_written":{}}}"#
            ),
            self.key,
            self.tun_read,
            self.sent_copies,
            self.send_errors,
            e.gre_received,
            e.other_key,
            e.malformed,
            r.passed,
            r.discarded,
            r.out_of_order,
            r.rogue,
            r.lost,
            r.resets,
            self.tun_written
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: FlowId = FlowId(0x00c0_ffee);
    const A: [u8; 4] = [10, 9, 1, 1];
    const B1: [u8; 4] = [10, 9, 1, 2];
    const B2: [u8; 4] = [10, 9, 2, 2];
    const MS: u64 = 1_000_000;

    /// A UDP-in-IPv4 packet 172.16.0.1 -> 172.16.0.2 with `payload` bytes and
    /// type-of-service `tos`, a valid header checksum.
    fn inner(payload: usize, tos: u8) -> Vec<u8> {
        let total = 28 + payload;
        let mut p = vec![0x45, tos, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0, 172, 16, 0, 1, 172, 16, 0, 2];
        let sum = checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&[0x30, 0x39, 0x17, 0x70, ((8 + payload) >> 8) as u8, (8 + payload) as u8, 0, 0]);
        p.extend((0..payload).map(|i| i as u8));
        p
    }

    fn checksum(h: &[u8]) -> u16 {
        let mut s: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// Rewrites the outer header checksum after a change to the header.
    fn resum(mut p: Vec<u8>) -> Vec<u8> {
        p[10..12].copy_from_slice(&[0, 0]);
        let s = checksum(&p[..20]);
        p[10..12].copy_from_slice(&s.to_be_bytes());
        p
    }

    fn egress(history: u32) -> Egress {
        Egress::new(KEY, RecoveryConfig::new(history, 2_000 * MS).unwrap())
    }

    fn copies(i: &mut Ingress, inner: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        i.encapsulate(inner).map(|(r, p)| (r, p.to_vec())).collect()
    }

    #[test]
    fn one_copy_per_remote_with_one_shared_number() {
        let mut i = Ingress::new(KEY, A, &[B1, B2], 0).unwrap();
        let p = inner(100, 0xb8);
        for n in 0..3u32 {
            let c = copies(&mut i, &p);
            assert_eq!(c.len(), 2);
            for (k, (remote, outer)) in c.iter().enumerate() {
                assert_eq!(*remote, [B1, B2][k]);
                let d = gre::decode(outer).unwrap();
                assert_eq!(d.tag, Tag { flow: KEY, seq: Some(n) });
                assert_eq!((d.outer.src, d.outer.dst), (A, *remote));
                assert_eq!((d.outer.ttl, d.outer.tos, d.outer.dont_fragment), (OUTER_TTL, 0xb8, true));
                assert_eq!(d.inner, &p[..]);
                assert_eq!(outer.len(), 20 + 12 + p.len());
            }
            // The copies differ in the destination and the identification.
            assert_ne!(gre::decode(&c[0].1).unwrap().outer.identification, gre::decode(&c[1].1).unwrap().outer.identification);
        }
        assert_eq!((i.tun_read(), i.refused(), i.next_seq()), (3, 0, 3));
        // The wire bytes of the GRE header: K and S, IPv4, the key, the number 3.
        let last = copies(&mut i, &p);
        assert_eq!(&last[1].1[20..32], &[0x30, 0, 0x08, 0, 0x00, 0xc0, 0xff, 0xee, 0, 0, 0, 3]);
    }

    #[test]
    fn what_is_not_ipv4_is_refused_without_using_a_number() {
        let mut i = Ingress::new(KEY, A, &[B1, B2], 7).unwrap();
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.resize(48, 0);
        for bad in [&v6[..], &[][..], &inner(10, 0)[..19], &inner(10, 0)[..30]] {
            assert_eq!(i.encapsulate(bad).count(), 0);
        }
        assert_eq!((i.tun_read(), i.refused(), i.next_seq()), (4, 4, 7));
        assert_eq!(copies(&mut i, &inner(1, 0))[0].0, B1);
        assert_eq!(i.next_seq(), 8);
        // Stats: a refused packet counts one send error per remote.
        let s = Stats::collect(&i, &egress(16), &IoCounters { sent_copies: 2, send_errors: 0, tun_written: 0 });
        assert_eq!((s.tun_read, s.sent_copies, s.send_errors), (5, 2, 8));
        assert_eq!(s.sent_copies + s.send_errors, 2 * s.tun_read);
    }

    #[test]
    fn remotes_are_checked() {
        assert_eq!(Ingress::new(KEY, A, &[], 0).unwrap_err(), EndpointError::NoRemote);
        assert_eq!(Ingress::new(KEY, A, &[B1, B2, B1], 0).unwrap_err(), EndpointError::DuplicateRemote(B1));
        let many: Vec<[u8; 4]> = (0..=MAX_REMOTES as u8).map(|k| [10, 9, k, 2]).collect();
        assert_eq!(Ingress::new(KEY, A, &many, 0).unwrap_err(), EndpointError::TooManyRemotes(MAX_REMOTES + 1));
        assert!(Ingress::new(KEY, A, &many[..MAX_REMOTES], 0).is_ok());
        assert_eq!(EndpointError::DuplicateRemote(B1).to_string(), "remote 10.9.1.2 given twice");
    }

    /// Two paths, the second one packet behind the first, both delivering:
    /// each inner packet reaches the host once, the other copy is discarded.
    #[test]
    fn the_egress_passes_each_packet_once() {
        let mut i = Ingress::new(KEY, A, &[B1, B2], 0).unwrap();
        let mut e = egress(64);
        let mut path2: Vec<Vec<u8>> = Vec::new();
        let mut delivered = Vec::new();
        for n in 0..50usize {
            let c = copies(&mut i, &inner(n, 0));
            if let Ok(p) = e.receive(&c[0].1, n as u64) {
                delivered.push(p.to_vec());
            }
            path2.push(c[1].1.clone());
            if n >= 1 {
                assert_eq!(e.receive(&path2[n - 1], n as u64), Err(Discard::Duplicate));
            }
        }
        assert_eq!(delivered, (0..50).map(|n| inner(n, 0)).collect::<Vec<_>>());
        let c = e.counters();
        assert_eq!(
            (c.gre_received, c.recovery.passed, c.recovery.discarded, c.recovery.lost, c.malformed, c.other_key),
            (99, 50, 49, 0, 0, 0)
        );
    }

    /// Path 1 fails: path 2 alone carries everything, nothing is lost; then
    /// both lose packets 30..35, which are counted lost once they leave the window.
    #[test]
    fn one_path_failing_loses_nothing_both_failing_is_counted() {
        let mut i = Ingress::new(KEY, A, &[B1, B2], 0).unwrap();
        let mut e = egress(8);
        let mut passed = 0;
        for n in 0..60u32 {
            let c = copies(&mut i, &inner(4, 0));
            let (p1, p2) = (n < 20, !(30..35).contains(&n));
            if p1 && e.receive(&c[0].1, 0).is_ok() {
                passed += 1;
            }
            if p2 && e.receive(&c[1].1, 0).is_ok() {
                passed += 1;
            }
        }
        let c = e.counters().recovery;
        assert_eq!((passed, c.passed, c.discarded, c.lost, c.rogue), (55, 55, 20, 5, 0));
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut i = Ingress::new(KEY, A, &[B1, B2], u32::MAX - 2).unwrap();
        let mut e = egress(16);
        let all: Vec<Vec<([u8; 4], Vec<u8>)>> = (0..6).map(|n| copies(&mut i, &inner(n, 0))).collect();
        assert_eq!(i.next_seq(), 3);
        let seqs: Vec<u32> = all.iter().map(|c| gre::decode(&c[0].1).unwrap().tag.seq.unwrap()).collect();
        assert_eq!(seqs, [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1, 2]);
        // Path 2 delivers in reverse order after path 1 across the wrap.
        let mut ok = 0;
        for c in &all {
            ok += u32::from(e.receive(&c[0].1, 0).is_ok());
        }
        for c in all.iter().rev() {
            assert_eq!(e.receive(&c[1].1, 0), Err(Discard::Duplicate));
        }
        let c = e.counters().recovery;
        assert_eq!((ok, c.passed, c.discarded, c.rogue, c.lost), (6, 6, 6, 0, 0));
    }

    /// Hand-built hostile packets: each is counted, none reaches the host,
    /// none disturbs the recovery of the good ones.
    #[test]
    fn hostile_packets_are_counted_never_passed() {
        let mut i = Ingress::new(KEY, A, &[B1], 100).unwrap();
        let good = copies(&mut i, &inner(40, 0)).remove(0).1;
        let mut e = egress(16);
        let set = |p: &[u8], at: usize, b: &[u8]| {
            let mut p = p.to_vec();
            p[at..at + b.len()].copy_from_slice(b);
            p
        };
        let mut truncated_inner = good[..good.len() - 1].to_vec();
        let len = truncated_inner.len() as u16;
        truncated_inner[2..4].copy_from_slice(&len.to_be_bytes());
        let truncated_inner = resum(truncated_inner);
        let malformed: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("truncated outer header", good[..19].to_vec()),
            ("truncated below its total length", good[..good.len() - 1].to_vec()),
            ("truncated GRE header", resum(set(&good[..30], 2, &30u16.to_be_bytes()))),
            ("truncated inner packet", truncated_inner),
            ("outer IP version 6", set(&good, 0, &[0x65])),
            ("bad outer checksum", set(&good, 10, &[!good[10], good[11]])),
            ("GRE version 1", set(&good, 20, &[0x30, 0x01])),
            ("GRE checksum present", set(&good, 20, &[0xb0, 0x00])),
            ("GRE routing present", set(&good, 20, &[0x70, 0x00])),
            ("no key", set(&good, 20, &[0x10, 0x00])),
            ("not IPv4 inside", set(&good, 22, &[0x86, 0xdd])),
            ("an outer fragment", resum(set(&good, 6, &[0x20, 0x00]))),
            ("not GRE", resum(set(&good, 9, &[17]))),
        ];
        for (what, p) in &malformed {
            assert!(matches!(e.receive(p, 0), Err(Discard::Malformed(_))), "{what}");
        }
        // The ON's key without a sequence number: GRE flags K only, the
        // number's 4 bytes removed.
        let mut no_seq = good[..28].to_vec();
        no_seq.extend_from_slice(&good[32..]);
        no_seq[20..22].copy_from_slice(&[0x20, 0x00]);
        let len = no_seq.len() as u16;
        no_seq[2..4].copy_from_slice(&len.to_be_bytes());
        let no_seq = resum(no_seq);
        assert_eq!(gre::decode(&no_seq).unwrap().tag, Tag { flow: KEY, seq: None });
        assert_eq!(e.receive(&no_seq, 0), Err(Discard::NoSequence));
        let other = set(&good, 24, &[0, 0, 0, 43]);
        assert_eq!(e.receive(&other, 0), Err(Discard::OtherKey(FlowId(43))));
        let c = e.counters();
        assert_eq!(
            (c.gre_received, c.malformed, c.other_key, c.recovery.passed),
            (malformed.len() as u64 + 2, malformed.len() as u64 + 1, 1, 0)
        );
        // The good packet still passes, once.
        assert_eq!(e.receive(&good, 0), Ok(&inner(40, 0)[..]));
        assert_eq!(e.receive(&good, 0), Err(Discard::Duplicate));
        // A packet of the ON's key far outside the window is rogue.
        let far = set(&good, 28, &5_000u32.to_be_bytes());
        assert_eq!(e.receive(&far, MS), Err(Discard::Rogue));
        let c = e.counters();
        assert_eq!((c.recovery.passed, c.recovery.discarded, c.recovery.rogue), (1, 1, 1));
        let r = c.recovery;
        assert_eq!(r.passed + r.discarded + r.rogue + c.other_key + c.malformed, c.gre_received);
    }

    /// Every prefix and every single-byte corruption of a good packet: never
    /// a panic, never a second delivery, every packet counted once.
    #[test]
    fn every_prefix_and_every_byte_flip_is_safe() {
        let mut i = Ingress::new(KEY, A, &[B1], 0).unwrap();
        let good = copies(&mut i, &inner(20, 0)).remove(0).1;
        let mut e = egress(16);
        let mut delivered = 0u64;
        for len in 0..good.len() {
            delivered += u64::from(e.receive(&good[..len], 0).is_ok());
        }
        assert_eq!(delivered, 0, "no prefix is a whole packet");
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut p = good.clone();
                p[at] ^= 1 << bit;
                delivered += u64::from(e.receive(&p, 0).is_ok());
            }
        }
        let c = e.counters();
        let r = c.recovery;
        assert_eq!(r.passed + r.discarded + r.rogue + c.other_key + c.malformed, c.gre_received);
        assert_eq!(delivered, r.passed);
        // Flips of the inner bytes (not covered by any checksum here) pass
        // as sequence number 0 once; flips of the number pass as other numbers.
        assert!(r.passed >= 1);
    }

    #[test]
    fn a_restarted_sender_is_followed_after_the_reset_timeout() {
        let mut e = egress(16);
        let mut first = Ingress::new(KEY, A, &[B1], 0).unwrap();
        for _ in 0..5000 {
            let p = copies(&mut first, &inner(0, 0)).remove(0).1;
            assert!(e.receive(&p, 0).is_ok());
        }
        let mut restarted = Ingress::new(KEY, A, &[B1], 0).unwrap();
        let p = copies(&mut restarted, &inner(0, 0)).remove(0).1;
        assert_eq!(e.receive(&p, MS), Err(Discard::Rogue));
        e.tick(2_001 * MS);
        assert!(e.receive(&p, 2_001 * MS).is_ok());
        assert_eq!(e.counters().recovery.resets, 1);
    }

    #[test]
    fn stats_as_json() {
        let mut i = Ingress::new(FlowId(42), A, &[B1, B2], 0).unwrap();
        let mut e = Egress::new(FlowId(42), RecoveryConfig::new(16, MS).unwrap());
        let c = copies(&mut i, &inner(8, 0));
        assert!(e.receive(&c[0].1, 0).is_ok());
        assert!(e.receive(&c[1].1, 0).is_err());
        assert!(e.receive(&[1, 2, 3], 0).is_err());
        let s = Stats::collect(&i, &e, &IoCounters { sent_copies: 2, send_errors: 0, tun_written: 1 });
        assert_eq!(
            s.json(),
            r#"{"key":42,"tun_read":1,"sent_copies":2,"send_errors":0,"gre_received":3,"other_key":0,"malformed":1,"passed":1,"discarded":1,"out_of_order":0,"rogue":0,"lost":0,"resets":0,"tun_written":1}"#
        );
    }
}
