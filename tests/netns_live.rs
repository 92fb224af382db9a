//! The live packet path in Linux network namespaces (issue 10): vinetd's own
//! kernel hooks on a router R between hosts A, B and C.
//!
//! ```text
//!   A 10.0.1.2 fd00:1::2 --- R .              . R --- 10.0.3.2 fd00:3::2 C
//!                               R (vinetd: nft table inet vinet, NFQUEUE)
//!   B 10.0.2.2 fd00:2::2 --- R '
//! ```
//!
//! What arrives at a host is counted by an nftables table in its own
//! namespace (a prerouting hook at priority -500: before the defragmenter and
//! before any socket, so a malformed packet or a fragment is counted too);
//! what vinetd saw, from its metrics page, read from inside C.
//!
//! - the fast path: traffic to a destination without a program is never
//!   queued to vinetd, traffic to C's firewall is, and is decided;
//! - crafted IPv4 from the firewalled source A (truncated UDP and TCP
//!   headers, IP options, hand-made fragments, an unknown protocol) never
//!   reaches C, and the same packets from B do (the positive control);
//! - forwarded IPv6 follows `[live] ipv6`, and is counted;
//! - kill -9 and restart under traffic, with 100 leases stored: not one of
//!   A's packets reaches C, and B's traffic resumes;
//! - GENERATE on the live path: the multicast aggregator's packets leave R
//!   and arrive at THIS_IP.
//!
//! Every wait is for an event (a packet counted, a metric reached) with the
//! hang deadline of `router_support`; no test asserts how long anything
//! took. Where the machine cannot run them (root, network namespaces,
//! iptables, nft, curl) the tests FAIL saying why, unless VINET_SKIP_NETNS=1,
//! in which case they say loudly that they skipped. A drop guard removes the
//! namespaces, also when a test fails. The tests run one at a time (a lock):
//! each builds its own namespaces, but floods on two vCPUs would slow the
//! others.

mod router_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use router_support::netns::{add_ipv6, arrivals, cannot_run, count_arrivals, metric_of, metrics_page, setup, traffic, Net};
use router_support::*;

const A: &str = "10.0.1.2";
const B: &str = "10.0.2.2";
const C: &str = "10.0.3.2";
const METRICS: &str = "10.0.3.1:9910";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The lock, or None if the test must skip (VINET_SKIP_NETNS=1 on a machine
/// that cannot run it); panics where it cannot run otherwise.
fn may_run(test: &str) -> Option<MutexGuard<'static, ()>> {
    // Taken first: `cannot_run` probes with a namespace named by the pid.
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let why = cannot_run().or_else(|| {
        ["nft", "curl"].iter().find(|t| Command::new(t).arg("--version").output().is_err()).map(|t| format!("`{t}` is missing"))
    });
    if let Some(why) = why {
        if std::env::var("VINET_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED {test}: {why} (VINET_SKIP_NETNS=1) ***\n");
            return None;
        }
        panic!("\n*** {test} CANNOT RUN: {why}. It needs root, network namespaces, iptables, nft and curl (scripts/setup installs iptables). Set VINET_SKIP_NETNS=1 to skip it explicitly. ***\n");
    }
    Some(one)
}

/// The namespaces, a router config and the helpers of one test.
struct World {
    // Dropped last (fields drop in order): the namespaces outlive vinetd.
    env: Env,
    cfg: PathBuf,
    a: String,
    b: String,
    c: String,
    r: String,
    net: Net,
}

impl World {
    fn new(name: &str, tag: &str, settings: Settings) -> World {
        let tag = format!("{tag}{}", std::process::id() % 10_000);
        let net = setup(&tag).unwrap_or_else(|e| panic!("cannot build the network: {e}"));
        let [a, b, c, r] = [0, 1, 2, 3].map(|i| net.ns[i].clone());
        let mut env = Env::new(name);
        env.listen = "10.0.3.1:7700".into();
        env.metrics = METRICS.into();
        let cfg = env.config(&Settings { serves: vec!["10.0.3.0/24".into()], ..settings });
        World { env, cfg, a, b, c, r, net }
    }

    /// vinetd in R (the child's pid is vinetd's: `ip netns exec` execs it).
    fn vinetd(&self) -> Vinetd {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.r, VINETD]);
        Vinetd::start_with(cmd, &self.cfg, "", self.env.dir.path("vinetd.log"))
    }

    /// `vinetc ARGS..` inside a host's namespace.
    fn vinetc_in(&self, host: &str, args: Vec<String>) -> Run {
        let o = Command::new("ip").args(["netns", "exec", host, VINETC]).args(&args).stdin(Stdio::null()).output().unwrap();
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }

    /// Upload from C (to R's address on C's side).
    fn upload(&self, who: &ClientFiles, bundle: &str, pay: u64, extra: &[&str]) -> String {
        let mut v: Vec<String> = vec!["upload".into(), bundle.into()];
        v.extend(self.env.conn(who));
        v.extend(["--pay".into(), pay.to_string()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        self.vinetc_in(&self.c, v).ok().trim().to_string()
    }

    /// A series of vinetd's metrics (read from inside C).
    fn metric(&self, series: &str) -> u64 {
        metric_of(&metrics_page(&self.c, METRICS), series) as u64
    }

    /// `vinet-traffic ARGS..` in a host, to completion; its stdout.
    fn run(&self, host: &str, args: &[&str]) -> String {
        let o = traffic(host, args).output().unwrap_or_else(|e| panic!("cannot run vinet-traffic: {e}"));
        assert!(o.status.success(), "vinet-traffic {} failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into()
    }

    /// `vinet-traffic craft` from a host (its own address as the source).
    fn craft(&self, host: &str, from: &str, to: &str, kind: &str, tag: &str, count: u32) {
        let count = count.to_string();
        let mut args = vec!["craft", "--to", to, "--kind", kind, "--tag", tag, "--count", &count];
        if kind != "udp6" {
            args.extend(["--from", from]);
        }
        self.run(host, &args);
    }
}

/// A long-lived helper process, killed and reaped on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A paced flood from a host (bounded by `secs` and by the drop of the
/// returned helper).
fn paced(host: &str, to: &str, pps: u64, secs: u64) -> Helper {
    let (pps, secs) = (pps.to_string(), secs.to_string());
    let child = traffic(host, &["flood", "--to", to, "--port", "6000", "--size", "64", "--for", &secs, "--pps", &pps])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run vinet-traffic flood: {e}"));
    Helper(child)
}

fn firewall_for_c(w: &World, against: &str) -> ClientFiles {
    let owner = w.env.client("owner", C);
    let fw = w.env.firewall("fw", "2 days");
    eprintln!("upload: {}", w.upload(&owner, &fw, 200, &["--param", &format!("SrcIP={against}")]));
    owner
}

fn nfqueue() -> Settings {
    Settings { live: "mode = \"nfqueue\"\nqueue = 0".into(), window_millis: 5, capacity: 4096, ..Settings::default() }
}

#[test]
fn the_fast_path_keeps_traffic_without_programs_in_the_kernel() {
    let Some(_one) = may_run("the_fast_path_keeps_traffic_without_programs_in_the_kernel") else { return };
    let w = World::new("live-fast", "f", nfqueue());
    count_arrivals(&w.b, &[("from_a", &format!("ip saddr {A} udp dport 6000"))]).unwrap();
    count_arrivals(&w.c, &[("from_a", &format!("ip saddr {A}")), ("from_b", &format!("ip saddr {B} udp dport 6000"))]).unwrap();
    let _d = w.vinetd();
    firewall_for_c(&w, A);
    let received = || w.metric("vinet_packets_received_total");
    let queued = || w.metric("vinet_kernel_queued_local_total");
    let (r0, q0) = (received(), queued());

    // A -> B: B has no program. All 200 arrive, and vinetd sees none of them.
    w.run(&w.a, &["flood", "--to", B, "--port", "6000", "--size", "64", "--for", "30", "--max", "200", "--pps", "2000"]);
    wait_for("A's 200 datagrams at B", HANG, || arrivals(&w.b, "from_a") >= 200);
    // Then B -> C (C's firewall is against A): queued, decided, delivered.
    // The lane takes packets in order, so once B's are counted, anything of
    // A's that had been queued before them would be counted too.
    w.run(&w.b, &["flood", "--to", C, "--port", "6000", "--size", "64", "--for", "30", "--max", "20", "--pps", "2000"]);
    wait_for("B's 20 datagrams at C", HANG, || arrivals(&w.c, "from_b") >= 20);
    wait_for("vinetd to count B's 20 packets", HANG, || received() >= r0 + 20);
    let (r1, q1) = (received(), queued());
    eprintln!(
        "A -> B: 200 sent, {} at B; B -> C: 20 sent, {} at C; vinetd received {}, kernel queued {}",
        arrivals(&w.b, "from_a"),
        arrivals(&w.c, "from_b"),
        r1 - r0,
        q1 - q0
    );
    assert_eq!(arrivals(&w.b, "from_a"), 200, "all of A's traffic to B arrives");
    assert_eq!(r1 - r0, 20, "vinetd must receive B's 20 packets to C and none of A's 200 to B (a destination without programs)");
    assert_eq!(q1 - q0, 20, "the kernel must queue only the packets to C");

    // A -> C: queued, counted and dropped by C's firewall.
    let dropped0 = w.metric("vinet_frames_dropped_total");
    w.run(&w.a, &["flood", "--to", C, "--port", "6000", "--size", "64", "--for", "30", "--max", "50", "--pps", "2000"]);
    wait_for("vinetd to drop A's 50 packets to C", HANG, || w.metric("vinet_frames_dropped_total") >= dropped0 + 50);
    w.run(&w.b, &["flood", "--to", C, "--port", "6000", "--size", "64", "--for", "30", "--max", "20", "--pps", "2000"]);
    wait_for("B's next 20 datagrams at C", HANG, || arrivals(&w.c, "from_b") >= 40);
    wait_for("vinetd to count A's 50 and B's 20 packets to C", HANG, || received() >= r1 + 70);
    eprintln!("A -> C: 50 sent, {} at C, vinetd received {} more", arrivals(&w.c, "from_a"), received() - r1);
    assert_eq!(arrivals(&w.c, "from_a"), 0, "C's firewall drops all of A's packets");
}

#[test]
fn crafted_packets_from_a_firewalled_source_never_arrive() {
    let Some(_one) = may_run("crafted_packets_from_a_firewalled_source_never_arrive") else { return };
    let w = World::new("live-craft", "k", nfqueue());
    // Everything from A and from B, per kind: each kind is sent alone, so
    // the difference of the counters over its turn is its count.
    count_arrivals(&w.c, &[("from_a", &format!("ip saddr {A}")), ("from_b", &format!("ip saddr {B}"))]).unwrap();
    let _d = w.vinetd();
    firewall_for_c(&w, A);
    let received = || w.metric("vinet_packets_received_total");
    let dropped = || w.metric("vinet_frames_dropped_total");
    let kinds = ["udp", "truncated-udp", "truncated-tcp", "options", "fragments", "unknown-proto"];
    let mut table = vec![];
    for (i, kind) in kinds.iter().enumerate() {
        let tag = format!("K{i}");
        let (a0, b0, r0, d0) = (arrivals(&w.c, "from_a"), arrivals(&w.c, "from_b"), received(), dropped());
        w.craft(&w.a, A, C, kind, &tag, 3);
        // The kernel reassembles fragments before the queue: vinetd gets
        // each datagram (3 fragments) as one packet.
        wait_for(&format!("vinetd to receive A's 3 {kind} packets"), HANG, || received() >= r0 + 3);
        w.craft(&w.b, B, C, kind, &tag, 3);
        // B's packets come through the same lane after A's: once they are
        // counted at C (3 packets, or fragments of them), A's have had their
        // verdicts. (If B's never arrive,
        // the wait ends at the hang deadline and the table says so.)
        let b_came = wait_until(HANG, || arrivals(&w.c, "from_b") >= b0 + 3);
        let _ = wait_until(HANG, || received() >= r0 + 6);
        let (a, b, queued, drops) = (arrivals(&w.c, "from_a") - a0, arrivals(&w.c, "from_b") - b0, received() - r0, dropped() - d0);
        eprintln!(
            "{kind:>14}: from A (firewalled) {a} arrived at C; from B {b} arrived{}; vinetd received {queued}, dropped {drops}",
            if b_came { "" } else { " (waited to the hang deadline)" }
        );
        table.push((kind, a, b, queued, drops));
    }
    for (kind, a, b, queued, drops) in &table {
        assert_eq!(*a, 0, "{kind} from the firewalled source A must not reach C: {table:?}");
        assert!(*b >= 1, "{kind} from B (not firewalled) must reach C (positive control): {table:?}");
        // All of them went through vinetd, fragments as whole datagrams
        // (the kernel reassembles before the queue): 3 from each source.
        assert_eq!(*queued, 6, "{kind}: vinetd must receive A's 3 and B's 3 (whole datagrams): {table:?}");
        assert_eq!(*drops, 3, "{kind}: C's firewall drops A's 3: {table:?}");
    }
    // Fragments from B: the reassembled datagram, fragmented again by R on
    // the way out (3 fragments a datagram, whatever R's sizes).
    assert!(table[4].2 >= 3, "B's 3 fragmented datagrams arrive at C as fragments: {table:?}");
}

#[test]
fn forwarded_ipv6_follows_the_configured_policy() {
    let Some(_one) = may_run("forwarded_ipv6_follows_the_configured_policy") else { return };
    let settings = nfqueue();
    let mut w = World::new("live-ipv6", "s", Settings { live: format!("{}\nipv6 = \"forward\"", settings.live), ..settings.clone() });
    add_ipv6(&w.net).unwrap();
    count_arrivals(&w.c, &[("from_a6", "ip6 saddr fd00:1::2 udp dport 5000")]).unwrap();
    let mut d = w.vinetd();
    firewall_for_c(&w, A);

    // ipv6 = "forward": C's identity has no IPv6 address, so its IPv6 is to no
    // client: forwarded untouched, counted.
    w.craft(&w.a, A, "fd00:3::2", "udp6", "V6F", 10);
    wait_for("A's 10 IPv6 datagrams at C", HANG, || arrivals(&w.c, "from_a6") >= 10);
    let fwd = w.metric("vinet_ipv6_forwarded_total");
    eprintln!("ipv6 = forward: {} of 10 at C, vinet_ipv6_forwarded_total {fwd}", arrivals(&w.c, "from_a6"));
    assert!(fwd >= 10, "forwarded IPv6 is counted: {fwd}");
    assert_eq!(w.metric("vinet_ipv6_dropped_total"), 0);

    // ipv6 = "drop": the same traffic is dropped, and counted.
    d.kill9();
    w.cfg = w.env.config(&Settings { serves: vec!["10.0.3.0/24".into()], live: format!("{}\nipv6 = \"drop\"", settings.live), ..settings });
    d = w.vinetd();
    let before = arrivals(&w.c, "from_a6");
    w.craft(&w.a, A, "fd00:3::2", "udp6", "V6D", 10);
    // The kernel drops them in R's forward hook, which counts them first.
    wait_for("vinet_ipv6_dropped_total to reach 10", HANG, || w.metric("vinet_ipv6_dropped_total") >= 10);
    let dropped = w.metric("vinet_ipv6_dropped_total");
    eprintln!("ipv6 = drop: {} of 10 at C, vinet_ipv6_dropped_total {dropped}", arrivals(&w.c, "from_a6") - before);
    assert_eq!(arrivals(&w.c, "from_a6"), before, "with ipv6 = \"drop\" no IPv6 reaches C");
    assert_eq!(w.metric("vinet_ipv6_forwarded_total"), 0, "with ipv6 = \"drop\" nothing is counted as forwarded");
    drop(d);
}

#[test]
fn kill_9_and_restart_under_traffic_with_100_leases_lets_nothing_through() {
    let Some(_one) = may_run("kill_9_and_restart_under_traffic_with_100_leases_lets_nothing_through") else { return };
    let settings = Settings { capacity: 200_000, grant: 100_000, ..nfqueue() };
    let w = World::new("live-restart", "r", settings);
    count_arrivals(&w.c, &[("from_a", &format!("ip saddr {A}")), ("from_b", &format!("ip saddr {B} udp dport 6000"))]).unwrap();
    let mut d = w.vinetd();
    // 100 firewalls for C: one against A, 99 against other sources.
    let owner = firewall_for_c(&w, A);
    let fw = w.env.p("fw.vpc");
    for i in 1..100 {
        w.upload(&owner, &fw, 200, &["--param", &format!("SrcIP=10.9.{}.{}", i / 200, i % 200 + 1)]);
    }
    let s: serde_json::Value = serde_json::from_str(
        w.vinetc_in(&w.c, [vec!["status".into()], w.env.conn(&owner), vec!["--format".into(), "json".into()]].concat()).ok(),
    )
    .unwrap();
    assert_eq!(s["leases"].as_array().map(Vec::len), Some(100), "100 leases stored: {s}");

    // A and B send to C all along (paced, so the machine keeps time for
    // vinetd's restart); the floods end when the test drops them.
    let flood_a = paced(&w.a, C, 2000, 600);
    let flood_b = paced(&w.b, C, 500, 600);
    wait_for("B's traffic at C", HANG, || arrivals(&w.c, "from_b") >= 100);
    let r0 = w.metric("vinet_packets_received_total");
    wait_for("vinetd to receive A's and B's traffic", HANG, || w.metric("vinet_packets_received_total") >= r0 + 1000);
    d.kill9();
    let down_b = arrivals(&w.c, "from_b");
    d = w.vinetd();
    let up_b = arrivals(&w.c, "from_b");
    // vinetd is back: B's traffic resumes, and A's meets the reloaded
    // firewall (3,000 packets received by the new vinetd, most of them A's).
    wait_for("B's traffic to resume at C", HANG, || arrivals(&w.c, "from_b") >= up_b + 500);
    wait_for("the restarted vinetd to receive 3000 packets", HANG, || w.metric("vinet_packets_received_total") >= 3000);
    drop(flood_a);
    drop(flood_b);
    // The last of A's packets had their verdicts before B's last ones were
    // counted; wait for the counts to stand still.
    let mut last = arrivals(&w.c, "from_b");
    wait_for("B's count at C to settle", HANG, || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = arrivals(&w.c, "from_b");
        std::mem::replace(&mut last, now) == now
    });
    let log = d.log_text();
    eprintln!(
        "restart under traffic: from A {} at C; from B {} (at kill {down_b}, when vinetd was back {up_b}); dropped by the new vinetd {}",
        arrivals(&w.c, "from_a"),
        arrivals(&w.c, "from_b"),
        w.metric("vinet_frames_dropped_total")
    );
    assert!(log.contains("resumed=100"), "the restart resumes the 100 leases:\n{log}");
    assert!(arrivals(&w.c, "from_b") > up_b, "B's traffic resumes after the restart");
    assert!(w.metric("vinet_frames_dropped_total") > 0, "the restarted vinetd drops A's packets");
    assert_eq!(arrivals(&w.c, "from_a"), 0, "not one packet from the firewalled A reaches C, before, during or after the restart");
}

#[test]
fn generated_packets_leave_r_and_arrive_at_this_ip() {
    let Some(_one) = may_run("generated_packets_leave_r_and_arrive_at_this_ip") else { return };
    let lib_dir = Scratch::new("live-gen-lib");
    let lib = lib_dir.path("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", lib.to_str().unwrap()]).ok();
    let w = World::new("live-gen", "g", Settings { lemmas: Some(lib), capacity: 100_000, ..nfqueue() });
    // At C (THIS_IP): the generated packets come from A's address (the
    // broadcast source) to port 9910; the broadcast itself (port 5000) is
    // discarded by the program.
    count_arrivals(
        &w.c,
        &[
            ("broadcast", &format!("ip saddr {A} udp dport 5000")),
            ("generated", &format!("ip saddr {A} udp dport 9910")),
            // The destinations list: payload magic VND1.
            ("destinations", &format!("ip saddr {A} udp dport 9910 @th,64,32 0x564e4431")),
            // A content: the broadcast's payload, which starts with the tag.
            ("content", &format!("ip saddr {A} udp dport 9910 @th,64,32 0x4d435354")),
        ],
    )
    .unwrap();
    let _d = w.vinetd();
    // C as an edge router: its prefix 10.0.3.0/24, its own address C.
    let key = w.env.dir.path("edge.key");
    vinetc(&["keygen", "-o", key.to_str().unwrap()]).ok();
    let id = w.env.dir.path("edge.vid");
    let pubkey = format!("{}.pub", key.display());
    vinetc(&[
        "identity",
        "issue",
        "--authority",
        w.env.operator.to_str().unwrap(),
        "--client",
        &pubkey,
        "--prefix",
        "10.0.3.0/24",
        "--router-ip",
        C,
        "-o",
        id.to_str().unwrap(),
    ])
    .ok();
    let edge = ClientFiles { key, id };
    let mc = w.env.bundle_with(
        "mc",
        &std::fs::read_to_string(root().join("examples/multicast.vinet")).unwrap(),
        &root().join("examples/policies/edge-router.toml"),
    );
    eprintln!("upload: {}", w.upload(&edge, &mc, 1_000, &["--param", &format!("BroadcastIP={A}")]));

    // A broadcasts the same datagram to four addresses of C's subnet, C's
    // own among them.
    w.run(
        &w.a,
        &["craft", "--from", A, "--to", C, "--to", "10.0.3.5", "--to", "10.0.3.6", "--to", "10.0.3.7", "--kind", "udp", "--tag", "MCST"],
    );
    wait_for("generated packets at C", HANG, || arrivals(&w.c, "destinations") >= 1 && arrivals(&w.c, "content") >= 1);
    // vinetd publishes its counters a moment after it acts.
    wait_for("vinet_generated_sent_total to count the generated packets", HANG, || w.metric("vinet_generated_sent_total") >= 2);
    let sent = w.metric("vinet_generated_sent_total");
    eprintln!(
        "GENERATE: {} generated packets at C ({} destination lists, {} contents), vinet_generated_sent_total {sent}; broadcast copies at C {}",
        arrivals(&w.c, "generated"),
        arrivals(&w.c, "destinations"),
        arrivals(&w.c, "content"),
        arrivals(&w.c, "broadcast")
    );
    assert_eq!(arrivals(&w.c, "broadcast"), 0, "the broadcast itself is discarded by the program");
    assert_eq!(w.metric("vinet_generated_failed_total"), 0);
}
