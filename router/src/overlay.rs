//! Virtual overlay networks on vinetd (issue 13, `[overlay]`).
//!
//! Two halves, joined by one mutex that the data path takes once a batch:
//!
//! - **The control plane** is the ON manager's participant server,
//!   `vinet_onmgr::router`, hosted here as it is by `vinet-onmgr router`:
//!   prepare, commit, abort and refresh over the signed wire protocol, leases
//!   in the SQLite store (so they survive a restart), and a sweeper that
//!   releases lapsed and unconfirmed ones. It is not duplicated: vinetd starts
//!   it with an observer ([`vinet_onmgr::router::serve_observed`]).
//! - **The data plane** is a [`Partition`] of vinetd's own, a mirror of the
//!   participant's lease table that the observer brings in step after every
//!   change (a prepare sets capacity aside, a commit puts it in force, an
//!   abort or a lapse removes it). The NFQUEUE lane for GRE (`live::overlay`)
//!   serves each packet against it: O(1), no allocation.
//!
//! **Why a mirror.** The participant holds its lock across its store writes
//! (SQLite with `synchronous = FULL`: an fsync a message); a packet must not
//! wait for a disk. The mirror's mutex is held only for bucket arithmetic (by
//! the lane) or for applying a change (by the observer, which allocates, on
//! the control side). The participant's own partition still does admission;
//! the mirror has the same capacity and the same reservations, so it admits
//! whatever the participant admitted.
//!
//! **Clock.** Buckets run on a monotonic clock ([`mono_ns`]): a wall-clock
//! step must neither refill nor starve an ON. Leases expire on the
//! participant's wall clock (Unix nanoseconds), which survives a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use vinet_onmgr::router::{RouterConfig, RouterServer, Stats};
use vinet_overlay::lease::{LeaseConfig, LeaseTable};
use vinet_overlay::monitor::{AlertKind, Event, Monitor, OnProfile, Sample};
use vinet_overlay::partition::{Counters, Packet, Partition, PartitionConfig, Reservation, Resources, Standing, Verdict};
use vinet_overlay::FlowId;

use crate::config::OverlayConfig;

/// Nanoseconds on a monotonic clock, from the first call in the process.
pub fn mono_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The data plane's partition and what it counts beyond it.
#[derive(Debug)]
pub struct DataPlane {
    partition: Mutex<Partition>,
    /// Lease expiry (Unix ns) of each ON, for the metrics page.
    expiry: Mutex<Vec<(FlowId, u64)>>,
    /// GRE packets that do not decode as ON packets (no key, malformed):
    /// outside every ON, served by the unreserved share.
    unclassified: AtomicU64,
    /// The netfilter mark set on the packets an ON's reservation passes
    /// (`[overlay] mark`), for an egress qdisc to give them priority.
    mark: Option<u32>,
}

impl DataPlane {
    /// An empty data plane of this capacity, marking what reservations pass with `mark`.
    pub fn new(config: PartitionConfig, mark: Option<u32>) -> DataPlane {
        DataPlane {
            partition: Mutex::new(Partition::new(config, mono_ns())),
            expiry: Mutex::new(vec![]),
            unclassified: AtomicU64::new(0),
            mark,
        }
    }

    /// The mark for packets a reservation passes, if one is configured.
    pub fn mark(&self) -> Option<u32> {
        self.mark
    }

    /// The partition, for a batch of packets ([`DataPlane::serve`]).
    pub fn lock(&self) -> MutexGuard<'_, Partition> {
        self.partition.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves one IPv4 packet of `len` bytes (its outer header first):
    /// classified by its GRE key, then within its ON's reservation, or the
    /// unreserved share's if it is of no ON in force. O(1), no allocation.
    pub fn serve(&self, partition: &mut Partition, packet: &[u8], len: u64, now_ns: u64) -> Verdict {
        let p = self.classify(packet, len);
        partition.serve(p.flow, p.bytes, now_ns)
    }

    /// One IPv4 packet of `len` bytes for [`Partition::serve_batch`]: its
    /// ON by its GRE key (counted as unclassified if it has none).
    pub fn classify(&self, packet: &[u8], len: u64) -> Packet {
        let flow = vinet_overlay::gre::classify_ipv4(packet);
        if flow.is_none() {
            self.unclassified.fetch_add(1, Ordering::Relaxed);
        }
        Packet { flow, bytes: len }
    }

    /// Brings the mirror in step with the participant's lease table:
    /// releases what the table no longer holds (or holds differently),
    /// reserves what it holds anew, activates what it committed.
    pub fn sync(&self, table: &LeaseTable) {
        let now = mono_ns();
        let mut p = self.lock();
        let stale: Vec<FlowId> = p
            .iter()
            .filter(|&(f, r, s)| table.get(f).is_none_or(|l| l.reservation != r || (s == Standing::Active && l.standing != s)))
            .map(|(f, _, _)| f)
            .collect();
        for f in stale {
            p.release(f, now);
        }
        for l in table.iter() {
            match p.reservation(l.flow) {
                None => {
                    if let Err(e) = p.reserve(l.flow, l.reservation, l.standing, now) {
                        // Cannot happen: same capacity, same reservations.
                        tracing::error!(flow = l.flow.0, error = %e, "overlay: the data plane refused a reservation the participant holds");
                    }
                }
                Some((_, Standing::Tentative)) if l.standing == Standing::Active => {
                    p.activate(l.flow, now);
                }
                Some(_) => {}
            }
        }
        let expiry = table.iter().map(|l| (l.flow, l.expires_ns)).collect();
        drop(p);
        *self.expiry.lock().unwrap_or_else(|p| p.into_inner()) = expiry;
    }

    /// What the metrics page shows, read at once.
    pub fn report(&self) -> OverlayReport {
        let p = self.lock();
        let mut ons: Vec<OnReport> = p
            .iter()
            .map(|(flow, reservation, standing)| OnReport {
                flow,
                reservation,
                active: standing == Standing::Active,
                counters: p.counters(flow).unwrap_or_default(),
                expires_ns: 0,
            })
            .collect();
        let (reserved, free, unreserved) = (p.reserved(), p.free(), p.unreserved_counters());
        drop(p);
        let expiry = self.expiry.lock().unwrap_or_else(|p| p.into_inner());
        for o in &mut ons {
            o.expires_ns = expiry.iter().find(|(f, _)| *f == o.flow).map_or(0, |e| e.1);
        }
        ons.sort_by_key(|o| o.flow);
        OverlayReport { ons, reserved, free, unreserved, unclassified: self.unclassified.load(Ordering::Relaxed) }
    }
}

/// An alert's kind as a label value.
fn alert_name(k: AlertKind) -> String {
    match k {
        AlertKind::ThroughputLow => "throughput_low".into(),
        AlertKind::ThroughputHigh => "throughput_high".into(),
        AlertKind::Drops => "drops".into(),
        AlertKind::Loss => "loss".into(),
        AlertKind::PathLoss(p) => format!("path_loss_{}", p.0),
        AlertKind::PathSilent(p) => format!("path_silent_{}", p.0),
    }
}

/// One ON as the metrics page shows it.
#[derive(Clone, Debug)]
pub struct OnReport {
    /// Its flow id (the GRE key).
    pub flow: FlowId,
    /// What it reserves.
    pub reservation: Reservation,
    /// In force (else prepared, not yet committed).
    pub active: bool,
    /// Passed and dropped over contract, since it was put in force.
    pub counters: Counters,
    /// When its lease lapses unless refreshed (Unix ns).
    pub expires_ns: u64,
}

/// The data plane at one moment.
#[derive(Clone, Debug)]
pub struct OverlayReport {
    /// Every reservation, by flow id.
    pub ons: Vec<OnReport>,
    /// Their sum.
    pub reserved: Resources,
    /// The unreserved share's rates.
    pub free: Resources,
    /// The unreserved share's counters.
    pub unreserved: Counters,
    /// GRE packets with no ON identity (served by the unreserved share).
    pub unclassified: u64,
}

/// VON management on the router (Birman section VI): every ON in force is
/// watched against the profile a router can hold it to, its contract. The
/// sampler takes each ON's counters once a period; an ON that has more than
/// `max_drop_fraction` of its packets dropped over contract in a period
/// departs from its profile (it sends more than it reserved). Alerts are
/// edge-triggered (`vinet_overlay::monitor`): raised and cleared once, each
/// logged, and shown on the metrics page while they stand. Throughput is not
/// held to a lower bound here: what an ON is offered is its owner's to say,
/// and strict service keeps it from exceeding its contract.
pub struct Watch {
    monitor: Mutex<Monitor>,
    max_drop_fraction: f64,
    raised: AtomicU64,
}

impl Watch {
    /// A watch that alerts above `max_drop_fraction` dropped over contract.
    pub fn new(max_drop_fraction: f64) -> Result<Watch, String> {
        OnProfile::new(0, u64::MAX, max_drop_fraction, 1.0).map_err(|e| format!("[overlay] alert_drop_fraction: {e}"))?;
        let history = std::num::NonZeroUsize::new(600).expect("nonzero");
        Ok(Watch { monitor: Mutex::new(Monitor::new(history)), max_drop_fraction, raised: AtomicU64::new(0) })
    }

    /// One sample of every ON in force on `data` at `now_ns`: new ONs are
    /// watched, gone ones forgotten; returns the alerts raised and cleared.
    pub fn sample(&self, data: &DataPlane, now_ns: u64) -> Vec<Event> {
        let samples: Vec<(FlowId, Sample)> = {
            let p = data.lock();
            p.iter()
                .filter(|&(_, _, s)| s == Standing::Active)
                .filter_map(|(f, _, _)| Some((f, Sample::from_partition(&p, f, now_ns)?)))
                .collect()
        };
        let mut m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<FlowId> = m.flows().filter(|f| samples.iter().all(|(g, _)| g != f)).collect();
        for f in gone {
            m.unwatch(f);
        }
        let profile = OnProfile::new(0, u64::MAX, self.max_drop_fraction, 1.0).expect("checked by Watch::new");
        let mut events = Vec::new();
        for (flow, sample) in samples {
            if m.profile(flow).is_none() {
                let _ = m.watch(flow, profile);
            }
            match m.record(flow, sample) {
                Ok(e) => events.extend(e),
                Err(e) => tracing::error!(flow = flow.0, error = %e, "overlay: the VON monitor refused a sample"),
            }
        }
        for e in &events {
            match e {
                Event::Raised(a) => {
                    self.raised.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(on = a.flow.0, kind = ?a.kind, measured = a.measured, bound = ?a.bound, "overlay: an ON departs from its profile");
                }
                Event::Cleared { alert, .. } => {
                    tracing::info!(on = alert.flow.0, kind = ?alert.kind, "overlay: an ON is back within its profile")
                }
            }
        }
        events
    }

    /// The alerts standing now, and the last measured throughput (bit/s) of each ON.
    fn standing(&self) -> Standings {
        let m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        let alerts = m.flows().flat_map(|f| m.active_alerts(f).map(move |a| (f, a.kind))).collect();
        let rates = m.flows().filter_map(|f| Some((f, m.points(f).last()?.bps))).collect();
        (alerts, rates)
    }
}

/// The alerts standing, and each ON's last throughput (bit/s).
type Standings = (Vec<(FlowId, AlertKind)>, Vec<(FlowId, f64)>);

/// vinetd's overlay: the participant server and the data plane it feeds.
pub struct Overlay {
    data: Arc<DataPlane>,
    server: RouterServer,
    capacity: Resources,
    watch: Arc<Watch>,
    /// The sampler thread, stopped when the flag is set.
    sampler: Option<(Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Some((stop, t)) = self.sampler.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay").field("participant", &self.server.addr()).finish_non_exhaustive()
    }
}

impl Overlay {
    /// Opens the store (restoring its leases into the data plane) and starts
    /// the participant server.
    pub fn start(cfg: &OverlayConfig) -> Result<Overlay, String> {
        let partition = PartitionConfig {
            capacity: cfg.capacity,
            unreserved_burst_bytes: cfg.unreserved_burst_bytes,
            unreserved_burst_packets: cfg.unreserved_burst_packets,
        };
        let lease = LeaseConfig::new(cfg.refresh_ms.saturating_mul(1_000_000)).map_err(|e| format!("[overlay] refresh_ms: {e}"))?;
        let key = vinet_onmgr::wire::load_key(&cfg.key).map_err(|e| format!("[overlay] key: {e}"))?;
        let data = Arc::new(DataPlane::new(partition, cfg.mark));
        let observer = {
            let data = Arc::clone(&data);
            Arc::new(move |t: &LeaseTable| data.sync(t))
        };
        let rc = RouterConfig {
            node: vinet_overlay::twopc::NodeId(cfg.node),
            listen: cfg.listen,
            store: cfg.store.clone(),
            key,
            manager: cfg.manager_key,
            partition,
            lease,
            sweep_every: Duration::from_millis(cfg.refresh_ms.clamp(10, 1_000) / 2),
            // The participant's crash points (`vinet-onmgr router`'s), for
            // fault-injection runs; unset, none.
            crash_at: match std::env::var("VINET_ONMGR_ROUTER_CRASH_AT") {
                Ok(v) => Some(v.parse().map_err(|e| format!("VINET_ONMGR_ROUTER_CRASH_AT: {e}"))?),
                Err(_) => None,
            },
        };
        let server = vinet_onmgr::router::serve_observed(rc, observer).map_err(|e| format!("[overlay] participant server: {e}"))?;
        tracing::info!(participant = %server.addr(), ons = data.lock().len(), "overlay: participant server listening");
        let watch = Arc::new(Watch::new(cfg.alert_drop_fraction)?);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (w, d, st, period) = (Arc::clone(&watch), Arc::clone(&data), Arc::clone(&stop), cfg.sample_ms.max(1));
        let thread = std::thread::Builder::new()
            .name("vinet-von".into())
            .spawn(move || {
                let mut next = Instant::now() + Duration::from_millis(period);
                while !st.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now >= next {
                        w.sample(&d, mono_ns());
                        next += Duration::from_millis(period);
                    }
                    std::thread::sleep(next.saturating_duration_since(now).min(Duration::from_millis(100)));
                }
            })
            .map_err(|e| format!("[overlay] cannot start the VON sampler: {e}"))?;
        Ok(Overlay { data, server, capacity: cfg.capacity, watch, sampler: Some((stop, thread)) })
    }

    /// The data plane.
    pub fn data(&self) -> &Arc<DataPlane> {
        &self.data
    }

    /// The participant server's counters.
    pub fn stats(&self) -> &Stats {
        self.server.stats()
    }

    /// What reservations may sum to.
    pub fn capacity(&self) -> Resources {
        self.capacity
    }

    /// The VON watch.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// The overlay's part of the metrics page; `lane`: the ON lane's
    /// received, verdict-error and malformed counts, if it runs.
    ///
    /// Unlike the rest of the page, the per-ON series are labelled by an
    /// identifier (`on`, the flow id): their number is bounded by admission
    /// (every ON holds some of a finite capacity), and an operator asked for
    /// them per ON. An ON's series go when its reservation does.
    pub fn render_metrics(&self, lane: Option<(u64, u64, u64)>) -> String {
        use std::fmt::Write as _;
        let r = self.data.report();
        let st = self.stats();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, series: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in series {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let res = |x: Resources| {
            [("bps", x.bps), ("pps", x.pps), ("units", x.units)].map(|(k, v)| (format!("{{resource=\"{k}\"}}"), v as f64)).to_vec()
        };
        let active = r.ons.iter().filter(|o| o.active).count();
        family(
            "vinet_overlay_ons",
            "gauge",
            "ONs with a reservation here: in force (active) or prepared",
            &[("{standing=\"active\"}".into(), active as f64), ("{standing=\"prepared\"}".into(), (r.ons.len() - active) as f64)],
        );
        family("vinet_overlay_capacity", "gauge", "What reservations may sum to", &res(self.capacity));
        family("vinet_overlay_reserved", "gauge", "The sum of the reservations, prepared ones included", &res(r.reserved));
        let per = |f: &dyn Fn(&OnReport) -> Vec<(String, f64)>| r.ons.iter().flat_map(f).collect::<Vec<_>>();
        family(
            "vinet_overlay_on_reserved",
            "gauge",
            "An ON's reservation",
            &per(&|o| {
                let x = o.reservation.rates();
                [("bps", x.bps), ("pps", x.pps), ("units", x.units)]
                    .map(|(k, v)| (format!("{{on=\"{}\",resource=\"{k}\"}}", o.flow.0), v as f64))
                    .to_vec()
            }),
        );
        family(
            "vinet_overlay_on_lease_expires_seconds",
            "gauge",
            "When an ON's lease lapses unless refreshed (Unix time)",
            &per(&|o| vec![(format!("{{on=\"{}\"}}", o.flow.0), o.expires_ns as f64 / 1e9)]),
        );
        let verdicts = |on: Option<FlowId>, c: Counters, bytes: bool| {
            let on = on.map_or(String::new(), |f| format!("on=\"{}\",", f.0));
            let (p, d) = if bytes { (c.passed_bytes, c.dropped_bytes) } else { (c.passed_packets, c.dropped_packets) };
            vec![(format!("{{{on}verdict=\"passed\"}}"), p as f64), (format!("{{{on}verdict=\"dropped\"}}"), d as f64)]
        };
        family(
            "vinet_overlay_on_packets_total",
            "counter",
            "An ON's packets, passed within its contract or dropped over it (since it was put in force)",
            &per(&|o| verdicts(Some(o.flow), o.counters, false)),
        );
        family(
            "vinet_overlay_on_bytes_total",
            "counter",
            "An ON's bytes, passed or dropped over contract",
            &per(&|o| verdicts(Some(o.flow), o.counters, true)),
        );
        family(
            "vinet_overlay_unreserved_packets_total",
            "counter",
            "GRE packets of no ON in force, passed or dropped by the unreserved share",
            &verdicts(None, r.unreserved, false),
        );
        family(
            "vinet_overlay_unreserved_bytes_total",
            "counter",
            "Bytes of the unreserved share, passed or dropped",
            &verdicts(None, r.unreserved, true),
        );
        family(
            "vinet_overlay_unclassified_total",
            "counter",
            "GRE packets with no ON identity (no key, malformed), served by the unreserved share",
            &[(String::new(), r.unclassified as f64)],
        );
        // Only ONs still reserved here (the watch forgets the others at its next sample).
        let (mut alerts, mut rates) = self.watch.standing();
        alerts.retain(|(f, _)| r.ons.iter().any(|o| o.flow == *f));
        rates.retain(|(f, _)| r.ons.iter().any(|o| o.flow == *f));
        family(
            "vinet_overlay_on_throughput_bps",
            "gauge",
            "An ON's throughput passed over the VON monitor's last sampling period, bits per second",
            &rates.iter().map(|(f, bps)| (format!("{{on=\"{}\"}}", f.0), *bps)).collect::<Vec<_>>(),
        );
        family(
            "vinet_overlay_on_alert",
            "gauge",
            "1 while an ON departs from its profile (drops: more dropped over contract than [overlay] alert_drop_fraction)",
            &alerts.iter().map(|(f, k)| (format!("{{on=\"{}\",kind=\"{}\"}}", f.0, alert_name(*k)), 1.0)).collect::<Vec<_>>(),
        );
        family(
            "vinet_overlay_alerts_raised_total",
            "counter",
            "VON alerts raised (each departure from a profile once)",
            &[(String::new(), self.watch.raised.load(Ordering::Relaxed) as f64)],
        );
        if let Some((received, errors, malformed)) = lane {
            family(
                "vinet_overlay_lane_received_total",
                "counter",
                "Packets the ON lane took from its queue",
                &[(String::new(), received as f64)],
            );
            family(
                "vinet_overlay_lane_verdict_errors_total",
                "counter",
                "ON lane verdicts the kernel refused",
                &[(String::new(), errors as f64)],
            );
            family(
                "vinet_overlay_lane_malformed_total",
                "counter",
                "ON lane queue messages that were not whole packets",
                &[(String::new(), malformed as f64)],
            );
        }
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        family("vinet_overlay_participant_answered_total", "counter", "Manager messages answered", &[(String::new(), n(&st.answered))]);
        family(
            "vinet_overlay_participant_refused_total",
            "counter",
            "Manager connections or frames refused (unknown key, bad signature, replay, malformed)",
            &[(String::new(), n(&st.refused))],
        );
        family(
            "vinet_overlay_participant_lapsed_total",
            "counter",
            "Leases released by the sweeper (lapsed or never committed)",
            &[(String::new(), n(&st.lapsed))],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinet_overlay::gre::{encode, Outer, Tag};

    const SEC: u64 = 1_000_000_000;

    fn config() -> PartitionConfig {
        PartitionConfig {
            capacity: Resources { bps: 1_000_000, pps: 1_000, units: 10 },
            unreserved_burst_bytes: 3_000,
            unreserved_burst_packets: 2,
        }
    }

    fn packet(key: u32) -> Vec<u8> {
        let inner = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let outer = Outer { src: [10, 0, 1, 2], dst: [10, 0, 2, 2], ttl: 64, tos: 0, identification: 1, dont_fragment: false };
        let mut out = vec![];
        encode(&outer, Tag { flow: FlowId(key), seq: None }, &inner, &mut out).unwrap();
        out
    }

    fn table() -> LeaseTable {
        LeaseTable::new(LeaseConfig::new(SEC).unwrap(), config(), 0)
    }

    #[test]
    fn the_mirror_follows_prepare_commit_abort_and_lapse() {
        let d = DataPlane::new(config(), None);
        let mut t = table();
        let r = Reservation::new(Resources { bps: 100_000, pps: 10, units: 1 }, 1_500, 2).unwrap();
        t.hold(FlowId(7), r, 2 * SEC, 0).unwrap();
        d.sync(&t);
        assert_eq!(d.lock().reservation(FlowId(7)), Some((r, Standing::Tentative)));
        assert_eq!(d.lock().free().pps, 990, "a prepared reservation sets its capacity aside");
        t.confirm(FlowId(7), 1).unwrap();
        t.hold(FlowId(8), r, 2 * SEC, 1).unwrap();
        d.sync(&t);
        assert_eq!(d.lock().reservation(FlowId(7)), Some((r, Standing::Active)));
        // An abort (the prepared 8 released) and a lapse (7 swept).
        t.release(FlowId(8), 2);
        d.sync(&t);
        assert!(d.lock().reservation(FlowId(8)).is_none());
        assert_eq!(t.sweep(10 * SEC).len(), 1);
        d.sync(&t);
        assert!(d.lock().is_empty());
        assert_eq!(d.lock().free(), config().capacity);
        assert!(d.report().ons.is_empty());
    }

    #[test]
    fn packets_are_served_by_their_key_strictly() {
        let d = DataPlane::new(config(), None);
        let mut t = table();
        // Two packets of burst, and a rate of 10 packets a second.
        let r = Reservation::new(Resources { bps: 1_000_000 / 2, pps: 10, units: 1 }, 10_000, 2).unwrap();
        t.grant(FlowId(5), r, 0).unwrap();
        d.sync(&t);
        let (on, other) = (packet(5), packet(6));
        let now = mono_ns();
        let mut p = d.lock();
        let verdicts: Vec<Verdict> = (0..5).map(|_| d.serve(&mut p, &on, on.len() as u64, now)).collect();
        assert_eq!(
            verdicts,
            [Verdict::Pass, Verdict::Pass, Verdict::Drop, Verdict::Drop, Verdict::Drop],
            "over contract on an idle router"
        );
        // Another key is of no ON: the unreserved share (burst 2) serves it.
        assert_eq!(d.serve(&mut p, &other, other.len() as u64, now), Verdict::Pass);
        // Not GRE at all (a bare inner packet): unclassified, unreserved.
        assert_eq!(d.serve(&mut p, &on[28..], 20, now), Verdict::Pass);
        // A tenth of a second later, one packet's worth has come back.
        assert_eq!(d.serve(&mut p, &on, on.len() as u64, now + SEC / 10), Verdict::Pass);
        assert_eq!(d.serve(&mut p, &on, on.len() as u64, now + SEC / 10), Verdict::Drop);
        drop(p);
        let rep = d.report();
        assert_eq!(rep.ons.len(), 1);
        let c = rep.ons[0].counters;
        assert_eq!((c.passed_packets, c.dropped_packets), (3, 4));
        assert_eq!(c.passed_bytes, 3 * on.len() as u64);
        assert_eq!((rep.unreserved.passed_packets, rep.unclassified), (2, 1));
    }

    /// The VON watch: an ON dropped over contract in a period raises one
    /// alert (edge-triggered), cleared in a period within its contract; an
    /// ON whose reservation goes is no longer watched.
    #[test]
    fn the_watch_alerts_on_an_on_over_its_contract() {
        let d = DataPlane::new(config(), None);
        let mut t = table();
        let r = Reservation::new(Resources { bps: 1_000_000, pps: 10, units: 1 }, 10_000, 2).unwrap();
        t.grant(FlowId(5), r, 0).unwrap();
        d.sync(&t);
        let w = Watch::new(0.01).unwrap();
        let on = packet(5);
        let serve = |n: usize, at: u64| {
            let mut p = d.lock();
            for _ in 0..n {
                d.serve(&mut p, &on, on.len() as u64, at);
            }
        };
        assert!(w.sample(&d, SEC).is_empty(), "a first sample measures nothing");
        // 50 packets at once: 2 pass (the burst), 48 dropped over contract.
        serve(50, SEC + 1);
        let raised = w.sample(&d, 2 * SEC);
        assert!(matches!(raised[..], [Event::Raised(a)] if a.kind == AlertKind::Drops && a.flow == FlowId(5)), "{raised:?}");
        assert_eq!(w.standing().0, vec![(FlowId(5), AlertKind::Drops)]);
        // Still over: no second alert.
        serve(50, 2 * SEC + 1);
        assert!(w.sample(&d, 3 * SEC).is_empty());
        // Within contract (2 packets a second, well under 10): cleared.
        serve(2, 3 * SEC + 1);
        assert!(matches!(w.sample(&d, 4 * SEC)[..], [Event::Cleared { .. }]));
        assert!(w.standing().0.is_empty());
        assert_eq!(w.raised.load(Ordering::Relaxed), 1);
        assert!(w.standing().1.iter().any(|&(f, bps)| f == FlowId(5) && bps > 0.0));
        // The reservation goes: so does the watch.
        t.release(FlowId(5), 5 * SEC);
        d.sync(&t);
        w.sample(&d, 5 * SEC);
        assert!(w.standing().1.is_empty());
        assert!(Watch::new(1.5).is_err());
    }
}
