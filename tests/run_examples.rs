//! `vinetc prove` then `vinetc run` (the real binaries) on the shipped
//! captures of `examples/traffic/`, whose content is known by construction
//! (`examples/traffic/generate.rs`): each example program must drop and
//! generate exactly the packets it should. Checked twice: the counts of
//! `--format json`, and packet by packet in the written OUT.pcap (which input
//! frames are missing, which generated packets appear, where, with what
//! addresses and payloads).
//!
//! The drop predicates below are written from the scenario, independently of
//! the engine (frames are decoded here by hand), and each is also held to
//! the number counted by hand in the generator's documentation.
//!
//! The IPv6 and dual-stack examples (`examples/ipv6/`, `examples/dualstack/`,
//! issue 15) run over the IPv6 captures the same way: a dual-stack client's
//! program is installed once per address or prefix of the client (a
//! manifest with one `[[install]]` each), and the later fragments of an IPv6
//! datagram get the verdict of its first fragment, which the comparison
//! applies by hand too (SEMANTICS "Fragments").
//!
//! Also here: `vinetc run` over every capture of `tests/data/pcap`, with
//! programs installed from a manifest, checking exit status and accounting.

#[allow(dead_code)]
#[path = "../examples/traffic/generate.rs"]
mod generate;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use generate::{db8, ip, mapped as m};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vinetc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vinetc")).args(args).current_dir(root()).output().expect("run vinetc")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vinet-run-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Prove an example (`examples/{example}.vinet`) into `dir`; the bundle's
/// path (`ipv6/firewall` gives `ipv6-firewall.vpc`).
fn prove(dir: &Path, example: &str, policy: &str, params: &[&str]) -> PathBuf {
    let out = dir.join(format!("{}.vpc", example.replace('/', "-")));
    let src = root().join(format!("examples/{example}.vinet"));
    let mut args = vec!["prove", s(&src), "--policy", policy, "-o", s(&out)];
    for p in params {
        args.extend(["--param", p]);
    }
    let o = vinetc(&args);
    assert_eq!(o.status.code(), Some(0), "prove {example}: {}", text(&o.stderr));
    out
}

const END_USER: &str = "examples/policies/end-user.toml";
const EDGE: &str = "examples/policies/edge-router.toml";

/// One frame of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    ts_ns: u64,
    bytes: Vec<u8>,
}

fn read_pcap(path: &Path) -> Vec<Rec> {
    let mut r = vinet_engine::pcap::CaptureReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v = Vec::new();
    while let Some(f) = r.next_frame() {
        let f = f.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        v.push(Rec { ts_ns: f.ts_ns, bytes: f.data.to_vec() });
    }
    v
}

/// An IP packet of a frame, decoded by hand: addresses as the engine holds
/// them (IPv4 as IPv4-mapped), the family, and the IP packet's bytes.
#[derive(Clone, Copy, Debug)]
struct Pkt<'a> {
    src: u128,
    dst: u128,
    v6: bool,
    ip: &'a [u8],
}

/// The IPv6 extension headers the engine follows (SEMANTICS "The window").
const EXT_HEADERS: [u8; 5] = [0, 43, 44, 51, 60];

/// The IP packet of an Ethernet frame (behind any 802.1Q tags), by hand.
/// Only packets of a window count: an IPv4 header whole (whatever follows
/// it: a TCP or UDP header cut short included), or an IPv6 header and its
/// chain of extension headers whole, with neither address IPv4-mapped.
fn packet_of(frame: &[u8]) -> Option<Pkt<'_>> {
    let mut off = 12;
    let mut ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    while ty == 0x8100 {
        off += 4;
        ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    let ip = frame.get(off + 2..)?;
    match ty {
        0x0800 if ip.len() >= 20 && ip[0] == 0x45 => {
            let a = |i: usize| u32::from_be_bytes([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]);
            Some(Pkt { src: m(a(12)), dst: m(a(16)), v6: false, ip })
        }
        0x86dd if ip.len() >= 40 && ip[0] >> 4 == 6 => {
            let a = |i: usize| u128::from_be_bytes(ip[i..i + 16].try_into().unwrap());
            let (src, dst) = (a(8), a(24));
            let p = Pkt { src, dst, v6: true, ip };
            let whole_chain = chain6(&p).is_some();
            (!generate::is_mapped(src) && !generate::is_mapped(dst) && payload_len6(ip) > 0 && whole_chain).then_some(p)
        }
        _ => None,
    }
}

fn payload_len6(ip: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([ip[4], ip[5]]))
}

/// An IPv6 packet's extension-header chain, decoded by hand.
struct Chain {
    /// The upper-layer protocol.
    proto: u8,
    /// Where the upper layer starts in the IP packet.
    at: usize,
    /// The Fragment header's identification and offset.
    frag: Option<(u32, u16)>,
}

/// An IPv6 packet's extension-header chain, by hand. A later fragment's chain ends at its Fragment header (what
/// follows is data). A chain that is not followed (a header runs past the
/// packet's bytes, a Hop-by-Hop header is not the first, an AH's length is
/// 0, or there are more than 8 headers) stops at that header: the packet is a
/// packet without ports, its protocol that header's number (SEMANTICS "IPv6").
fn chain6(p: &Pkt<'_>) -> Option<Chain> {
    let ip = p.ip;
    let end = (40 + payload_len6(ip)).min(ip.len());
    let (mut next, mut at, mut frag, mut n) = (ip[6], 40, None, 0);
    while EXT_HEADERS.contains(&next) {
        n += 1;
        let stop = Some(Chain { proto: next, at: end, frag });
        if n > 8 || (next == 0 && at != 40) {
            return stop;
        }
        let len = match (next, ip[..end].get(at + 1)) {
            (44, _) => 8,
            (_, None) => usize::MAX / 2,
            (51, Some(0)) => return stop,
            (51, Some(&l)) => (usize::from(l) + 2) * 4,
            (_, Some(&l)) => (usize::from(l) + 1) * 8,
        };
        if at + len > end {
            return stop;
        }
        if next == 44 {
            let id = u32::from_be_bytes(ip[at + 4..at + 8].try_into().unwrap());
            let offset = u16::from_be_bytes([ip[at + 2], ip[at + 3]]) >> 3;
            frag = Some((id, offset));
            next = ip[at];
            at += len;
            if offset != 0 {
                break;
            }
            continue;
        }
        next = ip[at];
        at += len;
    }
    Some(Chain { proto: next, at, frag })
}

/// The IPv6 fragment a packet is: its datagram (source, destination,
/// identification) and offset.
fn fragment6(p: &Pkt<'_>) -> Option<((u128, u128, u32), u16)> {
    let frag = chain6(p).filter(|_| p.v6)?.frag;
    frag.map(|(id, offset)| ((p.src, p.dst, id), offset))
}

/// Burst index of a frame (bursts are `BURST_US` apart, a few ms long).
fn burst(r: &Rec) -> usize {
    let us = r.ts_ns / 1000 - u64::from(generate::EPOCH) * 1_000_000;
    (us / u64::from(generate::BURST_US)) as usize
}

/// A generated packet: Ethernet with zero addresses (PcapOut's framing),
/// IPv4/UDP or IPv6/UDP from and to port 9910 (SEMANTICS "GENERATE").
#[derive(Clone, Debug, PartialEq, Eq)]
struct Gen {
    src: u128,
    dst: u128,
    payload: Vec<u8>,
}

/// The one's-complement sum of 16-bit words, folded: 0xffff over bytes
/// that hold their correct checksum.
fn ones_sum(parts: &[&[u8]]) -> u32 {
    let mut s: u32 = parts.iter().flat_map(|p| p.chunks(2)).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

fn as_generated(frame: &[u8]) -> Option<Gen> {
    if frame.get(..12)? != [0u8; 12] {
        return None;
    }
    let p = packet_of(frame)?;
    let ip = p.ip;
    let (hdr, udp) = if p.v6 {
        assert_eq!(&frame[12..14], &[0x86, 0xdd], "an IPv6 packet is framed as IPv6");
        assert_eq!(&ip[..4], &[0x60, 0, 0, 0], "version 6, traffic class and flow label 0");
        assert_eq!(ip[6], 17, "generated packets are UDP, without extension headers");
        assert_eq!(ip[7], 64, "hop limit 64");
        assert_eq!(payload_len6(ip), ip.len() - 40, "IPv6 payload length");
        (40, &ip[40..])
    } else {
        assert_eq!(ip[9], 17, "generated packets are UDP");
        assert_eq!(ip[8], 64, "TTL 64");
        assert_eq!(ones_sum(&[&ip[..20]]), 0xffff, "IPv4 header checksum");
        assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len(), "IPv4 total length");
        (20, &ip[20..])
    };
    assert_eq!(&udp[..4], &[0x26, 0xb6, 0x26, 0xb6], "from and to port 9910");
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    assert_eq!(udp_len, ip.len() - hdr, "UDP length");
    // The UDP checksum over the pseudo-header (RFC 768; RFC 8200 8.1, where it is mandatory).
    assert_ne!(&udp[6..8], &[0, 0], "a UDP checksum is sent");
    let pseudo = if p.v6 {
        let mut v = ip[8..40].to_vec();
        v.extend_from_slice(&(udp_len as u32).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 17]);
        v
    } else {
        let mut v = ip[12..20].to_vec();
        v.extend_from_slice(&[0, 17]);
        v.extend_from_slice(&(udp_len as u16).to_be_bytes());
        v
    };
    assert_eq!(ones_sum(&[&pseudo, udp]), 0xffff, "UDP checksum of {udp:02x?}");
    Some(Gen { src: p.src, dst: p.dst, payload: udp[8..].to_vec() })
}

/// What a run should do to a capture.
struct Expect<'a> {
    /// What the programs drop: a predicate over the packets of the windows
    /// (IPv4 addresses as IPv4-mapped). A later IPv6 fragment whose first
    /// fragment came before it (or in its window) gets that one's verdict
    /// instead, whatever the predicate says (SEMANTICS "Fragments").
    drop: &'a dyn Fn(&Rec, u128, u128) -> bool,
    /// Generated packets after each burst's forwarded frames.
    generated: &'a dyn Fn(usize) -> Vec<Gen>,
}

/// Run, then check the JSON counts and the output capture frame by frame.
/// Returns the JSON report.
fn run_and_compare(dir: &Path, capture: &str, run_args: &[&str], expect: Expect<'_>, dropped: u64, generated: u64) -> Value {
    let input_path = root().join("examples/traffic").join(capture);
    let out = dir.join(format!("out-{capture}"));
    let mut args = vec!["run"];
    args.extend_from_slice(run_args);
    args.extend(["--pcap", s(&input_path), "--out", s(&out), "--format", "json"]);
    let o = vinetc(&args);
    assert_eq!(o.status.code(), Some(0), "vinetc {args:?}: {}", text(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)));

    let (_, _, facts) = generate::captures().into_iter().find(|(n, _, _)| *n == capture).unwrap();
    let r = &report["router"];
    assert_eq!(r["frames_in"], facts.frames, "{capture}");
    assert_eq!(r["packets_in"], facts.ipv4 + facts.ipv6, "{capture}: IPv4 and IPv6 packets are the windows' packets");
    assert_eq!(r["unparsed"], facts.malformed, "{capture}");
    assert_eq!(r["not_ip"], facts.not_ip, "{capture}");
    assert_eq!(r["dropped"], dropped, "{capture}: {report}");
    assert_eq!(r["generated"], generated, "{capture}: {report}");
    assert_eq!(r["forwarded"], facts.frames - dropped, "{capture}");
    assert_eq!(r["faults"], 0, "{capture}");

    // Frame by frame: per burst, the frames not dropped in arrival order,
    // then the burst's generated packets.
    let input = read_pcap(&input_path);
    let output = read_pcap(&out);
    let (verdicts, given) = verdicts(&input, expect.drop);
    assert_eq!(r["fragment_verdicts"], given, "{capture}: later IPv6 fragments given their datagram's verdict");
    let mut want_fwd = Vec::new();
    let mut want_gen = Vec::new();
    let mut n_drop = 0u64;
    let last_burst = input.iter().map(burst).max().unwrap();
    for b in 0..=last_burst {
        for (rec, &drop) in input.iter().zip(&verdicts).filter(|(r, _)| burst(r) == b) {
            if drop {
                n_drop += 1;
            } else {
                want_fwd.push((b, rec.clone()));
            }
        }
        want_gen.push((expect.generated)(b));
    }
    assert_eq!(n_drop, dropped, "{capture}: the scenario's hand count");
    let mut fwd = want_fwd.iter().peekable();
    let mut gens = want_gen.iter().enumerate().flat_map(|(b, g)| g.iter().map(move |g| (b, g))).peekable();
    let mut current = 0usize;
    let mut generated_after: Option<usize> = None;
    for (k, rec) in output.iter().enumerate() {
        match as_generated(&rec.bytes) {
            Some(g) => {
                let (b, want) =
                    gens.next().unwrap_or_else(|| panic!("{capture}: output frame {k} is an unexpected generated packet {g:?}"));
                assert_eq!(&g, want, "{capture}: generated packet at output frame {k}");
                assert_eq!(b, current, "{capture}: generated packet of burst {b} appears after burst {current}'s frames");
                generated_after = Some(b);
            }
            None => {
                let (b, want) = fwd.next().unwrap_or_else(|| panic!("{capture}: output frame {k} was not expected"));
                assert_eq!(rec.bytes, want.bytes, "{capture}: output frame {k} should be input frame at {} ns", want.ts_ns);
                assert_eq!(rec.ts_ns, want.ts_ns);
                assert!(
                    gens.peek().is_none_or(|(gb, _)| *gb >= *b),
                    "{capture}: burst {b} began before the generated packets of an earlier burst"
                );
                assert_ne!(generated_after, Some(*b), "{capture}: a frame of burst {b} after its generated packets");
                current = *b;
            }
        }
    }
    assert!(fwd.next().is_none(), "{capture}: frames missing from the output");
    assert!(gens.next().is_none(), "{capture}: generated packets missing from the output");
    report
}

/// Each frame's verdict (dropped?): the programs' (`drop`, over the packets
/// of the windows), except for a later IPv6 fragment of a datagram whose
/// first fragment came in an earlier burst or in its own (in any order):
/// that one's. Also how many later fragments got their first's verdict.
fn verdicts(input: &[Rec], drop: &dyn Fn(&Rec, u128, u128) -> bool) -> (Vec<bool>, u64) {
    let programs: Vec<bool> = input.iter().map(|r| packet_of(&r.bytes).is_some_and(|p| drop(r, p.src, p.dst))).collect();
    let mut first: std::collections::HashMap<(u128, u128, u32), (usize, bool)> = Default::default();
    for (r, &d) in input.iter().zip(&programs) {
        if let Some((key, 0)) = packet_of(&r.bytes).and_then(|p| fragment6(&p)) {
            first.insert(key, (burst(r), d));
        }
    }
    let mut given = 0;
    let v = input
        .iter()
        .zip(&programs)
        .map(|(r, &d)| match packet_of(&r.bytes).and_then(|p| fragment6(&p)) {
            Some((key, offset)) if offset > 0 => match first.get(&key) {
                Some(&(b, v)) if b <= burst(r) => {
                    given += 1;
                    v
                }
                _ => d,
            },
            _ => d,
        })
        .collect();
    (v, given)
}

fn program(report: &Value, i: usize) -> &Value {
    &report["programs"][i]
}

/// Whether `a` lies in the IPv4 prefix `net/len`.
fn in_prefix(a: u128, net: u32, len: u32) -> bool {
    generate::is_mapped(a) && in_prefix6(a, m(net), 96 + len)
}

/// Whether `a` lies in the 128-bit prefix `net/len`.
fn in_prefix6(a: u128, net: u128, len: u32) -> bool {
    len == 0 || a >> (128 - len) == net >> (128 - len)
}

/// The destination-list packets of GENERATE(src, dst, Destinations): at
/// most 360 addresses a packet, 4 bytes each when every address of the
/// packet is IPv4, else 16 (SEMANTICS).
fn address_lists(src: u128, dst: u128, hosts: &[u128]) -> Vec<Gen> {
    hosts
        .chunks(360)
        .map(|c| {
            let mut p = b"VND1".to_vec();
            p.extend_from_slice(&(c.len() as u32).to_be_bytes());
            if c.iter().all(|&a| generate::is_mapped(a)) {
                c.iter().for_each(|&a| p.extend_from_slice(&(a as u32).to_be_bytes()));
            } else {
                c.iter().for_each(|a| p.extend_from_slice(&a.to_be_bytes()));
            }
            Gen { src, dst, payload: p }
        })
        .collect()
}

#[test]
fn shipped_captures_are_what_the_generator_writes() {
    for (name, bytes, facts) in generate::captures() {
        let path = root().join("examples/traffic").join(name);
        let shipped = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `cargo run --example traffic`)", path.display()));
        assert!(shipped == bytes, "{name} differs from what examples/traffic/generate.rs writes: run `cargo run --example traffic`");
        assert!(facts.malformed > 0 && facts.not_ip > 0 && facts.ipv4 + facts.ipv6 > 400, "{name}: {facts:?}");
        assert_eq!(facts.frames, facts.ipv4 + facts.ipv6 + facts.not_ip + facts.malformed, "{name}");
        if name.contains('6') {
            assert!(facts.ipv6 > 200 && facts.ipv4 > 100, "{name} is mixed traffic: {facts:?}");
        }
        assert!(bytes.len() < 200_000, "{name} is {} bytes", bytes.len());
    }
}

#[test]
fn firewall_drops_exactly_the_pests_packets() {
    let dir = scratch("firewall");
    let bundle = prove(&dir, "firewall", END_USER, &[]);
    let drop = |_: &Rec, src, dst| src == m(generate::FW_BAD) && dst == m(generate::FW_CLIENT);
    let none = |_| Vec::new();
    let rep = run_and_compare(
        &dir,
        "firewall.pcap",
        &[s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7"],
        Expect { drop: &drop, generated: &none },
        45,
        0,
    );
    let p = program(&rep, 0);
    assert_eq!(p["discarded"], 45, "8 a burst, and the frame whose TCP header is cut short");
    assert_eq!(p["generated"], 0);
    assert_eq!(p["windows"], 5, "one window per burst");
    assert_eq!(p["params"]["SrcIP"], "203.0.113.9");
    assert_eq!(p["certified"], 1030);
    assert!(p["cost_max"].as_u64().unwrap() <= 1030);

    // --param retargets the same bundle: 203.0.113.10's packets instead.
    let drop = |_: &Rec, src, dst| src == m(ip(203, 0, 113, 10)) && dst == m(generate::FW_CLIENT);
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7", "--param", "SrcIP=203.0.113.10"];
    let rep = run_and_compare(&dir, "firewall.pcap", &args, Expect { drop: &drop, generated: &none }, 10, 0);
    assert_eq!(program(&rep, 0)["params"]["SrcIP"], "203.0.113.10");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn spam_filter_drops_exactly_the_sources_with_both_words() {
    let dir = scratch("spam");
    let bundle = prove(&dir, "spam_filter", END_USER, &[]);
    let drop =
        |r: &Rec, src, dst| dst == m(generate::SPAM_CLIENT) && generate::SPAMMERS.iter().any(|&(s, b, _)| m(s) == src && b == burst(r));
    let none = |_| Vec::new();
    let hand: u64 = generate::SPAMMERS.iter().map(|s| s.2).sum();
    assert_eq!(hand, 13);
    let rep = run_and_compare(
        &dir,
        "spam.pcap",
        &[s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7"],
        Expect { drop: &drop, generated: &none },
        13,
        0,
    );
    assert_eq!(program(&rep, 0)["discarded"], 13);
    assert_eq!(program(&rep, 0)["windows"], 4);

    // Words given at install time: "agra" is in every "viagra" (and in the
    // second half of .11's split word), so the same sources.
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7", "--param", "Word1=agra"];
    run_and_compare(&dir, "spam.pcap", &args, Expect { drop: &drop, generated: &none }, 13, 0);
    // "gra lot": only in .15's stream, whose "via" is cut off by a sequence
    // gap, and in .17's three segments ("lot|ter|y viagra" holds "gra" but
    // not "gra lot"): with "lottery", nobody.
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7", "--param", "Word1=\"gra lot\""];
    let gap = |r: &Rec, src, dst| dst == m(generate::SPAM_CLIENT) && src == m(ip(198, 51, 100, 15)) && burst(r) == 1;
    let rep = run_and_compare(&dir, "spam.pcap", &args, Expect { drop: &gap, generated: &none }, 2, 0);
    assert_eq!(program(&rep, 0)["params"]["Word1"], "gra lot");
    // A quoted value is a string even when it looks like a number.
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7", "--param", "Word2=42"];
    let nothing = |_: &Rec, _: u128, _: u128| false;
    let rep = run_and_compare(&dir, "spam.pcap", &args, Expect { drop: &nothing, generated: &none }, 0, 0);
    assert_eq!(program(&rep, 0)["params"]["Word2"], "42");
    let _ = std::fs::remove_dir_all(dir);
}

fn multicast_expectations(subnet: (u32, u32)) -> impl Fn(usize) -> Vec<Gen> {
    move |b: usize| {
        if b >= generate::MC_CONTENTS.len() {
            return Vec::new();
        }
        let hosts: Vec<u128> = generate::mc_hosts(b).into_iter().map(m).filter(|&h| in_prefix(h, subnet.0, subnet.1)).collect();
        if hosts.is_empty() {
            return Vec::new();
        }
        let (src, me) = (m(generate::MC_SOURCE), m(ip(10, 0, 0, 1)));
        let mut g = address_lists(src, me, &hosts);
        g.extend(generate::MC_CONTENTS[b].iter().map(|c| Gen { src, dst: me, payload: c.to_vec() }));
        g
    }
}

#[test]
fn multicast_replaces_each_broadcast_by_its_contents_and_destination_lists() {
    let dir = scratch("multicast");
    let bundle = prove(&dir, "multicast", EDGE, &[]);
    let net = (ip(10, 0, 0, 0), 24);
    let drop = |_: &Rec, src, dst| src == m(generate::MC_SOURCE) && in_prefix(dst, net.0, net.1);
    let gens = multicast_expectations(net);
    // Burst A: 2 contents x 50 hosts; burst B: 1 x 200; burst C is outside
    // the /24. Generated: (1 list + 2 contents) + (1 list + 1 content).
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.0/24"];
    let rep = run_and_compare(&dir, "multicast.pcap", &args, Expect { drop: &drop, generated: &gens }, 300, 5);
    assert_eq!(program(&rep, 0)["discarded"], 300);
    assert_eq!(program(&rep, 0)["generated"], 5);

    // With windows of 1,024 packets and a /22, burst C (400 hosts, one
    // window) needs ceil(400 / 360) = 2 destination lists.
    let policy = std::fs::read_to_string(root().join(EDGE))
        .unwrap()
        .replace("window_packets = 256", "window_packets = 1024")
        .replace("complexity_up = 20_000", "complexity_up = 40_000")
        .replace("generated_bytes_up = 33_554_432", "generated_bytes_up = 134_217_728");
    let big = dir.join("edge-1024.toml");
    std::fs::write(&big, policy).unwrap();
    let bundle = prove(&dir, "multicast", s(&big), &[]);
    let net = (ip(10, 0, 0, 0), 22);
    let drop = |_: &Rec, src, dst| src == m(generate::MC_SOURCE) && in_prefix(dst, net.0, net.1);
    let gens = multicast_expectations(net);
    assert_eq!(gens(2).len(), 3, "2 lists + 1 content");
    let args = [s(&bundle), "--policy", s(&big), "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.0/22"];
    let rep = run_and_compare(&dir, "multicast.pcap", &args, Expect { drop: &drop, generated: &gens }, 700, 8);
    assert_eq!(program(&rep, 0)["generated"], 8);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn worm_blocker_drops_exactly_the_scanners() {
    let dir = scratch("worm");
    let bundle = prove(&dir, "worm_blocker", EDGE, &[]);
    let drop =
        |r: &Rec, src, dst| in_prefix(dst, ip(10, 0, 0, 0), 24) && generate::WORMS.iter().any(|&(s, b, _)| m(s) == src && b == burst(r));
    let none = |_| Vec::new();
    assert_eq!(generate::WORMS.iter().map(|w| w.2).sum::<u64>(), 72);
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.0/24"];
    let rep = run_and_compare(&dir, "worm.pcap", &args, Expect { drop: &drop, generated: &none }, 72, 0);
    assert_eq!(program(&rep, 0)["discarded"], 72);
    assert_eq!(program(&rep, 0)["params"]["N"], "8");

    // N = 7: 203.0.113.51 (exactly 8 hosts) is a scanner too.
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.0/24", "--param", "N=7"];
    let drop7 = |r: &Rec, src, dst| drop(r, src, dst) || (src == m(ip(203, 0, 113, 51)) && in_prefix(dst, ip(10, 0, 0, 0), 24));
    run_and_compare(&dir, "worm.pcap", &args, Expect { drop: &drop7, generated: &none }, 84, 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// The protocol of an IPv4 or IPv6 packet (for IPv6 the upper layer's,
/// behind the extension headers), and its ports and TCP flags when it has
/// them (SEMANTICS "The window": not a later fragment, and its whole TCP or
/// UDP header captured), decoded by hand.
fn transport(p: &Pkt<'_>) -> (u8, Option<(u16, u16)>, Option<u8>) {
    let ip = p.ip;
    let (proto, first, l4) = if p.v6 {
        let Chain { proto, at, frag } = chain6(p).expect("a packet of the window");
        let end = (40 + payload_len6(ip)).min(ip.len());
        (proto, frag.is_none_or(|(_, offset)| offset == 0), &ip[at..end])
    } else {
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        let ihl = usize::from(ip[0] & 15) * 4;
        (ip[9], u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0, &ip[ihl.min(total)..total])
    };
    let whole = match proto {
        6 => l4.len() >= 20 && l4[12] >> 4 >= 5 && l4.len() >= usize::from(l4[12] >> 4) * 4,
        17 => l4.len() >= 8,
        _ => false,
    };
    if !(first && whole) {
        return (proto, None, None);
    }
    let ports = (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]));
    (proto, Some(ports), (proto == 6).then(|| l4[13]))
}

/// The packet of a frame that is one.
fn pkt(r: &Rec) -> Pkt<'_> {
    packet_of(&r.bytes).expect("a packet of the window")
}

/// `vinetc analyze` accepts the bundle under the policy (the second verifier, no certificate).
fn analyze(bundle: &Path, policy: &str) {
    let o = vinetc(&["analyze", s(bundle), "--policy", policy]);
    assert_eq!(o.status.code(), Some(0), "analyze {}: {}{}", bundle.display(), text(&o.stdout), text(&o.stderr));
}

#[test]
fn port_firewall_drops_exactly_the_pests_smtp() {
    let dir = scratch("ports");
    let bundle = prove(&dir, "port_firewall", END_USER, &[]);
    analyze(&bundle, END_USER);
    let smtp = |r: &Rec, src, dst, port| {
        src == m(generate::PF_SPAMMER) && dst == m(generate::PF_CLIENT) && matches!(transport(&pkt(r)), (6, Some((_, p)), _) if p == port)
    };
    let drop = |r: &Rec, src, dst| smtp(r, src, dst, 25);
    let none = |_| Vec::new();
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7"];
    let rep = run_and_compare(&dir, "ports.pcap", &args, Expect { drop: &drop, generated: &none }, 25, 0);
    let p = program(&rep, 0);
    assert_eq!(p["discarded"], 25, "5 a burst: a connection to port 25 and a tagged SYN");
    assert_eq!(p["windows"], 5);
    assert!(p["cost_max"].as_u64().unwrap() <= p["certified"].as_u64().unwrap(), "{p}");

    // The same bundle for submission (TCP 587): one SYN a burst.
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7", "--param", "Port=587"];
    let drop = |r: &Rec, src, dst| smtp(r, src, dst, 587);
    run_and_compare(&dir, "ports.pcap", &args, Expect { drop: &drop, generated: &none }, 5, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn anti_amplification_drops_exactly_the_unasked_replies() {
    let dir = scratch("amplification");
    let bundle = prove(&dir, "anti_amplification", END_USER, &[]);
    analyze(&bundle, END_USER);
    let drop = |r: &Rec, src, dst| {
        dst == m(generate::AMP_CLIENT)
            && match transport(&pkt(r)) {
                (17, Some((53, dport)), _) => src != m(generate::AMP_RESOLVER) || dport < 1024,
                (17, Some((123, _)), _) => src != m(generate::AMP_TIME),
                _ => false,
            }
    };
    let none = |_| Vec::new();
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7"];
    // 4 bursts: 6 replies from each of 4 reflectors, and the resolver's 3 to well-known ports.
    let rep = run_and_compare(&dir, "amplification.pcap", &args, Expect { drop: &drop, generated: &none }, 108, 0);
    let p = program(&rep, 0);
    assert_eq!(p["discarded"], 108);
    assert!(p["cost_max"].as_u64().unwrap() <= p["certified"].as_u64().unwrap(), "{p}");

    // A client that uses the reflector 198.51.100.53 as its resolver: its replies pass
    // (24 fewer), and the real resolver's answers are now unasked (8 more).
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7", "--param", "Resolver=198.51.100.53"];
    let drop2 = |r: &Rec, src, dst| {
        dst == m(generate::AMP_CLIENT)
            && match transport(&pkt(r)) {
                (17, Some((53, dport)), _) => src != m(ip(198, 51, 100, 53)) || dport < 1024,
                (17, Some((123, _)), _) => src != m(generate::AMP_TIME),
                _ => false,
            }
    };
    run_and_compare(&dir, "amplification.pcap", &args, Expect { drop: &drop2, generated: &none }, 108 - 24 + 8, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn syn_worm_blocker_drops_exactly_the_worms_connection_attempts() {
    let dir = scratch("synworm");
    let bundle = prove(&dir, "syn_worm_blocker", EDGE, &[]);
    analyze(&bundle, EDGE);
    // The rule, applied to the capture by hand: per window and source, the SYNs
    // (without ACK) into 10.0.0.0/24; more than 8 to port 445, or more than 16
    // distinct ports, and they are all dropped.
    let input = read_pcap(&root().join("examples/traffic/synworm.pcap"));
    let syn_of = |r: &Rec| -> Option<(usize, u128, u16)> {
        let p = packet_of(&r.bytes)?;
        match transport(&p) {
            (6, Some((_, dport)), Some(flags)) if flags & 0x12 == 0x02 && in_prefix(p.dst, ip(10, 0, 0, 0), 24) => {
                Some((burst(r), p.src, dport))
            }
            _ => None,
        }
    };
    let mut tries: std::collections::BTreeMap<(usize, u128), Vec<u16>> = Default::default();
    for (b, src, dport) in input.iter().filter_map(syn_of) {
        tries.entry((b, src)).or_default().push(dport);
    }
    let worms: std::collections::BTreeSet<(usize, u128)> = tries
        .iter()
        .filter(|(_, ports)| {
            let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
            ports.iter().filter(|&&p| p == 445).count() > 8 || distinct.len() > 16
        })
        .map(|(k, _)| *k)
        .collect();
    let hand: std::collections::BTreeSet<(usize, u128)> = generate::SYN_WORMS.iter().map(|&(s, b, _)| (b, m(s))).collect();
    assert_eq!(worms, hand, "the generator's worms are the rule's");
    let drop = |r: &Rec, _, _| syn_of(r).is_some_and(|(b, src, _)| worms.contains(&(b, src)));
    let none = |_| Vec::new();
    let total: u64 = generate::SYN_WORMS.iter().map(|w| w.2).sum();
    assert_eq!(total, 43);
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.0/24"];
    let rep = run_and_compare(&dir, "synworm.pcap", &args, Expect { drop: &drop, generated: &none }, 43, 0);
    let p = program(&rep, 0);
    assert_eq!(p["discarded"], 43);
    assert_eq!(p["params"]["N"], "8");
    assert!(p["cost_max"].as_u64().unwrap() <= p["certified"].as_u64().unwrap(), "{p}");

    // N = 7: 203.0.113.62 (exactly 8 SYNs to 445) is a worm too; and .68's 8.
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.0/24", "--param", "N=7"];
    let drop7 = |r: &Rec, src, dst| {
        drop(r, src, dst)
            || (syn_of(r).is_some_and(|(b, s, _)| (b, s) == (0, m(ip(203, 0, 113, 62))) || (b, s) == (1, m(ip(203, 0, 113, 68)))))
    };
    run_and_compare(&dir, "synworm.pcap", &args, Expect { drop: &drop7, generated: &none }, 43 + 8 + 20, 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// The IPv6 and dual-stack examples are as `vinetc fmt` writes them
/// (`lang/tests/format.rs` reads the programs of `examples/` itself, not of
/// its subdirectories).
#[test]
fn ipv6_and_dual_stack_examples_are_formatted() {
    let o = vinetc(&["fmt", "--check", "examples/ipv6", "examples/dualstack"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
}

/// A manifest of installations, each (bundle, THIS_IP, THIS_SUBNET_IP (for
/// the edge-router policy), parameters as the body of a TOML inline table).
fn manifest(dir: &Path, name: &str, entries: &[(&Path, &str, Option<&str>, &str)]) -> PathBuf {
    let mut t = String::new();
    for (bundle, this_ip, subnet, params) in entries {
        t += &format!("[[install]]\nbundle = \"{}\"\nthis_ip = \"{this_ip}\"\n", bundle.display());
        if let Some(net) = subnet {
            t += &format!("policy = \"{}\"\nthis_subnet = \"{net}\"\n", root().join(EDGE).display());
        }
        if !params.is_empty() {
            t += &format!("params = {{ {params} }}\n");
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, t).unwrap();
    path
}

/// The GENERATEs a program skipped (source and destination of different
/// families), as `vinetc run --format json` reports them for each program.
fn skipped(p: &Value) -> Option<u64> {
    Some(p["skipped_generations"].as_u64().expect("each program reports skipped_generations"))
}

/// A field of each program of a report.
fn per_program(report: &Value, field: &str) -> Vec<Value> {
    report["programs"].as_array().unwrap().iter().map(|p| p[field].clone()).collect()
}

/// The pest's packets to the client in `firewall6.pcap`, over IPv4 and over IPv6.
fn pest4(src: u128, dst: u128) -> bool {
    src == m(generate::FW6_BAD4) && dst == m(generate::FW6_CLIENT4)
}
fn pest6(src: u128, dst: u128) -> bool {
    src == generate::FW6_BAD && dst == generate::FW6_CLIENT
}

#[test]
fn ipv6_firewall_drops_exactly_the_pests_ipv6_packets() {
    let dir = scratch("firewall6");
    let bundle = prove(&dir, "ipv6/firewall", END_USER, &[]);
    analyze(&bundle, END_USER);
    let (per4, per6) = generate::FW6_PER_BURST;
    let bursts = generate::FW6_BURSTS;
    let none = |_| Vec::new();
    // 18 a burst: TCP, UDP, ICMPv6, behind Hop-by-Hop, Destination Options
    // and Routing headers, tagged, fragments (first, later, orphaned, a
    // first cut inside its TCP header), a TCP header cut short and a packet
    // cut inside its Hop-by-Hop header (a packet without ports). Not: the
    // pest to 2001:db8::8, its neighbour, the replies, IPv4-mapped
    // addresses (no packets of a window), a frame cut inside the fixed header.
    let drop = |_: &Rec, src, dst| pest6(src, dst);
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "2001:db8::7"];
    let rep = run_and_compare(&dir, "firewall6.pcap", &args, Expect { drop: &drop, generated: &none }, per6 * bursts, 0);
    let p = program(&rep, 0);
    assert_eq!(p["discarded"], per6 * bursts);
    assert_eq!(p["windows"], bursts, "one window per burst");
    assert_eq!(p["this_ip"], "2001:db8::7");
    assert_eq!(p["params"]["SrcIP"], "2001:db8:bad::9");
    assert!(p["cost_max"].as_u64().unwrap() <= p["certified"].as_u64().unwrap(), "{p}");

    // The IPv4 example over the same capture: the IPv4 pest only. And the
    // same bundle, given IPv6 addresses at install time, is the IPv6 firewall.
    let fw = prove(&dir, "firewall", END_USER, &[]);
    let drop4 = |_: &Rec, src, dst| pest4(src, dst);
    let args = [s(&fw), "--policy", END_USER, "--this-ip", "10.0.0.7"];
    run_and_compare(&dir, "firewall6.pcap", &args, Expect { drop: &drop4, generated: &none }, per4 * bursts, 0);
    let args = [s(&fw), "--policy", END_USER, "--this-ip", "2001:db8::7", "--param", "SrcIP=2001:db8:bad::9"];
    let rep = run_and_compare(&dir, "firewall6.pcap", &args, Expect { drop: &drop, generated: &none }, per6 * bursts, 0);
    assert_eq!(program(&rep, 0)["params"]["SrcIP"], "2001:db8:bad::9");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dual_stack_firewall_drops_the_pest_over_both_families_and_nothing_else() {
    let dir = scratch("dualfw");
    let bundle = prove(&dir, "dualstack/firewall", END_USER, &[]);
    analyze(&bundle, END_USER);
    let (per4, per6) = generate::FW6_PER_BURST;
    let bursts = generate::FW6_BURSTS;
    let none = |_| Vec::new();
    // The client's identity has two addresses: one installation each.
    let both = manifest(&dir, "dual.toml", &[(&bundle, "10.0.0.7", None, ""), (&bundle, "2001:db8::7", None, "")]);
    let drop = |_: &Rec, src, dst| pest4(src, dst) || pest6(src, dst);
    let rep = run_and_compare(
        &dir,
        "firewall6.pcap",
        &["--install", s(&both), "--policy", END_USER],
        Expect { drop: &drop, generated: &none },
        (per4 + per6) * bursts,
        0,
    );
    assert_eq!(per_program(&rep, "discarded"), [per4 * bursts, per6 * bursts], "each instance drops its own family's");
    assert_eq!(per_program(&rep, "this_ip"), ["10.0.0.7", "2001:db8::7"]);
    for p in rep["programs"].as_array().unwrap() {
        assert_eq!(p["params"]["SrcIP"], "203.0.113.9");
        assert_eq!(p["params"]["SrcIP6"], "2001:db8:bad::9");
        assert!(p["cost_max"].as_u64().unwrap() <= p["certified"].as_u64().unwrap(), "{p}");
    }
    assert_eq!(rep["router"]["runs"], 2 * bursts, "two instances, each with traffic in each window");

    // Installed for the IPv4 address alone, it is confined to it: the
    // pest's IPv6 packets pass.
    let one = manifest(&dir, "v4.toml", &[(&bundle, "10.0.0.7", None, "")]);
    let drop4 = |_: &Rec, src, dst| pest4(src, dst);
    run_and_compare(
        &dir,
        "firewall6.pcap",
        &["--install", s(&one), "--policy", END_USER],
        Expect { drop: &drop4, generated: &none },
        25,
        0,
    );

    // Retargeted at install time to the neighbours (203.0.113.10: one UDP
    // packet a burst; 2001:db8:bad::10: UDP, a SYN and a datagram in two
    // fragments with the identification of the pest's TCP datagram).
    let params = r#"SrcIP = "203.0.113.10", SrcIP6 = "2001:db8:bad::10""#;
    let both = manifest(&dir, "neighbours.toml", &[(&bundle, "10.0.0.7", None, params), (&bundle, "2001:db8::7", None, params)]);
    let drop = |_: &Rec, src, dst| {
        (src == m(ip(203, 0, 113, 10)) && dst == m(generate::FW6_CLIENT4))
            || (src == generate::FW6_NEIGHBOUR && dst == generate::FW6_CLIENT)
    };
    let rep = run_and_compare(
        &dir,
        "firewall6.pcap",
        &["--install", s(&both), "--policy", END_USER],
        Expect { drop: &drop, generated: &none },
        25,
        0,
    );
    assert_eq!(per_program(&rep, "discarded"), [5, 20]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ipv6_fragments_get_their_datagrams_verdict() {
    // The port firewall (examples/port_firewall.vinet) for the IPv6 client
    // against the IPv6 pest's SMTP. Per burst it drops a SYN, a segment, a
    // segment behind a Destination Options header and the first fragment of
    // a datagram to port 25, which has its ports; that datagram's later
    // fragment, without ports, is dropped with it. The later fragment of a
    // datagram whose first fragment holds no whole TCP header (no ports:
    // passed) passes with it, an orphaned later fragment keeps the
    // program's verdict (no ports: passed), and the neighbour's datagram
    // with the same identification passes.
    let dir = scratch("fragments6");
    let bundle = prove(&dir, "port_firewall", END_USER, &[]);
    let smtp = |r: &Rec, src, dst| pest6(src, dst) && matches!(transport(&pkt(r)), (6, Some((_, 25)), _));
    let input = read_pcap(&root().join("examples/traffic/firewall6.pcap"));
    let by_program = input.iter().filter(|r| packet_of(&r.bytes).is_some_and(|p| smtp(r, p.src, p.dst))).count();
    let (v, given) = verdicts(&input, &smtp);
    let later_dropped =
        input.iter().zip(&v).filter(|(r, &d)| d && packet_of(&r.bytes).and_then(|p| fragment6(&p)).is_some_and(|(_, off)| off > 0)).count();
    assert_eq!((by_program, later_dropped), (20, 5), "4 a burst by the program, and 1 later fragment by its datagram's verdict");
    assert_eq!(given, 30, "per burst, later fragments of 6 datagrams whose first fragment came (not the orphan)");
    let none = |_| Vec::new();
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "2001:db8::7", "--param", "Spammer=2001:db8:bad::9"];
    let rep = run_and_compare(&dir, "firewall6.pcap", &args, Expect { drop: &smtp, generated: &none }, 25, 0);
    assert_eq!(program(&rep, 0)["discarded"], 20, "the program's own drops");
    assert_eq!(rep["router"]["dropped"], 25);
    let _ = std::fs::remove_dir_all(dir);
}

/// The spam filter's drops in `spam6.pcap` (before the fragments' rule), for
/// the sources of one family or both.
fn spam6(families: &'static [bool]) -> impl Fn(&Rec, u128, u128) -> bool {
    move |r: &Rec, src, dst| {
        (dst == generate::SPAM6_CLIENT || dst == m(generate::SPAM6_CLIENT4))
            && families.contains(&!generate::is_mapped(src))
            && generate::SPAMMERS6.iter().any(|&(s, b, _)| s == src && b == burst(r))
    }
}

#[test]
fn ipv6_spam_filter_drops_exactly_the_sources_with_both_words() {
    let dir = scratch("spam6");
    let bundle = prove(&dir, "ipv6/spam_filter", END_USER, &[]);
    analyze(&bundle, END_USER);
    let none = |_| Vec::new();
    let drop = spam6(&[true]);
    // The later fragments whose first fragment came a window earlier get
    // that one's verdict, not the filter's over their own window.
    let input = read_pcap(&root().join("examples/traffic/spam6.pcap"));
    let (v, given) = verdicts(&input, &drop);
    assert_eq!(given, 2);
    for (src, dropped) in generate::SPAM6_LATER_FRAGMENTS {
        let k = input
            .iter()
            .position(|r| packet_of(&r.bytes).is_some_and(|p| p.src == src && fragment6(&p).is_some_and(|(_, off)| off > 0)))
            .unwrap();
        assert_eq!((burst(&input[k]), v[k]), (2, dropped), "the later fragment of {}", addr_text(src));
        assert_eq!(drop(&input[k], src, generate::SPAM6_CLIENT), !dropped, "the filter alone says the opposite");
    }
    let hand: u64 = generate::SPAMMERS6.iter().filter(|s| !generate::is_mapped(s.0)).map(|s| s.2).sum();
    assert_eq!(hand, 18);
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "2001:db8::7"];
    let rep = run_and_compare(&dir, "spam6.pcap", &args, Expect { drop: &drop, generated: &none }, hand + 1, 0);
    let p = program(&rep, 0);
    assert_eq!(p["discarded"], 19, "the filter's own: 18, and ::1a's later fragment, which its datagram's verdict lets pass");
    assert_eq!(p["windows"], 4);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dual_stack_spam_filter_drops_the_spammers_of_both_families() {
    let dir = scratch("dualspam");
    let bundle = prove(&dir, "dualstack/spam_filter", END_USER, &[]);
    analyze(&bundle, END_USER);
    let none = |_| Vec::new();
    let both = manifest(&dir, "dual.toml", &[(&bundle, "10.0.0.7", None, ""), (&bundle, "2001:db8::7", None, "")]);
    let drop = spam6(&[false, true]);
    let rep = run_and_compare(
        &dir,
        "spam6.pcap",
        &["--install", s(&both), "--policy", END_USER],
        Expect { drop: &drop, generated: &none },
        23,
        0,
    );
    assert_eq!(per_program(&rep, "discarded"), [4, 19]);

    // The IPv4 example for 10.0.0.7: 198.51.100.20 and .22 only. 198.51.100.21
    // sent "viagra" over IPv4 and "lottery" in an IPv6 frame from and to
    // IPv4-mapped addresses, which no window holds: it keeps its mail.
    let fw = prove(&dir, "spam_filter", END_USER, &[]);
    let drop4 = spam6(&[false]);
    let args = [s(&fw), "--policy", END_USER, "--this-ip", "10.0.0.7"];
    run_and_compare(&dir, "spam6.pcap", &args, Expect { drop: &drop4, generated: &none }, 4, 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// What the IPv6 aggregator generates in burst `b` for the subnet
/// `net/len`, sent to `me`: one destination list (16 bytes an address) of
/// the broadcast's hosts in the subnet, then each content.
fn multicast6_expectations(net: u128, len: u32, me: u128) -> impl Fn(usize) -> Vec<Gen> {
    move |b: usize| {
        if b >= generate::MC6_CONTENTS.len() {
            return Vec::new();
        }
        let hosts: Vec<u128> = generate::mc6_hosts(b).into_iter().filter(|&h| in_prefix6(h, net, len)).collect();
        if hosts.is_empty() {
            return Vec::new();
        }
        let src = generate::MC6_SOURCE;
        let mut g = address_lists(src, me, &hosts);
        g.extend(generate::MC6_CONTENTS[b].iter().map(|c| Gen { src, dst: me, payload: c.to_vec() }));
        g
    }
}

#[test]
fn ipv6_multicast_replaces_each_broadcast_by_its_contents_and_destination_lists() {
    let dir = scratch("multicast6");
    let bundle = prove(&dir, "ipv6/multicast", EDGE, &[]);
    analyze(&bundle, EDGE);
    let net = db8(1, 0);
    let drop = |_: &Rec, src, dst| src == generate::MC6_SOURCE && in_prefix6(dst, net, 64);
    let gens = multicast6_expectations(net, 64, generate::MC6_ROUTER);
    assert_eq!((0..4).map(|b| gens(b).len()).collect::<Vec<_>>(), [3, 2, 0, 0], "burst C is outside the /64");
    assert_eq!(gens(1)[0].payload.len(), 8 + 16 * 200);
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "2001:db8:1::1", "--this-subnet", "2001:db8:1::/64"];
    let rep = run_and_compare(&dir, "multicast6.pcap", &args, Expect { drop: &drop, generated: &gens }, 320, 5);
    let p = program(&rep, 0);
    assert_eq!((p["discarded"].clone(), p["generated"].clone()), (320.into(), 5.into()));
    assert_eq!(rep["router"]["skipped_generations"], 0);
    assert!(skipped(p).is_none_or(|n| n == 0), "{p}");
    assert_eq!(p["this_subnet"], "2001:db8:1::/64");
    assert!(p["cost_max"].as_u64().unwrap() <= p["certified"].as_u64().unwrap(), "{p}");

    // A /46 holds burst C's 2001:db8:2::/64 too.
    let drop46 = |_: &Rec, src, dst| src == generate::MC6_SOURCE && in_prefix6(dst, db8(0, 0), 46);
    let gens46 = multicast6_expectations(db8(0, 0), 46, generate::MC6_ROUTER);
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "2001:db8:1::1", "--this-subnet", "2001:db8::/46"];
    run_and_compare(&dir, "multicast6.pcap", &args, Expect { drop: &drop46, generated: &gens46 }, 420, 7);

    // THIS_IP an IPv4 address (a router without an IPv6 address of its
    // own): a GENERATE from the IPv6 broadcaster to it sends nothing, and
    // is counted, each time it runs (even of an empty list: its two
    // GENERATEs in each of the 3 windows); the broadcast is dropped all the same.
    let none = |_| Vec::new();
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "2001:db8:1::/64"];
    let rep = run_and_compare(&dir, "multicast6.pcap", &args, Expect { drop: &drop, generated: &none }, 320, 0);
    assert_eq!((rep["router"]["skipped_generations"].clone(), program(&rep, 0)["windows"].clone()), (6.into(), 3.into()));
    assert!(skipped(program(&rep, 0)).is_none_or(|n| n == 6));
    assert_eq!(program(&rep, 0)["faults"], 0, "a skipped generation is no fault");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dual_stack_multicast_aggregates_each_broadcaster_in_its_own_family() {
    let dir = scratch("dualmc");
    let bundle = prove(&dir, "dualstack/multicast", EDGE, &[]);
    analyze(&bundle, EDGE);
    let both = manifest(
        &dir,
        "dual.toml",
        &[(&bundle, "10.0.0.1", Some("10.0.0.0/24"), ""), (&bundle, "2001:db8:1::1", Some("2001:db8:1::/64"), "")],
    );
    let net6 = db8(1, 0);
    let drop = |_: &Rec, src, dst| {
        (src == m(generate::MC_SOURCE) && in_prefix(dst, ip(10, 0, 0, 0), 24)) || (src == generate::MC6_SOURCE && in_prefix6(dst, net6, 64))
    };
    let g6 = multicast6_expectations(net6, 64, generate::MC6_ROUTER);
    // The IPv4 instance (installed first) generates first: a list of
    // 4-byte addresses and its content, in burst A.
    let gens = |b: usize| {
        let (src, me) = (m(generate::MC_SOURCE), m(ip(10, 0, 0, 1)));
        let hosts: Vec<u128> = generate::mc6_hosts4(b).into_iter().map(m).filter(|&h| in_prefix(h, ip(10, 0, 0, 0), 24)).collect();
        let mut g = Vec::new();
        if !hosts.is_empty() {
            g = address_lists(src, me, &hosts);
            g.extend(generate::MC6_CONTENTS4[b].iter().map(|c| Gen { src, dst: me, payload: c.to_vec() }));
        }
        g.extend(g6(b));
        g
    };
    assert_eq!(gens(0)[0].payload.len(), 8 + 4 * 40);
    let rep = run_and_compare(
        &dir,
        "multicast6.pcap",
        &["--install", s(&both), "--policy", EDGE],
        Expect { drop: &drop, generated: &gens },
        360,
        7,
    );
    assert_eq!(per_program(&rep, "discarded"), [40, 320]);
    assert_eq!(per_program(&rep, "generated"), [2, 5]);
    assert_eq!(rep["router"]["skipped_generations"], 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// The worm blocker's rule applied to `worm6.pcap` by hand: per burst and
/// source, the distinct destinations in `prefixes`; more than `n`, a scanner.
fn scanners(prefixes: &[(u128, u32)], n: usize) -> std::collections::BTreeSet<(usize, u128)> {
    let input = read_pcap(&root().join("examples/traffic/worm6.pcap"));
    let mut hosts: std::collections::BTreeMap<(usize, u128), std::collections::BTreeSet<u128>> = Default::default();
    for r in &input {
        if let Some(p) = packet_of(&r.bytes).filter(|p| prefixes.iter().any(|&(net, len)| in_prefix6(p.dst, net, len))) {
            hosts.entry((burst(r), p.src)).or_default().insert(p.dst);
        }
    }
    hosts.into_iter().filter(|(_, h)| h.len() > n).map(|(k, _)| k).collect()
}

#[test]
fn ipv6_worm_blocker_drops_exactly_the_scanners() {
    let dir = scratch("worm6");
    let bundle = prove(&dir, "ipv6/worm_blocker", EDGE, &[]);
    analyze(&bundle, EDGE);
    let subnet = generate::WORM6_SUBNET;
    let worms: std::collections::BTreeSet<(usize, u128)> =
        generate::WORMS6.iter().filter(|w| !generate::is_mapped(w.0)).map(|&(s, b, _)| (b, s)).collect();
    assert_eq!(scanners(&[subnet], 8), worms, "the generator's scanners are the rule's");
    let hand: u64 = generate::WORMS6.iter().filter(|w| !generate::is_mapped(w.0)).map(|w| w.2).sum();
    assert_eq!(hand, 92);
    let drop = |r: &Rec, src, dst| in_prefix6(dst, subnet.0, subnet.1) && worms.contains(&(burst(r), src));
    let none = |_| Vec::new();
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "2001:db8:1::1", "--this-subnet", "2001:db8:1::/64"];
    let rep = run_and_compare(&dir, "worm6.pcap", &args, Expect { drop: &drop, generated: &none }, 92, 0);
    assert_eq!(program(&rep, 0)["discarded"], 92);
    assert_eq!(program(&rep, 0)["params"]["N"], "8");

    // N = 7: 2001:db8:bad::51 (exactly 8 hosts, 12 packets) is a scanner too.
    let worms7 = scanners(&[subnet], 7);
    assert_eq!(worms7.len(), worms.len() + 1);
    let drop7 = |r: &Rec, src, dst| in_prefix6(dst, subnet.0, subnet.1) && worms7.contains(&(burst(r), src));
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "2001:db8:1::1", "--this-subnet", "2001:db8:1::/64", "--param", "N=7"];
    run_and_compare(&dir, "worm6.pcap", &args, Expect { drop: &drop7, generated: &none }, 104, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dual_stack_worm_blocker_drops_the_scanners_of_each_prefix() {
    let dir = scratch("dualworm");
    let bundle = prove(&dir, "dualstack/worm_blocker", EDGE, &[]);
    analyze(&bundle, EDGE);
    let prefixes = [(m(ip(10, 0, 0, 0)), 120), generate::WORM6_SUBNET];
    let worms: std::collections::BTreeSet<(usize, u128)> = generate::WORMS6.iter().map(|&(s, b, _)| (b, s)).collect();
    assert_eq!(scanners(&prefixes, 8), worms, "the generator's scanners are the rule's");
    let both = manifest(
        &dir,
        "dual.toml",
        &[(&bundle, "10.0.0.1", Some("10.0.0.0/24"), ""), (&bundle, "2001:db8:1::1", Some("2001:db8:1::/64"), "")],
    );
    let drop = |r: &Rec, src, dst| prefixes.iter().any(|&(net, len)| in_prefix6(dst, net, len)) && worms.contains(&(burst(r), src));
    let none = |_| Vec::new();
    let rep =
        run_and_compare(&dir, "worm6.pcap", &["--install", s(&both), "--policy", EDGE], Expect { drop: &drop, generated: &none }, 112, 0);
    assert_eq!(per_program(&rep, "discarded"), [20, 92]);
    assert_eq!(per_program(&rep, "this_subnet"), ["10.0.0.0/24", "2001:db8:1::/64"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn install_manifest_runs_many_bundles_for_many_clients() {
    let dir = scratch("manifest");
    let fw = prove(&dir, "firewall", END_USER, &[]);
    let spam = prove(&dir, "spam_filter", END_USER, &[]);
    let mc = prove(&dir, "multicast", EDGE, &[]);
    let manifest = dir.join("clients.toml");
    let edge = root().join(EDGE);
    std::fs::write(
        &manifest,
        format!(
            r#"
[[install]]
bundle = "firewall.vpc"
this_ip = "10.0.0.7"

[[install]]
bundle = "firewall.vpc"
this_ip = "10.0.0.8"
params = {{ SrcIP = "203.0.113.9" }}

[[install]]
bundle = "spam_filter.vpc"
this_ip = "10.0.0.7"

[[install]]
bundle = "firewall.vpc"
this_ip = "10.0.0.7"
params = {{ SrcIP = "203.0.113.10" }}

[[install]]
bundle = "multicast.vpc"
policy = "{}"
this_ip = "10.0.0.1"
this_subnet = "10.0.0.0/24"
"#,
            edge.display()
        ),
    )
    .unwrap();
    let _ = (&fw, &spam, &mc);
    let drop = |_: &Rec, src, dst| {
        (src == m(generate::FW_BAD) && (dst == m(ip(10, 0, 0, 7)) || dst == m(ip(10, 0, 0, 8))))
            || (src == m(ip(203, 0, 113, 10)) && dst == m(ip(10, 0, 0, 7)))
    };
    let none = |_| Vec::new();
    let rep = run_and_compare(
        &dir,
        "firewall.pcap",
        &["--install", s(&manifest), "--policy", END_USER],
        Expect { drop: &drop, generated: &none },
        65,
        0,
    );
    let discarded: Vec<u64> = rep["programs"].as_array().unwrap().iter().map(|p| p["discarded"].as_u64().unwrap()).collect();
    assert_eq!(discarded, [45, 10, 0, 10, 0]);
    assert_eq!(rep["router"]["runs"], 5 * 5, "five installations, each with traffic in each of five windows");

    // The single-bundle arguments and --install exclude each other.
    let o = vinetc(&["run", s(&fw), "--install", s(&manifest), "--policy", END_USER, "--pcap", "x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_exit_codes_and_usage_errors() {
    let dir = scratch("usage");
    let fw = prove(&dir, "firewall", END_USER, &[]);
    let mc = prove(&dir, "multicast", EDGE, &[]);
    let pcap = root().join("examples/traffic/firewall.pcap");
    let code = |args: &[&str]| {
        let o = vinetc(args);
        (o.status.code(), text(&o.stderr))
    };
    // Edge-router policy without --this-subnet: a usage error naming it.
    let (c, err) = code(&["run", s(&mc), "--policy", EDGE, "--this-ip", "10.0.0.1", "--pcap", s(&pcap)]);
    assert_eq!(c, Some(2));
    assert!(err.contains("--this-subnet"), "{err}");
    // Host bits in the prefix.
    let (c, err) = code(&["run", s(&mc), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.1/24", "--pcap", s(&pcap)]);
    assert_eq!(c, Some(2));
    assert!(err.contains("host bits"), "{err}");
    // A parameter the program does not declare, and one of the wrong type.
    let (c, err) = code(&["run", s(&fw), "--policy", END_USER, "--this-ip", "10.0.0.7", "--pcap", s(&pcap), "--param", "Nope=1"]);
    assert_eq!(c, Some(2));
    assert!(err.contains("SrcIP"), "{err}");
    let (c, err) = code(&["run", s(&fw), "--policy", END_USER, "--this-ip", "10.0.0.7", "--pcap", s(&pcap), "--param", "SrcIP=viagra"]);
    assert_eq!(c, Some(2));
    assert!(err.contains("address"), "{err}");
    // A bundle checked against another policy: refused, exit 1, one line.
    let (c, err) = code(&["run", s(&mc), "--policy", END_USER, "--this-ip", "10.0.0.1", "--pcap", s(&pcap)]);
    assert_eq!(c, Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("rejected"), "{err}");
    // A tampered bundle: exit 1.
    let mut bytes = std::fs::read(&fw).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    let bad = dir.join("bad.vpc");
    std::fs::write(&bad, bytes).unwrap();
    let (c, _) = code(&["run", s(&bad), "--policy", END_USER, "--this-ip", "10.0.0.7", "--pcap", s(&pcap)]);
    assert_eq!(c, Some(1));
    // Unreadable capture, not a capture, missing bundle: exit 2.
    let (c, _) = code(&["run", s(&fw), "--policy", END_USER, "--this-ip", "10.0.0.7", "--pcap", "/nonexistent.pcap"]);
    assert_eq!(c, Some(2));
    let (c, _) = code(&["run", s(&fw), "--policy", END_USER, "--this-ip", "10.0.0.7", "--pcap", s(&fw)]);
    assert_eq!(c, Some(2));
    let (c, _) = code(&["run", "/nonexistent.vpc", "--policy", END_USER, "--this-ip", "10.0.0.7", "--pcap", s(&pcap)]);
    assert_eq!(c, Some(2));
    // Missing BUNDLE and --this-ip without --install: clap's usage error.
    let (c, _) = code(&["run", "--policy", END_USER, "--pcap", s(&pcap)]);
    assert_eq!(c, Some(2));
    // Text output names the program, its bound and the router totals.
    let o = vinetc(&["run", s(&fw), "--policy", END_USER, "--this-ip", "10.0.0.7", "--pcap", s(&pcap)]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    for part in ["firewall.vpc", "10.0.0.7", "1030", "router: 705 frames in (690 IPv4 or IPv6)", "45 dropped", "10 unparsed", "5 not IP"] {
        assert!(out.contains(part), "{part} missing in\n{out}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn captures() -> Vec<PathBuf> {
    let dir = root().join("tests/data/pcap");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("capture corpus {} is missing ({e})", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    v.sort();
    v
}

/// An address as text: IPv4-mapped ones dotted, others as IPv6 (RFC 5952).
fn addr_text(a: u128) -> String {
    if generate::is_mapped(a) {
        std::net::Ipv4Addr::from(a as u32).to_string()
    } else {
        std::net::Ipv6Addr::from(a).to_string()
    }
}

/// `vinetc run` over every shared capture, with the example programs
/// installed (from a manifest) for the first IPv4 and IPv6 destinations of
/// each file, the dual-stack ones for a pair of them (one installation per
/// address or prefix), and worm blockers for all of IPv4 (0.0.0.0/0) and
/// for the whole address space (::/0): exit 0, or 2 for a capture that is
/// damaged (after replaying and reporting the frames before the damage) or
/// not a capture at all; every frame accounted for; the IPv6 packets in the
/// windows, as many as the parser finds (and, for Ethernet frames, exactly
/// those this file decodes by hand); OUT.pcap re-reads.
#[test]
fn vinetc_run_replays_every_shared_capture() {
    use vinet_engine::packet::{parse_frame, LinkType, Parsed};
    use vinet_engine::pcap::CaptureReader;
    let dir = scratch("corpus");
    for (example, policy) in [
        ("firewall", END_USER),
        ("spam_filter", END_USER),
        ("multicast", EDGE),
        ("worm_blocker", EDGE),
        ("ipv6/firewall", END_USER),
        ("ipv6/spam_filter", END_USER),
        ("ipv6/multicast", EDGE),
        ("ipv6/worm_blocker", EDGE),
        ("dualstack/firewall", END_USER),
        ("dualstack/multicast", EDGE),
    ] {
        prove(&dir, example, policy, &[]);
    }
    let lib = dir.join("lemmas.lib");
    let o = vinetc(&["lemmas", "build", "lemmas/", "-o", s(&lib)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let edge = root().join(EDGE);
    let files = captures();
    assert!(files.len() >= 400);
    let (mut frames, mut dropped, mut generated, mut damaged, mut unreadable) = (0u64, 0u64, 0u64, 0, 0);
    let (mut v6_packets, mut v6_by_hand, mut v6_seen_by_programs, mut v6_files) = (0u64, 0u64, 0u64, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Our own count of the file's frames and of what they are (by the
        // parser, and for Ethernet frames by hand too), and its first
        // destinations of each family.
        let (mut expected_frames, mut v4, mut v6, mut not_ip, mut unparsed) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut dests: Vec<(u128, u128)> = Vec::new();
        let mut dests6: Vec<(u128, u128)> = Vec::new();
        let mut is_damaged = false;
        let readable = match CaptureReader::open(path) {
            Ok(mut r) => {
                while let Some(f) = r.next_frame() {
                    let Ok(f) = f else {
                        is_damaged = true;
                        break;
                    };
                    expected_frames += 1;
                    let parsed = parse_frame(f.link, f.data);
                    if f.link == LinkType::Ethernet && f.data.get(12..14).is_some_and(|t| t == [0x86, 0xdd] || t == [0x81, 0x00]) {
                        // Frames of the two ethertypes this file decodes: the
                        // parser and the hand decoding agree on each.
                        let hand = packet_of(f.data).filter(|p| p.v6).map(|p| (p.src, p.dst));
                        let engine = match parsed {
                            Parsed::Packet(p) if p.v6 => Some((p.src, p.dst)),
                            _ => None,
                        };
                        assert_eq!(hand, engine, "{name}: frame {expected_frames}: an IPv6 packet by hand, and by the parser");
                        v6_by_hand += u64::from(hand.is_some());
                    }
                    match parsed {
                        Parsed::Packet(p) => {
                            let d = if p.v6 { &mut dests6 } else { &mut dests };
                            if d.len() < 3 && !d.iter().any(|x| x.1 == p.dst) {
                                d.push((p.src, p.dst));
                            }
                            if p.v6 {
                                v6 += 1;
                            } else {
                                v4 += 1;
                            }
                        }
                        Parsed::NotIp => not_ip += 1,
                        Parsed::Unparsed => unparsed += 1,
                    }
                }
                true
            }
            Err(_) => false,
        };
        let mut mf = String::new();
        let a = addr_text;
        let install = |mf: &mut String, bundle: &str, this_ip: u128, subnet: Option<String>, params: &str| {
            *mf += &format!("[[install]]\nbundle = \"{bundle}\"\nthis_ip = \"{}\"\nparams = {{ {params} }}\n", a(this_ip));
            if let Some(net) = subnet {
                *mf += &format!("policy = \"{}\"\nthis_subnet = \"{net}\"\n", edge.display());
            }
        };
        for &(src, dst) in &dests {
            install(&mut mf, "firewall.vpc", dst, None, &format!("SrcIP = \"{}\"", a(src)));
            install(&mut mf, "spam_filter.vpc", dst, None, "Word1 = \"\", Word2 = \"\"");
            let net = dst & !0xff;
            install(&mut mf, "multicast.vpc", net | 1, Some(format!("{}/24", a(net))), &format!("BroadcastIP = \"{}\"", a(src)));
        }
        for &(src, dst) in &dests6 {
            install(&mut mf, "ipv6-firewall.vpc", dst, None, &format!("SrcIP = \"{}\"", a(src)));
            install(&mut mf, "ipv6-spam_filter.vpc", dst, None, "Word1 = \"\", Word2 = \"\"");
            let net = dst & !u128::from(u64::MAX);
            install(&mut mf, "ipv6-multicast.vpc", net | 1, Some(format!("{}/64", a(net))), &format!("BroadcastIP = \"{}\"", a(src)));
        }
        // A dual-stack client: the first IPv4 and the first IPv6 destination.
        let dual = dests.first().zip(dests6.first());
        if let Some((&(s4, d4), &(s6, d6))) = dual {
            let params = format!("SrcIP = \"{}\", SrcIP6 = \"{}\"", a(s4), a(s6));
            install(&mut mf, "dualstack-firewall.vpc", d4, None, &params);
            install(&mut mf, "dualstack-firewall.vpc", d6, None, &params);
            let params = format!("BroadcastIP = \"{}\", BroadcastIP6 = \"{}\"", a(s4), a(s6));
            let (n4, n6) = (d4 & !0xff, d6 & !u128::from(u64::MAX));
            install(&mut mf, "dualstack-multicast.vpc", n4 | 1, Some(format!("{}/24", a(n4))), &params);
            install(&mut mf, "dualstack-multicast.vpc", n6 | 1, Some(format!("{}/64", a(n6))), &params);
        }
        install(&mut mf, "worm_blocker.vpc", m(ip(10, 0, 0, 1)), Some("0.0.0.0/0".into()), "N = 2");
        install(&mut mf, "ipv6-worm_blocker.vpc", db8(1, 1), Some("::/0".into()), "N = 2");
        let manifest = dir.join("clients.toml");
        std::fs::write(&manifest, mf).unwrap();
        let out = dir.join("out.pcap");
        let _ = std::fs::remove_file(&out);
        let o = vinetc(&[
            "run",
            "--install",
            s(&manifest),
            "--policy",
            END_USER,
            "--pcap",
            s(path),
            "--out",
            s(&out),
            "--lemmas",
            s(&lib),
            "--format",
            "json",
        ]);
        let code = o.status.code();
        if !readable {
            assert_eq!(code, Some(2), "{name}: {}", text(&o.stderr));
            unreadable += 1;
            continue;
        }
        assert_eq!(code, Some(if is_damaged { 2 } else { 0 }), "{name}: {}", text(&o.stderr));
        let rep: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{name}: {e}: {}", text(&o.stdout)));
        let r = &rep["router"];
        let get = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{name}: no router.{k} in {rep}"));
        assert_eq!(get("frames_in"), expected_frames, "{name}");
        assert_eq!(get("forwarded") + get("dropped"), expected_frames, "{name}: a frame went missing");
        assert_eq!(get("packets_in") + get("not_ip") + get("unparsed"), expected_frames, "{name}: every frame is of one kind");
        assert_eq!((get("packets_in"), get("not_ip"), get("unparsed")), (v4 + v6, not_ip, unparsed), "{name}: the parser's outcomes");
        assert_eq!(get("faults"), 0, "{name}: {rep}");
        assert_eq!(rep["capture_error"].is_null(), !is_damaged, "{name}");
        let progs = rep["programs"].as_array().unwrap();
        assert_eq!(progs.len(), dests.len() * 3 + dests6.len() * 3 + if dual.is_some() { 4 } else { 0 } + 2, "{name}");
        for p in progs {
            assert!(p["cost_max"].as_u64().unwrap() <= p["certified"].as_u64().unwrap(), "{name}: {p}");
            assert_eq!(p["faults"], 0, "{name}: {p}");
        }
        // The two worm blockers: every IPv4 packet is in 0.0.0.0/0, every
        // packet in ::/0; so the IPv6 packets are the difference.
        let (worm4, worm_all) = (&progs[progs.len() - 2], &progs[progs.len() - 1]);
        assert_eq!(worm4["packets_in"], v4, "{name}: the IPv4 packets are 0.0.0.0/0's");
        assert_eq!(worm_all["packets_in"], v4 + v6, "{name}: every packet of a window is in ::/0");
        let first6 = dests.len() * 3;
        v6_seen_by_programs += progs[first6..first6 + dests6.len() * 3].iter().map(|p| p["packets_in"].as_u64().unwrap()).sum::<u64>();
        let dropped_by_programs: u64 = progs.iter().map(|p| p["discarded"].as_u64().unwrap()).sum();
        let fragment_verdicts = get("fragment_verdicts");
        assert!(dropped_by_programs + fragment_verdicts >= get("dropped"), "{name}: drops are OR-ed, never invented");
        let gen_by_programs: u64 = progs.iter().map(|p| p["generated"].as_u64().unwrap()).sum();
        assert_eq!(gen_by_programs, get("generated"), "{name}");
        assert_eq!(get("skipped_generations"), 0, "{name}: every GENERATE here is from and to one family");
        if expected_frames > 0 {
            assert_eq!(read_pcap(&out).len() as u64, get("forwarded") + get("generated"), "{name}: OUT.pcap");
        }
        frames += expected_frames;
        dropped += get("dropped");
        generated += get("generated");
        damaged += usize::from(is_damaged);
        v6_packets += v6;
        v6_files += usize::from(v6 > 0);
    }
    eprintln!(
        "vinetc run over {} captures: {frames} frames, {dropped} dropped, {generated} generated, {damaged} damaged, {unreadable} unreadable; \
         {v6_packets} IPv6 packets in {v6_files} captures ({v6_by_hand} of Ethernet frames decoded by hand), {v6_seen_by_programs} in IPv6 clients' buckets",
        files.len()
    );
    assert!(frames > 3000 && dropped > 0 && generated > 0);
    assert!(
        v6_files >= 20 && v6_packets > 200 && v6_by_hand > 100 && v6_seen_by_programs > 200,
        "the corpus has IPv6, and its packets are in windows"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The engine benchmark runs bundles proved ahead of time (it may not link
/// the prover): they must still be accepted by the checker, with their own
/// lemma library and with the one vinetc ships. If this fails, run
/// `engine/benches/fixtures/regenerate.sh`.
#[test]
fn benchmark_fixtures_are_still_accepted() {
    let dir = root().join("engine/benches/fixtures");
    let lib = dir.join("lemmas.lib");
    for (bundle, policy) in
        [("firewall", END_USER), ("spam_filter", END_USER), ("multicast", EDGE), ("worm_blocker", EDGE), ("port_firewall", END_USER)]
    {
        let b = dir.join(format!("{bundle}.vpc"));
        for lemmas in [Some(&lib), None] {
            let mut args = vec!["check", s(&b), "--policy", policy];
            if let Some(l) = lemmas {
                args.extend(["--lemmas", s(l)]);
            }
            let o = vinetc(&args);
            assert_eq!(o.status.code(), Some(0), "{bundle}: {} (run engine/benches/fixtures/regenerate.sh)", text(&o.stderr));
        }
    }
}
