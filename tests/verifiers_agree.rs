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
//! - Generated modules (`differential_support/gen.rs`, written directly as
//!   bytecode, not compiled; seeds `GENERATED`): both verifiers' verdicts under
//!   both policies. Where both accept, the same complexity and cost. No module
//!   is accepted by the analyzer alone (an analyzer-only acceptance would be a
//!   module the checker's proof path finds unsafe or cannot prove: an unsound
//!   acceptance unless it is a prover precision gap, so the test refuses it).
//!   The disagreements are all the other way, checker only, and are precision
//!   (the analyzer is less precise than the prover; the test prints each with
//!   the analyzer's reason). In the sample there are two kinds: effects on a
//!   path that is dead because its condition compares a register with itself
//!   (`c != c`; the prover discharges obligations under a contradictory path,
//!   the analyzer does not see the contradiction, and refuses a set there as
//!   not confined); and a `while` whose body decreases the rank by a register
//!   that is not the constant 1 (`i = i - z` under `i > z`: the prover shows
//!   `(i - z) + 1 <= i` from the condition, the analyzer's affine ranks do not).

#[path = "differential_support/mod.rs"]
#[allow(dead_code)] // the oracle half is the differential test's
mod support;

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
    let goals: Vec<_> = vc.all(declared).ok()?.into_iter().map(|o| o.formula).collect();
    let p = &mut b.certificate.proof;
    p.lemmas.clear();
    p.terms.clear();
    let t = vinet_prover::builder::add_term(p, &goals, &predicate);
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
    for e in ["firewall", "spam_filter", "multicast", "worm_blocker", "port_firewall", "anti_amplification", "syn_worm_blocker"] {
        accepted.push(root().join(format!("examples/{e}.vinet")));
    }
    accepted.extend(files("tests/accept"));
    let mut honest = None;
    for path in &accepted {
        let text = std::fs::read_to_string(path).unwrap();
        let kind = if ["multicast", "worm_blocker"].iter().any(|e| path.to_string_lossy().contains(e)) {
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

/// Seeds of the generated modules both verifiers judge.
const GENERATED: std::ops::Range<u64> = 10_000..10_300;

#[test]
fn the_verifiers_agree_on_generated_modules() {
    let prover = vinet_prover::Prover::new().unwrap();
    let mut cache = LemmaCache::new();
    cache.admit_library(&encode_file(&prover.lemmas().library, LIBRARY_MAGIC)).unwrap();
    let policies = [policy(ClientKind::EndUser), policy(ClientKind::EdgeRouter)];
    let (mut valid, mut both, mut neither, mut checker_only) = (0, 0, 0, vec![]);
    for seed in GENERATED {
        let m = support::gen::module(&mut support::gen::Rng::seeded(seed)).module;
        if m.validate().is_err() {
            continue;
        }
        valid += 1;
        for pol in &policies {
            let checked = prover.prove(&m, pol).ok().map(|p| vinet_checker::check(&p.bytes, pol, &cache));
            let checked = match checked {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => panic!("seed {seed}: the checker refused the prover's bundle: {e}"),
                None => None,
            };
            match (checked, vinet_analyzer::analyze(&m, pol)) {
                (Some(c), Ok(v)) => {
                    assert_eq!((c.complexity(), c.cost()), (v.complexity, v.cost), "seed {seed}: the verifiers derive different costs");
                    both += 1;
                }
                (None, Err(_)) => neither += 1,
                (Some(_), Err(e)) => checker_only.push(format!("seed {seed} under {:?}: the analyzer refuses: {e}", pol.client)),
                (None, Ok(_)) => panic!("seed {seed} under {:?}: the analyzer alone accepts {m:?}", pol.client),
            }
        }
    }
    for c in &checker_only {
        eprintln!("checker only (analyzer less precise): {c}");
    }
    eprintln!(
        "{valid} valid generated modules, {} (module, policy) pairs: {both} accepted by both, {neither} refused by both, {} by the checker only, none by the analyzer only",
        2 * valid,
        checker_only.len()
    );
    assert!(both >= valid / 4, "only {both} pairs accepted by both: the sample tests little");
    assert!(
        checker_only.len() * 10 <= both,
        "the analyzer refuses {} of the checker's {} acceptances",
        checker_only.len(),
        both + checker_only.len()
    );
}
