//! The set-at-a-time VM: runs a checked module over a [`View`] (a client's
//! bucket of the window), as docs/SEMANTICS.md defines it.
//!
//! Design:
//! - **Packet sets are bitmaps** of `u64` words over view positions. A bucket
//!   of W = 256 packets is 4 words, so a set instruction is a handful of word
//!   operations plus one pass over one column (which the compiler vectorizes).
//! - **Registers live in a [`Machine`]**, the per-thread scratch state, laid
//!   out by type when the [`Program`] is built: scalars in one `u64` array,
//!   sets in one word array, groupings, strings and lists in reusable vectors.
//!   After warm-up a run allocates nothing.
//! - **Groupings** are `(keys, starts, members)`: groups in first-appearance
//!   order, members in arrival order, built with a generation-stamped hash
//!   table and a counting sort. A `foreach` whose body may overwrite the
//!   grouping it walks iterates over a snapshot (found when the program is
//!   built), so "variables assigned inside a body are local to it" holds.
//! - **CONTAINS_STRING** uses one `memchr::memmem::Finder` per constant or
//!   parameter needle, built once per [`Program`] or [`Instance`]; needles made
//!   at run time (concatenations) get a finder per call.
//! - **Metering**: every routine charges `unit x |S|` (GENERATE: `unit x
//!   items`) *before* it runs; a total above the certified complexity stops
//!   the run with [`Fault::OverBudget`]. Arithmetic overflow, a `while` past its
//!   bound, and resource limits the cost model does not see (uncharged steps,
//!   string growth, oversized generated packets) are faults too. A faulted
//!   run's effects are discarded by [`Instance::run`].
//!
//! - **Packet-local plans**: a straight-line program built only of
//!   address/prefix loads, `AllPackets`, the keyed GROUP_BY filters and
//!   DISCARD (the firewall) decides each packet on its own. Such a program
//!   also gets a `LocalPlan` when it is built, which the dispatch table runs
//!   directly over a small bucket's rows of the window (no register file, no
//!   gather): per packet, the set registers are bits of one word and each
//!   routine charges its unit when the packet is in its input set, so the
//!   metered cost is exactly the VM's (`unit x |S|` summed over packets). A
//!   run whose cost would exceed the certified complexity is re-run by the VM,
//!   which stops it at the exact instruction and reports the fault.
//!
//! **API Boundary:** a [`Program`] is made only from a
//! [`vinet_checker::Checked`]; no public path runs unchecked bytecode.

use std::hash::BuildHasher;
use std::sync::Arc;

use memchr::memmem::Finder;
use vinet_checker::bytecode::{self, ArithOp, CmpOp, Const, Insn, Reg, Ty};
use vinet_checker::policy::{ClientKind, UnitCosts};
use vinet_checker::{netmask, Checked, Module, ModuleId, Policy};

use crate::window::View;

/// Most instructions one run may execute. Instructions other than routines
/// cost nothing in the cost model, so a `while` with a large bound and no
/// routine in its body is certified at cost 0; this limit keeps such a run
/// from stalling the router (about a second of work).
pub const MAX_STEPS: u64 = 1 << 26;
/// Longest string or generated payload: the largest UDP payload of an IPv4
/// packet.
pub const MAX_PAYLOAD: usize = 65_535 - 20 - 8;
/// UDP port of generated packets, both ends.
pub const GENERATE_PORT: u16 = 9910;
/// Addresses per generated address-list packet.
pub const ADDRS_PER_PACKET: usize = 360;

/// Why a run stopped. Each is a bug report: the program's effects for the
/// window are thrown away and the router goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The metered cost exceeded the certified complexity: a bug in the
    /// checker's cost derivation or in the VM's metering.
    #[error("instruction {at} (line {line}): cost {spent} exceeds the certified complexity {limit}")]
    OverBudget {
        /// Instruction index.
        at: u32,
        /// Source line.
        line: u32,
        /// Cost metered including this instruction's charge.
        spent: u64,
        /// The certified complexity.
        limit: u64,
    },
    /// `+` or `*` overflowed 64 bits.
    #[error("instruction {at} (line {line}): arithmetic overflow")]
    Overflow {
        /// Instruction index.
        at: u32,
        /// Source line.
        line: u32,
    },
    /// A `while` ran more iterations than its certified bound.
    #[error("instruction {at} (line {line}): loop ran past its bound {bound}")]
    LoopBound {
        /// Instruction index.
        at: u32,
        /// Source line.
        line: u32,
        /// The certified bound.
        bound: u32,
    },
    /// More than [`MAX_STEPS`] instructions executed.
    #[error("instruction {at} (line {line}): more than {MAX_STEPS} steps in one run")]
    StepLimit {
        /// Instruction index.
        at: u32,
        /// Source line.
        line: u32,
    },
    /// A string or generated payload longer than [`MAX_PAYLOAD`].
    #[error("instruction {at} (line {line}): {what} longer than {MAX_PAYLOAD} bytes")]
    TooLarge {
        /// Instruction index.
        at: u32,
        /// Source line.
        line: u32,
        /// What was too large.
        what: &'static str,
    },
}

/// Why parameter values were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// More values than declared parameters.
    #[error("{given} parameter values given, the program declares {declared}")]
    TooMany {
        /// Values given.
        given: usize,
        /// Parameters declared.
        declared: usize,
    },
    /// A value of the wrong type.
    #[error("parameter {name}: expected {expected:?}, got {found:?}")]
    WrongType {
        /// Parameter name.
        name: String,
        /// Declared type.
        expected: Ty,
        /// Given type.
        found: Ty,
    },
    /// A prefix with host bits set or a length over 32.
    #[error("parameter {name}: malformed prefix")]
    BadPrefix {
        /// Parameter name.
        name: String,
    },
    /// A string longer than [`MAX_PAYLOAD`].
    #[error("parameter {name}: string longer than {MAX_PAYLOAD} bytes")]
    TooLong {
        /// Parameter name.
        name: String,
    },
    /// An edge-router program needs THIS_SUBNET_IP.
    #[error("an edge-router program needs THIS_SUBNET_IP")]
    NoSubnet,
}

/// The addresses a run is bound to: the client's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct This {
    /// THIS_IP, host byte order.
    pub ip: u32,
    /// THIS_SUBNET_IP: network (host bits zero) and length. For an end user,
    /// the /32 of THIS_IP.
    pub subnet: (u32, u8),
}

/// What a client installs: its identity and the program's parameter values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// THIS_IP.
    pub this_ip: u32,
    /// THIS_SUBNET_IP, for an edge-router client.
    pub this_subnet: Option<(u32, u8)>,
    /// Parameter values in declaration order; missing trailing values take
    /// the module's defaults.
    pub params: Vec<Const>,
}

impl Binding {
    /// An end-user binding with default parameters.
    pub fn end_user(this_ip: u32) -> Binding {
        Binding { this_ip, this_subnet: None, params: Vec::new() }
    }

    /// The identity part.
    pub fn this(&self) -> This {
        This { ip: self.this_ip, subnet: self.this_subnet.unwrap_or((self.this_ip, 32)) }
    }
}

/// What one successful run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Metered cost (at most the certified complexity).
    pub cost: u64,
    /// Instructions executed.
    pub steps: u64,
    /// Packets of the view marked dropped.
    pub dropped: u32,
    /// Packets generated.
    pub generated: u32,
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Scalar(u32),
    Set(u32),
    Groups(u32),
    Str(u32),
    Addrs(u32),
    Content(u32),
}

/// A checked module prepared for the VM: register layout, constant needle
/// searchers, foreach snapshot flags. Shared (`Arc`) by every instance of the
/// module.
pub struct Program {
    id: ModuleId,
    module: Module,
    complexity: u64,
    units: UnitCosts,
    client: ClientKind,
    window_packets: u32,
    policy_digest: [u8; 32],
    slots: Vec<Slot>,
    /// Registers per class: scalar, set, groups, str, addrs, content.
    counts: [u32; 6],
    const_finders: Vec<Option<Finder<'static>>>,
    snapshot: Vec<bool>,
    local: Option<LocalPlan>,
}

/// Most scalars a [`LocalPlan`] run keeps (on the stack); more, and the VM runs.
const LOCAL_SCALARS: usize = 16;

/// Where a scalar of a [`LocalPlan`] comes from (loaded once per run).
#[derive(Clone, Copy, Debug)]
enum ScalarSrc {
    /// A constant, encoded as the VM's scalar registers hold it.
    Value(u64),
    /// A (non-string) parameter.
    Param(u16),
    /// THIS_IP.
    ThisIp,
    /// THIS_SUBNET_IP.
    ThisSubnet,
}

/// One step of a [`LocalPlan`], on one packet. Set registers are bits of a
/// `u64`, scalars are slots loaded at the start of the run.
#[derive(Clone, Copy, Debug)]
enum LocalOp {
    /// `AllPackets`: the packet is in `dst`.
    All { dst: u8 },
    /// Set copy.
    Copy { dst: u8, src: u8 },
    /// GROUP_BY_DESTINATION / GROUP_BY_SOURCE keyed by scalar `by` (an
    /// address or a prefix): charges `unit` when the packet is in `set`.
    Filter { dst: u8, set: u8, by: u8, on_dst: bool, unit: u64 },
    /// DISCARD: charges `unit` and drops the packet when it is in `set`.
    Discard { set: u8, unit: u64 },
}

/// A packet-local program: see the module documentation. Built only for
/// straight-line code of loads, `AllPackets`, set copies, keyed filters and
/// DISCARD, where every scalar register is assigned once, before any use.
#[derive(Clone, Debug)]
pub(crate) struct LocalPlan {
    /// Scalar slots, in assignment order.
    scalars: Vec<ScalarSrc>,
    ops: Vec<LocalOp>,
    /// The common shape `DISCARD(F_k(...F_1(AllPackets, a_1)..., a_k))`
    /// (the firewall): the filters in order, and DISCARD's unit.
    chain: Option<(Vec<ChainStep>, u64)>,
    /// Bit i: scalar slot i holds a prefix (else an address or a number).
    prefix_slots: u64,
    /// Instructions of the module (each runs once: the code is straight).
    steps: u64,
}

/// The key of a chain filter once the parameters are bound.
#[derive(Clone, Copy, Debug)]
enum ChainKey {
    /// A constant or parameter: network and mask.
    Fixed(u32, u32),
    /// THIS_IP.
    ThisIp,
    /// THIS_SUBNET_IP.
    ThisSubnet,
}

/// A chain filter of an [`Instance`]: key, column, unit.
#[derive(Clone, Copy, Debug)]
struct BoundStep {
    key: ChainKey,
    on_dst: bool,
    unit: u64,
}

/// A chain filter as an end user's packet meets it (see
/// [`Instance::end_user_chain`]): the packet passes when its column (`on_dst`:
/// the destination, else the source) masked with `mask` equals `net`, or,
/// for a THIS_IP / THIS_SUBNET_IP key (`this`), the packet's destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EndUserStep {
    pub(crate) net: u32,
    pub(crate) mask: u32,
    pub(crate) on_dst: bool,
    pub(crate) this: bool,
    pub(crate) unit: u64,
}

/// One filter of a chain: key slot, column, unit.
#[derive(Clone, Copy, Debug)]
struct ChainStep {
    by: u8,
    on_dst: bool,
    unit: u64,
}

impl LocalPlan {
    fn compile(module: &Module, units: &UnitCosts) -> Option<LocalPlan> {
        if module.code.len() as u64 >= MAX_STEPS {
            return None;
        }
        // Costs are summed in u64 over at most 64 packets.
        let dearest = units.group_by_destination.max(units.group_by_source).max(units.discard);
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
        for insn in &module.code {
            match *insn {
                Insn::Const { dst, k } => {
                    let v = match module.consts.get(k as usize)? {
                        Const::Addr(a) => u64::from(*a),
                        Const::Prefix(n, l) => enc_prefix(*n, *l),
                        Const::Num(n) => *n,
                        Const::Str(_) => return None,
                    };
                    load(dst, ScalarSrc::Value(v), &mut scalar_slot)?;
                }
                Insn::Bool { dst, value } => load(dst, ScalarSrc::Value(u64::from(value)), &mut scalar_slot)?,
                Insn::Param { dst, p } => {
                    if matches!(module.params.get(p as usize)?.default, Const::Str(_)) {
                        return None;
                    }
                    load(dst, ScalarSrc::Param(p), &mut scalar_slot)?;
                }
                Insn::ThisIp { dst } => load(dst, ScalarSrc::ThisIp, &mut scalar_slot)?,
                Insn::ThisSubnet { dst } => load(dst, ScalarSrc::ThisSubnet, &mut scalar_slot)?,
                Insn::AllPackets { dst } => ops.push(LocalOp::All { dst: set(dst, &mut set_bit)? }),
                Insn::Copy { dst, src } => {
                    let src = set(src, &mut set_bit)?;
                    ops.push(LocalOp::Copy { dst: set(dst, &mut set_bit)?, src });
                }
                Insn::FilterDst { dst, set: s, by } | Insn::FilterSrc { dst, set: s, by } => {
                    let on_dst = matches!(insn, Insn::FilterDst { .. });
                    if !matches!(ty(by)?, Ty::Addr | Ty::Prefix) {
                        return None;
                    }
                    // The key must have been loaded already (a read before
                    // any assignment would see the VM's zeroed register).
                    let by = (*scalar_slot.get(by as usize)?)?;
                    let unit = if on_dst { units.group_by_destination } else { units.group_by_source };
                    let s = set(s, &mut set_bit)?;
                    ops.push(LocalOp::Filter { dst: set(dst, &mut set_bit)?, set: s, by, on_dst, unit });
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
            let LocalOp::Filter { dst, set, by, on_dst, unit } = *op else { return None };
            if set != cur || written >> dst & 1 == 1 {
                return None;
            }
            written |= 1 << dst;
            cur = dst;
            steps.push(ChainStep { by, on_dst, unit });
        }
        (*last == cur).then_some((steps, *du))
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("id", &self.id).field("complexity", &self.complexity).finish_non_exhaustive()
    }
}

impl Program {
    /// Prepare a checked module. The only public constructor.
    pub fn new(checked: &Checked) -> Program {
        Program::build(checked.module().clone(), checked.id(), checked.complexity(), checked.policy())
    }

    /// Test-only: a program from a hand-written module, which must pass the
    /// structural validator. Not available outside this crate's tests.
    #[cfg(test)]
    pub(crate) fn unchecked(module: Module, complexity: u64, policy: &vinet_checker::Policy) -> Program {
        module.validate().expect("test module must validate");
        let id = Module::id_of(&module.encode());
        Program::build(module, id, complexity, policy)
    }

    fn build(module: Module, id: ModuleId, complexity: u64, policy: &Policy) -> Program {
        let mut counts = [0u32; 6];
        let slots = module
            .regs
            .iter()
            .map(|t| {
                let (class, mk): (usize, fn(u32) -> Slot) = match t {
                    Ty::Bool | Ty::Num | Ty::Addr | Ty::Prefix => (0, Slot::Scalar),
                    Ty::Set => (1, Slot::Set),
                    Ty::Groups => (2, Slot::Groups),
                    Ty::Str => (3, Slot::Str),
                    Ty::AddrList => (4, Slot::Addrs),
                    Ty::Content => (5, Slot::Content),
                };
                counts[class] += 1;
                mk(counts[class] - 1)
            })
            .collect();
        let const_finders = module
            .consts
            .iter()
            .map(|c| match c {
                Const::Str(s) => Some(Finder::new(s.as_bytes()).into_owned()),
                _ => None,
            })
            .collect();
        let code = &module.code;
        let snapshot = (0..code.len())
            .map(|pc| match code[pc] {
                Insn::Foreach { groups, body_len, .. } => {
                    let body = code.get(pc + 1..pc + 1 + body_len as usize).unwrap_or(&[]);
                    body.iter().any(|i| {
                        bytecode::operands(i, &module.regs, &module.consts, &module.params)
                            .map_or(true, |o| o.writes.iter().any(|&(r, _)| r == groups))
                    })
                }
                _ => false,
            })
            .collect();
        let local = LocalPlan::compile(&module, &policy.unit_costs);
        Program {
            local,
            id,
            module,
            complexity,
            units: policy.unit_costs,
            client: policy.client,
            window_packets: policy.window_packets,
            policy_digest: policy.digest(),
            slots,
            counts,
            const_finders,
            snapshot,
        }
    }

    /// The module id.
    pub fn id(&self) -> ModuleId {
        self.id
    }
    /// The module.
    pub fn module(&self) -> &Module {
        &self.module
    }
    /// The certified complexity per window.
    pub fn complexity(&self) -> u64 {
        self.complexity
    }
    /// The client kind of the policy it was checked against.
    pub fn client_kind(&self) -> ClientKind {
        self.client
    }
    /// W of the policy it was checked against.
    pub fn window_packets(&self) -> u32 {
        self.window_packets
    }

    /// Digest of the policy it was checked against.
    pub fn policy_digest(&self) -> [u8; 32] {
        self.policy_digest
    }

    /// The index of a declared parameter.
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.module.params.iter().position(|p| p.name == name)
    }

    /// Bind parameter values (checked against the declared types; missing
    /// trailing values take the defaults) into a runnable instance.
    pub fn instantiate(self: &Arc<Self>, params: &[Const]) -> Result<Instance, BindError> {
        let declared = &self.module.params;
        if params.len() > declared.len() {
            return Err(BindError::TooMany { given: params.len(), declared: declared.len() });
        }
        let mut values = Vec::with_capacity(declared.len());
        for (i, d) in declared.iter().enumerate() {
            let v = params.get(i).unwrap_or(&d.default);
            if v.ty() != d.default.ty() {
                return Err(BindError::WrongType { name: d.name.clone(), expected: d.default.ty(), found: v.ty() });
            }
            match v {
                Const::Prefix(net, len) if *len > 32 || net & !netmask(*len) != 0 => {
                    return Err(BindError::BadPrefix { name: d.name.clone() });
                }
                Const::Str(s) if s.len() > MAX_PAYLOAD => return Err(BindError::TooLong { name: d.name.clone() }),
                _ => {}
            }
            values.push(v.clone());
        }
        let param_finders = values
            .iter()
            .map(|c| match c {
                Const::Str(s) => Some(Finder::new(s.as_bytes()).into_owned()),
                _ => None,
            })
            .collect();
        let chain = self.local.as_ref().and_then(|plan| {
            let (steps, du) = plan.chain.as_ref()?;
            let bound = steps.iter().map(|st| {
                let prefix = plan.prefix_slots >> st.by & 1 == 1;
                let fixed = |v: u64| {
                    if prefix {
                        let (n, l) = dec_prefix(v);
                        ChainKey::Fixed(n, netmask(l))
                    } else {
                        ChainKey::Fixed(v as u32, u32::MAX)
                    }
                };
                let key = match plan.scalars.get(st.by as usize)? {
                    ScalarSrc::Value(v) => fixed(*v),
                    ScalarSrc::Param(p) => match values.get(*p as usize)? {
                        Const::Addr(a) => fixed(u64::from(*a)),
                        Const::Prefix(n, l) => fixed(enc_prefix(*n, *l)),
                        Const::Num(n) => fixed(*n),
                        Const::Str(_) => return None,
                    },
                    ScalarSrc::ThisIp => ChainKey::ThisIp,
                    ScalarSrc::ThisSubnet => ChainKey::ThisSubnet,
                };
                Some(BoundStep { key, on_dst: st.on_dst, unit: st.unit })
            });
            Some((bound.collect::<Option<Vec<_>>>()?, *du))
        });
        Ok(Instance { program: Arc::clone(self), params: values, param_finders, chain })
    }
}

/// A program with its parameter values bound: what identical installations
/// share.
pub struct Instance {
    program: Arc<Program>,
    params: Vec<Const>,
    param_finders: Vec<Option<Finder<'static>>>,
    /// The program's chain plan with the parameters bound.
    chain: Option<(Vec<BoundStep>, u64)>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").field("program", &self.program.id).field("params", &self.params).finish()
    }
}

impl Instance {
    /// Its program.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }
    /// Its parameter values.
    pub fn params(&self) -> &[Const] {
        &self.params
    }

    /// Whether the program has a packet-local plan (see the module
    /// documentation).
    pub fn is_packet_local(&self) -> bool {
        self.program.local.is_some()
    }

    /// Run the packet-local plan over packets `rows` (at most 64) of the
    /// columns `src` and `dst`, on behalf of `this`: the run's statistics and
    /// a bitmap of the dropped rows (bit k: `rows[k]`). `None` when the
    /// program has no plan, when there are more than 64 rows, or when the
    /// run would cost more than the certified complexity (the VM must then
    /// run it, to stop it where it faults); nothing is changed in that case.
    pub(crate) fn run_local(&self, this: This, src: &[u32], dst: &[u32], rows: &[u32]) -> Option<(RunStats, u64)> {
        if rows.len() > 64 {
            return None;
        }
        if self.chain.is_some() {
            return self.run_chain(this, src, dst, rows);
        }
        let plan = self.program.local.as_ref()?;
        if plan.scalars.len() > LOCAL_SCALARS {
            return None;
        }
        // Every scalar as a (net, mask) key, as the VM's filter reads it
        // (an address is its own net with a full mask).
        let mut keys = [(0u32, 0u32); LOCAL_SCALARS];
        for (i, (k, s)) in keys.iter_mut().zip(&plan.scalars).enumerate() {
            let v = match *s {
                ScalarSrc::Value(x) => x,
                ScalarSrc::ThisIp => u64::from(this.ip),
                ScalarSrc::ThisSubnet => enc_prefix(this.subnet.0, this.subnet.1),
                ScalarSrc::Param(p) => match self.params.get(p as usize) {
                    Some(Const::Addr(a)) => u64::from(*a),
                    Some(Const::Prefix(n, l)) => enc_prefix(*n, *l),
                    Some(Const::Num(n)) => *n,
                    _ => 0,
                },
            };
            *k = if plan.prefix_slots >> i & 1 == 1 {
                let (n, l) = dec_prefix(v);
                (n, netmask(l))
            } else {
                (v as u32, u32::MAX)
            };
        }
        let mut cost = 0u64;
        let mut drops = 0u64;
        {
            for (k, &row) in rows.iter().enumerate() {
                let (s_addr, d_addr) = (*src.get(row as usize)?, *dst.get(row as usize)?);
                let mut bits = 0u64;
                let mut dropped = 0u64;
                for op in &plan.ops {
                    match *op {
                        LocalOp::All { dst } => bits |= 1 << dst,
                        LocalOp::Copy { dst, src } => bits = bits & !(1 << dst) | (bits >> src & 1) << dst,
                        LocalOp::Filter { dst, set, by, on_dst, unit } => {
                            let inside = bits >> set & 1;
                            cost += unit * inside;
                            let (net, mask) = keys[by as usize];
                            let col = if on_dst { d_addr } else { s_addr };
                            let hit = inside & u64::from(col & mask == net);
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
        }
        if cost > self.program.complexity {
            return None;
        }
        Some((RunStats { cost, steps: plan.steps, dropped: drops.count_ones(), generated: 0 }, drops))
    }

    /// The most one packet can cost under the chain plan (every filter's unit
    /// and DISCARD's), if the program has one.
    pub(crate) fn chain_packet_bound(&self) -> Option<u64> {
        let (chain, du) = self.chain.as_ref()?;
        chain.iter().try_fold(*du, |a, f| a.checked_add(f.unit))
    }

    /// The chain plan's decision for one packet (source, destination): its
    /// cost and whether it is dropped. `(0, false)` without a chain plan.
    #[inline]
    pub(crate) fn chain_packet(&self, this: This, s_addr: u32, d_addr: u32) -> (u64, bool) {
        let Some((chain, du)) = self.chain.as_ref() else { return (0, false) };
        let mut cost = 0u64;
        for f in chain {
            cost += f.unit;
            let (net, mask) = match f.key {
                ChainKey::Fixed(n, m) => (n, m),
                ChainKey::ThisIp => (this.ip, u32::MAX),
                ChainKey::ThisSubnet => (this.subnet.0, netmask(this.subnet.1)),
            };
            if (if f.on_dst { d_addr } else { s_addr }) & mask != net {
                return (cost, false);
            }
        }
        (cost + du, true)
    }

    /// The chain plan's filters for an end user's packets, whose THIS_IP
    /// (and THIS_SUBNET_IP, the same address as a /32) is the packet's
    /// destination: each as [`EndUserStep`], with DISCARD's unit. The
    /// decision of [`Instance::chain_packet`] with `this` = the destination.
    pub(crate) fn end_user_chain(&self) -> Option<(Vec<EndUserStep>, u64)> {
        let (chain, du) = self.chain.as_ref()?;
        let steps = chain
            .iter()
            .map(|f| {
                let (net, mask, this) = match f.key {
                    ChainKey::Fixed(n, m) => (n, m, false),
                    ChainKey::ThisIp | ChainKey::ThisSubnet => (0, u32::MAX, true),
                };
                EndUserStep { net, mask, on_dst: f.on_dst, this, unit: f.unit }
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
    pub(crate) fn run_chain(&self, this: This, src: &[u32], dst: &[u32], rows: &[u32]) -> Option<(RunStats, u64)> {
        let (chain, du) = self.chain.as_ref()?;
        if rows.len() > 64 {
            return None;
        }
        let mut cost = 0u64;
        let mut drops = 0u64;
        for (k, &row) in rows.iter().enumerate() {
            let (s_addr, d_addr) = (*src.get(row as usize)?, *dst.get(row as usize)?);
            let mut pass = true;
            for f in chain {
                cost += f.unit;
                let (net, mask) = match f.key {
                    ChainKey::Fixed(n, m) => (n, m),
                    ChainKey::ThisIp => (this.ip, u32::MAX),
                    ChainKey::ThisSubnet => {
                        let len = u32::from(this.subnet.1.min(32));
                        (this.subnet.0, u32::MAX.checked_shl(32 - len).unwrap_or(0))
                    }
                };
                if (if f.on_dst { d_addr } else { s_addr }) & mask != net {
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
        Some((RunStats { cost, steps, dropped: drops.count_ones(), generated: 0 }, drops))
    }

    /// A chain plan over a whole view, a word of 64 packets at a time (the
    /// VM's own set representation and filter, without the interpretation):
    /// the run's effects in `m` as [`Instance::run`] leaves them. `None`
    /// (and nothing changed that matters) when the program is not a chain
    /// or the run would cost more than the certified complexity.
    fn run_chain_view(&self, this: This, v: View<'_>, m: &mut Machine) -> Option<RunStats> {
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
        let mut cost = 0u64;
        for f in chain {
            cost = f.unit.checked_mul(popcount(set)).and_then(|c| c.checked_add(cost)).filter(|&c| c <= limit)?;
            let (net, mask) = match f.key {
                ChainKey::Fixed(n, m) => (n, m),
                ChainKey::ThisIp => (this.ip, u32::MAX),
                ChainKey::ThisSubnet => (this.subnet.0, netmask(this.subnet.1)),
            };
            let col = if f.on_dst { v.dst } else { v.src };
            for (w, word) in set.iter_mut().enumerate() {
                if *word == 0 {
                    continue;
                }
                let base = w * 64;
                let bits = match col.get(base..base + 64) {
                    Some(full) => match_bits(full, net, mask),
                    None => {
                        col.get(base..).unwrap_or(&[]).iter().enumerate().fold(0u64, |b, (j, &x)| b | (u64::from(x & mask == net) << j))
                    }
                };
                *word &= bits;
            }
        }
        let dropped = popcount(set);
        cost = du.checked_mul(dropped).and_then(|c| c.checked_add(cost)).filter(|&c| c <= limit)?;
        m.effects.gen_bytes.clear();
        m.effects.gen.clear();
        let steps = self.program.local.as_ref().map_or(0, |p| p.steps);
        Some(RunStats { cost, steps, dropped: dropped as u32, generated: 0 })
    }

    /// Run once over `view` (AllPackets) on behalf of client `this`. On
    /// success the run's effects are in [`Machine::effects`]; on a fault they
    /// are cleared.
    pub fn run(&self, this: This, view: View<'_>, m: &mut Machine) -> Result<RunStats, Fault> {
        if !m.interpret_only {
            if let Some(st) = self.run_chain_view(this, view, m) {
                return Ok(st);
            }
        }
        let p = &*self.program;
        m.prepare(p, view.len());
        let mut r = Run { p, inst: self, this, v: view, m };
        let res = r.block(0, p.module.code.len());
        let m = r.m;
        match res {
            Ok(()) => Ok(RunStats {
                cost: m.spent,
                steps: m.steps,
                dropped: m.effects.drops.iter().map(|w| w.count_ones()).sum(),
                generated: m.effects.gen.len() as u32,
            }),
            Err(f) => {
                m.effects.clear();
                Err(f)
            }
        }
    }
}

/// The effects of one run, over view positions.
#[derive(Default, Debug)]
pub struct Effects {
    pub(crate) drops: Vec<u64>,
    pub(crate) gen_bytes: Vec<u8>,
    pub(crate) gen: Vec<(u32, u32)>,
}

impl Effects {
    fn clear(&mut self) {
        self.drops.iter_mut().for_each(|w| *w = 0);
        self.gen_bytes.clear();
        self.gen.clear();
    }
    /// Whether view position `i` is dropped.
    pub fn is_dropped(&self, i: usize) -> bool {
        self.drops.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }
    /// Generated packets (IPv4 bytes).
    pub fn generated(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.gen.iter().map(|&(o, l)| &self.gen_bytes[o as usize..o as usize + l as usize])
    }
}

#[derive(Default, Clone, Debug)]
struct Groups {
    keys: Vec<u32>,
    /// `starts[g]..starts[g + 1]` are group g's members.
    starts: Vec<u32>,
    members: Vec<u32>,
}

#[derive(Default, Clone, Copy, Debug)]
enum FinderSrc {
    #[default]
    None,
    Const(u16),
    Param(u16),
}

#[derive(Default, Clone, Debug)]
struct StrVal {
    bytes: Vec<u8>,
    finder: FinderSrc,
}

/// A map from `u64` keys to `u32` ids for up to a window of keys, cleared in
/// O(1) by a generation stamp.
#[derive(Default, Debug)]
struct KeyTable {
    keys: Vec<u64>,
    vals: Vec<u32>,
    stamp: Vec<u32>,
    gen: u32,
    mask: usize,
}

impl KeyTable {
    fn reset(&mut self, n: usize) {
        let cap = (n * 2).next_power_of_two().max(16);
        if cap > self.keys.len() {
            self.keys = vec![0; cap];
            self.vals = vec![0; cap];
            self.stamp = vec![0; cap];
            self.gen = 0;
        }
        self.mask = self.keys.len() - 1;
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.gen = 1;
        }
    }

    /// The id of `key`, inserting `new` if absent: `(id, inserted)`.
    #[inline]
    fn get_or_insert(&mut self, key: u64, new: u32) -> (u32, bool) {
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask;
        loop {
            if self.stamp[i] != self.gen {
                self.stamp[i] = self.gen;
                self.keys[i] = key;
                self.vals[i] = new;
                return (new, true);
            }
            if self.keys[i] == key {
                return (self.vals[i], false);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// Per-thread VM state: registers and scratch, reused across runs.
pub struct Machine {
    n: usize,
    nw: usize,
    scal: Vec<u64>,
    sets: Vec<u64>,
    groups: Vec<Groups>,
    strs: Vec<StrVal>,
    addrs: Vec<Vec<u32>>,
    /// Content lists: view positions of the first packet with each payload.
    contents: Vec<Vec<u32>>,
    snaps: Vec<Groups>,
    flows: Groups,
    depth: usize,
    table: KeyTable,
    tmp: Vec<u32>,
    tmp2: Vec<u32>,
    tmp3: Vec<u32>,
    chain: Vec<u32>,
    stream: Vec<u8>,
    strbuf: Vec<u8>,
    hasher: std::collections::hash_map::RandomState,
    effects: Effects,
    spent: u64,
    steps: u64,
    /// [`MAX_STEPS`], lowered by tests.
    step_limit: u64,
    /// Always interpret (tests compare the chain plans with the VM).
    pub(crate) interpret_only: bool,
}

impl Default for Machine {
    fn default() -> Machine {
        Machine::new()
    }
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine").field("n", &self.n).finish_non_exhaustive()
    }
}

impl Machine {
    /// A new machine.
    pub fn new() -> Machine {
        Machine {
            n: 0,
            nw: 0,
            scal: Vec::new(),
            sets: Vec::new(),
            groups: Vec::new(),
            strs: Vec::new(),
            addrs: Vec::new(),
            contents: Vec::new(),
            snaps: Vec::new(),
            flows: Groups::default(),
            depth: 0,
            table: KeyTable::default(),
            tmp: Vec::new(),
            tmp2: Vec::new(),
            tmp3: Vec::new(),
            chain: Vec::new(),
            stream: Vec::new(),
            strbuf: Vec::new(),
            hasher: std::collections::hash_map::RandomState::new(),
            effects: Effects::default(),
            spent: 0,
            steps: 0,
            step_limit: MAX_STEPS,
            interpret_only: false,
        }
    }

    /// Run every program by interpretation, never by a compiled plan (same
    /// results, slower): to measure the interpreter, or to compare the two.
    pub fn set_interpret_only(&mut self, on: bool) {
        self.interpret_only = on;
    }

    /// The effects of the last successful run.
    pub fn effects(&self) -> &Effects {
        &self.effects
    }

    fn prepare(&mut self, p: &Program, n: usize) {
        self.n = n;
        self.nw = n.div_ceil(64);
        let [ns, nset, ng, nstr, na, nc] = p.counts.map(|c| c as usize);
        self.scal.clear();
        self.scal.resize(ns, 0);
        self.sets.clear();
        self.sets.resize(nset * self.nw, 0);
        if self.groups.len() < ng {
            self.groups.resize_with(ng, Groups::default);
        }
        if self.strs.len() < nstr {
            self.strs.resize_with(nstr, StrVal::default);
        }
        if self.addrs.len() < na {
            self.addrs.resize_with(na, Vec::new);
        }
        if self.contents.len() < nc {
            self.contents.resize_with(nc, Vec::new);
        }
        self.effects.drops.clear();
        self.effects.drops.resize(self.nw, 0);
        self.effects.gen_bytes.clear();
        self.effects.gen.clear();
        self.depth = 0;
        self.spent = 0;
        self.steps = 0;
    }
}

/// Bit j set when `col[j] & mask == net` (`col` at most 64 long). Written as
/// a byte-per-lane compare, which the compiler vectorizes, then packed eight
/// lanes at a time with one multiply.
#[inline]
fn match_bits(col: &[u32], net: u32, mask: u32) -> u64 {
    let mut lanes = [0u8; 64];
    for (o, &x) in lanes.iter_mut().zip(col) {
        *o = u8::from(x & mask == net);
    }
    let mut bits = 0u64;
    for (k, eight) in lanes.chunks_exact(8).enumerate() {
        let b = u64::from_le_bytes([eight[0], eight[1], eight[2], eight[3], eight[4], eight[5], eight[6], eight[7]]);
        // Gathers the low bit of each byte into the top byte, byte j to bit j.
        bits |= (b.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
    }
    bits
}

#[inline]
fn for_each_bit(words: &[u64], mut f: impl FnMut(usize)) {
    for (wi, &w) in words.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            f(wi * 64 + w.trailing_zeros() as usize);
            w &= w - 1;
        }
    }
}

fn popcount(words: &[u64]) -> u64 {
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

fn enc_prefix(net: u32, len: u8) -> u64 {
    (u64::from(net) << 8) | u64::from(len)
}

fn dec_prefix(x: u64) -> (u32, u8) {
    ((x >> 8) as u32, x as u8)
}

/// Internet checksum (RFC 1071) of `data` added to `sum`, unfolded.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Append one IPv4/UDP packet (SEMANTICS "GENERATE") to `fx`.
fn emit(fx: &mut Effects, src: u32, dst: u32, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let off = fx.gen_bytes.len();
    let b = &mut fx.gen_bytes;
    // version/IHL, TOS, total length, id 0, flags/fragment 0 (DF clear), TTL 64, UDP, checksum
    b.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 17, 0, 0]);
    b.extend_from_slice(&src.to_be_bytes());
    b.extend_from_slice(&dst.to_be_bytes());
    let ip_sum = fold(sum16(0, &b[off..off + 20]));
    b[off + 10..off + 12].copy_from_slice(&ip_sum.to_be_bytes());
    b.extend_from_slice(&GENERATE_PORT.to_be_bytes());
    b.extend_from_slice(&GENERATE_PORT.to_be_bytes());
    b.extend_from_slice(&(udp_len as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(payload);
    // UDP checksum over the pseudo-header, the UDP header and the payload.
    let mut s = sum16(0, &b[off + 12..off + 20]);
    s += 17 + udp_len as u32;
    s = sum16(s, &b[off + 20..]);
    let mut c = fold(s);
    if c == 0 {
        c = 0xffff;
    }
    b[off + 26..off + 28].copy_from_slice(&c.to_be_bytes());
    fx.gen.push((off as u32, total as u32));
}

struct Run<'r, 'v> {
    p: &'r Program,
    inst: &'r Instance,
    this: This,
    v: View<'v>,
    m: &'r mut Machine,
}

impl Run<'_, '_> {
    fn line(&self, pc: usize) -> u32 {
        self.p.module.lines.get(pc).copied().unwrap_or(0)
    }

    #[inline]
    fn charge(&mut self, pc: usize, unit: u64, n: u64) -> Result<(), Fault> {
        let limit = self.p.complexity;
        let spent = unit.checked_mul(n).and_then(|c| c.checked_add(self.m.spent)).unwrap_or(u64::MAX);
        if spent > limit {
            return Err(Fault::OverBudget { at: pc as u32, line: self.line(pc), spent, limit });
        }
        self.m.spent = spent;
        Ok(())
    }

    fn slot(&self, r: Reg) -> Slot {
        self.p.slots[r as usize]
    }
    #[inline]
    fn sc(&self, r: Reg) -> u64 {
        match self.slot(r) {
            Slot::Scalar(i) => self.m.scal[i as usize],
            s => unreachable!("register r{r} is {s:?}, not a scalar (validated module)"),
        }
    }
    #[inline]
    fn set_sc(&mut self, r: Reg, v: u64) {
        match self.slot(r) {
            Slot::Scalar(i) => self.m.scal[i as usize] = v,
            s => unreachable!("register r{r} is {s:?}, not a scalar (validated module)"),
        }
    }
    /// Word offset of a set register.
    #[inline]
    fn so(&self, r: Reg) -> usize {
        match self.slot(r) {
            Slot::Set(i) => i as usize * self.m.nw,
            s => unreachable!("register r{r} is {s:?}, not a set (validated module)"),
        }
    }
    #[inline]
    fn set_words(&self, r: Reg) -> &[u64] {
        let o = self.so(r);
        &self.m.sets[o..o + self.m.nw]
    }
    #[inline]
    fn card(&self, r: Reg) -> u64 {
        popcount(self.set_words(r))
    }
    fn idx(&self, r: Reg) -> usize {
        match self.slot(r) {
            Slot::Groups(i) | Slot::Str(i) | Slot::Addrs(i) | Slot::Content(i) => i as usize,
            s => unreachable!("register r{r} is {s:?} (validated module)"),
        }
    }

    fn block(&mut self, start: usize, end: usize) -> Result<(), Fault> {
        let p = self.p;
        let inst = self.inst;
        let code = &p.module.code;
        let mut pc = start;
        while pc < end {
            self.m.steps += 1;
            if self.m.steps > self.m.step_limit {
                return Err(Fault::StepLimit { at: pc as u32, line: self.line(pc) });
            }
            let u = &p.units;
            match code[pc] {
                Insn::Const { dst, k } => {
                    let c = &p.module.consts[k as usize];
                    self.load(dst, c, FinderSrc::Const(k));
                }
                Insn::Param { dst, p: pi } => {
                    let c = &inst.params[pi as usize];
                    self.load(dst, c, FinderSrc::Param(pi));
                }
                Insn::ThisIp { dst } => self.set_sc(dst, u64::from(self.this.ip)),
                Insn::ThisSubnet { dst } => self.set_sc(dst, enc_prefix(self.this.subnet.0, self.this.subnet.1)),
                Insn::AllPackets { dst } => {
                    let (o, nw, n) = (self.so(dst), self.m.nw, self.m.n);
                    for w in 0..nw {
                        let bits = n - w * 64;
                        self.m.sets[o + w] = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                    }
                }
                Insn::Bool { dst, value } => self.set_sc(dst, u64::from(value)),
                Insn::Copy { dst, src } => self.copy(dst, src),
                Insn::Not { dst, a } => self.set_sc(dst, u64::from(self.sc(a) == 0)),
                Insn::And { dst, a, b } => self.set_sc(dst, u64::from(self.sc(a) != 0 && self.sc(b) != 0)),
                Insn::Or { dst, a, b } => self.set_sc(dst, u64::from(self.sc(a) != 0 || self.sc(b) != 0)),
                Insn::Cmp { op, dst, a, b } => {
                    let r = match (self.slot(a), op) {
                        (Slot::Str(_), CmpOp::Eq) => self.m.strs[self.idx(a)].bytes == self.m.strs[self.idx(b)].bytes,
                        (Slot::Str(_), _) => self.m.strs[self.idx(a)].bytes != self.m.strs[self.idx(b)].bytes,
                        _ => {
                            let (x, y) = (self.sc(a), self.sc(b));
                            match op {
                                CmpOp::Eq => x == y,
                                CmpOp::Ne => x != y,
                                CmpOp::Lt => x < y,
                                CmpOp::Le => x <= y,
                                CmpOp::Gt => x > y,
                                CmpOp::Ge => x >= y,
                            }
                        }
                    };
                    self.set_sc(dst, u64::from(r));
                }
                Insn::InPrefix { dst, addr, prefix } => {
                    let (net, len) = dec_prefix(self.sc(prefix));
                    let a = self.sc(addr) as u32;
                    self.set_sc(dst, u64::from(a & netmask(len) == net));
                }
                Insn::Mask { dst, addr, mask } => self.set_sc(dst, self.sc(addr) & self.sc(mask)),
                Insn::Arith { op, dst, a, b } => {
                    let (x, y) = (self.sc(a), self.sc(b));
                    let r = match op {
                        ArithOp::Add => x.checked_add(y),
                        ArithOp::Sub => Some(x.saturating_sub(y)),
                        ArithOp::Mul => x.checked_mul(y),
                    };
                    let r = r.ok_or(Fault::Overflow { at: pc as u32, line: self.line(pc) })?;
                    self.set_sc(dst, r);
                }
                Insn::Concat { dst, a, b } => {
                    let (ia, ib, id) = (self.idx(a), self.idx(b), self.idx(dst));
                    let len = self.m.strs[ia].bytes.len() + self.m.strs[ib].bytes.len();
                    if len > MAX_PAYLOAD {
                        return Err(Fault::TooLarge { at: pc as u32, line: self.line(pc), what: "a string" });
                    }
                    let mut out = std::mem::take(&mut self.m.strbuf);
                    out.clear();
                    out.extend_from_slice(&self.m.strs[ia].bytes);
                    out.extend_from_slice(&self.m.strs[ib].bytes);
                    let d = &mut self.m.strs[id];
                    std::mem::swap(&mut d.bytes, &mut out);
                    d.finder = FinderSrc::None;
                    self.m.strbuf = out;
                }
                Insn::FilterDst { dst, set, by } => {
                    self.charge(pc, u.group_by_destination, self.card(set))?;
                    self.filter(dst, set, by, true);
                }
                Insn::FilterSrc { dst, set, by } => {
                    self.charge(pc, u.group_by_source, self.card(set))?;
                    self.filter(dst, set, by, false);
                }
                Insn::GroupDst { dst, set } => {
                    self.charge(pc, u.group_by_destination, self.card(set))?;
                    self.group(dst, set, true);
                }
                Insn::GroupSrc { dst, set } => {
                    self.charge(pc, u.group_by_source, self.card(set))?;
                    self.group(dst, set, false);
                }
                Insn::GroupContent { dests, content, set } => {
                    self.charge(pc, u.group_by_content, self.card(set))?;
                    self.group_content(dests, content, set);
                }
                Insn::ContainsString { dst, set, needle } => {
                    self.charge(pc, u.contains_string, self.card(set))?;
                    let r = self.contains(set, needle);
                    self.set_sc(dst, u64::from(r));
                }
                Insn::Count { dst, set } => {
                    let n = self.card(set);
                    self.charge(pc, u.count, n)?;
                    self.set_sc(dst, n);
                }
                Insn::DistinctDst { dst, set } => {
                    self.charge(pc, u.distinct_destinations, self.card(set))?;
                    let n = self.distinct_dst(set);
                    self.set_sc(dst, n);
                }
                Insn::Discard { set } => {
                    self.charge(pc, u.discard, self.card(set))?;
                    let o = self.so(set);
                    let nw = self.m.nw;
                    let Machine { sets, effects, .. } = &mut *self.m;
                    for (d, s) in effects.drops.iter_mut().zip(&sets[o..o + nw]) {
                        *d |= s;
                    }
                }
                Insn::Generate { src, dst, payload } => self.generate(pc, src, dst, payload)?,
                Insn::If { cond, then_len, else_len } => {
                    let t = pc + 1 + then_len as usize;
                    let e = t + else_len as usize;
                    if self.sc(cond) != 0 {
                        self.block(pc + 1, t)?;
                    } else {
                        self.block(t, e)?;
                    }
                    pc = e;
                    continue;
                }
                Insn::Foreach { groups, key, set, body_len } => {
                    let end_body = pc + 1 + body_len as usize;
                    self.foreach(pc, groups, key, set, end_body)?;
                    pc = end_body;
                    continue;
                }
                Insn::While { cond_len, cond, body_len, bound, .. } => {
                    let c_end = pc + 1 + cond_len as usize;
                    let b_end = c_end + body_len as usize;
                    let mut iters: u32 = 0;
                    loop {
                        self.block(pc + 1, c_end)?;
                        if self.sc(cond) == 0 {
                            break;
                        }
                        if iters >= bound {
                            return Err(Fault::LoopBound { at: pc as u32, line: self.line(pc), bound });
                        }
                        iters += 1;
                        self.charge(pc, 1, 1)?;
                        self.block(c_end, b_end)?;
                    }
                    pc = b_end;
                    continue;
                }
            }
            pc += 1;
        }
        Ok(())
    }

    fn load(&mut self, dst: Reg, c: &Const, src: FinderSrc) {
        match *c {
            Const::Addr(a) => self.set_sc(dst, u64::from(a)),
            Const::Prefix(net, len) => self.set_sc(dst, enc_prefix(net, len)),
            Const::Num(n) => self.set_sc(dst, n),
            Const::Str(ref s) => {
                let i = self.idx(dst);
                let d = &mut self.m.strs[i];
                d.bytes.clear();
                d.bytes.extend_from_slice(s.as_bytes());
                d.finder = src;
            }
        }
    }

    fn copy(&mut self, dst: Reg, src: Reg) {
        if dst == src {
            return;
        }
        fn dup<T: Clone + Default>(v: &mut [T], d: usize, s: usize) {
            let x = std::mem::take(&mut v[s]);
            v[d].clone_from(&x);
            v[s] = x;
        }
        let m = &mut *self.m;
        match (self.p.slots[dst as usize], self.p.slots[src as usize]) {
            (Slot::Scalar(d), Slot::Scalar(s)) => m.scal[d as usize] = m.scal[s as usize],
            (Slot::Set(d), Slot::Set(s)) => {
                let nw = m.nw;
                m.sets.copy_within(s as usize * nw..(s as usize + 1) * nw, d as usize * nw);
            }
            (Slot::Groups(d), Slot::Groups(s)) => dup(&mut m.groups, d as usize, s as usize),
            (Slot::Str(d), Slot::Str(s)) => dup(&mut m.strs, d as usize, s as usize),
            (Slot::Addrs(d), Slot::Addrs(s)) => dup(&mut m.addrs, d as usize, s as usize),
            (Slot::Content(d), Slot::Content(s)) => dup(&mut m.contents, d as usize, s as usize),
            (d, s) => unreachable!("copy between {d:?} and {s:?} (validated module)"),
        }
    }

    /// `dst = {p in set | col(p) matches by}`, `by` an address or a prefix.
    fn filter(&mut self, dst: Reg, set: Reg, by: Reg, by_dst: bool) {
        let (net, mask) = match self.p.module.regs[by as usize] {
            Ty::Prefix => {
                let (net, len) = dec_prefix(self.sc(by));
                (net, netmask(len))
            }
            _ => (self.sc(by) as u32, u32::MAX),
        };
        let col = if by_dst { self.v.dst } else { self.v.src };
        let (so, d, nw, n) = (self.so(set), self.so(dst), self.m.nw, self.m.n);
        let sets = &mut self.m.sets;
        if so != d {
            sets.copy_within(so..so + nw, d);
        }
        for w in 0..nw {
            let s = sets[d + w];
            if s == 0 {
                continue;
            }
            let base = w * 64;
            let bits = match col.get(base..base + 64) {
                Some(full) => match_bits(full, net, mask),
                // A short tail (small buckets are common): a plain loop.
                None => col[base..n].iter().enumerate().fold(0u64, |b, (j, &x)| b | (u64::from(x & mask == net) << j)),
            };
            sets[d + w] = s & bits;
        }
    }

    /// Group the packets of `set` by destination or source.
    fn group(&mut self, dst: Reg, set: Reg, by_dst: bool) {
        let col = if by_dst { self.v.dst } else { self.v.src };
        let (so, nw, gi) = (self.so(set), self.m.nw, self.idx(dst));
        let n_in = self.card(set) as usize;
        let Machine { sets, groups, table, tmp, tmp2, .. } = &mut *self.m;
        let g = &mut groups[gi];
        g.keys.clear();
        table.reset(n_in);
        tmp.clear();
        tmp2.clear();
        for_each_bit(&sets[so..so + nw], |pos| {
            let key = col[pos];
            let (id, new) = table.get_or_insert(u64::from(key), g.keys.len() as u32);
            if new {
                g.keys.push(key);
            }
            tmp.push(id);
            tmp2.push(pos as u32);
        });
        counting_sort(g, tmp, tmp2);
    }

    fn distinct_dst(&mut self, set: Reg) -> u64 {
        let (so, nw) = (self.so(set), self.m.nw);
        let n_in = self.card(set) as usize;
        let col = self.v.dst;
        let Machine { sets, table, .. } = &mut *self.m;
        table.reset(n_in);
        let mut count = 0u64;
        for_each_bit(&sets[so..so + nw], |pos| {
            if table.get_or_insert(u64::from(col[pos]), 0).1 {
                count += 1;
            }
        });
        count
    }

    fn group_content(&mut self, dests: Reg, content: Reg, set: Reg) {
        let (so, nw) = (self.so(set), self.m.nw);
        let (di, ci) = (self.idx(dests), self.idx(content));
        let n_in = self.card(set) as usize;
        let v = self.v;
        let Machine { sets, addrs, contents, table, chain, hasher, .. } = &mut *self.m;
        let ds = &mut addrs[di];
        ds.clear();
        table.reset(n_in);
        for_each_bit(&sets[so..so + nw], |pos| {
            if table.get_or_insert(u64::from(v.dst[pos]), 0).1 {
                ds.push(v.dst[pos]);
            }
        });
        // Distinct payloads: a keyed hash (the payloads are the sender's
        // choice) with a collision chain that compares bytes.
        let cs = &mut contents[ci];
        cs.clear();
        chain.clear();
        table.reset(n_in);
        for_each_bit(&sets[so..so + nw], |pos| {
            let pay = v.payload(pos);
            let h = hasher.hash_one(pay);
            let new = cs.len() as u32;
            let (head, inserted) = table.get_or_insert(h, new);
            if inserted {
                cs.push(pos as u32);
                chain.push(u32::MAX);
                return;
            }
            let mut id = head;
            loop {
                if v.payload(cs[id as usize] as usize) == pay {
                    return;
                }
                let next = chain[id as usize];
                if next == u32::MAX {
                    chain[id as usize] = new;
                    cs.push(pos as u32);
                    chain.push(u32::MAX);
                    return;
                }
                id = next;
            }
        });
    }

    fn contains(&mut self, set: Reg, needle: Reg) -> bool {
        let (so, nw) = (self.so(set), self.m.nw);
        let ni = self.idx(needle);
        let v = self.v;
        let p = self.p;
        let inst = self.inst;
        let Machine { sets, strs, table, tmp, tmp2, tmp3, chain, stream, flows, .. } = &mut *self.m;
        let words = &sets[so..so + nw];
        let sv = &strs[ni];
        if sv.bytes.is_empty() {
            return words.iter().any(|&w| w != 0);
        }
        let shared = match sv.finder {
            FinderSrc::Const(k) => p.const_finders.get(k as usize).and_then(Option::as_ref),
            FinderSrc::Param(i) => inst.param_finders.get(i as usize).and_then(Option::as_ref),
            FinderSrc::None => None,
        };
        let local;
        let finder = match shared {
            Some(f) if f.needle() == sv.bytes.as_slice() => f,
            _ => {
                local = Finder::new(&sv.bytes);
                &local
            }
        };
        let mut found = false;
        for_each_bit(words, |pos| found = found || finder.find(v.payload(pos)).is_some());
        if found || sv.bytes.len() < 2 {
            return found;
        }
        // Across contiguous segments of one TCP flow (SEMANTICS): flows of
        // the TCP packets of S, members in arrival order, runs of continuing
        // segments searched as one stream.
        const TCP: u8 = 6;
        let n_in = popcount(words) as usize;
        table.reset(n_in);
        tmp.clear(); // flow id per TCP member
        tmp2.clear(); // member positions
        tmp3.clear(); // representative position per flow
        chain.clear();
        for_each_bit(words, |pos| {
            if v.proto[pos] != TCP {
                return;
            }
            let same =
                |q: usize| v.src[q] == v.src[pos] && v.dst[q] == v.dst[pos] && v.sport[q] == v.sport[pos] && v.dport[q] == v.dport[pos];
            let h = (u64::from(v.src[pos]) << 32 | u64::from(v.dst[pos]))
                ^ (u64::from(v.sport[pos]) << 16 | u64::from(v.dport[pos])).wrapping_mul(0xff51_afd7_ed55_8ccd);
            let new = tmp3.len() as u32;
            let (head, inserted) = table.get_or_insert(h, new);
            let id = if inserted {
                tmp3.push(pos as u32);
                chain.push(u32::MAX);
                new
            } else {
                let mut id = head;
                loop {
                    if same(tmp3[id as usize] as usize) {
                        break id;
                    }
                    let next = chain[id as usize];
                    if next == u32::MAX {
                        chain[id as usize] = new;
                        tmp3.push(pos as u32);
                        chain.push(u32::MAX);
                        break new;
                    }
                    id = next;
                }
            };
            tmp.push(id);
            tmp2.push(pos as u32);
        });
        if tmp3.len() == tmp2.len() {
            return false; // one packet per flow: nothing continues
        }
        flows.keys.clear();
        flows.keys.resize(tmp3.len(), 0);
        counting_sort(flows, tmp, tmp2);
        for f in 0..flows.keys.len() {
            let members = &flows.members[flows.starts[f] as usize..flows.starts[f + 1] as usize];
            let mut run_len = 0usize;
            stream.clear();
            for (k, &pos) in members.iter().enumerate() {
                let pos = pos as usize;
                let continues = k > 0 && {
                    let prev = members[k - 1] as usize;
                    v.seq[pos] == v.seq[prev].wrapping_add(v.pay_len[prev])
                };
                if !continues {
                    if run_len >= 2 && finder.find(stream).is_some() {
                        return true;
                    }
                    stream.clear();
                    run_len = 0;
                }
                stream.extend_from_slice(v.payload(pos));
                run_len += 1;
            }
            if run_len >= 2 && finder.find(stream).is_some() {
                return true;
            }
        }
        false
    }

    fn generate(&mut self, pc: usize, src: Reg, dst: Reg, payload: Reg) -> Result<(), Fault> {
        let (s, d) = (self.sc(src) as u32, self.sc(dst) as u32);
        let unit = self.p.units.generate;
        let too_large = Fault::TooLarge { at: pc as u32, line: self.line(pc), what: "a generated payload" };
        match self.slot(payload) {
            Slot::Str(i) => {
                self.charge(pc, unit, 1)?;
                let Machine { strs, effects, .. } = &mut *self.m;
                let b = &strs[i as usize].bytes;
                if b.len() > MAX_PAYLOAD {
                    return Err(too_large);
                }
                emit(effects, s, d, b);
            }
            Slot::Addrs(i) => {
                let n = self.m.addrs[i as usize].len();
                self.charge(pc, unit, n as u64)?;
                let Machine { addrs, effects, stream, .. } = &mut *self.m;
                for chunk in addrs[i as usize].chunks(ADDRS_PER_PACKET) {
                    stream.clear();
                    stream.extend_from_slice(b"VND1");
                    stream.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
                    for a in chunk {
                        stream.extend_from_slice(&a.to_be_bytes());
                    }
                    emit(effects, s, d, stream);
                }
            }
            Slot::Content(i) => {
                let n = self.m.contents[i as usize].len();
                self.charge(pc, unit, n as u64)?;
                let v = self.v;
                let Machine { contents, effects, .. } = &mut *self.m;
                let items = &contents[i as usize];
                if items.iter().any(|&pos| v.payload(pos as usize).len() > MAX_PAYLOAD) {
                    return Err(too_large);
                }
                for &pos in items {
                    emit(effects, s, d, v.payload(pos as usize));
                }
            }
            other => unreachable!("GENERATE of {other:?} (validated module)"),
        }
        Ok(())
    }

    fn foreach(&mut self, pc: usize, groups: Reg, key: Reg, set: Reg, end: usize) -> Result<(), Fault> {
        let gi = self.idx(groups);
        let snap = self.p.snapshot[pc];
        let depth = self.m.depth;
        if snap {
            if self.m.snaps.len() <= depth {
                self.m.snaps.resize_with(depth + 1, Groups::default);
            }
            let Machine { groups: gs, snaps, .. } = &mut *self.m;
            snaps[depth].clone_from(&gs[gi]);
        }
        let n_groups = if snap { self.m.snaps[depth].keys.len() } else { self.m.groups[gi].keys.len() };
        let (so, nw) = (self.so(set), self.m.nw);
        self.m.depth += 1;
        for g in 0..n_groups {
            let Machine { groups: gs, snaps, sets, .. } = &mut *self.m;
            let grp = if snap { &snaps[depth] } else { &gs[gi] };
            let k = grp.keys[g];
            let words = &mut sets[so..so + nw];
            words.iter_mut().for_each(|w| *w = 0);
            for &pos in &grp.members[grp.starts[g] as usize..grp.starts[g + 1] as usize] {
                words[pos as usize / 64] |= 1 << (pos % 64);
            }
            self.set_sc(key, u64::from(k));
            // One unit per iteration (SEMANTICS: loops are not free).
            self.charge(pc, 1, 1)?;
            self.block(pc + 1, end)?;
        }
        self.m.depth -= 1;
        Ok(())
    }
}

/// Fill `g.starts` and `g.members` from member group ids `ids` and positions
/// `pos` (ascending): members of each group in arrival order. `g.keys` must
/// already have one entry per group.
fn counting_sort(g: &mut Groups, ids: &[u32], pos: &[u32]) {
    let ng = g.keys.len();
    g.starts.clear();
    g.starts.resize(ng + 1, 0);
    for &id in ids {
        g.starts[id as usize + 1] += 1;
    }
    for i in 0..ng {
        g.starts[i + 1] += g.starts[i];
    }
    g.members.clear();
    g.members.resize(ids.len(), 0);
    // Walk backwards, using `starts[id + 1]` as group id's moving end; it ends
    // at group id's start, so shift the array back by one afterwards.
    for (&id, &p) in ids.iter().zip(pos).rev() {
        let e = &mut g.starts[id as usize + 1];
        *e -= 1;
        g.members[*e as usize] = p;
    }
    g.starts.copy_within(1..=ng, 0);
    g.starts[ng] = ids.len() as u32;
}

#[cfg(test)]
pub(crate) mod tests;
