//! Writes the shipped captures `examples/traffic/*.pcap`: realistic traffic
//! (TCP flows whose payloads span segments, UDP, ICMP, IPv6, ARP, 802.1Q
//! tags, a few malformed frames) into which each example program's scenario
//! is woven, so that what each program must do can be counted by hand. The
//! IPv6 captures (`*6.pcap`, issue 15) mix IPv4 and IPv6 traffic for the
//! programs of `examples/ipv6/` and `examples/dualstack/`.
//!
//! ```text
//! cargo run --example traffic              # rewrites examples/traffic/*.pcap
//! cargo run --example traffic -- OUT_DIR
//! ```
//!
//! Deterministic: the same source always writes the same bytes, and
//! `tests/run_examples.rs` checks that the committed captures are exactly
//! what this file writes. Every capture is Ethernet (link type 1), pcap with
//! microsecond stamps. Traffic comes in *bursts*, 200 ms apart, each of at
//! most 250 IP packets (IPv4 and IPv6; but burst C of `multicast.pcap`, for
//! W = 1,024) and a few ms long, so with the example policies (W = 256) and
//! `--window-ms 50` every burst is exactly one window. [`Facts`] counts what
//! the frames are: IPv4 and IPv6 packets (the windows' packets), frames that
//! are not IP (ARP; IPv6 with an IPv4-mapped address, never a packet of a
//! window) and malformed ones (cut inside an IP header).
//!
//! What each capture holds (see `examples/traffic/README.md` for the counts):
//! - `firewall.pcap`: client 10.0.0.7; five bursts, each with 8 packets from
//!   203.0.113.9 to 10.0.0.7 (TCP, UDP, ICMP, one 802.1Q-tagged, one
//!   non-first IPv4 fragment): 40 to drop. Near misses that must pass:
//!   203.0.113.9 to 10.0.0.8, 203.0.113.10 to 10.0.0.7, 10.0.0.7 to
//!   203.0.113.9. And a frame from 203.0.113.9 to 10.0.0.7 whose TCP header
//!   is cut short: its IPv4 header is valid, so it is the pest's packet all
//!   the same, and dropped (45 to drop in all).
//! - `spam.pcap`: client 10.0.0.7, words "viagra" and "lottery"; sources
//!   whose packets in one window hold both words: 198.51.100.10 (both in one
//!   UDP packet, 3 packets), 198.51.100.11 (a TCP flow with "vi|agra" split
//!   across two segments, 4 packets), 198.51.100.14 (one word per packet, 2),
//!   198.51.100.17 ("lot|ter|y viagra" over three segments, 3): 12 to drop.
//!   Near misses: one word only; both words but to 10.0.0.8; "via" and "gra"
//!   in segments with a sequence gap; the two words in different windows.
//! - `multicast.pcap`: broadcaster 198.51.100.7; burst A sends 2 contents to
//!   50 hosts of 10.0.0.0/24 (100 packets), burst B 1 content to 200 hosts
//!   (200 packets), burst C 1 content to 400 hosts of 10.0.1.0/24 and
//!   10.0.2.0/24 (outside 10.0.0.0/24; inside 10.0.0.0/22).
//! - `worm.pcap`: subnet 10.0.0.0/24, N = 8; scanners 203.0.113.50 (20
//!   hosts), 203.0.113.52 (9 hosts, 12 packets), 203.0.113.55 (40 hosts by
//!   ICMP, plus 5 packets outside the subnet): 72 to drop. Near misses:
//!   exactly 8 hosts; 12 hosts over two windows; 30 hosts of which 5 in the
//!   subnet.
//! - `firewall6.pcap`: the dual-stack client 10.0.0.7 and 2001:db8::7; the
//!   pest 203.0.113.9 and 2001:db8:bad::9. Five bursts, each with 5 packets
//!   from the pest over IPv4 (TCP, UDP, ICMP, a non-first fragment) and 18
//!   over IPv6 (TCP to port 25, UDP, ICMPv6, behind Hop-by-Hop, Destination
//!   Options and Routing headers, 802.1Q-tagged, a UDP datagram in three
//!   fragments and a TCP one to port 25 in two, a TCP header cut short, a
//!   first fragment cut inside its TCP header and its later fragment, an
//!   orphaned later fragment, one cut inside its Hop-by-Hop header): 25 + 90
//!   = 115 to drop. Near misses: the pest
//!   to 10.0.0.8 and 2001:db8::8 (a datagram with an identification the pest
//!   also uses to the client), the neighbours 203.0.113.10 and
//!   2001:db8:bad::10 (a datagram with the identification of the pest's TCP
//!   one), the client's replies; 3 IPv6 frames a burst from or to IPv4-mapped
//!   addresses (not IP), 1 cut inside the IPv6 fixed header (malformed). The port
//!   firewall for 2001:db8::7 against 2001:db8:bad::9 drops 4 a burst and the
//!   later fragment of the TCP datagram to port 25 (25).
//! - `spam6.pcap`: client 2001:db8::7 (and 10.0.0.7); the sources of
//!   [`SPAMMERS6`]: over IPv6 18 packets, and the later fragment of ::19's
//!   datagram (its first fragment, with both words, a window earlier): 19;
//!   ::1a's later fragment passes with its first although ::1a sends both
//!   words in its window ([`SPAM6_LATER_FRAGMENTS`]). Over IPv4 4 more.
//!   198.51.100.21's second word comes in an IPv6 frame from and to
//!   IPv4-mapped addresses: nothing of it is dropped.
//! - `multicast6.pcap`: the IPv6 broadcaster 2001:db8:100::7 sends 2
//!   contents to 60 hosts of 2001:db8:1::/64 (burst A), 1 to 200 hosts of it
//!   (B), 1 to 100 hosts of 2001:db8:2::/64 (C); the IPv4 one 198.51.100.7 1
//!   content to 40 hosts of 10.0.0.0/24 (A) and 1 to 50 of 10.0.1.0/24 (C).
//! - `worm6.pcap`: subnet 2001:db8:1::/64, N = 8; the scanners of
//!   [`WORMS6`]: 92 packets over IPv6 (one of them by fragmented UDP), 20
//!   over IPv4 into 10.0.0.0/24. Near misses: exactly 8 hosts; 12 hosts over
//!   two windows; 30 hosts of which 5 in the subnet; 20 hosts from an
//!   IPv4-mapped source (not IP).

use std::path::PathBuf;

/// `a.b.c.d` as a u32.
pub const fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// Capture time of the first burst, seconds since the epoch.
pub const EPOCH: u32 = 1_700_000_000;
/// Time between bursts, microseconds.
pub const BURST_US: u32 = 200_000;
/// Time between frames of a burst, microseconds.
pub const FRAME_US: u32 = 10;

/// What a capture holds, by construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Frames written.
    pub frames: u64,
    /// Frames that are IPv4 packets (possibly behind 802.1Q tags).
    pub ipv4: u64,
    /// Frames that are IPv6 packets (possibly behind 802.1Q tags, with
    /// extension headers, fragments).
    pub ipv6: u64,
    /// Frames that do not parse (runts, truncated IP headers).
    pub malformed: u64,
    /// Well-formed frames that are not packets of a window: ARP, and IPv6
    /// with an IPv4-mapped source or destination.
    pub not_ip: u64,
}

/// A deterministic generator (xorshift64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Bytes of background payloads: no 'v', no 'l', no 'y', so no background
/// payload can hold either spam word.
const ALPHABET: &[u8] = b"abcdefhkmnpsuwxz0123456789 ,.:/-=";

fn text(r: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| ALPHABET[r.below(ALPHABET.len() as u64) as usize]).collect()
}

fn sum16(mut s: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

/// An IPv4 packet with a correct header checksum and, for TCP and UDP, a
/// correct transport checksum. `frag` is the fragment offset in 8-byte units
/// (a non-first fragment carries `l4` as raw bytes).
fn ipv4(src: u32, dst: u32, proto: u8, id: u16, frag: u16, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut v = vec![0x45, 0, (total >> 8) as u8, total as u8];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src.to_be_bytes());
    v.extend_from_slice(&dst.to_be_bytes());
    let c = fold(sum16(0, &v));
    v[10..12].copy_from_slice(&c.to_be_bytes());
    let mut l4 = l4.to_vec();
    let ck = match proto {
        TCP if frag == 0 && l4.len() >= 20 => Some(16),
        UDP if frag == 0 && l4.len() >= 8 => Some(6),
        _ => None,
    };
    if let Some(at) = ck {
        let mut s = sum16(0, &v[12..20]);
        s += u32::from(proto) + l4.len() as u32;
        let c = fold(sum16(s, &l4));
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    v.extend_from_slice(&l4);
    v
}

fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 + payload.len());
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ack.to_be_bytes());
    v.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

fn icmp_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![8, 0, 0, 0];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(payload);
    let c = fold(sum16(0, &v));
    v[2..4].copy_from_slice(&c.to_be_bytes());
    v
}

/// A locally administered MAC derived from an address.
fn mac(a: u32) -> [u8; 6] {
    let [x, y, z, w] = a.to_be_bytes();
    [0x02, x, y, z, w, 0x01]
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + payload.len());
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A frame of a capture: its bytes and what it is.
#[derive(Clone)]
struct F {
    bytes: Vec<u8>,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipv4,
    Ipv6,
    Malformed,
    NotIp,
}

fn v4(src: u32, dst: u32, proto: u8, l4: &[u8]) -> F {
    v4_id(src, dst, proto, 0, 0, l4)
}

fn v4_id(src: u32, dst: u32, proto: u8, id: u16, frag: u16, l4: &[u8]) -> F {
    F { bytes: eth(mac(dst), mac(src), 0x0800, &ipv4(src, dst, proto, id, frag, l4)), kind: Kind::Ipv4 }
}

fn vlan(tag: u16, src: u32, dst: u32, proto: u8, l4: &[u8]) -> F {
    let mut inner = tag.to_be_bytes().to_vec();
    inner.extend_from_slice(&0x0800u16.to_be_bytes());
    inner.extend_from_slice(&ipv4(src, dst, proto, 0, 0, l4));
    F { bytes: eth(mac(dst), mac(src), 0x8100, &inner), kind: Kind::Ipv4 }
}

/// An address family of the captures: how a TCP segment travels in it.
trait Family: Copy {
    /// The frame of a TCP segment `l4` from `src` to `dst` (behind extension headers `exts`: IPv6 only).
    fn segment(src: Self, dst: Self, exts: &[Ext], l4: &[u8]) -> F;
}

impl Family for u32 {
    fn segment(src: u32, dst: u32, exts: &[Ext], l4: &[u8]) -> F {
        assert!(exts.is_empty(), "IPv4 has no extension headers");
        v4(src, dst, TCP, l4)
    }
}

impl Family for u128 {
    fn segment(src: u128, dst: u128, exts: &[Ext], l4: &[u8]) -> F {
        v6_ext(src, dst, exts, TCP, l4)
    }
}

/// A TCP flow, over IPv4 (`Flow<u32>`) or IPv6 ([`Flow6`]): consecutive
/// segments advance `seq` by their payload length.
struct Flow<A = u32> {
    src: A,
    dst: A,
    sport: u16,
    dport: u16,
    seq: u32,
}

/// A TCP flow over IPv6.
type Flow6 = Flow<u128>;

impl<A: Family> Flow<A> {
    fn new(src: A, dst: A, sport: u16, dport: u16, seq: u32) -> Flow<A> {
        Flow { src, dst, sport, dport, seq }
    }
    /// A segment with `flags` (ACK number 0 for a SYN, else 1), then `seq` advanced by `advance`.
    fn segment(&mut self, exts: &[Ext], flags: u8, payload: &[u8], advance: u32) -> F {
        let ack = u32::from(flags != 0x02);
        let f = A::segment(self.src, self.dst, exts, &tcp(self.sport, self.dport, self.seq, ack, flags, payload));
        self.seq = self.seq.wrapping_add(advance);
        f
    }
    fn syn(&mut self) -> F {
        self.segment(&[], 0x02, &[], 1)
    }
    fn data(&mut self, payload: &[u8]) -> F {
        self.segment(&[], 0x18, payload, payload.len() as u32)
    }
    fn fin(&mut self) -> F {
        self.segment(&[], 0x11, &[], 1)
    }
}

impl Flow6 {
    /// A segment behind extension headers.
    fn data_ext(&mut self, exts: &[Ext], payload: &[u8]) -> F {
        self.segment(exts, 0x18, payload, payload.len() as u32)
    }
}

/// Background traffic: long-lived flows to and from hosts that no scenario
/// names (in 10.0.0.0/24 each background source talks to at most four hosts,
/// so no worm blocker with N >= 4 ever acts on it), IPv6, ARP, a tagged
/// frame and malformed frames.
struct Background {
    r: Rng,
    web: Vec<(Flow, Flow)>,
    n: u16,
}

impl Background {
    fn new(seed: u64) -> Background {
        let mut web = Vec::new();
        for k in 0..6u8 {
            let client = ip(192, 0, 2, 10 + k);
            let server = ip(10, 0, 0, 20 + k % 3);
            web.push((
                Flow::new(client, server, 40_000 + u16::from(k), 80, 1000 * u32::from(k)),
                Flow::new(server, client, 80, 40_000 + u16::from(k), 7_000_000),
            ));
        }
        // A web client of the client 10.0.0.7 itself (the firewall and the
        // spam filter must leave it alone).
        web.push((
            Flow::new(ip(192, 0, 2, 77), ip(10, 0, 0, 7), 51_000, 443, 42),
            Flow::new(ip(10, 0, 0, 7), ip(192, 0, 2, 77), 443, 51_000, 9_000_000),
        ));
        Background { r: Rng(seed), web, n: 0 }
    }

    /// `ipv4` background IPv4 packets and the fixed non-IPv4 and malformed frames.
    fn burst(&mut self, packets: usize) -> Vec<F> {
        let mut out = Vec::new();
        let mut k = 0;
        while k < packets {
            self.n = self.n.wrapping_add(1);
            let pick = self.r.below(10);
            match pick {
                0..=4 => {
                    // A request spanning segments, and its answer.
                    let i = self.r.below(self.web.len() as u64) as usize;
                    let len = 100 + self.r.below(600) as usize;
                    let body = text(&mut self.r, len);
                    let (up, down) = &mut self.web[i];
                    let cut = body.len() / 2;
                    out.push(up.data(&body[..cut]));
                    out.push(up.data(&body[cut..]));
                    let answer = text(&mut self.r, 60);
                    out.push(down.data(&answer));
                    k += 3;
                }
                5..=7 => {
                    // DNS-like UDP both ways.
                    let host = ip(10, 0, 0, 30 + (self.n % 4) as u8);
                    let q = text(&mut self.r, 30);
                    out.push(v4(host, ip(192, 0, 2, 53), UDP, &udp(5353, 53, &q)));
                    let a = text(&mut self.r, 90);
                    out.push(v4(ip(192, 0, 2, 53), host, UDP, &udp(53, 5353, &a)));
                    k += 2;
                }
                _ => {
                    let p = text(&mut self.r, 56);
                    out.push(v4(ip(192, 0, 2, 99), ip(10, 0, 0, 22), ICMP, &icmp_echo(7, self.n, &p)));
                    k += 1;
                }
            }
        }
        // IPv6 UDP.
        for i in 0..2u8 {
            let mut h = vec![0x60, 0, 0, 0, 0, 16, UDP, 64];
            h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i + 1]);
            h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99]);
            h.extend_from_slice(&udp(546, 547, b"dhcpv6xx"));
            out.push(F { bytes: eth([0x33, 0x33, 0, 1, 0, 2], mac(u32::from(i)), 0x86dd, &h), kind: Kind::Ipv6 });
        }
        // ARP who-has 10.0.0.21 tell 10.0.0.1.
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend_from_slice(&mac(ip(10, 0, 0, 1)));
        arp.extend_from_slice(&ip(10, 0, 0, 1).to_be_bytes());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&ip(10, 0, 0, 21).to_be_bytes());
        out.push(F { bytes: eth([0xff; 6], mac(ip(10, 0, 0, 1)), 0x0806, &arp), kind: Kind::NotIp });
        // A runt (shorter than an Ethernet header).
        out.push(F { bytes: vec![0x02, 0, 0, 0, 0, 1, 0x02, 0], kind: Kind::Malformed });
        // An IPv4 frame cut inside its IP header.
        let cut = ipv4(ip(192, 0, 2, 5), ip(10, 0, 0, 20), UDP, 0, 0, &udp(1, 2, b"cut short"));
        out.push(F { bytes: eth(mac(ip(10, 0, 0, 20)), mac(ip(192, 0, 2, 5)), 0x0800, &cut[..12]), kind: Kind::Malformed });
        out
    }
}

/// Interleave `scenario` into `background`, keeping the order within each.
fn weave(r: &mut Rng, scenario: Vec<F>, background: Vec<F>) -> Vec<F> {
    let mut out = Vec::with_capacity(scenario.len() + background.len());
    let (mut a, mut b) = (scenario.into_iter().peekable(), background.into_iter().peekable());
    loop {
        match (a.peek().is_some(), b.peek().is_some()) {
            (false, false) => break,
            (true, false) => out.extend(a.by_ref()),
            (false, true) => out.extend(b.by_ref()),
            (true, true) => {
                let next = if r.below(3) == 0 { a.next() } else { b.next() };
                out.extend(next);
            }
        }
    }
    out
}

/// A pcap file (little endian, microseconds, Ethernet) of bursts of frames.
fn pcap(bursts: &[Vec<F>]) -> (Vec<u8>, Facts) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut facts = Facts::default();
    for (b, frames) in bursts.iter().enumerate() {
        assert!(frames.iter().filter(|f| matches!(f.kind, Kind::Ipv4 | Kind::Ipv6)).count() <= 1000);
        for (j, f) in frames.iter().enumerate() {
            let us = b as u64 * u64::from(BURST_US) + j as u64 * u64::from(FRAME_US);
            let sec = EPOCH + (us / 1_000_000) as u32;
            out.extend_from_slice(&sec.to_le_bytes());
            out.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(f.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&f.bytes);
            facts.frames += 1;
            match f.kind {
                Kind::Ipv4 => facts.ipv4 += 1,
                Kind::Ipv6 => facts.ipv6 += 1,
                Kind::Malformed => facts.malformed += 1,
                Kind::NotIp => facts.not_ip += 1,
            }
        }
    }
    (out, facts)
}

/// The firewall's client, and the source it blocks.
pub const FW_CLIENT: u32 = ip(10, 0, 0, 7);
/// The firewall's SrcIP (the example's default).
pub const FW_BAD: u32 = ip(203, 0, 113, 9);

fn firewall() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x0f12_e3a1);
    let mut bg = Background::new(11);
    let mut bursts = Vec::new();
    let mut attack = Flow::new(FW_BAD, FW_CLIENT, 6666, 22, 500);
    for b in 0..5u16 {
        let mut s = vec![
            // 8 to drop: 3 TCP, 3 UDP, 1 ICMP (via the flow and plain packets),
            // one tagged, one non-first fragment.
            attack.syn(),
            attack.data(b"SSH-2.0-bruteforce"),
            attack.data(&text(&mut r, 700)),
            v4(FW_BAD, FW_CLIENT, UDP, &udp(4444, 53, &text(&mut r, 40))),
            v4(FW_BAD, FW_CLIENT, UDP, &udp(4444, 123, &text(&mut r, 48))),
            v4(FW_BAD, FW_CLIENT, ICMP, &icmp_echo(1, b, b"ping from a pest")),
            vlan(100, FW_BAD, FW_CLIENT, UDP, &udp(4445, 161, b"tagged")),
            v4_id(FW_BAD, FW_CLIENT, UDP, 77 + b, 185, &text(&mut r, 64)),
            // Near misses, forwarded.
            v4(FW_BAD, ip(10, 0, 0, 8), UDP, &udp(4444, 53, b"not for the client")),
            v4(FW_BAD, ip(10, 0, 0, 8), TCP, &tcp(6666, 22, 9, 0, 0x02, &[])),
            v4(ip(203, 0, 113, 10), FW_CLIENT, UDP, &udp(4444, 53, b"another source")),
            v4(ip(203, 0, 113, 10), FW_CLIENT, ICMP, &icmp_echo(2, b, b"neighbour")),
            v4(FW_CLIENT, FW_BAD, UDP, &udp(53, 4444, b"the client answers")),
            v4(FW_CLIENT, FW_BAD, TCP, &tcp(22, 6666, 1, 0, 0x12, &[])),
        ];
        let trunc = ipv4(FW_BAD, FW_CLIENT, TCP, 0, 0, &tcp(6666, 22, 1, 0, 0x02, &[]));
        s.push(F { bytes: eth(mac(FW_CLIENT), mac(FW_BAD), 0x0800, &trunc[..30]), kind: Kind::Ipv4 });
        let back = bg.burst(120);
        bursts.push(weave(&mut r, s, back));
    }
    pcap(&bursts)
}

/// The spam filter's client.
pub const SPAM_CLIENT: u32 = ip(10, 0, 0, 7);
/// Spam sources, by burst, whose packets to the client are all dropped.
/// (.11 in burst 2: its connection's stream held both words in burst 1, so
/// its next segment is dropped too: CONTAINS_STRING across windows.)
pub const SPAMMERS: [(u32, usize, u64); 5] = [
    (ip(198, 51, 100, 10), 0, 3),
    (ip(198, 51, 100, 11), 1, 4),
    (ip(198, 51, 100, 14), 1, 2),
    (ip(198, 51, 100, 11), 2, 1),
    (ip(198, 51, 100, 17), 3, 3),
];

fn spam() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x5a4d_0001);
    let mut bg = Background::new(22);
    let me = SPAM_CLIENT;
    let udp_to = |src: u32, dst: u32, body: &[u8]| v4(src, dst, UDP, &udp(2525, 25, body));
    let mut bursts = Vec::new();

    // Burst 0: 198.51.100.10 has both words in one packet (3 packets
    // dropped); .12 has one word; .13 has both but to 10.0.0.8.
    let mut s = vec![
        udp_to(ip(198, 51, 100, 10), me, b"hello there"),
        udp_to(ip(198, 51, 100, 10), me, b"win the lottery, buy viagra"),
        udp_to(ip(198, 51, 100, 10), me, b"bye"),
    ];
    let mut one = Flow::new(ip(198, 51, 100, 12), me, 3000, 25, 10);
    s.push(one.data(b"cheap viagra here"));
    s.push(one.data(b" and nothing else"));
    s.push(udp_to(ip(198, 51, 100, 13), ip(10, 0, 0, 8), b"viagra lottery"));
    bursts.push(weave(&mut r, s, bg.burst(140)));

    // Burst 1: .11 splits "viagra" across two TCP segments (4 packets
    // dropped); .14 has one word per packet (2 dropped); .15 has "via" and
    // "gra" with a sequence gap, and "lottery".
    let mut split = Flow::new(ip(198, 51, 100, 11), me, 3001, 25, 1_000);
    let mut gap = Flow::new(ip(198, 51, 100, 15), me, 3002, 25, 5_000);
    let mut s = vec![split.syn(), split.data(b"Subject: vi"), split.data(b"agra and a lottery win"), split.fin()];
    s.push(udp_to(ip(198, 51, 100, 14), me, b"viagra"));
    s.push(gap.data(b"via"));
    gap.seq += 100;
    s.push(gap.data(b"gra lottery"));
    s.push(udp_to(ip(198, 51, 100, 14), me, b"lottery"));
    bursts.push(weave(&mut r, s, bg.burst(140)));

    // Burst 2: .16 sends "viagra" (and "lottery" only in burst 3, over UDP,
    // which is not a stream: never dropped); .11 comes back on the same
    // connection, whose stream already held both words (1 dropped).
    let s = vec![udp_to(ip(198, 51, 100, 16), me, b"viagra"), split.data(b"sorry about that")];
    bursts.push(weave(&mut r, s, bg.burst(140)));

    // Burst 3: .16's second word; .17 spreads "lottery" over three
    // contiguous segments (3 dropped).
    let mut three = Flow::new(ip(198, 51, 100, 17), me, 3003, 25, u32::MAX - 4);
    let s = vec![udp_to(ip(198, 51, 100, 16), me, b"lottery"), three.data(b"lot"), three.data(b"ter"), three.data(b"y viagra")];
    bursts.push(weave(&mut r, s, bg.burst(140)));
    pcap(&bursts)
}

/// The multicast broadcaster (the example's default BroadcastIP).
pub const MC_SOURCE: u32 = ip(198, 51, 100, 7);
/// Contents of the broadcasts, by burst.
pub const MC_CONTENTS: [&[&[u8]]; 3] = [
    &[b"stream 1, frame 1: the weather at noon", b"stream 1, frame 2: news at six"],
    &[b"stream 2: software update 4.2"],
    &[b"stream 3: the late show"],
];

/// Destinations of the broadcasts, by burst, in sending order.
pub fn mc_hosts(burst: usize) -> Vec<u32> {
    match burst {
        0 => (100..150).map(|h| ip(10, 0, 0, h)).collect(),
        1 => (2..202).map(|h| ip(10, 0, 0, h)).collect(),
        _ => (1..255).map(|h| ip(10, 0, 1, h)).chain((1..147).map(|h| ip(10, 0, 2, h))).collect(),
    }
}

fn multicast() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x3c3c_0007);
    let mut bg = Background::new(33);
    let mut bursts = Vec::new();
    for (b, contents) in MC_CONTENTS.iter().enumerate() {
        let mut s = Vec::new();
        for c in contents.iter() {
            for &h in &mc_hosts(b) {
                s.push(v4(MC_SOURCE, h, UDP, &udp(5004, 5004, c)));
            }
        }
        // Near misses: the broadcaster to a host outside the subnets, and
        // another source to a broadcast host.
        s.push(v4(MC_SOURCE, ip(192, 0, 2, 50), UDP, &udp(5004, 5004, contents[0])));
        s.push(v4(ip(198, 51, 100, 8), ip(10, 0, 0, 100), UDP, &udp(5004, 5004, contents[0])));
        let n = if b == 1 { 30 } else { 40 };
        bursts.push(weave(&mut r, s, bg.burst(n)));
    }
    pcap(&bursts)
}

/// Scanners, by burst, whose packets into 10.0.0.0/24 are all dropped.
pub const WORMS: [(u32, usize, u64); 3] = [(ip(203, 0, 113, 50), 0, 20), (ip(203, 0, 113, 52), 0, 12), (ip(203, 0, 113, 55), 2, 40)];

fn worm() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x0bad_f00d);
    let mut bg = Background::new(44);
    let syn = |src: u32, dst: u32, seq: u32| v4(src, dst, TCP, &tcp(31_337, 445, seq, 0, 0x02, &[]));
    let mut bursts = Vec::new();

    // Burst 0: .50 probes 20 hosts; .51 exactly 8 (twice 4 of them); .52
    // 9 hosts (3 twice).
    let mut s = Vec::new();
    for h in 0..20u8 {
        s.push(syn(ip(203, 0, 113, 50), ip(10, 0, 0, 100 + h), u32::from(h)));
    }
    for h in 0..12u8 {
        s.push(syn(ip(203, 0, 113, 51), ip(10, 0, 0, 130 + h % 8), u32::from(h)));
    }
    for h in 0..12u8 {
        s.push(syn(ip(203, 0, 113, 52), ip(10, 0, 0, 140 + h % 9), u32::from(h)));
    }
    bursts.push(weave(&mut r, s, bg.burst(120)));

    // Bursts 1 and 2: .53 probes 6 hosts in each (12 in all, never more
    // than 8 in one window); .54 probes 30 hosts of which 5 in the subnet.
    for b in 0..2u8 {
        let mut s = Vec::new();
        for h in 0..6u8 {
            s.push(syn(ip(203, 0, 113, 53), ip(10, 0, 0, 150 + 6 * b + h), u32::from(h)));
        }
        if b == 0 {
            for h in 0..30u8 {
                let dst = if h % 6 == 0 { ip(10, 0, 0, 170 + h / 6) } else { ip(198, 18, 0, h) };
                s.push(syn(ip(203, 0, 113, 54), dst, u32::from(h)));
            }
        } else {
            // Burst 2: .55 sweeps 40 hosts with ICMP echo, and 5 outside.
            for h in 0..40u8 {
                s.push(v4(ip(203, 0, 113, 55), ip(10, 0, 0, 200 + h), ICMP, &icmp_echo(9, u16::from(h), b"are you there")));
            }
            for h in 0..5u8 {
                s.push(v4(ip(203, 0, 113, 55), ip(198, 18, 1, h), ICMP, &icmp_echo(9, u16::from(h), b"are you there")));
            }
        }
        bursts.push(weave(&mut r, s, bg.burst(120)));
    }
    pcap(&bursts)
}

/// The port firewall's client and the source whose SMTP it drops.
pub const PF_CLIENT: u32 = ip(10, 0, 0, 7);
/// The port firewall's Spammer (the example's default).
pub const PF_SPAMMER: u32 = ip(203, 0, 113, 9);

/// A frame of IPv4 `l4` cut to `keep` bytes of IP packet (its IPv4 header whole).
fn cut_v4(src: u32, dst: u32, proto: u8, l4: &[u8], keep: usize) -> F {
    let packet = ipv4(src, dst, proto, 0, 0, l4);
    F { bytes: eth(mac(dst), mac(src), 0x0800, &packet[..keep]), kind: Kind::Ipv4 }
}

fn ports() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x2525_0025);
    let mut bg = Background::new(55);
    let (me, pest) = (PF_CLIENT, PF_SPAMMER);
    let mut bursts = Vec::new();
    for b in 0..5u16 {
        let mut smtp = Flow::new(pest, me, 40_025 + b, 25, 100 * u32::from(b));
        let mut s = vec![
            // 5 to drop: a TCP connection to port 25 (SYN, two segments, FIN)
            // and an 802.1Q-tagged SYN to port 25.
            smtp.syn(),
            smtp.data(b"HELO spam.example\r\nMAIL FROM:<offer@spam.example>\r\n"),
            smtp.data(&text(&mut r, 400)),
            smtp.fin(),
            vlan(200, pest, me, TCP, &tcp(40_100 + b, 25, 7, 0, 0x02, &[])),
            // Near misses, forwarded: the pest's other ports and protocols,
            // its source port 25, its SMTP to someone else, someone else's SMTP.
            v4(pest, me, UDP, &udp(40_025, 25, b"udp to port 25")),
            v4(pest, me, TCP, &tcp(40_026, 24, 1, 0, 0x02, &[])),
            v4(pest, me, TCP, &tcp(40_027, 26, 1, 0, 0x02, &[])),
            v4(pest, me, TCP, &tcp(40_028, 587, 1, 0, 0x02, &[])),
            v4(pest, me, TCP, &tcp(25, 4000, 1, 1, 0x12, &[])),
            v4(pest, me, ICMP, &icmp_echo(3, b, b"ping")),
            v4(pest, ip(10, 0, 0, 8), TCP, &tcp(40_029, 25, 1, 0, 0x02, &[])),
            v4(ip(203, 0, 113, 10), me, TCP, &tcp(40_030, 25, 1, 0, 0x02, &[])),
            v4(me, pest, TCP, &tcp(25, 40_025, 1, 1, 0x12, &[])),
            // Packets to port 25 without ports: a non-first fragment, and TCP
            // headers cut short (inside the ports, and past them but before
            // the end of the header): in no port narrowing, forwarded.
            v4_id(pest, me, TCP, 900 + b, 185, &tcp(40_031, 25, 1, 0, 0x02, &text(&mut r, 40))),
        ];
        s.push(cut_v4(pest, me, TCP, &tcp(40_032, 25, 1, 0, 0x02, &[]), 23));
        s.push(cut_v4(pest, me, TCP, &tcp(40_033, 25, 1, 0, 0x02, &[]), 30));
        bursts.push(weave(&mut r, s, bg.burst(120)));
    }
    pcap(&bursts)
}

/// The anti-amplification filter's client, resolver and time server (the example's defaults).
pub const AMP_CLIENT: u32 = ip(10, 0, 0, 7);
/// Its Resolver.
pub const AMP_RESOLVER: u32 = ip(192, 0, 2, 53);
/// Its TimeServer.
pub const AMP_TIME: u32 = ip(192, 0, 2, 123);
/// Reflectors: DNS (source port 53) and NTP (source port 123) servers the client never asked.
pub const AMP_REFLECTORS: [(u32, u16); 4] =
    [(ip(198, 51, 100, 53), 53), (ip(198, 51, 100, 54), 53), (ip(198, 51, 100, 55), 53), (ip(203, 0, 113, 123), 123)];

fn amplification() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x0053_0123);
    let mut bg = Background::new(66);
    let me = AMP_CLIENT;
    let mut bursts = Vec::new();
    for b in 0..4u16 {
        let mut s = Vec::new();
        // To drop: 6 replies from each reflector (to ephemeral ports), 24.
        for k in 0..6u16 {
            for &(refl, port) in &AMP_REFLECTORS {
                s.push(v4(refl, me, UDP, &udp(port, 20_000 + 97 * k + b, &text(&mut r, 400))));
            }
        }
        // To drop: the resolver's replies to well-known ports (80, 123, 1023), 3.
        for dport in [80, 123, 1023] {
            s.push(v4(AMP_RESOLVER, me, UDP, &udp(53, dport, &text(&mut r, 60))));
        }
        // Near misses, forwarded: the resolver's and the time server's
        // answers to what the client asked; a reflector's reply to another
        // host, over TCP, from a neighbouring port; a reply to port 1024;
        // a reflector's non-first fragment and a UDP header cut short (no ports).
        s.push(v4(AMP_RESOLVER, me, UDP, &udp(53, 40_000 + b, &text(&mut r, 90))));
        s.push(v4(AMP_RESOLVER, me, UDP, &udp(53, 1024, &text(&mut r, 90))));
        s.push(v4(AMP_TIME, me, UDP, &udp(123, 123, &text(&mut r, 48))));
        s.push(v4(ip(198, 51, 100, 53), ip(10, 0, 0, 8), UDP, &udp(53, 33_000, &text(&mut r, 400))));
        s.push(v4(ip(198, 51, 100, 53), me, TCP, &tcp(53, 33_001, 1, 1, 0x18, &text(&mut r, 100))));
        s.push(v4(ip(198, 51, 100, 53), me, UDP, &udp(52, 33_002, &text(&mut r, 100))));
        s.push(v4(ip(198, 51, 100, 53), me, UDP, &udp(54, 33_003, &text(&mut r, 100))));
        s.push(v4(me, ip(198, 51, 100, 53), UDP, &udp(33_004, 53, b"a query the client did send")));
        s.push(v4_id(ip(198, 51, 100, 54), me, UDP, 700 + b, 185, &text(&mut r, 200)));
        s.push(cut_v4(ip(198, 51, 100, 55), me, UDP, &udp(53, 33_005, b"cut"), 25));
        bursts.push(weave(&mut r, s, bg.burst(110)));
    }
    pcap(&bursts)
}

/// The SYN worm blocker's sources that it stops, by burst, with how many of their packets are dropped.
pub const SYN_WORMS: [(u32, usize, u64); 3] = [(ip(203, 0, 113, 60), 0, 14), (ip(203, 0, 113, 61), 1, 20), (ip(203, 0, 113, 60), 2, 9)];

fn synworm() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x0445_0002);
    let mut bg = Background::new(77);
    let pkt = |src: u32, dst: u32, sport: u16, dport: u16, flags: u8| v4(src, dst, TCP, &tcp(sport, dport, 1, 0, flags, &[]));
    let (syn, synack, ack) = (0x02, 0x12, 0x10);
    let host = |h: u8| ip(10, 0, 0, 100 + h);
    let mut bursts = Vec::new();

    // Burst 0: the worm .60 SYNs port 445 of 12 hosts and port 139 of 2:
    // 14 dropped; its ACKs to 445 pass. .62 SYNs 445 of exactly 8 hosts;
    // .63 sends 12 SYN-ACKs and .64 12 ACKs to 445; .65 12 UDP to 445;
    // .66 12 SYNs to 445 outside the subnet: all pass.
    let mut s = Vec::new();
    for h in 0..12u8 {
        s.push(pkt(ip(203, 0, 113, 60), host(h), 30_000 + u16::from(h), 445, syn));
    }
    for h in 0..2u8 {
        s.push(pkt(ip(203, 0, 113, 60), host(h), 31_000 + u16::from(h), 139, syn));
    }
    for h in 0..3u8 {
        s.push(pkt(ip(203, 0, 113, 60), host(h), 30_000 + u16::from(h), 445, ack));
    }
    for h in 0..8u8 {
        s.push(pkt(ip(203, 0, 113, 62), host(20 + h), 32_000 + u16::from(h), 445, syn));
    }
    for h in 0..12u8 {
        s.push(pkt(ip(203, 0, 113, 63), host(40 + h), 445, 33_000 + u16::from(h), synack));
        s.push(pkt(ip(203, 0, 113, 64), host(40 + h), 34_000 + u16::from(h), 445, ack));
        s.push(v4(ip(203, 0, 113, 65), host(40 + h), UDP, &udp(35_000 + u16::from(h), 445, b"smb over udp?")));
        s.push(pkt(ip(203, 0, 113, 66), ip(10, 0, 1, 100 + h), 36_000 + u16::from(h), 445, syn));
    }
    bursts.push(weave(&mut r, s, bg.burst(100)));

    // Burst 1: the scanner .61 SYNs 20 distinct ports of one host: 20
    // dropped. .67 SYNs exactly 16 distinct ports; .68 sends 20 SYNs, 8 to
    // port 445 and 12 to port 80 (8 to 445, 2 distinct ports): both pass.
    let mut s = Vec::new();
    for p in 0..20u16 {
        s.push(pkt(ip(203, 0, 113, 61), host(60), 37_000 + p, 1000 + 7 * p, syn));
    }
    for p in 0..16u16 {
        s.push(pkt(ip(203, 0, 113, 67), host(61), 38_000 + p, 2000 + 3 * p, syn));
    }
    for h in 0..20u8 {
        let dport = if h < 8 { 445 } else { 80 };
        s.push(pkt(ip(203, 0, 113, 68), host(62 + h % 8), 39_000 + u16::from(h), dport, syn));
    }
    bursts.push(weave(&mut r, s, bg.burst(120)));

    // Burst 2: the worm .60 again, 9 hosts: 9 dropped. A SYN whose TCP
    // header is cut short and a non-first fragment from it: no flags, pass.
    let mut s = Vec::new();
    for h in 0..9u8 {
        s.push(pkt(ip(203, 0, 113, 60), host(80 + h), 40_000 + u16::from(h), 445, syn));
    }
    s.push(cut_v4(ip(203, 0, 113, 60), host(90), TCP, &tcp(40_100, 445, 1, 0, syn, &[]), 33));
    s.push(v4_id(ip(203, 0, 113, 60), host(91), TCP, 4242, 185, &tcp(40_101, 445, 1, 0, syn, &[])));
    bursts.push(weave(&mut r, s, bg.burst(120)));
    pcap(&bursts)
}

// IPv6 (issue 15): addresses, packets with extension headers and fragments,
// background traffic over IPv6, and the four IPv6 and dual-stack captures.

/// An IPv6 address from its eight 16-bit groups.
pub const fn ip6(g: [u16; 8]) -> u128 {
    let mut a = 0u128;
    let mut i = 0;
    while i < 8 {
        a = a << 16 | g[i] as u128;
        i += 1;
    }
    a
}

/// `2001:db8:NET::HOST`: the documentation prefix (RFC 3849), one /48 per
/// role (0: clients and servers, `bad`: pests and scanners, 1: the edge
/// router's subnet, ...).
pub const fn db8(net: u16, host: u64) -> u128 {
    ip6([0x2001, 0x0db8, net, 0, 0, 0, 0, 0]) | host as u128
}

/// The IPv4-mapped IPv6 address `::ffff:a.b.c.d`: how vinet holds an IPv4
/// address, and never a valid address on an IPv6 wire (RFC 4291 2.5.5.2).
pub const fn mapped(a: u32) -> u128 {
    0xffff << 32 | a as u128
}

/// Whether `a` lies in `::ffff:0:0/96`.
pub const fn is_mapped(a: u128) -> bool {
    a >> 32 == 0xffff
}

const ICMPV6: u8 = 58;

/// An IPv6 extension header of a generated packet.
#[derive(Clone, Copy)]
enum Ext {
    /// Hop-by-Hop Options (0): a Router Alert option and padding, 8 bytes.
    HopByHop,
    /// Destination Options (60): padding only, 8 bytes.
    DestOpts,
    /// Routing (43): a Segment Routing header (RFC 8754, type 4) whose one
    /// segment, the packet's destination, is already reached; 24 bytes.
    Routing(u128),
    /// Fragment (44): the offset in 8-byte units, "more fragments", the
    /// datagram's identification.
    Fragment { offset: u16, more: bool, id: u32 },
}

impl Ext {
    fn code(self) -> u8 {
        match self {
            Ext::HopByHop => 0,
            Ext::DestOpts => 60,
            Ext::Routing(_) => 43,
            Ext::Fragment { .. } => 44,
        }
    }

    fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            Ext::HopByHop => vec![next, 0, 5, 2, 0, 0, 1, 0],
            Ext::DestOpts => vec![next, 0, 1, 4, 0, 0, 0, 0],
            Ext::Routing(segment) => {
                let mut v = vec![next, 2, 4, 0, 0, 0, 0, 0];
                v.extend_from_slice(&segment.to_be_bytes());
                v
            }
            Ext::Fragment { offset, more, id } => {
                let mut v = vec![next, 0];
                v.extend_from_slice(&(offset << 3 | u16::from(more)).to_be_bytes());
                v.extend_from_slice(&id.to_be_bytes());
                v
            }
        }
    }
}

/// `l4` with its TCP, UDP or ICMPv6 checksum over the IPv6 pseudo-header
/// (RFC 8200 8.1): of the whole upper-layer packet, so for a datagram to be
/// fragmented, before it is.
fn checksum6(src: u128, dst: u128, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut l4 = l4.to_vec();
    let at = match proto {
        TCP if l4.len() >= 20 => Some(16),
        UDP if l4.len() >= 8 => Some(6),
        ICMPV6 if l4.len() >= 4 => Some(2),
        _ => None,
    };
    if let Some(at) = at {
        let mut s = sum16(0, &src.to_be_bytes());
        s = sum16(s, &dst.to_be_bytes());
        s += u32::from(proto) + l4.len() as u32;
        let mut c = fold(sum16(s, &l4));
        if proto == UDP && c == 0 {
            c = 0xffff;
        }
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    l4
}

/// An IPv6 packet (hop limit 64): the fixed header, the extension headers
/// in order, then `body` (upper-layer bytes, or a fragment's).
fn ipv6(src: u128, dst: u128, exts: &[Ext], proto: u8, body: &[u8]) -> Vec<u8> {
    let mut chain = Vec::new();
    for (k, e) in exts.iter().enumerate() {
        chain.extend(e.bytes(exts.get(k + 1).map_or(proto, |n| n.code())));
    }
    let len = chain.len() + body.len();
    let mut v = vec![0x60, 0, 0, 0, (len >> 8) as u8, len as u8, exts.first().map_or(proto, |e| e.code()), 64];
    v.extend_from_slice(&src.to_be_bytes());
    v.extend_from_slice(&dst.to_be_bytes());
    v.extend_from_slice(&chain);
    v.extend_from_slice(body);
    v
}

/// A locally administered MAC derived from an IPv6 address.
fn mac6(a: u128) -> [u8; 6] {
    let b = a.to_be_bytes();
    [0x02, b[12], b[13], b[14], b[15], 0x06]
}

/// What an IPv6 packet is: with an IPv4-mapped address, no packet of a window.
fn kind6(src: u128, dst: u128) -> Kind {
    if is_mapped(src) || is_mapped(dst) {
        Kind::NotIp
    } else {
        Kind::Ipv6
    }
}

fn frame6(src: u128, dst: u128, packet: &[u8], kind: Kind) -> F {
    F { bytes: eth(mac6(dst), mac6(src), 0x86dd, packet), kind }
}

fn v6(src: u128, dst: u128, proto: u8, l4: &[u8]) -> F {
    v6_ext(src, dst, &[], proto, l4)
}

fn v6_ext(src: u128, dst: u128, exts: &[Ext], proto: u8, l4: &[u8]) -> F {
    frame6(src, dst, &ipv6(src, dst, exts, proto, &checksum6(src, dst, proto, l4)), kind6(src, dst))
}

fn vlan6(tag: u16, src: u128, dst: u128, proto: u8, l4: &[u8]) -> F {
    let mut inner = tag.to_be_bytes().to_vec();
    inner.extend_from_slice(&0x86ddu16.to_be_bytes());
    inner.extend_from_slice(&ipv6(src, dst, &[], proto, &checksum6(src, dst, proto, l4)));
    F { bytes: eth(mac6(dst), mac6(src), 0x8100, &inner), kind: kind6(src, dst) }
}

/// An IPv6 frame cut to `keep` bytes of IP packet.
fn cut6(src: u128, dst: u128, exts: &[Ext], proto: u8, l4: &[u8], keep: usize, kind: Kind) -> F {
    let p = ipv6(src, dst, exts, proto, &checksum6(src, dst, proto, l4));
    frame6(src, dst, &p[..keep], kind)
}

/// One fragment of a datagram: `data` at `offset` (8-byte units).
fn fragment6(src: u128, dst: u128, id: u32, proto: u8, offset: u16, more: bool, data: &[u8]) -> F {
    frame6(src, dst, &ipv6(src, dst, &[Ext::Fragment { offset, more, id }], proto, data), kind6(src, dst))
}

/// The fragments of a datagram whose upper-layer packet is `l4` (its
/// checksum over the whole), cut at the byte offsets `cuts` (multiples of 8).
fn fragments6(src: u128, dst: u128, id: u32, proto: u8, l4: &[u8], cuts: &[usize]) -> Vec<F> {
    let whole = checksum6(src, dst, proto, l4);
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(whole.len());
    bounds
        .windows(2)
        .map(|w| {
            assert!(w[0] % 8 == 0 && w[0] < w[1], "fragments start at multiples of 8 bytes");
            fragment6(src, dst, id, proto, (w[0] / 8) as u16, w[1] < whole.len(), &whole[w[0]..w[1]])
        })
        .collect()
}

/// An ICMPv6 echo request (its checksum is set by `checksum6`).
fn icmp6_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![128, 0, 0, 0];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Background traffic over IPv6: web flows whose requests span two
/// segments (one of them to the client 2001:db8::7, one to a server of the
/// edge router's subnet 2001:db8:1::/64), DNS-like UDP, ICMPv6 echo and
/// Neighbor Solicitations. No background source talks to more than one host
/// of 2001:db8:1::/64, and no payload holds a 'v', an 'l' or a 'y'.
struct Background6 {
    r: Rng,
    web: Vec<(Flow6, Flow6)>,
    n: u16,
}

impl Background6 {
    fn new(seed: u64) -> Background6 {
        let servers = [db8(0, 0x20), db8(0, 0x21), db8(1, 0x80)];
        let mut web = Vec::new();
        for k in 0..4u16 {
            let client = db8(0xf00, 0x10 + u64::from(k));
            let server = servers[usize::from(k) % 3];
            web.push((
                Flow6::new(client, server, 50_000 + k, 80, 2000 * u32::from(k)),
                Flow6::new(server, client, 80, 50_000 + k, 8_000_000),
            ));
        }
        web.push((
            Flow6::new(db8(0x77, 0x77), db8(0, 7), 52_000, 443, 77),
            Flow6::new(db8(0, 7), db8(0x77, 0x77), 443, 52_000, 10_000_000),
        ));
        Background6 { r: Rng(seed), web, n: 0 }
    }

    /// About `packets` background IPv6 packets.
    fn burst(&mut self, packets: usize) -> Vec<F> {
        let mut out = Vec::new();
        while out.len() < packets {
            self.n = self.n.wrapping_add(1);
            match self.r.below(10) {
                0..=4 => {
                    let i = self.r.below(self.web.len() as u64) as usize;
                    let len = 100 + self.r.below(600) as usize;
                    let body = text(&mut self.r, len);
                    let (up, down) = &mut self.web[i];
                    let cut = body.len() / 2;
                    out.push(up.data(&body[..cut]));
                    out.push(up.data(&body[cut..]));
                    let answer = text(&mut self.r, 60);
                    out.push(down.data(&answer));
                }
                5..=7 => {
                    let host = db8(0, 0x30 + u64::from(self.n % 4));
                    let q = text(&mut self.r, 30);
                    out.push(v6(host, db8(0x53, 0x53), UDP, &udp(5353, 53, &q)));
                    let a = text(&mut self.r, 90);
                    out.push(v6(db8(0x53, 0x53), host, UDP, &udp(53, 5353, &a)));
                }
                8 => {
                    let p = text(&mut self.r, 56);
                    out.push(v6(db8(0x99, 0x99), db8(1, 0x22), ICMPV6, &icmp6_echo(7, self.n, &p)));
                }
                _ => {
                    // Who has 2001:db8::21? From fe80::1 to its solicited-node group (hop limit 255).
                    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
                    ns.extend_from_slice(&db8(0, 0x21).to_be_bytes());
                    let (src, dst) = (ip6([0xfe80, 0, 0, 0, 0, 0, 0, 1]), ip6([0xff02, 0, 0, 0, 0, 1, 0xff00, 0x21]));
                    let mut p = ipv6(src, dst, &[], ICMPV6, &checksum6(src, dst, ICMPV6, &ns));
                    p[7] = 255;
                    out.push(F { bytes: eth([0x33, 0x33, 0xff, 0, 0, 0x21], mac6(src), 0x86dd, &p), kind: Kind::Ipv6 });
                }
            }
        }
        out
    }
}

/// The dual-stack firewall's client: its IPv4 address ...
pub const FW6_CLIENT4: u32 = ip(10, 0, 0, 7);
/// ... and its IPv6 address.
pub const FW6_CLIENT: u128 = db8(0, 7);
/// The pest by IPv4 (the dual-stack example's SrcIP) ...
pub const FW6_BAD4: u32 = ip(203, 0, 113, 9);
/// ... and by IPv6 (its SrcIP6, and the IPv6 example's SrcIP).
pub const FW6_BAD: u128 = db8(0xbad, 9);
/// The pest's neighbour, whose packets pass.
pub const FW6_NEIGHBOUR: u128 = db8(0xbad, 0x10);
/// Bursts of `firewall6.pcap`, and the pest's packets to the client in each, over IPv4 and over IPv6.
pub const FW6_BURSTS: u64 = 5;
/// The pest's packets to the client in each burst of `firewall6.pcap`: (over IPv4, over IPv6).
pub const FW6_PER_BURST: (u64, u64) = (5, 18);

fn firewall6() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x0f12_e3a6);
    let mut bg = Background::new(88);
    let mut bg6 = Background6::new(89);
    let (me4, bad4, me, bad, other) = (FW6_CLIENT4, FW6_BAD4, FW6_CLIENT, FW6_BAD, db8(0, 8));
    let mut attack = Flow::new(bad4, me4, 6666, 22, 500);
    let mut smtp = Flow6::new(bad, me, 6667, 25, 9_000);
    let mut bursts = Vec::new();
    for b in 0..FW6_BURSTS as u16 {
        let id = u32::from(b);
        let mut s = vec![
            // IPv4, 5 to drop: TCP, UDP, ICMP, a non-first fragment.
            attack.syn(),
            attack.data(&text(&mut r, 300)),
            v4(bad4, me4, UDP, &udp(4444, 53, &text(&mut r, 40))),
            v4(bad4, me4, ICMP, &icmp_echo(1, b, b"ping from a pest")),
            v4_id(bad4, me4, UDP, 300 + b, 185, &text(&mut r, 64)),
            // IPv4 near misses, forwarded.
            v4(bad4, ip(10, 0, 0, 8), UDP, &udp(4444, 53, b"not for the client")),
            v4(ip(203, 0, 113, 10), me4, UDP, &udp(4444, 53, b"another source")),
            v4(me4, bad4, UDP, &udp(53, 4444, b"the client answers")),
            // IPv6, 17 to drop: TCP to port 25, UDP, ICMPv6, behind a
            // Hop-by-Hop, a Destination Options and a Routing header, tagged ...
            smtp.syn(),
            smtp.data(b"EHLO pest.example\r\n"),
            v6(bad, me, UDP, &udp(4444, 53, &text(&mut r, 40))),
            v6(bad, me, ICMPV6, &icmp6_echo(1, b, b"ping6 from a pest")),
            v6_ext(bad, me, &[Ext::HopByHop], UDP, &udp(4444, 123, &text(&mut r, 48))),
            v6_ext(bad, me, &[Ext::DestOpts], TCP, &tcp(6668, 25, 1, 1, 0x18, b"MAIL FROM:<pest@example>\r\n")),
            v6_ext(bad, me, &[Ext::Routing(me)], UDP, &udp(4445, 161, b"source-routed")),
            vlan6(100, bad, me, UDP, &udp(4446, 161, b"tagged")),
        ];
        // ... a UDP datagram in three fragments and a TCP segment to port 25
        // in two (the first fragments hold the transport header) ...
        s.extend(fragments6(bad, me, 0x1000 + id, UDP, &udp(4447, 53, &text(&mut r, 600)), &[256, 512]));
        s.extend(fragments6(bad, me, 0x2000 + id, TCP, &tcp(6669, 25, 7, 1, 0x18, &text(&mut r, 400)), &[200]));
        // ... a TCP header cut short (the IPv6 header is whole: the pest's
        // packet all the same, without ports), a first fragment holding only
        // 8 bytes of its TCP header (RFC 7112 forbids it: no ports) and its
        // later fragment, and a later fragment whose first never came.
        s.push(cut6(bad, me, &[], TCP, &tcp(6670, 25, 1, 0, 0x02, &[]), 40 + 10, Kind::Ipv6));
        s.extend(fragments6(bad, me, 0x3000 + id, TCP, &tcp(6671, 25, 1, 1, 0x18, &text(&mut r, 100)), &[8]));
        s.push(fragment6(bad, me, 0x4000 + id, TCP, 50, false, &text(&mut r, 64)));
        // IPv6 near misses, forwarded: the pest to another host (a datagram
        // with the identification of one it sends the client too), its
        // neighbour (with the identification of the pest's TCP datagram),
        // the client's replies.
        s.push(v6(bad, other, UDP, &udp(4444, 53, b"not for the client")));
        s.extend(fragments6(bad, other, 0x1000 + id, UDP, &udp(4447, 53, &text(&mut r, 300)), &[256]));
        s.push(v6(FW6_NEIGHBOUR, me, UDP, &udp(4444, 53, b"another source")));
        s.push(v6(FW6_NEIGHBOUR, me, TCP, &tcp(6672, 25, 1, 0, 0x02, &[])));
        s.extend(fragments6(FW6_NEIGHBOUR, me, 0x2000 + id, TCP, &tcp(6673, 25, 7, 1, 0x18, &text(&mut r, 300)), &[200]));
        s.push(v6(me, bad, UDP, &udp(53, 4444, b"the client answers")));
        s.push(v6(me, bad, TCP, &tcp(25, 6667, 1, 1, 0x12, &[])));
        // IPv4-mapped addresses on an IPv6 wire: no packets of a window.
        s.push(v6(mapped(bad4), me, UDP, &udp(4444, 53, b"an IPv4-mapped source")));
        s.push(v6(bad, mapped(me4), UDP, &udp(4444, 53, b"an IPv4-mapped destination")));
        s.push(v6(mapped(bad4), mapped(me4), TCP, &tcp(6666, 22, 1, 0, 0x02, &[])));
        // Cut inside the fixed header: not parsed. Cut inside a Hop-by-Hop
        // header: the fixed header is whole, so it is the pest's packet to the
        // client all the same, without ports (SEMANTICS "IPv6": a chain that
        // stops leaves a packet, so a long or broken chain gets nothing past a
        // firewall by address).
        s.push(cut6(bad, me, &[], UDP, &udp(4444, 53, b"cut"), 30, Kind::Malformed));
        s.push(cut6(bad, me, &[Ext::HopByHop], UDP, &udp(4444, 53, b"cut"), 44, Kind::Ipv6));
        let back = weave(&mut r, bg6.burst(40), bg.burst(100));
        bursts.push(weave(&mut r, s, back));
    }
    pcap(&bursts)
}

/// The IPv6 spam filter's client (and the dual-stack client's IPv6 address).
pub const SPAM6_CLIENT: u128 = db8(0, 7);
/// The dual-stack spam filter client's IPv4 address.
pub const SPAM6_CLIENT4: u32 = ip(10, 0, 0, 7);
/// Sources (IPv4 ones IPv4-mapped) whose packets to the client in a burst
/// the spam filter drops: (source, burst, packets dropped). A later
/// fragment gets its datagram's verdict instead (`SPAM6_LATER_FRAGMENTS`).
pub const SPAMMERS6: [(u128, usize, u64); 10] = [
    (db8(5, 0x10), 0, 3),
    (mapped(ip(198, 51, 100, 20)), 0, 2),
    (db8(5, 0x11), 1, 4),
    (db8(5, 0x14), 1, 2),
    (db8(5, 0x18), 1, 3),
    (db8(5, 0x19), 1, 1),
    (db8(5, 0x11), 2, 1),
    (db8(5, 0x1a), 2, 1),
    (mapped(ip(198, 51, 100, 22)), 3, 2),
    (db8(5, 0x17), 3, 3),
];
/// Later fragments in burst 2 whose first fragment came in burst 1: (source,
/// dropped). ::19's datagram held both words (its first fragment was
/// dropped), so its later fragment is dropped although its window holds no
/// word of ::19; ::1a's first fragment passed, so its later fragment passes
/// although ::1a sends both words in burst 2.
pub const SPAM6_LATER_FRAGMENTS: [(u128, bool); 2] = [(db8(5, 0x19), true), (db8(5, 0x1a), false)];

fn spam6() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x5a4d_0006);
    let mut bg = Background::new(99);
    let mut bg6 = Background6::new(98);
    let (me, me4) = (SPAM6_CLIENT, SPAM6_CLIENT4);
    let udp_to = |src: u128, dst: u128, body: &[u8]| v6(src, dst, UDP, &udp(2525, 25, body));
    let udp4_to = |src: u32, dst: u32, body: &[u8]| v4(src, dst, UDP, &udp(2525, 25, body));
    let mut bursts = Vec::new();

    // Burst 0: ::10 has both words in one packet (3 dropped); ::12 one word;
    // ::13 both, to 2001:db8::8; 198.51.100.20 both over IPv4 (2 dropped by
    // the dual-stack filter). 198.51.100.21 sends "viagra" over IPv4 and
    // "lottery" in an IPv6 packet from and to IPv4-mapped addresses (no
    // packet of a window: nothing dropped), and both words from a mapped
    // source to the client's IPv6 address (the same).
    let mut s = vec![
        udp_to(db8(5, 0x10), me, b"hello there"),
        udp_to(db8(5, 0x10), me, b"win the lottery, buy viagra"),
        udp_to(db8(5, 0x10), me, b"bye"),
        udp4_to(ip(198, 51, 100, 20), me4, b"hello"),
        udp4_to(ip(198, 51, 100, 20), me4, b"viagra and a lottery"),
        udp4_to(ip(198, 51, 100, 21), me4, b"cheap viagra"),
        udp_to(mapped(ip(198, 51, 100, 21)), mapped(me4), b"and a lottery"),
        udp_to(mapped(ip(198, 51, 100, 21)), me, b"viagra lottery"),
        udp_to(db8(5, 0x13), db8(0, 8), b"viagra lottery"),
    ];
    let mut one = Flow6::new(db8(5, 0x12), me, 3000, 25, 10);
    s.push(one.data(b"cheap viagra here"));
    s.push(one.data(b" and nothing else"));
    let back = weave(&mut r, bg6.burst(50), bg.burst(90));
    bursts.push(weave(&mut r, s, back));

    // Burst 1: ::11 splits "viagra" across two segments (4 dropped); ::14
    // one word a packet (2); ::15 "via" and "gra" with a sequence gap (kept);
    // ::18 "lot|tery, viagra" in segments behind Destination Options headers
    // (3); ::19 the first fragment of a datagram with both words (1); ::1a
    // the first fragment of one without (kept).
    let mut split = Flow6::new(db8(5, 0x11), me, 3001, 25, 1_000);
    let mut gap = Flow6::new(db8(5, 0x15), me, 3002, 25, 5_000);
    let mut opts = Flow6::new(db8(5, 0x18), me, 3004, 25, 70_000);
    let mut s = vec![split.syn(), split.data(b"Subject: vi"), split.data(b"agra and a lottery win"), split.fin()];
    s.push(udp_to(db8(5, 0x14), me, b"viagra"));
    s.push(gap.data(b"via"));
    gap.seq += 100;
    s.push(gap.data(b"gra lottery"));
    s.push(udp_to(db8(5, 0x14), me, b"lottery"));
    s.push(opts.data_ext(&[Ext::DestOpts], b"Subject: lot"));
    s.push(opts.data_ext(&[Ext::DestOpts], b"tery"));
    s.push(opts.data_ext(&[Ext::DestOpts], b", viagra"));
    let mut words = b"win the lottery, buy viagra! ".to_vec();
    words.extend(text(&mut r, 300));
    let mut later = fragments6(db8(5, 0x19), me, 0x19_0001, UDP, &udp(2525, 25, &words), &[48]);
    let later19 = later.pop().unwrap();
    s.extend(later);
    let mut later = fragments6(db8(5, 0x1a), me, 0x1a_0001, UDP, &udp(2525, 25, &text(&mut r, 300)), &[48]);
    let later1a = later.pop().unwrap();
    s.extend(later);
    let back = weave(&mut r, bg6.burst(50), bg.burst(90));
    bursts.push(weave(&mut r, s, back));

    // Burst 2: ::16 sends "viagra" (and "lottery" in burst 3, over UDP:
    // never dropped); ::11 comes back on its connection, whose stream held
    // both words (1); the later fragments of ::19 (dropped) and of ::1a
    // (forwarded), and ::1a's both words (1).
    let s = vec![
        udp_to(db8(5, 0x16), me, b"viagra"),
        split.data(b"sorry about that"),
        later19,
        later1a,
        udp_to(db8(5, 0x1a), me, b"viagra and lottery"),
    ];
    let back = weave(&mut r, bg6.burst(50), bg.burst(90));
    bursts.push(weave(&mut r, s, back));

    // Burst 3: ::16's second word; ::17 "lot|ter|y viagra" over three
    // segments, its sequence numbers wrapping past 2^32 (3); 198.51.100.22
    // "viag|ra" over IPv4 TCP (2, dual-stack).
    let mut three = Flow6::new(db8(5, 0x17), me, 3003, 25, u32::MAX - 4);
    let mut four = Flow::new(ip(198, 51, 100, 22), me4, 3005, 25, 400);
    let s = vec![
        udp_to(db8(5, 0x16), me, b"lottery"),
        three.data(b"lot"),
        three.data(b"ter"),
        three.data(b"y viagra"),
        four.data(b"buy viag"),
        four.data(b"ra, win the lottery"),
    ];
    let back = weave(&mut r, bg6.burst(50), bg.burst(90));
    bursts.push(weave(&mut r, s, back));
    pcap(&bursts)
}

/// The IPv6 multicast broadcaster (the IPv6 example's BroadcastIP, the
/// dual-stack example's BroadcastIP6).
pub const MC6_SOURCE: u128 = db8(0x100, 7);
/// The edge router's address in its IPv6 subnet 2001:db8:1::/64.
pub const MC6_ROUTER: u128 = db8(1, 1);
/// Contents of the IPv6 broadcasts, by burst.
pub const MC6_CONTENTS: [&[&[u8]]; 3] = [
    &[b"stream 6, frame 1: the weather at noon", b"stream 6, frame 2: news at six"],
    &[b"stream 7: software update 6.0"],
    &[b"stream 8: the late show"],
];
/// Contents of the IPv4 broadcasts (198.51.100.7), by burst.
pub const MC6_CONTENTS4: [&[&[u8]]; 3] = [&[b"radio 4: the shipping forecast"], &[], &[b"radio 4: the late news"]];

/// Destinations of the IPv6 broadcasts, by burst, in sending order: burst A
/// 60 hosts of 2001:db8:1::/64, burst B 200 hosts of it with random
/// interface identifiers, burst C 100 hosts of 2001:db8:2::/64.
pub fn mc6_hosts(burst: usize) -> Vec<u128> {
    match burst {
        0 => (0..60).map(|h| db8(1, 0x100 + h)).collect(),
        1 => {
            let mut r = Rng(0x5eed_0006);
            (0..200).map(|_| db8(1, r.next() | 1 << 60)).collect()
        }
        _ => (0..100).map(|h| db8(2, 0x100 + h)).collect(),
    }
}

/// Destinations of the IPv4 broadcasts, by burst: 40 hosts of 10.0.0.0/24,
/// none, 50 hosts of 10.0.1.0/24.
pub fn mc6_hosts4(burst: usize) -> Vec<u32> {
    match burst {
        0 => (100..140).map(|h| ip(10, 0, 0, h)).collect(),
        1 => Vec::new(),
        _ => (1..51).map(|h| ip(10, 0, 1, h)).collect(),
    }
}

fn multicast6() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x3c3c_0006);
    let mut bg = Background::new(110);
    let mut bg6 = Background6::new(111);
    let mut bursts = Vec::new();
    for b in 0..3 {
        let mut s = Vec::new();
        for c in MC6_CONTENTS[b].iter() {
            for &h in &mc6_hosts(b) {
                s.push(v6(MC6_SOURCE, h, UDP, &udp(5004, 5004, c)));
            }
        }
        for c in MC6_CONTENTS4[b].iter() {
            for &h in &mc6_hosts4(b) {
                s.push(v4(MC_SOURCE, h, UDP, &udp(5004, 5004, c)));
            }
        }
        // Near misses: the broadcaster to a host outside the subnets, another
        // source to a broadcast host, the IPv4 broadcaster's address
        // IPv4-mapped on an IPv6 wire (no packet of a window), and the IPv4
        // broadcaster outside 10.0.0.0/24.
        let first = MC6_CONTENTS[b][0];
        s.push(v6(MC6_SOURCE, db8(0xffff, 0x50), UDP, &udp(5004, 5004, first)));
        s.push(v6(db8(0x100, 8), db8(1, 0x100), UDP, &udp(5004, 5004, first)));
        s.push(v6(mapped(MC_SOURCE), db8(1, 0x101), UDP, &udp(5004, 5004, first)));
        s.push(v4(MC_SOURCE, ip(192, 0, 2, 50), UDP, &udp(5004, 5004, first)));
        let (n4, n6) = if b == 1 { (16, 10) } else { (30, 30) };
        let back = weave(&mut r, bg6.burst(n6), bg.burst(n4));
        bursts.push(weave(&mut r, s, back));
    }
    pcap(&bursts)
}

/// The IPv6 worm blocker's subnet, 2001:db8:1::/64.
pub const WORM6_SUBNET: (u128, u32) = (db8(1, 0), 64);
/// Scanners (IPv4 ones IPv4-mapped) whose packets into the subnet in a burst
/// are all dropped: (source, burst, packets).
pub const WORMS6: [(u128, usize, u64); 5] = [
    (db8(0xbad, 0x50), 0, 20),
    (db8(0xbad, 0x52), 0, 12),
    (mapped(ip(203, 0, 113, 50)), 0, 20),
    (db8(0xbad, 0x56), 1, 20),
    (db8(0xbad, 0x55), 2, 40),
];

/// A host of 2001:db8:1::/64 with a random interface identifier.
fn host6(r: &mut Rng) -> u128 {
    db8(1, r.next() | 1 << 61)
}

fn worm6() -> (Vec<u8>, Facts) {
    let mut r = Rng(0x0bad_f006);
    let mut bg = Background::new(121);
    let mut bg6 = Background6::new(122);
    let syn = |src: u128, dst: u128, seq: u32| v6(src, dst, TCP, &tcp(31_337, 445, seq, 0, 0x02, &[]));
    let syn4 = |src: u32, dst: u32, seq: u32| v4(src, dst, TCP, &tcp(31_337, 445, seq, 0, 0x02, &[]));
    let mut bursts = Vec::new();

    // Burst 0: ::50 probes 20 hosts; ::51 exactly 8 (12 packets); ::52 9
    // hosts (12 packets); over IPv4, 203.0.113.50 probes 20 hosts of
    // 10.0.0.0/24 and .51 exactly 8 (12 packets).
    let mut s = Vec::new();
    for h in 0..20u32 {
        s.push(syn(db8(0xbad, 0x50), host6(&mut r), h));
    }
    let eight: Vec<u128> = (0..8).map(|_| host6(&mut r)).collect();
    let nine: Vec<u128> = (0..9).map(|_| host6(&mut r)).collect();
    for h in 0..12u32 {
        s.push(syn(db8(0xbad, 0x51), eight[h as usize % 8], h));
        s.push(syn(db8(0xbad, 0x52), nine[h as usize % 9], h));
    }
    for h in 0..20u8 {
        s.push(syn4(ip(203, 0, 113, 50), ip(10, 0, 0, 100 + h), u32::from(h)));
    }
    for h in 0..12u8 {
        s.push(syn4(ip(203, 0, 113, 51), ip(10, 0, 0, 130 + h % 8), u32::from(h)));
    }
    let back = weave(&mut r, bg6.burst(40), bg.burst(80));
    bursts.push(weave(&mut r, s, back));

    // Bursts 1 and 2: ::53 probes 6 hosts in each (12 in all, never more
    // than 8 in one window). Burst 1: ::54 probes 30 hosts of which 5 in the
    // subnet; ::56 sends 10 UDP datagrams to 10 hosts, each in two fragments
    // (20 dropped); IPv4-mapped ::ffff:203.0.113.57 "probes" 20 hosts (no
    // packets of a window). Burst 2: ::55 sweeps 40 hosts with ICMPv6 echo,
    // and 5 outside the subnet.
    for b in 0..2u32 {
        let mut s = Vec::new();
        for h in 0..6u32 {
            s.push(syn(db8(0xbad, 0x53), host6(&mut r), 10 * b + h));
        }
        if b == 0 {
            for h in 0..30u32 {
                let dst = if h % 6 == 0 { host6(&mut r) } else { db8(2, u64::from(h)) };
                s.push(syn(db8(0xbad, 0x54), dst, h));
            }
            for h in 0..10u16 {
                let dst = host6(&mut r);
                s.extend(fragments6(db8(0xbad, 0x56), dst, 0x5600 + u32::from(h), UDP, &udp(31_338 + h, 445, &text(&mut r, 200)), &[104]));
            }
            for h in 0..20u32 {
                s.push(syn(mapped(ip(203, 0, 113, 57)), host6(&mut r), h));
            }
        } else {
            for h in 0..40u16 {
                s.push(v6(db8(0xbad, 0x55), host6(&mut r), ICMPV6, &icmp6_echo(9, h, b"are you there")));
            }
            for h in 0..5u16 {
                s.push(v6(db8(0xbad, 0x55), db8(2, u64::from(h)), ICMPV6, &icmp6_echo(9, h, b"are you there")));
            }
        }
        let back = weave(&mut r, bg6.burst(40), bg.burst(80));
        bursts.push(weave(&mut r, s, back));
    }
    pcap(&bursts)
}

/// Every shipped capture: file name, bytes and facts.
pub fn captures() -> Vec<(&'static str, Vec<u8>, Facts)> {
    let mut v = Vec::new();
    for (name, (bytes, facts)) in [
        ("firewall.pcap", firewall()),
        ("spam.pcap", spam()),
        ("multicast.pcap", multicast()),
        ("worm.pcap", worm()),
        ("ports.pcap", ports()),
        ("amplification.pcap", amplification()),
        ("synworm.pcap", synworm()),
        ("firewall6.pcap", firewall6()),
        ("spam6.pcap", spam6()),
        ("multicast6.pcap", multicast6()),
        ("worm6.pcap", worm6()),
    ] {
        v.push((name, bytes, facts));
    }
    v
}

fn main() {
    let dir = std::env::args().nth(1).map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/traffic"), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("create the output directory");
    for (name, bytes, facts) in captures() {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        println!(
            "{}: {} frames ({} IPv4, {} IPv6, {} not IP, {} malformed), {} bytes",
            path.display(),
            facts.frames,
            facts.ipv4,
            facts.ipv6,
            facts.not_ip,
            facts.malformed,
            bytes.len()
        );
    }
}
