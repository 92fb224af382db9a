//! Property tests: the front end and the decoder never panic, and every
//! program the front end accepts is a module that validates, round-trips,
//! and whose mutations the decoder refuses without panicking.

use proptest::prelude::*;
use vinet_checker::Module;

fn examples() -> Vec<Vec<u8>> {
    let dir = format!("{}/../examples", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vinet"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    out.sort();
    out
}

/// Compile; if accepted, check the module and hammer its decoder.
fn compile_and_check(src: &[u8], mutations: &[(usize, u8)]) -> bool {
    let Ok(c) = vinet_lang::compile("p.vinet", src, &[]) else { return false };
    c.module.validate().expect("an accepted program validates");
    let bytes = c.module.encode();
    assert_eq!(Module::decode(&bytes).expect("round trip"), c.module);
    assert_eq!(c.spans.len(), c.module.code.len());
    for &(at, b) in mutations {
        let mut bad = bytes.clone();
        if bad.is_empty() {
            break;
        }
        let i = at % bad.len();
        bad[i] = b;
        let _ = Module::decode(&bad);
        let _ = Module::decode(&bad[..i]);
    }
    true
}

const VOCABULARY: &[&str] = &[
    "LIFETIME",
    "=",
    "2",
    "days",
    "hrs",
    "CLASS",
    "filtering",
    "PARAM",
    "SrcIP",
    "203.0.113.9",
    "10.0.0.0/8",
    "2001:db8::9",
    "2001:db8::/32",
    "::ffff:10.0.0.1",
    "2001:db8:::1",
    "\"w\"",
    ";",
    ";",
    ";",
    "(",
    ")",
    "(",
    ")",
    ",",
    "MyPackets",
    "Bad",
    "AllPackets",
    "THIS_IP",
    "THIS_SUBNET_IP",
    "GROUP_BY_DESTINATION",
    "GROUP_BY_SOURCE",
    "GROUP_BY_CONTENT",
    "CONTAINS_STRING",
    "COUNT",
    "DISTINCT_DESTINATIONS",
    "DISCARD",
    "GENERATE",
    "GROUP_BY_PROTOCOL",
    "GROUP_BY_SOURCE_PORT",
    "GROUP_BY_DESTINATION_PORT",
    "TCP_FLAGS",
    "DISTINCT_DESTINATION_PORTS",
    "TCP",
    "SYN",
    "ACK",
    "Port(q)",
    "70000",
    "foreach",
    "i",
    "do",
    "if",
    "then",
    "else",
    "while",
    "begin",
    "end",
    "{",
    "}",
    "and",
    "or",
    "not",
    "in",
    "==",
    "!=",
    "<",
    ">=",
    "&",
    "+",
    "-",
    "*",
    "true",
    "n",
    "0",
    "10",
    "Src(i)",
    "Pk(i)",
    "\n",
    "//c\n",
    "\"",
    "@",
    "300.1.2.3",
    "1.2.3",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(VOCABULARY), 0..80).prop_map(|t| t.join(" "))
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    DuplicateLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), prop::sample::select(VOCABULARY)).prop_map(|(i, t)| Mutation::Insert(i, format!(" {t} ").into_bytes())),
        any::<usize>().prop_map(Mutation::DuplicateLine),
    ]
}

fn apply(src: &mut Vec<u8>, m: &Mutation) {
    let len = src.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            if !src.is_empty() {
                let i = i % src.len();
                src[i] = *b;
            }
        }
        Mutation::Delete(i, n) => {
            let i = i % len;
            let end = (i + n).min(src.len());
            if i < end {
                src.drain(i..end);
            }
        }
        Mutation::Insert(i, bytes) => {
            let i = i % (src.len() + 1);
            src.splice(i..i, bytes.iter().copied());
        }
        Mutation::DuplicateLine(i) => {
            let lines: Vec<&[u8]> = src.split(|&b| b == b'\n').collect();
            let k = i % lines.len();
            let mut out = vec![];
            for (j, l) in lines.iter().enumerate() {
                out.extend_from_slice(l);
                out.push(b'\n');
                if j == k {
                    out.extend_from_slice(l);
                    out.push(b'\n');
                }
            }
            *src = out;
        }
    }
}

/// Programs built from well-typed pieces, nested at random: most are
/// accepted, and they exercise scoping, definite assignment and loops.
fn structured() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "a = COUNT(Mine);",
        "a = a + 1;",
        "b = THIS_IP & 255.0.0.0;",
        "c = GROUP_BY_SOURCE(c, 10.0.0.0/8);",
        "c = GROUP_BY_SOURCE(c, 2001:db8::/32);",
        "b = THIS_IP & ffff:ffff:ffff:ffff::;",
        "DISCARD(c);",
        "s = \"x\" + \"y\";",
        "GENERATE(THIS_IP, b, \"hi\");",
        "GENERATE(THIS_IP, THIS_IP, D);",
        "D, C = GROUP_BY_CONTENT(c);",
        "foreach i do DISCARD(P(i));",
        "foreach j do if T(j) == THIS_IP then DISCARD(Q(j));",
        "foreach i do begin x = S(i) & 255.255.0.0; n = COUNT(P(i)); if x == 10.0.0.0 or n > 3 then DISCARD(P(i)) end",
        "foreach i do begin R(g), G(g) = GROUP_BY_DESTINATION(P(i)); foreach g do { y = COUNT(G(g)) * 2; DISCARD(G(g)) } end",
        "m = m * 2;",
        "fresh = COUNT(c);",
        "a = fresh;",
        "c = GROUP_BY_DESTINATION_PORT(GROUP_BY_PROTOCOL(c, TCP), 80);",
        "c = GROUP_BY_SOURCE_PORT(c, 1024, 65535);",
        "c = TCP_FLAGS(c, SYN + ACK, FIN);",
        "a = DISTINCT_DESTINATION_PORTS(c) + a;",
        "foreach q do if Port(q) == 25 or Port(q) > a then DISCARD(PP(q));",
        "foreach q do begin Pr(l), PL(l) = GROUP_BY_PROTOCOL(PP(q)); foreach l do if Pr(l) != UDP then DISCARD(PL(l)) end",
    ])
    .prop_map(str::to_string);
    let stmt = leaf.prop_recursive(5, 40, 3, |inner| {
        let cond = prop::sample::select(vec![
            "COUNT(Mine) > 2",
            "a == 3",
            "THIS_IP in THIS_SUBNET_IP",
            "CONTAINS_STRING(c, \"x\") or not true",
            "m < 4 and b != 1.2.3.4",
        ]);
        prop_oneof![
            (cond.clone(), inner.clone(), inner.clone()).prop_map(|(c, a, b)| format!("if {c} then {a} else {b}")),
            (cond, inner.clone()).prop_map(|(c, a)| format!("if {c} then {a}")),
            inner.clone().prop_map(|a| format!("begin k = 0; while k < 3 do begin {a} k = k + 1 end end")),
            prop::collection::vec(inner, 1..4).prop_map(|v| format!("begin {} end", v.join(" "))),
        ]
    });
    prop::collection::vec(stmt, 1..6).prop_map(|body| {
        format!(
            "LIFETIME = 1 days\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
             S(i), P(i) = GROUP_BY_SOURCE(Mine);\nT(j), Q(j) = GROUP_BY_DESTINATION(Mine);\n\
             PP(q), Port(q) = GROUP_BY_DESTINATION_PORT(Mine);\n\
             a = 0; b = THIS_IP; c = Mine; m = 1;\nD, C = GROUP_BY_CONTENT(Mine);\n{}\n",
            body.join("\n")
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn token_soups_never_panic(src in token_soup(), muts in prop::collection::vec((any::<usize>(), any::<u8>()), 0..16)) {
        compile_and_check(src.as_bytes(), &muts);
    }

    #[test]
    fn mutated_examples_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(mutation(), 1..6),
        muts in prop::collection::vec((any::<usize>(), any::<u8>()), 0..16),
    ) {
        let all = examples();
        let mut src = which.get(&all).clone();
        for m in &edits {
            apply(&mut src, m);
        }
        compile_and_check(&src, &muts);
    }

    #[test]
    fn accepted_structured_programs_validate(src in structured(), muts in prop::collection::vec((any::<usize>(), any::<u8>()), 0..16)) {
        compile_and_check(src.as_bytes(), &muts);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Module::decode(&bytes);
    }
}

/// The structured generator is worth its name only if it produces
/// accepted programs often.
#[test]
fn structured_programs_are_often_accepted() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = structured();
    let mut accepted = 0;
    for _ in 0..200 {
        let src = strategy.new_tree(&mut runner).unwrap().current();
        accepted += usize::from(compile_and_check(src.as_bytes(), &[]));
    }
    assert!(accepted >= 100, "only {accepted} of 200 accepted");
}
