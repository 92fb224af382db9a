//! Hostile bundles, built on purpose: each must be refused by `check` with the
//! reason named, and none may panic. The honest bundles they start from are
//! the shipped examples, proved here.

use vinet_checker::bytecode::{Const, Insn, Module};
use vinet_checker::cert::{
    decode_file, encode_file, Bundle, LemmaCache, LemmaRef, Library, Proof, Step, TermNode, BUNDLE_MAGIC, LIBRARY_MAGIC,
};
use vinet_checker::logic::{Lit, Sort, Sym};
use vinet_checker::policy::{ClientKind, Policy};
use vinet_checker::{check, CheckError};

fn policy(client: ClientKind) -> Policy {
    let name = if client == ClientKind::EndUser { "end-user" } else { "edge-router" };
    vinet_engine::policy_file::load(format!("{}/examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn prover() -> vinet_prover::Prover {
    vinet_prover::Prover::new().unwrap()
}

fn cache(p: &vinet_prover::Prover) -> LemmaCache {
    let mut c = LemmaCache::new();
    c.admit_library(&encode_file(&p.lemmas().library, LIBRARY_MAGIC)).unwrap();
    c
}

fn compile_src(src: &str) -> Module {
    vinet_lang::compile("t.vinet", src.as_bytes(), &[]).unwrap_or_else(|d| panic!("{}", d.render())).module
}

fn example(name: &str) -> Module {
    let path = format!("{}/examples/{name}.vinet", env!("CARGO_MANIFEST_DIR"));
    vinet_lang::compile(&path, &std::fs::read(&path).unwrap(), &[]).unwrap().module
}

fn prove(p: &vinet_prover::Prover, m: &Module, pol: &Policy) -> Bundle {
    p.prove(m, pol).unwrap_or_else(|f| panic!("{f:?}")).bundle
}

fn bytes(b: &Bundle) -> Vec<u8> {
    encode_file(b, BUNDLE_MAGIC)
}

fn refused(b: &[u8], pol: &Policy, c: &LemmaCache) -> CheckError {
    match check(b, pol, c) {
        Ok(_) => panic!("a hostile bundle was accepted"),
        Err(e) => e,
    }
}

fn firewall() -> (vinet_prover::Prover, LemmaCache, Policy, Bundle) {
    let p = prover();
    let c = cache(&p);
    let pol = policy(ClientKind::EndUser);
    let b = prove(&p, &example("firewall"), &pol);
    (p, c, pol, b)
}

#[test]
fn the_honest_bundle_is_accepted() {
    let (_, c, pol, b) = firewall();
    assert_eq!(check(&bytes(&b), &pol, &c).unwrap().complexity(), 1030);
}

#[test]
fn truncated_bundles_are_refused() {
    let (_, c, pol, b) = firewall();
    let full = bytes(&b);
    for n in 0..full.len() {
        refused(&full[..n], &pol, &c);
    }
}

#[test]
fn random_bytes_are_refused() {
    let (_, c, pol, _) = firewall();
    let mut x = 0x1234_5678_9abc_def0u64;
    for len in [0, 1, 4, 5, 16, 100, 1000, 5000] {
        for _ in 0..200 {
            let mut v: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            refused(&v, &pol, &c);
            if v.len() >= 4 {
                v[..4].copy_from_slice(BUNDLE_MAGIC); // right magic, random rest
                refused(&v, &pol, &c);
            }
        }
    }
}

#[test]
fn wrong_magic_and_trailing_bytes() {
    let (_, c, pol, b) = firewall();
    let mut v = bytes(&b);
    v[0] = b'X';
    assert!(refused(&v, &pol, &c).to_string().contains("magic"));
    let mut v = bytes(&b);
    v.push(0);
    assert!(refused(&v, &pol, &c).to_string().contains("trailing"));
}

#[test]
fn an_altered_module_is_checked_for_what_it_is() {
    // A certificate names no module (version 2): it proves the predicate of the
    // bundle's own module, or nothing. A change the predicate does not see (a
    // source line of an instruction) keeps it valid...
    let (_, c, pol, b) = firewall();
    let mut m = Module::decode(&b.module).unwrap();
    m.lines[0] += 1;
    let mut same = b.clone();
    same.module = m.encode();
    assert!(vinet_checker::check(&bytes(&same), &pol, &c).is_ok());
    // ... and one it does see is refused: the source filter becomes a destination filter.
    let at = m.code.iter().position(|i| matches!(i, Insn::FilterSrc { .. })).unwrap();
    let Insn::FilterSrc { dst, set, by } = m.code[at] else { unreachable!() };
    m.code[at] = Insn::FilterDst { dst, set, by };
    let vc = vinet_checker::vcgen::generate(&m, &pol).unwrap();
    let mut bad = b.clone();
    bad.module = m.encode();
    bad.declared = vinet_checker::cert::Declared { complexity: vc.complexity, cost: vc.cost };
    let e = refused(&bytes(&bad), &pol, &c);
    assert!(matches!(e, CheckError::Proof(_) | CheckError::Statement(_)), "{e}");
}

#[test]
fn a_certificate_for_another_module() {
    let (p, c, pol, fw) = firewall();
    let spam = prove(&p, &example("spam_filter"), &pol);
    let mut swapped = spam.clone();
    swapped.certificate = fw.certificate.clone();
    let e = refused(&bytes(&swapped), &pol, &c);
    assert!(matches!(e, CheckError::Proof(_) | CheckError::Statement(_) | CheckError::Cost(_)), "{e}");
}

#[test]
fn lies_about_cost_are_refused() {
    let (_, c, pol, b) = firewall();
    let mut lie = b.clone();
    lie.declared.complexity = 512;
    let e = refused(&bytes(&lie), &pol, &c);
    assert!(e.to_string().contains("declared complexity 512 but the checker derives 1030"), "{e}");
    let mut lie = b.clone();
    lie.declared.cost -= 1;
    assert!(refused(&bytes(&lie), &pol, &c).to_string().contains("declared cost"));
}

#[test]
fn a_certificate_citing_an_unknown_lemma() {
    let (_, _, pol, b) = firewall();
    let empty = LemmaCache::new();
    let e = refused(&bytes(&b), &pol, &empty);
    assert!(e.to_string().contains("has not verified"), "{e}");
}

#[test]
fn a_lemma_library_whose_proof_is_wrong() {
    let p = prover();
    let lib = p.lemmas().library.clone();
    for (i, lemma) in lib.lemmas.iter().enumerate().take(12) {
        // Point one step at an earlier step of another kind, or change an axiom.
        for k in 0..lemma.proof.steps.len() {
            let mut bad = lib.clone();
            let step = &mut bad.lemmas[i].proof.steps[k];
            let changed = match step {
                Step::Axiom { n } => {
                    *n = (*n + 1) % vinet_checker::kernel::axioms().len() as u16;
                    true
                }
                Step::AndElim { right, .. } => {
                    *right = !*right;
                    true
                }
                _ => false,
            };
            if !changed {
                continue;
            }
            let mut c = LemmaCache::new();
            let r = c.admit_library(&encode_file(&bad, LIBRARY_MAGIC));
            assert!(r.is_err(), "lemma {} with step {k} changed was accepted", lemma.name);
        }
    }
}

#[test]
fn a_lemma_whose_statement_is_changed() {
    let p = prover();
    let mut lib: Library = p.lemmas().library.clone();
    let l = &mut lib.lemmas[0];
    // Make the statement some other pool term (e.g. a subterm).
    l.statement = 0;
    let mut c = LemmaCache::new();
    assert!(c.admit_library(&encode_file(&lib, LIBRARY_MAGIC)).unwrap_err().to_string().contains("does not prove the statement"));
}

#[test]
fn assuming_the_predicate_is_refused() {
    // The classic forgery: `P |- P`, a proof resting on its own conclusion.
    let (_, c, pol, b) = firewall();
    let mut forged = b.clone();
    let pf = &mut forged.certificate.proof;
    let vc = vinet_checker::vcgen::generate(&Module::decode(&b.module).unwrap(), &pol).unwrap();
    let goals: Vec<_> = vc.all(b.declared).unwrap().into_iter().map(|o| o.formula).collect();
    let root_term = vinet_checker::cert::build_terms(&pf.terms, &goals).unwrap();
    let predicate = vc.predicate(b.declared).unwrap();
    let idx = root_term.iter().position(|t| *t == predicate);
    let t = match idx {
        Some(i) => i as u32,
        None => vinet_prover::builder::add_term(pf, &goals, &predicate),
    };
    pf.steps = vec![Step::Assume { t }];
    pf.lemmas.clear();
    let e = refused(&bytes(&forged), &pol, &c);
    assert!(e.to_string().contains("undischarged hypotheses"), "{e}");
}

#[test]
fn a_weaker_statement_is_refused() {
    // The certificate takes the statement's conjuncts from the checker, so the
    // same module's certificate under a more generous policy is the same
    // certificate: it proves whichever bounds the checker asks for, if they hold.
    let (p, c, pol, b) = firewall();
    let mut generous = pol;
    generous.complexity_up *= 2;
    let other = prove(&p, &Module::decode(&b.module).unwrap(), &generous);
    assert_eq!(other.certificate, b.certificate);
    // A valid proof of something else: of all but the last conjunct.
    let mut mixed = b.clone();
    let Some(Step::Conj { s }) = mixed.certificate.proof.steps.last_mut() else { panic!("the proof ends with its conjunction") };
    s.pop();
    let e = refused(&bytes(&mixed), &pol, &c);
    assert!(matches!(e, CheckError::Statement(_)), "{e}");
    // And a proof of only its first obligation.
    let mut partial = b.clone();
    partial.certificate.proof.steps.truncate(1);
    let e = refused(&bytes(&partial), &pol, &c);
    assert!(matches!(e, CheckError::Statement(_)), "{e}");
}

#[test]
fn malformed_proofs_name_the_step_and_rule() {
    let (_, c, pol, b) = firewall();
    type Tamper = Box<dyn Fn(&mut Proof)>;
    let cases: Vec<(&str, Tamper)> = vec![
        ("forward step", Box::new(|p: &mut Proof| p.steps[0] = Step::AndIntro { s1: 5, s2: 6 })),
        ("forward term", Box::new(|p: &mut Proof| p.terms.push(TermNode::App(Sym::Not, vec![99])))),
        (
            "ill-sorted term",
            Box::new(|p: &mut Proof| {
                p.terms.push(TermNode::Lit(Lit::Num(2)));
                p.terms.push(TermNode::App(Sym::Not, vec![3 + p.terms.len() as u32 - 1]));
            }),
        ),
        ("argument of a goal out of range", Box::new(|p: &mut Proof| p.terms.push(TermNode::Arg(0, 7)))),
        ("argument of a literal", Box::new(|p: &mut Proof| p.terms.extend([TermNode::Lit(Lit::Num(2)), TermNode::Arg(3, 0)]))),
        ("no such term", Box::new(|p: &mut Proof| p.steps.insert(0, Step::Eval { t: 99 }))),
        ("a lemma at a target it does not match", Box::new(|p: &mut Proof| p.steps.insert(0, Step::Lemma { i: 0, at: Some(2) }))),
        (
            "an instance of a theorem with no quantifier",
            Box::new(|p: &mut Proof| {
                p.terms.push(TermNode::App(Sym::True, vec![]));
                drop(p.steps.splice(0..0, [Step::Eval { t: 3 }, Step::Inst { s: 0, t: 1 }]))
            }),
        ),
        ("an empty conjunction", Box::new(|p: &mut Proof| p.steps.push(Step::Conj { s: vec![] }))),
        ("a lemma by a prefix no verified lemma has", Box::new(|p: &mut Proof| p.lemmas[0] = LemmaRef(vec![0xde, 0xad, 0xbe, 0xef, 0]))),
        ("a lemma by a prefix several have", Box::new(|p: &mut Proof| p.lemmas[0] = LemmaRef(vec![]))),
        (
            "loose bound variable",
            Box::new(|p: &mut Proof| {
                p.terms.push(TermNode::Bound(0, Sort::Bool));
                let t = p.terms.len() as u32 - 1;
                p.steps.insert(0, Step::Assume { t });
            }),
        ),
        (
            "false fact",
            Box::new(|p: &mut Proof| {
                p.terms.push(TermNode::Lit(Lit::Num(2)));
                p.terms.push(TermNode::Lit(Lit::Num(1)));
                let n = p.terms.len() as u32;
                p.terms.push(TermNode::App(Sym::Le, vec![n - 2, n - 1]));
                p.steps.insert(0, Step::Eval { t: n });
            }),
        ),
        ("bad farkas", Box::new(|p: &mut Proof| p.steps.insert(0, Step::Farkas { premises: vec![] }))),
        ("no such axiom", Box::new(|p: &mut Proof| p.steps.insert(0, Step::Axiom { n: 999 }))),
        ("no such lemma", Box::new(|p: &mut Proof| p.steps.insert(0, Step::Lemma { i: 99, at: None }))),
        ("empty proof", Box::new(|p: &mut Proof| p.steps.clear())),
    ];
    for (what, f) in cases {
        let mut bad = b.clone();
        f(&mut bad.certificate.proof);
        let e = refused(&bytes(&bad), &pol, &c);
        let s = e.to_string();
        assert!(matches!(e, CheckError::Proof(_) | CheckError::Statement(_)), "{what}: {s}");
        eprintln!("{what}: {s}");
    }
}

#[test]
fn certificate_and_bytecode_versions() {
    let (_, c, pol, b) = firewall();
    let mut v1 = b.clone();
    v1.certificate.version = 1;
    assert!(refused(&bytes(&v1), &pol, &c).to_string().contains("certificate version 1 (this checker reads 2)"));
    let mut m = Module::decode(&b.module).unwrap();
    m.version = 9;
    let mut bad = b.clone();
    bad.module = postcard_module(&m);
    assert!(refused(&bytes(&bad), &pol, &c).to_string().contains("unsupported bytecode version 9"));
}

fn postcard_module(m: &Module) -> Vec<u8> {
    m.encode()
}

/// Forge a certificate for a module the prover would refuse: take a valid proof
/// of a safe module and re-target it. Whatever the forgery, the module's own
/// predicate is what must be proved.
fn forged(safe: &Bundle, unsafe_module: &Module) -> Vec<u8> {
    let mut f = safe.clone();
    f.module = unsafe_module.encode();
    bytes(&f)
}

#[test]
fn unsafe_modules_with_forged_certificates() {
    let (_, c, pol, fw) = firewall();
    let cases = [
        ("discards another destination", "LIFETIME = 2 days\nPARAM SrcIP = 203.0.113.9;\nOther = GROUP_BY_DESTINATION(AllPackets, 10.9.9.9);\nDISCARD(GROUP_BY_SOURCE(Other, SrcIP));"),
        ("discards everything", "LIFETIME = 2 days\nPARAM SrcIP = 203.0.113.9;\nDISCARD(GROUP_BY_SOURCE(AllPackets, SrcIP));"),
        ("generates elsewhere", "LIFETIME = 2 days\nGENERATE(THIS_IP, 10.0.0.1, \"x\");"),
        ("too long", "LIFETIME = 60 days\nPARAM SrcIP = 203.0.113.9;\nDISCARD(GROUP_BY_SOURCE(GROUP_BY_DESTINATION(AllPackets, THIS_IP), SrcIP));"),
    ];
    for (what, src) in cases {
        let m = compile_src(src);
        let e = refused(&forged(&fw, &m), &pol, &c);
        eprintln!("{what}: {e}");
    }
}

#[test]
fn bytecode_that_breaks_the_structure() {
    let (_, c, pol, fw) = firewall();
    let base = Module::decode(&fw.module).unwrap();
    let mut cases: Vec<(&str, Module)> = vec![];
    let mut m = base.clone();
    m.code.insert(0, Insn::If { cond: 0, then_len: 99, else_len: 0 });
    m.lines.insert(0, 0);
    cases.push(("block past its parent", m));
    let mut m = base.clone();
    m.code[5] = Insn::Discard { set: 77 };
    cases.push(("register out of range", m));
    let mut m = base.clone();
    m.header.class = vinet_checker::bytecode::Class::Monitoring;
    cases.push(("class contradicts effects", m));
    let mut m = base.clone();
    m.consts.push(Const::Prefix(0x0a00_0001, 8));
    cases.push(("prefix with host bits", m));
    for (what, m) in cases {
        let mut bad = fw.clone();
        bad.module = postcard::to_allocvec(&m).unwrap();
        let e = refused(&bytes(&bad), &pol, &c);
        assert!(matches!(e, CheckError::Bytecode(_)), "{what}: {e}");
    }
}

#[test]
fn the_other_client_kind_is_refused() {
    let (p, c, _, _) = firewall();
    let edge = policy(ClientKind::EdgeRouter);
    let mc = prove(&p, &example("multicast"), &edge);
    assert!(check(&bytes(&mc), &edge, &c).is_ok());
    refused(&bytes(&mc), &policy(ClientKind::EndUser), &c);
}

#[test]
fn decoded_bundles_round_trip() {
    let (_, _, _, b) = firewall();
    let v = bytes(&b);
    let back: Bundle = decode_file(&v, BUNDLE_MAGIC, "bundle").unwrap();
    assert_eq!(back, b);
}

/// The same refusals through the `vinetc check` binary: exit 1, one line on
/// stderr naming the reason; `--format json` for CI; exit 2 when unreadable.
#[test]
fn vinetc_check_refuses_with_one_line_and_exit_1() {
    use std::process::Command;
    let (p, _, pol, b) = firewall();
    let dir = std::env::temp_dir().join(format!("vinet-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = format!("{}/examples/policies/end-user.toml", env!("CARGO_MANIFEST_DIR"));
    let run = |file: &std::path::Path, json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vinetc"));
        c.arg("check").arg(file).arg("--policy").arg(&policy);
        if json {
            c.args(["--format", "json"]);
        }
        c.output().unwrap()
    };
    let mut lie = b.clone();
    lie.declared.complexity = 1;
    let mut other = prove(&p, &example("spam_filter"), &pol);
    other.certificate = b.certificate.clone();
    let honest = bytes(&b);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", honest[..honest.len() / 2].to_vec(), "malformed bundle"),
        ("random", (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(), "malformed bundle"),
        ("lie", bytes(&lie), "declared complexity 1 but the checker derives 1030"),
        ("other module", bytes(&other), "proof: step 1 (inst)"),
    ];
    for (name, data, reason) in cases {
        let f = dir.join(format!("{}.vpc", name.replace(' ', "_")));
        std::fs::write(&f, data).unwrap();
        let out = run(&f, false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: not one line: {err}");
        assert!(err.contains(reason), "{name}: {err}");
        let out = run(&f, true);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["accepted"], false);
        assert!(v["reason"].as_str().unwrap().contains(reason));
    }
    let f = dir.join("ok.vpc");
    std::fs::write(&f, &honest).unwrap();
    let out = run(&f, true);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["accepted"].as_bool(), v["complexity"].as_u64()), (Some(true), Some(1030)));
    assert_eq!(run(&dir.join("missing.vpc"), false).status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
