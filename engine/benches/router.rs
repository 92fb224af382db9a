//! The router's benchmark: every figure of `benchmarks/runtime.md`, measured
//! in one run over one in-memory replay buffer.
//!
//! ```text
//! cargo bench -p vinet-engine --bench router                 # full run, ~1M frames
//! cargo bench -p vinet-engine --bench router -- --frames 200000 --reps 3   # quicker
//! cargo bench -p vinet-engine --bench router -- --test       # smoke run: every figure, small, once
//! ```
//!
//! - **The buffer**: `--frames` Ethernet frames (default 2^20) of a realistic
//!   mix, built once: IPv4 TCP (acks, full-size and mid-size segments), UDP
//!   (DNS-sized and QUIC-sized), ICMP, 802.1Q-tagged IPv4, IPv6, ARP and
//!   malformed frames. Every IPv4 packet is addressed to a client (every
//!   packet meets a program: the hardest case for the router); for each
//!   configuration of installed clients the destination addresses are
//!   rewritten in place, untimed, so that the traffic spreads over all the
//!   clients or concentrates on 16 of them. Frames and sizes never change.
//! - **Decision stage** (`dst == X && src == Y => drop` over packets already
//!   parsed): the vinet VM running the checked firewall over each window's
//!   columns; the same filter as an eBPF program in rbpf, interpreted and
//!   JIT-compiled, called once per packet on its (src, dst) record; a
//!   hand-written Rust loop over the columns (the physical limit). Beside
//!   it the port firewall (`examples/port_firewall.vinet`: `dst == X && src
//!   == Y && TCP && dport == P => drop`, P the buffer's TCP destination
//!   port), the same peers on (src, dst, dport, protocol, has-ports)
//!   records, when its bundle has been proved
//!   (`benches/fixtures/port_firewall.vpc`).
//! - **End to end** from raw frames (`Runner::push_slab`: parse, window,
//!   dispatch, run, verdicts) with 1, 1,000 and 100,000 installed firewalls
//!   for distinct clients, traffic spread over all of them and concentrated
//!   on 16; and the memory an installation costs, counted by a global
//!   allocator that tracks live heap bytes.
//! - **End to end, IPv6** in the same run: a second buffer of the same size
//!   and shape whose packets are IPv6 (TCP and UDP of the same sizes, one in
//!   ten behind a Destination Options header, UDP datagrams fragmented in
//!   two, 802.1Q-tagged IPv6, some IPv4, ARP and malformed frames), every
//!   IPv6 packet addressed to an IPv6 client, the same programs installed
//!   for 1, 1,000 and 100,000 IPv6 clients (SrcIP an IPv6 address).
//!
//! Each figure is the median of `--reps` passes over the whole buffer.
//! Allocations of 4 MiB and more (the buffer, the dispatch table's arrays
//! with many clients) are mapped on 2 MiB pages, as capture rings and XDP
//! memory are, and as a router host with transparent huge pages would give
//! the table; `--no-huge-pages` measures on 4 KiB pages.

// The benchmark's allocator maps its large buffers on huge pages (libc).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vinet_checker::bytecode::Const;
use vinet_checker::cert::LemmaCache;
use vinet_checker::{check, mapped, Checked};
use vinet_engine::packet::LinkType;
use vinet_engine::pcap::Frame;
use vinet_engine::runner::{NullSink, Runner};
use vinet_engine::vm::{Binding, Machine, Program, This};
use vinet_engine::window::{ColumnSlices, View, WindowConfig};

/// Live heap bytes, for memory per installation.
/// Counting is switched on only while programs are installed, so that it
/// costs the timed passes nothing.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static COUNT: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNT.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

/// Allocations of this size and more get their own mapping on 2 MiB pages
/// (the replay buffer, and the dispatch table's arrays with many clients),
/// as on a router host with transparent huge pages on.
const HUGE: usize = 4 << 20;
const PAGE2M: usize = 2 << 20;
/// Off with `--no-huge-pages`; set once, before any large allocation.
static HUGE_ON: AtomicBool = AtomicBool::new(true);

fn huge(size: usize, align: usize) -> bool {
    cfg!(target_os = "linux") && size >= HUGE && align <= PAGE2M && HUGE_ON.load(Ordering::Relaxed)
}

#[cfg(target_os = "linux")]
unsafe fn huge_alloc(size: usize) -> *mut u8 {
    let len = size.div_ceil(PAGE2M) * PAGE2M;
    // Map one extra huge page so that the block can start on a 2 MiB
    // boundary; the slack before it is unmapped.
    // SAFETY: an anonymous private mapping; checked for failure.
    unsafe {
        let raw = libc::mmap(
            std::ptr::null_mut(),
            len + PAGE2M,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let start = raw as usize;
        let aligned = (start + PAGE2M - 1) & !(PAGE2M - 1);
        if aligned > start {
            libc::munmap(raw, aligned - start);
        }
        let tail = start + len + PAGE2M - (aligned + len);
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        aligned as *mut u8
    }
}

// SAFETY: small blocks are the system allocator's; large ones are whole
// mappings of their own (aligned to 2 MiB, so to any `Layout` alignment up
// to that), unmapped on free, copied on resize.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        #[cfg(target_os = "linux")]
        if huge(l.size(), l.align()) {
            return unsafe { huge_alloc(l.size()) };
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        #[cfg(target_os = "linux")]
        if huge(l.size(), l.align()) {
            unsafe { libc::munmap(p.cast(), l.size().div_ceil(PAGE2M) * PAGE2M) };
            return;
        }
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize);
        let (was_huge, to_huge) = (huge(l.size(), l.align()), huge(new, l.align()));
        #[cfg(target_os = "linux")]
        if was_huge || to_huge {
            // SAFETY: a new block of the new size, the old contents copied,
            // the old block freed; counted once (above).
            unsafe {
                let nl = Layout::from_size_align_unchecked(new, l.align());
                let q = if to_huge { huge_alloc(new) } else { System.alloc(nl) };
                if q.is_null() {
                    return q;
                }
                std::ptr::copy_nonoverlapping(p, q, l.size().min(new));
                if was_huge {
                    libc::munmap(p.cast(), l.size().div_ceil(PAGE2M) * PAGE2M);
                } else {
                    System.dealloc(p, l);
                }
                return q;
            }
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The client every decision-stage packet is checked against, and the pest.
const BAD: u32 = 0xcb00_7109; // 203.0.113.9
/// Clients are BASE + k.
const BASE: u32 = 0x0a00_0000; // 10.0.0.0
/// The IPv6 pest: 2001:db8:bad::9.
const BAD6: u128 = 0x2001_0db8_0bad_0000_0000_0000_0000_0009;
/// IPv6 clients are BASE6 + k: 2001:db8:c000::/48.
const BASE6: u128 = 0x2001_0db8_c000 << 80;

/// The family of a buffer's client traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

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

/// One frame of the buffer.
#[derive(Clone, Copy)]
struct Rec {
    off: u32,
    len: u32,
    ts_ns: u64,
    /// Offset of the destination address in the buffer of a packet to a
    /// client (4 bytes in the IPv4 buffer, 16 in the IPv6 one).
    dst_at: Option<u32>,
    /// A random number choosing the frame's client in each configuration.
    pick: u32,
}

struct Buffer {
    bytes: Vec<u8>,
    recs: Vec<Rec>,
    /// Packets to clients.
    ipv4: usize,
    mix: String,
    family: Family,
}

fn ipv4_packet(r: &mut Rng, src: u32, proto: u8, payload: usize) -> Vec<u8> {
    let l4 = match proto {
        6 => 20,
        17 => 8,
        _ => 8,
    };
    let total = 20 + l4 + payload;
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, proto, 0, 0]);
    v.extend_from_slice(&src.to_be_bytes());
    v.extend_from_slice(&BASE.to_be_bytes());
    match proto {
        6 => {
            let seq = r.next() as u32;
            v.extend_from_slice(&[0x01, 0xbb, 0xc3, 0x50]);
            v.extend_from_slice(&seq.to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        }
        17 => {
            let len = (8 + payload) as u16;
            v.extend_from_slice(&[0xd4, 0x31, 0x01, 0xbb]);
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&[0, 0]);
        }
        _ => v.extend_from_slice(&[8, 0, 0, 0, 0, 7, 0, 1]),
    }
    let start = v.len();
    v.resize(start + payload, 0);
    const TEXT: &[u8] = b"GET /index.html HTTP/1.1 host: example.com accept: */* ";
    for (i, b) in v[start..].iter_mut().enumerate() {
        *b = TEXT[i % TEXT.len()];
    }
    v
}

/// An IPv6 packet from `src` to BASE6: TCP (the same header as
/// `ipv4_packet`'s), UDP or ICMPv6, behind a Destination Options header when
/// `opts`; the payload as `ipv4_packet`'s.
fn ipv6_packet(r: &mut Rng, src: u128, proto: u8, payload: usize, opts: bool) -> Vec<u8> {
    let v4 = ipv4_packet(r, 0, if proto == 58 { 1 } else { proto }, payload);
    let mut l4 = v4[20..].to_vec();
    if proto == 58 {
        l4[0] = 128; // echo request
    }
    let (next, ext) = if opts { (60u8, vec![proto, 0, 1, 4, 0, 0, 0, 0]) } else { (proto, vec![]) };
    let plen = (ext.len() + l4.len()) as u16;
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&plen.to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    v.extend_from_slice(&src.to_be_bytes());
    v.extend_from_slice(&BASE6.to_be_bytes());
    v.extend_from_slice(&ext);
    v.extend_from_slice(&l4);
    v
}

/// The two fragments of an IPv6 UDP datagram from `src` to BASE6 of
/// `payload` bytes: the first holding the UDP header and 1,232 bytes, the
/// last the rest (RFC 8200: offsets in 8-byte units).
fn ipv6_fragments(r: &mut Rng, src: u128, payload: usize) -> [Vec<u8>; 2] {
    let v4 = ipv4_packet(r, 0, 17, payload);
    let udp = &v4[20..];
    let cut = 1240.min(udp.len() - 8) & !7;
    let id = r.next() as u32;
    [(0u16, true, &udp[..cut]), ((cut / 8) as u16, false, &udp[cut..])].map(|(offset, more, data)| {
        let plen = (8 + data.len()) as u16;
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&plen.to_be_bytes());
        v.extend_from_slice(&[44, 64]);
        v.extend_from_slice(&src.to_be_bytes());
        v.extend_from_slice(&BASE6.to_be_bytes());
        v.extend_from_slice(&[17, 0]);
        v.extend_from_slice(&(offset << 3 | u16::from(more)).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(data);
        v
    })
}

impl Buffer {
    /// The IPv6 counterpart of [`Buffer::build`] (shares by frame count):
    /// IPv6 86% (TCP 62 with [`Buffer::build`]'s sizes, UDP 20 of them a
    /// quarter 2,400-byte datagrams in two fragments, ICMPv6 4; one in ten
    /// of the unfragmented behind a Destination Options header), 802.1Q-tagged
    /// IPv6 3%, IPv4 7% (to no client), ARP 3%, malformed 1%. Every IPv6
    /// packet is addressed to a client.
    fn build_v6(frames: usize) -> Buffer {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let mut bytes: Vec<u8> = Vec::with_capacity(frames * 700);
        let mut recs = Vec::with_capacity(frames);
        let (mut ipv6, mut fragments, mut with_opts) = (0, 0, 0);
        let sources: Vec<u128> = (0..10_000).map(|_| 0x2001_0db8_5000 << 80 | u128::from(r.next())).collect();
        let eth = |bytes: &mut Vec<u8>, ty: u16| {
            bytes.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
            bytes.extend_from_slice(&ty.to_be_bytes());
        };
        let mut i = 0;
        while i < frames {
            let ts = |i: usize| 1_700_000_000_000_000_000 + i as u64 * 50;
            let src = if r.below(16) == 0 { BAD6 } else { sources[r.below(sources.len() as u64) as usize] };
            let push = |bytes: &mut Vec<u8>, recs: &mut Vec<Rec>, off: usize, dst_at: Option<u32>, r: &mut Rng, i: usize| {
                let len = (bytes.len() - off) as u32;
                recs.push(Rec { off: off as u32, len, ts_ns: ts(i), dst_at, pick: r.next() as u32 });
            };
            let off = bytes.len();
            let roll = r.below(100);
            match roll {
                0..=85 => {
                    let (proto, payload) = match r.below(86) {
                        0..=61 => (
                            6,
                            match r.below(100) {
                                0..=44 => 0,
                                45..=74 => 1440,
                                _ => 100 + r.below(900) as usize,
                            },
                        ),
                        62..=81 => (17, if r.below(2) == 0 { 40 + r.below(160) as usize } else { 1200 + r.below(150) as usize }),
                        _ => (58, 56),
                    };
                    if proto == 17 && r.below(4) == 0 && i + 1 < frames {
                        // A datagram in two fragments, one client's, one after the other.
                        let pick = r.next() as u32;
                        for (k, f) in ipv6_fragments(&mut r, src, 2400).into_iter().enumerate() {
                            let off = bytes.len();
                            eth(&mut bytes, 0x86dd);
                            let dst_at = Some(bytes.len() as u32 + 24);
                            bytes.extend_from_slice(&f);
                            recs.push(Rec { off: off as u32, len: (bytes.len() - off) as u32, ts_ns: ts(i + k), dst_at, pick });
                        }
                        (ipv6, fragments, i) = (ipv6 + 2, fragments + 2, i + 2);
                        continue;
                    }
                    let opts = r.below(10) == 0;
                    with_opts += usize::from(opts);
                    eth(&mut bytes, 0x86dd);
                    let dst_at = Some(bytes.len() as u32 + 24);
                    bytes.extend_from_slice(&ipv6_packet(&mut r, src, proto, payload, opts));
                    push(&mut bytes, &mut recs, off, dst_at, &mut r, i);
                    ipv6 += 1;
                }
                86..=88 => {
                    eth(&mut bytes, 0x8100);
                    bytes.extend_from_slice(&[0, 42, 0x86, 0xdd]);
                    let dst_at = Some(bytes.len() as u32 + 24);
                    let payload = r.below(600) as usize;
                    bytes.extend_from_slice(&ipv6_packet(&mut r, src, 17, payload, false));
                    push(&mut bytes, &mut recs, off, dst_at, &mut r, i);
                    ipv6 += 1;
                }
                89..=95 => {
                    eth(&mut bytes, 0x0800);
                    let payload = if r.below(2) == 0 { 0 } else { 1200 };
                    bytes.extend_from_slice(&ipv4_packet(&mut r, 0xc000_0201, 6, payload));
                    push(&mut bytes, &mut recs, off, None, &mut r, i);
                }
                96..=98 => {
                    eth(&mut bytes, 0x0806);
                    bytes.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
                    bytes.extend_from_slice(&[0; 18]);
                    push(&mut bytes, &mut recs, off, None, &mut r, i);
                }
                _ => {
                    if r.below(2) == 0 {
                        bytes.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0]);
                    } else {
                        eth(&mut bytes, 0x86dd);
                        bytes.extend_from_slice(&[0x60, 0, 0, 0, 0, 40, 6, 64]);
                    }
                    push(&mut bytes, &mut recs, off, None, &mut r, i);
                }
            }
            i += 1;
        }
        let avg = bytes.len() / frames.max(1);
        let mix = format!(
            "{frames} frames, {} MB, {avg} bytes a frame on average; {ipv6} IPv6 ({:.0}%: {fragments} of them fragments, {with_opts} behind \
             Destination Options, 3 points 802.1Q-tagged), the rest IPv4, ARP and malformed",
            bytes.len() >> 20,
            100.0 * ipv6 as f64 / frames as f64
        );
        Buffer { bytes, recs, ipv4: ipv6, mix, family: Family::V6 }
    }

    /// A realistic mix (shares by frame count): IPv4 86% (TCP 62: 45% acks,
    /// 30% full 1,460-byte segments, 25% 100..1,000 bytes; UDP 20: DNS-sized
    /// and QUIC-sized; ICMP 4), 802.1Q-tagged IPv4 3%, IPv6 7%, ARP 3%,
    /// malformed 1%.
    fn build(frames: usize) -> Buffer {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut bytes: Vec<u8> = Vec::with_capacity(frames * 700);
        let mut recs = Vec::with_capacity(frames);
        let mut ipv4 = 0;
        let sources: Vec<u32> = (0..10_000).map(|_| 0xc000_0000 | (r.next() as u32 & 0x00ff_ffff)).collect();
        for i in 0..frames {
            let off = bytes.len() as u32;
            let roll = r.below(100);
            let mut dst_at = None;
            let ts_ns = 1_700_000_000_000_000_000 + i as u64 * 50; // 20 Mpps of capture time
            let src = if r.below(16) == 0 { BAD } else { sources[r.below(sources.len() as u64) as usize] };
            let eth = |bytes: &mut Vec<u8>, ty: u16| {
                bytes.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
                bytes.extend_from_slice(&ty.to_be_bytes());
            };
            match roll {
                0..=85 => {
                    let (proto, payload) = match r.below(86) {
                        0..=61 => (
                            6,
                            match r.below(100) {
                                0..=44 => 0,
                                45..=74 => 1460,
                                _ => 100 + r.below(900) as usize,
                            },
                        ),
                        62..=81 => (17, if r.below(2) == 0 { 40 + r.below(160) as usize } else { 1200 + r.below(150) as usize }),
                        _ => (1, 56),
                    };
                    eth(&mut bytes, 0x0800);
                    dst_at = Some(bytes.len() as u32 + 16);
                    bytes.extend_from_slice(&ipv4_packet(&mut r, src, proto, payload));
                    ipv4 += 1;
                }
                86..=88 => {
                    eth(&mut bytes, 0x8100);
                    bytes.extend_from_slice(&[0, 42, 0x08, 0x00]);
                    dst_at = Some(bytes.len() as u32 + 16);
                    let payload = r.below(600) as usize;
                    bytes.extend_from_slice(&ipv4_packet(&mut r, src, 17, payload));
                    ipv4 += 1;
                }
                89..=95 => {
                    eth(&mut bytes, 0x86dd);
                    let payload = if r.below(2) == 0 { 0 } else { 1200 };
                    let plen = (20 + payload) as u16;
                    bytes.extend_from_slice(&[0x60, 0, 0, 0]);
                    bytes.extend_from_slice(&plen.to_be_bytes());
                    bytes.extend_from_slice(&[6, 64]);
                    bytes.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
                    bytes.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
                    bytes.extend(std::iter::repeat_n(0x11u8, 20 + payload));
                }
                96..=98 => {
                    eth(&mut bytes, 0x0806);
                    bytes.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
                    bytes.extend_from_slice(&[0; 18]);
                }
                _ => {
                    if r.below(2) == 0 {
                        bytes.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0]);
                    } else {
                        eth(&mut bytes, 0x0800);
                        bytes.extend_from_slice(&[0x45, 0, 0, 40, 0, 0]);
                    }
                }
            }
            let len = bytes.len() as u32 - off;
            recs.push(Rec { off, len, ts_ns, dst_at, pick: r.next() as u32 });
        }
        let avg = bytes.len() / frames.max(1);
        let mix = format!(
            "{frames} frames, {} MB, {avg} bytes a frame on average; {ipv4} IPv4 ({:.0}%, 3 points of them 802.1Q-tagged), the rest IPv6, ARP and malformed",
            bytes.len() >> 20,
            100.0 * ipv4 as f64 / frames as f64
        );
        Buffer { bytes, recs, ipv4, mix, family: Family::V4 }
    }

    /// Address every packet to a client to one of `clients` clients (BASE +
    /// k, or BASE6 + k).
    fn retarget(&mut self, clients: u32) {
        for rec in &self.recs {
            if let Some(at) = rec.dst_at {
                let k = rec.pick % clients.max(1);
                let at = at as usize;
                match self.family {
                    Family::V4 => self.bytes[at..at + 4].copy_from_slice(&(BASE + k).to_be_bytes()),
                    Family::V6 => self.bytes[at..at + 16].copy_from_slice(&(BASE6 + u128::from(k)).to_be_bytes()),
                }
            }
        }
    }

    /// Client `k`'s address.
    fn client(&self, k: u32) -> u128 {
        match self.family {
            Family::V4 => mapped(BASE + k),
            Family::V6 => BASE6 + u128::from(k),
        }
    }

    fn frames(&self) -> impl Iterator<Item = Frame<'_>> + '_ {
        self.recs.iter().map(|r| Frame {
            link: LinkType::Ethernet,
            ts_ns: r.ts_ns,
            orig_len: r.len,
            data: &self.bytes[r.off as usize..(r.off + r.len) as usize],
        })
    }
}

/// 64 lanes of 0 or 1 as a bit mask (lane j is bit j), eight lanes a multiply.
fn lane_bits(lanes: &[u8; 64]) -> u64 {
    let mut b = 0u64;
    for (j, e) in lanes.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
        b |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * j);
    }
    b
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time of `reps` calls of `f`, in seconds; `f` returns a
/// checksum that must not change between calls.
fn time(reps: usize, mut f: impl FnMut() -> u64) -> (f64, u64) {
    let want = f(); // warm-up
    let mut t = Vec::new();
    for _ in 0..reps {
        let s = Instant::now();
        let got = black_box(f());
        t.push(s.elapsed().as_secs_f64());
        assert_eq!(got, want, "a pass changed its answer");
    }
    (median(t), want)
}

struct Fixtures {
    firewall: Checked,
    /// `examples/port_firewall.vinet`, if its bundle has been proved
    /// (`benches/fixtures/port_firewall.vpc`, by regenerate.sh).
    port_firewall: Option<Checked>,
}

fn fixtures() -> Fixtures {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/fixtures");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut cache = LemmaCache::new();
    let lib = std::fs::read(format!("{dir}/lemmas.lib")).expect("benches/fixtures/lemmas.lib (run benches/fixtures/regenerate.sh)");
    cache.admit_library(&lib).expect("lemma library accepted (else run benches/fixtures/regenerate.sh)");
    let user = vinet_engine::policy_file::load(format!("{root}/examples/policies/end-user.toml")).expect("end-user policy");
    let bundle = std::fs::read(format!("{dir}/firewall.vpc")).expect("firewall.vpc");
    let firewall = check(&bundle, &user, &cache).expect("firewall.vpc accepted (else run benches/fixtures/regenerate.sh)");
    let port_firewall = std::fs::read(format!("{dir}/port_firewall.vpc"))
        .ok()
        .map(|bundle| check(&bundle, &user, &cache).expect("port_firewall.vpc accepted (else run benches/fixtures/regenerate.sh)"));
    Fixtures { firewall, port_firewall }
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cores} cores visible, one used")
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--no-huge-pages") {
        HUGE_ON.store(false, Ordering::Relaxed);
    }
    // `--test` (what `cargo bench -- --test` passes): a smoke run of every figure, small and once.
    let smoke = std::env::args().any(|a| a == "--test");
    let frames = arg("--frames", if smoke { 1 << 14 } else { 1 << 20 });
    let reps = arg("--reps", if smoke { 1 } else { 7 });
    let fx = fixtures();
    let t0 = Instant::now();
    let mut buf = Buffer::build(frames);
    println!("# vinet runtime benchmark\n");
    println!("- machine: {}", cpu_model());
    println!("- buffer: {} (built in {:.1} s)", buf.mix, t0.elapsed().as_secs_f64());
    let huge = if std::env::args().any(|a| a == "--no-huge-pages") {
        "4 KiB pages (--no-huge-pages)"
    } else {
        "allocations of 4 MiB and more on 2 MiB pages (madvise)"
    };
    println!("- buffer memory: {huge}");
    println!("- each figure: median of {reps} passes over the whole buffer\n");

    // `--clients N` profiles one end-to-end configuration alone.
    let only = arg("--clients", 0);
    if std::env::args().any(|a| a == "--decision-only") {
        decision_stage(&mut buf, &fx, reps);
        port_decision_stage(&mut buf, &fx, reps);
    } else if only == 0 {
        decision_stage(&mut buf, &fx, reps);
        port_decision_stage(&mut buf, &fx, reps);
        end_to_end(&mut buf, &fx, reps, &[1, 1000, 100_000]);
        drop(buf);
        let mut buf6 = build_v6(frames);
        end_to_end(&mut buf6, &fx, reps, &[1, 1000, 100_000]);
    } else {
        end_to_end(&mut buf, &fx, reps, &[only as u32]);
        drop(buf);
        end_to_end(&mut build_v6(frames), &fx, reps, &[only as u32]);
    }
}

/// The IPv6 buffer, built after the IPv4 one is dropped (they are the same size).
fn build_v6(frames: usize) -> Buffer {
    let t0 = Instant::now();
    let buf = Buffer::build_v6(frames);
    println!("- IPv6 buffer: {} (built in {:.1} s)\n", buf.mix, t0.elapsed().as_secs_f64());
    buf
}

/// (a) The decision `dst == X && src == Y => drop` over parsed packets.
fn decision_stage(buf: &mut Buffer, fx: &Fixtures, reps: usize) {
    const X: u32 = BASE + 7;
    buf.retarget(1000);
    // Parsed columns of every IPv4 packet (128-bit, IPv4-mapped, as the engine holds them).
    let (mut src, mut dst) = (Vec::with_capacity(buf.ipv4), Vec::with_capacity(buf.ipv4));
    for f in buf.frames() {
        if let vinet_engine::packet::Parsed::Packet(p) = vinet_engine::packet::parse_frame(f.link, f.data) {
            src.push(p.src);
            dst.push(p.dst);
        }
    }
    let (bad, x) = (mapped(BAD), mapped(X));
    let n = src.len();
    let w = fx.firewall.policy().window_packets as usize;

    // Native: the physical limit. The same output as the VM's (a drop
    // bitmap per window), written to vectorize: one byte lane per packet,
    // packed eight lanes at a time.
    let native = || {
        let mut drops = 0u64;
        let mut bits = [0u64; 4];
        for (s, d) in src.chunks(w).zip(dst.chunks(w)) {
            for (k, (s, d)) in s.chunks(64).zip(d.chunks(64)).enumerate() {
                let mut lanes = [0u8; 64];
                for (o, (&s, &d)) in lanes.iter_mut().zip(s.iter().zip(d)) {
                    *o = u8::from(s == bad) & u8::from(d == x);
                }
                let b = lane_bits(&lanes);
                bits[k] = b;
            }
            drops += bits.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
            black_box(&bits);
        }
        drops
    };

    // The VM: the checked firewall (THIS_IP = X, SrcIP = BAD) run once per
    // window of W packets, over views of the same columns (the other
    // columns zero: the decision reads no payload).
    let zeros32 = vec![0u32; n];
    let (zeros16, zeros8, falses) = (vec![0u16; n], vec![0u8; n], vec![false; n]);
    let origin: Vec<u32> = (0..n as u32).collect();
    let views: Vec<View<'_>> = (0..n)
        .step_by(w)
        .map(|a| {
            let b = (a + w).min(n);
            View::from_columns(ColumnSlices {
                src: &src[a..b],
                dst: &dst[a..b],
                proto: &zeros8[a..b],
                sport: &zeros16[a..b],
                dport: &zeros16[a..b],
                has_ports: &falses[a..b],
                tcp_flags: &zeros8[a..b],
                seq: &zeros32[a..b],
                pay_off: &zeros32[a..b],
                pay_len: &zeros32[a..b],
                origin: &origin[a..b],
                bytes: &[],
            })
            .expect("columns of one length")
        })
        .collect();
    let program = Arc::new(Program::new(&fx.firewall));
    let inst = program.instantiate(&[Const::Addr(BAD)]).expect("bind");
    let this = This::end_user(x);
    let mut m = Machine::new();
    let mut vm = || views.iter().map(|v| u64::from(inst.run(this, *v, &mut m).expect("no fault").dropped)).sum::<u64>();
    let mut mi = Machine::new();
    mi.set_interpret_only(true);
    let mut interpreted = || views.iter().map(|v| u64::from(inst.run(this, *v, &mut mi).expect("no fault").dropped)).sum::<u64>();

    // eBPF: the same filter, by hand, on an 8-byte (src, dst) record.
    let asm = format!(
        "ldxw r2, [r1]\nldxw r3, [r1+4]\nlddw r4, {BAD:#x}\nlddw r5, {X:#x}\nmov64 r0, 0\njne r2, r4, +2\njne r3, r5, +1\nmov64 r0, 1\nexit"
    );
    let prog = rbpf::assembler::assemble(&asm).expect("assemble");
    // (The IPv4 addresses: eBPF registers are 64-bit.)
    let mut records: Vec<u8> =
        src.iter().zip(&dst).flat_map(|(&s, &d)| [(s as u32).to_ne_bytes(), (d as u32).to_ne_bytes()].concat()).collect();
    let ebpf = rbpf::EbpfVmRaw::new(Some(&prog)).expect("rbpf vm");
    let interp = |records: &mut [u8]| records.chunks_exact_mut(8).map(|r| ebpf.execute_program(r).expect("runs")).sum::<u64>();
    let (t_interp, d_interp) = time(reps.min(3), || interp(&mut records));
    let mut jit = rbpf::EbpfVmRaw::new(Some(&prog)).expect("rbpf vm");
    jit.jit_compile().expect("jit");
    // SAFETY: the program reads 8 bytes at r1 and each record is 8 bytes.
    let run_jit =
        |records: &mut [u8]| records.chunks_exact_mut(8).map(|r| unsafe { jit.execute_program_jit(r) }.expect("runs")).sum::<u64>();
    let (t_jit, d_jit) = time(reps, || run_jit(&mut records));
    let (t_native, d_native) = time(reps, native);
    let (t_vm, d_vm) = time(reps, &mut vm);
    let (t_vmi, d_vmi) = time(reps, &mut interpreted);
    assert!(d_native > 0);
    assert_eq!((d_vm, d_vmi, d_jit, d_interp), (d_native, d_native, d_native, d_native), "every peer drops the same packets");

    let mpps = |t: f64| n as f64 / t / 1e6;
    println!("## (a) Decision stage: `dst == X && src == Y => drop` over {n} parsed packets ({d_native} dropped)\n");
    println!("| peer | M packets/s | ns/packet | time / native |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, t) in [
        ("native Rust loop over the columns", t_native),
        ("vinet VM: checked firewall, per 256-packet window (its chain plan)", t_vm),
        ("vinet VM: the same, interpreted instruction by instruction", t_vmi),
        ("rbpf JIT (per packet)", t_jit),
        ("rbpf interpreter (per packet)", t_interp),
    ] {
        println!("| {name} | {:.1} | {:.2} | {:.2}x |", mpps(t), t * 1e9 / n as f64, t / t_native);
    }
    println!(
        "\nvinet VM vs rbpf JIT: {:.2}x the throughput (interpreted: {:.2}x); vs native: {:.2} of its throughput (interpreted: {:.2})\n",
        t_jit / t_vm,
        t_jit / t_vmi,
        t_native / t_vm,
        t_native / t_vmi
    );
}

/// The TCP destination port of the buffer's TCP packets (`ipv4_packet`): the
/// port firewall's port, so that it drops what the firewall drops of TCP.
const TCP_DPORT: u16 = 0xc350;

/// (a') The port firewall's decision `dst == X && src == Y && proto == TCP
/// && dport == P => drop` over parsed packets, beside (a).
fn port_decision_stage(buf: &mut Buffer, fx: &Fixtures, reps: usize) {
    const X: u32 = BASE + 7;
    buf.retarget(1000);
    #[derive(Default)]
    struct Cols {
        src: Vec<u128>,
        dst: Vec<u128>,
        proto: Vec<u8>,
        sport: Vec<u16>,
        dport: Vec<u16>,
        has_ports: Vec<bool>,
        tcp_flags: Vec<u8>,
    }
    let mut c = Cols::default();
    for f in buf.frames() {
        if let vinet_engine::packet::Parsed::Packet(p) = vinet_engine::packet::parse_frame(f.link, f.data) {
            c.src.push(p.src);
            c.dst.push(p.dst);
            c.proto.push(p.proto);
            c.sport.push(p.sport);
            c.dport.push(p.dport);
            c.has_ports.push(p.has_ports);
            c.tcp_flags.push(p.tcp_flags);
        }
    }
    let n = c.src.len();
    let w = fx.firewall.policy().window_packets as usize;
    let (bad, x) = (mapped(BAD), mapped(X));

    // Native: the physical limit, one byte lane per packet as in (a).
    let native = || {
        let mut drops = 0u64;
        let mut bits = [0u64; 4];
        for a in (0..n).step_by(w) {
            let b = (a + w).min(n);
            let (src, dst, proto, ports, dport) = (&c.src[a..b], &c.dst[a..b], &c.proto[a..b], &c.has_ports[a..b], &c.dport[a..b]);
            for (k, base) in (0..b - a).step_by(64).enumerate() {
                let end = (base + 64).min(b - a);
                let mut lanes = [0u8; 64];
                let l = &mut lanes[..end - base];
                for (o, &s) in l.iter_mut().zip(&src[base..end]) {
                    *o = u8::from(s == bad);
                }
                for (o, &d) in l.iter_mut().zip(&dst[base..end]) {
                    *o &= u8::from(d == x);
                }
                for (o, &x) in l.iter_mut().zip(&proto[base..end]) {
                    *o &= u8::from(x == 6);
                }
                for (o, &x) in l.iter_mut().zip(&ports[base..end]) {
                    *o &= u8::from(x);
                }
                for (o, &x) in l.iter_mut().zip(&dport[base..end]) {
                    *o &= u8::from(x == TCP_DPORT);
                }
                let m = lane_bits(&lanes);
                bits[k] = m;
            }
            drops += bits.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
            black_box(&bits);
            bits = [0; 4];
        }
        drops
    };

    // The VM: the checked port firewall (THIS_IP = X, Spammer = BAD, Port =
    // P) once per window, over views of the columns it reads.
    let zeros32 = vec![0u32; n];
    let origin: Vec<u32> = (0..n as u32).collect();
    let views: Vec<View<'_>> = (0..n)
        .step_by(w)
        .map(|a| {
            let b = (a + w).min(n);
            View::from_columns(ColumnSlices {
                src: &c.src[a..b],
                dst: &c.dst[a..b],
                proto: &c.proto[a..b],
                sport: &c.sport[a..b],
                dport: &c.dport[a..b],
                has_ports: &c.has_ports[a..b],
                tcp_flags: &c.tcp_flags[a..b],
                seq: &zeros32[a..b],
                pay_off: &zeros32[a..b],
                pay_len: &zeros32[a..b],
                origin: &origin[a..b],
                bytes: &[],
            })
            .expect("columns of one length")
        })
        .collect();
    let params = [Const::Addr(BAD), Const::Num(u64::from(TCP_DPORT))];
    let this = This::end_user(x);
    let inst = fx.port_firewall.as_ref().map(|checked| Arc::new(Program::new(checked)).instantiate(&params).expect("bind"));
    let run_vm = |m: &mut Machine| {
        let inst = inst.as_ref().expect("a port firewall");
        views.iter().map(|v| u64::from(inst.run(this, *v, m).expect("no fault").dropped)).sum::<u64>()
    };

    // eBPF: the same filter on a 12-byte (src, dst, dport, proto, has-ports) record.
    let asm = format!(
        "ldxw r2, [r1]\nldxw r3, [r1+4]\nldxh r4, [r1+8]\nldxb r5, [r1+10]\nldxb r6, [r1+11]\n\
         lddw r7, {BAD:#x}\nlddw r8, {X:#x}\nmov64 r0, 0\n\
         jne r2, r7, +5\njne r3, r8, +4\njne r5, 6, +3\njne r6, 1, +2\njne r4, {TCP_DPORT}, +1\nmov64 r0, 1\nexit"
    );
    let prog = rbpf::assembler::assemble(&asm).expect("assemble");
    let mut records: Vec<u8> = (0..n)
        .flat_map(|i| {
            let mut r = [0u8; 12];
            r[..4].copy_from_slice(&(c.src[i] as u32).to_ne_bytes());
            r[4..8].copy_from_slice(&(c.dst[i] as u32).to_ne_bytes());
            r[8..10].copy_from_slice(&c.dport[i].to_ne_bytes());
            r[10] = c.proto[i];
            r[11] = u8::from(c.has_ports[i]);
            r
        })
        .collect();
    let mut jit = rbpf::EbpfVmRaw::new(Some(&prog)).expect("rbpf vm");
    jit.jit_compile().expect("jit");
    // SAFETY: the program reads 12 bytes at r1 and each record is 12 bytes.
    let run_jit =
        |records: &mut [u8]| records.chunks_exact_mut(12).map(|r| unsafe { jit.execute_program_jit(r) }.expect("runs")).sum::<u64>();
    let (t_jit, d_jit) = time(reps, || run_jit(&mut records));
    let (t_native, d_native) = time(reps, native);
    assert!(d_native > 0);
    assert_eq!(d_jit, d_native, "every peer drops the same packets");
    // The VM's rows need the proved bundle.
    let mut rows = vec![("native Rust loop over the columns", t_native)];
    if inst.is_some() {
        let mut m = Machine::new();
        let (t_vm, d_vm) = time(reps, || run_vm(&mut m));
        let mut mi = Machine::new();
        mi.set_interpret_only(true);
        let (t_vmi, d_vmi) = time(reps, || run_vm(&mut mi));
        assert_eq!((d_vm, d_vmi), (d_native, d_native), "every peer drops the same packets");
        rows.push(("vinet VM: checked port firewall, per 256-packet window (its chain plan)", t_vm));
        rows.push(("vinet VM: the same, interpreted instruction by instruction", t_vmi));
    }
    rows.push(("rbpf JIT (per packet)", t_jit));

    let mpps = |t: f64| n as f64 / t / 1e6;
    println!("## (a') Port firewall: `dst == X && src == Y && TCP && dport == {TCP_DPORT} => drop` over {n} parsed packets ({d_native} dropped)\n");
    println!("| peer | M packets/s | ns/packet | time / native |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, t) in rows {
        println!("| {name} | {:.1} | {:.2} | {:.2}x |", mpps(t), t * 1e9 / n as f64, t / t_native);
    }
    if inst.is_none() {
        println!("\n(the vinet VM rows need benches/fixtures/port_firewall.vpc: run benches/fixtures/regenerate.sh)");
    }
    println!();
}

/// (b, c) End to end with 1, 1,000 and 100,000 installed firewalls, for
/// the clients of `buf`'s family (its IPv4 or IPv6 buffer).
fn end_to_end(buf: &mut Buffer, fx: &Fixtures, reps: usize, configs: &[u32]) {
    let w = fx.firewall.policy().window_packets;
    let cfg = WindowConfig::new(w, 50);
    let (v, bad) = match buf.family {
        Family::V4 => ("IPv4", Const::Addr(BAD)),
        Family::V6 => ("IPv6", Const::Addr6(BAD6)),
    };
    let part = if buf.family == Family::V4 { "(b, c)" } else { "(b6, c6)" };
    println!("## {part} End to end from raw frames, {v} clients: parse, window, dispatch, run, verdicts\n");
    println!("Every {v} packet is addressed to an installed {v} client. Spread: over all the clients; concentrated: over 16 of them (1 when one is installed).\n");
    println!("The address firewall, then the port firewall (`examples/port_firewall.vinet`, Port = {TCP_DPORT}) in the same run; \"vs 1 program\" is against one program of the same kind.\n");
    println!("| installed programs | traffic | M frames/s | ns/frame | vs 1 program | runs per window | heap per installation |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    let mut kinds = vec![("firewalls", &fx.firewall, vec![bad.clone()])];
    if let Some(pf) = &fx.port_firewall {
        kinds.push(("port firewalls", pf, vec![bad, Const::Num(u64::from(TCP_DPORT))]));
    }
    for (what, checked, params) in kinds {
        let mut base_ns = None;
        for &clients in configs {
            let mut router = Runner::new(cfg);
            let program = Arc::new(Program::new(checked));
            // The first installation creates the shared instance; count the rest.
            let b = |c: u32| Binding { this_ip: buf.client(c), this_subnet: None, params: params.clone() };
            router.dispatch_mut().install_program(Arc::clone(&program), &b(0)).expect("install");
            COUNT.store(true, Ordering::Relaxed);
            let before = LIVE.load(Ordering::Relaxed);
            for c in 1..clients {
                router.dispatch_mut().install_program(Arc::clone(&program), &b(c)).expect("install");
            }
            let after = LIVE.load(Ordering::Relaxed);
            COUNT.store(false, Ordering::Relaxed);
            let per_install = if clients > 1 { format!("{:.0} B", (after - before) as f64 / f64::from(clients - 1)) } else { "-".into() };
            for (label, spread) in [("spread", clients), ("concentrated", clients.min(16))] {
                if clients == 1 && label == "concentrated" {
                    continue;
                }
                if std::env::args().any(|a| a == "--spread-only") && label != "spread" {
                    continue;
                }
                buf.retarget(spread);
                let runs_before = router.stats().runs;
                let windows_before = router.stats().windows;
                let frames: Vec<Frame<'_>> = buf.frames().collect();
                let (t, _) = time(reps, || {
                    let mut sink = NullSink;
                    let before = router.stats().discarded;
                    router.push_slab(&buf.bytes, &frames, &mut sink);
                    router.flush(&mut sink);
                    router.stats().discarded - before
                });
                let st = router.stats();
                let runs_per_window = (st.runs - runs_before) as f64 / (st.windows - windows_before).max(1) as f64;
                let ns = t * 1e9 / buf.recs.len() as f64;
                let base = *base_ns.get_or_insert(ns);
                println!(
                    "| {clients} {what} | {label} | {:.1} | {:.1} | {:.2}x | {:.1} | {per_install} |",
                    buf.recs.len() as f64 / t / 1e6,
                    ns,
                    ns / base,
                    runs_per_window,
                );
                assert_eq!(st.faults, 0);
                if clients == 1 {
                    // The same through Runner::push, which copies each frame
                    // into the window (the path of capture files and vinetc run).
                    let (t, _) = time(reps, || {
                        let mut sink = NullSink;
                        let before = router.stats().discarded;
                        for f in &frames {
                            router.push(*f, &mut sink);
                        }
                        router.flush(&mut sink);
                        router.stats().discarded - before
                    });
                    let ns = t * 1e9 / buf.recs.len() as f64;
                    println!(
                        "| 1 {what} | {label}, copying (`Runner::push`) | {:.1} | {:.1} | {:.2}x | 1.0 | - |",
                        buf.recs.len() as f64 / t / 1e6,
                        ns,
                        ns / base
                    );
                }
            }
            drop(router);
        }
    }
    println!();
}
