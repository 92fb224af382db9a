//! Deciding many jobs at once: each program compiled, proved and its bundle
//! checked as a router checks it, each bundle checked; independent jobs in
//! parallel, and a job whose inputs have not changed answered from the cache.
//!
//! The cache is one file in the cache directory, `outcomes.json`: a map from
//! the blake3 hash of everything a job's outcome depends on (the tool, by its
//! version and the hash of its own executable, so a rebuilt vinetc never reads
//! an older one's answers; the input's name and bytes; its parameters; the
//! policy file's bytes; the lemma library's) to the outcome. Accepted and
//! refused outcomes are both kept: the same inputs give the same answer. It
//! is read once before the jobs run and written once after, atomically, with
//! the outcomes of this run only, so it never grows past one project's jobs
//! and holds no entry for a program that is gone; one file rather than one per
//! job because creating a thousand files costs more than proving a thousand
//! small programs. A cache that cannot be read is ignored (every job is run
//! again), one that cannot be written only costs the next run its speed; it
//! is never trusted for anything a router relies on, only for CI's verdicts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vinet_checker::cert::LemmaCache;
use vinet_lang::{Diagnostic, Diagnostics, Severity};

use super::project::Job;
use super::Failure;

/// What a diagnostic is about, for the outputs that group by rule (SARIF, JUnit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The program does not compile.
    Compile,
    /// The program is not safe under the policy (confinement, no leak, loops).
    Safety,
    /// The program costs more than the policy allows.
    Cost,
    /// The bundle is refused by the checker.
    Bundle,
}

impl Rule {
    /// Every rule, in the order SARIF lists them.
    pub const ALL: [Rule; 4] = [Rule::Compile, Rule::Safety, Rule::Cost, Rule::Bundle];

    /// Its identifier in machine-readable output.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Compile => "vinet/compile",
            Rule::Safety => "vinet/safety",
            Rule::Cost => "vinet/cost",
            Rule::Bundle => "vinet/bundle",
        }
    }

    /// One line about it.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::Compile => "The VInet program does not compile.",
            Rule::Safety => "The program may touch traffic that is not its uploader's, or a loop may not end, under the router's policy.",
            Rule::Cost => "The program's complexity, cost or lifetime exceeds the router's policy.",
            Rule::Bundle => "The bundle's certificate does not check against the router's policy.",
        }
    }
}

/// One located diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// `error` or `warning`.
    pub severity: String,
    /// The rule it breaks.
    pub rule: Rule,
    /// The message.
    pub message: String,
    /// Notes and help, in order.
    pub notes: Vec<String>,
}

/// How a job came out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Accepted.
    Accepted {
        /// The module's id.
        module: String,
        /// Complexity per window.
        complexity: u64,
        /// Complexity x lifetime.
        cost: u64,
        /// Lifetime in seconds.
        lifetime_secs: u64,
    },
    /// Refused (exit 1), with the one-line reason.
    Refused {
        /// One line.
        reason: String,
    },
    /// The input could not be read (exit 2).
    Unreadable {
        /// One line.
        reason: String,
    },
}

/// A job's outcome, as it is cached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// The verdict.
    pub verdict: Verdict,
    /// Located diagnostics (errors and warnings).
    pub findings: Vec<Finding>,
    /// The diagnostics rendered for people (stderr in text output).
    pub rendered: String,
}

/// A job and its outcome.
#[derive(Debug)]
pub struct Outcome {
    /// The job.
    pub job: Job,
    /// What came out.
    pub decided: Decided,
    /// Answered from the cache.
    pub cached: bool,
    /// Time spent on it (reading the cache included).
    pub elapsed: Duration,
    /// The proof, when the job proved a program and the bundles are kept
    /// (for `vinetc prove`).
    pub proved: Option<vinet_prover::Proved>,
}

/// How to run the jobs.
pub struct Options<'a> {
    /// The cache directory, if any.
    pub cache: Option<PathBuf>,
    /// Worker threads.
    pub jobs: usize,
    /// A lemma library file for bundles (`--lemmas`).
    pub lemmas: Option<&'a Path>,
    /// Keep the bundles of proved programs.
    pub keep_bundles: bool,
}

/// The default number of workers: one per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Read every policy the jobs name, or fail with exit 2 before any work.
fn policies(jobs: &[Job]) -> Result<Vec<(vinet_checker::Policy, Vec<u8>)>, Failure> {
    let mut seen: Vec<(PathBuf, (vinet_checker::Policy, Vec<u8>))> = vec![];
    let mut out = vec![];
    for j in jobs {
        if let Some((_, v)) = seen.iter().find(|(p, _)| *p == j.policy.path) {
            out.push(v.clone());
            continue;
        }
        let policy = super::load_policy(&j.policy.path)?;
        let bytes = super::read_input(&j.policy.path)?;
        seen.push((j.policy.path.clone(), (policy, bytes.clone())));
        out.push((policy, bytes));
    }
    Ok(out)
}

/// Where a worker leaves a job's cache key and outcome.
type Slot = std::sync::Mutex<Option<(Option<String>, Outcome)>>;

/// Decide every job, in parallel, each from the cache when it can be; the
/// outcomes in the jobs' order.
pub fn run(jobs: Vec<Job>, opts: &Options) -> Result<Vec<Outcome>, Failure> {
    let policies = policies(&jobs)?;
    let library = match opts.lemmas {
        Some(p) => Some(super::read_input(p)?),
        None => None,
    };
    let tool = if opts.cache.is_some() { tool_identity() } else { String::new() };
    let known: HashMap<String, Decided> = match (&opts.cache, opts.keep_bundles) {
        (Some(dir), false) => read_cache(dir),
        _ => HashMap::new(),
    };
    let prover: OnceLock<Result<vinet_prover::Prover, String>> = OnceLock::new();
    let bundle_lemmas: OnceLock<Result<LemmaCache, String>> = OnceLock::new();
    let next = AtomicUsize::new(0);
    let slots: Vec<Slot> = jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let workers = opts.jobs.clamp(1, jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let (policy, policy_bytes) = &policies[i];
                let started = Instant::now();
                let key = opts.cache.as_ref().map(|_| cache_key(&tool, job, policy_bytes, library.as_deref()));
                let cached = key.as_ref().and_then(|k| known.get(k)).cloned();
                let outcome = match cached {
                    Some(decided) => Outcome { job: job.clone(), decided, cached: true, elapsed: started.elapsed(), proved: None },
                    None => {
                        let (decided, bundle) = if job.is_bundle() {
                            let lemmas = bundle_lemmas.get_or_init(|| match &library {
                                Some(bytes) => library_cache(bytes),
                                // The shipped library, checked through the kernel first, as a router does.
                                None => prover_lemmas(&prover).and_then(|p| {
                                    library_cache(&vinet_checker::cert::encode_file(
                                        &p.lemmas().library,
                                        vinet_checker::cert::LIBRARY_MAGIC,
                                    ))
                                }),
                            });
                            (decide_bundle(job, policy, lemmas), None)
                        } else {
                            decide_program(job, policy, &prover)
                        };
                        let proved = if opts.keep_bundles { bundle } else { None };
                        Outcome { job: job.clone(), decided, cached: false, elapsed: started.elapsed(), proved }
                    }
                };
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some((key, outcome));
            });
        }
    });
    let done: Vec<(Option<String>, Outcome)> =
        slots.into_iter().filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
    if let Some(dir) = &opts.cache {
        let entries: HashMap<&str, &Decided> = done
            .iter()
            .filter(|(_, o)| !matches!(o.decided.verdict, Verdict::Unreadable { .. }))
            .filter_map(|(k, o)| Some((k.as_deref()?, &o.decided)))
            .collect();
        if let Err(e) = write_cache(dir, &entries) {
            eprintln!("vinetc: warning: the cache {} is not written: {e}", dir.display());
        }
    }
    Ok(done.into_iter().map(|(_, o)| o).collect())
}

fn prover_lemmas(prover: &OnceLock<Result<vinet_prover::Prover, String>>) -> Result<&vinet_prover::Prover, String> {
    prover
        .get_or_init(|| vinet_prover::Prover::new().map_err(|e| format!("the lemma library does not build: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn library_cache(bytes: &[u8]) -> Result<LemmaCache, String> {
    let mut cache = LemmaCache::new();
    cache.admit_library(bytes).map_err(|e| format!("lemma library refused: {e}"))?;
    Ok(cache)
}

/// The tool's identity for the cache: its version and its executable's hash.
fn tool_identity() -> String {
    let exe = std::env::current_exe().ok().and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
    format!("vinetc {} {}", env!("CARGO_PKG_VERSION"), blake3::hash(&exe))
}

fn cache_key(tool: &str, job: &Job, policy: &[u8], library: Option<&[u8]>) -> String {
    let mut h = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"vinet check cache 1");
    field(tool.as_bytes());
    field(job.file.to_string_lossy().as_bytes());
    field(&std::fs::read(&job.file).unwrap_or_default());
    let mut params = job.params.clone();
    params.sort();
    for (n, v) in &params {
        field(n.as_bytes());
        field(v.as_bytes());
    }
    field(job.policy.name.as_bytes());
    field(policy);
    field(library.unwrap_or(b"built-in"));
    h.finalize().to_hex().to_string()
}

/// The cache's file in its directory.
const CACHE_FILE: &str = "outcomes.json";

fn read_cache(dir: &Path) -> HashMap<String, Decided> {
    std::fs::read(dir.join(CACHE_FILE)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

/// Write the cache atomically (a temporary file renamed into place), so that
/// a concurrent or interrupted run never leaves half a cache.
fn write_cache(dir: &Path, entries: &HashMap<&str, &Decided>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec(entries).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{CACHE_FILE}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(CACHE_FILE)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn unreadable(reason: String) -> Decided {
    Decided { verdict: Verdict::Unreadable { reason }, findings: vec![], rendered: String::new() }
}

fn findings(diags: &Diagnostics, rule: impl Fn(&Diagnostic) -> Rule) -> Vec<Finding> {
    diags
        .items()
        .iter()
        .map(|d| {
            let (line, column) = d.primary.as_ref().map_or((1, 1), |(span, _)| diags.line_col(span.start));
            Finding {
                line,
                column,
                severity: match d.severity {
                    Severity::Error => "error".into(),
                    Severity::Warning => "warning".into(),
                },
                rule: rule(d),
                message: d.message.clone(),
                notes: d.notes.iter().chain(&d.help).cloned().collect(),
            }
        })
        .collect()
}

/// A cost failure is one about the policy's cost facts.
fn is_cost(message: &str) -> bool {
    ["complexity ", "cost ", "LIFETIME of "].iter().any(|w| message.starts_with(w)) && message.contains("exceeds the policy's")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Compile, prove and check a program.
fn decide_program(
    job: &Job, policy: &vinet_checker::Policy, prover: &OnceLock<Result<vinet_prover::Prover, String>>,
) -> (Decided, Option<vinet_prover::Proved>) {
    let name = job.file.display().to_string();
    let source = match std::fs::read(&job.file) {
        Ok(s) => s,
        Err(e) => return (unreadable(format!("cannot read {name}: {e}")), None),
    };
    let compiled = match vinet_lang::compile(&name, &source, &job.params) {
        Ok(c) => c,
        Err(d) => {
            let errors = d.items().iter().filter(|x| x.severity == Severity::Error).count();
            let reason = format!("{name} does not compile ({errors} error{})", plural(errors));
            return (
                Decided { verdict: Verdict::Refused { reason }, findings: findings(&d, |_| Rule::Compile), rendered: d.render() },
                None,
            );
        }
    };
    let warnings = findings(&compiled.warnings, |_| Rule::Compile);
    let warned = if compiled.warnings.is_empty() { String::new() } else { compiled.warnings.render() };
    let prover = match prover_lemmas(prover) {
        Ok(p) => p,
        Err(reason) => return (unreadable(reason), None),
    };
    let names: Vec<String> = compiled.program.vars.iter().map(|v| v.name.clone()).collect();
    let proved = match prover.prove_named(&compiled.module, policy, &names) {
        Ok(p) => p,
        Err(failures) => {
            let n = failures.len();
            let diags: Vec<Diagnostic> = failures
                .into_iter()
                .map(|f| {
                    let d = f.notes.iter().fold(compiled.diagnostic_at(f.at, Severity::Error, &f.message, "here"), |d, n| d.note(n));
                    match &f.help {
                        Some(h) => d.help(h),
                        None => d,
                    }
                })
                .collect();
            let d = compiled.render(diags).action("prove");
            let reason = format!("{name} is not safe under {} ({n} problem{})", job.policy.path.display(), plural(n));
            let mut all = warnings;
            all.extend(findings(&d, |x| if is_cost(&x.message) { Rule::Cost } else { Rule::Safety }));
            return (Decided { verdict: Verdict::Refused { reason }, findings: all, rendered: warned + &d.render() }, None);
        }
    };
    // Check the bundle as a router would: the prover's own proof, replayed
    // through the kernel against the predicate the checker derives.
    match vinet_checker::check(&proved.bytes, policy, &prover.lemmas().cache) {
        Ok(c) => (
            Decided {
                verdict: Verdict::Accepted {
                    module: c.id().to_string(),
                    complexity: c.complexity(),
                    cost: c.cost(),
                    lifetime_secs: c.module().header.lifetime_secs,
                },
                findings: warnings,
                rendered: warned,
            },
            Some(proved),
        ),
        Err(e) => {
            let reason = format!("the checker refuses the bundle proved from {name}: {e}");
            let finding =
                Finding { line: 1, column: 1, severity: "error".into(), rule: Rule::Bundle, message: reason.clone(), notes: vec![] };
            (Decided { verdict: Verdict::Refused { reason }, findings: vec![finding], rendered: warned }, None)
        }
    }
}

/// Check a bundle as a router does.
fn decide_bundle(job: &Job, policy: &vinet_checker::Policy, lemmas: &Result<LemmaCache, String>) -> Decided {
    let name = job.file.display().to_string();
    let bytes = match std::fs::read(&job.file) {
        Ok(b) => b,
        Err(e) => return unreadable(format!("cannot read {name}: {e}")),
    };
    let lemmas = match lemmas {
        Ok(l) => l,
        Err(reason) => return Decided { verdict: Verdict::Refused { reason: reason.clone() }, findings: vec![], rendered: String::new() },
    };
    match vinet_checker::check(&bytes, policy, lemmas) {
        Ok(c) => Decided {
            verdict: Verdict::Accepted {
                module: c.id().to_string(),
                complexity: c.complexity(),
                cost: c.cost(),
                lifetime_secs: c.module().header.lifetime_secs,
            },
            findings: vec![],
            rendered: String::new(),
        },
        Err(e) => {
            let finding =
                Finding { line: 1, column: 1, severity: "error".into(), rule: Rule::Bundle, message: e.to_string(), notes: vec![] };
            Decided { verdict: Verdict::Refused { reason: e.to_string() }, findings: vec![finding], rendered: String::new() }
        }
    }
}
