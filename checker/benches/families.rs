//! Hostile bundle families for the bounded-work benchmark (`hostile.rs`) and
//! its test (`tests/bounded_work.rs`): bundles built by hand, each shaped to
//! make a naive checker work far more than its size, next to the ordinary
//! bundles they are measured against (the examples, proved ahead of time in
//! `engine/benches/fixtures/`).
#![allow(dead_code)]

use vinet_checker::bytecode::{Class, Header, Insn, Module, Ty, FORMAT_VERSION};
use vinet_checker::cert::{decode_file, encode_file, Bundle, LemmaCache, Proof, Step, TermNode, BUNDLE_MAGIC};
use vinet_checker::logic::{Lit, Sort, Sym};
use vinet_checker::policy::{ClientKind, Policy, UnitCosts};

/// The shipped end-user policy (`examples/policies/end-user.toml`), as a value.
pub fn end_user() -> Policy {
    Policy {
        client: ClientKind::EndUser,
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
            by_field: [1, 1, 1, 1],
            distinct_ports: 3,
            grouping: 0,
            instruction: 1,
            bytes: 1,
        },
    }
}

/// The shipped edge-router policy, as a value.
pub fn edge_router() -> Policy {
    Policy { client: ClientKind::EdgeRouter, generated_bytes_up: 32 << 20, ..end_user() }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../engine/benches/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lemma library the fixtures cite, admitted.
pub fn lemmas() -> LemmaCache {
    let mut c = LemmaCache::new();
    c.admit_library(&fixture("lemmas.lib")).expect("the fixture library checks");
    c
}

/// The ordinary bundles: (name, bytes, policy).
pub fn ordinary() -> Vec<(&'static str, Vec<u8>, Policy)> {
    vec![
        ("firewall", fixture("firewall.vpc"), end_user()),
        ("spam_filter", fixture("spam_filter.vpc"), end_user()),
        ("multicast", fixture("multicast.vpc"), edge_router()),
        ("worm_blocker", fixture("worm_blocker.vpc"), edge_router()),
    ]
}

/// The firewall's bundle with its proof replaced. The families' pools are
/// written from index 0; a proof's terms begin with the statement's conjuncts
/// (certificate version 2), so their references move past those.
fn with_proof(mut proof: Proof) -> Vec<u8> {
    let mut b: Bundle = decode_file(&fixture("firewall.vpc"), BUNDLE_MAGIC, "bundle").unwrap();
    let vc = vinet_checker::vcgen::generate(&Module::decode(&b.module).unwrap(), &end_user()).unwrap();
    let g = vc.all(b.declared).unwrap().len() as u32;
    for t in &mut proof.terms {
        if let TermNode::App(_, args) = t {
            args.iter_mut().for_each(|a| *a += g);
        }
    }
    for s in &mut proof.steps {
        match s {
            Step::Refl { t } | Step::Assume { t } => *t += g,
            Step::EqSubst { var, template, .. } => (*var, *template) = (*var + g, *template + g),
            _ => {}
        }
    }
    b.certificate.proof = proof;
    encode_file(&b, BUNDLE_MAGIC)
}

fn app(sym: Sym, args: &[u32]) -> TermNode {
    TermNode::App(sym, args.to_vec())
}

/// Deep sharing: `t(i+1) = t(i) + t(i)`, a 20-node pool term that stands for
/// a tree of half a million nodes, and `steps` substitutions over it.
pub fn deep_sharing(steps: usize) -> Vec<u8> {
    let mut terms = vec![TermNode::Var(1, Sort::Num)];
    for i in 0..18 {
        terms.push(app(Sym::Add, &[i, i]));
    }
    terms.push(app(Sym::Eq, &[18, 18]));
    let mut p = vec![Step::Refl { t: 0 }, Step::Refl { t: 18 }];
    for _ in 0..steps {
        p.push(Step::EqSubst { s1: 0, s2: p.len() as u32 - 1, var: 0, template: 19 });
    }
    with_proof(Proof { lemmas: vec![], terms, steps: p })
}

/// Many substitutions over a wide term: a balanced tree of `leaves` distinct
/// leaves (each `x + k`), so every node is distinct, and `steps`
/// substitutions of `x` over all of it.
pub fn wide_substitutions(leaves: usize, steps: usize) -> Vec<u8> {
    let mut terms = vec![TermNode::Var(1, Sort::Num)];
    let mut level: Vec<u32> = (0..leaves)
        .map(|k| {
            terms.push(TermNode::Lit(Lit::Num(k as u64)));
            terms.push(app(Sym::Add, &[0, terms.len() as u32 - 1]));
            terms.len() as u32 - 1
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| {
                terms.push(app(Sym::Add, &[c[0], *c.last().unwrap()]));
                terms.len() as u32 - 1
            })
            .collect();
    }
    let top = level[0];
    terms.push(app(Sym::Eq, &[top, top]));
    let template = terms.len() as u32 - 1;
    let mut p = vec![Step::Refl { t: 0 }, Step::Refl { t: top }];
    for _ in 0..steps {
        p.push(Step::EqSubst { s1: 0, s2: p.len() as u32 - 1, var: 0, template });
    }
    with_proof(Proof { lemmas: vec![], terms, steps: p })
}

/// Many premises: `farkas` steps over `premises` assumptions, each a linear
/// atom whose left side is a deeply shared sum.
pub fn many_premises(premises: usize, steps: usize) -> Vec<u8> {
    let mut terms = vec![TermNode::Var(1, Sort::Num)];
    for i in 0..18 {
        terms.push(app(Sym::Add, &[i, i]));
    }
    terms.push(TermNode::Lit(Lit::Num(0)));
    terms.push(app(Sym::Le, &[18, 19]));
    let atom = terms.len() as u32 - 1;
    let mut p = vec![Step::Assume { t: atom }];
    for _ in 0..steps {
        p.push(Step::Farkas { premises: vec![(0, 1); premises] });
    }
    with_proof(Proof { lemmas: vec![], terms, steps: p })
}

/// Many hypotheses: `n` distinct assumptions joined by `and_intro`.
pub fn many_hypotheses(n: usize) -> Vec<u8> {
    let mut terms = vec![TermNode::Var(1, Sort::Num)];
    let mut p = vec![];
    for k in 0..n {
        terms.push(TermNode::Lit(Lit::Num(k as u64)));
        terms.push(app(Sym::Le, &[0, terms.len() as u32 - 1]));
        p.push(Step::Assume { t: terms.len() as u32 - 1 });
        if k > 0 {
            let (a, b) = (p.len() as u32 - 2, p.len() as u32 - 1);
            p.push(Step::AndIntro { s1: a, s2: b });
        }
    }
    with_proof(Proof { lemmas: vec![], terms, steps: p })
}

/// Many branches times many registers: `regs` registers and `ifs` empty
/// `if`s, no proof (the checker's own work before the proof is looked at).
pub fn branches_times_registers(regs: usize, ifs: usize) -> Vec<u8> {
    let mut code = vec![Insn::Bool { dst: 0, value: true }];
    code.extend((0..ifs).map(|_| Insn::If { cond: 0, then_len: 0, else_len: 0 }));
    let m = Module {
        version: FORMAT_VERSION,
        header: Header { lifetime_secs: 3600, class: Class::Monitoring },
        consts: vec![],
        params: vec![],
        regs: vec![Ty::Bool; regs],
        lines: vec![1; code.len()],
        code,
    };
    let mut b: Bundle = decode_file(&fixture("firewall.vpc"), BUNDLE_MAGIC, "bundle").unwrap();
    let vc = vinet_checker::vcgen::generate(&m, &end_user()).expect("empty branches meet the policy");
    b.module = m.encode();
    b.certificate.proof = Proof::default();
    (b.declared.complexity, b.declared.cost) = (vc.complexity, vc.cost);
    encode_file(&b, BUNDLE_MAGIC)
}

/// The hostile families at the sizes the benchmark runs: (name, bytes).
pub fn hostile() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("deep sharing, 100k substitutions", deep_sharing(100_000)),
        ("wide term (64k leaves), 1k substitutions", wide_substitutions(1 << 16, 1_000)),
        ("64 premises x 10k farkas steps", many_premises(64, 10_000)),
        ("65 premises (over the cap)", many_premises(65, 1)),
        ("65 hypotheses (over the cap)", many_hypotheses(65)),
        ("64k registers x 8k ifs", branches_times_registers(1 << 16, 8_000)),
        ("largest (about 1 MiB): wide term (40k leaves), 60k substitutions", wide_substitutions(40_000, 60_000)),
    ]
}
