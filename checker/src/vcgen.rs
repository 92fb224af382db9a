//! The verification-condition generator: from a validated module and a policy,
//! the safety predicate the certificate must prove, and the derived cost.
//!
//! It executes the structured code symbolically. Registers hold terms over
//! `AllPackets`, `THIS_IP`, `THIS_SUBNET_IP`, the parameters, and fresh
//! variables (the key of each `foreach` group, and the registers a `while`
//! changes, at its head). At each routine that needs it, an *obligation*
//! `c1 -> (c2 -> ... -> goal)` is recorded, where the `ci` are the branch
//! conditions on the path. The predicate is the balanced conjunction of all
//! obligations followed by the cost facts.
//!
//! Cost is derived, not proved: it is a polynomial in the sizes of the groups
//! of the enclosing `foreach` loops (a routine on a set inside group `g` costs
//! `unit * |g|`, on any other set `unit * W`; every instruction executed and every loop
//! iteration cost more; strings cost by the byte, up to the bound each string register
//! is known to hold). Leaving a `foreach` over the
//! groups of S (of extent E) replaces `|g|^k` by `E^k` and multiplies the terms
//! without `g` by E: since the groups partition S, the sum over groups of
//! `|g|^k` is at most `|S|^k`, and there are at most `|S|` groups. The bytes
//! GENERATE sends are the monomials that carry the variable [`GEN`], bounded the same way.

use crate::bytecode::{blocks, operands, CmpOp, Const, Field, Insn, Module, Reg, Ty};
use crate::cert::Declared;
use crate::logic::{Kind, Lit, Sort, Sym, Term};
use crate::policy::{ClientKind, Policy};
use std::collections::BTreeMap;

/// What an obligation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// The set a routine touches is confined to the client (routine named).
    Confined(&'static str),
    /// GENERATE sends only to THIS_IP.
    GenerateTo,
    /// An effect inside a foreach over groups of other clients happens only in the client's own group.
    NoLeak,
    /// A loop's rank starts within its bound.
    LoopEntry,
    /// A loop's rank is at least one whenever its body runs.
    LoopPositive,
    /// A loop's body decreases its rank.
    LoopDecrease,
    /// The cost facts, one ground conjunction: complexity <= complexity_up,
    /// complexity x lifetime <= cost_up, lifetime <= max_lifetime, declared
    /// complexity and cost = derived.
    Cost,
}

/// One conjunct of the safety predicate.
#[derive(Clone, Debug)]
pub struct Obligation {
    /// The instruction it comes from (the last one for the cost facts).
    pub at: usize,
    /// What it states.
    pub what: What,
    /// The formula.
    pub formula: Term,
    /// The branch conditions it is under, outermost first (the formula's antecedents).
    pub path: Vec<Term>,
}

/// The generated conditions of a module under a policy.
#[derive(Clone, Debug)]
pub struct Vc {
    /// Obligations from the code, in code order.
    pub obligations: Vec<Obligation>,
    /// Derived complexity, cost units per window.
    pub complexity: u64,
    /// Derived cost: complexity x lifetime.
    pub cost: u64,
    /// Derived bound on the bytes generated per window.
    pub generated: u64,
    lifetime: u64,
    policy: Policy,
}

/// Why no predicate could be generated (the module breaks the policy outright).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {at}: {reason}")]
pub struct VcError {
    /// Instruction index.
    pub at: usize,
    /// Why.
    pub reason: String,
}

/// Fold items into a balanced binary tree (the shape of the predicate's conjunction).
pub fn balanced<T: Clone, E>(items: &[T], pair: &mut impl FnMut(T, T) -> Result<T, E>) -> Result<Option<T>, E> {
    match items.len() {
        0 => Ok(None),
        1 => Ok(Some(items[0].clone())),
        n => {
            let (l, r) = items.split_at(n / 2);
            let (l, r) = (balanced(l, pair)?, balanced(r, pair)?);
            Ok(Some(pair(l.expect("non-empty"), r.expect("non-empty"))?))
        }
    }
}

impl Vc {
    /// All obligations, the cost facts (with `declared`) included.
    pub fn all(&self, declared: Declared) -> Result<Vec<Obligation>, VcError> {
        let p = &self.policy;
        let at = self.obligations.last().map_or(0, |o| o.at);
        let n = Term::num;
        let c = || n(self.complexity);
        let cost = app(at, Sym::Mul, vec![c(), n(self.lifetime)])?;
        let facts = [
            app(at, Sym::Le, vec![c(), n(p.complexity_up)])?,
            app(at, Sym::Le, vec![cost.clone(), n(p.cost_up)])?,
            app(at, Sym::Le, vec![n(self.lifetime), n(p.max_lifetime_secs)])?,
            app(at, Sym::Le, vec![n(self.generated), n(p.generated_bytes_up)])?,
            app(at, Sym::Eq, vec![n(declared.complexity), c()])?,
            app(at, Sym::Eq, vec![n(declared.cost), cost])?,
        ];
        let formula = balanced(&facts, &mut |a, b| app(at, Sym::And, vec![a, b]))?.expect("six facts");
        let mut all = self.obligations.clone();
        all.push(Obligation { at, what: What::Cost, formula, path: vec![] });
        Ok(all)
    }

    /// The safety predicate for an announced cost.
    pub fn predicate(&self, declared: Declared) -> Result<Term, VcError> {
        let all: Vec<Term> = self.all(declared)?.into_iter().map(|o| o.formula).collect();
        let t = balanced(&all, &mut |a, b| app(0, Sym::And, vec![a, b]))?;
        Ok(t.expect("the cost facts are always there"))
    }
}

fn app(at: usize, sym: Sym, args: Vec<Term>) -> Result<Term, VcError> {
    Term::app(sym, args).map_err(|reason| VcError { at, reason })
}

/// A register's symbolic value.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Unset,
    T(Term),
    /// A string, and the most bytes it can hold.
    S(Term, u64),
    /// The groups of a set: by destination, by source, or by a field.
    Groups(Term, By),
    List(Term),
}

#[derive(Clone, Copy, Debug, PartialEq)]
#[rustfmt::skip]
enum By { Dst, Src, Field(Field) }

/// The routines that group or narrow by a [`Field`], in its order (for [`What::Confined`]).
const BY_FIELD: [&str; 4] = ["GROUP_BY_PROTOCOL", "GROUP_BY_SOURCE_PORT", "GROUP_BY_DESTINATION_PORT", "TCP_FLAGS"];

/// A polynomial in group-size variables: monomial (sorted variable ids) -> coefficient.
type Poly = BTreeMap<Vec<u32>, u128>;

/// The variable of the generated bytes in a [`Poly`] (it sorts last).
pub const GEN: u32 = u32::MAX;
/// Most bytes a string or a generated payload holds (a run that makes a longer one faults).
pub const MAX_STRING: u64 = 65_507;
/// The IPv6 and UDP headers of a GENERATEd packet (an IPv4 one has 28 bytes of them).
pub const HEADERS: u64 = 48;

struct Frame {
    key: Term,
    key_id: u32,
    set: Term,
    /// The group's set term (what `extent` recognises).
    group: Term,
}

struct Gen<'a> {
    m: &'a Module,
    policy: &'a Policy,
    fresh: u32,
    frames: Vec<Frame>,
    path: Vec<Term>,
    out: Vec<Obligation>,
}

/// Generate the conditions of a validated module under a policy.
pub fn generate(m: &Module, policy: &Policy) -> Result<Vc, VcError> {
    let mut g = Gen { m, policy, fresh: 0, frames: vec![], path: vec![], out: vec![] };
    let mut vals = vec![Val::Unset; m.regs.len()];
    let poly = g.block(0, m.code.len(), &mut vals)?;
    let end = m.code.len().saturating_sub(1);
    let over = |what: &str| VcError { at: end, reason: format!("{what} overflows") };
    let [complexity, generated] = [vec![], vec![GEN]].map(|m| u64::try_from(poly.get(&m).copied().unwrap_or(0)));
    let (complexity, generated) = (complexity.map_err(|_| over("complexity"))?, generated.map_err(|_| over("generated bytes"))?);
    let lifetime = m.header.lifetime_secs;
    let cost = complexity.checked_mul(lifetime).ok_or_else(|| over("cost"))?;
    Ok(Vc { obligations: g.out, complexity, cost, generated, lifetime, policy: *policy })
}

fn add(p: &mut Poly, q: &Poly) -> Result<(), String> {
    for (k, c) in q {
        let e = p.entry(k.clone()).or_insert(0);
        *e = e.checked_add(*c).ok_or("cost overflows")?;
    }
    Ok(())
}

fn scale(p: &Poly, k: u128) -> Result<Poly, String> {
    p.iter().map(|(m, c)| c.checked_mul(k).map(|c| (m.clone(), c)).ok_or_else(|| "cost overflows".to_string())).collect()
}

impl Gen<'_> {
    fn fail(&self, at: usize, reason: impl Into<String>) -> VcError {
        VcError { at, reason: reason.into() }
    }

    fn var(&mut self, sort: Sort) -> Term {
        self.fresh += 1;
        Term::var(self.fresh, sort)
    }

    fn fresh_val(&mut self, ty: Ty) -> Val {
        let v = self.var(sort_of(ty));
        match ty {
            Ty::Groups => Val::Groups(v, By::Dst),
            Ty::NumGroups => Val::Groups(v, By::Field(Field::Proto)),
            Ty::AddrList | Ty::Content => Val::List(v),
            Ty::Str => Val::S(v, MAX_STRING),
            _ => Val::T(v),
        }
    }

    /// A string value of up to `n` bytes, made by copying them: charged by the byte.
    fn string(&self, at: usize, cost: &mut Poly, t: Term, n: u64) -> Result<Val, VcError> {
        self.bytes(at, cost, n)?;
        Ok(Val::S(t, n))
    }

    /// Record `path -> goal`.
    fn oblige(&mut self, at: usize, what: What, goal: Term) -> Result<(), VcError> {
        let formula = self.path.iter().rev().try_fold(goal, |g, c| app(at, Sym::Imp, vec![c.clone(), g]))?;
        self.out.push(Obligation { at, what, formula, path: self.path.clone() });
        Ok(())
    }

    /// The client's confinement of `set`: to THIS_IP, into THIS_SUBNET_IP, or carrying THIS_ON.
    fn confined(&self, at: usize, set: &Term) -> Result<Term, VcError> {
        let (pred, me) = [(Sym::Conf, Sym::ThisIp), (Sym::ConfP, Sym::ThisNet), (Sym::ConfK, Sym::ThisOn)][self.policy.client as usize];
        app(at, pred, vec![set.clone(), app(at, me, vec![])?])
    }

    /// THIS_IP, THIS_SUBNET_IP or THIS_ON, where the policy's clients have it.
    fn client_term(&self, at: usize, sym: Sym, name: &str) -> Result<Term, VcError> {
        use ClientKind::*;
        let (kinds, only): (&[ClientKind], _) = match sym {
            Sym::ThisIp => (&[EndUser, EdgeRouter], "end-user and edge-router"),
            Sym::ThisNet => (&[EdgeRouter], "edge-router"),
            _ => (&[OnOwner], "overlay-network-owner"),
        };
        let client = ["end users", "edge routers", "overlay-network owners"][self.policy.client as usize];
        let why = format!("{name} is defined only for {only} clients, and this policy is for {client}");
        ensure!(kinds.contains(&self.policy.client), self.fail(at, why));
        app(at, sym, vec![])
    }

    /// An effect (DISCARD, GENERATE): within each foreach over destination
    /// groups, either the grouped set is the client's or this group is.
    fn effect(&mut self, at: usize) -> Result<(), VcError> {
        let mut goals = vec![];
        for f in self.frames.iter().filter(|f| f.group.args_of(Sym::GDst).is_some()) {
            let key = match self.policy.client {
                ClientKind::EndUser => app(at, Sym::Eq, vec![f.key.clone(), app(at, Sym::ThisIp, vec![])?])?,
                ClientKind::EdgeRouter => app(at, Sym::In, vec![f.key.clone(), app(at, Sym::ThisNet, vec![])?])?,
                // An ON owner has no destination of its own: the grouped set must be its ON's.
                ClientKind::OnOwner => app(at, Sym::False, vec![])?,
            };
            goals.push(app(at, Sym::Or, vec![self.confined(at, &f.set)?, key])?);
        }
        goals.into_iter().try_for_each(|g| self.oblige(at, What::NoLeak, g))
    }

    /// The smallest known superset of a set term: a group (its key variable) or the window (`None`).
    fn extent(&self, set: &Term) -> Option<u32> {
        let mut t = set;
        loop {
            if let Some(f) = self.frames.iter().find(|f| f.group == *t) {
                return Some(f.key_id);
            }
            match t.kind() {
                Kind::App(Sym::FDst | Sym::FDstP | Sym::FSrc | Sym::FSrcP | Sym::GDst | Sym::GSrc | Sym::Narrow | Sym::FKey, a) => {
                    t = &a[0]
                }
                Kind::App(Sym::Ite, a) => {
                    let (x, y) = (self.extent(&a[1]), self.extent(&a[2]));
                    return if x == y { x } else { None };
                }
                _ => return None,
            }
        }
    }

    /// Charge `unit` per packet of `set`, or once (`None`); `gen`: as generated bytes.
    fn charge(&self, at: usize, cost: &mut Poly, unit: u64, set: Option<&Term>, gen: bool) -> Result<(), VcError> {
        let (mut mono, k) = match set.map(|s| self.extent(s)) {
            Some(Some(g)) => (vec![g], unit as u128),
            Some(None) => (vec![], unit as u128 * self.policy.window_packets as u128),
            None => (vec![], unit as u128),
        };
        mono.extend(gen.then_some(GEN));
        add(cost, &Poly::from([(mono, k)])).map_err(|e| self.fail(at, e))
    }

    /// Charge a string operation on up to `n` bytes: BYTES units per 64 bytes or part.
    fn bytes(&self, at: usize, cost: &mut Poly, n: u64) -> Result<(), VcError> {
        self.charge(at, cost, n.div_ceil(64).saturating_mul(self.policy.unit_costs.bytes), None, false)
    }

    fn block(&mut self, start: usize, end: usize, vals: &mut Vec<Val>) -> Result<Poly, VcError> {
        let mut cost = Poly::new();
        let path_len = self.path.len();
        let mut pc = start;
        while pc < end {
            let (subs, next) = blocks(&self.m.code, pc);
            let c = match &self.m.code[pc] {
                Insn::If { cond, .. } => self.if_(pc, *cond, &subs, vals)?,
                Insn::Foreach { groups, key, set, .. } => self.foreach(pc, *groups, *key, *set, subs[0], vals)?,
                Insn::While { cond, bound, rank, .. } => self.while_(pc, *cond, *bound, rank, &subs, vals)?,
                insn => self.simple(pc, insn, vals)?,
            };
            add(&mut cost, &c).map_err(|e| self.fail(pc, e))?;
            self.charge(pc, &mut cost, self.policy.unit_costs.instruction, None, false)?;
            pc = next;
        }
        self.path.truncate(path_len);
        Ok(cost)
    }

    /// The registers the instructions in `[start, end)` write, sorted, each once.
    /// Blocks run in place and put back only these, so an `if` or a loop costs
    /// what its code writes, never the size of the register file.
    fn writes(&self, start: usize, end: usize) -> Result<Vec<Reg>, VcError> {
        let mut w = vec![];
        for pc in start..end {
            let ops = operands(&self.m.code[pc], &self.m.regs, &self.m.consts, &self.m.params).map_err(|e| self.fail(pc, e))?;
            w.extend(ops.writes.iter().map(|&(r, _)| r));
        }
        w.sort_unstable();
        w.dedup();
        Ok(w)
    }

    /// Run `[start, end)` under `cond`, in place; returns its cost and the
    /// values it left in `regs`, and puts back what `regs` held before.
    fn branch(&mut self, cond: Term, (start, end): (usize, usize), regs: &[Reg], vals: &mut Vec<Val>) -> Result<(Poly, Vec<Val>), VcError> {
        let saved: Vec<Val> = regs.iter().map(|&r| vals[r as usize].clone()).collect();
        self.path.push(cond);
        let cost = self.block(start, end, vals)?;
        self.path.pop();
        let left = regs.iter().zip(saved).map(|(&r, v)| std::mem::replace(&mut vals[r as usize], v)).collect();
        Ok((cost, left))
    }

    fn if_(&mut self, at: usize, cond: Reg, subs: &[(usize, usize)], vals: &mut Vec<Val>) -> Result<Poly, VcError> {
        let c = term_of(at, vals, cond)?;
        let regs = self.writes(subs[0].0, subs[1].1)?;
        let (tc, tv) = self.branch(c.clone(), subs[0], &regs, vals)?;
        let (ec, ev) = self.branch(app(at, Sym::Not, vec![c.clone()])?, subs[1], &regs, vals)?;
        for (&r, (t, e)) in regs.iter().zip(tv.into_iter().zip(ev)) {
            vals[r as usize] = match (t, e) {
                (t, e) if t == e => t,
                (Val::T(a), Val::T(b)) => Val::T(app(at, Sym::Ite, vec![c.clone(), a, b])?),
                (Val::List(a), Val::List(b)) => Val::List(app(at, Sym::Ite, vec![c.clone(), a, b])?),
                (Val::S(a, m), Val::S(b, n)) => Val::S(app(at, Sym::Ite, vec![c.clone(), a, b])?, m.max(n)),
                (Val::Groups(a, by), Val::Groups(b, by2)) if by == by2 => Val::Groups(app(at, Sym::Ite, vec![c.clone(), a, b])?, by),
                (Val::Groups(..), Val::Groups(..)) => self.fresh_val(self.m.regs[r as usize]),
                _ => Val::Unset,
            };
        }
        let mut cost = tc;
        for (k, v) in ec {
            let e = cost.entry(k).or_insert(0);
            *e = (*e).max(v);
        }
        Ok(cost)
    }

    fn foreach(&mut self, at: usize, groups: Reg, key: Reg, set: Reg, body: (usize, usize), vals: &mut Vec<Val>) -> Result<Poly, VcError> {
        let Val::Groups(grouped, by) = vals[groups as usize].clone() else {
            return Err(self.fail(at, "foreach over a value that is not a grouping"));
        };
        let k = self.var(if let By::Field(_) = by { Sort::Num } else { Sort::Addr });
        let key_id = self.fresh;
        let group = match by {
            // Tag f + 4, not f: no Narrow instruction makes this term, so only the loop's own set
            // (and copies of it) is charged per group (TCP_FLAGS(S, k, k) is not the group of k).
            By::Field(f) => app(at, Sym::Narrow, vec![grouped.clone(), Term::num(f as u64 + 4), k.clone(), k.clone()])?,
            _ => app(at, if by == By::Dst { Sym::GDst } else { Sym::GSrc }, vec![grouped.clone(), k.clone()])?,
        };
        // The body runs in place; everything it and the loop write is dead after it.
        let regs = self.writes(at, body.1)?;
        let saved: Vec<Val> = regs.iter().map(|&r| vals[r as usize].clone()).collect();
        vals[key as usize] = Val::T(k.clone());
        vals[set as usize] = Val::T(group.clone());
        let extent = self.extent(&grouped);
        self.frames.push(Frame { key: k, key_id, set: grouped, group });
        let mut body_cost = self.block(body.0, body.1, vals)?;
        self.frames.pop();
        for (&r, v) in regs.iter().zip(saved) {
            vals[r as usize] = v;
        }
        self.charge(at, &mut body_cost, self.policy.unit_costs.loop_turn(), None, false)?;
        // Partition: sum over groups g of |g|^k <= |S|^k, and there are at most |S| groups.
        let mut cost = Poly::new();
        let w = self.policy.window_packets as u128;
        for (mono, c) in body_cost {
            let power = mono.iter().filter(|&&v| v == key_id).count().max(1);
            let mut rest: Vec<u32> =
                mono.into_iter().filter(|&v| v != key_id).chain(extent.map(|e| vec![e; power]).unwrap_or_default()).collect();
            let c = if extent.is_some() { Some(c) } else { w.checked_pow(power as u32).and_then(|p| c.checked_mul(p)) };
            rest.sort_unstable();
            add(&mut cost, &Poly::from([(rest, c.ok_or_else(|| self.fail(at, "cost overflows"))?)])).map_err(|e| self.fail(at, e))?;
        }
        Ok(cost)
    }

    fn while_(
        &mut self, at: usize, cond: Reg, bound: u32, rank: &crate::bytecode::Rank, subs: &[(usize, usize)], vals: &mut Vec<Val>,
    ) -> Result<Poly, VcError> {
        let (cond_block, body) = (subs[0], subs[1]);
        let written = self.writes(cond_block.0, body.1)?;
        let cond_writes = self.writes(cond_block.0, cond_block.1)?;
        if let Some(&(r, _)) = rank.terms.iter().find(|(r, _)| cond_writes.binary_search(r).is_ok()) {
            return Err(self.fail(at, format!("the loop condition's block writes rank register r{r}")));
        }
        let entry = self.rank(at, rank, vals)?;
        self.oblige(at, What::LoopEntry, le(at, entry, (vec![], bound as i128))?)?;
        for &r in &written {
            vals[r as usize] = self.fresh_val(self.m.regs[r as usize]);
        }
        let head = self.rank(at, rank, vals)?;
        let cond_cost = self.block(cond_block.0, cond_block.1, vals)?;
        let c = term_of(at, vals, cond)?;
        let body_regs = self.writes(body.0, body.1)?;
        let saved: Vec<Val> = body_regs.iter().map(|&r| vals[r as usize].clone()).collect();
        self.path.push(c.clone());
        let body_cost = self.block(body.0, body.1, vals)?;
        let after = self.rank(at, rank, vals)?;
        for (&r, v) in body_regs.iter().zip(saved) {
            vals[r as usize] = v;
        }
        self.oblige(at, What::LoopPositive, le(at, (vec![], 1), head.clone())?)?;
        self.oblige(at, What::LoopDecrease, le(at, (after.0, after.1 + 1), head)?)?;
        self.path.pop();
        self.path.push(app(at, Sym::Not, vec![c])?);
        let mut cost = scale(&cond_cost, bound as u128 + 1).map_err(|e| self.fail(at, e))?;
        let mut per_iteration = body_cost;
        self.charge(at, &mut per_iteration, self.policy.unit_costs.loop_turn(), None, false)?;
        add(&mut cost, &scale(&per_iteration, bound as u128).map_err(|e| self.fail(at, e))?).map_err(|e| self.fail(at, e))?;
        Ok(cost)
    }

    /// The rank as signed (term, coefficient) pieces and a constant.
    fn rank(&self, at: usize, rank: &crate::bytecode::Rank, vals: &[Val]) -> Result<(Vec<(Term, i128)>, i128), VcError> {
        let terms = rank.terms.iter().map(|&(r, c)| Ok((term_of(at, vals, r)?, c as i128))).collect::<Result<_, VcError>>()?;
        Ok((terms, rank.constant as i128))
    }

    fn simple(&mut self, at: usize, insn: &Insn, vals: &mut [Val]) -> Result<Poly, VcError> {
        use Insn::*;
        let u = self.policy.unit_costs;
        let mut cost = Poly::new();
        let t = |r: &Reg| term_of(at, vals, *r);
        let set_sym = |by: &Reg, addr: Sym, prefix: Sym| if self.m.regs[*by as usize] == Ty::Addr { addr } else { prefix };
        let len = |r: &Reg| if let Val::S(_, n) = vals[*r as usize] { n } else { 0 };
        let (dst, val) = match insn {
            Const { dst, k } => match &self.m.consts[*k as usize] {
                crate::bytecode::Const::Str(s) => (*dst, self.string(at, &mut cost, Term::lit(Lit::Str(s.clone())), s.len() as u64)?),
                c => (*dst, Val::T(Term::lit(lit(c)))),
            },
            Param { dst, p } => {
                let sort = sort_of(self.m.params[*p as usize].default.ty());
                let t = app(at, Sym::Param(*p, sort), vec![])?;
                let n = u64::from(self.policy.max_param_bytes).min(MAX_STRING);
                (*dst, if sort == Sort::Str { self.string(at, &mut cost, t, n)? } else { Val::T(t) })
            }
            ThisIp { dst } => (*dst, Val::T(self.client_term(at, Sym::ThisIp, "THIS_IP")?)),
            ThisSubnet { dst } => (*dst, Val::T(self.client_term(at, Sym::ThisNet, "THIS_SUBNET_IP")?)),
            AllPackets { dst } => (*dst, Val::T(app(at, Sym::All, vec![])?)),
            Bool { dst, value } => (*dst, Val::T(app(at, if *value { Sym::True } else { Sym::False }, vec![])?)),
            Copy { dst, src } => {
                match &vals[*src as usize] {
                    Val::S(_, n) => self.bytes(at, &mut cost, *n)?,
                    Val::Groups(set, _) | Val::List(set) => self.charge(at, &mut cost, u.instruction, Some(set), false)?,
                    _ => {}
                }
                (*dst, vals[*src as usize].clone())
            }
            Not { dst, a } => (*dst, Val::T(app(at, Sym::Not, vec![t(a)?])?)),
            And { dst, a, b } => (*dst, Val::T(app(at, Sym::And, vec![t(a)?, t(b)?])?)),
            Or { dst, a, b } => (*dst, Val::T(app(at, Sym::Or, vec![t(a)?, t(b)?])?)),
            Cmp { op, dst, a, b } => {
                self.bytes(at, &mut cost, len(a).min(len(b)))?;
                // `a > b` is `b < a`, `a >= b` is `b <= a`, `a != b` is `not (a == b)`.
                let (sym, swap) =
                    [(Sym::Eq, false), (Sym::Eq, false), (Sym::Lt, false), (Sym::Le, false), (Sym::Lt, true), (Sym::Le, true)]
                        [*op as usize];
                let f = app(at, sym, if swap { vec![t(b)?, t(a)?] } else { vec![t(a)?, t(b)?] })?;
                (*dst, Val::T(if *op == CmpOp::Ne { app(at, Sym::Not, vec![f])? } else { f }))
            }
            InPrefix { dst, addr, prefix } => (*dst, Val::T(app(at, Sym::In, vec![t(addr)?, t(prefix)?])?)),
            Mask { dst, addr, mask } => (*dst, Val::T(app(at, Sym::Mask, vec![t(addr)?, t(mask)?])?)),
            Arith { op, dst, a, b } => {
                let sym = [Sym::Add, Sym::Monus, Sym::Mul][*op as usize]; // `-` is truncated at zero
                (*dst, Val::T(app(at, sym, vec![t(a)?, t(b)?])?))
            }
            Concat { dst, a, b } => {
                self.bytes(at, &mut cost, len(a) + len(b))?;
                (*dst, Val::S(app(at, Sym::Concat, vec![t(a)?, t(b)?])?, (len(a) + len(b)).min(MAX_STRING)))
            }
            FilterDst { dst, set, by } => {
                let s = t(set)?;
                self.charge(at, &mut cost, u.group_by_destination, Some(&s), false)?;
                (*dst, Val::T(app(at, set_sym(by, Sym::FDst, Sym::FDstP), vec![s, t(by)?])?))
            }
            FilterSrc { dst, set, by } => {
                let s = self.touch(at, "GROUP_BY_SOURCE", &mut cost, u.group_by_source, t(set)?)?;
                (*dst, Val::T(app(at, set_sym(by, Sym::FSrc, Sym::FSrcP), vec![s, t(by)?])?))
            }
            GroupDst { dst, set } => {
                let s = t(set)?;
                self.charge(at, &mut cost, u.group_by_destination, Some(&s), false)?;
                self.charge(at, &mut cost, u.grouping, None, false)?;
                (*dst, Val::Groups(s, By::Dst))
            }
            GroupSrc { dst, set } => {
                let s = self.touch(at, "GROUP_BY_SOURCE", &mut cost, u.group_by_source, t(set)?)?;
                self.charge(at, &mut cost, u.grouping, None, false)?;
                (*dst, Val::Groups(s, By::Src))
            }
            Narrow { dst, set, field, a, b } => {
                let s = t(set)?;
                self.charge(at, &mut cost, u.by_field[*field as usize], Some(&s), false)?;
                (*dst, Val::T(app(at, Sym::Narrow, vec![s, Term::num(*field as u64), t(a)?, t(b)?])?))
            }
            // Charged as GROUP_BY_PROTOCOL: both read one header field of each packet.
            OnPackets { dst, set } => {
                let (s, on) = (t(set)?, self.client_term(at, Sym::ThisOn, "ON_PACKETS")?);
                self.charge(at, &mut cost, u.by_field[0], Some(&s), false)?;
                (*dst, Val::T(app(at, Sym::FKey, vec![s, on])?))
            }
            GroupField { dst, set, field } => {
                let s = self.touch(at, BY_FIELD[*field as usize], &mut cost, u.by_field[*field as usize], t(set)?)?;
                self.charge(at, &mut cost, u.grouping, None, false)?;
                (*dst, Val::Groups(s, By::Field(*field)))
            }
            GroupContent { dests, content, set } => {
                let s = self.touch(at, "GROUP_BY_CONTENT", &mut cost, u.group_by_content, t(set)?)?;
                self.charge(at, &mut cost, u.grouping, None, false)?;
                vals[*dests as usize] = Val::List(s.clone());
                (*content, Val::List(s))
            }
            ContainsString { dst, set, needle } => {
                let s = self.touch(at, "CONTAINS_STRING", &mut cost, u.contains_string, t(set)?)?;
                self.bytes(at, &mut cost, len(needle))?;
                (*dst, Val::T(app(at, Sym::Contains, vec![s, t(needle)?])?))
            }
            Count { dst, set } => {
                let s = self.touch(at, "COUNT", &mut cost, u.count, t(set)?)?;
                (*dst, Val::T(app(at, Sym::Count, vec![s])?))
            }
            DistinctDst { dst, set } => {
                let s = self.touch(at, "DISTINCT_DESTINATIONS", &mut cost, u.distinct_destinations, t(set)?)?;
                (*dst, Val::T(app(at, Sym::NDst, vec![s])?))
            }
            DistinctPorts { dst, set } => {
                let s = self.touch(at, "DISTINCT_DESTINATION_PORTS", &mut cost, u.distinct_ports, t(set)?)?;
                (*dst, Val::T(app(at, Sym::NPort, vec![s])?))
            }
            Discard { set } => {
                self.touch(at, "DISCARD", &mut cost, u.discard, t(set)?)?;
                self.effect(at)?;
                return Ok(cost);
            }
            Generate { dst, payload, .. } => {
                let to = app(at, Sym::Eq, vec![t(dst)?, app(at, Sym::ThisIp, vec![])?])?;
                self.oblige(at, What::GenerateTo, to)?;
                // A list: its unit an item, confined; a string: its unit per 64 bytes, and its bytes.
                // Bytes sent: 48 of IPv6 and UDP headers a packet (28 for IPv4), and the payload (an
                // address list: 8 bytes a packet, and 16 an address, 4 if all are IPv4).
                let (unit, sent, set) = match &vals[*payload as usize] {
                    Val::List(s) => {
                        let item = if self.m.regs[*payload as usize] == Ty::AddrList { 72 } else { HEADERS + MAX_STRING };
                        (u.generate, item, Some(self.touch(at, "GENERATE", &mut cost, 0, s.clone())?))
                    }
                    _ => (u.generate.saturating_mul(len(payload).div_ceil(64).max(1)), HEADERS + len(payload), None),
                };
                self.charge(at, &mut cost, unit, set.as_ref(), false)?;
                self.charge(at, &mut cost, sent, set.as_ref(), true)?;
                self.bytes(at, &mut cost, len(payload))?;
                self.effect(at)?;
                return Ok(cost);
            }
            If { .. } | Foreach { .. } | While { .. } => unreachable!("handled by block"),
        };
        vals[dst as usize] = val;
        Ok(cost)
    }

    /// A routine that needs its set confined: oblige it, and charge.
    fn touch(&mut self, at: usize, routine: &'static str, cost: &mut Poly, unit: u64, set: Term) -> Result<Term, VcError> {
        let goal = self.confined(at, &set)?;
        self.oblige(at, What::Confined(routine), goal)?;
        self.charge(at, cost, unit, Some(&set), false)?;
        Ok(set)
    }
}

fn term_of(at: usize, vals: &[Val], r: Reg) -> Result<Term, VcError> {
    match &vals[r as usize] {
        Val::T(t) | Val::S(t, _) => Ok(t.clone()),
        _ => Err(VcError { at, reason: format!("register r{r} has no scalar or set value here") }),
    }
}

fn lit(c: &Const) -> Lit {
    match c {
        Const::Addr(a) => Lit::Addr(*a),
        Const::Prefix(n, l) => Lit::Prefix(*n, *l),
        Const::Addr6(a) => Lit::Addr6(*a),
        Const::Prefix6(n, l) => Lit::Prefix6(*n, *l),
        Const::Str(s) => Lit::Str(s.clone()),
        Const::Num(n) => Lit::Num(*n),
    }
}

/// The sort of a register's term: its own for scalars, `Set` for sets and what is made of one.
fn sort_of(ty: Ty) -> Sort {
    use Sort::*;
    [Bool, Num, Addr, Prefix, Str, Set, Set, Set, Set, Set][ty as usize]
}

/// `lhs <= rhs` for signed linear pieces, written over naturals: negative
/// pieces move to the other side (each side: its constant, plus its terms in order).
fn le(at: usize, lhs: (Vec<(Term, i128)>, i128), rhs: (Vec<(Term, i128)>, i128)) -> Result<Term, VcError> {
    let big = |what: &str| VcError { at, reason: format!("rank {what} too large") };
    let mut sides: [(Vec<Term>, i128); 2] = Default::default();
    for (side, (terms, k)) in [(0, lhs), (1, rhs)] {
        for (t, c) in terms.into_iter().map(|(t, c)| (Some(t), c)).chain([(None, k)]) {
            let (s, mag) = if c >= 0 { (side, c) } else { (1 - side, -c) };
            match t {
                _ if mag == 0 => {}
                None => sides[s].1 += mag,
                Some(t) if mag == 1 => sides[s].0.push(t),
                Some(t) => sides[s].0.push(app(at, Sym::Mul, vec![Term::num(u64::try_from(mag).map_err(|_| big("coefficient"))?), t])?),
            }
        }
    }
    let [l, r] = sides.map(|(terms, k)| {
        let k = Term::num(u64::try_from(k).map_err(|_| big("constant"))?);
        terms.into_iter().try_fold(k, |acc, t| app(at, Sym::Add, vec![acc, t]))
    });
    app(at, Sym::Le, vec![l?, r?])
}
