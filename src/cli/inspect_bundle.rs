//! `vinetc inspect` for bundles (.vpc) and lemma libraries: sizes, lemmas
//! cited, the announced cost, and (with `--policy`) what the checker derives.

use std::collections::HashMap;
use std::fmt::Write as _;

use vinet_checker::cert::{decode_file, Bundle, LemmaHash, Library, BUNDLE_MAGIC, LIBRARY_MAGIC};
use vinet_checker::Module;

/// Names of the shipped library's lemmas, by hash.
fn known_lemmas() -> HashMap<LemmaHash, String> {
    match vinet_prover::lemma_src::build(vinet_prover::lemma_src::BUILTIN) {
        Ok(set) => set.by_name.into_iter().map(|(n, h)| (h, n)).collect(),
        Err(_) => HashMap::new(),
    }
}

/// List a bundle: its certificate, then its module.
pub fn list_bundle(bytes: &[u8]) -> Result<String, String> {
    let b: Bundle = decode_file(bytes, BUNDLE_MAGIC, "bundle").map_err(|e| e.to_string())?;
    let cert = &b.certificate;
    let proof_bytes = postcard::to_allocvec(&cert.proof).map_err(|e| e.to_string())?.len();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "bundle: {} bytes (bytecode {} bytes, certificate {} bytes)",
        bytes.len(),
        b.module.len(),
        bytes.len() - b.module.len()
    );
    let _ = writeln!(s, "certificate: version {} (of the bundle's module {})", cert.version, Module::id_of(&b.module));
    let _ = writeln!(s, "  proof: {} steps, {} terms, {} bytes", cert.proof.steps.len(), cert.proof.terms.len(), proof_bytes);
    let names = known_lemmas();
    let _ = writeln!(s, "  lemmas cited: {}", cert.proof.lemmas.len());
    for r in &cert.proof.lemmas {
        let name = names.iter().find(|(h, _)| r.names(h)).map_or("(not in the shipped library)", |(_, n)| n.as_str());
        let _ = writeln!(s, "    {r:<8}  {name}  ({} bytes of its hash)", r.0.len());
    }
    let _ = writeln!(s, "  declared: complexity {} units/window, cost {}", b.declared.complexity, b.declared.cost);
    s.push('\n');
    s.push_str(&super::inspect::describe(&b.module)?);
    Ok(s)
}

/// List a lemma library.
pub fn list_library(bytes: &[u8]) -> Result<String, String> {
    let lib: Library = decode_file(bytes, LIBRARY_MAGIC, "lemma library").map_err(|e| e.to_string())?;
    let mut s = String::new();
    let _ = writeln!(s, "lemma library: version {}, {} lemmas, {} bytes", lib.version, lib.lemmas.len(), bytes.len());
    for l in &lib.lemmas {
        let _ = writeln!(s, "  {}  {:<24} {:>4} steps, cites {}", l.hash(), l.name, l.proof.steps.len(), l.proof.lemmas.len());
    }
    Ok(s)
}

/// What the checker derives for a bundle under a policy: its verdict and cost.
pub fn derive(bytes: &[u8], policy: &vinet_checker::Policy) -> String {
    let Ok(b) = decode_file::<Bundle>(bytes, BUNDLE_MAGIC, "bundle") else { return String::new() };
    let Ok(m) = Module::decode(&b.module) else { return "checker: the module does not decode\n".into() };
    let mut s = match vinet_checker::vcgen::generate(&m, policy) {
        Ok(vc) => format!(
            "derived under the policy: complexity {} units/window, cost {}, {} obligations\n",
            vc.complexity,
            vc.cost,
            vc.obligations.len() + 1
        ),
        Err(e) => format!("derived under the policy: none ({e})\n"),
    };
    let verdict = match super::check::lemma_cache(None) {
        Ok(cache) => match vinet_checker::check(bytes, policy, &cache) {
            Ok(_) => "accepted".to_string(),
            Err(e) => format!("rejected: {e}"),
        },
        Err(_) => "the lemma library does not build".into(),
    };
    let _ = writeln!(s, "checker: {verdict}");
    s
}
