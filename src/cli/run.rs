//! `vinetc run BUNDLE.vpc --policy POLICY.toml --this-ip IP --pcap IN [--out OUT.pcap]`
//! and `vinetc run --install MANIFEST.toml --policy POLICY.toml --pcap IN`
//!
//! Check first, as a router does (a refused bundle is exit 1 with its reason),
//! then replay the capture through a [`Runner`] with the program(s) installed
//! and report, per installation and for the router, what happened to every
//! frame, and the cost each program was metered per window against the bound
//! its certificate proved.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Deserialize;
use vinet_checker::bytecode::{Const, Ty};
use vinet_checker::cert::LemmaCache;
use vinet_checker::policy::ClientKind;
use vinet_checker::{netmask, Checked, Policy};
use vinet_engine::dispatch::{InstallId, ProgramStats};
use vinet_engine::packet::LinkType;
use vinet_engine::pcap::{CaptureError, CaptureReader, PcapOut};
use vinet_engine::runner::{Runner, RunnerStats};
use vinet_engine::vm::Binding;
use vinet_engine::window::{FrameMeta, Sink, WindowConfig};

use super::{load_policy, read_input, Failure, Format};

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
    /// THIS_IP: the client's address (not with --install).
    #[arg(long, value_name = "IP", required_unless_present = "install", conflicts_with = "install")]
    pub this_ip: Option<Ipv4Addr>,
    /// THIS_SUBNET_IP: the client's prefix (edge-router policies only).
    #[arg(long, value_name = "PREFIX", value_parser = prefix_arg, conflicts_with = "install")]
    pub this_subnet: Option<(u32, u8)>,
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

fn prefix_arg(s: &str) -> Result<(u32, u8), String> {
    parse_prefix(s)
}

/// `a.b.c.d/len` with the host bits zero.
fn parse_prefix(s: &str) -> Result<(u32, u8), String> {
    let (a, l) = s.split_once('/').ok_or_else(|| format!("`{s}` is not a prefix (a.b.c.d/len)"))?;
    let a: Ipv4Addr = a.parse().map_err(|_| format!("`{s}`: `{a}` is not an IPv4 address"))?;
    let l: u8 = l.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("`{s}`: the length must be 0 to 32"))?;
    let net = u32::from(a);
    if net & !netmask(l) != 0 {
        return Err(format!("`{s}` has host bits set (did you mean {}/{l}?)", Ipv4Addr::from(net & netmask(l))));
    }
    Ok((net, l))
}

/// A parameter value typed by the declared type `ty` (the declaration, not
/// the value's syntax, decides: `--param Word=42` is the string "42").
fn typed_value(name: &str, ty: Ty, value: &str) -> Result<Const, String> {
    let bad = |what: &str| format!("--param {name}={value}: {name} is {what}");
    match ty {
        Ty::Addr => value.parse::<Ipv4Addr>().map(|a| Const::Addr(u32::from(a))).map_err(|_| bad("an address (a.b.c.d)")),
        Ty::Prefix => parse_prefix(value).map(|(n, l)| Const::Prefix(n, l)).map_err(|e| format!("--param {name}: {e}")),
        Ty::Num => value.parse::<u64>().map(Const::Num).map_err(|_| bad("a number")),
        Ty::Str => match vinet_lang::parse_param_value(value) {
            Ok(Const::Str(s)) if value.starts_with('"') => Ok(Const::Str(s)),
            Err(e) if value.starts_with('"') => Err(format!("--param {name}: {e}")),
            _ => Ok(Const::Str(value.to_string())),
        },
        other => Err(format!("--param {name}: parameters of type {other:?} are not supported")),
    }
}

fn show_const(c: &Const) -> String {
    match c {
        Const::Addr(a) => Ipv4Addr::from(*a).to_string(),
        Const::Prefix(n, l) => format!("{}/{l}", Ipv4Addr::from(*n)),
        Const::Num(n) => n.to_string(),
        Const::Str(s) => s.clone(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    install: Vec<ManifestEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    bundle: PathBuf,
    this_ip: String,
    this_subnet: Option<String>,
    policy: Option<PathBuf>,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
}

/// One installation to make: a bundle for a client.
struct Request {
    bundle: PathBuf,
    policy: PathBuf,
    this_ip: u32,
    this_subnet: Option<(u32, u8)>,
    params: Vec<(String, String)>,
}

fn manifest_requests(path: &Path, default_policy: &Path) -> Result<Vec<Request>, Failure> {
    let text = String::from_utf8(read_input(path)?).map_err(|_| Failure::Usage(format!("{}: not UTF-8", path.display())))?;
    let m: Manifest =
        toml::from_str(&text).map_err(|e| Failure::Usage(format!("manifest {}: {}", path.display(), e.to_string().trim_end())))?;
    if m.install.is_empty() {
        return Err(Failure::Usage(format!("manifest {}: no [[install]] entry", path.display())));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    m.install
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = |msg: String| Failure::Usage(format!("manifest {} entry {}: {msg}", path.display(), i + 1));
            let this_ip = e.this_ip.parse::<Ipv4Addr>().map_err(|_| at(format!("this_ip `{}` is not an IPv4 address", e.this_ip)))?;
            let this_subnet = e.this_subnet.as_deref().map(parse_prefix).transpose().map_err(at)?;
            let params = e
                .params
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        toml::Value::String(s) => s,
                        toml::Value::Integer(n) => n.to_string(),
                        other => return Err(at(format!("params.{k}: give the value as a string or an integer, not {}", other.type_str()))),
                    };
                    Ok((k, v))
                })
                .collect::<Result<_, _>>()?;
            Ok(Request {
                bundle: base.join(e.bundle),
                policy: e.policy.map_or_else(|| default_policy.to_path_buf(), |p| base.join(p)),
                this_ip: u32::from(this_ip),
                this_subnet,
                params,
            })
        })
        .collect()
}

/// Bind a request's parameter values by name, typed by the declarations.
fn binding(req: &Request, checked: &Checked) -> Result<Binding, Failure> {
    let declared = &checked.module().params;
    let mut values: Vec<Const> = declared.iter().map(|p| p.default.clone()).collect();
    for (name, value) in &req.params {
        let Some(i) = declared.iter().position(|p| &p.name == name) else {
            let names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
            return Err(Failure::Usage(format!(
                "{} declares no parameter {name} (its parameters: {})",
                req.bundle.display(),
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )));
        };
        values[i] = typed_value(name, declared[i].default.ty(), value).map_err(Failure::Usage)?;
    }
    let policy = checked.policy();
    let subnet = match (policy.client, req.this_subnet) {
        (ClientKind::EdgeRouter, None) => {
            return Err(Failure::Usage(format!(
                "{} is checked against an edge-router policy: give the client's prefix, THIS_SUBNET_IP, with --this-subnet (e.g. --this-subnet {}/24)",
                req.bundle.display(),
                Ipv4Addr::from(req.this_ip & netmask(24))
            )))
        }
        (ClientKind::EndUser, Some(_)) => {
            return Err(Failure::Usage(format!(
                "{} is checked against an end-user policy, whose clients are one address: --this-subnet is for edge-router policies",
                req.bundle.display()
            )))
        }
        (_, s) => s,
    };
    Ok(Binding { this_ip: req.this_ip, this_subnet: subnet, params: values })
}

/// Counts bytes read, for the progress bar.
struct Counted<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// The output capture, opened at the first frame (whose link type it takes).
struct Out {
    path: Option<PathBuf>,
    w: Option<PcapOut<BufWriter<File>>>,
    error: Option<String>,
}

impl Out {
    fn writer(&mut self, link: LinkType) -> Option<&mut PcapOut<BufWriter<File>>> {
        if self.w.is_none() && self.error.is_none() {
            let path = self.path.as_ref()?;
            match File::create(path)
                .map_err(|e| e.to_string())
                .and_then(|f| PcapOut::new(BufWriter::new(f), link).map_err(|e| e.to_string()))
            {
                Ok(w) => self.w = Some(w),
                Err(e) => self.error = Some(format!("cannot write {}: {e}", path.display())),
            }
        }
        self.w.as_mut()
    }

    fn finish(mut self, link: LinkType, expected: u64) -> Result<(), String> {
        self.writer(link);
        if let Some(e) = self.error {
            return Err(e);
        }
        let Some(w) = self.w else { return Ok(()) };
        let written = w.written;
        let path = self.path.unwrap_or_default();
        w.into_inner().flush().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if written != expected {
            return Err(format!("cannot write {}: {written} of {expected} frames written", path.display()));
        }
        Ok(())
    }
}

impl Sink for Out {
    fn forward(&mut self, meta: &FrameMeta, data: &[u8]) {
        if let Some(w) = self.writer(meta.link) {
            let _ = w.write_frame(meta.link, meta.ts_ns, meta.orig_len, data);
        }
    }
    fn generated(&mut self, ts_ns: u64, ipv4: &[u8]) {
        if let Some(w) = self.writer(LinkType::Ethernet) {
            let _ = w.write_generated(ts_ns, ipv4);
        }
    }
}

/// A capture at least this large gets a progress bar (on a terminal).
const PROGRESS_BYTES: u64 = 32 << 20;

/// Run `vinetc run`.
pub fn run(args: Args) -> Result<(), Failure> {
    let router_policy = load_policy(&args.policy)?;
    let requests = match &args.install {
        Some(m) => manifest_requests(m, &args.policy)?,
        None => {
            let (Some(bundle), Some(ip)) = (args.bundle.clone(), args.this_ip) else {
                return Err(Failure::Usage("give BUNDLE.vpc and --this-ip, or --install MANIFEST.toml".into()));
            };
            vec![Request {
                bundle,
                policy: args.policy.clone(),
                this_ip: u32::from(ip),
                this_subnet: args.this_subnet,
                params: args.params.clone(),
            }]
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
            .map_err(|e| Failure::Usage(format!("cannot install {} for {}: {e}", req.bundle.display(), Ipv4Addr::from(req.this_ip))))?;
        installed.push((id, ri));
    }

    // Replay.
    let file = File::open(&args.pcap).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", args.pcap.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read = Rc::new(Cell::new(0u64));
    let mut reader = CaptureReader::new(Counted { inner: file, n: Rc::clone(&read) })
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", args.pcap.display())))?;
    let bar = (size >= PROGRESS_BYTES && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(size);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} replaying [{bar:40}] {bytes}/{total_bytes} {msg} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    });
    let mut out = Out { path: args.out.clone(), w: None, error: None };
    let mut link = reader.link_type().unwrap_or(LinkType::Ethernet);
    let mut capture_error: Option<CaptureError> = None;
    let started = std::time::Instant::now();
    loop {
        match reader.next_frame() {
            None => break,
            Some(Err(e)) => {
                capture_error = Some(e);
                break;
            }
            Some(Ok(f)) => {
                link = f.link;
                router.push(f, &mut out);
            }
        }
        if let Some(b) = &bar {
            if reader.frames_read() % 65_536 == 0 {
                b.set_position(read.get());
                b.set_message(format!("{} frames", reader.frames_read()));
            }
        }
    }
    router.flush(&mut out);
    let elapsed = started.elapsed();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let st = router.stats();
    let write_result = out.finish(link, st.forwarded + st.generated);

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
                this_ip: Ipv4Addr::from(req.this_ip).to_string(),
                this_subnet: req.this_subnet.map(|(n, l)| format!("{}/{l}", Ipv4Addr::from(n))),
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

fn check_bundle(path: &Path, policy: &Policy, cache: &LemmaCache) -> Result<Checked, Failure> {
    let bytes = read_input(path)?;
    vinet_checker::check(&bytes, policy, cache).map_err(|e| Failure::Rejected(format!("rejected {}: {e}", path.display())))
}

struct Row {
    bundle: String,
    module: String,
    this_ip: String,
    this_subnet: Option<String>,
    params: Vec<(String, String)>,
    stats: ProgramStats,
    last_fault: Option<String>,
}

impl Row {
    /// Runs that completed (their cost was metered).
    fn ok_runs(&self) -> u64 {
        self.stats.windows - self.stats.faults
    }
    fn mean_cost(&self) -> f64 {
        if self.ok_runs() == 0 {
            0.0
        } else {
            self.stats.total_cost as f64 / self.ok_runs() as f64
        }
    }
    /// The bound over the worst run seen (at least 1 when the bound holds).
    fn ratio(&self) -> Option<f64> {
        (self.stats.max_cost > 0).then(|| self.stats.certified as f64 / self.stats.max_cost as f64)
    }
}

fn print_text(args: &Args, rows: &[Row], st: &RunnerStats, cfg: WindowConfig, elapsed: std::time::Duration) {
    println!(
        "replayed {}: windows of {} packets or {} ms; {} installation{}",
        args.pcap.display(),
        cfg.packets,
        cfg.millis,
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    println!();
    let shown = rows.len().min(50);
    println!(
        "{:<28} {:<18} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "program",
        "client",
        "in",
        "discarded",
        "forwarded",
        "generated",
        "windows",
        "faults",
        "cost max",
        "cost mean",
        "bound",
        "bound/max"
    );
    for r in &rows[..shown] {
        let name = Path::new(&r.bundle).file_name().map_or_else(|| r.bundle.clone(), |n| n.to_string_lossy().into_owned());
        let client = r.this_subnet.clone().unwrap_or_else(|| r.this_ip.clone());
        let s = &r.stats;
        println!(
            "{:<28} {:<18} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9.1} {:>9} {:>9}",
            format!("{name} ({})", &r.module[..8]),
            client,
            s.packets_in,
            s.discarded,
            s.packets_in - s.discarded.min(s.packets_in),
            s.generated,
            s.windows,
            s.faults,
            s.max_cost,
            r.mean_cost(),
            s.certified,
            r.ratio().map_or_else(|| "-".to_string(), |x| format!("{x:.2}x")),
        );
        if let Some(f) = &r.last_fault {
            println!("    fault: {f}");
        }
    }
    if rows.len() > shown {
        let sum = |f: fn(&ProgramStats) -> u64| rows[shown..].iter().map(|r| f(&r.stats)).sum::<u64>();
        println!(
            "... and {} more installations: {} in, {} discarded, {} generated, {} faults",
            rows.len() - shown,
            sum(|s| s.packets_in),
            sum(|s| s.discarded),
            sum(|s| s.generated),
            sum(|s| s.faults)
        );
    }
    println!();
    println!(
        "router: {} frames in ({} IPv4), {} forwarded, {} dropped, {} generated, {} unparsed, {} not IPv4; {} windows, {} runs, {} faults; {:.1} ms",
        st.frames_in,
        st.packets_in,
        st.forwarded,
        st.discarded,
        st.generated,
        st.unparsed,
        st.not_ipv4,
        st.windows,
        st.runs,
        st.faults,
        elapsed.as_secs_f64() * 1e3
    );
    if let Some(o) = &args.out {
        println!("wrote {}: {} frames", o.display(), st.forwarded + st.generated);
    }
}

fn print_json(
    args: &Args, rows: &[Row], st: &RunnerStats, cfg: WindowConfig, elapsed: std::time::Duration, capture_error: Option<&CaptureError>,
) {
    use serde_json::json;
    let programs: Vec<_> = rows
        .iter()
        .map(|r| {
            let s = &r.stats;
            json!({
                "bundle": r.bundle,
                "module": r.module,
                "this_ip": r.this_ip,
                "this_subnet": r.this_subnet,
                "params": r.params.iter().cloned().collect::<BTreeMap<_, _>>(),
                "packets_in": s.packets_in,
                "discarded": s.discarded,
                "forwarded": s.packets_in - s.discarded.min(s.packets_in),
                "generated": s.generated,
                "windows": s.windows,
                "faults": s.faults,
                "cost_max": s.max_cost,
                "cost_mean": r.mean_cost(),
                "certified": s.certified,
                "bound_over_max": r.ratio(),
                "last_fault": r.last_fault,
            })
        })
        .collect();
    println!(
        "{}",
        json!({
            "capture": args.pcap.display().to_string(),
            "window_packets": cfg.packets,
            "window_ms": cfg.millis,
            "programs": programs,
            "router": {
                "frames_in": st.frames_in,
                "packets_in": st.packets_in,
                "forwarded": st.forwarded,
                "dropped": st.discarded,
                "generated": st.generated,
                "unparsed": st.unparsed,
                "not_ipv4": st.not_ipv4,
                "windows": st.windows,
                "runs": st.runs,
                "faults": st.faults,
            },
            "out": args.out.as_ref().map(|p| p.display().to_string()),
            "capture_error": capture_error.map(|e| e.to_string()),
            "elapsed_ms": elapsed.as_secs_f64() * 1e3,
        })
    );
}
