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
//! - lemmas: each cited lemma was itself checked, from the axioms and earlier lemmas;
//!   a certificate (version 2) cites one by a prefix of its hash, resolved only
//!   among the lemmas verified here, and refused if it names none or several
//!   (a collision can only cite another true lemma: docs/CONTRACT.md, section 5);
//! - the certificate spells nothing the checker knows: its first terms are the
//!   predicate's conjuncts as generated here, and lemma instances are found by
//!   matching ([`kernel::Theorem::inst`]), then checked by equality.
//!
//! **Bounded work.** A check of `n` bytes does at most `min(4,096 + 8n, 3 * 2^20)`
//! units of work ([`cert::budget`]); past that it is refused at the step that
//! passes it. A unit is one term node visited (each distinct node of a shared
//! term once per operation: walks are memoised), a quarter of a node built,
//! one hypothesis carried, one atom of a linear form: each O(1) time and memory
//! but for a hash-table operation, so time and memory are O(n log n) in the
//! bundle's size, whatever its shape, and memory stays under 64 MiB. Per-step
//! fan-out is capped (64 hypotheses, 64 Farkas premises), and the validator and
//! the condition generator cost what a block writes, never the register file's
//! size. Honest bundles use at most 2.4 units a byte, the library's lemmas 5
//! (`tests/bounded_work.rs`; `benches/hostile.rs` measures the families).
//!
//! Deliberately not checked here: that the policy file is sensible (it is the
//! operator's own), identities and signatures (the router's admission
//! pipeline), and anything about the VM's implementation of the routines.
//!
//! The crate depends on serde, postcard, blake3 and thiserror only: no solver,
//! no parser generator, no command-line crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// `return Err(err)` unless `cond` holds: the checker's refusals, one line each.
macro_rules! ensure {
    ($cond:expr, $err:expr) => {
        if !$cond {
            return Err($err);
        }
    };
}

pub mod bytecode;
pub mod policy;

pub use bytecode::{Module, ModuleId};
pub use policy::Policy;

/// The netmask of a prefix length (0..=128; longer is 128), host byte order.
pub fn netmask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - len.min(128) as u32).unwrap_or(0)
}

/// The IPv4-mapped IPv6 address of an IPv4 address (`::ffff:a.b.c.d`, RFC 4291, 2.5.5.2):
/// how every address sort and register of vinet holds IPv4.
pub const fn mapped(a: u32) -> u128 {
    0xffff << 32 | a as u128
}

/// A module that [`check`] accepted against a policy. Only this crate can make
/// one; the VM takes nothing else.
#[derive(Clone, Debug)]
pub struct Checked {
    module: Module,
    id: ModuleId,
    complexity: u64,
    cost: u64,
    generated: u64,
    policy: Policy,
}

#[rustfmt::skip] // a table of getters: one line each
impl Checked {
    /// The accepted module.
    pub fn module(&self) -> &Module { &self.module }
    /// Its id.
    pub fn id(&self) -> ModuleId { self.id }
    /// Its certified complexity: cost units per window of `policy().window_packets`.
    pub fn complexity(&self) -> u64 { self.complexity }
    /// Its certified cost: complexity x lifetime in seconds.
    pub fn cost(&self) -> u64 { self.cost }
    /// Its certified bound on the bytes it generates per window.
    pub fn generated(&self) -> u64 { self.generated }
    /// The policy it was checked against.
    pub fn policy(&self) -> &Policy { &self.policy }
}

pub mod cert;
pub mod kernel;
pub mod logic;
pub mod vcgen;

use cert::{decode_file, Bundle, LemmaCache, ProofError, BUNDLE_MAGIC, CERT_VERSION};

/// Why a bundle was refused. Each variant displays as one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The bundle's bytes or its certificate's format.
    #[error("{0}")]
    Format(String),
    /// The module is malformed.
    #[error("bytecode: {0}")]
    Bytecode(#[from] bytecode::BytecodeError),
    /// The module breaks the policy outright (no predicate to prove).
    #[error("policy: {0}")]
    Policy(#[from] vcgen::VcError),
    /// A cost or lifetime fact is false.
    #[error("cost: {0}")]
    Cost(String),
    /// The proof does not replay.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// The proof replays but proves something other than the safety predicate.
    #[error("the certificate proves a different statement: {0}")]
    Statement(String),
}

/// Check a bundle against the router's policy and verified lemmas. On success,
/// the module may run: this is the only way to make a [`Checked`].
pub fn check(bundle: &[u8], policy: &Policy, lemmas: &LemmaCache) -> Result<Checked, CheckError> {
    let _budget = cert::budget(bundle.len());
    let b: Bundle = decode_file(bundle, BUNDLE_MAGIC, "bundle").map_err(|e| CheckError::Format(e.to_string()))?;
    if b.certificate.version != CERT_VERSION {
        return Err(CheckError::Format(format!("certificate version {} (this checker reads {CERT_VERSION})", b.certificate.version)));
    }
    let (module, id) = (Module::decode(&b.module)?, Module::id_of(&b.module));
    let vc = vcgen::generate(&module, policy)?;
    let (life, d, cx, cost, sent) = (module.header.lifetime_secs, b.declared, vc.complexity, vc.cost, vc.generated);
    let facts = [
        (!logic::over_budget(), "generating its conditions exceeds the work budget of the bundle's size".into()),
        (cx <= policy.complexity_up, format!("complexity {cx} exceeds complexity_up {}", policy.complexity_up)),
        (cost <= policy.cost_up, format!("cost {cost} (complexity {cx} x lifetime {life} s) exceeds cost_up {}", policy.cost_up)),
        (life <= policy.max_lifetime_secs, format!("lifetime {life} s exceeds max_lifetime {} s", policy.max_lifetime_secs)),
        (sent <= policy.generated_bytes_up, format!("{sent} generated bytes exceed generated_bytes_up {}", policy.generated_bytes_up)),
        (d.complexity == cx, format!("declared complexity {} but the checker derives {cx}", d.complexity)),
        (d.cost == cost, format!("declared cost {} but the checker derives {cost}", d.cost)),
    ];
    if let Some((_, why)) = facts.into_iter().find(|(ok, _)| !ok) {
        return Err(CheckError::Cost(why));
    }
    let all = vc.all(d)?;
    let (th, _) = cert::replay(&b.certificate.proof, lemmas, &all.iter().map(|o| o.formula.clone()).collect::<Vec<_>>())?;
    let predicate = vc.predicate(d)?;
    ensure!(th.hyps().is_empty(), CheckError::Statement(format!("it rests on {} undischarged hypotheses", th.hyps().len())));
    if *th.concl() != predicate {
        let mut proved = vec![];
        conjuncts(th.concl(), all.len(), &mut proved);
        let first = all.iter().zip(&proved).find(|(o, p)| o.formula != ***p).map(|(o, _)| o);
        let why = first.map(|o| format!("its {:?} obligation at instruction {} differs from the checker's", o.what, o.at));
        return Err(CheckError::Statement(why.unwrap_or_else(|| "its conclusion is not the safety predicate".into())));
    }
    Ok(Checked { module, id, complexity: vc.complexity, cost: vc.cost, generated: vc.generated, policy: *policy })
}

/// Split a balanced conjunction of `n` conjuncts (the shape of [`vcgen::balanced`]).
fn conjuncts<'t>(t: &'t logic::Term, n: usize, out: &mut Vec<&'t logic::Term>) {
    match t.args_of(logic::Sym::And) {
        Some([l, r]) if n > 1 => {
            conjuncts(l, n / 2, out);
            conjuncts(r, n - n / 2, out);
        }
        _ => out.push(t),
    }
}
