//! The transport-level routines (issue 16) through the proof path: programs that
//! use them on the client's own set prove, and their certificates pass the
//! checker under the shipped policies; their unsafe twins are refused, at the
//! routine, naming it. The second verifier (the analyzer) agrees on every one.

mod support;

use support::{compile, policy, router_cache};
use vinet_checker::cert::{encode_file, Bundle, Declared, LemmaCache, BUNDLE_MAGIC};
use vinet_checker::policy::{ClientKind, Policy};
use vinet_lang::Severity;
use vinet_prover::Prover;

/// The client's own set, as each kind of client writes it.
fn mine(client: ClientKind) -> &'static str {
    match client {
        ClientKind::EndUser => "GROUP_BY_DESTINATION(AllPackets, THIS_IP)",
        ClientKind::EdgeRouter => "GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP)",
        ClientKind::OnOwner => "OnPackets",
    }
}

/// A port firewall: drop TCP to port `Port` (a parameter) of the client.
fn port_firewall(set: &str) -> String {
    format!(
        "LIFETIME = 2 days\nPARAM Port = 25;\nMyPackets = {set};\n\
         Bad = GROUP_BY_DESTINATION_PORT(GROUP_BY_PROTOCOL(MyPackets, TCP), Port);\nDISCARD(Bad);\n"
    )
}

/// Anti-amplification: UDP to the client from source port 53 whose destination port is
/// outside the range the client's resolver asks from (`Lo` to `Hi`) was never asked for.
fn anti_amplification(set: &str) -> String {
    format!(
        "LIFETIME = 7 days\nPARAM Lo = 1024;\nPARAM Hi = 65535;\n\
         Dns = GROUP_BY_SOURCE_PORT(GROUP_BY_PROTOCOL({set}, UDP), 53);\n\
         if Lo > 0 then\n  DISCARD(GROUP_BY_DESTINATION_PORT(Dns, 0, Lo - 1));\n\
         DISCARD(GROUP_BY_DESTINATION_PORT(Dns, Hi + 1, 65535));\n"
    )
}

/// The SYN-counting worm blocker: connection attempts (SYN, no ACK) per destination
/// port; a port that gets more than `T` of them in a window has its attempts dropped.
fn syn_worm_blocker(set: &str) -> String {
    format!(
        "LIFETIME = 1 days\nCLASS = filtering\nPARAM T = 20;\n\
         Syns = TCP_FLAGS(GROUP_BY_PROTOCOL({set}, TCP), SYN, ACK);\n\
         Port(i), Attempts(i) = GROUP_BY_DESTINATION_PORT(Syns);\n\
         foreach i do\n  if COUNT(Attempts(i)) > T then\n    DISCARD(Attempts(i));\n"
    )
}

/// A scan detector: more than `M` distinct destination ports of the client within a window.
fn port_scan_monitor(set: &str) -> String {
    format!("LIFETIME = 1 days\nPARAM M = 16;\nScan = DISTINCT_DESTINATION_PORTS({set}) > M;\n")
}

/// Ports grouped inside the client's own destination group: a foreach over field
/// groups within one over destination groups (edge routers' subnet hosts).
fn per_host_ports(_set: &str) -> String {
    "LIFETIME = 1 days\nCLASS = filtering\nPARAM N = 100;\n\
     Host(i), ToHost(i) = GROUP_BY_DESTINATION(AllPackets);\n\
     foreach i do\n  if Host(i) in THIS_SUBNET_IP then begin\n\
     \x20   Port(j), ToPort(j) = GROUP_BY_DESTINATION_PORT(ToHost(i));\n\
     \x20   foreach j do\n      if COUNT(ToPort(j)) > N then\n        DISCARD(ToPort(j));\n  end\n"
        .to_string()
}

type Program = fn(&str) -> String;

const SAFE: [(&str, Program); 5] = [
    ("port_firewall", port_firewall),
    ("anti_amplification", anti_amplification),
    ("syn_worm_blocker", syn_worm_blocker),
    ("port_scan_monitor", port_scan_monitor),
    ("per_host_ports", per_host_ports),
];

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
    proved
}

#[test]
fn transport_programs_on_the_clients_set_prove_and_check() {
    let prover = Prover::new().unwrap();
    let cache = router_cache(&prover);
    for client in [ClientKind::EndUser, ClientKind::EdgeRouter] {
        for (name, program) in SAFE {
            if name == "per_host_ports" && client == ClientKind::EndUser {
                continue; // THIS_SUBNET_IP is the edge router's
            }
            let proved = prove_and_check(&prover, &cache, name, &program(mine(client)), client);
            let certificate = postcard::to_allocvec(&proved.bundle.certificate).unwrap().len();
            eprintln!(
                "{name} ({client:?}): {:?}; bundle {} bytes, module {} bytes, certificate {certificate} bytes",
                proved.stats,
                proved.bytes.len(),
                proved.bundle.module.len()
            );
            assert!(certificate <= proved.bundle.module.len(), "{name}: a certificate of {certificate} bytes, larger than its bytecode");
            // The other kind of client's policy refuses it.
            let other = policy(if client == ClientKind::EndUser { ClientKind::EdgeRouter } else { ClientKind::EndUser });
            assert!(vinet_checker::check(&proved.bytes, &other, &cache).is_err(), "{name} under the other policy");
        }
    }
}

/// The port firewall's certificate is as compact as the address firewall's: the
/// narrowings' confinement is one cited lemma a narrowing.
#[test]
fn a_port_firewall_certificate_is_as_compact_as_the_address_firewalls() {
    let prover = Prover::new().unwrap();
    let cache = router_cache(&prover);
    let address = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/firewall.vinet")).unwrap();
    let by_port = "LIFETIME = 2 days\nPARAM Port = 25;\nMyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
                   BadPackets = GROUP_BY_DESTINATION_PORT(MyPackets, Port);\nDISCARD(BadPackets);\n";
    let mut sizes = vec![];
    for (name, src) in [
        ("address firewall", address.as_str()),
        ("port firewall", by_port),
        ("TCP port firewall", &port_firewall(mine(ClientKind::EndUser))),
    ] {
        let proved = prove_and_check(&prover, &cache, name, src, ClientKind::EndUser);
        let certificate = postcard::to_allocvec(&proved.bundle.certificate).unwrap().len();
        eprintln!(
            "{name}: bundle {} bytes, module {} bytes, certificate {certificate} bytes, {} steps, {} terms, {} lemmas",
            proved.bytes.len(),
            proved.bundle.module.len(),
            proved.stats.steps,
            proved.stats.terms,
            proved.stats.lemmas
        );
        sizes.push((certificate, proved.stats.steps));
        // What citing the library saves: the same proof with the lemmas' proofs inlined.
        let lib: std::collections::HashMap<_, _> = prover.lemmas().library.lemmas.iter().map(|l| (l.hash(), l)).collect();
        let c = compile(name, src);
        let vc = vinet_checker::vcgen::generate(&c.module, &policy(ClientKind::EndUser)).unwrap();
        let goals = vc.all(proved.bundle.declared).unwrap().len() as u32;
        let inlined = vinet_prover::builder::inline_lemmas(&proved.bundle.certificate.proof, goals, &lib).unwrap();
        let inlined_bytes = postcard::to_allocvec(&inlined).unwrap().len();
        eprintln!("{name}: inlined, {} steps, {inlined_bytes} bytes", inlined.steps.len());
        assert!(inlined.steps.len() >= 3 * proved.stats.steps, "{name}: the library holds most of the proof");
    }
    // The same number of steps: a narrowing's confinement is one cited lemma and one
    // modus ponens, as GROUP_BY_SOURCE's; the port firewall names the confinement of the
    // set it narrows in its pool (the address firewall has it as an obligation already).
    assert!(sizes[1].1 == sizes[0].1 && sizes[1].0 <= sizes[0].0 + 16, "{sizes:?}");
    // Each further narrowing: two steps and a pool term.
    assert!(sizes[2].1 == sizes[1].1 + 2 && sizes[2].0 <= sizes[1].0 + 16, "{sizes:?}");
}

/// A refusal: where it points (the source of the instruction), its headline, and the whole
/// diagnostic rendered (location, headline, notes).
fn refusal(name: &str, src: &str, client: ClientKind) -> (String, String, String) {
    let prover = Prover::new().unwrap();
    let c = compile(name, src);
    let p = policy(client);
    let failures = prover.prove(&c.module, &p).expect_err(name);
    assert!(vinet_analyzer::analyze(&c.module, &p).is_err(), "the analyzer accepts {name}");
    let f = &failures[0];
    let span = c.spans[f.at].clone();
    let d = f.notes.iter().fold(c.diagnostic_at(f.at, Severity::Error, &f.message, "here"), |d, n| d.note(n));
    let rendered = c.render(vec![d]).render();
    eprintln!("{rendered}");
    (c.source[span].to_string(), f.message.clone(), rendered)
}

#[test]
fn unsafe_twins_are_refused_at_the_routine_naming_it() {
    let all = "AllPackets";
    for client in [ClientKind::EndUser, ClientKind::EdgeRouter] {
        let me = if client == ClientKind::EndUser { "THIS_IP" } else { "THIS_SUBNET_IP" };
        // DISCARD of a port narrowing of the window.
        let (at, message, rendered) = refusal("port_firewall.vinet", &port_firewall(all), client);
        assert_eq!(at, "DISCARD(Bad)");
        assert!(message.starts_with("DISCARD here could drop a packet"), "{message}");
        assert!(
            message.contains(&format!("is not {me}")) || message.contains(&format!("not inside {me}")) || message.contains(me),
            "{message}"
        );
        assert!(rendered.contains("port_firewall.vinet:5:1"), "{rendered}");
        // Anti-amplification over the window: the first DISCARD (line 6).
        let (at, message, rendered) = refusal("anti_amplification.vinet", &anti_amplification(all), client);
        assert_eq!(at, "DISCARD(GROUP_BY_DESTINATION_PORT(Dns, 0, Lo - 1))");
        assert!(message.starts_with("DISCARD here could drop a packet"), "{message}");
        assert!(rendered.contains("anti_amplification.vinet:6:3"), "{rendered}");
        // Grouping the window's connection attempts by port observes other clients' traffic.
        let (at, message, rendered) = refusal("syn_worm_blocker.vinet", &syn_worm_blocker(all), client);
        assert!(at.contains("GROUP_BY_DESTINATION_PORT(Syns)"), "{at}");
        assert!(message.starts_with("this could group a packet"), "{message}");
        assert!(rendered.contains("syn_worm_blocker.vinet:5:"), "{rendered}");
        assert!(rendered.contains("note: GROUP_BY_DESTINATION_PORT as a grouping"), "{rendered}");
        let (at, message, rendered) = refusal("scan.vinet", &port_scan_monitor(all), client);
        assert_eq!(at, "DISTINCT_DESTINATION_PORTS(AllPackets)");
        assert!(message.starts_with("this could count a packet"), "{message}");
        assert!(
            rendered.contains(&format!("note: DISTINCT_DESTINATION_PORTS observes all of its set, so the set must be confined to {me}")),
            "{rendered}"
        );
    }
    // A narrowing of the client's set is the client's only if the set is: a source
    // narrowing of the window (GROUP_BY_SOURCE needs a confined set anyway) or a
    // protocol narrowing of another client's group are not.
    let other_group = "LIFETIME = 1 days\nCLASS = filtering\nHost(i), ToHost(i) = GROUP_BY_DESTINATION(AllPackets);\n\
                       foreach i do\n  if Host(i) != THIS_IP then\n    DISCARD(GROUP_BY_PROTOCOL(ToHost(i), UDP));\n";
    let (at, message, _) = refusal("other_group.vinet", other_group, ClientKind::EndUser);
    assert_eq!(at, "DISCARD(GROUP_BY_PROTOCOL(ToHost(i), UDP))");
    assert!(message.starts_with("DISCARD here could drop a packet"), "{message}");
    // ... and in the client's own group it is the client's (by the path, as the group is).
    let prover = Prover::new().unwrap();
    prove_and_check(&prover, &router_cache(&prover), "own_group", &other_group.replace("!=", "=="), ClientKind::EndUser);
    // Unguarded port groups inside the loop over every destination.
    let unguarded = per_host_ports("").replace("if Host(i) in THIS_SUBNET_IP then ", "");
    let (at, message, rendered) = refusal("per_host.vinet", &unguarded, ClientKind::EdgeRouter);
    assert!(at.contains("GROUP_BY_DESTINATION_PORT(ToHost(i))"), "{at}");
    assert!(message.starts_with("this could group a packet"), "{message}");
    assert!(rendered.contains("note: GROUP_BY_DESTINATION_PORT as a grouping"), "{rendered}");
}

/// A certificate for a safe program does not make its unsafe twin acceptable: the
/// checker derives the twin's own predicate and the proof does not prove it.
#[test]
fn a_safe_programs_certificate_does_not_pass_for_its_twin() {
    let prover = Prover::new().unwrap();
    let cache = router_cache(&prover);
    let p = policy(ClientKind::EndUser);
    for (name, program) in SAFE.into_iter().take(4) {
        let safe = compile(name, &program(mine(ClientKind::EndUser)));
        let twin = compile(name, &program("AllPackets"));
        let proved = prover.prove(&safe.module, &p).unwrap();
        // The twin's own figures, so that only the proof can be wrong.
        let vc = vinet_checker::vcgen::generate(&twin.module, &p).unwrap();
        let declared = Declared { complexity: vc.complexity, cost: vc.cost };
        let forged = Bundle { module: twin.module.encode(), declared, ..proved.bundle.clone() };
        let e = vinet_checker::check(&encode_file(&forged, BUNDLE_MAGIC), &p, &cache).unwrap_err();
        eprintln!("{name}: the twin with the safe certificate: {e}");
        assert!(!e.to_string().contains("declared complexity"), "{name}: {e}");
    }
}

/// z3 decides the new symbols: a narrowing of the window is not confined (with a
/// packet to show), a narrowing of a confined set is, and NPort is at most Count.
#[test]
fn z3_encodes_narrowings_as_subsets() {
    use vinet_checker::logic::{Sym, Term};
    use vinet_prover::z3enc::{decide, Decision, Preferences};
    let app = |s: Sym, a: Vec<Term>| Term::app(s, a).unwrap();
    let me = app(Sym::ThisIp, vec![]);
    let all = app(Sym::All, vec![]);
    let narrow = |s: Term| app(Sym::Narrow, vec![s, Term::num(2), Term::num(53), Term::num(53)]);
    let prefs = Preferences::default();
    let window = app(Sym::Conf, vec![narrow(all.clone()), me.clone()]);
    assert!(matches!(decide(&[], &window, &prefs), Decision::Fails(cx) if cx.packet.is_some()));
    let confined = app(Sym::Conf, vec![narrow(narrow(app(Sym::FDst, vec![all.clone(), me.clone()]))), me.clone()]);
    assert!(matches!(decide(&[], &confined, &prefs), Decision::Valid));
    // A field group of a confined set, keyed by a number variable.
    let k = Term::var(7, vinet_checker::logic::Sort::Num);
    let group = app(Sym::Narrow, vec![app(Sym::FDst, vec![all.clone(), me.clone()]), Term::num(2), k.clone(), k]);
    assert!(matches!(decide(&[], &app(Sym::Conf, vec![group, me.clone()]), &prefs), Decision::Valid));
    let s = narrow(all);
    let le = app(Sym::Le, vec![app(Sym::NPort, vec![s.clone()]), app(Sym::Count, vec![s.clone()])]);
    assert!(matches!(decide(&[], &le, &prefs), Decision::Valid));
    let lt = app(Sym::Lt, vec![app(Sym::Count, vec![s.clone()]), app(Sym::NPort, vec![s])]);
    assert!(matches!(decide(&[], &lt, &prefs), Decision::Fails(_)));
}

/// Hand-built modules: what the language does not write (a grouping by TCP flags, bounds
/// past any field, `lo > hi`, a field grouping made in a loop) still proves or is refused
/// as the rules say, by both verifiers.
mod bytecode {
    use super::*;
    use vinet_checker::bytecode::{ArithOp, Class, CmpOp, Const as K, Field, Header, Insn, Module, Rank, Ty, FORMAT_VERSION};

    fn module(regs: Vec<Ty>, code: Vec<Insn>, consts: Vec<K>) -> Module {
        let lines = vec![1; code.len()];
        let header = Header { lifetime_secs: 3600, class: Class::Filtering };
        let m = Module { version: FORMAT_VERSION, header, consts, params: vec![], regs, code, lines };
        m.validate().unwrap();
        m
    }

    /// Registers: 0 the client's set, 1 THIS_IP, 2 AllPackets, 3 and 4 numbers, 5 a set,
    /// 6 a field grouping, 7 its key, 8 its group, 9 a set, 10 a number, 11 a boolean.
    fn regs() -> Vec<Ty> {
        use Ty::*;
        vec![Set, Addr, Set, Num, Num, Set, NumGroups, Num, Set, Set, Num, Bool]
    }

    fn mine(code: Vec<Insn>) -> Vec<Insn> {
        let mut all = vec![Insn::AllPackets { dst: 2 }, Insn::ThisIp { dst: 1 }, Insn::FilterDst { dst: 0, set: 2, by: 1 }];
        all.extend(code);
        all
    }

    fn verdicts(m: &Module) -> (Result<u64, String>, Result<u64, String>) {
        verdicts_under(m, &policy(ClientKind::EndUser))
    }

    fn verdicts_under(m: &Module, p: &Policy) -> (Result<u64, String>, Result<u64, String>) {
        let p = *p;
        let prover = Prover::new().unwrap();
        let cache = router_cache(&prover);
        let proved = prover
            .prove(m, &p)
            .map_err(|f| f[0].message.clone())
            .and_then(|pr| vinet_checker::check(&pr.bytes, &p, &cache).map(|c| c.complexity()).map_err(|e| e.to_string()));
        (proved, vinet_analyzer::analyze(m, &p).map(|v| v.complexity).map_err(|e| e.reason))
    }

    #[test]
    fn empty_and_huge_ranges_prove_like_any_other() {
        use Insn::*;
        for (lo, hi) in [(65_535, 1024), (u64::MAX, 0), (0, u64::MAX), (256, 256), (u64::MAX, u64::MAX)] {
            for field in [Field::Proto, Field::SrcPort, Field::DstPort, Field::TcpFlags] {
                let m = module(
                    regs(),
                    mine(vec![
                        Const { dst: 3, k: 0 },
                        Const { dst: 4, k: 1 },
                        Narrow { dst: 5, set: 0, field, a: 3, b: 4 },
                        Narrow { dst: 9, set: 5, field, a: 4, b: 3 },
                        Discard { set: 9 },
                    ]),
                    vec![K::Num(lo), K::Num(hi)],
                );
                let (proved, analyzed) = verdicts(&m);
                assert!(proved.is_ok(), "{field:?} {lo}..{hi}: {proved:?}");
                assert_eq!(proved, analyzed, "{field:?} {lo}..{hi}");
            }
        }
    }

    /// A grouping by TCP flags (bytecode only): its group is `Narrow(S, 3 + 4, k, k)`, not
    /// the flags narrowing `TCP_FLAGS(S, k, k)` (for k = 0 that is every packet with flags),
    /// so a routine on that narrowing, made in the loop, is charged by the whole set.
    #[test]
    fn a_grouping_by_flags_proves_and_counts_per_group() {
        use Insn::*;
        let m = module(
            regs(),
            mine(vec![
                GroupField { dst: 6, set: 0, field: Field::TcpFlags },
                Foreach { groups: 6, key: 7, set: 8, body_len: 4 },
                Narrow { dst: 9, set: 0, field: Field::TcpFlags, a: 7, b: 7 },
                Count { dst: 10, set: 9 },
                DistinctPorts { dst: 3, set: 8 },
                Discard { set: 9 },
            ]),
            vec![],
        );
        // Narrowing the whole set in every group costs the window per group.
        let p = Policy { complexity_up: u64::MAX / 2, cost_up: u64::MAX / 2, ..policy(ClientKind::EndUser) };
        let (proved, analyzed) = verdicts_under(&m, &p);
        assert!(proved.is_ok(), "{proved:?}");
        assert_eq!(proved, analyzed);
        let vc = vinet_checker::vcgen::generate(&m, &p).unwrap();
        // Outside: 5 instructions, the filter and the grouping (256 each). Per group g: the
        // narrowing of the whole set (256), COUNT and DISCARD of it (256 each: TCP_FLAGS(S,
        // k, k) is not the group of k, whose term is tagged f + 4), DISTINCT_DESTINATION_PORTS
        // of the group (3 g), 4 instructions and the iteration; at most 256 groups, whose
        // sizes sum to at most 256.
        assert_eq!(vc.complexity, 5 + 2 * 256 + 256 * (3 * 256 + 4 + 1) + 3 * 256);
        // Its group itself is charged as the group.
        let mut own = m.clone();
        own.code[6] = Count { dst: 10, set: 8 };
        own.code[8] = Discard { set: 8 };
        let (proved, analyzed) = verdicts_under(&own, &p);
        assert!(proved.is_ok(), "{proved:?}");
        assert_eq!(proved, analyzed);
        assert_eq!(vinet_checker::vcgen::generate(&own, &p).unwrap().complexity, 5 + 2 * 256 + 256 * (256 + 4 + 1) + 5 * 256);
    }

    /// A field grouping written in a loop is a grouping of an unknown set at the loop's head,
    /// and one joined from groupings by two fields is too: its groups are not known to be
    /// the client's, so what needs them confined is refused by both verifiers.
    #[test]
    fn a_field_grouping_of_unknown_origin_is_not_the_clients() {
        use Insn::*;
        let looped = module(
            regs(),
            mine(vec![
                Const { dst: 3, k: 0 },
                Const { dst: 4, k: 1 },
                GroupField { dst: 6, set: 0, field: Field::DstPort },
                While { cond_len: 1, cond: 11, body_len: 2, bound: 2, rank: Rank { terms: vec![(3, -1)], constant: 2 } },
                Cmp { op: CmpOp::Lt, dst: 11, a: 3, b: 4 },
                GroupField { dst: 6, set: 2, field: Field::DstPort },
                Arith { op: ArithOp::Add, dst: 3, a: 3, b: 4 },
                Foreach { groups: 6, key: 7, set: 8, body_len: 1 },
                Count { dst: 10, set: 8 },
            ]),
            vec![K::Num(0), K::Num(1)],
        );
        let (proved, analyzed) = verdicts(&looped);
        assert!(proved.is_err() && analyzed.is_err(), "{proved:?} {analyzed:?}");
        let joined = |second: Field| {
            module(
                regs(),
                mine(vec![
                    Bool { dst: 11, value: true },
                    If { cond: 11, then_len: 1, else_len: 1 },
                    GroupField { dst: 6, set: 0, field: Field::DstPort },
                    GroupField { dst: 6, set: 0, field: second },
                    Foreach { groups: 6, key: 7, set: 8, body_len: 1 },
                    Count { dst: 10, set: 8 },
                ]),
                vec![],
            )
        };
        let (proved, analyzed) = verdicts(&joined(Field::SrcPort));
        assert!(proved.as_ref().is_err_and(|e| e.starts_with("this could count")), "{proved:?}");
        assert!(analyzed.is_err());
        let (proved, analyzed) = verdicts(&joined(Field::DstPort));
        assert!(proved.is_ok(), "{proved:?}");
        assert_eq!(proved, analyzed);
    }
}
