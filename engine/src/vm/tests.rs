//! VM unit tests on hand-made windows and hand-written modules (built through
//! the test-only `Program::unchecked`, since no checked bundle exists yet).

use super::bits::match_bits;
use super::*;
use crate::packet::tests::{ip_bytes, ipv4_bytes, tcp_bytes, udp_bytes};
use crate::packet::LinkType;
use crate::window::Window;
use vinet_checker::bytecode::{ArithOp, Class, CmpOp, Header, Param, Rank, Reg, FORMAT_VERSION};
use vinet_checker::mapped;
use vinet_checker::policy::ClientKind;
use vinet_checker::Policy;

/// The policy of these tests: routine and loop costs only (INSTRUCTION and
/// BYTES 0), so the figures count what the routines touch; see
/// [`metered_policy`] for the machine costs.
pub(crate) fn policy() -> Policy {
    let mut p = metered_policy();
    (p.unit_costs.instruction, p.unit_costs.bytes) = (0, 0);
    p
}

/// The shipped unit costs: every instruction and every 64 bytes of a string cost a unit.
pub(crate) fn metered_policy() -> Policy {
    Policy {
        client: ClientKind::EndUser,
        max_lifetime_secs: 30 * 86_400,
        complexity_up: 20_000,
        cost_up: 5_000_000_000,
        window_packets: 256,
        max_param_bytes: 256,
        generated_bytes_up: 1 << 20,
        unit_costs: UnitCosts {
            discard: 1,
            group_by_destination: 1,
            group_by_source: 2,
            group_by_content: 8,
            contains_string: 6,
            generate: 4,
            count: 1,
            distinct_destinations: 3,
            by_field: [1, 1, 1, 1],
            distinct_ports: 3,
            grouping: 0,
            instruction: 1,
            bytes: 1,
        },
    }
}

/// A deterministic xorshift64 from `seed` (the tests' random windows and installs).
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// A tiny module assembler.
#[derive(Default)]
pub(crate) struct Asm {
    pub regs: Vec<Ty>,
    pub consts: Vec<Const>,
    pub params: Vec<Param>,
    pub code: Vec<Insn>,
}

impl Asm {
    pub fn reg(&mut self, t: Ty) -> Reg {
        self.regs.push(t);
        (self.regs.len() - 1) as Reg
    }
    pub fn konst(&mut self, c: Const) -> Reg {
        let r = self.reg(c.ty());
        self.consts.push(c);
        self.code.push(Insn::Const { dst: r, k: (self.consts.len() - 1) as u16 });
        r
    }
    pub fn param(&mut self, name: &str, default: Const) -> Reg {
        let r = self.reg(default.ty());
        self.params.push(Param { name: name.into(), default });
        self.code.push(Insn::Param { dst: r, p: (self.params.len() - 1) as u16 });
        r
    }
    pub fn op(&mut self, i: Insn) {
        self.code.push(i);
    }
    pub fn all(&mut self) -> Reg {
        let r = self.reg(Ty::Set);
        self.op(Insn::AllPackets { dst: r });
        r
    }
    pub fn this_ip(&mut self) -> Reg {
        let r = self.reg(Ty::Addr);
        self.op(Insn::ThisIp { dst: r });
        r
    }
    pub fn module(self, class: Class) -> Module {
        let n = self.code.len();
        Module {
            version: FORMAT_VERSION,
            header: Header { lifetime_secs: 3600, class },
            consts: self.consts,
            params: self.params,
            regs: self.regs,
            code: self.code,
            lines: (1..=n as u32).collect(),
        }
    }
}

pub(crate) fn program(m: Module, complexity: u64) -> Arc<Program> {
    Arc::new(Program::unchecked(m, complexity, &policy()))
}

pub(crate) const ME: u32 = 0x0a00_0007; // 10.0.0.7
pub(crate) const OTHER: u32 = 0x0a00_0008; // 10.0.0.8
pub(crate) const BAD: u32 = 0xcb00_7109; // 203.0.113.9
pub(crate) const GOOD: u32 = 0xc633_6401; // 198.51.100.1

/// IPv6 counterparts (RFC 3849 documentation addresses): 2001:db8::7,
/// 2001:db8::8, 2001:db8:bad::9, 2001:db8:600d::1.
pub(crate) const ME6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0007;
pub(crate) const OTHER6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0008;
pub(crate) const BAD6: u128 = 0x2001_0db8_0bad_0000_0000_0000_0000_0009;
pub(crate) const GOOD6: u128 = 0x2001_0db8_600d_0000_0000_0000_0000_0001;

pub(crate) fn this() -> This {
    This::end_user(mapped(ME))
}

/// A UDP packet between two addresses of one family (IPv4 when both are IPv4-mapped).
pub(crate) fn udp6(w: &mut Window, src: u128, dst: u128, payload: &[u8]) {
    w.push(LinkType::Raw, 0, 0, &ip_bytes(src, dst, 17, &udp_bytes(1000, 2000, payload)));
}

/// A TCP packet between two addresses of one family.
pub(crate) fn tcp6(w: &mut Window, src: u128, dst: u128, sport: u16, seq: u32, payload: &[u8]) {
    w.push(LinkType::Raw, 0, 0, &ip_bytes(src, dst, 6, &tcp_bytes(sport, 80, seq, payload)));
}

pub(crate) fn udp(w: &mut Window, src: u32, dst: u32, payload: &[u8]) {
    w.push(LinkType::Raw, 0, 0, &ipv4_bytes(src, dst, 17, &udp_bytes(1000, 2000, payload)));
}

pub(crate) fn tcp(w: &mut Window, src: u32, dst: u32, sport: u16, seq: u32, payload: &[u8]) {
    w.push(LinkType::Raw, 0, 0, &ipv4_bytes(src, dst, 6, &tcp_bytes(sport, 80, seq, payload)));
}

fn run(p: &Arc<Program>, w: &Window, m: &mut Machine) -> Result<RunStats, Fault> {
    p.instantiate(&[]).unwrap().run(this(), w.view(), m)
}

fn dropped(m: &Machine, n: usize) -> Vec<usize> {
    (0..n).filter(|&i| m.effects().is_dropped(i)).collect()
}

/// The paper's firewall.
pub(crate) fn firewall() -> Module {
    let mut a = Asm::default();
    let all = a.all();
    let me = a.this_ip();
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: me });
    let s = a.param("SrcIP", Const::Addr(BAD));
    let bad = a.reg(Ty::Set);
    a.op(Insn::FilterSrc { dst: bad, set: mine, by: s });
    a.op(Insn::Discard { set: bad });
    a.module(Class::Filtering)
}

/// The paper's spam filter.
pub(crate) fn spam_filter() -> Module {
    let mut a = Asm::default();
    let w1 = a.param("Word1", Const::Str("viagra".into()));
    let w2 = a.param("Word2", Const::Str("lottery".into()));
    let all = a.all();
    let me = a.this_ip();
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: me });
    let groups = a.reg(Ty::Groups);
    a.op(Insn::GroupSrc { dst: groups, set: mine });
    let (key, pk) = (a.reg(Ty::Addr), a.reg(Ty::Set));
    let (c1, c2, both) = (a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool));
    a.op(Insn::Foreach { groups, key, set: pk, body_len: 5 });
    a.op(Insn::ContainsString { dst: c1, set: pk, needle: w1 });
    a.op(Insn::ContainsString { dst: c2, set: pk, needle: w2 });
    a.op(Insn::And { dst: both, a: c1, b: c2 });
    a.op(Insn::If { cond: both, then_len: 1, else_len: 0 });
    a.op(Insn::Discard { set: pk });
    a.module(Class::Filtering)
}

/// The paper's multicast aggregator, as an end-user program.
pub(crate) fn multicast() -> Module {
    let mut a = Asm::default();
    let b = a.param("BroadcastIP", Const::Addr(GOOD));
    let all = a.all();
    let me = a.this_ip();
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: me });
    let bc = a.reg(Ty::Set);
    a.op(Insn::FilterSrc { dst: bc, set: mine, by: b });
    let (d, c) = (a.reg(Ty::AddrList), a.reg(Ty::Content));
    a.op(Insn::GroupContent { dests: d, content: c, set: bc });
    a.op(Insn::Generate { src: b, dst: me, payload: d });
    a.op(Insn::Generate { src: b, dst: me, payload: c });
    a.op(Insn::Discard { set: bc });
    a.module(Class::Multicast)
}

#[test]
fn firewall_drops_only_bad_packets_to_me_and_meters_exactly() {
    let mut w = Window::new();
    udp(&mut w, BAD, ME, b"x"); // 0: drop
    udp(&mut w, GOOD, ME, b"x"); // 1
    udp(&mut w, BAD, OTHER, b"x"); // 2: not mine
    udp(&mut w, BAD, ME, b"y"); // 3: drop
    let p = program(firewall(), 1024);
    let mut m = Machine::new();
    let st = run(&p, &w, &mut m).unwrap();
    assert_eq!(dropped(&m, 4), vec![0, 3]);
    // GROUP_BY_DESTINATION 1 x 4, GROUP_BY_SOURCE 2 x 3, DISCARD 1 x 2.
    assert_eq!(st.cost, 4 + 6 + 2);
    assert_eq!(st.dropped, 2);
    // The certified bound for W = 256 is 1,024 = 4 x 256.
    let p = program(firewall(), 11);
    assert!(matches!(run(&p, &w, &mut m), Err(Fault::OverBudget { spent: 12, limit: 11, .. })));
    assert!(m.effects().generated().next().is_none() && dropped(&m, 4).is_empty(), "faulted run left effects");
}

#[test]
fn firewall_param_binding() {
    let p = program(firewall(), 1024);
    assert!(p.instantiate(&[Const::Addr(GOOD)]).is_ok());
    assert!(matches!(p.instantiate(&[Const::Num(1)]), Err(BindError::WrongType { .. })));
    assert!(matches!(p.instantiate(&[Const::Addr(1), Const::Addr(2)]), Err(BindError::TooMany { .. })));
    let mut w = Window::new();
    udp(&mut w, BAD, ME, b"x");
    udp(&mut w, GOOD, ME, b"x");
    let mut m = Machine::new();
    p.instantiate(&[Const::Addr(GOOD)]).unwrap().run(this(), w.view(), &mut m).unwrap();
    assert_eq!(dropped(&m, 2), vec![1]);
}

#[test]
fn spam_filter_needs_both_words_from_one_source() {
    let mut w = Window::new();
    udp(&mut w, BAD, ME, b"buy viagra now"); // 0
    udp(&mut w, GOOD, ME, b"win the lottery"); // 1
    udp(&mut w, BAD, ME, b"and the lottery"); // 2
    udp(&mut w, GOOD, ME, b"hello"); // 3
    udp(&mut w, BAD, OTHER, b"viagra lottery"); // 4: not mine
    let p = program(spam_filter(), 5000);
    let mut m = Machine::new();
    let st = run(&p, &w, &mut m).unwrap();
    assert_eq!(dropped(&m, 5), vec![0, 2]);
    // GBD 1 x 5, GBS 2 x 4, CONTAINS_STRING 6 x (2 + 2) twice, DISCARD 1 x 2,
    // and 1 for each of the two iterations.
    assert_eq!(st.cost, 5 + 8 + 48 + 2 + 2);
}

#[test]
fn groups_are_in_first_appearance_order() {
    let mut a = Asm::default();
    let all = a.all();
    let g = a.reg(Ty::Groups);
    a.op(Insn::GroupDst { dst: g, set: all });
    let mut w = Window::new();
    for (src, dst) in [(1, OTHER), (2, ME), (3, OTHER), (4, 99), (5, ME), (6, OTHER)] {
        udp(&mut w, src, dst, b"");
    }
    let p = program(a.module(Class::Monitoring), 100);
    let mut m = Machine::new();
    assert_eq!(run(&p, &w, &mut m).unwrap().cost, 6);
    let g = &m.groups[0];
    assert_eq!(g.keys, vec![mapped(OTHER), mapped(ME), mapped(99)]);
    assert_eq!(&g.members, &[0, 2, 5, 1, 4, 3]);
    assert_eq!(&g.starts, &[0, 3, 5, 6]);
}

#[test]
fn foreach_visits_groups_in_order_and_nests() {
    // foreach (k, s) in GROUP_BY_DESTINATION(All):
    //   if k == THIS_IP then foreach (k2, s2) in GROUP_BY_SOURCE(s): if COUNT(s2) >= 2 then DISCARD(s2)
    let mut a = Asm::default();
    let all = a.all();
    let me = a.this_ip();
    let two = a.konst(Const::Num(2));
    let g = a.reg(Ty::Groups);
    a.op(Insn::GroupDst { dst: g, set: all });
    let (k, s, is_me) = (a.reg(Ty::Addr), a.reg(Ty::Set), a.reg(Ty::Bool));
    let (g2, k2, s2, n, big) = (a.reg(Ty::Groups), a.reg(Ty::Addr), a.reg(Ty::Set), a.reg(Ty::Num), a.reg(Ty::Bool));
    a.op(Insn::Foreach { groups: g, key: k, set: s, body_len: 8 });
    a.op(Insn::Cmp { op: CmpOp::Eq, dst: is_me, a: k, b: me });
    a.op(Insn::If { cond: is_me, then_len: 6, else_len: 0 });
    a.op(Insn::GroupSrc { dst: g2, set: s });
    a.op(Insn::Foreach { groups: g2, key: k2, set: s2, body_len: 4 });
    a.op(Insn::Count { dst: n, set: s2 });
    a.op(Insn::Cmp { op: CmpOp::Ge, dst: big, a: n, b: two });
    a.op(Insn::If { cond: big, then_len: 1, else_len: 0 });
    a.op(Insn::Discard { set: s2 });
    let p = program(a.module(Class::Filtering), 1000);
    assert!(!p.snapshot.iter().any(|&s| s));
    let mut w = Window::new();
    for (src, dst) in [(1, ME), (2, ME), (1, OTHER), (1, OTHER), (1, ME), (3, ME)] {
        udp(&mut w, src, dst, b"");
    }
    let mut m = Machine::new();
    let st = run(&p, &w, &mut m).unwrap();
    assert_eq!(dropped(&m, 6), vec![0, 4]);
    // GBD 6; GBS 2 x 4; COUNT 2 + 1 + 1; DISCARD 2; 1 per iteration: 2 outer
    // (ME, OTHER) and 3 inner (sources 1, 2, 3 to ME).
    assert_eq!(st.cost, 6 + 8 + 4 + 2 + 5);
}

#[test]
fn count_distinct_and_prefixes() {
    let mut a = Asm::default();
    let all = a.all();
    let net = a.konst(Const::Prefix(0x0a00_0000, 24));
    let inside = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: inside, set: all, by: net });
    let (c, d) = (a.reg(Ty::Num), a.reg(Ty::Num));
    a.op(Insn::Count { dst: c, set: inside });
    a.op(Insn::DistinctDst { dst: d, set: all });
    let me = a.this_ip();
    let mask = a.konst(Const::Addr(0xffff_ff00));
    let masked = a.reg(Ty::Addr);
    a.op(Insn::Mask { dst: masked, addr: me, mask });
    let (b1, b2, b3) = (a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool));
    a.op(Insn::InPrefix { dst: b1, addr: me, prefix: net });
    let sub = a.reg(Ty::Prefix);
    a.op(Insn::ThisSubnet { dst: sub });
    a.op(Insn::InPrefix { dst: b2, addr: masked, prefix: sub });
    let three = a.konst(Const::Num(3));
    a.op(Insn::Cmp { op: CmpOp::Eq, dst: b3, a: c, b: three });
    let mut w = Window::new();
    for dst in [ME, OTHER, 0x0a00_0107, ME, 0x0a00_00ff] {
        udp(&mut w, 1, dst, b"");
    }
    let p = program(a.module(Class::Monitoring), 100);
    let mut m = Machine::new();
    let st = run(&p, &w, &mut m).unwrap();
    let sc = |r: Reg| {
        m.scalars[match p.slots[r as usize] {
            Slot::Scalar(i) => i as usize,
            _ => unreachable!(),
        }]
    };
    assert_eq!(sc(c), 4);
    assert_eq!(sc(d), 4);
    assert_eq!(sc(masked), mapped(0x0a00_0000), "an IPv4 mask keeps an IPv4 address IPv4");
    assert_eq!((sc(b1), sc(b2), sc(b3)), (1, 0, 0));
    assert_eq!(st.cost, 5 + 4 + 3 * 5);
}

#[test]
fn contains_string_across_contiguous_tcp_segments_only() {
    let needle_prog = |word: &str| {
        let mut a = Asm::default();
        let all = a.all();
        let wd = a.konst(Const::Str(word.into()));
        let r = a.reg(Ty::Bool);
        a.op(Insn::ContainsString { dst: r, set: all, needle: wd });
        (program(a.module(Class::Monitoring), 1000), r)
    };
    let check = |w: &Window, word: &str| -> bool {
        let (p, r) = needle_prog(word);
        let mut m = Machine::new();
        run(&p, w, &mut m).unwrap();
        m.scalars[match p.slots[r as usize] {
            Slot::Scalar(i) => i as usize,
            _ => unreachable!(),
        }] == 1
    };
    // Two contiguous segments, with another flow's packet in between.
    let mut w = Window::new();
    tcp(&mut w, BAD, ME, 5000, 100, b"buy via");
    tcp(&mut w, GOOD, ME, 5000, 7, b"unrelated");
    tcp(&mut w, BAD, ME, 5000, 107, b"gra now");
    assert!(check(&w, "viagra"));
    assert!(check(&w, "buy"));
    assert!(!check(&w, "viagrax"));
    assert!(!check(&w, "relatedgra"), "not across flows");
    // A sequence gap: no match across it.
    let mut w = Window::new();
    tcp(&mut w, BAD, ME, 5000, 100, b"buy via");
    tcp(&mut w, BAD, ME, 5000, 108, b"gra now");
    assert!(!check(&w, "viagra"));
    // Same bytes over UDP: datagrams are not a stream.
    let mut w = Window::new();
    udp(&mut w, BAD, ME, b"buy via");
    udp(&mut w, BAD, ME, b"gra now");
    assert!(!check(&w, "viagra"));
    // Three short segments, and sequence wrap-around.
    let mut w = Window::new();
    tcp(&mut w, BAD, ME, 1, u32::MAX - 1, b"vi");
    tcp(&mut w, BAD, ME, 1, 0, b"ag");
    tcp(&mut w, BAD, ME, 1, 2, b"ra");
    assert!(check(&w, "viagra"));
    // Empty needle: found in any non-empty set, even of empty payloads.
    let mut w = Window::new();
    assert!(!check(&w, ""));
    tcp(&mut w, BAD, ME, 1, 0, b"");
    assert!(check(&w, ""));
}

#[test]
fn multicast_generates_checksummed_ipv4_udp() {
    let mut w = Window::new();
    udp(&mut w, GOOD, ME, b"hello"); // 0
    udp(&mut w, GOOD, ME, b"world"); // 1
    udp(&mut w, GOOD, ME, b"hello"); // 2: same content
    udp(&mut w, BAD, ME, b"spam"); // 3: other source
    udp(&mut w, GOOD, OTHER, b"x"); // 4: not mine
    let p = program(multicast(), 20_000);
    let mut m = Machine::new();
    let st = run(&p, &w, &mut m).unwrap();
    assert_eq!(dropped(&m, 5), vec![0, 1, 2]);
    // GBD 5, GBS 2 x 4, GBC 8 x 3, GENERATE 4 x 1 (one address) + 4 x 2, DISCARD 3.
    assert_eq!(st.cost, 5 + 8 + 24 + 4 + 8 + 3);
    let gen: Vec<&[u8]> = m.effects().generated().collect();
    assert_eq!(gen.len(), 3);
    let mut payloads = Vec::new();
    for g in &gen {
        let s = etherparse::SlicedPacket::from_ip(g).expect("re-parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else { panic!("not IPv4") };
        let h = ip.header();
        assert_eq!((h.source(), h.destination()), (GOOD.to_be_bytes(), ME.to_be_bytes()));
        assert_eq!((h.ttl(), h.dont_fragment(), h.identification()), (64, false, 0));
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum(), "IPv4 checksum");
        let Some(etherparse::TransportSlice::Udp(u)) = &s.transport else { panic!("not UDP") };
        assert_eq!((u.source_port(), u.destination_port()), (9910, 9910));
        let expect = u.to_header().calc_checksum_ipv4(&h.to_header(), u.payload()).unwrap();
        assert_eq!(u.checksum(), expect, "UDP checksum");
        payloads.push(u.payload().to_vec());
    }
    let mut addr_list = b"VND1".to_vec();
    addr_list.extend_from_slice(&1u32.to_be_bytes());
    addr_list.extend_from_slice(&ME.to_be_bytes());
    assert_eq!(payloads, vec![addr_list, b"hello".to_vec(), b"world".to_vec()]);
}

#[test]
fn address_lists_split_at_360() {
    let mut a = Asm::default();
    let all = a.all();
    let (d, c) = (a.reg(Ty::AddrList), a.reg(Ty::Content));
    a.op(Insn::GroupContent { dests: d, content: c, set: all });
    let me = a.this_ip();
    a.op(Insn::Generate { src: me, dst: me, payload: d });
    let s = a.konst(Const::Str("note".into()));
    a.op(Insn::Generate { src: me, dst: me, payload: s });
    let mut w = Window::new();
    for i in 0..400u32 {
        udp(&mut w, 1, 0x0b00_0000 + i, b"");
    }
    let p = program(a.module(Class::Multicast), 8 * 400 + 4 * 400 + 4);
    let mut m = Machine::new();
    let st = run(&p, &w, &mut m).unwrap();
    let gen: Vec<&[u8]> = m.effects().generated().collect();
    assert_eq!(gen.len(), 3);
    assert_eq!(&gen[0][28..36], b"VND1\0\0\x01\x68");
    assert_eq!(gen[0].len(), 28 + 8 + 4 * 360);
    assert_eq!(&gen[1][28..36], b"VND1\0\0\0\x28");
    assert_eq!(&gen[1][36..40], &(0x0b00_0000u32 + 360).to_be_bytes());
    assert_eq!(&gen[2][28..], b"note");
    assert_eq!(st.cost, 8 * 400 + 4 * 400 + 4);
}

#[test]
fn overflow_saturating_sub_and_loop_bound() {
    // n = 0; while n < limit do n = n + 1   (bound given)
    let lp = |limit: u64, bound: u32| {
        let mut a = Asm::default();
        let n = a.konst(Const::Num(0));
        let lim = a.konst(Const::Num(limit));
        let one = a.konst(Const::Num(1));
        let c = a.reg(Ty::Bool);
        let rank = Rank { terms: vec![(n, -1)], constant: limit as i64 };
        a.op(Insn::While { cond_len: 1, cond: c, body_len: 1, bound, rank });
        a.op(Insn::Cmp { op: CmpOp::Lt, dst: c, a: n, b: lim });
        a.op(Insn::Arith { op: ArithOp::Add, dst: n, a: n, b: one });
        program(a.module(Class::Monitoring), u64::from(bound)) // 1 unit per iteration
    };
    let w = Window::new();
    let mut m = Machine::new();
    assert_eq!(run(&lp(5, 5), &w, &mut m).unwrap().steps, 3 + 1 + 5 * 2 + 1);
    assert!(matches!(run(&lp(5, 4), &w, &mut m), Err(Fault::LoopBound { at: 3, bound: 4, .. })));

    let mut a = Asm::default();
    let big = a.konst(Const::Num(u64::MAX));
    let one = a.konst(Const::Num(1));
    let r = a.reg(Ty::Num);
    a.op(Insn::Arith { op: ArithOp::Sub, dst: r, a: one, b: big });
    a.op(Insn::Arith { op: ArithOp::Add, dst: r, a: big, b: one });
    let p = program(a.module(Class::Monitoring), 0);
    assert!(matches!(run(&p, &w, &mut m), Err(Fault::Overflow { at: 3, line: 4 })));
}

#[test]
fn runaway_concatenation_is_a_fault() {
    // s = "ab"; while i < 64: s = s + s   (64 units, within budget: only the size limit stops it)
    let mut a = Asm::default();
    let s = a.konst(Const::Str("ab".into()));
    let i = a.konst(Const::Num(0));
    let lim = a.konst(Const::Num(64));
    let one = a.konst(Const::Num(1));
    let c = a.reg(Ty::Bool);
    let rank = Rank { terms: vec![(i, -1)], constant: 64 };
    a.op(Insn::While { cond_len: 1, cond: c, body_len: 2, bound: 64, rank });
    a.op(Insn::Cmp { op: CmpOp::Lt, dst: c, a: i, b: lim });
    a.op(Insn::Concat { dst: s, a: s, b: s });
    a.op(Insn::Arith { op: ArithOp::Add, dst: i, a: i, b: one });
    let p = program(a.module(Class::Monitoring), 64);
    let mut m = Machine::new();
    assert!(matches!(run(&p, &Window::new(), &mut m), Err(Fault::TooLarge { .. })));
}

#[test]
fn empty_view_runs() {
    for m in [firewall(), spam_filter(), multicast()] {
        let p = program(m, 0);
        let mut mach = Machine::new();
        let st = run(&p, &Window::new(), &mut mach).unwrap();
        assert_eq!((st.cost, st.dropped, st.generated), (0, 0, 0));
    }
}

#[test]
fn match_bits_agrees_with_the_naive_loop() {
    let mut x = 12345u32;
    for len in [0usize, 1, 7, 8, 9, 63, 64] {
        let col: Vec<u128> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                match x % 4 {
                    0 => mapped(0x0a00_0001),
                    1 => ME6 ^ u128::from(x & 0xf),
                    _ => mapped(x),
                }
            })
            .collect();
        let nets = [
            (mapped(0x0a00_0001), u128::MAX),
            (mapped(0x0a00_0000), netmask(104)),
            (ME6 & netmask(124), netmask(124)),
            (0xffff << 32, netmask(96)),
            (0, 0),
        ];
        for (net, mask) in nets {
            let naive = col.iter().enumerate().fold(0u64, |b, (j, &v)| b | (u64::from(v & mask == net) << j));
            assert_eq!(match_bits(&col, net, mask), naive, "len {len}");
        }
    }
}

#[test]
fn loops_stop_at_the_step_limit() {
    // while i < 1000 do i = i + 1: 1,000 units, within budget, so only the
    // step limit (lowered here) stops it.
    let mut a = Asm::default();
    let i = a.konst(Const::Num(0));
    let lim = a.konst(Const::Num(1000));
    let one = a.konst(Const::Num(1));
    let c = a.reg(Ty::Bool);
    let rank = Rank { terms: vec![(i, -1)], constant: 1000 };
    a.op(Insn::While { cond_len: 1, cond: c, body_len: 1, bound: 1000, rank });
    a.op(Insn::Cmp { op: CmpOp::Lt, dst: c, a: i, b: lim });
    a.op(Insn::Arith { op: ArithOp::Add, dst: i, a: i, b: one });
    let p = program(a.module(Class::Monitoring), 1000);
    let mut m = Machine::new();
    assert_eq!(run(&p, &Window::new(), &mut m).unwrap().steps, 3 + 1 + 2000 + 1);
    let tight = program(a_module_for_budget(&p), 999);
    assert!(matches!(run(&tight, &Window::new(), &mut m), Err(Fault::OverBudget { .. })), "iterations are charged");
    m.step_limit = 500;
    assert!(matches!(run(&p, &Window::new(), &mut m), Err(Fault::StepLimit { .. })));
}

#[test]
fn boolean_and_string_operations() {
    // s = "via" + "gra"; hit = CONTAINS_STRING(All, s) (a needle made at run time);
    // eq = s == "viagra"; r = (not eq) or hit
    let mut a = Asm::default();
    let all = a.all();
    let x = a.konst(Const::Str("via".into()));
    let y = a.konst(Const::Str("gra".into()));
    let whole = a.konst(Const::Str("viagra".into()));
    let s = a.reg(Ty::Str);
    a.op(Insn::Concat { dst: s, a: x, b: y });
    let (hit, eq, ne, not_eq, r) = (a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool));
    a.op(Insn::ContainsString { dst: hit, set: all, needle: s });
    a.op(Insn::Cmp { op: CmpOp::Eq, dst: eq, a: s, b: whole });
    a.op(Insn::Cmp { op: CmpOp::Ne, dst: ne, a: s, b: x });
    a.op(Insn::Not { dst: not_eq, a: eq });
    a.op(Insn::Or { dst: r, a: not_eq, b: hit });
    let copy = a.reg(Ty::Str);
    a.op(Insn::Copy { dst: copy, src: s });
    let p = program(a.module(Class::Monitoring), 100);
    let mut w = Window::new();
    udp(&mut w, BAD, ME, b"cheap viagra");
    let mut m = Machine::new();
    run(&p, &w, &mut m).unwrap();
    let sc = |r: Reg| {
        m.scalars[match p.slots[r as usize] {
            Slot::Scalar(i) => i as usize,
            _ => unreachable!(),
        }]
    };
    assert_eq!((sc(hit), sc(eq), sc(ne), sc(not_eq), sc(r)), (1, 1, 1, 0, 1));
    let si = match p.slots[copy as usize] {
        Slot::Str(i) => i as usize,
        _ => unreachable!(),
    };
    assert_eq!(m.strs[si].bytes, b"viagra");
}

fn a_module_for_budget(p: &Program) -> Module {
    p.module().clone()
}

fn metered(m: Module) -> Arc<Program> {
    let pol = metered_policy();
    let vc = vinet_checker::vcgen::generate(&m, &pol).expect("conditions");
    Arc::new(Program::build(m, ModuleId([0; 32]), (vc.complexity, vc.generated), &pol))
}

/// Every instruction costs INSTRUCTION and strings BYTES per 64 bytes they
/// copy, join, compare, search for or send, in the VM as in the condition
/// generator: on straight code of constants the two figures are equal.
#[test]
fn instructions_and_string_bytes_are_metered_as_certified() {
    let mut a = Asm::default();
    let long = a.konst(Const::Str("a".repeat(200))); // 1 + 4
    let short = a.konst(Const::Str("b".repeat(10))); // 1 + 1
    let joined = a.reg(Ty::Str);
    a.op(Insn::Concat { dst: joined, a: long, b: short }); // 1 + 4 (210 bytes)
    let copy = a.reg(Ty::Str);
    a.op(Insn::Copy { dst: copy, src: joined }); // 1 + 4
    let same = a.reg(Ty::Bool);
    a.op(Insn::Cmp { op: CmpOp::Eq, dst: same, a: copy, b: short }); // 1 + 1
    let all = a.all(); // 1
    let me = a.this_ip(); // 1
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: me }); // 1 + |window|
    let found = a.reg(Ty::Bool);
    a.op(Insn::ContainsString { dst: found, set: mine, needle: joined }); // 1 + 6 x |mine| + 4
    a.op(Insn::Generate { src: me, dst: me, payload: copy }); // 1 + 4 x 4 + 4; 238 bytes sent
    let p = metered(a.module(Class::Multicast));
    let mut w = Window::new();
    for _ in 0..256 {
        udp(&mut w, GOOD, ME, b"hello");
    }
    let mut m = Machine::new();
    let st = run(&p, &w, &mut m).unwrap();
    let want = 5 + 2 + 5 + 5 + 2 + 1 + 1 + (1 + 256) + (1 + 6 * 256 + 4) + (1 + 16 + 4);
    assert_eq!((st.cost, p.complexity()), (want, want), "metered and certified, over a full window");
    assert_eq!(st.steps, 10);
    assert_eq!(m.effects().gen_bytes.len(), 238);
}

/// A run that would send more bytes than certified faults; a string
/// parameter longer than the policy's max_param_bytes is refused at binding.
#[test]
fn generated_bytes_and_parameter_lengths_are_bounded() {
    let mut a = Asm::default();
    let me = a.this_ip();
    let word = a.param("Word", Const::Str("x".into()));
    a.op(Insn::Generate { src: me, dst: me, payload: word });
    let m = a.module(Class::Multicast);
    let mut pol = metered_policy();
    pol.generated_bytes_up = 40;
    let p = Arc::new(Program::build(m, ModuleId([0; 32]), (u64::MAX, 40), &pol));
    let mut w = Window::new();
    udp(&mut w, GOOD, ME, b"x");
    let mut mach = Machine::new();
    let run_with = |v: &str, mach: &mut Machine| p.instantiate(&[Const::Str(v.into())]).unwrap().run(this(), w.view(), mach);
    assert!(run_with(&"y".repeat(12), &mut mach).is_ok(), "28 + 12 bytes: at the bound");
    assert!(matches!(run_with(&"y".repeat(13), &mut mach), Err(Fault::OverGenerated { bytes: 41, limit: 40, .. })));
    let e = p.instantiate(&[Const::Str("z".repeat(257))]).unwrap_err();
    assert!(e.to_string().contains("257 bytes, longer than the policy's max_param_bytes (256)"), "{e}");
}

/// The packet-local plans meter what the interpreter meters: the packets
/// and, once a run, the program's instructions.
#[test]
fn plans_meter_instructions_as_the_interpreter() {
    let p = metered(firewall());
    assert_eq!(p.complexity(), 6 + 4 * 256, "six instructions and four units a packet");
    let mut w = Window::new();
    for i in 0..100 {
        udp(&mut w, if i % 3 == 0 { BAD } else { GOOD }, if i % 5 == 0 { OTHER } else { ME }, b"x");
    }
    let (mut plan, mut interp) = (Machine::new(), Machine::new());
    interp.set_interpret_only(true);
    let a = run(&p, &w, &mut plan).unwrap();
    let b = run(&p, &w, &mut interp).unwrap();
    assert_eq!(a.cost, b.cost);
    assert_eq!(dropped(&plan, 100), dropped(&interp, 100));
    let inst = p.instantiate(&[]).unwrap();
    let rows: Vec<u32> = (0..w.view().len() as u32).take(64).collect();
    let mut part = Window::new();
    for i in 0..64 {
        udp(&mut part, if i % 3 == 0 { BAD } else { GOOD }, if i % 5 == 0 { OTHER } else { ME }, b"x");
    }
    let (local, _) = inst.run_local(this(), &w.cols, &rows).unwrap();
    let whole = run(&p, &part, &mut interp).unwrap();
    assert_eq!(local.cost, whole.cost, "the local plan over 64 rows, the interpreter over the same 64 packets");
}

/// The firewall over IPv6 and over dual-stack windows: an IPv6 client's
/// instance drops the IPv6 packets from its bad source to it, an IPv4
/// client's the IPv4 ones, in one window of both families; the plans agree
/// with the interpreter.
#[test]
fn the_firewall_over_ipv6_and_dual_stack_windows() {
    let mut w = Window::new();
    udp6(&mut w, BAD6, ME6, b"x"); // 0: drop (IPv6 client)
    udp(&mut w, BAD, ME, b"x"); // 1: drop (IPv4 client)
    udp6(&mut w, GOOD6, ME6, b"x"); // 2
    udp6(&mut w, BAD6, OTHER6, b"x"); // 3: not ME6's
    udp6(&mut w, mapped(BAD) ^ (1 << 100), ME6, b"x"); // 4: an IPv6 source that is not BAD
    udp6(&mut w, BAD6, ME6, b"y"); // 5: drop (IPv6 client)
    udp(&mut w, GOOD, ME, b"x"); // 6
    assert_eq!(w.packet_count(), 7);
    let p = program(firewall(), 1024);
    for interpret in [false, true] {
        let mut m = Machine::new();
        m.set_interpret_only(interpret);
        let v6 = p.instantiate(&[Const::Addr6(BAD6)]).unwrap();
        let st = v6.run(This::end_user(ME6), w.view(), &mut m).unwrap();
        assert_eq!(dropped(&m, 7), vec![0, 5], "interpret {interpret}");
        // GROUP_BY_DESTINATION 1 x 7, GROUP_BY_SOURCE 2 x 4, DISCARD 1 x 2.
        assert_eq!(st.cost, 7 + 8 + 2);
        let v4 = p.instantiate(&[]).unwrap();
        v4.run(this(), w.view(), &mut m).unwrap();
        assert_eq!(dropped(&m, 7), vec![1], "interpret {interpret}");
        // An IPv6 source parameter on an IPv4 client: nothing of its own matches.
        p.instantiate(&[Const::Addr6(BAD6)]).unwrap().run(this(), w.view(), &mut m).unwrap();
        assert_eq!(dropped(&m, 7), Vec::<usize>::new());
    }
    // The local plan over rows of the window, as the interpreter.
    let rows: Vec<u32> = (0..7).collect();
    let (st, drops) = p.instantiate(&[Const::Addr6(BAD6)]).unwrap().run_local(This::end_user(ME6), &w.cols, &rows).unwrap();
    assert_eq!((drops, st.cost), (0b10_0001, 17));
}

/// Prefixes of both families in one 128-bit space: `::/0` holds every
/// address, `0.0.0.0/0` (`::ffff:0:0/96`) only the IPv4 ones; IN_PREFIX,
/// masks and comparisons of prefixes (network and length) alike.
#[test]
fn prefixes_and_masks_of_both_families() {
    let doc: u128 = 0x2001_0db8 << 96;
    let filter = |c: Const| {
        let mut a = Asm::default();
        let all = a.all();
        let net = a.konst(c);
        let inside = a.reg(Ty::Set);
        a.op(Insn::FilterDst { dst: inside, set: all, by: net });
        a.op(Insn::Discard { set: inside });
        program(a.module(Class::Filtering), 1000)
    };
    let mut w = Window::new();
    udp(&mut w, GOOD, ME, b""); // 0: 10.0.0.7
    udp6(&mut w, GOOD6, ME6, b""); // 1: 2001:db8::7
    udp6(&mut w, GOOD6, doc | 1 << 80, b""); // 2: 2001:db8:1::
    udp(&mut w, GOOD, 0x0b00_0001, b""); // 3: 11.0.0.1
    udp6(&mut w, GOOD6, 1, b""); // 4: ::1
    for (c, want) in [
        (Const::Prefix6(0, 0), vec![0, 1, 2, 3, 4]),
        (Const::Prefix(0, 0), vec![0, 3]),
        (Const::Prefix(0x0a00_0000, 8), vec![0]),
        (Const::Prefix6(doc, 32), vec![1, 2]),
        (Const::Prefix6(doc, 48), vec![1]),
        (Const::Addr6(ME6), vec![1]),
        (Const::Addr(ME), vec![0]),
        (Const::Prefix6(0, 96), vec![4]),
    ] {
        let p = filter(c.clone());
        for interpret in [false, true] {
            let mut m = Machine::new();
            m.set_interpret_only(interpret);
            run(&p, &w, &mut m).unwrap();
            assert_eq!(dropped(&m, 5), want, "{c:?}, interpret {interpret}");
        }
    }
    // IN_PREFIX, MASK and prefix equality on scalars.
    let mut a = Asm::default();
    let me = a.this_ip();
    let net32 = a.konst(Const::Prefix6(doc, 32));
    let net48 = a.konst(Const::Prefix6(doc, 48));
    let v4all = a.konst(Const::Prefix(0, 0));
    let mask = a.konst(Const::Addr6(u128::MAX << 64));
    let (in32, in_v4, eq, ne_len, masked_eq) = (a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool), a.reg(Ty::Bool));
    a.op(Insn::InPrefix { dst: in32, addr: me, prefix: net32 });
    a.op(Insn::InPrefix { dst: in_v4, addr: me, prefix: v4all });
    let sub = a.reg(Ty::Prefix);
    a.op(Insn::ThisSubnet { dst: sub });
    let copy = a.reg(Ty::Prefix);
    a.op(Insn::Copy { dst: copy, src: sub });
    a.op(Insn::Cmp { op: CmpOp::Eq, dst: eq, a: copy, b: sub });
    // Same network, lengths 32 and 48: two prefixes.
    a.op(Insn::Cmp { op: CmpOp::Ne, dst: ne_len, a: net32, b: net48 });
    let masked = a.reg(Ty::Addr);
    a.op(Insn::Mask { dst: masked, addr: me, mask });
    let net_addr = a.konst(Const::Addr6(doc));
    a.op(Insn::Cmp { op: CmpOp::Eq, dst: masked_eq, a: masked, b: net_addr });
    let p = program(a.module(Class::Monitoring), 100);
    let mut m = Machine::new();
    p.instantiate(&[]).unwrap().run(This { ip: ME6, subnet: (doc, 32) }, w.view(), &mut m).unwrap();
    let sc = |r: Reg| {
        m.scalars[match p.slots[r as usize] {
            Slot::Scalar(i) => i as usize,
            _ => unreachable!(),
        }]
    };
    assert_eq!((sc(in32), sc(in_v4), sc(eq), sc(ne_len), sc(masked_eq)), (1, 0, 1, 1, 1));
    assert_eq!(sc(masked), doc);
}

/// Groupings, counts and foreach keys mix the families: a group per
/// address, IPv4 and IPv6 alike, in first-appearance order.
#[test]
fn groupings_and_counts_mix_families() {
    let mut a = Asm::default();
    let all = a.all();
    let g = a.reg(Ty::Groups);
    a.op(Insn::GroupSrc { dst: g, set: all });
    let n = a.reg(Ty::Num);
    a.op(Insn::DistinctDst { dst: n, set: all });
    let bad6 = a.konst(Const::Addr6(BAD6));
    let (k, s, is_bad) = (a.reg(Ty::Addr), a.reg(Ty::Set), a.reg(Ty::Bool));
    a.op(Insn::Foreach { groups: g, key: k, set: s, body_len: 3 });
    a.op(Insn::Cmp { op: CmpOp::Eq, dst: is_bad, a: k, b: bad6 });
    a.op(Insn::If { cond: is_bad, then_len: 1, else_len: 0 });
    a.op(Insn::Discard { set: s });
    let p = program(a.module(Class::Filtering), 1000);
    let mut w = Window::new();
    udp6(&mut w, BAD6, ME6, b""); // 0
    udp(&mut w, BAD, ME, b""); // 1
    udp6(&mut w, GOOD6, ME6, b""); // 2
    udp6(&mut w, BAD6, OTHER6, b""); // 3
    udp(&mut w, BAD, OTHER, b""); // 4
                                  // Differs from BAD6 in its high half only.
    udp6(&mut w, BAD6 ^ (1 << 127), ME6, b""); // 5
    let mut m = Machine::new();
    run(&p, &w, &mut m).unwrap();
    assert_eq!(m.groups[0].keys, vec![BAD6, mapped(BAD), GOOD6, BAD6 ^ (1 << 127)]);
    assert_eq!(&m.groups[0].members, &[0, 3, 1, 4, 2, 5]);
    assert_eq!(dropped(&m, 6), vec![0, 3]);
    let sc = |r: Reg| {
        m.scalars[match p.slots[r as usize] {
            Slot::Scalar(i) => i as usize,
            _ => unreachable!(),
        }]
    };
    assert_eq!(sc(n), 4, "ME6, ME, OTHER6, OTHER");
}

/// CONTAINS_STRING follows IPv6 TCP flows as IPv4 ones, and an IPv6 flow
/// and an IPv4 flow with the same ports are two flows.
#[test]
fn contains_string_over_ipv6_flows() {
    let mut a = Asm::default();
    let all = a.all();
    let wd = a.konst(Const::Str("viagra".into()));
    let r = a.reg(Ty::Bool);
    a.op(Insn::ContainsString { dst: r, set: all, needle: wd });
    let p = program(a.module(Class::Monitoring), 1000);
    let found = |w: &Window| {
        let mut m = Machine::new();
        run(&p, w, &mut m).unwrap();
        m.scalars[match p.slots[r as usize] {
            Slot::Scalar(i) => i as usize,
            _ => unreachable!(),
        }] == 1
    };
    let mut w = Window::new();
    tcp6(&mut w, BAD6, ME6, 5000, 100, b"buy via");
    tcp(&mut w, BAD, ME, 5000, 7, b"unrelated");
    tcp6(&mut w, BAD6, ME6, 5000, 107, b"gra now");
    assert!(found(&w));
    let mut w = Window::new();
    tcp6(&mut w, BAD6, ME6, 5000, 100, b"buy via");
    tcp(&mut w, BAD, ME, 5000, 107, b"gra now");
    assert!(!found(&w), "an IPv4 segment does not continue an IPv6 flow");
}

/// GENERATE between IPv6 addresses: IPv6/UDP, hop limit 64, the UDP checksum
/// over the IPv6 pseudo-header; address lists of 16-byte addresses when any
/// is IPv6; between families: nothing, counted, no fault.
#[test]
fn generate_makes_ipv6_packets_and_skips_mixed_families() {
    let mut w = Window::new();
    udp6(&mut w, GOOD6, ME6, b"hello"); // 0
    udp6(&mut w, GOOD6, ME6, b"world"); // 1
    udp6(&mut w, GOOD6, ME6, b"hello"); // 2
    udp6(&mut w, BAD6, ME6, b"spam"); // 3
    let p = program(multicast(), 20_000);
    let mut m = Machine::new();
    let st = p.instantiate(&[Const::Addr6(GOOD6)]).unwrap().run(This::end_user(ME6), w.view(), &mut m).unwrap();
    assert_eq!((dropped(&m, 4), st.generated, st.skipped_generations), (vec![0, 1, 2], 3, 0));
    let mut payloads = Vec::new();
    for g in m.effects().generated() {
        let s = etherparse::SlicedPacket::from_ip(g).expect("re-parses");
        let Some(etherparse::NetSlice::Ipv6(ip)) = &s.net else { panic!("not IPv6") };
        let h = ip.header();
        assert_eq!((u128::from_be_bytes(h.source()), u128::from_be_bytes(h.destination())), (GOOD6, ME6));
        assert_eq!((h.hop_limit(), h.next_header().0, h.traffic_class(), h.payload_length() as usize), (64, 17, 0, g.len() - 40));
        let Some(etherparse::TransportSlice::Udp(u)) = &s.transport else { panic!("not UDP") };
        assert_eq!((u.source_port(), u.destination_port()), (9910, 9910));
        let expect = u.to_header().calc_checksum_ipv6(&h.to_header(), u.payload()).unwrap();
        assert_eq!(u.checksum(), expect, "UDP checksum over the IPv6 pseudo-header");
        assert_ne!(u.checksum(), 0);
        payloads.push(u.payload().to_vec());
    }
    let mut list = b"VND1".to_vec();
    list.extend_from_slice(&1u32.to_be_bytes());
    list.extend_from_slice(&ME6.to_be_bytes());
    assert_eq!(payloads, vec![list, b"hello".to_vec(), b"world".to_vec()]);
    // An IPv4 source to an IPv6 client: each GENERATE charged, nothing
    // sent, each counted as skipped (even of an empty list).
    let st = p.instantiate(&[Const::Addr(GOOD)]).unwrap().run(This::end_user(ME6), w.view(), &mut m).unwrap();
    assert_eq!((st.generated, st.skipped_generations, m.effects().skipped_generations()), (0, 2, 2));
    let mut mixed = Window::new();
    udp6(&mut mixed, mapped(GOOD), ME6, b"hello"); // an IPv6 packet from an IPv4-mapped source: not in the window
    udp(&mut mixed, GOOD, ME, b"hello");
    assert_eq!(mixed.packet_count(), 1);
    let st = p.instantiate(&[Const::Addr(GOOD)]).unwrap().run(This::end_user(ME6), mixed.view(), &mut m).unwrap();
    assert_eq!((st.generated, st.skipped_generations, st.dropped), (0, 2, 0));
    // A module that generates from THIS_IP to an IPv6 constant, run for an IPv4 client.
    let mut a = Asm::default();
    let me = a.this_ip();
    let to = a.konst(Const::Addr6(GOOD6));
    let word = a.konst(Const::Str("note".into()));
    a.op(Insn::Generate { src: me, dst: to, payload: word });
    a.op(Insn::Generate { src: me, dst: me, payload: word });
    let q = program(a.module(Class::Multicast), 100);
    let st = q.instantiate(&[]).unwrap().run(this(), Window::new().view(), &mut m).unwrap();
    assert_eq!((st.generated, st.skipped_generations, st.cost), (1, 1, 8), "both charged, one sent");
    assert_eq!(m.effects().generated().next().map(|g| g[0] >> 4), Some(4));
    let st = q.instantiate(&[]).unwrap().run(This::end_user(ME6), Window::new().view(), &mut m).unwrap();
    assert_eq!((st.generated, st.skipped_generations), (2, 0));
}

/// An address list with IPv6 addresses carries 16 bytes an address (IPv4
/// ones as IPv4-mapped); one of IPv4 addresses only, 4.
#[test]
fn address_lists_widen_with_ipv6() {
    let mut list = Vec::new();
    super::interp::address_list(&mut list, &[mapped(1), ME6]);
    let want = [&b"VND1"[..], &2u32.to_be_bytes(), &mapped(1).to_be_bytes(), &ME6.to_be_bytes()].concat();
    assert_eq!(list, want);
    super::interp::address_list(&mut list, &[mapped(1), mapped(0x0a00_0007)]);
    assert_eq!(list, [&b"VND1"[..], &2u32.to_be_bytes(), &1u32.to_be_bytes(), &0x0a00_0007u32.to_be_bytes()].concat());
    // Over the VM, split at 360 as IPv4's: 400 destinations, one of them IPv6.
    let mut a = Asm::default();
    let all = a.all();
    let (d, c) = (a.reg(Ty::AddrList), a.reg(Ty::Content));
    a.op(Insn::GroupContent { dests: d, content: c, set: all });
    let me = a.this_ip();
    a.op(Insn::Generate { src: me, dst: me, payload: d });
    let mut w = Window::new();
    for i in 0..399u32 {
        udp(&mut w, 1, 0x0b00_0000 + i, b"");
    }
    udp6(&mut w, GOOD6, OTHER6, b"");
    let p = program(a.module(Class::Multicast), 8 * 400 + 4 * 400);
    let mut m = Machine::new();
    p.instantiate(&[]).unwrap().run(This::end_user(ME6), w.view(), &mut m).unwrap();
    let gen: Vec<&[u8]> = m.effects().generated().collect();
    assert_eq!(gen.len(), 2);
    assert_eq!((gen[0].len(), &gen[0][48..56]), (48 + 8 + 4 * 360, &b"VND1\0\0\x01\x68"[..]), "360 IPv4 addresses");
    assert_eq!((gen[1].len(), &gen[1][48..56]), (48 + 8 + 16 * 40, &b"VND1\0\0\0\x28"[..]), "39 IPv4 and one IPv6");
    assert_eq!(&gen[1][56..72], &mapped(0x0b00_0000 + 360).to_be_bytes());
    assert_eq!(&gen[1][56 + 16 * 39..], &OTHER6.to_be_bytes());
    // Within the checker's bound: 72 bytes an item, headers included.
    assert!(m.effects().gen_bytes.len() as u64 <= 72 * 400);
}

/// The checker bounds a generated packet's headers at 48 bytes (IPv6 and
/// UDP); an IPv6 packet has exactly those, an IPv4 one 28: at the certified
/// bound either way, over it a fault.
#[test]
fn generated_bytes_of_both_families_within_the_certified_bound() {
    let mut a = Asm::default();
    let me = a.this_ip();
    let word = a.param("Word", Const::Str("x".into()));
    a.op(Insn::Generate { src: me, dst: me, payload: word });
    let m = a.module(Class::Multicast);
    let mut pol = metered_policy();
    pol.generated_bytes_up = 60;
    let p = Arc::new(Program::build(m.clone(), ModuleId([0; 32]), (u64::MAX, 60), &pol));
    let w = Window::new();
    let mut mach = Machine::new();
    let run_with = |v: &str, this: This, mach: &mut Machine| p.instantiate(&[Const::Str(v.into())]).unwrap().run(this, w.view(), mach);
    assert!(run_with(&"y".repeat(12), This::end_user(ME6), &mut mach).is_ok(), "48 + 12 bytes: at the bound");
    assert_eq!(mach.effects().gen_bytes.len(), 60);
    assert!(matches!(run_with(&"y".repeat(13), This::end_user(ME6), &mut mach), Err(Fault::OverGenerated { bytes: 61, limit: 60, .. })));
    assert!(run_with(&"y".repeat(32), this(), &mut mach).is_ok(), "28 + 32 bytes over IPv4");
    // The certified bound of the condition generator (48 a packet) holds for the longest parameter.
    let cert = metered(m);
    let long = "z".repeat(256);
    let st = cert.instantiate(&[Const::Str(long)]).unwrap().run(This::end_user(ME6), w.view(), &mut mach).unwrap();
    assert_eq!(st.generated, 1);
    assert!(mach.effects().gen_bytes.len() as u64 <= cert.generated_up, "{} > {}", mach.effects().gen_bytes.len(), cert.generated_up);
    assert_eq!(mach.effects().gen_bytes.len(), 48 + 256);
}

/// Parameters are held to the validator's rules for constants: IPv6 of the
/// right form binds; IPv4 spelt as IPv6, host bits or a length past 128 do not.
#[test]
fn ipv6_parameters_bind_in_canonical_form_only() {
    let p = program(firewall(), 1024);
    let doc: u128 = 0x2001_0db8 << 96;
    assert!(p.instantiate(&[Const::Addr6(BAD6)]).is_ok());
    assert!(matches!(p.instantiate(&[Const::Addr6(mapped(BAD))]), Err(BindError::BadPrefix { .. })));
    let mut a = Asm::default();
    let net = a.param("Net", Const::Prefix(0x0a00_0000, 8));
    let all = a.all();
    let inside = a.reg(Ty::Set);
    a.op(Insn::FilterSrc { dst: inside, set: all, by: net });
    let q = program(a.module(Class::Monitoring), 1000);
    for ok in [Const::Prefix6(doc, 32), Const::Prefix6(0, 0), Const::Prefix6(doc | 1, 128), Const::Prefix(0, 0)] {
        assert!(q.instantiate(std::slice::from_ref(&ok)).is_ok(), "{ok:?}");
    }
    for bad in [Const::Prefix6(doc | 1, 32), Const::Prefix6(doc, 129), Const::Prefix6(mapped(0x0a00_0000), 104), Const::Prefix(1, 8)] {
        assert!(matches!(q.instantiate(std::slice::from_ref(&bad)), Err(BindError::BadPrefix { .. })), "{bad:?}");
    }
}
