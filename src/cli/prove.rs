//! `vinetc prove PROG.vinet --policy POLICY.toml [-o PROG.vpc] [--param NAME=VALUE]...`

use std::path::PathBuf;
use std::time::Instant;

use vinet_lang::Severity;

use super::{load_policy, read_input, Failure};

const AFTER_HELP: &str = "\
Example:
  vinetc prove examples/firewall.vinet --policy examples/policies/end-user.toml -o firewall.vpc

Compiles the program and proves it safe under the router's policy: it touches
only the uploader's traffic, and its cost fits the policy for its whole
lifetime. The bundle (.vpc) holds the bytecode and the certificate a router
checks. When the program is not safe, the error points at the line at fault
with a concrete counterexample.";

/// Arguments of `vinetc prove`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The VInet program.
    #[arg(value_name = "PROG.vinet")]
    pub program: PathBuf,
    /// The router's safety policy.
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: PathBuf,
    /// Where to write the bundle [default: the program's path with .vpc].
    #[arg(short, long, value_name = "PROG.vpc")]
    pub output: Option<PathBuf>,
    /// Give or override a parameter.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::build::param)]
    pub params: Vec<(String, String)>,
}

/// Run `vinetc prove`.
pub fn run(args: Args) -> Result<(), Failure> {
    let policy = load_policy(&args.policy)?;
    let source = read_input(&args.program)?;
    let name = args.program.display().to_string();
    let compiled = vinet_lang::compile(&name, &source, &args.params).map_err(|d| {
        d.emit();
        Failure::Rejected(String::new())
    })?;
    let prover = vinet_prover::Prover::new().map_err(|e| Failure::Usage(format!("the lemma library does not build: {e}")))?;
    let started = Instant::now();
    let names: Vec<String> = compiled.program.vars.iter().map(|v| v.name.clone()).collect();
    let proved = match prover.prove_named(&compiled.module, &policy, &names) {
        Ok(p) => p,
        Err(failures) => {
            let n = failures.len();
            let diags = failures
                .into_iter()
                .map(|f| {
                    let d = f.notes.iter().fold(compiled.diagnostic_at(f.at, Severity::Error, &f.message, "here"), |d, n| d.note(n));
                    match &f.help {
                        Some(h) => d.help(h),
                        None => d,
                    }
                })
                .collect();
            compiled.render(diags).action("prove").emit();
            return Err(Failure::Rejected(format!(
                "{name} is not safe under {} ({n} problem{})",
                args.policy.display(),
                if n == 1 { "" } else { "s" }
            )));
        }
    };
    let elapsed = started.elapsed();
    let output = args.output.unwrap_or_else(|| args.program.with_extension("vpc"));
    std::fs::write(&output, &proved.bytes).map_err(|e| Failure::Usage(format!("cannot write {}: {e}", output.display())))?;
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
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
