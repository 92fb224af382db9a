//! Soundness: what the checker accepts really is safe.
//!
//! For every accepted program (the examples and `tests/accept/`), proved and
//! checked, on random windows of packets for many clients:
//! - the reference interpreter, run over the WHOLE window, drops only the
//!   client's packets, generates only to THIS_IP, and is charged no more than
//!   the certified complexity;
//! - non-interference: changing every packet of other clients (addresses,
//!   ports, payloads) does not change what the program does;
//! - the VM, installed from the checked bundle in the dispatch table, does
//!   the same as the reference, and never faults (a fault would mean the
//!   certified complexity was too low).
//!
//! And the mutation test: every single-byte change of every example bundle is
//! refused by the checker or, if accepted, passes the same runs.

use std::path::{Path, PathBuf};

use vinet_checker::cert::{encode_file, LemmaCache, LIBRARY_MAGIC};
use vinet_checker::policy::{ClientKind, Policy};
use vinet_checker::Checked;
use vinet_checker::{mapped, netmask};
use vinet_engine::dispatch::Dispatch;
use vinet_engine::packet::LinkType;
use vinet_engine::vm::Binding;
use vinet_engine::window::Window;
use vinet_lang::reference::{self, RefEnv, RefPacket};
use vinet_vocab::{addr_text, v4_of};

/// The client: 10.0.0.7 in 10.0.0.0/24 (an edge router's THIS_SUBNET_IP), or
/// 2001:db8::7 in 2001:db8::/64 (issue 15). Windows mix both families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Client {
    ip: u128,
    net: (u128, u8),
}
const V4: Client = Client { ip: mapped(0x0a00_0007), net: (mapped(0x0a00_0000), 120) };
const DOC: u128 = 0x2001_0db8 << 96;
const V6: Client = Client { ip: DOC | 7, net: (DOC, 64) };

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn policy(kind: ClientKind) -> Policy {
    let name = if kind == ClientKind::EndUser { "end-user" } else { "edge-router" };
    vinet_engine::policy_file::load(root().join(format!("examples/policies/{name}.toml"))).unwrap()
}

/// Every accepted program of the corpus, with its client kind.
pub fn corpus() -> Vec<(PathBuf, ClientKind)> {
    let mut v = vec![];
    for (e, k) in [
        ("firewall", ClientKind::EndUser),
        ("spam_filter", ClientKind::EndUser),
        ("multicast", ClientKind::EdgeRouter),
        ("worm_blocker", ClientKind::EdgeRouter),
        ("port_firewall", ClientKind::EndUser),
        ("anti_amplification", ClientKind::EndUser),
        ("syn_worm_blocker", ClientKind::EdgeRouter),
    ] {
        v.push((root().join(format!("examples/{e}.vinet")), k));
    }
    let mut accept: Vec<PathBuf> = std::fs::read_dir(root().join("tests/accept"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "vinet"))
        .collect();
    accept.sort();
    for p in accept {
        let text = std::fs::read_to_string(&p).unwrap();
        let k = if text.lines().next().unwrap_or("").contains("edge-router") { ClientKind::EdgeRouter } else { ClientKind::EndUser };
        v.push((p, k));
    }
    v
}

struct Prepared {
    compiled: vinet_lang::Compiled,
    checked: Checked,
    bundle: Vec<u8>,
    kind: ClientKind,
    policy: Policy,
}

fn lemma_cache(p: &vinet_prover::Prover) -> LemmaCache {
    let mut c = LemmaCache::new();
    c.admit_library(&encode_file(&p.lemmas().library, LIBRARY_MAGIC)).unwrap();
    c
}

fn prepare(path: &Path, kind: ClientKind, prover: &vinet_prover::Prover, cache: &LemmaCache) -> Prepared {
    let src = std::fs::read(path).unwrap();
    let compiled = vinet_lang::compile(&path.display().to_string(), &src, &[]).unwrap_or_else(|d| panic!("{}", d.render()));
    let policy = policy(kind);
    let proved = prover.prove(&compiled.module, &policy).unwrap_or_else(|f| panic!("{}: {f:?}", path.display()));
    let checked = vinet_checker::check(&proved.bytes, &policy, cache).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Prepared { compiled, checked, bundle: proved.bytes, kind, policy }
}

/// A small deterministic generator (the test must not depend on a crate's RNG).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const SOURCES: [u32; 7] = [0xcb00_7109, 0xc633_6407, 0xc633_6417, 0xc000_0205, 0xcb00_7142, 0xc633_6401, 0x0808_0808];
const SOURCES6: [u128; 5] = [DOC | 0xbad << 64 | 9, DOC | 0xb << 64 | 7, DOC | 0xffff, 0xfe80 << 112 | 1, DOC | 5];
const WORDS: [&[u8]; 10] = [b"viagra", b"lottery", b"attack", b"ransom", b"via", b"gra", b"hello", b"", b"password", b"x"];

fn mine(kind: ClientKind, me: Client, dst: u128) -> bool {
    match kind {
        ClientKind::EndUser => dst == me.ip,
        ClientKind::EdgeRouter => dst & netmask(me.net.1) == me.net.0,
        // The examples here are end users' and edge routers'; an ON owner's programs are
        // fuzzed by the differential oracle and tested in prover/tests/on_owner.rs.
        ClientKind::OnOwner => unreachable!("no overlay-network owner's example here"),
    }
}

/// Ports the transport examples name, and others.
const PORTS: [u16; 9] = [25, 53, 123, 445, 139, 80, 1000, 1001, 40_000];

/// A packet to one of `dsts`: an IPv4 one from the world's IPv4 sources, an IPv6 one from its IPv6 sources.
fn random_packet(r: &mut Rng, dsts: &[u128]) -> RefPacket {
    let dst = r.pick(dsts);
    let v6 = v4_of(dst).is_none();
    let proto = r.pick(&[6u8, 6, 17, 17, if v6 { 58 } else { 1 }]);
    let mut payload: Vec<u8> = (0..r.next() % 3).flat_map(|_| r.pick(&WORDS).to_vec()).collect();
    if proto == 58 {
        // An ICMPv6 echo request header: an IPv6 packet of payload length 0 is no packet of the window.
        payload.splice(0..0, [128, 0, 0, 0]);
    }
    // One packet in eight of TCP or UDP is a non-first fragment: no ports (`frame`).
    let has_ports = matches!(proto, 6 | 17) && !r.next().is_multiple_of(8);
    RefPacket {
        src: if v6 { r.pick(&SOURCES6) } else { mapped(r.pick(&SOURCES)) },
        dst,
        proto,
        sport: if has_ports { r.pick(&PORTS) } else { 0 },
        dport: if has_ports { r.pick(&PORTS) } else { 0 },
        seq: if proto == 6 && has_ports { 1000 + 3 * (r.next() % 4) as u32 } else { 0 },
        has_ports,
        tcp_flags: if proto == 6 && has_ports { r.pick(&[0x02, 0x02, 0x02, 0x12, 0x10, 0x18]) } else { 0 },
        on_key: None,
        payload,
    }
}

fn random_window(r: &mut Rng, n: usize) -> Vec<RefPacket> {
    // The clients of both families, their subnet neighbours, and the rest of the world.
    let dsts = [V4.ip, V4.ip, V4.ip, V6.ip, V6.ip, V6.ip, mapped(0x0a00_0005), mapped(0x0a00_0009), mapped(0x0a09_0909)];
    let more = [mapped(0xc000_0201), mapped(0x0a00_0107), DOC | 5, DOC | 0xffff, DOC | 1 << 64 | 7, 0xfe80 << 112 | 7];
    (0..n)
        .map(|_| {
            let world = r.next().is_multiple_of(4);
            random_packet(r, if world { &more } else { &dsts })
        })
        .collect()
}

/// Destinations of no client, for the non-interference rounds.
const OTHERS: [u128; 6] =
    [mapped(0x0a09_0909), mapped(0xc000_0201), mapped(0x0a00_0107), mapped(0x0b00_0007), DOC | 1 << 64 | 7, 0xfe80 << 112 | 7];

/// A TCP or UDP packet with ports, by etherparse after the IP header `b` (of `ip_len` bytes):
/// whether `p` is one (else nothing is written).
fn ported(b: etherparse::PacketBuilderStep<etherparse::IpHeaders>, p: &RefPacket, out: &mut Vec<u8>, ip_len: usize) -> bool {
    match p.proto {
        6 if p.has_ports => {
            let f = p.tcp_flags;
            let mut t = b.tcp(p.sport, p.dport, p.seq, 1024);
            t = if f & 0x02 != 0 { t.syn() } else { t };
            t = if f & 0x10 != 0 { t.ack(0) } else { t };
            t = if f & 0x08 != 0 { t.psh() } else { t };
            t.write(out, &p.payload).unwrap();
            assert_eq!(out[ip_len + 13], f, "flags as built");
        }
        17 if p.has_ports => b.udp(p.sport, p.dport).write(out, &p.payload).unwrap(),
        _ => return false,
    }
    true
}

fn frame(p: &RefPacket) -> Vec<u8> {
    if v4_of(p.dst).is_none() {
        return frame6(p);
    }
    let (src, dst) = (p.src as u32, p.dst as u32);
    let b = etherparse::PacketBuilder::ipv4(src.to_be_bytes(), dst.to_be_bytes(), 64);
    let mut out = vec![];
    if ported(b, p, &mut out, 20) {
        return out;
    }
    let mut h =
        etherparse::Ipv4Header::new(p.payload.len() as u16, 64, etherparse::IpNumber(p.proto), src.to_be_bytes(), dst.to_be_bytes())
            .unwrap();
    // A TCP or UDP packet without ports: a non-first fragment (offset 64 bytes).
    if p.proto != 1 {
        h.fragment_offset = etherparse::IpFragOffset::try_new(8).unwrap();
    }
    h.header_checksum = h.calc_header_checksum();
    h.write(&mut out).unwrap();
    out.extend_from_slice(&p.payload);
    out
}

/// An IPv6 packet: TCP or UDP by etherparse; without ports, a non-first fragment (a Fragment
/// header, offset 64 bytes) of TCP or UDP, or ICMPv6 bytes.
fn frame6(p: &RefPacket) -> Vec<u8> {
    let (src, dst) = (p.src.to_be_bytes(), p.dst.to_be_bytes());
    let b = etherparse::PacketBuilder::ipv6(src, dst, 64);
    let mut out = vec![];
    if ported(b, p, &mut out, 40) {
        return out;
    }
    let fragment = p.proto != 58;
    let len = p.payload.len() + if fragment { 8 } else { 0 };
    out.extend([0x60, 0, 0, 0]);
    out.extend((len as u16).to_be_bytes());
    out.extend([if fragment { 44 } else { p.proto }, 64]);
    out.extend(src);
    out.extend(dst);
    if fragment {
        out.extend([p.proto, 0, 0, 8 << 3, 0, 0, 0, 1]);
    }
    out.extend_from_slice(&p.payload);
    out
}

fn decode(g: &[u8]) -> (u128, u128, Vec<u8>) {
    let s = etherparse::SlicedPacket::from_ip(g).expect("generated packet parses");
    let Some(etherparse::TransportSlice::Udp(u)) = &s.transport else { panic!("not UDP") };
    let (src, dst) = match &s.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            (mapped(u32::from_be_bytes(ip.header().source())), mapped(u32::from_be_bytes(ip.header().destination())))
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => (u128::from_be_bytes(ip.header().source()), u128::from_be_bytes(ip.header().destination())),
        _ => panic!("not IP"),
    };
    (src, dst, u.payload().to_vec())
}

fn binding(kind: ClientKind, me: Client) -> Binding {
    Binding { this_ip: me.ip, this_subnet: (kind == ClientKind::EdgeRouter).then_some(me.net), params: vec![] }
}

/// Generated packets: (source, destination, payload).
type Generated = Vec<(u128, u128, Vec<u8>)>;

/// What the VM does to a window when the checked program is installed for the client.
fn vm_run(checked: &Checked, kind: ClientKind, me: Client, packets: &[RefPacket]) -> (Vec<usize>, Generated) {
    let mut w = Window::new();
    for p in packets {
        w.push(LinkType::Raw, 0, 0, &frame(p));
    }
    assert_eq!(w.packet_count(), packets.len(), "every test frame parses");
    let mut d = Dispatch::new(checked.policy().window_packets);
    d.install(checked, &binding(kind, me)).unwrap();
    let rep = d.run_window(&mut w);
    assert_eq!(rep.faults, 0, "a run of a checked program faulted (its certified complexity is too low?)");
    let dropped = (0..packets.len()).filter(|&i| w.is_dropped(i as u32)).collect();
    (dropped, w.generated().map(decode).collect())
}

fn confined(kind: ClientKind, me: Client, packets: &[RefPacket], dropped: &[usize], generated: &Generated) -> Result<(), String> {
    if let Some(&i) = dropped.iter().find(|&&i| !mine(kind, me, packets[i].dst)) {
        return Err(format!("dropped a packet to {}, not the client's", addr_text(packets[i].dst)));
    }
    match generated.iter().find(|g| g.1 != me.ip) {
        Some(g) => Err(format!("generated to {}", addr_text(g.1))),
        None => Ok(()),
    }
}

fn assert_confined(kind: ClientKind, me: Client, packets: &[RefPacket], dropped: &[usize], generated: &Generated, what: &str) {
    if let Err(e) = confined(kind, me, packets, dropped, generated) {
        panic!("{what}: {e}");
    }
}

fn exercise(p: &Prepared, seed: u64, windows: usize) {
    let name = p.compiled.file_name.clone();
    let mut r = Rng(seed);
    let w = p.policy.window_packets as usize;
    for round in 0..windows {
        let n = [0, 1, 2, 7, 31, 64, w][round % 7];
        let me = [V4, V6][round % 2];
        let packets = random_window(&mut r, n);
        let env = RefEnv {
            this_ip: me.ip,
            this_subnet: if p.kind == ClientKind::EdgeRouter { me.net } else { (me.ip, 128) },
            params: vec![],
            unit_costs: p.policy.unit_costs,
            fuel: None,
        };
        let effects = reference::run(&p.compiled.program, &packets, &env).unwrap_or_else(|f| panic!("{name}: reference faulted: {f:?}"));
        assert!(effects.cost <= p.checked.complexity(), "{name}: cost {} over the certified {}", effects.cost, p.checked.complexity());
        assert_confined(p.kind, me, &packets, &effects.dropped, &effects.generated, &name);
        // Non-interference: every packet of another client changes; the effects do not.
        let mut others = packets.clone();
        for q in others.iter_mut().filter(|q| !mine(p.kind, me, q.dst)) {
            *q = random_packet(&mut r, &OTHERS);
        }
        let again = reference::run(&p.compiled.program, &others, &env).unwrap();
        assert_eq!(again.dropped, effects.dropped, "{name}: other clients' packets changed the drops");
        assert_eq!(again.generated, effects.generated, "{name}: other clients' packets changed what is generated");
        // The VM, from the checked bundle, through the dispatch table.
        let (dropped, generated) = vm_run(&p.checked, p.kind, me, &packets);
        assert_eq!(dropped, effects.dropped, "{name}: VM and reference drop differently");
        assert_eq!(generated, effects.generated, "{name}: VM and reference generate differently");
    }
}

#[test]
fn accepted_programs_are_confined_cheap_and_non_interfering() {
    let prover = vinet_prover::Prover::new().unwrap();
    let cache = lemma_cache(&prover);
    let corpus = corpus();
    assert!(corpus.len() >= 15, "the corpus shrank");
    for (i, (path, kind)) in corpus.iter().enumerate() {
        let p = prepare(path, *kind, &prover, &cache);
        exercise(&p, 0x9e37_79b9_7f4a_7c15 ^ i as u64, 120);
    }
}

#[test]
fn every_single_byte_change_of_every_example_bundle_is_refused_or_sound() {
    let prover = vinet_prover::Prover::new().unwrap();
    let cache = lemma_cache(&prover);
    let (mut checks, mut accepted) = (0u64, 0u64);
    for (path, kind) in corpus().into_iter().take(4) {
        let p = prepare(&path, kind, &prover, &cache);
        let mut r = Rng(7);
        let windows: Vec<Vec<RefPacket>> = (0..6).map(|i| random_window(&mut r, [0, 3, 40, 256, 17, 100][i])).collect();
        for at in 0..p.bundle.len() {
            for v in 0..=255u8 {
                if v == p.bundle[at] {
                    continue;
                }
                let mut bad = p.bundle.clone();
                bad[at] = v;
                checks += 1;
                if let Ok(c) = vinet_checker::check(&bad, &p.policy, &cache) {
                    accepted += 1;
                    for w in &windows {
                        let (dropped, generated) = vm_run(&c, kind, V4, w);
                        assert_confined(kind, V4, w, &dropped, &generated, &format!("{} mutated at byte {at} to {v}", path.display()));
                    }
                }
            }
        }
    }
    eprintln!("mutation test: {checks} single-byte mutants checked, {accepted} accepted (each then ran soundly)");
    assert!(checks > 100_000, "four bundles of about 130 bytes each, every byte changed to every other value");
}

/// The oracle above can fail: on programs the checker refuses, run anyway by
/// the reference interpreter, it finds the violation.
#[test]
fn the_oracle_catches_unsafe_programs() {
    let cases = [
        "LIFETIME = 1 days\nDISCARD(AllPackets);",
        "LIFETIME = 1 days\nD(i), P(i) = GROUP_BY_DESTINATION(AllPackets);\nforeach i do if D(i) != THIS_IP then DISCARD(P(i));",
        "LIFETIME = 1 days\nGENERATE(THIS_IP, 10.0.0.1, \"x\");",
    ];
    let pol = policy(ClientKind::EndUser);
    for src in cases {
        let c = vinet_lang::compile("u.vinet", src.as_bytes(), &[]).unwrap();
        let env = RefEnv { this_ip: V4.ip, this_subnet: (V4.ip, 128), params: vec![], unit_costs: pol.unit_costs, fuel: None };
        let mut r = Rng(3);
        let caught = (0..50).any(|_| {
            let packets = random_window(&mut r, 40);
            let e = reference::run(&c.program, &packets, &env).unwrap();
            confined(ClientKind::EndUser, V4, &packets, &e.dropped, &e.generated).is_err()
        });
        assert!(caught, "the oracle missed an unsafe program: {src}");
    }
    // And non-interference catches a program that reads another client's traffic.
    let leaky = "LIFETIME = 1 days\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nif COUNT(AllPackets) > 5 then DISCARD(Mine);";
    let c = vinet_lang::compile("l.vinet", leaky.as_bytes(), &[]).unwrap();
    let env = RefEnv { this_ip: V4.ip, this_subnet: (V4.ip, 128), params: vec![], unit_costs: pol.unit_costs, fuel: None };
    let mut r = Rng(5);
    let caught = (0..200).any(|_| {
        let packets = random_window(&mut r, 8);
        let mut others = packets.clone();
        others.retain(|q| mine(ClientKind::EndUser, V4, q.dst));
        let a = reference::run(&c.program, &packets, &env).unwrap().dropped.len();
        let b = reference::run(&c.program, &others, &env).unwrap().dropped.len();
        a != b
    });
    assert!(caught, "non-interference missed a leak");
}
