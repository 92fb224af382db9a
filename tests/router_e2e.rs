//! End-to-end tests of vinetd and vinetc over loopback TCP: real binaries,
//! real Noise channel, real SQLite, real SIGKILL.
//!
//! - every bad input of the router issue is refused with a reason the client
//!   prints, logged and counted, and the installed program is untouched;
//! - payment is refunded (never debited) when the scheduler or checker refuses;
//! - kill -9 at any moment loses no admitted program and no ledger entry;
//! - leases end (expiry, withdraw) and free their load; renew extends;
//! - identical programs share an instance; capacity, quotas and the
//!   drop-for-everyone alert.

mod router_support;

use std::time::Duration;

use router_support::*;
use vinet_proto::client::Client;
use vinet_proto::keyfile::parse_router_public;
use vinet_proto::protocol::{encode, Wire};

fn leases(s: &serde_json::Value) -> Vec<u64> {
    s["leases"].as_array().unwrap().iter().map(|l| l["lease"].as_u64().unwrap()).collect()
}

#[test]
fn bad_inputs_are_refused_with_reasons_and_change_nothing() {
    let env = Env::new("router-bad");
    let cfg = env.config(&Settings { max_request_bytes: 64 << 10, max_connections: 8, ..Settings::default() });
    let _d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let fw = env.firewall("fw", "2 days");
    let c = env.client("c", "10.0.3.2");

    // The good upload: the router lacks the lemmas, asks, gets them once, admits.
    let r = env.upload(&fw, &c, 200, &["--param", "SrcIP=10.0.1.2"]);
    let out = r.ok();
    assert!(out.contains("lemmas the router lacked") && out.contains("admitted") && out.contains("lease 1"), "{out}");
    let before = env.status(&c);
    assert_eq!((before["load"].as_u64(), before["balance"].as_u64()), (Some(1030), Some(10_000 - 178)), "pays 200, charged the price, 178");
    // A second upload needs no lemmas any more.
    let fw2 = env.firewall("fw2", "1 days");
    let out = env.upload(&fw2, &c, 100, &["--param", "SrcIP=10.0.1.3"]).ok().to_string();
    assert!(!out.contains("lemmas") && out.contains("lease 2"), "{out}");
    let before = env.status(&c);

    // An identity from an unknown authority.
    let rogue = env.dir.path("rogue.key");
    vinetc(&["keygen", "-o", rogue.to_str().unwrap()]).ok();
    let m = env.client_by("m", "10.0.3.2", &rogue, &[]);
    env.upload(&fw, &m, 200, &[]).refused("unknown_authority");
    // An expired identity.
    let old = env.client_by("old", "10.0.3.3", &env.operator, &["--not-before", "1000", "--valid-for", "1 days"]);
    env.upload(&fw, &old, 200, &[]).refused("expired_identity");
    // An identity whose signature does not verify (one bit of its statement changed).
    let forged = env.client("forged", "10.0.3.4");
    let mut bytes = std::fs::read(&forged.id).unwrap();
    bytes[10] ^= 1; // VID1, version, then the client key: a byte of the key
    std::fs::write(&forged.id, &bytes).unwrap();
    env.upload(&fw, &forged, 200, &[]).refused("bad_signature");
    // A request whose signature does not verify.
    let saved = env.p("req.bin");
    env.run("status", &[], &c, &["--save-request", &saved]).ok();
    let mut req = std::fs::read(&saved).unwrap();
    let n = req.len();
    req[n - 1] ^= 1; // the last byte of the request signature
    std::fs::write(env.p("bad-sig.bin"), &req).unwrap();
    env.upload(&fw, &c, 1, &["--send-raw", &env.p("bad-sig.bin")]).refused("bad_signature");
    // A replayed request is a retry: it gets the first answer again, and
    // nothing is done twice. A sequence number far below the ones taken is a
    // replay, refused.
    let again = env.upload(&fw, &c, 1, &["--send-raw", &saved]);
    assert!(again.ok().starts_with("answer: Status("), "{again:?}");
    env.upload(&fw, &c, 200, &["--seq", "5"]).refused("replay");
    // Another key presenting c's identity.
    let thief = env.client("thief", "10.0.9.9");
    let stolen = ClientFiles { key: thief.key.clone(), id: c.id.clone() };
    env.upload(&fw, &stolen, 200, &[]).refused("key_mismatch");
    // A bundle whose proof fails: proved under another policy (different
    // unit costs), so its declared complexity is not what this router derives.
    let other = env.dir.path("other-policy.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(root().join("examples/policies/end-user.toml"))
            .unwrap()
            .replace("GROUP_BY_SOURCE = 2", "GROUP_BY_SOURCE = 3"),
    )
    .unwrap();
    let wrong = env.bundle_with("wrong", &std::fs::read_to_string(root().join("examples/firewall.vinet")).unwrap(), &other);
    let e = env.upload(&wrong, &c, 300, &[]).refused("proof").to_string();
    assert!(e.contains("declared complexity"), "{e}");
    // A bundle with one certificate byte changed.
    let mut b = std::fs::read(&fw).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x40;
    std::fs::write(env.p("tampered.vpc"), &b).unwrap();
    let r = env.upload(&env.p("tampered.vpc"), &c, 200, &[]);
    assert!(r.code == 1 && (r.stderr.contains("refused (proof)") || r.stderr.contains("refused (malformed)")), "{r:?}");
    // A payment below the price (a price above the balance: tests/router_abuse.rs).
    env.upload(&fw, &c, 5, &[]).refused("payment");
    // Malformed: not a bundle; not a request; a parameter the program lacks.
    std::fs::write(env.p("junk.vpc"), b"this is not a bundle").unwrap();
    env.upload(&env.p("junk.vpc"), &c, 200, &[]).refused("malformed");
    env.upload(&fw, &c, 1, &["--send-raw", &env.p("junk.vpc")]).refused("malformed");
    // A parameter the program lacks: vinetc types --param by the declarations, so it refuses before sending (exit 2).
    let e = env.upload(&fw, &c, 200, &["--param", "Nope=1.2.3.4"]);
    assert!(e.code == 2 && e.stderr.contains("declares no parameter Nope"), "{e:?}");
    // Oversized: 200 KB against a 64 KiB maximum, refused before it is read.
    std::fs::write(env.p("huge.vpc"), vec![7u8; 200 << 10]).unwrap();
    let e = env.upload(&env.p("huge.vpc"), &c, 200, &[]).refused("oversized").to_string();
    assert!(e.contains("65536"), "{e}");
    // A client that disconnects mid-upload.
    let rk = parse_router_public(&std::fs::read_to_string(env.p("router.key.pub")).unwrap()).unwrap();
    // (A connection is let in once the ones before it from this address are
    // gone: one address holds at most 4 of the 8 slots.)
    let connect = || {
        let mut c = None;
        wait_for("a connection to be let in", HANG, || {
            c = Client::connect(&env.listen, rk, Duration::from_secs(5)).ok();
            c.is_some()
        });
        c.unwrap()
    };
    for keep in [0usize, 1, 5, 40] {
        let mut cl = connect();
        let msg = encode(&Wire::PublicStatus);
        cl.channel().send_partial(&msg, keep).unwrap();
        drop(cl);
    }
    // A TCP connection that never completes the handshake.
    drop(std::net::TcpStream::connect(&env.listen).unwrap());
    // A flood from one address: it holds at most its share of the slots (4
    // of the 8 here), and its next connection is closed unanswered, counted
    // "busy". (The router counts a connection when it accepts it, before its
    // side of the handshake, so once `connect` has returned it is counted.)
    // The four clients that left mid-upload, and the one that never
    // finished its handshake, are counted once their threads see them go.
    wait_for("4 disconnects to be counted", HANG, || env.metric("vinet_disconnects_total") >= 4.0);
    let held: Vec<Client> = (0..4).map(|_| connect()).collect();
    let e = env.upload(&fw, &c, 200, &[]);
    assert_eq!(e.code, 2, "the fifth connection from one address is closed: {e:?}");
    wait_for("the closed connection to be counted", HANG, || env.metric("vinet_refusals_total{reason=\"busy\"}") >= 1.0);
    drop(held);

    // Nothing changed: same leases, load, balance (asked once the router has
    // seen the held connections close and answers again).
    let mut after = serde_json::Value::Null;
    wait_for("the router to stop answering busy", HANG, || {
        let r = env.run("status", &[], &c, &["--format", "json"]);
        if r.code == 1 && r.stderr.contains("refused (busy)") {
            return false;
        }
        after = serde_json::from_str(r.ok()).unwrap();
        true
    });
    assert_eq!(leases(&after), leases(&before));
    assert_eq!((after["load"].as_u64(), after["balance"].as_u64()), (before["load"].as_u64(), before["balance"].as_u64()));
    // Each refusal was counted and logged.
    for reason in [
        "unknown_authority",
        "expired_identity",
        "bad_signature",
        "replay",
        "key_mismatch",
        "proof",
        "payment",
        "malformed",
        "oversized",
        "busy",
    ] {
        assert!(env.metric(&format!("vinet_refusals_total{{reason=\"{reason}\"}}")) >= 1.0, "{reason} not counted:\n{}", env.metrics());
        assert!(!_d.log_lines(&format!("reason=\"{reason}\"")).is_empty(), "{reason} not logged");
    }
    assert_eq!(env.metric("vinet_admissions_total"), 2.0);
}

#[test]
fn kill_9_at_any_moment_loses_nothing_admitted() {
    let env = Env::new("router-kill");
    let lib = env.p("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", &lib]).ok();
    let cfg = env.config(&Settings { lemmas: Some(lib.into()), ..Settings::default() });
    let mut d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let fw = env.firewall("fw", "2 days");
    let clients: Vec<ClientFiles> = (0..4).map(|i| env.client(&format!("c{i}"), &format!("10.0.4.{}", i + 1))).collect();
    // Uploads race a SIGKILL: every upload the client heard "admitted" for
    // must be there after the restart, with its payment, and nothing else.
    let mut admitted: Vec<(usize, u64)> = vec![];
    for round in 0..3 {
        let handles: Vec<_> = clients
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, c)| {
                let (fw, listen, rk) = (fw.clone(), env.listen.clone(), env.p("router.key.pub"));
                std::thread::spawn(move || {
                    let mut got = vec![];
                    for k in 0..6 {
                        let p = format!("SrcIP=10.{round}.{i}.{k}");
                        let r = vinetc(&[
                            "upload",
                            &fw,
                            "--router",
                            &listen,
                            "--router-key",
                            &rk,
                            "--key",
                            c.key.to_str().unwrap(),
                            "--identity",
                            c.id.to_str().unwrap(),
                            "--pay",
                            "200",
                            "--param",
                            &p,
                            "--format",
                            "json",
                        ]);
                        if r.code == 0 {
                            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
                            got.push((i, v["lease"].as_u64().unwrap()));
                        }
                    }
                    got
                })
            })
            .collect();
        // The kill lands while uploads are running: once a few more have
        // been admitted this round (more each round), or when all are done.
        let before = env.metric("vinet_admissions_total");
        let _ = wait_until(HANG, || {
            handles.iter().all(|h| h.is_finished()) || env.metric("vinet_admissions_total") >= before + 2.0 + 4.0 * round as f64
        });
        d.kill9();
        for h in handles {
            admitted.extend(h.join().unwrap());
        }
        d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
        for (i, c) in clients.iter().enumerate() {
            let s = env.status(c);
            let mine: Vec<u64> = admitted.iter().filter(|(j, _)| *j == i).map(|x| x.1).collect();
            let have = leases(&s);
            for l in &mine {
                assert!(have.contains(l), "round {round}: admitted lease {l} of client {i} lost; has {have:?}");
            }
            // The ledger: every lease present was paid for, and nothing else.
            assert_eq!(s["balance"].as_u64().unwrap(), 10_000 - 178 * have.len() as u64, "round {round}, client {i}: {s}");
        }
    }
    assert!(!admitted.is_empty());
    assert!(d.log_lines("leases reloaded and re-checked").len() >= 4);
}

#[test]
fn leases_expire_renew_withdraw_and_free_load() {
    let env = Env::new("router-lease");
    let lib = env.p("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", &lib]).ok();
    let cfg = env.config(&Settings { lemmas: Some(lib.into()), ..Settings::default() });
    let mut d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let short = env.firewall("short", "3 seconds");
    let c = env.client("c", "10.0.5.1");
    env.upload(&short, &c, 1, &["--param", "SrcIP=10.0.1.2"]).ok();
    let s = env.status(&c);
    assert_eq!(s["load"].as_u64(), Some(1030));
    let first_end = s["leases"][0]["expires_ms"].as_u64().unwrap();
    // Renew twice right away: each adds one lifetime (3 s) to the end.
    let r = env.run("renew", &["--lease", "1", "--pay", "1"], &c, &[]);
    assert!(r.ok().contains("renewed lease 1"), "{r:?}");
    env.run("renew", &["--lease", "1", "--pay", "1"], &c, &[]).ok();
    env.run("renew", &["--lease", "99", "--pay", "1"], &c, &[]).refused("no_such_lease");
    // A restart in the middle resumes the lease where it was: the end moved by
    // the two renewals, and the restart did not reset it. (The lease must
    // still run when the restarted router answers: 9 s for two renewals, a
    // restart and a status.)
    d.kill9();
    d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let s = env.status(&c);
    assert_eq!(leases(&s), vec![1]);
    let end = s["leases"][0]["expires_ms"].as_u64().unwrap();
    assert_eq!(end, first_end + 2 * 3_000, "two renewals of a 3 s lease, then a restart");
    // It ends: the program is removed, its load freed, and never before the
    // end the router reported. The router and the test read the same clock,
    // so a lease gone from a status answered at `answered` must have an end
    // no later than `answered`.
    wait_for("lease 1 to end", HANG, || {
        let listed = leases(&env.status(&c)) == vec![1];
        let answered = vinet_proto::clock::now_ms();
        assert!(listed || answered >= end, "lease 1 ended {} ms before its end {end}", end - answered);
        !listed
    });
    // The router's own record: it ended the lease as expired, at or after its end.
    let db = rusqlite::Connection::open(env.dir.path("router.db")).unwrap();
    let (start_ms, end_ms, ended_ms, reason): (u64, u64, u64, String) = db
        .query_row("SELECT start_ms, end_ms, ended_ms, end_reason FROM leases WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    drop(db);
    assert_eq!((end_ms, reason.as_str()), (end, "expired"));
    assert_eq!(end_ms - start_ms, 3 * 3_000, "one lifetime and two renewals");
    assert!(ended_ms >= end_ms, "recorded as ended at {ended_ms}, before its end {end_ms}");
    let s = env.status(&c);
    assert_eq!((s["load"].as_u64(), s["installed"].as_u64()), (Some(0), Some(0)));
    assert!(env.metric("vinet_leases_ended_total{reason=\"expired\"}") >= 1.0);
    // Withdraw frees load at once; a stranger cannot withdraw.
    env.upload(&short, &c, 1, &["--param", "SrcIP=10.0.1.3"]).ok();
    let other = env.client("other", "10.0.5.2");
    env.run("withdraw", &["--lease", "2"], &other, &[]).refused("no_such_lease");
    env.run("withdraw", &["--lease", "2"], &c, &[]).ok();
    assert_eq!(env.status(&c)["load"].as_u64(), Some(0));
    assert!(env.metric("vinet_leases_ended_total{reason=\"withdrawn\"}") >= 1.0);
    // A lease that ends while the router is down is not resumed: the router
    // stays down until the clock has passed the lease's reported end.
    env.upload(&short, &c, 1, &["--param", "SrcIP=10.0.1.4"]).ok();
    let end = env.status(&c)["leases"][0]["expires_ms"].as_u64().unwrap();
    d.kill9();
    while vinet_proto::clock::now_ms() <= end {
        std::thread::sleep(Duration::from_millis(end + 1 - vinet_proto::clock::now_ms().min(end)));
    }
    let _d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let s = env.status(&c);
    assert_eq!((s["load"].as_u64(), s["installed"].as_u64()), (Some(0), Some(0)), "{s}");
}

#[test]
fn sharing_capacity_quotas_and_drop_for_everyone() {
    let env = Env::new("router-share");
    let lib = env.p("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", &lib]).ok();
    let cfg =
        env.config(&Settings { lemmas: Some(lib.into()), capacity: 2060, drop_for_everyone: 2, quota_filtering: 3, ..Settings::default() });
    let d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let fw = env.firewall("fw", "2 days");
    // Each client in a network of its own: the rule counts independent networks.
    let cs: Vec<ClientFiles> = (0..5).map(|i| env.client(&format!("c{i}"), &format!("10.0.{}.1", 6 + i))).collect();
    // Three clients discard 10.66.0.1 with the same program and parameters:
    // one instance, load 1030, shared.
    for (i, c) in cs.iter().take(3).enumerate() {
        let r = env.upload(&fw, c, 200, &["--param", "SrcIP=10.66.0.1"]);
        let out = r.ok().to_string();
        assert_eq!(out.contains("shares a running instance"), i > 0, "{out}");
        // The uploader whose program sets the block off is told.
        assert_eq!(r.stderr.contains("notice: with this program more than 2 networks discard 10.66.0.1"), i == 2, "{r:?}");
    }
    let s = env.status(&cs[0]);
    assert_eq!((s["load"].as_u64(), s["instances"].as_u64(), s["installed"].as_u64()), (Some(1030), Some(1), Some(3)));
    // More than N = 2 destinations discard 10.66.0.1: dropped for everyone, alert.
    assert_eq!(s["blocked_sources"], serde_json::json!(["10.66.0.1"]));
    // The source's owner sees why, in the public status.
    let public = vinetc(&["status", "--router", &env.listen, "--router-key", &env.p("router.key.pub")]);
    assert!(public.ok().contains("10.66.0.1: 3 destinations in 3 networks discard it, more than this router's 2"), "{public:?}");
    assert_eq!(env.metric("vinet_alerts_total{kind=\"source_dropped_for_everyone\"}"), 1.0);
    assert_eq!(env.metric("vinet_sources_blocked"), 1.0);
    assert_eq!(d.log_lines("ALERT").len(), 1);
    // The operator sees who asked for the block.
    let o = std::process::Command::new(VINETD).arg("--config").arg(&cfg).args(["ctl", "blocks"]).output().unwrap();
    let blocks = String::from_utf8_lossy(&o.stdout);
    assert!(blocks.contains("source 10.66.0.1: DROPPED FOR EVERYONE; 3 destinations discard it"), "{blocks}");
    // And can lift it.
    let o = std::process::Command::new(VINETD).arg("--config").arg(&cfg).args(["ctl", "lift", "10.66.0.1"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("block is lifted"), "{o:?}");
    assert_eq!(env.status(&cs[0])["blocked_sources"], serde_json::json!([]));
    assert_eq!(env.metric("vinet_sources_blocked"), 0.0);
    // The quota (3 destinations per source for filtering) is full.
    env.upload(&fw, &cs[3], 200, &["--param", "SrcIP=10.66.0.1"]).refused("quota");
    // Another source: a second instance fits (2060); a third does not, and
    // its payment is not taken.
    env.upload(&fw, &cs[3], 200, &["--param", "SrcIP=10.66.0.2"]).ok();
    let e = env.upload(&fw, &cs[4], 200, &["--param", "SrcIP=10.66.0.3"]).refused("capacity").to_string();
    assert!(e.contains("capacity 2060, load 2060"), "{e}");
    assert_eq!(env.status(&cs[4])["balance"].as_u64(), Some(10_000), "refused: refunded");
    // Withdrawing one sharer keeps the instance (and the load); the block
    // is lifted when no more than N destinations remain.
    env.run("withdraw", &["--lease", "1"], &cs[0], &[]).ok();
    let s = env.status(&cs[1]);
    assert_eq!((s["load"].as_u64(), s["blocked_sources"].as_array().map(Vec::len)), (Some(2060), Some(0)));
    env.run("withdraw", &["--lease", "2"], &cs[1], &[]).ok();
    env.run("withdraw", &["--lease", "3"], &cs[2], &[]).ok();
    assert_eq!(env.status(&cs[4])["load"].as_u64(), Some(1030));
    env.upload(&fw, &cs[4], 200, &["--param", "SrcIP=10.66.0.3"]).ok();
    // The public status needs no identity.
    let r = vinetc(&["status", "--router", &env.listen, "--router-key", &env.p("router.key.pub")]);
    assert!(r.ok().contains("load 2060 of capacity 2060"), "{r:?}");
    // A client pinning the wrong router key cannot talk to the router.
    let r = vinetc(&["status", "--router", &env.listen, "--router-key", &"ab".repeat(32)]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn edge_router_clients_and_the_end_user_policy() {
    let env = Env::new("router-edge");
    let lib = env.p("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", &lib]).ok();
    let cfg = env.config(&Settings { lemmas: Some(lib.into()), ..Settings::default() });
    let _d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    // An edge router as client: THIS_SUBNET_IP and its own address come from
    // its identity; the multicast aggregator is checked under the edge-router policy.
    let key = env.dir.path("edge.key");
    vinetc(&["keygen", "-o", key.to_str().unwrap()]).ok();
    let id = env.dir.path("edge.vid");
    vinetc(&[
        "identity",
        "issue",
        "--authority",
        env.operator.to_str().unwrap(),
        "--client",
        &format!("{}.pub", key.display()),
        "--prefix",
        "10.9.0.0/16",
        "--router-ip",
        "10.9.0.1",
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
    let out = env.upload(&mc, &edge, 1_000, &["--param", "BroadcastIP=198.51.100.9"]).ok().to_string();
    assert!(out.contains("admitted"), "{out}");
    let s = env.status(&edge);
    assert_eq!(s["leases"][0]["dest"], "10.9.0.0/16", "{s}");
    // An end user cannot run it: it was proved for edge routers (THIS_SUBNET_IP).
    let user = env.client("user", "10.0.7.1");
    env.upload(&mc, &user, 1_000, &[]).refused("proof");
    // And an edge router cannot run an end user's firewall bundle.
    let fw = env.firewall("fw", "2 days");
    env.upload(&fw, &edge, 200, &[]).refused("proof");
}

#[test]
fn the_router_does_not_trust_its_own_disk() {
    let env = Env::new("router-disk");
    let lib = env.p("lib.vnl");
    vinetc(&["lemmas", "build", root().join("lemmas").to_str().unwrap(), "-o", &lib]).ok();
    let cfg = env.config(&Settings { lemmas: Some(lib.into()), ..Settings::default() });
    let mut d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let fw = env.firewall("fw", "2 days");
    let c = env.client("c", "10.0.8.1");
    env.upload(&fw, &c, 200, &["--param", "SrcIP=10.0.1.2"]).ok();
    env.upload(&fw, &c, 200, &["--param", "SrcIP=10.0.1.3"]).ok();
    d.kill9();
    // Someone with the disk swaps the stored bundle for one that does not
    // check (declared complexity from another policy), hash and all.
    let other = env.dir.path("other-policy.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(root().join("examples/policies/end-user.toml"))
            .unwrap()
            .replace("GROUP_BY_SOURCE = 2", "GROUP_BY_SOURCE = 3"),
    )
    .unwrap();
    let bad =
        std::fs::read(env.bundle_with("bad", &std::fs::read_to_string(root().join("examples/firewall.vinet")).unwrap(), &other)).unwrap();
    let good = std::fs::read(&fw).unwrap();
    let (gh, bh) = (blake3::hash(&good), blake3::hash(&bad));
    let db = rusqlite::Connection::open(env.dir.path("router.db")).unwrap();
    db.execute("INSERT INTO bundles(hash, bytes) VALUES (?1, ?2)", rusqlite::params![&bh.as_bytes()[..], &bad]).unwrap();
    let n = db
        .execute("UPDATE leases SET bundle = ?1 WHERE bundle = ?2 AND id = 1", rusqlite::params![&bh.as_bytes()[..], &gh.as_bytes()[..]])
        .unwrap();
    assert_eq!(n, 1);
    // And changes the other lease's bundle bytes without fixing the hash.
    let mut flipped = good.clone();
    let k = flipped.len() - 5;
    flipped[k] ^= 1;
    db.execute("INSERT INTO bundles(hash, bytes) VALUES (?1, ?2)", rusqlite::params![&[7u8; 32][..], &flipped]).unwrap();
    db.execute("UPDATE leases SET bundle = ?1 WHERE id = 2", rusqlite::params![&[7u8; 32][..]]).unwrap();
    drop(db);
    let d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let s = env.status(&c);
    assert_eq!((s["installed"].as_u64(), s["load"].as_u64()), (Some(0), Some(0)), "{s}");
    assert_eq!(s["balance"].as_u64(), Some(10_000 - 2 * 178), "the ledger is what it was");
    assert!(d.log_text().contains("re-check failed: cost: declared complexity"), "{}", d.log_text());
    assert!(d.log_text().contains("does not match its hash"), "{}", d.log_text());
    assert!(d.log_text().contains("resumed=0 ended=2"), "{}", d.log_text());
}
