//! `vinet-onmgr`: the ON manager, its operator commands, and a stand-alone
//! participant server for routers not running vinetd (and for the tests).
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vinet_onmgr::config::{Network, RouterFile};
use vinet_onmgr::control::{self, ask};
#[cfg(feature = "etcd")]
use vinet_onmgr::etcd::Etcd;
use vinet_onmgr::manager::{Control, ControlReply, Manager, Timing};
use vinet_onmgr::router::{self, RouterConfig};
use vinet_onmgr::state::State;
use vinet_onmgr::wire::{self, parse_public, public_hex};
use vinet_overlay::lease::LeaseConfig;
use vinet_overlay::partition::{PartitionConfig, Resources};
use vinet_overlay::store::Store;
use vinet_overlay::twopc::NodeId;

const DEFAULT_MANAGER: &str = "127.0.0.1:7400";

#[derive(Parser)]
#[command(name = "vinet-onmgr", about = "The manager of virtual overlay networks (ONs)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the manager.
    Serve {
        /// Its SQLite store (flow-id pool and decision log).
        #[arg(long, required_unless_present = "etcd", conflicts_with = "etcd")]
        db: Option<PathBuf>,
        /// The control port for request, release and status (keep it on loopback).
        #[arg(long, default_value = DEFAULT_MANAGER)]
        listen: SocketAddr,
        /// The routers file (TOML): routers, their keys and capacities, and links.
        #[arg(long)]
        routers: PathBuf,
        /// The manager's secret key (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The lease refresh period R, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        refresh_ms: u64,
        /// How long routers hold a prepared reservation, in milliseconds.
        #[arg(long, default_value_t = 5_000)]
        prepare_timeout_ms: u64,
        /// How often unanswered messages are resent, in milliseconds.
        #[arg(long, default_value_t = 200)]
        retry_ms: u64,
        /// Keep the state in etcd instead, shared with other managers
        /// (comma-separated http:// endpoints).
        #[arg(long, value_delimiter = ',', requires = "manager_id")]
        etcd: Option<Vec<String>>,
        /// This manager's id among those sharing etcd (its log's name there;
        /// a restart with the same id recovers that log).
        #[arg(long)]
        manager_id: Option<String>,
    },
    /// Ask a running manager for an ON; prints its id or a one-line refusal.
    Request {
        /// The two access points (router names), `A,B`.
        #[arg(long, value_delimiter = ',', required = true)]
        access: Vec<String>,
        /// Bits per second.
        #[arg(long)]
        bps: u64,
        /// Packets per second.
        #[arg(long)]
        pps: u64,
        /// Program capacity units.
        #[arg(long)]
        units: u64,
        /// Two node-disjoint paths.
        #[arg(long)]
        redundant: bool,
        /// The manager's control port.
        #[arg(long, default_value = DEFAULT_MANAGER)]
        manager: SocketAddr,
    },
    /// Release an ON.
    Release {
        /// Its id.
        id: u32,
        /// The manager's control port.
        #[arg(long, default_value = DEFAULT_MANAGER)]
        manager: SocketAddr,
    },
    /// Every ON: state, routers, paths.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
        /// The manager's control port.
        #[arg(long, default_value = DEFAULT_MANAGER)]
        manager: SocketAddr,
    },
    /// A participant's leases and capacity, asked with the manager's key
    /// (what a router holds, for the operator and the emulator); one JSON line.
    Leases {
        /// The participant's address.
        #[arg(long)]
        router: SocketAddr,
        /// Its public key (64 hex digits).
        #[arg(long)]
        router_key: String,
        /// The manager's secret key (the only one a participant answers).
        #[arg(long)]
        key: PathBuf,
    },
    /// Write a new secret key; prints its public half.
    Keygen {
        /// Where to write it (refuses to overwrite).
        out: PathBuf,
    },
    /// Run a participant server (a router's side of the protocol).
    Router {
        /// Its configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vinet-onmgr: {e}");
            ExitCode::FAILURE
        }
    }
}

fn crash_point<T: std::str::FromStr<Err = String>>(var: &str) -> Result<Option<T>, String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v.parse().map(Some).map_err(|e| format!("{var}: {e}")),
        _ => Ok(None),
    }
}

fn ms(v: u64, what: &str) -> Result<Duration, String> {
    if v == 0 {
        return Err(format!("{what} must be positive"));
    }
    Ok(Duration::from_millis(v))
}

fn run(cmd: Cmd) -> Result<(), String> {
    let wait = Duration::from_secs(60);
    match cmd {
        Cmd::Serve { db, listen, routers, key, refresh_ms, prepare_timeout_ms, retry_ms, etcd, manager_id } => {
            let net = Network::load(&routers)?;
            let me = wire::load_key(&key)?;
            let timing = Timing {
                refresh: ms(refresh_ms, "--refresh-ms")?,
                prepare_timeout: ms(prepare_timeout_ms, "--prepare-timeout-ms")?,
                retry: ms(retry_ms, "--retry-ms")?,
            };
            let crash = crash_point("VINET_ONMGR_CRASH_AT")?;
            // Bind before recovering (and before waiting for etcd), so that a
            // client sees the port as soon as the process is up.
            let listener = TcpListener::bind(listen).map_err(|e| format!("listen {listen}: {e}"))?;
            let store = match (db, etcd) {
                (Some(db), None) => State::Local(Store::open(&db).map_err(|e| format!("{}: {e}", db.display()))?),
                #[cfg(feature = "etcd")]
                (None, Some(endpoints)) => {
                    let id = manager_id.ok_or("--etcd needs --manager-id")?;
                    State::Etcd(Box::new(Etcd::connect(&endpoints, &id)?))
                }
                #[cfg(not(feature = "etcd"))]
                (None, Some(_)) => {
                    let _ = manager_id;
                    return Err("this vinet-onmgr was built without etcd (cargo feature `etcd`)".into());
                }
                _ => return Err("serve takes --db FILE or --etcd ENDPOINTS".into()),
            };
            let m = Manager::open(store, net, me, timing, crash)?;
            let tick = timing.retry.min(timing.refresh).min(Duration::from_millis(100)) / 2;
            control::run(m, listener, tick, timing.prepare_timeout * 2 + Duration::from_secs(1))
        }
        Cmd::Request { access, bps, pps, units, redundant, manager } => {
            let access: [String; 2] = access.try_into().map_err(|_| "--access takes two routers, A,B".to_string())?;
            let c = Control::Request { access, rates: Resources { bps, pps, units }, redundant };
            match ask(manager, &c, wait)? {
                ControlReply::Flow(f) => {
                    println!("{f}");
                    Ok(())
                }
                ControlReply::Refused(why) => Err(format!("refused: {why}")),
                other => Err(format!("unexpected answer {other:?}")),
            }
        }
        Cmd::Release { id, manager } => match ask(manager, &Control::Release(id), wait)? {
            ControlReply::Releasing(f) => {
                println!("releasing {f}");
                Ok(())
            }
            ControlReply::Refused(why) => Err(format!("refused: {why}")),
            other => Err(format!("unexpected answer {other:?}")),
        },
        Cmd::Status { json, manager } => match ask(manager, &Control::Status, wait)? {
            ControlReply::Status(ons) => {
                if json {
                    println!("{}", serde_json::to_string(&ons).map_err(|e| e.to_string())?);
                } else {
                    for o in ons {
                        let paths: Vec<String> = o.label.paths.iter().map(|p| p.join("-")).collect();
                        println!(
                            "{} {} {},{} routers {} paths {} bps {} pps {} units {}",
                            o.flow,
                            o.state,
                            o.label.access[0],
                            o.label.access[1],
                            o.routers.join(","),
                            paths.join(" | "),
                            o.rates.bps,
                            o.rates.pps,
                            o.rates.units
                        );
                    }
                }
                Ok(())
            }
            ControlReply::Refused(why) => Err(format!("refused: {why}")),
            other => Err(format!("unexpected answer {other:?}")),
        },
        Cmd::Leases { router, router_key, key } => {
            let peer = parse_public(&router_key)?;
            let me = wire::load_key(&key)?;
            let mut ch = wire::Channel::connect(router, &me, &peer, Duration::from_secs(5)).map_err(|e| format!("{router}: {e}"))?;
            match ch.call::<_, wire::FromRouter>(&wire::ToRouter::Leases).map_err(|e| format!("{router}: {e}"))? {
                wire::FromRouter::Leases { node, capacity, leases } => {
                    println!("{}", leases_json(node, capacity, &leases));
                    Ok(())
                }
                wire::FromRouter::Failed(why) => Err(format!("{router}: {why}")),
                other => Err(format!("{router}: unexpected answer {other:?}")),
            }
        }
        Cmd::Keygen { out } => {
            println!("{}", public_hex(&wire::generate_key(&out)?));
            Ok(())
        }
        Cmd::Router { config } => {
            let text = std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
            let f: RouterFile =
                toml::from_str(&text).map_err(|e| format!("{}: {}", config.display(), e.to_string().lines().next().unwrap_or("")))?;
            let lease = LeaseConfig::new(ms(f.refresh_ms, "refresh_ms")?.as_nanos() as u64).map_err(|e| e.to_string())?;
            let cfg = RouterConfig {
                node: NodeId(f.id),
                listen: f.listen,
                store: f.store,
                key: wire::load_key(&f.key)?,
                manager: parse_public(&f.manager_key)?,
                partition: PartitionConfig { capacity: f.capacity, unreserved_burst_bytes: 64 * 1024, unreserved_burst_packets: 64 },
                lease,
                sweep_every: Duration::from_millis(f.refresh_ms.clamp(10, 1_000) / 2),
                crash_at: crash_point("VINET_ONMGR_ROUTER_CRASH_AT")?,
            };
            let server = router::serve(cfg)?;
            eprintln!("vinet-onmgr router: listening on {}", server.addr());
            server.wait();
            Ok(())
        }
    }
}

/// `leases`' output: the router's id and capacity, and each lease's flow,
/// standing, rates, expiry (Unix ns) and transaction.
fn leases_json(node: NodeId, capacity: Resources, leases: &[wire::LeaseView]) -> serde_json::Value {
    let res = |r: Resources| serde_json::json!({ "bps": r.bps, "pps": r.pps, "units": r.units });
    serde_json::json!({
        "node": node.0,
        "capacity": res(capacity),
        "leases": leases
            .iter()
            .map(|l| serde_json::json!({
                "flow": l.flow.0,
                "active": l.active,
                "rates": res(l.reservation.rates()),
                "expires_ns": l.expires_ns,
                "tx": l.tx.map(|t| t.0),
            }))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinet_overlay::partition::Reservation;
    use vinet_overlay::twopc::TxId;
    use vinet_overlay::FlowId;

    #[test]
    fn leases_are_listed_as_json() {
        let rates = Resources { bps: 8_000, pps: 10, units: 1 };
        let l = wire::LeaseView {
            flow: FlowId(7),
            reservation: Reservation::new(rates, 1_500, 1).unwrap(),
            active: true,
            expires_ns: 42,
            tx: Some(TxId(3)),
        };
        let v = leases_json(NodeId(2), Resources { bps: 1_000_000, pps: 100, units: 5 }, &[l]);
        assert_eq!(v["node"], 2);
        assert_eq!(v["capacity"]["pps"], 100);
        assert_eq!(v["leases"][0]["flow"], 7);
        assert_eq!(v["leases"][0]["active"], true);
        assert_eq!(v["leases"][0]["rates"]["bps"], 8_000);
        assert_eq!(v["leases"][0]["tx"], 3);
        assert_eq!(leases_json(NodeId(1), rates, &[])["leases"].as_array().map(Vec::len), Some(0));
    }
}
