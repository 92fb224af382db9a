//! What the prover asks z3: whether an obligation can fail (and, if so, a
//! concrete counterexample for the user), and Farkas coefficients for linear
//! refutations. z3 is never trusted: its answers become kernel steps (or
//! diagnostics), and the router checks the steps without it.
//!
//! Encoding: addresses are 128-bit vectors (masks are `bvand`), IPv4 among them
//! as IPv4-mapped IPv6 (`::ffff:a.b.c.d`: a literal `Lit::Addr(a)` is
//! [`vinet_checker::mapped`]`(a)`, as the kernel's `eval` has it); a prefix is a
//! (network, mask) pair with a well-formed mask of length 0 to 128 (an IPv4
//! `/n` is the `/96+n` of its mapped network), naturals are integers >= 0
//! (truncated subtraction as an `ite`), strings are z3 strings, and packet sets
//! are encoded by the membership of witness packets: `mem(w, FDst(S, a))` is
//! `mem(w, S) and dst(w) = a`. Negated confinement introduces a fresh witness.
//! A transport-level narrowing (and a field group) `Narrow(S, f, a, b)` is
//! encoded as the logic has it, a subset of S: `mem(w, Narrow(S, ..))` is
//! `mem(w, S) and n`, with `n` a fresh boolean for that witness and term (the
//! witness has no ports or flags to test). A field group's key is a natural
//! like any other number. CONTAINS_STRING, COUNT, DISTINCT_DESTINATIONS and
//! DISTINCT_DESTINATION_PORTS are left uninterpreted, but for what the axioms
//! say of the last two: `NDst(S) <= Count(S)`, `NPort(S) <= Count(S)`.

use std::collections::HashMap;
use vinet_checker::logic::{Kind, Linear, Lit, Sort, Sym, Term};
use z3::ast::{Bool, Int, BV};
use z3::{SatResult, Solver};

/// The tactics' error type.
pub type TResult<T> = Result<T, String>;

/// Integer coefficients refuting linear premises (`Le`, `Lt`, `Eq` over naturals),
/// in the form the kernel's Farkas rule checks.
pub fn farkas_coefficients(premises: &[Term]) -> TResult<Vec<i64>> {
    let mut forms = vec![];
    for p in premises {
        let Kind::App(sym, a) = p.kind() else { return Err("not a linear premise".into()) };
        let mut lin = Linear::default();
        lin.add_term(&a[0], 1)?;
        lin.add_term(&a[1], -1)?;
        if *sym == Sym::Lt {
            lin.constant += 1;
        }
        forms.push((*sym, lin));
    }
    let solver = Solver::new();
    let lambdas: Vec<Int> = (0..forms.len()).map(|i| Int::new_const(format!("l{i}"))).collect();
    let mut atoms: Vec<Term> = vec![];
    for (_, f) in &forms {
        for (t, _) in &f.terms {
            if !atoms.contains(t) {
                atoms.push(t.clone());
            }
        }
    }
    let int = |c: i128| i64::try_from(c).map(Int::from_i64).map_err(|_| "coefficient overflow".to_string());
    for ((sym, _), l) in forms.iter().zip(&lambdas) {
        if *sym != Sym::Eq {
            solver.assert(l.ge(Int::from_i64(0)));
        }
        solver.assert(l.le(Int::from_i64(1 << 20)));
        solver.assert(l.ge(Int::from_i64(-(1 << 20))));
    }
    for atom in &atoms {
        let mut sum = vec![];
        for ((_, f), l) in forms.iter().zip(&lambdas) {
            if let Some((_, c)) = f.terms.iter().find(|(t, _)| t == atom) {
                sum.push(Int::mul(&[l.clone(), int(*c)?]));
            }
        }
        solver.assert(Int::add(&sum).eq(Int::from_i64(0)));
    }
    let mut constant = vec![Int::from_i64(0)];
    for ((_, f), l) in forms.iter().zip(&lambdas) {
        constant.push(Int::mul(&[l.clone(), int(f.constant)?]));
    }
    solver.assert(Int::add(&constant).ge(Int::from_i64(1)));
    match solver.check() {
        SatResult::Sat => {
            let model = solver.get_model().ok_or("z3 gave no model")?;
            lambdas
                .iter()
                .map(|l| model.eval(l, true).and_then(|v| v.as_i64()).ok_or_else(|| "z3 gave no coefficient".to_string()))
                .collect()
        }
        _ => Err("the arithmetic facts are consistent (no Farkas combination refutes them)".into()),
    }
}

/// z3's answer about an obligation.
#[derive(Debug)]
pub enum Decision {
    /// It holds for every window, client and parameter value.
    Valid,
    /// A concrete case where it fails: named values.
    Fails(Counterexample),
    /// z3 could not decide (timeout, or beyond its theories).
    Unknown(String),
}

/// Named values of a failing case. Addresses are 128-bit, IPv4 as IPv4-mapped
/// (print them with [`vinet_vocab::addr_text`]).
#[derive(Debug, Default)]
pub struct Counterexample {
    /// The packet that breaks confinement, as (source, destination), if any.
    pub packet: Option<(u128, u128)>,
    /// THIS_IP.
    pub this_ip: Option<u128>,
    /// THIS_SUBNET_IP as (network, length), the length in the 128-bit space (an IPv4 /n is /96+n).
    pub this_net: Option<(u128, u8)>,
    /// The flow id the packet carries, when its confinement is to THIS_ON.
    pub key: Option<u64>,
    /// THIS_ON.
    pub this_on: Option<u64>,
    /// Other values by name (group keys, parameters, numbers), addresses as
    /// [`vinet_vocab::addr_text`] prints them.
    pub values: Vec<(String, String)>,
}

/// Values a counterexample should show when it can: parameters at their
/// defaults, and plausible addresses for the client and the packet, of the
/// family the program's address parameters have (documentation addresses,
/// RFC 5737 and RFC 3849), with the packet's source and destination of one
/// family, as on a wire.
#[derive(Clone, Debug, Default)]
pub struct Preferences {
    /// Parameter names, in module order.
    pub names: Vec<String>,
    /// Parameter defaults that are addresses (`Lit::Addr`, `Lit::Addr6`) or
    /// prefixes, in module order (`None` for the others).
    pub defaults: Vec<Option<Lit>>,
}

impl Preferences {
    /// Whether the program's address parameters are IPv6 (then the
    /// counterexample's other addresses are IPv6 too, where they can be).
    fn ipv6(&self) -> bool {
        self.defaults.iter().flatten().any(|l| match l.clone().wide() {
            Lit::Addr6(a) => a >> 32 != 0xffff,
            Lit::Prefix6(n, l) => l < 96 || n >> 32 != 0xffff,
            _ => false,
        })
    }
}

/// The addresses a counterexample shows when it can, by family: THIS_IP,
/// THIS_SUBNET_IP (network and length), the packet's source and destination.
struct Wished {
    this_ip: u128,
    this_net: (u128, u8),
    src: u128,
    dst: u128,
}

const DOC6: u128 = 0x2001_0db8 << 96; // 2001:db8::/32, RFC 3849

fn wished(ipv6: bool) -> Wished {
    use vinet_checker::mapped;
    if ipv6 {
        // 2001:db8::7 in 2001:db8::/64; a packet from 2001:db8:5::9 to 2001:db8:9::9.
        Wished { this_ip: DOC6 | 7, this_net: (DOC6, 64), src: DOC6 | 5 << 80 | 9, dst: DOC6 | 9 << 80 | 9 }
    } else {
        // 10.0.0.7 in 10.0.0.0/24; a packet from 203.0.113.9 to 10.9.9.9.
        Wished { this_ip: mapped(0x0a00_0007), this_net: (mapped(0x0a00_0000), 120), src: mapped(0xcb00_7109), dst: mapped(0x0a09_0909) }
    }
}

/// Decide `path -> goal` (`goal` is the obligation's conclusion).
pub fn decide(path: &[Term], goal: &Term, prefs: &Preferences) -> Decision {
    let param_names = &prefs.names[..];
    let mut e = Enc { params: param_names, ..Default::default() };
    let solver = Solver::new();
    let mut p = z3::Params::new();
    p.set_u32("timeout", 5000);
    solver.set_params(&p);
    let query = (|| -> TResult<Bool> {
        let mut parts = path.iter().map(|c| e.bool(c)).collect::<TResult<Vec<_>>>()?;
        parts.push(e.negate(goal)?);
        parts.append(&mut e.side);
        Ok(Bool::and(&parts))
    })();
    let query = match query {
        Ok(q) => q,
        Err(why) => return Decision::Unknown(why),
    };
    solver.assert(&query);
    // Prefer readable values: try them as assumptions, drop them if they conflict. First
    // the parameters' defaults and one family a packet (as on a wire, and THIS_IP's for its
    // destination), the family the parameters suggest where nothing decides it; then, in the
    // family that the model has (a source forced to an IPv4 parameter is IPv4), the usual
    // addresses of the client and of the packet.
    let ipv6 = prefs.ipv6();
    let mut wish: Vec<Bool> = vec![];
    for (i, d) in prefs.defaults.iter().enumerate() {
        let Some(Lit::Addr6(a)) = d.clone().map(Lit::wide) else { continue };
        if let Some(v) = Term::app(Sym::Param(i as u16, Sort::Addr), vec![]).ok().and_then(|t| e.atoms.get(&t)).and_then(|x| x.as_bv()) {
            wish.push(v.eq(bv(a)));
        }
    }
    let packet = e.witnesses.first().cloned();
    if let Some((src, dst)) = &packet {
        wish.push(is_v4(src).eq(is_v4(dst)));
        if let Some(ip) = &e.this_ip {
            wish.push(is_v4(dst).eq(is_v4(ip)));
        }
        wish.push(is_v4(src).eq(Bool::from_bool(!ipv6)));
    }
    if let Some(ip) = &e.this_ip {
        wish.push(is_v4(ip).eq(Bool::from_bool(!ipv6)));
    }
    let mut kept = keep(&solver, vec![], &wish);
    // The family the model has: its packet's, else THIS_IP's, else the parameters'.
    let family6 = match (solver.check_assumptions(&kept), solver.get_model()) {
        (SatResult::Sat, Some(m)) => {
            let v4 = |x: &BV| m.eval(&is_v4(x), true).and_then(|b| b.as_bool());
            packet.as_ref().map(|w| &w.0).or(e.this_ip.as_ref()).and_then(v4).map_or(ipv6, |b| !b)
        }
        _ => ipv6,
    };
    let w = wished(family6);
    let mut usual: Vec<Bool> = vec![];
    if let Some(ip) = &e.this_ip {
        usual.push(ip.eq(bv(w.this_ip)));
    }
    if let Some((n, m)) = &e.this_net {
        usual.push(m.eq(bv(vinet_checker::netmask(w.this_net.1))));
        usual.push(n.eq(bv(w.this_net.0)));
    }
    if let Some((src, dst)) = &packet {
        usual.push(src.eq(bv(w.src)));
        usual.push(dst.eq(bv(w.dst)));
    }
    kept = keep(&solver, kept, &usual);
    let outcome = if kept.is_empty() { solver.check() } else { solver.check_assumptions(&kept) };
    match outcome {
        SatResult::Unsat => Decision::Valid,
        SatResult::Unknown => Decision::Unknown(solver.get_reason_unknown().unwrap_or_else(|| "unknown".into())),
        SatResult::Sat => {
            let Some(m) = solver.get_model() else { return Decision::Unknown("no model".into()) };
            let bv = |x: &BV| {
                let half = |hi, lo| m.eval(&x.extract(hi, lo), true).and_then(|v| v.as_u64());
                Some(u128::from(half(127, 64)?) << 64 | u128::from(half(63, 0)?))
            };
            let mut cx = Counterexample::default();
            if let Some((src, dst)) = e.witnesses.first() {
                cx.packet = bv(src).zip(bv(dst));
            }
            cx.this_ip = e.this_ip.as_ref().and_then(bv);
            let int = |x: &Int| m.eval(x, true).and_then(|v| v.as_u64());
            cx.key = e.witnesses.first().and_then(|w| e.keys.get(&w.0.to_string())).and_then(int);
            let this_on = Term::app(Sym::ThisOn, vec![]).ok();
            cx.this_on = this_on.and_then(|t| e.atoms.get(&t).and_then(|d| d.as_int())).as_ref().and_then(int);
            if let Some((net, mask)) = &e.this_net {
                cx.this_net = bv(net).zip(bv(mask)).map(|(n, k)| (n, k.leading_ones() as u8));
            }
            for (name, v) in &e.named {
                let shown = match v {
                    Val::A(x) => bv(x).map(vinet_vocab::addr_text),
                    Val::N(x) => m.eval(x, true).and_then(|v| v.as_u64()).map(|n| n.to_string()),
                };
                if let Some(s) = shown {
                    // Internal atoms are numbered `NAME!n`: show them as `NAME(...)`.
                    let shown_name = match name.split_once('!') {
                        Some((base, _)) => format!("{base}(...)"),
                        None => name.clone(),
                    };
                    cx.values.push((shown_name, s));
                }
            }
            Decision::Fails(cx)
        }
    }
}

/// `kept` and those of `wishes` that the solver's assertions allow with them: all
/// at once if they can be, else one at a time, in order.
fn keep(solver: &Solver, kept: Vec<Bool>, wishes: &[Bool]) -> Vec<Bool> {
    let mut all = kept.clone();
    all.extend_from_slice(wishes);
    if wishes.is_empty() || solver.check_assumptions(&all) == SatResult::Sat {
        return all;
    }
    let mut kept = kept;
    for w in wishes {
        let mut trial = kept.clone();
        trial.push(w.clone());
        if solver.check_assumptions(&trial) == SatResult::Sat {
            kept = trial;
        }
    }
    kept
}

enum Val {
    A(BV),
    N(Int),
}

#[derive(Default)]
struct Enc<'a> {
    params: &'a [String],
    this_ip: Option<BV>,
    this_net: Option<(BV, BV)>,
    atoms: HashMap<Term, z3::ast::Dynamic>,
    witnesses: Vec<(BV, BV)>,
    /// Whether a witness (by its source's name) is in a narrowing, by term.
    narrowed: HashMap<(String, Term), Bool>,
    /// The flow id each witness (by its source's name) carries (`Key`).
    keys: HashMap<String, Int>,
    named: Vec<(String, Val)>,
    side: Vec<Bool>,
    fresh: u32,
}

/// The width of an address: 128 bits, IPv4 as IPv4-mapped.
const W: u32 = 128;

/// A 128-bit constant.
fn bv(v: u128) -> BV {
    BV::from_u64((v >> 64) as u64, 64).concat(BV::from_u64(v as u64, 64))
}

/// Whether an address is IPv4 (IPv4-mapped: its top 96 bits are `::ffff`).
fn is_v4(a: &BV) -> Bool {
    a.extract(127, 32).eq(BV::from_u64(0xffff, 96))
}

/// A well-formed prefix: `mask` is some `/len` netmask (0 to 128) and `net` has no host bits.
fn well_formed(net: &BV, mask: &BV, len: &BV) -> Bool {
    let ones = bv(u128::MAX);
    let m = len.eq(bv(0)).ite(&bv(0), &ones.bvshl(bv(128).bvsub(len)));
    Bool::and(&[len.bvule(bv(128)), mask.eq(&m), net.bvand(mask.bvnot()).eq(bv(0))])
}

impl Enc<'_> {
    fn name(&mut self, base: &str) -> String {
        self.fresh += 1;
        format!("{base}!{}", self.fresh)
    }

    fn param_name(&self, i: u16) -> String {
        self.params.get(i as usize).cloned().unwrap_or_else(|| format!("parameter {i}"))
    }

    fn negate(&mut self, goal: &Term) -> TResult<Bool> {
        match goal.kind() {
            Kind::App(Sym::Or, a) => Ok(Bool::and(&[self.negate(&a[0])?, self.negate(&a[1])?])),
            Kind::App(Sym::And, a) => Ok(Bool::or(&[self.negate(&a[0])?, self.negate(&a[1])?])),
            Kind::App(Sym::ConfK, a) => {
                let w = (BV::new_const(self.name("src"), W), BV::new_const(self.name("dst"), W));
                let inside = self.mem(&w, &a[0])?;
                let at = self.key(&w).eq(self.num(&a[1])?);
                self.witnesses.push(w);
                Ok(Bool::and(&[inside, at.not()]))
            }
            Kind::App(Sym::Conf | Sym::ConfP, a) => {
                let w = (BV::new_const(self.name("src"), W), BV::new_const(self.name("dst"), W));
                let inside = self.mem(&w, &a[0])?;
                let at = if goal.args_of(Sym::Conf).is_some() {
                    w.1.eq(self.addr(&a[1])?)
                } else {
                    let (n, m) = self.prefix(&a[1])?;
                    w.1.bvand(&m).eq(&n)
                };
                self.witnesses.push(w);
                Ok(Bool::and(&[inside, at.not()]))
            }
            _ => Ok(self.bool(goal)?.not()),
        }
    }

    fn mem(&mut self, w: &(BV, BV), set: &Term) -> TResult<Bool> {
        let Kind::App(sym, a) = set.kind() else {
            let name = self.name("in");
            return Ok(self.atom(set, || Bool::new_const(name).into())?.as_bool().ok_or("sort")?);
        };
        Ok(match sym {
            Sym::All => Bool::from_bool(true),
            Sym::FDst | Sym::GDst => Bool::and(&[self.mem(w, &a[0])?, w.1.eq(self.addr(&a[1])?)]),
            Sym::FSrc | Sym::GSrc => Bool::and(&[self.mem(w, &a[0])?, w.0.eq(self.addr(&a[1])?)]),
            Sym::FDstP | Sym::FSrcP => {
                let (n, m) = self.prefix(&a[1])?;
                let field = if *sym == Sym::FDstP { &w.1 } else { &w.0 };
                Bool::and(&[self.mem(w, &a[0])?, field.bvand(&m).eq(&n)])
            }
            Sym::Ite => {
                let c = self.bool(&a[0])?;
                c.ite(&self.mem(w, &a[1])?, &self.mem(w, &a[2])?)
            }
            Sym::Narrow => {
                let key = (w.0.to_string(), set.clone());
                let name = self.name("narrowed");
                let field = self.narrowed.entry(key).or_insert_with(|| Bool::new_const(name)).clone();
                Bool::and(&[self.mem(w, &a[0])?, field])
            }
            Sym::FKey => Bool::and(&[self.mem(w, &a[0])?, self.key(w).eq(self.num(&a[1])?)]),
            _ => return Err(format!("cannot encode the set {sym:?}")),
        })
    }

    /// The flow id witness `w` carries: a natural of its own.
    fn key(&mut self, w: &(BV, BV)) -> Int {
        let name = self.name("key");
        let k = self.keys.entry(w.0.to_string()).or_insert_with(|| Int::new_const(name)).clone();
        self.side.push(k.ge(Int::from_i64(0)));
        k
    }

    fn atom(&mut self, t: &Term, make: impl FnOnce() -> z3::ast::Dynamic) -> TResult<z3::ast::Dynamic> {
        Ok(self.atoms.entry(t.clone()).or_insert_with(make).clone())
    }

    fn bool(&mut self, t: &Term) -> TResult<Bool> {
        let Kind::App(sym, a) = t.kind() else {
            let name = self.name("b");
            return self.atom(t, || Bool::new_const(name).into())?.as_bool().ok_or("sort".into());
        };
        Ok(match sym {
            Sym::True => Bool::from_bool(true),
            Sym::False => Bool::from_bool(false),
            Sym::Not => self.bool(&a[0])?.not(),
            Sym::And => Bool::and(&[self.bool(&a[0])?, self.bool(&a[1])?]),
            Sym::Or => Bool::or(&[self.bool(&a[0])?, self.bool(&a[1])?]),
            Sym::Imp => self.bool(&a[0])?.implies(&self.bool(&a[1])?),
            Sym::Eq => match a[0].sort() {
                Sort::Addr => self.addr(&a[0])?.eq(self.addr(&a[1])?),
                Sort::Num => self.num(&a[0])?.eq(self.num(&a[1])?),
                Sort::Bool => self.bool(&a[0])?.eq(self.bool(&a[1])?),
                Sort::Str => self.str(&a[0])?.eq(self.str(&a[1])?),
                Sort::Prefix => {
                    let ((n1, m1), (n2, m2)) = (self.prefix(&a[0])?, self.prefix(&a[1])?);
                    Bool::and(&[n1.eq(n2), m1.eq(m2)])
                }
                s => return Err(format!("cannot encode equality of {s:?}")),
            },
            Sym::Ite => self.bool(&a[0])?.ite(&self.bool(&a[1])?, &self.bool(&a[2])?),
            Sym::In => {
                let (n, m) = self.prefix(&a[1])?;
                self.addr(&a[0])?.bvand(&m).eq(&n)
            }
            Sym::PSub => {
                let ((n1, m1), (n2, m2)) = (self.prefix(&a[0])?, self.prefix(&a[1])?);
                Bool::and(&[m1.bvand(&m2).eq(&m2), n1.bvand(&m2).eq(&n2)])
            }
            Sym::Le => self.num(&a[0])?.le(self.num(&a[1])?),
            Sym::Lt => self.num(&a[0])?.lt(self.num(&a[1])?),
            Sym::Contains | Sym::Param(..) => {
                let name = match sym {
                    Sym::Param(i, _) => self.param_name(*i),
                    _ => self.name("contains"),
                };
                self.atom(t, || Bool::new_const(name).into())?.as_bool().ok_or("sort")?
            }
            _ => return Err(format!("cannot encode the formula {sym:?}")),
        })
    }

    fn addr(&mut self, t: &Term) -> TResult<BV> {
        match t.kind() {
            Kind::Lit(l @ (Lit::Addr(_) | Lit::Addr6(_))) => match l.clone().wide() {
                Lit::Addr6(a) => Ok(bv(a)),
                _ => Err("cannot encode this address".into()),
            },
            Kind::App(Sym::ThisIp, _) => Ok(self.this_ip.get_or_insert_with(|| BV::new_const("THIS_IP", W)).clone()),
            Kind::App(Sym::Mask, a) => Ok(self.addr(&a[0])?.bvand(&self.addr(&a[1])?)),
            Kind::App(Sym::Net, a) => Ok(self.prefix(&a[0])?.0),
            Kind::App(Sym::NMask, a) => Ok(self.prefix(&a[0])?.1),
            Kind::App(Sym::Ite, a) => Ok(self.bool(&a[0])?.ite(&self.addr(&a[1])?, &self.addr(&a[2])?)),
            Kind::App(Sym::Param(..), _) | Kind::Var(_) => {
                let name = match t.kind() {
                    Kind::App(Sym::Param(i, _), _) => self.param_name(*i),
                    Kind::Var(i) => format!("the group key k{i}"),
                    _ => self.name("a"),
                };
                let fresh = !self.atoms.contains_key(t);
                let v = self.atom(t, || BV::new_const(name.clone(), W).into())?.as_bv().ok_or("sort")?;
                if fresh {
                    self.named.push((name, Val::A(v.clone())));
                }
                Ok(v)
            }
            _ => Err("cannot encode this address".into()),
        }
    }

    fn prefix(&mut self, t: &Term) -> TResult<(BV, BV)> {
        match t.kind() {
            // As `eval` has them: an IPv4 /n is the /96+n of its mapped network; past 128 is /128.
            Kind::Lit(l @ (Lit::Prefix(..) | Lit::Prefix6(..))) => match l.clone().wide() {
                Lit::Prefix6(n, l) => Ok((bv(n), bv(vinet_checker::netmask(l)))),
                _ => Err("cannot encode this prefix".into()),
            },
            Kind::App(Sym::ThisNet, _) => {
                if self.this_net.is_none() {
                    let (n, m, l) = (
                        BV::new_const("THIS_SUBNET_IP.net", W),
                        BV::new_const("THIS_SUBNET_IP.mask", W),
                        BV::new_const("THIS_SUBNET_IP.len", W),
                    );
                    self.side.push(well_formed(&n, &m, &l));
                    self.this_net = Some((n, m));
                }
                Ok(self.this_net.clone().expect("set"))
            }
            Kind::App(Sym::Param(..), _) | Kind::Var(_) => {
                let key = t.clone();
                if let Some(d) = self.atoms.get(&key) {
                    let bv = d.as_bv().ok_or("sort")?;
                    return Ok((bv.extract(2 * W - 1, W), bv.extract(W - 1, 0)));
                }
                let (n, m, l) =
                    (BV::new_const(self.name("net"), W), BV::new_const(self.name("mask"), W), BV::new_const(self.name("len"), W));
                self.side.push(well_formed(&n, &m, &l));
                self.atoms.insert(key, n.concat(&m).into());
                Ok((n, m))
            }
            _ => Err("cannot encode this prefix".into()),
        }
    }

    fn num(&mut self, t: &Term) -> TResult<Int> {
        match t.kind() {
            Kind::Lit(Lit::Num(n)) => Ok(Int::from_u64(*n)),
            Kind::App(Sym::Add, a) => Ok(Int::add(&[self.num(&a[0])?, self.num(&a[1])?])),
            Kind::App(Sym::Mul, a) => Ok(Int::mul(&[self.num(&a[0])?, self.num(&a[1])?])),
            Kind::App(Sym::Monus, a) => {
                let (x, y) = (self.num(&a[0])?, self.num(&a[1])?);
                Ok(y.le(&x).ite(&Int::sub(&[x.clone(), y.clone()]), &Int::from_i64(0)))
            }
            Kind::App(Sym::Ite, a) => Ok(self.bool(&a[0])?.ite(&self.num(&a[1])?, &self.num(&a[2])?)),
            _ => {
                let name = match t.kind() {
                    Kind::App(Sym::Param(i, _), _) => self.param_name(*i),
                    Kind::App(Sym::Count, _) => self.name("COUNT"),
                    Kind::App(Sym::NDst, _) => self.name("DISTINCT_DESTINATIONS"),
                    Kind::App(Sym::NPort, _) => self.name("DISTINCT_DESTINATION_PORTS"),
                    Kind::App(Sym::ThisOn, _) => "THIS_ON".into(),
                    _ => self.name("n"),
                };
                let fresh = !self.atoms.contains_key(t);
                let v = self.atom(t, || Int::new_const(name.clone()).into())?.as_int().ok_or("sort")?;
                if fresh {
                    self.side.push(v.ge(Int::from_i64(0)));
                    // The axioms ndst_count and nport_count.
                    if let Kind::App(Sym::NDst | Sym::NPort, a) = t.kind() {
                        let count = self.num(&Term::app(Sym::Count, vec![a[0].clone()])?)?;
                        self.side.push(v.le(&count));
                    }
                    if !name.contains('!') || name.starts_with("COUNT") {
                        self.named.push((name, Val::N(v.clone())));
                    }
                }
                Ok(v)
            }
        }
    }

    fn str(&mut self, t: &Term) -> TResult<z3::ast::String> {
        match t.kind() {
            Kind::Lit(Lit::Str(s)) => Ok(z3::ast::String::from(s.as_str())),
            Kind::App(Sym::Concat, a) => Ok(z3::ast::String::concat(&[self.str(&a[0])?, self.str(&a[1])?])),
            Kind::App(Sym::Ite, a) => Ok(self.bool(&a[0])?.ite(&self.str(&a[1])?, &self.str(&a[2])?)),
            _ => {
                let name = match t.kind() {
                    Kind::App(Sym::Param(i, _), _) => self.param_name(*i),
                    _ => self.name("s"),
                };
                self.atom(t, || z3::ast::String::new_const(name).into())?.as_string().ok_or("sort".into())
            }
        }
    }
}
