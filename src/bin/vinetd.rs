//! `vinetd --config ROUTER.toml`: the vinet router daemon.
//!
//! Clients upload proof-carrying programs over an encrypted channel; vinetd
//! authenticates them, schedules them within its capacity, checks their
//! proofs, runs them on live traffic (NFQUEUE on Linux) and keeps everything
//! it admitted in SQLite, so a restart (even `kill -9`) loses nothing. See
//! `examples/router.toml` and `vinet_router::daemon`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vinet_proto::identity::hex;
use vinet_proto::keyfile::router_key;
use vinet_router::config::Config;
use vinet_router::daemon::Daemon;

const AFTER_HELP: &str = "\
Examples:
  vinetd --config examples/router.toml
  vinetd --config examples/router.toml --print-key     # the key clients pin with --router-key
  vinetd --config examples/router.toml ctl leases      # operator commands, over the local socket (ctl help)
  vinetd --config examples/router.toml unhook          # remove the kernel hooks vinetd left in place
  vinetd --config router.toml announce >> directory.van   # this router's signed directory entry ([announce])

Logs go to stderr (VINET_LOG=error|warn|info|debug|trace, default info; the
config's log_format = \"json\" gives one JSON object a line). Metrics are served
in the Prometheus text format at http://METRICS/metrics.
Exit codes: 2 when the configuration, the database or the sockets cannot be used.";

/// vinetd: the vinet programmable edge router.
#[derive(Parser, Debug)]
#[command(name = "vinetd", version, after_help = AFTER_HELP)]
struct Args {
    /// The router's configuration.
    #[arg(long, value_name = "ROUTER.toml")]
    config: PathBuf,
    /// Print the router's public key (creating the key if needed) and exit.
    #[arg(long)]
    print_key: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Send an operator command to the running router, over its local socket
    /// (`vinetd --config ROUTER.toml ctl help` lists them).
    Ctl {
        /// The command and its arguments: leases, clients, blocks, evict LEASE,
        /// ban KEY [REASON], unban KEY, lift SOURCE, refusals, help.
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
    },
    /// Remove vinetd's kernel hooks (its nftables table `inet vinet` and its
    /// iptables NFQUEUE rules), which outlive vinetd so that its down-behaviour
    /// holds while it is down. Run it when the router stops running vinet.
    Unhook,
    /// Print this router's signed directory entry (the config's [announce]:
    /// its address, Noise public key, source prefixes and expiry, signed by
    /// the announcement key), for the directory that `vinetc locate` reads.
    Announce {
        /// Write the entry to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vinetd: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(unix)]
    if let Some(Cmd::Ctl { words }) = &args.cmd {
        return match vinet_router::operator::command(&cfg.operator_socket, words) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vinetd ctl: {e}");
                ExitCode::from(1)
            }
        };
    }
    #[cfg(target_os = "linux")]
    if let Some(Cmd::Unhook) = &args.cmd {
        return match vinet_router::live::hooks::remove() {
            Ok(()) => {
                println!("removed vinetd's kernel hooks: table inet vinet, and its iptables and ip6tables NFQUEUE rules");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vinetd unhook: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Cmd::Announce { output }) = &args.cmd {
        let signed = match vinet_router::announce::announcement(&cfg, vinet_proto::clock::unix_now()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("vinetd announce: {e}");
                return ExitCode::from(2);
            }
        };
        let text = vinet_router::announce::lines(&signed);
        return match output {
            None => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Some(p) => match std::fs::write(p, &text) {
                Ok(()) => {
                    println!("wrote {}: {}", p.display(), text.lines().next().unwrap_or_default().trim_start_matches("# "));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vinetd announce: cannot write {}: {e}", p.display());
                    ExitCode::from(2)
                }
            },
        };
    }
    if args.print_key {
        return match router_key(&cfg.router_key) {
            Ok((_, public)) => {
                println!("{} {}", vinet_proto::keyfile::PUBLIC_TAG, hex(&public));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vinetd: {e}");
                ExitCode::from(2)
            }
        };
    }
    let level = match std::env::var("VINET_LOG").unwrap_or_default().as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let sub = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_ansi(false);
    if cfg.log_format == "json" {
        sub.json().init();
    } else {
        sub.init();
    }
    match Daemon::start(cfg) {
        Ok(d) => {
            d.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "vinetd cannot start");
            eprintln!("vinetd: {e}");
            ExitCode::from(2)
        }
    }
}
