//! `vinetc withdraw --lease ID --router HOST:PORT --key KEY --identity ID`

use vinet_proto::protocol::{Op, Reply};

use super::upload::{refusal, Conn};
use super::{Failure, Format};

const AFTER_HELP: &str = "\
Example:
  vinetc withdraw --lease 7 --router 192.0.2.1:7700 --router-key router.key.pub --key alice.key --identity alice.vid

Ends a lease now: the program stops and its load is released (unless another
client's lease shares the instance). Nothing is refunded.";

/// Arguments of `vinetc withdraw`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The lease.
    #[arg(long)]
    pub lease: u64,
    /// Connection and signing.
    #[command(flatten)]
    pub conn: Conn,
}

/// Run `vinetc withdraw`.
pub fn run(args: Args) -> Result<(), Failure> {
    let mut c = args.conn.connect(true)?;
    match args.conn.request(&mut c, Op::Withdraw { lease: args.lease })? {
        Reply::Withdrawn { lease } => {
            match args.conn.format {
                Format::Json => println!("{}", serde_json::json!({"ok": true, "lease": lease})),
                Format::Text => println!("withdrew lease {lease}"),
            }
            Ok(())
        }
        other => Err(refusal(other, args.conn.format)),
    }
}
