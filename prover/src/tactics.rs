//! Tactics: proofs of the obligations of `vinet_checker::vcgen`.
//!
//! Confinement goals are proved structurally, following the set term and
//! citing the library (`conf_fdst`, `conf_inherit_fsrc`, `conf_inherit_narrow`
//! for the transport-level narrowings and field groups, ...). Where a key or
//! an address must be shown equal to THIS_IP (or inside THIS_SUBNET_IP) from
//! the path conditions, and for the arithmetic of loop bounds, a small
//! refutation engine works on the path facts: it flattens the connectives,
//! closes equalities by proof-producing congruence closure with ground
//! evaluation, splits disjunctions, and refutes linear arithmetic by Farkas
//! coefficients that z3 finds. Every step goes through the kernel.

use crate::builder::{Builder, Pf};
use crate::lemma_src::LemmaSet;
use std::collections::{HashMap, HashSet, VecDeque};
use vinet_checker::kernel::RuleError;
use vinet_checker::logic::{Kind, Linear, Lit, Sort, Sym, Term, Value};
use vinet_checker::policy::ClientKind;

/// Tactic failures carry a reason (for the prover's own diagnostics).
pub type TResult<T> = Result<T, String>;

fn rule(e: RuleError) -> String {
    format!("{}: {}", e.rule, e.reason)
}

/// Build a term (the sorts are right by construction in the tactics).
pub fn app(sym: Sym, args: Vec<Term>) -> TResult<Term> {
    Term::app(sym, args)
}

/// The tactic context: the proof being built and what it may cite.
pub struct Tactics<'b, 'c> {
    /// The proof under construction.
    pub b: &'b mut Builder<'c>,
    lemmas: &'b LemmaSet,
    client: ClientKind,
    budget: u32,
}

impl<'b, 'c> Tactics<'b, 'c> {
    /// Tactics for a client kind.
    pub fn new(b: &'b mut Builder<'c>, lemmas: &'b LemmaSet, client: ClientKind) -> Self {
        Tactics { b, lemmas, client, budget: 0 }
    }

    fn this_ip() -> Term {
        Term::app(Sym::ThisIp, vec![]).expect("nullary")
    }
    fn this_net() -> Term {
        Term::app(Sym::ThisNet, vec![]).expect("nullary")
    }
    fn this_on() -> Term {
        Term::app(Sym::ThisOn, vec![]).expect("nullary")
    }

    /// The client's confinement: its predicate, what it is confined to, and
    /// its lemmas' prefix (`conf`, `confp`, `confk`).
    fn confinement(&self) -> (Sym, Term, &'static str) {
        match self.client {
            ClientKind::EndUser => (Sym::Conf, Self::this_ip(), "conf"),
            ClientKind::EdgeRouter => (Sym::ConfP, Self::this_net(), "confp"),
            ClientKind::OnOwner => (Sym::ConfK, Self::this_on(), "confk"),
        }
    }

    /// Instantiate a library lemma and discharge its premises.
    fn lemma(&mut self, name: &str, insts: &[Term], premises: &[&Pf]) -> TResult<Pf> {
        let h = self.lemmas.hash(name).ok_or(format!("the library has no lemma `{name}`"))?;
        let mut pf = self.b.lemma_as(h, insts, premises.len()).map_err(rule)?;
        for p in premises {
            pf = self.b.mp(&pf, p).map_err(rule)?;
        }
        Ok(pf)
    }

    fn axiom(&mut self, name: &str, insts: &[Term], premises: &[&Pf]) -> TResult<Pf> {
        let a = self.b.axiom(name).map_err(rule)?;
        let mut pf = self.b.inst_as(&a, insts, premises.len()).map_err(rule)?;
        for p in premises {
            pf = self.b.mp(&pf, p).map_err(rule)?;
        }
        Ok(pf)
    }

    /// Prove `path_1 -> ... -> path_n -> goal` by proving `goal` from the assumed path.
    pub fn obligation(&mut self, path: &[Term], goal: &Term) -> TResult<Pf> {
        let facts = path.iter().map(|c| self.b.assume(c).map_err(rule)).collect::<TResult<Vec<_>>>()?;
        self.budget = 4000;
        let mut pf = match self.goal(&facts, goal) {
            Ok(pf) => pf,
            // A path no window can take proves anything.
            Err(why) => match self.refute(&facts, 6) {
                Ok(contradiction) => self.b.false_elim(&contradiction, goal).map_err(rule)?,
                Err(_) => return Err(why),
            },
        };
        for c in path.iter().rev() {
            pf = self.b.imp_intro(c, &pf).map_err(rule)?;
        }
        Ok(pf)
    }

    /// Prove a goal from facts.
    pub fn goal(&mut self, facts: &[Pf], goal: &Term) -> TResult<Pf> {
        if let Some(f) = facts.iter().find(|f| f.concl() == goal) {
            return Ok(f.clone());
        }
        if goal.eval().is_some() {
            return self.b.eval(goal).map_err(rule);
        }
        match goal.kind() {
            Kind::App(Sym::Conf, a) if a[1] == Self::this_ip() => self.conf(facts, &a[0]),
            Kind::App(Sym::ConfP, a) if a[1] == Self::this_net() => self.conf(facts, &a[0]),
            Kind::App(Sym::ConfK, a) if a[1] == Self::this_on() => self.conf(facts, &a[0]),
            Kind::App(Sym::Or, a) => {
                let (l, r) = (a[0].clone(), a[1].clone());
                match self.goal(facts, &l) {
                    Ok(pf) => self.b.or_intro(&pf, &r, true).map_err(rule),
                    Err(e1) => match self.goal(facts, &r) {
                        Ok(pf) => self.b.or_intro(&pf, &l, false).map_err(rule),
                        Err(e2) => Err(format!("{e1}; and {e2}")),
                    },
                }
            }
            Kind::App(Sym::And, a) => {
                let (l, r) = (self.goal(facts, &a[0])?, self.goal(facts, &a[1])?);
                self.b.and(&l, &r).map_err(rule)
            }
            Kind::App(Sym::Eq, a) => self.eq(facts, &a[0], &a[1]),
            _ => self.by_refutation(facts, goal),
        }
    }

    /// `Conf(set, THIS_IP)`, `ConfP(set, THIS_SUBNET_IP)` or `ConfK(set, THIS_ON)`, following
    /// the set's structure.
    fn conf(&mut self, facts: &[Pf], set: &Term) -> TResult<Pf> {
        let edge = self.client == ClientKind::EdgeRouter;
        let (_, me, conf_) = self.confinement();
        let inherit = format!("{conf_}_inherit");
        let Kind::App(sym, args) = set.kind() else {
            return Err("a set of unknown packets (assigned in a loop) is not known to be confined".into());
        };
        let op = match sym {
            Sym::FDst => "fdst",
            Sym::FDstP => "fdstp",
            Sym::FSrc => "fsrc",
            Sym::FSrcP => "fsrcp",
            Sym::GDst => "gdst",
            Sym::GSrc => "gsrc",
            // A narrowing by a field (and a field group, `Narrow(S, f, k, k)`) is a subset of
            // its set: confined exactly when the set is, whatever the field and bounds.
            Sym::Narrow => "narrow",
            Sym::FKey => "fkey",
            Sym::Ite => return self.conf_ite(facts, set, &args[0], &args[1], &args[2]),
            Sym::All => return Err("AllPackets holds every destination's packets".into()),
            _ => return Err(format!("cannot show {sym:?} confined")),
        };
        let (s, k) = (&args[0], &args[1]);
        // The operator itself confines: filtering or grouping to the client's destination.
        let own = match (sym, edge) {
            // Narrowing to the client's flow id: an ON owner's own packets.
            (Sym::FKey, _) if self.client == ClientKind::OnOwner && *k == me => self.lemma("confk_fkey", &[s.clone(), me.clone()], &[]),
            (Sym::Narrow | Sym::FKey, _) => Err(String::new()),
            (_, _) if self.client == ClientKind::OnOwner => Err(String::new()),
            (Sym::FDst | Sym::GDst, false) if *k == me => self.lemma(&format!("conf_{op}"), &[s.clone(), me.clone()], &[]),
            (Sym::FDst | Sym::GDst, false) => {
                self.eq(facts, k, &me).and_then(|e| self.lemma(&format!("conf_{op}_eq"), &[s.clone(), k.clone(), me.clone()], &[&e]))
            }
            (Sym::FDst | Sym::GDst, true) => {
                self.in_net(facts, k).and_then(|i| self.lemma(&format!("confp_{op}_in"), &[s.clone(), k.clone(), me.clone()], &[&i]))
            }
            (Sym::FDstP, true) if *k == me => self.lemma("confp_fdstp", &[s.clone(), me.clone()], &[]),
            _ => Err(String::new()),
        };
        let why = match own {
            Ok(pf) => return Ok(pf),
            Err(why) => why,
        };
        let inner = self.conf(facts, s).map_err(|e| if why.is_empty() { e } else { format!("{e} (and {why})") })?;
        // The inheritance lemma's variables: the set, the client, then the operator's own arguments.
        let insts: Vec<Term> = [s.clone(), me.clone()].into_iter().chain(args[1..].iter().cloned()).collect();
        self.lemma(&format!("{inherit}_{op}"), &insts, &[&inner]).map_err(|e| format!("{conf_}: {e}"))
    }

    fn conf_ite(&mut self, facts: &[Pf], set: &Term, c: &Term, x: &Term, y: &Term) -> TResult<Pf> {
        let (pred, me, conf_) = self.confinement();
        let (cx, cy) = (self.conf(facts, x), self.conf(facts, y));
        if let (Ok(a), Ok(b)) = (&cx, &cy) {
            return self.lemma(&format!("{conf_}_ite"), &[c.clone(), x.clone(), y.clone(), me], &[a, b]);
        }
        // Split on the condition; in each case the set is one of its choices.
        let goal = app(pred, vec![set.clone(), me.clone()])?;
        let nc = app(Sym::Not, vec![c.clone()])?;
        let em = self.b.em(c).map_err(rule)?;
        let case = |t: &mut Self, hyp: &Term, pick: &Term| -> TResult<Pf> {
            let h = t.b.assume(hyp).map_err(rule)?;
            let mut f = facts.to_vec();
            f.push(h.clone());
            let inner = match t.conf(&f, pick) {
                Ok(p) => p,
                Err(e) => return t.refute(&f, 8).and_then(|r| t.b.false_elim(&r, &goal).map_err(rule)).map_err(|_| e),
            };
            let eq = t.b.ite(&h, c, x, y).map_err(rule)?;
            let back = t.b.sym(&eq).map_err(rule)?;
            let v = Term::var(u32::MAX - 1, Sort::Set);
            let template = app(pred, vec![v.clone(), me.clone()])?;
            t.b.eq_subst(&back, &inner, &v, &template).map_err(rule)
        };
        let a = case(self, c, x)?;
        let b = case(self, &nc, y)?;
        self.b.or_elim(&em, &a, &b).map_err(rule)
    }

    /// `x = y` from facts.
    pub fn eq(&mut self, facts: &[Pf], x: &Term, y: &Term) -> TResult<Pf> {
        if x == y {
            return self.b.refl(x).map_err(rule);
        }
        let want = app(Sym::Eq, vec![x.clone(), y.clone()])?;
        let back = app(Sym::Eq, vec![y.clone(), x.clone()])?;
        if let Some(f) = facts.iter().find(|f| *f.concl() == want) {
            return Ok(f.clone());
        }
        if let Some(f) = facts.iter().find(|f| *f.concl() == back) {
            return self.b.sym(f).map_err(rule);
        }
        self.by_refutation(facts, &want)
    }

    /// `k in THIS_SUBNET_IP` from facts.
    fn in_net(&mut self, facts: &[Pf], k: &Term) -> TResult<Pf> {
        let want = app(Sym::In, vec![k.clone(), Self::this_net()])?;
        self.goal(facts, &want)
    }

    /// Prove `goal` by refuting its negation with the facts.
    pub fn by_refutation(&mut self, facts: &[Pf], goal: &Term) -> TResult<Pf> {
        if goal.eval().is_some() {
            return self.b.eval(goal).map_err(rule);
        }
        let not = app(Sym::Not, vec![goal.clone()])?;
        let h = self.b.assume(&not).map_err(rule)?;
        let mut f = facts.to_vec();
        f.push(h);
        let contradiction = self.refute(&f, 10)?;
        self.b.by_contradiction(goal, &contradiction).map_err(rule)
    }

    /// Derive `false` from facts.
    pub fn refute(&mut self, facts: &[Pf], depth: u32) -> TResult<Pf> {
        if self.budget == 0 {
            return Err("the proof search ran out of budget".into());
        }
        self.budget -= 1;
        let (mut lits, mut ors) = (vec![], vec![]);
        for f in facts {
            self.flatten(f, &mut lits, &mut ors)?;
        }
        if let Some(pf) = self.close(&lits)? {
            return Ok(pf);
        }
        if let Ok(pf) = self.arith(&lits, &[]) {
            return Ok(pf);
        }
        if depth == 0 {
            return Err("the path conditions do not decide it".into());
        }
        let mut last = "the path conditions do not imply it".to_string();
        for (i, d) in ors.iter().enumerate() {
            let Some([l, r]) = d.concl().args_of(Sym::Or).map(|a| [a[0].clone(), a[1].clone()]) else { continue };
            let rest: Vec<Pf> = lits.iter().chain(ors.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| p)).cloned().collect();
            let branch = |t: &mut Self, p: &Term| -> TResult<Pf> {
                let h = t.b.assume(p).map_err(rule)?;
                let mut f = rest.clone();
                f.push(h);
                t.refute(&f, depth - 1)
            };
            match branch(self, &l).and_then(|a| Ok((a, branch(self, &r)?))) {
                Ok((a, b)) => return self.b.or_elim(d, &a, &b).map_err(rule),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Split connectives into literals and disjunctions.
    fn flatten(&mut self, f: &Pf, lits: &mut Vec<Pf>, ors: &mut Vec<Pf>) -> TResult<()> {
        let t = f.concl().clone();
        let not = |x: &Term| app(Sym::Not, vec![x.clone()]);
        match t.kind() {
            Kind::App(Sym::True, _) => {}
            Kind::App(Sym::And, _) => {
                for right in [false, true] {
                    let p = self.b.and_elim(f, right).map_err(rule)?;
                    self.flatten(&p, lits, ors)?;
                }
            }
            Kind::App(Sym::Or, _) => ors.push(f.clone()),
            Kind::App(Sym::Imp, a) => {
                // a -> b  gives  not a or b
                let (x, y) = (a[0].clone(), a[1].clone());
                let nx = not(&x)?;
                let em = self.b.em(&x).map_err(rule)?;
                let hx = self.b.assume(&x).map_err(rule)?;
                let by = self.b.mp(f, &hx).map_err(rule)?;
                let c1 = self.b.or_intro(&by, &nx, false).map_err(rule)?;
                let hnx = self.b.assume(&nx).map_err(rule)?;
                let c2 = self.b.or_intro(&hnx, &y, true).map_err(rule)?;
                ors.push(self.b.or_elim(&em, &c1, &c2).map_err(rule)?);
            }
            Kind::App(Sym::Not, a) => {
                let inner = a[0].clone();
                match inner.kind() {
                    Kind::App(Sym::Not, b) => {
                        let x = b[0].clone();
                        let nx = not(&x)?;
                        let h = self.b.assume(&nx).map_err(rule)?;
                        let fls = self.b.not_elim(f, &h).map_err(rule)?;
                        let p = self.b.by_contradiction(&x, &fls).map_err(rule)?;
                        self.flatten(&p, lits, ors)?;
                    }
                    Kind::App(Sym::Or, b) => {
                        for (i, x) in b.iter().enumerate() {
                            let h = self.b.assume(x).map_err(rule)?;
                            let or = self.b.or_intro(&h, &b[1 - i], i == 0).map_err(rule)?;
                            let fls = self.b.not_elim(f, &or).map_err(rule)?;
                            let p = self.b.not_intro(x, &fls).map_err(rule)?;
                            self.flatten(&p, lits, ors)?;
                        }
                    }
                    Kind::App(Sym::And, b) => {
                        // not (x and y)  gives  not x or not y
                        let (x, y) = (b[0].clone(), b[1].clone());
                        let (nx, ny) = (not(&x)?, not(&y)?);
                        let em = self.b.em(&x).map_err(rule)?;
                        let hx = self.b.assume(&x).map_err(rule)?;
                        let hy = self.b.assume(&y).map_err(rule)?;
                        let both = self.b.and(&hx, &hy).map_err(rule)?;
                        let fls = self.b.not_elim(f, &both).map_err(rule)?;
                        let py = self.b.not_intro(&y, &fls).map_err(rule)?;
                        let c1 = self.b.or_intro(&py, &nx, false).map_err(rule)?;
                        let hnx = self.b.assume(&nx).map_err(rule)?;
                        let c2 = self.b.or_intro(&hnx, &ny, true).map_err(rule)?;
                        ors.push(self.b.or_elim(&em, &c1, &c2).map_err(rule)?);
                    }
                    Kind::App(Sym::Imp, b) => {
                        // not (x -> y)  gives  x and not y
                        let (x, y) = (b[0].clone(), b[1].clone());
                        let nx = not(&x)?;
                        let hnx = self.b.assume(&nx).map_err(rule)?;
                        let hx = self.b.assume(&x).map_err(rule)?;
                        let f1 = self.b.not_elim(&hnx, &hx).map_err(rule)?;
                        let any_y = self.b.false_elim(&f1, &y).map_err(rule)?;
                        let imp = self.b.imp_intro(&x, &any_y).map_err(rule)?;
                        let f2 = self.b.not_elim(f, &imp).map_err(rule)?;
                        let px = self.b.by_contradiction(&x, &f2).map_err(rule)?;
                        let hy = self.b.assume(&y).map_err(rule)?;
                        let imp2 = self.b.imp_intro(&x, &hy).map_err(rule)?;
                        let f3 = self.b.not_elim(f, &imp2).map_err(rule)?;
                        let pny = self.b.not_intro(&y, &f3).map_err(rule)?;
                        self.flatten(&px, lits, ors)?;
                        self.flatten(&pny, lits, ors)?;
                    }
                    Kind::App(s @ (Sym::Le | Sym::Lt), b) => {
                        // not (x <= y) gives y < x; not (x < y) gives y <= x
                        let (x, y) = (b[0].clone(), b[1].clone());
                        let (want, other) = if *s == Sym::Le { (Sym::Lt, Sym::Le) } else { (Sym::Le, Sym::Lt) };
                        let total = if *s == Sym::Le {
                            self.axiom("le_total", &[x.clone(), y.clone()], &[])?
                        } else {
                            self.axiom("le_total", &[y.clone(), x.clone()], &[])?
                        };
                        let goal = app(want, vec![y.clone(), x.clone()])?;
                        let bad = app(other, vec![x.clone(), y.clone()])?;
                        let hb = self.b.assume(&bad).map_err(rule)?;
                        let fls = self.b.not_elim(f, &hb).map_err(rule)?;
                        let c_bad = self.b.false_elim(&fls, &goal).map_err(rule)?;
                        let c_good = self.b.assume(&goal).map_err(rule)?;
                        let p =
                            if *s == Sym::Le { self.b.or_elim(&total, &c_bad, &c_good) } else { self.b.or_elim(&total, &c_good, &c_bad) }
                                .map_err(rule)?;
                        lits.push(p);
                    }
                    _ => lits.push(f.clone()),
                }
            }
            _ => lits.push(f.clone()),
        }
        Ok(())
    }

    /// Close a set of literals: `false`, complementary literals, false ground
    /// facts, or a contradiction of equalities.
    fn close(&mut self, lits: &[Pf]) -> TResult<Option<Pf>> {
        let mut cc = Congruence::default();
        for l in lits {
            let t = l.concl();
            if t.args_of(Sym::False).is_some() {
                return Ok(Some(l.clone()));
            }
            cc.add_term(t);
            if let Some([x, y]) = t.args_of(Sym::Eq) {
                cc.union(x, y, l.clone());
            }
        }
        // Ground-evaluable literals that are false.
        for l in lits {
            if let Some(pf) = self.false_ground(l)? {
                return Ok(Some(pf));
            }
        }
        for t in cc.terms.clone() {
            if t.sort() != Sort::Bool {
                self.add_identities(&mut cc, &t)?;
            }
        }
        cc.close(self)?;
        // Two literals of one class that differ: a contradiction. (Two spellings of one
        // value, `10.0.0.1` and `::ffff:10.0.0.1`, do not differ: `eval` widens IPv4.)
        let classes = cc.classes();
        for class in &classes {
            let lits_in: Vec<&Term> = class.iter().filter(|t| matches!(t.kind(), Kind::Lit(_))).collect();
            let differ = |a: &Term, b: &Term| app(Sym::Eq, vec![a.clone(), b.clone()]).ok().and_then(|e| e.eval()) == Some(Value::B(false));
            let pair = lits_in.iter().enumerate().find_map(|(i, a)| lits_in[i + 1..].iter().find(|b| differ(a, b)).map(|b| (*a, *b)));
            if let Some((a, b)) = pair {
                let eq = cc.prove(self, a, b)?;
                let neq = self.b.eval(&app(Sym::Not, vec![eq.concl().clone()])?).map_err(rule)?;
                return self.b.not_elim(&neq, &eq).map(Some).map_err(rule);
            }
        }
        // A literal and the negation of a congruent literal.
        for l in lits {
            let Some([inner]) = l.concl().args_of(Sym::Not) else { continue };
            let inner = inner.clone();
            if let Some([x, y]) = inner.args_of(Sym::Eq) {
                if cc.same(x, y) {
                    let eq = cc.prove(self, x, y)?;
                    return self.b.not_elim(l, &eq).map(Some).map_err(rule);
                }
            }
            for m in lits {
                if m.concl().sort() == Sort::Bool && cc.same(m.concl(), &inner) {
                    let eq = cc.prove(self, m.concl(), &inner)?;
                    let v = Term::var(u32::MAX - 2, Sort::Bool);
                    let moved = self.b.eq_subst(&eq, m, &v, &v).map_err(rule)?;
                    return self.b.not_elim(l, &moved).map(Some).map_err(rule);
                }
            }
        }
        // Literals that become ground and false once their terms are replaced by known values.
        for l in lits {
            if let Some(g) = cc.ground_rewrite(self, l)? {
                if let Some(pf) = self.false_ground(&g)? {
                    return Ok(Some(pf));
                }
            }
        }
        Ok(None)
    }

    /// Facts about subterms worth adding to the congruence: `a & ffff:...:ffff = a`
    /// (the axiom `mask_full`, whose mask is the literal `Lit::Addr6(u128::MAX)`: an
    /// address is 128 bits, so `a & 255.255.255.255` is `a` only for IPv4 `a`, and is
    /// no identity).
    fn add_identities(&mut self, cc: &mut Congruence, t: &Term) -> TResult<()> {
        if let Some([a, m]) = t.args_of(Sym::Mask) {
            if *m == Term::lit(Lit::Addr6(u128::MAX)) {
                let pf = self.axiom("mask_full", std::slice::from_ref(a), &[])?;
                cc.add_term(a);
                cc.union(t, a, pf);
            }
        }
        Ok(())
    }

    /// If a literal is ground and false, the contradiction.
    fn false_ground(&mut self, l: &Pf) -> TResult<Option<Pf>> {
        let t = l.concl();
        match t.eval() {
            Some(Value::B(false)) => {
                if let Some([inner]) = t.args_of(Sym::Not) {
                    let pos = self.b.eval(inner).map_err(rule)?;
                    return self.b.not_elim(l, &pos).map(Some).map_err(rule);
                }
                let neg = self.b.eval(&app(Sym::Not, vec![t.clone()])?).map_err(rule)?;
                self.b.not_elim(&neg, l).map(Some).map_err(rule)
            }
            _ => Ok(None),
        }
    }

    /// Refute linear arithmetic literals (with truncated subtraction split by cases).
    fn arith(&mut self, lits: &[Pf], split: &[Term]) -> TResult<Pf> {
        let mut premises: Vec<Pf> = vec![];
        let mut atoms: Vec<Term> = vec![];
        for l in lits {
            if let Kind::App(Sym::Le | Sym::Lt | Sym::Eq, a) = l.concl().kind() {
                if a[0].sort() == Sort::Num {
                    premises.push(l.clone());
                    for side in a.iter() {
                        let mut lin = Linear::default();
                        lin.add_term(side, 1)?;
                        atoms.extend(lin.terms.into_iter().map(|(t, _)| t));
                    }
                }
            }
        }
        if premises.is_empty() {
            return Err("no arithmetic".into());
        }
        let mut seen = HashSet::new();
        atoms.retain(|a| seen.insert(a.clone()));
        if split.len() < 4 {
            if let Some(m) = atoms.iter().find(|a| a.args_of(Sym::Monus).is_some() && !split.contains(a)).cloned() {
                let [x, y] = m.args_of(Sym::Monus).map(|a| [a[0].clone(), a[1].clone()]).expect("monus");
                let total = self.axiom("le_total", &[y.clone(), x.clone()], &[])?;
                let mut done = split.to_vec();
                done.push(m.clone());
                let case = |t: &mut Self, hyp: Term, ax: &str| -> TResult<Pf> {
                    let h = t.b.assume(&hyp).map_err(rule)?;
                    let fact = t.axiom(ax, &[x.clone(), y.clone()], &[&h])?;
                    let mut l2 = lits.to_vec();
                    l2.push(fact);
                    t.arith(&l2, &done)
                };
                let a = case(self, app(Sym::Le, vec![y.clone(), x.clone()])?, "monus_le")?;
                let b = case(self, app(Sym::Lt, vec![x.clone(), y.clone()])?, "monus_lt")?;
                return self.b.or_elim(&total, &a, &b).map_err(rule);
            }
        }
        for a in &atoms {
            premises.push(self.axiom("nat", std::slice::from_ref(a), &[])?);
        }
        let coefficients = crate::z3enc::farkas_coefficients(&premises.iter().map(|p| p.concl().clone()).collect::<Vec<_>>())?;
        let chosen: Vec<(Pf, i64)> = premises.into_iter().zip(coefficients).filter(|(_, c)| *c != 0).collect();
        self.b.farkas(&chosen).map_err(rule)
    }
}

/// Proof-producing congruence closure over the terms of some literals.
#[derive(Default)]
struct Congruence {
    terms: Vec<Term>,
    known: HashSet<Term>,
    parent: HashMap<Term, Term>,
    edges: Vec<(Term, Term, Pf)>,
}

impl Congruence {
    fn add_term(&mut self, t: &Term) {
        if !self.known.insert(t.clone()) {
            return;
        }
        if let Kind::App(_, args) = t.kind() {
            for a in args {
                self.add_term(a);
            }
        }
        self.terms.push(t.clone());
    }

    fn find(&self, t: &Term) -> Term {
        let mut cur = t.clone();
        while let Some(p) = self.parent.get(&cur) {
            cur = p.clone();
        }
        cur
    }

    fn same(&self, a: &Term, b: &Term) -> bool {
        self.known.contains(a) && self.known.contains(b) && self.find(a) == self.find(b)
    }

    fn union(&mut self, a: &Term, b: &Term, pf: Pf) {
        self.add_term(a);
        self.add_term(b);
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
        self.edges.push((a.clone(), b.clone(), pf));
    }

    fn classes(&self) -> Vec<Vec<Term>> {
        let mut by_root: HashMap<Term, Vec<Term>> = HashMap::new();
        for t in &self.terms {
            by_root.entry(self.find(t)).or_default().push(t.clone());
        }
        by_root.into_values().filter(|c| c.len() > 1).collect()
    }

    /// Merge applications whose arguments are equal, until nothing changes.
    fn close(&mut self, t: &mut Tactics) -> TResult<()> {
        loop {
            let mut merged = false;
            let apps: Vec<Term> = self.terms.iter().filter(|x| matches!(x.kind(), Kind::App(_, a) if !a.is_empty())).cloned().collect();
            for (i, u) in apps.iter().enumerate() {
                for v in &apps[i + 1..] {
                    let (Kind::App(su, au), Kind::App(sv, av)) = (u.kind(), v.kind()) else { continue };
                    if su != sv || au.len() != av.len() || self.find(u) == self.find(v) || u.sort() != v.sort() {
                        continue;
                    }
                    if au.iter().zip(av).all(|(x, y)| self.find(x) == self.find(y)) {
                        let pf = self.congruent(t, u, v)?;
                        self.union(u, v, pf);
                        merged = true;
                    }
                }
            }
            if !merged {
                return Ok(());
            }
        }
    }

    /// `f(a..) = f(b..)` from `ai = bi`.
    fn congruent(&self, t: &mut Tactics, u: &Term, v: &Term) -> TResult<Pf> {
        let (Kind::App(sym, au), Kind::App(_, av)) = (u.kind(), v.kind()) else { return Err("not applications".into()) };
        let mut cur = t.b.refl(u).map_err(rule)?;
        let mut args = au.clone();
        for i in 0..au.len() {
            if au[i] == av[i] {
                continue;
            }
            let e = self.prove(t, &au[i], &av[i])?;
            let x = Term::var(u32::MAX - 3, au[i].sort());
            let mut holed = args.clone();
            holed[i] = x.clone();
            let template = app(Sym::Eq, vec![u.clone(), app(*sym, holed)?])?;
            cur = t.b.eq_subst(&e, &cur, &x, &template).map_err(rule)?;
            args[i] = av[i].clone();
        }
        Ok(cur)
    }

    /// `a = b` along the recorded equations.
    fn prove(&self, t: &mut Tactics, a: &Term, b: &Term) -> TResult<Pf> {
        if a == b {
            return t.b.refl(a).map_err(rule);
        }
        let mut prev: HashMap<Term, (Term, usize, bool)> = HashMap::new();
        let mut queue = VecDeque::from([a.clone()]);
        let mut seen = HashSet::from([a.clone()]);
        while let Some(x) = queue.pop_front() {
            if x == *b {
                break;
            }
            for (i, (l, r, _)) in self.edges.iter().enumerate() {
                for (from, to, forward) in [(l, r, true), (r, l, false)] {
                    if *from == x && seen.insert(to.clone()) {
                        prev.insert(to.clone(), (x.clone(), i, forward));
                        queue.push_back(to.clone());
                    }
                }
            }
        }
        let mut path = vec![];
        let mut cur = b.clone();
        while cur != *a {
            let (p, i, fwd) = prev.get(&cur).cloned().ok_or("no chain of equations")?;
            path.push((i, fwd));
            cur = p;
        }
        path.reverse();
        let mut acc = t.b.refl(a).map_err(rule)?;
        for (i, fwd) in path {
            let e = if fwd { self.edges[i].2.clone() } else { t.b.sym(&self.edges[i].2).map_err(rule)? };
            let Some([from, _]) = e.concl().args_of(Sym::Eq) else { return Err("not an equation".into()) };
            let x = Term::var(u32::MAX - 4, from.sort());
            let template = app(Sym::Eq, vec![a.clone(), x.clone()])?;
            acc = t.b.eq_subst(&e, &acc, &x, &template).map_err(rule)?;
        }
        Ok(acc)
    }

    /// The literal with every subterm that has a known literal value replaced by it.
    fn ground_rewrite(&self, t: &mut Tactics, l: &Pf) -> TResult<Option<Pf>> {
        let mut cur = l.clone();
        let mut changed = false;
        for term in self.terms.iter().filter(|x| !matches!(x.kind(), Kind::Lit(_)) && x.sort() != Sort::Bool) {
            let root = self.find(term);
            let Some(value) = self.terms.iter().find(|x| matches!(x.kind(), Kind::Lit(_)) && self.find(x) == root) else { continue };
            if !contains(cur.concl(), term) {
                continue;
            }
            let e = self.prove(t, term, value)?;
            cur = t.b.rewrite(&e, &cur).map_err(rule)?;
            changed = true;
        }
        Ok(changed.then_some(cur))
    }
}

fn contains(t: &Term, s: &Term) -> bool {
    t == s || matches!(t.kind(), Kind::App(_, a) if a.iter().any(|x| contains(x, s)))
}
