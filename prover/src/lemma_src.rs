//! The lemma library's source language and its elaboration into [`Lemma`]s.
//!
//! A file holds `(lemma NAME STATEMENT PROOF)` forms. Terms are written as
//! `(Symbol args...)` with the kernel's symbol names (`->` and `=` also stand
//! for `Imp` and `Eq`), `(forall ((x Sort) ...) body)`, variable names,
//! numbers, addresses `10.0.0.1` and `2001:db8::1`, prefixes `10.0.0.0/8` and
//! `2001:db8::/32`, and strings. Literals are the logic's, spelt as written:
//! dotted text is `Lit::Addr`/`Lit::Prefix` (IPv4, a length up to 32), IPv6
//! text `Lit::Addr6`/`Lit::Prefix6` (a length up to 128), even in
//! `::ffff:0:0/96` (`::ffff:10.0.0.1` is `Lit::Addr6` of the mapped address,
//! another term than `10.0.0.1`, which `eval` finds equal), so that every
//! literal a term can hold can be written, and [`show`] prints each so. A proof is
//! natural deduction, one kernel rule per form:
//!
//! | form | rule |
//! | --- | --- |
//! | `h`, `axiom-name`, `lemma-name` | a hypothesis, an axiom, an earlier lemma |
//! | `(assume h P proof)` | `->` introduction, with `h : P` in `proof` |
//! | `(mp imp a b ...)` | modus ponens, repeatedly |
//! | `(inst proof t ...)` | `forall` elimination, outermost first |
//! | `(gen x ... proof)` | `forall` introduction; `x` or `(x Sort)` |
//! | `(and a b)` `(and-l p)` `(and-r p)` | conjunction |
//! | `(or-l p Q)` `(or-r Q p)` `(cases p (h1 a) (h2 b))` | disjunction |
//! | `(not-intro h P proof)` `(not-elim np p)` `(absurd p Q)` `(em P)` `(by-contradiction h P proof)` | negation, false, classical |
//! | `(refl t)` `(sym e)` `(rewrite e p)` `(subst e p x template)` `(ite p c x y)` | equality |
//! | `(eval P)` `(farkas (p c) ...)` `(truth)` `(let ((h p) ...) proof)` | theories, sharing |

use crate::builder::{Builder, Pf};
use crate::sexp::{parse, Sexp};
use std::collections::HashMap;
use vinet_checker::cert::{Lemma, LemmaCache, LemmaHash, Library, CERT_VERSION};
use vinet_checker::logic::{Lit, Sort, Sym, Term};

/// The built library, its verified cache, and the lemmas by name.
pub struct LemmaSet {
    /// The library, in dependency order.
    pub library: Library,
    /// The lemmas, verified.
    pub cache: LemmaCache,
    /// Lemma hashes by name.
    pub by_name: HashMap<String, LemmaHash>,
}

impl LemmaSet {
    /// The hash of a lemma by name.
    pub fn hash(&self, name: &str) -> Option<LemmaHash> {
        self.by_name.get(name).copied()
    }
}

/// The lemma sources shipped in `lemmas/`, compiled in.
pub const BUILTIN: &[(&str, &str)] = &[
    ("00-sets.vl", include_str!("../../lemmas/00-sets.vl")),
    ("10-confinement.vl", include_str!("../../lemmas/10-confinement.vl")),
    ("20-partition.vl", include_str!("../../lemmas/20-partition.vl")),
    ("30-equality.vl", include_str!("../../lemmas/30-equality.vl")),
    ("40-overlay.vl", include_str!("../../lemmas/40-overlay.vl")),
];

/// Build a library from sources `(file name, text)`, in order.
pub fn build(files: &[(&str, &str)]) -> Result<LemmaSet, String> {
    let mut set =
        LemmaSet { library: Library { version: CERT_VERSION, lemmas: vec![] }, cache: LemmaCache::new(), by_name: HashMap::new() };
    for (file, src) in files {
        for form in parse(src).map_err(|e| format!("{file}: {e}"))? {
            let lemma = elaborate(&form, &set).map_err(|e| format!("{file}: {e}"))?;
            let h = set.cache.admit(&lemma).map_err(|e| format!("{file}:{}: {e}", form.line()))?;
            if set.by_name.insert(lemma.name.clone(), h).is_some() {
                return Err(format!("{file}:{}: lemma `{}` is defined twice", form.line(), lemma.name));
            }
            set.library.lemmas.push(lemma);
        }
    }
    Ok(set)
}

fn elaborate(form: &Sexp, set: &LemmaSet) -> Result<Lemma, String> {
    let line = form.line();
    let items = form.list().ok_or(format!("line {line}: expected (lemma NAME STATEMENT PROOF)"))?;
    let [kw, name, statement, proof] = items else {
        return Err(format!("line {line}: expected (lemma NAME STATEMENT PROOF)"));
    };
    if kw.atom() != Some("lemma") {
        return Err(format!("line {line}: expected (lemma ...)"));
    }
    let name = name.atom().ok_or(format!("line {line}: lemma name"))?.to_string();
    let mut b = Builder::new(&set.cache);
    let mut cx = Cx { b: &mut b, set, vars: HashMap::new(), hyps: HashMap::new() };
    let st = cx.term(statement).map_err(|e| format!("lemma `{name}`: {e}"))?;
    let pf = cx.proof(proof).map_err(|e| format!("lemma `{name}`: {e}"))?;
    if pf.concl() != &st || !pf.th.hyps().is_empty() {
        return Err(format!(
            "line {line}: lemma `{name}`: the proof concludes {} (with {} hypotheses), not the statement {}",
            show(pf.concl()),
            pf.th.hyps().len(),
            show(&st)
        ));
    }
    let mut proof = b.finish(&pf);
    let statement = crate::builder::add_term(&mut proof, &[], &st);
    Ok(Lemma { name, statement, proof })
}

struct Cx<'a, 'c> {
    b: &'a mut Builder<'c>,
    set: &'a LemmaSet,
    vars: HashMap<String, Term>,
    hyps: HashMap<String, Pf>,
}

fn sort_of(s: &str) -> Option<Sort> {
    Some(match s {
        "Bool" => Sort::Bool,
        "Num" => Sort::Num,
        "Addr" => Sort::Addr,
        "Prefix" => Sort::Prefix,
        "Str" => Sort::Str,
        "Set" => Sort::Set,
        "Pkt" => Sort::Pkt,
        _ => return None,
    })
}

/// A symbol by its name in lemma sources.
pub fn sym_of(s: &str) -> Option<Sym> {
    use Sym::*;
    Some(match s {
        "True" => True,
        "False" => False,
        "Not" => Not,
        "And" => And,
        "Or" => Or,
        "Imp" | "->" => Imp,
        "Eq" | "=" => Eq,
        "Ite" => Ite,
        "ThisIp" => ThisIp,
        "ThisNet" => ThisNet,
        "All" => All,
        "FDst" => FDst,
        "FDstP" => FDstP,
        "FSrc" => FSrc,
        "FSrcP" => FSrcP,
        "GDst" => GDst,
        "GSrc" => GSrc,
        "Mem" => Mem,
        "Dst" => Dst,
        "Src" => Src,
        "Sub" => Sub,
        "Conf" => Conf,
        "ConfP" => ConfP,
        "In" => In,
        "PSub" => PSub,
        "Mask" => Mask,
        "NMask" => NMask,
        "Net" => Net,
        "Add" => Add,
        "Monus" => Monus,
        "Mul" => Mul,
        "Le" => Le,
        "Lt" => Lt,
        "Count" => Count,
        "NDst" => NDst,
        "Contains" => Contains,
        "Concat" => Concat,
        "Narrow" => Narrow,
        "NPort" => NPort,
        "Key" => Key,
        "ThisOn" => ThisOn,
        "FKey" => FKey,
        "ConfK" => ConfK,
        _ => return None,
    })
}

/// A literal written as an atom: a number, an address or a prefix (IPv4
/// dotted, or IPv6; prefixes with zero host bits).
pub fn lit_of(a: &str) -> Option<Lit> {
    if let Ok(n) = a.parse::<u64>() {
        return Some(Lit::Num(n));
    }
    let (addr, len) = match a.split_once('/') {
        Some((x, l)) if l.bytes().all(|b| b.is_ascii_digit()) => (x, Some(l.parse::<u8>().ok()?)),
        Some(_) => return None,
        None => (a, None),
    };
    let wide = |n: u128, l: u8| n & !vinet_checker::netmask(l) == 0;
    if let Ok(ip) = addr.parse::<std::net::Ipv4Addr>() {
        let ip = u32::from(ip);
        return Some(match len {
            Some(l) if l <= 32 && wide(vinet_checker::mapped(ip), l + 96) => Lit::Prefix(ip, l),
            Some(_) => return None,
            None => Lit::Addr(ip),
        });
    }
    let ip = u128::from(addr.parse::<std::net::Ipv6Addr>().ok()?);
    Some(match len {
        Some(l) if l <= 128 && wide(ip, l) => Lit::Prefix6(ip, l),
        Some(_) => return None,
        None => Lit::Addr6(ip),
    })
}

/// An IPv6 literal as [`lit_of`] reads it back: RFC 5952, and an address in
/// `::ffff:0:0/96` as `::ffff:a.b.c.d` (std's printer), not as the dotted
/// IPv4 literal, which is another term.
fn addr6_text(a: u128) -> String {
    std::net::Ipv6Addr::from(a).to_string()
}

impl Cx<'_, '_> {
    fn bind(&mut self, name: &str, sort: Sort, line: u32) -> Result<Term, String> {
        let next = self.vars.len() as u32;
        let v = self.vars.entry(name.to_string()).or_insert_with(|| Term::var(next, sort)).clone();
        if v.sort() != sort {
            return Err(format!("line {line}: `{name}` is a {:?} variable, not {sort:?}", v.sort()));
        }
        Ok(v)
    }

    /// `x` (bound already) or `(x Sort)`.
    fn binder(&mut self, s: &Sexp) -> Result<Term, String> {
        match s {
            Sexp::Atom(a, l) => self.vars.get(a).cloned().ok_or(format!("line {l}: `{a}` needs a sort here: ({a} Sort)")),
            Sexp::List(v, l) => match v.as_slice() {
                [Sexp::Atom(x, _), Sexp::Atom(s, _)] => self.bind(x, sort_of(s).ok_or(format!("line {l}: unknown sort {s}"))?, *l),
                _ => Err(format!("line {l}: expected (name Sort)")),
            },
            Sexp::Str(_, l) => Err(format!("line {l}: expected a variable")),
        }
    }

    fn term(&mut self, s: &Sexp) -> Result<Term, String> {
        let line = s.line();
        match s {
            Sexp::Str(x, _) => Ok(Term::lit(Lit::Str(x.clone()))),
            Sexp::Atom(a, _) => {
                if let Some(v) = self.vars.get(a) {
                    return Ok(v.clone());
                }
                if let Some(l) = lit_of(a) {
                    return Ok(Term::lit(l));
                }
                match sym_of(a) {
                    Some(sym) => Term::app(sym, vec![]).map_err(|e| format!("line {line}: {e}")),
                    None => Err(format!("line {line}: unknown name `{a}`")),
                }
            }
            Sexp::List(items, _) => match items.as_slice() {
                [Sexp::Atom(f, _), Sexp::List(binders, _), body] if f == "forall" => {
                    let vs = binders.iter().map(|b| self.binder(b)).collect::<Result<Vec<_>, _>>()?;
                    let body = self.term(body)?;
                    vs.into_iter().rev().try_fold(body, |b, v| Term::all(v, b)).map_err(|e| format!("line {line}: {e}"))
                }
                [Sexp::Atom(f, _), args @ ..] => {
                    let sym = sym_of(f).ok_or(format!("line {line}: unknown symbol `{f}`"))?;
                    let args = args.iter().map(|a| self.term(a)).collect::<Result<Vec<_>, _>>()?;
                    Term::app(sym, args).map_err(|e| format!("line {line}: {e}"))
                }
                _ => Err(format!("line {line}: expected a term")),
            },
        }
    }

    fn with_hyp<T>(&mut self, h: &Sexp, p: &Term, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        let name = h.atom().ok_or(format!("line {}: expected a hypothesis name", h.line()))?.to_string();
        let pf = self.b.assume(p).map_err(|e| format!("line {}: {}: {}", h.line(), e.rule, e.reason))?;
        let old = self.hyps.insert(name.clone(), pf);
        let r = f(self);
        match old {
            Some(o) => self.hyps.insert(name, o),
            None => self.hyps.remove(&name),
        };
        r
    }

    fn proof(&mut self, s: &Sexp) -> Result<Pf, String> {
        let line = s.line();
        let k = |e: vinet_checker::kernel::RuleError| format!("line {line}: {} refused: {}", e.rule, e.reason);
        if let Some(a) = s.atom() {
            if let Some(h) = self.hyps.get(a) {
                return Ok(h.clone());
            }
            if vinet_checker::kernel::axioms().iter().any(|(n, _)| *n == a) {
                return self.b.axiom(a).map_err(k);
            }
            if let Some(h) = self.set.hash(a) {
                return self.b.lemma(h, None).map_err(k);
            }
            return Err(format!("line {line}: no hypothesis, axiom or lemma named `{a}`"));
        }
        let items = s.list().ok_or(format!("line {line}: expected a proof"))?;
        let (op, args) = match items.split_first() {
            Some((Sexp::Atom(op, _), args)) => (op.as_str(), args),
            _ => return Err(format!("line {line}: expected (rule ...)")),
        };
        let arity = |n: usize| if args.len() == n { Ok(()) } else { Err(format!("line {line}: `{op}` takes {n} arguments")) };
        match op {
            "assume" => {
                arity(3)?;
                let p = self.term(&args[1])?;
                let body = self.with_hyp(&args[0], &p, |cx| cx.proof(&args[2]))?;
                self.b.imp_intro(&p, &body).map_err(k)
            }
            "not-intro" => {
                arity(3)?;
                let p = self.term(&args[1])?;
                let body = self.with_hyp(&args[0], &p, |cx| cx.proof(&args[2]))?;
                self.b.not_intro(&p, &body).map_err(k)
            }
            "by-contradiction" => {
                arity(3)?;
                let q = self.term(&args[1])?;
                let nq = Term::app(Sym::Not, vec![q.clone()]).map_err(|e| format!("line {line}: {e}"))?;
                let body = self.with_hyp(&args[0], &nq, |cx| cx.proof(&args[2]))?;
                self.b.by_contradiction(&q, &body).map_err(k)
            }
            "mp" => {
                let (first, rest) = args.split_first().ok_or(format!("line {line}: mp needs premises"))?;
                let mut cur = self.proof(first)?;
                for a in rest {
                    let p = self.proof(a)?;
                    cur = self.b.mp(&cur, &p).map_err(k)?;
                }
                Ok(cur)
            }
            "inst" => {
                let (first, rest) = args.split_first().ok_or(format!("line {line}: inst needs a proof"))?;
                let p = self.proof(first)?;
                let ts = rest.iter().map(|t| self.term(t)).collect::<Result<Vec<_>, _>>()?;
                self.b.inst(&p, &ts).map_err(k)
            }
            "gen" => {
                let (last, vars) = args.split_last().ok_or(format!("line {line}: gen needs a proof"))?;
                let vs = vars.iter().map(|v| self.binder(v)).collect::<Result<Vec<_>, _>>()?;
                let mut p = self.proof(last)?;
                for v in vs.iter().rev() {
                    p = self.b.gen(&p, v).map_err(k)?;
                }
                Ok(p)
            }
            "and" => {
                arity(2)?;
                let (a, b) = (self.proof(&args[0])?, self.proof(&args[1])?);
                self.b.and(&a, &b).map_err(k)
            }
            "and-l" | "and-r" => {
                arity(1)?;
                let a = self.proof(&args[0])?;
                self.b.and_elim(&a, op == "and-r").map_err(k)
            }
            "or-l" => {
                arity(2)?;
                let (a, q) = (self.proof(&args[0])?, self.term(&args[1])?);
                self.b.or_intro(&a, &q, true).map_err(k)
            }
            "or-r" => {
                arity(2)?;
                let (q, a) = (self.term(&args[0])?, self.proof(&args[1])?);
                self.b.or_intro(&a, &q, false).map_err(k)
            }
            "cases" => {
                arity(3)?;
                let or = self.proof(&args[0])?;
                let Some([l, r]) = or.concl().args_of(Sym::Or).map(|a| [a[0].clone(), a[1].clone()]) else {
                    return Err(format!("line {line}: cases needs a disjunction"));
                };
                let case = |cx: &mut Self, s: &Sexp, p: &Term| -> Result<Pf, String> {
                    match s.list() {
                        Some([h, body]) => cx.with_hyp(h, p, |cx| cx.proof(body)),
                        _ => Err(format!("line {}: expected (name proof)", s.line())),
                    }
                };
                let (a, b) = (case(self, &args[1], &l)?, case(self, &args[2], &r)?);
                self.b.or_elim(&or, &a, &b).map_err(k)
            }
            "not-elim" => {
                arity(2)?;
                let (a, b) = (self.proof(&args[0])?, self.proof(&args[1])?);
                self.b.not_elim(&a, &b).map_err(k)
            }
            "absurd" => {
                arity(2)?;
                let (a, q) = (self.proof(&args[0])?, self.term(&args[1])?);
                self.b.false_elim(&a, &q).map_err(k)
            }
            "em" => {
                arity(1)?;
                let p = self.term(&args[0])?;
                self.b.em(&p).map_err(k)
            }
            "refl" => {
                arity(1)?;
                let t = self.term(&args[0])?;
                self.b.refl(&t).map_err(k)
            }
            "sym" => {
                arity(1)?;
                let e = self.proof(&args[0])?;
                self.b.sym(&e).map_err(k)
            }
            "rewrite" => {
                arity(2)?;
                let (e, a) = (self.proof(&args[0])?, self.proof(&args[1])?);
                self.b.rewrite(&e, &a).map_err(k)
            }
            "subst" => {
                arity(4)?;
                let (e, a) = (self.proof(&args[0])?, self.proof(&args[1])?);
                let (x, t) = (self.binder(&args[2])?, self.term(&args[3])?);
                self.b.eq_subst(&e, &a, &x, &t).map_err(k)
            }
            "ite" => {
                arity(4)?;
                let a = self.proof(&args[0])?;
                let (c, x, y) = (self.term(&args[1])?, self.term(&args[2])?, self.term(&args[3])?);
                self.b.ite(&a, &c, &x, &y).map_err(k)
            }
            "eval" => {
                arity(1)?;
                let p = self.term(&args[0])?;
                self.b.eval(&p).map_err(k)
            }
            "truth" => self.b.truth().map_err(k),
            "farkas" => {
                let mut ps = vec![];
                for a in args {
                    match a.list() {
                        Some([p, Sexp::Atom(c, _)]) => {
                            let c: i64 = c.parse().map_err(|_| format!("line {line}: bad coefficient {c}"))?;
                            ps.push((self.proof(p)?, c));
                        }
                        _ => return Err(format!("line {line}: expected (proof coefficient)")),
                    }
                }
                self.b.farkas(&ps).map_err(k)
            }
            "let" => {
                arity(2)?;
                let binds = args[0].list().ok_or(format!("line {line}: expected ((name proof) ...)"))?;
                let mut saved = vec![];
                for bnd in binds {
                    let [h, p] = bnd.list().ok_or(format!("line {line}: expected (name proof)"))? else {
                        return Err(format!("line {line}: expected (name proof)"));
                    };
                    let pf = self.proof(p)?;
                    let name = h.atom().ok_or(format!("line {line}: expected a name"))?.to_string();
                    saved.push((name.clone(), self.hyps.insert(name, pf)));
                }
                let r = self.proof(&args[1]);
                for (name, old) in saved.into_iter().rev() {
                    match old {
                        Some(o) => self.hyps.insert(name, o),
                        None => self.hyps.remove(&name),
                    };
                }
                r
            }
            _ => Err(format!("line {line}: unknown rule `{op}`")),
        }
    }
}

/// A term in the lemma language's syntax.
pub fn show(t: &Term) -> String {
    use vinet_checker::logic::Kind;
    match t.kind() {
        Kind::Var(v) => format!("v{v}"),
        Kind::Lit(Lit::Num(n)) => n.to_string(),
        Kind::Lit(Lit::Addr(a)) => std::net::Ipv4Addr::from(*a).to_string(),
        Kind::Lit(Lit::Prefix(n, l)) => format!("{}/{l}", std::net::Ipv4Addr::from(*n)),
        Kind::Lit(Lit::Addr6(a)) => addr6_text(*a),
        Kind::Lit(Lit::Prefix6(n, l)) => format!("{}/{l}", addr6_text(*n)),
        Kind::Lit(Lit::Str(s)) => format!("{s:?}"),
        Kind::App(s, args) if args.is_empty() => format!("{s:?}"),
        Kind::App(s, args) => format!("({s:?} {})", args.iter().map(show).collect::<Vec<_>>().join(" ")),
        Kind::Bound(i) => format!("#{i}"),
        Kind::All(s, b) => format!("(forall {s:?} {})", show(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinet_checker::cert::{encode_file, LIBRARY_MAGIC};

    /// The shipped library builds (each lemma admitted by the kernel as it is elaborated),
    /// and a router's cache admits the whole library file again from its bytes.
    #[test]
    fn the_shipped_library_is_admitted_by_the_kernel() {
        let set = build(BUILTIN).unwrap();
        let mut cache = LemmaCache::new();
        cache.admit_library(&encode_file(&set.library, LIBRARY_MAGIC)).unwrap();
        for l in &set.library.lemmas {
            assert_eq!(set.hash(&l.name), Some(l.hash()), "{}", l.name);
        }
        for name in ["sub_narrow", "count_narrow", "nport_narrow", "conf_inherit_narrow", "confp_inherit_narrow"] {
            assert!(set.hash(name).is_some(), "the library has no {name}");
        }
    }

    /// Issue 15: IPv6 literals in lemma sources, read and printed back exactly, and
    /// decided by the kernel's `eval` in the one 128-bit address space.
    #[test]
    fn ipv6_literals_in_lemma_sources() {
        let doc: u128 = 0x2001_0db8 << 96;
        for (text, lit) in [
            ("2001:db8::9", Lit::Addr6(doc | 9)),
            ("2001:db8::/32", Lit::Prefix6(doc, 32)),
            ("::/0", Lit::Prefix6(0, 0)),
            ("::ffff:10.0.0.7", Lit::Addr6(vinet_checker::mapped(0x0a00_0007))),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Lit::Addr6(u128::MAX)),
            ("10.0.0.7", Lit::Addr(0x0a00_0007)),
            ("10.0.0.0/8", Lit::Prefix(0x0a00_0000, 8)),
        ] {
            assert_eq!(lit_of(text), Some(lit.clone()), "{text}");
            assert_eq!(show(&Term::lit(lit)), text);
        }
        for bad in ["2001:db8::1/32", "2001:db8::/129", "10.0.0.1/8", "10.0.0.0/33", "2001:::1", "2001:db8::/x"] {
            assert_eq!(lit_of(bad), None, "{bad}");
        }
        let mut files: Vec<(&str, &str)> = BUILTIN.to_vec();
        let good = "(lemma doc_in (In 2001:db8::9 2001:db8::/32) (eval (In 2001:db8::9 2001:db8::/32)))\n\
                    (lemma mapped_eq (= 10.0.0.7 ::ffff:10.0.0.7) (eval (= 10.0.0.7 ::ffff:10.0.0.7)))\n\
                    (lemma v4_in_all (In 10.0.0.7 ::/0) (eval (In 10.0.0.7 ::/0)))\n\
                    (lemma v6_not_v4 (Not (In 2001:db8::9 0.0.0.0/0)) (eval (Not (In 2001:db8::9 0.0.0.0/0))))";
        files.push(("v6.vl", good));
        let set = build(&files).unwrap();
        assert!(set.hash("mapped_eq").is_some());
        for bad in [
            "(lemma bad (In 2001:db8::9 2001:db9::/32) (eval (In 2001:db8::9 2001:db9::/32)))",
            "(lemma bad (In 2001:db8::9 0.0.0.0/0) (eval (In 2001:db8::9 0.0.0.0/0)))",
        ] {
            files.pop();
            files.push(("bad.vl", bad));
            assert!(build(&files).is_err(), "{bad}");
        }
    }

    /// The kernel refuses what the narrowing axiom does not give: a narrowing of the window
    /// is not confined, and it is not the whole of its set.
    #[test]
    fn false_narrowing_lemmas_are_refused() {
        let bogus = [
            "(lemma bad (forall ((S Set) (f Num) (x Num) (y Num)) (Sub S (Narrow S f x y))) \
               (gen S f x y (mp (inst sub_intro S (Narrow S f x y)) (gen (p Pkt) (assume h (Mem p S) h)))))",
            "(lemma bad (forall ((a Addr)) (Conf (Narrow All 2 53 53) a)) \
               (gen a (mp (inst conf_intro (Narrow All 2 53 53) a) \
                 (gen (p Pkt) (assume h (Mem p (Narrow All 2 53 53)) (mp (inst narrow p All 2 53 53) h))))))",
        ];
        let mut files: Vec<(&str, &str)> = BUILTIN.to_vec();
        for b in bogus {
            files.push(("bad.vl", b));
            assert!(build(&files).is_err(), "{b}");
            files.pop();
        }
    }
}
