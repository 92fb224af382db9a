//! Issue 15: IPv6 through the proof path. The paper's programs written with
//! IPv6 parameters prove, and their certificates pass the checker under the
//! shipped policies; so does a dual-stack firewall; their unsafe twins are
//! refused with counterexamples whose addresses are IPv6 (one family a packet,
//! as on a wire), printed as every vinet tool prints them. The second verifier
//! (the analyzer) agrees on every one.

mod support;

use support::{compile, policy, router_cache};
use vinet_checker::cert::LemmaCache;
use vinet_checker::logic::{Lit, Sym, Term};
use vinet_checker::mapped;
use vinet_checker::policy::ClientKind;
use vinet_prover::z3enc::{decide, Decision, Preferences};
use vinet_prover::{Failure, Prover};

const DOC: u128 = 0x2001_0db8 << 96; // 2001:db8::/32

fn firewall6() -> String {
    "LIFETIME = 2 days\nPARAM SrcIP = 2001:db8:bad::9;\n\
     MyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nBadPackets = GROUP_BY_SOURCE(MyPackets, SrcIP);\nDISCARD(BadPackets);\n"
        .into()
}

/// The spam filter, trusting the sources of a documentation prefix.
fn spam_filter6() -> String {
    "LIFETIME = 5 days\nPARAM Word1 = \"viagra\"; PARAM Word2 = \"lottery\"; PARAM Trusted = 2001:db8:100::/40;\n\
     MyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nSourceIP(i), Packets(i) = GROUP_BY_SOURCE(MyPackets);\n\
     foreach i do\n  if not (SourceIP(i) in Trusted) and CONTAINS_STRING(Packets(i), Word1) and CONTAINS_STRING(Packets(i), Word2) then\n\
     \x20   DISCARD(Packets(i));\n"
        .into()
}

/// The multicast aggregator for an IPv6 broadcaster.
fn multicast6() -> String {
    "LIFETIME = 5 hrs\nPARAM BroadcastIP = 2001:db8:b::7;\n\
     MyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP);\nBroadcast = GROUP_BY_SOURCE(MyPackets, BroadcastIP);\n\
     Destinations, Content = GROUP_BY_CONTENT(Broadcast);\nGENERATE(BroadcastIP, THIS_IP, Destinations);\n\
     GENERATE(BroadcastIP, THIS_IP, Content);\nDISCARD(Broadcast);\n"
        .into()
}

/// The worm blocker, sparing a lab prefix that scans on purpose.
fn worm_blocker6() -> String {
    "LIFETIME = 1 days\nCLASS = filtering\nPARAM N = 8;\nPARAM Lab = 2001:db8:1ab::/48;\n\
     MySubnet = GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP);\nSource(i), Sent(i) = GROUP_BY_SOURCE(MySubnet);\n\
     foreach i do\n  if DISTINCT_DESTINATIONS(Sent(i)) > N and not (Source(i) in Lab) then\n    DISCARD(Sent(i));\n"
        .into()
}

/// The firewall for both families: one source of each.
fn dual_stack() -> String {
    "LIFETIME = 2 days\nPARAM SrcIP = 203.0.113.9;\nPARAM SrcIP6 = 2001:db8:bad::9;\n\
     MyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
     DISCARD(GROUP_BY_SOURCE(MyPackets, SrcIP));\nDISCARD(GROUP_BY_SOURCE(MyPackets, SrcIP6));\n"
        .into()
}

/// Prove, check as a router does, and compare with the VC generator and the analyzer.
fn prove_and_check(prover: &Prover, cache: &LemmaCache, name: &str, src: &str, client: ClientKind) -> vinet_prover::Proved {
    let c = compile(name, src);
    let p = policy(client);
    let proved = prover.prove(&c.module, &p).unwrap_or_else(|f| panic!("{name} under {client:?}: {f:?}"));
    let checked = vinet_checker::check(&proved.bytes, &p, cache).unwrap_or_else(|e| panic!("{name} under {client:?}: {e}"));
    let vc = vinet_checker::vcgen::generate(&c.module, &p).unwrap();
    assert_eq!(checked.complexity(), vc.complexity, "{name}");
    assert_eq!(proved.stats.complexity, vc.complexity, "{name}");
    let analyzed = vinet_analyzer::analyze(&c.module, &p).unwrap_or_else(|e| panic!("the analyzer refuses {name}: {e}"));
    assert_eq!((analyzed.complexity, analyzed.cost), (vc.complexity, vc.cost), "{name}: the verifiers' figures");
    // The other client kind's policy refuses it.
    let other = policy(if client == ClientKind::EndUser { ClientKind::EdgeRouter } else { ClientKind::EndUser });
    assert!(vinet_checker::check(&proved.bytes, &other, cache).is_err(), "{name} under the other policy");
    proved
}

#[test]
fn the_papers_programs_with_ipv6_parameters_prove_and_check() {
    let prover = Prover::new().unwrap();
    let cache = router_cache(&prover);
    // The firewall and the multicast aggregator are the paper's, with IPv6 parameters:
    // their figures are those of the IPv4 programs (examples/), and so are their proofs.
    for (name, src, client, complexity) in [
        ("firewall6", firewall6(), ClientKind::EndUser, Some(1030)),
        ("spam_filter6", spam_filter6(), ClientKind::EndUser, None),
        ("multicast6", multicast6(), ClientKind::EdgeRouter, Some(5133)),
        ("worm_blocker6", worm_blocker6(), ClientKind::EdgeRouter, None),
        ("dual_stack", dual_stack(), ClientKind::EndUser, None),
    ] {
        let proved = prove_and_check(&prover, &cache, name, &src, client);
        if let Some(c) = complexity {
            assert_eq!(proved.stats.complexity, c, "{name}");
        }
    }
    let c = compile("firewall6", &firewall6());
    assert_eq!(c.module.params[0].default, vinet_checker::bytecode::Const::Addr6(DOC | 0xbad << 80 | 9));
    let v4 = std::fs::read_to_string(format!("{}/../examples/firewall.vinet", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let steps = |src: &str| prover.prove(&compile("f", src).module, &policy(ClientKind::EndUser)).unwrap().stats.steps;
    assert_eq!(steps(&firewall6()), steps(&v4), "one proof for both families");
}

/// A refusal: the failure at the first instruction whose source starts with
/// `at` (its headline and its notes).
fn refused(name: &str, src: &str, client: ClientKind, at: &str) -> Failure {
    let prover = Prover::new().unwrap();
    let c = compile(name, src);
    let p = policy(client);
    let failures = prover.prove(&c.module, &p).expect_err(name);
    assert!(vinet_analyzer::analyze(&c.module, &p).is_err(), "the analyzer accepts {name}");
    eprintln!("{name}: {failures:#?}");
    let f = failures.iter().find(|f| c.source[c.spans[f.at].clone()].starts_with(at));
    f.unwrap_or_else(|| panic!("{name}: no failure at `{at}`: {failures:#?}")).clone()
}

#[test]
fn unsafe_twins_are_refused_with_ipv6_counterexamples() {
    // The firewall without its destination filter drops SrcIP's packets to anyone.
    let by_source_only = firewall6().replace("GROUP_BY_DESTINATION(AllPackets, THIS_IP)", "AllPackets");
    let f = refused("by_source_only.vinet", &by_source_only, ClientKind::EndUser, "DISCARD");
    assert!(f.message.contains("a packet 2001:db8:bad::9 -> 2001:db8:9::9, and 2001:db8:9::9 is not THIS_IP (2001:db8::7)"), "{f:?}");
    assert!(f.notes.iter().any(|n| n == "with SrcIP = 2001:db8:bad::9"), "{f:?}");
    // Dual stack, each family's source: the packet is of that family, as on a wire.
    let only = dual_stack().replace("GROUP_BY_DESTINATION(AllPackets, THIS_IP)", "AllPackets");
    let prover = Prover::new().unwrap();
    let failures = prover.prove(&compile("dual.vinet", &only).module, &policy(ClientKind::EndUser)).unwrap_err();
    let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
    eprintln!("{messages:#?}");
    let discards: Vec<&&str> = messages.iter().filter(|m| m.starts_with("DISCARD")).collect();
    assert_eq!(
        discards,
        [
            &"DISCARD here could drop a packet 203.0.113.9 -> 10.9.9.9, and 10.9.9.9 is not THIS_IP (10.0.0.7)",
            &"DISCARD here could drop a packet 2001:db8:bad::9 -> 2001:db8:9::9, and 2001:db8:9::9 is not THIS_IP (2001:db8::7)"
        ]
    );
    // The multicast aggregator over the whole window: outside THIS_SUBNET_IP, an IPv6 /64.
    let all = multicast6().replace("GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP)", "AllPackets");
    let f = refused("multicast_all.vinet", &all, ClientKind::EdgeRouter, "DISCARD");
    assert!(f.message.contains("a packet 2001:db8:b::7 -> 2001:db8:9::9"), "{f:?}");
    assert!(f.message.contains("inside THIS_SUBNET_IP (2001:db8::/64)"), "{f:?}");
    // The worm blocker over another subnet's prefix: its groups are not the client's.
    let other = worm_blocker6().replace("THIS_SUBNET_IP", "2001:db8:ffff::/48");
    let f = refused("worm_other.vinet", &other, ClientKind::EdgeRouter, "Source(i), Sent(i)");
    assert!(f.message.contains("2001:db8:ffff:"), "{f:?}");
}

/// The full mask is 128 bits: `THIS_IP & ffff:...:ffff` is THIS_IP (the axiom
/// mask_full), `THIS_IP & 255.255.255.255` only when THIS_IP is IPv4, which the
/// proof may not assume.
#[test]
fn only_the_128_bit_mask_is_the_identity() {
    let prover = Prover::new().unwrap();
    let cache = router_cache(&prover);
    let masked = |mask: &str| {
        format!("LIFETIME = 1 days\nPARAM SrcIP = 2001:db8:bad::9;\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP & {mask});\nDISCARD(GROUP_BY_SOURCE(Mine, SrcIP));\n")
    };
    prove_and_check(&prover, &cache, "full_mask", &masked("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ClientKind::EndUser);
    let f = refused("v4_mask", &masked("255.255.255.255"), ClientKind::EndUser, "DISCARD");
    assert!(f.message.contains("is not THIS_IP ("), "{f:?}");
    let this_ip = f.message.rsplit_once("THIS_IP (").map(|(_, ip)| ip.trim_end_matches(')')).unwrap_or_default();
    assert!(this_ip.contains(':'), "THIS_IP must be IPv6 to break the program: {f:?}");
}

#[test]
fn z3_decides_one_address_space() {
    let app = |s: Sym, a: Vec<Term>| Term::app(s, a).unwrap();
    let lit = Term::lit;
    let prefs = Preferences::default();
    let valid = |t: Term| matches!(decide(&[], &t, &prefs), Decision::Valid);
    let v4 = |a: u32| lit(Lit::Addr(a));
    let v6 = |a: u128| lit(Lit::Addr6(a));
    // An IPv4 literal is its IPv4-mapped address; ::/0 holds it, 0.0.0.0/0 holds no IPv6 address.
    assert!(valid(app(Sym::Eq, vec![v4(0x0a00_0007), v6(mapped(0x0a00_0007))])));
    assert!(valid(app(Sym::In, vec![v4(0x0a00_0007), lit(Lit::Prefix6(0, 0))])));
    assert!(valid(app(Sym::Not, vec![app(Sym::In, vec![v6(DOC | 7), lit(Lit::Prefix(0, 0))])])));
    assert!(valid(app(Sym::In, vec![v6(DOC | 7), lit(Lit::Prefix6(DOC, 32))])));
    assert!(valid(app(Sym::PSub, vec![lit(Lit::Prefix(0x0a01_0000, 16)), lit(Lit::Prefix6(mapped(0), 96))])));
    // THIS_IP may be of either family: in 0.0.0.0/0 it is not always.
    let this_ip = app(Sym::ThisIp, vec![]);
    match decide(&[], &app(Sym::In, vec![this_ip.clone(), lit(Lit::Prefix(0, 0))]), &prefs) {
        Decision::Fails(cx) => assert!(cx.this_ip.is_some_and(|a| a >> 32 != 0xffff), "{cx:?}"),
        other => panic!("{other:?}"),
    }
    // Masks are 128 bits: the full mask keeps any address, an IPv4 one only IPv4 ones.
    let mask = |m: Term| app(Sym::Eq, vec![app(Sym::Mask, vec![this_ip.clone(), m]), this_ip.clone()]);
    assert!(valid(mask(v6(u128::MAX))));
    assert!(!valid(mask(v4(u32::MAX))));
    // THIS_SUBNET_IP is any prefix of the 128-bit space; the counterexample shows one.
    let net = app(Sym::ThisNet, vec![]);
    match decide(&[], &app(Sym::In, vec![v6(DOC | 9), net]), &prefs) {
        Decision::Fails(cx) => assert!(cx.this_net.is_some_and(|(_, l)| l <= 128), "{cx:?}"),
        other => panic!("{other:?}"),
    }
}
