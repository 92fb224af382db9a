//! `vinet-traffic`: the traffic tool of the live tests and benchmarks.
//!
//! The network-namespace tests (`tests/netns_firewall.rs`) and the live
//! benchmark (`benches/live.rs`) run it inside their namespaces with
//! `ip netns exec NS vinet-traffic ...`:
//!
//! - `sink` receives UDP datagrams and TCP connections, over IPv4 and IPv6
//!   (a socket of each family), and appends one line for each to a file
//!   (`udp FROM PAYLOAD`, `tcp FROM PAYLOAD`; FROM as its family writes it:
//!   `10.0.1.2`, `fd00:1::2`);
//! - `send` sends a few tagged UDP datagrams, then one tagged TCP connection,
//!   to an IPv4 or IPv6 address;
//! - `flood` sends UDP datagrams as fast as it can for a while;
//! - `count` counts the UDP datagrams it receives and prints the rate;
//! - `echo` sends every UDP datagram it receives back to its sender, and
//!   `rtt` measures round trips through it (sequence-numbered probes);
//! - `craft` sends hand-built IPv4 packets from a raw socket (the IP header
//!   is ours: truncated UDP and TCP headers, IP options, hand-made
//!   fragments, an unknown protocol), and IPv6 UDP from an ordinary socket;
//! - `tunnel` is an ON's access point with redundant paths (issue 13): a TUN
//!   device whose IPv4 packets go out in GRE with the ON's key and a sequence
//!   number, one copy to each remote (one remote per disjoint path), and
//!   whose incoming copies are reduced to one by IEEE 802.1CB's vector
//!   recovery. The decisions are `vinet_overlay::endpoint`'s; this file only
//!   moves the bytes (the TUN, the raw sockets, signals, the stats file).
//!
//! `flood` and `count` also print the CPU time they used (user + system,
//! from `/proc/self/stat`), so a benchmark can show the sender is not what
//! limits the rate.
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
  vinet-traffic send --to fd00:3::2 --udp 5000 --tcp 5001 --tag A6 --count 5
  vinet-traffic count --port 6000 --for 5
  vinet-traffic flood --to 10.0.3.2 --port 6000 --for 5.5 --size 64 [--pps 2000]
  vinet-traffic echo --port 7000 --for 30
  vinet-traffic rtt --to 10.0.3.2 --port 7000 --count 1000 --interval-ms 1
  vinet-traffic craft --from 10.0.1.2 --to 10.0.3.2 --kind truncated-udp --tag T1
  vinet-traffic craft --to fd00:3::2 --kind udp6 --tag T2
  vinet-traffic gre --from 10.0.1.2 --to 10.0.3.2 --key 1 --count 5000 [--pps 500]
  vinet-traffic tunnel --key 7 --local 10.9.1.1 --remote 10.9.1.2,10.9.2.2 --tun on0 \
      --address 172.16.0.1/30 [--history 1024] [--reset-ms 2000] [--stats FILE] [--lifetime SECONDS] [--mtu 1400]

Craft kinds: udp (a well-formed datagram, the control), truncated-udp (IPv4
total length 20 + 4: the UDP header cut), truncated-tcp (20 + 8), options
(IHL 6: NOP, NOP, NOP, EOL, then UDP), fragments (a ~3000-byte UDP datagram
whose payload starts with the tag, as 3 hand-made fragments), unknown-proto
(IP protocol 253), udp6 (UDP over IPv6, ordinary socket). The raw kinds need
--from (the sender's own address) and CAP_NET_RAW.

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
        /// The UDP port to receive on (all addresses, IPv4 and IPv6).
        #[arg(long)]
        udp: u16,
        /// The TCP port to accept connections on (all addresses, IPv4 and IPv6).
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
    /// connection carrying `TAG tcp`, over IPv4 or IPv6 (the family of
    /// --to); prints `tcp connected` or `tcp failed: ...`.
    Send {
        /// The destination address, IPv4 or IPv6.
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
    /// Send UDP datagrams of SIZE bytes as fast as possible (or at --pps)
    /// for SECS seconds; prints `sent N in S s: rate R cpu_s C`.
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
        /// Send at most this many datagrams a second (paced; default: as
        /// fast as possible).
        #[arg(long, value_name = "N")]
        pps: Option<u64>,
    },
    /// Send COUNT GRE packets (RFC 2890, key KEY, no checksum, no sequence) from
    /// FROM to TO on a raw IP-protocol-47 socket, each carrying an IPv4/UDP
    /// datagram 192.168.1.1 -> 192.168.1.2 port 6000 with 64 bytes: what a Linux
    /// `ip link add ... type gre key KEY` tunnel sends (an ON's packets, issue 13).
    /// Back to back, or at PPS. Prints `gre-sent N of key K ...`. Needs CAP_NET_RAW.
    Gre {
        /// The sender's own address (the tunnel's local end).
        #[arg(long)]
        from: std::net::Ipv4Addr,
        /// The tunnel's remote end.
        #[arg(long)]
        to: std::net::Ipv4Addr,
        /// The GRE key (the ON's flow id).
        #[arg(long)]
        key: u32,
        /// Packets to send (at most 1,000,000).
        #[arg(long)]
        count: u64,
        /// Packets a second (default: back to back).
        #[arg(long)]
        pps: Option<u64>,
    },
    /// An ON's tunnel endpoint with redundant paths: creates TUN device NAME
    /// (IPv4 only) with ADDRESS and MTU, prints `tunnel-ready`, then sends every
    /// packet read from it in GRE (key KEY, one sequence number per packet) to
    /// each REMOTE, and writes to it the first copy of each number received with
    /// key KEY (802.1CB vector recovery). Ends on SIGTERM or SIGINT, at
    /// LIFETIME, or when stdin (if a pipe) closes, printing `tunnel-stats JSON`;
    /// the JSON is also written to FILE, every second and at the end. Needs
    /// CAP_NET_ADMIN and CAP_NET_RAW.
    Tunnel {
        /// The GRE key (the ON's flow id).
        #[arg(long)]
        key: u32,
        /// This host's address: the source of every outer packet.
        #[arg(long)]
        local: std::net::Ipv4Addr,
        /// The remote ends, one per disjoint path, comma-separated (1 to 8).
        #[arg(long, value_delimiter = ',', required = true)]
        remote: Vec<std::net::Ipv4Addr>,
        /// The TUN device to create (1 to 15 characters).
        #[arg(long, value_name = "NAME")]
        tun: String,
        /// The TUN device's address, A.B.C.D/NN.
        #[arg(long)]
        address: String,
        /// The recovery's history window, in sequence numbers (2 to 65536).
        #[arg(long, default_value_t = 1024)]
        history: u32,
        /// The recovery's reset timeout: after this long without a packet
        /// passed, the next number is taken whatever it is.
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        reset_ms: u64,
        /// Where to write the statistics (JSON), every second and at the end.
        #[arg(long, value_name = "FILE")]
        stats: Option<std::path::PathBuf>,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = MAX_SECS)]
        lifetime: f64,
        /// The TUN device's MTU (576 to 65000; 1400 leaves the 32 bytes of
        /// outer IPv4 and GRE room on 1500-byte links).
        #[arg(long, default_value_t = 1400)]
        mtu: u32,
    },
    /// Count UDP datagrams on PORT for SECS seconds from the first one (or
    /// until SILENCE seconds without one); prints `ready` once bound, then
    /// `received N in S s: rate R cpu_s C`.
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
    /// Send back every UDP datagram received on PORT, for SECS seconds;
    /// prints `ready` once bound, then `echoed N`.
    Echo {
        /// The UDP port (all addresses).
        #[arg(long)]
        port: u16,
        /// How long to serve, in seconds.
        #[arg(long = "for", value_name = "SECS")]
        secs: f64,
        /// Stop after this many datagrams.
        #[arg(long, value_name = "N", default_value_t = 10_000_000)]
        max: u64,
    },
    /// Send COUNT sequence-numbered UDP probes to an `echo` server, one at a
    /// time, INTERVAL ms apart, each waiting for its echo up to TIMEOUT ms;
    /// prints `rtt n=N lost=L median_us=M p99_us=P min_us=X max_us=Y`.
    Rtt {
        /// The echo server's address.
        #[arg(long)]
        to: std::net::IpAddr,
        /// The echo server's UDP port.
        #[arg(long)]
        port: u16,
        /// How many probes (1 to 100,000).
        #[arg(long)]
        count: u32,
        /// Pause between a probe's answer (or timeout) and the next probe.
        #[arg(long, value_name = "MS", default_value_t = 1)]
        interval_ms: u64,
        /// How long a probe waits for its echo before it counts as lost.
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        timeout_ms: u64,
    },
    /// Send hand-built packets (see the kinds below); prints `sent N packets`.
    Craft {
        /// The destination (repeat the flag for several; each gets COUNT).
        #[arg(long, required = true)]
        to: Vec<std::net::IpAddr>,
        /// The source address written into the IPv4 header (raw kinds).
        #[arg(long)]
        from: Option<std::net::Ipv4Addr>,
        /// What to send.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The tag the payload starts with (1 to 32 characters, no spaces).
        #[arg(long)]
        tag: String,
        /// The destination port (UDP and TCP kinds).
        #[arg(long, default_value_t = 5000)]
        port: u16,
        /// How many of the packet (or fragmented datagram) to each
        /// destination (1 to 1,000).
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

impl Kind {
    /// The name on the command line.
    fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map_or_else(String::new, |v| v.get_name().to_string())
    }
}

/// The packets `craft` can build.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A well-formed UDP datagram (the control).
    Udp,
    /// IPv4 total length 24: the UDP header cut after 4 bytes.
    TruncatedUdp,
    /// IPv4 total length 28: the TCP header cut after 8 bytes.
    TruncatedTcp,
    /// IHL 6 (options NOP, NOP, NOP, EOL), then a UDP datagram.
    Options,
    /// A ~3000-byte UDP datagram in 3 hand-made IPv4 fragments.
    Fragments,
    /// IP protocol 253 (reserved for experiments), the tag as payload.
    UnknownProto,
    /// UDP over IPv6 from an ordinary socket.
    Udp6,
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
        Cmd::Flood { to, port, secs, size, max, pps } => {
            if size > 65_000 {
                return usage("--size is at most 65000");
            }
            if pps == Some(0) {
                return usage("--pps must be at least 1");
            }
            seconds("--for", secs).and_then(|d| flood(SocketAddr::new(to, port), d, size, max, pps))
        }
        Cmd::Echo { port, secs, max } => seconds("--for", secs).and_then(|d| echo(port, d, max)),
        Cmd::Rtt { to, port, count, interval_ms, timeout_ms } => {
            if !(1..=100_000).contains(&count) {
                return usage("--count must be 1 to 100000");
            }
            if interval_ms > 10_000 || !(1..=10_000).contains(&timeout_ms) {
                return usage("--interval-ms is at most 10000 and --timeout-ms 1 to 10000");
            }
            rtt(SocketAddr::new(to, port), count, Duration::from_millis(interval_ms), Duration::from_millis(timeout_ms))
        }
        Cmd::Craft { to, from, kind, tag, port, count } => {
            if tag.is_empty() || tag.len() > 32 || tag.contains(char::is_whitespace) {
                return usage("--tag must be 1 to 32 characters without spaces");
            }
            if !(1..=1000).contains(&count) {
                return usage("--count must be 1 to 1000");
            }
            craft(&to, from, kind, &tag, port, count)
        }
        Cmd::Gre { from, to, key, count, pps } => {
            if !(1..=1_000_000).contains(&count) || pps == Some(0) {
                return usage("--count must be 1 to 1000000 and --pps at least 1");
            }
            gre(from, to, key, count, pps)
        }
        Cmd::Tunnel { key, local, remote, tun, address, history, reset_ms, stats, lifetime, mtu } => {
            let config = match tunnel::Config::new(key, local, &remote, &tun, &address, history, reset_ms, mtu) {
                Ok(c) => c,
                Err(m) => return usage(&m),
            };
            seconds("--lifetime", lifetime).and_then(|l| tunnel::run(&config, stats.as_deref(), l))
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

/// `vinet-traffic tunnel`: the I/O of an ON's endpoint with redundant paths.
/// Everything that decides about a packet is `vinet_overlay::endpoint`'s.
mod tunnel {
    use std::io::{Read, Write};
    use std::net::Ipv4Addr;
    use std::os::fd::{AsFd, AsRawFd};
    use std::path::Path;
    use std::time::{Duration, Instant};

    use socket2::{Domain, Protocol, Socket, Type};
    use vinet_overlay::endpoint::{Egress, Ingress, IoCounters, Stats};
    use vinet_overlay::frer::RecoveryConfig;
    use vinet_overlay::FlowId;

    use super::{io, Failure};

    /// Packets taken from each side per turn of the loop, so that neither
    /// direction starves the other.
    const BURST: usize = 64;
    /// How long the loop waits for a packet before it checks the clock.
    const POLL_MS: i32 = 100;

    /// A checked command line.
    pub(super) struct Config {
        key: u32,
        local: [u8; 4],
        remotes: Vec<[u8; 4]>,
        tun: String,
        address: String,
        recovery: RecoveryConfig,
        mtu: u32,
    }

    impl Config {
        #[allow(clippy::too_many_arguments)]
        pub(super) fn new(
            key: u32, local: Ipv4Addr, remotes: &[Ipv4Addr], tun: &str, address: &str, history: u32, reset_ms: u64, mtu: u32,
        ) -> Result<Config, String> {
            if tun.is_empty() || tun.len() > 15 || !tun.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(format!("--tun must be 1 to 15 letters, digits, '-' or '_', not {tun:?}"));
            }
            let ok_address =
                address.split_once('/').is_some_and(|(a, n)| a.parse::<Ipv4Addr>().is_ok() && n.parse::<u8>().is_ok_and(|n| n <= 32));
            if !ok_address {
                return Err(format!("--address must be A.B.C.D/NN, not {address:?}"));
            }
            if !(2..=65_536).contains(&history) {
                return Err("--history must be 2 to 65536".into());
            }
            if !(1..=3_600_000).contains(&reset_ms) {
                return Err("--reset-ms must be 1 to 3600000".into());
            }
            if !(576..=65_000).contains(&mtu) {
                return Err("--mtu must be 576 to 65000".into());
            }
            let recovery = RecoveryConfig::new(history, reset_ms * 1_000_000).map_err(|e| e.to_string())?;
            let remotes: Vec<[u8; 4]> = remotes.iter().map(|r| r.octets()).collect();
            // The ingress's own checks (1 to 8 remotes, no repeats), at the command line.
            Ingress::new(FlowId(key), local.octets(), &remotes, 0).map_err(|e| format!("--remote: {e}"))?;
            Ok(Config { key, local: local.octets(), remotes, tun: tun.into(), address: address.into(), recovery, mtu })
        }
    }

    pub(super) fn run(c: &Config, stats_file: Option<&Path>, lifetime: Duration) -> Result<(), Failure> {
        let mut ingress = Ingress::new(FlowId(c.key), c.local, &c.remotes, 0).map_err(io("--remote"))?;
        let mut egress = Egress::new(FlowId(c.key), c.recovery);
        let mut counts = IoCounters::default();
        let mut tun = sys::open_tun(&c.tun).map_err(io(format!("TUN device {} (needs CAP_NET_ADMIN)", c.tun)))?;
        configure(c)?;
        let sender = vinet_router::live::rawsock::RawSender::open().map_err(io("raw IPv4 socket (needs CAP_NET_RAW)"))?;
        let receiver = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(vinet_overlay::gre::IPPROTO_GRE))))
            .map_err(io("raw GRE socket (needs CAP_NET_RAW)"))?;
        receiver.set_nonblocking(true).map_err(io("raw GRE socket"))?;
        // Room for bursts of both paths' copies while this process is not scheduled.
        sys::force_receive_buffer(receiver.as_raw_fd(), 8 << 20)
            .or_else(|_| receiver.set_recv_buffer_size(8 << 20))
            .map_err(io("raw GRE socket"))?;
        sys::on_signals();
        // Stdin is watched only if it is a pipe (a parent that holds its end).
        let stdin = std::io::stdin();
        let stdin_pipe =
            stdin.as_fd().try_clone_to_owned().ok().map(std::fs::File::from).and_then(|f| f.metadata().ok()).is_some_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_fifo()
            });
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "tunnel-ready").and_then(|()| out.flush()).map_err(io("stdout"))?;
        }
        let t0 = Instant::now();
        let mut last_stats = t0;
        let mut inner = vec![0u8; 65_536];
        let mut outer = vec![0u8; 65_536];
        let mut fds = vec![(tun.as_raw_fd(), false), (receiver.as_raw_fd(), false)];
        if stdin_pipe {
            fds.push((0, false));
        }
        while !sys::stopped() && t0.elapsed() < lifetime {
            sys::poll(&mut fds, POLL_MS).map_err(io("poll"))?;
            // Host -> wire: each packet read from the TUN, once per remote.
            for _ in 0..BURST {
                let n = match tun.read(&mut inner) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::Io(format!("reading TUN {}: {e}", c.tun))),
                };
                for (_, copy) in ingress.encapsulate(&inner[..n]) {
                    match sender.send(copy) {
                        Ok(()) => counts.sent_copies += 1,
                        Err(_) => counts.send_errors += 1,
                    }
                }
            }
            // Wire -> host: the first copy of each number.
            for _ in 0..BURST {
                let n = match (&receiver).read(&mut outer) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::Io(format!("raw GRE socket: {e}"))),
                };
                let now = t0.elapsed().as_nanos() as u64;
                if let Ok(packet) = egress.receive(&outer[..n], now) {
                    // A packet the host's stack refuses is not retried.
                    if tun.write(packet).is_ok() {
                        counts.tun_written += 1;
                    }
                }
            }
            egress.tick(t0.elapsed().as_nanos() as u64);
            if stdin_pipe && fds[2].1 && stdin_closed() {
                break;
            }
            if let Some(f) = stats_file {
                if last_stats.elapsed() >= Duration::from_secs(1) {
                    last_stats = Instant::now();
                    write_stats(f, &Stats::collect(&ingress, &egress, &counts))?;
                }
            }
        }
        let stats = Stats::collect(&ingress, &egress, &counts);
        if let Some(f) = stats_file {
            write_stats(f, &stats)?;
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "tunnel-stats {}", stats.json()).and_then(|()| out.flush()).map_err(io("stdout"))
    }

    /// The TUN device's address, MTU and state, with `ip`; IPv6 off on it
    /// (an ON carries IPv4, and the kernel's IPv6 chatter would be refused).
    fn configure(c: &Config) -> Result<(), Failure> {
        // Best effort: a kernel without IPv6 has no such file.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", c.tun), "1");
        let mtu = c.mtu.to_string();
        for args in [vec!["addr", "add", c.address.as_str(), "dev", &c.tun], vec!["link", "set", "dev", &c.tun, "mtu", &mtu, "up"]] {
            let o = std::process::Command::new("ip").args(&args).stdin(std::process::Stdio::null()).output().map_err(io("ip"))?;
            if !o.status.success() {
                return Err(Failure::Io(format!("`ip {}`: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())));
            }
        }
        Ok(())
    }

    /// Whether stdin, reported ready, is at its end (its data is discarded).
    fn stdin_closed() -> bool {
        let mut buf = [0u8; 512];
        !matches!(std::io::stdin().lock().read(&mut buf), Ok(n) if n > 0)
    }

    /// Writes the stats to `file` whole: to a temporary file, then renamed.
    fn write_stats(file: &Path, stats: &Stats) -> Result<(), Failure> {
        let mut tmp = file.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, format!("{}\n", stats.json())).and_then(|()| std::fs::rename(&tmp, file)).map_err(io(file.display()))
    }

    #[cfg(test)]
    mod tests {
        use super::Config;
        use std::net::Ipv4Addr;

        const L: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 1);
        const R1: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 2);
        const R2: Ipv4Addr = Ipv4Addr::new(10, 9, 2, 2);

        fn refused(remotes: &[Ipv4Addr], tun: &str, address: &str, history: u32, reset_ms: u64, mtu: u32) -> String {
            match Config::new(7, L, remotes, tun, address, history, reset_ms, mtu) {
                Ok(_) => panic!("accepted {remotes:?} {tun} {address} {history} {reset_ms} {mtu}"),
                Err(e) => e,
            }
        }

        #[test]
        fn the_command_line_is_checked() {
            assert!(Config::new(7, L, &[R1, R2], "on0", "172.16.0.1/30", 1024, 2000, 1400).is_ok());
            assert!(Config::new(7, L, &[R1], "fifteen-chars15", "172.16.0.1/32", 2, 1, 576).is_ok());
            assert!(refused(&[R1], "a-name-too-long0", "172.16.0.1/30", 1024, 2000, 1400).contains("--tun"));
            assert!(refused(&[R1], "on 0", "172.16.0.1/30", 1024, 2000, 1400).contains("--tun"));
            assert!(refused(&[R1], "", "172.16.0.1/30", 1024, 2000, 1400).contains("--tun"));
            for bad in ["172.16.0.1", "172.16.0.1/33", "172.16.0/30", "x/1"] {
                assert!(refused(&[R1], "on0", bad, 1024, 2000, 1400).contains("--address"), "{bad}");
            }
            assert!(refused(&[R1], "on0", "172.16.0.1/30", 1, 2000, 1400).contains("--history"));
            assert!(refused(&[R1], "on0", "172.16.0.1/30", 1024, 0, 1400).contains("--reset-ms"));
            assert!(refused(&[R1], "on0", "172.16.0.1/30", 1024, 2000, 100).contains("--mtu"));
            assert_eq!(refused(&[R1, R2, R1], "on0", "172.16.0.1/30", 1024, 2000, 1400), "--remote: remote 10.9.1.2 given twice");
            let nine: Vec<Ipv4Addr> = (1..=9).map(|k| Ipv4Addr::new(10, 9, k, 2)).collect();
            assert!(refused(&nine, "on0", "172.16.0.1/30", 1024, 2000, 1400).contains("at most 8"));
        }
    }

    /// The system calls std does not wrap: the TUN device's ioctl, poll, a
    /// signal handler, SO_RCVBUFFORCE.
    #[allow(unsafe_code)]
    mod sys {
        use std::fs::File;
        use std::os::fd::{AsRawFd, RawFd};
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicBool, Ordering};

        /// `_IOW('T', 202, int)`, from `<linux/if_tun.h>`.
        const TUNSETIFF: u64 = 0x4004_54ca;
        const IFF_TUN: i16 = 0x0001;
        const IFF_NO_PI: i16 = 0x1000;

        /// `struct ifreq` as TUNSETIFF reads it: the name, then the flags in
        /// the union (40 bytes on 64-bit Linux, 32 on 32-bit; the kernel
        /// copies `sizeof(struct ifreq)`, so the larger is allocated).
        #[repr(C)]
        struct IfReq {
            name: [u8; 16],
            flags: i16,
            _pad: [u8; 22],
        }

        /// Opens `/dev/net/tun` (non-blocking) and attaches a new TUN device
        /// `name` (IFF_TUN | IFF_NO_PI: bare IP packets). The device goes when
        /// the file is closed.
        pub(super) fn open_tun(name: &str) -> std::io::Result<File> {
            let file =
                std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open("/dev/net/tun")?;
            let mut req = IfReq { name: [0; 16], flags: IFF_TUN | IFF_NO_PI, _pad: [0; 22] };
            // The caller checked 1 to 15 bytes: the name stays NUL-terminated.
            req.name[..name.len()].copy_from_slice(name.as_bytes());
            // SAFETY: `req` is a live, properly sized `struct ifreq` for the
            // call's duration, and the fd is open.
            let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &raw mut req) };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(file)
        }

        /// Waits up to `ms` for any of `fds` to be readable (or hung up);
        /// sets each one's flag. An interrupting signal is a timeout.
        pub(super) fn poll(fds: &mut [(RawFd, bool)], ms: i32) -> std::io::Result<()> {
            let mut p = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 4];
            assert!(fds.len() <= p.len());
            for (q, (fd, _)) in p.iter_mut().zip(fds.iter()) {
                *q = libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 };
            }
            // SAFETY: `p` holds `fds.len()` initialised pollfd structs.
            let r = unsafe { libc::poll(p.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            for (q, (_, ready)) in p.iter().zip(fds.iter_mut()) {
                *ready = r > 0 && q.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
            }
            Ok(())
        }

        /// Set by SIGTERM and SIGINT.
        static STOPPED: AtomicBool = AtomicBool::new(false);

        extern "C" fn on_signal(_: libc::c_int) {
            // Async-signal-safe: one atomic store.
            STOPPED.store(true, Ordering::Relaxed);
        }

        /// Whether SIGTERM or SIGINT has come.
        pub(super) fn stopped() -> bool {
            STOPPED.load(Ordering::Relaxed)
        }

        /// SIGTERM and SIGINT set the flag of [`stopped`] (and interrupt `poll`).
        pub(super) fn on_signals() {
            for sig in [libc::SIGTERM, libc::SIGINT] {
                // SAFETY: the handler only touches an atomic.
                unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
            }
        }

        /// SO_RCVBUFFORCE: a receive buffer above `rmem_max` (needs CAP_NET_ADMIN).
        pub(super) fn force_receive_buffer(fd: RawFd, bytes: i32) -> std::io::Result<()> {
            // SAFETY: a pointer to a live int and its size.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const bytes).cast(),
                    std::mem::size_of::<i32>() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

/// `vinet-traffic gre`: an ON's tunnelled datagrams, built by hand.
fn gre(from: std::net::Ipv4Addr, to: std::net::Ipv4Addr, key: u32, count: u64, pps: Option<u64>) -> Result<(), Failure> {
    fn checksum(h: &[u8]) -> [u8; 2] {
        let mut acc: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        (!(acc as u16)).to_be_bytes()
    }
    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, body: &[u8]) -> Vec<u8> {
        let total = (20 + body.len()) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c);
        h.extend_from_slice(body);
        h
    }
    // The inner packet: UDP 192.168.1.1 -> 192.168.1.2 port 6000, 64 bytes of payload.
    let mut udp = vec![0x17, 0x70, 0x17, 0x70, 0, 72, 0, 0];
    udp.extend_from_slice(&[0x5a; 64]);
    let inner = ipv4([192, 168, 1, 1], [192, 168, 1, 2], 17, &udp);
    // GRE: K bit, version 0, protocol IPv4, the key.
    let mut gre = vec![0x20, 0x00, 0x08, 0x00];
    gre.extend_from_slice(&key.to_be_bytes());
    gre.extend_from_slice(&inner);
    let packet = ipv4(from.octets(), to.octets(), 47, &gre);
    let raw =
        vinet_router::live::rawsock::RawSender::open().map_err(|e| Failure::Io(format!("raw IPv4 socket (needs CAP_NET_RAW): {e}")))?;
    let t0 = Instant::now();
    let mut sent = 0u64;
    for i in 0..count {
        if let Some(pps) = pps {
            let due = Duration::from_secs_f64(i as f64 / pps as f64);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        // A full socket buffer: wait and retry (bounded), so that COUNT are sent.
        for _ in 0..1_000 {
            if raw.send(&packet).is_ok() {
                sent += 1;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    println!("gre-sent {sent} of key {key} from {from} to {to} in {:.3} s", t0.elapsed().as_secs_f64());
    Ok(())
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

/// Sockets on `port` of every address of both families: an IPv4 one, and an
/// IPv6-only one beside it where the host has IPv6 (so that a peer is
/// written as its family writes it, `10.0.1.2` or `fd00:1::2`, never as
/// `::ffff:10.0.1.2`). `stream`: TCP, listening; else UDP.
fn bind_both(port: u16, stream: bool) -> Result<Vec<socket2::Socket>, Failure> {
    use socket2::{Domain, Socket, Type};
    let what = |v: &str| format!("{} port {port} ({v})", if stream { "TCP" } else { "UDP" });
    let ty = if stream { Type::STREAM } else { Type::DGRAM };
    let mut out = vec![];
    for (domain, at) in [(Domain::IPV4, "0.0.0.0"), (Domain::IPV6, "::")] {
        let s = match Socket::new(domain, ty, None) {
            Ok(s) => s,
            // A kernel or namespace without IPv6: IPv4 alone.
            Err(e) if domain == Domain::IPV6 && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => continue,
            Err(e) => return Err(Failure::Io(format!("{}: {e}", what(at)))),
        };
        if domain == Domain::IPV6 {
            s.set_only_v6(true).map_err(io(what(at)))?;
        }
        if stream {
            s.set_reuse_address(true).map_err(io(what(at)))?;
        }
        let addr: SocketAddr = SocketAddr::new(at.parse().expect("an address"), port);
        match s.bind(&addr.into()) {
            Ok(()) => {}
            // IPv6 present but with no address at all (disabled on every interface).
            Err(e) if domain == Domain::IPV6 && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => continue,
            Err(e) => return Err(Failure::Io(format!("{}: {e}", what(at)))),
        }
        if stream {
            s.listen(128).map_err(io(what(at)))?;
        }
        out.push(s);
    }
    Ok(out)
}

fn sink(udp: u16, tcp: u16, out: &std::path::Path, lifetime: Duration, max: u64) -> Result<(), Failure> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(out).map_err(io(out.display()))?;
    let file = Arc::new(Mutex::new(file));
    let udps: Vec<UdpSocket> = bind_both(udp, false)?.into_iter().map(UdpSocket::from).collect();
    let tcps: Vec<TcpListener> = bind_both(tcp, true)?.into_iter().map(TcpListener::from).collect();
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
    for t in tcps {
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
    for u in &udps {
        u.set_read_timeout(Some(Duration::from_millis(100))).map_err(io("UDP socket"))?;
    }
    ready()?;
    // One receiving thread a family; the first error ends the sink.
    let t0 = Instant::now();
    let (failed, failure) = std::sync::mpsc::channel::<Failure>();
    let done = move |lines: &AtomicU64| t0.elapsed() >= lifetime || lines.load(Ordering::SeqCst) >= max;
    let receivers: Vec<_> = udps
        .into_iter()
        .map(|u| {
            let (record, lines, failed) = (record.clone(), Arc::clone(&lines), failed.clone());
            let out = out.display().to_string();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !done(&lines) {
                    match u.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if let Err(e) = record(format!("udp {} {}", from.ip(), String::from_utf8_lossy(&buf[..n]).trim())) {
                                let _ = failed.send(Failure::Io(format!("{out}: {e}")));
                                return;
                            }
                            lines.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                        Err(e) => {
                            let _ = failed.send(Failure::Io(format!("UDP port {udp}: {e}")));
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    drop(failed);
    // Every receiver ends by itself (at the lifetime or the line limit, or
    // on an error): the channel closes when the last one has.
    let result = match failure.recv() {
        Ok(f) => Err(f),
        Err(_) => Ok(()),
    };
    if result.is_ok() {
        for r in receivers {
            let _ = r.join();
        }
    }
    result
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

fn flood(to: SocketAddr, lifetime: Duration, size: usize, max: u64, pps: Option<u64>) -> Result<(), Failure> {
    let u = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).map_err(io("UDP socket"))?;
    let buf = vec![0x5au8; size];
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut n = 0u64;
    // Sends that fail (a full socket buffer, an unreachable destination) are
    // not counted and not retried: a flood measures what gets through.
    // Paced, it sends in bursts of at most 64 and sleeps until the schedule
    // (N datagrams by N / pps seconds) allows the next.
    while t0.elapsed() < lifetime && n < max {
        let burst = match pps {
            None => 64,
            Some(p) => {
                let due = (t0.elapsed().as_secs_f64() * p as f64) as u64 + 1;
                if due <= n {
                    std::thread::sleep(Duration::from_secs_f64(((n + 1) as f64 / p as f64 - t0.elapsed().as_secs_f64()).clamp(0.0, 0.01)));
                    continue;
                }
                (due - n).min(64)
            }
        };
        for _ in 0..burst.min(max - n) {
            if u.send_to(&buf, to).is_ok() {
                n += 1;
            }
        }
    }
    let s = t0.elapsed().as_secs_f64();
    println!("sent {n} in {s:.3} s: rate {:.0} cpu_s {:.2}", n as f64 / s, cpu_seconds() - cpu0);
    Ok(())
}

/// This process's CPU time so far (user + system, all threads), in seconds,
/// from `/proc/self/stat` (fields 14 and 15, in clock ticks of 1/100 s:
/// Linux's USER_HZ); 0 where there is no such file.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}

fn count(port: u16, lifetime: Duration, wait: Duration, silence: Duration, max: u64) -> Result<(), Failure> {
    let u = UdpSocket::bind(("0.0.0.0", port)).map_err(io(format!("UDP port {port}")))?;
    u.set_read_timeout(Some(wait)).map_err(io("UDP socket"))?;
    ready()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut buf = [0u8; 2048];
    let cpu0 = cpu_seconds();
    if u.recv_from(&mut buf).is_err() {
        writeln!(out, "received 0 in 0 s: rate 0 cpu_s 0").map_err(io("stdout"))?;
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
    writeln!(out, "received {n} in {s:.3} s: rate {:.0} cpu_s {:.2}", n as f64 / s, cpu_seconds() - cpu0).map_err(io("stdout"))?;
    Ok(())
}

fn echo(port: u16, lifetime: Duration, max: u64) -> Result<(), Failure> {
    let u = UdpSocket::bind(("0.0.0.0", port)).map_err(io(format!("UDP port {port}")))?;
    u.set_read_timeout(Some(Duration::from_millis(100))).map_err(io("UDP socket"))?;
    ready()?;
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut buf = [0u8; 2048];
    while t0.elapsed() < lifetime && n < max {
        match u.recv_from(&mut buf) {
            Ok((len, from)) => {
                // A reply that cannot be sent is a lost probe for `rtt`.
                if u.send_to(&buf[..len], from).is_ok() {
                    n += 1;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(Failure::Io(format!("UDP port {port}: {e}"))),
        }
    }
    println!("echoed {n}");
    Ok(())
}

/// The magic that starts an `rtt` probe, then the probe's sequence number.
const PROBE: &[u8; 4] = b"VRTT";

fn rtt(to: SocketAddr, count: u32, interval: Duration, timeout: Duration) -> Result<(), Failure> {
    let u = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).map_err(io("UDP socket"))?;
    u.connect(to).map_err(io(format!("UDP to {to}")))?;
    let mut samples: Vec<u64> = Vec::with_capacity(count as usize);
    let mut lost = 0u32;
    let mut buf = [0u8; 64];
    for seq in 0..count {
        let mut probe = PROBE.to_vec();
        probe.extend_from_slice(&seq.to_be_bytes());
        let sent = Instant::now();
        if u.send(&probe).is_err() {
            lost += 1;
            continue;
        }
        // Wait for this probe's echo; a late echo of an earlier probe (whose
        // wait had ended) is skipped. Bounded by `timeout` in all.
        let answered = loop {
            let left = timeout.saturating_sub(sent.elapsed());
            if left.is_zero() {
                break false;
            }
            u.set_read_timeout(Some(left)).map_err(io("UDP socket"))?;
            match u.recv(&mut buf) {
                Ok(n) if n == 8 && buf[..4] == *PROBE && buf[4..8] == seq.to_be_bytes() => break true,
                Ok(_) => {}
                // Refused (an ICMP port unreachable) or timed out: lost.
                Err(_) => break false,
            }
        };
        if answered {
            samples.push(sent.elapsed().as_micros() as u64);
        } else {
            lost += 1;
        }
        std::thread::sleep(interval);
    }
    samples.sort_unstable();
    let at = |q: f64| samples.get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "rtt n={count} lost={lost} median_us={} p99_us={} min_us={} max_us={}",
        at(0.5),
        at(0.99),
        samples.first().copied().unwrap_or(0),
        samples.last().copied().unwrap_or(0)
    );
    Ok(())
}

fn craft(to: &[std::net::IpAddr], from: Option<std::net::Ipv4Addr>, kind: Kind, tag: &str, port: u16, count: u32) -> Result<(), Failure> {
    let mut sent = 0u64;
    if kind == Kind::Udp6 {
        let u = UdpSocket::bind("[::]:0").map_err(io("IPv6 UDP socket"))?;
        for &dst in to {
            if !dst.is_ipv6() {
                return Err(Failure::Usage(format!("--kind udp6 needs IPv6 destinations, not {dst}")));
            }
            for i in 0..count {
                u.send_to(format!("{tag} udp6 {i}").as_bytes(), (dst, port)).map_err(io(format!("UDP to [{dst}]:{port}")))?;
                sent += 1;
            }
        }
        println!("sent {sent} packets");
        return Ok(());
    }
    let Some(src) = from else {
        return Err(Failure::Usage(format!(
            "--kind {} builds the IPv4 header itself: give --from (the sender's own address)",
            kind.name()
        )));
    };
    let raw = vinet_router::live::rawsock::RawSender::open().map_err(io("raw IPv4 socket (needs CAP_NET_RAW)"))?;
    for &dst in to {
        let std::net::IpAddr::V4(dst) = dst else {
            return Err(Failure::Usage(format!("--kind {} is IPv4: {dst} is not an IPv4 address", kind.name())));
        };
        for i in 0..count {
            // A distinct IPv4 id per datagram, so fragments of two datagrams
            // are never taken for one.
            let id = (std::process::id() as u16).wrapping_mul(31).wrapping_add(i as u16) | 1;
            for p in packets::build(kind, src, dst, port, id, tag) {
                raw.send(&p).map_err(io(format!("raw send to {dst}")))?;
                sent += 1;
            }
        }
    }
    println!("sent {sent} packets");
    Ok(())
}

/// Hand-built IPv4 packets. The kernel's raw socket (`IPPROTO_RAW`) sends
/// the header as built except that it always writes the total length (the
/// buffer's length) and the header checksum, so a "truncated" packet is a
/// short buffer with a header that is valid for it.
mod packets {
    use std::net::Ipv4Addr;

    use super::Kind;

    /// The source port of every crafted UDP and TCP packet.
    const SPORT: u16 = 40_000;
    /// The IP payload bytes of the fragmented datagram (a multiple of 8
    /// plus a tail, split 1480 + 1480 + 40).
    const FRAGMENTED: usize = 3000;

    /// The ones' complement sum of 16-bit words.
    fn sum(mut acc: u32, bytes: &[u8]) -> u32 {
        for c in bytes.chunks(2) {
            acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        acc
    }

    fn fold(mut acc: u32) -> u16 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    /// An IPv4 header (with `options`, a multiple of 4 bytes) for a packet
    /// of `total` bytes.
    fn header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, total: usize, id: u16, frag: u16, options: &[u8]) -> Vec<u8> {
        assert!(options.len() & 3 == 0 && options.len() <= 40, "options are whole 32-bit words, at most 40 bytes");
        let ihl = (20 + options.len()) / 4;
        let mut h = vec![0x40 | ihl as u8, 0];
        h.extend_from_slice(&(total as u16).to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h.extend_from_slice(options);
        let c = fold(sum(0, &h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    /// A UDP datagram (header and payload) with its checksum.
    fn udp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = 8 + payload.len();
        let mut d = Vec::with_capacity(len);
        d.extend_from_slice(&SPORT.to_be_bytes());
        d.extend_from_slice(&dport.to_be_bytes());
        d.extend_from_slice(&(len as u16).to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(payload);
        let mut pseudo = Vec::with_capacity(12);
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(len as u16).to_be_bytes());
        let c = match fold(sum(sum(0, &pseudo), &d)) {
            0 => 0xffff,
            c => c,
        };
        d[6..8].copy_from_slice(&c.to_be_bytes());
        d
    }

    /// The packets of one `kind`, in sending order.
    pub(super) fn build(kind: Kind, src: Ipv4Addr, dst: Ipv4Addr, dport: u16, id: u16, tag: &str) -> Vec<Vec<u8>> {
        let whole = |proto: u8, body: &[u8], options: &[u8]| {
            let mut p = header(src, dst, proto, 20 + options.len() + body.len(), id, 0, options);
            p.extend_from_slice(body);
            p
        };
        let payload = |what: &str| format!("{tag} {what}").into_bytes();
        match kind {
            Kind::Udp => vec![whole(17, &udp(src, dst, dport, &payload("udp")), &[])],
            Kind::TruncatedUdp => vec![whole(17, &udp(src, dst, dport, &payload("truncated-udp"))[..4], &[])],
            Kind::TruncatedTcp => {
                let mut t = Vec::new();
                t.extend_from_slice(&SPORT.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                vec![whole(6, &t, &[])]
            }
            Kind::Options => vec![whole(17, &udp(src, dst, dport, &payload("options")), &[1, 1, 1, 0])],
            Kind::UnknownProto => vec![whole(253, &payload("unknown-proto"), &[])],
            Kind::Fragments => {
                let mut body = payload("fragments ");
                body.resize(FRAGMENTED - 8, b'f');
                let d = udp(src, dst, dport, &body);
                assert_eq!(d.len(), FRAGMENTED);
                let mut out = vec![];
                let mut off = 0;
                while off < d.len() {
                    let end = (off + 1480).min(d.len());
                    let more = if end < d.len() { 0x2000 } else { 0 };
                    let mut p = header(src, dst, 17, 20 + end - off, id, more | (off / 8) as u16, &[]);
                    p.extend_from_slice(&d[off..end]);
                    out.push(p);
                    off = end;
                }
                out
            }
            Kind::Udp6 => unreachable!("udp6 is sent from an ordinary socket"),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn parse(p: &[u8]) -> etherless::Ipv4<'_> {
            etherless::Ipv4(p)
        }

        /// A tiny reader for the tests (the binary does not depend on a
        /// packet parser).
        mod etherless {
            pub struct Ipv4<'a>(pub &'a [u8]);
            impl Ipv4<'_> {
                pub fn ihl(&self) -> usize {
                    usize::from(self.0[0] & 15) * 4
                }
                pub fn total(&self) -> usize {
                    usize::from(u16::from_be_bytes([self.0[2], self.0[3]]))
                }
                pub fn frag(&self) -> (bool, usize) {
                    let f = u16::from_be_bytes([self.0[6], self.0[7]]);
                    (f & 0x2000 != 0, usize::from(f & 0x1fff) * 8)
                }
            }
        }

        const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
        const C: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);

        #[test]
        fn headers_are_valid_and_lengths_are_as_documented() {
            for kind in [Kind::Udp, Kind::TruncatedUdp, Kind::TruncatedTcp, Kind::Options, Kind::UnknownProto, Kind::Fragments] {
                for p in build(kind, A, C, 5000, 7, "T1") {
                    let ip = parse(&p);
                    assert_eq!(ip.total(), p.len(), "{kind:?}");
                    assert_eq!(fold(sum(0, &p[..ip.ihl()])), 0, "{kind:?}: header checksum");
                }
            }
            assert_eq!(build(Kind::TruncatedUdp, A, C, 5000, 7, "T1")[0].len(), 24);
            assert_eq!(build(Kind::TruncatedTcp, A, C, 5000, 7, "T1")[0].len(), 28);
            let o = &build(Kind::Options, A, C, 5000, 7, "T1")[0];
            assert_eq!((parse(o).ihl(), &o[20..24]), (24, &[1u8, 1, 1, 0][..]));
            assert_eq!(build(Kind::UnknownProto, A, C, 5000, 7, "T1")[0][9], 253);
        }

        #[test]
        fn fragments_reassemble_to_a_checksummed_datagram() {
            let f = build(Kind::Fragments, A, C, 5000, 7, "T1");
            assert_eq!(f.len(), 3);
            let mut d = vec![];
            for (i, p) in f.iter().enumerate() {
                let (more, off) = parse(p).frag();
                assert_eq!((more, off), (i < 2, d.len()));
                d.extend_from_slice(&p[20..]);
            }
            assert_eq!(d.len(), FRAGMENTED);
            assert_eq!(&d[8..11], b"T1 ");
            // The UDP checksum over the pseudo-header and the whole datagram.
            let mut pseudo = A.octets().to_vec();
            pseudo.extend_from_slice(&C.octets());
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(FRAGMENTED as u16).to_be_bytes());
            assert_eq!(fold(sum(sum(0, &pseudo), &d)), 0);
        }
    }
}
