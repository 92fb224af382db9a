//! Building proofs: each rule is applied by the kernel at once (so a tactic
//! learns immediately whether its step is valid) and recorded as a certificate
//! step (so what the prover emits replays the same way at the router).

use std::collections::HashMap;
use vinet_checker::cert::{LemmaCache, LemmaHash, Proof, Step, TermNode};
use vinet_checker::kernel::{RuleError, Theorem};
use vinet_checker::logic::{Kind, Sym, Term};

/// A proved theorem and the index of the step that proved it.
#[derive(Clone, Debug)]
pub struct Pf {
    /// The theorem.
    pub th: Theorem,
    id: u32,
}

impl Pf {
    /// The conclusion.
    pub fn concl(&self) -> &Term {
        self.th.concl()
    }
}

/// A failed step: the kernel's refusal.
pub type BResult<T> = Result<T, RuleError>;

/// Records a proof while building it through the kernel.
pub struct Builder<'c> {
    cache: &'c LemmaCache,
    terms: Vec<TermNode>,
    index: HashMap<Term, u32>,
    steps: Vec<Step>,
    lemmas: Vec<LemmaHash>,
    lemma_index: HashMap<LemmaHash, u32>,
    memo: HashMap<Step, Pf>,
}

impl<'c> Builder<'c> {
    /// A builder citing lemmas from `cache`.
    pub fn new(cache: &'c LemmaCache) -> Builder<'c> {
        Builder {
            cache,
            terms: vec![],
            index: HashMap::new(),
            steps: vec![],
            lemmas: vec![],
            lemma_index: HashMap::new(),
            memo: HashMap::new(),
        }
    }

    /// The lemma cache this builder cites from.
    pub fn cache(&self) -> &'c LemmaCache {
        self.cache
    }

    /// The proof of `last`: only the steps it rests on (failed attempts are
    /// dropped), renumbered, with only the terms those steps use.
    pub fn finish(self, last: &Pf) -> Proof {
        let n = last.id as usize + 1;
        let mut keep = vec![false; n];
        keep[last.id as usize] = true;
        for i in (0..n).rev() {
            if keep[i] {
                for s in step_refs(&self.steps[i]) {
                    keep[s as usize] = true;
                }
            }
        }
        let mut step_map = vec![u32::MAX; n];
        let mut term_map = vec![u32::MAX; self.terms.len()];
        let mut out = Proof { lemmas: vec![], terms: vec![], steps: vec![] };
        let mut lemma_map: HashMap<u32, u32> = HashMap::new();
        for i in 0..n {
            if !keep[i] {
                continue;
            }
            let mut step = self.steps[i].clone();
            map_refs(&mut step, &mut |r, is_term| {
                if is_term {
                    intern(&self.terms, &mut term_map, &mut out.terms, r)
                } else {
                    step_map[r as usize]
                }
            });
            if let Step::Lemma { i: li } = &mut step {
                let next = out.lemmas.len() as u32;
                let new = *lemma_map.entry(*li).or_insert(next);
                if new == next {
                    out.lemmas.push(self.lemmas[*li as usize]);
                }
                *li = new;
            }
            step_map[i] = out.steps.len() as u32;
            out.steps.push(step);
        }
        out
    }

    /// The pool index of a term (interned with its subterms).
    pub fn term(&mut self, t: &Term) -> u32 {
        if let Some(&i) = self.index.get(t) {
            return i;
        }
        let node = match t.kind() {
            Kind::Var(v) => TermNode::Var(*v, t.sort()),
            Kind::Bound(i) => TermNode::Bound(*i, t.sort()),
            Kind::Lit(l) => TermNode::Lit(l.clone()),
            Kind::App(s, args) => TermNode::App(*s, args.iter().map(|a| self.term(a)).collect()),
            Kind::All(s, b) => TermNode::All(*s, self.term(b)),
        };
        let i = self.terms.len() as u32;
        self.terms.push(node);
        self.index.insert(t.clone(), i);
        i
    }

    fn push(&mut self, step: Step, th: BResult<Theorem>) -> BResult<Pf> {
        if let Some(pf) = self.memo.get(&step) {
            return Ok(pf.clone());
        }
        let th = th?;
        let id = self.steps.len() as u32;
        self.steps.push(step.clone());
        let pf = Pf { th, id };
        self.memo.insert(step, pf.clone());
        Ok(pf)
    }

    /// `p |- p`
    pub fn assume(&mut self, p: &Term) -> BResult<Pf> {
        let t = self.term(p);
        self.push(Step::Assume { t }, Theorem::assume(p))
    }
    /// Discharge `p`.
    pub fn imp_intro(&mut self, p: &Term, a: &Pf) -> BResult<Pf> {
        let t = self.term(p);
        self.push(Step::ImpIntro { t, s: a.id }, Theorem::imp_intro(p, &a.th))
    }
    /// Modus ponens.
    pub fn mp(&mut self, imp: &Pf, a: &Pf) -> BResult<Pf> {
        self.push(Step::ImpElim { s1: imp.id, s2: a.id }, Theorem::imp_elim(&imp.th, &a.th))
    }
    /// Conjunction.
    pub fn and(&mut self, a: &Pf, b: &Pf) -> BResult<Pf> {
        self.push(Step::AndIntro { s1: a.id, s2: b.id }, Theorem::and_intro(&a.th, &b.th))
    }
    /// A conjunct.
    pub fn and_elim(&mut self, a: &Pf, right: bool) -> BResult<Pf> {
        self.push(Step::AndElim { s: a.id, right }, Theorem::and_elim(&a.th, right))
    }
    /// Disjunction introduction.
    pub fn or_intro(&mut self, a: &Pf, other: &Term, on_left: bool) -> BResult<Pf> {
        let t = self.term(other);
        self.push(Step::OrIntro { s: a.id, t, on_left }, Theorem::or_intro(&a.th, other, on_left))
    }
    /// Case analysis.
    pub fn or_elim(&mut self, or: &Pf, a: &Pf, b: &Pf) -> BResult<Pf> {
        self.push(Step::OrElim { s1: or.id, s2: a.id, s3: b.id }, Theorem::or_elim(&or.th, &a.th, &b.th))
    }
    /// `not p` from a refutation of `p`.
    pub fn not_intro(&mut self, p: &Term, f: &Pf) -> BResult<Pf> {
        let t = self.term(p);
        self.push(Step::NotIntro { t, s: f.id }, Theorem::not_intro(p, &f.th))
    }
    /// `false` from `not p` and `p`.
    pub fn not_elim(&mut self, np: &Pf, p: &Pf) -> BResult<Pf> {
        self.push(Step::NotElim { s1: np.id, s2: p.id }, Theorem::not_elim(&np.th, &p.th))
    }
    /// Anything from `false`.
    pub fn false_elim(&mut self, f: &Pf, q: &Term) -> BResult<Pf> {
        let t = self.term(q);
        self.push(Step::FalseElim { s: f.id, t }, Theorem::false_elim(&f.th, q))
    }
    /// `p or not p`.
    pub fn em(&mut self, p: &Term) -> BResult<Pf> {
        let t = self.term(p);
        self.push(Step::ExcludedMiddle { t }, Theorem::excluded_middle(p))
    }
    /// `true`.
    pub fn truth(&mut self) -> BResult<Pf> {
        self.push(Step::Truth, Theorem::truth())
    }
    /// `t = t`.
    pub fn refl(&mut self, t: &Term) -> BResult<Pf> {
        let i = self.term(t);
        self.push(Step::Refl { t: i }, Theorem::refl(t))
    }
    /// From `s = t` and `P[x := s]`, `P[x := t]`.
    pub fn eq_subst(&mut self, eq: &Pf, a: &Pf, x: &Term, template: &Term) -> BResult<Pf> {
        let (var, tm) = (self.term(x), self.term(template));
        self.push(Step::EqSubst { s1: eq.id, s2: a.id, var, template: tm }, Theorem::eq_subst(&eq.th, &a.th, x, template))
    }
    /// `ite(c, x, y) = x` (from `c`) or `= y` (from `not c`).
    pub fn ite(&mut self, a: &Pf, c: &Term, x: &Term, y: &Term) -> BResult<Pf> {
        let (ci, xi, yi) = (self.term(c), self.term(x), self.term(y));
        self.push(Step::Ite { s: a.id, c: ci, x: xi, y: yi }, Theorem::ite(&a.th, c, x, y))
    }
    /// Generalize.
    pub fn gen(&mut self, a: &Pf, x: &Term) -> BResult<Pf> {
        let var = self.term(x);
        self.push(Step::AllIntro { s: a.id, var }, Theorem::all_intro(&a.th, x))
    }
    /// Instantiate the outer quantifiers in order.
    pub fn inst(&mut self, a: &Pf, ts: &[Term]) -> BResult<Pf> {
        let mut cur = a.clone();
        for t in ts {
            let i = self.term(t);
            cur = self.push(Step::AllElim { s: cur.id, t: i }, Theorem::all_elim(&cur.th, t))?;
        }
        Ok(cur)
    }
    /// An axiom by name.
    pub fn axiom(&mut self, name: &str) -> BResult<Pf> {
        let n = vinet_checker::kernel::axioms().iter().position(|(a, _)| *a == name);
        let n = n.ok_or_else(|| RuleError { rule: "axiom", reason: format!("no axiom named {name}") })?;
        self.push(Step::Axiom { n: n as u16 }, Theorem::axiom(n))
    }
    /// A cached lemma by hash.
    pub fn lemma(&mut self, h: LemmaHash) -> BResult<Pf> {
        let th =
            self.cache.get(&h).cloned().ok_or_else(|| RuleError { rule: "lemma", reason: format!("lemma {h} is not in the cache") })?;
        let next = self.lemmas.len() as u32;
        let i = *self.lemma_index.entry(h).or_insert(next);
        if i == next {
            self.lemmas.push(h);
        }
        self.push(Step::Lemma { i }, Ok(th))
    }
    /// A ground fact by computation.
    pub fn eval(&mut self, p: &Term) -> BResult<Pf> {
        let t = self.term(p);
        self.push(Step::Eval { t }, Theorem::eval(p))
    }
    /// Linear arithmetic refutation.
    pub fn farkas(&mut self, premises: &[(Pf, i64)]) -> BResult<Pf> {
        let steps = premises.iter().map(|(p, c)| (p.id, *c)).collect();
        let ths: Vec<(&Theorem, i64)> = premises.iter().map(|(p, c)| (&p.th, *c)).collect();
        self.push(Step::Farkas { premises: steps }, Theorem::farkas(&ths))
    }

    // Derived rules.

    /// From `s = t`, `t = s`.
    pub fn sym(&mut self, eq: &Pf) -> BResult<Pf> {
        let Some([s, _]) = eq.concl().args_of(Sym::Eq) else {
            return Err(RuleError { rule: "sym", reason: "not an equation".into() });
        };
        let s = s.clone();
        let x = Term::var(u32::MAX, s.sort());
        let template = Term::app(Sym::Eq, vec![x.clone(), s.clone()]).map_err(|reason| RuleError { rule: "sym", reason })?;
        let r = self.refl(&s)?;
        self.eq_subst(eq, &r, &x, &template)
    }

    /// Rewrite: from `s = t` and a theorem, replace every occurrence of `s` by `t`.
    pub fn rewrite(&mut self, eq: &Pf, a: &Pf) -> BResult<Pf> {
        let Some([s, _]) = eq.concl().args_of(Sym::Eq) else {
            return Err(RuleError { rule: "rewrite", reason: "not an equation".into() });
        };
        let x = Term::var(u32::MAX, s.sort());
        let template = abstract_term(a.concl(), s, &x).map_err(|reason| RuleError { rule: "rewrite", reason })?;
        self.eq_subst(eq, a, &x, &template)
    }

    /// From `G |- false` with `p` among `G`, `G - p |- not p`; from there `p`'s negation... and
    /// classically: from a refutation of `not q`, `q`.
    pub fn by_contradiction(&mut self, q: &Term, refutation_of_not_q: &Pf) -> BResult<Pf> {
        let em = self.em(q)?;
        let yes = self.assume(q)?;
        let no = self.false_elim(refutation_of_not_q, q)?;
        self.or_elim(&em, &yes, &no)
    }
}

/// `t` with every occurrence of `s` replaced by variable `x`.
pub fn abstract_term(t: &Term, s: &Term, x: &Term) -> Result<Term, String> {
    if t == s {
        return Ok(x.clone());
    }
    match t.kind() {
        Kind::App(sym, args) => Term::app(*sym, args.iter().map(|a| abstract_term(a, s, x)).collect::<Result<_, _>>()?),
        Kind::All(sort, b) => Term::all_raw(*sort, abstract_term(b, s, x)?),
        _ => Ok(t.clone()),
    }
}

/// Copy pool term `r` (and its children, first) into `out`, once.
fn intern(pool: &[TermNode], map: &mut [u32], out: &mut Vec<TermNode>, r: u32) -> u32 {
    if map[r as usize] != u32::MAX {
        return map[r as usize];
    }
    let node = match &pool[r as usize] {
        TermNode::App(s, args) => TermNode::App(*s, args.iter().map(|&a| intern(pool, map, out, a)).collect()),
        TermNode::All(s, b) => TermNode::All(*s, intern(pool, map, out, *b)),
        other => other.clone(),
    };
    map[r as usize] = out.len() as u32;
    out.push(node);
    map[r as usize]
}

/// The earlier steps a step uses.
fn step_refs(s: &Step) -> Vec<u32> {
    let mut v = vec![];
    map_refs(&mut s.clone(), &mut |r, is_term| {
        if !is_term {
            v.push(r);
        }
        r
    });
    v
}

/// Rewrite a step's references: `f(index, is_term)`.
fn map_refs(s: &mut Step, f: &mut dyn FnMut(u32, bool) -> u32) {
    use Step::*;
    match s {
        Assume { t } | ExcludedMiddle { t } | Refl { t } | Eval { t } => *t = f(*t, true),
        ImpIntro { t, s } | NotIntro { t, s } => {
            *t = f(*t, true);
            *s = f(*s, false);
        }
        ImpElim { s1, s2 } | AndIntro { s1, s2 } | NotElim { s1, s2 } => {
            *s1 = f(*s1, false);
            *s2 = f(*s2, false);
        }
        AndElim { s, .. } => *s = f(*s, false),
        OrIntro { s, t, .. } | FalseElim { s, t } | AllElim { s, t } => {
            *s = f(*s, false);
            *t = f(*t, true);
        }
        OrElim { s1, s2, s3 } => {
            *s1 = f(*s1, false);
            *s2 = f(*s2, false);
            *s3 = f(*s3, false);
        }
        EqSubst { s1, s2, var, template } => {
            *s1 = f(*s1, false);
            *s2 = f(*s2, false);
            *var = f(*var, true);
            *template = f(*template, true);
        }
        Ite { s, c, x, y } => {
            *s = f(*s, false);
            *c = f(*c, true);
            *x = f(*x, true);
            *y = f(*y, true);
        }
        AllIntro { s, var } => {
            *s = f(*s, false);
            *var = f(*var, true);
        }
        Farkas { premises } => {
            for (p, _) in premises {
                *p = f(*p, false);
            }
        }
        Truth | Axiom { .. } | Lemma { .. } => {}
    }
}

/// The pool index of `t` in a finished proof, adding it (and its subterms) if absent.
pub fn add_term(proof: &mut Proof, t: &Term) -> u32 {
    let built = vinet_checker::cert::build_terms(&proof.terms).expect("a builder's pool is well formed");
    let mut index: HashMap<Term, u32> = built.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
    fn go(proof: &mut Proof, index: &mut HashMap<Term, u32>, t: &Term) -> u32 {
        if let Some(&i) = index.get(t) {
            return i;
        }
        let node = match t.kind() {
            Kind::Var(v) => TermNode::Var(*v, t.sort()),
            Kind::Bound(i) => TermNode::Bound(*i, t.sort()),
            Kind::Lit(l) => TermNode::Lit(l.clone()),
            Kind::App(s, args) => TermNode::App(*s, args.iter().map(|a| go(proof, index, a)).collect()),
            Kind::All(s, b) => TermNode::All(*s, go(proof, index, b)),
        };
        proof.terms.push(node);
        let i = proof.terms.len() as u32 - 1;
        index.insert(t.clone(), i);
        i
    }
    go(proof, &mut index, t)
}

/// The same proof with every cited lemma's proof inlined (recursively), so it
/// replays with an empty lemma cache: what the certificate would be without a
/// lemma library.
pub fn inline_lemmas(proof: &Proof, library: &HashMap<LemmaHash, &vinet_checker::cert::Lemma>) -> Result<Proof, String> {
    fn emit(p: &Proof, lib: &HashMap<LemmaHash, &vinet_checker::cert::Lemma>, out: &mut Proof, depth: u32) -> Result<u32, String> {
        if depth > 64 {
            return Err("lemmas cite each other too deeply".into());
        }
        let offset = out.terms.len() as u32;
        for t in &p.terms {
            out.terms.push(match t {
                TermNode::App(s, args) => TermNode::App(*s, args.iter().map(|a| a + offset).collect()),
                TermNode::All(s, b) => TermNode::All(*s, b + offset),
                other => other.clone(),
            });
        }
        let mut map = Vec::with_capacity(p.steps.len());
        for step in &p.steps {
            if let Step::Lemma { i } = step {
                let h = p.lemmas.get(*i as usize).ok_or("no such cited lemma")?;
                let l = lib.get(h).ok_or_else(|| format!("lemma {h} is not in the library"))?;
                map.push(emit(&l.proof, lib, out, depth + 1)?);
                continue;
            }
            let mut s = step.clone();
            map_refs(&mut s, &mut |r, is_term| if is_term { r + offset } else { map[r as usize] });
            out.steps.push(s);
            map.push(out.steps.len() as u32 - 1);
        }
        map.last().copied().ok_or_else(|| "an empty proof".into())
    }
    let mut out = Proof::default();
    let last = emit(proof, library, &mut out, 0)? as usize;
    if last + 1 != out.steps.len() {
        return Err("the proof's conclusion is not its last step".into());
    }
    Ok(out)
}
