//! `vinetc fmt`'s formatter over every program the repository ships (the
//! examples, the CI example, the accept and reject corpora) and over random
//! re-spacings of them with comments sprinkled in: formatting is idempotent,
//! keeps every comment, and changes no program's meaning (the same module,
//! or the same diagnostics).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vinet_lang::format::format;

fn corpus() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = vec![];
    for dir in ["examples", "examples/ci/programs", "tests/accept", "tests/reject"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "vinet") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((p, text));
                }
            }
        }
    }
    out.sort();
    out
}

/// The comments of a program, in order (`//` to the end of the line, trimmed).
fn comments(source: &str) -> Vec<String> {
    let (tokens, _) = vinet_lang::lexer::lex(source);
    let mut gaps = vec![];
    let mut prev = 0;
    for (start, _, end) in &tokens {
        gaps.push(&source[prev..*start]);
        prev = *end;
    }
    gaps.push(&source[prev..]);
    gaps.iter().flat_map(|g| g.lines().filter_map(|l| l.find("//").map(|i| l[i..].trim_end().to_string())).collect::<Vec<_>>()).collect()
}

/// What a program means: its module without source lines, or its diagnostics' messages.
fn meaning(source: &str) -> Result<Vec<u8>, Vec<String>> {
    match vinet_lang::compile("p.vinet", source.as_bytes(), &[]) {
        Ok(mut c) => {
            c.module.lines.iter_mut().for_each(|l| *l = 0);
            Ok(c.module.encode())
        }
        Err(d) => Err(d.items().iter().map(|x| x.message.clone()).collect()),
    }
}

fn check_one(name: &str, source: &str) -> Result<bool, TestCaseError> {
    let Ok(once) = format(name, source) else { return Ok(false) };
    let twice =
        format(name, &once).map_err(|d| TestCaseError::fail(format!("{name}: formatted output does not parse:\n{}", d.render())))?;
    prop_assert_eq!(&twice, &once, "{}: not idempotent", name);
    prop_assert_eq!(comments(&once), comments(source), "{}: comments changed", name);
    prop_assert_eq!(meaning(&once), meaning(source), "{}: meaning changed", name);
    Ok(true)
}

#[test]
fn every_shipped_program_formats_idempotently_keeping_comments_and_meaning() {
    let mut formatted = 0;
    for (path, text) in corpus() {
        if check_one(&path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}")) {
            formatted += 1;
        }
    }
    assert!(formatted >= 40, "only {formatted} programs formatted");
}

#[test]
fn transport_routines_format_idempotently_keeping_comments_and_meaning() {
    let src = "LIFETIME = 1 days // one day\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP);\n\
               Syns = TCP_FLAGS(GROUP_BY_PROTOCOL(Mine, TCP), SYN, ACK); // attempts\n\
               Src(i), Tries(i) = GROUP_BY_SOURCE(Syns);\nforeach i do begin\n\
               // per port\nPort(j), ToPort(j) = GROUP_BY_DESTINATION_PORT(Tries(i));\n\
               foreach j do if Port(j) == 445 and COUNT(ToPort(j)) > 8 or DISTINCT_DESTINATION_PORTS(Tries(i)) > 16 then DISCARD(ToPort(j))\n\
               end\nDISCARD(GROUP_BY_SOURCE_PORT(GROUP_BY_PROTOCOL(Mine, UDP, UDP), 0, 1023))\n";
    assert!(meaning(src).is_ok(), "{:?}", meaning(src));
    assert!(check_one("transport.vinet", src).unwrap_or_else(|e| panic!("{e}")));
    for seps in [&[0u8][..], &[1, 3], &[2, 4, 5], &[3, 3, 4]] {
        assert!(check_one("transport.vinet", &respace(src, seps)).unwrap_or_else(|e| panic!("{e}")));
    }
}

/// A program's tokens re-joined with the chosen separators: spaces, line
/// breaks, blank lines, and comments at the end of a line or on their own.
fn respace(source: &str, seps: &[u8]) -> String {
    let (tokens, _) = vinet_lang::lexer::lex(source);
    let mut out = String::new();
    for (i, (start, _, end)) in tokens.iter().enumerate() {
        if i > 0 {
            out.push_str(match seps[i % seps.len()] % 6 {
                0 => " ",
                1 => "\n",
                2 => "\n\n\n",
                3 => " // note\n",
                4 => "\n   // own line\n\t",
                _ => "  ",
            });
        }
        out.push_str(&source[*start..*end]);
    }
    out.push('\n');
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn respaced_programs_format_to_one_layout(pick in 0usize..1000, seps in proptest::collection::vec(any::<u8>(), 1..40)) {
        let programs: Vec<(PathBuf, String)> = corpus().into_iter().filter(|(_, t)| format("p", t).is_ok()).collect();
        let (path, text) = &programs[pick % programs.len()];
        let respaced = respace(text, &seps);
        let name = path.display().to_string();
        prop_assert!(check_one(&name, &respaced)?, "{}: a re-spacing does not parse:\n{}", name, respaced);
        // The layout depends on the tokens, not on how they were spaced.
        let plain = respace(text, &[0]);
        prop_assert_eq!(format("p", &respace(text, &[0, 1, 5])).ok(), format("p", &plain).ok());
    }
}
