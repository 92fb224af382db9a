//! Building each example: front end, lowering and encoding (criterion).
//!
//! `cargo bench -p vinet-lang` prints the time per example; the goal is
//! under 5 ms each in a release build.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn examples() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/../examples", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "vinet"))
        .map(|p| (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), std::fs::read(&p).expect("read")))
        .collect();
    v.sort();
    v
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    for (name, source) in examples() {
        group.bench_function(&name, |b| {
            b.iter(|| {
                let compiled = vinet_lang::compile(&name, black_box(&source), &[]).expect("example builds");
                black_box(compiled.module.encode())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
