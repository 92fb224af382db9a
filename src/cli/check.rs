//! `vinetc check [INPUT]... [--policy POLICY.toml]... [--format FORMAT]`
//!
//! Programs are compiled, proved and their bundles checked as a router checks
//! them; bundles are checked. With no input, the project file `vinet.toml`
//! (here or in a parent directory) names what to check.

use std::path::PathBuf;

use vinet_checker::cert::LemmaCache;

use super::batch::{self, Outcome, Verdict};
use super::project::{self, Job};
use super::report::{self, CiFormat};
use super::{read_input, Failure};

const AFTER_HELP: &str = "\
Examples:
  vinetc check firewall.vpc --policy examples/policies/end-user.toml --format json
  vinetc check 'programs/*.vinet' bundles/ --policy end-user.toml --policy edge-router.toml
  vinetc check                      (the project: vinet.toml here or in a parent)
  vinetc check --format sarif > vinet.sarif

Checks a bundle as a router does: decodes the bytecode, computes the safety
predicate from it and the policy, and replays the certificate through the
proof kernel, with no solver. A program (.vinet) is compiled and proved, and
its bundle checked the same way. Inputs are files, directories (their .vinet
programs) and globs, each against every --policy.

A project file, vinet.toml, names the programs, their parameters and the
policies of the routers they target:

  [policies]
  end-user = \"policies/end-user.toml\"
  [[program]]
  path = \"programs/*.vinet\"          # a file, a directory or a glob
  policies = [\"end-user\"]            # default: every policy
  params = { SrcIP = \"203.0.113.9\" }

A project's outcomes are cached in .vinet-cache/ beside vinet.toml (keyed by
the hash of the tool, the program, its parameters and the policy), so an
unchanged program is not proved again; --no-cache turns that off.

Exit 0: everything accepted; 1: something refused, each diagnostic located
(file, line, column) in every format; 2: unreadable input or bad usage.
Without --lemmas, the lemma library shipped with vinetc is checked first.";

/// What `vinetc check` and `vinetc prove` work on, and how.
#[derive(clap::Args, Debug)]
pub struct Inputs {
    /// Programs (.vinet), bundles (.vpc), directories or globs [default: the project in vinet.toml].
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// A router's safety policy (repeat for several routers).
    #[arg(long = "policy", value_name = "POLICY.toml")]
    pub policies: Vec<PathBuf>,
    /// The project file [default: vinet.toml here or in the nearest parent].
    #[arg(long, value_name = "vinet.toml", conflicts_with_all = ["inputs", "policies", "params"])]
    pub project: Option<PathBuf>,
    /// Give or override a parameter of the named programs.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::build::param)]
    pub params: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: CiFormat,
    /// Worker threads [default: one per core].
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Where to cache outcomes [default: .vinet-cache/ beside vinet.toml; none for named inputs].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Decide everything afresh, reading and writing no cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

/// The cache directory's name inside a project.
pub const CACHE_DIR: &str = ".vinet-cache";

impl Inputs {
    /// The jobs, and the cache directory to use.
    pub fn plan(&self) -> Result<(Vec<Job>, Option<PathBuf>), Failure> {
        let (jobs, cache) = if self.inputs.is_empty() && self.policies.is_empty() && self.params.is_empty() {
            let file = match &self.project {
                Some(f) => f.clone(),
                None => project::find_project()?,
            };
            let p = project::load_project(&file)?;
            (p.jobs, Some(p.root.join(CACHE_DIR)))
        } else {
            if self.inputs.is_empty() {
                return Err(Failure::Usage("name the programs or bundles to work on (or none, to use the project's vinet.toml)".into()));
            }
            (project::command_line_jobs(&self.inputs, &self.policies, &self.params)?, None)
        };
        let cache = if self.no_cache { None } else { self.cache_dir.clone().or(cache) };
        Ok((jobs, cache))
    }
}

/// Arguments of `vinetc check`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// What to check.
    #[command(flatten)]
    pub inputs: Inputs,
    /// A lemma library file (from `vinetc lemmas build`), for bundles.
    #[arg(long, value_name = "LIB")]
    pub lemmas: Option<PathBuf>,
}

/// The lemma cache: a library file's lemmas, each checked, or the shipped library's.
pub fn lemma_cache(path: Option<&PathBuf>) -> Result<LemmaCache, Failure> {
    let mut cache = LemmaCache::new();
    let bytes = match path {
        Some(p) => read_input(p)?,
        None => {
            let set = vinet_prover::lemma_src::build(vinet_prover::lemma_src::BUILTIN).map_err(Failure::Usage)?;
            vinet_checker::cert::encode_file(&set.library, vinet_checker::cert::LIBRARY_MAGIC)
        }
    };
    cache.admit_library(&bytes).map_err(|e| Failure::Rejected(format!("lemma library refused: {e}")))?;
    Ok(cache)
}

/// Run `vinetc check`.
pub fn run(args: Args) -> Result<(), Failure> {
    let (jobs, cache) = args.inputs.plan()?;
    let opts = batch::Options {
        cache,
        jobs: args.inputs.jobs.unwrap_or_else(batch::default_jobs),
        lemmas: args.lemmas.as_deref(),
        keep_bundles: false,
    };
    let outcomes = batch::run(jobs, &opts)?;
    report_and_exit(args.inputs.format, "vinetc check", &outcomes)
}

/// Print the outcomes in `format`, and map them to the exit status: any
/// unreadable input is exit 2, else any refusal exit 1.
pub fn report_and_exit(format: CiFormat, command: &str, outcomes: &[Outcome]) -> Result<(), Failure> {
    let many = outcomes.len() > 1;
    if format == CiFormat::Text {
        for o in outcomes {
            eprint!("{}", o.decided.rendered);
            if many {
                match &o.decided.verdict {
                    Verdict::Refused { reason } => eprintln!("refused {} under {}: {reason}", o.job.label(), o.job.policy.name),
                    Verdict::Unreadable { reason } => eprintln!("could not decide {} under {}: {reason}", o.job.label(), o.job.policy.name),
                    Verdict::Accepted { .. } => {}
                }
            }
        }
    }
    print!("{}", report::render(format, command, outcomes));
    let refused: Vec<&Outcome> = outcomes.iter().filter(|o| matches!(o.decided.verdict, Verdict::Refused { .. })).collect();
    let unreadable: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match &o.decided.verdict {
            Verdict::Unreadable { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    if let Some(first) = unreadable.first() {
        let more = if unreadable.len() > 1 { format!(" (and {} more unreadable)", unreadable.len() - 1) } else { String::new() };
        return Err(Failure::Usage(format!("{first}{more}")));
    }
    match refused.as_slice() {
        [] => Ok(()),
        [one] if !many => match &one.decided.verdict {
            Verdict::Refused { reason } if one.job.is_bundle() => {
                Err(Failure::Rejected(format!("rejected {}: {reason}", one.job.file.display())))
            }
            Verdict::Refused { reason } => Err(Failure::Rejected(reason.clone())),
            _ => Err(Failure::Rejected(String::new())),
        },
        r => Err(Failure::Rejected(format!("{} of {} refused", r.len(), outcomes.len()))),
    }
}
