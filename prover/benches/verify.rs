//! Proving and checking the shipped examples: prove (z3 available), check with
//! a warm lemma cache, check cold (the lemma library checked first, as a router
//! does once), and the static analyzer, all in one run.
//!
//! `cargo bench -p vinet-prover --bench verify`

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use vinet_checker::cert::{encode_file, LemmaCache, LIBRARY_MAGIC};
use vinet_checker::policy::Policy;
use vinet_prover::Prover;

fn policy(name: &str) -> Policy {
    vinet_engine::policy_file::load(format!("{}/../examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn bench(c: &mut Criterion) {
    let prover = Prover::new().unwrap();
    let library = encode_file(&prover.lemmas().library, LIBRARY_MAGIC);
    let mut warm = LemmaCache::new();
    warm.admit_library(&library).unwrap();
    for (name, pol) in
        [("firewall", "end-user"), ("spam_filter", "end-user"), ("multicast", "edge-router"), ("worm_blocker", "edge-router")]
    {
        let path = format!("{}/../examples/{name}.vinet", env!("CARGO_MANIFEST_DIR"));
        let compiled = vinet_lang::compile(&path, &std::fs::read(&path).unwrap(), &[]).unwrap();
        let pol = policy(pol);
        let bundle = prover.prove(&compiled.module, &pol).unwrap().bytes;
        let mut g = c.benchmark_group(name);
        g.bench_function("prove", |b| b.iter(|| prover.prove(black_box(&compiled.module), &pol).unwrap()));
        g.bench_function("check_warm", |b| b.iter(|| vinet_checker::check(black_box(&bundle), &pol, &warm).unwrap()));
        g.bench_function("check_cold", |b| {
            b.iter(|| {
                let mut cache = LemmaCache::new();
                cache.admit_library(black_box(&library)).unwrap();
                vinet_checker::check(black_box(&bundle), &pol, &cache).unwrap()
            })
        });
        g.bench_function("analyze", |b| b.iter(|| vinet_analyzer::analyze(black_box(&compiled.module), &pol).unwrap()));
        g.finish();
    }
    c.bench_function("lemma_library_admit", |b| {
        b.iter(|| {
            let mut cache = LemmaCache::new();
            cache.admit_library(black_box(&library)).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
