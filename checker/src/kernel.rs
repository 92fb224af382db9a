//! The LCF kernel. A [`Theorem`] `hyps |- concl` can be made only by the
//! inference rules below; its fields are private and it has no `Deserialize`,
//! `Default` or setter. Certificates and lemmas are untrusted steps that
//! [`crate::cert`] replays through these rules.
//!
//! Rules: natural deduction for `->`, `and`, `or`, `not`, `false` with the
//! excluded middle; `forall` introduction (eigenvariable condition) and
//! elimination; equality by reflexivity and substitution; `ite` by cases; the
//! axioms of [`axioms`]; and two theory rules decided by computation:
//! [`Theorem::eval`] for ground atoms (address, prefix, mask, string and
//! natural-number facts) and [`Theorem::farkas`] for linear arithmetic.

use crate::logic::{Kind, Linear, Sort, Sym, Term, Value};
use std::sync::OnceLock;

/// A proved sequent. Only the rules of this module construct one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Theorem {
    hyps: Vec<Term>,
    concl: Term,
}

/// A rule refused its premises: the rule's name and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// The rule.
    pub rule: &'static str,
    /// Why it does not apply.
    pub reason: String,
}

type Thm = Result<Theorem, RuleError>;

fn fail(rule: &'static str, reason: impl Into<String>) -> RuleError {
    RuleError { rule, reason: reason.into() }
}

fn mk(rule: &'static str, sym: Sym, args: Vec<Term>) -> Result<Term, RuleError> {
    Term::app(sym, args).map_err(|e| fail(rule, e))
}

fn formula(rule: &'static str, p: &Term) -> Result<(), RuleError> {
    closed(rule, p)?;
    (p.sort() == Sort::Bool).then_some(()).ok_or_else(|| fail(rule, "not a formula"))
}

/// Rules take only locally closed terms: a loose bound variable would be a
/// name that generalization could capture.
fn closed(rule: &'static str, t: &Term) -> Result<(), RuleError> {
    t.is_closed().then_some(()).ok_or_else(|| fail(rule, "a term with a loose bound variable"))
}

/// Most hypotheses a theorem may rest on (real proofs use a handful).
pub const MAX_HYPS: usize = 64;
/// Most premises of one `farkas` step.
pub const MAX_PREMISES: usize = 64;

/// Union of two duplicate-free hypothesis lists (short: [`MAX_HYPS`]).
fn union(a: &[Term], b: &[Term]) -> Vec<Term> {
    crate::logic::charge((a.len() * b.len()) as u64);
    a.iter().chain(b.iter().filter(|t| !a.contains(t))).cloned().collect()
}

impl Theorem {
    /// The hypotheses.
    pub fn hyps(&self) -> &[Term] {
        &self.hyps
    }
    /// The conclusion.
    pub fn concl(&self) -> &Term {
        &self.concl
    }

    /// Every theorem is made here: at most [`MAX_HYPS`] hypotheses, each
    /// carried over charged to the work budget.
    fn new(hyps: Vec<Term>, concl: Term) -> Thm {
        ensure!(hyps.len() <= MAX_HYPS, fail("hyps", format!("more than {MAX_HYPS} hypotheses")));
        ensure!(crate::logic::charge(1 + hyps.len() as u64), fail("budget", crate::logic::OVER));
        Ok(Theorem { hyps, concl })
    }

    fn without(&self, p: &Term) -> Vec<Term> {
        self.hyps.iter().filter(|h| *h != p).cloned().collect()
    }

    /// `p |- p`
    pub fn assume(p: &Term) -> Thm {
        formula("assume", p)?;
        Theorem::new(vec![p.clone()], p.clone())
    }

    /// From `G |- q` infer `G - {p} |- p -> q`.
    pub fn imp_intro(p: &Term, th: &Theorem) -> Thm {
        formula("imp_intro", p)?;
        Theorem::new(th.without(p), mk("imp_intro", Sym::Imp, vec![p.clone(), th.concl.clone()])?)
    }

    /// From `G |- p -> q` and `D |- p` infer `G u D |- q` (modus ponens).
    pub fn imp_elim(pq: &Theorem, p: &Theorem) -> Thm {
        match pq.concl.args_of(Sym::Imp) {
            Some([a, b]) if *a == p.concl => Theorem::new(union(&pq.hyps, &p.hyps), b.clone()),
            Some(_) => Err(fail("imp_elim", "the antecedent does not match the second premise")),
            None => Err(fail("imp_elim", "the first premise is not an implication")),
        }
    }

    /// From `G |- p` and `D |- q` infer `G u D |- p and q`.
    pub fn and_intro(p: &Theorem, q: &Theorem) -> Thm {
        let c = mk("and_intro", Sym::And, vec![p.concl.clone(), q.concl.clone()])?;
        Theorem::new(union(&p.hyps, &q.hyps), c)
    }

    /// From `G |- p and q` infer `G |- p` (`right` false) or `G |- q` (`right` true).
    pub fn and_elim(th: &Theorem, right: bool) -> Thm {
        match th.concl.args_of(Sym::And) {
            Some([a, b]) => Theorem::new(th.hyps.clone(), if right { b } else { a }.clone()),
            _ => Err(fail("and_elim", "the premise is not a conjunction")),
        }
    }

    /// From `G |- p` infer `G |- p or q` (`p` on the left) or `G |- q or p`.
    pub fn or_intro(th: &Theorem, other: &Term, on_left: bool) -> Thm {
        formula("or_intro", other)?;
        let args = if on_left { vec![th.concl.clone(), other.clone()] } else { vec![other.clone(), th.concl.clone()] };
        Theorem::new(th.hyps.clone(), mk("or_intro", Sym::Or, args)?)
    }

    /// From `G |- p or q`, `D1 |- r` and `D2 |- r` infer `G u (D1 - p) u (D2 - q) |- r`.
    pub fn or_elim(pq: &Theorem, from_p: &Theorem, from_q: &Theorem) -> Thm {
        let Some([p, q]) = pq.concl.args_of(Sym::Or) else {
            return Err(fail("or_elim", "the first premise is not a disjunction"));
        };
        ensure!(from_p.concl == from_q.concl, fail("or_elim", "the two cases conclude different formulas"));
        let hyps = union(&union(&pq.hyps, &from_p.without(p)), &from_q.without(q));
        Theorem::new(hyps, from_p.concl.clone())
    }

    /// From `G |- false` infer `G - {p} |- not p`.
    pub fn not_intro(p: &Term, th: &Theorem) -> Thm {
        ensure!(th.concl.args_of(Sym::False).is_some(), fail("not_intro", "the premise does not conclude false"));
        formula("not_intro", p)?;
        Theorem::new(th.without(p), mk("not_intro", Sym::Not, vec![p.clone()])?)
    }

    /// From `G |- not p` and `D |- p` infer `G u D |- false`.
    pub fn not_elim(np: &Theorem, p: &Theorem) -> Thm {
        match np.concl.args_of(Sym::Not) {
            Some([a]) if *a == p.concl => Theorem::new(union(&np.hyps, &p.hyps), mk("not_elim", Sym::False, vec![])?),
            _ => Err(fail("not_elim", "the premises are not `not p` and `p`")),
        }
    }

    /// From `G |- false` infer `G |- q`.
    pub fn false_elim(th: &Theorem, q: &Term) -> Thm {
        formula("false_elim", q)?;
        ensure!(th.concl.args_of(Sym::False).is_some(), fail("false_elim", "the premise does not conclude false"));
        Theorem::new(th.hyps.clone(), q.clone())
    }

    /// `|- p or not p`
    pub fn excluded_middle(p: &Term) -> Thm {
        formula("excluded_middle", p)?;
        let np = mk("excluded_middle", Sym::Not, vec![p.clone()])?;
        Theorem::new(vec![], mk("excluded_middle", Sym::Or, vec![p.clone(), np])?)
    }

    /// `|- t = t`
    pub fn refl(t: &Term) -> Thm {
        closed("refl", t)?;
        Theorem::new(vec![], mk("refl", Sym::Eq, vec![t.clone(), t.clone()])?)
    }

    /// From `G |- s = t` and `D |- P[x := s]` infer `G u D |- P[x := t]`.
    pub fn eq_subst(eq: &Theorem, th: &Theorem, x: &Term, template: &Term) -> Thm {
        let Some([s, t]) = eq.concl.args_of(Sym::Eq) else {
            return Err(fail("eq_subst", "the first premise is not an equation"));
        };
        ensure!(matches!(x.kind(), Kind::Var(_)), fail("eq_subst", "the abstracted position is not a variable"));
        closed("eq_subst", template)?;
        let at_s = template.subst(x, s).map_err(|e| fail("eq_subst", e))?;
        ensure!(at_s == th.concl, fail("eq_subst", "the template does not give the second premise"));
        let at_t = template.subst(x, t).map_err(|e| fail("eq_subst", e))?;
        Theorem::new(union(&eq.hyps, &th.hyps), at_t)
    }

    /// From `G |- c` infer `G |- ite(c, x, y) = x`; from `G |- not c`, `G |- ite(c, x, y) = y`.
    pub fn ite(th: &Theorem, c: &Term, x: &Term, y: &Term) -> Thm {
        [c, x, y].into_iter().try_for_each(|t| closed("ite", t))?;
        let pick = match (th.concl == *c, th.concl.args_of(Sym::Not) == Some(std::slice::from_ref(c))) {
            (true, _) => x,
            (_, true) => y,
            _ => return Err(fail("ite", "the premise is neither the condition nor its negation")),
        };
        let ite = mk("ite", Sym::Ite, vec![c.clone(), x.clone(), y.clone()])?;
        Theorem::new(th.hyps.clone(), mk("ite", Sym::Eq, vec![ite, pick.clone()])?)
    }

    /// From `G |- p`, with `x` free in no hypothesis, infer `G |- forall x. p`.
    pub fn all_intro(th: &Theorem, x: &Term) -> Thm {
        ensure!(!th.hyps.iter().any(|h| h.has_free(x)), fail("all_intro", "the variable is free in a hypothesis"));
        Theorem::new(th.hyps.clone(), Term::all(x.clone(), th.concl.clone()).map_err(|e| fail("all_intro", e))?)
    }

    /// From `G |- forall x. p` infer `G |- p[x := t]`.
    pub fn all_elim(th: &Theorem, t: &Term) -> Thm {
        match th.concl.kind() {
            Kind::All(..) => Theorem::new(th.hyps.clone(), th.concl.instantiate(t).map_err(|e| fail("all_elim", e))?),
            _ => Err(fail("all_elim", "the premise is not universally quantified")),
        }
    }

    /// From `G |- forall x1..xn. A1 -> .. -> Ak -> C` infer `G |- (A1 -> .. -> Ak -> C)[x := s]`, for
    /// the fewest `k` and the `s` such that `C[x := s]` is syntactically `t`. Derivable (`all_elim`
    /// n times, outermost first); kept so that a certificate names the instance it wants, not
    /// its terms: they are read off `t` by first-order matching, then checked by equality.
    pub fn inst(th: &Theorem, t: &Term) -> Thm {
        formula("inst", t)?;
        let (mut c, mut n, mut k) = (&th.concl, 0, 0);
        while let Kind::All(_, body) = c.kind() {
            (c, n) = (body, n + 1);
        }
        let mut sigma = vec![None; n];
        while !(crate::logic::charge(n as u64) && c.match_bound(t, 0, &mut sigma)) {
            let Some([_, r]) = c.args_of(Sym::Imp).filter(|_| !crate::logic::over_budget()) else {
                return Err(fail("inst", "no consequent of the premise's quantified body matches the target"));
            };
            (c, k, sigma) = (r, k + 1, vec![None; n]);
        }
        let undetermined = |j: usize| fail("inst", format!("the target leaves quantified variable {} undetermined", n - j));
        let out = sigma
            .into_iter()
            .enumerate()
            .rev()
            .try_fold(th.clone(), |th, (j, s)| Theorem::all_elim(&th, &s.ok_or_else(|| undetermined(j))?))?;
        let c = (0..k).fold(&out.concl, |c, _| c.args_of(Sym::Imp).map_or(c, |a| &a[1]));
        (c == t).then_some(()).ok_or_else(|| fail("inst", "the instance does not give the target"))?;
        Ok(out)
    }

    /// From `Gi |- pi` infer `G1 u .. u Gn |- p1 and .. and pn`, balanced as the safety
    /// predicate is ([`crate::vcgen::balanced`]). Derivable by `and_intro`; kept so that a
    /// certificate conjoins its obligations in one step.
    pub fn conj(ths: &[Theorem]) -> Thm {
        crate::vcgen::balanced(ths, &mut |a, b| Theorem::and_intro(&a, &b))?.ok_or_else(|| fail("conj", "no premises"))
    }

    /// `|- axioms()[n]`
    pub fn axiom(n: usize) -> Thm {
        let a = axioms().get(n).ok_or_else(|| fail("axiom", format!("there is no axiom {n}")))?;
        Theorem::new(vec![], a.1.clone())
    }

    /// `|- p` for a ground formula `p` that computes to true.
    pub fn eval(p: &Term) -> Thm {
        closed("eval", p)?;
        match p.eval() {
            Some(Value::B(true)) => Theorem::new(vec![], p.clone()),
            Some(Value::B(false)) => Err(fail("eval", "the formula computes to false")),
            _ => Err(fail("eval", "the formula is not ground")),
        }
    }

    // `|- true` is `eval(true)`.

    /// Linear arithmetic: from premises `Gi |- ai <= bi`, `ai < bi` or `ai = bi`
    /// and integer coefficients `ci` (non-negative except on equations), infer
    /// `G1 u ... u Gn |- false` when `sum ci * (ai - bi)` (with `+ ci` for each
    /// strict `<`) is a positive constant: the premises cannot all hold over the
    /// integers (Farkas).
    pub fn farkas(premises: &[(&Theorem, i64)]) -> Thm {
        ensure!(premises.len() <= MAX_PREMISES, fail("farkas", format!("more than {MAX_PREMISES} premises")));
        let mut sum = Linear::default();
        let mut hyps = Vec::new();
        for (th, c) in premises {
            let c = *c as i128;
            let (sym, a, b) = match th.concl.kind() {
                Kind::App(s @ (Sym::Le | Sym::Lt | Sym::Eq), args) if args[0].sort() == Sort::Num => (*s, &args[0], &args[1]),
                _ => return Err(fail("farkas", "a premise is not a linear atom over naturals")),
            };
            ensure!(c >= 0 || sym == Sym::Eq, fail("farkas", "a negative coefficient on an inequality"));
            sum.add_term(a, c).and_then(|_| sum.add_term(b, -c)).map_err(|e| fail("farkas", e))?;
            let strict = if sym == Sym::Lt { c } else { 0 };
            sum.constant = sum.constant.checked_add(strict).ok_or_else(|| fail("farkas", "overflow"))?;
            hyps = union(&hyps, &th.hyps);
        }
        ensure!(sum.terms.is_empty() && sum.constant > 0, fail("farkas", "the combination is not a positive constant"));
        Theorem::new(hyps, mk("farkas", Sym::False, vec![])?)
    }
}

/// The axioms, by name, in the order certificates cite them. Each is a closed
/// formula true of every window of packets; together they define the set
/// operators by membership and the predicates `Sub`, `Conf` and `ConfP`.
pub fn axioms() -> &'static [(&'static str, Term)] {
    static AXIOMS: OnceLock<Vec<(&'static str, Term)>> = OnceLock::new();
    AXIOMS.get_or_init(|| {
        let _unmetered = crate::logic::Budget::new(u64::MAX); // built once, whichever check comes first
        build_axioms().expect("the axioms are well-sorted")
    })
}

fn build_axioms() -> Result<Vec<(&'static str, Term)>, String> {
    use Sort::*;
    use Sym::*;
    let [p, s, t, a, n, m, x, y, z] =
        [(0, Pkt), (1, Set), (2, Set), (3, Addr), (4, Prefix), (5, Prefix), (6, Num), (7, Num), (8, Num)].map(|(i, s)| Term::var(i, s));
    let f = |sym: Sym, args: &[&Term]| Term::app(sym, args.iter().map(|t| (*t).clone()).collect());
    let imp = |a: Term, b: Term| Term::app(Imp, vec![a, b]);
    let and = |a: Term, b: Term| Term::app(And, vec![a, b]);
    let all = |vs: &[&Term], body: Term| vs.iter().rev().try_fold(body, |b, v| Term::all((*v).clone(), b));
    let mem = |set: &Term| f(Mem, &[&p, set]);
    let dst_is = |k: &Term| f(Eq, &[&f(Dst, &[&p])?, k]);
    let src_is = |k: &Term| f(Eq, &[&f(Src, &[&p])?, k]);
    let dst_in = |k: &Term| f(In, &[&f(Dst, &[&p])?, k]);
    let src_in = |k: &Term| f(In, &[&f(Src, &[&p])?, k]);
    let key_is = |k: &Term| f(Eq, &[&f(Key, &[&p])?, k]);
    // mem(p, op(s, k)) -> mem(p, s) and fact(k)
    let filter = |op: Sym, k: &Term, fact: &dyn Fn(&Term) -> Result<Term, String>| {
        all(&[&p, &s, k], imp(mem(&f(op, &[&s, k])?)?, and(mem(&s)?, fact(k)?)?)?)
    };
    let set_pred_intro = |pred: Sym, k: &Term, fact: Term| all(&[&s, k], imp(all(&[&p], imp(mem(&s)?, fact)?)?, f(pred, &[&s, k])?)?);
    let set_pred_elim = |pred: Sym, k: &Term, fact: Term| all(&[&s, k, &p], imp(f(pred, &[&s, k])?, imp(mem(&s)?, fact)?)?);
    let zero = Term::num(0);
    Ok(vec![
        ("fdst", filter(FDst, &a, &dst_is)?),
        ("fdstp", filter(FDstP, &n, &dst_in)?),
        ("fsrc", filter(FSrc, &a, &src_is)?),
        ("fsrcp", filter(FSrcP, &n, &src_in)?),
        ("gdst", filter(GDst, &a, &dst_is)?),
        ("gsrc", filter(GSrc, &a, &src_is)?),
        ("gdst_cover", all(&[&p, &s], imp(mem(&s)?, mem(&f(GDst, &[&s, &f(Dst, &[&p])?])?)?)?)?),
        ("gsrc_cover", all(&[&p, &s], imp(mem(&s)?, mem(&f(GSrc, &[&s, &f(Src, &[&p])?])?)?)?)?),
        ("sub_intro", all(&[&s, &t], imp(all(&[&p], imp(mem(&s)?, mem(&t)?)?)?, f(Sub, &[&s, &t])?)?)?),
        ("sub_elim", all(&[&s, &t, &p], imp(f(Sub, &[&s, &t])?, imp(mem(&s)?, mem(&t)?)?)?)?),
        ("conf_intro", set_pred_intro(Conf, &a, dst_is(&a)?)?),
        ("conf_elim", set_pred_elim(Conf, &a, dst_is(&a)?)?),
        ("confp_intro", set_pred_intro(ConfP, &n, dst_in(&n)?)?),
        ("confp_elim", set_pred_elim(ConfP, &n, dst_in(&n)?)?),
        ("in_psub", all(&[&a, &n, &m], imp(f(In, &[&a, &n])?, imp(f(PSub, &[&n, &m])?, f(In, &[&a, &m])?)?)?)?),
        ("in_mask", all(&[&a, &n], imp(f(In, &[&a, &n])?, f(Eq, &[&f(Mask, &[&a, &f(NMask, &[&n])?])?, &f(Net, &[&n])?])?)?)?),
        ("mask_in", all(&[&a, &n], imp(f(Eq, &[&f(Mask, &[&a, &f(NMask, &[&n])?])?, &f(Net, &[&n])?])?, f(In, &[&a, &n])?)?)?),
        ("mask_full", all(&[&a], f(Eq, &[&f(Mask, &[&a, &Term::lit(crate::logic::Lit::Addr6(u128::MAX))])?, &a])?)?),
        ("nat", all(&[&x], f(Le, &[&zero, &x])?)?),
        ("monus_le", all(&[&x, &y], imp(f(Le, &[&y, &x])?, f(Eq, &[&f(Add, &[&f(Monus, &[&x, &y])?, &y])?, &x])?)?)?),
        ("monus_lt", all(&[&x, &y], imp(f(Lt, &[&x, &y])?, f(Eq, &[&f(Monus, &[&x, &y])?, &zero])?)?)?),
        ("le_total", all(&[&x, &y], Term::app(Or, vec![f(Le, &[&x, &y])?, f(Lt, &[&y, &x])?])?)?),
        ("count_sub", all(&[&s, &t], imp(f(Sub, &[&s, &t])?, f(Le, &[&f(Count, &[&s])?, &f(Count, &[&t])?])?)?)?),
        ("ndst_count", all(&[&s], f(Le, &[&f(NDst, &[&s])?, &f(Count, &[&s])?])?)?),
        // Appended, so that the numbers certificates cite stay those of format 2.
        ("narrow", all(&[&p, &s, &x, &y, &z], imp(mem(&f(Narrow, &[&s, &x, &y, &z])?)?, mem(&s)?)?)?),
        ("nport_count", all(&[&s], f(Le, &[&f(NPort, &[&s])?, &f(Count, &[&s])?])?)?),
        ("fkey", filter(FKey, &x, &key_is)?),
        ("confk_intro", set_pred_intro(ConfK, &x, key_is(&x)?)?),
        ("confk_elim", set_pred_elim(ConfK, &x, key_is(&x)?)?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::Lit;

    fn addr(a: u32) -> Term {
        Term::lit(Lit::Addr(a))
    }

    #[test]
    fn axioms_are_closed_formulas() {
        for (name, a) in axioms() {
            assert_eq!(a.sort(), Sort::Bool, "{name}");
            for v in 0..8 {
                for s in [Sort::Pkt, Sort::Set, Sort::Addr, Sort::Prefix, Sort::Num] {
                    assert!(!a.has_free(&Term::var(v, s)), "{name} has a free variable");
                }
            }
        }
    }

    #[test]
    fn modus_ponens_and_its_refusals() {
        let p = Term::app(Sym::Eq, vec![addr(1), addr(1)]).unwrap();
        let q = Term::app(Sym::Eq, vec![addr(2), addr(2)]).unwrap();
        let pq = Theorem::imp_intro(&p, &Theorem::assume(&q).unwrap()).unwrap();
        let e = Theorem::imp_elim(&pq, &Theorem::assume(&q).unwrap()).unwrap_err();
        assert_eq!(e.rule, "imp_elim");
        let th = Theorem::imp_elim(&pq, &Theorem::refl(&addr(1)).unwrap()).unwrap();
        assert_eq!(th.hyps(), std::slice::from_ref(&q));
        assert_eq!(th.concl(), &q);
    }

    #[test]
    fn every_rule_refuses_a_bad_premise() {
        let t = Theorem::eval(&Term::app(Sym::True, vec![]).unwrap()).unwrap(); // `|- true`
        let one = Term::num(1);
        assert_eq!(Theorem::and_elim(&t, false).unwrap_err().rule, "and_elim");
        assert_eq!(Theorem::or_elim(&t, &t, &t).unwrap_err().rule, "or_elim");
        assert_eq!(Theorem::not_intro(t.concl(), &t).unwrap_err().rule, "not_intro");
        assert_eq!(Theorem::not_elim(&t, &t).unwrap_err().rule, "not_elim");
        assert_eq!(Theorem::false_elim(&t, t.concl()).unwrap_err().rule, "false_elim");
        assert_eq!(Theorem::eq_subst(&t, &t, &Term::var(0, Sort::Num), &one).unwrap_err().rule, "eq_subst");
        assert_eq!(Theorem::all_elim(&t, &one).unwrap_err().rule, "all_elim");
        assert_eq!(Theorem::axiom(999).unwrap_err().rule, "axiom");
        assert_eq!(Theorem::assume(&one).unwrap_err().rule, "assume");
        assert_eq!(Theorem::or_intro(&t, &one, true).unwrap_err().rule, "or_intro");
        assert_eq!(Theorem::excluded_middle(&one).unwrap_err().rule, "excluded_middle");
        let x = Term::var(0, Sort::Num);
        let hyp = Theorem::assume(&Term::app(Sym::Le, vec![x.clone(), one.clone()]).unwrap()).unwrap();
        assert_eq!(Theorem::all_intro(&hyp, &x).unwrap_err().rule, "all_intro");
        let false_ = Term::app(Sym::Le, vec![Term::num(2), one.clone()]).unwrap();
        assert_eq!(Theorem::eval(&false_).unwrap_err().rule, "eval");
        assert_eq!(Theorem::eval(&hyp.concl().clone()).unwrap_err().reason, "the formula is not ground");
        assert_eq!(Theorem::farkas(&[(&hyp, 1)]).unwrap_err().rule, "farkas");
        assert_eq!(Theorem::farkas(&[(&hyp, -1)]).unwrap_err().reason, "a negative coefficient on an inequality");
    }

    #[test]
    fn the_remaining_rules_refuse_too() {
        let one = Term::num(1);
        let t = Theorem::eval(&Term::app(Sym::True, vec![]).unwrap()).unwrap(); // `|- true`
        assert_eq!(Theorem::imp_intro(&one, &t).unwrap_err().rule, "imp_intro", "not a formula");
        let c = Term::app(Sym::Le, vec![one.clone(), one.clone()]).unwrap();
        let other = Term::app(Sym::Lt, vec![one.clone(), one.clone()]).unwrap();
        assert_eq!(Theorem::ite(&Theorem::eval(&c).unwrap(), &other, &one, &one).unwrap_err().rule, "ite", "premise is not the condition");
        assert!(Theorem::ite(&Theorem::eval(&c).unwrap(), &c, &one, &Term::num(2)).is_ok());
        assert_eq!(Theorem::refl(&Term::bound(0, Sort::Num).unwrap()).unwrap_err().rule, "refl", "loose bound variable");
        // and_intro refuses a conjunction past the size limit.
        let mut big = Theorem::eval(&c).unwrap();
        let mut refused = None;
        for _ in 0..64 {
            match Theorem::and_intro(&big, &big) {
                Ok(th) => big = th,
                Err(e) => {
                    refused = Some(e.rule);
                    break;
                }
            }
        }
        assert_eq!(refused, Some("and_intro"));
    }

    #[test]
    fn farkas_refutes_a_decreasing_counter() {
        // n <= 9, m = n + 1, 10 <= m is inconsistent: 1*(n - 9) + 1*(m - (n + 1)) + 1*(10 - m) = 0 ... + 0
        let n = Term::var(0, Sort::Num);
        let m = Term::var(1, Sort::Num);
        let le = |a: Term, b: Term| Term::app(Sym::Le, vec![a, b]).unwrap();
        let h1 = Theorem::assume(&le(n.clone(), Term::num(9))).unwrap();
        let h2 =
            Theorem::assume(&Term::app(Sym::Eq, vec![m.clone(), Term::app(Sym::Add, vec![n.clone(), Term::num(1)]).unwrap()]).unwrap())
                .unwrap();
        let h3 = Theorem::assume(&le(Term::num(11), m.clone())).unwrap();
        let f = Theorem::farkas(&[(&h1, 1), (&h2, 1), (&h3, 1)]).unwrap();
        assert_eq!(f.hyps().len(), 3);
        let h3b = Theorem::assume(&le(Term::num(10), m)).unwrap();
        assert!(Theorem::farkas(&[(&h1, 1), (&h2, 1), (&h3b, 1)]).is_err());
    }

    #[test]
    fn bound_names_do_not_matter_and_loose_indices_are_refused() {
        let (x, y) = (Term::var(0, Sort::Num), Term::var(1, Sort::Num));
        let px = Term::app(Sym::Le, vec![Term::num(0), x.clone()]).unwrap();
        let py = Term::app(Sym::Le, vec![Term::num(0), y.clone()]).unwrap();
        assert_eq!(Term::all(x.clone(), px).unwrap(), Term::all(y.clone(), py).unwrap());
        let loose = Term::app(Sym::Le, vec![Term::num(0), Term::bound(0, Sort::Num).unwrap()]).unwrap();
        assert_eq!(Theorem::assume(&loose).unwrap_err().reason, "a term with a loose bound variable");
        let all = Term::all_raw(Sort::Num, loose).unwrap();
        let th = Theorem::axiom(axioms().iter().position(|(n, _)| *n == "nat").unwrap()).unwrap();
        assert_eq!(th.concl(), &all);
        let inst = Theorem::all_elim(&th, &x).unwrap();
        assert_eq!(inst.concl(), &Term::app(Sym::Le, vec![Term::num(0), x.clone()]).unwrap());
        assert!(Theorem::all_elim(&th, &Term::lit(Lit::Addr(1))).is_err(), "wrong sort");
    }
}
