//! `vinetc check BUNDLE.vpc --policy POLICY.toml [--lemmas LIB] [--format json]`

use std::path::PathBuf;

use vinet_checker::cert::LemmaCache;

use super::{load_policy, read_input, Failure, Format};

const AFTER_HELP: &str = "\
Example:
  vinetc check firewall.vpc --policy examples/policies/end-user.toml --format json

Checks a bundle as a router does: decodes the bytecode, computes the safety
predicate from it and the policy, and replays the certificate through the
proof kernel, with no solver. Exit 0: accepted; 1: rejected, with the reason in
one line on stderr (and in the JSON); 2: unreadable input or bad usage.
Without --lemmas, the lemma library shipped with vinetc is checked first.";

/// Arguments of `vinetc check`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The bundle.
    #[arg(value_name = "BUNDLE.vpc")]
    pub bundle: PathBuf,
    /// The router's safety policy.
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: PathBuf,
    /// A lemma library file (from `vinetc lemmas build`).
    #[arg(long, value_name = "LIB")]
    pub lemmas: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
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
    let policy = load_policy(&args.policy)?;
    let bytes = read_input(&args.bundle)?;
    let cache = lemma_cache(args.lemmas.as_ref())?;
    match vinet_checker::check(&bytes, &policy, &cache) {
        Ok(c) => {
            match args.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"accepted": true, "bundle": args.bundle.display().to_string(), "module": c.id().to_string(), "complexity": c.complexity(), "cost": c.cost(), "lifetime_secs": c.module().header.lifetime_secs})
                ),
                Format::Text => println!(
                    "accepted {}: module {}, complexity {} units/window, cost {}",
                    args.bundle.display(),
                    c.id(),
                    c.complexity(),
                    c.cost()
                ),
            }
            Ok(())
        }
        Err(e) => {
            let reason = format!("rejected {}: {e}", args.bundle.display());
            if let Format::Json = args.format {
                println!(
                    "{}",
                    serde_json::json!({"accepted": false, "bundle": args.bundle.display().to_string(), "reason": e.to_string()})
                );
            }
            Err(Failure::Rejected(reason))
        }
    }
}
