//! Time to a cost refusal against program size (issue 14): programs of 100,
//! 1,000 and 4,000 statements that count the client's packets, refused for
//! their complexity under the shipped end-user policy, and the same programs
//! proved under that policy with its cost limits lifted. Both should grow
//! linearly, and a refusal should take no longer than the proof.
//!
//! `cargo bench -p vinet-prover --bench refusal` (median of 5 runs each)

use std::time::{Duration, Instant};

use vinet_checker::policy::Policy;
use vinet_prover::Prover;

fn policy() -> Policy {
    vinet_engine::policy_file::load(format!("{}/../examples/policies/end-user.toml", env!("CARGO_MANIFEST_DIR"))).expect("shipped policy")
}

/// `n` statements after the header, each counting the client's packets.
fn program(n: usize) -> String {
    let mut s = String::from("LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n");
    for i in 0..n {
        s += &format!("C{i} = COUNT(Mine);\n");
    }
    s
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let prover = Prover::new().expect("the shipped lemma library builds");
    let refusing = policy();
    let lifted = Policy { complexity_up: u64::MAX, cost_up: u64::MAX, ..refusing };
    println!("{:>10} {:>14} {:>14}", "statements", "refused (ms)", "accepted (ms)");
    for n in [100, 1_000, 4_000] {
        let mut row = vec![];
        let text = program(n);
        let compiled = vinet_lang::compile("bench.vinet", text.as_bytes(), &[]).expect("the bench program compiles");
        for (costly, policy) in [(true, &refusing), (false, &lifted)] {
            let runs = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let outcome = prover.prove(&compiled.module, policy);
                    assert_eq!(outcome.is_err(), costly, "{n} statements, costly {costly}");
                    t.elapsed()
                })
                .collect();
            row.push(median(runs).as_secs_f64() * 1e3);
        }
        println!("{n:>10} {:>14.1} {:>14.1}", row[0], row[1]);
    }
}
