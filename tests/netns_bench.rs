//! Benchmark of live packets per second through a router R with vinetd
//! giving the verdicts (an iptables NFQUEUE rule on R's FORWARD chain, the
//! paper's firewall installed for the receiver C, so every window runs a
//! program over C's packets), as a ratio to R forwarding the same traffic
//! with no vinetd and no rule at all, measured in the same run: a UDP flood
//! from A to C, counted at C. The two conditions alternate, each repeated.
//!
//! Without VINET_BENCH=1 this is a smoke test (one short round of each,
//! asserting that traffic flows through vinetd). With it (release:
//! `VINET_BENCH=1 cargo test --release --test netns_bench -- --nocapture`)
//! it runs 5 rounds of 5 s each and prints medians; benchmarks/router.md
//! has the figures. Like the netns test, it fails loudly where namespaces
//! cannot be made, unless VINET_SKIP_NETNS=1.

mod router_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use router_support::netns::{self, cannot_run, helper, ns, setup};
use router_support::*;

/// Not a test: the helper processes' entry point (see router_support::netns).
#[test]
fn helper_entry() {
    netns::helper_main();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Flood A -> C for `secs`; the rate C received.
fn measure(a: &str, c: &str, secs: f64, size: usize) -> f64 {
    let counter = helper(c, &format!("count 6000 {secs}")).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let sent = helper(a, &format!("flood 10.0.3.2 6000 {} {size}", secs + 0.5)).output().unwrap();
    let got = counter.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&got.stdout);
    let line = |text: &str, what: &str| text.lines().find(|l| l.starts_with(what)).unwrap_or("").to_string();
    let got_line = line(&out, "received");
    let rate: f64 = got_line.split("rate ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|r| r.parse().ok()).unwrap_or(0.0);
    eprintln!("  A: {}; C: {}", line(&String::from_utf8_lossy(&sent.stdout), "sent"), got_line);
    rate
}

#[test]
fn live_packets_per_second_through_vinetd() {
    if let Some(why) = cannot_run() {
        if std::env::var("VINET_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED live_packets_per_second_through_vinetd: {why} (VINET_SKIP_NETNS=1) ***\n");
            return;
        }
        panic!("\n*** live_packets_per_second_through_vinetd CANNOT RUN: {why}. Set VINET_SKIP_NETNS=1 to skip it explicitly. ***\n");
    }
    let full = std::env::var("VINET_BENCH").as_deref() == Ok("1");
    let (rounds, secs) = if full { (5, 5.0) } else { (1, 1.0) };
    let size = 64;
    let tag = format!("b{}", std::process::id() % 10_000);
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
        ns(&r, &["iptables", "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0"]).unwrap();
        if round == 0 {
            let mut v: Vec<String> = vec!["netns".into(), "exec".into(), c.clone(), VINETC.into(), "upload".into(), fw.clone()];
            v.extend(env.conn(&owner));
            v.extend(["--pay".into(), "200".into(), "--param".into(), "SrcIP=10.0.2.2".into()]);
            let o = Command::new("ip").args(&v).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        with.push(measure(&a, &c, secs, size));
        ns(&r, &["iptables", "-D", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0"]).unwrap();
        drop(d);
    }
    let (p, w) = (median(&mut plain), median(&mut with));
    eprintln!(
        "live UDP ({size}-byte payloads) A -> R -> C: R alone median {p:.0} packets/s; with vinetd giving verdicts median {w:.0} packets/s; ratio {:.3} ({rounds} rounds of {secs} s)",
        w / p
    );
    assert!(p > 0.0 && w > 100.0, "traffic must flow through vinetd: {w} packets/s");
}
