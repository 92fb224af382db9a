//! The vinet bytecode: a module, its canonical postcard encoding, its blake3
//! id, and the structural validator that every decoded module passes before
//! anything else looks at it.
//!
//! Instructions work on whole packet *sets* (one instruction handles a window
//! of packets). Control flow is structured, as in WebAssembly: `If`, `Foreach`
//! and `While` own the blocks that follow them, given by lengths. There are no
//! jumps, so "a jump outside the code" takes the form "a block that extends
//! past its parent", and every loop carries its bound in the instruction.
//!
//! The encoding is flat (a list of instructions, a list of constants), so no
//! hostile input can make the decoder recurse.

use serde::{Deserialize, Serialize};

/// The bytecode format version this checker reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Deepest nesting of blocks a module may have.
pub const MAX_NESTING: usize = 32;
/// Most instructions, registers, constants or parameters a module may have.
pub const MAX_ITEMS: usize = 1 << 16;
/// Largest loop bound a `While` may claim.
pub const MAX_LOOP_BOUND: u32 = 1 << 20;

/// A register index.
pub type Reg = u16;

/// The type of a register: `Bool`; `Num`, a natural (u64: arithmetic that overflows
/// stops the run); `Addr`, an IPv6 or IPv4 address; `Prefix`, a prefix (`10.1.0.0/16`, `2001:db8::/32`);
/// `Str`, a byte string; `Set`, a set of packets of the current window; `Groups`, the
/// non-empty groups of a set by destination or source; `AddrList` and `Content`, the
/// distinct destinations and payloads of a set (GROUP_BY_CONTENT); `NumGroups`, the
/// non-empty groups of a set by a [`Field`], keyed by numbers.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[rustfmt::skip]
pub enum Ty { Bool, Num, Addr, Prefix, Str, Set, Groups, AddrList, Content, NumGroups }

/// A transport-level field of a packet: its IP protocol, its TCP or UDP source and
/// destination ports, its TCP flags. Every packet has a protocol; only a packet with a
/// whole TCP or UDP header has ports, and only one with a whole TCP header has flags.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[rustfmt::skip]
pub enum Field { Proto, SrcPort, DstPort, TcpFlags }

/// A constant of the pool. Addresses are 128-bit, IPv4 as IPv4-mapped ([`crate::mapped`]):
/// `Addr(a)` and `Prefix(net, len)` spell IPv4's (host byte order, host bits zero, length
/// at most 32), `Addr6` and `Prefix6` (appended, so that older modules keep their encoding)
/// the others' (an address outside `::ffff:0:0/96`; a prefix, length at most 128, that is no
/// IPv4 prefix), so that a module has one encoding. `Str` is a string, `Num` a natural.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[rustfmt::skip]
pub enum Const { Addr(u32), Prefix(u32, u8), Str(String), Num(u64), Addr6(u128), Prefix6(u128, u8) }

impl Const {
    /// The register type a constant loads as.
    pub fn ty(&self) -> Ty {
        match self {
            Const::Addr(_) | Const::Addr6(_) => Ty::Addr,
            Const::Prefix(..) | Const::Prefix6(..) => Ty::Prefix,
            Const::Str(_) => Ty::Str,
            Const::Num(_) => Ty::Num,
        }
    }

    /// The 128-bit value of an address constant.
    pub fn addr(&self) -> Option<u128> {
        match *self {
            Const::Addr(a) => Some(crate::mapped(a)),
            Const::Addr6(a) => Some(a),
            _ => None,
        }
    }

    /// The 128-bit network and length of a prefix constant.
    pub fn prefix(&self) -> Option<(u128, u8)> {
        match *self {
            Const::Prefix(n, l) => Some((crate::mapped(n), l.saturating_add(96))),
            Const::Prefix6(n, l) => Some((n, l)),
            _ => None,
        }
    }
}

/// The functionality class of a program (the paper's quotas are per class):
/// `Filtering` programs DISCARD (firewalls, spam filters, worm blockers), `Multicast`
/// programs GENERATE (multicast aggregators), `Monitoring` programs touch no traffic.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[rustfmt::skip]
pub enum Class { Filtering, Multicast, Monitoring }

/// Module header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// LIFETIME, in seconds.
    pub lifetime_secs: u64,
    /// CLASS, given or inferred.
    pub class: Class,
}

/// A declared parameter: bound at install time, symbolic in the proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Its source name.
    pub name: String,
    /// Its default value (from `PARAM NAME = VALUE;` or `--param`).
    pub default: Const,
}

/// Comparison operators: `==`, `!=`, and `<`, `<=`, `>`, `>=` on numbers.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[rustfmt::skip]
pub enum CmpOp { Eq, Ne, Lt, Le, Gt, Ge }

/// Arithmetic operators on naturals: `+`, `-` (truncated at zero), `*`.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[rustfmt::skip]
pub enum ArithOp { Add, Sub, Mul }

/// A linear ranking function over numeric registers: `constant + sum(c * r)`.
/// A `While` must decrease it by at least one per iteration and keep it at
/// least one whenever the body runs; it starts at most `bound`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rank {
    /// Coefficients of numeric registers.
    pub terms: Vec<(Reg, i64)>,
    /// The constant term.
    pub constant: i64,
}

/// One instruction. Operand names are explained in each variant's text.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Insn {
    /// `dst = consts[k]`
    Const { dst: Reg, k: u16 },
    /// `dst = params[p]` (bound at install time)
    Param { dst: Reg, p: u16 },
    /// `dst = THIS_IP`
    ThisIp { dst: Reg },
    /// `dst = THIS_SUBNET_IP`
    ThisSubnet { dst: Reg },
    /// `dst = AllPackets`
    AllPackets { dst: Reg },
    /// `dst = true|false`
    Bool { dst: Reg, value: bool },
    /// `dst = src` (same type)
    Copy { dst: Reg, src: Reg },
    /// `dst = not a`
    Not { dst: Reg, a: Reg },
    /// `dst = a and b` (both evaluated)
    And { dst: Reg, a: Reg, b: Reg },
    /// `dst = a or b` (both evaluated)
    Or { dst: Reg, a: Reg, b: Reg },
    /// `dst = a OP b`: `==`/`!=` on any scalar of one type, the rest on numbers.
    Cmp { op: CmpOp, dst: Reg, a: Reg, b: Reg },
    /// `dst = addr in prefix`
    InPrefix { dst: Reg, addr: Reg, prefix: Reg },
    /// `dst = addr & mask` (addresses)
    Mask { dst: Reg, addr: Reg, mask: Reg },
    /// `dst = a OP b` (numbers)
    Arith { op: ArithOp, dst: Reg, a: Reg, b: Reg },
    /// `dst = a + b` (strings)
    Concat { dst: Reg, a: Reg, b: Reg },
    /// GROUP_BY_DESTINATION(set, by), keyed form: the packets of `set` whose
    /// destination equals `by` (an address) or lies inside `by` (a prefix).
    FilterDst { dst: Reg, set: Reg, by: Reg },
    /// GROUP_BY_SOURCE(set, by), keyed form; `by` an address or a prefix.
    FilterSrc { dst: Reg, set: Reg, by: Reg },
    /// GROUP_BY_DESTINATION(set), grouping form.
    GroupDst { dst: Reg, set: Reg },
    /// GROUP_BY_SOURCE(set), grouping form.
    GroupSrc { dst: Reg, set: Reg },
    /// `dests, content = GROUP_BY_CONTENT(set)`
    GroupContent { dests: Reg, content: Reg, set: Reg },
    /// `dst = CONTAINS_STRING(set, needle)`
    ContainsString { dst: Reg, set: Reg, needle: Reg },
    /// `dst = COUNT(set)`
    Count { dst: Reg, set: Reg },
    /// `dst = DISTINCT_DESTINATIONS(set)`
    DistinctDst { dst: Reg, set: Reg },
    /// DISCARD(set)
    Discard { set: Reg },
    /// GENERATE(src, dst, payload); payload a string, an address list or content.
    Generate { src: Reg, dst: Reg, payload: Reg },
    /// `if cond` then the next `then_len` instructions, else the `else_len` after them.
    If { cond: Reg, then_len: u32, else_len: u32 },
    /// For each group of `groups`: `key` and `set` are bound to the group's key and
    /// packets, then the next `body_len` instructions run. Registers the body writes
    /// are dead after the loop.
    Foreach { groups: Reg, key: Reg, set: Reg, body_len: u32 },
    /// Loop: the next `cond_len` instructions compute `cond`; while it holds, the
    /// `body_len` instructions after them run. At most `bound` iterations, as
    /// `rank` shows.
    While { cond_len: u32, cond: Reg, body_len: u32, bound: u32, rank: Rank },
    // Appended, so that older modules keep their encoding.
    /// Narrowing by a field (GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT and
    /// GROUP_BY_DESTINATION_PORT keyed, TCP_FLAGS): the packets of `set` that have
    /// `field` with `a <= value <= b`; for `TcpFlags`, with every flag of `a` set and
    /// every flag of `b` clear.
    Narrow { dst: Reg, set: Reg, field: Field, a: Reg, b: Reg },
    /// Grouping by a field, as GroupSrc groups by source: packets without it are in no group.
    GroupField { dst: Reg, set: Reg, field: Field },
    /// `dst = DISTINCT_DESTINATION_PORTS(set)`, among the packets that have ports.
    DistinctPorts { dst: Reg, set: Reg },
    /// `dst = ON_PACKETS(set)`: the packets of `set` carrying THIS_ON's flow id (an ON owner's).
    OnPackets { dst: Reg, set: Reg },
}

/// A bytecode module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Must be [`FORMAT_VERSION`].
    pub version: u16,
    /// Lifetime and class.
    pub header: Header,
    /// The constant pool.
    pub consts: Vec<Const>,
    /// Declared parameters, in declaration order.
    pub params: Vec<Param>,
    /// The type of every register.
    pub regs: Vec<Ty>,
    /// The instructions.
    pub code: Vec<Insn>,
    /// Source line of every instruction (debug information; 0 when unknown).
    pub lines: Vec<u32>,
}

/// A module id: blake3 of the module's canonical bytes (`Debug` shows the
/// bytes; `Display`, the hex every tool prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModuleId(pub [u8; 32]);

impl std::fmt::Display for ModuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Why a module was refused. `at` is an instruction index where one applies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BytecodeError {
    /// The bytes are not a postcard module.
    #[error("malformed module: {0}")]
    Malformed(String),
    /// A structural rule is broken at an instruction.
    #[error("instruction {at}: {reason}")]
    At {
        /// Instruction index.
        at: usize,
        /// What is wrong.
        reason: String,
    },
    /// A structural rule about the module as a whole.
    #[error("invalid module: {0}")]
    Invalid(String),
}

impl Module {
    /// The canonical bytes: postcard, which gives one encoding per value.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding a module into memory cannot fail")
    }

    /// The module id of these bytes.
    pub fn id_of(bytes: &[u8]) -> ModuleId {
        ModuleId(*blake3::hash(bytes).as_bytes())
    }

    /// Decode and validate. Hostile bytes give an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Module, BytecodeError> {
        let (m, rest): (Module, _) = postcard::take_from_bytes(bytes).map_err(|e| BytecodeError::Malformed(e.to_string()))?;
        ensure!(rest.is_empty(), BytecodeError::Malformed(format!("{} trailing bytes", rest.len())));
        m.validate()?;
        // Canonical form: a module has one encoding, so one id.
        ensure!(m.encode() == bytes, BytecodeError::Malformed("not in canonical encoding".into()));
        Ok(m)
    }

    /// Check every structural rule (see [`Validator`]).
    pub fn validate(&self) -> Result<(), BytecodeError> {
        Validator::new(self)?.run()
    }
}

/// Registers an instruction reads and writes, and the types it requires of
/// them. Shared by the validator and by every consumer that walks the code.
pub fn operands(insn: &Insn, regs: &[Ty], consts: &[Const], params: &[Param]) -> Result<Operands, String> {
    use Insn::*;
    let ty = |r: Reg| regs.get(r as usize).copied().ok_or_else(|| format!("register r{r} out of range"));
    let mut o = Operands::default();
    match insn {
        Const { dst, k } => {
            let c = consts.get(*k as usize).ok_or_else(|| format!("constant #{k} out of range"))?;
            o.w(*dst, c.ty())
        }
        Param { dst, p } => {
            let p = params.get(*p as usize).ok_or_else(|| format!("parameter #{p} out of range"))?;
            o.w(*dst, p.default.ty())
        }
        ThisIp { dst } => o.w(*dst, Ty::Addr),
        ThisSubnet { dst } => o.w(*dst, Ty::Prefix),
        AllPackets { dst } => o.w(*dst, Ty::Set),
        Bool { dst, .. } => o.w(*dst, Ty::Bool),
        Copy { dst, src } => {
            let t = ty(*src)?;
            o.r(*src, t).w(*dst, t)
        }
        Not { dst, a } => o.r(*a, Ty::Bool).w(*dst, Ty::Bool),
        And { dst, a, b } | Or { dst, a, b } => o.r(*a, Ty::Bool).r(*b, Ty::Bool).w(*dst, Ty::Bool),
        Cmp { op, dst, a, b } => {
            let t = ty(*a)?;
            if !(t == Ty::Num || matches!(op, CmpOp::Eq | CmpOp::Ne) && matches!(t, Ty::Bool | Ty::Addr | Ty::Prefix | Ty::Str)) {
                return Err(format!("{op:?} is not defined on {t:?}"));
            }
            o.r(*a, t).r(*b, t).w(*dst, Ty::Bool)
        }
        InPrefix { dst, addr, prefix } => o.r(*addr, Ty::Addr).r(*prefix, Ty::Prefix).w(*dst, Ty::Bool),
        Mask { dst, addr, mask } => o.r(*addr, Ty::Addr).r(*mask, Ty::Addr).w(*dst, Ty::Addr),
        Arith { dst, a, b, .. } => o.r(*a, Ty::Num).r(*b, Ty::Num).w(*dst, Ty::Num),
        Concat { dst, a, b } => o.r(*a, Ty::Str).r(*b, Ty::Str).w(*dst, Ty::Str),
        FilterDst { dst, set, by } | FilterSrc { dst, set, by } => {
            let t = ty(*by)?;
            ensure!(matches!(t, Ty::Addr | Ty::Prefix), format!("filter key must be an address or a prefix, not {t:?}"));
            o.r(*set, Ty::Set).r(*by, t).w(*dst, Ty::Set)
        }
        GroupDst { dst, set } | GroupSrc { dst, set } => o.r(*set, Ty::Set).w(*dst, Ty::Groups),
        OnPackets { dst, set } => o.r(*set, Ty::Set).w(*dst, Ty::Set),
        GroupContent { dests, content, set } => {
            ensure!(dests != content, "GROUP_BY_CONTENT writes one register twice".into());
            o.r(*set, Ty::Set).w(*dests, Ty::AddrList).w(*content, Ty::Content)
        }
        ContainsString { dst, set, needle } => o.r(*set, Ty::Set).r(*needle, Ty::Str).w(*dst, Ty::Bool),
        Narrow { dst, set, a, b, .. } => o.r(*set, Ty::Set).r(*a, Ty::Num).r(*b, Ty::Num).w(*dst, Ty::Set),
        GroupField { dst, set, .. } => o.r(*set, Ty::Set).w(*dst, Ty::NumGroups),
        Count { dst, set } | DistinctDst { dst, set } | DistinctPorts { dst, set } => o.r(*set, Ty::Set).w(*dst, Ty::Num),
        Discard { set } => o.r(*set, Ty::Set),
        Generate { src, dst, payload } => {
            let t = ty(*payload)?;
            ensure!(matches!(t, Ty::Str | Ty::AddrList | Ty::Content), format!("GENERATE cannot carry {t:?}"));
            o.r(*src, Ty::Addr).r(*dst, Ty::Addr).r(*payload, t)
        }
        If { cond, .. } => o.r(*cond, Ty::Bool),
        Foreach { groups, key, set, .. } => {
            ensure!(key != set, "foreach binds one register twice".into());
            let by_number = ty(*groups)? == Ty::NumGroups;
            o.r(*groups, [Ty::Groups, Ty::NumGroups][by_number as usize]).w(*key, [Ty::Addr, Ty::Num][by_number as usize]).w(*set, Ty::Set)
        }
        // The condition is read after its block runs; the validator checks it there.
        While { .. } => &mut o,
    };
    for &(r, t) in o.reads.iter().chain(&o.writes) {
        let have = ty(r)?;
        ensure!(have == t, format!("register r{r} is {have:?}, used as {t:?}"));
    }
    Ok(o)
}

/// The registers an instruction reads and writes, with their required types.
#[derive(Default, Debug)]
pub struct Operands {
    /// Registers read.
    pub reads: Vec<(Reg, Ty)>,
    /// Registers written.
    pub writes: Vec<(Reg, Ty)>,
}

impl Operands {
    fn r(&mut self, r: Reg, t: Ty) -> &mut Self {
        self.reads.push((r, t));
        self
    }
    fn w(&mut self, r: Reg, t: Ty) -> &mut Self {
        self.writes.push((r, t));
        self
    }
}

/// The structural validator. It checks:
/// - the version, and that code, lines, registers, constants, parameters are within limits;
/// - constants: prefixes have zero host bits and length <= 32 (IPv4) or 128, IPv4 is spelt as IPv4;
/// - every operand register and constant exists and has the type its instruction needs;
/// - every block lies inside its parent, nesting is at most [`MAX_NESTING`];
/// - every register is written before it is read, on every path; registers a
///   `Foreach` writes (its key and set, and its body's) are dead after the loop,
///   its key and set are not assigned before it, and a body writes only
///   registers of its own (nothing computed from the groups escapes the loop);
/// - `While` bounds are at most [`MAX_LOOP_BOUND`] and its rank reads numeric registers;
/// - the class agrees with the effects: GENERATE needs `Multicast`, DISCARD
///   without GENERATE needs `Filtering`.
///
/// It does not check confinement or cost: that is the proof's job.
pub struct Validator<'m> {
    m: &'m Module,
    /// For each register, the position in `log` at which it became assigned
    /// on every path so far, or [`UNSET`].
    since: Vec<u32>,
    /// The registers assigned so far, in order; a block's assignments are its
    /// tail, so leaving a branch undoes just those (never the whole file).
    log: Vec<Reg>,
    /// The length of `log` when the innermost enclosing foreach's body began:
    /// registers assigned before it may not be written in the body.
    outer: u32,
    /// Scratch marks for the meet of two branches (all false between uses).
    marks: Vec<bool>,
    discards: bool,
    generates: bool,
}

const UNSET: u32 = u32::MAX;

fn at(at: usize, reason: impl Into<String>) -> BytecodeError {
    BytecodeError::At { at, reason: reason.into() }
}

impl<'m> Validator<'m> {
    fn new(m: &'m Module) -> Result<Self, BytecodeError> {
        if m.version != FORMAT_VERSION {
            return Err(BytecodeError::Invalid(format!(
                "unsupported bytecode version {} (this checker reads {FORMAT_VERSION})",
                m.version
            )));
        }
        let too_many = [m.code.len(), m.regs.len(), m.consts.len(), m.params.len()].iter().any(|&n| n > MAX_ITEMS);
        ensure!(!too_many, BytecodeError::Invalid(format!("more than {MAX_ITEMS} items in a table")));
        ensure!(m.lines.len() == m.code.len(), BytecodeError::Invalid("line table does not match the code".into()));
        for c in m.consts.iter().chain(m.params.iter().map(|p| &p.default)) {
            let v4 = |a: u128| a >> 32 == 0xffff;
            let bad = match *c {
                Const::Prefix(_, len) if len > 32 => true,
                Const::Addr6(a) => v4(a),
                Const::Prefix6(n, l) => l > 128 || l >= 96 && v4(n),
                _ => false,
            };
            if bad || c.prefix().is_some_and(|(n, l)| n & !crate::netmask(l) != 0) {
                return Err(BytecodeError::Invalid(format!("malformed or non-canonical address or prefix constant {c:?}")));
            }
        }
        let n = m.regs.len();
        Ok(Validator { m, since: vec![UNSET; n], log: vec![], outer: 0, marks: vec![false; n], discards: false, generates: false })
    }

    fn run(mut self) -> Result<(), BytecodeError> {
        self.block(0, self.m.code.len(), 0)?;
        let class = self.m.header.class;
        if self.generates && class != Class::Multicast {
            return Err(BytecodeError::Invalid(format!("a program that GENERATEs must be of class Multicast, not {class:?}")));
        }
        if self.discards && !self.generates && class != Class::Filtering {
            return Err(BytecodeError::Invalid(format!("a program that DISCARDs must be of class Filtering, not {class:?}")));
        }
        Ok(())
    }

    fn assigned(&self, r: Reg) -> bool {
        self.since[r as usize] != UNSET
    }

    fn assign(&mut self, r: Reg) {
        if !self.assigned(r) {
            self.since[r as usize] = self.log.len() as u32;
            self.log.push(r);
        }
    }

    /// Forget the assignments made since `mark`; returns them.
    fn undo(&mut self, mark: usize) -> Vec<Reg> {
        let tail = self.log.split_off(mark);
        for &r in &tail {
            self.since[r as usize] = UNSET;
        }
        tail
    }

    /// Check the instructions in `[start, end)`, a block at nesting `depth`.
    fn block(&mut self, start: usize, end: usize, depth: usize) -> Result<(), BytecodeError> {
        ensure!(depth <= MAX_NESTING, at(start, format!("blocks nested deeper than {MAX_NESTING}")));
        let mut pc = start;
        while pc < end {
            let insn = &self.m.code[pc];
            let ops = operands(insn, &self.m.regs, &self.m.consts, &self.m.params).map_err(|e| at(pc, e))?;
            if let Some(&(r, _)) = ops.reads.iter().find(|(r, _)| !self.assigned(*r)) {
                return Err(at(pc, format!("register r{r} is read before it is written")));
            }
            let sub = |len: u32, from: usize| -> Result<usize, BytecodeError> {
                let e = from.checked_add(len as usize).filter(|&e| e <= end);
                e.ok_or_else(|| at(pc, "block extends past its parent"))
            };
            let mark = self.log.len();
            match insn {
                Insn::If { then_len, else_len, .. } => {
                    let then_end = sub(*then_len, pc + 1)?;
                    let else_end = sub(*else_len, then_end)?;
                    self.block(pc + 1, then_end, depth + 1)?;
                    let then_regs = self.undo(mark);
                    self.block(then_end, else_end, depth + 1)?;
                    let else_regs = self.undo(mark);
                    // After the `if`, what both branches assigned.
                    else_regs.iter().for_each(|&r| self.marks[r as usize] = true);
                    for &r in &then_regs {
                        if self.marks[r as usize] {
                            self.assign(r);
                        }
                    }
                    else_regs.iter().for_each(|&r| self.marks[r as usize] = false);
                    pc = else_end;
                }
                Insn::Foreach { body_len, key, set, .. } => {
                    let body_end = sub(*body_len, pc + 1)?;
                    // The key and set registers live in the loop only: after it the VM holds
                    // the last group's, so a value from before the loop must not survive it.
                    if let Some(r) = [*key, *set].into_iter().find(|&r| self.assigned(r)) {
                        return Err(at(pc, format!("foreach writes r{r}, which is already assigned before the loop")));
                    }
                    self.write_at(pc, &ops)?;
                    let outer = std::mem::replace(&mut self.outer, mark as u32);
                    self.block(pc + 1, body_end, depth + 1)?;
                    self.outer = outer;
                    self.undo(mark);
                    pc = body_end;
                }
                Insn::While { cond_len, cond, body_len, bound, rank } => {
                    let cond_end = sub(*cond_len, pc + 1)?;
                    let body_end = sub(*body_len, cond_end)?;
                    ensure!(*bound <= MAX_LOOP_BOUND, at(pc, format!("loop bound {bound} exceeds {MAX_LOOP_BOUND}")));
                    for &(r, _) in &rank.terms {
                        if self.m.regs.get(r as usize) != Some(&Ty::Num) || !self.assigned(r) {
                            return Err(at(pc, format!("rank term r{r} is not an assigned number")));
                        }
                    }
                    self.block(pc + 1, cond_end, depth + 1)?;
                    if self.m.regs.get(*cond as usize) != Some(&Ty::Bool) || !self.assigned(*cond) {
                        return Err(at(pc, format!("loop condition r{cond} is not an assigned boolean")));
                    }
                    let after_cond = self.log.len();
                    self.block(cond_end, body_end, depth + 1)?;
                    self.undo(after_cond);
                    pc = body_end;
                }
                _ => {
                    self.discards |= matches!(insn, Insn::Discard { .. });
                    self.generates |= matches!(insn, Insn::Generate { .. });
                    self.write_at(pc, &ops)?;
                    pc += 1;
                }
            }
        }
        Ok(())
    }

    fn write_at(&mut self, pc: usize, ops: &Operands) -> Result<(), BytecodeError> {
        for &(r, _) in &ops.writes {
            if self.since[r as usize] < self.outer {
                return Err(at(pc, format!("register r{r} lives outside the enclosing foreach and cannot be written in its body")));
            }
            self.assign(r);
        }
        Ok(())
    }
}

/// Where the blocks of a structured instruction lie: `(start, end)` pairs of
/// the sub-blocks that follow the instruction at `pc`, and the index after it.
/// Valid only on a validated module.
pub fn blocks(code: &[Insn], pc: usize) -> (Vec<(usize, usize)>, usize) {
    let (first, second) = match &code[pc] {
        Insn::If { then_len, else_len, .. } => (*then_len, Some(*else_len)),
        Insn::Foreach { body_len, .. } => (*body_len, None),
        Insn::While { cond_len, body_len, .. } => (*cond_len, Some(*body_len)),
        _ => return (vec![], pc + 1),
    };
    let mid = pc + 1 + first as usize;
    match second {
        Some(len) => (vec![(pc + 1, mid), (mid, mid + len as usize)], mid + len as usize),
        None => (vec![(pc + 1, mid)], mid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firewall() -> Module {
        Module {
            version: FORMAT_VERSION,
            header: Header { lifetime_secs: 172_800, class: Class::Filtering },
            consts: vec![],
            params: vec![Param { name: "SrcIP".into(), default: Const::Addr(0xcb00_7109) }],
            regs: vec![Ty::Set, Ty::Addr, Ty::Set, Ty::Addr, Ty::Set],
            code: vec![
                Insn::AllPackets { dst: 0 },
                Insn::ThisIp { dst: 1 },
                Insn::FilterDst { dst: 2, set: 0, by: 1 },
                Insn::Param { dst: 3, p: 0 },
                Insn::FilterSrc { dst: 4, set: 2, by: 3 },
                Insn::Discard { set: 4 },
            ],
            lines: vec![3, 3, 3, 4, 4, 5],
        }
    }

    #[test]
    fn round_trip_is_canonical() {
        let m = firewall();
        let bytes = m.encode();
        assert_eq!(Module::decode(&bytes).unwrap(), m);
        assert_eq!(Module::id_of(&bytes), Module::id_of(&m.encode()));
    }

    #[test]
    fn refuses_read_before_write() {
        let mut m = firewall();
        m.code.swap(0, 2);
        let e = m.validate().unwrap_err();
        assert!(e.to_string().contains("read before it is written"), "{e}");
    }

    #[test]
    fn refuses_block_past_parent() {
        let mut m = firewall();
        m.regs.push(Ty::Bool);
        m.code.insert(5, Insn::Bool { dst: 5, value: true });
        m.code.insert(6, Insn::If { cond: 5, then_len: 2, else_len: 0 });
        m.lines = vec![0; m.code.len()];
        let e = m.validate().unwrap_err();
        assert!(e.to_string().contains("extends past its parent"), "{e}");
    }

    #[test]
    fn refuses_wrong_types_and_class() {
        let mut m = firewall();
        m.code[5] = Insn::Discard { set: 3 };
        assert!(m.validate().unwrap_err().to_string().contains("used as Set"));
        let mut m = firewall();
        m.header.class = Class::Monitoring;
        assert!(m.validate().unwrap_err().to_string().contains("Filtering"));
    }

    #[test]
    fn foreach_body_registers_are_dead_after() {
        let mut m = firewall();
        m.regs.extend([Ty::Groups, Ty::Addr, Ty::Set, Ty::Num]);
        m.code = vec![
            Insn::AllPackets { dst: 0 },
            Insn::GroupDst { dst: 5, set: 0 },
            Insn::Foreach { groups: 5, key: 6, set: 7, body_len: 1 },
            Insn::Count { dst: 8, set: 7 },
            Insn::Count { dst: 8, set: 7 },
        ];
        m.header.class = Class::Monitoring;
        m.lines = vec![0; 5];
        assert!(m.validate().unwrap_err().to_string().contains("r7 is read before"));
        m.code.pop();
        m.lines.pop();
        m.validate().unwrap();
    }

    /// Issue 9, finding 1: a foreach whose key register already holds THIS_IP.
    /// After the loop the VM holds the last sender's address there, so a GENERATE
    /// to it would go wherever a spoofed source points; the validator refuses the
    /// module before any proof is looked at. The same for the set register.
    #[test]
    fn foreach_key_or_set_assigned_before_the_loop_is_refused() {
        let mut m = firewall();
        m.header.class = Class::Multicast;
        m.consts = vec![Const::Str("x".into())];
        m.regs = vec![Ty::Set, Ty::Groups, Ty::Addr, Ty::Set, Ty::Str, Ty::Addr];
        m.code = vec![
            Insn::AllPackets { dst: 0 },
            Insn::ThisIp { dst: 2 },
            Insn::GroupSrc { dst: 1, set: 0 },
            Insn::Foreach { groups: 1, key: 2, set: 3, body_len: 0 },
            Insn::Const { dst: 4, k: 0 },
            Insn::ThisIp { dst: 5 },
            Insn::Generate { src: 5, dst: 2, payload: 4 },
        ];
        m.lines = vec![0; m.code.len()];
        assert!(m.validate().unwrap_err().to_string().contains("foreach writes r2, which is already assigned before the loop"));
        // The set register: a DISCARD of the last group after the loop.
        m.header.class = Class::Filtering;
        m.code = vec![
            Insn::AllPackets { dst: 0 },
            Insn::AllPackets { dst: 3 },
            Insn::GroupSrc { dst: 1, set: 0 },
            Insn::Foreach { groups: 1, key: 2, set: 3, body_len: 0 },
            Insn::Discard { set: 3 },
        ];
        m.lines = vec![0; m.code.len()];
        assert!(m.validate().unwrap_err().to_string().contains("foreach writes r3, which is already assigned before the loop"));
        // Fresh registers are fine, and still dead after the loop.
        m.code.remove(1);
        m.lines.pop();
        assert!(m.validate().unwrap_err().to_string().contains("r3 is read before it is written"));
    }

    /// Issue 15: IPv6 constants, and one spelling of each address and prefix.
    #[test]
    fn ipv6_constants_are_checked_and_canonical() {
        let doc: u128 = 0x2001_0db8 << 96;
        let with = |c: Const| {
            let mut m = firewall();
            m.params[0].default = c;
            m.validate()
        };
        with(Const::Addr6(doc | 9)).unwrap();
        let mut m = firewall();
        m.consts.push(Const::Prefix6(doc, 32));
        m.validate().unwrap();
        for bad in [
            Const::Addr6(crate::mapped(0xcb00_7109)),        // an IPv4 address spelt as IPv6
            Const::Prefix6(crate::mapped(0x0a00_0000), 104), // 10.0.0.0/8 spelt as IPv6
            Const::Prefix6(doc | 1, 32),                     // host bits
            Const::Prefix6(doc, 129),
            Const::Prefix(0x0a00_0000, 33),
        ] {
            let mut m = firewall();
            m.consts.push(bad.clone());
            let e = m.validate().unwrap_err().to_string();
            assert!(e.contains("malformed or non-canonical"), "{bad:?}: {e}");
        }
        assert_eq!(Const::Prefix(0x0a00_0000, 8).prefix(), Some((crate::mapped(0x0a00_0000), 104)));
        assert_eq!(Const::Addr(1).addr(), Some(0xffff_0000_0001));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let good = firewall().encode();
        for i in 0..good.len() {
            for b in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = Module::decode(&bad);
            }
            let _ = Module::decode(&good[..i]);
        }
    }
}
