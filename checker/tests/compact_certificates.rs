//! Hand-built certificates for the compact forms of certificate version 2
//! (issue 9): lemma references by hash prefix, the statement's conjuncts as
//! the first terms and `Arg` nodes into them, `Inst` and `Lemma { at }` by
//! first-order matching, and `Conj`. Each form is accepted where it proves
//! what it says, and every hostile use is refused with its reason.

use vinet_checker::cert::{budget, replay, Lemma, LemmaCache, LemmaHash, LemmaRef, Proof, ProofError, Step, TermNode};
use vinet_checker::kernel::axioms;
use vinet_checker::logic::{Lit, Sort, Sym, Term};

fn num(n: u64) -> Term {
    Term::num(n)
}
fn le(a: Term, b: Term) -> Term {
    Term::app(Sym::Le, vec![a, b]).unwrap()
}
fn axiom(name: &str) -> Step {
    Step::Axiom { n: axioms().iter().position(|(a, _)| *a == name).unwrap() as u16 }
}

/// `forall x. 0 <= x`, from the axiom `nat`.
fn nat() -> Lemma {
    let terms =
        vec![TermNode::Lit(Lit::Num(0)), TermNode::Bound(0, Sort::Num), TermNode::App(Sym::Le, vec![0, 1]), TermNode::All(Sort::Num, 2)];
    Lemma { name: "nat".into(), statement: 3, proof: Proof { lemmas: vec![], terms, steps: vec![axiom("nat")] } }
}

/// `forall x y. 0 <= x`: its `y` occurs nowhere, so no target determines it.
fn nat_vacuous() -> Lemma {
    let terms = vec![
        TermNode::Var(1, Sort::Num),
        TermNode::Var(2, Sort::Num),
        TermNode::Lit(Lit::Num(0)),
        TermNode::Bound(1, Sort::Num),
        TermNode::App(Sym::Le, vec![2, 3]),
        TermNode::All(Sort::Num, 4),
        TermNode::All(Sort::Num, 5),
    ];
    let steps = vec![axiom("nat"), Step::AllElim { s: 0, t: 0 }, Step::AllIntro { s: 1, var: 1 }, Step::AllIntro { s: 2, var: 0 }];
    Lemma { name: "nat_vacuous".into(), statement: 6, proof: Proof { lemmas: vec![], terms, steps } }
}

fn cache() -> (LemmaCache, LemmaHash, LemmaHash) {
    let mut c = LemmaCache::new();
    let (a, b) = (c.admit(&nat()).unwrap(), c.admit(&nat_vacuous()).unwrap());
    (c, a, b)
}

fn short(h: &LemmaHash) -> LemmaRef {
    LemmaRef(h.0[..4].to_vec())
}

fn proof(lemmas: Vec<LemmaRef>, terms: Vec<TermNode>, steps: Vec<Step>) -> Proof {
    Proof { lemmas, terms, steps }
}

fn refusal(p: &Proof, c: &LemmaCache, goals: &[Term]) -> String {
    match replay(p, c, goals) {
        Ok((th, _)) => panic!("a hostile proof replayed, to {:?}", th.concl()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_lemma_cited_by_prefix_at_a_goal_proves_that_goal() {
    let (c, nat, _) = cache();
    let goals = [le(num(0), num(7))];
    let (th, _) = replay(&proof(vec![short(&nat)], vec![], vec![Step::Lemma { i: 0, at: Some(0) }]), &c, &goals).unwrap();
    assert_eq!(th.concl(), &goals[0]);
    assert!(th.hyps().is_empty());
    // The same through `Inst` on the cited lemma, and by its whole hash.
    let steps = vec![Step::Lemma { i: 0, at: None }, Step::Inst { s: 0, t: 0 }];
    let (th, _) = replay(&proof(vec![LemmaRef(nat.0.to_vec())], vec![], steps), &c, &goals).unwrap();
    assert_eq!(th.concl(), &goals[0]);
}

#[test]
fn lemma_references_that_name_no_lemma_or_several_are_refused() {
    let (c, nat, other) = cache();
    let goals = [le(num(0), num(7))];
    let at = |r: LemmaRef| proof(vec![r], vec![], vec![Step::Lemma { i: 0, at: Some(0) }]);
    // A prefix of no verified lemma: missing (a router asks the client for it).
    let mut wrong = short(&nat);
    while nat.0.starts_with(&wrong.0) || other.0.starts_with(&wrong.0) {
        wrong.0[0] = wrong.0[0].wrapping_add(1);
    }
    assert!(matches!(replay(&at(wrong.clone()), &c, &goals), Err(ProofError::MissingLemma(r)) if r == wrong));
    assert!(matches!(replay(&at(short(&nat)), &LemmaCache::new(), &goals), Err(ProofError::MissingLemma(_))));
    // Longer than a hash: names nothing.
    let mut long = nat.0.to_vec();
    long.push(0);
    assert!(matches!(replay(&at(LemmaRef(long)), &c, &goals), Err(ProofError::MissingLemma(_))));
    // A prefix of two verified lemmas (the empty one is a prefix of every hash): ambiguous.
    let r = refusal(&at(LemmaRef(vec![])), &c, &goals);
    assert!(r.contains("ambiguous"), "{r}");
    // A cited lemma index past the list.
    let r = refusal(&proof(vec![short(&nat)], vec![], vec![Step::Lemma { i: 1, at: None }]), &c, &goals);
    assert!(r.contains("no cited lemma 1"), "{r}");
}

#[test]
fn terms_name_the_goals_and_their_arguments_and_nothing_past_them() {
    let (c, _, _) = cache();
    let goals = [le(num(0), num(7))];
    // `Arg(0, 1)` is the goal's second argument: 7, so `7 = 7` by refl.
    let terms = vec![TermNode::Arg(0, 1)];
    let (th, _) = replay(&proof(vec![], terms, vec![Step::Refl { t: 1 }]), &c, &goals).unwrap();
    assert_eq!(th.concl(), &Term::app(Sym::Eq, vec![num(7), num(7)]).unwrap());
    for (terms, why) in [
        (vec![TermNode::Arg(0, 2)], "term 0: has no argument 2"),
        (vec![TermNode::Lit(Lit::Num(3)), TermNode::Arg(1, 0)], "term 1: has no argument 0"),
        (vec![TermNode::Arg(1, 0)], "term 0: refers to term 1, not an earlier one"),
    ] {
        let r = refusal(&proof(vec![], terms, vec![Step::Refl { t: 0 }]), &c, &goals);
        assert!(r.contains(why), "{r}");
    }
    // A goal index past the statement's conjuncts.
    let r = refusal(&proof(vec![], vec![], vec![Step::Eval { t: 1 }]), &c, &goals);
    assert!(r.contains("step 0 (ref): no term 1"), "{r}");
    // A lemma has no goals.
    let r = refusal(&proof(vec![], vec![], vec![Step::Eval { t: 0 }]), &c, &[]);
    assert!(r.contains("no term 0"), "{r}");
}

#[test]
fn instances_that_do_not_match_are_refused() {
    let (c, nat, vacuous) = cache();
    let cite = |h: &LemmaHash, goal: Term| refusal(&proof(vec![short(h)], vec![], vec![Step::Lemma { i: 0, at: Some(0) }]), &c, &[goal]);
    // A target of another shape, and of another sort's instance.
    let r = cite(&nat, le(num(7), num(0)));
    assert!(r.contains("(inst): no consequent"), "{r}");
    let r = cite(&nat, Term::app(Sym::Lt, vec![num(0), num(7)]).unwrap());
    assert!(r.contains("(inst): no consequent"), "{r}");
    // A quantified variable the target does not determine.
    let r = cite(&vacuous, le(num(0), num(7)));
    assert!(r.contains("the target leaves quantified variable 2 undetermined"), "{r}");
    // A theorem with no quantifier: nothing to instantiate, and `true` is not the target.
    let truth = vec![TermNode::App(Sym::True, vec![])];
    let r = refusal(&proof(vec![], truth, vec![Step::Eval { t: 1 }, Step::Inst { s: 0, t: 0 }]), &c, &[le(num(0), num(7))]);
    assert!(r.contains("step 1 (inst)"), "{r}");
    // A target that is not a formula, or has a loose bound variable.
    let terms = vec![TermNode::Bound(0, Sort::Bool)];
    let r = refusal(&proof(vec![short(&nat)], terms, vec![Step::Lemma { i: 0, at: Some(1) }]), &c, &[le(num(0), num(7))]);
    assert!(r.contains("loose bound variable"), "{r}");
    let r = refusal(&proof(vec![short(&nat)], vec![], vec![Step::Lemma { i: 0, at: Some(0) }]), &c, &[num(7)]);
    assert!(r.contains("(inst): not a formula"), "{r}");
}

#[test]
fn an_instance_may_not_capture_a_bound_variable_of_the_target() {
    // conf_intro: forall s a. (forall p. Mem(p, s) -> Dst(p) = a) -> Conf(s, a). A target
    // whose `a` would be `Dst(p)`, p bound in the target, matches at no level.
    let c = LemmaCache::new();
    let all = Term::app(Sym::All, vec![]).unwrap();
    let p = Term::var(1, Sort::Pkt);
    let dst = Term::app(Sym::Dst, vec![p.clone()]).unwrap();
    let body = Term::app(
        Sym::Imp,
        vec![Term::app(Sym::Mem, vec![p.clone(), all.clone()]).unwrap(), Term::app(Sym::Eq, vec![dst.clone(), dst]).unwrap()],
    )
    .unwrap();
    let ante = Term::all(p, body).unwrap();
    let conf = Term::app(Sym::Conf, vec![all, Term::app(Sym::ThisIp, vec![]).unwrap()]).unwrap();
    let goal = Term::app(Sym::Imp, vec![ante, conf]).unwrap();
    let r = refusal(&proof(vec![], vec![], vec![axiom("conf_intro"), Step::Inst { s: 0, t: 0 }]), &c, &[goal]);
    assert!(r.contains("step 1 (inst): no consequent"), "{r}");
}

#[test]
fn conjunctions_are_balanced_as_the_predicate_and_need_premises() {
    let c = LemmaCache::new();
    let goals: Vec<Term> = (0..3).map(|i| le(num(i), num(9))).collect();
    let steps = vec![Step::Eval { t: 0 }, Step::Eval { t: 1 }, Step::Eval { t: 2 }, Step::Conj { s: vec![0, 1, 2] }];
    let (th, _) = replay(&proof(vec![], vec![], steps), &c, &goals).unwrap();
    let and = |a: &Term, b: &Term| Term::app(Sym::And, vec![a.clone(), b.clone()]).unwrap();
    assert_eq!(th.concl(), &and(&goals[0], &and(&goals[1], &goals[2])));
    let r = refusal(&proof(vec![], vec![], vec![Step::Eval { t: 0 }, Step::Conj { s: vec![] }]), &c, &goals);
    assert!(r.contains("step 1 (conj): no premises"), "{r}");
    let r = refusal(&proof(vec![], vec![], vec![Step::Eval { t: 0 }, Step::Conj { s: vec![0, 1] }]), &c, &goals);
    assert!(r.contains("step 1 (ref): step 1 is not an earlier step"), "{r}");
}

#[test]
fn matching_is_charged_to_the_budget() {
    // A lemma `forall x. big(x) = big(x)` whose statement shares one subterm
    // 18 deep (a tree of a million nodes in 40): admitted cheaply, but matching
    // walks the tree, so an instance is refused at the budget of a small bundle.
    let mut terms = vec![TermNode::Var(1, Sort::Num)];
    for i in 0..18 {
        terms.push(TermNode::App(Sym::Add, vec![i, i]));
    }
    let big = terms.len() as u32 - 1;
    terms.push(TermNode::App(Sym::Eq, vec![big, big]));
    let eq = terms.len() as u32 - 1;
    let mut statement = vec![TermNode::Bound(0, Sort::Num)];
    for i in 0..18 {
        statement.push(TermNode::App(Sym::Add, vec![eq + 1 + i, eq + 1 + i]));
    }
    terms.extend(statement);
    let sbig = terms.len() as u32 - 1;
    terms.push(TermNode::App(Sym::Eq, vec![sbig, sbig]));
    terms.push(TermNode::All(Sort::Num, sbig + 1));
    let lemma = Lemma {
        name: "big".into(),
        statement: terms.len() as u32 - 1,
        proof: Proof { lemmas: vec![], terms, steps: vec![Step::Refl { t: big }, Step::AllIntro { s: 0, var: 0 }] },
    };
    let mut c = LemmaCache::new();
    let h = c.admit(&lemma).unwrap();
    // The target: big(5) = big(5), shared the same way.
    let mut t = num(5);
    for _ in 0..18 {
        t = Term::app(Sym::Add, vec![t.clone(), t]).unwrap();
    }
    let goal = Term::app(Sym::Eq, vec![t.clone(), t]).unwrap();
    let p = proof(vec![short(&h)], vec![], vec![Step::Lemma { i: 0, at: Some(0) }]);
    let _b = budget(1_000);
    let r = refusal(&p, &c, std::slice::from_ref(&goal));
    assert!(r.contains("budget"), "{r}");
}
