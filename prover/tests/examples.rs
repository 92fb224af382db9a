//! Every shipped example is proved, and its certificate is accepted by the checker.

use vinet_checker::cert::{encode_file, LemmaCache, LIBRARY_MAGIC};
use vinet_checker::policy::{ClientKind, Policy};
use vinet_prover::Prover;

pub fn policy(client: ClientKind) -> Policy {
    let name = if client == ClientKind::EndUser { "end-user" } else { "edge-router" };
    vinet_engine::policy_file::load(format!("{}/../examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap()
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
        ("firewall", ClientKind::EndUser, 1030),
        ("spam_filter", ClientKind::EndUser, 10245),
        ("multicast", ClientKind::EdgeRouter, 5133),
        ("worm_blocker", ClientKind::EdgeRouter, 3333),
    ] {
        let c = compile(name);
        let p = policy(client);
        let proved = prover.prove(&c.module, &p).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert_eq!(proved.stats.complexity, complexity, "{name}");
        let checked = vinet_checker::check(&proved.bytes, &p, &cache).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(checked.complexity(), complexity);
        eprintln!("{name}: {:?}, bundle {} bytes, module {} bytes", proved.stats, proved.bytes.len(), proved.bundle.module.len());
        let certificate = proved.bytes.len() - proved.bundle.module.len();
        assert!(certificate <= proved.bundle.module.len(), "{name}: a certificate of {certificate} bytes, larger than its bytecode");
        // The other client kind's policy refuses it.
        let other = policy(if client == ClientKind::EndUser { ClientKind::EdgeRouter } else { ClientKind::EndUser });
        assert!(vinet_checker::check(&proved.bytes, &other, &cache).is_err(), "{name} under the other policy");
    }
}

/// Without the lemma library, each proof would carry its lemmas' proofs: the
/// inlined proof replays with an empty cache to the same theorem, and is what
/// the library saves.
#[test]
fn inlined_proofs_replay_without_the_library() {
    use std::collections::HashMap;
    use vinet_checker::cert::{replay, Lemma, LemmaHash};
    let prover = Prover::new().unwrap();
    let lib: HashMap<LemmaHash, &Lemma> = prover.lemmas().library.lemmas.iter().map(|l| (l.hash(), l)).collect();
    let mut cache = LemmaCache::new();
    cache.admit_library(&encode_file(&prover.lemmas().library, LIBRARY_MAGIC)).unwrap();
    for (name, client) in [
        ("firewall", ClientKind::EndUser),
        ("spam_filter", ClientKind::EndUser),
        ("multicast", ClientKind::EdgeRouter),
        ("worm_blocker", ClientKind::EdgeRouter),
    ] {
        let (module, policy) = (compile(name).module, policy(client));
        let proved = prover.prove(&module, &policy).unwrap();
        let vc = vinet_checker::vcgen::generate(&module, &policy).unwrap();
        let goals: Vec<_> = vc.all(proved.bundle.declared).unwrap().into_iter().map(|o| o.formula).collect();
        let proof = proved.bundle.certificate.proof;
        let inlined = vinet_prover::builder::inline_lemmas(&proof, goals.len() as u32, &lib).unwrap();
        assert!(inlined.lemmas.is_empty());
        let (with, _) = replay(&proof, &cache, &goals).unwrap();
        let (without, _) = replay(&inlined, &LemmaCache::new(), &goals).unwrap();
        assert_eq!(with, without, "{name}");
        let bytes = |p: &vinet_checker::cert::Proof| postcard::to_allocvec(p).unwrap().len();
        eprintln!(
            "{name}: certificate {} steps / {} bytes; inlined {} steps / {} bytes; {:.0}% of the steps live in the library",
            proof.steps.len(),
            bytes(&proof),
            inlined.steps.len(),
            bytes(&inlined),
            100.0 * (inlined.steps.len() - proof.steps.len()) as f64 / inlined.steps.len() as f64
        );
        assert!(10 * proof.steps.len() <= inlined.steps.len(), "{name}: under 90% of the steps in the library");
    }
}
