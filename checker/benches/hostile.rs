//! The checker's bounded work, measured: families of hostile bundles (deep
//! sharing, many substitutions, many premises, many hypotheses, many branches
//! times many registers, the largest bundle a router takes) against the
//! ordinary bundles of the examples. For each: its size, the median check
//! time over alternating rounds, the time per KiB as a ratio to the ordinary
//! bundles' worst, and the peak heap memory while checking.
//!
//! ```text
//! cargo bench -p vinet-checker --bench hostile            # 7 rounds
//! cargo bench -p vinet-checker --bench hostile -- --quick  # 1 round
//! ```
#![allow(unsafe_code)] // the counting allocator

#[path = "families.rs"]
mod families;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Instant;

struct Counting;
static NOW: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = NOW.fetch_add(l.size() as isize, Relaxed) + l.size() as isize;
        PEAK.fetch_max(now, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One check: (seconds, peak bytes above the start, outcome).
fn once(bytes: &[u8], policy: &vinet_checker::Policy, cache: &vinet_checker::cert::LemmaCache) -> (f64, isize, String) {
    let base = NOW.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let r = vinet_checker::check(bytes, policy, cache);
    let secs = t.elapsed().as_secs_f64();
    let peak = PEAK.load(Relaxed) - base;
    let outcome = match r {
        Ok(_) => "accepted".to_string(),
        Err(e) => {
            let e = e.to_string();
            if e.len() > 60 {
                format!("{}...", &e[..e.floor_char_boundary(57)])
            } else {
                e
            }
        }
    };
    (secs, peak, outcome)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 7 };
    let cache = families::lemmas();
    let ordinary = families::ordinary();
    let hostile = families::hostile();
    let user = families::end_user();
    let mut all: Vec<(String, Vec<u8>, vinet_checker::Policy, bool)> =
        ordinary.into_iter().map(|(n, b, p)| (n.to_string(), b, p, true)).collect();
    all.extend(hostile.into_iter().map(|(n, b)| (n.to_string(), b, user, false)));
    let mut times: Vec<Vec<f64>> = vec![vec![]; all.len()];
    let mut peaks = vec![0isize; all.len()];
    let mut outcomes = vec![String::new(); all.len()];
    // Alternate: every bundle once per round, so that noise hits all alike.
    for _ in 0..rounds {
        for (i, (_, bytes, policy, ordinary)) in all.iter().enumerate() {
            let reps = if *ordinary { 2_000 } else { 1 };
            let mut t = 0.0;
            for _ in 0..reps {
                let (s, peak, outcome) = once(bytes, policy, &cache);
                t += s;
                peaks[i] = peaks[i].max(peak);
                outcomes[i] = outcome;
            }
            times[i].push(t / reps as f64);
        }
    }
    let per_kib: Vec<f64> = times.iter_mut().zip(&all).map(|(t, (_, b, _, _))| median(t) / (b.len() as f64 / 1024.0)).collect();
    let worst_ordinary = all.iter().zip(&per_kib).filter(|((.., o), _)| *o).map(|(_, &x)| x).fold(0.0, f64::max);
    println!("| bundle | KiB | check (median of {rounds}) | per KiB | ratio to ordinary | peak heap | outcome |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for (i, (name, bytes, _, _)) in all.iter().enumerate() {
        let t = median(&mut times[i]);
        println!(
            "| {name} | {:.1} | {:.3} ms | {:.3} ms | {:.2} | {:.2} MiB | {} |",
            bytes.len() as f64 / 1024.0,
            t * 1e3,
            per_kib[i] * 1e3,
            per_kib[i] / worst_ordinary,
            peaks[i] as f64 / (1 << 20) as f64,
            outcomes[i]
        );
    }
}
