//! `vinetc status --router HOST:PORT [--key KEY --identity ID]`

use vinet_proto::protocol::{Op, Reply};

use super::upload::{refusal, until, Conn};
use super::{Failure, Format};

const AFTER_HELP: &str = "\
Example:
  vinetc status --router 192.0.2.1:7700 --router-key router.key.pub --key alice.key --identity alice.vid

Shows the router's capacity and load, installed programs, queues and the
sources it drops for everyone; with --key and --identity (a signed request),
also this client's balance and leases with their packet counts.";

/// Arguments of `vinetc status`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Connection and signing.
    #[command(flatten)]
    pub conn: Conn,
}

/// Run `vinetc status`.
pub fn run(args: Args) -> Result<(), Failure> {
    let mut c = args.conn.connect(false)?;
    let reply = if args.conn.key.is_some() {
        args.conn.request(&mut c, Op::Status)?
    } else {
        c.public_status().map_err(|e| Failure::Usage(format!("no answer from the router: {e}")))?
    };
    let Reply::Status(s) = reply else { return Err(refusal(reply, args.conn.format)) };
    match args.conn.format {
        Format::Json => {
            let leases: Vec<_> = s
                .leases
                .iter()
                .map(|l| serde_json::json!({"lease": l.lease, "dest": l.dest, "module": l.module, "complexity": l.complexity, "shared": l.shared, "expires_ms": l.expires_ms, "limit_ms": l.limit_ms, "params": l.params.iter().map(|(n, v)| serde_json::json!({"name": n, "value": v})).collect::<Vec<_>>(), "packets": l.packets, "dropped": l.dropped, "generated": l.generated}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"capacity": s.capacity, "load": s.load, "installed": s.installed, "instances": s.instances, "queues": s.queues, "blocked_sources": s.blocked_sources, "block_reasons": s.block_reasons, "balance": s.balance, "leases": leases})
            );
        }
        Format::Text => {
            println!(
                "load {} of capacity {} cost units/window; {} programs installed ({} distinct instances)",
                s.load, s.capacity, s.installed, s.instances
            );
            let q: u64 = s.queues.iter().map(|x| x.1).sum();
            println!("queued uploads: {q}{}", if q > 0 { format!(" {:?} (cost class, count)", s.queues) } else { String::new() });
            for why in &s.block_reasons {
                println!("dropped for everyone: {why}");
            }
            if let Some(b) = s.balance {
                println!("balance: {b} credits");
            }
            for l in &s.leases {
                let params: Vec<String> = l.params.iter().map(|(n, v)| format!("{n}={v}")).collect();
                println!(
                    "lease {} for {}: module {}{}, complexity {}{}, expires in {} (renewable up to {}); {} packets seen, {} dropped, {} generated",
                    l.lease,
                    l.dest,
                    &l.module[..12.min(l.module.len())],
                    if params.is_empty() { String::new() } else { format!(" ({})", params.join(", ")) },
                    l.complexity,
                    if l.shared { " (shared)" } else { "" },
                    until(l.expires_ms),
                    until(l.limit_ms),
                    l.packets,
                    l.dropped,
                    l.generated
                );
            }
        }
    }
    Ok(())
}
