//! `vinet-traffic`: the traffic tool of the live tests and benchmarks.
//!
//! The network-namespace tests (`tests/netns_firewall.rs`) and the live
//! benchmark (`benches/live.rs`) run it inside their namespaces with
//! `ip netns exec NS vinet-traffic ...`:
//!
//! - `sink` receives UDP datagrams and TCP connections and appends one line
//!   for each to a file (`udp FROM PAYLOAD`, `tcp FROM PAYLOAD`);
//! - `send` sends a few tagged UDP datagrams, then one tagged TCP connection;
//! - `flood` sends UDP datagrams as fast as it can for a while;
//! - `count` counts the UDP datagrams it receives and prints the rate.
//!
//! Every loop is bounded both in count and in time, so a test that loses
//! track of a helper is not left with a process that runs for ever. `sink`
//! and `count` print `ready` on stdout once their sockets are bound, so a test
//! waits for that line instead of sleeping. It is a test tool, not a traffic
//! generator for real networks: it has no rate control and no congestion
//! handling.

use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples:
  vinet-traffic sink --udp 5000 --tcp 5001 --out /tmp/sink.txt
  vinet-traffic send --to 10.0.3.2 --udp 5000 --tcp 5001 --tag A1 --count 5
  vinet-traffic count --port 6000 --for 5
  vinet-traffic flood --to 10.0.3.2 --port 6000 --for 5.5 --size 64

Exit codes: 0 done (for send, also when its TCP connection was refused or
timed out: that is a result, printed as `tcp failed: ...`); 1 a socket or the
output file could not be used; 2 bad arguments.";

/// The longest any subcommand may run, in seconds.
const MAX_SECS: f64 = 3600.0;

/// vinet-traffic: UDP/TCP sinks, senders, floods and counters for the live tests.
#[derive(Parser, Debug)]
#[command(name = "vinet-traffic", version, after_help = AFTER_HELP)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Receive UDP on one port and TCP on another; append a line per datagram
    /// and per connection to a file. Prints `ready` once both are bound.
    Sink {
        /// The UDP port to receive on (all addresses).
        #[arg(long)]
        udp: u16,
        /// The TCP port to accept connections on (all addresses).
        #[arg(long)]
        tcp: u16,
        /// The file the lines are appended to (created if missing).
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECS", default_value_t = 600.0)]
        secs: f64,
        /// Stop after this many lines (datagrams and connections together).
        #[arg(long, value_name = "N", default_value_t = 100_000)]
        max: u64,
    },
    /// Send COUNT UDP datagrams `TAG udp I` 10 ms apart, then one TCP
    /// connection carrying `TAG tcp`; prints `tcp connected` or `tcp failed: ...`.
    Send {
        /// The destination address.
        #[arg(long)]
        to: std::net::IpAddr,
        /// The destination UDP port.
        #[arg(long)]
        udp: u16,
        /// The destination TCP port.
        #[arg(long)]
        tcp: u16,
        /// The tag every payload starts with (no spaces).
        #[arg(long)]
        tag: String,
        /// How many UDP datagrams (at most 10,000).
        #[arg(long, default_value_t = 5)]
        count: u32,
        /// How long the TCP connection may take to open, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 3.0)]
        connect_timeout: f64,
    },
    /// Send UDP datagrams of SIZE bytes as fast as possible for SECS seconds;
    /// prints `sent N in S s`.
    Flood {
        /// The destination address.
        #[arg(long)]
        to: std::net::IpAddr,
        /// The destination UDP port.
        #[arg(long)]
        port: u16,
        /// How long to send, in seconds.
        #[arg(long = "for", value_name = "SECS")]
        secs: f64,
        /// The payload size in bytes (at most 65,000).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Stop after this many datagrams.
        #[arg(long, value_name = "N", default_value_t = 1_000_000_000)]
        max: u64,
    },
    /// Count UDP datagrams on PORT for SECS seconds from the first one (or
    /// until SILENCE seconds without one); prints `ready` once bound, then
    /// `received N in S s: rate R`.
    Count {
        /// The UDP port to receive on (all addresses).
        #[arg(long)]
        port: u16,
        /// How long to count from the first datagram, in seconds.
        #[arg(long = "for", value_name = "SECS")]
        secs: f64,
        /// How long to wait for the first datagram, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        wait: f64,
        /// Stop counting after this many seconds without a datagram.
        #[arg(long, value_name = "SECS", default_value_t = 2.0)]
        silence: f64,
        /// Stop after this many datagrams.
        #[arg(long, value_name = "N", default_value_t = 1_000_000_000)]
        max: u64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.cmd {
        Cmd::Sink { udp, tcp, out, secs, max } => seconds("--for", secs).and_then(|d| sink(udp, tcp, &out, d, max)),
        Cmd::Send { to, udp, tcp, tag, count, connect_timeout } => {
            if tag.is_empty() || tag.contains(char::is_whitespace) {
                return usage("--tag must be a non-empty word without spaces");
            }
            if count > 10_000 {
                return usage("--count is at most 10000");
            }
            seconds("--connect-timeout", connect_timeout).and_then(|t| send(to, udp, tcp, &tag, count, t))
        }
        Cmd::Flood { to, port, secs, size, max } => {
            if size > 65_000 {
                return usage("--size is at most 65000");
            }
            seconds("--for", secs).and_then(|d| flood(SocketAddr::new(to, port), d, size, max))
        }
        Cmd::Count { port, secs, wait, silence, max } => {
            match (seconds("--for", secs), seconds("--wait", wait), seconds("--silence", silence)) {
                (Ok(l), Ok(w), Ok(s)) => count(port, l, w, s, max),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => usage(&m),
        Err(Failure::Io(m)) => {
            eprintln!("vinet-traffic: {m}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Io(String),
}

fn usage(m: &str) -> ExitCode {
    eprintln!("vinet-traffic: {m} (see --help)");
    ExitCode::from(2)
}

fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> Failure {
    move |e| Failure::Io(format!("{what}: {e}"))
}

/// A positive number of seconds, at most [`MAX_SECS`].
fn seconds(flag: &str, s: f64) -> Result<Duration, Failure> {
    if !(s > 0.0 && s <= MAX_SECS) {
        return Err(Failure::Usage(format!("{flag} must be more than 0 and at most {MAX_SECS} seconds, not {s}")));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Print `ready` and flush, so the parent can stop waiting.
fn ready() -> Result<(), Failure> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "ready").and_then(|()| o.flush()).map_err(io("stdout"))
}

fn sink(udp: u16, tcp: u16, out: &std::path::Path, lifetime: Duration, max: u64) -> Result<(), Failure> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(out).map_err(io(out.display()))?;
    let file = Arc::new(Mutex::new(file));
    let u = UdpSocket::bind(("0.0.0.0", udp)).map_err(io(format!("UDP port {udp}")))?;
    let t = TcpListener::bind(("0.0.0.0", tcp)).map_err(io(format!("TCP port {tcp}")))?;
    // Each line is written with one write(2) on an O_APPEND file, so a reader
    // never sees half a line.
    let record = {
        let file = Arc::clone(&file);
        move |line: String| {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(format!("{line}\n").as_bytes())
        }
    };
    let lines = Arc::new(AtomicU64::new(0));
    {
        let (record, lines) = (record.clone(), Arc::clone(&lines));
        // Ends with the process (the main loop below returns).
        std::thread::spawn(move || {
            for c in t.incoming().take(max as usize) {
                let Ok(mut c) = c else { continue };
                let (record, lines) = (record.clone(), Arc::clone(&lines));
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut s = String::new();
                    let _ = (&mut c).take(4096).read_to_string(&mut s);
                    let peer = c.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default();
                    if record(format!("tcp {peer} {}", s.trim())).is_ok() {
                        lines.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
    }
    u.set_read_timeout(Some(Duration::from_millis(100))).map_err(io("UDP socket"))?;
    ready()?;
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    while t0.elapsed() < lifetime && lines.load(Ordering::SeqCst) < max {
        match u.recv_from(&mut buf) {
            Ok((n, from)) => {
                record(format!("udp {} {}", from.ip(), String::from_utf8_lossy(&buf[..n]).trim())).map_err(io(out.display()))?;
                lines.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(Failure::Io(format!("UDP port {udp}: {e}"))),
        }
    }
    Ok(())
}

fn send(to: std::net::IpAddr, udp: u16, tcp: u16, tag: &str, count: u32, connect_timeout: Duration) -> Result<(), Failure> {
    let u = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).map_err(io("UDP socket"))?;
    for i in 0..count {
        u.send_to(format!("{tag} udp {i}").as_bytes(), (to, udp)).map_err(io(format!("UDP to {to}:{udp}")))?;
        std::thread::sleep(Duration::from_millis(10));
    }
    match TcpStream::connect_timeout(&SocketAddr::new(to, tcp), connect_timeout) {
        Ok(mut s) => {
            s.write_all(format!("{tag} tcp").as_bytes()).map_err(io(format!("TCP to {to}:{tcp}")))?;
            drop(s);
            println!("tcp connected");
        }
        Err(e) => println!("tcp failed: {e}"),
    }
    Ok(())
}

fn flood(to: SocketAddr, lifetime: Duration, size: usize, max: u64) -> Result<(), Failure> {
    let u = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).map_err(io("UDP socket"))?;
    let buf = vec![0x5au8; size];
    let t0 = Instant::now();
    let mut n = 0u64;
    // Sends that fail (a full socket buffer, an unreachable destination) are
    // not counted and not retried: a flood measures what gets through.
    while t0.elapsed() < lifetime && n < max {
        for _ in 0..64 {
            if u.send_to(&buf, to).is_ok() {
                n += 1;
            }
        }
    }
    println!("sent {n} in {:.3} s", t0.elapsed().as_secs_f64());
    Ok(())
}

fn count(port: u16, lifetime: Duration, wait: Duration, silence: Duration, max: u64) -> Result<(), Failure> {
    let u = UdpSocket::bind(("0.0.0.0", port)).map_err(io(format!("UDP port {port}")))?;
    u.set_read_timeout(Some(wait)).map_err(io("UDP socket"))?;
    ready()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut buf = [0u8; 2048];
    if u.recv_from(&mut buf).is_err() {
        writeln!(out, "received 0 in 0 s: rate 0").map_err(io("stdout"))?;
        return Ok(());
    }
    u.set_read_timeout(Some(silence)).map_err(io("UDP socket"))?;
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < lifetime && n < max {
        match u.recv_from(&mut buf) {
            Ok(_) => n += 1,
            Err(_) => break,
        }
    }
    let s = t0.elapsed().as_secs_f64();
    writeln!(out, "received {n} in {s:.3} s: rate {:.0}", n as f64 / s).map_err(io("stdout"))?;
    Ok(())
}
