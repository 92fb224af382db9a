//! The `vinetc` subcommands, one module each.
//!
//! Adding a subcommand is one variant of [`Command`] (whose doc comment is its
//! one-line help) and one module with an `Args` struct (clap derive, with an
//! `after_help` example) and a `run(Args) -> Result<(), Failure>`.
//!
//! Exit codes (DESIGN section 8): 0 success, 1 the program or bundle is
//! rejected, 2 bad usage or unreadable input. clap's own usage errors exit 2.

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod analyze;
pub mod batch;
pub mod build;
pub mod check;
pub mod deploy;
pub mod fmt;
pub mod identity;
pub mod inspect;
pub mod inspect_bundle;
pub mod keygen;
pub mod lemmas;
pub mod locate;
pub mod new;
pub mod project;
pub mod prove;
pub mod renew;
pub mod report;
pub mod run;
pub mod status;
pub mod upload;
pub mod withdraw;

const EXAMPLES: &str = "\
Examples:
  vinetc new firewall --block 10.0.0.7 --block 192.0.2.0/24 --lifetime 3600 -o fw.vinet
  vinetc build examples/firewall.vinet --param SrcIP=198.51.100.23
  vinetc prove examples/firewall.vinet --policy examples/policies/end-user.toml
  vinetc check examples/firewall.vpc --policy examples/policies/end-user.toml
  vinetc check --format github      (the project in vinet.toml)
  vinetc fmt --check examples/firewall.vinet
  vinetc analyze examples/firewall.vpc --policy examples/policies/end-user.toml
  vinetc inspect examples/firewall.vpc
  vinetc lemmas build lemmas/
  vinetc run firewall.vpc --policy examples/policies/end-user.toml --this-ip 10.0.0.7 --pcap examples/traffic/firewall.pcap
  vinetc locate 10.9.3.4 --directory routers.van --trust operator.key.pub
  vinetc deploy --policy end-user.toml --directory routers.van --trust operator.key.pub --key alice.key \\
      --identity alice.vid --pay 200 firewall --block 10.9.0.66

Exit codes: 0 success, 1 program rejected, 2 bad usage or unreadable input.";

/// vinetc: build VInet packet programs into proof-carrying bytecode.
#[derive(Parser, Debug)]
#[command(name = "vinetc", version, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a program from parameters: a firewall, a spam filter, a multicast aggregator or a worm blocker.
    New(new::Args),
    /// Compile a VInet program to a bytecode module (.vbc).
    Build(build::Args),
    /// Print a readable listing of a module or bundle.
    Inspect(inspect::Args),
    /// Compile and prove a program safe under a router's policy (.vpc bundle).
    Prove(prove::Args),
    /// Check programs and bundles against router policies, as a router does (CI: JSON lines, JUnit, SARIF, GitHub).
    Check(check::Args),
    /// Format VInet programs (or, with --check, fail when one is not formatted).
    Fmt(fmt::Args),
    /// Decide a bundle by static analysis of its bytecode (no certificate).
    Analyze(analyze::Args),
    /// Build and check the lemma library.
    Lemmas(lemmas::Args),
    /// Check bundles, then replay a capture through a router running them.
    Run(run::Args),
    /// Make an ed25519 key pair (a client's or an authority's).
    Keygen(keygen::Args),
    /// Issue or show identity certificates (an authority binds a key to an address).
    Identity(identity::Args),
    /// Upload a bundle to a router, signed and paid for.
    Upload(upload::Args),
    /// Extend a lease on a router.
    Renew(renew::Args),
    /// End a lease on a router.
    Withdraw(withdraw::Args),
    /// A router's load, capacity, queues, and this client's balance and leases.
    Status(status::Args),
    /// Find the edge router nearest a traffic source in a directory of signed router announcements.
    Locate(locate::Args),
    /// New (or an existing program), prove, locate and upload, in one step.
    Deploy(deploy::Args),
}

/// Output formats of the verifying subcommands.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON object on stdout, for CI.
    Json,
}

/// Read a policy file, or fail with exit 2.
pub fn load_policy(path: &Path) -> Result<vinet_checker::Policy, Failure> {
    vinet_engine::policy_file::load(path).map_err(|e| Failure::Usage(format!("policy {}: {e}", path.display())))
}

/// Why a subcommand did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The program or bundle is rejected (exit 1). Diagnostics were printed;
    /// the string is the one-line reason.
    Rejected(String),
    /// Bad usage or unreadable input (exit 2), with the one-line reason.
    Usage(String),
}

/// Parse the command line, run the subcommand, and map the outcome to the
/// exit code.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New(args) => new::run(args),
        Command::Build(args) => build::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Prove(args) => prove::run(args),
        Command::Check(args) => check::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Lemmas(args) => lemmas::run(args),
        Command::Run(args) => run::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Identity(args) => identity::run(args),
        Command::Upload(args) => upload::run(args),
        Command::Renew(args) => renew::run(args),
        Command::Withdraw(args) => withdraw::run(args),
        Command::Status(args) => status::run(args),
        Command::Locate(args) => locate::run(args),
        Command::Deploy(args) => deploy::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Rejected(reason)) => {
            if !reason.is_empty() {
                eprintln!("vinetc: {reason}");
            }
            ExitCode::from(1)
        }
        Err(Failure::Usage(reason)) => {
            eprintln!("vinetc: {reason}");
            ExitCode::from(2)
        }
    }
}

/// Read a whole input file, or fail with exit 2.
pub fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
}

/// A `--param` value written in double quotes, as the language reads a
/// string literal (its escapes): the `unquote` of
/// [`vinet_vocab::params::bind_params`], which leaves that syntax to the front end.
pub fn unquote(value: &str) -> Result<String, String> {
    match vinet_lang::parse_param_value(value)? {
        vinet_checker::bytecode::Const::Str(s) => Ok(s),
        _ => Err(format!("{value} is not a string literal")),
    }
}

/// A lifetime in seconds, in the largest unit that divides it.
pub fn fmt_lifetime(secs: u64) -> String {
    let plural = |n: u64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    match secs {
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

/// Writing to a closed pipe (`vinetc inspect X | head`) ends the process
/// quietly, as a Unix tool killed by SIGPIPE would (status 141), instead of
/// panicking; any other panic keeps the default report.
pub fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
