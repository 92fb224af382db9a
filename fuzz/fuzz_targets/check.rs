//! Arbitrary bytes as a bundle a stranger uploads, through the router's
//! `check` under both example policies, and as a lemma library a stranger
//! sends: an error or an acceptance, never a panic or a hang. An accepted
//! bundle must re-check identically (the checker is deterministic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vinet_checker::cert::LemmaCache;
use vinet_checker::policy::{ClientKind, Policy, UnitCosts};

fn cache() -> &'static LemmaCache {
    static C: OnceLock<LemmaCache> = OnceLock::new();
    C.get_or_init(|| {
        let mut c = LemmaCache::new();
        c.admit_library(include_bytes!("../seeds/library.vnl")).expect("the shipped library checks");
        c
    })
}

fn policy(client: ClientKind) -> Policy {
    Policy {
        client,
        max_lifetime_secs: 30 * 86_400,
        complexity_up: 20_000,
        cost_up: 5_000_000_000,
        window_packets: 256,
        max_param_bytes: 256,
        generated_bytes_up: 1 << 20,
        unit_costs: UnitCosts {
            discard: 1,
            group_by_destination: 1,
            group_by_source: 2,
            group_by_content: 8,
            contains_string: 6,
            generate: 4,
            count: 1,
            distinct_destinations: 3,
            instruction: 1,
            bytes: 1,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    for client in [ClientKind::EndUser, ClientKind::EdgeRouter] {
        let p = policy(client);
        if let Ok(c) = vinet_checker::check(data, &p, cache()) {
            let again = vinet_checker::check(data, &p, cache()).expect("deterministic");
            assert_eq!(c.id(), again.id());
        }
    }
    let _ = LemmaCache::new().admit_library(data);
});
