//! The traffic agent: one process per host, run inside the host's namespace
//! as `vinet-emu agent SPEC.json` (the emulator's own code, so the worm and
//! spam behaviours need nothing of the test harness's `vinet-traffic`).
//!
//! It receives on one UDP port per traffic class and counts what arrives, by
//! class and source; sends its constant-rate flows (background, spam) while
//! they are started; and plays the worm: an infected host scans random
//! addresses (of its own subnet with the worm's local preference, else of a
//! random subnet) at the scan rate, and a vulnerable host that receives a scan
//! is infected with the infection probability, from then on scanning too.
//!
//! It talks to the emulator over its standard streams, one line each way:
//! it prints `ready` once its sockets are bound; it reads `go`, then `start
//! NAME` / `stop NAME` for its flows, and `end`; it prints `infected T BY`
//! the moment it is infected (T seconds after `go`), and after `end` one
//! `summary JSON` line and exits. End of input (the emulator is gone) ends it
//! at once, and so does its time limit: no agent outlives its run.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// What one agent does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentSpec {
    /// The host's name.
    pub name: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its random stream's seed.
    pub seed: u64,
    /// The longest it may run after `go`, seconds.
    pub max_secs: f64,
    /// Ports to receive on: (class, port).
    pub listen: Vec<(String, u16)>,
    /// Its flows.
    pub flows: Vec<Flow>,
    /// The worm, if the scenario has one.
    pub worm: Option<Worm>,
}

/// A constant-rate UDP flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    /// The traffic source it belongs to (`start`/`stop` name it).
    pub traffic: String,
    /// Its class (counted per class).
    pub class: String,
    /// Destination port.
    pub port: u16,
    /// Receivers, in turn.
    pub to: Vec<Ipv4Addr>,
    /// Datagrams per second.
    pub rate: f64,
    /// Payload bytes.
    pub size: usize,
    /// Whether it runs from `go`.
    pub running: bool,
    /// Text the payload carries after its header (spam words).
    pub text: String,
    /// Each datagram goes to every receiver with the same payload
    /// (multicast as copies), instead of to the receivers in turn.
    #[serde(default)]
    pub fanout: bool,
}

/// The worm, as this host sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Worm {
    /// Its port.
    pub port: u16,
    /// Scans a second while infected.
    pub scan_rate: f64,
    /// Probability a scan infects this host, if vulnerable.
    pub infection_probability: f64,
    /// Probability a scan targets the own subnet.
    pub local_preference: f64,
    /// This host's subnet index (10.1.i.0/24).
    pub own_subnet: u8,
    /// Every subnet index.
    pub subnets: Vec<u8>,
    /// Hosts .2 to .(1 + scan_space) of a subnet are scanned.
    pub scan_space: u8,
    /// Whether this host can be infected.
    pub vulnerable: bool,
    /// Infected at `start`.
    pub infected: bool,
    /// Seconds after `go` at which an initially infected host is infected.
    pub start: f64,
}

/// What an agent reports at the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Datagrams sent, by traffic source.
    pub sent: BTreeMap<String, u64>,
    /// Bytes sent (UDP payload), by traffic source.
    pub sent_bytes: BTreeMap<String, u64>,
    /// Datagrams received, by traffic source, then by sender address.
    pub received: BTreeMap<String, BTreeMap<String, u64>>,
    /// Worm scans sent.
    pub scans_sent: u64,
    /// Worm scans received.
    pub scans_received: u64,
    /// When it was infected (seconds after `go`).
    pub infected_at: Option<f64>,
    /// Datagrams received in each second after `go`, by traffic source.
    #[serde(default)]
    pub received_per_second: BTreeMap<String, Vec<u64>>,
    /// Datagrams sent in each second after `go`, by traffic source.
    #[serde(default)]
    pub sent_per_second: BTreeMap<String, Vec<u64>>,
    /// What its floods of a router's admission port did.
    #[serde(default)]
    pub flood: FloodStats,
}

/// A flood's connections, as the attacker saw them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct FloodStats {
    /// Connections tried.
    pub attempts: u64,
    /// Connections the router's host accepted (TCP established).
    pub connected: u64,
    /// Connections the router closed (or reset) while the attacker held them.
    pub closed_by_router: u64,
    /// Garbage bytes written.
    pub garbage_bytes: u64,
}

/// The most seconds a per-second series covers.
const SERIES_SECS: usize = 3600;

const FLOW_MAGIC: &[u8; 4] = b"VFLW";
const WORM_MAGIC: &[u8; 4] = b"VWRM";

struct Shared {
    summary: Mutex<Summary>,
    infected: AtomicBool,
    stop: AtomicBool,
    rng: Mutex<Rng>,
    go: Mutex<Option<Instant>>,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Run the agent: returns when it ends (after `end`, end of input, or its
/// time limit).
pub fn run(spec: AgentSpec) -> Result<(), String> {
    let shared = Arc::new(Shared {
        summary: Mutex::new(Summary::default()),
        infected: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        rng: Mutex::new(Rng::new(spec.seed, &format!("agent/{}", spec.name))),
        go: Mutex::new(None),
    });
    let mut receivers = vec![];
    let mut ports: Vec<(String, u16)> = spec.listen.clone();
    if let Some(w) = &spec.worm {
        ports.push(("worm".into(), w.port));
    }
    for (_class, port) in ports {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).map_err(|e| format!("UDP port {port}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
        let sh = shared.clone();
        let worm = spec.worm.clone();
        receivers.push(std::thread::spawn(move || receive(sock, worm, sh)));
    }
    let out = UdpSocket::bind(SocketAddrV4::new(spec.addr, 0)).map_err(|e| format!("sending socket on {}: {e}", spec.addr))?;
    say("ready");

    // Control: `go`, `start N`, `stop N`, `end`; end of input ends at once.
    let running: Arc<Mutex<BTreeMap<String, bool>>> =
        Arc::new(Mutex::new(spec.flows.iter().map(|f| (f.traffic.clone(), f.running)).collect()));
    let ended = Arc::new(AtomicBool::new(false));
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    {
        let (running, ended, sh) = (running.clone(), ended.clone(), shared.clone());
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut go_tx = Some(go_tx);
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                let mut w = line.split_whitespace();
                match (w.next(), w.next()) {
                    (Some("go"), _) => {
                        *sh.go.lock().expect("go") = Some(Instant::now());
                        if let Some(t) = go_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    (Some("start"), Some(n)) => {
                        running.lock().expect("running").insert(n.to_string(), true);
                    }
                    (Some("stop"), Some(n)) => {
                        running.lock().expect("running").insert(n.to_string(), false);
                    }
                    (Some("flood"), Some(target)) => {
                        // flood HOST:PORT CONNECTIONS SECONDS GARBAGE
                        let rest: Vec<&str> = w.collect();
                        if let (Ok(to), [c, secs, g]) = (target.parse::<SocketAddrV4>(), rest.as_slice()) {
                            let (c, secs) = (c.parse().unwrap_or(1usize).clamp(1, 1000), secs.parse().unwrap_or(1.0f64).clamp(0.1, 120.0));
                            flood(to, c, Duration::from_secs_f64(secs), *g == "1", sh.clone());
                        }
                    }
                    (Some("end"), _) => {
                        ended.store(true, Ordering::SeqCst);
                        return;
                    }
                    _ => {}
                }
            }
            // End of input: the emulator is gone.
            sh.stop.store(true, Ordering::SeqCst);
            ended.store(true, Ordering::SeqCst);
            std::process::exit(0);
        });
    }
    if go_rx.recv_timeout(Duration::from_secs(600)).is_err() {
        return Err("no `go` within 600 s".into());
    }
    let t0 = Instant::now();
    let mut initial = spec.worm.as_ref().is_some_and(|w| w.infected);
    let limit = Duration::from_secs_f64(spec.max_secs.clamp(1.0, 7200.0));
    let mut acc = vec![0f64; spec.flows.len()];
    let mut turn = vec![0usize; spec.flows.len()];
    let mut scan_acc = 0f64;
    let mut seq = 0u32;
    let mut last = Instant::now();
    let mut buf = vec![0u8; 1500];
    while !ended.load(Ordering::SeqCst) && t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(2));
        let now = Instant::now();
        let dt = (now - last).as_secs_f64();
        last = now;
        let run_now = running.lock().expect("running").clone();
        for (i, f) in spec.flows.iter().enumerate() {
            if !run_now.get(&f.traffic).copied().unwrap_or(false) || f.to.is_empty() {
                continue;
            }
            acc[i] = (acc[i] + f.rate * dt).min(50.0);
            while acc[i] >= 1.0 {
                acc[i] -= 1.0;
                seq = seq.wrapping_add(1);
                let targets: Vec<Ipv4Addr> = if f.fanout {
                    f.to.clone()
                } else {
                    turn[i] += 1;
                    vec![f.to[(turn[i] - 1) % f.to.len()]]
                };
                let n = f.size.clamp(16, 1400);
                // VFLW, sequence number, the source's name and a space, its text, padding.
                let head = format!("{} {}", f.traffic, f.text);
                buf[..4].copy_from_slice(FLOW_MAGIC);
                buf[4..8].copy_from_slice(&seq.to_be_bytes());
                let tl = head.len().min(n - 8);
                buf[8..8 + tl].copy_from_slice(&head.as_bytes()[..tl]);
                for b in &mut buf[8 + tl..n] {
                    *b = b'.';
                }
                for to in targets {
                    if out.send_to(&buf[..n], SocketAddrV4::new(to, f.port)).is_ok() {
                        let second = (t0.elapsed().as_secs() as usize).min(SERIES_SECS - 1);
                        let mut s = shared.summary.lock().expect("summary");
                        *s.sent.entry(f.traffic.clone()).or_default() += 1;
                        *s.sent_bytes.entry(f.traffic.clone()).or_default() += n as u64;
                        let series = s.sent_per_second.entry(f.traffic.clone()).or_default();
                        if series.len() <= second {
                            series.resize(second + 1, 0);
                        }
                        series[second] += 1;
                    }
                }
            }
        }
        if let Some(w) = &spec.worm {
            if initial && t0.elapsed().as_secs_f64() >= w.start {
                initial = false;
                infect(&shared, "initial");
            }
            if shared.infected.load(Ordering::SeqCst) && !w.subnets.is_empty() {
                scan_acc = (scan_acc + w.scan_rate * dt).min(50.0);
                while scan_acc >= 1.0 {
                    scan_acc -= 1.0;
                    let target = {
                        let mut r = shared.rng.lock().expect("rng");
                        let subnet = if r.unit() < w.local_preference { w.own_subnet } else { w.subnets[r.below(w.subnets.len())] };
                        Ipv4Addr::new(10, 1, subnet, 2 + r.below(usize::from(w.scan_space)) as u8)
                    };
                    if target == spec.addr {
                        continue;
                    }
                    buf[..4].copy_from_slice(WORM_MAGIC);
                    buf[4..64].fill(b'w');
                    if out.send_to(&buf[..64], SocketAddrV4::new(target, w.port)).is_ok() {
                        shared.summary.lock().expect("summary").scans_sent += 1;
                    }
                }
            }
        }
    }
    // Keep receiving what is still in flight, then report.
    std::thread::sleep(Duration::from_millis(500));
    shared.stop.store(true, Ordering::SeqCst);
    for r in receivers {
        let _ = r.join();
    }
    let s = shared.summary.lock().expect("summary").clone();
    say(&format!("summary {}", serde_json::to_string(&s).map_err(|e| e.to_string())?));
    Ok(())
}

fn infect(sh: &Shared, by: &str) {
    if sh.infected.swap(true, Ordering::SeqCst) {
        return;
    }
    let t = sh.go.lock().expect("go").map_or(0.0, |g| g.elapsed().as_secs_f64());
    sh.summary.lock().expect("summary").infected_at = Some(t);
    say(&format!("infected {t:.3} {by}"));
}

fn receive(sock: UdpSocket, worm: Option<Worm>, sh: Arc<Shared>) {
    let mut buf = vec![0u8; 2048];
    while !sh.stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        if n >= 4 && &buf[..4] == WORM_MAGIC {
            sh.summary.lock().expect("summary").scans_received += 1;
            if let Some(w) = &worm {
                if w.vulnerable && !sh.infected.load(Ordering::SeqCst) && sh.rng.lock().expect("rng").unit() < w.infection_probability {
                    infect(&sh, &from.ip().to_string());
                }
            }
        } else if n >= 8 && &buf[..4] == FLOW_MAGIC {
            let name = buf[8..n].split(|b| *b == b' ').next().map(|w| String::from_utf8_lossy(w).into_owned()).unwrap_or_default();
            let second = sh.go.lock().expect("go").map_or(0, |g| g.elapsed().as_secs() as usize).min(SERIES_SECS - 1);
            let mut s = sh.summary.lock().expect("summary");
            let series = s.received_per_second.entry(name.clone()).or_default();
            if series.len() <= second {
                series.resize(second + 1, 0);
            }
            series[second] += 1;
            *s.received.entry(name).or_default().entry(from.ip().to_string()).or_default() += 1;
        }
    }
}

/// Flood a router's admission port: `connections` threads, each keeping one
/// TCP connection open to `to` until `length` has passed (or the agent
/// stops), opening another whenever the router closes it (after 50 ms, so a
/// router that refuses at once is not met with a busy loop). With `garbage`,
/// each connection writes 512 random bytes every 50 ms (not a Noise
/// handshake: the router must drop it); otherwise it sends nothing and only
/// holds the connection (a slowloris). Counted in the summary's `flood`.
fn flood(to: SocketAddrV4, connections: usize, length: Duration, garbage: bool, sh: Arc<Shared>) {
    let deadline = Instant::now() + length;
    for k in 0..connections {
        let sh = sh.clone();
        std::thread::spawn(move || {
            let mut rng = Rng::new(u64::from(u32::from(*to.ip())) ^ k as u64, "flood");
            let mut junk = vec![0u8; 512];
            let count = |f: &dyn Fn(&mut FloodStats)| f(&mut sh.summary.lock().expect("summary").flood);
            while Instant::now() < deadline && !sh.stop.load(Ordering::SeqCst) {
                count(&|f| f.attempts += 1);
                let Ok(mut s) = std::net::TcpStream::connect_timeout(&to.into(), Duration::from_millis(500)) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                count(&|f| f.connected += 1);
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 256];
                let closed = loop {
                    if Instant::now() >= deadline || sh.stop.load(Ordering::SeqCst) {
                        break false;
                    }
                    if garbage {
                        for b in junk.iter_mut() {
                            *b = rng.below(256) as u8;
                        }
                        match std::io::Write::write_all(&mut s, &junk) {
                            Ok(()) => count(&|f| f.garbage_bytes += junk.len() as u64),
                            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                            Err(_) => break true,
                        }
                    }
                    match std::io::Read::read(&mut s, &mut buf) {
                        Ok(0) => break true,
                        Ok(_) => {}
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                        Err(_) => break true,
                    }
                };
                if closed {
                    count(&|f| f.closed_by_router += 1);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
    }
}
