//! A transfer inside an ON (`on-transfer`): one TCP connection carrying a
//! known pattern, paced, and beside it a paced stream of numbered UDP
//! datagrams, between the TUN addresses of the ON's two access hosts. The
//! receiver checks every byte and counts every number (so a loss, a
//! duplicate or a reset is seen), per second. Run by the emulator inside
//! the hosts' namespaces (`vinet-emu transfer send|recv`); each prints one
//! line `transfer {JSON}` at its end.

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The byte at offset `i` of the TCP stream.
pub fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// The first bytes of every UDP datagram of the stream.
const MAGIC: &[u8; 4] = b"VEMU";
/// The stream's last datagram (sent a few times).
const END: &[u8; 4] = b"VEND";
/// The most datagrams a stream counts.
const MAX_DATAGRAMS: u64 = 1_000_000;

/// What the sender did.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Sent {
    /// TCP bytes written.
    pub tcp_bytes: u64,
    /// Seconds from connecting to the last byte written and the close.
    pub tcp_secs: f64,
    /// The error that ended the connection, if any.
    pub tcp_error: Option<String>,
    /// Datagrams sent.
    pub udp_sent: u64,
}

/// What the receiver saw.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Received {
    /// TCP bytes read, until the sender's close.
    pub tcp_bytes: u64,
    /// Whether every byte was the pattern's.
    pub tcp_intact: bool,
    /// Whether the connection ended by the sender's close (not an error).
    pub tcp_closed_cleanly: bool,
    /// The error, if one ended it.
    pub tcp_error: Option<String>,
    /// Seconds from the connection to its end.
    pub tcp_secs: f64,
    /// Distinct datagram numbers received.
    pub udp_unique: u64,
    /// Datagrams whose number had come already.
    pub udp_duplicates: u64,
    /// The highest number + 1 (the count the sender says it sent, from the end marker, if it came).
    pub udp_expected: u64,
    /// Numbers below `udp_expected` never received.
    pub udp_missing: u64,
    /// TCP bytes received in each second (from the receiver's start).
    pub tcp_per_second: Vec<u64>,
    /// Datagrams received in each second.
    pub udp_per_second: Vec<u64>,
}

fn bump(v: &mut Vec<u64>, t0: Instant, by: u64) {
    let s = t0.elapsed().as_secs() as usize;
    if s < 3_600 {
        if v.len() <= s {
            v.resize(s + 1, 0);
        }
        v[s] += by;
    }
}

/// `transfer send`: connect, write `bytes` of the pattern at `rate` bits a
/// second, send `pps` numbered datagrams a second meanwhile, close; then
/// the end marker.
pub fn send(tcp: SocketAddrV4, udp: SocketAddrV4, bytes: u64, rate: u64, pps: f64) -> Sent {
    let mut out = Sent::default();
    let done = Arc::new(AtomicBool::new(false));
    let sock = UdpSocket::bind("0.0.0.0:0").ok();
    let udp_thread = sock.map(|s| {
        let done = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) && n < MAX_DATAGRAMS {
                let due = Duration::from_secs_f64(n as f64 / pps.max(0.1));
                if let Some(w) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(w.min(Duration::from_millis(50)));
                    continue;
                }
                let mut d = MAGIC.to_vec();
                d.extend_from_slice(&n.to_be_bytes());
                d.resize(200, 0);
                let _ = s.send_to(&d, udp);
                n += 1;
            }
            let mut e = END.to_vec();
            e.extend_from_slice(&n.to_be_bytes());
            for _ in 0..5 {
                let _ = s.send_to(&e, udp);
                std::thread::sleep(Duration::from_millis(100));
            }
            n
        })
    });
    // Connect (the tunnels may still be coming up): a bounded number of tries.
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect_timeout(&tcp.into(), Duration::from_secs(1)) {
            stream = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match stream {
        None => out.tcp_error = Some(format!("could not connect to {tcp}")),
        Some(mut s) => {
            let t0 = Instant::now();
            let chunk = 16 * 1024u64;
            let mut buf = vec![0u8; chunk as usize];
            while out.tcp_bytes < bytes {
                let due = Duration::from_secs_f64(out.tcp_bytes as f64 * 8.0 / rate.max(8_000) as f64);
                if let Some(w) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(w);
                }
                let n = chunk.min(bytes - out.tcp_bytes);
                for (k, b) in buf.iter_mut().take(n as usize).enumerate() {
                    *b = pattern(out.tcp_bytes + k as u64);
                }
                if let Err(e) = s.write_all(&buf[..n as usize]) {
                    out.tcp_error = Some(e.to_string());
                    break;
                }
                out.tcp_bytes += n;
            }
            if out.tcp_error.is_none() {
                if let Err(e) = s.shutdown(std::net::Shutdown::Write) {
                    out.tcp_error = Some(e.to_string());
                }
                // Wait for the receiver's close, so that every byte was taken.
                let mut b = [0u8; 1];
                let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                let _ = s.read(&mut b);
            }
            out.tcp_secs = t0.elapsed().as_secs_f64();
        }
    }
    done.store(true, Ordering::SeqCst);
    out.udp_sent = udp_thread.and_then(|h| h.join().ok()).unwrap_or(0);
    out
}

/// `transfer recv`: one TCP connection and the UDP stream, until both have
/// ended (or `seconds`).
pub fn recv(tcp: SocketAddrV4, udp: SocketAddrV4, seconds: f64) -> Result<Received, String> {
    let listener = TcpListener::bind(tcp).map_err(|e| format!("{tcp}: {e}"))?;
    let sock = UdpSocket::bind(udp).map_err(|e| format!("{udp}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    println!("ready");
    let _ = std::io::stdout().flush();
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let shared = Arc::new(Mutex::new(Received { tcp_intact: true, ..Received::default() }));
    let udp_done = Arc::new(AtomicBool::new(false));
    let udp_thread = {
        let (shared, udp_done) = (shared.clone(), udp_done.clone());
        std::thread::spawn(move || {
            let mut seen: Vec<bool> = vec![];
            let mut buf = [0u8; 2048];
            let mut ended_at: Option<Instant> = None;
            while t0.elapsed() < limit && ended_at.is_none_or(|e| e.elapsed() < Duration::from_millis(500)) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                if n < 12 {
                    continue;
                }
                let seq = u64::from_be_bytes(buf[4..12].try_into().expect("8 bytes"));
                let mut r = shared.lock().expect("lock");
                if &buf[..4] == END {
                    r.udp_expected = r.udp_expected.max(seq);
                    ended_at.get_or_insert_with(Instant::now);
                    continue;
                }
                if &buf[..4] != MAGIC || seq >= MAX_DATAGRAMS {
                    continue;
                }
                let i = seq as usize;
                if seen.len() <= i {
                    seen.resize(i + 1, false);
                }
                if seen[i] {
                    r.udp_duplicates += 1;
                } else {
                    seen[i] = true;
                    r.udp_unique += 1;
                }
                r.udp_expected = r.udp_expected.max(seq + 1);
                bump(&mut r.udp_per_second, t0, 1);
            }
            let mut r = shared.lock().expect("lock");
            let expected = r.udp_expected as usize;
            r.udp_missing = (0..expected).filter(|i| !seen.get(*i).copied().unwrap_or(false)).count() as u64;
            udp_done.store(true, Ordering::SeqCst);
        })
    };
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut conn = None;
    while t0.elapsed() < limit && conn.is_none() {
        match listener.accept() {
            Ok((s, _)) => conn = Some(s),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    if let Some(mut s) = conn {
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let started = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if t0.elapsed() >= limit {
                shared.lock().expect("lock").tcp_error = Some("the run's limit came first".into());
                break;
            }
            match s.read(&mut buf) {
                Ok(0) => {
                    shared.lock().expect("lock").tcp_closed_cleanly = true;
                    break;
                }
                Ok(n) => {
                    let mut r = shared.lock().expect("lock");
                    let at = r.tcp_bytes;
                    if buf[..n].iter().enumerate().any(|(k, b)| *b != pattern(at + k as u64)) {
                        r.tcp_intact = false;
                    }
                    r.tcp_bytes += n as u64;
                    bump(&mut r.tcp_per_second, t0, n as u64);
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => {
                    shared.lock().expect("lock").tcp_error = Some(e.to_string());
                    break;
                }
            }
        }
        shared.lock().expect("lock").tcp_secs = started.elapsed().as_secs_f64();
        drop(s);
    } else {
        shared.lock().expect("lock").tcp_error = Some("no connection".into());
    }
    let _ = udp_thread.join();
    let r = shared.lock().expect("lock").clone();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_over_loopback_is_intact_and_counted() {
        let (tcp, udp) = ("127.0.0.1:47311".parse().unwrap(), "127.0.0.1:47312".parse().unwrap());
        let r = std::thread::spawn(move || recv(tcp, udp, 30.0).unwrap());
        std::thread::sleep(Duration::from_millis(200));
        let s = send(tcp, udp, 300_000, 100_000_000, 200.0);
        let r = r.join().unwrap();
        assert_eq!(s.tcp_error, None);
        assert_eq!((r.tcp_bytes, r.tcp_intact, r.tcp_closed_cleanly), (300_000, true, true));
        assert_eq!(r.udp_expected, s.udp_sent, "the end marker says how many were sent");
        assert_eq!(r.udp_unique + r.udp_missing, r.udp_expected);
        assert_eq!(r.udp_duplicates, 0);
        assert_eq!(r.tcp_per_second.iter().sum::<u64>(), 300_000);
    }
}
