//! Network namespaces for the live tests: hosts and a router joined by veth
//! pairs, removed by a drop guard, and the helper processes (traffic sinks
//! and senders) that run inside them: the test binary itself, re-invoked
//! with `--exact helper_entry` and a role in VINET_NETNS_HELPER.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run the helper role named in the environment, if any (the body of each
/// netns test file's `helper_entry`).
pub fn helper_main() {
    let Ok(role) = std::env::var(HELPER_ENV) else { return };
    let a: Vec<&str> = role.split_whitespace().collect();
    match a[0] {
        "sink" => sink(a[1].parse().unwrap(), a[2].parse().unwrap(), a[3]),
        "send" => send(a[1], a[2].parse().unwrap(), a[3].parse().unwrap(), a[4], a[5].parse().unwrap()),
        "flood" => flood(a[1], a[2].parse().unwrap(), a[3].parse().unwrap(), a[4].parse().unwrap()),
        "count" => count(a[1].parse().unwrap(), a[2].parse().unwrap()),
        other => panic!("unknown helper role {other}"),
    }
}

/// Send UDP datagrams of `size` bytes to dst:port as fast as possible for `secs`.
fn flood(dst: &str, port: u16, secs: f64, size: usize) {
    let u = UdpSocket::bind("0.0.0.0:0").unwrap();
    let buf = vec![0x5au8; size];
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        for _ in 0..64 {
            if u.send_to(&buf, (dst, port)).is_ok() {
                n += 1;
            }
        }
    }
    println!("sent {n} in {:.3} s", t0.elapsed().as_secs_f64());
}

/// Count UDP datagrams on `port` from the first one for `secs` seconds (or
/// until 2 s of silence); prints the count and the rate.
fn count(port: u16, secs: f64) {
    let u = UdpSocket::bind(("0.0.0.0", port)).unwrap();
    let _ = u.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = [0u8; 2048];
    if u.recv_from(&mut buf).is_err() {
        println!("received 0 in 0 s: rate 0");
        return;
    }
    let _ = u.set_read_timeout(Some(Duration::from_secs(2)));
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        match u.recv_from(&mut buf) {
            Ok(_) => n += 1,
            Err(_) => break,
        }
    }
    let s = t0.elapsed().as_secs_f64();
    println!("received {n} in {s:.3} s: rate {:.0}", n as f64 / s);
}

pub const HELPER_ENV: &str = "VINET_NETNS_HELPER";

pub fn sink(udp: u16, tcp: u16, out: &str) {
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(out).unwrap()));
    let u = UdpSocket::bind(("0.0.0.0", udp)).unwrap();
    let t = TcpListener::bind(("0.0.0.0", tcp)).unwrap();
    let o = out.clone();
    std::thread::spawn(move || {
        for c in t.incoming() {
            let Ok(mut c) = c else { continue };
            let o = o.clone();
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut s = String::new();
                let _ = c.read_to_string(&mut s);
                let peer = c.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default();
                let mut f = o.lock().unwrap();
                let _ = writeln!(f, "tcp {peer} {}", s.trim());
            });
        }
    });
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = u.recv_from(&mut buf).unwrap();
        let mut f = out.lock().unwrap();
        let _ = writeln!(f, "udp {} {}", from.ip(), String::from_utf8_lossy(&buf[..n]).trim());
    }
}

pub fn send(dst: &str, udp: u16, tcp: u16, tag: &str, count: usize) {
    let u = UdpSocket::bind("0.0.0.0:0").unwrap();
    for i in 0..count {
        u.send_to(format!("{tag} udp {i}").as_bytes(), (dst, udp)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let addr = format!("{dst}:{tcp}").parse().unwrap();
    match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(mut s) => {
            s.write_all(format!("{tag} tcp").as_bytes()).unwrap();
            drop(s);
            println!("tcp connected");
        }
        Err(e) => println!("tcp failed: {e}"),
    }
}

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

pub fn helper(net_ns: &str, role: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new("ip");
    c.args(["netns", "exec", net_ns])
        .arg(exe)
        .args(["--exact", "helper_entry", "--nocapture", "--test-threads=1", "-q"])
        .env(HELPER_ENV, role);
    c
}
