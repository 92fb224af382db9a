//! End-to-end tests of the client's middleware (issue 12): `vinetc new`,
//! the router directory (`vinetd announce`, `vinetc locate`) and `vinetc
//! deploy` against a real vinetd on loopback.
//!
//! - `new` writes, for each of the four kinds, a program that is formatted,
//!   proves and checks; a bad parameter is one line on stderr, exit 2;
//! - hand-built hostile directory entries (a bad signature, expired, signed
//!   under an untrusted authority, two routers claiming one prefix, a
//!   truncated file, bytes that are not text) are each refused with their
//!   line and reason (overlapping prefixes within one entry are refused in
//!   `vinet_proto::directory`'s tests: `sign` will not make one), and `locate` picks the longest prefix among the rest;
//! - `deploy` generates, proves, locates the router from its own signed
//!   announcement and uploads: the program is installed (`vinetc status`).

mod router_support;

use std::path::Path;

use router_support::*;
use vinet_proto::directory::{sign, Announcement, SignedAnnouncement, ANNOUNCEMENT_VERSION};
use vinet_proto::identity::{issue, public_key_text, SigningKey, Subject};

fn policy(name: &str) -> String {
    root().join(format!("examples/policies/{name}.toml")).display().to_string()
}

#[test]
fn new_writes_programs_that_prove_and_check() {
    let dir = Scratch::new("mw-new");
    let kinds: [(&str, &[&str], &str); 4] = [
        ("firewall", &["--block", "10.0.0.7", "--block", "192.0.2.0/24", "--lifetime", "3600"], "end-user"),
        ("spam", &["--word", "viagra", "--word", "lottery"], "end-user"),
        ("multicast", &["--broadcaster", "198.51.100.7", "--group", "10.9.0.0/24", "--window", "5 hours"], "edge-router"),
        ("worm", &["--threshold", "8"], "edge-router"),
    ];
    for (kind, params, pol) in kinds {
        let prog = dir.path(&format!("{kind}.vinet")).display().to_string();
        let pol = policy(pol);
        let mut args = vec!["new", kind];
        args.extend(params);
        args.extend(["--policy", &pol]);
        let mut to_file = args.clone();
        to_file.extend(["-o", &prog]);
        let out = vinetc(&to_file).ok().to_string();
        assert!(out.starts_with(&format!("wrote {prog}: ")), "{out}");
        // The same program on stdout; kept when the file already holds it,
        // and another file is not replaced without --force.
        assert_eq!(vinetc(&args).ok(), std::fs::read_to_string(&prog).unwrap(), "{kind}");
        assert!(vinetc(&to_file).ok().starts_with(&format!("kept {prog}: ")));
        let generated = std::fs::read_to_string(&prog).unwrap();
        std::fs::write(&prog, format!("// edited by hand\n{generated}")).unwrap();
        let again = vinetc(&to_file);
        assert_eq!(again.code, 2, "{kind}: {again:?}");
        assert!(again.stderr.contains("exists (use --force to replace it)"), "{}", again.stderr);
        assert!(std::fs::read_to_string(&prog).unwrap().starts_with("// edited by hand\n"), "the edit is not lost");
        let mut forced = to_file.clone();
        forced.push("--force");
        vinetc(&forced).ok();
        assert_eq!(std::fs::read_to_string(&prog).unwrap(), generated);
        vinetc(&["fmt", "--check", &prog]).ok();
        let vpc = dir.path(&format!("{kind}.vpc")).display().to_string();
        let proved = vinetc(&["prove", &prog, "--policy", &pol, "-o", &vpc]).ok().to_string();
        assert!(proved.contains("proved"), "{kind}: {proved}");
        let checked = vinetc(&["check", &vpc, "--policy", &pol]).ok().to_string();
        assert!(checked.contains("accepted"), "{kind}: {checked}");
    }
    let fw = std::fs::read_to_string(dir.path("firewall.vinet")).unwrap();
    assert!(fw.contains("LIFETIME = 1 hour\nPARAM Block1 = 10.0.0.7;\nPARAM Block2 = 192.0.2.0/24;\n"), "{fw}");

    // Bad parameters: one line, exit 2, nothing written.
    for (args, want) in [
        (
            vec!["new", "firewall", "--block", "10.0.0.1/16"],
            "vinetc: --block 10.0.0.1/16: `10.0.0.1/16` has host bits set (did you mean 10.0.0.0/16?)",
        ),
        (vec!["new", "spam", "-o", "never.vinet"], "vinetc: spam: give at least one --word WORD"),
        (vec!["new", "firewall", "--block", "10.0.0.7", "--lifetime", "31 days", "--policy", &policy("end-user")], "over the policy"),
        (vec!["new", "worm"], "vinetc: worm: give --threshold N"),
    ] {
        let r = vinetc(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with(want) || r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    assert!(!Path::new("never.vinet").exists());
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// An announcement by router key `k`, its identity issued by `authority` for
/// `allowed`, valid from `issued` to `expires`.
fn entry(authority: u8, k: u8, allowed: &str, prefixes: &[&str], issued: u64, expires: u64) -> SignedAnnouncement {
    let subject = Subject::EdgeRouter { prefix: allowed.parse().unwrap(), router_ip: 0x0a00_0001 };
    let id = issue(&key(authority), &key(k).verifying_key(), subject, 0, u64::MAX / 2).unwrap();
    let a = Announcement {
        version: ANNOUNCEMENT_VERSION,
        address: u32::from(std::net::Ipv4Addr::new(192, 0, 2, k)),
        port: 7700,
        noise_key: [k; 32],
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        issued,
        expires,
    };
    sign(&key(k), id, a).unwrap()
}

#[test]
fn locate_refuses_hostile_entries_and_picks_the_longest_prefix() {
    let dir = Scratch::new("mw-locate");
    let trust = dir.path("operator.key.pub");
    std::fs::write(&trust, public_key_text(&key(1).verifying_key())).unwrap();
    let now = vinet_proto::clock::unix_now();
    let later = now + 86_400;
    let wide = entry(1, 2, "10.0.0.0/8", &["10.0.0.0/8"], now, later);
    let narrow = entry(1, 3, "10.1.0.0/16", &["10.1.0.0/16"], now, later);
    let mut forged = entry(1, 4, "10.2.0.0/16", &["10.2.0.0/16"], now, later);
    forged.announcement.prefixes = vec!["10.1.2.0/24".parse().unwrap()]; // changed after signing
    let expired = entry(1, 5, "10.1.2.0/24", &["10.1.2.0/24"], 1000, 2000);
    let untrusted = entry(9, 6, "10.1.2.0/24", &["10.1.2.0/24"], now, later);
    // Two keys claim 10.1.4.0/24: neither is used.
    let claim_a = entry(1, 8, "10.1.4.0/24", &["10.1.4.0/24"], now, later);
    let claim_b = entry(1, 9, "10.1.4.0/24", &["10.1.4.0/24"], now, later);
    let lines: Vec<String> = [&wide, &narrow, &forged, &expired, &untrusted, &claim_a, &claim_b].iter().map(|e| e.to_line()).collect();
    let truncated = &lines[1][..lines[1].len() / 2];
    let text = format!("# the operator's routers\n{}{truncated}\n", lines.concat());
    let file = dir.path("routers.van");
    std::fs::write(&file, &text).unwrap();
    let f = file.display().to_string();
    let locate = |addr: &str| vinetc(&["locate", addr, "--directory", &f, "--trust", trust.to_str().unwrap()]);

    let r = locate("10.1.2.3");
    let out = r.ok();
    assert!(out.starts_with("router 192.0.2.3:7700\nkey vinet-router-public-v1 0303"), "{out}");
    assert!(out.contains("prefix 10.1.0.0/16 (the longest announced prefix containing 10.1.2.3; entry"), "{out}");
    let refused: Vec<&str> = r.stderr.lines().collect();
    let want = [
        (4, "the announcement's signature does not verify"),
        (5, "expired at 2000"),
        (6, "which is not trusted"),
        (7, "announces 10.1.4.0/24, as does the entry at"),
        (8, "announces 10.1.4.0/24, as does the entry at"),
        (9, "the entry is cut short"),
    ];
    assert_eq!(refused.len(), want.len(), "{}", r.stderr);
    for ((line, why), got) in want.iter().zip(&refused) {
        assert!(got.starts_with(&format!("vinetc: directory entry {f}:{line} refused: ")) && got.contains(why), "{line}: {got}");
    }
    // The /8 where no longer prefix holds; the claimed /24 falls back to the /16.
    assert!(locate("10.200.0.1").ok().starts_with("router 192.0.2.2:7700"));
    assert!(locate("10.1.4.1").ok().starts_with("router 192.0.2.3:7700"));
    // None: exit 1, with the reason.
    let none = locate("11.0.0.1");
    assert_eq!(none.code, 1, "{none:?}");
    assert!(
        none.stderr.contains("no trusted router announces a prefix containing 11.0.0.1 (2 entries used, 6 entries refused)"),
        "{}",
        none.stderr
    );
    // Without the authority's trust nothing is used.
    let other = dir.path("other.pub");
    std::fs::write(&other, public_key_text(&key(42).verifying_key())).unwrap();
    let r = vinetc(&["locate", "10.1.2.3", "--directory", &f, "--trust", other.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    // Every entry it would use, and none with a directory of refused ones.
    let r = vinetc(&["locate", "--list", "--directory", &f, "--trust", trust.to_str().unwrap()]);
    let used: Vec<&str> = r.ok().lines().collect();
    assert_eq!(used.len(), 2, "{used:?}");
    assert!(used[0].starts_with(&format!("{f}:2: router 192.0.2.2:7700 (key 0202020202020202) for 10.0.0.0/8, expires in ")), "{used:?}");
    assert!(used[1].starts_with(&format!("{f}:3: router 192.0.2.3:7700")), "{used:?}");
    assert_eq!(vinetc(&["locate", "--list", "--directory", &f, "--trust", other_key(&dir).as_str()]).code, 1);
    // JSON.
    let r = vinetc(&["locate", "10.1.2.3", "--directory", &f, "--trust", trust.to_str().unwrap(), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
    assert_eq!((v["router"].as_str(), v["prefix"].as_str()), (Some("192.0.2.3:7700"), Some("10.1.0.0/16")));
    assert_eq!(v["refused"].as_array().unwrap().len(), 6);

    // A folder of files, one of them truncated, one not a directory file at all.
    let folder = dir.path("dir.d");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.van"), &lines[0]).unwrap();
    std::fs::write(folder.join("b.van"), &lines[1].as_bytes()[..40]).unwrap();
    std::fs::write(folder.join("c.van"), [0xff, 0x00, 0x13, 0x37]).unwrap();
    std::fs::write(folder.join("README"), "not read").unwrap();
    let r = vinetc(&["locate", "10.1.2.3", "--directory", folder.to_str().unwrap(), "--trust", trust.to_str().unwrap()]);
    assert!(r.ok().starts_with("router 192.0.2.2:7700"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 2, "{}", r.stderr);
    assert!(r.stderr.contains("b.van:1 refused: malformed") && r.stderr.contains("c.van:1 refused: malformed"), "{}", r.stderr);
    // Bad usage: exit 2.
    assert_eq!(vinetc(&["locate", "10.1.2", "--directory", &f, "--trust", trust.to_str().unwrap()]).code, 2);
    assert_eq!(vinetc(&["locate", "10.1.2.3", "--directory", "/nonexistent/x.van", "--trust", trust.to_str().unwrap()]).code, 2);
}

#[test]
fn deploy_generates_proves_locates_and_uploads() {
    let env = Env::new("mw-deploy");
    let cfg = env.config(&Settings::default());
    // The router's announcement key, with an edge-router identity from the operator.
    let ann = env.p("announce.key");
    vinetc(&["keygen", "-o", &ann]).ok();
    let ann_id = env.p("announce.vid");
    let ann_pub = format!("{ann}.pub");
    let op = env.operator.display().to_string();
    vinetc(&[
        "identity",
        "issue",
        "--authority",
        &op,
        "--client",
        &ann_pub,
        "--prefix",
        "10.9.0.0/16",
        "--router-ip",
        "10.9.0.1",
        "-o",
        &ann_id,
    ])
    .ok();
    let bare = std::process::Command::new(VINETD).args(["--config", cfg.to_str().unwrap(), "announce"]).output().unwrap();
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("vinetd announce: the config has no [announce] section"), "{bare:?}");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[announce]\nkey = \"{ann}\"\nidentity = \"{ann_id}\"\naddress = \"{}\"\nprefixes = [\"10.9.0.0/16\"]\nvalid_for = \"1 days\"\n",
        env.listen
    ));
    std::fs::write(&cfg, text).unwrap();
    let _d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));

    // vinetd prints its own signed announcement.
    let dirfile = env.p("routers.van");
    let out = std::process::Command::new(VINETD).args(["--config", cfg.to_str().unwrap(), "announce", "-o", &dirfile]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("vinetd at {} for 10.9.0.0/16", env.listen)), "{said}");
    let stdout = std::process::Command::new(VINETD).args(["--config", cfg.to_str().unwrap(), "announce"]).output().unwrap();
    assert!(String::from_utf8_lossy(&stdout.stdout).contains("\nvinet-announcement-v1 "));
    let located = vinetc(&["locate", "10.9.0.66", "--directory", &dirfile, "--trust", &format!("{op}.pub")]).ok().to_string();
    let pinned = std::fs::read_to_string(env.p("router.key.pub")).unwrap();
    assert!(located.contains(&format!("router {}\nkey {}", env.listen, pinned.trim())), "{located}\n{pinned}");

    let alice = env.client("alice", "10.0.3.2");
    let out_dir = env.p("programs");
    std::fs::create_dir(&out_dir).unwrap();
    let (key, id) = (alice.key.display().to_string(), alice.id.display().to_string());
    let end_user = policy("end-user");
    // `vinetc deploy` with the client's files and the directory, then `extra`.
    let deploy_with = |extra: &[&str]| {
        let trust = format!("{op}.pub");
        let mut args = vec!["deploy", "--policy", &end_user, "--directory", &dirfile, "--trust", &trust, "--key", &key, "--identity", &id];
        args.extend_from_slice(extra);
        vinetc(&args)
    };
    let deploy = |extra: &[&str]| deploy_with(&[&["--pay", "200", "--out-dir", &out_dir], extra].concat());
    let r = deploy(&["firewall", "--block", "10.9.0.66", "--lifetime", "3600"]);
    let out = r.ok();
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(steps.len(), 4, "{out}");
    assert!(steps[0].starts_with(&format!("step 1 of 4, new: wrote {out_dir}/firewall.vinet: a firewall dropping 1 source")), "{out}");
    assert!(steps[1].starts_with(&format!("step 2 of 4, prove: vinetc prove {out_dir}/firewall.vinet --policy ")), "{out}");
    assert!(steps[2].contains("the edge router nearest 10.9.0.66 (the blocked source)"), "{out}");
    let key_hex = pinned.split_whitespace().nth(1).unwrap();
    assert!(steps[3].contains(&format!("vinetc upload {out_dir}/firewall.vpc --router {} --router-key {key_hex} ", env.listen)), "{out}");
    assert!(out.contains("proved ") && out.contains("10.9.0.66 is behind 10.9.0.0/16: router"), "{out}");
    assert!(out.contains("admitted ") && out.contains("lease 1"), "{out}");
    let s = env.status(&alice);
    let leases = s["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 1, "{s}");
    assert_eq!(leases[0]["dest"].as_str(), Some("10.0.3.2"), "{s}");

    // An existing program, to a source no router serves: refused at step 3, nothing uploaded.
    let prog = format!("{out_dir}/firewall.vinet");
    let r = deploy(&["--program", &prog, "--source", "11.0.0.1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no trusted router announces a prefix containing 11.0.0.1"), "{}", r.stderr);
    assert!(!r.stdout.contains("step 4"), "{}", r.stdout);
    assert_eq!(env.status(&alice)["leases"].as_array().unwrap().len(), 1);
    // The same program to the router: a second lease.
    let out = deploy(&["--program", &prog, "--source", "10.9.1.1"]).ok().to_string();
    assert!(out.contains("lease 2"), "{out}");
    assert_eq!(env.status(&alice)["leases"].as_array().unwrap().len(), 2);
    // Deploying the same generated program again keeps the file as it is.
    let out = deploy(&["firewall", "--block", "10.9.0.66", "--lifetime", "3600"]).ok().to_string();
    assert!(out.starts_with(&format!("step 1 of 4, new: kept {out_dir}/firewall.vinet")) && out.contains("lease 3"), "{out}");
    // Without --pay, the router's price is asked first, and paid.
    let r = deploy_with(&["--program", &prog, "--source", "10.9.0.1"]);
    let out = r.ok();
    let said = out.lines().find(|l| l.starts_with("the router's price: ")).unwrap_or_else(|| panic!("{out}"));
    let p = said.trim_start_matches("the router's price: ").split(' ').next().unwrap();
    assert!(out.contains(&format!(" --pay {p} ")) && out.contains(&format!("paid {p},")) && out.contains("lease 4"), "{out}");
}

/// A public key file of an authority that signed nothing here.
fn other_key(dir: &Scratch) -> String {
    let p = dir.path("nobody.pub");
    std::fs::write(&p, public_key_text(&key(43).verifying_key())).unwrap();
    p.display().to_string()
}
