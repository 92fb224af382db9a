//! # vinet-analyzer: the paper's second verifier
//!
//! The VInet paper offers two ways for a router to trust a program: check a
//! proof the client sends, or analyze the bytecode itself. This crate is the
//! second: it decides the same policy as the checker with no certificate, by
//! abstract interpretation over the module's (structured) control-flow graph,
//! in the style of the paper's reaching-definitions example.
//!
//! ## What it shares with the VC generator, and what it does not
//!
//! The one big decision: **it shares no reasoning code with the proof path**
//! (only the bytecode types with their validator, `blocks` and `operands`, and
//! the policy type), but it shares, deliberately, the *rules* that define
//! what the policy means, each written again here:
//!
//! - the cost model: a routine on a set inside a `foreach` group `g` costs
//!   `unit x |g|`, on any other set `unit x W` (the window); every loop
//!   iteration costs one unit; a `while`'s condition is charged `bound + 1`
//!   times and its body `bound` times; an `if` costs the larger of its
//!   branches, term by term; leaving a `foreach` over the groups of a set of
//!   extent `E` turns `|g|^k` into `E^k` and multiplies the other terms by `E`
//!   (the groups partition the set); complexity is the result, cost is
//!   complexity x lifetime, and a count past the integers is refused in the
//!   same words ("complexity overflows", "cost overflows");
//! - the confinement definition: which routines need their set to be the
//!   client's, that a set is the client's when all its packets go to THIS_IP
//!   (end user) or into THIS_SUBNET_IP (edge router), that GENERATE sends only
//!   to THIS_IP, and that an effect inside a `foreach` over destination groups
//!   is in the client's own group unless the grouped set is already the
//!   client's; the transport routines follow the same rule: a narrowing by a
//!   field (GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT and
//!   GROUP_BY_DESTINATION_PORT keyed, TCP_FLAGS) observes nothing and its
//!   packets are some of its set's, so it is the client's exactly when its set
//!   is and costs `by_field[field]` a packet of its set's extent; grouping by a
//!   field and DISTINCT_DESTINATION_PORTS observe their set, so need it
//!   confined; a `foreach` over field groups (keys are numbers) obliges nothing
//!   of the effects in it, since the grouped set is the client's;
//! - the loop rule: the module's own rank and bound, with the same three
//!   conditions (starts within the bound, positive whenever the body runs,
//!   decreased by every iteration).
//!
//! What it derives independently is whether a module meets those rules: its
//! own abstract domains and path facts (below) decide confinement and the rank
//! conditions, where the proof path generates formulas and has the prover prove
//! them and the kernel check the proof. So the two verifiers' agreement on the
//! corpus (`tests/verifiers_agree.rs`) is evidence that each *decides* the
//! rules correctly there, and that two implementations of the cost model
//! compute the same numbers; it is no evidence that the rules themselves are
//! right (a wrong cost rule or a too-weak confinement definition would be
//! wrong in both, and they would still agree), nor of agreement outside the
//! corpus (the analyzer is less precise, so it may refuse programs the prover
//! proves), nor of anything the shared validator gets wrong. One loop rule is
//! the VC generator's alone: it refuses a loop whose condition block writes a
//! rank register; the analyzer measures the rank at the loop head, before the
//! condition runs, and does not need it.
//!
//! Domains:
//! - a packet set is the list of facts known of the destination of all its
//!   packets (`= a` for an abstract address, `in p` for an abstract prefix) and
//!   its extent (the window, or the group of an enclosing foreach);
//! - an address is THIS_IP, a destination group's key, a parameter, a
//!   constant, or unknown (a field group's key is a number); constants are
//!   128-bit, IPv4 as IPv4-mapped IPv6 (`Const::addr`, `Const::prefix`: an
//!   IPv4 `/n` is the `/96+n` of its mapped network), so IPv4 and IPv6
//!   constants compare, mask and test prefixes alike, and only the full
//!   128-bit mask `ffff:...:ffff` leaves an address unchanged (`a &
//!   255.255.255.255` is `a` only for IPv4 `a`);
//! - a boolean carries the facts it implies when true and when false;
//! - a number is affine over the loop-head values, or unknown;
//! - the path carries facts (address equalities and disequalities, prefix
//!   membership, numeric inequalities), closed under equality; a path whose
//!   facts contradict each other is dead, and nothing on it is refused.
//!
//! It is less precise than the prover in general (no case splits, affine loop
//! ranks only), and is not trusted more than the checker.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;
use vinet_checker::bytecode::{blocks, ArithOp, CmpOp, Const as K, Field, Insn, Module, Reg, Ty};
use vinet_checker::policy::{ClientKind, Policy};
use vinet_checker::vcgen::{GEN, MAX_STRING};

/// The headers of a generated packet, IPv6's 40 bytes and UDP's 8: the most a
/// packet of either family carries besides its payload.
const HEADERS: u64 = 40 + 8;

/// What the analysis derived for an accepted module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Complexity per window.
    pub complexity: u64,
    /// Complexity x lifetime.
    pub cost: u64,
    /// Bytes generated per window, at most.
    pub generated: u64,
}

/// Why a module is refused: the instruction and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {at}: {reason}")]
pub struct Violation {
    /// Instruction index.
    pub at: usize,
    /// Why.
    pub reason: String,
}

/// Analyze a validated module against a policy.
pub fn analyze(m: &Module, policy: &Policy) -> Result<Verdict, Violation> {
    m.validate().map_err(|e| Violation { at: 0, reason: e.to_string() })?;
    let mut a = Analyzer { m, p: policy, next: 0, frames: vec![] };
    let mut st = State { regs: vec![V::None; m.regs.len()], path: Path::default() };
    let cost = a.block(0, m.code.len(), &mut st)?;
    let end = m.code.len().saturating_sub(1);
    let over = |what: &str| Violation { at: end, reason: format!("{what} overflows") };
    // Group sizes are bound by their foreach and leave with it, so the cost is a constant here.
    if cost.keys().any(|mono| !mono.is_empty() && *mono != [GEN]) {
        return Err(Violation { at: end, reason: "the cost depends on the size of a group outside its foreach".into() });
    }
    let complexity = u64::try_from(cost.get(&vec![]).copied().unwrap_or(0)).map_err(|_| over("complexity"))?;
    let generated = u64::try_from(cost.get(&vec![GEN]).copied().unwrap_or(0)).map_err(|_| over("generated bytes"))?;
    let lifetime = m.header.lifetime_secs;
    let cost = complexity.checked_mul(lifetime).ok_or_else(|| over("cost"))?;
    let refuse = |reason: String| Err(Violation { at: end, reason });
    if complexity > policy.complexity_up {
        return refuse(format!("complexity {complexity} exceeds complexity_up {}", policy.complexity_up));
    }
    if cost > policy.cost_up {
        return refuse(format!("cost {cost} exceeds cost_up {}", policy.cost_up));
    }
    if lifetime > policy.max_lifetime_secs {
        return refuse(format!("lifetime {lifetime} s exceeds max_lifetime {} s", policy.max_lifetime_secs));
    }
    if generated > policy.generated_bytes_up {
        return refuse(format!("it may generate {generated} bytes a window, over generated_bytes_up {}", policy.generated_bytes_up));
    }
    Ok(Verdict { complexity, cost, generated })
}

/// An abstract address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Addr {
    ThisIp,
    Key(u32),
    Param(u16),
    /// A constant, 128-bit (IPv4 as IPv4-mapped).
    Const(u128),
    Unknown(u32),
}

/// An abstract prefix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prefix {
    ThisNet,
    Param(u16),
    /// A constant: network and length in the 128-bit space.
    Const(u128, u8),
    Unknown(u32),
}

/// What is known of the destination of every packet of a set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dst {
    Is(Addr),
    In(Prefix),
    /// Every packet carries THIS_ON (ON_PACKETS' sets, for an overlay-network owner).
    On,
}

/// A fact on a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fact {
    Eq(Addr, Addr),
    Ne(Addr, Addr),
    In(Addr, Prefix),
    NotIn(Addr, Prefix),
    /// `affine >= 0`
    NonNeg(Affine),
    False,
}

/// `constant + sum(coefficient * symbol)` over loop-head symbols.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Affine {
    terms: BTreeMap<u32, i128>,
    constant: i128,
}

impl Affine {
    fn constant(c: i128) -> Affine {
        Affine { terms: BTreeMap::new(), constant: c }
    }
    fn symbol(s: u32) -> Affine {
        Affine { terms: BTreeMap::from([(s, 1)]), constant: 0 }
    }
    /// `self + k * o`, or `None` when a coefficient leaves `i128` (a module's
    /// constants and rank coefficients are its own to choose, so a chain of
    /// products can get there): callers then know nothing of the value.
    fn add(&self, o: &Affine, k: i128) -> Option<Affine> {
        let mut r = self.clone();
        for (s, c) in &o.terms {
            let e = r.terms.entry(*s).or_insert(0);
            *e = e.checked_add(c.checked_mul(k)?)?;
        }
        r.terms.retain(|_, c| *c != 0);
        r.constant = r.constant.checked_add(o.constant.checked_mul(k)?)?;
        Some(r)
    }
    fn scale(&self, k: i128) -> Option<Affine> {
        Affine::default().add(self, k)
    }
    fn as_constant(&self) -> Option<i128> {
        self.terms.is_empty().then_some(self.constant)
    }
}

/// An abstract value (a string: the most bytes it can hold).
#[derive(Clone, Debug, PartialEq)]
enum V {
    None,
    Addr(Addr),
    Prefix(Prefix),
    Num(Option<Affine>),
    Bool { when_true: Vec<Fact>, when_false: Vec<Fact> },
    Str(u64),
    Set { dst: Vec<Dst>, extent: Option<u32> },
    Groups { set: Box<V>, by: By },
    List { set: Box<V> },
}

/// What a grouping groups by: destination, source, or a transport field (keyed by numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum By {
    Dst,
    Src,
    Field(Field),
}

/// The routine that narrows or groups by a field, as refusals name it.
fn field_routine(f: Field) -> &'static str {
    ["GROUP_BY_PROTOCOL", "GROUP_BY_SOURCE_PORT", "GROUP_BY_DESTINATION_PORT", "TCP_FLAGS"][f as usize]
}

#[derive(Clone, Debug, Default)]
struct Path {
    facts: Vec<Fact>,
}

impl Path {
    /// Equivalence classes of addresses under the path's equalities.
    fn classes(&self) -> Vec<Vec<Addr>> {
        let mut classes: Vec<Vec<Addr>> = vec![];
        for f in &self.facts {
            if let Fact::Eq(a, b) = f {
                let ia = classes.iter().position(|c| c.contains(a));
                let ib = classes.iter().position(|c| c.contains(b));
                match (ia, ib) {
                    (Some(i), Some(j)) if i != j => {
                        let moved = classes.remove(j.max(i));
                        classes[j.min(i)].extend(moved);
                    }
                    (Some(_), Some(_)) => {}
                    (Some(i), None) => classes[i].push(b.clone()),
                    (None, Some(j)) => classes[j].push(a.clone()),
                    (None, None) => classes.push(vec![a.clone(), b.clone()]),
                }
            }
        }
        classes
    }

    fn same(&self, a: &Addr, b: &Addr) -> bool {
        a == b || self.classes().iter().any(|c| c.contains(a) && c.contains(b))
    }

    fn inside(&self, a: &Addr, p: &Prefix) -> bool {
        if let (Addr::Const(x), Prefix::Const(n, l)) = (a, p) {
            return x & vinet_checker::netmask(*l) == *n;
        }
        self.facts.iter().any(|f| matches!(f, Fact::In(b, q) if q == p && self.same(a, b)))
    }

    /// Whether the facts contradict each other (the path cannot be taken).
    fn dead(&self) -> bool {
        if self.facts.contains(&Fact::False) {
            return true;
        }
        for c in self.classes() {
            let consts: Vec<_> = c.iter().filter(|a| matches!(a, Addr::Const(_))).collect();
            if consts.windows(2).any(|w| w[0] != w[1]) {
                return true;
            }
        }
        self.facts.iter().any(|f| match f {
            Fact::Ne(a, b) => self.same(a, b),
            Fact::NotIn(a, p) => self.inside(a, p),
            Fact::NonNeg(x) => x.as_constant().is_some_and(|c| c < 0),
            _ => false,
        })
    }

    /// Whether `x >= 0` follows: a constant, or a fact it exceeds by a constant.
    fn non_negative(&self, x: &Affine) -> bool {
        if x.terms.values().all(|c| *c >= 0) && x.constant >= 0 {
            return true; // every symbol is a natural
        }
        self.facts.iter().any(|f| match f {
            Fact::NonNeg(y) => x.add(y, -1).is_some_and(|d| d.terms.values().all(|c| *c >= 0) && d.constant >= 0),
            _ => false,
        })
    }
}

#[derive(Clone, Debug)]
struct State {
    regs: Vec<V>,
    path: Path,
}

struct Frame {
    key: u32,
    grouped: V,
    by_dst: bool,
}

type Poly = BTreeMap<Vec<u32>, u128>;

struct Analyzer<'a> {
    m: &'a Module,
    p: &'a Policy,
    next: u32,
    frames: Vec<Frame>,
}

fn refuse<T>(at: usize, reason: impl Into<String>) -> Result<T, Violation> {
    Err(Violation { at, reason: reason.into() })
}

/// The refusal of a loop whose rank leaves the analysis's range (`i128`).
fn rank_overflows(at: usize) -> Violation {
    Violation { at, reason: "this loop's rank overflows".into() }
}

/// The refusal of a cost past the analysis's range, in the VC generator's words.
fn cost_overflows(at: usize) -> Violation {
    Violation { at, reason: "cost overflows".into() }
}

/// `a += b`, refused (at `at`) past `u128`.
fn plus(at: usize, a: &mut Poly, b: &Poly) -> Result<(), Violation> {
    for (k, v) in b {
        let e = a.entry(k.clone()).or_insert(0);
        *e = e.checked_add(*v).ok_or_else(|| cost_overflows(at))?;
    }
    Ok(())
}

/// `k * p`, refused (at `at`) past `u128`.
fn times(at: usize, p: &Poly, k: u128) -> Result<Poly, Violation> {
    p.iter().map(|(m, c)| c.checked_mul(k).map(|c| (m.clone(), c)).ok_or_else(|| cost_overflows(at))).collect()
}

/// Facts of both lists, each once: a boolean built from itself (`b = b and b`)
/// must not double its facts at every step.
fn both(x: Vec<Fact>, y: Vec<Fact>) -> Vec<Fact> {
    let mut r = x;
    for f in y {
        if !r.contains(&f) {
            r.push(f);
        }
    }
    r
}

impl Analyzer<'_> {
    fn fresh(&mut self) -> u32 {
        // At most a few per instruction and enclosing block (each instruction is
        // visited once), so below 34 x MAX_ITEMS x 2, far from u32::MAX.
        self.next += 1;
        self.next
    }

    fn unknown(&mut self, ty: Ty) -> V {
        match ty {
            Ty::Addr => V::Addr(Addr::Unknown(self.fresh())),
            Ty::Prefix => V::Prefix(Prefix::Unknown(self.fresh())),
            Ty::Num => V::Num(Some(Affine::symbol(self.fresh()))),
            Ty::Bool => V::Bool { when_true: vec![], when_false: vec![] },
            Ty::Str => V::Str(MAX_STRING),
            Ty::Set => V::Set { dst: vec![], extent: None },
            Ty::Groups => V::Groups { set: Box::new(V::Set { dst: vec![], extent: None }), by: By::Dst },
            // Any grouping by a field was made of a confined set (GroupField needs one), so
            // its loops oblige nothing of their effects, whichever field it was.
            Ty::NumGroups => V::Groups { set: Box::new(V::Set { dst: vec![], extent: None }), by: By::Field(Field::Proto) },
            Ty::AddrList | Ty::Content => V::List { set: Box::new(V::Set { dst: vec![], extent: None }) },
        }
    }

    /// Whether a set is the client's on this path.
    fn mine(&self, set: &V, path: &Path) -> bool {
        let V::Set { dst, .. } = set else { return false };
        dst.iter().any(|d| match (self.p.client, d) {
            (ClientKind::EndUser, Dst::Is(a)) => path.same(a, &Addr::ThisIp),
            (ClientKind::EdgeRouter, Dst::Is(a)) => path.inside(a, &Prefix::ThisNet),
            (ClientKind::EdgeRouter, Dst::In(p)) => *p == Prefix::ThisNet,
            (ClientKind::OnOwner, Dst::On) => true,
            _ => false,
        })
    }

    fn need_mine(&self, at: usize, set: &V, st: &State, routine: &str) -> Result<(), Violation> {
        if st.path.dead() || self.mine(set, &st.path) {
            return Ok(());
        }
        let who = match self.p.client {
            ClientKind::EndUser => "THIS_IP",
            ClientKind::EdgeRouter => "THIS_SUBNET_IP",
            ClientKind::OnOwner => "THIS_ON",
        };
        refuse(at, format!("{routine} touches a set not confined to {who}"))
    }

    /// Effects inside a foreach over another client's groups must be in the client's own group.
    fn no_leak(&self, at: usize, st: &State) -> Result<(), Violation> {
        if st.path.dead() {
            return Ok(());
        }
        for f in self.frames.iter().filter(|f| f.by_dst) {
            let key = Addr::Key(f.key);
            let ok = self.mine(&f.grouped, &st.path)
                || match self.p.client {
                    ClientKind::EndUser => st.path.same(&key, &Addr::ThisIp),
                    ClientKind::EdgeRouter => st.path.inside(&key, &Prefix::ThisNet),
                    // An ON owner has no destination: only its ON's grouped set will do.
                    ClientKind::OnOwner => false,
                };
            if !ok {
                return refuse(at, "an effect inside a foreach over other clients' groups is not limited to the client's own group");
            }
        }
        Ok(())
    }

    fn extent(v: &V) -> Option<u32> {
        match v {
            V::Set { extent, .. } => *extent,
            V::List { set } => Self::extent(set),
            _ => None,
        }
    }

    /// A routine on `set`: `unit x |g|` inside group `g`, `unit x W` on any other set.
    fn charge(&self, at: usize, cost: &mut Poly, unit: u64, set: &V) -> Result<(), Violation> {
        self.charge_as(at, cost, unit, set, &[])
    }

    /// [`Analyzer::charge`] into the monomials times `marks` (`[GEN]`: the bytes generated).
    fn charge_as(&self, at: usize, cost: &mut Poly, unit: u64, set: &V, marks: &[u32]) -> Result<(), Violation> {
        let (mut mono, k) = match Self::extent(set) {
            Some(g) => (vec![g], unit as u128),
            None => (vec![], (unit as u128).checked_mul(self.p.window_packets as u128).ok_or_else(|| cost_overflows(at))?),
        };
        mono.extend_from_slice(marks);
        plus(at, cost, &Poly::from([(mono, k)]))
    }

    /// `k` units once.
    fn once(at: usize, cost: &mut Poly, k: u64, marks: &[u32]) -> Result<(), Violation> {
        plus(at, cost, &Poly::from([(marks.to_vec(), k as u128)]))
    }

    /// A string operation on up to `n` bytes: BYTES per 64 bytes or part.
    fn bytes(&self, at: usize, cost: &mut Poly, n: u64) -> Result<(), Violation> {
        Self::once(at, cost, n.div_ceil(64).saturating_mul(self.p.unit_costs.bytes), &[])
    }

    fn block(&mut self, start: usize, end: usize, st: &mut State) -> Result<Poly, Violation> {
        let mut cost = Poly::new();
        let mut pc = start;
        while pc < end {
            let (subs, next) = blocks(&self.m.code, pc);
            let c = match &self.m.code[pc] {
                Insn::If { cond, .. } => {
                    let (t, f) = match &st.regs[*cond as usize] {
                        V::Bool { when_true, when_false } => (when_true.clone(), when_false.clone()),
                        _ => (vec![], vec![]),
                    };
                    let mut a = st.clone();
                    a.path.facts.extend(t);
                    let ca = self.block(subs[0].0, subs[0].1, &mut a)?;
                    let mut b = st.clone();
                    b.path.facts.extend(f);
                    let cb = self.block(subs[1].0, subs[1].1, &mut b)?;
                    for (r, (x, y)) in a.regs.into_iter().zip(b.regs).enumerate() {
                        st.regs[r] = self.join(x, y, &a.path, &b.path, self.m.regs[r]);
                    }
                    let mut c = ca;
                    for (k, v) in cb {
                        let e = c.entry(k).or_insert(0);
                        *e = (*e).max(v);
                    }
                    c
                }
                Insn::Foreach { groups, key, set, .. } => {
                    let V::Groups { set: grouped, by } = st.regs[*groups as usize].clone() else {
                        return refuse(pc, "foreach over something that is not a grouping");
                    };
                    let k = self.fresh();
                    let (mut dst, outer) = match &*grouped {
                        V::Set { dst, extent } => (dst.clone(), *extent),
                        _ => (vec![], None),
                    };
                    let by_dst = by == By::Dst;
                    if by_dst {
                        dst.push(Dst::Is(Addr::Key(k)));
                    }
                    let mut inner = st.clone();
                    inner.regs[*key as usize] = match by {
                        By::Dst => V::Addr(Addr::Key(k)),
                        By::Src => V::Addr(Addr::Unknown(k)),
                        // a field's value: a natural the analysis knows nothing more of
                        By::Field(_) => V::Num(Some(Affine::symbol(k))),
                    };
                    inner.regs[*set as usize] = V::Set { dst, extent: Some(k) };
                    self.frames.push(Frame { key: k, grouped: (*grouped).clone(), by_dst });
                    let mut body = self.block(subs[0].0, subs[0].1, &mut inner)?;
                    self.frames.pop();
                    Self::once(pc, &mut body, self.p.unit_costs.loop_turn(), &[])?; // each iteration
                    let mut c = Poly::new();
                    let w = self.p.window_packets as u128;
                    for (mono, coef) in body {
                        let n = mono.iter().filter(|&&v| v == k).count().max(1);
                        let mut rest: Vec<u32> = mono.into_iter().filter(|&v| v != k).collect();
                        let mut coef = coef;
                        for _ in 0..n {
                            match outer {
                                Some(o) => rest.push(o),
                                None => coef = coef.checked_mul(w).ok_or_else(|| cost_overflows(pc))?,
                            }
                        }
                        rest.sort_unstable();
                        plus(pc, &mut c, &Poly::from([(rest, coef)]))?;
                    }
                    c
                }
                Insn::While { cond, bound, rank, .. } => self.while_(pc, *cond, *bound, rank, &subs, st)?,
                insn => self.simple(pc, insn, st)?,
            };
            plus(pc, &mut cost, &c)?;
            Self::once(pc, &mut cost, self.p.unit_costs.instruction, &[])?; // the instruction itself
            pc = next;
        }
        Ok(cost)
    }

    fn join(&mut self, x: V, y: V, px: &Path, py: &Path, ty: Ty) -> V {
        if x == y {
            return x;
        }
        match (&x, &y) {
            (V::Set { dst: a, extent: e1 }, V::Set { dst: b, extent: e2 }) => {
                let mut dst: Vec<Dst> = a.iter().filter(|d| b.contains(d)).cloned().collect();
                if self.mine(&x, px) && self.mine(&y, py) && dst.is_empty() {
                    dst.push(match self.p.client {
                        ClientKind::EndUser => Dst::Is(Addr::ThisIp),
                        ClientKind::EdgeRouter => Dst::In(Prefix::ThisNet),
                        ClientKind::OnOwner => Dst::On,
                    });
                }
                V::Set { dst, extent: if e1 == e2 { *e1 } else { None } }
            }
            (V::Str(a), V::Str(b)) => V::Str(*a.max(b)),
            (V::List { set: a }, V::List { set: b }) => V::List { set: Box::new(self.join((**a).clone(), (**b).clone(), px, py, Ty::Set)) },
            (V::Groups { set: a, by: d1 }, V::Groups { set: b, by: d2 }) if d1 == d2 => {
                V::Groups { set: Box::new(self.join((**a).clone(), (**b).clone(), px, py, Ty::Set)), by: *d1 }
            }
            (V::None, _) | (_, V::None) => V::None,
            _ => self.unknown(ty),
        }
    }

    fn num(&self, st: &State, r: Reg) -> Option<Affine> {
        match &st.regs[r as usize] {
            V::Num(a) => a.clone(),
            _ => None,
        }
    }

    /// The rank's value: `None` when a term is not affine, refused when it overflows.
    fn rank(&self, at: usize, st: &State, rank: &vinet_checker::bytecode::Rank) -> Result<Option<Affine>, Violation> {
        let mut a = Affine::constant(rank.constant as i128);
        for (r, c) in &rank.terms {
            let Some(x) = self.num(st, *r) else { return Ok(None) };
            a = a.add(&x, *c as i128).ok_or_else(|| rank_overflows(at))?;
        }
        Ok(Some(a))
    }

    fn while_(
        &mut self, at: usize, cond: Reg, bound: u32, rank: &vinet_checker::bytecode::Rank, subs: &[(usize, usize)], st: &mut State,
    ) -> Result<Poly, Violation> {
        let entry = match self.rank(at, st, rank)? {
            Some(e) => Some(Affine::constant(bound as i128).add(&e, -1).ok_or_else(|| rank_overflows(at))?),
            None => None,
        };
        let ok_entry = entry.is_some_and(|room| st.path.dead() || st.path.non_negative(&room));
        if !ok_entry {
            return refuse(at, "cannot show this loop starts within its bound");
        }
        let mut written = vec![false; st.regs.len()];
        for pc in subs[0].0..subs[1].1 {
            let ops = vinet_checker::bytecode::operands(&self.m.code[pc], &self.m.regs, &self.m.consts, &self.m.params)
                .map_err(|reason| Violation { at: pc, reason })?;
            for (r, _) in ops.writes {
                written[r as usize] = true;
            }
        }
        for (r, w) in written.iter().enumerate() {
            if *w && st.regs[r] != V::None {
                st.regs[r] = self.unknown(self.m.regs[r]);
            }
        }
        let head = self.rank(at, st, rank)?;
        let cond_cost = self.block(subs[0].0, subs[0].1, st)?;
        let (t, f) = match &st.regs[cond as usize] {
            V::Bool { when_true, when_false } => (when_true.clone(), when_false.clone()),
            _ => (vec![], vec![]),
        };
        let mut body = st.clone();
        body.path.facts.extend(t);
        let body_cost = self.block(subs[1].0, subs[1].1, &mut body)?;
        let after = self.rank(at, &body, rank)?;
        if !body.path.dead() {
            let (Some(h), Some(a)) = (head, after) else {
                return refuse(at, "cannot follow this loop's rank (it is not affine in the loop's variables)");
            };
            let positive = h.add(&Affine::constant(1), -1).ok_or_else(|| rank_overflows(at))?;
            if !body.path.non_negative(&positive) {
                return refuse(at, "cannot show this loop's rank is positive whenever its body runs");
            }
            let decrease = h.add(&a, -1).and_then(|d| d.add(&Affine::constant(1), -1)).ok_or_else(|| rank_overflows(at))?;
            if !body.path.non_negative(&decrease) {
                return refuse(at, "cannot show this loop's body decreases its rank");
            }
        }
        st.path.facts.extend(f);
        // The condition runs at most bound + 1 times, the body at most bound times.
        let mut cost = times(at, &cond_cost, bound as u128 + 1)?;
        let mut per_iteration = body_cost;
        Self::once(at, &mut per_iteration, self.p.unit_costs.loop_turn(), &[])?; // each iteration
        plus(at, &mut cost, &times(at, &per_iteration, bound as u128)?)?;
        Ok(cost)
    }

    fn simple(&mut self, at: usize, insn: &Insn, st: &mut State) -> Result<Poly, Violation> {
        use Insn::*;
        let u = self.p.unit_costs;
        let mut cost = Poly::new();
        let r = |x: &Reg| st.regs[*x as usize].clone();
        let fact_bool = |t: Vec<Fact>, f: Vec<Fact>| V::Bool { when_true: t, when_false: f };
        let (dst, v) = match insn {
            Const { dst, k } => (
                *dst,
                match &self.m.consts[*k as usize] {
                    // 128-bit values: IPv4 as IPv4-mapped, an IPv4 /n as the /96+n of it.
                    K::Addr(a) => V::Addr(Addr::Const(vinet_checker::mapped(*a))),
                    K::Addr6(a) => V::Addr(Addr::Const(*a)),
                    K::Prefix(n, l) => V::Prefix(Prefix::Const(vinet_checker::mapped(*n), l.saturating_add(96))),
                    K::Prefix6(n, l) => V::Prefix(Prefix::Const(*n, *l)),
                    K::Num(n) => V::Num(Some(Affine::constant(*n as i128))),
                    K::Str(s) => {
                        self.bytes(at, &mut cost, s.len() as u64)?;
                        V::Str(s.len() as u64)
                    }
                },
            ),
            Param { dst, p } => (
                *dst,
                match self.m.params[*p as usize].default {
                    K::Addr(_) | K::Addr6(_) => V::Addr(Addr::Param(*p)),
                    K::Prefix(..) | K::Prefix6(..) => V::Prefix(Prefix::Param(*p)),
                    K::Num(_) => V::Num(Some(Affine::symbol(self.fresh()))),
                    K::Str(_) => {
                        let n = u64::from(self.p.max_param_bytes).min(MAX_STRING);
                        self.bytes(at, &mut cost, n)?;
                        V::Str(n)
                    }
                },
            ),
            ThisIp { dst } => {
                if self.p.client == ClientKind::OnOwner {
                    return refuse(at, "THIS_IP is defined only for end-user and edge-router clients");
                }
                (*dst, V::Addr(Addr::ThisIp))
            }
            ThisSubnet { dst } => {
                if self.p.client != ClientKind::EdgeRouter {
                    return refuse(at, "THIS_SUBNET_IP is defined only for edge-router clients");
                }
                (*dst, V::Prefix(Prefix::ThisNet))
            }
            OnPackets { dst, set } => {
                if self.p.client != ClientKind::OnOwner {
                    return refuse(at, "ON_PACKETS is defined only for overlay-network-owner clients");
                }
                let s = r(set);
                self.charge(at, &mut cost, u.by_field[0], &s)?;
                let V::Set { dst: mut facts, extent } = s else { return refuse(at, "a set expected") };
                if !facts.contains(&Dst::On) {
                    facts.push(Dst::On);
                }
                (*dst, V::Set { dst: facts, extent })
            }
            AllPackets { dst } => (*dst, V::Set { dst: vec![], extent: None }),
            Bool { dst, value } => (*dst, if *value { fact_bool(vec![], vec![Fact::False]) } else { fact_bool(vec![Fact::False], vec![]) }),
            Copy { dst, src } => {
                match r(src) {
                    V::Str(n) => self.bytes(at, &mut cost, n)?,
                    V::Groups { set, .. } | V::List { set } => self.charge(at, &mut cost, u.instruction, &set)?,
                    _ => {}
                }
                (*dst, r(src))
            }
            Not { dst, a } => (
                *dst,
                match r(a) {
                    V::Bool { when_true, when_false } => fact_bool(when_false, when_true),
                    v => v,
                },
            ),
            And { dst, a, b } | Or { dst, a, b } => {
                let (V::Bool { when_true: t1, when_false: f1 }, V::Bool { when_true: t2, when_false: f2 }) = (r(a), r(b)) else {
                    return refuse(at, "boolean operands expected");
                };
                let common = |x: Vec<Fact>, y: Vec<Fact>| x.into_iter().filter(|f| y.contains(f)).collect();
                (
                    *dst,
                    if matches!(insn, And { .. }) {
                        fact_bool(both(t1, t2), common(f1, f2))
                    } else {
                        fact_bool(common(t1, t2), both(f1, f2))
                    },
                )
            }
            Cmp { op, dst, a, b } => (
                *dst,
                match (r(a), r(b)) {
                    (V::Str(x), V::Str(y)) => {
                        self.bytes(at, &mut cost, x.min(y))?;
                        fact_bool(vec![], vec![])
                    }
                    (V::Addr(x), V::Addr(y)) => match op {
                        CmpOp::Eq => fact_bool(vec![Fact::Eq(x.clone(), y.clone())], vec![Fact::Ne(x, y)]),
                        _ => fact_bool(vec![Fact::Ne(x.clone(), y.clone())], vec![Fact::Eq(x, y)]),
                    },
                    (V::Num(Some(x)), V::Num(Some(y))) => {
                        // facts as `affine >= 0`; strict comparisons over naturals gain one
                        // (a fact whose arithmetic overflows is left out: knowing less is sound)
                        let ge = |hi: &Affine, lo: &Affine, strict: bool| {
                            hi.add(lo, -1).and_then(|d| d.add(&Affine::constant(if strict { 1 } else { 0 }), -1)).map(Fact::NonNeg)
                        };
                        let fact_bool = |t: Vec<Option<Fact>>, f: Vec<Option<Fact>>| {
                            fact_bool(t.into_iter().flatten().collect(), f.into_iter().flatten().collect())
                        };
                        match op {
                            CmpOp::Lt => fact_bool(vec![ge(&y, &x, true)], vec![ge(&x, &y, false)]),
                            CmpOp::Le => fact_bool(vec![ge(&y, &x, false)], vec![ge(&x, &y, true)]),
                            CmpOp::Gt => fact_bool(vec![ge(&x, &y, true)], vec![ge(&y, &x, false)]),
                            CmpOp::Ge => fact_bool(vec![ge(&x, &y, false)], vec![ge(&y, &x, true)]),
                            CmpOp::Eq => fact_bool(vec![ge(&x, &y, false), ge(&y, &x, false)], vec![]),
                            CmpOp::Ne => fact_bool(vec![], vec![ge(&x, &y, false), ge(&y, &x, false)]),
                        }
                    }
                    _ => fact_bool(vec![], vec![]),
                },
            ),
            InPrefix { dst, addr, prefix } => (
                *dst,
                match (r(addr), r(prefix)) {
                    (V::Addr(a), V::Prefix(p)) => fact_bool(vec![Fact::In(a.clone(), p.clone())], vec![Fact::NotIn(a, p)]),
                    _ => fact_bool(vec![], vec![]),
                },
            ),
            Mask { dst, addr, mask } => (
                *dst,
                match (r(addr), r(mask)) {
                    (V::Addr(a), V::Addr(Addr::Const(u128::MAX))) => V::Addr(a),
                    (V::Addr(Addr::Const(a)), V::Addr(Addr::Const(m))) => V::Addr(Addr::Const(a & m)),
                    _ => V::Addr(Addr::Unknown(self.fresh())),
                },
            ),
            Arith { op, dst, a, b } => {
                let (x, y) = (self.num(st, *a), self.num(st, *b));
                let v = match (op, x, y) {
                    // past i128 the value is unknown (past u64 the run stops anyway)
                    (ArithOp::Add, Some(x), Some(y)) => x.add(&y, 1),
                    (ArithOp::Mul, Some(x), Some(y)) => match (x.as_constant(), y.as_constant()) {
                        (Some(c), _) => y.scale(c),
                        (_, Some(c)) => x.scale(c),
                        _ => None,
                    },
                    // truncated: exact only where the path shows a >= b
                    (ArithOp::Sub, Some(x), Some(y)) => x.add(&y, -1).and_then(|d| {
                        if st.path.non_negative(&d) {
                            Some(d)
                        } else if d.as_constant().is_some_and(|c| c < 0) {
                            Some(Affine::constant(0))
                        } else {
                            None
                        }
                    }),
                    _ => None,
                };
                (*dst, V::Num(v.or_else(|| Some(Affine::symbol(self.fresh())))))
            }
            Concat { dst, a, b } => {
                let (V::Str(x), V::Str(y)) = (r(a), r(b)) else { return refuse(at, "strings expected") };
                self.bytes(at, &mut cost, x + y)?;
                (*dst, V::Str((x + y).min(MAX_STRING)))
            }
            FilterDst { dst, set, by } => {
                let s = r(set);
                self.charge(at, &mut cost, u.group_by_destination, &s)?;
                let V::Set { dst: mut facts, extent } = s else { return refuse(at, "a set expected") };
                match r(by) {
                    V::Addr(a) => facts.push(Dst::Is(a)),
                    V::Prefix(p) => facts.push(Dst::In(p)),
                    _ => {}
                }
                (*dst, V::Set { dst: facts, extent })
            }
            FilterSrc { dst, set, .. } => {
                let s = r(set);
                self.need_mine(at, &s, st, "GROUP_BY_SOURCE")?;
                self.charge(at, &mut cost, u.group_by_source, &s)?;
                (*dst, s)
            }
            GroupDst { dst, set } => {
                let s = r(set);
                self.charge(at, &mut cost, u.group_by_destination, &s)?;
                Self::once(at, &mut cost, u.grouping, &[])?;
                (*dst, V::Groups { set: Box::new(s), by: By::Dst })
            }
            GroupSrc { dst, set } => {
                let s = r(set);
                self.need_mine(at, &s, st, "GROUP_BY_SOURCE")?;
                self.charge(at, &mut cost, u.group_by_source, &s)?;
                Self::once(at, &mut cost, u.grouping, &[])?;
                (*dst, V::Groups { set: Box::new(s), by: By::Src })
            }
            // A narrowing observes nothing: its packets are some of the set's, so it is
            // the client's exactly when the set is, and it keeps the set's extent.
            Narrow { dst, set, field, .. } => {
                let s = r(set);
                self.charge(at, &mut cost, u.by_field[*field as usize], &s)?;
                let V::Set { .. } = s else { return refuse(at, "a set expected") };
                (*dst, s)
            }
            GroupField { dst, set, field } => {
                let s = r(set);
                self.need_mine(at, &s, st, field_routine(*field))?;
                self.charge(at, &mut cost, u.by_field[*field as usize], &s)?;
                Self::once(at, &mut cost, u.grouping, &[])?;
                (*dst, V::Groups { set: Box::new(s), by: By::Field(*field) })
            }
            DistinctPorts { dst, set } => {
                let s = r(set);
                self.need_mine(at, &s, st, "DISTINCT_DESTINATION_PORTS")?;
                self.charge(at, &mut cost, u.distinct_ports, &s)?;
                (*dst, V::Num(Some(Affine::symbol(self.fresh()))))
            }
            GroupContent { dests, content, set } => {
                let s = r(set);
                self.need_mine(at, &s, st, "GROUP_BY_CONTENT")?;
                self.charge(at, &mut cost, u.group_by_content, &s)?;
                Self::once(at, &mut cost, u.grouping, &[])?;
                st.regs[*dests as usize] = V::List { set: Box::new(s.clone()) };
                (*content, V::List { set: Box::new(s) })
            }
            ContainsString { dst, set, .. } | Count { dst, set } | DistinctDst { dst, set } => {
                let s = r(set);
                let (name, unit) = match insn {
                    ContainsString { .. } => ("CONTAINS_STRING", u.contains_string),
                    Count { .. } => ("COUNT", u.count),
                    _ => ("DISTINCT_DESTINATIONS", u.distinct_destinations),
                };
                self.need_mine(at, &s, st, name)?;
                self.charge(at, &mut cost, unit, &s)?;
                if let ContainsString { needle, .. } = insn {
                    let V::Str(n) = r(needle) else { return refuse(at, "a string expected") };
                    self.bytes(at, &mut cost, n)?;
                }
                let v = if matches!(insn, ContainsString { .. }) {
                    fact_bool(vec![], vec![])
                } else {
                    V::Num(Some(Affine::symbol(self.fresh())))
                };
                (*dst, v)
            }
            Discard { set } => {
                let s = r(set);
                self.need_mine(at, &s, st, "DISCARD")?;
                self.no_leak(at, st)?;
                self.charge(at, &mut cost, u.discard, &s)?;
                return Ok(cost);
            }
            Generate { dst, payload, .. } => {
                let to_me = match r(dst) {
                    V::Addr(a) => st.path.same(&a, &Addr::ThisIp),
                    _ => false,
                };
                if !to_me && !st.path.dead() {
                    return refuse(at, "GENERATE sends to an address that is not THIS_IP");
                }
                // Bytes sent, per packet: HEADERS (IPv6 and UDP; IPv4's are fewer) and the
                // payload; an address list sends at most 72 bytes an address (a packet, 8
                // bytes of list header, 16 an address, whatever the packet's family).
                match r(payload) {
                    V::List { set } => {
                        self.need_mine(at, &set, st, "GENERATE")?;
                        self.charge(at, &mut cost, u.generate, &set)?;
                        let item = if self.m.regs[*payload as usize] == Ty::AddrList { HEADERS + 8 + 16 } else { HEADERS + MAX_STRING };
                        self.charge_as(at, &mut cost, item, &set, &[GEN])?;
                    }
                    V::Str(n) => {
                        Self::once(at, &mut cost, u.generate.saturating_mul(n.div_ceil(64).max(1)), &[])?; // a packet a 64 bytes
                        self.bytes(at, &mut cost, n)?;
                        Self::once(at, &mut cost, HEADERS + n, &[GEN])?;
                    }
                    _ => return refuse(at, "GENERATE of something that is not a string or a list"),
                }
                self.no_leak(at, st)?;
                return Ok(cost);
            }
            If { .. } | Foreach { .. } | While { .. } => return refuse(at, "structured instruction out of place"),
        };
        st.regs[dst as usize] = v;
        Ok(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinet_checker::bytecode::{Class, Const, Header, Insn, Param, Rank, FORMAT_VERSION};
    use vinet_checker::policy::UnitCosts;

    /// Unit costs of routines and loops only (INSTRUCTION and BYTES 0), so
    /// the figures below count what the routines touch; the machine costs
    /// have their own test.
    fn policy(client: ClientKind) -> Policy {
        let unit_costs = UnitCosts {
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
            instruction: 0,
            bytes: 0,
        };
        Policy {
            client,
            max_lifetime_secs: 30 * 86_400,
            complexity_up: 20_000,
            cost_up: 5_000_000_000,
            window_packets: 256,
            unit_costs,
            max_param_bytes: 256,
            generated_bytes_up: 1 << 25,
        }
    }

    /// A module from instructions, registers typed as given.
    fn module(regs: Vec<Ty>, code: Vec<Insn>, class: Class, consts: Vec<Const>) -> Module {
        let lines = vec![1; code.len()];
        Module {
            version: FORMAT_VERSION,
            header: Header { lifetime_secs: 86_400, class },
            consts,
            params: vec![Param { name: "S".into(), default: Const::Addr(0xcb00_7109) }],
            regs,
            code,
            lines,
        }
    }

    fn firewall(filter_to_me: bool) -> Module {
        use Insn::*;
        let to = if filter_to_me { ThisIp { dst: 1 } } else { Const { dst: 1, k: 0 } };
        module(
            vec![Ty::Set, Ty::Addr, Ty::Set, Ty::Addr, Ty::Set],
            vec![
                AllPackets { dst: 0 },
                to,
                FilterDst { dst: 2, set: 0, by: 1 },
                Param { dst: 3, p: 0 },
                FilterSrc { dst: 4, set: 2, by: 3 },
                Discard { set: 4 },
            ],
            Class::Filtering,
            vec![K::Addr(0x0a09_0909)],
        )
    }

    #[test]
    fn the_firewall_is_accepted_at_its_cost() {
        assert_eq!(
            analyze(&firewall(true), &policy(ClientKind::EndUser)).unwrap(),
            Verdict { complexity: 1024, cost: 1024 * 86_400, generated: 0 }
        );
    }

    /// Every instruction costs INSTRUCTION, strings BYTES per 64 bytes they
    /// copy, join, compare, search for or send, and GENERATE's bytes are
    /// bounded; the analyzer derives what the condition generator derives.
    #[test]
    fn instructions_and_string_bytes_are_charged() {
        use Insn::*;
        let mut p = policy(ClientKind::EdgeRouter);
        (p.unit_costs.instruction, p.unit_costs.bytes, p.max_param_bytes) = (1, 2, 100);
        let word = "w".repeat(130); // 3 blocks of 64 bytes
        let mut m = module(
            vec![Ty::Str, Ty::Str, Ty::Str, Ty::Bool, Ty::Str, Ty::Addr, Ty::Addr],
            vec![
                Const { dst: 0, k: 0 },                    // 1 + 2 * 3
                Param { dst: 1, p: 0 },                    // 1 + 2 * 2 (up to 100 bytes)
                Concat { dst: 2, a: 0, b: 1 },             // 1 + 2 * 4 (230 bytes)
                Cmp { op: CmpOp::Eq, dst: 3, a: 2, b: 0 }, // 1 + 2 * 3 (the shorter)
                Copy { dst: 4, src: 2 },                   // 1 + 2 * 4
                ThisIp { dst: 5 },                         // 1
                ThisIp { dst: 6 },                         // 1
                Generate { src: 5, dst: 6, payload: 4 },   // 1 + GENERATE 4 * 4 + 2 * 4; 48 + 230 bytes sent
            ],
            Class::Multicast,
            vec![K::Str(word)],
        );
        m.params = vec![vinet_checker::bytecode::Param { name: "W".into(), default: K::Str("x".into()) }];
        let want = Verdict { complexity: 7 + 5 + 9 + 7 + 9 + 1 + 1 + 25, cost: 64 * 86_400, generated: 278 };
        assert_eq!(analyze(&m, &p), Ok(want));
        assert_eq!(vcgen(&m, &p), Ok(want));
        p.generated_bytes_up = 277;
        assert!(analyze(&m, &p).unwrap_err().reason.contains("generate 278 bytes"));
    }

    #[test]
    fn another_destination_is_refused() {
        let e = analyze(&firewall(false), &policy(ClientKind::EndUser)).unwrap_err();
        assert!(e.reason.contains("GROUP_BY_SOURCE touches a set not confined to THIS_IP"), "{e}");
        assert!(analyze(&firewall(true), &policy(ClientKind::EdgeRouter)).is_err(), "THIS_IP is not the edge router's subnet");
    }

    /// Issue 15: IPv6 constants and parameters are 128-bit values like IPv4's.
    #[test]
    fn ipv6_addresses_are_analyzed_like_ipv4() {
        use Insn::*;
        let doc: u128 = 0x2001_0db8 << 96;
        let p = policy(ClientKind::EndUser);
        // The firewall with an IPv6 source: accepted; filtered to an IPv6 constant: refused.
        let mut m = firewall(true);
        m.params[0].default = K::Addr6(doc | 0xbad << 80 | 9);
        assert_eq!(analyze(&m, &p), vcgen(&m, &p));
        assert!(analyze(&m, &p).is_ok());
        let mut m = firewall(false);
        m.consts = vec![K::Addr6(doc | 7)];
        assert!(analyze(&m, &p).unwrap_err().reason.contains("not confined to THIS_IP"));
        // Masking keeps the address only with the full 128-bit mask; 255.255.255.255
        // keeps an IPv4 address only, and THIS_IP may be IPv6.
        let masked = |mask: K| {
            module(
                vec![Ty::Set, Ty::Addr, Ty::Addr, Ty::Addr, Ty::Set],
                vec![
                    AllPackets { dst: 0 },
                    ThisIp { dst: 1 },
                    Const { dst: 2, k: 0 },
                    Mask { dst: 3, addr: 1, mask: 2 },
                    FilterDst { dst: 4, set: 0, by: 3 },
                    Discard { set: 4 },
                ],
                Class::Filtering,
                vec![mask],
            )
        };
        assert!(analyze(&masked(K::Addr6(u128::MAX)), &p).is_ok());
        assert!(analyze(&masked(K::Addr(u32::MAX)), &p).is_err());
        // Two constants of one class that differ (an IPv4 and an IPv6 one) make a dead path.
        let dead = |a: K, b: K| {
            module(
                vec![Ty::Set, Ty::Addr, Ty::Addr, Ty::Bool],
                vec![
                    AllPackets { dst: 0 },
                    Const { dst: 1, k: 0 },
                    Const { dst: 2, k: 1 },
                    Cmp { op: CmpOp::Eq, dst: 3, a: 1, b: 2 },
                    If { cond: 3, then_len: 1, else_len: 0 },
                    Discard { set: 0 },
                ],
                Class::Filtering,
                vec![a, b],
            )
        };
        assert!(analyze(&dead(K::Addr(0x0a00_0001), K::Addr6(doc | 1)), &p).is_ok());
        assert!(analyze(&dead(K::Addr6(doc | 2), K::Addr6(doc | 1)), &p).is_ok());
        assert!(analyze(&dead(K::Addr6(doc | 1), K::Addr6(doc | 1)), &p).is_err(), "equal: DISCARD(AllPackets) runs");
        // The edge router: a constant IPv6 destination inside THIS_SUBNET_IP, shown by `in`.
        let ep = policy(ClientKind::EdgeRouter);
        let m = module(
            vec![Ty::Set, Ty::Addr, Ty::Prefix, Ty::Bool, Ty::Set],
            vec![
                AllPackets { dst: 0 },
                Const { dst: 1, k: 0 },
                ThisSubnet { dst: 2 },
                InPrefix { dst: 3, addr: 1, prefix: 2 },
                If { cond: 3, then_len: 2, else_len: 0 },
                FilterDst { dst: 4, set: 0, by: 1 },
                Discard { set: 4 },
            ],
            Class::Filtering,
            vec![K::Addr6(doc | 7)],
        );
        assert!(analyze(&m, &ep).is_ok());
        assert_eq!(analyze(&m, &ep), vcgen(&m, &ep));
    }

    /// foreach over GROUP_BY_DESTINATION(AllPackets): DISCARD(group) only under `key == THIS_IP`.
    fn guarded(op: CmpOp) -> Module {
        use Insn::*;
        module(
            vec![Ty::Set, Ty::Groups, Ty::Addr, Ty::Set, Ty::Addr, Ty::Bool],
            vec![
                AllPackets { dst: 0 },
                GroupDst { dst: 1, set: 0 },
                Foreach { groups: 1, key: 2, set: 3, body_len: 4 },
                ThisIp { dst: 4 },
                Cmp { op, dst: 5, a: 2, b: 4 },
                If { cond: 5, then_len: 1, else_len: 0 },
                Discard { set: 3 },
            ],
            Class::Filtering,
            vec![],
        )
    }

    #[test]
    fn the_path_decides_a_group() {
        let p = policy(ClientKind::EndUser);
        // 256 (grouping) + per packet of the window: 1 (DISCARD) + 1 (iteration).
        assert_eq!(analyze(&guarded(CmpOp::Eq), &p).unwrap().complexity, 256 + 2 * 256);
        assert!(analyze(&guarded(CmpOp::Ne), &p).is_err());
    }

    #[test]
    fn loops_need_a_decreasing_rank() {
        use Insn::*;
        // n = 0; while n < 4 do n = n + STEP
        let lp = |step: u64| {
            module(
                vec![Ty::Num, Ty::Num, Ty::Num, Ty::Bool],
                vec![
                    Const { dst: 0, k: 0 },
                    Const { dst: 1, k: 1 },
                    Const { dst: 2, k: 2 },
                    While { cond_len: 1, cond: 3, body_len: 1, bound: 4, rank: Rank { terms: vec![(0, -1)], constant: 4 } },
                    Cmp { op: CmpOp::Lt, dst: 3, a: 0, b: 1 },
                    Arith { op: ArithOp::Add, dst: 0, a: 0, b: 2 },
                ],
                Class::Monitoring,
                vec![K::Num(0), K::Num(4), K::Num(step)],
            )
        };
        let p = policy(ClientKind::EndUser);
        assert_eq!(analyze(&lp(1), &p).unwrap().complexity, 4, "one unit per iteration");
        assert!(analyze(&lp(0), &p).unwrap_err().reason.contains("decreases its rank"));
    }

    #[test]
    fn generate_only_to_this_ip() {
        use Insn::*;
        let gen = |to_me: bool| {
            let to = if to_me { ThisIp { dst: 1 } } else { Const { dst: 1, k: 1 } };
            module(
                vec![Ty::Addr, Ty::Addr, Ty::Str],
                vec![ThisIp { dst: 0 }, to, Const { dst: 2, k: 0 }, Generate { src: 0, dst: 1, payload: 2 }],
                Class::Multicast,
                vec![K::Str("x".into()), K::Addr(1)],
            )
        };
        assert!(analyze(&gen(true), &policy(ClientKind::EndUser)).is_ok());
        assert!(analyze(&gen(false), &policy(ClientKind::EndUser)).unwrap_err().reason.contains("not THIS_IP"));
    }

    /// `e = N; one = 1;` then `depth` nested `while v < N do begin ... v = v + 1 end`,
    /// each counter reset to 0 just before its loop (what the compiler emits).
    fn while_nest(depth: usize, bound: u32) -> Module {
        use Insn::*;
        fn level(i: usize, depth: usize, bound: u32) -> Vec<Insn> {
            let (v, c) = (2 + 2 * i as u16, 3 + 2 * i as u16);
            let mut body = if i + 1 < depth { level(i + 1, depth, bound) } else { vec![] };
            body.push(Arith { op: ArithOp::Add, dst: v, a: v, b: 1 });
            let rank = Rank { terms: vec![(v, -1)], constant: bound as i64 };
            let mut code = vec![
                Const { dst: v, k: 0 },
                While { cond_len: 1, cond: c, body_len: body.len() as u32, bound, rank },
                Cmp { op: CmpOp::Lt, dst: c, a: v, b: 0 },
            ];
            code.extend(body);
            code
        }
        let mut regs = vec![Ty::Num, Ty::Num];
        for _ in 0..depth {
            regs.extend([Ty::Num, Ty::Bool]);
        }
        let mut code = vec![Const { dst: 0, k: 1 }, Const { dst: 1, k: 2 }];
        code.extend(level(0, depth, bound));
        module(regs, code, Class::Monitoring, vec![K::Num(0), K::Num(bound as u64), K::Num(1)])
    }

    /// The VC generator's verdict on the same module, for comparison.
    fn vcgen(m: &Module, p: &Policy) -> Result<Verdict, Violation> {
        vinet_checker::vcgen::generate(m, p)
            .map(|vc| Verdict { complexity: vc.complexity, cost: vc.cost, generated: vc.generated })
            .map_err(|e| Violation { at: e.at, reason: e.reason })
    }

    #[test]
    fn while_nests_are_costed_or_refused_as_the_vc_generator_does() {
        let p = policy(ClientKind::EndUser);
        let overflow = |at: usize, what: &str| Err(Violation { at, reason: format!("{what} overflows") });
        // 100 x (100 x 1 + 1): one unit per iteration of each loop.
        let small = while_nest(2, 100);
        assert_eq!(analyze(&small, &p), Ok(Verdict { complexity: 10_100, cost: 10_100 * 86_400, generated: 0 }));
        // About 10^9 units: over complexity_up.
        let e = analyze(&while_nest(3, 1000), &p).unwrap_err();
        assert!(e.reason.starts_with("complexity 1001001000 exceeds complexity_up"), "{e}");
        // About 10^18 units fit u64, but not times the lifetime.
        let m = while_nest(3, 1_000_000);
        assert_eq!(analyze(&m, &p), overflow(m.code.len() - 1, "cost"));
        // About 10^24 units: past u64, within u128.
        let m = while_nest(4, 1_000_000);
        assert_eq!(analyze(&m, &p), overflow(m.code.len() - 1, "complexity"));
        // About 10^48 units: past u128 at the second loop (pc 6), about 10^42 there.
        let m = while_nest(8, 1_000_000);
        assert_eq!(analyze(&m, &p), overflow(6, "cost"));
        for (depth, bound) in [(2, 100), (4, 1_000_000), (8, 1_000_000), (32, 1 << 20)] {
            let m = while_nest(depth, bound);
            assert_eq!(analyze(&m, &p), vcgen(&m, &p), "depth {depth}, bound {bound}");
        }
    }

    /// `depth` nested foreach loops, each over GROUP_BY_DESTINATION(AllPackets) made in
    /// the enclosing body, the innermost body empty: every level multiplies the cost by the window.
    fn foreach_nest(depth: usize) -> Module {
        use Insn::*;
        fn level(i: usize, depth: usize) -> Vec<Insn> {
            let (g, k, s) = (1 + 3 * i as u16, 2 + 3 * i as u16, 3 + 3 * i as u16);
            let body = if i + 1 < depth { level(i + 1, depth) } else { vec![] };
            let mut code = vec![GroupDst { dst: g, set: 0 }, Foreach { groups: g, key: k, set: s, body_len: body.len() as u32 }];
            code.extend(body);
            code
        }
        let mut regs = vec![Ty::Set];
        for _ in 0..depth {
            regs.extend([Ty::Groups, Ty::Addr, Ty::Set]);
        }
        let mut code = vec![AllPackets { dst: 0 }];
        code.extend(level(0, depth));
        module(regs, code, Class::Monitoring, vec![])
    }

    #[test]
    fn foreach_nests_past_u128_are_refused_as_the_vc_generator_does() {
        let p = Policy { complexity_up: u64::MAX, cost_up: u64::MAX, ..policy(ClientKind::EndUser) };
        // 256 (grouping) + 256 x 1 (iteration), then 256 x that and 256 for the outer grouping.
        assert_eq!(analyze(&foreach_nest(1), &p).unwrap().complexity, 256 + 256);
        assert_eq!(analyze(&foreach_nest(2), &p).unwrap().complexity, 256 + 256 * (256 + 256 + 1));
        // About 2^64 units at depth 8.
        assert_eq!(analyze(&foreach_nest(8), &p).unwrap_err().reason, "complexity overflows");
        let e = analyze(&foreach_nest(20), &p).unwrap_err();
        assert_eq!(e.reason, "cost overflows", "{e}");
        for depth in [1, 3, 8, 15, 16, 17, 20, 31] {
            let m = foreach_nest(depth);
            assert_eq!(analyze(&m, &p), vcgen(&m, &p), "depth {depth}");
        }
    }

    #[test]
    fn a_window_past_u64_units_is_refused_not_wrapped() {
        let mut p = policy(ClientKind::EndUser);
        p.window_packets = u32::MAX;
        p.unit_costs.group_by_destination = u64::MAX;
        let e = analyze(&foreach_nest(1), &p).unwrap_err();
        assert_eq!(e.reason, "complexity overflows", "{e}");
        assert_eq!(analyze(&foreach_nest(1), &p), vcgen(&foreach_nest(1), &p));
    }

    #[test]
    fn products_past_i128_make_an_unknown_number() {
        use Insn::*;
        // n = 2^64 - 1; n = n * n; n = n * n; n = n + n; c = n < n: before, the second product panicked.
        let m = module(
            vec![Ty::Num, Ty::Bool],
            vec![
                Const { dst: 0, k: 0 },
                Arith { op: ArithOp::Mul, dst: 0, a: 0, b: 0 },
                Arith { op: ArithOp::Mul, dst: 0, a: 0, b: 0 },
                Arith { op: ArithOp::Add, dst: 0, a: 0, b: 0 },
                Arith { op: ArithOp::Sub, dst: 0, a: 0, b: 0 },
                Cmp { op: CmpOp::Lt, dst: 1, a: 0, b: 0 },
            ],
            Class::Monitoring,
            vec![K::Num(u64::MAX)],
        );
        assert_eq!(analyze(&m, &policy(ClientKind::EndUser)), Ok(Verdict { complexity: 0, cost: 0, generated: 0 }));
    }

    #[test]
    fn a_comparison_past_i128_knows_nothing() {
        use Insn::*;
        let mul = |dst, a, b| Arith { op: ArithOp::Mul, dst, a, b };
        // c = (2^126 + 2^126 - 1) n = i128::MAX n; if c <= 0 then d = 0 - c (exact: -c);
        // then c < d compares c - d = 2 i128::MAX n: before, a panic.
        let mut m = module(
            vec![Ty::Num, Ty::Num, Ty::Num, Ty::Num, Ty::Num, Ty::Num, Ty::Num, Ty::Bool, Ty::Num, Ty::Bool],
            vec![
                Param { dst: 0, p: 0 },
                Const { dst: 1, k: 0 },
                Const { dst: 2, k: 1 },
                Const { dst: 3, k: 2 },
                Const { dst: 4, k: 3 },
                mul(5, 0, 1),
                mul(5, 5, 1),
                mul(6, 0, 2),
                mul(6, 6, 3),
                Arith { op: ArithOp::Add, dst: 5, a: 5, b: 6 },
                Cmp { op: CmpOp::Le, dst: 7, a: 5, b: 4 },
                If { cond: 7, then_len: 2, else_len: 0 },
                Arith { op: ArithOp::Sub, dst: 8, a: 4, b: 5 },
                Cmp { op: CmpOp::Lt, dst: 9, a: 5, b: 8 },
            ],
            Class::Monitoring,
            vec![K::Num(1 << 63), K::Num((1 << 63) - 1), K::Num((1 << 63) + 1), K::Num(0)],
        );
        m.params = vec![vinet_checker::bytecode::Param { name: "N".into(), default: K::Num(1) }];
        m.validate().unwrap();
        assert_eq!(analyze(&m, &policy(ClientKind::EndUser)), Ok(Verdict { complexity: 0, cost: 0, generated: 0 }));
    }

    #[test]
    fn a_rank_past_i128_is_refused() {
        use Insn::*;
        // rank = (2^63 - 1) n + (2^63 - 1) n with n = 2^64 - 1: about 2^128.
        let big = Rank { terms: vec![(0, i64::MAX), (0, i64::MAX)], constant: 0 };
        let m = module(
            vec![Ty::Num, Ty::Bool],
            vec![
                Const { dst: 0, k: 0 },
                While { cond_len: 1, cond: 1, body_len: 0, bound: 1, rank: big },
                Cmp { op: CmpOp::Lt, dst: 1, a: 0, b: 0 },
            ],
            Class::Monitoring,
            vec![K::Num(u64::MAX)],
        );
        m.validate().unwrap();
        let e = analyze(&m, &policy(ClientKind::EndUser)).unwrap_err();
        assert_eq!(e, Violation { at: 1, reason: "this loop's rank overflows".into() });
    }

    #[test]
    fn a_boolean_built_from_itself_keeps_each_fact_once() {
        use Insn::*;
        // b = x == THIS_IP; then b = b and b, 64 times: 2^64 facts if each step doubled them.
        let mut code = vec![ThisIp { dst: 0 }, Param { dst: 1, p: 0 }, Cmp { op: CmpOp::Eq, dst: 2, a: 0, b: 1 }];
        code.extend((0..64).map(|_| And { dst: 2, a: 2, b: 2 }));
        code.extend([Not { dst: 3, a: 2 }, Or { dst: 3, a: 3, b: 3 }, If { cond: 2, then_len: 1, else_len: 0 }, AllPackets { dst: 4 }]);
        let m = module(vec![Ty::Addr, Ty::Addr, Ty::Bool, Ty::Bool, Ty::Set], code, Class::Monitoring, vec![]);
        assert_eq!(analyze(&m, &policy(ClientKind::EndUser)), Ok(Verdict { complexity: 0, cost: 0, generated: 0 }));
    }

    /// A policy whose transport units differ by field (and from every other unit), so a
    /// routine charged at the wrong field's unit shows in the figures.
    fn transport_policy(client: ClientKind) -> Policy {
        let mut p = policy(client);
        p.unit_costs.by_field = [5, 7, 11, 13];
        p.unit_costs.distinct_ports = 17;
        p.unit_costs.instruction = 1;
        p.complexity_up = u64::MAX;
        p.cost_up = u64::MAX;
        p
    }

    /// The client's set (end user: to THIS_IP; edge router: into THIS_SUBNET_IP), or the
    /// whole window, in register 0 (register 1 the key).
    fn base(client: Option<ClientKind>) -> Vec<Insn> {
        use Insn::*;
        match client {
            Some(ClientKind::EndUser) => vec![AllPackets { dst: 2 }, ThisIp { dst: 1 }, FilterDst { dst: 0, set: 2, by: 1 }],
            Some(ClientKind::EdgeRouter) => vec![AllPackets { dst: 2 }, ThisSubnet { dst: 3 }, FilterDst { dst: 0, set: 2, by: 3 }],
            // The packets carrying THIS_ON (register 1 stays unwritten: an ON owner has no address).
            Some(ClientKind::OnOwner) => vec![AllPackets { dst: 2 }, OnPackets { dst: 0, set: 2 }],
            None => vec![AllPackets { dst: 0 }],
        }
    }

    /// Registers of the transport modules below: 0..=3 the base, then numbers and sets.
    const T_REGS: [Ty; 21] = [
        Ty::Set,       // 0: the set worked on
        Ty::Addr,      // 1
        Ty::Set,       // 2: AllPackets
        Ty::Prefix,    // 3
        Ty::Num,       // 4: lo
        Ty::Num,       // 5: hi
        Ty::Set,       // 6: a narrowing
        Ty::NumGroups, // 7
        Ty::Num,       // 8: a group's key
        Ty::Set,       // 9: its packets
        Ty::Num,       // 10
        Ty::Bool,      // 11
        Ty::Set,       // 12
        Ty::Groups,    // 13
        Ty::Addr,      // 14
        Ty::Set,       // 15
        Ty::Num,       // 16: a threshold
        Ty::Num,       // 17: flags on
        Ty::Num,       // 18: flags off
        Ty::NumGroups, // 19
        Ty::Bool,      // 20
    ];

    fn transport(client: Option<ClientKind>, code: Vec<Insn>) -> Module {
        let mut all = base(client);
        all.extend([Insn::Const { dst: 4, k: 0 }, Insn::Const { dst: 5, k: 1 }]);
        all.extend(code);
        let m = module(T_REGS.to_vec(), all, Class::Filtering, vec![K::Num(53), K::Num(53), K::Num(2), K::Num(16), K::Num(10)]);
        m.validate().unwrap();
        m
    }

    /// Both verifiers on one module: the analyzer's verdict, and that its figures are the
    /// VC generator's whenever it accepts.
    fn both_ways(m: &Module, p: &Policy) -> Result<Verdict, Violation> {
        let v = analyze(m, p);
        if let Ok(v) = v {
            assert_eq!(Ok(v), vcgen(m, p), "the analyzer's figures are the VC generator's");
        }
        v
    }

    /// DISCARD(GROUP_BY_DESTINATION_PORT(S, 53)) for each field, on the client's set and on the window.
    #[test]
    fn a_narrowing_is_the_clients_exactly_when_its_set_is() {
        use Insn::*;
        for client in [ClientKind::EndUser, ClientKind::EdgeRouter, ClientKind::OnOwner] {
            let p = transport_policy(client);
            // The base's narrowing to the client: GROUP_BY_DESTINATION's unit, or (an ON
            // owner's ON_PACKETS) GROUP_BY_PROTOCOL's, in one instruction fewer.
            let (filter, base) = if client == ClientKind::OnOwner { (p.unit_costs.by_field[0], 6) } else { (1, 7) };
            for field in [Field::Proto, Field::SrcPort, Field::DstPort, Field::TcpFlags] {
                let narrow = Narrow { dst: 6, set: 0, field, a: 4, b: 5 };
                let mine = transport(Some(client), vec![narrow.clone(), Discard { set: 6 }]);
                let v = both_ways(&mine, &p).unwrap_or_else(|e| panic!("{field:?}: {e}"));
                // 256 x (the filter + the field's unit + DISCARD 1), and the instructions.
                assert_eq!(v.complexity, 256 * (filter + p.unit_costs.by_field[field as usize] + 1) + base, "{field:?}");
                let window = transport(None, vec![narrow.clone(), Discard { set: 6 }]);
                let e = analyze(&window, &p).unwrap_err();
                let who = ["THIS_IP", "THIS_SUBNET_IP", "THIS_ON"][client as usize];
                assert_eq!(e, Violation { at: 4, reason: format!("DISCARD touches a set not confined to {who}") });
                // A narrowing of a narrowing of the client's set is still the client's.
                let twice =
                    transport(Some(client), vec![narrow, Narrow { dst: 6, set: 6, field: Field::Proto, a: 4, b: 4 }, Discard { set: 6 }]);
                both_ways(&twice, &p).unwrap();
            }
        }
    }

    /// Grouping by a field and DISTINCT_DESTINATION_PORTS observe the set: they need it confined.
    #[test]
    fn grouping_by_a_field_and_counting_ports_need_the_clients_set() {
        use Insn::*;
        let p = transport_policy(ClientKind::EndUser);
        for field in [Field::Proto, Field::SrcPort, Field::DstPort, Field::TcpFlags] {
            let group = vec![GroupField { dst: 7, set: 0, field }];
            let v = both_ways(&transport(Some(ClientKind::EndUser), group.clone()), &p).unwrap();
            assert_eq!(v.complexity, 256 * (1 + p.unit_costs.by_field[field as usize]) + 6);
            let e = analyze(&transport(None, group), &p).unwrap_err();
            assert_eq!(e, Violation { at: 3, reason: format!("{} touches a set not confined to THIS_IP", field_routine(field)) });
            // A narrowing of the window is no more the client's than the window.
            let narrowed = vec![Narrow { dst: 6, set: 0, field: Field::DstPort, a: 4, b: 5 }, GroupField { dst: 7, set: 6, field }];
            assert!(analyze(&transport(None, narrowed), &p).unwrap_err().reason.starts_with(field_routine(field)));
        }
        let ports = vec![DistinctPorts { dst: 10, set: 0 }];
        let v = both_ways(&transport(Some(ClientKind::EndUser), ports.clone()), &p).unwrap();
        assert_eq!(v.complexity, 256 * (1 + 17) + 6);
        let e = analyze(&transport(None, ports), &p).unwrap_err();
        assert_eq!(e.reason, "DISTINCT_DESTINATION_PORTS touches a set not confined to THIS_IP");
    }

    /// foreach over GROUP_BY_DESTINATION(AllPackets): a port narrowing of the group is the
    /// client's only in the client's own group, as the group is.
    #[test]
    fn a_narrowing_of_a_destination_group_is_decided_by_the_path() {
        use Insn::*;
        let p = transport_policy(ClientKind::EndUser);
        let m = |op: CmpOp| {
            transport(
                None,
                vec![
                    GroupDst { dst: 13, set: 0 },
                    Foreach { groups: 13, key: 14, set: 15, body_len: 5 },
                    ThisIp { dst: 1 },
                    Cmp { op, dst: 11, a: 14, b: 1 },
                    If { cond: 11, then_len: 2, else_len: 0 },
                    Narrow { dst: 6, set: 15, field: Field::DstPort, a: 4, b: 5 },
                    Discard { set: 6 },
                ],
            )
        };
        let v = both_ways(&m(CmpOp::Eq), &p).unwrap();
        // 256 (grouping) + per packet of the window: 11 (port) + 1 (DISCARD) + 1 (iteration),
        // + 256 x 5 instructions of the body, + 5 outside.
        assert_eq!(v.complexity, 256 + 256 * 13 + 256 * 5 + 5);
        let e = analyze(&m(CmpOp::Ne), &p).unwrap_err();
        assert_eq!(e, Violation { at: 9, reason: "DISCARD touches a set not confined to THIS_IP".into() });
    }

    /// The worm blocker: SYNs without ACK to me, grouped by destination port; DISCARD a
    /// port's group when it holds more than a threshold. Costs per group, as the VC generator.
    #[test]
    fn a_syn_counting_worm_blocker_is_costed_per_group() {
        use Insn::*;
        let body = |set: Reg| {
            vec![
                Const { dst: 17, k: 2 }, // SYN
                Const { dst: 18, k: 3 }, // ACK
                Narrow { dst: 6, set, field: Field::TcpFlags, a: 17, b: 18 },
                GroupField { dst: 7, set: 6, field: Field::DstPort },
                Foreach { groups: 7, key: 8, set: 9, body_len: 6 },
                Count { dst: 10, set: 9 },
                Const { dst: 16, k: 4 },
                Cmp { op: CmpOp::Gt, dst: 11, a: 10, b: 16 },
                If { cond: 11, then_len: 2, else_len: 0 },
                Narrow { dst: 12, set: 9, field: Field::SrcPort, a: 8, b: 8 },
                Discard { set: 12 },
            ]
        };
        for client in [ClientKind::EndUser, ClientKind::EdgeRouter] {
            let p = transport_policy(client);
            let v = both_ways(&transport(Some(client), body(0)), &p).unwrap();
            // filter 1 + flags 13 + grouping 11 per packet; in the loop per packet: COUNT 1,
            // the narrowing 7, DISCARD 1, the iteration 1 and 6 instructions; 10 outside.
            assert_eq!(v.complexity, 256 * (1 + 13 + 11) + 256 * (1 + 7 + 1 + 1 + 6) + 10, "{client:?}");
            let e = analyze(&transport(None, body(0)), &p).unwrap_err();
            assert_eq!(e.at, 6);
            assert!(e.reason.starts_with("GROUP_BY_DESTINATION_PORT touches a set not confined"), "{e}");
        }
        // Inside a loop over destination groups, each group costs as much as it holds.
        let p = transport_policy(ClientKind::EndUser);
        let mut nested = vec![
            GroupDst { dst: 13, set: 0 },
            Foreach { groups: 13, key: 14, set: 15, body_len: 14 },
            ThisIp { dst: 1 },
            Cmp { op: CmpOp::Eq, dst: 20, a: 14, b: 1 },
            If { cond: 20, then_len: 11, else_len: 0 },
        ];
        nested.extend(body(15));
        let v = both_ways(&transport(None, nested.clone()), &p).unwrap();
        assert!(v.complexity > 0);
        // Without the guard, the grouping by port touches other clients' groups.
        nested[3] = Bool { dst: 20, value: true };
        let e = analyze(&transport(None, nested), &p).unwrap_err();
        assert!(e.reason.starts_with("GROUP_BY_DESTINATION_PORT touches"), "{e}");
    }

    /// GROUPING: each grouping made costs its unit once, in a loop once per group, as the
    /// VC generator charges it.
    #[test]
    fn each_grouping_costs_grouping_once() {
        use Insn::*;
        let inner = vec![
            GroupField { dst: 7, set: 0, field: Field::SrcPort },
            Foreach { groups: 7, key: 8, set: 9, body_len: 2 },
            GroupSrc { dst: 13, set: 9 },
            GroupField { dst: 19, set: 9, field: Field::Proto },
        ];
        for client in [ClientKind::EndUser, ClientKind::EdgeRouter] {
            let mut p = transport_policy(client);
            let base = both_ways(&transport(Some(client), inner.clone()), &p).unwrap().complexity;
            p.unit_costs.grouping = 1000;
            let v = both_ways(&transport(Some(client), inner.clone()), &p).unwrap();
            // One outside, two a group, up to 256 groups.
            assert_eq!(v.complexity, base + 1000 * (1 + 2 * 256), "{client:?}");
        }
    }

    /// A field group's key is a number (the module compares it); effects inside a loop over
    /// field groups oblige nothing more (its set is the client's), and a loop over field groups
    /// inside one over destination groups keeps the outer loop's rule.
    #[test]
    fn field_groups_have_number_keys_and_only_destination_loops_oblige_effects() {
        use Insn::*;
        let p = transport_policy(ClientKind::EndUser);
        let m = transport(
            Some(ClientKind::EndUser),
            vec![
                GroupField { dst: 7, set: 0, field: Field::SrcPort },
                Foreach { groups: 7, key: 8, set: 9, body_len: 3 },
                Cmp { op: CmpOp::Lt, dst: 11, a: 8, b: 4 },
                If { cond: 11, then_len: 1, else_len: 0 },
                Discard { set: 9 },
            ],
        );
        assert_eq!(both_ways(&m, &p).unwrap().complexity, 256 * (1 + 7) + 256 * (1 + 1 + 3) + 7);
        // The groups of the client's own destination group, inside a loop over all destinations.
        let inner = |guard: bool| {
            let test = if guard { Cmp { op: CmpOp::Eq, dst: 11, a: 14, b: 1 } } else { Bool { dst: 11, value: true } };
            transport(
                None,
                vec![
                    ThisIp { dst: 1 },
                    GroupDst { dst: 13, set: 0 },
                    Foreach { groups: 13, key: 14, set: 15, body_len: 5 },
                    test,
                    If { cond: 11, then_len: 3, else_len: 0 },
                    GroupField { dst: 7, set: 15, field: Field::Proto },
                    Foreach { groups: 7, key: 8, set: 9, body_len: 1 },
                    Discard { set: 9 },
                ],
            )
        };
        both_ways(&inner(true), &p).unwrap();
        let e = analyze(&inner(false), &p).unwrap_err();
        assert_eq!(e, Violation { at: 8, reason: "GROUP_BY_PROTOCOL touches a set not confined to THIS_IP".into() });
    }

    /// Joins: groupings by different fields (or one made in a loop) are groupings of an
    /// unknown set, as the VC generator has them, so what needs the set confined is refused.
    #[test]
    fn an_unknown_field_grouping_is_of_an_unknown_set() {
        use Insn::*;
        let p = transport_policy(ClientKind::EndUser);
        let m = |second: Field| {
            transport(
                Some(ClientKind::EndUser),
                vec![
                    Bool { dst: 11, value: true },
                    If { cond: 11, then_len: 1, else_len: 1 },
                    GroupField { dst: 7, set: 0, field: Field::DstPort },
                    GroupField { dst: 7, set: 0, field: second },
                    Foreach { groups: 7, key: 8, set: 9, body_len: 1 },
                    Count { dst: 10, set: 9 },
                ],
            )
        };
        both_ways(&m(Field::DstPort), &p).unwrap();
        assert!(analyze(&m(Field::SrcPort), &p).unwrap_err().reason.starts_with("COUNT touches"));
        // Costs still agree where both refuse nothing but the confinement.
        let (a, b) = (vcgen(&m(Field::SrcPort), &p).unwrap(), vcgen(&m(Field::DstPort), &p).unwrap());
        assert_eq!(a, b);
    }

    /// Costs agree with the VC generator on the new instructions under many unit costs,
    /// in and out of loops, and past u128 both refuse alike.
    #[test]
    fn transport_costs_agree_with_the_vc_generator() {
        use Insn::*;
        let bodies: Vec<Vec<Insn>> = vec![
            vec![Narrow { dst: 6, set: 0, field: Field::Proto, a: 4, b: 5 }],
            vec![DistinctPorts { dst: 10, set: 0 }],
            vec![
                GroupField { dst: 7, set: 0, field: Field::TcpFlags },
                Foreach { groups: 7, key: 8, set: 9, body_len: 3 },
                Narrow { dst: 6, set: 9, field: Field::TcpFlags, a: 8, b: 8 },
                DistinctPorts { dst: 10, set: 6 },
                Copy { dst: 19, src: 7 },
            ],
            vec![
                GroupField { dst: 7, set: 0, field: Field::DstPort },
                Foreach { groups: 7, key: 8, set: 9, body_len: 3 },
                Copy { dst: 19, src: 7 },
                GroupField { dst: 19, set: 0, field: Field::SrcPort },
                Narrow { dst: 6, set: 0, field: Field::SrcPort, a: 8, b: 4 },
            ],
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            for units in [[0, 0, 0, 0], [1, 2, 3, 4], [u64::MAX / 256, 1, 1, 1]] {
                let mut p = transport_policy(ClientKind::EndUser);
                p.unit_costs.by_field = units;
                let mut code = vec![GroupDst { dst: 13, set: 0 }];
                code.extend(body.clone());
                let m = transport(Some(ClientKind::EndUser), code);
                assert_eq!(analyze(&m, &p), vcgen(&m, &p), "body {i}, units {units:?}");
            }
        }
    }
}
