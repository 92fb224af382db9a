//! The differential soundness oracle over generated modules: each valid
//! module is proved under both example policies, the bundle checked, the
//! module analyzed; what the checker accepts is run by the VM over random
//! windows, over the whole window and bucketed by the dispatch table as the
//! router runs it, and held to the safety oracle:
//! - it drops only the client's packets and generates only to THIS_IP;
//! - changing every other client's packet changes neither its drops nor what
//!   it generates;
//! - the whole-window run, the interpreter-only run and the bucketed run have
//!   the same effects (and faults);
//! - its metered cost never exceeds the certified complexity, and no run of
//!   it stops on a metering fault (over budget, past a loop bound, step limit).

use std::sync::Arc;

use super::gen::{self, Rng};
use vinet_checker::bytecode::Insn;
use vinet_checker::cert::{encode_file, LemmaCache, LIBRARY_MAGIC};
use vinet_checker::policy::{ClientKind, Policy};
use vinet_checker::Checked;
use vinet_checker::{mapped, netmask};
use vinet_engine::dispatch::Dispatch;
use vinet_engine::packet::LinkType;
use vinet_engine::vm::{Binding, Fault, Machine, Program, This};
use vinet_engine::window::Window;
use vinet_vocab::{addr_text, v4_of};

/// The client of a window (issue 15: of either family; every window mixes both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Client {
    /// THIS_IP: 10.0.0.7 or 2001:db8::7.
    ip: u128,
    /// THIS_SUBNET_IP of an edge-router client: 10.0.0.0/24 or 2001:db8::/64 (128-bit lengths).
    net: (u128, u8),
}

const V4: Client = Client { ip: mapped(0x0a00_0007), net: (mapped(0x0a00_0000), 120) };
const V6: Client = Client { ip: gen::V6 | 7, net: (gen::V6, 64) };

/// The figures of a run of the oracle.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Modules generated.
    pub generated: u64,
    /// Pairs the checker accepted, by policy: end user, edge router, overlay-network owner.
    pub checked_by: [u64; 3],
    /// Of which `Module::validate` accepted.
    pub valid: u64,
    /// Valid modules with a register written before a loop and inside it.
    pub reuse_loop: u64,
    /// Valid modules with a register written before an `if` and in a branch, or in both branches.
    pub reuse_branch: u64,
    /// (module, policy) pairs tried.
    pub pairs: u64,
    /// Pairs the prover certified.
    pub proved: u64,
    /// Pairs whose bundle the checker accepted.
    pub checked: u64,
    /// Pairs the prover certified and the checker refused (a prover bug, not unsound).
    pub proved_not_checked: u64,
    /// Pairs the analyzer accepted.
    pub analyzed: u64,
    /// Pairs both verifiers accepted / refused.
    pub both_accept: u64,
    /// Pairs both verifiers refused.
    pub both_refuse: u64,
    /// Pairs only the checker accepted (the analyzer is less precise).
    pub checker_only: u64,
    /// Pairs only the analyzer accepted: each is listed in `analyzer_only_cases`.
    pub analyzer_only: u64,
    /// Modules accepted by at least one verifier under some policy.
    pub accepted_modules: u64,
    /// Windows run (each: whole, interpreted, bucketed, and both again with other clients' packets changed).
    pub windows: u64,
    /// Windows whose router run stopped on a fault that is not metering (overflow, payload too large).
    pub benign_faults: u64,
    /// Windows without the client's packets, where the router does not run the program and
    /// the whole-window run had effects (a GENERATE of a constant): not a violation, a difference
    /// of the two ways to run a program that docs/SEMANTICS.md does not state.
    pub idle_effects: u64,
    /// Windows where the whole-window run stopped on a benign fault (overflow) met while
    /// walking another client's group, and the router's run over the bucket did not.
    pub whole_only_faults: u64,
    /// Valid modules with a transport-level instruction (Narrow, GroupField, DistinctPorts).
    pub transport: u64,
    /// Of which the checker accepted under some policy.
    pub transport_checked: u64,
    /// Windows whose client was IPv6 (THIS_IP 2001:db8::7, THIS_SUBNET_IP 2001:db8::/64): issue 15.
    pub v6_client_windows: u64,
    /// IPv6 packets in the windows run (of every window: both families are mixed in each).
    pub v6_packets: u64,
    /// Oracle violations, described.
    pub violations: Vec<String>,
    /// Analyzer-only acceptances, described.
    pub analyzer_only_cases: Vec<String>,
    /// Pairs both accepted with different derived costs, described.
    pub cost_mismatches: Vec<String>,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} modules generated, {} valid ({} invalid, dropped); register reuse at a loop boundary in {}, at a branch boundary in {}; \
             {} (module, policy) pairs: {} proved, {} accepted by the checker ({} proved but refused), {} accepted by the analyzer; \
             verifiers agree on {} ({} both accept, {} both refuse), disagree on {} ({} checker only, {} analyzer only), {} cost mismatches; \
             {} modules accepted by some verifier; {} valid modules narrow, group or count by protocol, port or TCP flags ({} of them accepted by the checker); \
             {} windows run ({} benign faults, {} idle windows with whole-window effects, {} whole-window-only faults; \
             {} with an IPv6 client, {} IPv6 packets); {} oracle violations; \
             accepted by the checker under the end-user, edge-router and on-owner policies: {:?}",
            self.generated,
            self.valid,
            self.generated - self.valid,
            self.reuse_loop,
            self.reuse_branch,
            self.pairs,
            self.proved,
            self.checked,
            self.proved_not_checked,
            self.analyzed,
            self.both_accept + self.both_refuse,
            self.both_accept,
            self.both_refuse,
            self.checker_only + self.analyzer_only,
            self.checker_only,
            self.analyzer_only,
            self.cost_mismatches.len(),
            self.accepted_modules,
            self.transport,
            self.transport_checked,
            self.windows,
            self.benign_faults,
            self.idle_effects,
            self.whole_only_faults,
            self.v6_client_windows,
            self.v6_packets,
            self.violations.len(),
            self.checked_by
        )
    }
}

/// The verifiers and the policies.
pub struct Env {
    prover: vinet_prover::Prover,
    cache: LemmaCache,
    policies: [Policy; 3],
}

impl Env {
    /// The shipped prover and lemma library, and the example policies (end user, edge
    /// router, overlay-network owner).
    pub fn new(end_user: Policy, edge_router: Policy, on_owner: Policy) -> Env {
        let kinds = (end_user.client, edge_router.client, on_owner.client);
        assert_eq!(kinds, (ClientKind::EndUser, ClientKind::EdgeRouter, ClientKind::OnOwner));
        let prover = vinet_prover::Prover::new().expect("the shipped lemma library builds");
        let mut cache = LemmaCache::new();
        cache.admit_library(&encode_file(&prover.lemmas().library, LIBRARY_MAGIC)).expect("the shipped library is admitted");
        Env { prover, cache, policies: [end_user, edge_router, on_owner] }
    }

    /// Generate one module from `r`, put it through the verifiers under the three
    /// policies, and run what the checker accepts over `windows` windows.
    /// `label` names the case in reports (the seed, or "fuzz input").
    pub fn one(&self, r: &mut Rng, windows: usize, label: &str, t: &mut Tally) {
        let g = gen::module(r);
        t.generated += 1;
        let m = g.module;
        if m.validate().is_err() {
            return;
        }
        t.valid += 1;
        let transport = m.code.iter().any(|i| matches!(i, Insn::Narrow { .. } | Insn::GroupField { .. } | Insn::DistinctPorts { .. }));
        t.transport += transport as u64;
        let mut transport_checked = false;
        let reuse = gen::reuse(&m);
        t.reuse_loop += reuse.loop_boundary as u64;
        t.reuse_branch += reuse.branch_boundary as u64;
        let mut accepted = false;
        for policy in &self.policies {
            t.pairs += 1;
            let proved = self.prover.prove(&m, policy).ok();
            t.proved += proved.is_some() as u64;
            let checked = proved.as_ref().and_then(|p| vinet_checker::check(&p.bytes, policy, &self.cache).ok());
            t.proved_not_checked += (proved.is_some() && checked.is_none()) as u64;
            t.checked += checked.is_some() as u64;
            t.checked_by[policy.client as usize] += checked.is_some() as u64;
            let analyzed = vinet_analyzer::analyze(&m, policy).ok();
            t.analyzed += analyzed.is_some() as u64;
            let what = format!("{label} under the {:?} policy", policy.client);
            match (&checked, analyzed) {
                (Some(c), Some(v)) => {
                    t.both_accept += 1;
                    if (c.complexity(), c.cost()) != (v.complexity, v.cost) {
                        let (cc, vc) = ((c.complexity(), c.cost()), (v.complexity, v.cost));
                        t.cost_mismatches.push(format!("{what}: checker {cc:?}, analyzer {vc:?}: {m:?}"));
                    }
                }
                (None, None) => t.both_refuse += 1,
                (Some(_), None) => t.checker_only += 1,
                (None, Some(_)) => {
                    t.analyzer_only += 1;
                    t.analyzer_only_cases.push(format!("{what}: {m:?}"));
                }
            }
            accepted |= checked.is_some() || analyzed.is_some();
            transport_checked |= transport && checked.is_some();
            if let Some(c) = checked {
                let prog = Arc::new(Program::new(&c));
                for _ in 0..windows {
                    let seed = r.next_u64();
                    match exercise(&c, &prog, seed) {
                        Ok(w) => {
                            t.benign_faults += w.faulted as u64;
                            t.idle_effects += w.idle_effects as u64;
                            t.whole_only_faults += w.whole_only_fault as u64;
                            t.v6_client_windows += w.v6_client as u64;
                            t.v6_packets += w.v6_packets;
                        }
                        Err(e) => t.violations.push(format!("{what}, window seed {seed:#x}: {e}\n  module: {m:?}")),
                    }
                    t.windows += 1;
                }
            }
        }
        t.accepted_modules += accepted as u64;
        t.transport_checked += transport_checked as u64;
    }
}

/// One packet of a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkt {
    src: u128,
    dst: u128,
    /// IPv6 (else IPv4); an IPv6 packet may carry extension headers before its transport header.
    v6: bool,
    /// Extension headers (IPv6): Hop-by-Hop, Destination Options, Routing, in this order where present.
    ext: Vec<u8>,
    proto: u8,
    sport: u16,
    dport: u16,
    seq: u32,
    /// TCP flags (a TCP packet).
    flags: u8,
    /// A GRE packet's key (protocol 47): the overlay-network flow id it carries.
    key: Option<u32>,
    /// How the transport header is cut: whole, cut inside the ports, cut after them, or a
    /// non-first fragment (the last three have no ports: SEMANTICS "The window").
    cut: Cut,
    payload: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    Whole,
    InPorts,
    AfterPorts,
    Fragment,
}

const WORDS: [&[u8]; 8] = [b"viagra", b"via", b"gra", b"attack", b"hello", b"", b"x", b"lottery"];
/// Sources: the clients themselves and their subnet neighbours (spoofed or not), and the world.
const SOURCES4: [u32; 8] = [0x0a00_0007, 0x0a00_0005, 0x0a00_0042, 0xcb00_7109, 0xc633_6407, 0xc633_6417, 0x0808_0808, 0xffff_ffff];
const SOURCES6: [u128; 8] =
    [gen::V6 | 7, gen::V6 | 5, gen::V6 | 0x42, gen::V6 | 0xbad << 64 | 9, 0xfe80 << 112 | 7, 1, gen::V6 | 1 << 64, u128::MAX];
/// Destinations: the clients (often), their subnet neighbours, other clients, the world.
const DESTS4: [u32; 10] =
    [0x0a00_0007, 0x0a00_0007, 0x0a00_0007, 0x0a00_0005, 0x0a00_0009, 0x0a00_0107, 0x0a09_0909, 0xc000_0201, 0xc633_6407, 0x0b00_0007];
const DESTS6: [u128; 8] =
    [gen::V6 | 7, gen::V6 | 7, gen::V6 | 7, gen::V6 | 5, gen::V6 | 0xffff, gen::V6 | 1 << 64 | 7, 0xfe80 << 112 | 7, 2];
/// Destinations of no client (the non-interference rounds).
const OTHERS4: [u32; 5] = [0x0a09_0909, 0xc000_0201, 0x0a00_0107, 0x0b00_0007, 0x0a00_0005];
const OTHERS6: [u128; 4] = [gen::V6 | 1 << 64 | 7, 0xfe80 << 112 | 7, 2, gen::V6 | 5];

/// The overlay-network owner's flow id (THIS_ON), and the keys packets carry.
pub const ON: u32 = 0x00c0_ffee;
const KEYS: [Option<u32>; 5] = [Some(ON), Some(ON), Some(ON + 1), Some(7), None];

/// Whether a packet is the client's: to THIS_IP, into THIS_SUBNET_IP, or carrying THIS_ON
/// (a GRE key, in a first fragment).
fn mine(kind: ClientKind, me: Client, p: &Pkt) -> bool {
    match kind {
        ClientKind::EndUser => p.dst == me.ip,
        ClientKind::EdgeRouter => p.dst & netmask(me.net.1) == me.net.0,
        ClientKind::OnOwner => p.proto == 47 && p.cut != Cut::Fragment && p.key == Some(ON),
    }
}

/// Ports the generated modules narrow by (gen.rs `PORTS`), and others.
const PORTS: [u16; 8] = [25, 53, 123, 445, 80, 1000, 1001, 65_535];

/// A packet to one of `dsts4` (IPv4) or `dsts6` (IPv6), with extension headers now and then.
fn packet(r: &mut Rng, dsts4: &[u32], dsts6: &[u128]) -> Pkt {
    let v6 = r.chance(50);
    let (src, dst) = if v6 { (r.pick(&SOURCES6), r.pick(dsts6)) } else { (mapped(r.pick(&SOURCES4)), mapped(r.pick(dsts4))) };
    const CHAINS: [&[u8]; 5] = [&[0], &[60], &[0, 60], &[43], &[0, 43, 60]];
    let ext = if v6 && r.chance(25) { r.pick(&CHAINS).to_vec() } else { vec![] };
    let proto = r.pick(&[6u8, 6, 17, 17, 1, 47, 47, 47]);
    let proto = if v6 && proto == 1 { 58 } else { proto };
    let cut = if r.chance(85) { Cut::Whole } else { r.pick(&[Cut::InPorts, Cut::AfterPorts, Cut::Fragment]) };
    let payload: Vec<u8> = (0..r.below(3)).flat_map(|_| r.pick(&WORDS).to_vec()).collect();
    let ported = matches!(proto, 6 | 17);
    Pkt {
        src,
        dst,
        v6,
        ext,
        proto,
        sport: if ported { r.pick(&PORTS) } else { 0 },
        dport: if ported { r.pick(&PORTS) } else { 0 },
        seq: if proto == 6 { 1000 + 3 * r.below(4) as u32 } else { 0 },
        flags: r.pick(&[0x02, 0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x00, 0xff]),
        key: if proto == 47 { r.pick(&KEYS) } else { None },
        // A GRE packet may be a non-first fragment too: it then carries no key.
        cut: if ported || proto == 47 && cut == Cut::Fragment { cut } else { Cut::Whole },
        payload: match () {
            _ if ported && cut != Cut::Whole && cut != Cut::Fragment => vec![],
            // An ICMPv6 echo request header first: an IPv6 packet of payload length 0 is
            // no packet of the window (a jumbogram or BIG TCP super-packet, SEMANTICS).
            _ if proto == 58 => [&[128u8, 0, 0, 0][..], &payload].concat(),
            _ => payload,
        },
    }
}

/// An IPv4 or IPv6 frame (TCP, UDP, GRE, or bare IP for other protocols).
fn frame(p: &Pkt) -> Vec<u8> {
    let mut l4 = vec![];
    match p.proto {
        6 => {
            l4.extend(p.sport.to_be_bytes());
            l4.extend(p.dport.to_be_bytes());
            l4.extend(p.seq.to_be_bytes());
            l4.extend([0, 0, 0, 0, 0x50, p.flags, 0x04, 0x00, 0, 0, 0, 0]);
        }
        17 => {
            l4.extend(p.sport.to_be_bytes());
            l4.extend(p.dport.to_be_bytes());
            l4.extend((8 + p.payload.len() as u16).to_be_bytes());
            l4.extend([0, 0]);
        }
        // GRE (RFC 2890): the K bit and the key, or no key; an IPv4 payload type.
        47 => match p.key {
            Some(k) => {
                l4.extend([0x20, 0x00, 0x08, 0x00]);
                l4.extend(k.to_be_bytes());
            }
            None => l4.extend([0x00, 0x00, 0x08, 0x00]),
        },
        _ => {}
    }
    match p.cut {
        Cut::InPorts => l4.truncate(3),
        Cut::AfterPorts => l4.truncate(l4.len() - 1),
        Cut::Whole | Cut::Fragment => {}
    }
    if p.v6 {
        return frame6(p, l4);
    }
    // A non-first fragment (offset 8 bytes) carries what would be a header as data.
    let frag: [u8; 2] = if p.cut == Cut::Fragment { [0, 1] } else { [0x40, 0] };
    let total = (20 + l4.len() + p.payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend(total.to_be_bytes());
    h.extend([0, 0, frag[0], frag[1], 64, p.proto, 0, 0]);
    h.extend((p.src as u32).to_be_bytes());
    h.extend((p.dst as u32).to_be_bytes());
    let sum = h.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum::<u32>();
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend(l4);
    h.extend(&p.payload);
    h
}

/// An IPv6 packet: its extension headers (8 bytes each, PadN-padded; a non-first fragment's
/// Fragment header last, offset 8 bytes), then `l4` and the payload.
fn frame6(p: &Pkt, l4: Vec<u8>) -> Vec<u8> {
    let mut chain: Vec<u8> = p.ext.clone();
    if p.cut == Cut::Fragment {
        chain.push(44);
    }
    let mut body = vec![];
    for (i, &h) in chain.iter().enumerate() {
        let next = chain.get(i + 1).copied().unwrap_or(p.proto);
        match h {
            44 => body.extend([next, 0, 0, 8, 0, 0, 0x0b, 0xad]), // offset 1 (8 bytes), no more fragments
            43 => body.extend([next, 0, 4, 0, 0, 0, 0, 0]),       // a Routing header, type 4, no segments left
            _ => body.extend([next, 0, 1, 4, 0, 0, 0, 0]),        // Hop-by-Hop or Destination Options: PadN
        }
    }
    body.extend(l4);
    body.extend(&p.payload);
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((body.len() as u16).to_be_bytes());
    h.extend([chain.first().copied().unwrap_or(p.proto), 64]);
    h.extend(p.src.to_be_bytes());
    h.extend(p.dst.to_be_bytes());
    h.extend(body);
    h
}

/// A generated packet: source, destination, UDP payload.
type Sent = (u128, u128, Vec<u8>);

/// A GENERATEd packet read back: IPv4/UDP or IPv6/UDP.
fn sent(b: &[u8]) -> Sent {
    if b[0] >> 4 == 6 {
        let a = |i: usize| u128::from_be_bytes(b[i..i + 16].try_into().unwrap());
        return (a(8), a(24), b[48..].to_vec());
    }
    let a = |i: usize| mapped(u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    let ihl = (b[0] & 15) as usize * 4;
    (a(12), a(16), b[ihl + 8..].to_vec())
}

/// What a run did: drops (packet indices), generated packets (sorted), cost; or its fault.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Ran { dropped: Vec<usize>, generated: Vec<Sent>, cost: u64 },
    Faulted(Fault),
}

fn window_of(packets: &[Pkt]) -> Window {
    let mut w = Window::new();
    for p in packets {
        let f = frame(p);
        let parsed = vinet_engine::packet::parse_frame(LinkType::Raw, &f);
        assert!(matches!(parsed, vinet_engine::packet::Parsed::Packet(_)), "a test frame does not parse ({parsed:?}): {p:?}");
        w.push(LinkType::Raw, 0, 0, &f);
    }
    w
}

fn this(c: &Checked, me: Client) -> This {
    match c.policy().client {
        ClientKind::EndUser => This { ip: me.ip, subnet: (me.ip, 128) },
        ClientKind::EdgeRouter => This { ip: me.ip, subnet: me.net },
        ClientKind::OnOwner => This::on_owner(ON),
    }
}

/// The VM over the whole window as one view.
fn whole(c: &Checked, me: Client, prog: &Arc<Program>, packets: &[Pkt], interpret_only: bool) -> Outcome {
    let w = window_of(packets);
    let inst = prog.instantiate(&[]).expect("default parameters bind");
    let mut m = Machine::new();
    m.set_interpret_only(interpret_only);
    match inst.run(this(c, me), w.view(), &mut m) {
        Ok(st) => {
            let e = m.effects();
            let dropped = (0..packets.len()).filter(|&i| e.is_dropped(i)).collect();
            let mut generated: Vec<Sent> = e.generated().map(sent).collect();
            generated.sort();
            Outcome::Ran { dropped, generated, cost: st.cost }
        }
        Err(f) => Outcome::Faulted(f),
    }
}

/// The VM as the router runs it: the program installed for the client in the dispatch table.
fn bucketed(c: &Checked, me: Client, packets: &[Pkt]) -> Outcome {
    let mut w = window_of(packets);
    let mut d = Dispatch::new(c.policy().window_packets);
    let binding = Binding { this_ip: me.ip, this_subnet: (c.policy().client == ClientKind::EdgeRouter).then_some(me.net), params: vec![] };
    let id = d.install(c, &binding).expect("a checked program installs");
    let rep = d.run_window(&mut w);
    if rep.faults > 0 {
        let f = d.list().find_map(|i| i.last_fault.cloned()).expect("a faulted run leaves its fault");
        return Outcome::Faulted(f);
    }
    let dropped = (0..packets.len()).filter(|&i| w.is_dropped(i as u32)).collect();
    let mut generated: Vec<Sent> = w.generated().map(sent).collect();
    generated.sort();
    Outcome::Ran { dropped, generated, cost: d.stats(id).expect("installed").max_cost }
}

fn safe(c: &Checked, me: Client, packets: &[Pkt], o: &Outcome, run: &str) -> Result<(), String> {
    let kind = c.policy().client;
    match o {
        Outcome::Faulted(
            f @ (Fault::OverBudget { .. } | Fault::LoopBound { .. } | Fault::StepLimit { .. } | Fault::OverGenerated { .. }),
        ) => Err(format!("{run}: a checked program stopped on a metering fault: {f}")),
        Outcome::Faulted(_) => Ok(()),
        Outcome::Ran { dropped, generated, cost } => {
            if let Some(&i) = dropped.iter().find(|&&i| !mine(kind, me, &packets[i])) {
                return Err(format!("{run}: dropped packet {i}, to {}, not the client's", addr_text(packets[i].dst)));
            }
            // (An overlay-network owner has no THIS_IP: it may generate nothing.)
            if let Some(g) = generated.iter().find(|g| kind == ClientKind::OnOwner || g.1 != me.ip) {
                return Err(format!("{run}: generated to {}, not THIS_IP", addr_text(g.1)));
            }
            if *cost > c.complexity() {
                return Err(format!("{run}: metered cost {cost} exceeds the certified complexity {}", c.complexity()));
            }
            // Bytes sent: each packet's payload and its 28 bytes of IPv4 and UDP headers (48 of IPv6's).
            let header = |g: &Sent| if v4_of(g.1).is_some() { 28 } else { 48 };
            let sent: u64 = generated.iter().map(|g| header(g) + g.2.len() as u64).sum();
            if sent > c.generated() {
                return Err(format!("{run}: generated {sent} bytes, over the certified {}", c.generated()));
            }
            Ok(())
        }
    }
}

/// The same effects (drops and generated packets; or the same fault kind).
fn same_effects(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Ran { dropped: d1, generated: g1, .. }, Outcome::Ran { dropped: d2, generated: g2, .. }) => d1 == d2 && g1 == g2,
        (Outcome::Faulted(f1), Outcome::Faulted(f2)) => std::mem::discriminant(f1) == std::mem::discriminant(f2),
        _ => false,
    }
}

/// One window through the oracle; whether the runs stopped on a (benign, identical) fault.
fn exercise(c: &Checked, prog: &Arc<Program>, seed: u64) -> Result<WindowNotes, String> {
    let kind = c.policy().client;
    let mut r = Rng::seeded(seed);
    let me = if r.chance(50) { V4 } else { V6 };
    let w = c.policy().window_packets as usize;
    let n = r.pick(&[0, 1, 2, 7, 31, 64, 200, w]).min(w);
    let packets: Vec<Pkt> = (0..n).map(|_| packet(&mut r, &DESTS4, &DESTS6)).collect();
    let v6_packets = packets.iter().filter(|p| p.v6).count() as u64;
    let whole_run = whole(c, me, prog, &packets, false);
    let interpreted = whole(c, me, prog, &packets, true);
    safe(c, me, &packets, &whole_run, "whole window")?;
    safe(c, me, &packets, &interpreted, "whole window, interpreted")?;
    if whole_run != interpreted {
        return Err(format!("the compiled plans and the interpreter differ: {whole_run:?} vs {interpreted:?}"));
    }
    if kind == ClientKind::OnOwner {
        // Routers do not dispatch overlay-network owners' programs yet (the dispatch table
        // refuses them): the whole window, and non-interference over it, is what runs.
        let mut others = packets.clone();
        for q in others.iter_mut().filter(|q| !mine(kind, me, q)) {
            let fresh = packet(&mut r, &[0x0a09_0909, 0xc000_0201, 0x0a00_0107, 0x0b00_0007, 0x0a00_0007], &DESTS6);
            *q = Pkt { key: if fresh.key == Some(ON) { Some(ON + 2) } else { fresh.key }, ..fresh };
        }
        let again = whole(c, me, prog, &others, false);
        safe(c, me, &others, &again, "whole window, other ONs' packets changed")?;
        if !same_effects(&whole_run, &again) {
            return Err(format!("other overlay networks' packets changed what it does: {whole_run:?} vs {again:?}"));
        }
        let faulted = matches!(whole_run, Outcome::Faulted(_));
        return Ok(WindowNotes { faulted, idle_effects: false, whole_only_fault: false, v6_client: me == V6, v6_packets });
    }
    let router = bucketed(c, me, &packets);
    safe(c, me, &packets, &router, "bucketed")?;
    // The router runs a program only over a bucket with packets in it (dispatch/run.rs): in a
    // window with none of the client's packets, the bucketed run has no effects, whatever the
    // whole-window run of a program with effects of its own (a constant GENERATE) does.
    let idle = !packets.iter().any(|p| mine(kind, me, p));
    let nothing = Outcome::Ran { dropped: vec![], generated: vec![], cost: 0 };
    if idle && router != nothing {
        return Err(format!("the router ran a program with no packets of its client: {router:?}"));
    }
    // The bucket as a window of its own: what the router's run must do.
    let own: Vec<usize> = (0..packets.len()).filter(|&i| mine(kind, me, &packets[i])).collect();
    let own_packets: Vec<Pkt> = own.iter().map(|&i| packets[i].clone()).collect();
    let own_run = match whole(c, me, prog, &own_packets, false) {
        Outcome::Ran { dropped, generated, cost } => Outcome::Ran { dropped: dropped.iter().map(|&i| own[i]).collect(), generated, cost },
        f => f,
    };
    if !idle && !same_effects(&own_run, &router) {
        return Err(format!("the bucket run alone and the bucketed run differ: {own_run:?} vs {router:?}"));
    }
    // A run over the whole window also walks other clients' groups; a benign fault there (an
    // overflow computed in another client's group) throws the whole run's effects away, which
    // the router, running the bucket alone, never meets. Anything else must agree.
    let whole_only_fault = matches!(whole_run, Outcome::Faulted(_)) && !matches!(router, Outcome::Faulted(_));
    if !idle && !whole_only_fault && !same_effects(&whole_run, &router) {
        return Err(format!("whole-window and bucketed runs differ: {whole_run:?} vs {router:?}"));
    }
    // Non-interference: every other client's packet changes, in place.
    let mut others = packets.clone();
    for q in others.iter_mut().filter(|q| !mine(kind, me, q)) {
        let mut fresh = packet(&mut r, &OTHERS4, &OTHERS6);
        if mine(kind, me, &fresh) {
            (fresh.dst, fresh.key) = (if fresh.v6 { 2 } else { mapped(0x0b00_0001) }, Some(ON + 2));
        }
        *q = fresh;
    }
    let whole_again = whole(c, me, prog, &others, false);
    safe(c, me, &others, &whole_again, "whole window, others changed")?;
    if !same_effects(&whole_run, &whole_again) {
        return Err(format!("other clients' packets changed what it does: {whole_run:?} vs {whole_again:?}"));
    }
    let router_again = bucketed(c, me, &others);
    safe(c, me, &others, &router_again, "bucketed, others changed")?;
    if !same_effects(&router, &router_again) {
        return Err(format!("other clients' packets changed what it does, bucketed: {router:?} vs {router_again:?}"));
    }
    let idle_effects = idle && !same_effects(&whole_run, &nothing);
    Ok(WindowNotes { faulted: matches!(router, Outcome::Faulted(_)), idle_effects, whole_only_fault, v6_client: me == V6, v6_packets })
}

/// What a window showed that is not a violation.
struct WindowNotes {
    /// The router's run stopped on a benign fault.
    faulted: bool,
    /// The whole-window run stopped on a benign fault met in another client's group; the router's did not.
    whole_only_fault: bool,
    /// The client had no packets in the window, the router did not run its program, and the
    /// whole-window run had effects.
    idle_effects: bool,
    /// The client was IPv6.
    v6_client: bool,
    /// IPv6 packets in the window.
    v6_packets: u64,
}
