//! Every shipped example is proved, and its certificate is accepted by the checker.

use vinet_checker::cert::{encode_file, LemmaCache, LIBRARY_MAGIC};
use vinet_checker::policy::{ClientKind, Policy, UnitCosts};
use vinet_prover::Prover;

pub fn policy(client: ClientKind) -> Policy {
    Policy {
        client,
        max_lifetime_secs: 30 * 86_400,
        complexity_up: 20_000,
        cost_up: 5_000_000_000,
        window_packets: 256,
        unit_costs: UnitCosts { discard: 1, group_by_destination: 1, group_by_source: 2, group_by_content: 8, contains_string: 6, generate: 4, count: 1, distinct_destinations: 3 },
    }
}

fn compile(name: &str) -> vinet_lang::Compiled {
    let path = format!("{}/../examples/{name}.vinet", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read(&path).unwrap();
    vinet_lang::compile(&path, &src, &[]).unwrap_or_else(|d| panic!("{}", d.render()))
}

#[test]
fn examples_prove_and_check() {
    let prover = Prover::new().unwrap();
    let mut cache = LemmaCache::new();
    let lib = encode_file(&prover.lemmas().library, LIBRARY_MAGIC);
    cache.admit_library(&lib).unwrap();
    for (name, client, complexity) in [
        ("firewall", ClientKind::EndUser, 1024),
        ("spam_filter", ClientKind::EndUser, 4352),
        ("multicast", ClientKind::EdgeRouter, 5120),
        ("worm_blocker", ClientKind::EdgeRouter, 2048),
    ] {
        let c = compile(name);
        let p = policy(client);
        let proved = prover.prove(&c.module, &p).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert_eq!(proved.stats.complexity, complexity, "{name}");
        let checked = vinet_checker::check(&proved.bytes, &p, &cache).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(checked.complexity(), complexity);
        eprintln!("{name}: {:?}, bundle {} bytes, module {} bytes", proved.stats, proved.bytes.len(), proved.bundle.module.len());
        // The other client kind's policy refuses it.
        let other = policy(if client == ClientKind::EndUser { ClientKind::EdgeRouter } else { ClientKind::EndUser });
        assert!(vinet_checker::check(&proved.bytes, &other, &cache).is_err(), "{name} under the other policy");
    }
}
