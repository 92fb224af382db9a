//! `vinetc fmt [INPUT]... [--check]`

use std::path::{Path, PathBuf};

use super::project;
use super::Failure;

const AFTER_HELP: &str = "\
Examples:
  vinetc fmt examples/firewall.vinet
  vinetc fmt --check 'programs/*.vinet'
  vinetc fmt --check                (every program of the project in vinet.toml)

Lays out each program one way: a statement a line, bodies indented by two
spaces, spacing around operators normalised, comments kept where they are.
Only whitespace changes (and a `;` is added where a statement left it out);
formatting a formatted file changes nothing. With --check, nothing is
written: the files that are not formatted are named, with their first
differing line, and the exit status is 1. A program that does not parse is
not formatted (its errors are shown, exit 1); an unreadable file is exit 2.";

/// Arguments of `vinetc fmt`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Programs, directories (their .vinet programs) or globs [default: the project's programs].
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Write nothing; fail if a file is not formatted.
    #[arg(long)]
    pub check: bool,
}

/// The files to format: the inputs', or the project's programs, each once.
fn files(inputs: &[String]) -> Result<Vec<PathBuf>, Failure> {
    let mut out: Vec<PathBuf> = vec![];
    if inputs.is_empty() {
        let p = project::load_project(&project::find_project()?)?;
        out.extend(p.jobs.into_iter().filter(|j| !j.is_bundle()).map(|j| j.file));
    } else {
        for i in inputs {
            out.extend(project::expand(i, Path::new(".")).map_err(Failure::Usage)?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

/// The first line where two texts differ: its number, and both versions.
fn first_difference<'a>(old: &'a str, new: &'a str) -> (usize, &'a str, &'a str) {
    let (mut a, mut b) = (old.lines(), new.lines());
    let mut n = 1;
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (x, y) => return (n, x.unwrap_or(""), y.unwrap_or("")),
        }
    }
}

/// Run `vinetc fmt`.
pub fn run(args: Args) -> Result<(), Failure> {
    let files = files(&args.inputs)?;
    let (mut unformatted, mut broken) = (vec![], 0);
    for file in &files {
        let shown = file.display().to_string();
        let bytes = super::read_input(file)?;
        let Ok(text) = String::from_utf8(bytes) else {
            eprintln!("error: {shown} is not UTF-8 text");
            broken += 1;
            continue;
        };
        let formatted = match vinet_lang::format::format(&shown, &text) {
            Ok(f) => f,
            Err(d) => {
                d.emit();
                broken += 1;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if args.check {
            let (line, old, new) = first_difference(&text, &formatted);
            println!("{shown}:{line}: not formatted\n  -{old}\n  +{new}");
            unformatted.push(shown);
        } else {
            std::fs::write(file, &formatted).map_err(|e| Failure::Usage(format!("cannot write {shown}: {e}")))?;
            println!("formatted {shown}");
        }
    }
    match (unformatted.len(), broken) {
        (0, 0) => Ok(()),
        (0, b) => Err(Failure::Rejected(format!("{b} program{} could not be formatted", if b == 1 { "" } else { "s" }))),
        (n, b) => {
            let also = if b > 0 { format!("; {b} could not be formatted") } else { String::new() };
            Err(Failure::Rejected(format!(
                "{n} of {} file{} not formatted (run `vinetc fmt`){also}",
                files.len(),
                if files.len() == 1 { " is" } else { "s are" }
            )))
        }
    }
}
