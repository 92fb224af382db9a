//! Building proofs: each rule is applied by the kernel at once (so a tactic
//! learns immediately whether its step is valid) and recorded as a certificate
//! step (so what the prover emits replays the same way at the router).

use std::collections::HashMap;
use vinet_checker::cert::{Lemma, LemmaCache, LemmaHash, LemmaRef, Proof, Step, TermNode};
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

/// Bytes of a lemma's hash that a certificate cites it by (more where the
/// prover's own cache holds two lemmas with the same first 4 bytes).
pub const REF_BYTES: usize = 4;

/// Records a proof while building it through the kernel.
pub struct Builder<'c> {
    cache: &'c LemmaCache,
    /// How many terms come before the pool: the conjuncts of the statement.
    goals: u32,
    /// Whether lemmas are cited by [`REF_BYTES`] of their hash (certificates) or all 32 (lemmas).
    short_refs: bool,
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
            goals: 0,
            short_refs: false,
            terms: vec![],
            index: HashMap::new(),
            steps: vec![],
            lemmas: vec![],
            lemma_index: HashMap::new(),
            memo: HashMap::new(),
        }
    }

    /// A builder for a certificate of the conjunction of `goals` (the checker's
    /// [`vinet_checker::vcgen::Vc::all`]): the goals and their arguments are
    /// terms the checker already has (the first terms, and [`TermNode::Arg`]
    /// nodes), and lemmas are cited by a short prefix of their hash.
    pub fn for_goals(cache: &'c LemmaCache, goals: &[Term]) -> Builder<'c> {
        let mut b = Builder { goals: goals.len() as u32, short_refs: true, ..Builder::new(cache) };
        for (i, g) in goals.iter().enumerate() {
            b.index.entry(g.clone()).or_insert(i as u32);
        }
        for g in goals {
            b.args_of(g);
        }
        b
    }

    /// Index the arguments of `t` (already indexed), and theirs, as [`TermNode::Arg`] nodes.
    fn args_of(&mut self, t: &Term) {
        let at = self.index[t];
        for (i, a) in t.args().iter().enumerate() {
            if !self.index.contains_key(a) {
                self.index.insert(a.clone(), self.goals + self.terms.len() as u32);
                self.terms.push(TermNode::Arg(at, i as u32));
                self.args_of(a);
            }
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
        let g = self.goals;
        let mut term_map: Vec<u32> = (0..g).chain(std::iter::repeat_n(u32::MAX, self.terms.len())).collect();
        let mut out = Proof { lemmas: vec![], terms: vec![], steps: vec![] };
        let mut lemma_map: HashMap<u32, u32> = HashMap::new();
        for i in 0..n {
            if !keep[i] {
                continue;
            }
            let mut step = self.steps[i].clone();
            map_refs(&mut step, &mut |r, is_term| {
                if is_term {
                    intern(&self.terms, g, &mut term_map, &mut out.terms, r)
                } else {
                    step_map[r as usize]
                }
            });
            if let Step::Lemma { i: li, .. } = &mut step {
                let next = out.lemmas.len() as u32;
                let new = *lemma_map.entry(*li).or_insert(next);
                if new == next {
                    out.lemmas.push(self.lemma_ref(&self.lemmas[*li as usize]));
                }
                *li = new;
            }
            step_map[i] = out.steps.len() as u32;
            out.steps.push(step);
        }
        out
    }

    /// How a certificate refers to lemma `h`: its shortest prefix of at least
    /// [`REF_BYTES`] bytes that names only it in this builder's cache.
    fn lemma_ref(&self, h: &LemmaHash) -> LemmaRef {
        let n = if self.short_refs { REF_BYTES } else { 32 };
        let ok = |r: &LemmaRef| self.cache.resolve(r).is_ok_and(|th| Some(th) == self.cache.get(h));
        (n..=32).map(|n| LemmaRef(h.0[..n].to_vec())).find(ok).unwrap_or(LemmaRef(h.0.to_vec()))
    }

    /// The term index of a term (interned with its subterms).
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
        let i = self.goals + self.terms.len() as u32;
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
        self.eval(&Term::app(Sym::True, vec![]).expect("nullary"))
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
    /// Instantiate the quantifiers of `a` so that one of its consequents is
    /// `target`: one step that names the target (often a term the checker
    /// has), rather than the instance terms.
    pub fn inst_to(&mut self, a: &Pf, target: &Term) -> BResult<Pf> {
        let t = self.term(target);
        self.push(Step::Inst { s: a.id, t }, Theorem::inst(&a.th, target))
    }
    /// [`Builder::inst`] with `ts`, recorded as [`Builder::inst_to`] the
    /// instance's consequent after `k` implications where that gives the same theorem.
    pub fn inst_as(&mut self, a: &Pf, ts: &[Term], k: usize) -> BResult<Pf> {
        let (want, target) = instance(&a.th, ts, k)?;
        match self.inst_to(a, &target) {
            Ok(pf) if pf.th == want => Ok(pf),
            _ => self.inst(a, ts),
        }
    }
    /// Lemma `h` instantiated with `ts`, cited at the instance's consequent
    /// after `k` implications where that gives the same theorem (one step).
    pub fn lemma_as(&mut self, h: LemmaHash, ts: &[Term], k: usize) -> BResult<Pf> {
        let th =
            self.cache.get(&h).cloned().ok_or_else(|| RuleError { rule: "lemma", reason: format!("lemma {h} is not in the cache") })?;
        let (want, target) = instance(&th, ts, k)?;
        match self.lemma(h, Some(&target)) {
            Ok(pf) if pf.th == want => Ok(pf),
            _ => {
                let l = self.lemma(h, None)?;
                self.inst(&l, ts)
            }
        }
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
    /// A cached lemma by hash; with `at`, instantiated to conclude `at` (see [`Theorem::inst`]).
    pub fn lemma(&mut self, h: LemmaHash, at: Option<&Term>) -> BResult<Pf> {
        let th =
            self.cache.get(&h).cloned().ok_or_else(|| RuleError { rule: "lemma", reason: format!("lemma {h} is not in the cache") })?;
        let next = self.lemmas.len() as u32;
        let i = *self.lemma_index.entry(h).or_insert(next);
        if i == next {
            self.lemmas.push(h);
        }
        match at {
            None => self.push(Step::Lemma { i, at: None }, Ok(th)),
            Some(t) => {
                let ti = self.term(t);
                self.push(Step::Lemma { i, at: Some(ti) }, Theorem::inst(&th, t))
            }
        }
    }
    /// A ground fact by computation.
    pub fn eval(&mut self, p: &Term) -> BResult<Pf> {
        let t = self.term(p);
        self.push(Step::Eval { t }, Theorem::eval(p))
    }
    /// The balanced conjunction of the premises (the shape of the safety predicate).
    pub fn conj(&mut self, ps: &[Pf]) -> BResult<Pf> {
        let ths: Vec<Theorem> = ps.iter().map(|p| p.th.clone()).collect();
        self.push(Step::Conj { s: ps.iter().map(|p| p.id).collect() }, Theorem::conj(&ths))
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

/// `th` instantiated with `ts` (not recorded), and its consequent after `k` implications.
fn instance(th: &Theorem, ts: &[Term], k: usize) -> BResult<(Theorem, Term)> {
    let th = ts.iter().try_fold(th.clone(), |th, t| Theorem::all_elim(&th, t))?;
    let c = (0..k).fold(th.concl().clone(), |c, _| c.args_of(Sym::Imp).map_or(c.clone(), |a| a[1].clone()));
    Ok((th, c))
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

/// Copy term `r` (and its children, first) into `out`, once; terms below
/// `goals` are the goals, the same in both.
fn intern(pool: &[TermNode], goals: u32, map: &mut [u32], out: &mut Vec<TermNode>, r: u32) -> u32 {
    if map[r as usize] != u32::MAX {
        return map[r as usize];
    }
    let mut go = |a: u32| intern(pool, goals, map, out, a);
    let node = match &pool[(r - goals) as usize] {
        TermNode::App(s, args) => TermNode::App(*s, args.iter().map(|&a| go(a)).collect()),
        TermNode::All(s, b) => TermNode::All(*s, go(*b)),
        TermNode::Arg(t, i) => TermNode::Arg(go(*t), *i),
        other => other.clone(),
    };
    map[r as usize] = goals + out.len() as u32;
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
        OrIntro { s, t, .. } | FalseElim { s, t } | AllElim { s, t } | Inst { s, t } => {
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
        Conj { s } => s.iter_mut().for_each(|p| *p = f(*p, false)),
        Lemma { at: Some(t), .. } => *t = f(*t, true),
        Axiom { .. } | Lemma { at: None, .. } => {}
    }
}

/// The term index of `t` in a finished proof of the conjunction of `goals`,
/// adding it (and its subterms) to the pool if absent.
pub fn add_term(proof: &mut Proof, goals: &[Term], t: &Term) -> u32 {
    let built = vinet_checker::cert::build_terms(&proof.terms, goals).expect("a builder's pool is well formed");
    let mut index: HashMap<Term, u32> = built.into_iter().enumerate().rev().map(|(i, t)| (t, i as u32)).collect();
    fn go(proof: &mut Proof, g: u32, index: &mut HashMap<Term, u32>, t: &Term) -> u32 {
        if let Some(&i) = index.get(t) {
            return i;
        }
        let node = match t.kind() {
            Kind::Var(v) => TermNode::Var(*v, t.sort()),
            Kind::Bound(i) => TermNode::Bound(*i, t.sort()),
            Kind::Lit(l) => TermNode::Lit(l.clone()),
            Kind::App(s, args) => TermNode::App(*s, args.iter().map(|a| go(proof, g, index, a)).collect()),
            Kind::All(s, b) => TermNode::All(*s, go(proof, g, index, b)),
        };
        proof.terms.push(node);
        let i = g + proof.terms.len() as u32 - 1;
        index.insert(t.clone(), i);
        i
    }
    go(proof, goals.len() as u32, &mut index, t)
}

/// The same proof with every cited lemma's proof inlined (recursively, each
/// lemma once), so it replays with an empty lemma cache: what the certificate
/// would be without a lemma library. `goals` is how many terms precede the
/// pool (the statement's conjuncts; 0 for a lemma).
pub fn inline_lemmas(proof: &Proof, goals: u32, library: &HashMap<LemmaHash, &Lemma>) -> Result<Proof, String> {
    struct Out<'l> {
        proof: Proof,
        goals: u32,
        library: &'l HashMap<LemmaHash, &'l Lemma>,
        done: HashMap<LemmaHash, u32>,
    }
    fn emit(p: &Proof, own_goals: u32, o: &mut Out, depth: u32) -> Result<u32, String> {
        if depth > 64 {
            return Err("lemmas cite each other too deeply".into());
        }
        let offset = o.goals + o.proof.terms.len() as u32;
        let tm = |r: u32| if r < own_goals { r } else { r - own_goals + offset };
        for t in &p.terms {
            o.proof.terms.push(match t {
                TermNode::App(s, args) => TermNode::App(*s, args.iter().map(|&a| tm(a)).collect()),
                TermNode::All(s, b) => TermNode::All(*s, tm(*b)),
                TermNode::Arg(t, i) => TermNode::Arg(tm(*t), *i),
                other => other.clone(),
            });
        }
        let mut map: Vec<u32> = Vec::with_capacity(p.steps.len());
        for step in &p.steps {
            let mut s = step.clone();
            if let Step::Lemma { i, at } = step {
                let r = p.lemmas.get(*i as usize).ok_or("no such cited lemma")?;
                let (h, l) =
                    o.library.iter().find(|(h, _)| r.names(h)).map(|(h, l)| (*h, *l)).ok_or(format!("lemma {r} is not in the library"))?;
                let th = match o.done.get(&h) {
                    Some(&th) => th,
                    None => emit(&l.proof, 0, o, depth + 1)?,
                };
                o.done.insert(h, th);
                let Some(t) = at else {
                    map.push(th);
                    continue;
                };
                s = Step::Inst { s: th, t: tm(*t) };
            } else {
                map_refs(&mut s, &mut |r, is_term| if is_term { tm(r) } else { map[r as usize] });
            }
            o.proof.steps.push(s);
            map.push(o.proof.steps.len() as u32 - 1);
        }
        map.last().copied().ok_or_else(|| "an empty proof".into())
    }
    let mut out = Out { proof: Proof::default(), goals, library, done: HashMap::new() };
    let last = emit(proof, goals, &mut out, 0)? as usize;
    if last + 1 != out.proof.steps.len() {
        return Err("the proof's conclusion is not its last step".into());
    }
    Ok(out.proof)
}
