//! The logic: many-sorted first-order terms over packets, sets, addresses,
//! prefixes, strings and naturals. Formulas are terms of sort `Bool`.
//!
//! Terms are locally nameless: free variables have names (numbers), bound
//! variables are de Bruijn indices, so syntactic equality is alpha-equivalence
//! and substitution cannot capture. Terms are immutable and shared (`Arc`);
//! each node caches its sort, a structural hash, its tree size, its depth and
//! how many binders it needs around it (0: locally closed). Every constructor
//! checks sorts and the size and depth caps, so no term the kernel handles can
//! make it recurse deeply, whatever a certificate contains.
//!
//! Terms share subterms, so a term of a few nodes can stand for a tree of
//! millions. Every walk (substitution, free-variable tests, equality,
//! evaluation) therefore visits each *distinct* node once (memoised), and
//! charges what it does to the thread's [`Budget`]: building a node, visiting
//! one, a byte of a computed string. [`crate::check`] and the lemma cache set
//! the budget from the size of what they were sent, so the checker's work is
//! bounded by the input's size whatever its shape (README, "The trusted base").

use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

thread_local! {
    /// Work units (used, limit) of the current thread's budget.
    static WORK: Cell<(u64, u64)> = const { Cell::new((0, u64::MAX)) };
}

/// A limit on the work of the checker on this thread while it lives; the
/// previous limit and count come back when it is dropped.
#[derive(Debug)]
pub struct Budget {
    saved: (u64, u64),
}

impl Budget {
    /// Allow `limit` work units from now on.
    pub fn new(limit: u64) -> Budget {
        Budget { saved: WORK.with(|w| w.replace((0, limit))) }
    }
    /// Units used so far.
    pub fn used(&self) -> u64 {
        WORK.with(|w| w.get().0)
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        WORK.with(|w| w.set(self.saved));
    }
}

/// Charge `n` units; false once the budget is passed.
pub fn charge(n: u64) -> bool {
    WORK.with(|w| {
        let (used, limit) = w.get();
        w.set((used.saturating_add(n), limit));
        used.saturating_add(n) <= limit
    })
}

/// Whether this thread's budget is passed. Past it, walks give up early and
/// may answer wrongly, so every result since is void: the caller refuses.
pub fn over_budget() -> bool {
    !charge(0)
}

pub(crate) const OVER: &str = "the proof's work exceeds its budget (it is too costly for its size)";

/// Deepest term allowed.
pub const MAX_DEPTH: u32 = 400;
/// Largest term (in nodes, counting shared subterms each time) allowed.
pub const MAX_SIZE: u64 = 1 << 20;
/// Longest string `eval` computes (the VM's strings are shorter).
pub const MAX_STR: usize = 1 << 16;

/// Sorts: `Bool` (formulas), `Num` (naturals), `Addr` and `Prefix` (IPv6 addresses and
/// prefixes /0 to /128, IPv4 among them as [`Lit::wide`] says), `Str` (byte strings),
/// `Set` (sets of packets), `Pkt` (packets).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[rustfmt::skip]
pub enum Sort { Bool, Num, Addr, Prefix, Str, Set, Pkt }

/// Function and predicate symbols. Their signatures are in [`Sym::signature`].
#[allow(missing_docs)]
#[rustfmt::skip] // a table: one line a group
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Sym {
    // Connectives. `Eq` and `Ite` take any one sort.
    True, False, Not, And, Or, Imp, Eq, Ite,
    // The client and the program's parameters (symbolic: proofs hold for all values).
    ThisIp, ThisNet, Param(u16, Sort),
    // Packet sets. `GDst(S, k)` is the group of S with destination k, `GSrc` by source.
    All, FDst, FDstP, FSrc, FSrcP, GDst, GSrc, Mem, Dst, Src, Sub, Conf, ConfP,
    // Addresses and prefixes.
    In, PSub, Mask, NMask, Net,
    // Naturals and strings; `Contains` is the VM's CONTAINS_STRING, left uninterpreted.
    Add, Monus, Mul, Le, Lt, Count, NDst, Contains, Concat,
    // Appended, so that older certificates keep their encoding: `Narrow(S, f, a, b)`, the
    // packets of S narrowed by bytecode field number f; with f + 4, the group of S whose
    // field f is a (a = b = the group's key);
    // `NPort(S)`, DISTINCT_DESTINATION_PORTS; an overlay network's (issue 13): `Key(p)` the
    // flow id a packet carries, `ThisOn` the client's, `FKey(S, k)` the packets of S
    // carrying k, `ConfK(S, k)` every packet of S carries k.
    Narrow, NPort, Key, ThisOn, FKey, ConfK,
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
            ThisOn => (&[], N),
            Key => (&[K], N),
            ThisNet => (&[], P),
            Param(_, s) => (&[], Some(s)),
            All => (&[], S),
            FDst | FSrc | GDst | GSrc => (&[S, A], S),
            FDstP | FSrcP => (&[S, P], S),
            Narrow => (&[S, N, N, N], S),
            FKey => (&[S, N], S),
            ConfK => (&[S, N], B),
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
            Count | NDst | NPort => (&[S], N),
            Contains => (&[S, T], B),
            Concat => (&[T, T], T),
        }
    }
}

/// Literal values. `Addr6` and `Prefix6` (appended: older certificates keep their encoding)
/// are IPv6's; `Addr` and `Prefix` spell IPv4's shorter.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[rustfmt::skip]
pub enum Lit { Addr(u32), Prefix(u32, u8), Num(u64), Str(String), Addr6(u128), Prefix6(u128, u8) }

impl Lit {
    #[rustfmt::skip]
    fn sort(&self) -> Sort {
        match self { Lit::Addr(_) | Lit::Addr6(_) => Sort::Addr, Lit::Prefix(..) | Lit::Prefix6(..) => Sort::Prefix, Lit::Num(_) => Sort::Num, Lit::Str(_) => Sort::Str }
    }

    /// The value `eval` computes with: an IPv4 address `a` is the IPv4-mapped `::ffff:a`
    /// (RFC 4291, 2.5.5.2) and an IPv4 `/n` the `/96+n` of it, so one 128-bit sort holds both.
    pub fn wide(self) -> Lit {
        match self {
            Lit::Addr(a) => Lit::Addr6(crate::mapped(a)),
            Lit::Prefix(n, l) => Lit::Prefix6(crate::mapped(n), l.saturating_add(96)),
            l => l,
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
    /// Bit `id % 64` for each free variable `id` below (a filter: no bit, no variable).
    free: u64,
}

/// Terms of at most this many tree nodes are walked without memoising.
const SMALL: u64 = 32;

/// A well-sorted term within the size and depth caps.
#[derive(Clone, Debug)]
pub struct Term(Arc<Node>);

impl PartialEq for Term {
    fn eq(&self, other: &Term) -> bool {
        same(self, other, &mut HashSet::new())
    }
}

fn ptr(t: &Term) -> usize {
    Arc::as_ptr(&t.0) as usize
}

/// Structural equality, each distinct pair of large nodes compared once.
fn same(a: &Term, b: &Term, seen: &mut HashSet<(usize, usize)>) -> bool {
    let (x, y) = (&a.0, &b.0);
    if Arc::ptr_eq(x, y) {
        return true;
    }
    if x.hash != y.hash || x.sort != y.sort || x.size != y.size || x.free != y.free || !charge(1) {
        return false;
    }
    let key = (ptr(a), ptr(b));
    if x.size > SMALL && seen.contains(&key) {
        return true;
    }
    let r = match (&x.kind, &y.kind) {
        (Kind::App(s, p), Kind::App(t, q)) => s == t && p.len() == q.len() && p.iter().zip(q).all(|(p, q)| same(p, q, seen)),
        (Kind::All(s, p), Kind::All(t, q)) => s == t && same(p, q, seen),
        (p, q) => p == q,
    };
    if r && x.size > SMALL {
        seen.insert(key);
    }
    r
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
        let mut free = if let Kind::Var(id) = kind { 1u64 << (id % 64) } else { 0 };
        for c in children {
            size = size.saturating_add(c.0.size);
            depth = depth.max(c.0.depth);
            hash = mix(hash, c.0.hash);
            free |= c.0.free;
        }
        if size > MAX_SIZE || depth >= MAX_DEPTH {
            return Err(format!("term exceeds the size or depth limit ({size} nodes, depth {})", depth + 1));
        }
        // Building costs 4 units a child (a visit costs 1); leaves are free: each comes from
        // a pool entry or a rule's own constant.
        ensure!(charge(4 * children.len() as u64), OVER.into());
        Ok(Term(Arc::new(Node { kind, sort, hash, size, depth: depth + 1, loose, free })))
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
        ensure!(params.len() == args.len(), format!("{sym:?} takes {} arguments, not {}", params.len(), args.len()));
        let mut poly = None;
        for (p, a) in params.iter().zip(&args) {
            let want = p.or(poly).unwrap_or(a.sort());
            if p.is_none() {
                poly = Some(want);
            }
            ensure!(a.sort() == want, format!("{sym:?}: argument of sort {:?} where {want:?} is needed", a.sort()));
        }
        let sort = result.or(poly).ok_or_else(|| format!("{sym:?}: no sort"))?;
        let loose = args.iter().map(|a| a.0.loose).max().unwrap_or(0);
        let refs: Vec<&Term> = args.iter().collect();
        Term::make(Kind::App(sym, args.clone()), sort, &refs, mix(3, hash_of(&sym)), loose)
    }

    /// `forall (x : sort). body` where `body` uses index 0 for `x` (pool form).
    pub fn all_raw(sort: Sort, body: Term) -> TermResult {
        ensure!(body.sort() == Sort::Bool, "forall needs a formula".into());
        let loose = body.0.loose.saturating_sub(1);
        Term::make(Kind::All(sort, body.clone()), Sort::Bool, &[&body], mix(4, sort as u64), loose)
    }

    /// `forall v. body`, abstracting the free variable `v` of a locally closed `body`.
    pub fn all(v: Term, body: Term) -> TermResult {
        ensure!(matches!(v.kind(), Kind::Var(_)) && body.is_closed(), "forall needs a variable and a locally closed formula".into());
        let absent = |t: &Term| !t.may_have(&v);
        Term::all_raw(v.sort(), body.replace(&|t, depth| if *t == v { Some(Term::bound(depth, v.sort())) } else { None }, &absent)?)
    }

    /// The body of `forall x. body` with `t` for `x`; `t` must be locally closed and of `x`'s sort.
    pub fn instantiate(&self, t: &Term) -> TermResult {
        let Kind::All(sort, body) = self.kind() else { return Err("not a forall".into()) };
        ensure!(*sort == t.sort() && t.is_closed(), format!("cannot instantiate a {sort:?} variable with this {:?} term", t.sort()));
        let sort = *sort;
        let r = body.replace(
            &|x, depth| match x.kind() {
                Kind::Bound(i) if *i == depth && x.sort() == sort => Some(Ok(t.clone())),
                Kind::Bound(i) if *i == depth => Some(Err("a bound variable of another sort".into())),
                _ => None,
            },
            &|x| x.is_closed(),
        )?;
        (r.sort() == Sort::Bool).then_some(r).ok_or_else(|| "not a formula".into())
    }

    /// Match this pattern, a body under `sigma.len()` binders seen from `depth` binders
    /// further in, against the locally closed `t`: fill `sigma[j]` with the term that
    /// bound variable `j` (0: the innermost of those binders) stands for. True iff every
    /// occurrence agrees (each visit is charged; past the budget, false).
    pub fn match_bound(&self, t: &Term, depth: u32, sigma: &mut [Option<Term>]) -> bool {
        if self.sort() != t.sort() || !charge(1) {
            return false;
        }
        match (self.kind(), t.kind()) {
            (Kind::Bound(i), _) if *i >= depth => match sigma.get_mut((i - depth) as usize) {
                Some(Some(s)) => s == t,
                Some(slot) if t.is_closed() => slot.replace(t.clone()).is_none(),
                _ => false,
            },
            (Kind::App(f, p), Kind::App(g, q)) => f == g && p.iter().zip(q).all(|(p, q)| p.match_bound(q, depth, sigma)),
            (Kind::All(s, p), Kind::All(r, q)) => s == r && p.match_bound(q, depth + 1, sigma),
            _ => self == t,
        }
    }

    /// Rebuild, replacing each subterm for which `f(subterm, binders above)`
    /// gives a term; `skip(subterm)` says that nothing below can be replaced.
    /// Each distinct (node, binder depth) is rebuilt once.
    fn replace(&self, f: &dyn Fn(&Term, u32) -> Option<TermResult>, skip: &dyn Fn(&Term) -> bool) -> TermResult {
        self.replace_in(f, skip, 0, &mut HashMap::new())
    }

    fn replace_in(
        &self, f: &dyn Fn(&Term, u32) -> Option<TermResult>, skip: &dyn Fn(&Term) -> bool, depth: u32,
        memo: &mut HashMap<(usize, u32), Term>,
    ) -> TermResult {
        if skip(self) {
            return Ok(self.clone());
        }
        ensure!(charge(1), OVER.into());
        if let Some(r) = f(self, depth) {
            return r;
        }
        let key = (ptr(self), depth);
        if let Some(t) = memo.get(&key) {
            return Ok(t.clone());
        }
        let t = match self.kind() {
            Kind::App(s, args) => Term::app(*s, args.iter().map(|a| a.replace_in(f, skip, depth, memo)).collect::<Result<_, _>>()?)?,
            Kind::All(s, body) => Term::all_raw(*s, body.replace_in(f, skip, depth + 1, memo)?)?,
            _ => self.clone(),
        };
        if self.0.size > 1 {
            memo.insert(key, t.clone());
        }
        Ok(t)
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

    /// The arguments of an application (none for any other term).
    pub fn args(&self) -> &[Term] {
        match self.kind() {
            Kind::App(_, a) => a,
            _ => &[],
        }
    }

    /// `sym(args)` if this term is an application of `sym`.
    pub fn args_of(&self, sym: Sym) -> Option<&[Term]> {
        matches!(self.kind(), Kind::App(s, _) if *s == sym).then(|| self.args())
    }

    /// Whether the free variable `v` may occur (false: it certainly does not).
    fn may_have(&self, v: &Term) -> bool {
        self.0.free & v.0.free != 0
    }

    /// Whether free variable `v` occurs.
    pub fn has_free(&self, v: &Term) -> bool {
        self.has_free_in(v, &mut HashSet::new())
    }

    fn has_free_in(&self, v: &Term, without: &mut HashSet<usize>) -> bool {
        if !self.may_have(v) || without.contains(&ptr(self)) || !charge(1) {
            return false;
        }
        let r = match self.kind() {
            Kind::Var(_) => self == v,
            Kind::All(_, body) => body.has_free_in(v, without),
            _ => self.args().iter().any(|a| a.has_free_in(v, without)),
        };
        if !r {
            without.insert(ptr(self));
        }
        r
    }

    /// Replace the free variable `v` by the locally closed `t` (no capture can occur).
    pub fn subst(&self, v: &Term, t: &Term) -> TermResult {
        if v.sort() != t.sort() || !t.is_closed() || !matches!(v.kind(), Kind::Var(_)) {
            return Err("substitution of a term of another sort, or not locally closed, or not for a variable".into());
        }
        if !self.has_free(v) {
            return Ok(self.clone());
        }
        self.replace(&|x, _| if x == v { Some(Ok(t.clone())) } else { None }, &|x| !x.may_have(v))
    }

    /// The value of a ground term (literals and interpreted symbols only).
    /// Strings longer than [`MAX_STR`] bytes have no value.
    pub fn eval(&self) -> Option<Value> {
        self.eval_in(&mut HashMap::new())
    }

    fn eval_in(&self, memo: &mut HashMap<usize, Option<Value>>) -> Option<Value> {
        let args = match self.kind() {
            Kind::Lit(l) => return Some(Value::V(l.clone().wide())),
            Kind::App(_, a) => a,
            _ => return None,
        };
        if !charge(1) {
            return None;
        }
        if let Some(v) = memo.get(&ptr(self)) {
            return v.clone();
        }
        let vals: Vec<Option<Value>> = args.iter().map(|a| a.eval_in(memo)).collect();
        let r = self.apply(&vals);
        if let Some(Value::V(Lit::Str(s))) = &r {
            charge(s.len() as u64 / 8);
        }
        memo.insert(ptr(self), r.clone());
        r
    }

    /// This application's value, given its arguments' values.
    fn apply(&self, vals: &[Option<Value>]) -> Option<Value> {
        use Sym::*;
        use Value::*;
        let Kind::App(sym, _) = self.kind() else { return None };
        let v = |i: usize| vals[i].clone();
        let num = |i: usize| if let Some(V(Lit::Num(n))) = v(i) { Some(n) } else { None };
        let b = |i: usize| if let Some(B(x)) = v(i) { Some(x) } else { None };
        let addr = |i: usize| if let Some(V(Lit::Addr6(a))) = v(i) { Some(a) } else { None };
        let pfx = |i: usize| if let Some(V(Lit::Prefix6(n, l))) = v(i) { Some((n, l)) } else { None };
        Some(match *sym {
            True => B(true),
            False => B(false),
            Not => B(!b(0)?),
            And => B(b(0)? && b(1)?),
            Or => B(b(0)? || b(1)?),
            Imp => B(!b(0)? || b(1)?),
            Eq => B(v(0)? == v(1)?),
            Ite => v(if b(0)? { 1 } else { 2 })?,
            Add => V(Lit::Num(num(0)?.checked_add(num(1)?)?)),
            Monus => V(Lit::Num(num(0)?.saturating_sub(num(1)?))),
            Mul => V(Lit::Num(num(0)?.checked_mul(num(1)?)?)),
            Le => B(num(0)? <= num(1)?),
            Lt => B(num(0)? < num(1)?),
            Mask => V(Lit::Addr6(addr(0)? & addr(1)?)),
            NMask => V(Lit::Addr6(crate::netmask(pfx(0)?.1))),
            Net => V(Lit::Addr6(pfx(0)?.0)),
            In => pfx(1).and_then(|(n, l)| Some(B(addr(0)? & crate::netmask(l) == n)))?,
            PSub => pfx(0).zip(pfx(1)).map(|((n1, l1), (n2, l2))| B(l1 >= l2 && n1 & crate::netmask(l2) == n2))?,
            Concat => match (v(0)?, v(1)?) {
                (V(Lit::Str(a)), V(Lit::Str(b))) if a.len() + b.len() <= MAX_STR => V(Lit::Str(a + &b)),
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
        ensure!(charge(1 + self.terms.len() as u64), OVER.into());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(sym: Sym, args: Vec<Term>) -> bool {
        Term::app(sym, args).unwrap().eval() == Some(Value::B(true))
    }

    /// Issue 15: one 128-bit address sort; an IPv4 literal is its IPv4-mapped IPv6 address.
    #[test]
    fn ipv4_and_ipv6_share_one_address_sort() {
        let v4 = |a: u32| Term::lit(Lit::Addr(a));
        let v6 = |a: u128| Term::lit(Lit::Addr6(a));
        let p4 = |n: u32, l: u8| Term::lit(Lit::Prefix(n, l));
        let p6 = |n: u128, l: u8| Term::lit(Lit::Prefix6(n, l));
        let doc: u128 = 0x2001_0db8 << 96; // 2001:db8::/32
                                           // 10.0.0.7 is ::ffff:10.0.0.7, and in 10.0.0.0/8, that is ::ffff:10.0.0.0/104.
        assert!(holds(Sym::Eq, vec![v4(0x0a00_0007), v6(crate::mapped(0x0a00_0007))]));
        assert!(holds(Sym::In, vec![v4(0x0a00_0007), p4(0x0a00_0000, 8)]));
        assert!(holds(Sym::In, vec![v4(0x0a00_0007), p6(crate::mapped(0x0a00_0000), 104)]));
        assert!(holds(Sym::In, vec![v4(0x0a00_0007), p6(0, 0)]), "::/0 holds IPv4 too");
        assert!(!holds(Sym::In, vec![v6(doc | 7), p4(0, 0)]), "0.0.0.0/0 is ::ffff:0:0/96, no IPv6 address");
        assert!(holds(Sym::In, vec![v6(doc | 7), p6(doc, 32)]));
        assert!(holds(Sym::In, vec![v6(doc | 7), p6(doc | 7, 128)]));
        assert!(!holds(Sym::In, vec![v6(doc | 7), p6(doc | 6, 128)]));
        assert!(holds(Sym::PSub, vec![p6(doc | 0x100, 120), p6(doc, 32)]));
        assert!(!holds(Sym::PSub, vec![p6(doc, 32), p6(doc | 0x100, 120)]));
        assert!(holds(Sym::PSub, vec![p4(0x0a01_0000, 16), p4(0x0a00_0000, 8)]));
        // Masks are 128-bit: the full mask keeps an IPv6 address whole (axiom mask_full).
        let mask = |a: Term, m: Term| Term::app(Sym::Mask, vec![a, m]).unwrap().eval();
        assert_eq!(mask(v6(doc | 0xffff), v6(u128::MAX)), Some(Value::V(Lit::Addr6(doc | 0xffff))));
        let nmask = Term::app(Sym::NMask, vec![p6(doc, 32)]).unwrap().eval();
        assert_eq!(nmask, Some(Value::V(Lit::Addr6(u128::MAX << 96))));
        // An IPv4 mask on an IPv4 address stays IPv4.
        assert_eq!(mask(v4(0x0a01_0203), v4(0xffff_0000)), Some(Value::V(Lit::Addr6(crate::mapped(0x0a01_0000)))));
        // A prefix longer than 128 is /128 (so the axioms hold of every literal a pool can hold).
        assert!(holds(Sym::In, vec![v6(doc), p6(doc, 200)]));
    }
}
