//! An overlay network's owner programs the routers for its ON's traffic (issue 13):
//! the `on-owner` policy confines a program to the packets carrying THIS_ON, its
//! ON's flow id (the GRE key of its tunnels), proved and checked as THIS_IP
//! confinement is. Programs on `OnPackets` prove and pass the checker; the
//! analyzer agrees; the other policies refuse them; their twins on the window are
//! refused, also with the safe program's certificate; a checked program run by
//! the VM touches only packets carrying its flow id.

mod support;

use support::{compile, policy, router_cache};
use vinet_checker::cert::{encode_file, Bundle, Declared, BUNDLE_MAGIC};
use vinet_checker::policy::ClientKind;
use vinet_engine::packet::LinkType;
use vinet_engine::vm::{Machine, Program, This};
use vinet_engine::window::Window;
use vinet_prover::Prover;

/// The ON's flow id, and another ON's.
const ON: u32 = 0x00c0_ffee;
const OTHER_ON: u32 = 0x00c0_ffef;
/// The source the ON's firewall blocks (its parameter's default).
const BLOCKED: u32 = 0x0a09_0005;

/// The paper's four programs, and the transport routines, on the ON's packets (`set`).
fn programs(set: &str) -> Vec<(&'static str, String)> {
    vec![
        ("firewall", format!("LIFETIME = 2 days\nPARAM Blocked = 10.9.0.5;\nDISCARD(GROUP_BY_SOURCE({set}, Blocked));\n")),
        (
            "spam_filter",
            format!("LIFETIME = 5 days\nPARAM Word = \"viagra\";\nMail = GROUP_BY_DESTINATION_PORT(GROUP_BY_PROTOCOL({set}, TCP), 25);\nif CONTAINS_STRING(Mail, Word) then DISCARD(Mail);\n"),
        ),
        (
            "worm_blocker",
            format!(
                "LIFETIME = 1 days\nCLASS = filtering\nPARAM T = 20;\nDst(i), To(i) = GROUP_BY_DESTINATION({set});\n\
                 foreach i do\n  if COUNT(To(i)) > T then\n    DISCARD(To(i));\n"
            ),
        ),
        ("scan_monitor", format!("LIFETIME = 1 days\nPARAM M = 16;\nScan = DISTINCT_DESTINATION_PORTS({set}) > M or DISTINCT_DESTINATIONS({set}) > M;\n")),
        (
            "syn_worm_blocker",
            format!(
                "LIFETIME = 1 days\nCLASS = filtering\nPARAM T = 20;\nSyns = TCP_FLAGS(GROUP_BY_PROTOCOL({set}, TCP), SYN, ACK);\n\
                 Port(i), Attempts(i) = GROUP_BY_DESTINATION_PORT(Syns);\nforeach i do\n  if COUNT(Attempts(i)) > T then\n    DISCARD(Attempts(i));\n"
            ),
        ),
    ]
}

#[test]
fn programs_on_the_ons_packets_prove_and_check_only_for_its_owner() {
    let prover = Prover::new().unwrap();
    let cache = router_cache(&prover);
    let p = policy(ClientKind::OnOwner);
    for (name, src) in programs("OnPackets") {
        let c = compile(name, &src);
        let proved = prover.prove(&c.module, &p).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        let checked = vinet_checker::check(&proved.bytes, &p, &cache).unwrap_or_else(|e| panic!("{name}: {e}"));
        let vc = vinet_checker::vcgen::generate(&c.module, &p).unwrap();
        assert_eq!((checked.complexity(), checked.cost()), (vc.complexity, vc.cost), "{name}");
        let analyzed = vinet_analyzer::analyze(&c.module, &p).unwrap_or_else(|e| panic!("the analyzer refuses {name}: {e}"));
        assert_eq!((analyzed.complexity, analyzed.cost), (vc.complexity, vc.cost), "{name}: the verifiers' figures");
        eprintln!("{name}: complexity {}, bundle {} bytes", vc.complexity, proved.bytes.len());
        // Neither an end user's nor an edge router's policy admits it: THIS_ON is not theirs.
        for other in [ClientKind::EndUser, ClientKind::EdgeRouter] {
            let e = vinet_checker::check(&proved.bytes, &policy(other), &cache).unwrap_err().to_string();
            assert!(e.contains("ON_PACKETS is defined only for overlay-network-owner clients"), "{name} under {other:?}: {e}");
            assert!(vinet_analyzer::analyze(&c.module, &policy(other)).is_err(), "{name} under {other:?}: the analyzer");
        }
    }
}

#[test]
fn twins_on_the_window_are_refused_even_with_the_safe_certificate() {
    let prover = Prover::new().unwrap();
    let cache = router_cache(&prover);
    let p = policy(ClientKind::OnOwner);
    for ((name, safe), (_, twin)) in programs("OnPackets").into_iter().zip(programs("AllPackets")) {
        let twin = compile(name, &twin);
        let refused = prover.prove(&twin.module, &p);
        assert!(refused.is_err(), "{name} on AllPackets proved for an ON owner");
        assert!(vinet_analyzer::analyze(&twin.module, &p).is_err(), "{name}: the analyzer admits the twin");
        // The safe program's certificate, with the twin's own figures.
        let proved = prover.prove(&compile(name, &safe).module, &p).unwrap();
        let vc = vinet_checker::vcgen::generate(&twin.module, &p).unwrap();
        let forged = Bundle {
            module: twin.module.encode(),
            declared: Declared { complexity: vc.complexity, cost: vc.cost },
            ..proved.bundle.clone()
        };
        let e = vinet_checker::check(&encode_file(&forged, BUNDLE_MAGIC), &p, &cache).unwrap_err();
        assert!(!e.to_string().contains("declared"), "{name}: {e}");
        eprintln!("{name} on AllPackets with the safe certificate: {e}");
    }
    // Another ON's traffic is not the owner's: narrowing the window by a destination, or
    // an effect inside a foreach over the window's destination groups (an ON owner has no
    // group of its own to guard on), does not make it so.
    for (name, src) in [
        ("by_address", "LIFETIME = 1 days\nDISCARD(GROUP_BY_DESTINATION(AllPackets, 10.0.0.7));\n"),
        ("in_groups", "LIFETIME = 1 days\nCLASS = filtering\nD(i), To(i) = GROUP_BY_DESTINATION(AllPackets);\nforeach i do\n  if COUNT(OnPackets) > 0 then DISCARD(To(i));\n"),
    ] {
        let m = compile(name, src).module;
        assert!(prover.prove(&m, &p).is_err(), "{name} proved");
        assert!(vinet_analyzer::analyze(&m, &p).is_err(), "{name}: the analyzer admits it");
    }
}

#[test]
fn an_on_owner_has_no_address() {
    let p = policy(ClientKind::OnOwner);
    for (src, what) in [
        (
            "LIFETIME = 1 days\nDISCARD(GROUP_BY_DESTINATION(OnPackets, THIS_IP));\n",
            "THIS_IP is defined only for end-user and edge-router clients",
        ),
        (
            "LIFETIME = 1 days\nDISCARD(GROUP_BY_DESTINATION(OnPackets, THIS_SUBNET_IP));\n",
            "THIS_SUBNET_IP is defined only for edge-router clients",
        ),
    ] {
        let e = vinet_checker::vcgen::generate(&compile("x", src).module, &p).unwrap_err();
        assert!(e.reason.contains(what) && e.reason.contains("overlay-network owners"), "{}", e.reason);
    }
}

/// An IPv4 GRE packet (RFC 2890, key present) from `src` carrying an inner UDP datagram.
fn gre(src: u32, key: Option<u32>) -> Vec<u8> {
    let mut l4 = if key.is_some() { vec![0x20, 0x00, 0x08, 0x00] } else { vec![0x00, 0x00, 0x08, 0x00] };
    if let Some(k) = key {
        l4.extend(k.to_be_bytes());
    }
    let inner = [0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 168, 0, 1, 192, 168, 0, 2, 0, 53, 0, 53, 0, 8, 0, 0];
    l4.extend(inner);
    ipv4(src, 0xcb00_7101, 47, &l4)
}

fn ipv4(src: u32, dst: u32, proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend(total.to_be_bytes());
    h.extend([0, 0, 0x40, 0, 64, proto, 0, 0]);
    h.extend(src.to_be_bytes());
    h.extend(dst.to_be_bytes());
    h.extend(l4);
    h
}

#[test]
fn a_checked_on_firewall_touches_only_its_ons_packets() {
    let prover = Prover::new().unwrap();
    let cache = router_cache(&prover);
    let p = policy(ClientKind::OnOwner);
    let (name, src) = programs("OnPackets").remove(0);
    let proved = prover.prove(&compile(name, &src).module, &p).unwrap();
    let checked = vinet_checker::check(&proved.bytes, &p, &cache).unwrap();
    let program = std::sync::Arc::new(Program::new(&checked));
    let inst = program.instantiate(&[]).unwrap();
    // The blocked source's packets: of the ON, of another ON, with no key, not GRE at
    // all, and a non-first fragment (whose bytes happen to look like the ON's header).
    let mut frag = gre(BLOCKED, Some(ON));
    frag[6..8].copy_from_slice(&[0x00, 0x10]);
    let frames = [
        gre(BLOCKED, Some(ON)),
        gre(BLOCKED, Some(OTHER_ON)),
        gre(BLOCKED, None),
        ipv4(BLOCKED, 0xcb00_7101, 17, &[0, 53, 0, 53, 0, 8, 0, 0]),
        frag,
        gre(0x0a09_0006, Some(ON)),
        gre(BLOCKED, Some(ON)),
    ];
    let mut w = Window::new();
    for f in &frames {
        w.push(LinkType::Raw, 0, 0, f);
    }
    assert_eq!(w.packet_count(), frames.len());
    let mut m = Machine::new();
    let st = inst.run(This::on_owner(ON), w.view(), &mut m).unwrap();
    let dropped: Vec<usize> = (0..frames.len()).filter(|&i| m.effects().is_dropped(i)).collect();
    assert_eq!(dropped, [0, 6], "only the blocked source's packets of the ON");
    assert!(st.cost <= checked.complexity(), "metered {} over the certified {}", st.cost, checked.complexity());
    // Bound to another ON, the same program drops that ON's packet instead.
    let mut m = Machine::new();
    inst.run(This::on_owner(OTHER_ON), w.view(), &mut m).unwrap();
    assert_eq!((0..frames.len()).filter(|&i| m.effects().is_dropped(i)).collect::<Vec<_>>(), [1]);
}

/// z3 decides the new symbols: the window is not the ON's (with a packet to show),
/// its packets carrying THIS_ON are, and so are their narrowings.
#[test]
fn z3_encodes_flow_id_confinement() {
    use vinet_checker::logic::{Sym, Term};
    use vinet_prover::z3enc::{decide, Decision, Preferences};
    let app = |s: Sym, a: Vec<Term>| Term::app(s, a).unwrap();
    let on = app(Sym::ThisOn, vec![]);
    let all = app(Sym::All, vec![]);
    let prefs = Preferences::default();
    let conf = |s: Term| app(Sym::ConfK, vec![s, on.clone()]);
    assert!(matches!(decide(&[], &conf(all.clone()), &prefs), Decision::Fails(cx) if cx.packet.is_some()));
    let mine = app(Sym::FKey, vec![all.clone(), on.clone()]);
    assert!(matches!(decide(&[], &conf(mine.clone()), &prefs), Decision::Valid));
    let narrowed = app(
        Sym::Narrow,
        vec![app(Sym::FSrc, vec![mine, Term::lit(vinet_checker::logic::Lit::Addr(BLOCKED))]), Term::num(0), Term::num(6), Term::num(6)],
    );
    assert!(matches!(decide(&[], &conf(narrowed), &prefs), Decision::Valid));
    let other = app(Sym::FKey, vec![all, Term::num(u64::from(OTHER_ON))]);
    assert!(matches!(decide(&[], &conf(other), &prefs), Decision::Fails(_)));
}
