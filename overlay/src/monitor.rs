//! VON management: per-ON monitoring against a profile, alerts, and a report.
//!
//! Birman's manager does not only set ONs up; it watches that each one gets
//! what it was promised and tells its owner when it does not (section VI).
//! The [`Monitor`] does this from the counters the data path already keeps,
//! sampled over time by the caller:
//!
//! - the ON's [`Counters`] from its [`crate::partition::Partition`]
//!   (passed and dropped over contract, packets and bytes);
//! - optionally the [`RecoveryCounters`] of the ON's duplicate elimination
//!   at the egress ([`crate::frer`]): what is lost after recovery;
//! - per path, the [`RecoveryCounters`] of an *individual recovery* over
//!   that path's packets alone (802.1CB's per-member-stream function: a
//!   [`crate::frer::Recovery`] fed only the packets that came in on that
//!   path's tunnel): its arrivals are the path's packets seen, its `lost`
//!   and `out_of_order` the path's own.
//!
//! From two consecutive samples it computes the interval's throughput (bits
//! and packets per second passed), drops (packets per second and the
//! fraction dropped over contract), loss, and each path's health, and checks
//! them against the ON's [`OnProfile`]: a band of expected throughput, a
//! highest drop fraction, a highest loss fraction. **Alerts are
//! edge-triggered**: an [`Alert`] is raised once when a measure leaves the
//! profile and cleared once when it is back, however many samples it stays
//! out; [`Monitor::record`] returns those transitions as [`Event`]s.
//!
//! A path that stops delivering is not seen by its own recovery at all (no
//! number leaves its window, so nothing counts as lost): it is *silent*,
//! and reported so, when it saw nothing in an interval in which its ON
//! delivered packets (on another path, or through the partition).
//!
//! Counters are cumulative; one that goes down (its reservation was made
//! again, its recovery rebuilt) is read as restarted from zero. Time is the
//! caller's `u64` nanoseconds, as everywhere in this crate, and must advance
//! from one sample of an ON to the next.
//!
//! The report is a Markdown summary and, per ON, an SVG plot (plotters) of
//! throughput and drops over time. Both are built as strings
//! ([`Monitor::summary`], [`Monitor::plot_svg`]); only
//! [`Monitor::write_report`] touches files.

use crate::frer::RecoveryCounters;
use crate::partition::{Counters, Partition};
use crate::FlowId;
use plotters::prelude::*;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use thiserror::Error;

const NANOS_PER_SEC: f64 = 1e9;

/// A path of an ON, as its manager numbers them (one per disjoint path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathId(pub u32);

/// What an ON is expected to do. Built only by [`OnProfile::new`], which checks it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnProfile {
    min_bps: u64,
    max_bps: u64,
    max_drop_fraction: f64,
    max_loss_fraction: f64,
}

/// Why a profile is refused.
#[derive(Clone, Copy, Debug, PartialEq, Error)]
pub enum InvalidProfile {
    /// The lowest expected throughput is above the highest.
    #[error("profile: rate band {min_bps}..={max_bps} bit/s is empty")]
    EmptyBand {
        /// The lowest expected throughput.
        min_bps: u64,
        /// The highest expected throughput.
        max_bps: u64,
    },
    /// A fraction outside 0..=1 (or not a number).
    #[error("profile: {what} {value} outside 0..=1")]
    Fraction {
        /// Which bound.
        what: &'static str,
        /// The value given.
        value: f64,
    },
}

impl OnProfile {
    /// Throughput (bits per second passed) expected within `min_bps..=max_bps`;
    /// at most `max_drop_fraction` of the packets dropped over contract, and
    /// at most `max_loss_fraction` lost, after recovery and on each path.
    pub fn new(min_bps: u64, max_bps: u64, max_drop_fraction: f64, max_loss_fraction: f64) -> Result<OnProfile, InvalidProfile> {
        if min_bps > max_bps {
            return Err(InvalidProfile::EmptyBand { min_bps, max_bps });
        }
        for (what, value) in [("max drop fraction", max_drop_fraction), ("max loss fraction", max_loss_fraction)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(InvalidProfile::Fraction { what, value });
            }
        }
        Ok(OnProfile { min_bps, max_bps, max_drop_fraction, max_loss_fraction })
    }

    /// The band of expected throughput, bits per second.
    pub fn rate_band(&self) -> (u64, u64) {
        (self.min_bps, self.max_bps)
    }

    /// The highest fraction of packets dropped over contract.
    pub fn max_drop_fraction(&self) -> f64 {
        self.max_drop_fraction
    }

    /// The highest fraction of packets lost.
    pub fn max_loss_fraction(&self) -> f64 {
        self.max_loss_fraction
    }
}

/// The counters of one ON at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// When, on the caller's clock.
    pub at_ns: u64,
    /// The ON's partition counters.
    pub on: Counters,
    /// The ON's duplicate elimination at the egress, if it has redundant paths.
    pub recovery: Option<RecoveryCounters>,
    /// Each path's individual recovery (its packets alone).
    pub paths: Vec<(PathId, RecoveryCounters)>,
}

impl Sample {
    /// A sample of `flow`'s partition counters alone (no recovery, no
    /// paths), if it has a reservation on `partition`.
    pub fn from_partition(partition: &Partition, flow: FlowId, at_ns: u64) -> Option<Sample> {
        Some(Sample { at_ns, on: partition.counters(flow)?, recovery: None, paths: Vec::new() })
    }
}

/// What one interval between two samples measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// The end of the interval.
    pub at_ns: u64,
    /// Bits per second passed.
    pub bps: f64,
    /// Packets per second passed.
    pub pps: f64,
    /// Packets per second dropped over contract.
    pub dropped_pps: f64,
    /// The fraction of the interval's packets dropped over contract (0 with no packets).
    pub drop_fraction: f64,
    /// The fraction lost after recovery, if the ON has one.
    pub loss_fraction: Option<f64>,
}

/// How a path did over the last interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathState {
    /// Only one sample so far.
    Unknown,
    /// Delivering, within the profile's loss.
    Healthy,
    /// Delivering, but losing more than the profile allows.
    Lossy,
    /// Nothing seen while the ON delivered.
    Silent,
}

/// A path's health: its totals and the last interval's verdict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathHealth {
    /// Packets that arrived on the path (passed, duplicate or rogue), in all.
    pub seen: u64,
    /// Packets lost on the path, in all.
    pub lost: u64,
    /// Packets out of order on the path, in all.
    pub out_of_order: u64,
    /// Packets per second seen over the last interval.
    pub seen_pps: f64,
    /// The fraction lost over the last interval.
    pub loss_fraction: f64,
    /// The verdict.
    pub state: PathState,
}

/// What departs from the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// Throughput below the profile's band.
    ThroughputLow,
    /// Throughput above the profile's band.
    ThroughputHigh,
    /// Too many packets dropped over contract.
    Drops,
    /// Too many packets lost after recovery.
    Loss,
    /// A path loses too many packets.
    PathLoss(PathId),
    /// A path delivers nothing while its ON does.
    PathSilent(PathId),
}

/// The bound a measured value broke.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
    /// The value must be above this.
    Above(f64),
}

/// An ON departing from its profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alert {
    /// The ON.
    pub flow: FlowId,
    /// What departs.
    pub kind: AlertKind,
    /// The measured value (bits per second, a fraction, or packets per second for a silent path).
    pub measured: f64,
    /// The bound it broke.
    pub bound: Bound,
    /// The end of the interval that raised it.
    pub at_ns: u64,
}

/// A transition of an alert.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// The alert is raised.
    Raised(Alert),
    /// The alert (as it was raised) is cleared: the measure is back within the profile.
    Cleared {
        /// The alert as raised.
        alert: Alert,
        /// The end of the interval that cleared it.
        at_ns: u64,
    },
}

/// Why a sample or a report is refused.
#[derive(Debug, Error)]
pub enum MonitorError {
    /// The ON is not watched.
    #[error("flow {0:?} is not watched")]
    NotWatched(FlowId),
    /// The ON is watched already.
    #[error("flow {0:?} is watched already")]
    AlreadyWatched(FlowId),
    /// A sample not after the ON's last one.
    #[error("flow {flow:?}: sample at {at_ns} ns is not after the last one at {last_ns} ns")]
    TimeNotAdvancing {
        /// The ON.
        flow: FlowId,
        /// The last sample's time.
        last_ns: u64,
        /// The refused sample's time.
        at_ns: u64,
    },
    /// Plotting failed.
    #[error("plot of flow {flow:?}: {message}")]
    Plot {
        /// The ON.
        flow: FlowId,
        /// What plotters said.
        message: String,
    },
    /// Writing a report file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

#[derive(Clone, Debug)]
struct OnState {
    profile: OnProfile,
    last: Option<Sample>,
    points: VecDeque<Point>,
    paths: BTreeMap<PathId, PathHealth>,
    active: BTreeMap<AlertKind, Alert>,
    events: VecDeque<Event>,
}

/// The monitor of a manager's ONs.
#[derive(Clone, Debug)]
pub struct Monitor {
    history: NonZeroUsize,
    ons: BTreeMap<FlowId, OnState>,
}

/// `new - old` for cumulative counters; a counter that went down restarted from zero.
fn delta(new: u64, old: u64) -> u64 {
    new.checked_sub(old).unwrap_or(new)
}

fn fraction(part: u64, rest: u64) -> f64 {
    let all = part.saturating_add(rest);
    if all == 0 {
        0.0
    } else {
        part as f64 / all as f64
    }
}

fn arrivals(c: &RecoveryCounters) -> u64 {
    c.passed.saturating_add(c.discarded).saturating_add(c.rogue)
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, cap: NonZeroUsize) {
    if q.len() == cap.get() {
        q.pop_front();
    }
    q.push_back(item);
}

impl Monitor {
    /// A monitor that keeps the last `history` points and events of each ON.
    pub fn new(history: NonZeroUsize) -> Monitor {
        Monitor { history, ons: BTreeMap::new() }
    }

    /// Starts watching `flow` against `profile`.
    pub fn watch(&mut self, flow: FlowId, profile: OnProfile) -> Result<(), MonitorError> {
        if self.ons.contains_key(&flow) {
            return Err(MonitorError::AlreadyWatched(flow));
        }
        let state = OnState {
            profile,
            last: None,
            points: VecDeque::new(),
            paths: BTreeMap::new(),
            active: BTreeMap::new(),
            events: VecDeque::new(),
        };
        self.ons.insert(flow, state);
        Ok(())
    }

    /// Stops watching `flow`; false if it was not watched.
    pub fn unwatch(&mut self, flow: FlowId) -> bool {
        self.ons.remove(&flow).is_some()
    }

    /// Takes a sample of `flow`: measures the interval since its last one,
    /// checks it against the profile and returns the alerts raised and
    /// cleared (none for an ON's first sample).
    pub fn record(&mut self, flow: FlowId, sample: Sample) -> Result<Vec<Event>, MonitorError> {
        let history = self.history;
        let on = self.ons.get_mut(&flow).ok_or(MonitorError::NotWatched(flow))?;
        let Some(last) = on.last.take() else {
            for (path, c) in &sample.paths {
                on.paths.insert(*path, path_totals(c, 0.0, 0.0, PathState::Unknown));
            }
            on.last = Some(sample);
            return Ok(Vec::new());
        };
        if sample.at_ns <= last.at_ns {
            let err = MonitorError::TimeNotAdvancing { flow, last_ns: last.at_ns, at_ns: sample.at_ns };
            on.last = Some(last);
            return Err(err);
        }
        let at_ns = sample.at_ns;
        let secs = (at_ns - last.at_ns) as f64 / NANOS_PER_SEC;
        let p = &on.profile;

        let passed = delta(sample.on.passed_packets, last.on.passed_packets);
        let dropped = delta(sample.on.dropped_packets, last.on.dropped_packets);
        let bytes = delta(sample.on.passed_bytes, last.on.passed_bytes);
        let loss_fraction = sample.recovery.map(|now| {
            let before = last.recovery.unwrap_or_default();
            fraction(delta(now.lost, before.lost), delta(now.passed, before.passed))
        });
        let point = Point {
            at_ns,
            bps: bytes as f64 * 8.0 / secs,
            pps: passed as f64 / secs,
            dropped_pps: dropped as f64 / secs,
            drop_fraction: fraction(dropped, passed),
            loss_fraction,
        };

        // Every measure out of the profile in this interval.
        let mut out: BTreeMap<AlertKind, (f64, Bound)> = BTreeMap::new();
        if point.bps < p.min_bps as f64 {
            out.insert(AlertKind::ThroughputLow, (point.bps, Bound::AtLeast(p.min_bps as f64)));
        }
        if point.bps > p.max_bps as f64 {
            out.insert(AlertKind::ThroughputHigh, (point.bps, Bound::AtMost(p.max_bps as f64)));
        }
        if point.drop_fraction > p.max_drop_fraction {
            out.insert(AlertKind::Drops, (point.drop_fraction, Bound::AtMost(p.max_drop_fraction)));
        }
        if let Some(loss) = loss_fraction.filter(|&l| l > p.max_loss_fraction) {
            out.insert(AlertKind::Loss, (loss, Bound::AtMost(p.max_loss_fraction)));
        }

        let before: BTreeMap<PathId, RecoveryCounters> = last.paths.iter().copied().collect();
        let seen_now: Vec<(PathId, RecoveryCounters, u64)> =
            sample.paths.iter().map(|(id, c)| (*id, *c, delta(arrivals(c), before.get(id).map_or(0, arrivals)))).collect();
        let delivered_by = |except: PathId| passed > 0 || seen_now.iter().any(|(id, _, seen)| *id != except && *seen > 0);
        on.paths.clear();
        for &(id, c, seen) in &seen_now {
            let old = before.get(&id).copied().unwrap_or_default();
            let loss = fraction(delta(c.lost, old.lost), delta(c.passed, old.passed));
            let state = if seen == 0 && delivered_by(id) {
                out.insert(AlertKind::PathSilent(id), (0.0, Bound::Above(0.0)));
                PathState::Silent
            } else if loss > p.max_loss_fraction {
                out.insert(AlertKind::PathLoss(id), (loss, Bound::AtMost(p.max_loss_fraction)));
                PathState::Lossy
            } else {
                PathState::Healthy
            };
            on.paths.insert(id, path_totals(&c, seen as f64 / secs, loss, state));
        }

        // Edge-triggered: raise what is newly out, clear what is back.
        let mut events = Vec::new();
        let back: Vec<AlertKind> = on.active.keys().filter(|k| !out.contains_key(k)).copied().collect();
        for kind in back {
            let alert = on.active.remove(&kind).expect("listed from the active alerts");
            events.push(Event::Cleared { alert, at_ns });
        }
        for (kind, (measured, bound)) in out {
            if let std::collections::btree_map::Entry::Vacant(v) = on.active.entry(kind) {
                let alert = Alert { flow, kind, measured, bound, at_ns };
                v.insert(alert);
                events.push(Event::Raised(alert));
            }
        }
        for e in &events {
            push_bounded(&mut on.events, *e, history);
        }
        push_bounded(&mut on.points, point, history);
        on.last = Some(sample);
        Ok(events)
    }

    /// The ONs watched, in order.
    pub fn flows(&self) -> impl Iterator<Item = FlowId> + '_ {
        self.ons.keys().copied()
    }

    /// `flow`'s profile.
    pub fn profile(&self, flow: FlowId) -> Option<OnProfile> {
        Some(self.ons.get(&flow)?.profile)
    }

    /// `flow`'s measured intervals, oldest first (the last `history`).
    pub fn points(&self, flow: FlowId) -> impl Iterator<Item = &Point> + '_ {
        self.ons.get(&flow).into_iter().flat_map(|on| on.points.iter())
    }

    /// `flow`'s alerts in force.
    pub fn active_alerts(&self, flow: FlowId) -> impl Iterator<Item = &Alert> + '_ {
        self.ons.get(&flow).into_iter().flat_map(|on| on.active.values())
    }

    /// `flow`'s last events, oldest first (the last `history`).
    pub fn events(&self, flow: FlowId) -> impl Iterator<Item = &Event> + '_ {
        self.ons.get(&flow).into_iter().flat_map(|on| on.events.iter())
    }

    /// The health of `flow`'s paths as of its last sample.
    pub fn paths(&self, flow: FlowId) -> impl Iterator<Item = (PathId, &PathHealth)> + '_ {
        self.ons.get(&flow).into_iter().flat_map(|on| on.paths.iter().map(|(id, h)| (*id, h)))
    }

    /// A Markdown summary of every ON: its profile, its last interval, its
    /// paths, its alerts in force and its last events.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Overlay networks: monitoring summary\n");
        let _ = writeln!(s, "| ON | rate band (bit/s) | bit/s | packets/s | dropped/s | drop fraction | loss | paths | alerts |");
        let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
        for (flow, on) in &self.ons {
            let (lo, hi) = on.profile.rate_band();
            let paths = on.paths.iter().map(|(id, h)| format!("{}: {:?}", id.0, h.state)).collect::<Vec<_>>().join(", ");
            match on.points.back() {
                Some(pt) => {
                    let loss = pt.loss_fraction.map_or("-".to_string(), |l| format!("{l:.4}"));
                    let _ = writeln!(
                        s,
                        "| {} | {lo}..={hi} | {:.0} | {:.1} | {:.1} | {:.4} | {loss} | {paths} | {} |",
                        flow_name(*flow),
                        pt.bps,
                        pt.pps,
                        pt.dropped_pps,
                        pt.drop_fraction,
                        on.active.len()
                    );
                }
                None => {
                    let _ = writeln!(s, "| {} | {lo}..={hi} | - | - | - | - | - | {paths} | 0 |", flow_name(*flow));
                }
            }
        }
        for (flow, on) in &self.ons {
            let _ = writeln!(s, "\n## ON {}\n", flow_name(*flow));
            let _ = writeln!(
                s,
                "Profile: {}..={} bit/s, at most {} dropped over contract, at most {} lost. Plot: `{}`.\n",
                on.profile.min_bps,
                on.profile.max_bps,
                on.profile.max_drop_fraction,
                on.profile.max_loss_fraction,
                plot_file_name(*flow)
            );
            if !on.paths.is_empty() {
                let _ = writeln!(s, "| path | seen | lost | out of order | seen/s | loss | state |");
                let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | --- |");
                for (id, h) in &on.paths {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {:.1} | {:.4} | {:?} |",
                        id.0, h.seen, h.lost, h.out_of_order, h.seen_pps, h.loss_fraction, h.state
                    );
                }
                s.push('\n');
            }
            if on.active.is_empty() {
                let _ = writeln!(s, "Alerts in force: none.");
            } else {
                let _ = writeln!(s, "Alerts in force:\n");
                for a in on.active.values() {
                    let _ = writeln!(s, "- {}", describe(a));
                }
            }
            if !on.events.is_empty() {
                let _ = writeln!(s, "\nLast events:\n");
                for e in &on.events {
                    let _ = match e {
                        Event::Raised(a) => writeln!(s, "- raised: {}", describe(a)),
                        Event::Cleared { alert, at_ns } => writeln!(s, "- at {:.3} s, cleared: {}", secs(*at_ns), describe(alert)),
                    };
                }
            }
        }
        s
    }

    /// An SVG plot of `flow` over time: throughput passed with the
    /// profile's band above, packets dropped over contract a second below.
    pub fn plot_svg(&self, flow: FlowId) -> Result<String, MonitorError> {
        let on = self.ons.get(&flow).ok_or(MonitorError::NotWatched(flow))?;
        let err = |e: &dyn std::fmt::Display| MonitorError::Plot { flow, message: e.to_string() };
        let t0 = on.points.front().map_or(0.0, |p| secs(p.at_ns));
        let t1 = on.points.back().map_or(1.0, |p| secs(p.at_ns)).max(t0 + 1e-9);
        let (lo, hi) = on.profile.rate_band();
        let top_bps = on.points.iter().map(|p| p.bps).fold(hi as f64, f64::max).max(1.0) * 1.1;
        let top_drops = on.points.iter().map(|p| p.dropped_pps).fold(1.0, f64::max) * 1.1;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (900, 620)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let (upper, lower) = root.split_vertically(340);
            let mut chart = ChartBuilder::on(&upper)
                .caption(format!("ON {}: throughput passed", flow_name(flow)), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(t0..t1, 0.0..top_bps / 1e6)
                .map_err(|e| err(&e))?;
            chart.configure_mesh().x_desc("seconds").y_desc("Mbit/s").draw().map_err(|e| err(&e))?;
            chart
                .draw_series(LineSeries::new(on.points.iter().map(|p| (secs(p.at_ns), p.bps / 1e6)), BLUE.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label("passed")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE));
            for (edge, name) in [(lo, "band low"), (hi, "band high")] {
                chart
                    .draw_series(LineSeries::new([(t0, edge as f64 / 1e6), (t1, edge as f64 / 1e6)], BLACK.mix(0.4)))
                    .map_err(|e| err(&e))?
                    .label(name)
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.4)));
            }
            chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| err(&e))?;

            let mut chart = ChartBuilder::on(&lower)
                .caption(format!("ON {}: dropped over contract", flow_name(flow)), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(t0..t1, 0.0..top_drops)
                .map_err(|e| err(&e))?;
            chart.configure_mesh().x_desc("seconds").y_desc("packets/s").draw().map_err(|e| err(&e))?;
            chart
                .draw_series(LineSeries::new(on.points.iter().map(|p| (secs(p.at_ns), p.dropped_pps)), RED.stroke_width(2)))
                .map_err(|e| err(&e))?;
            root.present().map_err(|e| err(&e))?;
        }
        Ok(svg)
    }

    /// Writes `summary.md` and one plot per ON (`on-<flow id in hex>.svg`)
    /// into `dir`, creating it; returns the files written.
    pub fn write_report(&self, dir: &Path) -> Result<Vec<PathBuf>, MonitorError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MonitorError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut written = Vec::new();
        let summary = dir.join("summary.md");
        std::fs::write(&summary, self.summary()).map_err(io(&summary))?;
        written.push(summary);
        for flow in self.flows() {
            let path = dir.join(plot_file_name(flow));
            std::fs::write(&path, self.plot_svg(flow)?).map_err(io(&path))?;
            written.push(path);
        }
        Ok(written)
    }
}

fn path_totals(c: &RecoveryCounters, seen_pps: f64, loss_fraction: f64, state: PathState) -> PathHealth {
    PathHealth { seen: arrivals(c), lost: c.lost, out_of_order: c.out_of_order, seen_pps, loss_fraction, state }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / NANOS_PER_SEC
}

fn flow_name(flow: FlowId) -> String {
    format!("{:#010x}", flow.0)
}

fn plot_file_name(flow: FlowId) -> String {
    format!("on-{:08x}.svg", flow.0)
}

fn describe(a: &Alert) -> String {
    let what = match a.kind {
        AlertKind::ThroughputLow => "throughput below the band (bit/s)".to_string(),
        AlertKind::ThroughputHigh => "throughput above the band (bit/s)".to_string(),
        AlertKind::Drops => "drops over contract (fraction)".to_string(),
        AlertKind::Loss => "loss after recovery (fraction)".to_string(),
        AlertKind::PathLoss(p) => format!("loss on path {} (fraction)", p.0),
        AlertKind::PathSilent(p) => format!("path {} silent (packets/s)", p.0),
    };
    let bound = match a.bound {
        Bound::AtLeast(b) => format!("at least {b}"),
        Bound::AtMost(b) => format!("at most {b}"),
        Bound::Above(b) => format!("above {b}"),
    };
    format!("at {:.3} s, ON {}: {what} {:.4}, bound {bound}", secs(a.at_ns), flow_name(a.flow), a.measured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frer::{Recovery, RecoveryConfig};
    use crate::partition::{PartitionConfig, Reservation, Resources, Standing, Verdict};

    const SEC: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn monitor() -> Monitor {
        Monitor::new(NonZeroUsize::new(100).unwrap())
    }

    fn counters(passed: u64, dropped: u64, bytes: u64) -> Counters {
        Counters { passed_packets: passed, passed_bytes: bytes, dropped_packets: dropped, dropped_bytes: dropped * 100 }
    }

    fn sample(at_ns: u64, on: Counters) -> Sample {
        Sample { at_ns, on, recovery: None, paths: Vec::new() }
    }

    #[test]
    fn profiles_are_checked() {
        assert_eq!(OnProfile::new(2, 1, 0.0, 0.0), Err(InvalidProfile::EmptyBand { min_bps: 2, max_bps: 1 }));
        assert!(matches!(OnProfile::new(0, 1, 1.5, 0.0), Err(InvalidProfile::Fraction { what: "max drop fraction", .. })));
        assert!(matches!(OnProfile::new(0, 1, 0.0, f64::NAN), Err(InvalidProfile::Fraction { what: "max loss fraction", .. })));
        assert!(OnProfile::new(1, 1, 1.0, 0.0).is_ok());
    }

    /// An ON over its contract: drops above the profile raise one alert,
    /// however long they last, and it clears once when they stop.
    #[test]
    fn an_on_over_contract_raises_one_alert_and_clears_it() {
        let flow = FlowId(42);
        let mut m = monitor();
        m.watch(flow, OnProfile::new(0, 10_000_000, 0.01, 0.0).unwrap()).unwrap();
        assert_eq!(m.watch(flow, OnProfile::new(0, 1, 0.0, 0.0).unwrap()).unwrap_err().to_string(), "flow FlowId(42) is watched already");
        // 1,000 packets of 1,000 bytes a second: 8 Mbit/s, within the band.
        let mut c = counters(0, 0, 0);
        assert!(m.record(flow, sample(0, c)).unwrap().is_empty());
        c = counters(1_000, 5, 1_000_000);
        assert!(m.record(flow, sample(SEC, c)).unwrap().is_empty());
        // Then it sends 20 % over its contract, for three seconds.
        let mut raised = Vec::new();
        for s in 2..5 {
            c.passed_packets += 1_000;
            c.passed_bytes += 1_000_000;
            c.dropped_packets += 250;
            raised.extend(m.record(flow, sample(s * SEC, c)).unwrap());
        }
        assert_eq!(raised.len(), 1, "{raised:?}");
        let Event::Raised(a) = raised[0] else { panic!("{raised:?}") };
        assert_eq!((a.flow, a.kind, a.measured, a.bound, a.at_ns), (flow, AlertKind::Drops, 0.2, Bound::AtMost(0.01), 2 * SEC));
        assert_eq!(m.active_alerts(flow).count(), 1);
        // Back within the contract: cleared, once.
        c.passed_packets += 1_000;
        c.passed_bytes += 1_000_000;
        let events = m.record(flow, sample(5 * SEC, c)).unwrap();
        assert_eq!(events, vec![Event::Cleared { alert: a, at_ns: 5 * SEC }]);
        c.passed_packets += 1_000;
        c.passed_bytes += 1_000_000;
        assert!(m.record(flow, sample(6 * SEC, c)).unwrap().is_empty());
        assert_eq!(m.active_alerts(flow).count(), 0);
        assert_eq!(m.events(flow).count(), 2);
        let last = *m.points(flow).last().unwrap();
        assert_eq!((last.bps, last.pps, last.dropped_pps, last.drop_fraction), (8e6, 1_000.0, 0.0, 0.0));
    }

    #[test]
    fn the_rate_band_is_checked_both_ways() {
        let flow = FlowId(1);
        let mut m = monitor();
        m.watch(flow, OnProfile::new(1_000_000, 2_000_000, 1.0, 1.0).unwrap()).unwrap();
        m.record(flow, sample(0, counters(0, 0, 0))).unwrap();
        // 125,000 bytes in half a second: 2 Mbit/s exactly, within.
        assert!(m.record(flow, sample(SEC / 2, counters(100, 0, 125_000))).unwrap().is_empty());
        // 10,000 bytes in a second: 80 kbit/s, low.
        let e = m.record(flow, sample(3 * SEC / 2, counters(110, 0, 135_000))).unwrap();
        assert!(
            matches!(e[..], [Event::Raised(Alert { kind: AlertKind::ThroughputLow, measured, bound: Bound::AtLeast(b), .. })] if measured == 80_000.0 && b == 1e6)
        );
        // 1 MB in a second: 8 Mbit/s, high: low clears, high is raised.
        let e = m.record(flow, sample(5 * SEC / 2, counters(1_110, 0, 1_135_000))).unwrap();
        assert!(
            matches!(
                e[..],
                [
                    Event::Cleared { alert: Alert { kind: AlertKind::ThroughputLow, .. }, .. },
                    Event::Raised(Alert { kind: AlertKind::ThroughputHigh, .. })
                ]
            ),
            "{e:?}"
        );
    }

    #[test]
    fn samples_must_advance_and_the_on_be_watched() {
        let mut m = monitor();
        assert!(matches!(m.record(FlowId(9), sample(0, counters(0, 0, 0))), Err(MonitorError::NotWatched(FlowId(9)))));
        m.watch(FlowId(9), OnProfile::new(0, u64::MAX, 1.0, 1.0).unwrap()).unwrap();
        m.record(FlowId(9), sample(SEC, counters(0, 0, 0))).unwrap();
        assert!(matches!(
            m.record(FlowId(9), sample(SEC, counters(1, 0, 1))),
            Err(MonitorError::TimeNotAdvancing { last_ns: SEC, at_ns: SEC, .. })
        ));
        // The refused sample left the last one in place.
        m.record(FlowId(9), sample(2 * SEC, counters(10, 0, 1_000))).unwrap();
        assert_eq!(m.points(FlowId(9)).next().unwrap().pps, 10.0);
        // Counters that go down restarted from zero (a reservation made again).
        m.record(FlowId(9), sample(3 * SEC, counters(4, 0, 400))).unwrap();
        assert_eq!(m.points(FlowId(9)).last().unwrap().pps, 4.0);
        assert!(m.unwatch(FlowId(9)));
        assert!(!m.unwatch(FlowId(9)));
    }

    /// Two disjoint paths, each with its own individual recovery, and the
    /// ON's duplicate elimination at the egress. Path 2 stops delivering:
    /// it is reported silent (its recovery counts nothing lost, since no
    /// number leaves its window), while the ON loses nothing; when it comes
    /// back with a gap, its loss is measured and the silence clears.
    #[test]
    fn a_path_that_stops_delivering_is_unhealthy() {
        let flow = FlowId(7);
        let cfg = RecoveryConfig::new(256, 10 * SEC).unwrap();
        let (mut merged, mut p1, mut p2) = (Recovery::new(cfg), Recovery::new(cfg), Recovery::new(cfg));
        let mut m = monitor();
        m.watch(flow, OnProfile::new(0, u64::MAX, 0.0, 0.05).unwrap()).unwrap();
        let mut seq = 0u32;
        let mut on = Counters::default();
        let mut all_events = Vec::new();
        // Four intervals of 100 ms, 100 packets each: path 2 is dead in the
        // second and third, and back (losing nothing more) in the fourth.
        for interval in 0..=4u64 {
            if interval > 0 {
                for _ in 0..100 {
                    let now = interval * 100 * MS;
                    p1.accept(seq, now);
                    merged.accept(seq, now);
                    if !(2..=3).contains(&interval) {
                        p2.accept(seq, now);
                        merged.accept(seq, now);
                    }
                    on.passed_packets += 1;
                    on.passed_bytes += 500;
                    seq += 1;
                }
            }
            let s = Sample {
                at_ns: interval * 100 * MS,
                on,
                recovery: Some(merged.counters()),
                paths: vec![(PathId(1), p1.counters()), (PathId(2), p2.counters())],
            };
            let events = m.record(flow, s).unwrap();
            let health: BTreeMap<PathId, PathState> = m.paths(flow).map(|(id, h)| (id, h.state)).collect();
            match interval {
                0 => assert_eq!(health[&PathId(2)], PathState::Unknown),
                1 => assert_eq!(health.values().copied().collect::<Vec<_>>(), [PathState::Healthy; 2]),
                2 | 3 => {
                    assert_eq!(health[&PathId(1)], PathState::Healthy);
                    assert_eq!(health[&PathId(2)], PathState::Silent, "interval {interval}");
                }
                _ => {}
            }
            all_events.extend(events);
        }
        // Path 2's comeback skips 200 numbers (100..=299); by the end of the
        // fourth interval its window of 256 has moved past 100..=143: 44 lost,
        // a fraction 44 / 144 of the interval's numbers.
        let h2 = *m.paths(flow).find(|(id, _)| *id == PathId(2)).unwrap().1;
        assert_eq!((h2.seen, h2.lost, h2.out_of_order, h2.state), (200, 44, 1, PathState::Lossy));
        assert_eq!(h2.loss_fraction, 44.0 / 144.0);
        let kinds: Vec<(bool, AlertKind)> = all_events
            .iter()
            .map(|e| match e {
                Event::Raised(a) => (true, a.kind),
                Event::Cleared { alert, .. } => (false, alert.kind),
            })
            .collect();
        assert_eq!(
            kinds,
            [(true, AlertKind::PathSilent(PathId(2))), (false, AlertKind::PathSilent(PathId(2))), (true, AlertKind::PathLoss(PathId(2)))]
        );
        // The ON itself lost nothing: path 1 carried every number.
        assert_eq!(merged.counters().lost, 0);
        assert!(m.points(flow).all(|p| p.loss_fraction == Some(0.0)));
    }

    /// Samples taken from a real partition, and the report written out.
    #[test]
    fn the_report_files_are_written() {
        let cfg = PartitionConfig {
            capacity: Resources { bps: 1_000_000_000, pps: 1_000_000, units: 100 },
            unreserved_burst_bytes: 15_000,
            unreserved_burst_packets: 10,
        };
        let mut p = Partition::new(cfg, 0);
        let mut m = monitor();
        let (a, b) = (FlowId(0xa), FlowId(0xb));
        for f in [a, b] {
            p.reserve(f, Reservation::new(Resources { bps: 8_000_000, pps: 10_000, units: 1 }, 10_000, 10).unwrap(), Standing::Active, 0)
                .unwrap();
            m.watch(f, OnProfile::new(1_000_000, 9_000_000, 0.01, 0.01).unwrap()).unwrap();
        }
        // ON a sends 1,000-byte packets at 1,000 a second (8 Mbit/s, its
        // contract); ON b at twice that from the fifth second on.
        for ms in 0..10_000u64 {
            let now = ms * MS;
            assert_eq!(p.serve(Some(a), 1_000, now), Verdict::Pass);
            let _ = p.serve(Some(b), 1_000, now);
            if ms >= 5_000 {
                let _ = p.serve(Some(b), 1_000, now + MS / 2);
            }
            if ms % 500 == 0 {
                for f in [a, b] {
                    m.record(f, Sample::from_partition(&p, f, now).unwrap()).unwrap();
                }
            }
        }
        assert_eq!(m.active_alerts(a).count(), 0);
        assert_eq!(m.active_alerts(b).map(|x| x.kind).collect::<Vec<_>>(), [AlertKind::Drops]);
        assert!(Sample::from_partition(&p, FlowId(0xc), 0).is_none());

        let dir = std::env::temp_dir().join(format!("vinet-overlay-monitor-{}", std::process::id()));
        let files = m.write_report(&dir).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["summary.md", "on-0000000a.svg", "on-0000000b.svg"]);
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() > 0, "{f:?} is empty");
        }
        let summary = std::fs::read_to_string(&files[0]).unwrap();
        assert!(summary.contains("## ON 0x0000000b") && summary.contains("drops over contract (fraction)"), "{summary}");
        let svg = std::fs::read_to_string(&files[2]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline") && svg.contains("dropped over contract"), "{svg}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(m.plot_svg(FlowId(0xc)), Err(MonitorError::NotWatched(_))));
    }
}
