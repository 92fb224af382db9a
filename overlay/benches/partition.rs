//! Per-packet cost of router partitioning at scale (issue 13): classify GRE
//! frames by key ([`vinet_overlay::gre`]) and serve each in its ON's
//! partition ([`vinet_overlay::partition`]), with 10,000 ONs installed
//! against 1, and parsing alone as the peer.
//!
//! The frames are built once: 16,384 outer IPv4 packets of mixed sizes
//! (inner IPv4/UDP of 64, 576 and 1,400 bytes, 7:4:1, a simple IMIX), one
//! in eight carrying a GRE sequence number. One in ten frames is outside
//! every ON: half plain IPv4/UDP (no GRE at all), half GRE with a key that
//! has no reservation. Both are served by the unreserved share. The other
//! frames carry ON keys in a shuffled order in which each of the 10,000
//! ONs appears (about 1.5 times each). For the 1-ON configuration the same
//! buffer is used with its ON keys rewritten to that ON's key: the same
//! bytes, sizes, order and outside traffic, only the number of distinct
//! ONs changes (the key is not covered by the outer checksum).
//!
//! Configurations, each run over the whole buffer per pass:
//!
//! - `parse only`: `gre::classify_ipv4` per frame, no partition work;
//! - `1 ON` and `10,000 ONs`, batched: classify a batch of 64 frames (the
//!   live ON lane's NFQUEUE batch), then `Partition::serve_batch` with 1 or
//!   10,000 reservations, as vinetd's ON lane does;
//! - the same one by one: classify, then `Partition::serve`, per frame.
//!
//! The clock is injected: each packet advances it by 100 ns (10 Mpps; a
//! batch is served at the time of its last packet), and
//! each ON reserves 95 % of the bits and packets it is offered, so that
//! about 5 % of its packets are over contract (both verdicts are exercised). `cargo bench -p vinet-overlay
//! --bench partition` runs 7 rounds that alternate the order of the
//! configurations and prints the medians in Markdown
//! (benchmarks/overlay.md); `-- --quick` (or a run other than by `cargo
//! bench`, as `cargo test --benches` does) is a short smoke run.

use std::collections::HashMap;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vinet_overlay::gre::{self, Outer, Tag};
use vinet_overlay::partition::{Packet, Partition, PartitionConfig, Reservation, Resources, Served, Standing, Verdict, MAX_BATCH};
use vinet_overlay::FlowId;

const FRAMES: usize = 16_384;
const ONS: u32 = 10_000;
const STEP_NS: u64 = 100;

/// A deterministic generator (splitmix64) so that every run sees the same frames.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An IPv4/UDP packet of `total` bytes (at least 28).
fn udp(total: usize, rng: &mut Rng) -> Vec<u8> {
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    p[15] = rng.next() as u8;
    p[19] = rng.next() as u8;
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp_len = total - 20;
    p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
    p.resize(total, 0xa5);
    p
}

fn checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// What a frame is, for rewriting its key.
#[derive(Clone, Copy)]
enum Kind {
    On,
    UnknownKey,
    Plain,
}

/// The frames, contiguous as in a receive ring: (offset, length, kind).
#[derive(Clone)]
struct Frames {
    bytes: Vec<u8>,
    frames: Vec<(usize, usize, Kind)>,
    /// Bytes offered, per pass.
    offered_bytes: u64,
}

fn frames() -> Frames {
    let mut rng = Rng(13);
    // ON keys: every ON once, then random ones, shuffled.
    let on_frames = FRAMES - FRAMES / 10;
    let mut keys: Vec<u32> = (0..ONS).chain((0..on_frames - ONS as usize).map(|_| rng.below(ONS as usize) as u32)).collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i + 1));
    }
    let mut keys = keys.into_iter();
    let outer = Outer { src: [192, 0, 2, 1], dst: [198, 51, 100, 7], ttl: 63, tos: 0, identification: 1, dont_fragment: true };
    let mut bytes = Vec::new();
    let mut frames = Vec::with_capacity(FRAMES);
    let mut placed_outside = 0;
    for i in 0..FRAMES {
        let size = match rng.below(12) {
            0..=6 => 64,
            7..=10 => 576,
            _ => 1_400,
        };
        let inner = udp(size, &mut rng);
        // Outside traffic, spread evenly through the buffer.
        let outside = placed_outside < FRAMES / 10 && (i * (FRAMES / 10)) / FRAMES >= placed_outside;
        let start = bytes.len();
        let kind = if outside {
            placed_outside += 1;
            if placed_outside % 2 == 0 {
                bytes.extend_from_slice(&inner);
                Kind::Plain
            } else {
                gre::encode(&outer, Tag { flow: FlowId(on_key(ONS + rng.next() as u32 % 1_000_000)), seq: None }, &inner, &mut bytes)
                    .unwrap();
                Kind::UnknownKey
            }
        } else {
            let seq = (rng.below(8) == 0).then_some(i as u32);
            let on = keys.next().unwrap_or_else(|| rng.below(ONS as usize) as u32);
            gre::encode(&outer, Tag { flow: FlowId(on_key(on)), seq }, &inner, &mut bytes).unwrap();
            Kind::On
        };
        frames.push((start, bytes.len() - start, kind));
    }
    let offered_bytes = frames.iter().map(|f| f.1 as u64).sum();
    Frames { bytes, frames, offered_bytes }
}

/// The flow id of the `i`th ON: scattered over the 32-bit space, as a
/// manager's pool hands them out over time.
fn on_key(i: u32) -> u32 {
    i.wrapping_mul(0x9e37_79b1) ^ 0x5bd1_e995
}

impl Frames {
    /// The same buffer with every ON frame's key set to `key`.
    fn with_one_key(&self, key: u32) -> Frames {
        let mut bytes = self.bytes.clone();
        for &(start, _, kind) in &self.frames {
            if let Kind::On = kind {
                bytes[start + 24..start + 28].copy_from_slice(&key.to_be_bytes());
            }
        }
        Frames { bytes, frames: self.frames.clone(), offered_bytes: self.offered_bytes }
    }
}

/// A partition with `n` ONs, each reserving 95 % of what it is offered.
fn partition(n: u32, f: &Frames) -> Partition {
    let passes_per_sec = 1e9 / (STEP_NS as f64 * FRAMES as f64);
    let mut offered: HashMap<u32, (u64, u64)> = HashMap::new();
    for &(start, len, kind) in &f.frames {
        if let Kind::On = kind {
            let key = u32::from_be_bytes(f.bytes[start + 24..start + 28].try_into().unwrap());
            let e = offered.entry(key).or_default();
            *e = (e.0 + 1, e.1 + len as u64);
        }
    }
    assert_eq!(offered.len(), n as usize);
    let capacity = Resources { bps: u64::MAX / 2, pps: u64::MAX / 2, units: u64::MAX / 2 };
    let cfg = PartitionConfig { capacity, unreserved_burst_bytes: 1 << 20, unreserved_burst_packets: 1 << 10 };
    let mut p = Partition::new(cfg, 0);
    for (key, (packets, bytes)) in offered {
        let bps = (0.95 * bytes as f64 * 8.0 * passes_per_sec) as u64;
        let pps = (0.95 * packets as f64 * passes_per_sec) as u64;
        // Buckets of a millisecond of the rate, at least 16 packets: deep
        // enough for a batch of 64 served at one instant (6.4 us of traffic).
        let r = Reservation::new(Resources { bps, pps, units: 1 }, (bps / 8 / 1_000).max(16_000), (pps / 1_000).max(16)).unwrap();
        p.reserve(FlowId(key), r, Standing::Active, 0).unwrap();
    }
    p
}

#[derive(Clone, Copy, PartialEq)]
enum Config {
    ParseOnly,
    One,
    TenThousand,
    OneSingly,
    TenThousandSingly,
}

const CONFIGS: [(Config, &str); 5] = [
    (Config::ParseOnly, "parse only"),
    (Config::One, "1 ON, batched"),
    (Config::TenThousand, "10,000 ONs, batched"),
    (Config::OneSingly, "1 ON, one by one"),
    (Config::TenThousandSingly, "10,000 ONs, one by one"),
];

struct Run {
    frames: Frames,
    partition: Option<Partition>,
    batched: bool,
    now_ns: u64,
    passed: u64,
    dropped: u64,
    outside: u64,
}

impl Run {
    /// One pass over the buffer.
    fn pass(&mut self) {
        match (&mut self.partition, self.batched) {
            (Some(_), true) => self.pass_batched(),
            _ => self.pass_singly(),
        }
    }

    /// Batches of [`MAX_BATCH`] frames: classify them all, then serve them.
    fn pass_batched(&mut self) {
        let bytes = &self.frames.bytes[..];
        let p = self.partition.as_mut().expect("a partition");
        let mut packets = [Packet::default(); MAX_BATCH];
        let mut out = [Served::default(); MAX_BATCH];
        for chunk in self.frames.frames.chunks(MAX_BATCH) {
            for (pk, &(start, len, _)) in packets.iter_mut().zip(chunk) {
                let flow = gre::classify_ipv4(black_box(&bytes[start..start + len]));
                self.outside += u64::from(flow.is_none());
                *pk = Packet { flow, bytes: len as u64 };
            }
            self.now_ns += STEP_NS * chunk.len() as u64;
            p.serve_batch(&packets[..chunk.len()], self.now_ns, &mut out);
            for o in &out[..chunk.len()] {
                match o.verdict {
                    Verdict::Pass => self.passed += 1,
                    Verdict::Drop => self.dropped += 1,
                }
            }
        }
    }

    fn pass_singly(&mut self) {
        let bytes = &self.frames.bytes[..];
        for &(start, len, _) in &self.frames.frames {
            let frame = black_box(&bytes[start..start + len]);
            let flow = gre::classify_ipv4(frame);
            self.outside += u64::from(flow.is_none());
            if let Some(p) = &mut self.partition {
                self.now_ns += STEP_NS;
                match p.serve(flow, len as u64, self.now_ns) {
                    Verdict::Pass => self.passed += 1,
                    Verdict::Drop => self.dropped += 1,
                }
            } else {
                black_box(flow);
            }
        }
    }

    /// Nanoseconds per packet over passes lasting at least `budget`.
    fn measure(&mut self, budget: Duration) -> f64 {
        let start = Instant::now();
        let mut passes = 0u64;
        while start.elapsed() < budget {
            self.pass();
            passes += 1;
        }
        start.elapsed().as_nanos() as f64 / (passes * FRAMES as u64) as f64
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let mut quick = false;
    let mut bench = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--quick" => quick = true,
            "--bench" => bench = true,
            other => {
                eprintln!("partition: unknown argument {other:?} (the option is --quick; cargo passes --bench)");
                return ExitCode::FAILURE;
            }
        }
    }
    let quick = quick || !bench;
    let (rounds, budget) = if quick { (1, Duration::from_millis(20)) } else { (7, Duration::from_millis(400)) };

    let many = frames();
    let one = many.with_one_key(on_key(0));
    let mut runs: Vec<Run> = CONFIGS
        .iter()
        .map(|&(c, _)| {
            let (frames, partition) = match c {
                Config::ParseOnly => (many.clone(), None),
                Config::One | Config::OneSingly => (one.clone(), Some(partition(1, &one))),
                Config::TenThousand | Config::TenThousandSingly => (many.clone(), Some(partition(ONS, &many))),
            };
            let batched = matches!(c, Config::One | Config::TenThousand);
            Run { frames, partition, batched, now_ns: 0, passed: 0, dropped: 0, outside: 0 }
        })
        .collect();
    // Warm up each (the first pass also faults the buffers in).
    for r in &mut runs {
        r.measure(budget / 4);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); CONFIGS.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..CONFIGS.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let t = runs[i].measure(budget);
            times[i].push(t);
        }
    }
    // Sanity: every configuration saw the outside traffic, the partitions both
    // verdicts (a quick run may end before the buckets' first burst is spent).
    for (r, (c, name)) in runs.iter().zip(CONFIGS) {
        assert!(r.outside > 0, "{name}: no traffic outside the ONs");
        if c != Config::ParseOnly {
            assert!(r.passed > 0 && (quick || r.dropped > 0), "{name}: passed {} dropped {}", r.passed, r.dropped);
        }
    }
    for r in &runs[1..] {
        assert!(r.partition.as_ref().is_some_and(|p| p.len() == 1 || p.len() == ONS as usize));
    }

    let med: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
    println!("| configuration | median ns/packet | min | max | dropped over contract |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (i, (_, name)) in CONFIGS.iter().enumerate() {
        let (lo, hi) = (times[i][0], times[i][times[i].len() - 1]);
        let r = &runs[i];
        let dropped =
            if r.partition.is_some() { format!("{:.1} %", 100.0 * r.dropped as f64 / (r.passed + r.dropped) as f64) } else { "-".into() };
        println!("| {name} | {:.2} | {lo:.2} | {hi:.2} | {dropped} |", med[i]);
    }
    println!();
    println!(
        "partition work alone (median minus parse only), batched: 1 ON {:.2} ns, 10,000 ONs {:.2} ns",
        med[1] - med[0],
        med[2] - med[0]
    );
    println!("partition work alone, one by one: 1 ON {:.2} ns, 10,000 ONs {:.2} ns", med[3] - med[0], med[4] - med[0]);
    println!("ratio 10,000 ONs / 1 ON (classify + serve), batched: {:.3} (target: at most 1.2)", med[2] / med[1]);
    println!("ratio 10,000 ONs / 1 ON (classify + serve), one by one: {:.3}", med[4] / med[3]);
    println!("{rounds} rounds of {} ms per configuration, {FRAMES} frames, {} bytes a pass", budget.as_millis(), many.offered_bytes);
    ExitCode::SUCCESS
}
