//! # vinet-checker: the trusted base
//!
//! This crate is the only code a router operator has to trust. Everything a
//! router runs passes through [`check`] first, and the only way to obtain a
//! [`Checked`] module, the one type the VM accepts, is for that check to succeed.
//!
//! The one big decision: **the checker re-derives everything.** It decodes the
//! bytecode itself, computes the safety predicate itself from the module and the
//! router's policy (confinement, generation, complexity, cost, lifetime), and
//! accepts a certificate only if replaying it through the kernel's inference
//! rules builds a theorem syntactically equal to that predicate. Nothing the
//! producer claims (its declared cost, its lemma names, its statement) is trusted.
//!
//! Properties checked:
//! - bytecode: format version, canonical encoding, operand types, block
//!   structure and nesting, definite assignment, loop bounds, class vs effects
//!   ([`bytecode::Validator`]);
//! - confinement: every discarded, scanned, grouped or counted set, and every set
//!   whose data reaches GENERATE, holds only packets to THIS_IP (end users) or
//!   inside THIS_SUBNET_IP (edge routers), for every value of THIS_IP,
//!   THIS_SUBNET_IP and the parameters;
//! - no control leak: effects inside a `foreach` over another tenant's groups
//!   happen only on a path that proves the group is the client's own;
//! - generation only to THIS_IP;
//! - cost: derived complexity <= complexity_up, complexity x lifetime <= cost_up,
//!   lifetime <= max_lifetime, declared complexity and cost = derived;
//! - loop bounds: every `while` decreases its ranking function and starts within its bound;
//! - lemmas: each cited lemma was itself checked, from the axioms and earlier lemmas.
//!
//! Deliberately not checked here: that the policy file is sensible (it is the
//! operator's own), identities and signatures (the runtime's admission
//! pipeline), and anything about the VM's implementation of the routines.
//!
//! The crate depends on serde, postcard, blake3 and thiserror only: no solver,
//! no parser generator, no command-line crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bytecode;
pub mod policy;

pub use bytecode::{Module, ModuleId};
pub use policy::Policy;

/// The netmask of a prefix length (0..=32), host byte order.
pub fn netmask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len.min(32) as u32) }
}

/// A module that [`check`] accepted against a policy. Only this crate can make
/// one; the VM takes nothing else.
#[derive(Clone, Debug)]
pub struct Checked {
    module: Module,
    id: ModuleId,
    complexity: u64,
    cost: u64,
    policy: Policy,
}

impl Checked {
    /// The accepted module.
    pub fn module(&self) -> &Module {
        &self.module
    }
    /// Its id.
    pub fn id(&self) -> ModuleId {
        self.id
    }
    /// Its certified complexity: cost units per window of `policy().window_packets`.
    pub fn complexity(&self) -> u64 {
        self.complexity
    }
    /// Its certified cost: complexity x lifetime in seconds.
    pub fn cost(&self) -> u64 {
        self.cost
    }
    /// The policy it was checked against.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}
