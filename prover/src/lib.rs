//! # vinet-prover: certificates for vinet programs
//!
//! The one big decision: **the prover proves the checker's own predicate.** It
//! asks `vinet_checker::vcgen` for the safety predicate of a module under a
//! policy, exactly as the router will compute it, and builds its proof by
//! calling the kernel's rules one by one (LCF-style tactics), recording each as
//! a certificate step. So every certificate it emits is known to replay; and
//! what z3 finds (that a path condition confines a group, that a loop's rank
//! decreases, with which Farkas coefficients) enters only as kernel steps the
//! router re-checks without a solver. When an obligation fails, z3's model is
//! the user's counterexample.
//!
//! Addresses are those of vinet's one 128-bit space (IPv6, and IPv4 as
//! IPv4-mapped IPv6; issue 15): z3 sees 128-bit vectors ([`z3enc`]), the
//! lemma sources read IPv6 literals ([`lemma_src`]), and counterexamples print
//! addresses as every vinet tool does ([`vinet_vocab::addr_text`]), in the
//! family of the program's own address parameters, one family a packet.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod builder;
pub mod cost_site;
pub mod lemma_src;
pub mod sexp;
pub mod tactics;
pub mod z3enc;

use builder::Builder;
use lemma_src::LemmaSet;
use vinet_checker::bytecode::Module;
use vinet_checker::cert::{encode_file, Bundle, Certificate, Declared, Proof, BUNDLE_MAGIC, CERT_VERSION};
use vinet_checker::logic::{Sym, Term};
use vinet_checker::policy::{ClientKind, Policy};
use vinet_checker::vcgen::{self, What};

/// A prover with its lemma library.
pub struct Prover {
    lemmas: LemmaSet,
}

/// A proved module.
#[derive(Debug)]
pub struct Proved {
    /// The bundle.
    pub bundle: Bundle,
    /// Its file bytes (`VPC1` + postcard).
    pub bytes: Vec<u8>,
    /// Figures about the proof.
    pub stats: Stats,
}

/// Figures about a proof.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Obligations proved.
    pub obligations: usize,
    /// Steps in the certificate.
    pub steps: usize,
    /// Terms in its pool.
    pub terms: usize,
    /// Lemmas it cites.
    pub lemmas: usize,
    /// Derived complexity per window.
    pub complexity: u64,
    /// Derived cost.
    pub cost: u64,
}

/// Why an obligation (or the whole module) could not be proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The instruction at fault.
    pub at: usize,
    /// What is wrong, for an operator.
    pub message: String,
    /// Further explanation (the counterexample's values, the prover's reason).
    pub notes: Vec<String>,
    /// How to fix it, where there is a usual fix.
    pub help: Option<String>,
}

/// An address as every vinet tool prints it: IPv4 dotted, IPv6 as RFC 5952 says.
fn ip(a: u128) -> String {
    vinet_vocab::addr_text(a)
}

/// A prefix (network and 128-bit length) as every vinet tool prints it.
fn prefix_text(n: u128, l: u8) -> String {
    vinet_vocab::IpPrefix::new(n, l).map_or_else(|_| format!("{}/{l}", ip(n)), |p| p.to_string())
}

impl Prover {
    /// A prover with the library shipped in `lemmas/`.
    pub fn new() -> Result<Prover, String> {
        Ok(Prover { lemmas: lemma_src::build(lemma_src::BUILTIN)? })
    }

    /// A prover with another library.
    pub fn with_lemmas(lemmas: LemmaSet) -> Prover {
        Prover { lemmas }
    }

    /// Its library.
    pub fn lemmas(&self) -> &LemmaSet {
        &self.lemmas
    }

    /// Prove a module safe under a policy, or say why it is not.
    pub fn prove(&self, module: &Module, policy: &Policy) -> Result<Proved, Vec<Failure>> {
        self.prove_named(module, policy, &[])
    }

    /// [`Prover::prove`], with the source names of registers (`names[r]`, where
    /// known) for the counterexamples: "with Dest(i) = 10.9.9.9".
    pub fn prove_named(&self, module: &Module, policy: &Policy, names: &[String]) -> Result<Proved, Vec<Failure>> {
        let fail = |at: usize, message: String| vec![Failure { at, message, notes: vec![], help: None }];
        module.validate().map_err(|e| fail(0, e.to_string()))?;
        let vc = vcgen::generate(module, policy).map_err(|e| fail(e.at, e.reason))?;
        let declared = Declared { complexity: vc.complexity, cost: vc.cost };
        let mut failures = cost_failures(module, policy, &vc);
        let all = vc.all(declared).map_err(|e| fail(e.at, e.reason))?;
        let params = z3enc::Preferences {
            names: module.params.iter().map(|p| p.name.clone()).collect(),
            defaults: module
                .params
                .iter()
                .map(|p| {
                    use vinet_checker::{bytecode::Const, logic::Lit};
                    match p.default {
                        Const::Addr(a) => Some(Lit::Addr(a)),
                        Const::Addr6(a) => Some(Lit::Addr6(a)),
                        Const::Prefix(n, l) => Some(Lit::Prefix(n, l)),
                        Const::Prefix6(n, l) => Some(Lit::Prefix6(n, l)),
                        Const::Num(_) | Const::Str(_) => None,
                    }
                })
                .collect(),
        };
        let goals: Vec<Term> = all.iter().map(|o| o.formula.clone()).collect();
        let mut b = Builder::for_goals(&self.lemmas.cache, &goals);
        let mut proofs = vec![];
        for o in &all {
            let goal = conclusion(&o.formula, o.path.len());
            if o.what == What::Cost && !failures.is_empty() {
                continue; // already explained, fact by fact
            }
            let at = o.at;
            let mut t = tactics::Tactics::new(&mut b, &self.lemmas, policy.client);
            match t.obligation(&o.path, &goal) {
                Ok(pf) => proofs.push(pf),
                Err(why) => {
                    let mut f = explain(at, o.what, &o.path, &goal, &why, &params, policy);
                    name_keys(&mut f, module, names);
                    failures.push(f)
                }
            }
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        let root = b.conj(&proofs).map_err(|e| fail(0, format!("{}: {}", e.rule, e.reason)))?;
        let proof: Proof = b.finish(&root);
        let module_bytes = module.encode();
        let stats = Stats {
            obligations: all.len(),
            steps: proof.steps.len(),
            terms: proof.terms.len(),
            lemmas: proof.lemmas.len(),
            complexity: vc.complexity,
            cost: vc.cost,
        };
        let certificate = Certificate { version: CERT_VERSION, proof };
        let bundle = Bundle { module: module_bytes, declared, certificate };
        let bytes = encode_file(&bundle, BUNDLE_MAGIC);
        Ok(Proved { bundle, bytes, stats })
    }
}

/// Replace the counterexample's group keys (`the group key kN`) by the source
/// names of the enclosing loops' key families, outermost first: the VC
/// generator numbers the keys of nested loops in that order. Only loops over
/// groupings by address have such keys (a field group's key is a number).
fn name_keys(f: &mut Failure, module: &Module, names: &[String]) {
    use vinet_checker::bytecode::Insn;
    let mut loops = vec![];
    let mut pc = 0;
    let mut ends: Vec<usize> = vec![];
    while pc < module.code.len() && pc <= f.at {
        ends.retain(|&e| e > pc);
        if let Insn::Foreach { groups, key, body_len, .. } = module.code[pc] {
            let end = pc + 1 + body_len as usize;
            let by_address = module.regs.get(groups as usize) == Some(&vinet_checker::bytecode::Ty::Groups);
            if f.at < end && pc < f.at && by_address {
                loops.push(key);
            }
            ends.push(end);
        }
        pc += 1;
    }
    let mut ids: Vec<u32> = vec![];
    let all = std::iter::once(f.message.as_str()).chain(f.notes.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
    for part in all.split("the group key k").skip(1) {
        if let Ok(n) = part.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>() {
            if !ids.contains(&n) {
                ids.push(n);
            }
        }
    }
    ids.sort_unstable();
    if ids.len() != loops.len() {
        return;
    }
    for (id, key) in ids.iter().zip(&loops) {
        let Some(name) = names.get(*key as usize).filter(|n| !n.is_empty()) else { continue };
        let from = format!("the group key k{id}");
        let to = format!("{name}(...)");
        f.message = f.message.replace(&from, &to);
        for n in &mut f.notes {
            *n = n.replace(&from, &to);
        }
    }
}

/// The cost facts that fail, each explained at the statement that costs most.
fn cost_failures(module: &Module, policy: &Policy, vc: &vcgen::Vc) -> Vec<Failure> {
    let life = module.header.lifetime_secs;
    let loops = "inside a `foreach`, touch the current group (it costs its own size, since groups partition their set); touching a whole set there costs the window size once per group";
    let facts = [
        (
            vc.complexity > policy.complexity_up,
            format!("complexity {} units per window exceeds the policy's complexity_up {}", vc.complexity, policy.complexity_up),
            loops,
        ),
        (
            vc.cost > policy.cost_up,
            format!("cost {} (complexity {} x lifetime {life} s) exceeds the policy's cost_up {}", vc.cost, vc.complexity, policy.cost_up),
            "shorten LIFETIME, or make the program cheaper",
        ),
        (
            life > policy.max_lifetime_secs,
            format!("LIFETIME of {life} seconds exceeds the policy's max_lifetime of {} seconds", policy.max_lifetime_secs),
            "shorten LIFETIME",
        ),
    ];
    let failing: Vec<_> = facts.into_iter().filter(|f| f.0).collect();
    if failing.is_empty() {
        return vec![];
    }
    let at = cost_site::dearest_statement(module, policy);
    failing.into_iter().map(|(_, message, help)| Failure { at, message, notes: vec![], help: Some(help.to_string()) }).collect()
}

/// The goal under `n` path antecedents.
fn conclusion(formula: &Term, n: usize) -> Term {
    let mut t = formula.clone();
    for _ in 0..n {
        t = t.args_of(Sym::Imp).map(|a| a[1].clone()).unwrap_or(t);
    }
    t
}

fn routine_verb(what: What) -> &'static str {
    match what {
        What::Confined("DISCARD") => "DISCARD here could drop",
        What::Confined("CONTAINS_STRING") => "CONTAINS_STRING here could scan",
        What::Confined("COUNT" | "DISTINCT_DESTINATIONS" | "DISTINCT_DESTINATION_PORTS") => "this could count",
        What::Confined("GENERATE") => "GENERATE here could send the data of",
        What::Confined(_) => "this could group",
        _ => "this could touch",
    }
}

/// Turn a failed obligation into a diagnostic, with z3's counterexample if it has one.
#[allow(clippy::too_many_arguments)]
fn explain(at: usize, what: What, path: &[Term], goal: &Term, why: &str, params: &z3enc::Preferences, policy: &Policy) -> Failure {
    let edge = policy.client == ClientKind::EdgeRouter;
    let on = policy.client == ClientKind::OnOwner;
    let mut notes = vec![];
    let me_name = ["THIS_IP", "THIS_SUBNET_IP", "THIS_ON"][policy.client as usize];
    let help = match what {
        What::Confined(_) if on => Some("narrow the set first: start from OnPackets, the window's packets carrying THIS_ON".to_string()),
        What::NoLeak if on => Some("group OnPackets (or a set made from it), so that the effect is on your own overlay network's packets".to_string()),
        What::Confined(_) => Some(format!("narrow the set first with GROUP_BY_DESTINATION(..., {me_name}), or test the group's destination against {me_name} in an `if`")),
        What::NoLeak => Some(format!("guard the effect with `if DestIP(i) == {me_name}` (or `in THIS_SUBNET_IP`), on its own `if`, so that it happens only in your own group")),
        What::GenerateTo => Some("GENERATE may send only to THIS_IP".to_string()),
        _ => None,
    };
    // The transport routines have a narrowing form that needs no confinement and a form that
    // observes its set: the note names the routine, and which of its forms needs the set confined.
    match what {
        What::Confined(r @ ("GROUP_BY_PROTOCOL" | "GROUP_BY_SOURCE_PORT" | "GROUP_BY_DESTINATION_PORT")) => notes.push(format!(
            "{r} as a grouping (`K(i), P(i) = {r}(S)`) observes all of S, so S must be confined to {me_name}; {r}(S, value) and {r}(S, lo, hi) narrow S and need no confinement"
        )),
        What::Confined("DISTINCT_DESTINATION_PORTS") => {
            notes.push(format!("DISTINCT_DESTINATION_PORTS observes all of its set, so the set must be confined to {me_name}"))
        }
        What::Confined("TCP_FLAGS") => {
            notes.push(format!("a grouping by TCP flags observes all of its set, so the set must be confined to {me_name}"))
        }
        _ => {}
    }
    let message = match z3enc::decide(path, goal, params) {
        z3enc::Decision::Fails(cx) => {
            let me = match (edge, cx.this_net, cx.this_ip) {
                (true, Some((n, l)), _) => format!("inside THIS_SUBNET_IP ({})", prefix_text(n, l)),
                (true, None, _) => "inside THIS_SUBNET_IP".into(),
                (false, _, Some(a)) => format!("THIS_IP ({})", ip(a)),
                (false, _, None) => "THIS_IP".into(),
            };
            for (name, value) in &cx.values {
                notes.push(format!("with {name} = {value}"));
            }
            match (what, cx.packet) {
                (What::Confined(_), Some((src, dst))) if on => {
                    let key = cx.key.map_or("no flow id".into(), |k| format!("flow id {k}"));
                    let this = cx.this_on.map_or("THIS_ON".into(), |k| format!("THIS_ON ({k})"));
                    format!("{} a packet {} -> {} carrying {key}, which is not {this}", routine_verb(what), ip(src), ip(dst))
                }
                (What::NoLeak, _) if on => "this effect could happen in a group of packets of other overlay networks".into(),
                (What::Confined(_), Some((src, dst))) => {
                    format!("{} a packet {} -> {}, and {} is not {me}", routine_verb(what), ip(src), ip(dst), ip(dst))
                }
                (What::NoLeak, _) => {
                    let key = cx.values.iter().find(|(n, _)| n.starts_with("the group key")).map(|(_, v)| v.clone()).unwrap_or_default();
                    format!(
                        "this effect could happen in the group of {key}, which is not {me}: it would depend on another client's traffic"
                    )
                }
                (What::GenerateTo, _) => format!("GENERATE here could send to an address that is not {me}"),
                (What::LoopEntry, _) => "this loop could start above its bound".into(),
                (What::LoopPositive | What::LoopDecrease, _) => {
                    "this loop's counter does not move toward its limit on every iteration".into()
                }
                _ => format!("this {what:?} obligation fails"),
            }
        }
        z3enc::Decision::Valid => {
            notes.push(format!("the prover's tactics: {why}"));
            format!("z3 shows this {what:?} obligation holds, but vinet could not build a proof the checker accepts")
        }
        z3enc::Decision::Unknown(r) => {
            notes.push(format!("the prover's tactics: {why}; z3: {r}"));
            format!("cannot prove this {what:?} obligation")
        }
    };
    Failure { at, message, notes, help }
}
