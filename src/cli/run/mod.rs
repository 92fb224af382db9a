//! `vinetc run BUNDLE.vpc --policy POLICY.toml --this-ip IP --pcap IN [--out OUT.pcap]`
//! and `vinetc run --install MANIFEST.toml --policy POLICY.toml --pcap IN`
//!
//! Check first, as a router does (a refused bundle is exit 1 with its reason),
//! then replay the capture through a [`Runner`] with the program(s) installed
//! and report, per installation and for the router, what happened to every
//! frame, and the cost each program was metered per window against the bound
//! its certificate proved.

mod install;
mod replay;
mod report;

use std::collections::HashMap;
use std::path::PathBuf;

use vinet_checker::{Checked, Policy};
use vinet_engine::dispatch::InstallId;
use vinet_engine::runner::Runner;
use vinet_engine::window::WindowConfig;
use vinet_vocab::{addr_text, parse_addr, IpPrefix};

use super::{load_policy, Failure, Format};
use install::{binding, check_bundle, manifest_requests, Request};
use report::{print_json, print_text, show_const, Row};

const AFTER_HELP: &str = "\
Examples:
  vinetc run firewall.vpc --policy examples/policies/end-user.toml \\
      --this-ip 10.0.0.7 --pcap examples/traffic/firewall.pcap --out out.pcap
  vinetc run multicast.vpc --policy examples/policies/edge-router.toml \\
      --this-ip 10.0.0.1 --this-subnet 10.0.0.0/24 --pcap examples/traffic/multicast.pcap
  vinetc run --install clients.toml --policy examples/policies/end-user.toml --pcap in.pcap --format json

Checks each bundle as a router does, installs it for the client, replays the
capture through the router (windows of the policy's window_packets packets or
--window-ms of capture time) and prints, per installation: the packets its
bucket held, what it discarded and generated, the windows it ran in, faults,
and its metered cost per window against its certified bound; then the
router's totals. An edge-router policy needs --this-subnet (THIS_SUBNET_IP).

--install MANIFEST.toml installs many bundles for many clients at once:

  [[install]]
  bundle = \"firewall.vpc\"          # relative to the manifest
  this_ip = \"10.0.0.7\"
  params = { SrcIP = \"203.0.113.9\" }
  [[install]]
  bundle = \"multicast.vpc\"
  policy = \"edge-router.toml\"      # optional: this entry's policy
  this_ip = \"10.0.0.1\"
  this_subnet = \"10.0.0.0/24\"

Exit 0: replayed; 1: a bundle is refused (or a run faulted: a checker bug);
2: bad usage, or an unreadable or damaged capture (the frames before the
damage are still replayed and reported).";

/// Arguments of `vinetc run`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The bundle to check and run (not with --install).
    #[arg(value_name = "BUNDLE.vpc", required_unless_present = "install", conflicts_with = "install")]
    pub bundle: Option<PathBuf>,
    /// The router's safety policy.
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: PathBuf,
    /// THIS_IP: the client's address, IPv4 or IPv6 (not with --install).
    #[arg(long, value_name = "IP", required_unless_present = "install", conflicts_with = "install", value_parser = addr_arg)]
    pub this_ip: Option<u128>,
    /// THIS_SUBNET_IP: the client's prefix, IPv4 or IPv6 (edge-router policies only).
    #[arg(long, value_name = "PREFIX", value_parser = prefix_arg, conflicts_with = "install")]
    pub this_subnet: Option<IpPrefix>,
    /// An install-time parameter value, typed by the program's declaration.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = param_arg, conflicts_with = "install")]
    pub params: Vec<(String, String)>,
    /// A manifest of installations (bundle, this_ip, this_subnet, params).
    #[arg(long, value_name = "MANIFEST.toml")]
    pub install: Option<PathBuf>,
    /// The capture to replay (pcap or pcapng).
    #[arg(long, value_name = "IN")]
    pub pcap: PathBuf,
    /// Write the router's output (forwarded frames, then each window's
    /// generated packets) as a pcap.
    #[arg(long, value_name = "OUT.pcap")]
    pub out: Option<PathBuf>,
    /// A lemma library file (from `vinetc lemmas build`).
    #[arg(long, value_name = "LIB")]
    pub lemmas: Option<PathBuf>,
    /// T: a window spans at most this many milliseconds of capture time.
    #[arg(long, value_name = "T", default_value_t = 50)]
    pub window_ms: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

fn param_arg(arg: &str) -> Result<(String, String), String> {
    vinet_lang::parse_param_arg(arg)
}

fn prefix_arg(s: &str) -> Result<IpPrefix, String> {
    s.parse().map_err(|e: vinet_vocab::PrefixError| e.to_string())
}

fn addr_arg(s: &str) -> Result<u128, String> {
    parse_addr(s).ok_or_else(|| format!("`{s}` is not an IPv4 or IPv6 address"))
}

/// Run `vinetc run`.
pub fn run(args: Args) -> Result<(), Failure> {
    let router_policy = load_policy(&args.policy)?;
    let requests = match &args.install {
        Some(m) => manifest_requests(m, &args.policy)?,
        None => {
            let (Some(bundle), Some(ip)) = (args.bundle.clone(), args.this_ip) else {
                return Err(Failure::Usage("give BUNDLE.vpc and --this-ip, or --install MANIFEST.toml".into()));
            };
            vec![Request { bundle, policy: args.policy.clone(), this_ip: ip, this_subnet: args.this_subnet, params: args.params.clone() }]
        }
    };
    if args.window_ms == 0 {
        return Err(Failure::Usage("--window-ms must be at least 1".into()));
    }

    // Check every distinct (bundle, policy) once, then install.
    let cache = super::check::lemma_cache(args.lemmas.as_ref())?;
    let mut policies: HashMap<PathBuf, Policy> = HashMap::new();
    policies.insert(args.policy.clone(), router_policy);
    let mut checked: HashMap<(PathBuf, PathBuf), Checked> = HashMap::new();
    let cfg = WindowConfig::new(router_policy.window_packets, args.window_ms);
    let mut router = Runner::new(cfg);
    let mut installed: Vec<(InstallId, usize)> = Vec::with_capacity(requests.len());
    for (ri, req) in requests.iter().enumerate() {
        let key = (req.bundle.clone(), req.policy.clone());
        if !checked.contains_key(&key) {
            if !policies.contains_key(&req.policy) {
                let p = load_policy(&req.policy)?;
                policies.insert(req.policy.clone(), p);
            }
            let c = check_bundle(&req.bundle, &policies[&req.policy], &cache)?;
            checked.insert(key.clone(), c);
        }
        let c = &checked[&key];
        let b = binding(req, c)?;
        let id = router
            .dispatch_mut()
            .install(c, &b)
            .map_err(|e| Failure::Usage(format!("cannot install {} for {}: {e}", req.bundle.display(), addr_text(req.this_ip))))?;
        installed.push((id, ri));
    }

    // Replay.
    let replay::Replayed { elapsed, capture_error, write_result } = replay::replay(&mut router, &args.pcap, args.out.clone())?;
    let st = router.stats();

    // Report.
    let rows: Vec<Row> = installed
        .iter()
        .map(|&(id, ri)| {
            let req = &requests[ri];
            let c = &checked[&(req.bundle.clone(), req.policy.clone())];
            let info = router.dispatch().list().find(|i| i.id == id);
            let params = info
                .as_ref()
                .map(|i| c.module().params.iter().zip(i.params).map(|(d, v)| (d.name.clone(), show_const(v))).collect())
                .unwrap_or_default();
            Row {
                bundle: req.bundle.display().to_string(),
                module: c.id().to_string(),
                this_ip: addr_text(req.this_ip),
                this_subnet: req.this_subnet.map(|p| p.to_string()),
                params,
                stats: router.dispatch().stats(id).unwrap_or_default(),
                last_fault: info.and_then(|i| i.last_fault.map(|f| f.to_string())),
            }
        })
        .collect();
    match args.format {
        Format::Json => print_json(&args, &rows, &st, cfg, elapsed, capture_error.as_ref()),
        Format::Text => print_text(&args, &rows, &st, cfg, elapsed),
    }
    if let Err(e) = write_result {
        return Err(Failure::Usage(e));
    }
    if let Some(e) = capture_error {
        return Err(Failure::Usage(format!("{}: {e} (the frames before it were replayed)", args.pcap.display())));
    }
    if st.faults > 0 {
        let first = rows.iter().find_map(|r| r.last_fault.as_ref().map(|f| format!("{}: {f}", r.bundle))).unwrap_or_default();
        return Err(Failure::Rejected(format!("{} run(s) faulted, a bug in the checker or the VM: {first}", st.faults)));
    }
    Ok(())
}
