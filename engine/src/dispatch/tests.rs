//! Dispatch tests: exact and prefix clients, nested prefixes, sharing,
//! faults, removal, and the router on top.

use super::index::DirectPlan;
use super::pass::DIRECT_CLIENTS;
use super::*;
use crate::packet::LinkType;
use crate::runner::{NullSink, Runner};
use crate::vm::tests::{firewall, policy, udp, udp6, xorshift, Asm, BAD, BAD6, GOOD, GOOD6, ME, ME6, OTHER, OTHER6};
use crate::window::{FrameMeta, Sink, WindowConfig};
use vinet_checker::bytecode::{Class, Insn, Ty};
use vinet_checker::mapped;

fn fw() -> Arc<Program> {
    Arc::new(Program::unchecked(firewall(), 1024, &policy()))
}

/// An IPv4 end user's firewall binding: THIS_IP `ip`, SrcIP `src`.
fn bind(ip: u32, src: u32) -> Binding {
    Binding { this_ip: mapped(ip), this_subnet: None, params: vec![Const::Addr(src)] }
}

/// An IPv4 prefix in the 128-bit space: the /96+len of the mapped network.
fn v4net(net: u32, len: u8) -> (u128, u8) {
    (mapped(net), 96 + len)
}

/// Edge-router program: DISCARD(GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP)).
fn subnet_dropper() -> Arc<Program> {
    let mut a = Asm::default();
    let all = a.all();
    let sub = a.reg(Ty::Prefix);
    a.op(Insn::ThisSubnet { dst: sub });
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: sub });
    a.op(Insn::Discard { set: mine });
    let mut p = policy();
    p.client = ClientKind::EdgeRouter;
    Arc::new(Program::unchecked(a.module(Class::Filtering), 512, &p))
}

fn dropped(w: &Window) -> Vec<u32> {
    (0..w.packet_count() as u32).filter(|&i| w.is_dropped(i)).collect()
}

#[test]
fn exact_clients_see_only_their_packets() {
    let mut d = Dispatch::new(256);
    let a = d.install_program(fw(), &bind(ME, BAD)).unwrap();
    let b = d.install_program(fw(), &bind(OTHER, GOOD)).unwrap();
    let mut w = Window::new();
    udp(&mut w, BAD, ME, b""); // 0: dropped by a
    udp(&mut w, GOOD, ME, b""); // 1
    udp(&mut w, BAD, OTHER, b""); // 2
    udp(&mut w, GOOD, OTHER, b""); // 3: dropped by b
    udp(&mut w, BAD, 0x0909_0909, b""); // 4: nobody's
    let rep = d.run_window(&mut w);
    assert_eq!((rep.buckets, rep.runs, rep.faults), (2, 2, 0));
    assert_eq!(dropped(&w), vec![0, 3]);
    let sa = d.stats(a).unwrap();
    assert_eq!((sa.packets_in, sa.discarded, sa.windows, sa.max_cost, sa.certified), (2, 1, 1, 2 + 2 * 2 + 1, 1024));
    assert_eq!(d.stats(b).unwrap().discarded, 1);
}

#[test]
fn nested_prefixes_reach_every_matching_client() {
    let mut d = Dispatch::new(256);
    let wide = Binding { this_ip: mapped(0x0a00_0001), this_subnet: Some(v4net(0x0a00_0000, 16)), params: vec![] };
    let narrow = Binding { this_ip: mapped(0x0a00_0101), this_subnet: Some(v4net(0x0a00_0100, 24)), params: vec![] };
    let iw = d.install_program(subnet_dropper(), &wide).unwrap();
    let inn = d.install_program(subnet_dropper(), &narrow).unwrap();
    let mut w = Window::new();
    udp(&mut w, 1, 0x0a00_0105, b""); // in both
    udp(&mut w, 1, 0x0a00_0205, b""); // in the /16 only
    udp(&mut w, 1, 0x0b00_0105, b""); // in neither
    d.run_window(&mut w);
    assert_eq!(dropped(&w), vec![0, 1]);
    assert_eq!(d.stats(iw).unwrap().packets_in, 2);
    assert_eq!(d.stats(inn).unwrap().packets_in, 1);
    // Edge-router programs need a subnet, a well-formed one.
    let no_sub = Binding { this_ip: mapped(1), this_subnet: None, params: vec![] };
    assert_eq!(d.install_program(subnet_dropper(), &no_sub), Err(InstallError::Bind(BindError::NoSubnet)));
    for bad in [v4net(0x0a00_0001, 16), (0x0a00_0000, 16), (ME6, 64), (0, 129)] {
        let bad = Binding { this_ip: mapped(1), this_subnet: Some(bad), params: vec![] };
        assert!(matches!(d.install_program(subnet_dropper(), &bad), Err(InstallError::BadPrefix(..))), "{bad:?}");
    }
}

#[test]
fn identical_programs_share_one_instance() {
    let mut d = Dispatch::new(256);
    let p = fw();
    let ids: Vec<_> = (0..3).map(|i| d.install_program(Arc::clone(&p), &bind(ME + i, BAD)).unwrap()).collect();
    drop(p);
    assert_eq!(d.shared_counts(), (1, 1));
    // Explicit default value = the same instance.
    let same = d.install_program(fw(), &Binding::end_user(mapped(ME + 10))).unwrap();
    assert_eq!(d.shared_counts(), (1, 1));
    let other = d.install_program(fw(), &bind(ME + 11, GOOD)).unwrap();
    assert_eq!(d.shared_counts(), (1, 2));
    assert_eq!(d.len(), 5);
    assert!(d.remove(other).is_some());
    assert!(d.remove(other).is_none(), "removed twice");
    assert_eq!(d.shared_counts(), (1, 1));
    for id in ids.into_iter().chain([same]) {
        d.remove(id).unwrap();
    }
    assert_eq!((d.len(), d.shared_counts()), (0, (0, 0)));
    assert!(d.exact.is_empty() && d.dest_index.is_empty());
    // A freed slot gets a new generation: stale ids do not alias.
    let fresh = d.install_program(fw(), &bind(ME, BAD)).unwrap();
    assert_ne!(fresh, same);
    assert!(d.stats(same).is_none());
}

#[test]
fn a_faulting_program_loses_its_effects_only() {
    let mut d = Dispatch::new(256);
    // Another module (so not shared with the good one) with a bound too low.
    let mut m = firewall();
    m.header.lifetime_secs += 1;
    let broke = Arc::new(Program::unchecked(m, 3, &policy()));
    let bad = d.install_program(broke, &bind(ME, BAD)).unwrap();
    let good = d.install_program(fw(), &bind(ME, GOOD)).unwrap();
    let mut w = Window::new();
    for _ in 0..4 {
        udp(&mut w, BAD, ME, b"");
    }
    udp(&mut w, GOOD, ME, b"");
    let rep = d.run_window(&mut w);
    assert_eq!(rep.faults, 1);
    assert_eq!(dropped(&w), vec![4]);
    let st = d.stats(bad).unwrap();
    assert_eq!((st.faults, st.discarded), (1, 0));
    let info = d.list().find(|i| i.id == bad).unwrap();
    assert!(matches!(info.last_fault, Some(Fault::OverBudget { .. })));
    assert_eq!(d.stats(good).unwrap().discarded, 1);
}

#[test]
fn programs_checked_for_smaller_windows_are_refused() {
    let mut d = Dispatch::new(512);
    assert!(matches!(d.install_program(fw(), &bind(ME, BAD)), Err(InstallError::WindowMismatch { checked: 256, router: 512 })));
}

#[derive(Default)]
struct Verdicts {
    forwarded: Vec<u64>,
    dropped: Vec<u64>,
    generated: usize,
}

impl Sink for Verdicts {
    fn forward(&mut self, m: &FrameMeta, _d: &[u8]) {
        self.forwarded.push(m.ts_ns);
    }
    fn dropped(&mut self, _i: usize, m: &FrameMeta, _d: &[u8]) {
        self.dropped.push(m.ts_ns);
    }
    fn generated(&mut self, _ts: u64, _d: &[u8]) {
        self.generated += 1;
    }
}

#[test]
fn router_accounts_for_every_frame() {
    let mut r = Runner::new(WindowConfig::new(256, 1000));
    r.dispatch_mut().install_program(fw(), &bind(ME, BAD)).unwrap();
    let mut sink = Verdicts::default();
    let frames: Vec<Vec<u8>> = (0..600u32)
        .map(|i| {
            use crate::packet::tests::{ipv4_bytes, ipv6_bytes, udp_bytes};
            match i % 4 {
                0 => ipv4_bytes(BAD, ME, 17, &udp_bytes(1, 2, b"x")),
                1 => ipv4_bytes(GOOD, ME, 17, &udp_bytes(1, 2, b"x")),
                // IPv6 from an IPv4-mapped address: never on a wire, not in the window.
                2 => ipv6_bytes(mapped(BAD), mapped(ME), 17, &udp_bytes(1, 2, b"x")),
                _ => vec![0xff; 3],
            }
        })
        .collect();
    for (i, f) in frames.iter().enumerate() {
        r.push(crate::pcap::Frame { link: LinkType::Raw, ts_ns: i as u64, orig_len: f.len() as u32, data: f }, &mut sink);
    }
    r.flush(&mut sink);
    let st = r.stats();
    assert_eq!(st.frames_in, 600);
    assert_eq!(st.forwarded + st.discarded, 600);
    assert_eq!((st.discarded, st.unparsed, st.not_ip, st.packets_in), (150, 150, 150, 300));
    assert_eq!(sink.dropped.len(), 150);
    assert!(sink.dropped.iter().all(|ts| ts % 4 == 0));
    // Forwarded in arrival order.
    assert!(sink.forwarded.windows(2).all(|w| w[0] < w[1]));
    // 300 packets in windows of 256 packets: 2 windows (frame cap 1024 not reached).
    assert_eq!(st.windows, 2);
    let mut r2 = Runner::new(WindowConfig::new(256, 1000));
    r2.flush(&mut NullSink);
    assert_eq!(r2.stats().windows, 0);
}

/// A packet-local program exercising a prefix key, a set copy, a constant
/// and a filter keyed by a register that is reused: DISCARD of the packets
/// of THIS_SUBNET_IP from 198.51.100.0/24, and of the copy's packets to a
/// constant address.
fn local_mix() -> Arc<Program> {
    let mut a = Asm::default();
    let all = a.all();
    let sub = a.reg(Ty::Prefix);
    a.op(Insn::ThisSubnet { dst: sub });
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: sub });
    let net = a.konst(Const::Prefix(0xc633_6400, 24));
    let from = a.reg(Ty::Set);
    a.op(Insn::FilterSrc { dst: from, set: mine, by: net });
    let copy = a.reg(Ty::Set);
    a.op(Insn::Copy { dst: copy, src: from });
    a.op(Insn::Discard { set: copy });
    let one = a.konst(Const::Addr(0x0a00_0105));
    a.op(Insn::FilterDst { dst: from, set: mine, by: one });
    a.op(Insn::Discard { set: from });
    let mut p = policy();
    p.client = ClientKind::EdgeRouter;
    Arc::new(Program::unchecked(a.module(Class::Filtering), 256 * 6, &p))
}

#[test]
fn packet_local_plans_are_built_only_for_packet_local_programs() {
    let fw = fw().instantiate(&[]).unwrap();
    assert!(fw.is_packet_local());
    assert!(local_mix().instantiate(&[]).unwrap().is_packet_local());
    let spam = Arc::new(Program::unchecked(crate::vm::tests::spam_filter(), 5000, &policy()));
    assert!(!spam.instantiate(&[]).unwrap().is_packet_local());
}

/// The packet-local fast paths (small buckets) and the chain plans over
/// whole views agree with the VM's interpreter on every window: drops, and
/// every installation's counters (metered cost included), faults too.
#[test]
fn packet_local_plans_agree_with_the_vm() {
    let mut tight = firewall();
    tight.header.lifetime_secs += 1;
    // Bound 5: a bucket with one packet from BAD costs 1 + 2 + 1, two cost 8.
    let tight = Arc::new(Program::unchecked(tight, 5, &policy()));
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let mut ds = [Dispatch::new(256), Dispatch::new(256)];
    ds[1].fast_paths = false;
    ds[1].machine.interpret_only = true;
    let mut ids = Vec::new();
    for d in ds.iter_mut() {
        let mut v = Vec::new();
        // Over DIRECT_CLIENTS installations: clients whose chain plan can
        // never go over its bound are decided during the bucketing pass.
        for c in 0..80u32 {
            let src = if c % 3 == 0 { BAD } else { 0xc633_6400 + c };
            v.push(d.install_program(fw(), &bind(0x0a00_0100 + c, src)).unwrap());
        }
        v.push(d.install_program(Arc::clone(&tight), &bind(0x0a00_0101, BAD)).unwrap());
        let sub = |net: u32, len| Binding { this_ip: mapped(net | 1), this_subnet: Some(v4net(net, len)), params: vec![] };
        v.push(d.install_program(local_mix(), &sub(0x0a00_0100, 24)).unwrap());
        v.push(d.install_program(local_mix(), &sub(0x0a00_0000, 16)).unwrap());
        v.push(d.install_program(subnet_dropper(), &sub(0x0a00_0110, 28)).unwrap());
        ids.push(v);
    }
    for round in 0..300 {
        let n = 1 + next() % 256;
        let mut ws = [Window::new(), Window::new()];
        for _ in 0..n {
            let src = match next() % 4 {
                0 => BAD,
                1 => 0xc633_6400 + (next() % 50) as u32,
                _ => next() as u32,
            };
            let dst = match next() % 8 {
                0 => next() as u32,
                1 => 0x0a00_0000 + (next() % 0x400) as u32,
                // Few clients busy in most rounds: small buckets.
                _ => 0x0a00_0100 + (next() % if round % 2 == 0 { 48 } else { 4 }) as u32,
            };
            for w in ws.iter_mut() {
                udp(w, src, dst, b"x");
            }
        }
        let reps: Vec<WindowReport> = ds.iter_mut().zip(ws.iter_mut()).map(|(d, w)| d.run_window(w)).collect();
        assert_eq!(reps[0], reps[1], "round {round}");
        assert_eq!(dropped(&ws[0]), dropped(&ws[1]), "round {round}");
    }
    let mut faults = 0;
    for (a, b) in ids[0].iter().zip(&ids[1]) {
        let (sa, sb) = (ds[0].stats(*a).unwrap(), ds[1].stats(*b).unwrap());
        assert_eq!(sa, sb);
        faults += sa.faults;
    }
    assert!(faults > 0, "the tight firewall should fault sometimes");
    assert!(ds[0].live >= DIRECT_CLIENTS, "the direct path must be exercised");
    assert!(ds[0].list().zip(ds[1].list()).all(|(a, b)| a.last_fault == b.last_fault));
}

/// A chain in another order, with a THIS_IP key on the source column and a
/// prefix constant: DISCARD(GROUP_BY_SOURCE(GROUP_BY_SOURCE(
/// GROUP_BY_DESTINATION(AllPackets, 10.0.0.0/8), SrcIP), THIS_IP)).
fn odd_chain() -> Arc<Program> {
    let mut a = Asm::default();
    let all = a.all();
    let net = a.konst(Const::Prefix(0x0a00_0000, 8));
    let inside = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: inside, set: all, by: net });
    let s = a.param("SrcIP", Const::Addr(BAD));
    let from = a.reg(Ty::Set);
    a.op(Insn::FilterSrc { dst: from, set: inside, by: s });
    let me = a.this_ip();
    let looped = a.reg(Ty::Set);
    a.op(Insn::FilterSrc { dst: looped, set: from, by: me });
    a.op(Insn::Discard { set: looped });
    Arc::new(Program::unchecked(a.module(Class::Filtering), 256 * 4, &policy()))
}

/// An end user's [`DirectPlan`] decides every packet as the instance's
/// chain plan does with THIS_IP = the packet's destination, for addresses
/// of both families.
#[test]
fn direct_plans_decide_as_the_chain_plan() {
    let mut rng = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng();
    let params = [Const::Addr(BAD), Const::Addr(0x0a00_0007), Const::Addr6(BAD6), Const::Addr6(ME6)];
    for (program, param) in [fw(), odd_chain()].into_iter().flat_map(|p| params.clone().map(|c| (Arc::clone(&p), c))) {
        let inst = program.instantiate(std::slice::from_ref(&param)).unwrap();
        let plan = DirectPlan::of(&inst).expect("a chain");
        let p = param.addr().unwrap();
        for k in 0..20_000u32 {
            // IPv4 (mapped) or IPv6, near the parameter or anywhere.
            let any = |r: u64| if r.is_multiple_of(2) { mapped(r as u32 >> 1) } else { u128::from(r) << 64 | u128::from(r >> 7) };
            let dst = match k % 3 {
                0 => any(next()),
                1 => (p & !0xf) | u128::from(next() % 16),
                _ => p,
            };
            let src = match k % 4 {
                0 => any(next()),
                1 => p,
                2 => dst,
                _ => mapped(0x0a00_0000 | (next() % 16) as u32),
            };
            let want = inst.chain_packet(This::end_user(dst), src, dst, |_| 0);
            assert_eq!(plan.decide(src, dst, |_| 0), want, "src {src:#x} dst {dst:#x}");
        }
    }
}

/// The exact index against a map, through growth and backward-shift
/// removals (keys chosen to collide).
#[test]
fn exact_index_agrees_with_a_map() {
    let mut ix = ExactIndex::new();
    let mut map = std::collections::HashMap::new();
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    for step in 0..40_000u32 {
        // Few distinct keys, many of them sharing home slots.
        // IPv4-mapped keys, keys differing in their high half only, IPv6 /64s.
        let k = u128::from(next() % 3000);
        let key = match step % 4 {
            0 => mapped(k as u32),
            1 => k << 20,
            2 => k << 64,
            _ => k << 100 | 1,
        };
        if next().is_multiple_of(3) {
            assert_eq!(ix.remove(key).map(|s| s.d), map.remove(&key), "step {step}");
        } else if let std::collections::hash_map::Entry::Vacant(e) = map.entry(key) {
            e.insert(step);
            ix.insert(key, step);
        }
        assert_eq!(ix.len, map.len());
        if step % 997 == 0 {
            for (&k, &d) in &map {
                assert_eq!(ix.find(k).map(|i| ix.slots[i].d), Some(d));
            }
            assert!(ix.slots.len() >= 2 * ix.len && ix.slots.len().is_power_of_two());
        }
        assert_eq!(ix.find(key).map(|i| ix.slots[i].d), map.get(&key).copied(), "step {step}");
    }
}

/// End users decided during the pass keep their counters in their slots:
/// those are folded into the installation's stats before they could wrap,
/// when the installations of the client change, and read with them; the
/// epochs wrapping starts the slots over. All as the table without fast
/// paths counts.
#[test]
fn direct_counters_fold_and_survive_epoch_wraps() {
    let mut ds = [Dispatch::new(256), Dispatch::new(256)];
    ds[1].fast_paths = false;
    let mut ids = Vec::new();
    for d in ds.iter_mut() {
        let v: Vec<InstallId> = (0..70u32).map(|c| d.install_program(fw(), &bind(0x0a00_0100 + c, BAD)).unwrap()).collect();
        ids.push(v);
        // Just before the low 32 bits of the epoch wrap.
        d.epoch = u64::from(u32::MAX) - 3;
    }
    // Client 0 is about to fold its counters before they wrap.
    ds[0].exact.get_mut(mapped(0x0a00_0100)).unwrap().windows = u16::MAX - 2;
    let extra = ProgramStats { windows: u64::from(u16::MAX - 2), ..ProgramStats::default() };
    for round in 0..12u32 {
        let mut ws = [Window::new(), Window::new()];
        for k in 0..40u32 {
            let dst = 0x0a00_0100 + (k * 7 + round) % 5;
            let src = if k % 3 == 0 { BAD } else { GOOD };
            for w in ws.iter_mut() {
                udp(w, src, dst, b"x");
            }
        }
        let reps: Vec<WindowReport> = ds.iter_mut().zip(ws.iter_mut()).map(|(d, w)| d.run_window(w)).collect();
        assert_eq!(reps[0], reps[1], "round {round}");
        assert_eq!(dropped(&ws[0]), dropped(&ws[1]), "round {round}");
        if round == 5 {
            // A second installation for client 1 (then it is no longer
            // decided during the pass), and removed again.
            for (d, v) in ds.iter_mut().zip(ids.iter_mut()) {
                v.push(d.install_program(fw(), &bind(0x0a00_0101, GOOD)).unwrap());
            }
        }
        if round == 8 {
            for (d, v) in ds.iter_mut().zip(ids.iter_mut()) {
                let id = v.pop().unwrap();
                assert!(d.remove(id).is_some());
            }
        }
    }
    assert!(ds[0].epoch as u32 > 0 && ds[0].epoch > u64::from(u32::MAX), "the epochs wrapped");
    for (i, (a, b)) in ids[0].iter().zip(&ids[1]).enumerate() {
        let (mut sa, sb) = (ds[0].stats(*a).unwrap(), ds[1].stats(*b).unwrap());
        if i == 0 {
            sa.windows -= extra.windows;
        }
        assert_eq!(sa, sb, "client {i}");
    }
    // Removal hands back the counters still pending.
    let (a, b) = (ids[0][2], ids[1][2]);
    assert_eq!(ds[0].remove(a), ds[1].remove(b));
}

/// Frames pushed from a slab of 64 MiB or more (whose headers are read
/// ahead in batches) and from a small one (one at a time) get the verdicts of
/// `Runner::push`, with many clients installed (decided during the pass).
#[test]
fn slab_reads_ahead_change_no_verdict() {
    use crate::packet::tests::{eth, ipv4_bytes, udp_bytes};
    use crate::pcap::Frame;
    let mut slab = vec![0u8; 64 << 20];
    let mut at = Vec::new();
    let mut off = 3;
    for i in 0..2000u32 {
        let f = match i % 5 {
            0 => eth(0x0800, &ipv4_bytes(BAD, 0x0a00_0100 + i % 97, 17, &udp_bytes(1, 2, b"x"))),
            1 | 2 => eth(0x0800, &ipv4_bytes(GOOD + i, 0x0a00_0100 + i % 89, 17, &udp_bytes(1, 2, &[7; 40]))),
            3 => eth(0x86dd, &[0x60; 40]),
            _ => vec![0xff; (i % 13) as usize],
        };
        // Spread over the slab, the last frames at its very end.
        off = if i == 1999 { slab.len() - f.len() } else { off + f.len() + (i as usize * 7919) % 20_000 };
        slab[off..off + f.len()].copy_from_slice(&f);
        at.push((off, f.len()));
    }
    fn frames<'a>(slab: &'a [u8], at: &[(usize, usize)]) -> Vec<Frame<'a>> {
        at.iter()
            .enumerate()
            .map(|(i, &(o, n))| Frame { link: LinkType::Ethernet, ts_ns: i as u64, orig_len: n as u32, data: &slab[o..o + n] })
            .collect()
    }
    let router = || {
        let mut r = Runner::new(WindowConfig::new(256, 1000));
        for c in 0..100u32 {
            r.dispatch_mut().install_program(fw(), &bind(0x0a00_0100 + c, BAD)).unwrap();
        }
        r
    };
    let mut want = Verdicts::default();
    let mut r = router();
    for f in frames(&slab, &at) {
        r.push(f, &mut want);
    }
    r.flush(&mut want);
    // The whole slab (batches), and a copy of its first 4 MiB (one at a time).
    let mut big = Verdicts::default();
    let mut r = router();
    r.push_slab(&slab, &frames(&slab, &at), &mut big);
    r.flush(&mut big);
    assert_eq!((&big.forwarded, &big.dropped), (&want.forwarded, &want.dropped));
    let small: Vec<u8> = slab[..4 << 20].to_vec();
    let k = at.iter().take_while(|&&(o, n)| o + n <= small.len()).count();
    let mut part = Verdicts::default();
    let mut r = router();
    r.push_slab(&small, &frames(&small, &at[..k]), &mut part);
    r.flush(&mut part);
    let mut want_part = Verdicts::default();
    let mut r = router();
    for f in &frames(&slab, &at)[..k] {
        r.push(*f, &mut want_part);
    }
    r.flush(&mut want_part);
    assert_eq!((&part.forwarded, &part.dropped), (&want_part.forwarded, &want_part.dropped));
    assert!(!want.dropped.is_empty() && k > 10);
}

/// A TCP, UDP, ICMP or portless packet (a TCP header cut short, a UDP
/// non-first fragment) from `src` to `dst`, on the ports and flags `next`
/// picks.
fn transport_frame(next: &mut impl FnMut() -> u64, src: u32, dst: u32) -> Vec<u8> {
    use crate::packet::tests::{ipv4_bytes, tcp_bytes_with, udp_bytes};
    let ports = [25u16, 53, 80, 445, 0, 65_535];
    let (sp, dp) = (ports[(next() % 6) as usize], ports[(next() % 6) as usize]);
    let flags = [0x02u8, 0x12, 0x10, 0x18, 0x11, 0x04][(next() % 6) as usize];
    match next() % 10 {
        0..=3 => ipv4_bytes(src, dst, 6, &tcp_bytes_with(sp, dp, 1, flags, &[], b"x")),
        4..=6 => ipv4_bytes(src, dst, 17, &udp_bytes(sp, dp, b"x")),
        7 => ipv4_bytes(src, dst, 1, &[8, 0, 0, 0, 0, 25, 0, 25]),
        8 => {
            let mut ip = ipv4_bytes(src, dst, 6, &tcp_bytes_with(sp, dp, 1, flags, &[], b"x"));
            ip.truncate(20 + (next() % 20) as usize);
            ip
        }
        _ => {
            let mut ip = ipv4_bytes(src, dst, 17, &udp_bytes(sp, dp, b"x"));
            ip[7] = 1 + (next() % 200) as u8;
            ip
        }
    }
}

/// The port programs in the table: port firewalls for many end users
/// (decided during the bucketing pass, by their direct plans), an edge
/// router's port firewall (a chain keyed by THIS_SUBNET_IP), a general
/// plan (two DISCARDs), and one whose bound makes it fault. With fast
/// paths and without (the interpreter only): the same drops, reports and
/// counters.
#[test]
fn port_plans_agree_with_the_vm_in_the_table() {
    use crate::vm::transport_tests::{flags_and_ports, port_firewall};
    let pfw = Arc::new(Program::unchecked(port_firewall(), 256 * 6, &policy()));
    let mut tight = port_firewall();
    tight.header.lifetime_secs += 1;
    let tight = Arc::new(Program::unchecked(tight, 9, &policy()));
    let general = Arc::new(Program::unchecked(flags_and_ports(), 256 * 5, &policy()));
    // Edge router: DISCARD(TCP_FLAGS(GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP), SYN, ACK)).
    let edge_syns = {
        let mut a = Asm::default();
        let all = a.all();
        let sub = a.reg(Ty::Prefix);
        a.op(Insn::ThisSubnet { dst: sub });
        let mine = a.reg(Ty::Set);
        a.op(Insn::FilterDst { dst: mine, set: all, by: sub });
        let (syn, ack) = (a.konst(Const::Num(2)), a.konst(Const::Num(16)));
        let s = a.reg(Ty::Set);
        a.op(Insn::Narrow { dst: s, set: mine, field: vinet_checker::bytecode::Field::TcpFlags, a: syn, b: ack });
        a.op(Insn::Discard { set: s });
        let mut p = policy();
        p.client = ClientKind::EdgeRouter;
        Arc::new(Program::unchecked(a.module(Class::Filtering), 256 * 3, &p))
    };
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut ds = [Dispatch::new(256), Dispatch::new(256)];
    ds[1].fast_paths = false;
    ds[1].machine.interpret_only = true;
    let mut ids = Vec::new();
    for d in ds.iter_mut() {
        let mut v = Vec::new();
        for c in 0..80u32 {
            let src = if c % 3 == 0 { BAD } else { GOOD };
            let port = [25u64, 53, 80, 445, 0, 70_000][c as usize % 6];
            let b = Binding { this_ip: mapped(0x0a00_0100 + c), this_subnet: None, params: vec![Const::Addr(src), Const::Num(port)] };
            v.push(d.install_program(Arc::clone(&pfw), &b).unwrap());
        }
        v.push(d.install_program(Arc::clone(&tight), &bind(0x0a00_0101, BAD)).unwrap());
        let gen = Binding { this_ip: mapped(0x0a00_0102), this_subnet: None, params: vec![Const::Num(20), Const::Num(100)] };
        v.push(d.install_program(Arc::clone(&general), &gen).unwrap());
        let sub = Binding { this_ip: mapped(0x0a00_0101), this_subnet: Some(v4net(0x0a00_0100, 28)), params: vec![] };
        v.push(d.install_program(Arc::clone(&edge_syns), &sub).unwrap());
        ids.push(v);
    }
    assert!(!ds[0].plans.fast.is_empty(), "the port firewalls are decided during the pass");
    for round in 0..300 {
        let n = 1 + next() % 256;
        let mut ws = [Window::new(), Window::new()];
        for _ in 0..n {
            let src = [BAD, GOOD, OTHER][(next() % 3) as usize];
            let dst = 0x0a00_0100 + (next() % if round % 2 == 0 { 90 } else { 4 }) as u32;
            let f = transport_frame(&mut next, src, dst);
            for w in ws.iter_mut() {
                w.push(LinkType::Raw, 0, 0, &f);
            }
        }
        let reps: Vec<WindowReport> = ds.iter_mut().zip(ws.iter_mut()).map(|(d, w)| d.run_window(w)).collect();
        assert_eq!(reps[0], reps[1], "round {round}");
        assert_eq!(dropped(&ws[0]), dropped(&ws[1]), "round {round}");
    }
    let (mut faults, mut discarded) = (0, 0);
    for (a, b) in ids[0].iter().zip(&ids[1]) {
        let (sa, sb) = (ds[0].stats(*a).unwrap(), ds[1].stats(*b).unwrap());
        assert_eq!(sa, sb);
        faults += sa.faults;
        discarded += sa.discarded;
    }
    assert!(faults > 0 && discarded > 0, "the tight firewall faults sometimes, and the others drop");
}

/// An end user's [`DirectPlan`] of a port firewall decides every packet
/// as the instance's chain plan does, fields read from real columns.
#[test]
fn direct_plans_of_port_chains_decide_as_the_chain_plan() {
    use crate::vm::transport_tests::port_firewall;
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let p = Arc::new(Program::unchecked(port_firewall(), 256 * 6, &policy()));
    for (params, some) in
        [(vec![], true), (vec![Const::Addr(GOOD), Const::Num(53)], true), (vec![Const::Addr(BAD), Const::Num(1 << 20)], false)]
    {
        let inst = p.instantiate(&params).unwrap();
        let plan = DirectPlan::of(&inst).expect("a chain");
        assert_eq!(plan.len, 3, "GBS and the two narrowings after the leading GBD");
        let mut w = Window::new();
        for _ in 0..5000 {
            let dst = if next().is_multiple_of(2) { ME } else { next() as u32 };
            let src = [BAD, GOOD, dst][(next() % 3) as usize];
            w.push(LinkType::Raw, 0, 0, &transport_frame(&mut next, src, dst));
        }
        let cols = &w.cols;
        let mut drops = 0;
        for i in 0..cols.len() {
            let (src, dst) = (cols.src[i], cols.dst[i]);
            let want = inst.chain_packet(This::end_user(dst), src, dst, |f| cols.field(f, i));
            assert_eq!(plan.decide(src, dst, |f| cols.field(f, i)), want, "packet {i}");
            drops += usize::from(want.1);
        }
        assert_eq!(drops > 0, some, "{params:?}: some are dropped, but of no port above 65,535");
    }
}

/// Edge-router program that only counts its bucket: COUNT(GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP)).
fn subnet_counter() -> Arc<Program> {
    let mut a = Asm::default();
    let all = a.all();
    let sub = a.reg(Ty::Prefix);
    a.op(Insn::ThisSubnet { dst: sub });
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: sub });
    let n = a.reg(Ty::Num);
    a.op(Insn::Count { dst: n, set: mine });
    let mut p = policy();
    p.client = ClientKind::EdgeRouter;
    Arc::new(Program::unchecked(a.module(Class::Monitoring), 512, &p))
}

/// 2001:db8:ed00::/40, the edge routers' space of these tests.
const EDGE6: u128 = 0x2001_0db8_ed00 << 80;

/// IPv6 end users by exact address and IPv6 edge routers by prefix (nested),
/// beside IPv4 ones, in one table over dual-stack windows: `::/0` holds
/// every packet, `0.0.0.0/0` (`::ffff:0:0/96`) the IPv4 ones.
#[test]
fn ipv6_exact_and_prefix_clients_beside_ipv4_ones() {
    let mut d = Dispatch::new(256);
    let a6 = d.install_program(fw(), &Binding { this_ip: ME6, this_subnet: None, params: vec![Const::Addr6(BAD6)] }).unwrap();
    let a4 = d.install_program(fw(), &bind(ME, BAD)).unwrap();
    let edge = |net: u128, len: u8| Binding { this_ip: net | 1, this_subnet: Some((net, len)), params: vec![] };
    let wide = d.install_program(subnet_dropper(), &edge(EDGE6, 40)).unwrap();
    let narrow = d.install_program(subnet_dropper(), &edge(EDGE6 | 1 << 64, 64)).unwrap();
    let all6 = d.install_program(subnet_counter(), &edge(0, 0)).unwrap();
    let all4 =
        d.install_program(subnet_counter(), &Binding { this_ip: mapped(1), this_subnet: Some(v4net(0, 0)), params: vec![] }).unwrap();
    let mut w = Window::new();
    udp6(&mut w, BAD6, ME6, b""); // 0: dropped by a6
    udp6(&mut w, GOOD6, ME6, b""); // 1
    udp(&mut w, BAD, ME, b""); // 2: dropped by a4
    udp6(&mut w, GOOD6, EDGE6 | 1 << 64 | 5, b""); // 3: in both prefixes
    udp6(&mut w, GOOD6, EDGE6 | 2 << 64 | 5, b""); // 4: in the /40 only
    udp6(&mut w, GOOD6, (EDGE6 ^ 1 << 88) | 1, b""); // 5: in neither
    udp6(&mut w, BAD6, OTHER6, b""); // 6: nobody's exact
    udp(&mut w, GOOD, 0x0a00_0105, b""); // 7
    let rep = d.run_window(&mut w);
    assert_eq!((rep.buckets, rep.faults), (6, 0));
    assert_eq!(dropped(&w), vec![0, 2, 3, 4]);
    let packets = |id| d.stats(id).unwrap().packets_in;
    assert_eq!([a6, a4, wide, narrow, all6, all4].map(packets), [2, 1, 2, 1, 8, 2]);
    assert_eq!(d.stats(a6).unwrap().discarded, 1);
    let dests: Vec<Dest> = d.list().map(|i| i.dest).collect();
    assert!(dests.contains(&Dest::Addr(ME6)) && dests.contains(&Dest::Addr(mapped(ME))));
    assert!(
        dests.contains(&Dest::Prefix(EDGE6, 40)) && dests.contains(&Dest::Prefix(mapped(0), 96)) && dests.contains(&Dest::Prefix(0, 0))
    );
    // Removing the IPv6 clients leaves the IPv4 ones as they were.
    for id in [a6, wide, narrow, all6] {
        d.remove(id).unwrap();
    }
    let mut w2 = Window::new();
    udp6(&mut w2, BAD6, ME6, b"");
    udp(&mut w2, BAD, ME, b"");
    udp6(&mut w2, GOOD6, EDGE6 | 5, b"");
    d.run_window(&mut w2);
    assert_eq!(dropped(&w2), vec![1]);
    assert_eq!(d.stats(all4).unwrap().packets_in, 3);
}

/// An end user with an IPv4 and an IPv6 address is two installations, each
/// confined to its own address: each drops its own family's bad packets.
#[test]
fn an_identity_with_two_addresses_is_two_installations() {
    let mut d = Dispatch::new(256);
    let v4 = d.install_program(fw(), &bind(ME, BAD)).unwrap();
    let v6 = d.install_program(fw(), &Binding { this_ip: ME6, this_subnet: None, params: vec![Const::Addr6(BAD6)] }).unwrap();
    let mut w = Window::new();
    udp(&mut w, BAD, ME, b""); // 0: v4
    udp6(&mut w, BAD6, ME6, b""); // 1: v6
    udp(&mut w, GOOD, ME, b""); // 2
    udp6(&mut w, GOOD6, ME6, b""); // 3
    udp6(&mut w, BAD6, OTHER6, b""); // 4: another client's
    d.run_window(&mut w);
    assert_eq!(dropped(&w), vec![0, 1]);
    let (s4, s6) = (d.stats(v4).unwrap(), d.stats(v6).unwrap());
    assert_eq!((s4.packets_in, s4.discarded, s6.packets_in, s6.discarded), (2, 1, 2, 1));
    let this: Vec<This> = d.list().map(|i| i.this).collect();
    assert_eq!(this, vec![This::end_user(mapped(ME)), This::end_user(ME6)]);
    assert_eq!(d.shared_counts(), (1, 2), "one program, two parameter values");
}

/// The fast paths (plans on small buckets, end users decided during the
/// pass, over DIRECT_CLIENTS installations) agree with the interpreter on
/// random dual-stack windows with IPv6 end users and edge routers.
#[test]
fn ipv6_plans_agree_with_the_vm_in_the_table() {
    let mut next = xorshift(0x1234_5678_9abc_def1);
    let mut ds = [Dispatch::new(256), Dispatch::new(256)];
    ds[1].fast_paths = false;
    ds[1].machine.interpret_only = true;
    let client = |c: u64| ME6 + (u128::from(c) << 16);
    let mut ids = Vec::new();
    for d in ds.iter_mut() {
        let mut v = Vec::new();
        for c in 0..80u64 {
            let src = if c % 3 == 0 { Const::Addr6(BAD6) } else { Const::Addr(BAD) };
            v.push(d.install_program(fw(), &Binding { this_ip: client(c), this_subnet: None, params: vec![src] }).unwrap());
        }
        for c in 0..20u32 {
            v.push(d.install_program(fw(), &bind(0x0a00_0100 + c, BAD)).unwrap());
        }
        let sub = |net: u128, len| Binding { this_ip: net | 1, this_subnet: Some((net, len)), params: vec![] };
        v.push(d.install_program(local_mix(), &sub(EDGE6, 48)).unwrap());
        v.push(d.install_program(subnet_dropper(), &sub(EDGE6 | 0xf << 64, 64)).unwrap());
        v.push(d.install_program(local_mix(), &sub(mapped(0x0a00_0100), 120)).unwrap());
        ids.push(v);
    }
    for round in 0..200 {
        let n = 1 + next() % 256;
        let mut ws = [Window::new(), Window::new()];
        for _ in 0..n {
            let v6 = !next().is_multiple_of(3);
            let (src, dst) = if v6 {
                let src = [BAD6, GOOD6, next() as u128 | 1 << 127][(next() % 3) as usize];
                let dst = match next() % 4 {
                    0 => EDGE6 | u128::from(next() % 32) << 64 | u128::from(next() % 4),
                    _ => client(next() % if round % 2 == 0 { 90 } else { 4 }),
                };
                (src, dst)
            } else {
                let src = [BAD, GOOD, 0xc633_6400 + (next() % 50) as u32][(next() % 3) as usize];
                (mapped(src), mapped(0x0a00_0100 + (next() % 24) as u32))
            };
            for w in ws.iter_mut() {
                udp6(w, src, dst, b"x");
            }
        }
        let reps: Vec<WindowReport> = ds.iter_mut().zip(ws.iter_mut()).map(|(d, w)| d.run_window(w)).collect();
        assert_eq!(reps[0], reps[1], "round {round}");
        assert_eq!(dropped(&ws[0]), dropped(&ws[1]), "round {round}");
    }
    let mut discarded = 0;
    for (a, b) in ids[0].iter().zip(&ids[1]) {
        let (sa, sb) = (ds[0].stats(*a).unwrap(), ds[1].stats(*b).unwrap());
        assert_eq!(sa, sb);
        discarded += sa.discarded;
    }
    assert!(discarded > 0 && !ds[0].plans.fast.is_empty());
}

/// 100,000 IPv6 end users in one table: each packet meets only its own
/// client's program (the drops are exactly the naive ones), the clients
/// share one program and two instances, and an installation costs the table
/// a bounded number of bytes.
#[test]
fn a_hundred_thousand_ipv6_clients() {
    const N: u64 = 100_000;
    let client = |c: u64| (0x2001_0db8_u128 << 96) | u128::from(c.wrapping_mul(0x9e37_79b9)) << 32 | u128::from(c);
    let mut d = Dispatch::new(256);
    let p = fw();
    for c in 0..N {
        let src = if c % 2 == 0 { Const::Addr6(BAD6) } else { Const::Addr6(GOOD6) };
        d.install_program(Arc::clone(&p), &Binding { this_ip: client(c), this_subnet: None, params: vec![src] }).unwrap();
    }
    assert_eq!((d.len(), d.shared_counts()), (N as usize, (1, 2)));
    let per_install = d.table_bytes() / d.len();
    assert!(per_install < 1024, "{per_install} bytes an installation");
    let mut next = xorshift(0xfeed_f00d);
    for _ in 0..20 {
        let mut w = Window::new();
        let mut want = Vec::new();
        for i in 0..256u32 {
            let c = next() % (N + 1000);
            let src = [BAD6, GOOD6][(next() % 2) as usize];
            udp6(&mut w, src, client(c), b"x");
            if c < N && (src == BAD6) == c.is_multiple_of(2) {
                want.push(i);
            }
        }
        let rep = d.run_window(&mut w);
        assert_eq!((dropped(&w), rep.faults), (want, 0));
    }
}
