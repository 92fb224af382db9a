//! `vinetc analyze BUNDLE.vpc --policy POLICY.toml [--format json]`

use std::path::PathBuf;

use vinet_checker::cert::{decode_file, Bundle, BUNDLE_MAGIC};
use vinet_checker::Module;

use super::{load_policy, read_input, Failure, Format};

const AFTER_HELP: &str = "\
Example:
  vinetc analyze firewall.vpc --policy examples/policies/end-user.toml

The paper's alternative to proof-carrying code: decides the same policy by
static analysis of the bytecode alone (abstract interpretation over its
control-flow graph), ignoring any certificate. Takes a bundle (.vpc), whose
declared cost must then match, or a bare module (.vbc).";

/// Arguments of `vinetc analyze`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The bundle or module.
    #[arg(value_name = "BUNDLE.vpc")]
    pub bundle: PathBuf,
    /// The router's safety policy.
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Decide a bundle's or module's bytes; the verdict or the one-line reason.
pub fn decide(bytes: &[u8], policy: &vinet_checker::Policy) -> Result<vinet_analyzer::Verdict, String> {
    let (module, declared) = if bytes.starts_with(BUNDLE_MAGIC) {
        let b: Bundle = decode_file(bytes, BUNDLE_MAGIC, "bundle").map_err(|e| e.to_string())?;
        (Module::decode(&b.module).map_err(|e| format!("bytecode: {e}"))?, Some(b.declared))
    } else {
        (Module::decode(bytes).map_err(|e| format!("bytecode: {e}"))?, None)
    };
    let v = vinet_analyzer::analyze(&module, policy).map_err(|e| e.to_string())?;
    match declared {
        Some(d) if d.complexity != v.complexity => {
            Err(format!("declared complexity {} but the analysis derives {}", d.complexity, v.complexity))
        }
        Some(d) if d.cost != v.cost => Err(format!("declared cost {} but the analysis derives {}", d.cost, v.cost)),
        _ => Ok(v),
    }
}

/// Run `vinetc analyze`.
pub fn run(args: Args) -> Result<(), Failure> {
    let policy = load_policy(&args.policy)?;
    let bytes = read_input(&args.bundle)?;
    let shown = args.bundle.display().to_string();
    match decide(&bytes, &policy) {
        Ok(v) => {
            match args.format {
                Format::Json => {
                    println!("{}", serde_json::json!({"accepted": true, "bundle": shown, "complexity": v.complexity, "cost": v.cost}))
                }
                Format::Text => println!("accepted {shown} by static analysis: complexity {} units/window, cost {}", v.complexity, v.cost),
            }
            Ok(())
        }
        Err(reason) => {
            if let Format::Json = args.format {
                println!("{}", serde_json::json!({"accepted": false, "bundle": shown, "reason": reason}));
            }
            Err(Failure::Rejected(format!("rejected {shown} by static analysis: {reason}")))
        }
    }
}
