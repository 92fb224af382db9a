//! The transport-level instructions (issue 16) on hand-built windows and
//! hand-written modules: `Narrow`, `GroupField`, `DistinctPorts` and
//! `foreach` over groups keyed by numbers, over TCP, UDP and ICMP packets,
//! transport headers cut short at every length, non-first fragments and TCP
//! data offsets below 5; their metering against the condition generator's
//! certified complexity; the packet-local plans against the interpreter.

use super::tests::{metered_policy, policy, xorshift, Asm, BAD, BAD6, GOOD, GOOD6, ME, ME6, OTHER, OTHER6};
use super::*;
use crate::packet::tests::{fragment_header, ipv4_bytes, ipv6_bytes, ipv6_chain, tcp_bytes_with, udp_bytes};
use crate::packet::LinkType;
use crate::window::Window;
use vinet_checker::bytecode::{ArithOp, Class, CmpOp, Field, Module, Reg};
use vinet_checker::mapped;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const SYN: u8 = 2;
const ACK: u8 = 16;
const FIN: u8 = 1;
const RST: u8 = 4;

/// What a test packet is, independently of the parser: its protocol, and
/// its ports and flags if it has them.
#[derive(Clone, Copy, Debug)]
struct Spec {
    proto: u8,
    ports: Option<(u16, u16)>,
    flags: Option<u8>,
}

/// A window of hand-built packets and what each is.
#[derive(Default)]
struct Win {
    w: Window,
    specs: Vec<Spec>,
    /// The IPv6 extension headers its IPv6 packets carry before the upper layer.
    exts: &'static [u8],
}

/// An address of a test packet: an IPv4 one as a `u32` (IPv4-mapped), any
/// as a `u128`.
trait Wide: Copy {
    fn wide(self) -> u128;
}
impl Wide for u32 {
    fn wide(self) -> u128 {
        mapped(self)
    }
}
impl Wide for i32 {
    fn wide(self) -> u128 {
        mapped(self as u32)
    }
}
impl Wide for u128 {
    fn wide(self) -> u128 {
        self
    }
}

/// An IPv4 packet when both addresses are IPv4-mapped, else IPv6 with the
/// extension headers `exts` before the upper layer.
fn ip_of(src: u128, dst: u128, proto: u8, l4: &[u8], exts: &[u8]) -> Vec<u8> {
    if crate::packet::is_mapped(src) && crate::packet::is_mapped(dst) {
        ipv4_bytes(src as u32, dst as u32, proto, l4)
    } else {
        ipv6_chain(src, dst, exts, proto, l4)
    }
}

impl Win {
    fn push(&mut self, spec: Spec, ip: &[u8]) {
        self.w.push(LinkType::Raw, 0, 0, ip);
        self.specs.push(spec);
        assert_eq!(self.w.packet_count(), self.specs.len(), "every test packet is a packet of the window");
    }
    fn tcp(&mut self, src: impl Wide, dst: impl Wide, sport: u16, dport: u16, flags: u8) {
        let ip = ip_of(src.wide(), dst.wide(), TCP, &tcp_bytes_with(sport, dport, 1, flags, &[], b"data"), self.exts);
        self.push(Spec { proto: TCP, ports: Some((sport, dport)), flags: Some(flags) }, &ip);
    }
    fn udp(&mut self, src: impl Wide, dst: impl Wide, sport: u16, dport: u16) {
        let ip = ip_of(src.wide(), dst.wide(), UDP, &udp_bytes(sport, dport, b"data"), self.exts);
        self.push(Spec { proto: UDP, ports: Some((sport, dport)), flags: None }, &ip);
    }
    fn other(&mut self, src: impl Wide, dst: impl Wide, proto: u8) {
        // Bytes that would read as ports 25 and 25, and flags SYN, were it TCP.
        let ip = ip_of(src.wide(), dst.wide(), proto, &tcp_bytes_with(25, 25, 1, SYN, &[], b""), self.exts);
        self.push(Spec { proto, ports: None, flags: None }, &ip);
    }
    /// A packet without ports: a TCP or UDP header of ports `25 -> 25`
    /// (flags SYN) cut short at `n` bytes, a non-first fragment (`off`: the
    /// IPv4 flags and offset word; for IPv6 the offset and the M bit of a
    /// Fragment header), or (for TCP, `offset` below 5) a data offset too small.
    fn portless(&mut self, src: impl Wide, dst: impl Wide, proto: u8, how: Portless) {
        let (src, dst) = (src.wide(), dst.wide());
        let mut l4 = if proto == TCP { tcp_bytes_with(25, 25, 1, SYN, &[], b"data") } else { udp_bytes(25, 25, b"data") };
        if let Portless::Offset(words) = how {
            l4[12] = words << 4;
        }
        let v6 = !crate::packet::is_mapped(src);
        let mut ip = match how {
            Portless::Fragment(off) if v6 => {
                ipv6_bytes(src, dst, 44, &[fragment_header(proto, off & 0x1fff, off & 0x2000 != 0, 9), l4.clone()].concat())
            }
            _ => ip_of(src, dst, proto, &l4, self.exts),
        };
        match how {
            Portless::Cut(n) => ip.truncate(ip.len() - l4.len() + n),
            Portless::Fragment(off) if !v6 => ip[6..8].copy_from_slice(&off.to_be_bytes()),
            _ => {}
        }
        self.push(Spec { proto, ports: None, flags: None }, &ip);
    }

    /// The expected members of a narrowing, by the specs.
    fn expect(&self, f: impl Fn(&Spec) -> bool) -> Vec<usize> {
        (0..self.specs.len()).filter(|&i| f(&self.specs[i])).collect()
    }
}

#[derive(Clone, Copy, Debug)]
enum Portless {
    Cut(usize),
    Fragment(u16),
    Offset(u8),
}

/// A window of every kind: whole TCP and UDP packets on assorted ports and
/// flags, ICMP and GRE, and TCP and UDP packets without ports (cut at every
/// length of their header, non-first fragments, data offsets 0 to 4).
fn mixed() -> Win {
    let mut w = Win::default();
    mixed_into(&mut w, [ME, OTHER, BAD, GOOD].map(mapped));
    w
}

/// [`mixed`] of IPv4 and of IPv6 packets (the IPv6 ones behind Hop-by-Hop
/// and Destination Options headers) in one window.
fn dual() -> Win {
    let mut w = Win { exts: &[0, 60], ..Win::default() };
    mixed_into(&mut w, [ME, OTHER, BAD, GOOD].map(mapped));
    mixed_into(&mut w, [ME6, OTHER6, BAD6, GOOD6]);
    w
}

fn mixed_into(w: &mut Win, [me, other, bad, good]: [u128; 4]) {
    w.tcp(bad, me, 40_000, 25, SYN);
    w.udp(good, me, 53, 40_001);
    w.other(bad, me, ICMP);
    w.tcp(good, me, 443, 40_002, SYN | ACK);
    w.tcp(bad, me, 40_003, 25, ACK);
    w.udp(bad, me, 123, 123);
    w.tcp(bad, other, 1, 25, SYN);
    w.tcp(good, me, 0, 0, 0);
    w.tcp(good, me, 65_535, 65_535, 0xff);
    w.udp(good, me, 0, 65_535);
    w.other(good, me, 47);
    for n in 0..20 {
        w.portless(bad, me, TCP, Portless::Cut(n));
    }
    for n in 0..8 {
        w.portless(bad, me, UDP, Portless::Cut(n));
    }
    for off in [1u16, 0x1fff, 0x2001] {
        w.portless(bad, me, TCP, Portless::Fragment(off));
        w.portless(bad, me, UDP, Portless::Fragment(off));
    }
    for words in 0..5 {
        w.portless(bad, me, TCP, Portless::Offset(words));
    }
    w.tcp(bad, me, 40_004, 26, FIN | ACK);
    w.udp(bad, me, 40_005, 25);
    w.tcp(good, me, 40_000, 25, RST);
}

fn sc(p: &Program, m: &Machine, r: Reg) -> u64 {
    match p.slots[r as usize] {
        Slot::Scalar(i) => m.scalars[i as usize] as u64,
        s => panic!("r{r} is {s:?}"),
    }
}

fn members(p: &Program, m: &Machine, r: Reg, n: usize) -> Vec<usize> {
    let Slot::Set(i) = p.slots[r as usize] else { panic!("r{r} is not a set") };
    let words = &m.sets[i as usize * m.words_per_set..][..m.words_per_set];
    (0..n).filter(|&k| words[k / 64] >> (k % 64) & 1 == 1).collect()
}

fn groups<'m>(p: &Program, m: &'m Machine, r: Reg) -> &'m machine::Groups {
    let Slot::Groups(i) = p.slots[r as usize] else { panic!("r{r} is not a grouping") };
    &m.groups[i as usize]
}

fn run_on(p: &Arc<Program>, w: &Window, m: &mut Machine) -> Result<RunStats, Fault> {
    p.instantiate(&[]).unwrap().run(super::tests::this(), w.view(), m)
}

/// `r = Narrow(All, field, a, b)` for constants a and b: the module and `r`.
fn narrow_module(field: Field, a: u64, b: u64) -> (Module, Reg) {
    let mut asm = Asm::default();
    let all = asm.all();
    let (ra, rb) = (asm.konst(Const::Num(a)), asm.konst(Const::Num(b)));
    let r = asm.reg(Ty::Set);
    asm.op(Insn::Narrow { dst: r, set: all, field, a: ra, b: rb });
    (asm.module(Class::Monitoring), r)
}

/// Each narrowing selects exactly the packets its specification says, on a
/// window of every kind of packet, and costs its field's unit per packet of
/// its set; the interpreter and the plan agree on every one.
#[test]
fn narrowings_select_what_the_semantics_says() {
    let w = dual();
    let n = w.specs.len();
    let port = |s: &Spec, src: bool| s.ports.map(|(a, b)| u64::from(if src { a } else { b }));
    let in_range = |v: Option<u64>, lo: u64, hi: u64| v.is_some_and(|v| lo <= v && v <= hi);
    let flags = |s: &Spec, on: u64, off: u64| s.flags.is_some_and(|f| u64::from(f) & on == on && u64::from(f) & off == 0);
    let big = u64::MAX;
    let cases: Vec<(Field, u64, u64, Vec<usize>)> = vec![
        (Field::Proto, 6, 6, w.expect(|s| s.proto == TCP)),
        (Field::Proto, 17, 17, w.expect(|s| s.proto == UDP)),
        (Field::Proto, 1, 1, w.expect(|s| s.proto == ICMP)),
        (Field::Proto, 6, 17, w.expect(|s| (6..=17).contains(&s.proto))),
        (Field::Proto, 0, 255, (0..n).collect()),
        (Field::Proto, 0, big, (0..n).collect()),
        (Field::Proto, 17, 6, vec![]),
        (Field::Proto, 256, big, vec![]),
        (Field::Proto, 262, 262, vec![] /* 6 + 256 */),
        (Field::DstPort, 25, 25, w.expect(|s| port(s, false) == Some(25))),
        (Field::DstPort, 25, 26, w.expect(|s| in_range(port(s, false), 25, 26))),
        (Field::DstPort, 0, 0, w.expect(|s| port(s, false) == Some(0))),
        (Field::DstPort, 0, 65_535, w.expect(|s| s.ports.is_some())),
        (Field::DstPort, 0, big, w.expect(|s| s.ports.is_some())),
        (Field::DstPort, 65_535, 65_536, w.expect(|s| port(s, false) == Some(65_535))),
        (Field::DstPort, 65_536, big, vec![]),
        (Field::DstPort, 25 + 65_536, 25 + 65_536, vec![]),
        (Field::DstPort, 26, 25, vec![]),
        (Field::DstPort, big, 0, vec![]),
        (Field::SrcPort, 0, 1023, w.expect(|s| in_range(port(s, true), 0, 1023))),
        (Field::SrcPort, 40_000, 40_000, w.expect(|s| port(s, true) == Some(40_000))),
        (Field::SrcPort, 25, 25, vec![]),
        (Field::TcpFlags, u64::from(SYN), u64::from(ACK), w.expect(|s| flags(s, 2, 16))),
        (Field::TcpFlags, u64::from(SYN | ACK), 0, w.expect(|s| flags(s, 18, 0))),
        (Field::TcpFlags, 0, 0, w.expect(|s| s.flags.is_some())),
        (Field::TcpFlags, 0, 0xff, w.expect(|s| s.flags == Some(0))),
        (Field::TcpFlags, 0xff, 0, w.expect(|s| s.flags == Some(0xff))),
        (Field::TcpFlags, u64::from(ACK), u64::from(FIN | RST | SYN), w.expect(|s| flags(s, 16, 7))),
        // Bits above the flags byte: none set, all clear.
        (Field::TcpFlags, 0x100, 0, vec![]),
        (Field::TcpFlags, 0x102, 0, vec![]),
        (Field::TcpFlags, u64::from(SYN), 0x100, w.expect(|s| flags(s, 2, 0))),
        (Field::TcpFlags, u64::from(SYN), big << 8, w.expect(|s| flags(s, 2, 0))),
        // A flag both set and clear: nothing.
        (Field::TcpFlags, u64::from(SYN), u64::from(SYN), vec![]),
        (Field::TcpFlags, big, big, vec![]),
    ];
    let (mut plan, mut interp) = (Machine::new(), Machine::new());
    interp.set_interpret_only(true);
    for (field, a, b, want) in cases {
        assert!(
            want.iter().all(|&i| w.specs[i].ports.is_some() || field == Field::Proto),
            "a narrowing by ports or flags never selects a packet without ports"
        );
        let (m, r) = narrow_module(field, a, b);
        let p = Arc::new(Program::unchecked(m, 1000, &policy()));
        let st = run_on(&p, &w.w, &mut interp).unwrap();
        assert_eq!(members(&p, &interp, r, n), want, "{field:?} {a} {b}");
        assert_eq!(st.cost, n as u64 * policy().unit_costs.by_field[field as usize], "{field:?}: its unit per packet of All");
        // The same narrowing then DISCARD: a chain plan, which drops the
        // same packets at the same cost.
        let (mut m, r) = narrow_module(field, a, b);
        m.header.class = Class::Filtering;
        m.code.push(Insn::Discard { set: r });
        m.lines.push(9);
        let p = Arc::new(Program::unchecked(m, 1000, &policy()));
        let inst = p.instantiate(&[]).unwrap();
        assert!(inst.chain.is_some(), "{field:?}: a chain plan");
        let (x, y) = (run_on(&p, &w.w, &mut plan).unwrap(), run_on(&p, &w.w, &mut interp).unwrap());
        assert_eq!(x, y, "{field:?} {a} {b}");
        let dropped = |m: &Machine| (0..n).filter(|&i| m.effects().is_dropped(i)).collect::<Vec<_>>();
        assert_eq!((dropped(&plan), dropped(&interp)), (want.clone(), want.clone()), "{field:?} {a} {b}");
        // And over rows of the window's columns (the small-bucket path), 64
        // at a time (the policy's instructions cost nothing, so the costs add up).
        let all_rows: Vec<u32> = (0..n as u32).rev().collect();
        let (mut got, mut cost) = (Vec::new(), 0);
        for rows in all_rows.chunks(64) {
            let (st, drops) = inst.run_chain(super::tests::this(), &w.w.cols, rows).unwrap();
            got.extend((0..rows.len()).filter(|&k| drops >> k & 1 == 1).map(|k| rows[k] as usize));
            cost += st.cost;
        }
        got.sort_unstable();
        assert_eq!((got, cost), (want.clone(), y.cost), "{field:?} {a} {b}: rows");
    }
}

/// Groups by protocol, by ports and by flags: in the order their keys first
/// occur, members in window order, packets without the field in none.
#[test]
fn groups_by_field_order_and_keys() {
    let w = mixed();
    let n = w.specs.len();
    for field in [Field::Proto, Field::SrcPort, Field::DstPort, Field::TcpFlags] {
        let mut a = Asm::default();
        let all = a.all();
        let g = a.reg(Ty::NumGroups);
        a.op(Insn::GroupField { dst: g, set: all, field });
        let p = Arc::new(Program::unchecked(a.module(Class::Monitoring), 1000, &policy()));
        let mut m = Machine::new();
        let st = run_on(&p, &w.w, &mut m).unwrap();
        assert_eq!(st.cost, n as u64 * policy().unit_costs.by_field[field as usize]);
        let key = |s: &Spec| -> Option<u32> {
            match field {
                Field::Proto => Some(u32::from(s.proto)),
                Field::SrcPort => s.ports.map(|p| u32::from(p.0)),
                Field::DstPort => s.ports.map(|p| u32::from(p.1)),
                Field::TcpFlags => s.flags.map(u32::from),
            }
        };
        let mut keys: Vec<u32> = vec![];
        for s in &w.specs {
            if let Some(k) = key(s) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        let gr = groups(&p, &m, g);
        assert_eq!(gr.keys, keys.iter().map(|&k| u128::from(k)).collect::<Vec<_>>(), "{field:?}: keys in first-occurrence order");
        for (gi, &k) in keys.iter().enumerate() {
            let got = &gr.members[gr.starts[gi] as usize..gr.starts[gi + 1] as usize];
            let want: Vec<u32> = (0..n as u32).filter(|&i| key(&w.specs[i as usize]) == Some(k)).collect();
            assert_eq!(got, want.as_slice(), "{field:?} key {k}");
        }
        let grouped = gr.members.len();
        assert_eq!(grouped, w.specs.iter().filter(|s| key(s).is_some()).count(), "{field:?}: the packets without it are in no group");
    }
}

/// Groups by protocol on a small window: the exact layout.
#[test]
fn protocol_groups_layout() {
    let mut w = Win::default();
    w.udp(1, ME, 1, 2); // 0
    w.tcp(2, ME, 1, 2, SYN); // 1
    w.other(3, ME, ICMP); // 2
    w.udp(4, ME, 1, 2); // 3
    w.portless(5, ME, TCP, Portless::Cut(3)); // 4: TCP still
    w.other(6, ME, ICMP); // 5
    let mut a = Asm::default();
    let all = a.all();
    let g = a.reg(Ty::NumGroups);
    a.op(Insn::GroupField { dst: g, set: all, field: Field::Proto });
    let p = Arc::new(Program::unchecked(a.module(Class::Monitoring), 100, &policy()));
    let mut m = Machine::new();
    run_on(&p, &w.w, &mut m).unwrap();
    let gr = groups(&p, &m, g);
    assert_eq!(gr.keys, vec![17, 6, 1]);
    assert_eq!(&gr.members, &[0, 3, 1, 4, 2, 5]);
    assert_eq!(&gr.starts, &[0, 2, 4, 6]);
}

/// A foreach over groups by destination port binds its key (a number) to
/// each group's port, its set to the group: DISCARD the groups of ports 25
/// and 53 (the keys from 25 to 53), COUNT every group.
#[test]
fn foreach_over_number_groups_binds_number_keys() {
    let mut w = Win::default();
    w.tcp(1, ME, 1000, 80, ACK); // 0
    w.tcp(2, ME, 1001, 25, SYN); // 1
    w.udp(3, ME, 1002, 25); // 2
    w.portless(4, ME, TCP, Portless::Fragment(1)); // 3: no port, in no group
    w.udp(5, ME, 1003, 53); // 4
    w.tcp(6, ME, 1004, 80, ACK); // 5
    let mut a = Asm::default();
    let all = a.all();
    let (smtp, dns) = (a.konst(Const::Num(25)), a.konst(Const::Num(53)));
    let g = a.reg(Ty::NumGroups);
    a.op(Insn::GroupField { dst: g, set: all, field: Field::DstPort });
    let (k, s, c) = (a.reg(Ty::Num), a.reg(Ty::Set), a.reg(Ty::Num));
    let (above, below, both) = (a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool));
    a.op(Insn::Foreach { groups: g, key: k, set: s, body_len: 6 });
    a.op(Insn::Count { dst: c, set: s });
    a.op(Insn::Cmp { op: CmpOp::Ge, dst: above, a: k, b: smtp });
    a.op(Insn::Cmp { op: CmpOp::Le, dst: below, a: k, b: dns });
    a.op(Insn::And { dst: both, a: above, b: below });
    a.op(Insn::If { cond: both, then_len: 1, else_len: 0 });
    a.op(Insn::Discard { set: s });
    let p = Arc::new(Program::unchecked(a.module(Class::Filtering), 1000, &policy()));
    let mut m = Machine::new();
    let st = run_on(&p, &w.w, &mut m).unwrap();
    assert_eq!((0..6).filter(|&i| m.effects().is_dropped(i)).collect::<Vec<_>>(), vec![1, 2, 4]);
    // GROUP_BY_DESTINATION_PORT 1 x 6, COUNT 1 x (2 + 2 + 1), DISCARD 1 x 3, one unit a group.
    assert_eq!(st.cost, 6 + 5 + 3 + 3);
}

/// DISTINCT_DESTINATION_PORTS counts the distinct destination ports of the
/// packets with ports: a packet without ports is not port 0.
#[test]
fn distinct_ports_do_not_count_packets_without_ports() {
    let count = |w: &Win| {
        let mut a = Asm::default();
        let all = a.all();
        let r = a.reg(Ty::Num);
        a.op(Insn::DistinctPorts { dst: r, set: all });
        let p = Arc::new(Program::unchecked(a.module(Class::Monitoring), 10_000, &policy()));
        let mut m = Machine::new();
        let st = run_on(&p, &w.w, &mut m).unwrap();
        assert_eq!(st.cost, 3 * w.specs.len() as u64, "DISTINCT_DESTINATION_PORTS 3 a packet");
        sc(&p, &m, r)
    };
    let w = mixed();
    let mut want: Vec<u16> = w.specs.iter().filter_map(|s| s.ports.map(|p| p.1)).collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(count(&w), want.len() as u64);
    let mut w = Win::default();
    assert_eq!(count(&w), 0);
    for n in 0..20 {
        w.portless(BAD, ME, TCP, Portless::Cut(n));
    }
    w.portless(BAD, ME, UDP, Portless::Fragment(7));
    w.other(BAD, ME, ICMP);
    assert_eq!(count(&w), 0, "no packet with ports");
    w.tcp(BAD, ME, 1, 0, SYN);
    assert_eq!(count(&w), 1, "port 0, really");
    w.udp(BAD, ME, 1, 0);
    w.udp(BAD, ME, 1, 65_535);
    assert_eq!(count(&w), 2, "TCP and UDP port 0 are one port");
    for p in 0..300u16 {
        w.udp(GOOD, ME, 9, 1000 + p % 150);
    }
    assert_eq!(count(&w), 152);
}

fn metered(m: Module) -> Arc<Program> {
    let pol = metered_policy();
    let vc = vinet_checker::vcgen::generate(&m, &pol).expect("conditions");
    Arc::new(Program::build(m, ModuleId([0; 32]), (vc.complexity, vc.generated), &pol))
}

/// On straight code over a full window whose every packet is in every set
/// (TCP, ports 25, SYN, all to THIS_IP), the metered cost is the certified
/// complexity: each new instruction charges what the condition generator
/// charges (its unit per packet of its set, and INSTRUCTION).
#[test]
fn new_instructions_are_metered_as_certified() {
    let mut a = Asm::default();
    let all = a.all(); // 1
    let me = a.this_ip(); // 1
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: me }); // 1 + 256
    let tcp = a.konst(Const::Num(6)); // 1
    let (lo, hi) = (a.konst(Const::Num(20)), a.konst(Const::Num(30))); // 2
    let (syn, ack) = (a.konst(Const::Num(2)), a.konst(Const::Num(16))); // 2
    let big = a.konst(Const::Num(u64::MAX)); // 1
    let zero = a.konst(Const::Num(0)); // 1
    let (s1, s2, s3, s4) = (a.reg(Ty::Set), a.reg(Ty::Set), a.reg(Ty::Set), a.reg(Ty::Set));
    a.op(Insn::Narrow { dst: s1, set: mine, field: Field::Proto, a: tcp, b: tcp }); // 1 + 256
    a.op(Insn::Narrow { dst: s2, set: s1, field: Field::DstPort, a: lo, b: hi }); // 1 + 256
    a.op(Insn::Narrow { dst: s3, set: s2, field: Field::TcpFlags, a: syn, b: ack }); // 1 + 256
    a.op(Insn::Narrow { dst: s4, set: s3, field: Field::SrcPort, a: zero, b: big }); // 1 + 256
    let (g1, g2, g3) = (a.reg(Ty::NumGroups), a.reg(Ty::NumGroups), a.reg(Ty::NumGroups));
    a.op(Insn::GroupField { dst: g1, set: mine, field: Field::Proto }); // 1 + 256
    a.op(Insn::GroupField { dst: g2, set: s4, field: Field::DstPort }); // 1 + 256
    a.op(Insn::GroupField { dst: g3, set: s4, field: Field::TcpFlags }); // 1 + 256
    a.op(Insn::Copy { dst: g1, src: g2 }); // 1 + 256 (a member each)
    let np = a.reg(Ty::Num);
    a.op(Insn::DistinctPorts { dst: np, set: s4 }); // 1 + 3 x 256
    a.op(Insn::Discard { set: s4 }); // 1 + 256
    let p = metered(a.module(Class::Filtering));
    let mut w = Window::new();
    for i in 0..256u32 {
        let ip = ipv4_bytes(GOOD + i, ME, TCP, &tcp_bytes_with(1000 + i as u16, 25, i, SYN, &[], b""));
        w.push(LinkType::Raw, 0, 0, &ip);
    }
    let mut m = Machine::new();
    let st = run_on(&p, &w, &mut m).unwrap();
    let want = 20 + 256 * (1 + 4 + 3 + 1 + 3 + 1);
    assert_eq!((st.cost, p.complexity()), (want, want), "metered and certified, over a full window");
    assert_eq!((st.steps, st.dropped), (20, 256));
    assert_eq!(sc(&p, &m, np), 1);
    let mut interp = Machine::new();
    interp.set_interpret_only(true);
    assert_eq!(run_on(&p, &w, &mut interp).unwrap(), st);
}

/// A foreach over groups by source port, each of one packet (256 distinct
/// ports): the generator charges every group as if it were the window's
/// every packet, and with one packet a group the VM's figure is that bound.
#[test]
fn foreach_over_number_groups_is_metered_as_certified() {
    for field in [Field::SrcPort, Field::DstPort] {
        let mut a = Asm::default();
        let all = a.all(); // 1
        let me = a.this_ip(); // 1
        let mine = a.reg(Ty::Set);
        a.op(Insn::FilterDst { dst: mine, set: all, by: me }); // 1 + 256
        let g = a.reg(Ty::NumGroups);
        a.op(Insn::GroupField { dst: g, set: mine, field }); // 1 + 256
        let (k, s, c, d, n) = (a.reg(Ty::Num), a.reg(Ty::Set), a.reg(Ty::Num), a.reg(Ty::Num), a.reg(Ty::Set));
        a.op(Insn::Foreach { groups: g, key: k, set: s, body_len: 4 }); // 1, and per group: 1 (turn) +
        a.op(Insn::Count { dst: c, set: s }); // 1 + 1
        a.op(Insn::DistinctPorts { dst: d, set: s }); // 1 + 3
        a.op(Insn::Narrow { dst: n, set: s, field, a: k, b: k }); // 1 + 1
        a.op(Insn::Discard { set: n }); // 1 + 1
        let p = metered(a.module(Class::Filtering));
        let mut w = Window::new();
        for i in 0..256u16 {
            let ip = ipv4_bytes(BAD, ME, UDP, &udp_bytes(2000 + i, 3000 + i, b"x"));
            w.push(LinkType::Raw, 0, 0, &ip);
        }
        let mut m = Machine::new();
        let st = run_on(&p, &w, &mut m).unwrap();
        let want = 5 + 2 * 256 + 256 * (1 + 2 + 4 + 2 + 2);
        assert_eq!((st.cost, p.complexity()), (want, want), "{field:?}");
        assert_eq!(st.dropped, 256, "each group's own port");
        // Fewer packets, or fewer groups: never more than certified.
        let mut w = Window::new();
        for i in 0..256u16 {
            let ip = ipv4_bytes(BAD, ME, UDP, &udp_bytes(2000 + i % 7, 3000 + i % 5, b"x"));
            w.push(LinkType::Raw, 0, 0, &ip);
        }
        assert!(run_on(&p, &w, &mut m).unwrap().cost < want);
    }
}

/// The port firewall as the language lowers it: DISCARD(
/// GROUP_BY_DESTINATION_PORT(GROUP_BY_PROTOCOL(GROUP_BY_SOURCE(
/// GROUP_BY_DESTINATION(AllPackets, THIS_IP), Spammer), TCP), Port)).
pub(crate) fn port_firewall() -> Module {
    let mut a = Asm::default();
    let spammer = a.param("Spammer", Const::Addr(BAD));
    let port = a.param("Port", Const::Num(25));
    let all = a.all();
    let me = a.this_ip();
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: me });
    let from = a.reg(Ty::Set);
    a.op(Insn::FilterSrc { dst: from, set: mine, by: spammer });
    let tcp = a.konst(Const::Num(6));
    let t = a.reg(Ty::Set);
    a.op(Insn::Narrow { dst: t, set: from, field: Field::Proto, a: tcp, b: tcp });
    let smtp = a.reg(Ty::Set);
    a.op(Insn::Narrow { dst: smtp, set: t, field: Field::DstPort, a: port, b: port });
    a.op(Insn::Discard { set: smtp });
    a.module(Class::Filtering)
}

/// `DISCARD(TCP_FLAGS(GROUP_BY_DESTINATION(AllPackets, THIS_IP), SYN + ACK, 0))`
/// (the sum as the language lowers it, an addition), and a second DISCARD of
/// the UDP packets to ports `Lo` to `Hi`: not a chain, a general plan.
pub(crate) fn flags_and_ports() -> Module {
    let mut a = Asm::default();
    let lo = a.param("Lo", Const::Num(50));
    let hi = a.param("Hi", Const::Num(130));
    let all = a.all();
    let me = a.this_ip();
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: me });
    let (syn, ack, zero) = (a.konst(Const::Num(2)), a.konst(Const::Num(16)), a.konst(Const::Num(0)));
    let synack = a.reg(Ty::Num);
    a.op(Insn::Arith { op: ArithOp::Add, dst: synack, a: syn, b: ack });
    let sa = a.reg(Ty::Set);
    a.op(Insn::Narrow { dst: sa, set: mine, field: Field::TcpFlags, a: synack, b: zero });
    a.op(Insn::Discard { set: sa });
    let udp = a.konst(Const::Num(17));
    let (u, ports) = (a.reg(Ty::Set), a.reg(Ty::Set));
    a.op(Insn::Narrow { dst: u, set: mine, field: Field::Proto, a: udp, b: udp });
    a.op(Insn::Narrow { dst: ports, set: u, field: Field::DstPort, a: lo, b: hi });
    a.op(Insn::Discard { set: ports });
    a.module(Class::Filtering)
}

/// A random window of TCP, UDP, ICMP and portless packets, from and to a few
/// addresses, on a few ports.
fn random_window(next: &mut impl FnMut() -> u64, n: usize) -> Win {
    let mut w = Win { exts: &[60, 43, 44], ..Win::default() };
    let ports = [25u16, 53, 80, 123, 0, 65_535];
    for _ in 0..n {
        // IPv4 or IPv6 (behind extension headers, an atomic fragment among them).
        let [src, dst] = if next().is_multiple_of(2) {
            [[BAD, GOOD, OTHER][(next() % 3) as usize], [ME, ME, OTHER][(next() % 3) as usize]].map(mapped)
        } else {
            [[BAD6, GOOD6, OTHER6][(next() % 3) as usize], [ME6, ME6, OTHER6][(next() % 3) as usize]]
        };
        let (sp, dp) = (ports[(next() % 6) as usize], ports[(next() % 6) as usize]);
        match next() % 10 {
            0..=3 => w.tcp(src, dst, sp, dp, [SYN, SYN | ACK, ACK, 0x18, FIN | ACK][(next() % 5) as usize]),
            4..=6 => w.udp(src, dst, sp, dp),
            7 => w.other(src, dst, ICMP),
            8 => w.portless(src, dst, TCP, Portless::Cut((next() % 20) as usize)),
            _ => w.portless(src, dst, UDP, Portless::Fragment(1 + (next() % 100) as u16)),
        }
    }
    w
}

/// The plans of the port programs (the chain over a whole view, over rows,
/// the general plan over rows) answer as the interpreter: drops and cost;
/// with parameters bound, and at a bound that makes runs fault.
#[test]
fn port_plans_agree_with_the_interpreter() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let fw = Arc::new(Program::unchecked(port_firewall(), 256 * 6, &policy()));
    let mixed_plan = Arc::new(Program::unchecked(flags_and_ports(), 256 * 5, &policy()));
    let tight = Arc::new(Program::unchecked(port_firewall(), 12, &policy()));
    let binds: Vec<(Arc<Program>, Vec<Const>)> = vec![
        (Arc::clone(&fw), vec![]),
        (Arc::clone(&fw), vec![Const::Addr(GOOD), Const::Num(53)]),
        (Arc::clone(&fw), vec![Const::Addr(BAD), Const::Num(70_000)]),
        (Arc::clone(&fw), vec![Const::Addr6(BAD6), Const::Num(25)]),
        (Arc::clone(&fw), vec![Const::Addr6(GOOD6), Const::Num(53)]),
        (Arc::clone(&mixed_plan), vec![]),
        (Arc::clone(&mixed_plan), vec![Const::Num(0), Const::Num(65_535)]),
        (Arc::clone(&mixed_plan), vec![Const::Num(100), Const::Num(10)]),
        (tight, vec![]),
    ];
    let (mut plan, mut interp) = (Machine::new(), Machine::new());
    interp.set_interpret_only(true);
    let mut faults = 0;
    for round in 0..200 {
        let len = 1 + (next() % 130) as usize;
        let w = random_window(&mut next, len);
        let n = w.specs.len();
        for (p, params) in &binds {
            let inst = p.instantiate(params).unwrap();
            assert!(inst.is_packet_local());
            let this = if round % 2 == 0 { super::tests::this() } else { This::end_user(ME6) };
            let a = inst.run(this, w.w.view(), &mut plan);
            let b = inst.run(this, w.w.view(), &mut interp);
            assert_eq!(a, b, "round {round}, {params:?}");
            faults += u32::from(b.is_err());
            let dropped = |m: &Machine| (0..n).filter(|&i| m.effects().is_dropped(i)).collect::<Vec<_>>();
            assert_eq!(dropped(&plan), dropped(&interp), "round {round}");
            // Rows of the window, as the dispatch table's small buckets.
            let rows: Vec<u32> = (0..n as u32).filter(|i| i % 2 == round % 2).take(64).collect();
            let mut part = Window::new();
            for &r in &rows {
                let (m, bytes) = w.w.frame(r as usize).unwrap();
                part.push(m.link, 0, 0, bytes);
            }
            let whole = inst.run(this, part.view(), &mut interp);
            match (inst.run_local(this, &w.w.cols, &rows), whole) {
                (Some((st, drops)), Ok(want)) => {
                    assert_eq!(st.cost, want.cost, "round {round}");
                    let want_drops = (0..rows.len()).fold(0u64, |b, k| b | u64::from(interp.effects().is_dropped(k)) << k);
                    assert_eq!(drops, want_drops, "round {round}");
                }
                (None, Err(_)) => {}
                (got, want) => panic!("round {round}: the plan gave {got:?}, the interpreter {want:?}"),
            }
        }
    }
    assert!(faults > 0, "the tight firewall should fault sometimes");
}

/// A number the plan computes that overflows leaves the run to the VM,
/// which reports the overflow where it happens.
#[test]
fn plan_arithmetic_overflow_is_the_vms_fault() {
    let mut a = Asm::default();
    let big = a.param("Big", Const::Num(u64::MAX));
    let one = a.konst(Const::Num(1));
    let all = a.all();
    let sum = a.reg(Ty::Num);
    a.op(Insn::Arith { op: ArithOp::Add, dst: sum, a: big, b: one });
    let s = a.reg(Ty::Set);
    a.op(Insn::Narrow { dst: s, set: all, field: Field::DstPort, a: sum, b: sum });
    a.op(Insn::Discard { set: s });
    let p = Arc::new(Program::unchecked(a.module(Class::Filtering), 1000, &policy()));
    let mut w = Win::default();
    w.tcp(BAD, ME, 1, 0, SYN);
    let inst = p.instantiate(&[]).unwrap();
    assert!(inst.is_packet_local() && inst.chain.is_none(), "no chain: its number overflows when bound");
    let mut m = Machine::new();
    assert!(matches!(inst.run(super::tests::this(), w.w.view(), &mut m), Err(Fault::Overflow { at: 3, .. })));
    assert_eq!(inst.run_local(super::tests::this(), &w.w.cols, &[0]), None);
    // Bound to a value that does not overflow: a chain, port 0 + 1.
    let inst = p.instantiate(&[Const::Num(0)]).unwrap();
    assert!(inst.chain.is_some());
    w.tcp(BAD, ME, 1, 1, SYN);
    let st = inst.run(super::tests::this(), w.w.view(), &mut m).unwrap();
    assert_eq!((st.dropped, m.effects().is_dropped(1)), (1, true));
}

/// The port firewall compiled from `examples/port_firewall.vinet` is a
/// chain plan (decided packet by packet, as the address firewall).
#[test]
fn the_example_port_firewall_is_a_chain() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/port_firewall.vinet");
    let src = std::fs::read(&path).unwrap();
    let c = vinet_lang::compile("port_firewall.vinet", &src, &[]).unwrap_or_else(|d| panic!("{d:?}"));
    let p = Arc::new(Program::unchecked(c.module, 256 * 6, &policy()));
    let inst = p.instantiate(&[]).unwrap();
    assert!(inst.chain.is_some(), "a chain plan");
    assert_eq!(inst.chain_packet_bound(), Some(1 + 2 + 1 + 1 + 1), "GBD, GBS, the two narrowings, DISCARD");
}

/// The word-at-a-time field test answers as the packet-at-a-time one, on
/// random columns of every length around a word, for random tests.
#[test]
fn field_bits_agree_with_the_field_of_each_packet() {
    use super::bits::{field_bits, FieldTest};
    use crate::window::{ColumnSlices, View};
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    for len in [0usize, 1, 7, 63, 64, 65, 127, 128, 200] {
        let proto: Vec<u8> = (0..len).map(|_| [TCP, UDP, ICMP, 47][(next() % 4) as usize]).collect();
        let has_ports: Vec<bool> = proto.iter().map(|&p| (p == TCP || p == UDP) && !next().is_multiple_of(4)).collect();
        let sport: Vec<u16> = (0..len).map(|_| [0, 25, 53, 65_535, next() as u16][(next() % 5) as usize]).collect();
        let dport: Vec<u16> = (0..len).map(|_| [0, 25, 53, 65_535, next() as u16][(next() % 5) as usize]).collect();
        let tcp_flags: Vec<u8> = (0..len).map(|i| if proto[i] == TCP && has_ports[i] { next() as u8 } else { 0 }).collect();
        let (zeros, origin): (Vec<u32>, Vec<u32>) = (vec![0; len], (0..len as u32).collect());
        let addrs = vec![ME6; len];
        let v = View::from_columns(ColumnSlices {
            src: &addrs,
            dst: &addrs,
            proto: &proto,
            sport: &sport,
            dport: &dport,
            has_ports: &has_ports,
            tcp_flags: &tcp_flags,
            seq: &zeros,
            pay_off: &zeros,
            pay_len: &zeros,
            origin: &origin,
            bytes: &[],
        })
        .unwrap();
        for _ in 0..200 {
            let field = [Field::Proto, Field::SrcPort, Field::DstPort, Field::TcpFlags][(next() % 4) as usize];
            let pick = |next: &mut dyn FnMut() -> u64| {
                [0, 1, 6, 17, 25, 53, 255, 256, 65_535, 65_536, u64::MAX, next() % 300][(next() % 12) as usize]
            };
            let (a, b) = (pick(&mut next), pick(&mut next));
            let t = FieldTest::new(field, a, b);
            for base in (0..len).step_by(64) {
                let naive = (base..len.min(base + 64)).fold(0u64, |m, i| m | u64::from(t.passes(v.field(field, i))) << (i - base));
                assert_eq!(field_bits(&v, t, base), naive, "{field:?} {a} {b} len {len} base {base}");
            }
        }
    }
}

/// GROUPING: each grouping made costs its unit once, whatever its set's size,
/// in the VM as in the condition generator; inside a foreach over groups of
/// one packet each, once per group (the calibrated policies price it, because
/// a grouping of one packet costs about what one of many does).
#[test]
fn each_grouping_is_charged_grouping_once_as_certified() {
    let mut a = Asm::default();
    let all = a.all(); // 1
    let me = a.this_ip(); // 1
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: me }); // 1 + 256
    let g = a.reg(Ty::NumGroups);
    a.op(Insn::GroupField { dst: g, set: mine, field: Field::SrcPort }); // 1 + 256 + GROUPING
    let (k, s, inner) = (a.reg(Ty::Num), a.reg(Ty::Set), a.reg(Ty::Groups));
    a.op(Insn::Foreach { groups: g, key: k, set: s, body_len: 1 }); // 1, and per group: 1 (turn) +
    a.op(Insn::GroupSrc { dst: inner, set: s }); // 1 + 2 + GROUPING
    let m = a.module(Class::Monitoring);
    let mut pol = metered_policy();
    pol.unit_costs.grouping = 7;
    let vc = vinet_checker::vcgen::generate(&m, &pol).expect("conditions");
    let p = Arc::new(Program::build(m, ModuleId([0; 32]), (vc.complexity, vc.generated), &pol));
    let mut w = Window::new();
    for i in 0..256u16 {
        let ip = ipv4_bytes(BAD, ME, UDP, &udp_bytes(2000 + i, 53, b"x"));
        w.push(LinkType::Raw, 0, 0, &ip);
    }
    let mut m = Machine::new();
    let st = run_on(&p, &w, &mut m).unwrap();
    let want = 5 + 2 * 256 + 7 + 256 * (1 + 1 + 2 + 7);
    assert_eq!((st.cost, p.complexity()), (want, want));
    // Without GROUPING, 8 x 257 fewer units, metered and certified alike.
    let mut zero = metered_policy();
    zero.unit_costs.grouping = 0;
    let vc0 = vinet_checker::vcgen::generate(p.module(), &zero).unwrap();
    assert_eq!(vc0.complexity, want - 7 * 257);
    assert_eq!(run_on(&p, &w, &mut m).unwrap().cost, want, "the same again");
}
