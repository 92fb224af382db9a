//! The logic: many-sorted first-order terms over packets, sets, addresses,
//! prefixes, strings and naturals. Formulas are terms of sort `Bool`.
//!
//! Terms are locally nameless: free variables have names (numbers), bound
//! variables are de Bruijn indices, so syntactic equality is alpha-equivalence
//! and substitution cannot capture. Terms are immutable and shared (`Arc`);
//! each node caches its sort, a structural hash, its tree size, its depth and
//! how many binders it needs around it (0: locally closed). Every constructor
//! checks sorts and the size and depth caps, so no term the kernel handles can
//! make it recurse deeply or work for long, whatever a certificate contains.

use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Deepest term allowed.
pub const MAX_DEPTH: u32 = 400;
/// Largest term (in nodes, counting shared subterms each time) allowed.
pub const MAX_SIZE: u64 = 1 << 20;

/// Sorts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Sort {
    /// Formulas.
    Bool,
    /// Naturals.
    Num,
    /// IPv4 addresses.
    Addr,
    /// IPv4 prefixes.
    Prefix,
    /// Byte strings.
    Str,
    /// Sets of packets.
    Set,
    /// Packets.
    Pkt,
}

/// Function and predicate symbols. Their signatures are in [`Sym::signature`].
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Sym {
    // Connectives. `Eq` and `Ite` take any one sort.
    True,
    False,
    Not,
    And,
    Or,
    Imp,
    Eq,
    Ite,
    // The client and the program's parameters (symbolic: proofs hold for all values).
    ThisIp,
    ThisNet,
    Param(u16, Sort),
    // Packet sets. `GDst(S, k)` is the group of S with destination k, `GSrc` by source.
    All,
    FDst,
    FDstP,
    FSrc,
    FSrcP,
    GDst,
    GSrc,
    Mem,
    Dst,
    Src,
    Sub,
    Conf,
    ConfP,
    // Addresses and prefixes.
    In,
    PSub,
    Mask,
    NMask,
    Net,
    // Naturals and strings; `Contains` is the VM's CONTAINS_STRING, left uninterpreted.
    Add,
    Monus,
    Mul,
    Le,
    Lt,
    Count,
    NDst,
    Contains,
    Concat,
}

impl Sym {
    /// Argument sorts (`None` for the sort-polymorphic positions of `Eq`/`Ite`)
    /// and result sort (`None`: the sort of the polymorphic arguments).
    fn signature(self) -> (&'static [Option<Sort>], Option<Sort>) {
        use Sort::*;
        use Sym::*;
        const B: Option<Sort> = Some(Bool);
        const N: Option<Sort> = Some(Num);
        const A: Option<Sort> = Some(Addr);
        const P: Option<Sort> = Some(Prefix);
        const S: Option<Sort> = Some(Set);
        const K: Option<Sort> = Some(Pkt);
        const T: Option<Sort> = Some(Str);
        match self {
            True | False => (&[], B),
            Not => (&[B], B),
            And | Or | Imp => (&[B, B], B),
            Eq => (&[None, None], B),
            Ite => (&[B, None, None], None),
            ThisIp => (&[], A),
            ThisNet => (&[], P),
            Param(_, s) => (&[], Some(s)),
            All => (&[], S),
            FDst | FSrc | GDst | GSrc => (&[S, A], S),
            FDstP | FSrcP => (&[S, P], S),
            Mem => (&[K, S], B),
            Dst | Src => (&[K], A),
            Sub => (&[S, S], B),
            Conf => (&[S, A], B),
            ConfP => (&[S, P], B),
            In => (&[A, P], B),
            PSub => (&[P, P], B),
            Mask => (&[A, A], A),
            NMask | Net => (&[P], A),
            Add | Monus | Mul => (&[N, N], N),
            Le | Lt => (&[N, N], B),
            Count | NDst => (&[S], N),
            Contains => (&[S, T], B),
            Concat => (&[T, T], T),
        }
    }
}

/// Literal values.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lit {
    Addr(u32),
    Prefix(u32, u8),
    Num(u64),
    Str(String),
}

impl Lit {
    fn sort(&self) -> Sort {
        match self {
            Lit::Addr(_) => Sort::Addr,
            Lit::Prefix(..) => Sort::Prefix,
            Lit::Num(_) => Sort::Num,
            Lit::Str(_) => Sort::Str,
        }
    }
}

/// The shape of a term.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// A free variable: its number (its sort is the term's sort).
    Var(u32),
    /// A bound variable: its de Bruijn index (0: the innermost binder).
    Bound(u32),
    /// A literal.
    Lit(Lit),
    /// A symbol applied to arguments.
    App(Sym, Vec<Term>),
    /// `forall (x : sort). body`, `x` being index 0 in `body`.
    All(Sort, Term),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    sort: Sort,
    hash: u64,
    size: u64,
    depth: u32,
    loose: u32,
}

/// A well-sorted term within the size and depth caps.
#[derive(Clone, Debug)]
pub struct Term(Arc<Node>);

impl PartialEq for Term {
    fn eq(&self, other: &Term) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.0.hash == other.0.hash && self.0.sort == other.0.sort && self.0.kind == other.0.kind)
    }
}
impl Eq for Term {}
impl Hash for Term {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0.hash)
    }
}

/// A term error: an ill-sorted or oversized term, or a substitution that would capture.
pub type TermResult = Result<Term, String>;

fn mix(mut h: u64, x: u64) -> u64 {
    h ^= x.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(h << 6).wrapping_add(h >> 2);
    h.wrapping_mul(0x1000_0000_01b3)
}

fn hash_of<T: Hash>(x: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    x.hash(&mut h);
    h.finish()
}

impl Term {
    fn make(kind: Kind, sort: Sort, children: &[&Term], seed: u64, loose: u32) -> TermResult {
        let (mut size, mut depth, mut hash) = (1u64, 0u32, mix(seed, sort as u64));
        for c in children {
            size = size.saturating_add(c.0.size);
            depth = depth.max(c.0.depth);
            hash = mix(hash, c.0.hash);
        }
        if size > MAX_SIZE || depth >= MAX_DEPTH {
            return Err(format!("term exceeds the size or depth limit ({size} nodes, depth {})", depth + 1));
        }
        Ok(Term(Arc::new(Node { kind, sort, hash, size, depth: depth + 1, loose })))
    }

    /// A free variable.
    pub fn var(id: u32, sort: Sort) -> Term {
        Term::make(Kind::Var(id), sort, &[], mix(1, id as u64), 0).expect("a variable is small")
    }

    /// A bound variable (de Bruijn index), of a sort.
    pub fn bound(index: u32, sort: Sort) -> TermResult {
        let loose = index.checked_add(1).ok_or("bound index out of range")?;
        Term::make(Kind::Bound(index), sort, &[], mix(5, index as u64), loose)
    }

    /// A literal.
    pub fn lit(l: Lit) -> Term {
        let (sort, seed) = (l.sort(), mix(2, hash_of(&l)));
        Term::make(Kind::Lit(l), sort, &[], seed, 0).expect("a literal is small")
    }

    /// A natural-number literal.
    pub fn num(n: u64) -> Term {
        Term::lit(Lit::Num(n))
    }

    /// `sym(args)`, sort-checked.
    pub fn app(sym: Sym, args: Vec<Term>) -> TermResult {
        let (params, result) = sym.signature();
        if params.len() != args.len() {
            return Err(format!("{sym:?} takes {} arguments, not {}", params.len(), args.len()));
        }
        let mut poly = None;
        for (p, a) in params.iter().zip(&args) {
            let want = p.or(poly).unwrap_or(a.sort());
            if p.is_none() {
                poly = Some(want);
            }
            if a.sort() != want {
                return Err(format!("{sym:?}: argument of sort {:?} where {want:?} is needed", a.sort()));
            }
        }
        let sort = result.or(poly).ok_or_else(|| format!("{sym:?}: no sort"))?;
        let loose = args.iter().map(|a| a.0.loose).max().unwrap_or(0);
        let refs: Vec<&Term> = args.iter().collect();
        Term::make(Kind::App(sym, args.clone()), sort, &refs, mix(3, hash_of(&sym)), loose)
    }

    /// `forall (x : sort). body` where `body` uses index 0 for `x` (pool form).
    pub fn all_raw(sort: Sort, body: Term) -> TermResult {
        if body.sort() != Sort::Bool {
            return Err("forall needs a formula".into());
        }
        let loose = body.0.loose.saturating_sub(1);
        Term::make(Kind::All(sort, body.clone()), Sort::Bool, &[&body], mix(4, sort as u64), loose)
    }

    /// `forall v. body`, abstracting the free variable `v` of a locally closed `body`.
    pub fn all(v: Term, body: Term) -> TermResult {
        if !matches!(v.kind(), Kind::Var(_)) || !body.is_closed() {
            return Err("forall needs a variable and a locally closed formula".into());
        }
        Term::all_raw(v.sort(), body.replace(&|t, depth| if *t == v { Some(Term::bound(depth, v.sort())) } else { None }, 0)?)
    }

    /// The body of `forall x. body` with `t` for `x`; `t` must be locally closed and of `x`'s sort.
    pub fn instantiate(&self, t: &Term) -> TermResult {
        let Kind::All(sort, body) = self.kind() else { return Err("not a forall".into()) };
        if *sort != t.sort() || !t.is_closed() {
            return Err(format!("cannot instantiate a {sort:?} variable with this {:?} term", t.sort()));
        }
        let sort = *sort;
        let r = body.replace(
            &|x, depth| match x.kind() {
                Kind::Bound(i) if *i == depth && x.sort() == sort => Some(Ok(t.clone())),
                Kind::Bound(i) if *i == depth => Some(Err("a bound variable of another sort".into())),
                _ => None,
            },
            0,
        )?;
        if r.sort() != Sort::Bool {
            Err("not a formula".into())
        } else {
            Ok(r)
        }
    }

    /// Rebuild, replacing each subterm for which `f(subterm, binders above)` gives a term.
    fn replace(&self, f: &dyn Fn(&Term, u32) -> Option<TermResult>, depth: u32) -> TermResult {
        if let Some(r) = f(self, depth) {
            return r;
        }
        match self.kind() {
            Kind::App(s, args) => Term::app(*s, args.iter().map(|a| a.replace(f, depth)).collect::<Result<_, _>>()?),
            Kind::All(s, body) => Term::all_raw(*s, body.replace(f, depth + 1)?),
            _ => Ok(self.clone()),
        }
    }

    /// Whether no bound variable is loose (the only terms rules accept).
    pub fn is_closed(&self) -> bool {
        self.0.loose == 0
    }

    /// Its shape.
    pub fn kind(&self) -> &Kind {
        &self.0.kind
    }
    /// Its sort.
    pub fn sort(&self) -> Sort {
        self.0.sort
    }
    /// Its size in nodes.
    pub fn size(&self) -> u64 {
        self.0.size
    }

    /// `sym(args)` if this term is an application of `sym`.
    pub fn args_of(&self, sym: Sym) -> Option<&[Term]> {
        match self.kind() {
            Kind::App(s, a) if *s == sym => Some(a),
            _ => None,
        }
    }

    /// Whether free variable `v` occurs.
    pub fn has_free(&self, v: &Term) -> bool {
        match self.kind() {
            Kind::Var(_) => self == v,
            Kind::App(_, args) => args.iter().any(|a| a.has_free(v)),
            Kind::All(_, body) => body.has_free(v),
            _ => false,
        }
    }

    /// Replace the free variable `v` by the locally closed `t` (no capture can occur).
    pub fn subst(&self, v: &Term, t: &Term) -> TermResult {
        if v.sort() != t.sort() || !t.is_closed() || !matches!(v.kind(), Kind::Var(_)) {
            return Err("substitution of a term of another sort, or not locally closed, or not for a variable".into());
        }
        if !self.has_free(v) {
            return Ok(self.clone());
        }
        self.replace(&|x, _| if x == v { Some(Ok(t.clone())) } else { None }, 0)
    }

    /// The value of a ground term (literals and interpreted symbols only).
    pub fn eval(&self) -> Option<Value> {
        use Sym::*;
        use Value::*;
        let (sym, args) = match self.kind() {
            Kind::Lit(l) => return Some(V(l.clone())),
            Kind::App(s, a) => (*s, a),
            _ => return None,
        };
        let v = |i: usize| args[i].eval();
        let num = |i: usize| match v(i)? {
            V(Lit::Num(n)) => Some(n),
            _ => None,
        };
        let b = |i: usize| match v(i)? {
            B(x) => Some(x),
            _ => None,
        };
        let addr = |i: usize| match v(i)? {
            V(Lit::Addr(a)) => Some(a),
            _ => None,
        };
        let pfx = |i: usize| match v(i)? {
            V(Lit::Prefix(n, l)) => Some((n, l)),
            _ => None,
        };
        Some(match sym {
            True => B(true),
            False => B(false),
            Not => B(!b(0)?),
            And => B(b(0)? && b(1)?),
            Or => B(b(0)? || b(1)?),
            Imp => B(!b(0)? || b(1)?),
            Eq => B(v(0)? == v(1)?),
            Ite => {
                if b(0)? {
                    v(1)?
                } else {
                    v(2)?
                }
            }
            Add => V(Lit::Num(num(0)?.checked_add(num(1)?)?)),
            Monus => V(Lit::Num(num(0)?.saturating_sub(num(1)?))),
            Mul => V(Lit::Num(num(0)?.checked_mul(num(1)?)?)),
            Le => B(num(0)? <= num(1)?),
            Lt => B(num(0)? < num(1)?),
            Mask => V(Lit::Addr(addr(0)? & addr(1)?)),
            NMask => V(Lit::Addr(crate::netmask(pfx(0)?.1))),
            Net => V(Lit::Addr(pfx(0)?.0)),
            In => {
                let (n, l) = pfx(1)?;
                B(addr(0)? & crate::netmask(l) == n)
            }
            PSub => {
                let ((n1, l1), (n2, l2)) = (pfx(0)?, pfx(1)?);
                B(l1 >= l2 && n1 & crate::netmask(l2) == n2)
            }
            Concat => match (v(0)?, v(1)?) {
                (V(Lit::Str(a)), V(Lit::Str(b))) => V(Lit::Str(a + &b)),
                _ => return None,
            },
            _ => return None,
        })
    }
}

/// The value of a ground term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A truth value.
    B(bool),
    /// Any other value.
    V(Lit),
}

/// A linear form over integers: `constant + sum(coefficient * atom)`, where
/// atoms are the maximal non-arithmetic subterms of sort `Num`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Linear {
    /// Atoms and their coefficients (no zero coefficients, no repeated atoms).
    pub terms: Vec<(Term, i128)>,
    /// The constant.
    pub constant: i128,
}

impl Linear {
    /// The linear form of a `Num` term, scaled by `k`, added into `self`.
    pub fn add_term(&mut self, t: &Term, k: i128) -> Result<(), String> {
        let over = || "linear arithmetic overflows".to_string();
        if let Some(Value::V(Lit::Num(n))) = t.eval() {
            self.constant = (n as i128).checked_mul(k).and_then(|x| x.checked_add(self.constant)).ok_or_else(over)?;
            return Ok(());
        }
        if let Some([a, b]) = t.args_of(Sym::Add) {
            self.add_term(a, k)?;
            return self.add_term(b, k);
        }
        if let Some([a, b]) = t.args_of(Sym::Mul) {
            for (x, y) in [(a, b), (b, a)] {
                if let Some(Value::V(Lit::Num(n))) = x.eval() {
                    return self.add_term(y, (n as i128).checked_mul(k).ok_or_else(over)?);
                }
            }
        }
        match self.terms.iter_mut().find(|(a, _)| a == t) {
            Some((_, c)) => *c = c.checked_add(k).ok_or_else(over)?,
            None => self.terms.push((t.clone(), k)),
        }
        self.terms.retain(|(_, c)| *c != 0);
        Ok(())
    }
}
