//! The metering benchmark (issue 9): does a certified unit cost about the
//! same time whatever the program does with it?
//!
//! Every program below is compiled, proved by the real prover and accepted by
//! the real checker under the shipped policies (with complexity_up, cost_up
//! and generated_bytes_up lifted, so that heavy programs are admitted), then
//! run by the VM as the router runs it over one window of W = 256 TCP
//! packets with 1,460-byte payloads (the most an Ethernet MTU carries), all
//! to the client. The figure of a program is its median time per run divided
//! by its certified complexity: nanoseconds per certified unit. The suite
//! is adversarial: loops of the dearest instructions (long strings copied,
//! joined, compared, loaded, searched for, sent; plain instructions;
//! payload scans), next to the paper's four programs. The table gives each
//! one's ratio to the paper's firewall (the target: at most 4).
//!
//! `cargo bench --bench metering` runs 7 alternating rounds and prints a
//! Markdown table (benchmarks/metering.md has the figures); `-- --quick`
//! runs one short round, a smoke run that checks every program is admitted
//! and runs within its certificate. Run without `--bench` (as
//! `cargo test --benches` does) it does the quick run too.

#[path = "../tests/router_support/mod.rs"]
mod router_support;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use router_support::{bench_quick, median, root};
use vinet_checker::cert::{encode_file, LemmaCache, LIBRARY_MAGIC};
use vinet_checker::Policy;
use vinet_engine::packet::LinkType;
use vinet_engine::vm::{Instance, Machine, Program, This};
use vinet_engine::window::Window;

const ME: u32 = 0x0a00_0007;
const W: usize = 256;
const PAYLOAD: usize = 1460;

struct Case {
    name: &'static str,
    policy: Policy,
    instance: Instance,
    complexity: u64,
    this: This,
    /// Run by the interpreter even where a packet-local plan exists.
    interpret: bool,
}

/// The adversarial programs: (name, edge-router policy, source).
fn adversarial() -> Vec<(&'static str, bool, String)> {
    let long = |n: usize| format!("\"{}\"", "a".repeat(n));
    let loop_of = |n: u32, body: &str| format!("n = 0;\nwhile n < {n} do begin\n{body}\n  n = n + 1;\nend\n");
    let nots = "  x = not x;\n".repeat(40);
    vec![
        ("instructions: 40 nots a turn", false, format!("LIFETIME = 1 hours\nx = true;\n{}", loop_of(1000, &nots))),
        ("join two 32,000-byte strings", false, format!("LIFETIME = 1 hours\nS = {};\n{}", long(32_000), loop_of(100, "  T = S + S;"))),
        (
            "compare two 65,000-byte strings",
            false,
            format!("LIFETIME = 1 hours\nS = {};\nU = S;\n{}", long(65_000), loop_of(100, "  b = S == U;")),
        ),
        ("copy a 65,000-byte string", false, format!("LIFETIME = 1 hours\nS = {};\n{}", long(65_000), loop_of(100, "  T = S;"))),
        ("load a 65,000-byte constant", false, format!("LIFETIME = 1 hours\n{}", loop_of(100, &format!("  T = {};", long(65_000))))),
        (
            "send a 65,000-byte string",
            false,
            format!("LIFETIME = 1 hours\nS = {};\n{}", long(65_000), loop_of(10, "  GENERATE(THIS_IP, THIS_IP, S);")),
        ),
        (
            "search for a 60,000-byte word",
            false,
            format!(
                "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nN = {};\nif CONTAINS_STRING(Mine, N) then DISCARD(Mine);\n",
                long(60_000)
            ),
        ),
        (
            "search every payload 20 times",
            false,
            format!("LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n{}", loop_of(20, "  b = CONTAINS_STRING(Mine, \"zqzqzq\");")),
        ),
        (
            "count and distinct per source",
            false,
            "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nS(i), P(i) = GROUP_BY_SOURCE(Mine);\nforeach i do begin\n  c = COUNT(P(i));\n  d = DISTINCT_DESTINATIONS(P(i));\nend\n".into(),
        ),
        (
            "narrow by protocol, port and flags 20 times",
            false,
            format!(
                "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n{}",
                loop_of(20, "  X = TCP_FLAGS(GROUP_BY_SOURCE_PORT(GROUP_BY_DESTINATION_PORT(GROUP_BY_PROTOCOL(Mine, TCP), 25), 1024, 65535), 0, RST);")
            ),
        ),
        (
            "group each source group by source",
            false,
            "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nP(i), S(i) = GROUP_BY_SOURCE(Mine);\nforeach i do begin\n  Q(j), T(j) = GROUP_BY_SOURCE(S(i));\nend\n".into(),
        ),
        (
            "distinct ports per source port",
            false,
            "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nP(i), S(i) = GROUP_BY_SOURCE_PORT(Mine);\nforeach i do begin\n  d = DISTINCT_DESTINATION_PORTS(S(i));\n  Q(j), T(j) = GROUP_BY_PROTOCOL(S(i));\nend\n".into(),
        ),
    ]
}

fn policies(dir: &str) -> (Policy, Policy) {
    let load = |name: &str| {
        let mut p = vinet_engine::policy_file::load(root().join(dir).join(name)).expect("shipped policy");
        (p.complexity_up, p.cost_up, p.generated_bytes_up) = (u64::MAX / 4, u64::MAX / 4, u64::MAX / 4);
        p
    };
    (load("end-user.toml"), load("edge-router.toml"))
}

fn window() -> Window {
    let mut w = Window::new();
    for i in 0..W as u32 {
        let payload: Vec<u8> = (0..PAYLOAD).map(|k| b'a' + ((k as u32 * 7 + i) % 26) as u8).collect();
        let src = 0xc633_6400 + i; // 198.51.100.0/24: every packet from its own source
        let tcp = etherparse::PacketBuilder::ipv4(src.to_be_bytes(), ME.to_be_bytes(), 64).tcp(40_000 + i as u16, 25, i * 7919, 65_535);
        let mut frame = Vec::with_capacity(tcp.size(payload.len()));
        tcp.write(&mut frame, &payload).expect("a frame in memory");
        w.push(LinkType::Raw, 0, frame.len() as u32, &frame);
    }
    assert_eq!(w.packet_count(), W);
    w
}

fn admit(name: &'static str, source: &str, policy: &Policy, edge: bool, prover: &vinet_prover::Prover, cache: &LemmaCache) -> Case {
    let compiled = vinet_lang::compile(name, source.as_bytes(), &[]).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let proved = prover.prove(&compiled.module, policy).unwrap_or_else(|f| panic!("{name}: not proved: {f:?}"));
    let checked = vinet_checker::check(&proved.bytes, policy, cache).unwrap_or_else(|e| panic!("{name}: refused: {e}"));
    let complexity = checked.complexity();
    let instance = Arc::new(Program::new(&checked)).instantiate(&[]).expect("default parameters bind");
    let m = vinet_checker::mapped;
    let this = if edge { This { ip: m(0x0a00_0001), subnet: (m(0x0a00_0000), 120) } } else { This::end_user(m(ME)) };
    Case { name, policy: *policy, instance, complexity, this, interpret: false }
}

fn main() -> ExitCode {
    let quick = match bench_quick("metering") {
        Ok(q) => q,
        Err(code) => return code,
    };
    let (rounds, target_ns) = if quick { (1, 2e6) } else { (7, 60e6) };
    let prover = vinet_prover::Prover::new().expect("the prover starts");
    let mut cache = LemmaCache::new();
    cache.admit_library(&encode_file(&prover.lemmas().library, LIBRARY_MAGIC)).expect("the library checks");
    let example = |f: &str| std::fs::read_to_string(root().join("examples").join(f)).expect("example");
    let suite = |(user, edge): (Policy, Policy)| {
        let mut cases = vec![
            admit("firewall", &example("firewall.vinet").replace("203.0.113.9", "198.51.100.7"), &user, false, &prover, &cache),
            admit("spam filter", &example("spam_filter.vinet"), &user, false, &prover, &cache),
            admit(
                "multicast aggregator",
                &example("multicast.vinet").replace("198.51.100.7", "198.51.100.9"),
                &edge,
                true,
                &prover,
                &cache,
            ),
            admit("worm blocker", &example("worm_blocker.vinet"), &edge, true, &prover, &cache),
            admit("port firewall", &example("port_firewall.vinet").replace("203.0.113.9", "198.51.100.7"), &user, false, &prover, &cache),
            admit("anti-amplification", &example("anti_amplification.vinet"), &user, false, &prover, &cache),
            admit("SYN worm blocker", &example("syn_worm_blocker.vinet"), &edge, true, &prover, &cache),
        ];
        let fw = example("firewall.vinet").replace("203.0.113.9", "198.51.100.7");
        let mut interpreted = admit("firewall, interpreted", &fw, &user, false, &prover, &cache);
        interpreted.interpret = true;
        cases.insert(1, interpreted);
        for (name, is_edge, src) in adversarial() {
            cases.push(admit(name, &src, if is_edge { &edge } else { &user }, is_edge, &prover, &cache));
        }
        cases
    };
    // The shipped policies, then the same with calibrated unit costs: measured in one run.
    let sets = [
        ("examples/policies", suite(policies("examples/policies"))),
        ("examples/policies/calibrated", suite(policies("examples/policies/calibrated"))),
    ];
    let names: Vec<&str> = sets.iter().map(|s| s.0).collect();
    let cases: Vec<Case> = sets.into_iter().flat_map(|s| s.1).collect();
    let per_set = cases.len() / names.len();
    let w = window();
    let mut m = Machine::new();
    let mut mi = Machine::new();
    mi.set_interpret_only(true);
    // Runs per round, from one calibration run each.
    let reps: Vec<u32> = cases
        .iter()
        .map(|c| {
            let t = Instant::now();
            let st =
                c.instance.run(c.this, w.view(), if c.interpret { &mut mi } else { &mut m }).unwrap_or_else(|f| panic!("{}: {f}", c.name));
            assert!(st.cost <= c.complexity, "{}: metered {} over the certified {}", c.name, st.cost, c.complexity);
            (target_ns / t.elapsed().as_nanos().max(1) as f64).clamp(1.0, 1e6) as u32
        })
        .collect();
    let mut ns_per_run: Vec<Vec<f64>> = vec![vec![]; cases.len()];
    let mut metered = vec![0u64; cases.len()];
    for _ in 0..rounds {
        for (i, c) in cases.iter().enumerate() {
            let machine = if c.interpret { &mut mi } else { &mut m };
            let t = Instant::now();
            for _ in 0..reps[i] {
                metered[i] = c.instance.run(c.this, w.view(), machine).expect("runs as in calibration").cost;
            }
            ns_per_run[i].push(t.elapsed().as_nanos() as f64 / f64::from(reps[i]));
        }
    }
    let per_unit: Vec<f64> = cases.iter().zip(&ns_per_run).map(|(c, r)| median(&mut r.clone()) / c.complexity as f64).collect();
    println!("W = {W} TCP packets of {PAYLOAD} payload bytes to the client; {rounds} alternating rounds, medians.");
    for (set, dir) in names.iter().enumerate() {
        let range = set * per_set..(set + 1) * per_set;
        let base = per_unit[range.start];
        println!("\nUnit costs of `{dir}`:\n");
        println!("| program | policy | certified units | metered units | ns a run | ns per certified unit | ratio to the firewall |");
        println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        for (i, c) in cases.iter().enumerate().filter(|(i, _)| range.contains(i)) {
            let kind = if c.policy.client == vinet_checker::policy::ClientKind::EdgeRouter { "edge router" } else { "end user" };
            println!(
                "| {} | {kind} | {} | {} | {:.0} | {:.3} | {:.2} |",
                c.name,
                c.complexity,
                metered[i],
                median(&mut ns_per_run[i].clone()),
                per_unit[i],
                per_unit[i] / base
            );
        }
        let worst = per_unit[range].iter().cloned().fold(0.0, f64::max) / base;
        println!("\nworst ratio to the firewall, unit costs of `{dir}`: {worst:.2} (target: at most 4)");
    }
    ExitCode::SUCCESS
}
