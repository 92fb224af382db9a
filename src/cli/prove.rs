//! `vinetc prove [INPUT]... [--policy POLICY.toml]... [-o PROG.vpc] [--param NAME=VALUE]...`

use std::path::PathBuf;

use super::batch::{self, Verdict};
use super::check::{report_and_exit, Inputs};
use super::project::Job;
use super::report::CiFormat;
use super::Failure;

const AFTER_HELP: &str = "\
Examples:
  vinetc prove examples/firewall.vinet --policy examples/policies/end-user.toml -o firewall.vpc
  vinetc prove 'programs/*.vinet' --policy end-user.toml --policy edge-router.toml
  vinetc prove                      (every program of the project in vinet.toml)

Compiles the program and proves it safe under the router's policy: it touches
only the uploader's traffic, and its cost fits the policy for its whole
lifetime. The bundle (.vpc) holds the bytecode and the certificate a router
checks; it is written beside the program (PROG.vpc; PROG.POLICY.vpc when a
program is proved against several policies; PROG.POLICY.N.vpc when against
one policy with several parameter sets, as a project may list it). When the program is not safe,
the error points at the line at fault with a concrete counterexample.
Inputs, the project file and the output formats are those of `vinetc check`.";

/// Arguments of `vinetc prove`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// What to prove.
    #[command(flatten)]
    pub inputs: Inputs,
    /// Where to write the bundle, when there is one program and one policy
    /// [default: beside each program, with .vpc].
    #[arg(short, long, value_name = "PROG.vpc")]
    pub output: Option<PathBuf>,
}

/// A file-name-safe form of a policy's name.
fn stem(name: &str) -> String {
    let base = std::path::Path::new(name).file_stem().map_or(name.to_string(), |s| s.to_string_lossy().into_owned());
    base.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Where each job's bundle goes: `-o`, or `PROG.vpc` beside the program;
/// `PROG.POLICY.vpc` when the program is proved against several policies,
/// and `PROG.POLICY.N.vpc` (N from 1, in job order) when it is proved against
/// one policy with several parameter sets, so that no bundle overwrites another.
fn outputs(jobs: &[Job], output: Option<&PathBuf>) -> Vec<PathBuf> {
    let count = |f: &dyn Fn(&Job) -> bool| jobs.iter().filter(|j| f(j)).count();
    let mut seen: Vec<(&PathBuf, &str)> = vec![];
    jobs.iter()
        .map(|j| {
            if let Some(o) = output {
                return o.clone();
            }
            let same_file = count(&|k| k.file == j.file);
            let same_policy = count(&|k| k.file == j.file && k.policy.name == j.policy.name);
            seen.push((&j.file, &j.policy.name));
            let nth = seen.iter().filter(|(f, p)| **f == j.file && *p == j.policy.name).count();
            match (same_file, same_policy) {
                (1, _) => j.file.with_extension("vpc"),
                (_, 1) => j.file.with_extension(format!("{}.vpc", stem(&j.policy.name))),
                _ => j.file.with_extension(format!("{}.{nth}.vpc", stem(&j.policy.name))),
            }
        })
        .collect()
}

/// Run `vinetc prove`.
pub fn run(args: Args) -> Result<(), Failure> {
    let (jobs, _) = args.inputs.plan()?;
    if let Some(j) = jobs.iter().find(|j| j.is_bundle()) {
        return Err(Failure::Usage(format!(
            "{} is a bundle: `vinetc prove` takes programs (.vinet); check bundles with `vinetc check`",
            j.file.display()
        )));
    }
    if args.output.is_some() && jobs.len() != 1 {
        return Err(Failure::Usage(format!("-o names one bundle, but there are {} programs and policies to prove", jobs.len())));
    }
    let outputs = outputs(&jobs, args.output.as_ref());
    let opts = batch::Options { cache: None, jobs: args.inputs.jobs.unwrap_or_else(batch::default_jobs), lemmas: None, keep_bundles: true };
    let mut outcomes = batch::run(jobs, &opts)?;
    for (o, output) in outcomes.iter_mut().zip(&outputs) {
        let Some(proved) = &o.proved else { continue };
        if let Err(e) = std::fs::write(output, &proved.bytes) {
            o.decided.verdict = Verdict::Unreadable { reason: format!("cannot write {}: {e}", output.display()) };
            continue;
        }
        if args.inputs.format == CiFormat::Text {
            let s = proved.stats;
            println!(
                "proved {}: {} obligations, {} steps, {} lemmas cited; complexity {} units/window, cost {}; bundle {} bytes (bytecode {}), {:.1} ms",
                output.display(),
                s.obligations,
                s.steps,
                s.lemmas,
                s.complexity,
                s.cost,
                proved.bytes.len(),
                proved.bundle.module.len(),
                o.elapsed.as_secs_f64() * 1e3
            );
        }
    }
    report_and_exit(args.inputs.format, "vinetc prove", &outcomes)
}
