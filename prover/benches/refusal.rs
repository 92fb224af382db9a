//! Time to a cost refusal against program size (issue 14): programs of 100,
//! 1,000 and 4,000 statements that count the client's packets, refused for
//! their complexity under the shipped end-user policy, and the same programs
//! proved under that policy with its cost limits lifted; and, for a refusal
//! of another kind, the same programs ending in a DISCARD of other clients'
//! packets (refused for confinement, with z3's counterexample), under the
//! lifted policy. All should grow linearly, and a refusal should take no
//! longer than the proof.
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
    println!("{:>10} {:>18} {:>14} {:>22}", "statements", "refused, cost (ms)", "accepted (ms)", "refused, unsafe (ms)");
    for n in [100, 1_000, 4_000] {
        let mut row = vec![];
        let text = program(n);
        let compiled = vinet_lang::compile("bench.vinet", text.as_bytes(), &[]).expect("the bench program compiles");
        let unsafe_text = text.clone() + "DISCARD(AllPackets);\n";
        let unsafe_compiled = vinet_lang::compile("bench.vinet", unsafe_text.as_bytes(), &[]).expect("the bench program compiles");
        for (refused, policy, compiled) in [(true, &refusing, &compiled), (false, &lifted, &compiled), (true, &lifted, &unsafe_compiled)] {
            let runs = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let outcome = prover.prove(&compiled.module, policy);
                    assert_eq!(outcome.is_err(), refused, "{n} statements, refused {refused}");
                    t.elapsed()
                })
                .collect();
            row.push(median(runs).as_secs_f64() * 1e3);
        }
        println!("{n:>10} {:>18.1} {:>14.1} {:>22.1}", row[0], row[1], row[2]);
    }
}
