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
//!   table and a counting sort. Groups by address (GROUP_BY_SOURCE) and by a
//!   transport field (GROUP_BY_PROTOCOL, the port groupings) are alike: their
//!   keys are `u32`, and a `foreach` binds its key register (an `Addr` or a
//!   `Num`) to the group's key. A `foreach` whose body may overwrite the
//!   grouping it walks iterates over a snapshot (found when the program is
//!   built), so "variables assigned inside a body are local to it" holds.
//! - **Transport fields** (protocol, ports, TCP flags) are read through
//!   [`View`]'s columns, a packet without ports or flags reading a value no
//!   field has (so it is never "port 0"); every narrowing is one field test
//!   (`bits::FieldTest`), the same in the interpreter, the plans and the
//!   dispatch table's direct decisions.
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
//!   address, prefix and number loads (and arithmetic on numbers),
//!   `AllPackets`, the keyed GROUP_BY filters, the narrowings by a transport
//!   field (GROUP_BY_PROTOCOL and the port groupings keyed, TCP_FLAGS) and
//!   DISCARD (the firewall, the port firewall) decides each packet on its
//!   own. Such a program also gets a `LocalPlan` when it is built, which
//!   the dispatch table runs directly over a small bucket's rows of the
//!   window (no register file, no gather): per packet, the set registers
//!   are bits of one word and each routine charges its unit when the packet
//!   is in its input set, so the metered cost is exactly the VM's (`unit x
//!   |S|` summed over packets). A run whose cost would exceed the certified
//!   complexity (or whose arithmetic overflows) is re-run by the VM, which
//!   stops it at the exact instruction and reports the fault.
//!
//! One concern a file: this root holds [`Program`], [`Instance`], the
//! bindings and the run's entry point; `plan` the packet-local and chain
//! plans; `machine` the register file and scratch ([`Machine`], [`Effects`]);
//! `interp` the interpreter; `emit` generated packets and their checksums;
//! `bits` the bitmap and prefix encodings they share.
//!
//! **API Boundary:** a [`Program`] is made only from a
//! [`vinet_checker::Checked`]; no public path runs unchecked bytecode.

mod bits;
mod emit;
mod interp;
mod machine;
mod plan;

use std::sync::Arc;

use memchr::memmem::Finder;
use vinet_checker::bytecode::{self, Const, Insn, Ty};
use vinet_checker::policy::{ClientKind, UnitCosts};
use vinet_checker::{netmask, Checked, Module, ModuleId, Policy};

use crate::window::View;
use interp::Run;
use plan::{BoundStep, LocalPlan};

pub use machine::{Effects, Machine};
pub(crate) use plan::{EndUserStep, StepCol};

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
    /// More bytes generated in one run than the certificate bounds.
    #[error("instruction {at} (line {line}): {bytes} bytes generated, over the certified {limit}")]
    OverGenerated {
        /// Instruction index.
        at: u32,
        /// Source line.
        line: u32,
        /// Bytes generated by the run so far.
        bytes: u64,
        /// The certified bound.
        limit: u64,
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
    /// A string longer than the policy's `max_param_bytes`.
    #[error("parameter {name}: a string of {len} bytes, longer than the policy's max_param_bytes ({max})")]
    TooLong {
        /// Parameter name.
        name: String,
        /// Its length.
        len: usize,
        /// The policy's limit.
        max: usize,
    },
    /// An edge-router program needs THIS_SUBNET_IP.
    #[error("an edge-router program needs THIS_SUBNET_IP")]
    NoSubnet,
}

/// The addresses a run is bound to: the client's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct This {
    /// THIS_IP, host byte order. For an overlay-network owner, which has no
    /// address, THIS_ON: its ON's flow id ([`This::on_owner`]).
    pub ip: u32,
    /// THIS_SUBNET_IP: network (host bits zero) and length. For an end user,
    /// the /32 of THIS_IP.
    pub subnet: (u32, u8),
}

impl This {
    /// An overlay-network owner's identity: THIS_ON, its flow id. (The
    /// checker refuses THIS_IP and THIS_SUBNET_IP for such a client, so the
    /// fields an address would take hold the flow id alone.)
    pub fn on_owner(flow: u32) -> This {
        This { ip: flow, subnet: (flow, 32) }
    }

    /// THIS_ON, for an overlay-network owner's run.
    pub fn this_on(&self) -> u32 {
        self.ip
    }
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
    /// The certified bound on the bytes it generates per window.
    generated_up: u64,
    /// Longest string parameter it may be bound to (the policy's).
    max_param_bytes: usize,
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
    /// Whether it has a CONTAINS_STRING (its strings are search words).
    searches: bool,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("id", &self.id).field("complexity", &self.complexity).finish_non_exhaustive()
    }
}

impl Program {
    /// Prepare a checked module. The only public constructor.
    pub fn new(checked: &Checked) -> Program {
        Program::build(checked.module().clone(), checked.id(), (checked.complexity(), checked.generated()), checked.policy())
    }

    /// Test-only: a program from a hand-written module, which must pass the
    /// structural validator. Not available outside this crate's tests.
    #[cfg(test)]
    pub(crate) fn unchecked(module: Module, complexity: u64, policy: &vinet_checker::Policy) -> Program {
        module.validate().expect("test module must validate");
        let id = Module::id_of(&module.encode());
        Program::build(module, id, (complexity, policy.generated_bytes_up), policy)
    }

    fn build(module: Module, id: ModuleId, (complexity, generated_up): (u64, u64), policy: &Policy) -> Program {
        let mut counts = [0u32; 6];
        let slots = module
            .regs
            .iter()
            .map(|t| {
                let (class, mk): (usize, fn(u32) -> Slot) = match t {
                    Ty::Bool | Ty::Num | Ty::Addr | Ty::Prefix => (0, Slot::Scalar),
                    Ty::Set => (1, Slot::Set),
                    // Groups by a field keep their numeric keys as groups by
                    // address keep addresses: a foreach binds the key alike.
                    Ty::Groups | Ty::NumGroups => (2, Slot::Groups),
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
        let searches = code.iter().any(|i| matches!(i, Insn::ContainsString { .. }));
        Program {
            searches,
            local,
            id,
            module,
            complexity,
            generated_up,
            max_param_bytes: (policy.max_param_bytes as usize).min(MAX_PAYLOAD),
            units: policy.unit_costs,
            client: policy.client,
            window_packets: policy.window_packets,
            policy_digest: vinet_vocab::policy_digest(policy),
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
                Const::Str(s) if s.len() > self.max_param_bytes => {
                    return Err(BindError::TooLong { name: d.name.clone(), len: s.len(), max: self.max_param_bytes })
                }
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
        let chain = self.local.as_ref().and_then(|plan| plan.bind_chain(&values));
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

    /// The search words of its CONTAINS_STRINGs (every string constant and
    /// string parameter of a program that has one), for the router's stream
    /// tracker.
    pub(crate) fn search_words(&self) -> impl Iterator<Item = &Finder<'static>> + '_ {
        let on = self.program.searches;
        self.program.const_finders.iter().chain(self.param_finders.iter()).filter(move |_| on).flatten()
    }

    /// Whether it searches for words.
    pub(crate) fn searches(&self) -> bool {
        self.program.searches
    }

    /// Whether the program has a packet-local plan (see the module
    /// documentation).
    pub fn is_packet_local(&self) -> bool {
        self.program.local.is_some()
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

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
pub(crate) mod transport_tests;
