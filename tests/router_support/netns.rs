//! Network namespaces for the live tests and the live benchmark: hosts and a
//! router joined by veth pairs, removed by a drop guard, and the traffic
//! helpers that run inside them (the `vinet-traffic` binary, run with
//! `ip netns exec`).
#![allow(dead_code)]

use std::io::BufRead;
use std::process::{Child, ChildStdout, Command, Stdio};

/// Namespaces and processes, removed on drop.
pub struct Net {
    pub ns: Vec<String>,
    pub procs: Vec<Child>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

pub fn sh(args: &[&str]) -> Result<String, String> {
    let o = Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !o.status.success() {
        return Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into())
}

pub fn ns(n: &str, args: &[&str]) -> Result<String, String> {
    let mut v = vec!["ip", "netns", "exec", n];
    v.extend(args);
    sh(&v)
}

/// Why this machine cannot run the test, if it cannot.
pub fn cannot_run() -> Option<String> {
    let uid = sh(&["id", "-u"]).unwrap_or_default();
    if uid.trim() != "0" {
        return Some(format!("it needs root (uid is {})", uid.trim()));
    }
    if sh(&["ip", "-V"]).is_err() {
        return Some("`ip` (iproute2) is missing".into());
    }
    if sh(&["iptables", "--version"]).is_err() {
        return Some("`iptables` is missing (run scripts/setup)".into());
    }
    let probe = format!("vnprobe{}", std::process::id());
    if let Err(e) = sh(&["ip", "netns", "add", &probe]) {
        return Some(format!("network namespaces are unavailable: {e}"));
    }
    let _ = sh(&["ip", "netns", "del", &probe]);
    None
}

pub fn setup(tag: &str) -> Result<Net, String> {
    let names: Vec<String> = ["a", "b", "c", "r"].iter().map(|x| format!("vn{tag}{x}")).collect();
    let mut net = Net { ns: vec![], procs: vec![] };
    for n in &names {
        sh(&["ip", "netns", "add", n])?;
        net.ns.push(n.clone());
        ns(n, &["ip", "link", "set", "lo", "up"])?;
    }
    let (a, b, c, r) = (&names[0], &names[1], &names[2], &names[3]);
    for (host, rif, subnet) in [(a, "ra", 1), (b, "rb", 2), (c, "rc", 3)] {
        sh(&["ip", "-n", r, "link", "add", rif, "type", "veth", "peer", "name", "eth0", "netns", host])?;
        ns(r, &["ip", "addr", "add", &format!("10.0.{subnet}.1/24"), "dev", rif])?;
        ns(r, &["ip", "link", "set", rif, "up"])?;
        ns(host, &["ip", "addr", "add", &format!("10.0.{subnet}.2/24"), "dev", "eth0"])?;
        ns(host, &["ip", "link", "set", "eth0", "up"])?;
        ns(host, &["ip", "route", "add", "default", "via", &format!("10.0.{subnet}.1")])?;
    }
    ns(r, &["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
    Ok(net)
}

/// The traffic tool (`src/bin/vinet-traffic.rs`).
pub const TRAFFIC: &str = env!("CARGO_BIN_EXE_vinet-traffic");

/// `vinet-traffic ARGS..` inside the namespace `net_ns`.
pub fn traffic(net_ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", net_ns, TRAFFIC]).args(args).stdin(Stdio::null());
    c
}

/// Start `vinet-traffic ARGS..` (a `sink` or a `count`) in `net_ns` and
/// wait until it says `ready` (its sockets are bound). Returns the child and
/// the rest of its stdout.
pub fn start_ready(net_ns: &str, args: &[&str]) -> (Child, std::io::BufReader<ChildStdout>) {
    let mut child = traffic(net_ns, args).stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("cannot run {TRAFFIC}: {e}"));
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // Blocks until the line comes or the process ends (end of file): no
    // deadline is needed, the helper's own time limit bounds it.
    let _ = out.read_line(&mut line);
    if line.trim() != "ready" {
        let st = child.wait();
        panic!("vinet-traffic {} in {net_ns} did not get ready ({st:?}): {line:?}", args.join(" "));
    }
    (child, out)
}
