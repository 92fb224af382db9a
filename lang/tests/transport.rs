//! The transport-level routines (GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT,
//! GROUP_BY_DESTINATION_PORT, TCP_FLAGS, DISTINCT_DESTINATION_PORTS) and the
//! named numbers, through the front end: what they lower to, what they
//! refuse and how. Whether a program is safe is the prover's business: the
//! front end accepts the unconfined ones too.

use vinet_checker::bytecode::{Const, Field, Insn, Ty};
use vinet_lang::{compile, Compiled};

fn ok(src: &str) -> Compiled {
    match compile("t.vinet", format!("LIFETIME = 1 days\n{src}").as_bytes(), &[]) {
        Ok(c) => c,
        Err(d) => panic!("{}", d.render()),
    }
}

fn errors(src: &str) -> String {
    match compile("t.vinet", format!("LIFETIME = 1 days\n{src}").as_bytes(), &[]) {
        Ok(_) => panic!("accepted: {src}"),
        Err(d) => d.render(),
    }
}

/// The number a register holds, if a `Const` instruction loads it.
fn konst(c: &Compiled, r: u16) -> Option<u64> {
    c.module.code.iter().find_map(|i| match i {
        Insn::Const { dst, k } if *dst == r => match c.module.consts[*k as usize] {
            Const::Num(n) => Some(n),
            _ => None,
        },
        _ => None,
    })
}

/// The Narrow instructions: field and the constants of its two operands.
fn narrows(c: &Compiled) -> Vec<(Field, Option<u64>, Option<u64>, bool)> {
    c.module
        .code
        .iter()
        .filter_map(|i| match *i {
            Insn::Narrow { field, a, b, .. } => Some((field, konst(c, a), konst(c, b), a == b)),
            _ => None,
        })
        .collect()
}

#[test]
fn keyed_forms_lower_to_narrow() {
    let c = ok("M = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
                A = GROUP_BY_PROTOCOL(M, TCP);\nB = GROUP_BY_PROTOCOL(M, 6, 17);\n\
                C = GROUP_BY_SOURCE_PORT(M, 53);\nD = GROUP_BY_SOURCE_PORT(M, 1024, 65535);\n\
                E = GROUP_BY_DESTINATION_PORT(M, 25);\nF = GROUP_BY_DESTINATION_PORT(M, 0, 1023);\nDISCARD(F);");
    assert_eq!(
        narrows(&c),
        vec![
            // One value is one register read twice: a = b.
            (Field::Proto, Some(6), Some(6), true),
            (Field::Proto, Some(6), Some(17), false),
            (Field::SrcPort, Some(53), Some(53), true),
            (Field::SrcPort, Some(1024), Some(65535), false),
            (Field::DstPort, Some(25), Some(25), true),
            (Field::DstPort, Some(0), Some(1023), false),
        ]
    );
    // Each narrows M, the set register of the variable M, into its own variable.
    let m = c.program.vars.iter().position(|v| v.name == "M").unwrap() as u16;
    for (i, name) in ["A", "B", "C", "D", "E", "F"].iter().enumerate() {
        let v = c.program.vars.iter().position(|x| x.name == *name).unwrap() as u16;
        let Insn::Narrow { dst, set, .. } = c.module.code.iter().filter(|i| matches!(i, Insn::Narrow { .. })).nth(i).unwrap() else {
            unreachable!()
        };
        assert_eq!((*dst, *set), (v, m), "{name}");
        assert_eq!(c.module.regs[v as usize], Ty::Set);
    }
}

#[test]
fn tcp_flags_lower_to_narrow_on_and_off() {
    let c = ok("M = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nS = TCP_FLAGS(M, SYN, ACK);\nA = TCP_FLAGS(M, 18, 0);\nDISCARD(S);");
    assert_eq!(narrows(&c), vec![(Field::TcpFlags, Some(2), Some(16), false), (Field::TcpFlags, Some(18), Some(0), false)]);
    // Flags add up at run time: SYN + ACK is an addition of two constants.
    let c = ok("S = TCP_FLAGS(AllPackets, SYN + ACK, FIN + RST);\nDISCARD(S);");
    let Some(Insn::Narrow { a, b, field: Field::TcpFlags, .. }) = c.module.code.iter().find(|i| matches!(i, Insn::Narrow { .. })) else {
        panic!()
    };
    let adds: Vec<_> = c.module.code.iter().filter_map(|i| if let Insn::Arith { dst, .. } = i { Some(*dst) } else { None }).collect();
    assert_eq!(adds, vec![*a, *b]);
}

#[test]
fn named_numbers_are_constants() {
    for (name, value) in [
        ("ICMP", 1),
        ("TCP", 6),
        ("UDP", 17),
        ("FIN", 1),
        ("SYN", 2),
        ("RST", 4),
        ("PSH", 8),
        ("ACK", 16),
        ("URG", 32),
        ("ECE", 64),
        ("CWR", 128),
    ] {
        for spelling in [name.to_string(), name.to_ascii_lowercase()] {
            let c = ok(&format!("n = {spelling};"));
            assert_eq!(c.module.code, vec![Insn::Const { dst: 0, k: 0 }], "{spelling}");
            assert_eq!(c.module.consts, vec![Const::Num(value)], "{spelling}");
            assert_eq!(c.module.regs[0], Ty::Num);
        }
    }
    // They fold: a loop bounded by one.
    let c = ok("n = 0;\nwhile n < TCP + UDP do n = n + 1;");
    assert!(c.module.code.iter().any(|i| matches!(i, Insn::While { bound: 23, .. })));
    // Reserved, like the other built-ins.
    for bad in ["TCP = 5;", "syn = 1;", "PARAM Ack = 3;", "Ecn(i), Cwr(i) = GROUP_BY_PROTOCOL(AllPackets);"] {
        let e = errors(bad);
        assert!(e.contains("is the built-in"), "{bad}: {e}");
    }
    // A typo is caught against them.
    let e = errors("S = GROUP_BY_PROTOCOL(AllPackets, TCPP);");
    assert!(e.contains("did you mean `TCP`?"), "{e}");
}

#[test]
fn groupings_by_number_have_number_keys() {
    let c = ok("M = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
                Port(i), P(i) = GROUP_BY_DESTINATION_PORT(M);\n\
                foreach i do if Port(i) == 25 or Port(i) + 1 > 1024 then DISCARD(P(i));\n\
                Proto(j), Q(j) = GROUP_BY_PROTOCOL(M);\nforeach j do if Proto(j) != TCP then DISCARD(Q(j));\n\
                Src(k), R(k) = GROUP_BY_SOURCE_PORT(M);\nforeach k do if Src(k) < 1024 and COUNT(R(k)) > 3 then DISCARD(R(k));");
    let groups: Vec<_> =
        c.module.code.iter().filter_map(|i| if let Insn::GroupField { field, .. } = i { Some(*field) } else { None }).collect();
    assert_eq!(groups, vec![Field::DstPort, Field::Proto, Field::SrcPort]);
    let reg = |name: &str| c.module.regs[c.program.vars.iter().position(|v| v.name == name).unwrap()];
    for (index, key, set) in [("i", "Port", "P"), ("j", "Proto", "Q"), ("k", "Src", "R")] {
        assert_eq!((reg(index), reg(key), reg(set)), (Ty::NumGroups, Ty::Num, Ty::Set), "{index}");
    }
    let foreach: Vec<_> = c
        .module
        .code
        .iter()
        .filter_map(|i| {
            if let Insn::Foreach { groups, key, .. } = i {
                Some((c.module.regs[*groups as usize], c.module.regs[*key as usize]))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(foreach, vec![(Ty::NumGroups, Ty::Num); 3]);
}

#[test]
fn number_families_in_either_order() {
    // The set first, told apart by use: the key is compared with a number,
    // or a named number, or takes part in arithmetic.
    for use_ in ["Port(i) == 25", "TCP == Port(i)", "Port(i) > 1023", "Port(i) * 2 == 50", "Port(i) != SYN"] {
        let c = ok(&format!("Pk(i), Port(i) = GROUP_BY_DESTINATION_PORT(AllPackets);\nforeach i do if {use_} then DISCARD(Pk(i));"));
        let key = c.program.vars.iter().position(|v| v.name == "Port").unwrap();
        assert_eq!(c.module.regs[key], Ty::Num, "{use_}");
    }
    // The key used as an address is a type error, with the key first by default.
    let e = errors("K(i), P(i) = GROUP_BY_PROTOCOL(AllPackets);\nforeach i do if K(i) in 10.0.0.0/8 then DISCARD(P(i));");
    assert!(e.contains("expected an IP address, found a number"), "{e}");
    let e = errors("K(i), P(i) = GROUP_BY_PROTOCOL(AllPackets);\nforeach i do if K(i) == THIS_IP then DISCARD(P(i));");
    assert!(e.contains("cannot compare a number with an IP address"), "{e}");
}

#[test]
fn distinct_destination_ports_is_a_number() {
    let c = ok("M = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nn = DISTINCT_DESTINATION_PORTS(M);\nif n > 100 then DISCARD(M);");
    let Some(Insn::DistinctPorts { dst, set }) = c.module.code.iter().find(|i| matches!(i, Insn::DistinctPorts { .. })) else {
        panic!("{:?}", c.module.code)
    };
    assert_eq!((c.module.regs[*dst as usize], c.module.regs[*set as usize]), (Ty::Num, Ty::Set));
    let e = errors("n = DISTINCT_DESTINATION_PORTS(AllPackets, 80);");
    assert!(e.contains("DISTINCT_DESTINATION_PORTS takes 1 argument (a packet set), but 2 were given"), "{e}");
    let e = errors("n = DISTINCT_DESTINATION_PORTS(THIS_IP);");
    assert!(e.contains("expected a packet set, found an IP address") && e.contains("DISTINCT_DESTINATION_PORTS takes a packet set"), "{e}");
    let e = errors("DISTINCT_DESTINATION_PORTS(AllPackets);");
    assert!(e.contains("the result of DISTINCT_DESTINATION_PORTS is not used"), "{e}");
}

#[test]
fn unconfined_programs_are_well_typed() {
    // Confinement is for the prover: these build, and fail later, in the proof.
    let c = ok("K(i), P(i) = GROUP_BY_DESTINATION_PORT(AllPackets);\nforeach i do if K(i) == 25 then DISCARD(P(i));\n\
                n = DISTINCT_DESTINATION_PORTS(AllPackets);\nDISCARD(GROUP_BY_PROTOCOL(AllPackets, UDP));\n\
                DISCARD(TCP_FLAGS(AllPackets, SYN, ACK));");
    assert!(c.module.code.iter().any(|i| matches!(i, Insn::GroupField { field: Field::DstPort, .. })));
    assert!(c.warnings.is_empty());
    // Routine names ignore case.
    ok("s = group_by_destination_port(AllPackets, 80); t = Tcp_Flags(s, syn, 0); n = distinct_destination_ports(t);");
}

#[test]
fn wrong_arity_and_types_are_located() {
    let e = errors("M = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nX = GROUP_BY_DESTINATION_PORT(M, 10.0.0.1);");
    assert!(e.contains("error: expected a number, found an IP address\n  ┌─ t.vinet:3:34"), "{e}");
    assert!(e.contains("note: GROUP_BY_DESTINATION_PORT selects packets by port, which is a number"), "{e}");
    assert!(e.contains("help: a port is a number from 0 to 65535"), "{e}");
    let e = errors("X = GROUP_BY_PROTOCOL(AllPackets, \"tcp\");");
    assert!(e.contains("expected a number, found a string") && e.contains("TCP (6), UDP (17), ICMP (1)"), "{e}");
    let e = errors("X = GROUP_BY_SOURCE_PORT(AllPackets, 1, THIS_SUBNET_IP);");
    assert!(e.contains("found a prefix") && e.contains("the high end of GROUP_BY_SOURCE_PORT's range is a number"), "{e}");
    let e = errors("X = GROUP_BY_SOURCE_PORT(THIS_IP, 1);");
    assert!(e.contains("note: GROUP_BY_SOURCE_PORT takes a packet set"), "{e}");
    for (src, want) in [
        ("X = GROUP_BY_SOURCE_PORT(AllPackets, 1, 2, 3);", "GROUP_BY_SOURCE_PORT takes 2 or 3 arguments"),
        ("X = GROUP_BY_PROTOCOL();", "GROUP_BY_PROTOCOL takes 2 or 3 arguments"),
        (
            "X = TCP_FLAGS(AllPackets, SYN);",
            "TCP_FLAGS takes 3 arguments (a packet set, the flags that must be set and the flags that must be clear), but 2 were given",
        ),
        ("X = TCP_FLAGS(AllPackets, SYN, 0, 0);", "but 4 were given"),
        ("X = TCP_FLAGS(AllPackets, \"SYN\", 0);", "TCP_FLAGS takes the flags that must be set as a number"),
        ("X = TCP_FLAGS(AllPackets, 0, THIS_IP);", "TCP_FLAGS takes the flags that must be clear as a number"),
        ("X = GROUP_BY_DESTINATION_PORT(AllPackets);", "GROUP_BY_DESTINATION_PORT with one argument makes a grouping, which has two parts"),
        (
            "X = COUNT(GROUP_BY_PROTOCOL(AllPackets));",
            "GROUP_BY_PROTOCOL with one argument makes a grouping; it cannot be used inside an expression",
        ),
        ("K(i), P(i) = GROUP_BY_PROTOCOL(AllPackets, TCP);", "2 values assigned, but the right side gives one"),
        ("K(i), P(i) = GROUP_BY_SOURCE_PORT(THIS_IP);", "GROUP_BY_SOURCE_PORT groups a packet set"),
        ("X = GROUP_BY_SOURCE_PORTS(AllPackets, 1);", "did you mean `GROUP_BY_SOURCE_PORT`?"),
    ] {
        let e = errors(src);
        assert!(e.contains(want), "{src}: {e}");
        assert!(e.contains("t.vinet:2:"), "{src}: not located: {e}");
    }
    // Keyed help names a value of the field.
    let e = errors("X = GROUP_BY_PROTOCOL(AllPackets);");
    assert!(e.contains("`GROUP_BY_PROTOCOL(Packets, TCP)`"), "{e}");
}

#[test]
fn empty_selections_are_warnings_not_errors() {
    for (src, want) in [
        ("X = GROUP_BY_DESTINATION_PORT(AllPackets, 70000);", "70000 is above 65535"),
        ("X = GROUP_BY_PROTOCOL(AllPackets, 256);", "256 is above 255"),
        ("X = GROUP_BY_SOURCE_PORT(AllPackets, 65536, 70000);", "65536 is above 65535"),
        ("X = GROUP_BY_SOURCE_PORT(AllPackets, 1024, 80);", "the range 1024 to 80 is empty"),
        ("X = TCP_FLAGS(AllPackets, SYN + ACK, ACK);", "ACK must be set and clear"),
        ("X = TCP_FLAGS(AllPackets, 256, 0);", "no packet has the flags 256"),
    ] {
        let c = ok(src);
        let w = c.warnings.render();
        assert!(w.contains(want) && w.contains("warning"), "{src}: {w}");
        assert_eq!(c.warnings.len(), 1, "{src}: {w}");
    }
    // A range that only reaches past the largest value, and values not known when
    // the program is built, are fine.
    for src in [
        "X = GROUP_BY_SOURCE_PORT(AllPackets, 1024, 100000);",
        "PARAM P = 70000;\nX = GROUP_BY_SOURCE_PORT(AllPackets, P);",
        "X = TCP_FLAGS(AllPackets, SYN, 256);",
    ] {
        assert!(ok(src).warnings.is_empty(), "{src}");
    }
}

#[test]
fn a_groups_key_is_not_a_loop_bound() {
    let e = errors("K(i), P(i) = GROUP_BY_DESTINATION_PORT(AllPackets);\nforeach i do begin n = 0; while n < K(i) do n = n + 1 end");
    assert!(e.contains("the loop's limit is a group's key, which is known only when the program runs"), "{e}");
    // Another conjunct can bound the loop.
    let c = ok("K(i), P(i) = GROUP_BY_DESTINATION_PORT(AllPackets);\n\
                foreach i do begin n = 0; while n < K(i) and n < 5 do n = n + 1 end");
    assert!(c.module.code.iter().any(|i| matches!(i, Insn::While { bound: 5, .. })));
    // The key cannot be assigned, nor leave its loop.
    let e = errors("K(i), P(i) = GROUP_BY_PROTOCOL(AllPackets);\nforeach i do K = 3;");
    assert!(e.contains("is a family of a grouping"), "{e}");
    let e = errors("x = 0;\nK(i), P(i) = GROUP_BY_PROTOCOL(AllPackets);\nforeach i do x = K(i);");
    assert!(e.contains("its body cannot change it"), "{e}");
}

#[test]
fn nested_groupings_mix_addresses_and_numbers() {
    let c = ok("Mine = GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP);\nSrc(i), From(i) = GROUP_BY_SOURCE(Mine);\n\
                foreach i do begin\n  Port(j), ToPort(j) = GROUP_BY_DESTINATION_PORT(From(i));\n\
                  foreach j do if Src(i) in 10.0.0.0/8 and Port(j) == 445 and COUNT(TCP_FLAGS(ToPort(j), SYN, ACK)) > 8 then DISCARD(ToPort(j))\nend");
    let kinds: Vec<Ty> = c
        .module
        .code
        .iter()
        .filter_map(|i| if let Insn::Foreach { key, .. } = i { Some(c.module.regs[*key as usize]) } else { None })
        .collect();
    assert_eq!(kinds, vec![Ty::Addr, Ty::Num]);
}

/// The whole programs that docs/LANGUAGE.md shows (code blocks starting with
/// LIFETIME) build without warnings, and its grouping snippets build after
/// the port firewall's header.
#[test]
fn the_language_reference_programs_build() {
    let doc = std::fs::read_to_string(format!("{}/../docs/LANGUAGE.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let blocks: Vec<&str> = doc.split("```").skip(1).step_by(2).map(|b| b.strip_prefix('\n').unwrap_or(b)).collect();
    let programs: Vec<&&str> = blocks.iter().filter(|b| b.starts_with("LIFETIME")).collect();
    assert!(programs.len() >= 2);
    for p in &programs {
        let c = compile("doc.vinet", p.as_bytes(), &[]).unwrap_or_else(|d| panic!("{p}\n{}", d.render()));
        assert!(c.warnings.is_empty(), "{p}");
    }
    let header = programs.iter().find(|p| p.contains("Smtp")).expect("the port firewall");
    let header: String = header.lines().take(3).map(|l| format!("{l}\n")).collect();
    let snippets: Vec<&&str> = blocks.iter().filter(|b| b.contains("GROUP_BY_DESTINATION_PORT(MyPackets)")).collect();
    assert!(snippets.len() >= 2);
    for snippet in snippets {
        let src = format!("{header}{snippet}");
        compile("doc.vinet", src.as_bytes(), &[]).unwrap_or_else(|d| panic!("{src}\n{}", d.render()));
    }
}
