//! Certificates, bundles and the lemma library: the formats a producer sends,
//! and the replay of their proofs through the kernel.
//!
//! **API boundary.** These types are the wire format (postcard, versioned).
//! Everything in them is untrusted: a proof is a list of [`Step`]s, each naming
//! a kernel rule and earlier steps and terms by index; terms are a pool of
//! [`TermNode`]s, each referring only to earlier nodes, so decoding never
//! recurses. Replay builds every term through the sort-checked constructors
//! and every theorem through the kernel's rules.
//!
//! **Compact by construction.** A certificate spells nothing the checker
//! knows: not the module's id (the bundle carries the module, and the checker
//! derives the statement from it), not the statement's conjuncts or their
//! parts (they are the first terms, as the checker computed them, and
//! [`TermNode::Arg`] takes them apart), not a lemma's instance terms
//! ([`Step::Inst`] reads them off a target by first-order matching), and a
//! lemma only by a prefix of its hash ([`LemmaRef`]), resolved among the lemmas
//! this checker has verified. A prefix cannot make a proof prove anything
//! false: every lemma it can resolve to is a theorem the kernel proved from the
//! axioms, so a collision can only cite the wrong *true* lemma, whose instance
//! then fails to match or to give the statement (a refusal, never an
//! acceptance); an ambiguous prefix is refused (docs/CONTRACT.md, section 5).
//!
//! File layouts (all postcard after a 4-byte magic):
//! - bundle `.vpc`: `VPC1` + [`Bundle`]
//! - lemma library: `VNL1` + [`Library`]

use crate::kernel::{RuleError, Theorem};
use crate::logic::{Lit, Sort, Sym, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The certificate format version.
pub const CERT_VERSION: u16 = 2;
/// Magic of a bundle file.
pub const BUNDLE_MAGIC: &[u8; 4] = b"VPC1";
/// Magic of a lemma library file.
pub const LIBRARY_MAGIC: &[u8; 4] = b"VNL1";
/// Most terms or steps in one proof.
pub const MAX_PROOF_ITEMS: usize = 1 << 20;

/// A node of a term pool; children are indices of earlier terms. A proof's
/// terms are the conjuncts of the statement it is checked against (none for a
/// lemma; for a bundle, the formulas of [`crate::vcgen::Vc::all`], in order),
/// then its pool's nodes: pool node `j` is term `goals + j`.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[rustfmt::skip] // `Arg(t, i)`: the `i`-th argument of the application that term `t` is
pub enum TermNode { Var(u32, Sort), Bound(u32, Sort), Lit(Lit), App(Sym, Vec<u32>), All(Sort, u32), Arg(u32, u32) }

/// One proof step: a kernel rule applied to earlier steps (`u32` step
/// indices, named `s..`) and pool terms (named `t..`).
/// `Lemma { i, at }` cites a lemma by its index in the proof's list of cited lemmas; with `at`,
/// instantiated to conclude term `at` (as `Inst` does). `Inst { s, t }` is [`Theorem::inst`]:
/// instantiate `s`'s quantifiers so that it concludes `t`; `Conj { s }`, [`Theorem::conj`].
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[rustfmt::skip] // a table: the order is the encoding
pub enum Step {
    Assume { t: u32 }, ImpIntro { t: u32, s: u32 }, ImpElim { s1: u32, s2: u32 }, AndIntro { s1: u32, s2: u32 },
    AndElim { s: u32, right: bool }, OrIntro { s: u32, t: u32, on_left: bool }, OrElim { s1: u32, s2: u32, s3: u32 },
    NotIntro { t: u32, s: u32 }, NotElim { s1: u32, s2: u32 }, FalseElim { s: u32, t: u32 }, ExcludedMiddle { t: u32 },
    Refl { t: u32 }, EqSubst { s1: u32, s2: u32, var: u32, template: u32 }, Ite { s: u32, c: u32, x: u32, y: u32 },
    AllIntro { s: u32, var: u32 }, AllElim { s: u32, t: u32 }, Axiom { n: u16 }, Lemma { i: u32, at: Option<u32> },
    Eval { t: u32 }, Farkas { premises: Vec<(u32, i64)> }, Inst { s: u32, t: u32 }, Conj { s: Vec<u32> },
}

/// A proof: a term pool and steps. The last step's theorem is what it proves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The lemmas the steps cite, by hash prefix.
    pub lemmas: Vec<LemmaRef>,
    /// The term pool.
    pub terms: Vec<TermNode>,
    /// The steps.
    pub steps: Vec<Step>,
}

/// A certificate: the proof of its bundle's module's safety predicate (the
/// module is the bundle's; version 1 also named it by id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// [`CERT_VERSION`].
    pub version: u16,
    /// The proof.
    pub proof: Proof,
}

/// What the producer announces to the scheduler, checked against the derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declared {
    /// Cost units per window.
    pub complexity: u64,
    /// Complexity x lifetime in seconds.
    pub cost: u64,
}

/// A bundle: the module's bytes, the announced cost and the certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The module, in its canonical encoding (its id is blake3 of these bytes).
    pub module: Vec<u8>,
    /// Announced complexity and cost.
    pub declared: Declared,
    /// The certificate.
    pub certificate: Certificate,
}

/// The blake3 hash of a lemma's canonical bytes (name, statement and proof).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LemmaHash(pub [u8; 32]);

/// A reference to a lemma: a prefix of its hash (certificates use 4 bytes, libraries all 32).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LemmaRef(pub Vec<u8>);

impl LemmaRef {
    /// Whether it refers to `h`.
    pub fn names(&self, h: &LemmaHash) -> bool {
        h.0.starts_with(&self.0)
    }
}

impl std::fmt::Display for LemmaHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        LemmaRef(self.0.to_vec()).fmt(f)
    }
}
impl std::fmt::Display for LemmaRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().take(8).try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A lemma: a closed statement and its proof from the axioms and earlier lemmas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lemma {
    /// Its name in `lemmas/` (informative only).
    pub name: String,
    /// The statement, a term of the proof's pool.
    pub statement: u32,
    /// The proof.
    pub proof: Proof,
}

impl Lemma {
    /// Its hash.
    pub fn hash(&self) -> LemmaHash {
        LemmaHash(*blake3::hash(&postcard::to_allocvec(self).expect("in-memory encoding")).as_bytes())
    }
}

/// A lemma library file: lemmas in dependency order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    /// [`CERT_VERSION`].
    pub version: u16,
    /// The lemmas.
    pub lemmas: Vec<Lemma>,
}

/// Why a proof, a lemma or a file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The bytes are not of the expected format: what was being decoded, and why not.
    #[error("malformed {0}: {1}")]
    Malformed(&'static str, String),
    /// A node of the pool is ill-formed: its index in the pool, and why.
    #[error("term {0}: {1}")]
    Term(usize, String),
    /// A step failed (the first error stops the replay): its index, the rule, and why.
    #[error("step {0} ({1}): {2}")]
    Step(usize, &'static str, String),
    /// The proof cites a lemma the cache does not hold.
    #[error("cites lemma {0}, which this checker has not verified (send it first)")]
    MissingLemma(LemmaRef),
    /// A lemma reference is the prefix of more than one verified lemma's hash.
    #[error("lemma reference {0} is ambiguous: it is a prefix of several verified lemmas' hashes")]
    AmbiguousLemma(LemmaRef),
    /// A lemma's proof does not prove its statement: its name, its hash, and why.
    #[error("lemma `{0}` ({1}): {2}")]
    Lemma(String, LemmaHash, String),
}

/// Decode `magic ++ postcard(T)` with nothing left over.
pub fn decode_file<T: serde::de::DeserializeOwned>(bytes: &[u8], magic: &[u8; 4], what: &'static str) -> Result<T, ProofError> {
    let bad = |reason: String| ProofError::Malformed(what, reason);
    let body = bytes.strip_prefix(magic).ok_or_else(|| bad("wrong magic: not this kind of vinet file".into()))?;
    let (v, rest) = postcard::take_from_bytes(body).map_err(|e| bad(e.to_string()))?;
    rest.is_empty().then_some(v).ok_or_else(|| bad(format!("{} trailing bytes", rest.len())))
}

/// Encode `magic ++ postcard(value)`.
pub fn encode_file<T: Serialize>(value: &T, magic: &[u8; 4]) -> Vec<u8> {
    [magic.as_slice(), &postcard::to_allocvec(value).expect("in-memory encoding")].concat()
}

/// Build the pool's terms, each from earlier ones or a conjunct of `goals`.
pub fn build_terms(pool: &[TermNode], goals: &[Term]) -> Result<Vec<Term>, ProofError> {
    let mut terms: Vec<Term> = goals.to_vec();
    for (index, node) in pool.iter().enumerate() {
        let get = |i: u32| terms.get(i as usize).cloned().ok_or_else(|| format!("refers to term {i}, not an earlier one"));
        let t = match node {
            TermNode::Var(v, s) => Ok(Term::var(*v, *s)),
            TermNode::Bound(i, s) => Term::bound(*i, *s),
            TermNode::Lit(l) => Ok(Term::lit(l.clone())),
            TermNode::App(sym, args) => args.iter().map(|&a| get(a)).collect::<Result<Vec<_>, _>>().and_then(|a| Term::app(*sym, a)),
            TermNode::All(s, b) => get(*b).and_then(|b| Term::all_raw(*s, b)),
            TermNode::Arg(t, i) => get(*t).and_then(|t| t.args().get(*i as usize).cloned().ok_or_else(|| format!("has no argument {i}"))),
        };
        terms.push(t.map_err(|reason| ProofError::Term(index, reason))?);
    }
    Ok(terms)
}

/// Work units a checker may spend per byte it was sent (honest bundles spend
/// at most 2.4, the library's lemmas at most 5).
pub const WORK_PER_BYTE: u64 = 8;
/// Work units every check may spend besides (the axioms, the cost facts).
pub const WORK_BASE: u64 = 1 << 12;
/// Work units no check may pass, whatever its size: about half a million
/// term nodes, so that a check's memory stays under 64 MiB.
pub const WORK_MAX: u64 = 3 << 20;

/// The budget for checking `bytes` bytes: linear in them, whatever their shape.
pub fn budget(bytes: usize) -> crate::logic::Budget {
    crate::logic::Budget::new((WORK_BASE + WORK_PER_BYTE * bytes as u64).min(WORK_MAX))
}

/// Replay a proof of the conjunction of `goals` (none for a lemma); returns the
/// theorem of its last step, and the pool's terms. Under a [`budget`], a proof
/// that passes it is refused at the step that does.
pub fn replay(proof: &Proof, cache: &LemmaCache, goals: &[Term]) -> Result<(Theorem, Vec<Term>), ProofError> {
    if proof.terms.len().max(proof.steps.len()).max(proof.lemmas.len()) > MAX_PROOF_ITEMS {
        return Err(ProofError::Malformed("proof", format!("more than {MAX_PROOF_ITEMS} terms, steps or lemmas")));
    }
    let terms = build_terms(&proof.terms, goals)?;
    let lemmas = proof.lemmas.iter().map(|r| cache.resolve(r)).collect::<Result<Vec<_>, _>>()?;
    let mut done: Vec<Theorem> = Vec::with_capacity(proof.steps.len());
    for (index, step) in proof.steps.iter().enumerate() {
        let th = apply(step, &terms, &done, &lemmas);
        ensure!(!crate::logic::over_budget(), ProofError::Step(index, "budget", crate::logic::OVER.into()));
        done.push(th.map_err(|e| ProofError::Step(index, e.rule, e.reason))?);
    }
    let last = done.pop().ok_or(ProofError::Malformed("proof", "no steps".into()))?;
    Ok((last, terms))
}

fn apply(step: &Step, terms: &[Term], done: &[Theorem], lemmas: &[&Theorem]) -> Result<Theorem, RuleError> {
    let t = |i: u32| terms.get(i as usize).ok_or_else(|| RuleError { rule: "ref", reason: format!("no term {i}") });
    let s = |i: u32| done.get(i as usize).ok_or_else(|| RuleError { rule: "ref", reason: format!("step {i} is not an earlier step") });
    let l = |i: u32| lemmas.get(i as usize).copied().ok_or_else(|| RuleError { rule: "lemma", reason: format!("no cited lemma {i}") });
    use Step::*;
    match step {
        Assume { t: a } => Theorem::assume(t(*a)?),
        ImpIntro { t: a, s: b } => Theorem::imp_intro(t(*a)?, s(*b)?),
        ImpElim { s1, s2 } => Theorem::imp_elim(s(*s1)?, s(*s2)?),
        AndIntro { s1, s2 } => Theorem::and_intro(s(*s1)?, s(*s2)?),
        AndElim { s: a, right } => Theorem::and_elim(s(*a)?, *right),
        OrIntro { s: a, t: b, on_left } => Theorem::or_intro(s(*a)?, t(*b)?, *on_left),
        OrElim { s1, s2, s3 } => Theorem::or_elim(s(*s1)?, s(*s2)?, s(*s3)?),
        NotIntro { t: a, s: b } => Theorem::not_intro(t(*a)?, s(*b)?),
        NotElim { s1, s2 } => Theorem::not_elim(s(*s1)?, s(*s2)?),
        FalseElim { s: a, t: b } => Theorem::false_elim(s(*a)?, t(*b)?),
        ExcludedMiddle { t: a } => Theorem::excluded_middle(t(*a)?),
        Refl { t: a } => Theorem::refl(t(*a)?),
        EqSubst { s1, s2, var, template } => Theorem::eq_subst(s(*s1)?, s(*s2)?, t(*var)?, t(*template)?),
        Ite { s: a, c, x, y } => Theorem::ite(s(*a)?, t(*c)?, t(*x)?, t(*y)?),
        AllIntro { s: a, var } => Theorem::all_intro(s(*a)?, t(*var)?),
        AllElim { s: a, t: b } => Theorem::all_elim(s(*a)?, t(*b)?),
        Axiom { n } => Theorem::axiom(*n as usize),
        Lemma { i, at: None } => l(*i).cloned(),
        Lemma { i, at: Some(at) } => Theorem::inst(l(*i)?, t(*at)?),
        Eval { t: a } => Theorem::eval(t(*a)?),
        Farkas { premises } => {
            let ps = premises.iter().map(|&(i, c)| s(i).map(|th| (th, c))).collect::<Result<Vec<_>, _>>()?;
            Theorem::farkas(&ps)
        }
        Inst { s: a, t: b } => Theorem::inst(s(*a)?, t(*b)?),
        Conj { s: a } => Theorem::conj(&a.iter().map(|&i| s(i).cloned()).collect::<Result<Vec<_>, _>>()?),
    }
}

/// A lemma's theorem, verified by [`LemmaCache::verify`] (the only way to make one).
pub struct Verified(LemmaHash, Theorem);

/// Lemmas this checker has verified, by hash. A lemma enters only through
/// [`LemmaCache::admit`], which replays its proof.
#[derive(Clone, Debug, Default)]
pub struct LemmaCache {
    theorems: BTreeMap<LemmaHash, Theorem>,
}

impl LemmaCache {
    /// An empty cache: only the axioms are known.
    pub fn new() -> LemmaCache {
        LemmaCache::default()
    }

    /// The theorem of a verified lemma.
    pub fn get(&self, h: &LemmaHash) -> Option<&Theorem> {
        self.theorems.get(h)
    }

    /// The one verified lemma whose hash starts with `r` (a lookup in the ordered cache).
    pub fn resolve(&self, r: &LemmaRef) -> Result<&Theorem, ProofError> {
        let mut from = [0; 32];
        from.iter_mut().zip(&r.0).for_each(|(a, b)| *a = *b);
        let mut hits = self.theorems.range(LemmaHash(from)..).take_while(|(h, _)| r.names(h));
        match (hits.next(), hits.next()) {
            (Some((_, th)), None) => Ok(th),
            (None, _) => Err(ProofError::MissingLemma(r.clone())),
            _ => Err(ProofError::AmbiguousLemma(r.clone())),
        }
    }

    /// Verify a lemma from the axioms and the lemmas already cached, and cache it.
    pub fn admit(&mut self, lemma: &Lemma) -> Result<LemmaHash, ProofError> {
        Ok(self.insert(self.verify(lemma)?))
    }

    /// Verify a lemma against this cache without changing it (a router holds
    /// only a read lock meanwhile); [`LemmaCache::insert`] then caches it.
    pub fn verify(&self, lemma: &Lemma) -> Result<Verified, ProofError> {
        let hash = lemma.hash();
        if let Some(th) = self.theorems.get(&hash) {
            return Ok(Verified(hash, th.clone()));
        }
        let err = |reason: String| ProofError::Lemma(lemma.name.clone(), hash, reason);
        let _budget = budget(postcard::to_allocvec(lemma).map_or(0, |b| b.len()));
        let (th, terms) = replay(&lemma.proof, self, &[]).map_err(|e| err(e.to_string()))?;
        let statement = terms.get(lemma.statement as usize).ok_or_else(|| err("no statement term".into()))?;
        ensure!(th.hyps().is_empty() && th.concl() == statement, err("the proof does not prove the statement".into()));
        Ok(Verified(hash, th))
    }

    /// Cache a lemma that [`LemmaCache::verify`] verified.
    pub fn insert(&mut self, v: Verified) -> LemmaHash {
        self.theorems.insert(v.0, v.1);
        v.0
    }

    /// Verify every lemma of a library file, in order.
    pub fn admit_library(&mut self, bytes: &[u8]) -> Result<Vec<LemmaHash>, ProofError> {
        let lib: Library = decode_file(bytes, LIBRARY_MAGIC, "lemma library")?;
        if lib.version != CERT_VERSION {
            return Err(ProofError::Malformed("lemma library", format!("version {} (this checker reads {CERT_VERSION})", lib.version)));
        }
        lib.lemmas.iter().map(|l| self.admit(l)).collect()
    }
}
