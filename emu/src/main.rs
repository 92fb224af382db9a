//! `vinet-emu`: run a scenario of vinet routers in network namespaces.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use vinet_emu::report;
use vinet_emu::run::{self, Progress, RunError, Tools};
use vinet_emu::scenario;
use vinet_emu::topology::{Kind, Plan};
use vinet_emu::{agent, netns};

const AFTER_HELP: &str = "\
Examples:
  vinet-emu check emu/scenarios/worm-partial.toml     # parse and plan, no root needed
  vinet-emu run emu/scenarios/worm-partial.toml       # every run of its [sweep]; results in emu/out/NAME/
  vinet-emu run emu/scenarios/worm-partial.toml --single --seed 3
  vinet-emu clean                                     # namespaces of runs that are gone
  vinet-emu export emu/scenarios/worm-partial.toml > worm.clab.yml   # containerlab topology

The scenario format is documented in emu/README.md. Exit codes: 0 done, 1 a run
failed, 2 a bad scenario or argument, 130 interrupted (everything torn down).";

/// vinet-emu: a network of vinet routers in Linux network namespaces.
#[derive(Parser, Debug)]
#[command(name = "vinet-emu", version, after_help = AFTER_HELP)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a scenario (all of its sweep, unless --single) and write results and plots.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Output directory (default: emu/out/NAME under the repository).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where vinetc and vinetd are (default: beside this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// The repository (for examples/policies; default: where this was built).
        #[arg(long)]
        root: Option<PathBuf>,
        /// One run, ignoring [sweep].
        #[arg(long)]
        single: bool,
        /// Override the seed (with --single).
        #[arg(long)]
        seed: Option<u64>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Parse and plan a scenario; print what it would build.
    Check {
        /// The scenario file.
        scenario: PathBuf,
    },
    /// Remove namespaces (and the processes in them) of runs that are gone.
    Clean {
        /// Every vinet-emu namespace, even of runs still going.
        #[arg(long)]
        all: bool,
    },
    /// Write a scenario's network as a containerlab topology (YAML, on stdout).
    Export {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// The image of every node.
        #[arg(long, default_value = "vinet:latest")]
        image: String,
    },
    /// Plot again from a run's JSON or a sweep's sweep.json.
    Plot {
        /// The results file.
        json: PathBuf,
    },
    /// The traffic agent (run by the emulator inside each host).
    #[command(hide = true)]
    Agent {
        /// Its spec (JSON).
        spec: PathBuf,
    },
    /// One end of a transfer inside an ON (run by the emulator inside a host).
    #[command(hide = true)]
    Transfer {
        /// "send" or "recv".
        role: String,
        /// The receiver's TCP address.
        #[arg(long)]
        tcp: std::net::SocketAddrV4,
        /// The receiver's UDP address.
        #[arg(long)]
        udp: std::net::SocketAddrV4,
        /// send: TCP bytes.
        #[arg(long, default_value_t = 0)]
        bytes: u64,
        /// send: bits a second.
        #[arg(long, default_value_t = 8_000_000)]
        rate: u64,
        /// send: datagrams a second.
        #[arg(long, default_value_t = 100.0)]
        pps: f64,
        /// recv: the most seconds it waits.
        #[arg(long, default_value_t = 120.0)]
        seconds: f64,
    },
    /// The bulk upload client of a `load` event (run by the emulator inside a host).
    #[command(hide = true)]
    Load {
        /// Its spec (JSON).
        spec: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.cmd {
        Cmd::Transfer { role, tcp, udp, bytes, rate, pps, seconds } => {
            let line = match role.as_str() {
                "send" => serde_json::to_string(&vinet_emu::transfer::send(tcp, udp, bytes, rate, pps)),
                "recv" => match vinet_emu::transfer::recv(tcp, udp, seconds) {
                    Ok(r) => serde_json::to_string(&r),
                    Err(e) => {
                        eprintln!("vinet-emu transfer: {e}");
                        return ExitCode::from(1);
                    }
                },
                _ => {
                    eprintln!("vinet-emu transfer: the role is send or recv");
                    return ExitCode::from(2);
                }
            };
            println!("transfer {}", line.expect("json"));
            ExitCode::SUCCESS
        }
        Cmd::Agent { spec } => {
            let text = match std::fs::read_to_string(&spec) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("vinet-emu agent: {}: {e}", spec.display());
                    return ExitCode::from(2);
                }
            };
            let spec: agent::AgentSpec = match serde_json::from_str(&text) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("vinet-emu agent: {e}");
                    return ExitCode::from(2);
                }
            };
            match agent::run(spec) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vinet-emu agent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Load { spec } => {
            let spec: Result<vinet_emu::load::LoadSpec, String> = std::fs::read_to_string(&spec)
                .map_err(|e| format!("{}: {e}", spec.display()))
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
            match spec.and_then(|s| vinet_emu::load::run(&s)) {
                Ok(r) => {
                    println!("{}", serde_json::to_string(&r).expect("json"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vinet-emu load: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Export { scenario, seed, image } => {
            let plan = scenario::load(&scenario).and_then(|l| {
                let v = l.scenario.vinet.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
                Plan::new(&l, seed.map(|s| (v.fraction, v.placement, s)))
            });
            match plan {
                Ok(p) => {
                    print!("{}", vinet_emu::export::containerlab(&p, &image));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Plot { json } => match report::replot(&json) {
            Ok(svg) => {
                println!("{}", svg.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vinet-emu: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Clean { all } => {
            let removed = netns::clean(all);
            for n in &removed {
                println!("removed {n}");
            }
            println!("{} namespaces removed", removed.len());
            ExitCode::SUCCESS
        }
        Cmd::Check { scenario } => {
            let l = match scenario::load(&scenario) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let plan = match Plan::new(&l, None) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            describe(&plan);
            if let Some(s) = &l.scenario.sweep {
                let s = s.get_ref();
                for (f, pl, seed) in combos(&l, s) {
                    if let Err(e) = Plan::new(&l, Some((f, pl, seed))) {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                }
                println!("sweep: {} runs", combos(&l, s).len() * s.programs.len().max(1));
            }
            ExitCode::SUCCESS
        }
        Cmd::Run { scenario, out, bin_dir, root, single, seed, quiet } => run_cmd(scenario, out, bin_dir, root, single, seed, quiet),
    }
}

fn describe(p: &Plan) {
    let count = |k: Kind| p.nodes.iter().filter(|n| n.kind == k).count();
    println!(
        "{}: seed {}, {} s; {} namespaces: {} hosts, {} edge routers ({} with vinet: {}), {} core routers; {} links; {} traffic sources; {} events",
        p.name,
        p.seed,
        p.duration,
        p.nodes.len(),
        count(Kind::Host),
        count(Kind::Edge),
        p.vinet_routers().count(),
        p.vinet_routers().map(|r| p.nodes[r].name.clone()).collect::<Vec<_>>().join(","),
        count(Kind::Core),
        p.links.len(),
        p.traffic.len(),
        p.events.len()
    );
}

fn combos(l: &scenario::Loaded, s: &scenario::Sweep) -> Vec<(f64, scenario::Placement, u64)> {
    let v = l.scenario.vinet.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
    let fr = if s.fraction.is_empty() { vec![v.fraction] } else { s.fraction.clone() };
    let pl = if s.placement.is_empty() { vec![v.placement] } else { s.placement.clone() };
    let seeds = if s.seeds.is_empty() { vec![l.scenario.seed] } else { s.seeds.clone() };
    let mut out = vec![];
    for (i, p) in pl.iter().enumerate() {
        for f in &fr {
            // At 0 and 1 every placement deploys the same routers: run them once.
            if i > 0 && (*f == 0.0 || *f == 1.0) {
                continue;
            }
            for seed in &seeds {
                out.push((*f, *p, *seed));
            }
        }
    }
    out
}

fn run_cmd(
    scenario: PathBuf, out: Option<PathBuf>, bin_dir: Option<PathBuf>, root: Option<PathBuf>, single: bool, seed: Option<u64>, quiet: bool,
) -> ExitCode {
    let l = match scenario::load(&scenario) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let root = root.unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")));
    let root = root.canonicalize().unwrap_or(root);
    let emu = std::env::current_exe().expect("current exe");
    let bin_dir = bin_dir.unwrap_or_else(|| emu.parent().expect("exe dir").to_path_buf());
    let tools = Tools {
        vinetc: bin_dir.join("vinetc"),
        vinetd: bin_dir.join("vinetd"),
        onmgr: bin_dir.join("vinet-onmgr"),
        traffic: bin_dir.join("vinet-traffic"),
        emu,
        root: root.clone(),
    };
    if l.scenario.overlay.is_some() {
        for t in [&tools.onmgr, &tools.traffic] {
            if !t.is_file() {
                eprintln!(
                    "vinet-emu: {} is missing (an overlay scenario needs it): build it (cargo build --release --bins) or pass --bin-dir",
                    t.display()
                );
                return ExitCode::from(2);
            }
        }
    }
    for t in [&tools.vinetc, &tools.vinetd] {
        if !t.is_file() {
            eprintln!("vinet-emu: {} is missing: build it (cargo build --release --bins) or pass --bin-dir", t.display());
            return ExitCode::from(2);
        }
    }
    let runs: Vec<Option<(f64, scenario::Placement, u64)>> = match (&l.scenario.sweep, single) {
        (Some(s), false) => combos(&l, s.get_ref()).into_iter().map(Some).collect(),
        _ => vec![seed.map(|s| {
            let v = l.scenario.vinet.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
            (v.fraction, v.placement, s)
        })],
    };
    // A sweep over programs installed runs every deployment and seed with each count.
    let counts: Vec<Option<usize>> = match (&l.scenario.sweep, single) {
        (Some(s), false) if !s.get_ref().programs.is_empty() => s.get_ref().programs.iter().copied().map(Some).collect(),
        _ => vec![None],
    };
    let mut plans = vec![];
    for n in &counts {
        for o in &runs {
            match Plan::new(&l, *o) {
                Ok(p) => plans.push(match n {
                    Some(n) => p.with_programs(*n),
                    None => p,
                }),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    if let Some(why) = netns::cannot_run() {
        eprintln!("vinet-emu: cannot run here: {why}");
        return ExitCode::FAILURE;
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
            eprintln!("vinet-emu: cannot handle SIGINT: {e}");
            return ExitCode::FAILURE;
        }
    }
    let out = out.unwrap_or_else(|| root.join("emu/out").join(&l.scenario.name));
    let runs_dir = out.join("runs");
    if let Err(e) = std::fs::create_dir_all(&runs_dir) {
        eprintln!("vinet-emu: {}: {e}", runs_dir.display());
        return ExitCode::FAILURE;
    }
    let progress = Progress::new(!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut results = vec![];
    let mut code = ExitCode::SUCCESS;
    let sweep = plans.len() > 1;
    for (i, plan) in plans.iter().enumerate() {
        if sweep {
            let programs = plan.programs.map_or(String::new(), |n| format!(" programs {n}"));
            eprintln!(
                "run {}/{}: fraction {} placement {:?} seed {}{programs}",
                i + 1,
                plans.len(),
                plan.deployment.0,
                plan.deployment.1,
                plan.seed
            );
        }
        let work = out.join("work");
        let r = run::run(plan, &tools, &work, &out.join("bundles"), &stop, &progress);
        progress.finish();
        // Backstop: nothing of this run's prefix may remain, whatever happened.
        let prefix = netns::run_prefix();
        for n in netns::list().into_iter().filter(|n| n.starts_with(&prefix)) {
            netns::remove_namespace(&n);
        }
        let _ = std::fs::remove_dir_all(&work);
        match r {
            Ok(r) => {
                let stem = if let (true, Some(n)) = (sweep, plan.programs) {
                    format!("p{n}-s{}", plan.seed)
                } else if sweep {
                    format!("f{:.2}-{:?}-s{}", plan.deployment.0, plan.deployment.1, plan.seed).to_lowercase()
                } else {
                    "run".into()
                };
                let json = runs_dir.join(format!("{stem}.json"));
                let svg = runs_dir.join(format!("{stem}.svg"));
                if let Err(e) = report::write_json(&r, &json).and_then(|_| report::plot_run(&r, &svg)) {
                    eprintln!("vinet-emu: {e}");
                    code = ExitCode::FAILURE;
                }
                summarize(&r);
                eprintln!("  results: {} and {}", json.display(), svg.display());
                results.push(r);
            }
            Err(RunError::Interrupted) => {
                eprintln!("vinet-emu: interrupted; the network is torn down");
                return ExitCode::from(130);
            }
            Err(e) => {
                eprintln!("vinet-emu: run failed: {e}");
                code = ExitCode::FAILURE;
                if !sweep {
                    return code;
                }
            }
        }
    }
    if counts[0].is_some() && !results.is_empty() {
        let points = report::load_points(&results);
        let (json, svg) = (out.join("load.json"), out.join("load.svg"));
        if let Err(e) = report::write_json(&points, &json).and_then(|_| report::plot_load(&l.scenario.name, &points, &svg)) {
            eprintln!("vinet-emu: {e}");
            code = ExitCode::FAILURE;
        }
        println!("programs  admitted  uploads/s  p50 ms  p99 ms  offered pkt/s  delivered pkt/s  (during load)  vinetd CPU us/pkt");
        for p in &points {
            println!(
                "{:>8}  {:>8}  {:>9.0}  {:>6.1}  {:>6.1}  {:>13.0}  {:>15.0}  {:>13}  {:>17.1}",
                p.programs,
                p.admitted,
                p.admitted_per_sec,
                p.p50_ms,
                p.p99_ms,
                p.offered_pps,
                p.delivered_pps,
                p.delivered_pps_during_load.map_or("-".to_string(), |d| format!("{d:.0}")),
                p.cpu_us_per_packet
            );
        }
        eprintln!("sweep: {} and {}", json.display(), svg.display());
    } else if sweep && !results.is_empty() {
        let curves = report::curves(&results, l.scenario.sample_every);
        let (json, svg) = (out.join("sweep.json"), out.join("infected.svg"));
        if let Err(e) = report::write_json(&curves, &json)
            .and_then(|_| report::plot_sweep(&l.scenario.name, &curves, &svg))
            .and_then(|_| report::plot_final(&l.scenario.name, &curves, &out.join("final.svg")))
        {
            eprintln!("vinet-emu: {e}");
            code = ExitCode::FAILURE;
        }
        for c in &curves {
            let mean_final = c.final_infected.iter().sum::<f64>() / c.final_infected.len().max(1) as f64;
            println!(
                "vinet on {:>5.1}% ({:?}): final infected {:.2} (seeds {:?}: {:?})",
                c.fraction * 100.0,
                c.placement,
                mean_final,
                c.seeds,
                c.final_infected.iter().map(|x| (x * 100.0).round() / 100.0).collect::<Vec<_>>()
            );
        }
        eprintln!("sweep: {}, {} and {}", json.display(), svg.display(), out.join("final.svg").display());
    }
    code
}

fn summarize(r: &run::RunResult) {
    let infected = r.infections.len();
    println!(
        "{} seed {} ({:.0}% vinet, {:?}): {} namespaces, setup {:.1} s; infected {}/{} hosts ({} vulnerable); events {}/{} ok",
        r.scenario,
        r.seed,
        r.fraction * 100.0,
        r.placement,
        r.namespaces,
        r.setup_secs,
        infected,
        r.hosts,
        r.vulnerable,
        r.events.iter().filter(|e| e.ok).count(),
        r.events.len()
    );
    for e in r.events.iter().filter(|e| !e.ok) {
        println!("  event at {:.2}s failed: {}: {}", e.t, e.action, e.outcome.trim());
    }
    let mut by_class: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for f in &r.flows {
        let e = by_class.entry(&f.class).or_default();
        e.0 += f.sent;
        e.1 += f.delivered;
    }
    for (c, (s, d)) in by_class {
        println!("  {c}: {d} of {s} datagrams delivered");
    }
    if let Some(o) = &r.overlay {
        if let Some(last) = o.samples.last() {
            for (name, g) in &last.gre {
                println!("  GRE {name}: {} of {} packets delivered", g[2], g[0]);
            }
        }
        for (end, st) in &o.tunnels {
            println!(
                "  tunnel end {end}: passed {}, duplicates discarded {}, lost {}, out of order {}",
                st["passed"], st["discarded"], st["lost"], st["out_of_order"]
            );
        }
        for t in &o.transfers {
            let rc = &t["receiver"];
            println!(
                "  transfer in ON {}: TCP {} bytes, intact {}, closed cleanly {}; UDP {} of {} datagrams, {} duplicates",
                t["on"],
                rc["tcp_bytes"],
                rc["tcp_intact"],
                rc["tcp_closed_cleanly"],
                rc["udp_unique"],
                rc["udp_expected"],
                rc["udp_duplicates"]
            );
        }
    }
}
