//! Reject tests: every file in `tests/reject/` is a program (or, later, a
//! bundle) that vinet must refuse, with the refusal it must give written on
//! its first lines:
//!
//! ```text
//! // expect: build error at LINE:COL: <substring of the diagnostic>
//! ```
//!
//! One or more such lines. Each must match a diagnostic that the command
//! reports at exactly that primary position and whose text (headline, labels,
//! notes, help) contains the substring; and every error reported must be
//! matched by some expectation, so a cascade of stray errors fails the test.
//!
//! The kind says which command produces the error: `build` (the front end's
//! diagnostics) or `prove` (the prover's: the program compiles but is not safe
//! under the policy named by a `// policy: end-user|edge-router|on-owner` line after
//! the expectations, end-user by default). A file with no expectation, or with
//! an unknown kind, fails the test. That both verifiers also refuse the
//! `prove` files is `tests/verifiers_agree.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The commands whose rejections this runner checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `vinetc build FILE`: the front end's diagnostics.
    Build,
    /// `vinetc prove FILE --policy P`: the prover's diagnostics.
    Prove,
}

impl Kind {
    fn parse(word: &str) -> Option<Kind> {
        match word {
            "build" => Some(Kind::Build),
            "prove" => Some(Kind::Prove),
            _ => None,
        }
    }

    /// Run the command on `file`; its exit code and stderr.
    fn run(self, file: &Path, scratch: &Path) -> (Option<i32>, String) {
        let out = match self {
            Kind::Build => Command::new(env!("CARGO_BIN_EXE_vinetc"))
                .arg("build")
                .arg(file)
                .arg("-o")
                .arg(scratch.join("out.vbc"))
                .output()
                .expect("run vinetc"),
            Kind::Prove => {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                let header = |p: &str| text.lines().take_while(|l| l.starts_with("//")).any(|l| l.contains(&format!("policy: {p}")));
                let policy = ["edge-router", "on-owner"].into_iter().find(|p| header(p)).unwrap_or("end-user");
                Command::new(env!("CARGO_BIN_EXE_vinetc"))
                    .arg("prove")
                    .arg(file)
                    .arg("--policy")
                    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/policies/{policy}.toml")))
                    .arg("-o")
                    .arg(scratch.join("out.vpc"))
                    .output()
                    .expect("run vinetc")
            }
        };
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[derive(Debug)]
struct Expectation {
    kind: Kind,
    line: usize,
    col: usize,
    text: String,
}

/// Read the `// expect:` lines at the top of a file.
fn expectations(path: &Path, bytes: &[u8]) -> Result<Vec<Expectation>, String> {
    let mut out = vec![];
    for raw in bytes.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(raw);
        let Some(rest) = line.trim().strip_prefix("// expect:") else { break };
        let rest = rest.trim();
        let (kind_word, rest) = rest.split_once(' ').ok_or_else(|| format!("{}: malformed expectation `{line}`", path.display()))?;
        let kind = Kind::parse(kind_word)
            .ok_or_else(|| format!("{}: unknown expectation kind `{kind_word}` (known: build, prove)", path.display()))?;
        let rest = rest
            .strip_prefix("error at ")
            .ok_or_else(|| format!("{}: expected `{kind_word} error at LINE:COL: TEXT`, got `{line}`", path.display()))?;
        let mut parts = rest.splitn(3, ':');
        let (l, c, text) = (parts.next(), parts.next(), parts.next());
        let (Some(l), Some(c), Some(text)) = (l, c, text) else {
            return Err(format!("{}: expected LINE:COL: TEXT in `{line}`", path.display()));
        };
        let line_no = l.trim().parse().map_err(|_| format!("{}: bad line `{l}`", path.display()))?;
        let col = c.trim().parse().map_err(|_| format!("{}: bad column `{c}`", path.display()))?;
        out.push(Expectation { kind, line: line_no, col, text: text.trim().to_string() });
    }
    if out.is_empty() {
        return Err(format!("{}: no `// expect:` line at the top of the file", path.display()));
    }
    Ok(out)
}

/// A reported diagnostic: its position and its whole text.
#[derive(Debug)]
struct Reported {
    error: bool,
    line: usize,
    col: usize,
    text: String,
}

/// Split codespan-style output into diagnostics: a block starts at a line
/// `error: ...` or `warning: ...`, and its position is on its `┌─ FILE:L:C`
/// line. Blocks with no position (the closing count) are left out.
fn reported(stderr: &str) -> Vec<Reported> {
    /// A block being read: (is an error, its text, its line and column).
    type Block = Option<(bool, String, Option<(usize, usize)>)>;
    let mut out: Vec<Reported> = vec![];
    let mut current: Block = None;
    let flush = |c: Block, out: &mut Vec<Reported>| {
        if let Some((error, text, Some((line, col)))) = c {
            out.push(Reported { error, line, col, text });
        }
    };
    for line in stderr.lines() {
        let head = line.strip_prefix("error: ").map(|_| true).or(line.strip_prefix("warning: ").map(|_| false));
        if let Some(error) = head {
            flush(current.take(), &mut out);
            current = Some((error, line.to_string(), None));
            continue;
        }
        if let Some((_, text, pos)) = current.as_mut() {
            if let Some(at) = line.trim_start().strip_prefix("┌─ ") {
                let mut it = at.rsplitn(3, ':');
                let col = it.next().and_then(|c| c.parse().ok());
                let ln = it.next().and_then(|l| l.parse().ok());
                if let (Some(ln), Some(col), None) = (ln, col, *pos) {
                    *pos = Some((ln, col));
                }
            }
            text.push('\n');
            text.push_str(line);
        }
    }
    flush(current.take(), &mut out);
    out
}

fn check_file(path: &Path, scratch: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let expected = expectations(path, &bytes)?;
    let kind = expected[0].kind;
    if expected.iter().any(|e| e.kind != kind) {
        return Err(format!("{}: expectations of several kinds in one file", path.display()));
    }
    let (code, stderr) = kind.run(path, scratch);
    if code != Some(1) {
        return Err(format!("{}: exit code {code:?}, expected 1 (rejected)\n{stderr}", path.display()));
    }
    let got = reported(&stderr);
    let mut problems = vec![];
    for e in &expected {
        let hit = got.iter().any(|r| r.error && r.line == e.line && r.col == e.col && r.text.contains(&e.text));
        if !hit {
            problems.push(format!("expected an error at {}:{} containing `{}`", e.line, e.col, e.text));
        }
    }
    for r in got.iter().filter(|r| r.error) {
        if !expected.iter().any(|e| r.line == e.line && r.col == e.col && r.text.contains(&e.text)) {
            problems.push(format!("unexpected error at {}:{}: {}", r.line, r.col, r.text.lines().next().unwrap_or("")));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}:\n  {}\n--- stderr ---\n{stderr}", path.display(), problems.join("\n  ")))
    }
}

fn reject_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reject");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/reject exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "vinet"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_reject_file_gives_its_expected_errors() {
    let scratch = std::env::temp_dir().join(format!("vinet-reject-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let files = reject_files();
    assert!(files.len() >= 20, "only {} reject files", files.len());
    let failures: Vec<String> = files.iter().filter_map(|f| check_file(f, &scratch).err()).collect();
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{} of {} reject files failed:\n\n{}", failures.len(), files.len(), failures.join("\n\n"));
}

#[test]
fn the_runner_refuses_files_without_or_with_unknown_expectations() {
    let p = Path::new("x.vinet");
    assert!(expectations(p, b"LIFETIME = 1 days\n").is_err());
    assert!(expectations(p, b"// expect: deploy error at 1:1: x\n").is_err());
    assert_eq!(expectations(p, b"// expect: prove error at 1:1: x\n").unwrap()[0].kind, Kind::Prove);
    assert!(expectations(p, b"// expect: build error 1:1 x\n").is_err());
    let e = expectations(p, b"// expect: build error at 3:7: a: b\n// expect: build error at 4:1: c\nX").unwrap();
    assert_eq!((e[0].line, e[0].col, e[0].text.as_str()), (3, 7, "a: b"));
    assert_eq!(e.len(), 2);
}

#[test]
fn the_runner_reads_codespan_output() {
    let stderr = "error: unknown name `X`\n  ┌─ dir/f.vinet:4:30\n  │\n4 │ X\n  = help: did you mean `Y`?\n\nerror: could not build `f.vinet` (1 error)\n";
    let r = reported(stderr);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].line, r[0].col), (4, 30));
    assert!(r[0].text.contains("did you mean `Y`?"));
}
