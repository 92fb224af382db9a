//! Arbitrary bytes as a module, through the static analyzer under the
//! example policies and one with limits past any real router's (so that the
//! cost arithmetic reaches its overflow refusals): an error or a verdict,
//! never a panic or a hang. A verdict must be consistent (cost is complexity
//! times lifetime, within the policy), and deterministic; and since the
//! analyzer shares the cost model with the VC generator, an accepted module's
//! complexity and cost are the ones the VC generator derives (where it derives
//! any: it also refuses some modules outright on rules of its own, such as a
//! loop condition that writes the rank, but never for their cost).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vinet_checker::{Module, Policy};

fn policies() -> &'static [Policy] {
    static P: OnceLock<Vec<Policy>> = OnceLock::new();
    P.get_or_init(|| {
        let parse = |text| vinet_engine::policy_file::parse(text).expect("the example policies parse");
        let end_user = parse(include_str!("../../examples/policies/end-user.toml"));
        let edge = parse(include_str!("../../examples/policies/edge-router.toml"));
        let huge = Policy { max_lifetime_secs: u64::MAX, complexity_up: u64::MAX, cost_up: u64::MAX, window_packets: u32::MAX, ..edge };
        vec![end_user, edge, huge]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Module::decode(data) else { return };
    for p in policies() {
        let Ok(v) = vinet_analyzer::analyze(&m, p) else { continue };
        assert_eq!(v.complexity.checked_mul(m.header.lifetime_secs), Some(v.cost));
        assert!(v.complexity <= p.complexity_up && v.cost <= p.cost_up && m.header.lifetime_secs <= p.max_lifetime_secs);
        assert_eq!(vinet_analyzer::analyze(&m, p), Ok(v), "deterministic");
        match vinet_checker::vcgen::generate(&m, p) {
            Ok(vc) => assert_eq!((vc.complexity, vc.cost), (v.complexity, v.cost), "one cost model"),
            Err(e) => assert!(!e.reason.contains("overflows"), "one cost model: the analyzer accepts what vcgen counts past u128: {e}"),
        }
    }
});
