//! The end-to-end firewall test over both families (issue 15), in Linux
//! network namespaces: dual-stack hosts A and B, a router R forwarding IPv4
//! and IPv6 between them and host C, vinetd on R giving the verdicts of the
//! packets the kernel forwards to C, through the hooks it installs (nftables
//! sets of each family, iptables and ip6tables NFQUEUE rules).
//!
//! ```text
//!   A 10.0.1.2 fd00:1::2 --- 10.0.1.1 fd00:1::1 .              . 10.0.3.1 fd00:3::1 --- 10.0.3.2 fd00:3::2 C
//!                                                R (vinetd, NFQUEUE)
//!   B 10.0.2.2 fd00:2::2 --- 10.0.2.1 fd00:2::1 '
//! ```
//!
//! C's owner has a dual-stack end-user identity (`vinetc identity issue
//! --address 10.0.3.2 --address fd00:3::2`) and uploads the paper's firewall
//! written for two blocked addresses, A's IPv4 and A's IPv6 one; the router
//! (serving 10.0.3.0/24 and fd00:3::/64) installs it once per address. Real
//! UDP and TCP from A and B to C over IPv4 and IPv6: C gets B's traffic over
//! both families and none of A's over either. An identity for an IPv6
//! address the router does not serve is refused. While vinetd is down
//! (killed with SIGKILL, `down = "closed"`) C's IPv6 is dropped too; after a
//! restart the firewall holds over both families again; `vinetd unhook`
//! removes the ip6tables rules with the rest.
//!
//! A second test runs GENERATE over IPv6 on the live path: an edge router
//! C with the prefix fd00:3::/64 (its own address fd00:3::2) uploads the
//! paper's multicast aggregator for a broadcast from A's IPv6 address; the
//! packets it generates (IPv6/UDP, from A's address to THIS_IP) leave R by
//! its raw IPv6 socket and arrive at C.
//!
//! The tests create and remove their namespaces themselves (a drop guard removes
//! them even when one fails), and run one at a time (a lock). Every wait is
//! for an event, with the hang deadline of `router_support`; nothing asserts
//! how long anything took. They need root, network namespaces, iptables,
//! ip6tables, nft and curl (`scripts/setup` installs them). Where they
//! cannot run they FAIL, saying why, unless VINET_SKIP_NETNS=1 is set, in
//! which case they say loudly that they skipped.

mod router_support;

use std::io::BufRead;
use std::process::{Command, Stdio};

use std::sync::{Mutex, MutexGuard};

use router_support::netns::{
    add_ipv6, arrivals, cannot_run, count_arrivals, metric_of, metrics_page, ns, setup, start_ready, traffic, vinetd_in,
};
use router_support::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// C's two addresses.
const C4: &str = "10.0.3.2";
const C6: &str = "fd00:3::2";

/// Send from a host to one of C's addresses; returns whether its TCP
/// connection got through.
fn send_from(host: &str, to: &str, tag: &str) -> bool {
    let o = traffic(host, &["send", "--to", to, "--udp", "5000", "--tcp", "5001", "--tag", tag, "--count", "5"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "sender failed: {out} {}", String::from_utf8_lossy(&o.stderr));
    out.contains("tcp connected")
}

/// What C received with a tag: (UDP datagrams, TCP payloads), each from
/// `from` (the sender's address of the family it sent over).
fn received(sink: &std::path::Path, tag: &str, from: &str) -> (usize, usize) {
    let Ok(f) = std::fs::File::open(sink) else { return (0, 0) };
    let lines: Vec<String> = std::io::BufReader::new(f).lines().map_while(Result::ok).filter(|l| l.contains(&format!(" {tag} "))).collect();
    for l in &lines {
        assert_eq!(l.split_whitespace().nth(1), Some(from), "{tag} was sent from {from}: {l}");
    }
    (lines.iter().filter(|l| l.starts_with("udp ")).count(), lines.iter().filter(|l| l.starts_with("tcp ")).count())
}

/// A sender: its namespace, its letter, and its addresses (IPv4, IPv6).
#[derive(Clone, Copy)]
struct Host<'a> {
    ns: &'a str,
    name: char,
    v4: &'a str,
    v6: &'a str,
}

/// One round of traffic from each of `hosts` to C over both families
/// (whether the host's traffic should reach C); returns what C got from
/// each host and family, in the order (host, IPv4), (host, IPv6), ...:
/// (UDP datagrams, TCP payloads, whether the TCP connection opened).
///
/// The round waits for the event rather than for a while: every flow that
/// should get through has all of its traffic at C, and the router has
/// counted (in `dropped`, the owner's leases' dropped packets) at least 6
/// more drops (5 datagrams and a SYN) for each flow that should not. Only
/// then is what C got read. If the router does the wrong thing the wait ends
/// at its hang deadline and the caller's assertion says what went wrong.
fn round(hosts: &[(Host, bool)], sink: &std::path::Path, n: &str, dropped: &dyn Fn() -> u64) -> Vec<(usize, usize, bool)> {
    let before = dropped();
    // (tag, sender's address, whether it should pass, whether it connected)
    let mut flows = vec![];
    for &(h, pass) in hosts {
        for (family, to, from) in [('4', C4, h.v4), ('6', C6, h.v6)] {
            let tag = format!("{}{family}r{n}", h.name);
            let connected = send_from(h.ns, to, &tag);
            flows.push((tag, from, pass, connected));
        }
    }
    let blocked = flows.iter().filter(|f| !f.2).count() as u64;
    let settled = wait_until(HANG, || {
        flows.iter().all(|(t, from, pass, _)| !pass || received(sink, t, from) == (5, 1)) && dropped() >= before + 6 * blocked
    });
    let got: Vec<(usize, usize, bool)> = flows
        .iter()
        .map(|(t, from, pass, c)| {
            let (u, p) = received(sink, t, from);
            eprintln!(
                "round {n}: C got from {t} ({from}) {u} UDP datagrams, {p} TCP payloads (connect: {c}; expected to get through: {pass})"
            );
            (u, p, *c)
        })
        .collect();
    if !settled {
        eprintln!("round {n}: the expected traffic and drops were not all seen within the hang deadline ({HANG:?})");
    }
    got
}

/// The lock, or None if the test must skip (VINET_SKIP_NETNS=1 on a machine
/// that cannot run it); panics where it cannot run otherwise.
fn may_run(test: &str) -> Option<MutexGuard<'static, ()>> {
    // Taken first: `cannot_run` probes with a namespace named by the pid.
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let why = cannot_run().or_else(|| {
        ["ip6tables", "nft", "curl"]
            .iter()
            .find(|t| Command::new(t).arg("--version").output().is_err())
            .map(|t| format!("`{t}` is missing"))
    });
    if let Some(why) = why {
        if std::env::var("VINET_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED {test}: {why} (VINET_SKIP_NETNS=1) ***\n");
            return None;
        }
        panic!("\n*** {test} CANNOT RUN: {why}. It needs root, network namespaces, iptables, ip6tables, nft and curl (scripts/setup installs them). Set VINET_SKIP_NETNS=1 to skip it explicitly. ***\n");
    }
    Some(one)
}

/// `vinetc ARGS..` inside a host's namespace.
fn vinetc_in(host: &str, args: Vec<String>) -> Run {
    let o = Command::new("ip").args(["netns", "exec", host, VINETC]).args(&args).stdin(Stdio::null()).output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

#[test]
fn netns_dualstack_firewall_end_to_end() {
    let Some(_one) = may_run("netns_dualstack_firewall_end_to_end") else { return };
    // Its own names ("d" for dual), so it may run beside netns_firewall.
    let tag = format!("{}d", std::process::id() % 100_000);
    let mut net = setup(&tag).unwrap_or_else(|e| panic!("cannot build the network: {e}"));
    add_ipv6(&net).unwrap_or_else(|e| panic!("cannot give the network IPv6: {e}"));
    let [a, b, c, r] = [0, 1, 2, 3].map(|i| net.ns[i].clone());
    let (ha, hb) =
        (Host { ns: &a, name: 'A', v4: "10.0.1.2", v6: "fd00:1::2" }, Host { ns: &b, name: 'B', v4: "10.0.2.2", v6: "fd00:2::2" });

    let mut env = Env::new("netns-dualstack");
    env.listen = "10.0.3.1:7700".into();
    env.metrics = "10.0.3.1:9910".into();
    let cfg = env.config(&Settings {
        serves: vec!["10.0.3.0/24".into(), "fd00:3::/64".into()],
        live: "mode = \"nfqueue\"\nqueue = 0".into(),
        window_millis: 5,
        ..Settings::default()
    });
    let vinetd_in_r = || vinetd_in(&r, &cfg, env.dir.path("vinetd.log"));
    let mut d = vinetd_in_r();
    let sink = env.dir.path("sink.txt");
    let sink_arg = sink.display().to_string();
    let (sink_proc, _) = start_ready(&c, &["sink", "--udp", "5000", "--tcp", "5001", "--out", &sink_arg]);
    net.procs.push(sink_proc);

    // C's owner: one identity, both of C's addresses.
    let owner = env.client_by("owner", C4, &env.operator.clone(), &["--address", C6]);
    let fw = env.bundle(
        "fw2",
        "LIFETIME = 2 days\nPARAM SrcIP = 10.0.1.2;\nPARAM SrcIP6 = fd00:1::2;\nMyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nDISCARD(GROUP_BY_SOURCE(MyPackets, SrcIP));\nDISCARD(GROUP_BY_SOURCE(MyPackets, SrcIP6));\n",
    );
    let status = || {
        let mut v: Vec<String> = vec!["status".into()];
        v.extend(env.conn(&owner));
        v.extend(["--format".into(), "json".into()]);
        let r = vinetc_in(&c, v);
        serde_json::from_str::<serde_json::Value>(r.ok()).unwrap()
    };
    // The packets the owner's programs dropped, as the router reports them.
    let dropped = || status()["leases"].as_array().unwrap().iter().map(|l| l["dropped"].as_u64().unwrap()).sum::<u64>();
    let upload = |host: &str, who: &ClientFiles, bundle: &str| {
        let mut v: Vec<String> = vec!["upload".into(), bundle.into()];
        v.extend(env.conn(who));
        v.extend(["--pay".into(), "1000".into()]);
        vinetc_in(host, v)
    };

    // Before any program: R forwards everything, both families.
    let got = round(&[(ha, true), (hb, true)], &sink, "0", &dropped);
    assert_eq!(got, vec![(5, 1, true); 4], "without programs C must get everything over both families");

    // The firewall against A's two addresses, uploaded by C's owner from C.
    let up = upload(&c, &owner, &fw);
    eprintln!("upload: {}", up.ok().trim());
    // The kernel sends C's packets of each family to vinetd.
    let sets = ns(&r, &["nft", "list", "table", "inet", "vinet"]).unwrap();
    for (set, addr) in [("local4", C4), ("local6", C6)] {
        let body = sets.split(&format!("set {set} {{")).nth(1).and_then(|t| t.split('}').next()).unwrap_or("");
        assert!(body.contains(addr), "set {set} must hold {addr}:\n{sets}");
    }
    let rules6 = ns(&r, &["ip6tables", "-t", "mangle", "-S"]).unwrap();
    assert!(rules6.contains("--comment vinetd -j NFQUEUE"), "vinetd's ip6tables NFQUEUE rules: {rules6}");
    assert!(rules6.contains("-m socket --nowildcard"), "vinetd's ip6tables defragmenter rule: {rules6}");

    let got = round(&[(ha, false), (hb, true)], &sink, "1", &dropped);
    assert_eq!(got[..2], [(0, 0, false); 2], "C must receive none of A's traffic, over IPv4 or IPv6");
    assert_eq!(got[2..], [(5, 1, true); 2], "C must receive B's traffic over IPv4 and IPv6");

    // An identity for an IPv6 address outside what R serves is refused.
    let other = env.client("other6", "fd00:2::2");
    eprintln!("IPv6 address not served: {}", upload(&b, &other, &fw).refused("not_served").trim());

    // kill -9: while vinetd is down its hooks stay, and with `down =
    // "closed"` C's IPv6 is dropped like its IPv4 (B's too).
    d.kill9();
    assert!(!send_from(&b, C6, "B6down"), "while vinetd is down, B's TCP to C over IPv6 must not connect (down = closed)");
    assert_eq!(received(&sink, "B6down", "fd00:2::2"), (0, 0), "while vinetd is down, no IPv6 reaches C (down = closed)");

    // Restarted: the firewall holds over both families again.
    d = vinetd_in_r();
    let got = round(&[(ha, false), (hb, true)], &sink, "2", &dropped);
    assert_eq!(got[..2], [(0, 0, false); 2], "after kill -9 and restart, A must still be blocked over both families");
    assert_eq!(got[2..], [(5, 1, true); 2], "after kill -9 and restart, B must get through over both families");
    assert!(d.log_text().contains("resumed=1"), "{}", d.log_text());

    // `vinetd unhook` removes the table, the iptables and the ip6tables rules.
    drop(d);
    let out = ns(&r, &[VINETD, "--config", cfg.to_str().unwrap(), "unhook"]).unwrap();
    assert!(out.contains("removed"), "{out}");
    assert!(ns(&r, &["nft", "list", "table", "inet", "vinet"]).is_err(), "the table must be gone");
    for tables in ["iptables", "ip6tables"] {
        let rules = ns(&r, &[tables, "-t", "mangle", "-S"]).unwrap();
        assert!(!rules.contains("vinetd"), "vinetd's {tables} rules must be gone: {rules}");
    }
    // C's traffic flows in the kernel alone, over both families.
    assert!(send_from(&a, C6, "A6free"), "after unhook, A's TCP to C over IPv6 connects");
    assert!(wait_until(HANG, || received(&sink, "A6free", "fd00:1::2") == (5, 1)), "after unhook, A's IPv6 reaches C");
}

#[test]
fn generated_ipv6_packets_leave_r_and_arrive_at_this_ip() {
    let Some(_one) = may_run("generated_ipv6_packets_leave_r_and_arrive_at_this_ip") else { return };
    let tag = format!("{}g", std::process::id() % 100_000);
    let net = setup(&tag).unwrap_or_else(|e| panic!("cannot build the network: {e}"));
    add_ipv6(&net).unwrap_or_else(|e| panic!("cannot give the network IPv6: {e}"));
    let [a, c, r] = [0, 2, 3].map(|i| net.ns[i].clone());
    let lib_dir = Scratch::new("dualstack-gen-lib");
    let lib = lib_dir.path("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", lib.to_str().unwrap()]).ok();
    let mut env = Env::new("netns-dualstack-gen");
    env.listen = "10.0.3.1:7700".into();
    env.metrics = "10.0.3.1:9910".into();
    let cfg = env.config(&Settings {
        serves: vec!["10.0.3.0/24".into(), "fd00:3::/64".into()],
        live: "mode = \"nfqueue\"\nqueue = 0".into(),
        lemmas: Some(lib),
        window_millis: 5,
        ..Settings::default()
    });
    // At C (THIS_IP): the generated packets come from A's IPv6 address (the
    // broadcast source) to port 9910; the broadcast itself (port 5000) is
    // discarded by the program.
    count_arrivals(
        &c,
        &[
            ("broadcast", "ip6 saddr fd00:1::2 udp dport 5000"),
            ("generated", "ip6 saddr fd00:1::2 udp dport 9910"),
            // The destinations list: payload magic VND1.
            ("destinations", "ip6 saddr fd00:1::2 udp dport 9910 @th,64,32 0x564e4431"),
            // A content: the broadcast's payload, which starts with the tag.
            ("content", "ip6 saddr fd00:1::2 udp dport 9910 @th,64,32 0x4d435354"),
        ],
    )
    .unwrap();
    let _d = vinetd_in(&r, &cfg, env.dir.path("vinetd.log"));
    // C as an edge router: its prefix fd00:3::/64, its own address fd00:3::2.
    let key = env.dir.path("edge.key");
    vinetc(&["keygen", "-o", key.to_str().unwrap()]).ok();
    let id = env.dir.path("edge.vid");
    let pubkey = format!("{}.pub", key.display());
    let op = env.operator.to_str().unwrap().to_string();
    vinetc(&[
        "identity",
        "issue",
        "--authority",
        &op,
        "--client",
        &pubkey,
        "--prefix",
        "fd00:3::/64",
        "--router-ip",
        C6,
        "-o",
        id.to_str().unwrap(),
    ])
    .ok();
    let edge = ClientFiles { key, id };
    let mc = env.bundle_with(
        "mc",
        &std::fs::read_to_string(root().join("examples/multicast.vinet")).unwrap(),
        &root().join("examples/policies/edge-router.toml"),
    );
    let mut up: Vec<String> = vec!["upload".into(), mc];
    up.extend(env.conn(&edge));
    up.extend(["--pay".into(), "1000".into(), "--param".into(), "BroadcastIP=fd00:1::2".into()]);
    eprintln!("upload: {}", vinetc_in(&c, up).ok().trim());

    // A broadcasts the same datagram to four addresses of C's subnet, C's
    // own among them (UDP over IPv6 from an ordinary socket: A's address).
    let o = traffic(
        &a,
        &["craft", "--to", C6, "--to", "fd00:3::5", "--to", "fd00:3::6", "--to", "fd00:3::7", "--kind", "udp6", "--tag", "MCST"],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "craft failed: {}", String::from_utf8_lossy(&o.stderr));
    wait_for("generated IPv6 packets at C", HANG, || arrivals(&c, "destinations") >= 1 && arrivals(&c, "content") >= 1);
    let metric = |series: &str| metric_of(&metrics_page(&c, "10.0.3.1:9910"), series);
    // vinetd publishes its counters a moment after it acts.
    wait_for("vinet_generated_sent_total to count the generated packets", HANG, || metric("vinet_generated_sent_total") >= 2.0);
    eprintln!(
        "GENERATE over IPv6: {} generated packets at C ({} destination lists, {} contents), vinet_generated_sent_total {}; broadcast copies at C {}",
        arrivals(&c, "generated"),
        arrivals(&c, "destinations"),
        arrivals(&c, "content"),
        metric("vinet_generated_sent_total"),
        arrivals(&c, "broadcast")
    );
    assert_eq!(arrivals(&c, "broadcast"), 0, "the broadcast itself is discarded by the program");
    assert_eq!(metric("vinet_generated_failed_total"), 0.0);
}
