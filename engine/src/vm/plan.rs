//! Packet-local plans: a program built only of address, prefix and number
//! loads (and arithmetic on numbers), `AllPackets`, keyed filters,
//! narrowings by a transport field and DISCARD decides each packet on its
//! own (see the module documentation of [`super`]), and runs here without
//! the interpreter, metered exactly as the VM meters it. A narrowing is one
//! [`FieldTest`], bound once a run (or once an instance, for a chain), so a
//! port firewall runs as the address firewall does: a few compares a packet.

use vinet_checker::bytecode::{ArithOp, Const, Field, Insn, Reg, Ty};
use vinet_checker::policy::UnitCosts;
use vinet_checker::{netmask, Module};

use super::bits::{field_bits, match_bits, popcount, FieldTest};
use super::{Instance, Machine, RunStats, This, MAX_STEPS};
use crate::window::{Columns, View};

/// Most scalars a [`LocalPlan`] run keeps (on the stack); more, and the VM runs.
const LOCAL_SCALARS: usize = 16;

/// Where a scalar of a [`LocalPlan`] comes from (loaded once per run).
#[derive(Clone, Copy, Debug)]
enum ScalarSrc {
    /// A constant, as the VM's scalar registers hold it ([`Sv`]).
    Value(Sv),
    /// A (non-string) parameter.
    Param(u16),
    /// THIS_IP.
    ThisIp,
    /// THIS_SUBNET_IP.
    ThisSubnet,
    /// Arithmetic on two numbers loaded before (`SYN + ACK`): an overflow
    /// leaves the run to the VM, which reports it.
    Arith(ArithOp, u8, u8),
}

/// A scalar's value as the VM's registers hold it: the value (a bool, a
/// number, an address, a prefix's network) and a prefix's length (0 for the
/// others).
type Sv = (u128, u8);

/// The test of one filter step: an address column against a scalar key, or
/// a transport field narrowed by two number scalars.
#[derive(Clone, Copy, Debug)]
enum Test {
    /// GROUP_BY_DESTINATION / GROUP_BY_SOURCE keyed by scalar `by` (an
    /// address or a prefix).
    Addr { by: u8, on_dst: bool },
    /// A narrowing by `field` with the scalars `a`, `b` ([`FieldTest::new`]).
    Field { field: Field, a: u8, b: u8 },
}

/// One step of a [`LocalPlan`], on one packet. Set registers are bits of a
/// `u64`, scalars are slots loaded at the start of the run.
#[derive(Clone, Copy, Debug)]
enum LocalOp {
    /// `AllPackets`: the packet is in `dst`.
    All { dst: u8 },
    /// Set copy.
    Copy { dst: u8, src: u8 },
    /// A keyed filter or a narrowing: charges `unit` when the packet is in
    /// `set`.
    Filter { dst: u8, set: u8, test: Test, unit: u64 },
    /// DISCARD: charges `unit` and drops the packet when it is in `set`.
    Discard { set: u8, unit: u64 },
}

/// A packet-local program: see the module documentation. Built only for
/// straight-line code of loads, arithmetic on numbers, `AllPackets`, set
/// copies, keyed filters, narrowings and DISCARD, where every scalar
/// register is assigned once, before any use.
#[derive(Clone, Debug)]
pub(crate) struct LocalPlan {
    /// Scalar slots, in assignment order.
    scalars: Vec<ScalarSrc>,
    ops: Vec<LocalOp>,
    /// The common shape `DISCARD(F_k(...F_1(AllPackets, a_1)..., a_k))`
    /// (the firewall, the port firewall): the filters in order, and
    /// DISCARD's unit.
    chain: Option<(Vec<ChainStep>, u64)>,
    /// Bit i: scalar slot i holds a prefix (else an address or a number).
    prefix_slots: u64,
    /// Instructions of the module (each runs once: the code is straight).
    steps: u64,
}

/// The key of a chain filter once the parameters are bound.
#[derive(Clone, Copy, Debug)]
enum ChainKey {
    /// A constant or parameter: network and mask (128-bit).
    Fixed(u128, u128),
    /// THIS_IP.
    ThisIp,
    /// THIS_SUBNET_IP.
    ThisSubnet,
}

/// The test of a chain filter once the parameters are bound.
#[derive(Clone, Copy, Debug)]
enum BoundTest {
    /// An address column (`on_dst`: the destination, else the source) against a key.
    Addr { key: ChainKey, on_dst: bool },
    /// A transport field.
    Field(FieldTest),
}

/// A chain filter of an [`Instance`]: its test and unit.
#[derive(Clone, Copy, Debug)]
pub(super) struct BoundStep {
    test: BoundTest,
    unit: u64,
}

impl BoundStep {
    /// Whether a packet (source, destination, transport fields `l4`) passes,
    /// on behalf of `this`.
    #[inline]
    fn passes(&self, this: This, s_addr: u128, d_addr: u128, l4: impl Fn(Field) -> u32) -> bool {
        match self.test {
            BoundTest::Addr { key, on_dst } => {
                let (net, mask) = match key {
                    ChainKey::Fixed(n, m) => (n, m),
                    ChainKey::ThisIp => (this.ip, u128::MAX),
                    ChainKey::ThisSubnet => (this.subnet.0, netmask(this.subnet.1)),
                };
                (if on_dst { d_addr } else { s_addr }) & mask == net
            }
            BoundTest::Field(t) => t.passes(l4(t.field)),
        }
    }
}

/// The column an [`EndUserStep`] tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum StepCol {
    /// The source address.
    #[default]
    Src,
    /// The destination address.
    Dst,
    /// A transport field, as [`crate::window::Columns::field`] reads it.
    Field(Field),
}

/// A chain filter as an end user's packet meets it (see
/// [`Instance::end_user_chain`]): the packet passes when its column `col`,
/// masked with `mask`, is within `span` above `net` (in wrapping arithmetic:
/// `span` is 0 for an address, and see [`FieldTest`] for a field), where for
/// a THIS_IP / THIS_SUBNET_IP key (`this`) `net` is the packet's destination.
/// 128-bit, so that one form tests addresses of both families and fields
/// (whose values, below 2^32, wrap past every `span` as in [`FieldTest`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EndUserStep {
    pub(crate) net: u128,
    pub(crate) mask: u128,
    pub(crate) span: u128,
    pub(crate) col: StepCol,
    pub(crate) this: bool,
    pub(crate) unit: u64,
}

/// One filter of a chain: its test and unit.
#[derive(Clone, Copy, Debug)]
struct ChainStep {
    test: Test,
    unit: u64,
}

/// The value of scalar `src` given the slots before it (`vals`), the
/// parameters and the client; `None` on an arithmetic overflow (or a string
/// parameter, which no plan has).
fn scalar(src: ScalarSrc, vals: &[Sv], params: &[Const], this: Option<This>) -> Option<Sv> {
    Some(match src {
        ScalarSrc::Value(x) => x,
        ScalarSrc::ThisIp => (this?.ip, 0),
        ScalarSrc::ThisSubnet => this?.subnet,
        ScalarSrc::Param(p) => konst(params.get(p as usize)?)?,
        ScalarSrc::Arith(op, a, b) => {
            // Numbers: u64, as the VM computes them.
            let (x, y) = (vals.get(a as usize)?.0 as u64, vals.get(b as usize)?.0 as u64);
            let r = match op {
                ArithOp::Add => x.checked_add(y)?,
                ArithOp::Sub => x.saturating_sub(y),
                ArithOp::Mul => x.checked_mul(y)?,
            };
            (u128::from(r), 0)
        }
    })
}

/// A non-string constant as the VM loads it (IPv4 as IPv4-mapped).
fn konst(c: &Const) -> Option<Sv> {
    match *c {
        Const::Addr(_) | Const::Addr6(_) => Some((c.addr()?, 0)),
        Const::Prefix(..) | Const::Prefix6(..) => c.prefix(),
        Const::Num(n) => Some((u128::from(n), 0)),
        Const::Str(_) => None,
    }
}

impl LocalPlan {
    pub(super) fn compile(module: &Module, units: &UnitCosts) -> Option<LocalPlan> {
        if module.code.len() as u64 >= MAX_STEPS {
            return None;
        }
        // Costs are summed in u64 over at most 64 packets.
        let by_field = units.by_field.iter().copied().max().unwrap_or(0);
        let dearest = units.group_by_destination.max(units.group_by_source).max(units.discard).max(by_field);
        if dearest > u64::MAX / (64 * (module.code.len() as u64 + 1)) {
            return None;
        }
        let mut scalar_slot: Vec<Option<u8>> = vec![None; module.regs.len()];
        let mut set_bit: Vec<Option<u8>> = vec![None; module.regs.len()];
        let mut sets = 0u8;
        let mut scalars = Vec::new();
        let mut prefix_slot = Vec::new();
        let mut ops = Vec::new();
        let ty = |r: Reg| module.regs.get(r as usize).copied();
        let mut set = |r: Reg, set_bit: &mut Vec<Option<u8>>| -> Option<u8> {
            if ty(r)? != Ty::Set {
                return None;
            }
            let cell = set_bit.get_mut(r as usize)?;
            if cell.is_none() {
                if sets == 64 {
                    return None;
                }
                *cell = Some(sets);
                sets += 1;
            }
            *cell
        };
        let mut load = |dst: Reg, src: ScalarSrc, scalar_slot: &mut Vec<Option<u8>>| -> Option<()> {
            // Assigned once, and never a string.
            let cell = scalar_slot.get_mut(dst as usize)?;
            if cell.is_some() || scalars.len() >= 255 || !matches!(ty(dst)?, Ty::Addr | Ty::Prefix | Ty::Num | Ty::Bool) {
                return None;
            }
            *cell = Some(scalars.len() as u8);
            prefix_slot.push(ty(dst)? == Ty::Prefix);
            scalars.push(src);
            Some(())
        };
        // A scalar read: it must have been loaded already (a read before
        // any assignment would see the VM's zeroed register), with type `want`.
        let read = |r: Reg, want: &[Ty], scalar_slot: &[Option<u8>]| -> Option<u8> {
            if !want.contains(&ty(r)?) {
                return None;
            }
            *scalar_slot.get(r as usize)?
        };
        for insn in &module.code {
            match *insn {
                Insn::Const { dst, k } => {
                    let v = konst(module.consts.get(k as usize)?)?;
                    load(dst, ScalarSrc::Value(v), &mut scalar_slot)?;
                }
                Insn::Bool { dst, value } => load(dst, ScalarSrc::Value((u128::from(value), 0)), &mut scalar_slot)?,
                Insn::Param { dst, p } => {
                    if matches!(module.params.get(p as usize)?.default, Const::Str(_)) {
                        return None;
                    }
                    load(dst, ScalarSrc::Param(p), &mut scalar_slot)?;
                }
                Insn::ThisIp { dst } => load(dst, ScalarSrc::ThisIp, &mut scalar_slot)?,
                Insn::ThisSubnet { dst } => load(dst, ScalarSrc::ThisSubnet, &mut scalar_slot)?,
                Insn::Arith { op, dst, a, b } => {
                    let (a, b) = (read(a, &[Ty::Num], &scalar_slot)?, read(b, &[Ty::Num], &scalar_slot)?);
                    load(dst, ScalarSrc::Arith(op, a, b), &mut scalar_slot)?;
                }
                Insn::AllPackets { dst } => ops.push(LocalOp::All { dst: set(dst, &mut set_bit)? }),
                Insn::Copy { dst, src } => {
                    let src = set(src, &mut set_bit)?;
                    ops.push(LocalOp::Copy { dst: set(dst, &mut set_bit)?, src });
                }
                Insn::FilterDst { dst, set: s, by } | Insn::FilterSrc { dst, set: s, by } => {
                    let on_dst = matches!(insn, Insn::FilterDst { .. });
                    let by = read(by, &[Ty::Addr, Ty::Prefix], &scalar_slot)?;
                    let unit = if on_dst { units.group_by_destination } else { units.group_by_source };
                    let s = set(s, &mut set_bit)?;
                    ops.push(LocalOp::Filter { dst: set(dst, &mut set_bit)?, set: s, test: Test::Addr { by, on_dst }, unit });
                }
                Insn::Narrow { dst, set: s, field, a, b } => {
                    let (a, b) = (read(a, &[Ty::Num], &scalar_slot)?, read(b, &[Ty::Num], &scalar_slot)?);
                    let unit = units.by_field[field as usize];
                    let s = set(s, &mut set_bit)?;
                    ops.push(LocalOp::Filter { dst: set(dst, &mut set_bit)?, set: s, test: Test::Field { field, a, b }, unit });
                }
                Insn::Discard { set: s } => ops.push(LocalOp::Discard { set: set(s, &mut set_bit)?, unit: units.discard }),
                _ => return None,
            }
        }
        let chain = LocalPlan::chain_of(&ops);
        let prefix_slots =
            scalars.iter().enumerate().fold(0u64, |m, (i, _)| m | u64::from(prefix_slot.get(i).copied().unwrap_or(false)) << i);
        Some(LocalPlan { scalars, ops, chain, prefix_slots, steps: module.code.len() as u64 })
    }

    /// The chain shape: `All{a}`, filters each reading the set the one
    /// before wrote (every set written once), then one DISCARD of the last.
    fn chain_of(ops: &[LocalOp]) -> Option<(Vec<ChainStep>, u64)> {
        let (LocalOp::All { dst: first }, rest) = ops.split_first()? else { return None };
        let (LocalOp::Discard { set: last, unit: du }, filters) = rest.split_last()? else { return None };
        let mut written = 1u64 << first;
        let mut cur = *first;
        let mut steps = Vec::new();
        for op in filters {
            let LocalOp::Filter { dst, set, test, unit } = *op else { return None };
            if set != cur || written >> dst & 1 == 1 {
                return None;
            }
            written |= 1 << dst;
            cur = dst;
            steps.push(ChainStep { test, unit });
        }
        (*last == cur).then_some((steps, *du))
    }
}

impl LocalPlan {
    /// The chain plan with the parameter values `values` bound: each
    /// filter's key or field test, and DISCARD's unit. `None` when the plan
    /// is not a chain, or when a number it computes overflows (the VM then
    /// runs it, and faults).
    pub(super) fn bind_chain(&self, values: &[Const]) -> Option<(Vec<BoundStep>, u64)> {
        let plan = self;
        let (steps, du) = plan.chain.as_ref()?;
        // The scalars, but THIS_IP and THIS_SUBNET_IP (the client's, read as
        // 0 here; never operands of arithmetic, which is on numbers).
        let mut vals: Vec<Sv> = Vec::with_capacity(plan.scalars.len());
        for &src in &plan.scalars {
            let v = match src {
                ScalarSrc::ThisIp | ScalarSrc::ThisSubnet => (0, 0),
                _ => scalar(src, &vals, values, None)?,
            };
            vals.push(v);
        }
        let bound = steps.iter().map(|st| {
            let test = match st.test {
                Test::Addr { by, on_dst } => {
                    let prefix = plan.prefix_slots >> by & 1 == 1;
                    let key = match (plan.scalars.get(by as usize)?, *vals.get(by as usize)?) {
                        (ScalarSrc::ThisIp, _) => ChainKey::ThisIp,
                        (ScalarSrc::ThisSubnet, _) => ChainKey::ThisSubnet,
                        (_, (n, l)) if prefix => ChainKey::Fixed(n, netmask(l)),
                        (_, (v, _)) => ChainKey::Fixed(v, u128::MAX),
                    };
                    BoundTest::Addr { key, on_dst }
                }
                Test::Field { field, a, b } => {
                    BoundTest::Field(FieldTest::new(field, vals.get(a as usize)?.0 as u64, vals.get(b as usize)?.0 as u64))
                }
            };
            Some(BoundStep { test, unit: st.unit })
        });
        Some((bound.collect::<Option<Vec<_>>>()?, *du))
    }
}

impl Instance {
    /// Run the packet-local plan over packets `rows` (at most 64) of the
    /// columns `cols`, on behalf of `this`: the run's statistics and a
    /// bitmap of the dropped rows (bit k: `rows[k]`). `None` when the
    /// program has no plan, when there are more than 64 rows, when a number
    /// it computes overflows, or when the run would cost more than the
    /// certified complexity (the VM must then run it, to stop it where it
    /// faults); nothing is changed in that case.
    pub(crate) fn run_local(&self, this: This, cols: &Columns, rows: &[u32]) -> Option<(RunStats, u64)> {
        if rows.len() > 64 {
            return None;
        }
        if self.chain.is_some() {
            return self.run_chain(this, cols, rows);
        }
        let plan = self.program.local.as_ref()?;
        if plan.scalars.len() > LOCAL_SCALARS {
            return None;
        }
        // Every scalar's value, and as a (net, mask) key, as the VM's filter
        // reads it (an address is its own net with a full mask).
        let mut vals = [(0u128, 0u8); LOCAL_SCALARS];
        let mut keys = [(0u128, 0u128); LOCAL_SCALARS];
        for (i, s) in plan.scalars.iter().enumerate() {
            let v = scalar(*s, &vals[..i], &self.params, Some(this))?;
            vals[i] = v;
            keys[i] = if plan.prefix_slots >> i & 1 == 1 { (v.0, netmask(v.1)) } else { (v.0, u128::MAX) };
        }
        let mut cost = self.run_base();
        let mut drops = 0u64;
        for (k, &row) in rows.iter().enumerate() {
            let row = row as usize;
            let (s_addr, d_addr) = (*cols.src.get(row)?, *cols.dst.get(row)?);
            let mut bits = 0u64;
            let mut dropped = 0u64;
            for op in &plan.ops {
                match *op {
                    LocalOp::All { dst } => bits |= 1 << dst,
                    LocalOp::Copy { dst, src } => bits = bits & !(1 << dst) | (bits >> src & 1) << dst,
                    LocalOp::Filter { dst, set, test, unit } => {
                        let inside = bits >> set & 1;
                        cost += unit * inside;
                        let pass = match test {
                            Test::Addr { by, on_dst } => {
                                let (net, mask) = keys[by as usize];
                                (if on_dst { d_addr } else { s_addr }) & mask == net
                            }
                            Test::Field { field, a, b } => {
                                FieldTest::new(field, vals[a as usize].0 as u64, vals[b as usize].0 as u64).passes(cols.field(field, row))
                            }
                        };
                        let hit = inside & u64::from(pass);
                        bits = bits & !(1 << dst) | hit << dst;
                    }
                    LocalOp::Discard { set, unit } => {
                        let inside = bits >> set & 1;
                        cost += unit * inside;
                        dropped |= inside;
                    }
                }
            }
            drops |= dropped << k;
        }
        if cost > self.program.complexity {
            return None;
        }
        Some((RunStats { cost, steps: plan.steps, dropped: drops.count_ones(), ..RunStats::default() }, drops))
    }

    /// What a run costs besides its packets: its instructions (each runs
    /// once: a plan's code is straight), at the policy's INSTRUCTION unit.
    pub(crate) fn run_base(&self) -> u64 {
        let steps = self.program.local.as_ref().map_or(0, |p| p.steps);
        steps.saturating_mul(self.program.units.instruction)
    }

    /// The most one packet can cost under the chain plan (every filter's unit
    /// and DISCARD's), if the program has one; a run also costs [`Instance::run_base`].
    pub(crate) fn chain_packet_bound(&self) -> Option<u64> {
        let (chain, du) = self.chain.as_ref()?;
        chain.iter().try_fold(*du, |a, f| a.checked_add(f.unit))
    }

    /// The chain plan's decision for one packet (source, destination, and
    /// its transport fields as `l4` reads them, [`Columns::field`]): its cost
    /// and whether it is dropped. `(0, false)` without a chain plan.
    #[inline]
    pub(crate) fn chain_packet(&self, this: This, s_addr: u128, d_addr: u128, l4: impl Fn(Field) -> u32) -> (u64, bool) {
        let Some((chain, du)) = self.chain.as_ref() else { return (0, false) };
        let mut cost = 0u64;
        for f in chain {
            cost += f.unit;
            if !f.passes(this, s_addr, d_addr, &l4) {
                return (cost, false);
            }
        }
        (cost + du, true)
    }

    /// The chain plan's filters for an end user's packets, whose THIS_IP
    /// (and THIS_SUBNET_IP, the same address as a /128) is the packet's
    /// destination: each as [`EndUserStep`], with DISCARD's unit. The
    /// decision of [`Instance::chain_packet`] with `this` = the destination.
    pub(crate) fn end_user_chain(&self) -> Option<(Vec<EndUserStep>, u64)> {
        let (chain, du) = self.chain.as_ref()?;
        let steps = chain
            .iter()
            .map(|f| match f.test {
                BoundTest::Addr { key, on_dst } => {
                    let (net, mask, this) = match key {
                        ChainKey::Fixed(n, m) => (n, m, false),
                        ChainKey::ThisIp | ChainKey::ThisSubnet => (0, u128::MAX, true),
                    };
                    let col = if on_dst { StepCol::Dst } else { StepCol::Src };
                    EndUserStep { net, mask, span: 0, col, this, unit: f.unit }
                }
                BoundTest::Field(t) => EndUserStep {
                    net: u128::from(t.lo),
                    mask: u128::from(t.mask),
                    span: u128::from(t.span),
                    col: StepCol::Field(t.field),
                    this: false,
                    unit: f.unit,
                },
            })
            .collect();
        Some((steps, *du))
    }

    /// The certified complexity of its program.
    pub(crate) fn complexity(&self) -> u64 {
        self.program.complexity
    }

    /// [`Instance::run_local`] for a program of the chain shape: the same
    /// answers, small enough to inline into the dispatch loop.
    #[inline]
    pub(crate) fn run_chain(&self, this: This, cols: &Columns, rows: &[u32]) -> Option<(RunStats, u64)> {
        let (chain, du) = self.chain.as_ref()?;
        if rows.len() > 64 {
            return None;
        }
        let mut cost = self.run_base();
        let mut drops = 0u64;
        for (k, &row) in rows.iter().enumerate() {
            let row = row as usize;
            let (s_addr, d_addr) = (*cols.src.get(row)?, *cols.dst.get(row)?);
            let mut pass = true;
            for f in chain {
                cost += f.unit;
                if !f.passes(this, s_addr, d_addr, |x| cols.field(x, row)) {
                    pass = false;
                    break;
                }
            }
            if pass {
                cost += du;
                drops |= 1 << k;
            }
        }
        if cost > self.program.complexity {
            return None;
        }
        let steps = self.program.local.as_ref().map_or(0, |p| p.steps);
        Some((RunStats { cost, steps, dropped: drops.count_ones(), ..RunStats::default() }, drops))
    }

    /// A chain plan over a whole view, a word of 64 packets at a time (the
    /// VM's own set representation and filter, without the interpretation):
    /// the run's effects in `m` as [`Instance::run`] leaves them. `None`
    /// (and nothing changed that matters) when the program is not a chain
    /// or the run would cost more than the certified complexity.
    pub(super) fn run_chain_view(&self, this: This, v: View<'_>, m: &mut Machine) -> Option<RunStats> {
        let (chain, du) = self.chain.as_ref()?;
        let n = v.len();
        let nw = n.div_ceil(64);
        let limit = self.program.complexity;
        let set = &mut m.effects.drops;
        set.clear();
        set.resize(nw, u64::MAX);
        if !n.is_multiple_of(64) {
            set[nw - 1] = (1u64 << (n % 64)) - 1;
        }
        let mut cost = self.run_base();
        for f in chain {
            cost = f.unit.checked_mul(popcount(set)).and_then(|c| c.checked_add(cost)).filter(|&c| c <= limit)?;
            match f.test {
                BoundTest::Addr { key, on_dst } => {
                    let (net, mask) = match key {
                        ChainKey::Fixed(n, m) => (n, m),
                        ChainKey::ThisIp => (this.ip, u128::MAX),
                        ChainKey::ThisSubnet => (this.subnet.0, netmask(this.subnet.1)),
                    };
                    let col = if on_dst { v.dst } else { v.src };
                    for (w, word) in set.iter_mut().enumerate() {
                        if *word == 0 {
                            continue;
                        }
                        let base = w * 64;
                        let bits = match col.get(base..base + 64) {
                            Some(full) => match_bits(full, net, mask),
                            None => col
                                .get(base..)
                                .unwrap_or(&[])
                                .iter()
                                .enumerate()
                                .fold(0u64, |b, (j, &x)| b | (u64::from(x & mask == net) << j)),
                        };
                        *word &= bits;
                    }
                }
                BoundTest::Field(t) => {
                    for (w, word) in set.iter_mut().enumerate() {
                        if *word != 0 {
                            *word &= field_bits(&v, t, w * 64);
                        }
                    }
                }
            }
        }
        let dropped = popcount(set);
        cost = du.checked_mul(dropped).and_then(|c| c.checked_add(cost)).filter(|&c| c <= limit)?;
        m.effects.gen_bytes.clear();
        m.effects.gen.clear();
        let steps = self.program.local.as_ref().map_or(0, |p| p.steps);
        Some(RunStats { cost, steps, dropped: dropped as u32, ..RunStats::default() })
    }
}
