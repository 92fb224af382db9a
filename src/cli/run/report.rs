//! The report of `vinetc run`: per installation what happened to its
//! packets and its metered cost per window against its certified bound, then
//! the router's totals, as text or JSON.

use std::collections::BTreeMap;
use std::path::Path;

use vinet_checker::bytecode::Const;
use vinet_engine::dispatch::ProgramStats;
use vinet_engine::pcap::CaptureError;
use vinet_engine::runner::RunnerStats;
use vinet_engine::window::WindowConfig;

use super::Args;

pub(super) fn show_const(c: &Const) -> String {
    vinet_vocab::params::value_text(c)
}

pub(super) struct Row {
    pub bundle: String,
    pub module: String,
    pub this_ip: String,
    pub this_subnet: Option<String>,
    pub params: Vec<(String, String)>,
    pub stats: ProgramStats,
    pub last_fault: Option<String>,
}

impl Row {
    /// Runs that completed (their cost was metered).
    fn ok_runs(&self) -> u64 {
        self.stats.windows - self.stats.faults
    }
    fn mean_cost(&self) -> f64 {
        if self.ok_runs() == 0 {
            0.0
        } else {
            self.stats.total_cost as f64 / self.ok_runs() as f64
        }
    }
    /// The bound over the worst run seen (at least 1 when the bound holds).
    fn ratio(&self) -> Option<f64> {
        (self.stats.max_cost > 0).then(|| self.stats.certified as f64 / self.stats.max_cost as f64)
    }
}

pub(super) fn print_text(args: &Args, rows: &[Row], st: &RunnerStats, cfg: WindowConfig, elapsed: std::time::Duration) {
    println!(
        "replayed {}: windows of {} packets or {} ms; {} installation{}",
        args.pcap.display(),
        cfg.packets,
        cfg.millis,
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    println!();
    let shown = rows.len().min(50);
    println!(
        "{:<28} {:<18} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "program",
        "client",
        "in",
        "discarded",
        "forwarded",
        "generated",
        "windows",
        "faults",
        "cost max",
        "cost mean",
        "bound",
        "bound/max"
    );
    for r in &rows[..shown] {
        let name = Path::new(&r.bundle).file_name().map_or_else(|| r.bundle.clone(), |n| n.to_string_lossy().into_owned());
        let client = r.this_subnet.clone().unwrap_or_else(|| r.this_ip.clone());
        let s = &r.stats;
        println!(
            "{:<28} {:<18} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9.1} {:>9} {:>9}",
            format!("{name} ({})", &r.module[..8]),
            client,
            s.packets_in,
            s.discarded,
            s.packets_in - s.discarded.min(s.packets_in),
            s.generated,
            s.windows,
            s.faults,
            s.max_cost,
            r.mean_cost(),
            s.certified,
            r.ratio().map_or_else(|| "-".to_string(), |x| format!("{x:.2}x")),
        );
        if let Some(f) = &r.last_fault {
            println!("    fault: {f}");
        }
    }
    if rows.len() > shown {
        let sum = |f: fn(&ProgramStats) -> u64| rows[shown..].iter().map(|r| f(&r.stats)).sum::<u64>();
        println!(
            "... and {} more installations: {} in, {} discarded, {} generated, {} faults",
            rows.len() - shown,
            sum(|s| s.packets_in),
            sum(|s| s.discarded),
            sum(|s| s.generated),
            sum(|s| s.faults)
        );
    }
    println!();
    println!(
        "router: {} frames in ({} IPv4 or IPv6), {} forwarded, {} dropped, {} generated, {} unparsed, {} not IP; {} windows, {} runs, {} faults; {:.1} ms",
        st.frames_in,
        st.packets_in,
        st.forwarded,
        st.discarded,
        st.generated,
        st.unparsed,
        st.not_ip,
        st.windows,
        st.runs,
        st.faults,
        elapsed.as_secs_f64() * 1e3
    );
    if let Some(o) = &args.out {
        println!("wrote {}: {} frames", o.display(), st.forwarded + st.generated);
    }
}

pub(super) fn print_json(
    args: &Args, rows: &[Row], st: &RunnerStats, cfg: WindowConfig, elapsed: std::time::Duration, capture_error: Option<&CaptureError>,
) {
    use serde_json::json;
    let programs: Vec<_> = rows
        .iter()
        .map(|r| {
            let s = &r.stats;
            json!({
                "bundle": r.bundle,
                "module": r.module,
                "this_ip": r.this_ip,
                "this_subnet": r.this_subnet,
                "params": r.params.iter().cloned().collect::<BTreeMap<_, _>>(),
                "packets_in": s.packets_in,
                "discarded": s.discarded,
                "forwarded": s.packets_in - s.discarded.min(s.packets_in),
                "generated": s.generated,
                "skipped_generations": s.skipped_generations,
                "windows": s.windows,
                "faults": s.faults,
                "cost_max": s.max_cost,
                "cost_mean": r.mean_cost(),
                "certified": s.certified,
                "bound_over_max": r.ratio(),
                "last_fault": r.last_fault,
            })
        })
        .collect();
    println!(
        "{}",
        json!({
            "capture": args.pcap.display().to_string(),
            "window_packets": cfg.packets,
            "window_ms": cfg.millis,
            "programs": programs,
            "router": {
                "frames_in": st.frames_in,
                "packets_in": st.packets_in,
                "forwarded": st.forwarded,
                "dropped": st.discarded,
                "generated": st.generated,
                "unparsed": st.unparsed,
                "not_ip": st.not_ip,
                "fragment_verdicts": st.fragment_verdicts,
                "skipped_generations": st.skipped_generations,
                "windows": st.windows,
                "runs": st.runs,
                "faults": st.faults,
            },
            "out": args.out.as_ref().map(|p| p.display().to_string()),
            "capture_error": capture_error.map(|e| e.to_string()),
            "elapsed_ms": elapsed.as_secs_f64() * 1e3,
        })
    );
}
