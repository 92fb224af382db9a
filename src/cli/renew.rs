//! `vinetc renew --lease ID --pay N --router HOST:PORT --key KEY --identity ID`

use vinet_proto::protocol::{Op, Reply};

use super::upload::{refusal, until, Conn};
use super::{Failure, Format};

const AFTER_HELP: &str = "\
Example:
  vinetc renew --lease 7 --pay 200 --router 192.0.2.1:7700 --router-key router.key.pub --key alice.key --identity alice.vid

Extends a lease by one more lifetime of its program, from its current end (or
from now if that is later), for the same price as the upload.";

/// Arguments of `vinetc renew`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The lease (from `upload` or `status`).
    #[arg(long)]
    pub lease: u64,
    /// Credits to pay.
    #[arg(long, value_name = "N")]
    pub pay: u64,
    /// Connection and signing.
    #[command(flatten)]
    pub conn: Conn,
}

/// Run `vinetc renew`.
pub fn run(args: Args) -> Result<(), Failure> {
    let mut c = args.conn.connect(true)?;
    match args.conn.request(&mut c, Op::Renew { lease: args.lease, pay: args.pay })? {
        Reply::Renewed { lease, expires_ms, balance } => {
            match args.conn.format {
                Format::Json => {
                    println!("{}", serde_json::json!({"ok": true, "lease": lease, "expires_ms": expires_ms, "balance": balance}))
                }
                Format::Text => println!("renewed lease {lease}: expires in {}; balance {balance}", until(expires_ms)),
            }
            Ok(())
        }
        other => Err(refusal(other, args.conn.format)),
    }
}
