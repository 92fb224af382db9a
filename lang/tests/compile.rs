//! The front end end to end, through the public API.

use vinet_checker::bytecode::{Class, Const, Insn, Module, MAX_NESTING};
use vinet_lang::{compile, Compiled, Severity};

fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))).expect("example exists")
}

fn ok(src: &str) -> Compiled {
    match compile("t.vinet", src.as_bytes(), &[]) {
        Ok(c) => c,
        Err(d) => panic!("{}", d.render()),
    }
}

fn errors(src: &str) -> String {
    match compile("t.vinet", src.as_bytes(), &[]) {
        Ok(_) => panic!("accepted: {src}"),
        Err(d) => d.render(),
    }
}

#[test]
fn every_example_builds_validates_and_round_trips() {
    let dir = format!("{}/../examples", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "vinet") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let c = compile(&name, &std::fs::read(&path).unwrap(), &[]).unwrap_or_else(|d| panic!("{}", d.render()));
        assert!(c.warnings.is_empty(), "{name}: {}", c.warnings.render());
        c.module.validate().unwrap();
        let bytes = c.module.encode();
        assert_eq!(Module::decode(&bytes).unwrap(), c.module);
        assert_eq!(c.spans.len(), c.module.code.len());
        for (i, span) in c.spans.iter().enumerate() {
            let line = c.source[..span.start].matches('\n').count() as u32 + 1;
            assert_eq!(c.module.lines[i], line, "{name}: instruction {i}");
        }
        n += 1;
    }
    assert!(n >= 4);
}

#[test]
fn the_papers_programs_lower_as_expected() {
    let fw = compile("firewall.vinet", &example("firewall.vinet"), &[]).unwrap();
    assert_eq!(fw.module.header.lifetime_secs, 2 * 86_400);
    assert_eq!(fw.module.header.class, Class::Filtering);
    assert_eq!(fw.module.params.len(), 1);
    assert!(matches!(fw.module.code.last(), Some(Insn::Discard { .. })));
    let d = &fw.source[fw.spans[fw.spans.len() - 1].clone()];
    assert_eq!(d, "DISCARD(BadPackets)");

    let spam = compile("spam_filter.vinet", &example("spam_filter.vinet"), &[]).unwrap();
    assert!(spam.module.code.iter().any(|i| matches!(i, Insn::Foreach { .. })));
    assert!(spam.module.code.iter().any(|i| matches!(i, Insn::And { .. })));

    let mc = compile("multicast.vinet", &example("multicast.vinet"), &[]).unwrap();
    assert_eq!(mc.module.header.class, Class::Multicast);
    assert_eq!(mc.module.header.lifetime_secs, 5 * 3600);
}

#[test]
fn params_from_the_command_line() {
    let src = "LIFETIME = 2 days\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nDISCARD(GROUP_BY_SOURCE(Mine, SrcIP));";
    assert!(compile("t", src.as_bytes(), &[]).is_err());
    let c = compile("t", src.as_bytes(), &[("SrcIP".into(), "203.0.113.9".into())]).unwrap();
    assert_eq!(c.module.params[0].default, Const::Addr(0xcb00_7109));
    // Override a PARAM line; a value of another type is an error.
    let fw = example("firewall.vinet");
    let c = compile("f", &fw, &[("SrcIP".into(), "10.9.9.9".into())]).unwrap();
    assert_eq!(c.module.params[0].default, Const::Addr(0x0a09_0909));
    let e = compile("f", &fw, &[("SrcIP".into(), "42".into())]).unwrap_err().render();
    assert!(e.contains("--param SrcIP gives a number, but `SrcIP` is an IP address"), "{e}");
    // An unused --param is a warning, and stays out of the module.
    let c = compile("f", &fw, &[("Nope".into(), "1".into())]).unwrap();
    assert_eq!(c.module.params.len(), 1);
    assert_eq!(c.warnings.items()[0].severity, Severity::Warning);
}

#[test]
fn keywords_and_routines_ignore_case_names_do_not() {
    ok("lifetime = 1 DAY\nmine = group_by_destination(allpackets, this_ip);\nIF count(mine) > 1 THEN Discard(mine) ELSE discard(mine)");
    let e = errors("LIFETIME = 1 days\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nDISCARD(mine);");
    assert!(e.contains("did you mean `Mine`?"), "{e}");
}

#[test]
fn grouping_families_in_either_order() {
    // Table I's order: set first, key second; told apart by use.
    let c = ok("LIFETIME = 1 days\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
                Packets(i), SrcIP(i) = GROUP_BY_SOURCE(Mine);\nforeach i do if SrcIP(i) in 10.0.0.0/8 then DISCARD(Packets(i));");
    let key = c.program.vars.iter().position(|v| v.name == "SrcIP").unwrap();
    assert_eq!(c.module.regs[key], vinet_checker::bytecode::Ty::Addr);
    // Key first by default.
    let c = ok("LIFETIME = 1 days\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nA(i), B(i) = GROUP_BY_SOURCE(Mine);");
    let a = c.program.vars.iter().position(|v| v.name == "A").unwrap();
    assert_eq!(c.module.regs[a], vinet_checker::bytecode::Ty::Addr);
}

#[test]
fn foreach_locals_can_be_reused_after_the_loop() {
    ok("LIFETIME = 1 days\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nS(i), P(i) = GROUP_BY_SOURCE(Mine);\n\
        foreach i do begin n = COUNT(P(i)); if n > 3 then DISCARD(P(i)) end;\n\
        foreach i do { n = DISTINCT_DESTINATIONS(P(i)); if n > 3 then DISCARD(P(i)) }\nn = THIS_IP;");
}

#[test]
fn nested_groupings_and_masks() {
    let c = ok("LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP);\n\
        Dst(i), ToDst(i) = GROUP_BY_DESTINATION(Mine);\nforeach i do begin\n\
          Src(j), Pair(j) = GROUP_BY_SOURCE(ToDst(i));\n\
          foreach j do if Src(j) & 255.255.0.0 == 10.1.0.0 and Dst(i) in THIS_SUBNET_IP then DISCARD(Pair(j))\nend");
    assert_eq!(c.module.code.iter().filter(|i| matches!(i, Insn::Foreach { .. })).count(), 2);
}

#[test]
fn while_loops_carry_bound_and_rank() {
    let c = ok("LIFETIME = 1 days\nk = 2; n = k * 3;\nwhile n > k do n = n - 1;");
    let Some(Insn::While { bound, rank, .. }) = c.module.code.iter().find(|i| matches!(i, Insn::While { .. })) else { panic!() };
    assert_eq!(*bound, 4);
    assert_eq!(rank.terms.len(), 2);
    // The guard may be one conjunct of several.
    ok("LIFETIME = 1 days\nn = 0; Mine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nwhile COUNT(Mine) > 0 and n < 4 do n = n + 1;");
    // Known values are forgotten after an `if` that changes them.
    let e = errors("LIFETIME = 1 days\nn = 0;\nif COUNT(AllPackets) > 3 then n = 5;\nwhile n < 10 do n = n + 1;");
    assert!(e.contains("not known when the loop starts"), "{e}");
}

#[test]
fn class_is_inferred_or_checked() {
    assert_eq!(ok("LIFETIME = 1 days\nn = COUNT(AllPackets);").module.header.class, Class::Monitoring);
    assert_eq!(ok("LIFETIME = 1 days\nCLASS = multicast\nn = COUNT(AllPackets);").module.header.class, Class::Multicast);
    let e = errors("LIFETIME = 1 days\nCLASS = filtering\nGENERATE(THIS_IP, THIS_IP, \"x\");");
    assert!(e.contains("its CLASS must be multicast"), "{e}");
}

#[test]
fn several_errors_in_one_run() {
    let e = errors("LIFETIME = 1 days\nA = COUNT(AllPackets) + \"x\";\nB = Nope;\nC = 300.0.0.1;\n");
    assert_eq!(e.matches("\nerror").count() + usize::from(e.starts_with("error")), 4, "{e}");
}

#[test]
fn control_nesting_up_to_the_bytecode_limit_is_accepted() {
    let ifs = "if true then\n".repeat(MAX_NESTING);
    ok(&format!("LIFETIME = 1 days\n{ifs}DISCARD(AllPackets);"));
    let ifs = "if true then\n".repeat(MAX_NESTING + 1);
    assert!(errors(&format!("LIFETIME = 1 days\n{ifs}DISCARD(AllPackets);")).contains("nested more than"));
}

/// Input nested 100,000 deep gives one located error, on a small stack.
#[test]
fn deep_nesting_on_a_small_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let d = 100_000;
            let mut results = vec![];
            for src in [
                format!("LIFETIME = 1 days\nX = {}1{};", "(".repeat(d), ")".repeat(d)),
                format!("LIFETIME = 1 days\nX = {}true;", "not ".repeat(d)),
                format!("LIFETIME = 1 days\nX = {}AllPackets{};", "COUNT(".repeat(d), ")".repeat(d)),
                format!("LIFETIME = 1 days\nX = 1{};", " + 1".repeat(d)),
                format!("LIFETIME = 1 days\n{}X = 1;", "if true then ".repeat(d)),
                format!("LIFETIME = 1 days\n{}X = 1{}", "begin ".repeat(d), " end".repeat(d)),
                format!("LIFETIME = 1 days\n{}", "(".repeat(d)),
            ] {
                results.push(compile("deep.vinet", src.as_bytes(), &[]).map(|_| ()).map_err(|e| e.len()));
            }
            results
        })
        .unwrap();
    let results = handle.join().expect("no stack overflow");
    assert_eq!(results[0], Ok(()), "parentheses alone build no tree");
    for r in &results[1..] {
        assert_eq!(*r, Err(1));
    }
}

#[test]
fn instruction_diagnostics_for_the_prover() {
    let c = compile("firewall.vinet", &example("firewall.vinet"), &[]).unwrap();
    let last = c.module.code.len() - 1;
    let d = c
        .diagnostic_at(last, Severity::Error, "DISCARD here could drop a packet 203.0.113.9 -> 10.9.9.9", "this DISCARD")
        .note("10.9.9.9 is not THIS_IP")
        .help("confine the set with GROUP_BY_DESTINATION(..., THIS_IP)");
    let text = c.render(vec![d]).render();
    assert!(text.contains("firewall.vinet:7:1"), "{text}");
    assert!(text.contains("^^^^^^^^^^^^^^^^^^^ this DISCARD"), "{text}");
    assert!(text.contains("= note: 10.9.9.9 is not THIS_IP"), "{text}");
}

#[test]
fn hostile_bytes() {
    for src in [&b""[..], b"\xff\xfe", b"LIFETIME = 1 days\n\x00", b"\"", b"/", b"1.2.3.4.5.6", b"LIFETIME = 1 days X"] {
        let _ = compile("h", src, &[]);
    }
    let e = compile("h", b"   // only a comment\n", &[]).unwrap_err().render();
    assert!(e.contains("empty program"), "{e}");
    let e = compile("h", b"LIFETIME = 1 days\n\xc3\x28", &[]).unwrap_err().render();
    assert!(e.contains("h:2:1") && e.contains("byte 0xc3 at offset 18 (line 2)"), "{e}");
}
