//! End-to-end tests of `vinetc analyze` on programs whose cost is past what
//! either verifier can count: both refuse them cleanly (exit 1, one line),
//! neither panics (exit 101).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vinet_checker::cert::{encode_file, Bundle, Certificate, Declared, Proof, BUNDLE_MAGIC, CERT_VERSION};
use vinet_checker::Module;

fn vinetc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vinetc")).args(args).output().expect("run vinetc")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vinet-cli-analyze-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn policy() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies/end-user.toml").display().to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `depth` nested `while vI < bound do begin ... vI = vI + 1 end`.
fn while_nest(depth: usize, bound: u64) -> String {
    let mut src = format!("// {depth} nested loops of {bound} iterations each\nLIFETIME = 1 days\n");
    for i in 0..depth {
        let pad = "  ".repeat(i);
        src += &format!("{pad}v{i} = 0;\n{pad}while v{i} < {bound} do begin\n");
    }
    for i in (0..depth).rev() {
        let pad = "  ".repeat(i);
        src += &format!("{pad}  v{i} = v{i} + 1\n{pad}end{}\n", if i > 0 { ";" } else { "" });
    }
    src
}

/// A refusal: exit 1, one line on stderr naming the reason, and no panic.
fn assert_refused(o: &Output, reason: &str) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stdout: {}\nstderr: {err}", text(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line expected:\n{err}");
    assert!(err.contains(reason), "{reason:?} expected in {err}");
    err
}

#[test]
fn an_eight_deep_while_nest_is_refused_by_analyze_as_by_prove() {
    let dir = scratch("nest");
    let prog = dir.join("nest.vinet");
    std::fs::write(&prog, while_nest(8, 1_000_000)).unwrap();
    let prog = prog.to_str().unwrap();

    // The prover refuses it: no bundle.
    let o = vinetc(&["prove", prog, "--policy", &policy(), "-o", dir.join("nest.vpc").to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked") && err.contains("cost overflows"), "{err}");
    assert!(!dir.join("nest.vpc").exists());

    // The module, built, and the analyzer on it.
    let vbc = dir.join("nest.vbc");
    let o = vinetc(&["build", prog, "-o", vbc.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = vinetc(&["analyze", vbc.to_str().unwrap(), "--policy", &policy()]);
    let line = assert_refused(&o, "cost overflows");
    assert!(line.starts_with("vinetc: rejected ") && line.contains("by static analysis: instruction "), "{line}");

    // The same module in a bundle a producer made by hand: analyze reads the
    // module and the declared cost, never the proof, so an empty one will do.
    let module = std::fs::read(&vbc).unwrap();
    Module::decode(&module).unwrap();
    let certificate = Certificate { version: CERT_VERSION, proof: Proof::default() };
    let bundle = Bundle { module, declared: Declared { complexity: u64::MAX, cost: u64::MAX }, certificate };
    let vpc = dir.join("by-hand.vpc");
    std::fs::write(&vpc, encode_file(&bundle, BUNDLE_MAGIC)).unwrap();
    let o = vinetc(&["analyze", vpc.to_str().unwrap(), "--policy", &policy()]);
    assert_eq!(assert_refused(&o, "cost overflows").replace("by-hand.vpc", "nest.vbc"), line);

    // And the checker, on that bundle, refuses it too.
    let o = vinetc(&["check", vpc.to_str().unwrap(), "--policy", &policy()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_shallower_nest_is_analyzed_as_proved() {
    // Two loops of 30, within the end-user policy: 2 instructions before the
    // outer loop, its condition (2) run 31 times, and 30 outer turns of
    // 1 + 1 + 31 x 2 + 30 x (2 + 1) + 2 + 1 = 157 (the turn itself 1).
    let dir = scratch("small");
    let prog = dir.join("small.vinet");
    std::fs::write(&prog, while_nest(2, 30)).unwrap();
    let vpc = dir.join("small.vpc");
    let o = vinetc(&["prove", prog.to_str().unwrap(), "--policy", &policy(), "-o", vpc.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = vinetc(&["analyze", vpc.to_str().unwrap(), "--policy", &policy()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("complexity 4774 units/window"), "{}", text(&o.stdout));
    let _ = std::fs::remove_dir_all(dir);
}
