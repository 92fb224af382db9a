//! The bytecode-level differential soundness test (`tests/differential.rs`)
//! driven by the fuzzer's bytes: they make the generator's choices (then a
//! xorshift seeded from them), the module goes through the prover, the checker
//! and the analyzer under both example policies, and what the checker accepts
//! is run by the VM over two windows, whole and bucketed, against the safety
//! oracle (`tests/differential_support/oracle.rs`). A crash is an oracle
//! violation, a bundle the prover made that the checker refuses, or two
//! verifiers accepting with different costs. The counts are printed to stderr
//! now and then (at powers of two, and every 2,000 inputs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

#[path = "../../tests/differential_support/mod.rs"]
mod support;

use support::gen::Rng;
use support::oracle::{Env, Tally};

thread_local! {
    static ENV: Env = {
        let parse = |text| vinet_engine::policy_file::parse(text).expect("the example policies parse");
        Env::new(
            parse(include_str!("../../examples/policies/end-user.toml")),
            parse(include_str!("../../examples/policies/edge-router.toml")),
            parse(include_str!("../../examples/policies/on-owner.toml")),
        )
    };
    static TALLY: RefCell<Tally> = RefCell::new(Tally::default());
}

fuzz_target!(|data: &[u8]| {
    TALLY.with_borrow_mut(|t| {
        let (violations, mismatches, analyzer_only) = (t.violations.len(), t.cost_mismatches.len(), t.analyzer_only_cases.len());
        ENV.with(|env| env.one(&mut Rng::from_bytes(data), 2, "fuzz input", t));
        if t.generated.is_power_of_two() || t.generated % 2_000 == 0 {
            eprintln!("differential: {t}");
        }
        if let Some(c) = t.analyzer_only_cases.get(analyzer_only) {
            eprintln!("differential: analyzer only: {c}");
        }
        assert_eq!(t.violations.len(), violations, "oracle violation: {}", t.violations.last().unwrap());
        assert_eq!(t.cost_mismatches.len(), mismatches, "the verifiers derive different costs: {}", t.cost_mismatches.last().unwrap());
        assert_eq!(t.proved_not_checked, 0, "the checker refused a bundle the prover made");
    });
});
