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

/// vinetd started in namespace `net_ns` with `config`, its log to `log`.
pub fn vinetd_in(net_ns: &str, config: &std::path::Path, log: std::path::PathBuf) -> super::Vinetd {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", net_ns, super::VINETD]);
    super::Vinetd::start_with(cmd, config, "", log)
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

/// Give the hosts and R IPv6 addresses too (`fd00:N::2/64` for host N, R
/// `fd00:N::1/64`, no duplicate address detection so they are usable at
/// once), default routes through R, and turn on R's IPv6 forwarding.
pub fn add_ipv6(net: &Net) -> Result<(), String> {
    let r = &net.ns[3];
    for (host, rif, subnet) in [(&net.ns[0], "ra", 1), (&net.ns[1], "rb", 2), (&net.ns[2], "rc", 3)] {
        ns(r, &["ip", "-6", "addr", "add", &format!("fd00:{subnet}::1/64"), "dev", rif, "nodad"])?;
        ns(host, &["ip", "-6", "addr", "add", &format!("fd00:{subnet}::2/64"), "dev", "eth0", "nodad"])?;
        ns(host, &["ip", "-6", "route", "add", "default", "via", &format!("fd00:{subnet}::1")])?;
    }
    ns(r, &["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])?;
    Ok(())
}

/// Count packets arriving in `net_ns` before anything else sees them (a
/// prerouting hook at priority -500, ahead of the defragmenter and of any
/// socket, so malformed packets and fragments are counted too): one named
/// counter per `(name, match)`, e.g. `("from_a", "ip saddr 10.0.1.2")`.
/// Replaces the namespace's table `inet count`.
pub fn count_arrivals(net_ns: &str, rules: &[(&str, &str)]) -> Result<(), String> {
    let mut script = String::from("table inet count {}\ndelete table inet count\ntable inet count {\n");
    for (name, _) in rules {
        script.push_str(&format!("    counter {name} {{}}\n"));
    }
    script.push_str("    chain in {\n        type filter hook prerouting priority -500; policy accept;\n");
    for (name, m) in rules {
        script.push_str(&format!("        {m} counter name {name}\n"));
    }
    script.push_str("    }\n}\n");
    let mut child = Command::new("ip")
        .args(["netns", "exec", net_ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).map_err(|e| format!("nft: {e}"))?;
    let o = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if !o.status.success() {
        return Err(format!("nft refused the counting table: {}\n{script}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(())
}

/// The packets a counter of [`count_arrivals`] has counted.
pub fn arrivals(net_ns: &str, name: &str) -> u64 {
    let out = ns(net_ns, &["nft", "list", "counter", "inet", "count", name]).unwrap_or_else(|e| panic!("{e}"));
    // `... counter NAME { packets N bytes M }`
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in `nft list counter inet count {name}`: {out}"))
}

/// The metrics page of a vinetd, fetched from inside `net_ns` (with curl).
pub fn metrics_page(net_ns: &str, addr: &str) -> String {
    ns(net_ns, &["curl", "-s", "--max-time", "10", &format!("http://{addr}/metrics")])
        .unwrap_or_else(|e| panic!("cannot read vinetd's metrics: {e}"))
}

/// A series' value on a metrics page (0 if absent).
pub fn metric_of(page: &str, series: &str) -> f64 {
    page.lines().find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

/// A process's CPU time so far (user + system, all its threads), in
/// seconds, from `/proc/PID/stat` (clock ticks of 1/100 s, Linux's USER_HZ).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The name of a process (`/proc/PID/comm`), to check a pid is the one meant.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// A value `key=V` or `key V` on a line of a tool's output.
pub fn field(text: &str, key: &str) -> Option<f64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.iter().enumerate().find_map(|(i, w)| match w.strip_prefix(key) {
        Some(rest) if rest.starts_with('=') => rest[1..].trim_end_matches(':').parse().ok(),
        Some("") => words.get(i + 1).and_then(|v| v.trim_end_matches(':').parse().ok()),
        _ => None,
    })
}
