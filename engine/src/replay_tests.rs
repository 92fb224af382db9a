//! Replays every capture of `tests/data/pcap` (401 files from tcpdump's test
//! suite, many malformed on purpose) through parse + windowing + a dispatch
//! table with programs installed, and checks that nothing panics, that every
//! frame is accounted for, and that the output re-reads.
//!
//! This lives inside the crate (not in `tests/`) because until the checker's
//! `check()` exists, programs can only be made through the test-only
//! constructor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use vinet_checker::bytecode::{Class, Const, Insn, Ty};
use vinet_checker::policy::ClientKind;

use crate::packet::is_mapped;
use crate::pcap::Frame;
use crate::pcap::{CaptureError, CaptureReader, PcapOut};
use crate::runner::Runner;
use crate::vm::tests::{firewall, multicast, policy, spam_filter, Asm};
use crate::vm::{Binding, Program};
use crate::window::WindowConfig;
use vinet_vocab::addr_const;

/// Per-file frame cap; no file of the corpus comes near it (the largest has
/// a few hundred frames).
const MAX_FRAMES_PER_FILE: u64 = 200_000;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/pcap");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("capture corpus {} is missing ({e}); it ships in the repository", dir.display()));
    let mut v: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    v.sort();
    v
}

/// A monitoring program that exercises every routine but DISCARD/GENERATE,
/// for an edge-router client: groups, foreach, CONTAINS_STRING, COUNT,
/// DISTINCT_DESTINATIONS, GROUP_BY_CONTENT.
fn monitor() -> vinet_checker::Module {
    let mut a = Asm::default();
    let all = a.all();
    let sub = a.reg(Ty::Prefix);
    a.op(Insn::ThisSubnet { dst: sub });
    let mine = a.reg(Ty::Set);
    a.op(Insn::FilterDst { dst: mine, set: all, by: sub });
    let word = a.konst(Const::Str("HTTP".into()));
    let g = a.reg(Ty::Groups);
    a.op(Insn::GroupSrc { dst: g, set: mine });
    let (d, c) = (a.reg(Ty::AddrList), a.reg(Ty::Content));
    a.op(Insn::GroupContent { dests: d, content: c, set: mine });
    let (k, s, hit, n, nd) = (a.reg(Ty::Addr), a.reg(Ty::Set), a.reg(Ty::Bool), a.reg(Ty::Num), a.reg(Ty::Num));
    a.op(Insn::Foreach { groups: g, key: k, set: s, body_len: 3 });
    a.op(Insn::ContainsString { dst: hit, set: s, needle: word });
    a.op(Insn::Count { dst: n, set: s });
    a.op(Insn::DistinctDst { dst: nd, set: s });
    a.module(Class::Monitoring)
}

#[test]
fn replay_every_capture() {
    let files = corpus();
    assert!(files.len() >= 400, "expected the 401-capture corpus, found {} files", files.len());
    let pol = policy();
    let mut edge = pol;
    edge.client = ClientKind::EdgeRouter;
    // Generous bounds: this test is about robustness; metering is tested elsewhere.
    let fw = Arc::new(Program::unchecked(firewall(), 1_000_000, &pol));
    let spam = Arc::new(Program::unchecked(spam_filter(), 1_000_000, &pol));
    let mc = Arc::new(Program::unchecked(multicast(), 1_000_000, &pol));
    let mon = Arc::new(Program::unchecked(monitor(), 1_000_000, &edge));
    let cfg = WindowConfig::new(pol.window_packets, 1000);
    let (mut frames, mut unparsed, mut not_ip, mut packets, mut dropped, mut generated) = (0u64, 0, 0, 0, 0, 0);
    let (mut v6, mut fragment_verdicts) = (0u64, 0);
    let (mut damaged, mut unreadable, mut capped) = (Vec::new(), Vec::new(), 0);
    let start = Instant::now();
    let mut addrs = Vec::new();
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(CaptureError::Format(e)) => {
                unreadable.push(format!("{name}: {e}"));
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        // Clients: the first destinations seen in the file get the paper's
        // programs (so they really run and drop), and a /0 edge-router client
        // monitors everything.
        let mut router = Runner::new(cfg);
        let mut out = PcapOut::new(Vec::new(), reader.link_type().unwrap_or(crate::packet::LinkType::Ethernet)).unwrap();
        let mut installed = 0;
        let d = router.dispatch_mut();
        d.install_program(Arc::clone(&mon), &Binding { this_ip: 1, this_subnet: Some((0, 0)), params: vec![] }).unwrap();
        let mut n = 0u64;
        let mut file_err = None;
        addrs.clear();
        loop {
            if n >= MAX_FRAMES_PER_FILE {
                capped += 1;
                break;
            }
            let f = match reader.next_frame() {
                None => break,
                Some(Err(e)) => {
                    file_err = Some(e);
                    break;
                }
                Some(Ok(f)) => f,
            };
            if let crate::packet::Parsed::Packet(p) = crate::packet::parse_frame(f.link, f.data) {
                v6 += u64::from(p.v6);
                // The first destinations of each family.
                if installed < 6 && !addrs.contains(&p.dst) && addrs.iter().filter(|&&a| is_mapped(a) != p.v6).count() < 3 {
                    addrs.push(p.dst);
                    let d = router.dispatch_mut();
                    let b = |params| Binding { this_ip: p.dst, this_subnet: None, params };
                    d.install_program(Arc::clone(&fw), &b(vec![addr_const(p.src)])).unwrap();
                    d.install_program(Arc::clone(&spam), &b(vec![Const::Str("".into())])).unwrap();
                    d.install_program(Arc::clone(&mc), &b(vec![addr_const(p.src)])).unwrap();
                    installed += 1;
                }
            }
            router.push(f, &mut out);
            n += 1;
        }
        router.flush(&mut out);
        if let Some(e) = file_err {
            damaged.push(format!("{name}: {e}"));
        }
        let st = router.stats();
        assert_eq!(st.frames_in, n, "{name}");
        assert_eq!(st.frames_in, st.forwarded + st.discarded, "{name}: a frame went missing");
        assert_eq!(st.faults, 0, "{name}: {:?}", router.dispatch().list().find_map(|i| i.last_fault.cloned()));
        // The output re-reads: forwarded frames then generated packets.
        let bytes = out.into_inner();
        let mut again = CaptureReader::new(&bytes[..]).expect("output re-reads");
        let mut m = 0u64;
        while let Some(f) = again.next_frame() {
            f.unwrap_or_else(|e| panic!("{name}: output does not re-read: {e}"));
            m += 1;
        }
        assert_eq!(m, st.forwarded + st.generated, "{name}");
        frames += st.frames_in;
        unparsed += st.unparsed;
        not_ip += st.not_ip;
        fragment_verdicts += st.fragment_verdicts;
        packets += st.packets_in;
        dropped += st.discarded;
        generated += st.generated;
    }
    let took = start.elapsed();
    eprintln!(
        "replayed {} captures: {frames} frames ({packets} packets, {v6} of them IPv6, {unparsed} unparsed, {not_ip} not IP), \
         {dropped} dropped, {generated} generated, {fragment_verdicts} later fragments given their datagram's verdict, \
         {} damaged, {} unreadable, {capped} capped, in {took:?}",
        files.len(),
        damaged.len(),
        unreadable.len()
    );
    for d in damaged.iter().chain(&unreadable) {
        eprintln!("  {d}");
    }
    assert!(frames > 3000, "the corpus has over 3,000 frames, replayed {frames}");
    assert!(dropped > 0 && generated > 0, "programs should have acted on real traffic");
    assert!(v6 > 100, "the corpus has IPv6 traffic, {v6} packets");
}

/// The paper's programs for the first three destinations of `frames`.
fn install_first(r: &mut Runner, frames: &[Frame<'_>], progs: &[Arc<Program>; 3]) {
    let mut dsts = Vec::new();
    for f in frames {
        if let crate::packet::Parsed::Packet(p) = crate::packet::parse_frame(f.link, f.data) {
            if dsts.len() < 3 && !dsts.contains(&p.dst) {
                dsts.push(p.dst);
                let b = |params| Binding { this_ip: p.dst, this_subnet: None, params };
                let d = r.dispatch_mut();
                d.install_program(Arc::clone(&progs[0]), &b(vec![addr_const(p.src)])).unwrap();
                d.install_program(Arc::clone(&progs[1]), &b(vec![Const::Str("".into())])).unwrap();
                d.install_program(Arc::clone(&progs[2]), &b(vec![addr_const(p.src)])).unwrap();
            }
        }
    }
}

/// `Runner::push_slab` (frames borrowed from one buffer, windows spanning
/// calls, frames from elsewhere mixed in) gives byte for byte the output and
/// the counters of `Runner::push`, on every capture of the corpus.
#[test]
fn slab_replay_equals_copying_replay() {
    let pol = policy();
    let progs = [
        Arc::new(Program::unchecked(firewall(), 1_000_000, &pol)),
        Arc::new(Program::unchecked(spam_filter(), 1_000_000, &pol)),
        Arc::new(Program::unchecked(multicast(), 1_000_000, &pol)),
    ];
    let cfg = WindowConfig::new(pol.window_packets, 1000);
    let mut compared = 0u64;
    for path in corpus() {
        let Ok(mut reader) = CaptureReader::open(&path) else { continue };
        let link = reader.link_type().unwrap_or(crate::packet::LinkType::Ethernet);
        let mut slab = Vec::new();
        let mut recs = Vec::new();
        while let Some(Ok(f)) = reader.next_frame() {
            recs.push((slab.len(), f.data.len(), f.link, f.ts_ns, f.orig_len));
            slab.extend_from_slice(f.data);
        }
        let frames: Vec<Frame<'_>> =
            recs.iter().map(|&(off, len, link, ts_ns, orig_len)| Frame { link, ts_ns, orig_len, data: &slab[off..off + len] }).collect();
        let copies: Vec<Vec<u8>> = frames.iter().map(|f| f.data.to_vec()).collect();
        let name = path.display().to_string();
        let mut results = Vec::new();
        for mode in 0..3 {
            let mut r = Runner::new(cfg);
            install_first(&mut r, &frames, &progs);
            let mut out = PcapOut::new(Vec::new(), link).unwrap();
            match mode {
                0 => frames.iter().for_each(|f| r.push(*f, &mut out)),
                // Chunks of 7: windows span calls and are internalized.
                1 => frames.chunks(7).for_each(|c| r.push_slab(&slab, c, &mut out)),
                // Every fifth chunk starts with a frame from another buffer,
                // which switches an open borrowed window to copying.
                _ => {
                    for (k, c) in frames.chunks(7).enumerate() {
                        if k % 5 == 4 {
                            r.push_slab(&copies[k * 7], &[Frame { data: &copies[k * 7], ..c[0] }], &mut out);
                            r.push_slab(&slab, &c[1..], &mut out);
                        } else if k % 5 == 2 {
                            r.push(Frame { data: &copies[k * 7], ..c[0] }, &mut out);
                            r.push_slab(&slab, &c[1..], &mut out);
                        } else {
                            r.push_slab(&slab, c, &mut out);
                        }
                    }
                }
            }
            r.flush(&mut out);
            results.push((r.stats(), out.into_inner()));
        }
        for (mode, res) in results.iter().enumerate().skip(1) {
            assert_eq!(res.0, results[0].0, "{name}: counters of mode {mode}");
            assert!(res.1 == results[0].1, "{name}: output of mode {mode} differs");
        }
        compared += results[0].0.frames_in;
    }
    assert!(compared > 3000);
}
