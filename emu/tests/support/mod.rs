//! What the emulator's end-to-end tests share: where the binaries are,
//! whether this machine can run them, and the namespaces a run left.

#![allow(dead_code)] // each test uses its part

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const EMU: &str = env!("CARGO_BIN_EXE_vinet-emu");

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf()
}

/// vinetc and vinetd beside vinet-emu (`cargo test --workspace` builds them
/// there); built if missing.
pub fn bin_dir() -> PathBuf {
    let dir = Path::new(EMU).parent().expect("bin dir").to_path_buf();
    if !dir.join("vinetc").is_file() || !dir.join("vinetd").is_file() {
        let target = dir.parent().expect("target dir");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "vinet", "--bin", "vinetc", "--bin", "vinetd", "--target-dir"]).arg(target).current_dir(repo());
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo build").success(), "cannot build vinetc and vinetd");
    }
    dir
}

/// Why this machine cannot run a network of namespaces, if it cannot.
pub fn cannot_run() -> Option<String> {
    let o = Command::new("id").arg("-u").output().ok()?;
    let uid = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if uid != "0" {
        return Some(format!("it needs root (uid is {uid})"));
    }
    for (tool, arg) in [("ip", "-V"), ("tc", "-V"), ("nft", "--version"), ("iptables", "--version"), ("curl", "--version")] {
        if !Command::new(tool).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
            return Some(format!("`{tool}` is missing (scripts/setup installs it)"));
        }
    }
    None
}

/// Namespaces of the run of emulator process `pid`.
pub fn namespaces_of(pid: u32) -> Vec<String> {
    let o = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let prefix = format!("vemu{pid}-");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(String::from)
        .collect()
}
