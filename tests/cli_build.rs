//! End-to-end tests of `vinetc build` and `vinetc inspect`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vinetc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vinetc")).args(args).output().expect("run vinetc")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vinet-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "vinet")).collect();
    v.sort();
    v
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_example_builds_and_inspects() {
    let dir = scratch("examples");
    let all = examples();
    assert!(all.len() >= 4);
    for ex in all {
        let out = dir.join(ex.with_extension("vbc").file_name().unwrap());
        let o = vinetc(&["build", ex.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}: {}", ex.display(), text(&o.stderr));
        let line = text(&o.stdout);
        assert!(line.starts_with(&format!("built {}: module ", out.display())), "{line}");
        assert!(line.contains("instructions") && line.contains("class ") && line.contains("lifetime "), "{line}");
        let bytes = std::fs::read(&out).unwrap();
        vinet_checker::Module::decode(&bytes).unwrap();
        let o = vinetc(&["inspect", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let listing = text(&o.stdout);
        for part in ["vinet module ", "lifetime", "params (", "constants (", "registers (", "code ("] {
            assert!(listing.contains(part), "{part} missing in\n{listing}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn default_output_is_beside_the_program() {
    let dir = scratch("default");
    let prog = dir.join("fw.vinet");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/firewall.vinet"), &prog).unwrap();
    let o = vinetc(&["build", prog.to_str().unwrap(), "--param", "SrcIP=10.9.9.9"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let listing = text(&vinetc(&["inspect", dir.join("fw.vbc").to_str().unwrap()]).stdout);
    assert!(listing.contains("SrcIP : address = 10.9.9.9"), "{listing}");
    assert!(listing.contains("DISCARD(r"), "{listing}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn spam_filter_listing_shows_blocks_and_lines() {
    let dir = scratch("spam");
    let out = dir.join("s.vbc");
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/spam_filter.vinet");
    assert!(vinetc(&["build", ex.to_str().unwrap(), "-o", out.to_str().unwrap()]).status.success());
    let listing = text(&vinetc(&["inspect", out.to_str().unwrap()]).stdout);
    assert!(listing.contains("foreach group of"), "{listing}");
    // The DISCARD is on line 9 of the source, indented two blocks deep.
    assert!(listing.lines().any(|l| l.contains("      9        DISCARD(")), "{listing}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rejected_programs_exit_1_with_diagnostics() {
    let dir = scratch("rejected");
    let prog = dir.join("bad.vinet");
    std::fs::write(&prog, "LIFETIME = 2 days\nDISCARD(Nope);\n").unwrap();
    let o = vinetc(&["build", prog.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("error: unknown name `Nope`") && err.contains("bad.vinet:2:9"), "{err}");
    assert!(!dir.join("bad.vbc").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_usage_and_unreadable_input_exit_2() {
    let dir = scratch("usage");
    let missing = dir.join("missing.vinet");
    let o = vinetc(&["build", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot read"));
    assert_eq!(vinetc(&["build"]).status.code(), Some(2));
    assert_eq!(vinetc(&["frobnicate"]).status.code(), Some(2));
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/firewall.vinet");
    for bad in ["SrcIP", "1x=2", "SrcIP=300.1.2.3", "SrcIP=10.0.0.1/8"] {
        let o = vinetc(&["build", ex.to_str().unwrap(), "-o", dir.join("x.vbc").to_str().unwrap(), "--param", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o.stderr));
    }
    // Files inspect does not recognise: one line, exit 2.
    let junk = dir.join("junk.vbc");
    std::fs::write(&junk, b"\x07\x00garbage").unwrap();
    let o = vinetc(&["inspect", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o.stderr).trim_end().lines().count(), 1, "{}", text(&o.stderr));
    let o = vinetc(&["inspect", ex.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("vinetc build"), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn help_shows_an_example_for_every_subcommand() {
    let top = vinetc(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    assert!(text(&top.stdout).contains("Examples:"));
    for sub in ["build", "inspect"] {
        let o = vinetc(&[sub, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        let help = text(&o.stdout);
        assert!(help.contains("Example:") && help.contains(&format!("vinetc {sub}")), "{sub}: {help}");
    }
}
