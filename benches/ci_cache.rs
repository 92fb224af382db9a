//! `vinetc check` over a project of 1,000 programs (issue 14): from scratch
//! on one worker and on every core, again with nothing changed, and again
//! with one program changed; the times, and the ratio of a from-scratch run
//! to a run with one change. Two projects: the paper's shapes only (each
//! proved in well under a millisecond), and the same with every fourth
//! program a bounded `while` loop, whose proof asks z3 for Farkas
//! coefficients (tens of milliseconds each), as a team's larger programs do.
//! Each figure is the median of 3 runs.
//!
//! `cargo bench --bench ci_cache` (the figures are in benchmarks/checker.md)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PROGRAMS: usize = 1_000;

/// The `i`th program: one of the paper's shapes (or every fourth a loop),
/// with its own constants so that every program is a different module.
fn program(i: usize, salt: usize, loops: bool) -> String {
    let (a, b) = ((i >> 8) as u8, i as u8);
    match i % 4 {
        3 if loops => format!(
            "// loop {i}.{salt}\nLIFETIME = 1 days\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nn = 0;\n\
             while n < {} do begin\n  if COUNT(Mine) > 100 * n then\n    DISCARD(GROUP_BY_SOURCE(Mine, 203.0.{a}.{b}));\n  n = n + 1;\nend\n",
            2 + i % 5
        ),
        0 => format!(
            "// firewall {i}.{salt}\nLIFETIME = 2 days\nPARAM SrcIP = 203.0.{a}.{b};\n\
             MyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nBadPackets = GROUP_BY_SOURCE(MyPackets, SrcIP);\nDISCARD(BadPackets);\n"
        ),
        1 => format!(
            "// spam filter {i}.{salt}\nLIFETIME = 5 days\nPARAM Word1 = \"w{i}\";\nPARAM Word2 = \"lottery\";\n\
             MyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nSourceIP(i), Packets(i) = GROUP_BY_SOURCE(MyPackets);\n\
             foreach i do\n  if CONTAINS_STRING(Packets(i), Word1) and CONTAINS_STRING(Packets(i), Word2) then\n    DISCARD(Packets(i));\n"
        ),
        2 => format!(
            "// monitor {i}.{salt}\nLIFETIME = 1 days\nCLASS = monitoring\nMyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
             Total = COUNT(MyPackets);\nBig = Total > {i};\n"
        ),
        _ => format!(
            "// guard {i}.{salt}\nLIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nD(j), P(j) = GROUP_BY_SOURCE(Mine);\n\
             foreach j do\n  if D(j) == 198.51.{a}.{b} then\n    DISCARD(P(j));\n"
        ),
    }
}

fn project(dir: &Path, loops: bool) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("programs")).unwrap();
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/end-user.toml");
    std::fs::copy(policy, dir.join("end-user.toml")).unwrap();
    std::fs::write(dir.join("vinet.toml"), "[policies]\nend-user = \"end-user.toml\"\n\n[[program]]\npath = \"programs\"\n").unwrap();
    for i in 0..PROGRAMS {
        std::fs::write(dir.join(format!("programs/p{i:04}.vinet")), program(i, 0, loops)).unwrap();
    }
}

/// One `vinetc check` of the project; its time, and how many outcomes came from the cache.
fn check(dir: &Path, extra: &[&str]) -> (Duration, usize) {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_vinetc")).current_dir(dir).args(["check", "--format", "json"]).args(extra).output().unwrap();
    let elapsed = t.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), PROGRAMS);
    (elapsed, out.lines().filter(|l| l.contains("\"cached\":true")).count())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(loops: bool) {
    let dir: PathBuf = std::env::temp_dir().join(format!("vinet-ci-cache-bench-{}", std::process::id()));
    project(&dir, loops);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let scratch = |extra: &[&str]| {
        median(
            (0..3)
                .map(|_| {
                    let _ = std::fs::remove_dir_all(dir.join(".vinet-cache"));
                    let (t, cached) = check(&dir, extra);
                    assert_eq!(cached, 0);
                    t
                })
                .collect(),
        )
    };
    let one_worker = scratch(&["-j", "1"]);
    let all_workers = scratch(&[]);
    let unchanged = median(
        (0..3)
            .map(|_| {
                let (t, cached) = check(&dir, &[]);
                assert_eq!(cached, PROGRAMS);
                t
            })
            .collect(),
    );
    let one_changed = median(
        (1..=3)
            .map(|salt| {
                let i = salt * 97;
                std::fs::write(dir.join(format!("programs/p{i:04}.vinet")), program(i, salt, loops)).unwrap();
                let (t, cached) = check(&dir, &[]);
                assert_eq!(cached, PROGRAMS - 1);
                t
            })
            .collect(),
    );
    let what = if loops { "a quarter of them while loops (z3)" } else { "the paper's shapes" };
    println!("vinetc check, {PROGRAMS} programs, {what}, end-user policy ({cores} cores):");
    println!("  from scratch, 1 worker        {:>9.1} ms", ms(one_worker));
    println!("  from scratch, {cores} workers       {:>9.1} ms  (x{:.2} faster)", ms(all_workers), ms(one_worker) / ms(all_workers));
    println!("  nothing changed (all cached)  {:>9.1} ms", ms(unchanged));
    println!("  one program changed           {:>9.1} ms", ms(one_changed));
    println!("  from scratch / one changed    {:>9.1}", ms(all_workers) / ms(one_changed));
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    measure(false);
    measure(true);
}
