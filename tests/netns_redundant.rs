//! Redundant paths for an overlay network (issue 13), end to end in Linux
//! network namespaces: the user-space ON endpoint (`vinet-traffic tunnel`) on
//! two access hosts, two node-disjoint paths between them, and one link of a
//! path failed in the middle of a TCP transfer and a UDP stream inside the ON.
//!
//! ```text
//!   A --- R1 ---- R2 ---- R4 --- B      path 1: R1-R2-R4 (R2-R4 is the link failed)
//!          \---- R3 ----/               path 2: R1-R3-R4
//!
//!   A: 10.9.1.1 (path 1), 10.9.2.1 (path 2), TUN on0 172.16.0.1/30
//!   B: 10.9.1.2 (path 1), 10.9.2.2 (path 2), TUN on0 172.16.0.2/30
//! ```
//!
//! (R2's interface to R4, `tor4`, is the one taken down.)
//!
//! The routers are plain Linux forwarding (no vinetd: what is tested is the
//! endpoints), with static /32 routes that pin address k to path k in both
//! directions, so the copy an endpoint sends to the other's path-k address
//! crosses path k and nothing else. The tunnels send one copy of each inner
//! packet to each of the other side's path addresses.
//!
//! - `redundant_paths_lose_nothing_when_a_link_fails`: both paths; a bulk TCP
//!   transfer (8 MiB of a known pattern, paced) and a paced UDP stream of
//!   numbered datagrams from A's TUN address to B's; once both are under way
//!   and B's endpoint has discarded duplicates, R2-R4 goes down. Shown with
//!   counts: the connection completes with every byte right and no error,
//!   every UDP number arrives exactly once, B's endpoint passed exactly the
//!   packets A's read from its TUN, lost none, and path 1 carried nothing
//!   after the failure.
//! - `one_path_loses_packets_when_its_link_fails`: the control. The same
//!   topology with one remote each (path 1), the same failure for a while,
//!   then the link restored: datagrams are missing at B, and B's endpoint
//!   counts them lost. So the first test can fail.
//!
//! The TCP and UDP ends are this test binary itself, run inside a namespace
//! with `ip netns exec` and an environment variable naming the role (see
//! [`role`]); they talk to the test over stdout lines starting `nr-`.
//!
//! No assertion on how long anything took. The waits are for events (a line,
//! a counter) with a hang deadline; the one fixed pause is the control's
//! outage (half a second), which only decides how many datagrams go missing.
//!
//! Where the machine cannot run it (root, network namespaces, iptables, nft)
//! the tests FAIL saying why, unless VINET_SKIP_NETNS=1, in which case they
//! say loudly that they skipped. Drop guards stop every process and remove
//! the namespaces, also on failure.

mod router_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use router_support::netns::{arrivals, cannot_run, count_arrivals, ns, sh, Net, TRAFFIC};
use router_support::{wait_for, Scratch, HANG};

/// The ON's key.
const KEY: &str = "1313";
const TCP_PORT: u16 = 7001;
const UDP_PORT: u16 = 7002;
/// The bulk transfer: 8 MiB in 16 KiB writes, 8 ms apart (about 2 MB/s).
const TCP_BYTES: u64 = 8 << 20;
const TCP_CHUNK: usize = 16 << 10;
const TCP_PAUSE_MS: u64 = 8;
/// The environment variables that make this binary one of the ends.
const ROLE: &str = "VINET_NR_ROLE";
const ROLE_ARGS: &str = "VINET_NR_ARGS";
const UDP_MAGIC: &[u8; 4] = b"NRSQ";
const UDP_END: &[u8; 4] = b"NRND";

// ---------------------------------------------------------------- topology

/// The six namespaces of one run.
struct Topo {
    a: String,
    r1: String,
    r2: String,
    r3: String,
    r4: String,
    b: String,
}

/// Builds the topology in namespaces named `vnr{tag}*`, registered in `net`
/// (removed when it drops).
fn build(net: &mut Net, tag: &str) -> Result<Topo, String> {
    let n = |x: &str| format!("vnr{tag}{x}");
    let t = Topo { a: n("a"), r1: n("r1"), r2: n("r2"), r3: n("r3"), r4: n("r4"), b: n("b") };
    for name in [&t.a, &t.r1, &t.r2, &t.r3, &t.r4, &t.b] {
        // A namespace left by a killed run of this test.
        let _ = sh(&["ip", "netns", "del", name]);
        sh(&["ip", "netns", "add", name])?;
        net.ns.push(name.clone());
        sh(&["ip", "-n", name, "link", "set", "dev", "lo", "up"])?;
        // The copies of path 2 carry A's path-1 source address: no reverse
        // path filter (the routers pin destinations, not sources).
        ns(name, &["sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"])?;
    }
    // (namespace, interface, address) pairs, one /30 each.
    let links = [
        ((&t.a, "eth0", "10.8.0.2"), (&t.r1, "toa", "10.8.0.1")),
        ((&t.r1, "tor2", "10.8.1.1"), (&t.r2, "tor1", "10.8.1.2")),
        ((&t.r1, "tor3", "10.8.2.1"), (&t.r3, "tor1", "10.8.2.2")),
        ((&t.r2, "tor4", "10.8.3.1"), (&t.r4, "tor2", "10.8.3.2")),
        ((&t.r3, "tor4", "10.8.4.1"), (&t.r4, "tor3", "10.8.4.2")),
        ((&t.r4, "tob", "10.8.5.1"), (&t.b, "eth0", "10.8.5.2")),
    ];
    for ((ns1, if1, ad1), (ns2, if2, ad2)) in links {
        sh(&["ip", "-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2])?;
        for (n, i, a) in [(ns1, if1, ad1), (ns2, if2, ad2)] {
            sh(&["ip", "-n", n, "addr", "add", &format!("{a}/30"), "dev", i])?;
            sh(&["ip", "-n", n, "link", "set", "dev", i, "up"])?;
        }
    }
    for (host, path1, path2, gw) in [(&t.a, "10.9.1.1", "10.9.2.1", "10.8.0.1"), (&t.b, "10.9.1.2", "10.9.2.2", "10.8.5.1")] {
        for addr in [path1, path2] {
            sh(&["ip", "-n", host, "addr", "add", &format!("{addr}/32"), "dev", "eth0"])?;
        }
        sh(&["ip", "-n", host, "route", "add", "default", "via", gw])?;
    }
    for r in [&t.r1, &t.r2, &t.r3, &t.r4] {
        ns(r, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
    }
    routes(&t)?;
    Ok(t)
}

/// The routers' static routes: address k of each host along path k only.
/// `replace`, so it also restores what a link taken down removed.
fn routes(t: &Topo) -> Result<(), String> {
    let table: [(&String, &str, &str); 10] = [
        (&t.r1, "10.9.1.1", "10.8.0.2"),
        (&t.r1, "10.9.2.1", "10.8.0.2"),
        (&t.r1, "10.9.1.2", "10.8.1.2"),
        (&t.r1, "10.9.2.2", "10.8.2.2"),
        (&t.r2, "10.9.1.2", "10.8.3.2"),
        (&t.r2, "10.9.1.1", "10.8.1.1"),
        (&t.r3, "10.9.2.2", "10.8.4.2"),
        (&t.r3, "10.9.2.1", "10.8.2.1"),
        (&t.r4, "10.9.1.1", "10.8.3.1"),
        (&t.r4, "10.9.2.1", "10.8.4.1"),
    ];
    for (r, dst, via) in table {
        sh(&["ip", "-n", r, "route", "replace", &format!("{dst}/32"), "via", via])?;
    }
    for dst in ["10.9.1.2", "10.9.2.2"] {
        sh(&["ip", "-n", &t.r4, "route", "replace", &format!("{dst}/32"), "via", "10.8.5.2"])?;
    }
    Ok(())
}

// ---------------------------------------------------------------- processes

/// A child process whose stdout lines are collected by a thread; killed on drop.
struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(what: &str, mut cmd: Command) -> Proc {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Proc { what: what.into(), child, stdin, lines }
    }

    /// The last line starting with `prefix`, without it.
    fn last(&self, prefix: &str) -> Option<String> {
        self.lines.lock().unwrap().iter().rev().find_map(|l| l.strip_prefix(prefix).map(str::to_string))
    }

    /// Waits for a line starting with `prefix` (failing on a hang or if the
    /// process ends first) and returns the rest of it.
    fn wait_line(&mut self, prefix: &str) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.last(prefix) {
                return l;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                // Its last lines may still be in the reader's hands.
                std::thread::sleep(Duration::from_millis(200));
                if let Some(l) = self.last(prefix) {
                    return l;
                }
                panic!("{} ended ({st}) without printing `{prefix}`: {:?}", self.what, self.lines.lock().unwrap());
            }
            assert!(t0.elapsed() < HANG, "hang: {} has not printed `{prefix}` after {HANG:?}", self.what);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The number after the last `prefix` line (0 before the first).
    fn progress(&self, prefix: &str) -> u64 {
        self.last(prefix).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }

    /// Waits for it to end by itself (failing on a hang).
    fn wait_exit(&mut self) {
        let what = &self.what;
        let child = &mut self.child;
        wait_for(&format!("{what} to end"), HANG, || matches!(child.try_wait(), Ok(Some(_))));
    }

    /// Closes its stdin (how a tunnel is told to stop) and waits for `prefix`.
    fn finish(&mut self, prefix: &str) -> String {
        drop(self.stdin.take());
        let line = self.wait_line(prefix);
        let _ = self.child.wait();
        line
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vinet-traffic tunnel` in `net_ns`, once it is ready.
fn tunnel(net_ns: &str, local: &str, remotes: &[&str], address: &str, stats: &std::path::Path) -> Proc {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", net_ns, TRAFFIC, "tunnel", "--key", KEY, "--local", local, "--remote", &remotes.join(",")]);
    cmd.args(["--tun", "on0", "--address", address, "--stats"]).arg(stats).args(["--lifetime", "300"]);
    let mut p = Proc::spawn(&format!("the tunnel in {net_ns}"), cmd);
    p.wait_line("tunnel-ready");
    p
}

/// This test binary as one of the ends (see [`role`]) in `net_ns`.
fn end(net_ns: &str, test: &str, role: &str, args: &str) -> Proc {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", net_ns]).arg(exe).args(["--exact", test, "--nocapture", "--test-threads=1", "-q"]);
    cmd.env(ROLE, role).env(ROLE_ARGS, args);
    Proc::spawn(&format!("{role} in {net_ns}"), cmd)
}

/// A tunnel's statistics (the JSON of a `tunnel-stats` line or its file).
#[derive(Debug, Clone)]
struct Stats(serde_json::Value);

impl Stats {
    fn parse(json: &str) -> Stats {
        Stats(serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("tunnel stats {json:?}: {e}")))
    }
    fn read(file: &std::path::Path) -> Option<Stats> {
        std::fs::read_to_string(file).ok().map(|s| Stats::parse(&s))
    }
    fn get(&self, k: &str) -> u64 {
        self.0[k].as_u64().unwrap_or_else(|| panic!("no counter {k} in {}", self.0))
    }
}

/// Once the ends are gone, lets the last packets through: waits (at most 10
/// seconds, then carries on to the assertions) until the stats files show
/// A's TUN quiet and B's counts steady.
fn settle(a: &std::path::Path, b: &std::path::Path) {
    let mut last = None;
    router_support::wait_until(Duration::from_secs(10), || {
        let now = (Stats::read(a).map(|s| s.get("tun_read")), Stats::read(b).map(|s| s.get("gre_received")));
        let steady = last.as_ref() == Some(&now);
        last = Some(now);
        std::thread::sleep(Duration::from_millis(1_100));
        steady
    });
}

/// `key=value` on a helper's line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn can_run(test: &str) -> bool {
    // Once per process: the two tests run at once, and the probe namespace
    // of `cannot_run` is named after the process.
    static WHY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let why = WHY.get_or_init(|| {
        cannot_run().or_else(|| Command::new("nft").arg("--version").output().is_err().then(|| "`nft` is missing".to_string()))
    });
    if let Some(why) = why {
        if std::env::var("VINET_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED {test}: {why} (VINET_SKIP_NETNS=1) ***\n");
            return false;
        }
        panic!("\n*** {test} CANNOT RUN: {why}. It needs root, network namespaces, iptables and nft. Set VINET_SKIP_NETNS=1 to skip it explicitly. ***\n");
    }
    true
}

// ---------------------------------------------------------------- the tests

#[test]
fn redundant_paths_lose_nothing_when_a_link_fails() {
    const TEST: &str = "redundant_paths_lose_nothing_when_a_link_fails";
    role(TEST);
    if !can_run(TEST) {
        return;
    }
    const UDP_COUNT: u64 = 4000;
    let dir = Scratch::new("netns-redundant");
    let mut net = Net { ns: vec![], procs: vec![] };
    let t = build(&mut net, "1").unwrap_or_else(|e| panic!("{e}"));
    // Outer packets arriving at B by path (outer destination).
    count_arrivals(&t.b, &[("path1", "ip protocol gre ip daddr 10.9.1.2"), ("path2", "ip protocol gre ip daddr 10.9.2.2")]).unwrap();
    let (stats_a, stats_b) = (dir.path("a.json"), dir.path("b.json"));
    let mut tun_a = tunnel(&t.a, "10.9.1.1", &["10.9.1.2", "10.9.2.2"], "172.16.0.1/30", &stats_a);
    let mut tun_b = tunnel(&t.b, "10.9.1.2", &["10.9.1.1", "10.9.2.1"], "172.16.0.2/30", &stats_b);

    let mut udp_rx = end(&t.b, TEST, "udp-recv", &format!("172.16.0.2:{UDP_PORT} {UDP_COUNT}"));
    udp_rx.wait_line("nr-ready");
    let mut tcp_rx = end(&t.b, TEST, "tcp-server", &format!("172.16.0.2:{TCP_PORT}"));
    tcp_rx.wait_line("nr-ready");
    let mut tcp_tx = end(&t.a, TEST, "tcp-client", &format!("172.16.0.2:{TCP_PORT} {TCP_BYTES}"));
    let mut udp_tx = end(&t.a, TEST, "udp-send", &format!("172.16.0.2:{UDP_PORT} {UDP_COUNT} 1000"));

    // Fail R2-R4 once both transfers are under way and B has eliminated copies.
    let mut before = None;
    wait_for("both transfers under way and duplicates discarded at B", HANG, || {
        let s = Stats::read(&stats_b).filter(|s| s.get("discarded") > 0);
        let going = tcp_rx.progress("nr-progress ") >= TCP_BYTES / 5 && udp_rx.progress("nr-udp ") >= UDP_COUNT / 5;
        if going && s.is_some() {
            before = s;
        }
        before.is_some()
    });
    let before = before.unwrap();
    ns(&t.r2, &["ip", "link", "set", "dev", "tor4", "down"]).unwrap();
    let (tcp_at_failure, udp_at_failure) = (tcp_rx.progress("nr-progress "), udp_rx.progress("nr-udp "));
    // What was already past R2-R4 when it went down reaches B within this pause.
    std::thread::sleep(Duration::from_millis(200));
    let path1_at_failure = arrivals(&t.b, "path1");
    let path2_at_failure = arrivals(&t.b, "path2");

    let udp = udp_rx.wait_line("nr-udp-done");
    let server = tcp_rx.wait_line("nr-tcp-done");
    let client = tcp_tx.wait_line("nr-tcp-sent");
    let sent = udp_tx.wait_line("nr-udp-sent");
    for p in [&mut udp_rx, &mut tcp_rx, &mut tcp_tx, &mut udp_tx] {
        p.wait_exit();
    }
    settle(&stats_a, &stats_b);
    let (path1, path2) = (arrivals(&t.b, "path1"), arrivals(&t.b, "path2"));
    // A first, so that nothing it reads from its TUN is missed by B.
    let a = Stats::parse(&tun_a.finish("tunnel-stats "));
    let b = Stats::parse(&tun_b.finish("tunnel-stats "));
    eprintln!("redundant: B before the failure {}", before.0);
    eprintln!("redundant: A {}", a.0);
    eprintln!("redundant: B {}", b.0);
    eprintln!("redundant: tcp server {server}; client {client}; at failure {tcp_at_failure} bytes");
    eprintln!("redundant: udp {udp}; sent {sent}; at failure {udp_at_failure} datagrams");
    eprintln!("redundant: GRE at B via path 1 {path1_at_failure} at failure, {path1} at the end; via path 2 {path2_at_failure}, {path2}");

    // The failure happened in the middle of both transfers.
    assert!(0 < tcp_at_failure && tcp_at_failure < TCP_BYTES, "TCP at the failure: {tcp_at_failure} of {TCP_BYTES}");
    assert!(0 < udp_at_failure && udp_at_failure < UDP_COUNT, "UDP at the failure: {udp_at_failure} of {UDP_COUNT}");
    // Path 1 carried nothing after the failure; path 2 carried on.
    assert_eq!(path1, path1_at_failure, "GRE still arriving by the failed path");
    assert!(path2 > path2_at_failure);
    // The TCP connection never broke and delivered every byte right.
    assert!(tcp_tx.last("nr-tcp-error").is_none() && tcp_rx.last("nr-tcp-error").is_none(), "{:?}", tcp_tx.lines);
    assert_eq!((field(&server, "bytes"), field(&server, "mismatches"), field(&server, "connections")), (TCP_BYTES, 0, 1), "{server}");
    assert_eq!((field(&client, "bytes"), field(&client, "acked")), (TCP_BYTES, TCP_BYTES), "{client}");
    // Every UDP number delivered to B's TUN exactly once.
    assert_eq!(field(&sent, "sent"), UDP_COUNT);
    assert_eq!(
        (field(&udp, "distinct"), field(&udp, "duplicates"), field(&udp, "missing"), field(&udp, "foreign")),
        (UDP_COUNT, 0, 0, 0),
        "{udp}"
    );
    assert_eq!(field(&udp, "received"), UDP_COUNT);
    // The endpoints: copies eliminated before the failure, nothing lost, B
    // passed exactly the packets A read from its TUN, each once.
    assert!(before.get("discarded") > 0);
    assert_eq!((a.get("sent_copies"), a.get("send_errors")), (2 * a.get("tun_read"), 0), "A: {}", a.0);
    assert_eq!(b.get("passed"), a.get("tun_read"), "B passed what A sent: {}", b.0);
    assert_eq!(b.get("tun_written"), b.get("passed"));
    assert_eq!((b.get("lost"), b.get("rogue"), b.get("malformed"), b.get("other_key")), (0, 0, 0, 0), "B: {}", b.0);
    assert_eq!(b.get("passed") + b.get("discarded"), b.get("gre_received"));
    assert!(b.get("discarded") > 0 && b.get("discarded") < b.get("passed"), "B: {}", b.0);
    assert_eq!(a.get("lost"), 0, "A: {}", a.0);
}

#[test]
fn one_path_loses_packets_when_its_link_fails() {
    const TEST: &str = "one_path_loses_packets_when_its_link_fails";
    role(TEST);
    if !can_run(TEST) {
        return;
    }
    // 500 a second: the half-second outage loses about 250, well inside the
    // 1,024-number history, and the 1,000 and more sent after it push the
    // lost numbers out of the window, where the endpoint counts them.
    const UDP_COUNT: u64 = 2000;
    let dir = Scratch::new("netns-one-path");
    let mut net = Net { ns: vec![], procs: vec![] };
    let t = build(&mut net, "2").unwrap_or_else(|e| panic!("{e}"));
    let stats_b = dir.path("b.json");
    let mut tun_a = tunnel(&t.a, "10.9.1.1", &["10.9.1.2"], "172.16.0.1/30", &dir.path("a.json"));
    let mut tun_b = tunnel(&t.b, "10.9.1.2", &["10.9.1.1"], "172.16.0.2/30", &stats_b);
    let mut udp_rx = end(&t.b, TEST, "udp-recv", &format!("172.16.0.2:{UDP_PORT} {UDP_COUNT}"));
    udp_rx.wait_line("nr-ready");
    let mut udp_tx = end(&t.a, TEST, "udp-send", &format!("172.16.0.2:{UDP_PORT} {UDP_COUNT} 2000"));
    wait_for("the stream under way", HANG, || udp_rx.progress("nr-udp ") >= UDP_COUNT / 5);
    ns(&t.r2, &["ip", "link", "set", "dev", "tor4", "down"]).unwrap();
    let at_failure = udp_rx.progress("nr-udp ");
    std::thread::sleep(Duration::from_millis(500));
    ns(&t.r2, &["ip", "link", "set", "dev", "tor4", "up"]).unwrap();
    routes(&t).unwrap();
    let udp = udp_rx.wait_line("nr-udp-done");
    let sent = udp_tx.wait_line("nr-udp-sent");
    udp_tx.wait_exit();
    udp_rx.wait_exit();
    settle(&dir.path("a.json"), &stats_b);
    let a = Stats::parse(&tun_a.finish("tunnel-stats "));
    let b = Stats::parse(&tun_b.finish("tunnel-stats "));
    eprintln!("one path: A {}", a.0);
    eprintln!("one path: B {}", b.0);
    eprintln!("one path: udp {udp}; sent {sent}; at failure {at_failure}");

    assert!(at_failure < UDP_COUNT, "the failure came after the stream: {at_failure}");
    assert_eq!(field(&sent, "sent"), UDP_COUNT);
    let missing = field(&udp, "missing");
    assert!(missing > 0, "one path and a failed link, yet nothing missing: {udp}");
    assert_eq!(field(&udp, "distinct") + missing, UDP_COUNT);
    assert_eq!(field(&udp, "duplicates"), 0);
    // No second copy to eliminate, and the endpoint saw the loss.
    assert_eq!((a.get("sent_copies"), b.get("discarded")), (a.get("tun_read"), 0));
    assert!(b.get("lost") > 0 && b.get("lost") <= missing, "B: {}", b.0);
    assert_eq!(b.get("passed"), a.get("tun_read") - missing, "B: {}", b.0);
}

// ---------------------------------------------------------------- the ends

/// Runs as one of the TCP and UDP ends if the environment says so (and then
/// exits, never returning to the test). The roles, with [`ROLE_ARGS`]:
///
/// - `tcp-server ADDR:PORT`: accepts one connection, reads to its end, checks
///   every byte against the pattern; prints `nr-progress BYTES` as it goes
///   and `nr-tcp-done bytes=N mismatches=M connections=C`; answers the count.
/// - `tcp-client ADDR:PORT BYTES`: sends BYTES of the pattern, paced, closes
///   its side, reads the count: `nr-tcp-sent bytes=N acked=M`.
/// - `udp-recv ADDR:PORT COUNT`: counts each number 0..COUNT until the end
///   marker: `nr-udp DISTINCT` as it goes, then `nr-udp-done received=R
///   distinct=D duplicates=X missing=M foreign=F`.
/// - `udp-send ADDR:PORT COUNT INTERVAL_US`: numbered datagrams on a
///   schedule, then end markers: `nr-udp-sent sent=N`.
///
/// Any I/O error prints `nr-tcp-error ...` (or panics, for UDP) and exits 1.
fn role(test: &str) {
    let Ok(role) = std::env::var(ROLE) else { return };
    let args: Vec<String> = std::env::var(ROLE_ARGS).unwrap_or_default().split_whitespace().map(str::to_string).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| panic!("{test} {role}: argument {i} missing"));
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or_else(|e| panic!("{test} {role}: argument {i}: {e}"));
    let code = match role.as_str() {
        "tcp-server" => tcp_server(&arg(0)),
        "tcp-client" => tcp_client(&arg(0), num(1)),
        "udp-recv" => udp_recv(&arg(0), num(1)),
        "udp-send" => udp_send(&arg(0), num(1), num(2)),
        other => panic!("unknown role {other}"),
    };
    std::process::exit(code);
}

/// One line to the test (stdout, past the harness's capture).
fn say(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}").and_then(|()| o.flush());
}

/// The bytes of the transfer: xorshift64 from a fixed seed, 8 bytes a step.
struct Pattern {
    state: u64,
    word: [u8; 8],
    at: usize,
}

impl Pattern {
    fn new() -> Pattern {
        Pattern { state: 0x9e37_79b9_7f4a_7c15, word: [0; 8], at: 8 }
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.at == 8 {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                self.word = self.state.to_le_bytes();
                self.at = 0;
            }
            *b = self.word[self.at];
            self.at += 1;
        }
    }
}

fn tcp_server(addr: &str) -> i32 {
    let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    l.set_nonblocking(true).unwrap();
    say("nr-ready");
    let t0 = Instant::now();
    let mut stream = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && t0.elapsed() < HANG => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                say(&format!("nr-tcp-error accept: {e}"));
                return 1;
            }
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    let (mut pattern, mut buf, mut want) = (Pattern::new(), vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    let (mut got, mut mismatches, mut next_report) = (0u64, 0u64, 0u64);
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pattern.fill(&mut want[..n]);
                mismatches += buf[..n].iter().zip(&want[..n]).filter(|(a, b)| a != b).count() as u64;
                got += n as u64;
                if got >= next_report {
                    say(&format!("nr-progress {got}"));
                    next_report = got + (64 << 10);
                }
            }
            Err(e) => {
                say(&format!("nr-tcp-error read after {got} bytes: {e}"));
                return 1;
            }
        }
    }
    // Any other connection attempt (there should be none) is counted.
    let mut connections = 1;
    while l.accept().is_ok() {
        connections += 1;
    }
    say(&format!("nr-progress {got}"));
    if let Err(e) = stream.write_all(&got.to_be_bytes()) {
        say(&format!("nr-tcp-error answering: {e}"));
        return 1;
    }
    say(&format!("nr-tcp-done bytes={got} mismatches={mismatches} connections={connections}"));
    0
}

fn tcp_client(addr: &str, bytes: u64) -> i32 {
    let to: std::net::SocketAddr = addr.parse().unwrap();
    let mut s = match TcpStream::connect_timeout(&to, Duration::from_secs(10)) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("nr-tcp-error connect: {e}"));
            return 1;
        }
    };
    let (mut pattern, mut chunk, mut sent) = (Pattern::new(), vec![0u8; TCP_CHUNK], 0u64);
    while sent < bytes {
        let n = (bytes - sent).min(TCP_CHUNK as u64) as usize;
        pattern.fill(&mut chunk[..n]);
        if let Err(e) = s.write_all(&chunk[..n]) {
            say(&format!("nr-tcp-error write after {sent} bytes: {e}"));
            return 1;
        }
        sent += n as u64;
        std::thread::sleep(Duration::from_millis(TCP_PAUSE_MS));
    }
    let mut ack = [0u8; 8];
    let answer = s.shutdown(std::net::Shutdown::Write).and_then(|()| s.set_read_timeout(Some(HANG))).and_then(|()| s.read_exact(&mut ack));
    if let Err(e) = answer {
        say(&format!("nr-tcp-error waiting for the count: {e}"));
        return 1;
    }
    say(&format!("nr-tcp-sent bytes={sent} acked={}", u64::from_be_bytes(ack)));
    0
}

fn udp_recv(addr: &str, count: u64) -> i32 {
    let u = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    u.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    say("nr-ready");
    let mut seen = vec![0u32; count as usize];
    let (mut received, mut distinct, mut foreign) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    // Until the end marker; the hang deadline only stops a lost one.
    while t0.elapsed() < HANG {
        let Ok(n) = u.recv(&mut buf) else { continue };
        if n >= 4 && buf[..4] == *UDP_END {
            break;
        }
        let seq = (n >= 8 && buf[..4] == *UDP_MAGIC).then(|| u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize);
        match seq.filter(|&s| s < seen.len()) {
            Some(s) => {
                received += 1;
                seen[s] += 1;
                if seen[s] == 1 {
                    distinct += 1;
                    if distinct % 100 == 0 {
                        say(&format!("nr-udp {distinct}"));
                    }
                }
            }
            None => foreign += 1,
        }
    }
    let duplicates: u64 = seen.iter().map(|&c| u64::from(c.saturating_sub(1))).sum();
    say(&format!("nr-udp {distinct}"));
    say(&format!(
        "nr-udp-done received={received} distinct={distinct} duplicates={duplicates} missing={} foreign={foreign}",
        count - distinct
    ));
    0
}

fn udp_send(addr: &str, count: u64, interval_us: u64) -> i32 {
    let u = UdpSocket::bind("0.0.0.0:0").unwrap();
    u.connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut d = [0u8; 64];
    d[..4].copy_from_slice(UDP_MAGIC);
    let (t0, mut sent) = (Instant::now(), 0u64);
    for i in 0..count {
        // On schedule: datagram i at i intervals from the start.
        let due = Duration::from_micros(i * interval_us);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        d[4..8].copy_from_slice(&(i as u32).to_be_bytes());
        // A datagram the stack refuses is not counted as sent.
        sent += u64::from(u.send(&d).is_ok());
    }
    say(&format!("nr-udp-sent sent={sent}"));
    // End markers, several: one of them gets through a restored path.
    d[..4].copy_from_slice(UDP_END);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let _ = u.send(&d);
    }
    0
}
