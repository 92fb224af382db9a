//! Benchmark of live packets per second through a router R with vinetd
//! giving the verdicts (an iptables NFQUEUE rule on R's FORWARD chain, the
//! paper's firewall installed for the receiver C, so every window runs a
//! program over C's packets), as a ratio to R forwarding the same traffic
//! with no vinetd and no rule at all, measured in the same run: a UDP flood
//! from A to C (`vinet-traffic flood`), counted at C (`vinet-traffic count`).
//! The two conditions alternate, each repeated.
//!
//! `cargo bench --bench live` runs 5 rounds of 5 s each and prints medians
//! (benchmarks/router.md has the figures); `-- --quick` (or
//! VINET_BENCH_QUICK=1) runs one round of 1 s of each, a smoke run that
//! checks traffic flows through vinetd. Run without `--bench` (as
//! `cargo test --benches` does) it does the quick run too, so a test build
//! never sits through the full measurement.
//!
//! It needs root, network namespaces and iptables, and fails saying so where
//! it cannot make them, unless VINET_SKIP_NETNS=1. Its namespaces are removed
//! when it ends, also when it fails (a drop guard).

#[path = "../tests/router_support/mod.rs"]
mod router_support;

use std::process::{Command, ExitCode, Stdio};

use router_support::netns::{cannot_run, ns, setup, start_ready, traffic};
use router_support::*;

/// Flood A -> C for `secs`; the rate C received.
fn measure(a: &str, c: &str, secs: f64, size: usize) -> f64 {
    let secs_arg = secs.to_string();
    let (mut counter, out) = start_ready(c, &["count", "--port", "6000", "--for", &secs_arg]);
    let flood_secs = (secs + 0.5).to_string();
    let sent = traffic(a, &["flood", "--to", "10.0.3.2", "--port", "6000", "--for", &flood_secs, "--size", &size.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run vinet-traffic flood: {e}"));
    assert!(sent.status.success(), "flood failed: {}", String::from_utf8_lossy(&sent.stderr));
    let st = counter.wait().unwrap();
    assert!(st.success(), "count failed ({st})");
    let rest = std::io::read_to_string(out).unwrap_or_default();
    let line = |text: &str, what: &str| text.lines().find(|l| l.starts_with(what)).unwrap_or("").to_string();
    let got_line = line(&rest, "received");
    let rate = got_line
        .split("rate ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("count printed no rate: {rest:?}"));
    eprintln!("  A: {}; C: {}", line(&String::from_utf8_lossy(&sent.stdout), "sent"), got_line);
    rate
}

fn main() -> ExitCode {
    let quick = match bench_quick("live") {
        Ok(q) => q,
        Err(code) => return code,
    };
    if let Some(why) = cannot_run() {
        if std::env::var("VINET_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED the live benchmark: {why} (VINET_SKIP_NETNS=1) ***\n");
            return ExitCode::SUCCESS;
        }
        eprintln!("\n*** the live benchmark CANNOT RUN: {why}. Set VINET_SKIP_NETNS=1 to skip it explicitly. ***\n");
        return ExitCode::FAILURE;
    }
    let (rounds, secs) = if quick { (1, 1.0) } else { (5, 5.0) };
    let size = 64;
    let tag = format!("b{}", std::process::id() % 10_000);
    // Dropped at the end of main, or while a panic unwinds: the namespaces
    // (and with them R's iptables rule) go either way.
    let net = setup(&tag).unwrap_or_else(|e| panic!("cannot build the network: {e}"));
    let [a, _b, c, r] = [0, 1, 2, 3].map(|i| net.ns[i].clone());
    let mut env = Env::new("netns-bench");
    env.listen = "10.0.3.1:7700".into();
    env.metrics = "10.0.3.1:9910".into();
    let cfg = env.config(&Settings { live: "mode = \"nfqueue\"\nqueue = 0".into(), window_millis: 5, ..Settings::default() });
    let owner = env.client("owner", "10.0.3.2");
    let fw = env.firewall("fw", "2 days");
    let (mut plain, mut with) = (vec![], vec![]);
    for round in 0..rounds {
        eprintln!("round {round}: R forwarding alone");
        plain.push(measure(&a, &c, secs, size));
        eprintln!("round {round}: R with vinetd giving verdicts (firewall installed for C)");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &r, VINETD]);
        let d = Vinetd::start_with(cmd, &cfg, "", env.dir.path("vinetd.log"));
        if round == 0 {
            let mut v: Vec<String> = vec!["netns".into(), "exec".into(), c.clone(), VINETC.into(), "upload".into(), fw.clone()];
            v.extend(env.conn(&owner));
            v.extend(["--pay".into(), "200".into(), "--param".into(), "SrcIP=10.0.2.2".into()]);
            let o = Command::new("ip").args(&v).stdin(Stdio::null()).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        with.push(measure(&a, &c, secs, size));
        drop(d);
    }
    let (p, w) = (median(&mut plain), median(&mut with));
    println!(
        "live UDP ({size}-byte payloads) A -> R -> C: R alone median {p:.0} packets/s; with vinetd giving verdicts median {w:.0} packets/s; ratio {:.3} ({rounds} rounds of {secs} s{})",
        w / p,
        if quick { ", quick" } else { "" }
    );
    drop(net);
    if p > 0.0 && w > 100.0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("live: traffic must flow through vinetd and through R alone: {w:.0} and {p:.0} packets/s");
        ExitCode::FAILURE
    }
}
