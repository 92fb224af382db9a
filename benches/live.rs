//! Benchmark of the live packet path (issue 10) in network namespaces,
//! against R forwarding the same traffic with no vinetd and no hook at all,
//! measured in the same run, the conditions alternated round by round:
//!
//! - **R alone**: `vinetd unhook` run in R first (no table `inet vinet`, no
//!   iptables rule), no vinetd process; UDP floods A -> C and A -> B
//!   (`vinet-traffic flood`, 64-byte payloads, one socket as fast as it
//!   sends), counted by `vinet-traffic count` at the receiver; round trips
//!   A -> C -> A (`vinet-traffic rtt` against `vinet-traffic echo` on C);
//! - **vinetd**: vinetd in R with its own hooks and the paper's firewall
//!   installed for C against B's address (so A's traffic passes through the
//!   firewall and is not dropped): the flood A -> B (a destination with no
//!   program: the fast path, never queued), the flood A -> C (queued, decided
//!   by the firewall), and the round trips A -> C -> A.
//!
//! Per flood it also reads the CPU time of the sender and of the receiver
//! (their own reports, `cpu_s`) and of vinetd (`/proc/PID/stat`), and the
//! sender's own rate, so the figures show what limits the rate. At the end,
//! with 100 firewall leases installed, it reads vinetd's idle CPU over 10 s
//! with no traffic.
//!
//! `cargo bench --bench live` runs 5 rounds of 5 s floods (1,000 round-trip
//! probes a condition a round) and prints the median of each condition;
//! `-- --quick` (or VINET_BENCH_QUICK=1) 1 round of 1 s (200 probes, 2 s of
//! idle CPU), a smoke run that checks traffic flows both ways. Run without
//! `--bench` (as `cargo test --benches` does) it does the quick run too.
//! benchmarks/router.md has the figures.
//!
//! It needs root, network namespaces, iptables, nft and curl, and fails
//! saying so where it cannot make them, unless VINET_SKIP_NETNS=1. Its
//! namespaces are removed when it ends, also when it fails (a drop guard).

#[path = "../tests/router_support/mod.rs"]
mod router_support;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use router_support::netns::{cannot_run, comm, cpu_seconds, field, ns, setup, start_ready, traffic};
use router_support::*;

const B: &str = "10.0.2.2";
const C: &str = "10.0.3.2";

/// One flood: what the receiver counted and what each process spent.
struct Flood {
    /// Packets a second counted by the receiver.
    received: f64,
    /// Packets a second the sender got out of its socket.
    sent: f64,
    /// CPU seconds per second of the sender and of the receiver.
    sender_cpu: f64,
    receiver_cpu: f64,
}

/// Flood `to` (in `dst_ns`) from `a` for `secs`.
fn flood(a: &str, dst_ns: &str, to: &str, secs: f64) -> Flood {
    let secs_arg = secs.to_string();
    let (mut counter, out) = start_ready(dst_ns, &["count", "--port", "6000", "--for", &secs_arg]);
    let flood_secs = (secs + 0.5).to_string();
    let sent = traffic(a, &["flood", "--to", to, "--port", "6000", "--for", &flood_secs, "--size", "64"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run vinet-traffic flood: {e}"));
    assert!(sent.status.success(), "flood failed: {}", String::from_utf8_lossy(&sent.stderr));
    let st = counter.wait().unwrap();
    assert!(st.success(), "count failed ({st})");
    let got = std::io::read_to_string(out).unwrap_or_default();
    let sent = String::from_utf8_lossy(&sent.stdout).to_string();
    eprintln!("    A: {}    {}: {}", sent.trim(), to, got.trim());
    let f = |text: &str, key: &str| field(text, key).unwrap_or_else(|| panic!("no {key} in {text:?}"));
    let (sent_s, got_s) = (f(&sent, "in"), f(&got, "in").max(1e-9));
    Flood {
        received: f(&got, "rate"),
        sent: f(&sent, "rate"),
        sender_cpu: f(&sent, "cpu_s") / sent_s,
        receiver_cpu: f(&got, "cpu_s") / got_s,
    }
}

/// Round trips A -> C -> A: (median, p99) in µs.
fn rtt(a: &str, probes: u32) -> (f64, f64) {
    let n = probes.to_string();
    let o = traffic(a, &["rtt", "--to", C, "--port", "7000", "--count", &n, "--interval-ms", "1"]).output().unwrap();
    assert!(o.status.success(), "rtt failed: {}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    eprintln!("    {}", out.trim());
    let lost = field(&out, "lost").unwrap_or(f64::NAN);
    assert!(lost < f64::from(probes) / 10.0, "rtt lost {lost} of {probes} probes: {out}");
    (field(&out, "median_us").unwrap(), field(&out, "p99_us").unwrap())
}

/// No vinetd hook left in R: `vinetd unhook`, then check.
fn unhook(r: &str, cfg: &Path) {
    ns(r, &[VINETD, "--config", cfg.to_str().unwrap(), "unhook"]).unwrap_or_else(|e| panic!("vinetd unhook: {e}"));
    assert!(ns(r, &["nft", "list", "table", "inet", "vinet"]).is_err(), "table inet vinet is still in R");
    let rules = ns(r, &["iptables", "-t", "mangle", "-S", "FORWARD"]).unwrap();
    assert!(!rules.contains("NFQUEUE"), "an NFQUEUE rule is still in R: {rules}");
}

fn stats(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ")
}

fn main() -> ExitCode {
    let quick = match bench_quick("live") {
        Ok(q) => q,
        Err(code) => return code,
    };
    let why = cannot_run().or_else(|| {
        ["nft", "curl"].iter().find(|t| Command::new(t).arg("--version").output().is_err()).map(|t| format!("`{t}` is missing"))
    });
    if let Some(why) = why {
        if std::env::var("VINET_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED the live benchmark: {why} (VINET_SKIP_NETNS=1) ***\n");
            return ExitCode::SUCCESS;
        }
        eprintln!("\n*** the live benchmark CANNOT RUN: {why}. Set VINET_SKIP_NETNS=1 to skip it explicitly. ***\n");
        return ExitCode::FAILURE;
    }
    let (rounds, secs, probes, idle_secs) = if quick { (1, 1.0, 200, 2.0) } else { (5, 5.0, 1000, 10.0) };
    let tag = format!("b{}", std::process::id() % 10_000);
    // Dropped at the end of main, or while a panic unwinds: the namespaces
    // (and with them R's hooks) go either way.
    let mut net = setup(&tag).unwrap_or_else(|e| panic!("cannot build the network: {e}"));
    let [a, b, c, r] = [0, 1, 2, 3].map(|i| net.ns[i].clone());
    let mut env = Env::new("netns-bench");
    env.listen = "10.0.3.1:7700".into();
    env.metrics = "10.0.3.1:9910".into();
    let cfg = env.config(&Settings {
        live: "mode = \"nfqueue\"\nqueue = 0".into(),
        serves: vec!["10.0.3.0/24".into()],
        window_millis: 5,
        capacity: 200_000,
        grant: 100_000,
        ..Settings::default()
    });
    let owner = env.client("owner", C);
    let fw = env.firewall("fw", "2 days");
    let vinetd = || {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &r, VINETD]);
        let d = Vinetd::start_with(cmd, &cfg, "", env.dir.path("vinetd.log"));
        assert_eq!(comm(d.child.id()), "vinetd", "the child of `ip netns exec` is vinetd itself");
        d
    };
    let upload = |src: &str| {
        let mut v: Vec<String> = vec!["netns".into(), "exec".into(), c.clone(), VINETC.into(), "upload".into(), fw.clone()];
        v.extend(env.conn(&owner));
        v.extend(["--pay".into(), "200".into(), "--param".into(), format!("SrcIP={src}")]);
        let o = Command::new("ip").args(&v).stdin(Stdio::null()).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // The firewall for C against B: A's traffic to C runs through it and
    // passes. Stored, so every later start of vinetd resumes it.
    {
        let _d = vinetd();
        upload(B);
    }
    let (echo, _) = start_ready(&c, &["echo", "--port", "7000", "--for", "3600"]);
    net.procs.push(echo);

    let mut m: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut record = |k: &'static str, v: f64| m.entry(k).or_default().push(v);
    for round in 0..rounds {
        // Alternate which condition goes first, so neither always runs on a
        // machine warmed (or loaded) by the other.
        for alone in if round % 2 == 0 { [true, false] } else { [false, true] } {
            if alone {
                eprintln!("round {round}: R alone (no vinetd, no hooks)");
                unhook(&r, &cfg);
                let f = flood(&a, &b, B, secs);
                record("alone_ab", f.received);
                let f = flood(&a, &c, C, secs);
                record("alone_ac", f.received);
                record("alone_sent", f.sent);
                record("alone_sender_cpu", f.sender_cpu);
                let (med, p99) = rtt(&a, probes);
                record("alone_rtt_med", med);
                record("alone_rtt_p99", p99);
            } else {
                eprintln!("round {round}: vinetd in R, the firewall for C (against B)");
                let d = vinetd();
                let pid = d.child.id();
                let f = flood(&a, &b, B, secs);
                record("with_ab", f.received);
                let cpu0 = cpu_seconds(pid).unwrap();
                let f = flood(&a, &c, C, secs);
                let cpu = (cpu_seconds(pid).unwrap() - cpu0) / (secs + 0.5);
                record("with_ac", f.received);
                record("with_sent", f.sent);
                record("with_sender_cpu", f.sender_cpu);
                record("with_receiver_cpu", f.receiver_cpu);
                record("with_vinetd_cpu", cpu);
                eprintln!("    vinetd CPU during the flood A -> C: {:.0}% of a core", cpu * 100.0);
                let (med, p99) = rtt(&a, probes);
                record("with_rtt_med", med);
                record("with_rtt_p99", p99);
                drop(d);
                unhook(&r, &cfg);
            }
        }
    }

    // Idle: 100 firewall leases installed, no traffic.
    let d = vinetd();
    for i in 1..100 {
        upload(&format!("10.9.{}.{}", i / 200, i % 200 + 1));
    }
    let page = ns(&c, &["curl", "-s", "--max-time", "10", "http://10.0.3.1:9910/metrics"]).unwrap();
    let leases = router_support::netns::metric_of(&page, "vinet_leases");
    std::thread::sleep(Duration::from_secs(1));
    let pid = d.child.id();
    let cpu0 = cpu_seconds(pid).unwrap();
    std::thread::sleep(Duration::from_secs_f64(idle_secs));
    let idle = (cpu_seconds(pid).unwrap() - cpu0) / idle_secs;
    drop(d);
    unhook(&r, &cfg);
    drop(net);

    let med = |k: &str| median(&mut m.get(k).cloned().unwrap_or_default());
    let all = |k: &str| stats(m.get(k).map_or(&[][..], Vec::as_slice));
    let q = if quick { ", quick" } else { "" };
    let how = format!("64-byte UDP payloads, medians of {rounds} alternated rounds of {secs} s{q}");
    let (ab0, ab1, ac0, ac1) = (med("alone_ab"), med("with_ab"), med("alone_ac"), med("with_ac"));
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    // The ratio within each round (the two conditions a few seconds apart),
    // then their median: less sensitive to the machine's load drifting
    // across the run than the ratio of the medians.
    let paired = |with: &str, alone: &str| {
        let (w, a) = (m.get(with).cloned().unwrap_or_default(), m.get(alone).cloned().unwrap_or_default());
        let mut r: Vec<f64> = w.iter().zip(&a).map(|(w, a)| w / a).collect();
        let all = r.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
        (median(&mut r), all)
    };
    let (pab, pab_all) = paired("with_ab", "alone_ab");
    let (pac, pac_all) = paired("with_ac", "alone_ac");
    println!(
        "live fast path A -> B (no program): R alone {ab0:.0} pkt/s [{}]; with vinetd {ab1:.0} pkt/s [{}]; ratio {:.3} (target >= 0.95: {}); round by round {pab:.3} [{pab_all}] ({how})",
        all("alone_ab"),
        all("with_ab"),
        ab1 / ab0,
        verdict(ab1 / ab0 >= 0.95)
    );
    println!(
        "live through the firewall A -> C (not dropped): R alone {ac0:.0} pkt/s [{}]; with vinetd {ac1:.0} pkt/s [{}]; ratio {:.3} (target >= 0.8: {}); round by round {pac:.3} [{pac_all}] ({how})",
        all("alone_ac"),
        all("with_ac"),
        ac1 / ac0,
        verdict(ac1 / ac0 >= 0.8)
    );
    let (r0, r1, p0, p1) = (med("alone_rtt_med"), med("with_rtt_med"), med("alone_rtt_p99"), med("with_rtt_p99"));
    println!(
        "live round trip A -> C -> A: R alone median {r0:.0} us, p99 {p0:.0} us; through the firewall median {r1:.0} us, p99 {p1:.0} us; added median {:.0} us (target <= 500: {}), added p99 {:.0} us ({probes} probes a round{q})",
        r1 - r0,
        verdict(r1 - r0 <= 500.0),
        p1 - p0
    );
    println!(
        "live idle CPU of vinetd with {leases:.0} leases installed: {:.2}% of a core over {idle_secs} s (target < 1%: {})",
        idle * 100.0,
        verdict(idle < 0.01)
    );
    println!(
        "live CPU during the flood A -> C with vinetd: sender {:.0}% of a core, receiver {:.0}%, vinetd {:.0}%; the sender's own rate {:.0} pkt/s with vinetd, {:.0} pkt/s with R alone (sender CPU {:.0}%){q}",
        med("with_sender_cpu") * 100.0,
        med("with_receiver_cpu") * 100.0,
        med("with_vinetd_cpu") * 100.0,
        med("with_sent"),
        med("alone_sent"),
        med("alone_sender_cpu") * 100.0
    );
    if ab0 > 100.0 && ab1 > 100.0 && ac0 > 100.0 && ac1 > 100.0 && r1 > 0.0 && leases >= 100.0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("live: traffic must flow through R alone and through vinetd, and the 100 leases be installed");
        ExitCode::FAILURE
    }
}
