//! The two verifiers agree on every program of the test corpus (CONTRACT
//! section 5): proof-carrying code (prove, then `check`) and the static
//! analyzer (`analyze`, no certificate).
//!
//! - Accepted programs (the examples, `tests/accept/`): proved, checked and
//!   analyzed, with the same derived complexity and cost.
//! - Programs the prover must refuse (`tests/reject/` files expecting a
//!   `prove` error): the prover gives no certificate, the analyzer refuses the
//!   module, and the checker refuses it with every certificate we can forge for
//!   it (a valid proof of a safe program re-targeted, and the proof that assumes
//!   its own conclusion).

use std::path::{Path, PathBuf};

use vinet_checker::bytecode::Module;
use vinet_checker::cert::{encode_file, Bundle, LemmaCache, Step, BUNDLE_MAGIC, LIBRARY_MAGIC};
use vinet_checker::policy::{ClientKind, Policy};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn policy(kind: ClientKind) -> Policy {
    let name = if kind == ClientKind::EndUser { "end-user" } else { "edge-router" };
    vinet_engine::policy_file::load(root().join(format!("examples/policies/{name}.toml"))).unwrap()
}

fn kind_of(text: &str) -> ClientKind {
    if text.lines().take_while(|l| l.starts_with("//")).any(|l| l.contains("policy: edge-router")) {
        ClientKind::EdgeRouter
    } else {
        ClientKind::EndUser
    }
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "vinet"))
        .collect();
    v.sort();
    v
}

fn compile(path: &Path) -> vinet_lang::Compiled {
    vinet_lang::compile(&path.display().to_string(), &std::fs::read(path).unwrap(), &[]).unwrap_or_else(|d| panic!("{}", d.render()))
}

/// The proof that assumes its own conclusion, for a module and policy.
fn assume_forgery(module: &Module, pol: &Policy, like: &Bundle) -> Option<Vec<u8>> {
    let vc = vinet_checker::vcgen::generate(module, pol).ok()?;
    let declared = vinet_checker::cert::Declared { complexity: vc.complexity, cost: vc.cost };
    let predicate = vc.predicate(declared).ok()?;
    let mut b = like.clone();
    b.module = module.encode();
    b.declared = declared;
    b.certificate.module = Module::id_of(&b.module);
    let p = &mut b.certificate.proof;
    p.lemmas.clear();
    p.terms.clear();
    let t = vinet_prover::builder::add_term(p, &predicate);
    p.steps = vec![Step::Assume { t }];
    Some(encode_file(&b, BUNDLE_MAGIC))
}

#[test]
fn the_verifiers_agree_on_the_corpus() {
    let prover = vinet_prover::Prover::new().unwrap();
    let mut cache = LemmaCache::new();
    cache.admit_library(&encode_file(&prover.lemmas().library, LIBRARY_MAGIC)).unwrap();

    // Accepted programs.
    let mut accepted = vec![];
    for e in ["firewall", "spam_filter", "multicast", "worm_blocker"] {
        accepted.push(root().join(format!("examples/{e}.vinet")));
    }
    accepted.extend(files("tests/accept"));
    let mut honest = None;
    for path in &accepted {
        let text = std::fs::read_to_string(path).unwrap();
        let kind = if path.to_string_lossy().contains("multicast") || path.to_string_lossy().contains("worm_blocker") {
            ClientKind::EdgeRouter
        } else {
            kind_of(&text)
        };
        let pol = policy(kind);
        let c = compile(path);
        let proved = prover.prove(&c.module, &pol).unwrap_or_else(|f| panic!("{}: the prover refused: {f:?}", path.display()));
        let checked =
            vinet_checker::check(&proved.bytes, &pol, &cache).unwrap_or_else(|e| panic!("{}: the checker refused: {e}", path.display()));
        let analyzed = vinet_analyzer::analyze(&c.module, &pol).unwrap_or_else(|e| panic!("{}: the analyzer refused: {e}", path.display()));
        assert_eq!(
            (checked.complexity(), checked.cost()),
            (analyzed.complexity, analyzed.cost),
            "{}: the verifiers derive different costs",
            path.display()
        );
        if kind == ClientKind::EndUser && honest.is_none() {
            honest = Some(proved.bundle.clone());
        }
    }
    let honest = honest.unwrap();

    // Programs the prover refuses.
    let mut refused = 0;
    for path in files("tests/reject") {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(); // some build rejects are not UTF-8
        if !text.lines().any(|l| l.starts_with("// expect: prove")) {
            continue;
        }
        let kind = kind_of(&text);
        let pol = policy(kind);
        let c = compile(&path);
        assert!(prover.prove(&c.module, &pol).is_err(), "{}: the prover accepted it", path.display());
        assert!(vinet_analyzer::analyze(&c.module, &pol).is_err(), "{}: the analyzer accepted it", path.display());
        let mut retarget = honest.clone();
        retarget.module = c.module.encode();
        retarget.certificate.module = Module::id_of(&retarget.module);
        assert!(
            vinet_checker::check(&encode_file(&retarget, BUNDLE_MAGIC), &pol, &cache).is_err(),
            "{}: the checker accepted a re-targeted proof",
            path.display()
        );
        if let Some(forged) = assume_forgery(&c.module, &pol, &honest) {
            assert!(vinet_checker::check(&forged, &pol, &cache).is_err(), "{}: the checker accepted a self-assumed proof", path.display());
        }
        refused += 1;
    }
    assert!(refused >= 25, "only {refused} prove-stage reject programs found in tests/reject");
    eprintln!("{} accepted and {refused} refused programs: both verifiers agree on all", accepted.len());
}
