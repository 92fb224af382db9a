//! An overlay scenario end to end: `emu/scenarios/on-redundant.toml` (7
//! namespaces, five participants, a manager, two tunnel endpoints; 20 s). An
//! ON with two node-disjoint paths, a TCP transfer and a UDP stream inside
//! it, one link of a path failed mid-transfer. Checked with counts only: the
//! transfer complete and intact, every UDP number once, the receiving
//! endpoint passing exactly what the sender read and losing none, the
//! duplicates discarded, the overlay consistent at the end, and no namespace
//! of the run left.
//!
//! It needs root, network namespaces, iptables, nft, tc and curl
//! (`scripts/setup`). Where it cannot run it FAILS, saying why, unless
//! VINET_SKIP_NETNS=1 is set, in which case it says loudly that it skipped.

use std::path::Path;
use std::process::{Command, Stdio};

mod support;

use support::{bin_dir, cannot_run, namespaces_of, repo, EMU};

/// vinet-onmgr and vinet-traffic beside vinet-emu, built if missing.
fn overlay_bins(dir: &Path) {
    if dir.join("vinet-onmgr").is_file() && dir.join("vinet-traffic").is_file() {
        return;
    }
    let target = dir.parent().expect("target dir");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-p", "vinet", "--bin", "vinet-traffic", "-p", "vinet-onmgr", "--bin", "vinet-onmgr", "--target-dir"])
        .arg(target)
        .current_dir(repo());
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().expect("cargo build").success(), "cannot build vinet-onmgr and vinet-traffic");
}

#[test]
fn redundant_paths_lose_nothing_in_the_emulator() {
    if let Some(why) = cannot_run() {
        if std::env::var("VINET_SKIP_NETNS").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED redundant_paths_lose_nothing_in_the_emulator: {why} (VINET_SKIP_NETNS=1) ***\n");
            return;
        }
        panic!("\n*** redundant_paths_lose_nothing_in_the_emulator CANNOT RUN: {why}. Set VINET_SKIP_NETNS=1 to skip it explicitly. ***\n");
    }
    let bins = bin_dir();
    overlay_bins(&bins);
    let out = std::env::temp_dir().join(format!("vinet-emu-overlay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let child = Command::new(EMU)
        .arg("run")
        .arg(repo().join("emu/scenarios/on-redundant.toml"))
        .args(["--single", "--quiet", "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(&bins)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vinet-emu");
    let pid = child.id();
    let o = child.wait_with_output().expect("vinet-emu");
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "the run failed:\n{said}");
    assert!(namespaces_of(pid).is_empty(), "namespaces left: {:?}", namespaces_of(pid));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("runs/run.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let ov = &r["overlay"];
    assert_eq!(ov["final_check"]["ok"], true, "{}", ov["final_check"]);
    assert_eq!(ov["paths"]["grid"].as_array().map(Vec::len), Some(2), "two paths: {}", ov["paths"]);
    let rc = &ov["transfers"][0]["receiver"];
    assert_eq!(rc["tcp_bytes"], 8_000_000, "{rc}");
    assert_eq!((rc["tcp_intact"].as_bool(), rc["tcp_closed_cleanly"].as_bool()), (Some(true), Some(true)), "{rc}");
    let expected = rc["udp_expected"].as_u64().unwrap();
    assert!(expected > 0, "{rc}");
    assert_eq!((rc["udp_unique"].as_u64(), rc["udp_missing"].as_u64(), rc["udp_duplicates"].as_u64()), (Some(expected), Some(0), Some(0)));
    let (a, b) = (&ov["tunnels"]["grid a0"], &ov["tunnels"]["grid b0"]);
    assert_eq!(b["passed"], a["tun_read"], "b0 passed exactly what a0 read: {a} {b}");
    assert_eq!(b["lost"], 0, "{b}");
    assert!(b["discarded"].as_u64().unwrap() > 0, "the second copies were discarded: {b}");
    // The failed path delivered nothing after the failure: its last count is below the survivor's.
    let last = ov["samples"].as_array().unwrap().last().unwrap();
    let (p1, p2) = (last["gre"]["grid path 1"][2].as_u64().unwrap(), last["gre"]["grid path 2"][2].as_u64().unwrap());
    assert!(p1 < p2, "path 1 (failed) {p1}, path 2 {p2}");
    assert_eq!(p2, b["tun_written"].as_u64().unwrap(), "every packet arrived on path 2: {p2} {b}");
}
