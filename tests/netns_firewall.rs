//! The end-to-end test in Linux network namespaces: hosts A and B, a router R
//! forwarding between them and host C, vinetd on R giving the verdicts of the
//! packets the kernel forwards to C (through the hooks vinetd installs).
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
//! replay is refused; vinetd is killed with SIGKILL (while it is down its
//! hooks drop C's traffic: `down = "closed"`) and restarted and the
//! firewall still holds; a lease that ends frees its load (and B's traffic
//! flows again); with `down = "open"` a killed vinetd lets C's traffic pass;
//! `vinetd unhook` removes the table and the iptables rules.
//!
//! The test creates and removes its namespaces itself (a drop guard removes
//! them even when it fails). It needs root, network namespaces and iptables
//! (`scripts/setup` installs it). Where it cannot run it FAILS, saying why,
//! unless VINET_SKIP_NETNS=1 is set, in which case it says loudly that it
//! skipped.

mod router_support;

use std::io::BufRead;
use std::process::{Command, Stdio};

use router_support::netns::{cannot_run, ns, setup, start_ready, traffic, vinetd_in};
use router_support::*;

/// Send from a host; returns whether its TCP connection got through.
fn send_from(host: &str, tag: &str) -> bool {
    let o = traffic(host, &["send", "--to", "10.0.3.2", "--udp", "5000", "--tcp", "5001", "--tag", tag, "--count", "5"]).output().unwrap();
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

/// One round of traffic from each of `hosts` (name, whether its traffic
/// should reach C); returns what C got from each: (UDP datagrams, TCP
/// payloads, whether the TCP connection opened).
///
/// The round waits for the event rather than for a while: every host that
/// should get through has all of its traffic at C, and the router has counted
/// (in `dropped`, the owner's leases' dropped packets) at least 6 more drops
/// (5 datagrams and a SYN) for each host that should not. Only then is what C
/// got read. If the router does the wrong thing the wait ends at its hang
/// deadline and the caller's assertion says what went wrong.
fn round(hosts: &[(&str, bool)], sink: &std::path::Path, n: &str, dropped: &dyn Fn() -> u64) -> Vec<(usize, usize, bool)> {
    let before = dropped();
    let tags: Vec<String> = hosts.iter().map(|(h, _)| format!("{}{n}", &h[h.len() - 1..].to_uppercase())).collect();
    let connected: Vec<bool> = hosts.iter().zip(&tags).map(|((h, _), t)| send_from(h, t)).collect();
    let blocked = hosts.iter().filter(|(_, pass)| !pass).count() as u64;
    let settled = wait_until(HANG, || {
        hosts.iter().zip(&tags).all(|((_, pass), t)| !pass || received(sink, t) == (5, 1)) && dropped() >= before + 6 * blocked
    });
    let got: Vec<(usize, usize, bool)> = tags
        .iter()
        .zip(connected)
        .map(|(t, c)| {
            let (u, p) = received(sink, t);
            (u, p, c)
        })
        .collect();
    for ((t, (u, p, c)), (_, pass)) in tags.iter().zip(&got).zip(hosts) {
        eprintln!("round {n}: C got from {t} {u} UDP datagrams, {p} TCP payloads (connect: {c}; expected to get through: {pass})");
    }
    if !settled {
        eprintln!("round {n}: the expected traffic and drops were not all seen within the hang deadline ({HANG:?})");
    }
    got
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
    let vinetd_in_r = || vinetd_in(&r, &cfg, env.dir.path("vinetd.log"));
    let mut d = vinetd_in_r();
    let sink = env.dir.path("sink.txt");
    let sink_arg = sink.display().to_string();
    let (sink_proc, _) = start_ready(&c, &["sink", "--udp", "5000", "--tcp", "5001", "--out", &sink_arg]);
    net.procs.push(sink_proc);

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
    let status = || {
        let mut v: Vec<String> = vec!["status".into()];
        v.extend(env.conn(&owner));
        v.extend(["--format".into(), "json".into()]);
        let r = vinetc_in(&c, v);
        serde_json::from_str::<serde_json::Value>(r.ok()).unwrap()
    };
    // The packets the owner's programs dropped, as the router reports them.
    let dropped = || status()["leases"].as_array().unwrap().iter().map(|l| l["dropped"].as_u64().unwrap()).sum::<u64>();

    // Before any program: vinetd forwards everything.
    let got = round(&[(&a, true), (&b, true)], &sink, "0", &dropped);
    assert_eq!(got, vec![(5, 1, true), (5, 1, true)], "without programs C must get everything");

    // C's owner uploads the firewall against A (from C, to R's address).
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
    let got = round(&[(&a, false), (&b, true)], &sink, "1", &dropped);
    assert_eq!(got[0], (0, 0, false), "C must receive none of A's traffic");
    assert_eq!(got[1], (5, 1, true), "C must receive B's traffic");

    // The same upload by a key whose identity names another address.
    let other = env.client("other", "10.0.2.2");
    let e = upload(&b, &other, &fw, &["--param", "SrcIP=10.0.1.2"]);
    eprintln!("other address: {}", e.refused("not_served").trim());
    // C's identity presented by another key.
    let thief = ClientFiles { key: other.key.clone(), id: owner.id.clone() };
    eprintln!("stolen identity: {}", upload(&b, &thief, &fw, &["--param", "SrcIP=10.0.1.2"]).refused("key_mismatch").trim());
    // A replay of the owner's upload is a retry: the first answer, the same
    // lease, nothing admitted or charged twice.
    let e = upload(&c, &owner, &fw, &["--send-raw", &saved]);
    let first_lease =
        r1.stdout.split("lease ").nth(1).and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next()).unwrap_or("?").to_string();
    assert!(e.ok().contains(&format!("lease: {first_lease},")), "the retry names the first lease {first_lease}: {e:?}");
    eprintln!("replay: {}", e.stdout.trim());

    // kill -9 and restart: the firewall still holds. While vinetd is down
    // its hooks stay, and with `down = "closed"` (the default) C's traffic
    // is dropped, B's too; B's UDP is given the time to arrive if it could.
    d.kill9();
    assert!(!send_from(&b, "Bdown"), "while vinetd is down, B's TCP to C must not connect (down = closed)");
    assert_eq!(received(&sink, "Bdown"), (0, 0), "while vinetd is down, nothing reaches C (down = closed)");
    d = vinetd_in_r();
    let got = round(&[(&a, false), (&b, true)], &sink, "2", &dropped);
    assert_eq!(got[0], (0, 0, false), "after kill -9 and restart, A must still be blocked");
    assert_eq!(got[1], (5, 1, true), "after kill -9 and restart, B must get through");
    assert!(d.log_text().contains("resumed=1"), "{}", d.log_text());

    // A lease that ends frees its load: an 8-second firewall against B. (The
    // round below must fit in its 8 s; it takes about 3.5 s, most of it B's
    // TCP connect timing out.)
    let short = env.firewall("short", "8 seconds");
    eprintln!("short lease: {}", upload(&c, &owner, &short, &["--param", "SrcIP=10.0.2.2"]).ok().trim());
    assert_eq!(status()["load"].as_u64(), Some(2060));
    let got = round(&[(&b, false)], &sink, "3", &dropped);
    assert_eq!(got[0], (0, 0, false), "while the short lease runs, B is blocked too");
    wait_for("the short lease to end (load back to 1030)", HANG, || status()["load"].as_u64() == Some(1030));
    let got = round(&[(&a, false), (&b, true)], &sink, "4", &dropped);
    assert_eq!(got[0], (0, 0, false), "A stays blocked");
    assert_eq!(got[1], (5, 1, true), "after the lease ended, B gets through again");
    let page = ns(&c, &[VINETC, "status", "--router", &env.listen, "--router-key", &env.p("router.key.pub")]).unwrap();
    eprintln!("{page}");

    // `down = "open"`: killed, the router lets C's traffic pass untouched
    // (iptables' --queue-bypass), A's included, as configured.
    drop(d);
    let open_cfg = env.config(&Settings {
        serves: vec!["10.0.3.0/24".into()],
        live: "mode = \"nfqueue\"\nqueue = 0\ndown = \"open\"".into(),
        window_millis: 5,
        capacity: 4096,
        ..Settings::default()
    });
    let mut d = vinetd_in(&r, &open_cfg, env.dir.path("vinetd-open.log"));
    let got = round(&[(&a, false)], &sink, "5", &dropped);
    assert_eq!(got[0], (0, 0, false), "with down = open, a running vinetd still drops A");
    d.kill9();
    assert!(send_from(&a, "Aopen"), "with down = open and vinetd down, A's TCP to C connects");
    assert!(wait_until(HANG, || received(&sink, "Aopen") == (5, 1)), "with down = open and vinetd down, A's traffic passes");

    // `vinetd unhook` removes the table and the rules; C's traffic flows
    // in the kernel alone.
    let out = ns(&r, &[VINETD, "--config", open_cfg.to_str().unwrap(), "unhook"]).unwrap();
    assert!(out.contains("removed"), "{out}");
    assert!(ns(&r, &["nft", "list", "table", "inet", "vinet"]).is_err(), "the table must be gone");
    let rules = ns(&r, &["iptables", "-t", "mangle", "-S"]).unwrap();
    assert!(!rules.contains("vinetd"), "vinetd's iptables rules must be gone: {rules}");
}
