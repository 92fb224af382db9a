//! Results: each run's JSON, and its plot (SVG, with plotters): the fraction
//! of hosts infected over time when the scenario has a worm; the datagrams
//! delivered each second by traffic source, with the attacked routers'
//! refusals, when its script attacks a router; else the bytes each
//! router-to-router link carried, by class. A sweep adds one plot of the
//! infected fraction over time for each deployment, the mean over seeds with
//! the band from the lowest to the highest seed.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::run::RunResult;
use crate::scenario::{Placement, PlotKind};

/// The infected fraction of a run at time `t` (step function of the samples).
fn infected_at(r: &RunResult, t: f64) -> f64 {
    let n = r.hosts.max(1) as f64;
    r.samples.iter().take_while(|s| s.t <= t + 1e-9).last().map_or(0.0, |s| s.infected as f64 / n)
}

/// One deployment of a sweep, over its seeds.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Curve {
    /// Fraction of edge routers with vinet.
    pub fraction: f64,
    /// Placement.
    pub placement: Placement,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Time points.
    pub t: Vec<f64>,
    /// Mean infected fraction.
    pub mean: Vec<f64>,
    /// Lowest over seeds.
    pub min: Vec<f64>,
    /// Highest over seeds.
    pub max: Vec<f64>,
    /// Final infected fraction of each seed.
    pub final_infected: Vec<f64>,
    /// When the blocker went in (first upload event), per seed.
    pub deployed_at: Vec<Option<f64>>,
}

/// Aggregate the runs of a sweep into curves, one per (fraction, placement).
pub fn curves(runs: &[RunResult], step: f64) -> Vec<Curve> {
    let mut groups: BTreeMap<(u64, String), Vec<&RunResult>> = BTreeMap::new();
    for r in runs {
        groups.entry(((r.fraction * 1e6).round() as u64, format!("{:?}", r.placement))).or_default().push(r);
    }
    let mut out = vec![];
    for rs in groups.values() {
        let duration = rs.iter().map(|r| r.duration).fold(0.0, f64::max);
        let n = (duration / step).round() as usize;
        let t: Vec<f64> = (0..=n).map(|i| i as f64 * step).collect();
        let (mut mean, mut min, mut max) = (vec![], vec![], vec![]);
        for x in &t {
            let v: Vec<f64> = rs.iter().map(|r| infected_at(r, *x)).collect();
            mean.push(v.iter().sum::<f64>() / v.len() as f64);
            min.push(v.iter().copied().fold(f64::INFINITY, f64::min));
            max.push(v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
        out.push(Curve {
            fraction: rs[0].fraction,
            placement: rs[0].placement,
            seeds: rs.iter().map(|r| r.seed).collect(),
            t,
            mean,
            min,
            max,
            final_infected: rs.iter().map(|r| infected_at(r, r.duration)).collect(),
            deployed_at: rs.iter().map(|r| r.events.iter().find(|e| e.action.starts_with("upload")).map(|e| e.done)).collect(),
        });
    }
    out
}

fn plot_err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

/// Whether an event of the log is an attack on a router.
/// A chart of series over a run's seconds.
type TimeChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// A panel over a run's seconds: its caption, `0..duration` by `0..top`, its y label.
fn time_panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>, caption: &str, y_desc: &str, duration: f64, top: f64,
) -> Result<TimeChart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..duration, 0f64..top)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("seconds").y_desc(y_desc).draw().map_err(plot_err)?;
    Ok(chart)
}

/// The series' legend, boxed, at `pos`.
fn legend<'a, 'b: 'a>(chart: &mut TimeChart<'a, 'b>, pos: SeriesLabelPosition) -> Result<(), String> {
    chart.configure_series_labels().position(pos).border_style(BLACK).background_style(WHITE.mix(0.85)).draw().map_err(plot_err)
}

fn hostile(action: &str) -> bool {
    action.starts_with("flood") || action.starts_with("forged") || action.starts_with("unsafe")
}

/// The plot of one run.
pub fn plot_run(r: &RunResult, path: &Path) -> Result<(), String> {
    let worm = r.host_results.iter().any(|h| h.summary.scans_sent > 0 || h.summary.infected_at.is_some());
    let kind = r.plot.unwrap_or(if worm {
        PlotKind::Infected
    } else if r.events.iter().any(|e| hostile(&e.action)) {
        PlotKind::Delivery
    } else {
        PlotKind::Links
    });
    if kind == PlotKind::Delivery {
        return plot_delivery(r, path);
    }
    if kind == PlotKind::Overlay {
        return plot_overlay(r, path);
    }
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    if kind == PlotKind::Infected {
        let edges: std::collections::BTreeSet<&str> = r.host_results.iter().map(|h| h.router.as_str()).collect();
        let caption = format!(
            "{} (seed {}): hosts infected, {} of {} edge routers with vinet ({:?})",
            r.scenario,
            r.seed,
            r.vinet_routers.len(),
            edges.len(),
            r.placement
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..r.duration, 0f64..1.0)
            .map_err(plot_err)?;
        chart.configure_mesh().x_desc("seconds").y_desc("fraction of hosts infected").draw().map_err(plot_err)?;
        let pts: Vec<(f64, f64)> = r.samples.iter().map(|s| (s.t, s.infected as f64 / r.hosts.max(1) as f64)).collect();
        chart
            .draw_series(LineSeries::new(pts, RED.stroke_width(2)))
            .map_err(plot_err)?
            .label("infected")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
        let vuln = r.vulnerable as f64 / r.hosts.max(1) as f64;
        chart
            .draw_series(LineSeries::new(vec![(0.0, vuln), (r.duration, vuln)], BLACK.mix(0.4)))
            .map_err(plot_err)?
            .label("vulnerable")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.4)));
        for e in r.events.iter().filter(|e| e.action.starts_with("upload")) {
            chart.draw_series(LineSeries::new(vec![(e.done, 0.0), (e.done, 1.0)], BLUE.mix(0.6))).map_err(plot_err)?;
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(plot_err)?;
    } else {
        let links: Vec<_> = r.links.iter().filter(|l| !l.host_link).collect();
        let classes: Vec<String> = links.first().map(|l| l.classes.keys().cloned().collect()).unwrap_or_default();
        let kb = |b: u64| b as f64 / 1000.0;
        let top = links.iter().map(|l| kb(l.a_to_b.bytes + l.b_to_a.bytes)).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{} (seed {}): kB on each router-to-router link, by class", r.scenario, r.seed), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(10)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..links.len().max(1) as f64, 0f64..top * 1.15)
            .map_err(plot_err)?;
        chart.configure_mesh().disable_x_mesh().x_labels(0).y_desc("kB, both directions").draw().map_err(plot_err)?;
        let colours = [RED, BLUE, GREEN, MAGENTA, CYAN];
        let width = 0.8 / (classes.len() + 1) as f64;
        for (ci, c) in classes.iter().chain(std::iter::once(&"all".to_string())).enumerate() {
            let col = colours[ci % colours.len()];
            let bars = links.iter().enumerate().map(|(i, l)| {
                let v = if c == "all" { kb(l.a_to_b.bytes + l.b_to_a.bytes) } else { kb(l.classes.get(c).map_or(0, |x| x[0] + x[1])) };
                let x0 = i as f64 + 0.1 + ci as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, v)], col.filled())
            });
            chart
                .draw_series(bars)
                .map_err(plot_err)?
                .label(c.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled()));
        }
        let names = links.iter().enumerate().map(|(i, l)| Text::new(l.name.clone(), (i as f64 + 0.1, top * 1.1), ("sans-serif", 14)));
        chart.draw_series(names).map_err(plot_err)?;
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Datagrams delivered in each second, summed over receivers, by traffic source.
fn delivery_series(r: &RunResult) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let secs = r.duration.ceil() as usize;
    for h in &r.host_results {
        for (name, v) in &h.summary.received_per_second {
            let s = out.entry(name.clone()).or_insert_with(|| vec![0; secs]);
            for (i, n) in v.iter().enumerate().take(secs) {
                s[i] += n;
            }
        }
    }
    out
}

/// The delivery plot: on the left the datagrams delivered each second by
/// traffic source, the floods shaded, the uploads marked (blue: legitimate,
/// red: hostile); on the right each attacked router's refusals by reason
/// (log scale), from its metrics page at the end.
fn plot_delivery(r: &RunResult, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1100, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    // Refusals, over every vinetd (each scenario attacks its routers; the names say whose).
    let mut bars: Vec<(String, f64)> = vec![];
    for (router, m) in &r.router_metrics {
        for (k, v) in m {
            let Some(reason) = k.strip_prefix("vinet_refusals_total{reason=\"").and_then(|x| x.strip_suffix("\"}")) else { continue };
            if *v > 0.0 {
                bars.push((format!("{router}: {reason}"), *v));
            }
        }
        if let Some(v) = m.get("vinet_connections_shed_total").filter(|v| **v > 0.0) {
            bars.push((format!("{router}: shed"), *v));
        }
        if let Some(v) = m.get("vinet_retries_answered_total").filter(|v| **v > 0.0) {
            bars.push((format!("{router}: retry answered"), *v));
        }
        if let Some(v) = m.get("vinet_admissions_total").filter(|v| **v > 0.0) {
            bars.push((format!("{router}: ADMITTED"), *v));
        }
    }
    // No vinetd, no refusals: the left panel takes the width.
    let (left, right) = root.split_horizontally(if bars.is_empty() { 1100 } else { 720 });
    let series = delivery_series(r);
    let top = series.values().flatten().copied().max().unwrap_or(1).max(1) as f64 * 1.25;
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("{} (seed {}): datagrams delivered a second", r.scenario, r.seed), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..r.duration, 0f64..top)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("seconds").y_desc("datagrams delivered in the second").draw().map_err(plot_err)?;
    // Floods: "... for S s" in the action.
    for e in r.events.iter().filter(|e| e.action.starts_with("flood")) {
        let secs: f64 = e.action.rsplit(" for ").next().and_then(|x| x.trim_end_matches(" s").parse().ok()).unwrap_or(0.0);
        chart
            .draw_series(std::iter::once(Rectangle::new([(e.t, 0.0), ((e.t + secs).min(r.duration), top)], RED.mix(0.05).filled())))
            .map_err(plot_err)?;
    }
    let palette = [BLUE, GREEN, BLACK, MAGENTA, CYAN, RGBColor(255, 140, 0)];
    for (i, (name, v)) in series.iter().enumerate() {
        let col = palette[i % palette.len()];
        // Lines that coincide (equal rates) stay visible: the first ones are drawn wider.
        let width = 2 + 2 * (series.len() - 1 - i) as u32;
        // The count of second i is drawn at its middle; the last second, cut by the run's end, is left out.
        let pts: Vec<(f64, f64)> = v.iter().enumerate().take(v.len().saturating_sub(1)).map(|(i, n)| (i as f64 + 0.5, *n as f64)).collect();
        chart
            .draw_series(LineSeries::new(pts, col.stroke_width(width)))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
    }
    let mut marked = (false, false);
    for e in r.events.iter().filter(|e| e.action.contains("upload")) {
        let bad = hostile(&e.action);
        let col = if bad { RED } else { BLUE };
        let s = chart.draw_series(LineSeries::new(vec![(e.t, 0.0), (e.t, top)], col.mix(0.7).stroke_width(1))).map_err(plot_err)?;
        if bad && !marked.1 {
            marked.1 = true;
            s.label("hostile upload (none admitted)").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.mix(0.7)));
        } else if !bad && !marked.0 {
            marked.0 = true;
            s.label("legitimate upload").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.mix(0.7)));
        }
    }
    let mut marked_link = false;
    for e in r.events.iter().filter(|e| e.action.starts_with("link ")) {
        let s = chart.draw_series(LineSeries::new(vec![(e.t, 0.0), (e.t, top)], BLACK.mix(0.5).stroke_width(2))).map_err(plot_err)?;
        if !marked_link {
            marked_link = true;
            s.label("a link fails / comes back").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
        }
    }
    if r.events.iter().any(|e| e.action.starts_with("flood")) {
        chart
            .draw_series(std::iter::once(Rectangle::new([(0.0, 0.0), (0.0, 0.0)], RED.mix(0.15).filled())))
            .map_err(plot_err)?
            .label("admission port flooded")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], RED.mix(0.15).filled()));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;

    if bars.is_empty() {
        root.present().map_err(plot_err)?;
        return Ok(());
    }
    let hi = bars.iter().map(|b| b.1).fold(10.0, f64::max) * 3.0;
    let mut chart = ChartBuilder::on(&right)
        .caption("vinetd: refusals by reason (log)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d((0.5f64..hi).log_scale(), 0f64..bars.len().max(1) as f64)
        .map_err(plot_err)?;
    chart.configure_mesh().disable_y_mesh().y_labels(0).x_desc("count").draw().map_err(plot_err)?;
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = bars.len() as f64 - i as f64 - 1.0;
        let col = if label.ends_with("ADMITTED") {
            BLUE
        } else if label.ends_with("retry answered") {
            BLACK
        } else {
            RED
        };
        chart.draw_series(std::iter::once(Rectangle::new([(0.5, y + 0.15), (*v, y + 0.85)], col.mix(0.6).filled()))).map_err(plot_err)?;
        chart.draw_series(std::iter::once(Text::new(format!("{label} {v}"), (0.6, y + 0.5), ("sans-serif", 13)))).map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Per GRE source, (t, packets a second delivered, offered, Mbit/s delivered)
/// between consecutive overlay samples, at the middle of each interval.
pub fn gre_rates(r: &RunResult) -> BTreeMap<String, Vec<(f64, f64, f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    let Some(o) = &r.overlay else { return out };
    for w in o.samples.windows(2) {
        let dt = w[1].t - w[0].t;
        if dt <= 0.05 {
            continue;
        }
        for (name, b) in &w[1].gre {
            let a = w[0].gre.get(name).copied().unwrap_or_default();
            let d = |i: usize| b[i].saturating_sub(a[i]) as f64 / dt;
            out.entry(name.clone()).or_default().push(((w[0].t + w[1].t) / 2.0, d(2), d(0), d(3) * 8.0 / 1e6));
        }
    }
    out
}

/// The overlay plot: on the left each GRE source's packets delivered a
/// second (solid; offered: dotted) with each ON's contract; in the middle
/// the throughput delivered of every source, GRE and UDP (Mbit/s); on the
/// right each vinetd's reserved packets a second. The script's overlay
/// events (requests, releases, managers stopped and started) are marked.
fn plot_overlay(r: &RunResult, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1350, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let panels = root.split_evenly((1, 3));
    let rates = gre_rates(r);
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, RGBColor(255, 140, 0), BLACK];
    // One colour per source, the same in both panels.
    let mut names: Vec<String> = rates.keys().cloned().collect();
    names.extend(delivery_series(r).into_keys());
    names.sort();
    names.dedup();
    let colour = |n: &str| palette[names.iter().position(|x| x == n).unwrap_or(0) % palette.len()];
    let contracts: Vec<(String, f64)> =
        r.overlay.as_ref().map_or(vec![], |o| o.contracts.iter().map(|(k, v)| (k.clone(), v[0] as f64)).collect());
    let marks: Vec<(f64, String)> = r
        .events
        .iter()
        .filter(|e| {
            e.action.starts_with("on-")
                || e.action.contains("manager")
                || e.action.contains("crash at")
                || e.action.starts_with("link ")
                || e.action.starts_with("start ")
                || e.action.starts_with("stop ")
        })
        .map(|e| (e.t, e.action.split(" (").next().unwrap_or("").to_string()))
        .collect();
    // A long script: only the crash points are labelled (the other events are lines).
    let marks: Vec<(f64, String)> = if marks.len() > 12 {
        let crashes: Vec<(f64, String)> = r
            .events
            .iter()
            .filter_map(|e| {
                let point = e.action.split("crash at ").nth(1)?.trim_end_matches(')');
                let who = e.action.split(" on ").nth(1).and_then(|x| x.split(' ').next()).unwrap_or("manager");
                Some((e.t, format!("{who}: {point}")))
            })
            .collect();
        marks.iter().map(|(t, _)| (*t, crashes.iter().find(|c| (c.0 - t).abs() < 1e-9).map_or(String::new(), |c| c.1.clone()))).collect()
    } else {
        marks
    };
    let draw_marks = |chart: &mut Chart<'_, '_>, top: f64| -> Result<(), String> {
        for (i, (t, label)) in marks.iter().enumerate() {
            chart.draw_series(LineSeries::new(vec![(*t, 0.0), (*t, top)], BLACK.mix(0.25))).map_err(plot_err)?;
            let y = top * (0.97 - 0.045 * (i % 8) as f64);
            chart.draw_series(std::iter::once(Text::new(label.clone(), (*t, y), ("sans-serif", 10)))).map_err(plot_err)?;
        }
        Ok(())
    };
    // No traffic at all (a control-plane scenario): the reservations alone, the width of the plot.
    if rates.is_empty() && delivery_series(r).is_empty() {
        drop(panels);
        plot_reservations(r, &root, &draw_marks)?;
        root.present().map_err(plot_err)?;
        return Ok(());
    }
    // Left: GRE packets a second.
    let top = rates.values().flatten().map(|x| x.1.max(x.2)).fold(10.0, f64::max) * 1.3;
    let mut chart =
        time_panel(&panels[0], &format!("{}: GRE packets a second at the receiver", r.scenario), "packets a second", r.duration, top)?;
    draw_marks(&mut chart, top)?;
    for (i, (name, v)) in rates.iter().enumerate() {
        let col = colour(name);
        // Lines that coincide stay visible: the first ones are drawn wider.
        let width = 2 + 2 * (rates.len() - 1 - i) as u32;
        chart
            .draw_series(LineSeries::new(v.iter().map(|x| (x.0, x.1)), col.stroke_width(width)))
            .map_err(plot_err)?
            .label(format!("{name} delivered"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(v.iter().map(|x| (x.0, x.2)), 3, 3, col.mix(0.6).stroke_width(1)))
            .map_err(plot_err)?
            .label(format!("{name} offered"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.mix(0.6)));
    }
    for (name, pps) in contracts.iter().filter(|c| c.1 < top) {
        chart
            .draw_series(DashedLineSeries::new(vec![(0.0, *pps), (r.duration, *pps)], 6, 4, BLACK.stroke_width(1)))
            .map_err(plot_err)?
            .label(format!("ON {name}'s contract"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    // Middle: Mbit/s delivered, GRE and UDP.
    let mut mbit: BTreeMap<String, Vec<(f64, f64)>> =
        rates.iter().map(|(k, v)| (k.clone(), v.iter().map(|x| (x.0, x.3)).collect())).collect();
    let sizes = r.overlay.as_ref().map_or(BTreeMap::new(), |o| o.sizes.clone());
    for (name, v) in delivery_series(r) {
        let size = sizes.get(&name).copied().unwrap_or(200) as f64 + 28.0;
        let pts =
            v.iter().enumerate().take(v.len().saturating_sub(1)).map(|(i, n)| (i as f64 + 0.5, *n as f64 * size * 8.0 / 1e6)).collect();
        mbit.insert(name, pts);
    }
    let top = mbit.values().flatten().map(|x| x.1).fold(1.0, f64::max) * 1.3;
    let mut chart = time_panel(&panels[1], "throughput delivered (Mbit/s, IP)", "Mbit/s", r.duration, top)?;
    draw_marks(&mut chart, top)?;
    for (name, v) in &mbit {
        let col = colour(name);
        chart
            .draw_series(LineSeries::new(v.clone(), col.stroke_width(2)))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    // Right: inside the ON's tunnel (with a transfer), else the reserved pps per vinetd.
    if let Some(o) = r.overlay.as_ref().filter(|o| !o.transfers.is_empty()) {
        plot_transfers(r, o, &panels[2], &draw_marks)?;
        root.present().map_err(plot_err)?;
        return Ok(());
    }
    let mut reserved: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in r.overlay.iter().flat_map(|o| o.samples.iter()) {
        for (name, v) in &s.reserved {
            if v[1].is_finite() {
                reserved.entry(name.clone()).or_default().push((s.t, v[1]));
            }
        }
    }
    let top = reserved.values().flatten().map(|x| x.1).fold(1.0, f64::max) * 1.3;
    let mut chart = time_panel(&panels[2], "each vinetd's reserved packets a second", "reserved pps", r.duration, top)?;
    draw_marks(&mut chart, top)?;
    for (i, (name, v)) in reserved.iter().enumerate() {
        let col = palette[i % palette.len()];
        let width = 2 + 2 * (reserved.len() - 1 - i) as u32;
        chart
            .draw_series(LineSeries::new(v.clone(), col.stroke_width(width)))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// A control-plane scenario's plot: each vinetd's reserved packets a second
/// over time (its metrics page, every sample), and every router's (vinetd's
/// or a stand-alone participant's) at each `on-check`, from its leases.
fn plot_reservations(
    r: &RunResult, area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    draw_marks: &dyn Fn(&mut Chart<'_, '_>, f64) -> Result<(), String>,
) -> Result<(), String> {
    let mut sampled: BTreeMap<String, Points> = BTreeMap::new();
    for s in r.overlay.iter().flat_map(|o| o.samples.iter()) {
        for (name, v) in &s.reserved {
            if v[1].is_finite() {
                sampled.entry(name.clone()).or_default().push((s.t, v[1]));
            }
        }
    }
    let mut checked: BTreeMap<String, Points> = BTreeMap::new();
    let mut capacity = 0f64;
    for e in r.events.iter().filter(|e| e.action == "on-check") {
        let Ok(c) = serde_json::from_str::<crate::overlay::Check>(&e.outcome) else { continue };
        for (name, rc) in c.routers {
            capacity = capacity.max(rc.capacity.pps as f64);
            checked.entry(name).or_default().push((e.done, rc.reserved.pps as f64));
        }
    }
    let top = sampled.values().chain(checked.values()).flatten().map(|x| x.1).fold(capacity.max(1.0), f64::max) * 1.25;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: reserved packets a second, each vinetd (lines) and every router at each check (points)", r.scenario),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..r.duration, 0f64..top)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("seconds").y_desc("reserved pps").draw().map_err(plot_err)?;
    draw_marks(&mut chart, top)?;
    if capacity > 0.0 {
        chart
            .draw_series(DashedLineSeries::new(vec![(0.0, capacity), (r.duration, capacity)], 6, 4, BLACK.stroke_width(1)))
            .map_err(plot_err)?
            .label("a router's capacity")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, RGBColor(255, 140, 0), BLACK];
    let mut names: Vec<&String> = sampled.keys().chain(checked.keys()).collect();
    names.sort();
    names.dedup();
    for (i, name) in names.iter().enumerate() {
        let col = palette[i % palette.len()];
        if let Some(v) = sampled.get(*name) {
            let width = 2 + 2 * (names.len() - 1 - i) as u32;
            chart
                .draw_series(LineSeries::new(v.clone(), col.stroke_width(width)))
                .map_err(plot_err)?
                .label(format!("{name} (vinetd)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        }
        if let Some(v) = checked.get(*name) {
            let size = 3 + 2 * (names.len() - 1 - i) as u32;
            chart
                .draw_series(v.iter().map(|p| Circle::new(*p, size, col.filled())))
                .map_err(plot_err)?
                .label(format!("{name} at a check"))
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, col.filled()));
        }
    }
    legend(&mut chart, SeriesLabelPosition::MiddleLeft)?;
    Ok(())
}

/// (x, y) points of a line.
type Points = Vec<(f64, f64)>;

type Chart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// The transfers inside an ON's tunnel, as their receivers counted them
/// each second: TCP Mbit/s and UDP datagrams (in hundreds) a second, from
/// the `on-transfer` event on.
fn plot_transfers(
    r: &RunResult, o: &crate::overlay::OverlayResult, area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    draw_marks: &dyn Fn(&mut Chart<'_, '_>, f64) -> Result<(), String>,
) -> Result<(), String> {
    let starts: Vec<f64> = r.events.iter().filter(|e| e.action.starts_with("on-transfer")).map(|e| e.done).collect();
    let mut lines: Vec<(String, Points, RGBColor)> = vec![];
    for (i, t) in o.transfers.iter().enumerate() {
        let t0 = starts.get(i).copied().unwrap_or(0.0);
        let on = t["on"].as_str().unwrap_or("");
        let series = |k: &str, scale: f64| -> Vec<(f64, f64)> {
            let v: Vec<f64> = t["receiver"][k].as_array().map_or(vec![], |a| a.iter().filter_map(|x| x.as_f64()).collect());
            v.iter().enumerate().take(v.len().saturating_sub(1)).map(|(s, n)| (t0 + s as f64 + 0.5, n * scale)).collect()
        };
        lines.push((format!("{on}: TCP Mbit/s"), series("tcp_per_second", 8.0 / 1e6), BLUE));
        lines.push((format!("{on}: UDP datagrams a second / 100"), series("udp_per_second", 0.01), RED));
    }
    let top = lines.iter().flat_map(|l| l.1.iter().map(|x| x.1)).fold(1.0, f64::max) * 1.3;
    let mut chart = time_panel(area, "inside the ON, at the receiver", "a second", r.duration, top)?;
    draw_marks(&mut chart, top)?;
    for (label, pts, col) in lines {
        chart
            .draw_series(LineSeries::new(pts, col.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// The plot of a sweep: one curve per deployment, mean over seeds, band min..max.
pub fn plot_sweep(name: &str, curves: &[Curve], path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let duration = curves.iter().filter_map(|c| c.t.last().copied()).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{name}: fraction of hosts infected (mean over seeds, band: lowest to highest seed)"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..duration, 0f64..1.0)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("seconds").y_desc("fraction of hosts infected").draw().map_err(plot_err)?;
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK, RGBColor(255, 140, 0), RGBColor(128, 0, 128)];
    for (i, c) in curves.iter().enumerate() {
        let col = palette[i % palette.len()];
        let band: Vec<(f64, f64)> =
            c.t.iter().zip(&c.max).map(|(t, v)| (*t, *v)).chain(c.t.iter().zip(&c.min).rev().map(|(t, v)| (*t, *v))).collect();
        chart.draw_series(std::iter::once(Polygon::new(band, col.mix(0.12)))).map_err(plot_err)?;
        let style = if c.placement == Placement::Random { col.stroke_width(1) } else { col.stroke_width(3) };
        let label = format!("vinet on {:.0}% ({:?}), {} seeds", c.fraction * 100.0, c.placement, c.seeds.len());
        chart
            .draw_series(LineSeries::new(c.t.iter().zip(&c.mean).map(|(t, v)| (*t, *v)), style))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The plot of a sweep's outcome: the infected fraction at the end against
/// the fraction of edge routers with vinet, one line per placement (the
/// deployments at 0 and 1, the same for every placement, on each), the mean
/// over seeds with a bar from the lowest to the highest seed.
pub fn plot_final(name: &str, curves: &[Curve], path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (800, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{name}: hosts infected at the end, against vinet's deployment"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.03f64..1.03, 0f64..1.0)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("fraction of edge routers running vinet")
        .y_desc("fraction of hosts infected at the end")
        .draw()
        .map_err(plot_err)?;
    let mut placements: Vec<Placement> = curves.iter().map(|c| c.placement).filter(|p| *p != Placement::Listed).collect();
    placements.dedup();
    placements.sort_by_key(|p| format!("{p:?}"));
    placements.dedup();
    for (i, pl) in placements.iter().enumerate() {
        let col = [RED, BLUE, GREEN][i % 3];
        let mut pts: Vec<(f64, f64, f64, f64)> = curves
            .iter()
            .filter(|c| c.placement == *pl || c.fraction == 0.0 || c.fraction == 1.0)
            .map(|c| {
                let n = c.final_infected.len().max(1) as f64;
                let lo = c.final_infected.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = c.final_infected.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (c.fraction, c.final_infected.iter().sum::<f64>() / n, lo, hi)
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts.dedup_by(|a, b| a.0 == b.0);
        let dx = (i as f64 - 0.5) * 0.01;
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0 + dx, p.1)), col.stroke_width(2)))
            .map_err(plot_err)?
            .label(format!("placement: {pl:?}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|p| PathElement::new(vec![(p.0 + dx, p.2), (p.0 + dx, p.3)], col.stroke_width(2))))
            .map_err(plot_err)?;
        chart.draw_series(pts.iter().map(|p| Circle::new((p.0 + dx, p.1), 4, col.filled()))).map_err(plot_err)?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.85)).draw().map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Write a value as pretty JSON.
pub fn write_json<T: Serialize>(v: &T, path: &Path) -> Result<(), String> {
    std::fs::write(path, serde_json::to_string_pretty(v).map_err(|e| e.to_string())?).map_err(|e| format!("{}: {e}", path.display()))
}

/// Plot again from a results file: a run's JSON (to `run.svg` beside it) or
/// a sweep's `sweep.json` (to `infected.svg` and `final.svg` beside it).
/// Returns the (first) plot.
pub fn replot(json: &Path) -> Result<std::path::PathBuf, String> {
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    if let Ok(points) = serde_json::from_str::<Vec<LoadPoint>>(&text) {
        let out = json.with_file_name("load.svg");
        let name = json.parent().and_then(|d| d.file_name()).and_then(|n| n.to_str()).unwrap_or("load");
        plot_load(name, &points, &out)?;
        return Ok(out);
    }
    if let Ok(curves) = serde_json::from_str::<Vec<Curve>>(&text) {
        let out = json.with_file_name("infected.svg");
        let name = json.parent().and_then(|d| d.file_name()).and_then(|n| n.to_str()).unwrap_or("sweep");
        plot_sweep(name, &curves, &out)?;
        plot_final(name, &curves, &json.with_file_name("final.svg"))?;
        return Ok(out);
    }
    let r: RunResult = serde_json::from_str(&text).map_err(|e| format!("{}: neither a run nor a sweep: {e}", json.display()))?;
    let out = json.with_extension("svg");
    plot_run(&r, &out)?;
    Ok(out)
}

/// One run of a sweep over programs installed: how fast its `load` event's
/// uploads were admitted, and what the router forwarded after it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LoadPoint {
    /// Programs the load uploaded.
    pub programs: usize,
    /// The seed.
    pub seed: u64,
    /// Of them, admitted.
    pub admitted: usize,
    /// The router's refusals of the load, by reason.
    pub refused: BTreeMap<String, usize>,
    /// Seconds from the first upload to the last reply.
    pub upload_secs: f64,
    /// Uploads admitted per second.
    pub admitted_per_sec: f64,
    /// Median upload, connection to reply, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The seconds after the load measured: [from, to).
    pub window: (f64, f64),
    /// Datagrams sent a second in the window (every traffic source).
    #[serde(deserialize_with = "nan_if_null")]
    pub offered_pps: f64,
    /// Datagrams delivered a second in the window.
    #[serde(deserialize_with = "nan_if_null")]
    pub delivered_pps: f64,
    /// Datagrams delivered a second while the load ran (its whole seconds
    /// but the first and last), if it ran that long.
    pub delivered_pps_during_load: Option<f64>,
    /// The loaded vinetd's CPU time in the window, as a fraction of one core.
    #[serde(deserialize_with = "nan_if_null")]
    pub vinetd_cpu: f64,
    /// The same per delivered datagram, microseconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub cpu_us_per_packet: f64,
}

/// A figure that was not measured is NaN here and null in the JSON.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The points of a sweep over programs, in the order run. The window is
/// every whole second from one after the load ended to one before the run
/// ended (the first and last are cut by events and the end).
pub fn load_points(runs: &[RunResult]) -> Vec<LoadPoint> {
    let mut out = vec![];
    for r in runs {
        let Some(e) = r.events.iter().find(|e| e.load.is_some()) else { continue };
        let l = e.load.as_ref().expect("load");
        let router = e.action.rsplit(" to ").next().unwrap_or_default().to_string();
        let (from, to) = (e.done.ceil() as usize + 1, (r.duration.floor() as usize).saturating_sub(1));
        let sum = |f: &dyn Fn(&crate::agent::Summary) -> u64| r.host_results.iter().map(|h| f(&h.summary)).sum::<u64>();
        let window = |m: &BTreeMap<String, Vec<u64>>| m.values().map(|v| v.iter().take(to).skip(from).sum::<u64>()).sum::<u64>();
        // No whole second after the load: nothing measured (NaN, null in the JSON).
        let secs = if to > from { (to - from) as f64 } else { f64::NAN };
        let (sent, got) = (sum(&|s| window(&s.sent_per_second)), sum(&|s| window(&s.received_per_second)));
        let cpu_at = |t: usize| {
            r.samples.iter().find(|s| (s.t - t as f64).abs() < 1e-6).and_then(|s| s.router_cpu.get(&router).copied()).unwrap_or(f64::NAN)
        };
        let cpu = cpu_at(to) - cpu_at(from);
        let (lf, lt) = (e.t.ceil() as usize + 1, (e.done.floor() as usize).saturating_sub(1));
        let during = |m: &BTreeMap<String, Vec<u64>>| m.values().map(|v| v.iter().take(lt).skip(lf).sum::<u64>()).sum::<u64>();
        let during_load = (lt > lf).then(|| sum(&|s| during(&s.received_per_second)) as f64 / (lt - lf) as f64);
        out.push(LoadPoint {
            programs: l.programs,
            seed: r.seed,
            admitted: l.admitted,
            refused: l.refused.clone(),
            upload_secs: l.secs,
            admitted_per_sec: l.admitted_per_sec,
            p50_ms: l.p50_ms,
            p99_ms: l.p99_ms,
            window: (from as f64, to as f64),
            offered_pps: sent as f64 / secs,
            delivered_pps: got as f64 / secs,
            delivered_pps_during_load: during_load,
            vinetd_cpu: cpu / secs,
            cpu_us_per_packet: if got > 0 { cpu * 1e6 / got as f64 } else { f64::NAN },
        });
    }
    out
}

/// The plot of a sweep over programs installed (log scale): uploads
/// admitted a second; datagrams a second offered and delivered after the
/// load; the loaded vinetd's CPU time per delivered datagram. A point per run,
/// a line through the means.
pub fn plot_load(name: &str, points: &[LoadPoint], path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1200, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (title, body) = root.split_vertically(34);
    title
        .draw(&Text::new(
            format!("{name}: one vinet router with N programs installed (N uploads of the firewall, each its own instance)"),
            (12, 8),
            ("sans-serif", 18),
        ))
        .map_err(plot_err)?;
    let panels = body.split_evenly((1, 3));
    let hi_n = points.iter().map(|p| p.programs).max().unwrap_or(10).max(10) as f64 * 2.0;
    type Get = fn(&LoadPoint) -> f64;
    type Series = Vec<(Get, RGBColor, &'static str)>;
    let figures: [(&str, &str, Series); 3] = [
        ("uploads admitted per second", "uploads/s", vec![(|p| p.admitted_per_sec, BLUE, "admitted/s")]),
        (
            "datagrams a second through it, after the load",
            "datagrams/s",
            vec![(|p| p.offered_pps, BLACK, "offered"), (|p| p.delivered_pps, RED, "delivered")],
        ),
        ("its vinetd's CPU per delivered datagram", "microseconds", vec![(|p| p.cpu_us_per_packet, MAGENTA, "CPU us/datagram")]),
    ];
    for (panel, (caption, ydesc, series)) in panels.iter().zip(figures) {
        let top = points.iter().flat_map(|p| series.iter().map(move |(g, _, _)| g(p))).filter(|v| v.is_finite()).fold(1.0, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(38)
            .y_label_area_size(60)
            .build_cartesian_2d((0.5f64..hi_n).log_scale(), 0f64..top)
            .map_err(plot_err)?;
        chart.configure_mesh().x_desc("programs installed (log)").y_desc(ydesc).draw().map_err(plot_err)?;
        for (get, col, label) in series {
            let mut ns: Vec<usize> = points.iter().map(|p| p.programs).collect();
            ns.sort_unstable();
            ns.dedup();
            // A count with no measure (its window empty: the load ended too late) has no point.
            let means: Vec<(f64, f64)> = ns
                .iter()
                .filter_map(|n| {
                    let v: Vec<f64> = points.iter().filter(|p| p.programs == *n).map(get).filter(|v| v.is_finite()).collect();
                    (!v.is_empty()).then(|| (*n as f64, v.iter().sum::<f64>() / v.len() as f64))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(means, col.stroke_width(2)))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
            chart
                .draw_series(
                    points.iter().filter(|p| get(p).is_finite()).map(|p| Circle::new((p.programs as f64, get(p)), 4, col.filled())),
                )
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}
