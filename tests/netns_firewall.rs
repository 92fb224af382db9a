//! The end-to-end test in Linux network namespaces: hosts A and B, a router R
//! forwarding between them and host C, vinetd on R giving the verdicts of the
//! packets the kernel forwards (an iptables NFQUEUE rule on R's FORWARD
//! chain).
//!
//! ```text
//!   A 10.0.1.2 --- 10.0.1.1 .              . 10.0.3.1 --- 10.0.3.2 C
//!                           R (vinetd, NFQUEUE)
//!   B 10.0.2.2 --- 10.0.2.1 '
//! ```
//!
//! C's owner uploads the paper's firewall against A; real UDP and TCP from A
//! and B to C; C receives B's traffic and none of A's. The same upload signed
//! by a key whose identity names another address is refused (R serves
//! 10.0.3.0/24 only), and so is C's identity presented by another key; a
//! replay is refused; vinetd is killed with SIGKILL and restarted and the
//! firewall still holds; a lease that ends frees its load (and B's traffic
//! flows again).
//!
//! The test creates and removes its namespaces itself (a drop guard removes
//! them even when it fails). It needs root, network namespaces and iptables
//! (`scripts/setup` installs it). Where it cannot run it FAILS, saying why,
//! unless VINET_SKIP_NETNS=1 is set, in which case it says loudly that it
//! skipped.

mod router_support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use router_support::netns::{self, cannot_run, helper, ns, setup};
use router_support::*;

/// Not a test: the entry point of the helper processes this test runs inside
/// the namespaces (a UDP/TCP sink on C, senders on A and B). Without the
/// environment variable it does nothing.
#[test]
fn helper_entry() {
    netns::helper_main();
}

/// Send from a host; returns whether its TCP connection got through.
fn send_from(host: &str, tag: &str) -> bool {
    let o = helper(host, &format!("send 10.0.3.2 5000 5001 {tag} 5")).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "sender failed: {out} {}", String::from_utf8_lossy(&o.stderr));
    out.contains("tcp connected")
}

/// What C received with a tag: (UDP datagrams, TCP payloads).
fn received(sink: &std::path::Path, tag: &str) -> (usize, usize) {
    let Ok(f) = std::fs::File::open(sink) else { return (0, 0) };
    let lines: Vec<String> = std::io::BufReader::new(f).lines().map_while(Result::ok).filter(|l| l.contains(&format!(" {tag} "))).collect();
    (lines.iter().filter(|l| l.starts_with("udp ")).count(), lines.iter().filter(|l| l.starts_with("tcp ")).count())
}

/// One round of traffic from A and B; returns what C got from each.
fn round(a: &str, b: &str, sink: &std::path::Path, n: &str) -> ((usize, usize, bool), (usize, usize, bool)) {
    let (ta, tb) = (format!("A{n}"), format!("B{n}"));
    let ca = send_from(a, &ta);
    let cb = send_from(b, &tb);
    std::thread::sleep(Duration::from_millis(300));
    let (ua, pa) = received(sink, &ta);
    let (ub, pb) = received(sink, &tb);
    eprintln!("round {n}: C got from A {ua} UDP datagrams, {pa} TCP payloads (connect: {ca}); from B {ub} UDP, {pb} TCP (connect: {cb})");
    ((ua, pa, ca), (ub, pb, cb))
}

#[test]
fn netns_firewall_end_to_end() {
    if let Some(why) = cannot_run() {
        if std::env::var("VINET_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED netns_firewall_end_to_end: {why} (VINET_SKIP_NETNS=1) ***\n");
            return;
        }
        panic!("\n*** netns_firewall_end_to_end CANNOT RUN: {why}. It needs root, network namespaces and iptables (scripts/setup installs iptables). Set VINET_SKIP_NETNS=1 to skip it explicitly. ***\n");
    }
    let tag = format!("{}", std::process::id() % 100_000);
    let mut net = setup(&tag).unwrap_or_else(|e| panic!("cannot build the network: {e}"));
    let [a, b, c, r] = [0, 1, 2, 3].map(|i| net.ns[i].clone());

    let mut env = Env::new("netns");
    env.listen = "10.0.3.1:7700".into();
    env.metrics = "10.0.3.1:9910".into();
    let cfg = env.config(&Settings {
        serves: vec!["10.0.3.0/24".into()],
        live: "mode = \"nfqueue\"\nqueue = 0".into(),
        window_millis: 5,
        capacity: 4096,
        ..Settings::default()
    });
    let vinetd_in_r = || {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &r, VINETD]);
        Vinetd::start_with(cmd, &cfg, "", env.dir.path("vinetd.log"))
    };
    let mut d = vinetd_in_r();
    ns(&r, &["iptables", "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0"]).unwrap();
    let sink = env.dir.path("sink.txt");
    net.procs.push(helper(&c, &format!("sink 5000 5001 {}", sink.display())).stdout(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(300));

    // Before any program: vinetd forwards everything.
    let ((ua, pa, ca), (ub, pb, cb)) = round(&a, &b, &sink, "0");
    assert!(ua == 5 && pa == 1 && ca && ub == 5 && pb == 1 && cb, "without programs C must get everything");

    // C's owner uploads the firewall against A (from C, to R's address).
    let owner = env.client("owner", "10.0.3.2");
    let fw = env.firewall("fw", "2 days");
    let vinetc_in = |host: &str, args: Vec<String>| {
        let mut v: Vec<String> = vec!["ip".into(), "netns".into(), "exec".into(), host.into(), VINETC.into()];
        v.extend(args);
        let o = Command::new(&v[0]).args(&v[1..]).stdin(Stdio::null()).output().unwrap();
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    };
    let upload = |host: &str, who: &ClientFiles, bundle: &str, extra: &[&str]| {
        let mut v: Vec<String> = vec!["upload".into(), bundle.into()];
        v.extend(env.conn(who));
        v.extend(["--pay".into(), "200".into()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        vinetc_in(host, v)
    };
    let saved = env.p("upload.req");
    let r1 = upload(&c, &owner, &fw, &["--param", "SrcIP=10.0.1.2", "--save-request", &saved]);
    eprintln!("upload: {}", r1.ok().trim());
    let ((ua, pa, ca), (ub, pb, cb)) = round(&a, &b, &sink, "1");
    assert_eq!((ua, pa, ca), (0, 0, false), "C must receive none of A's traffic");
    assert_eq!((ub, pb, cb), (5, 1, true), "C must receive B's traffic");

    // The same upload by a key whose identity names another address.
    let other = env.client("other", "10.0.2.2");
    let e = upload(&b, &other, &fw, &["--param", "SrcIP=10.0.1.2"]);
    eprintln!("other address: {}", e.refused("not_served").trim());
    // C's identity presented by another key.
    let thief = ClientFiles { key: other.key.clone(), id: owner.id.clone() };
    eprintln!("stolen identity: {}", upload(&b, &thief, &fw, &["--param", "SrcIP=10.0.1.2"]).refused("key_mismatch").trim());
    // A replay of the owner's upload.
    let e = upload(&c, &owner, &fw, &["--send-raw", &saved]);
    eprintln!("replay: {}", e.refused("replay").trim());

    // kill -9 and restart: the firewall still holds.
    d.kill9();
    d = vinetd_in_r();
    let ((ua, pa, ca), (ub, pb, cb)) = round(&a, &b, &sink, "2");
    assert_eq!((ua, pa, ca), (0, 0, false), "after kill -9 and restart, A must still be blocked");
    assert_eq!((ub, pb, cb), (5, 1, true), "after kill -9 and restart, B must get through");
    assert!(d.log_text().contains("resumed=1"), "{}", d.log_text());

    // A lease that ends frees its load: an 8-second firewall against B.
    let short = env.firewall("short", "8 seconds");
    let t0 = Instant::now();
    eprintln!("short lease: {}", upload(&c, &owner, &short, &["--param", "SrcIP=10.0.2.2"]).ok().trim());
    let status = || {
        let mut v: Vec<String> = vec!["status".into()];
        v.extend(env.conn(&owner));
        v.extend(["--format".into(), "json".into()]);
        let r = vinetc_in(&c, v);
        serde_json::from_str::<serde_json::Value>(r.ok()).unwrap()
    };
    assert_eq!(status()["load"].as_u64(), Some(2048));
    let cb = send_from(&b, "B3");
    std::thread::sleep(Duration::from_millis(300));
    let (ub, pb) = received(&sink, "B3");
    eprintln!("round 3 (short lease running): C got from B {ub} UDP, {pb} TCP (connect: {cb})");
    assert_eq!((ub, pb, cb), (0, 0, false), "while the short lease runs, B is blocked too");
    while status()["load"].as_u64() != Some(1024) {
        assert!(t0.elapsed() < Duration::from_secs(30), "the short lease did not end");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("short lease ended after {:.1} s; load back to 1024", t0.elapsed().as_secs_f64());
    let ((ua, pa, ca), (ub, pb, cb)) = round(&a, &b, &sink, "4");
    assert_eq!((ua, pa, ca), (0, 0, false));
    assert_eq!((ub, pb, cb), (5, 1, true), "after the lease ended, B gets through again");
    let page = ns(&c, &[VINETC, "status", "--router", &env.listen, "--router-key", &env.p("router.key.pub")]).unwrap();
    eprintln!("{page}");
    drop(d);
    let _ = ns(&r, &["iptables", "-D", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0"]);
}
