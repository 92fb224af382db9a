//! What the prover's end-to-end tests share: the shipped policies, compiling,
//! and the router's lemma cache.

use vinet_checker::cert::{encode_file, LemmaCache, LIBRARY_MAGIC};
use vinet_checker::policy::{ClientKind, Policy};
use vinet_prover::Prover;

/// The shipped example policy of a client kind.
pub fn policy(client: ClientKind) -> Policy {
    let name = ["end-user", "edge-router", "on-owner"][client as usize];
    vinet_engine::policy_file::load(format!("{}/../examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A program compiled, or the test fails with its diagnostics.
pub fn compile(name: &str, src: &str) -> vinet_lang::Compiled {
    vinet_lang::compile(name, src.as_bytes(), &[]).unwrap_or_else(|d| panic!("{name}: {}", d.render()))
}

/// The router's cache: the shipped library, admitted from its file bytes.
pub fn router_cache(prover: &Prover) -> LemmaCache {
    let mut cache = LemmaCache::new();
    cache.admit_library(&encode_file(&prover.lemmas().library, LIBRARY_MAGIC)).unwrap();
    cache
}
