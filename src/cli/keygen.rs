//! `vinetc keygen -o KEY`: a new ed25519 key pair for a client or an authority.

use std::path::PathBuf;

use vinet_proto::identity::{generate_key, public_key_text, secret_key_text};
use vinet_proto::keyfile::write_private;

use super::Failure;

const AFTER_HELP: &str = "\
Example:
  vinetc keygen -o alice.key        # writes alice.key (secret, mode 0600) and alice.key.pub

The same command makes an operator's authority key: the router's config lists
the authority's public key (the hex in its .pub file) under [[authorities]].
Key files are one text line: `vinet-secret-key-v1 <hex>` / `vinet-public-key-v1 <hex>`.";

/// Arguments of `vinetc keygen`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Where to write the secret key (the public key goes to the same path + .pub).
    #[arg(short, long, value_name = "KEY")]
    pub output: PathBuf,
    /// Replace an existing key file.
    #[arg(long)]
    pub force: bool,
}

/// Run `vinetc keygen`.
pub fn run(args: Args) -> Result<(), Failure> {
    if args.output.exists() && !args.force {
        return Err(Failure::Usage(format!("{} exists (use --force to replace it)", args.output.display())));
    }
    let k = generate_key().map_err(Failure::Usage)?;
    write_private(&args.output, &secret_key_text(&k)).map_err(Failure::Usage)?;
    let public = public_key_text(&k.verifying_key());
    let pubpath = PathBuf::from(format!("{}.pub", args.output.display()));
    std::fs::write(&pubpath, &public).map_err(|e| Failure::Usage(format!("cannot write {}: {e}", pubpath.display())))?;
    print!("wrote {} and {}: {public}", args.output.display(), pubpath.display());
    Ok(())
}
