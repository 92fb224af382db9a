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
//! Also here: `vinetc run` over every capture of `tests/data/pcap`, with
//! programs installed from a manifest, checking exit status and accounting.

#[allow(dead_code)]
#[path = "../examples/traffic/generate.rs"]
mod generate;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use generate::ip;
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

/// Prove an example into `dir`; the bundle's path.
fn prove(dir: &Path, example: &str, policy: &str, params: &[&str]) -> PathBuf {
    let out = dir.join(format!("{example}.vpc"));
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

/// The IPv4 packet of an Ethernet frame (behind any 802.1Q tags), by hand:
/// (src, dst, the IPv4 bytes). Only complete headers count.
fn ipv4_of(frame: &[u8]) -> Option<(u32, u32, &[u8])> {
    let mut off = 12;
    let mut ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    while ty == 0x8100 {
        off += 4;
        ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    let ip = frame.get(off + 2..)?;
    if ty != 0x0800 || ip.len() < 20 || ip[0] != 0x45 {
        return None;
    }
    // A valid IPv4 header makes a packet, whatever follows it (a TCP or UDP
    // header cut short included).
    let a = |i: usize| u32::from_be_bytes([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]);
    Some((a(12), a(16), ip))
}

/// Burst index of a frame (bursts are `BURST_US` apart, a few ms long).
fn burst(r: &Rec) -> usize {
    let us = r.ts_ns / 1000 - u64::from(generate::EPOCH) * 1_000_000;
    (us / u64::from(generate::BURST_US)) as usize
}

/// A generated packet: Ethernet with zero addresses (PcapOut's framing),
/// IPv4/UDP from and to port 9910 (SEMANTICS "GENERATE").
#[derive(Clone, Debug, PartialEq, Eq)]
struct Gen {
    src: u32,
    dst: u32,
    payload: Vec<u8>,
}

fn as_generated(frame: &[u8]) -> Option<Gen> {
    if frame.get(..12)? != [0u8; 12] {
        return None;
    }
    let (src, dst, ip) = ipv4_of(frame)?;
    assert_eq!(ip[9], 17, "generated packets are UDP");
    assert_eq!(&ip[20..24], &[0x26, 0xb6, 0x26, 0xb6], "from and to port 9910");
    assert_eq!(ip[8], 64, "TTL 64");
    // Header checksum: the one's-complement sum of a correct header is 0xffff.
    let sum = ip[..20].chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum::<u32>();
    assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "IPv4 header checksum");
    let udp_len = u16::from_be_bytes([ip[24], ip[25]]) as usize;
    assert_eq!(udp_len, ip.len() - 20);
    Some(Gen { src, dst, payload: ip[28..].to_vec() })
}

/// What a run should do to a capture.
struct Expect<'a> {
    drop: &'a dyn Fn(&Rec, u32, u32) -> bool,
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
    assert_eq!(r["packets_in"], facts.ipv4, "{capture}");
    assert_eq!(r["unparsed"], facts.malformed, "{capture}");
    assert_eq!(r["not_ipv4"], facts.not_ipv4, "{capture}");
    assert_eq!(r["dropped"], dropped, "{capture}: {report}");
    assert_eq!(r["generated"], generated, "{capture}: {report}");
    assert_eq!(r["forwarded"], facts.frames - dropped, "{capture}");
    assert_eq!(r["faults"], 0, "{capture}");

    // Frame by frame: per burst, the frames not dropped in arrival order,
    // then the burst's generated packets.
    let input = read_pcap(&input_path);
    let output = read_pcap(&out);
    let mut want_fwd = Vec::new();
    let mut want_gen = Vec::new();
    let mut n_drop = 0u64;
    let last_burst = input.iter().map(burst).max().unwrap();
    for b in 0..=last_burst {
        for rec in input.iter().filter(|r| burst(r) == b) {
            let drop = ipv4_of(&rec.bytes).is_some_and(|(src, dst, _)| (expect.drop)(rec, src, dst));
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

fn program(report: &Value, i: usize) -> &Value {
    &report["programs"][i]
}

fn in_prefix(a: u32, net: u32, len: u32) -> bool {
    a >> (32 - len) == net >> (32 - len)
}

/// The destination-list packets of GENERATE(src, dst, Destinations): at
/// most 360 addresses a packet (SEMANTICS).
fn address_lists(src: u32, dst: u32, hosts: &[u32]) -> Vec<Gen> {
    hosts
        .chunks(360)
        .map(|c| {
            let mut p = b"VND1".to_vec();
            p.extend_from_slice(&(c.len() as u32).to_be_bytes());
            c.iter().for_each(|a| p.extend_from_slice(&a.to_be_bytes()));
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
        assert!(facts.malformed > 0 && facts.not_ipv4 > 0 && facts.ipv4 > 400, "{name}: {facts:?}");
        assert!(bytes.len() < 200_000, "{name} is {} bytes", bytes.len());
    }
}

#[test]
fn firewall_drops_exactly_the_pests_packets() {
    let dir = scratch("firewall");
    let bundle = prove(&dir, "firewall", END_USER, &[]);
    let drop = |_: &Rec, src, dst| src == generate::FW_BAD && dst == generate::FW_CLIENT;
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
    let drop = |_: &Rec, src, dst| src == ip(203, 0, 113, 10) && dst == generate::FW_CLIENT;
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7", "--param", "SrcIP=203.0.113.10"];
    let rep = run_and_compare(&dir, "firewall.pcap", &args, Expect { drop: &drop, generated: &none }, 10, 0);
    assert_eq!(program(&rep, 0)["params"]["SrcIP"], "203.0.113.10");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn spam_filter_drops_exactly_the_sources_with_both_words() {
    let dir = scratch("spam");
    let bundle = prove(&dir, "spam_filter", END_USER, &[]);
    let drop = |r: &Rec, src, dst| dst == generate::SPAM_CLIENT && generate::SPAMMERS.iter().any(|&(s, b, _)| s == src && b == burst(r));
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
    let gap = |r: &Rec, src, dst| dst == generate::SPAM_CLIENT && src == ip(198, 51, 100, 15) && burst(r) == 1;
    let rep = run_and_compare(&dir, "spam.pcap", &args, Expect { drop: &gap, generated: &none }, 2, 0);
    assert_eq!(program(&rep, 0)["params"]["Word1"], "gra lot");
    // A quoted value is a string even when it looks like a number.
    let args = [s(&bundle), "--policy", END_USER, "--this-ip", "10.0.0.7", "--param", "Word2=42"];
    let nothing = |_: &Rec, _, _| false;
    let rep = run_and_compare(&dir, "spam.pcap", &args, Expect { drop: &nothing, generated: &none }, 0, 0);
    assert_eq!(program(&rep, 0)["params"]["Word2"], "42");
    let _ = std::fs::remove_dir_all(dir);
}

fn multicast_expectations(subnet: (u32, u32)) -> impl Fn(usize) -> Vec<Gen> {
    move |b: usize| {
        if b >= generate::MC_CONTENTS.len() {
            return Vec::new();
        }
        let hosts: Vec<u32> = generate::mc_hosts(b).into_iter().filter(|&h| in_prefix(h, subnet.0, subnet.1)).collect();
        if hosts.is_empty() {
            return Vec::new();
        }
        let me = ip(10, 0, 0, 1);
        let mut g = address_lists(generate::MC_SOURCE, me, &hosts);
        g.extend(generate::MC_CONTENTS[b].iter().map(|c| Gen { src: generate::MC_SOURCE, dst: me, payload: c.to_vec() }));
        g
    }
}

#[test]
fn multicast_replaces_each_broadcast_by_its_contents_and_destination_lists() {
    let dir = scratch("multicast");
    let bundle = prove(&dir, "multicast", EDGE, &[]);
    let net = (ip(10, 0, 0, 0), 24);
    let drop = |_: &Rec, src, dst| src == generate::MC_SOURCE && in_prefix(dst, net.0, net.1);
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
    let drop = |_: &Rec, src, dst| src == generate::MC_SOURCE && in_prefix(dst, net.0, net.1);
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
        |r: &Rec, src, dst| in_prefix(dst, ip(10, 0, 0, 0), 24) && generate::WORMS.iter().any(|&(s, b, _)| s == src && b == burst(r));
    let none = |_| Vec::new();
    assert_eq!(generate::WORMS.iter().map(|w| w.2).sum::<u64>(), 72);
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.0/24"];
    let rep = run_and_compare(&dir, "worm.pcap", &args, Expect { drop: &drop, generated: &none }, 72, 0);
    assert_eq!(program(&rep, 0)["discarded"], 72);
    assert_eq!(program(&rep, 0)["params"]["N"], "8");

    // N = 7: 203.0.113.51 (exactly 8 hosts) is a scanner too.
    let args = [s(&bundle), "--policy", EDGE, "--this-ip", "10.0.0.1", "--this-subnet", "10.0.0.0/24", "--param", "N=7"];
    let drop7 = |r: &Rec, src, dst| drop(r, src, dst) || (src == ip(203, 0, 113, 51) && in_prefix(dst, ip(10, 0, 0, 0), 24));
    run_and_compare(&dir, "worm.pcap", &args, Expect { drop: &drop7, generated: &none }, 84, 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// The protocol of an IPv4 packet, and its ports and TCP flags when it has
/// them (SEMANTICS "The window": a first fragment whose whole TCP or UDP
/// header was captured), decoded by hand.
fn transport(ip: &[u8]) -> (u8, Option<(u16, u16)>, Option<u8>) {
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let (ihl, proto) = (usize::from(ip[0] & 15) * 4, ip[9]);
    let first = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
    let l4 = &ip[ihl.min(total)..total];
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

fn ip_bytes(r: &Rec) -> &[u8] {
    ipv4_of(&r.bytes).expect("an IPv4 frame").2
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
        src == generate::PF_SPAMMER && dst == generate::PF_CLIENT && matches!(transport(ip_bytes(r)), (6, Some((_, p)), _) if p == port)
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
        dst == generate::AMP_CLIENT
            && match transport(ip_bytes(r)) {
                (17, Some((53, dport)), _) => src != generate::AMP_RESOLVER || dport < 1024,
                (17, Some((123, _)), _) => src != generate::AMP_TIME,
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
        dst == generate::AMP_CLIENT
            && match transport(ip_bytes(r)) {
                (17, Some((53, dport)), _) => src != ip(198, 51, 100, 53) || dport < 1024,
                (17, Some((123, _)), _) => src != generate::AMP_TIME,
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
    let syn_of = |r: &Rec| -> Option<(usize, u32, u16)> {
        let (src, dst, ipb) = ipv4_of(&r.bytes)?;
        match transport(ipb) {
            (6, Some((_, dport)), Some(flags)) if flags & 0x12 == 0x02 && in_prefix(dst, ip(10, 0, 0, 0), 24) => {
                Some((burst(r), src, dport))
            }
            _ => None,
        }
    };
    let mut tries: std::collections::BTreeMap<(usize, u32), Vec<u16>> = Default::default();
    for (b, src, dport) in input.iter().filter_map(syn_of) {
        tries.entry((b, src)).or_default().push(dport);
    }
    let worms: std::collections::BTreeSet<(usize, u32)> = tries
        .iter()
        .filter(|(_, ports)| {
            let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
            ports.iter().filter(|&&p| p == 445).count() > 8 || distinct.len() > 16
        })
        .map(|(k, _)| *k)
        .collect();
    let hand: std::collections::BTreeSet<(usize, u32)> = generate::SYN_WORMS.iter().map(|&(s, b, _)| (b, s)).collect();
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
        drop(r, src, dst) || (syn_of(r).is_some_and(|(b, s, _)| (b, s) == (0, ip(203, 0, 113, 62)) || (b, s) == (1, ip(203, 0, 113, 68))))
    };
    run_and_compare(&dir, "synworm.pcap", &args, Expect { drop: &drop7, generated: &none }, 43 + 8 + 20, 0);
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
        (src == generate::FW_BAD && (dst == ip(10, 0, 0, 7) || dst == ip(10, 0, 0, 8)))
            || (src == ip(203, 0, 113, 10) && dst == ip(10, 0, 0, 7))
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
    for part in ["firewall.vpc", "10.0.0.7", "1030", "router: 705 frames in", "45 dropped", "10 unparsed", "15 not IPv4"] {
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

/// `vinetc run` over every shared capture, with the example programs
/// installed (from a manifest) for the first destinations of each file and a
/// worm blocker for the whole address space: exit 0, or 2 for a capture that
/// is damaged (after replaying and reporting the frames before the damage)
/// or not a capture at all; every frame accounted for; OUT.pcap re-reads.
#[test]
fn vinetc_run_replays_every_shared_capture() {
    use vinet_engine::packet::{parse_frame, Parsed};
    use vinet_engine::pcap::CaptureReader;
    let dir = scratch("corpus");
    prove(&dir, "firewall", END_USER, &[]);
    prove(&dir, "spam_filter", END_USER, &[]);
    prove(&dir, "multicast", EDGE, &[]);
    prove(&dir, "worm_blocker", EDGE, &[]);
    let lib = dir.join("lemmas.lib");
    let o = vinetc(&["lemmas", "build", "lemmas/", "-o", s(&lib)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let edge = root().join(EDGE);
    let files = captures();
    assert!(files.len() >= 400);
    let (mut frames, mut dropped, mut generated, mut damaged, mut unreadable) = (0u64, 0u64, 0u64, 0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Our own count of the file's frames, and its first destinations.
        let mut expected_frames = 0u64;
        let mut dests: Vec<(u32, u32)> = Vec::new();
        let mut is_damaged = false;
        let readable = match CaptureReader::open(path) {
            Ok(mut r) => {
                while let Some(f) = r.next_frame() {
                    let Ok(f) = f else {
                        is_damaged = true;
                        break;
                    };
                    expected_frames += 1;
                    if let Parsed::Ipv4(p) = parse_frame(f.link, f.data) {
                        if dests.len() < 3 && !dests.iter().any(|d| d.1 == p.dst) {
                            dests.push((p.src, p.dst));
                        }
                    }
                }
                true
            }
            Err(_) => false,
        };
        let mut m = String::new();
        let a = |x: u32| std::net::Ipv4Addr::from(x).to_string();
        for &(src, dst) in &dests {
            m += &format!("[[install]]\nbundle = \"firewall.vpc\"\nthis_ip = \"{}\"\nparams = {{ SrcIP = \"{}\" }}\n", a(dst), a(src));
            m += &format!(
                "[[install]]\nbundle = \"spam_filter.vpc\"\nthis_ip = \"{}\"\nparams = {{ Word1 = \"\", Word2 = \"\" }}\n",
                a(dst)
            );
            let net = a(dst & 0xffff_ff00);
            m += &format!(
                "[[install]]\nbundle = \"multicast.vpc\"\npolicy = \"{}\"\nthis_ip = \"{}\"\nthis_subnet = \"{net}/24\"\nparams = {{ BroadcastIP = \"{}\" }}\n",
                edge.display(),
                a(dst | 1),
                a(src)
            );
        }
        m += &format!("[[install]]\nbundle = \"worm_blocker.vpc\"\npolicy = \"{}\"\nthis_ip = \"10.0.0.1\"\nthis_subnet = \"0.0.0.0/0\"\nparams = {{ N = 2 }}\n", edge.display());
        let manifest = dir.join("clients.toml");
        std::fs::write(&manifest, m).unwrap();
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
        let get = |k: &str| r[k].as_u64().unwrap();
        assert_eq!(get("frames_in"), expected_frames, "{name}");
        assert_eq!(get("forwarded") + get("dropped"), expected_frames, "{name}: a frame went missing");
        assert_eq!(get("faults"), 0, "{name}: {rep}");
        assert_eq!(rep["capture_error"].is_null(), !is_damaged, "{name}");
        let progs = rep["programs"].as_array().unwrap();
        assert_eq!(progs.len(), dests.len() * 3 + 1, "{name}");
        for p in progs {
            assert!(p["cost_max"].as_u64().unwrap() <= p["certified"].as_u64().unwrap(), "{name}: {p}");
        }
        let dropped_by_programs: u64 = progs.iter().map(|p| p["discarded"].as_u64().unwrap()).sum();
        assert!(dropped_by_programs >= get("dropped"), "{name}: drops are OR-ed, never invented");
        let gen_by_programs: u64 = progs.iter().map(|p| p["generated"].as_u64().unwrap()).sum();
        assert_eq!(gen_by_programs, get("generated"), "{name}");
        if expected_frames > 0 {
            assert_eq!(read_pcap(&out).len() as u64, get("forwarded") + get("generated"), "{name}: OUT.pcap");
        }
        frames += expected_frames;
        dropped += get("dropped");
        generated += get("generated");
        damaged += usize::from(is_damaged);
    }
    eprintln!("vinetc run over {} captures: {frames} frames, {dropped} dropped, {generated} generated, {damaged} damaged, {unreadable} unreadable", files.len());
    assert!(frames > 3000 && dropped > 0 && generated > 0);
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
