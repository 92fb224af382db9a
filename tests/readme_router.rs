//! README.md's "Running a router" steps, run verbatim (issue 11: a README
//! that works verbatim).
//!
//! The test reads the ```sh block that follows the marker comment
//! `<!-- tests/readme_router.rs runs the next block verbatim ... -->` in the
//! README's "## Running a router" section and runs its commands in order,
//! each with `sh -c`, in a fresh scratch directory that holds a copy of
//! `examples/`, as the top directory of a fresh clone would. It changes the
//! commands in these ways only:
//!
//! - `cargo build --release` is not run: cargo has already built the binaries
//!   this test runs, and the words `target/release/vinetc` and
//!   `target/release/vinetd` become their paths (`CARGO_BIN_EXE_*`). Any other
//!   build command is an error (the substitution would no longer be the
//!   README's), and no `vinetc` or `vinetd` the machine has installed can
//!   stand in for them (they are taken out of `PATH`).
//! - The router's port: the example config's `listen` address (which the
//!   README's commands must name) is replaced by one on a free port, in the
//!   copied config and in every command alike, and its `metrics` address by
//!   another free one, so that the test runs beside other routers.
//! - A command ending in `&` (vinetd, in the background) is started as this
//!   test's child (`sh -c "exec ..."`, so that the child is vinetd itself and
//!   the guard kills it at the end), and the next command waits until the
//!   router accepts connections, as a person sees it start before typing on.
//!
//! It then checks what the README says: the upload ends in `admitted ...:
//! lease N` and the status lists `lease N for ...`. Every command and every
//! wait is bounded by `HANG`, and nothing is timed.

mod router_support;

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use router_support::{free_port, root, wait_for, wait_until, Scratch, HANG, VINETC, VINETD};

/// The comment that marks the block this test runs.
const MARKER: &str = "<!-- tests/readme_router.rs runs the next block verbatim";
/// The section it must be in.
const SECTION: &str = "## Running a router";
/// The build command the binaries' paths below come from.
const BUILD: &str = "cargo build --release";
const BUILT_VINETC: &str = "target/release/vinetc";
const BUILT_VINETD: &str = "target/release/vinetd";

/// The commands of the marked block, comments kept (sh drops them), lines
/// continued with `\` joined.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("read README.md");
    assert_eq!(readme.matches(MARKER).count(), 1, "README.md must have exactly one `{MARKER} -->` comment");
    let start = readme.find(&format!("\n{SECTION}\n")).unwrap_or_else(|| panic!("README.md has no `{SECTION}` section"));
    let section = &readme[start + 1..];
    let section = &section[..section[SECTION.len()..].find("\n## ").map_or(section.len(), |e| e + SECTION.len())];
    let at = section.find(MARKER).unwrap_or_else(|| panic!("the `{MARKER}` comment is not in README.md's `{SECTION}` section"));
    let mut lines = section[at..].lines().skip(1).skip_while(|l| l.trim().is_empty());
    assert_eq!(lines.next(), Some("```sh"), "the `{MARKER}` comment must be followed by a ```sh block");
    let mut commands: Vec<String> = Vec::new();
    let mut continued = false;
    for line in lines.by_ref() {
        if line.starts_with("```") {
            assert!(!continued, "the README's block ends in a `\\` continuation");
            assert!(!commands.is_empty(), "the README's marked block is empty");
            return commands;
        }
        let body = line.strip_suffix('\\');
        match (continued, commands.last_mut()) {
            (true, Some(last)) => last.push_str(body.unwrap_or(line)),
            _ if line.trim().is_empty() || line.trim_start().starts_with('#') => {}
            _ => commands.push(body.unwrap_or(line).to_string()),
        }
        continued = body.is_some();
    }
    panic!("the README's marked ```sh block is not closed");
}

/// The part of a command before its comment: sh starts a comment at a `#`
/// that begins a word. (The README's commands have no quotes; a quoted `#`
/// would be taken for a comment here.)
fn code(command: &str) -> &str {
    let mut prev = ' ';
    for (i, c) in command.char_indices() {
        if c == '#' && prev.is_whitespace() {
            return command[..i].trim_end();
        }
        prev = c;
    }
    command.trim_end()
}

/// Shell-quote a path.
fn quoted(p: &str) -> String {
    format!("'{}'", p.replace('\'', r"'\''"))
}

/// Copy `from` into `to` (the clone's `examples/`), leaving out what the
/// README's steps create there: a developer who followed them in their own
/// checkout has these, a fresh clone has not.
fn copy_examples(from: &Path, to: &Path) {
    const CREATED: [&str; 3] = ["state", "operator.key", "operator.key.pub"];
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if from == root().join("examples") && CREATED.iter().any(|c| name == *c) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_examples(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// `PATH` without the directories that hold a `vinetc` or `vinetd`, so that
/// only the binaries under test can run.
fn path_without_vinet() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path).filter(|d| !d.join("vinetc").exists() && !d.join("vinetd").exists()).collect();
    std::env::join_paths(kept).unwrap().into_string().unwrap()
}

/// vinetd, started by the README's `&` command; killed when the test ends.
struct Router(Child);

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one foreground command did.
struct Ran {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

#[test]
fn readme_router_steps_work_verbatim() {
    let commands = readme_commands();
    let scratch = Scratch::new("readme-router");
    let clone = scratch.path("clone");
    let out = scratch.path("out");
    std::fs::create_dir_all(&out).unwrap();
    copy_examples(&root().join("examples"), &clone.join("examples"));

    // The port rewrite, in the copied config and (below) in the commands.
    let config_path = clone.join("examples/router.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let table: toml::Table = config.parse().expect("examples/router.toml is TOML");
    let listen = table["listen"].as_str().expect("examples/router.toml has a listen address").to_string();
    let router = format!("127.0.0.1:{}", free_port());
    let mut rewritten = config.replace(&format!("\"{listen}\""), &format!("\"{router}\""));
    if let Some(metrics) = table.get("metrics").and_then(|m| m.as_str()) {
        rewritten = rewritten.replace(&format!("\"{metrics}\""), &format!("\"127.0.0.1:{}\"", free_port()));
    }
    std::fs::write(&config_path, rewritten).unwrap();
    assert!(
        commands.iter().any(|c| c.contains(&listen)),
        "none of the README's router commands names the example config's listen address {listen}"
    );

    let path = path_without_vinet();
    let log = |clone: &Path| {
        let mut s = String::new();
        for f in ["vinetd.log", "examples/vinetd.log"] {
            if let Ok(t) = std::fs::read_to_string(clone.join(f)) {
                s += &format!("\n--- {f}:\n{t}");
            }
        }
        s
    };
    let mut daemon: Option<Router> = None;
    let mut ran: Vec<Ran> = Vec::new();
    for (n, command) in commands.iter().enumerate() {
        if command.starts_with("cargo ") {
            assert_eq!(code(command), BUILD, "the README builds with `{}`; this test knows only `{BUILD}`", code(command));
            assert!(ran.is_empty() && daemon.is_none(), "the README's router steps must build before they run anything");
            continue;
        }
        let words: Vec<String> = command
            .split(' ')
            .map(|w| match w {
                BUILT_VINETC => quoted(VINETC),
                BUILT_VINETD => quoted(VINETD),
                w => w.replace(&listen, &router),
            })
            .collect();
        let line = words.join(" ");
        let sh = |script: &str, name: &str| {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script).current_dir(&clone).env("PATH", &path).stdin(Stdio::null());
            c.stdout(File::create(out.join(format!("{n}.{name}.stdout"))).unwrap());
            c.stderr(File::create(out.join(format!("{n}.{name}.stderr"))).unwrap());
            c.spawn().unwrap_or_else(|e| panic!("cannot run sh: {e}"))
        };
        if let Some(background) = code(&line).strip_suffix('&').filter(|c| !c.ends_with('&')) {
            assert!(daemon.is_none(), "the README starts two commands in the background; this test expects vinetd alone");
            assert!(code(command).starts_with(BUILT_VINETD), "the README's background command is not vinetd: {command}");
            let mut child = sh(&format!("exec {background}"), "background");
            let mut exited = None;
            wait_for(&format!("vinetd to accept connections on {router}"), HANG, || {
                exited = child.try_wait().unwrap();
                exited.is_some() || TcpStream::connect(&router).is_ok()
            });
            assert!(exited.is_none(), "vinetd, started by the README's `{command}`, exited: {exited:?}{}", log(&clone));
            daemon = Some(Router(child));
            continue;
        }
        let mut child = sh(&line, "run");
        let mut status = None;
        if !wait_until(HANG, || {
            status = child.try_wait().unwrap();
            status.is_some()
        }) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let read = |name: &str| std::fs::read_to_string(out.join(format!("{n}.{name}"))).unwrap_or_default();
        let r =
            Ran { command: command.clone(), code: status.and_then(|s| s.code()), stdout: read("run.stdout"), stderr: read("run.stderr") };
        assert_eq!(
            r.code,
            Some(0),
            "the README's router step `{}` failed{}:\nstdout: {}\nstderr: {}{}",
            r.command,
            if status.is_none() { " (hang: killed at the HANG deadline)" } else { "" },
            r.stdout,
            r.stderr,
            log(&clone)
        );
        ran.push(r);
    }

    assert!(daemon.is_some(), "the README's router steps never start vinetd in the background (`... &`)");
    let is = |r: &Ran, sub: &str| code(&r.command).starts_with(BUILT_VINETC) && code(&r.command).split(' ').nth(1) == Some(sub);
    let uploads: Vec<&Ran> = ran.iter().filter(|r| is(r, "upload")).collect();
    assert_eq!(uploads.len(), 1, "the README's router steps should upload once, not {} times", uploads.len());
    let upload = uploads[0];
    let lease = upload
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("admitted ").and_then(|l| l.split(": lease ").nth(1)).and_then(|l| l.split(',').next()))
        .unwrap_or_else(|| panic!("the README's upload `{}` was not admitted:\n{}", upload.command, upload.stdout));
    let lease: u64 = lease.parse().unwrap_or_else(|_| panic!("lease {lease:?} is not a number:\n{}", upload.stdout));
    let at = ran.iter().position(|r| std::ptr::eq(r, upload)).unwrap();
    let status = ran[at..].iter().find(|r| is(r, "status")).expect("the README's router steps run no `vinetc status` after the upload");
    assert!(
        status.stdout.lines().any(|l| l.starts_with(&format!("lease {lease} for "))),
        "the README's status `{}` does not list lease {lease}:\n{}",
        status.command,
        status.stdout
    );
    drop(daemon);
}
