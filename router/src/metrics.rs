//! Monitoring: counters and gauges in the Prometheus text exposition format,
//! served over plain HTTP (`GET /metrics`) by a small thread.
//!
//! The admission side counts into [`Metrics`] (a mutex-guarded map: a few
//! updates per request, nothing per packet); the packet path's counters come
//! from its published [`crate::live::Snapshot`] when the page is rendered, so
//! scraping never touches the packet thread.
//!
//! Conventions (Prometheus'): counters end in `_total`; durations are
//! histograms in seconds ([`BUCKETS`]); every label set is bounded (reasons,
//! operations, classes: never a lease, a client or an address), and the known
//! label values are there from the start, at zero.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A metric's help text and type.
struct Family {
    help: &'static str,
    kind: &'static str,
}

/// Upper bounds (seconds) of the duration histograms' buckets, `+Inf` after.
pub const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// One histogram: counts per bucket (the last is `+Inf`), the sum and the count.
#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// Counters, gauges and histograms by name and label set.
#[derive(Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<(&'static str, String), f64>>,
    families: Mutex<BTreeMap<&'static str, Family>>,
    histograms: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Escape a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `{a="x",b="y"}` from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", esc(v))).collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    /// Declare a family.
    pub fn describe(&self, name: &'static str, kind: &'static str, help: &'static str) {
        if let Ok(mut f) = self.families.lock() {
            f.insert(name, Family { help, kind });
        }
    }

    /// Add to a counter.
    pub fn add(&self, name: &'static str, labels: &str, v: f64) {
        if let Ok(mut m) = self.values.lock() {
            *m.entry((name, labels.to_string())).or_default() += v;
        }
    }

    /// Declare a histogram of durations in seconds.
    pub fn describe_histogram(&self, name: &'static str, help: &'static str) {
        self.describe(name, "histogram", help);
        if let Ok(mut h) = self.histograms.lock() {
            h.entry(name).or_default();
        }
    }

    /// Observe a duration (seconds) in a histogram.
    pub fn observe(&self, name: &'static str, secs: f64) {
        if let Ok(mut h) = self.histograms.lock() {
            let h = h.entry(name).or_default();
            let b = BUCKETS.iter().position(|&le| secs <= le).unwrap_or(BUCKETS.len());
            h.counts[b] += 1;
            h.sum += secs;
            h.count += 1;
        }
    }

    /// Count one.
    pub fn inc(&self, name: &'static str, labels: &str) {
        self.add(name, labels, 1.0);
    }

    /// Set a gauge.
    pub fn set(&self, name: &'static str, labels: &str, v: f64) {
        if let Ok(mut m) = self.values.lock() {
            m.insert((name, labels.to_string()), v);
        }
    }

    /// Remove every series of a family (gauges that are recomputed whole).
    pub fn clear(&self, name: &'static str) {
        if let Ok(mut m) = self.values.lock() {
            m.retain(|(n, _), _| *n != name);
        }
    }

    /// A counter's value (tests).
    pub fn get(&self, name: &'static str, labels: &str) -> f64 {
        self.values.lock().ok().and_then(|m| m.get(&(name, labels.to_string())).copied()).unwrap_or(0.0)
    }

    /// The exposition text, with `extra` series appended.
    pub fn render(&self, extra: &[(&'static str, String, f64)]) -> String {
        let mut all: BTreeMap<&'static str, Vec<(String, f64)>> = BTreeMap::new();
        if let Ok(m) = self.values.lock() {
            for ((n, l), v) in m.iter() {
                all.entry(n).or_default().push((l.clone(), *v));
            }
        }
        for (n, l, v) in extra {
            all.entry(n).or_default().push((l.clone(), *v));
        }
        let fams = self.families.lock();
        let mut out = String::new();
        for (n, series) in all {
            if let Ok(f) = &fams {
                if let Some(fam) = f.get(n) {
                    let _ = writeln!(out, "# HELP {n} {}", fam.help);
                    let _ = writeln!(out, "# TYPE {n} {}", fam.kind);
                }
            }
            for (l, v) in series {
                let _ = writeln!(out, "{n}{l} {v}");
            }
        }
        if let Ok(hs) = self.histograms.lock() {
            for (n, h) in hs.iter() {
                if let Ok(f) = &fams {
                    if let Some(fam) = f.get(n) {
                        let _ = writeln!(out, "# HELP {n} {}", fam.help);
                    }
                }
                let _ = writeln!(out, "# TYPE {n} histogram");
                let mut cumulative = 0;
                for (i, c) in h.counts.iter().enumerate() {
                    cumulative += c;
                    let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
                    let _ = writeln!(out, "{n}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                let _ = writeln!(out, "{n}_sum {}", h.sum);
                let _ = writeln!(out, "{n}_count {}", h.count);
            }
        }
        out
    }
}

/// Connections the metrics endpoint serves at once; more are closed at once.
pub const METRICS_CONNECTIONS: usize = 8;

/// Serve `GET /metrics` on `listener` with the page `render` makes, until
/// the process ends. Anything else gets 404. At most
/// [`METRICS_CONNECTIONS`] are served at once, and each request must arrive
/// whole within 5 s, so a scraper that never finishes cannot pile up threads.
pub fn serve(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) -> std::io::Result<()> {
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::Builder::new().name("vinet-metrics".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            if active.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= METRICS_CONNECTIONS {
                active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                continue; // dropped: closed unanswered
            }
            let (render, done) = (Arc::clone(&render), Arc::clone(&active));
            let spawned = std::thread::Builder::new().name("vinet-metrics-conn".into()).spawn(move || {
                answer(&mut s, &*render);
                done.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
            if spawned.is_err() {
                // The closure (and its count) was not run: nothing to undo but the count.
                active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    })?;
    Ok(())
}

fn answer(s: &mut std::net::TcpStream, render: &dyn Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while n < buf.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => return,
            Ok(k) => n += k,
        }
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || buf[..n].windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    let req = String::from_utf8_lossy(&buf[..n]);
    let path = req.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if req.starts_with("GET ") && (path == "/metrics" || path == "/") {
        ("200 OK", render())
    } else {
        ("404 Not Found", "not found\n".to_string())
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets_in_order() {
        let m = Metrics::default();
        m.describe_histogram("vinet_check_duration_seconds", "Seconds a bundle took to check.");
        m.observe("vinet_check_duration_seconds", 0.0002);
        m.observe("vinet_check_duration_seconds", 0.003);
        m.observe("vinet_check_duration_seconds", 7.0);
        let t = m.render(&[]);
        assert!(t.contains("# TYPE vinet_check_duration_seconds histogram\n"), "{t}");
        assert!(t.contains("vinet_check_duration_seconds_bucket{le=\"0.0001\"} 0\n"), "{t}");
        assert!(t.contains("vinet_check_duration_seconds_bucket{le=\"0.00025\"} 1\n"), "{t}");
        assert!(t.contains("vinet_check_duration_seconds_bucket{le=\"0.005\"} 2\n"), "{t}");
        assert!(t.contains("vinet_check_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "{t}");
        assert!(t.contains("vinet_check_duration_seconds_count 3\n"), "{t}");
        let les: Vec<&str> = t.lines().filter(|l| l.contains("_bucket")).collect();
        assert_eq!(les.len(), BUCKETS.len() + 1);
        assert!(les.last().unwrap().contains("+Inf"));
    }

    #[test]
    fn render_and_serve() {
        let m = Arc::new(Metrics::default());
        m.describe("vinet_refusals_total", "counter", "Requests refused, by reason.");
        m.inc("vinet_refusals_total", &labels(&[("reason", "replay")]));
        m.inc("vinet_refusals_total", &labels(&[("reason", "replay")]));
        m.set("vinet_load", "", 1024.0);
        let text = m.render(&[("vinet_capacity", String::new(), 4096.0)]);
        assert!(text.contains("# TYPE vinet_refusals_total counter\nvinet_refusals_total{reason=\"replay\"} 2\n"), "{text}");
        assert!(text.contains("vinet_load 1024\n") && text.contains("vinet_capacity 4096\n"), "{text}");
        assert_eq!(labels(&[("a", "x\"y")]), "{a=\"x\\\"y\"}");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mm = Arc::clone(&m);
        serve(l, Arc::new(move || mm.render(&[]))).unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK") && page.contains("vinet_load 1024"), "{page}");
    }

    /// A scraper that connects and never sends used to hold a thread each, without
    /// limit; now at most METRICS_CONNECTIONS are served, and each request must
    /// arrive within 5 s.
    #[test]
    fn the_endpoint_serves_a_bounded_number_of_connections() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        serve(l, Arc::new(|| "page\n".to_string())).unwrap();
        let idle: Vec<std::net::TcpStream> = (0..METRICS_CONNECTIONS).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        // Each one is counted once the metrics thread accepted it: wait for the
        // next to be refused (closed unanswered), within a hang deadline.
        let t0 = std::time::Instant::now();
        loop {
            let mut extra = std::net::TcpStream::connect(addr).unwrap();
            extra.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
            let mut page = String::new();
            let _ = extra.read_to_string(&mut page);
            if page.is_empty() {
                break; // closed unanswered: the endpoint is full
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "hang: the endpoint never refused a connection over its limit");
        }
        // Silent connections are dropped at their 5 s deadline, and the endpoint serves again.
        drop(idle);
        let t0 = std::time::Instant::now();
        loop {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
            let mut page = String::new();
            let _ = s.read_to_string(&mut page);
            if page.ends_with("page\n") {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "hang: the endpoint did not serve again");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
