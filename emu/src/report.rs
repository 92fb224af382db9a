//! Results: each run's JSON, and its plot (SVG, with plotters): the fraction
//! of hosts infected over time when the scenario has a worm, else the bytes
//! each router-to-router link carried, by class. A sweep adds one plot of the
//! infected fraction over time for each deployment, the mean over seeds with
//! the band from the lowest to the highest seed.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::run::RunResult;
use crate::scenario::Placement;

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

/// The plot of one run.
pub fn plot_run(r: &RunResult, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    if r.host_results.iter().any(|h| h.summary.scans_sent > 0 || h.summary.infected_at.is_some()) {
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
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(plot_err)?;
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
