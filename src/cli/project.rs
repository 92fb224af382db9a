//! What `vinetc check` and `vinetc prove` work on: the inputs of a command
//! line (files, directories, globs, against `--policy` files) or a project
//! file, `vinet.toml`, that names the programs, their parameters and the
//! policies of the routers they target (CONTRACT section 8).
//!
//! ```toml
//! [policies]                      # name = policy file, relative to vinet.toml
//! end-user = "policies/end-user.toml"
//!
//! [[program]]
//! path = "programs/firewall.vinet"   # a file, a directory or a glob
//! policies = ["end-user"]            # default: every policy of [policies]
//! params = { SrcIP = "203.0.113.9" }
//! ```
//!
//! Everything here is planning: it reads no program and proves nothing, so a
//! mistake in the project file or a missing input is a usage error (exit 2)
//! before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Failure;

/// The project file's name.
pub const PROJECT_FILE: &str = "vinet.toml";

/// A policy a job is decided against: what output calls it, and its file.
#[derive(Clone, Debug)]
pub struct PolicyRef {
    /// The name in the project file, or the file's path as given.
    pub name: String,
    /// The policy file.
    pub path: PathBuf,
}

/// One unit of work: a program (or bundle) against one policy.
#[derive(Clone, Debug)]
pub struct Job {
    /// The program (`.vinet`) or bundle (`.vpc`), as output shows it.
    pub file: PathBuf,
    /// The policy.
    pub policy: PolicyRef,
    /// `--param` values, by name.
    pub params: Vec<(String, String)>,
}

impl Job {
    /// The input, with its parameters if it has any: `fw.vinet (SrcIP=1.2.3.4)`.
    pub fn label(&self) -> String {
        let file = self.file.display().to_string();
        if self.params.is_empty() {
            return file;
        }
        let params: Vec<String> = self.params.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!("{file} ({})", params.join(", "))
    }

    /// Whether the input is a bundle (`.vpc`) rather than a program.
    pub fn is_bundle(&self) -> bool {
        self.file.extension().is_some_and(|e| e == "vpc")
    }
}

/// The project file's contents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    #[serde(default)]
    policies: BTreeMap<String, String>,
    #[serde(default)]
    program: Vec<ProgramEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramEntry {
    path: String,
    #[serde(default)]
    policies: Option<Vec<String>>,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
}

/// A loaded project: where it is and its jobs.
#[derive(Debug)]
pub struct Project {
    /// The directory of `vinet.toml` (the cache lives there).
    pub root: PathBuf,
    /// Every program against every policy it targets, in file order.
    pub jobs: Vec<Job>,
}

/// `vinet.toml` in the current directory or the nearest parent that has one,
/// as a path relative to the current directory (`vinet.toml`, `../vinet.toml`).
pub fn find_project() -> Result<PathBuf, Failure> {
    let cwd = std::env::current_dir().map_err(|e| Failure::Usage(format!("cannot read the current directory: {e}")))?;
    let mut up = PathBuf::new();
    for dir in cwd.ancestors() {
        if dir.join(PROJECT_FILE).is_file() {
            return Ok(up.join(PROJECT_FILE));
        }
        up.push("..");
    }
    Err(Failure::Usage(format!(
        "no {PROJECT_FILE} in {} or any parent directory: name the programs and --policy, or write a {PROJECT_FILE} (see `vinetc check --help`)",
        cwd.display()
    )))
}

/// Read and plan a project file.
pub fn load_project(file: &Path) -> Result<Project, Failure> {
    let shown = file.display();
    let text = std::fs::read_to_string(file).map_err(|e| Failure::Usage(format!("cannot read {shown}: {e}")))?;
    let parsed: ProjectFile = toml::from_str(&text).map_err(|e| Failure::Usage(toml_error(file, &text, &e)))?;
    let root = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let under = |p: &str| if root == Path::new(".") { PathBuf::from(p) } else { root.join(p) };
    if parsed.policies.is_empty() {
        return Err(Failure::Usage(format!(
            "{shown}: no [policies]: name at least one router policy, like end-user = \"policies/end-user.toml\""
        )));
    }
    if parsed.program.is_empty() {
        return Err(Failure::Usage(format!("{shown}: no [[program]]: name at least one, like path = \"programs/*.vinet\"")));
    }
    let policies: BTreeMap<&str, PolicyRef> =
        parsed.policies.iter().map(|(name, path)| (name.as_str(), PolicyRef { name: name.clone(), path: under(path) })).collect();
    let mut jobs = vec![];
    for (i, entry) in parsed.program.iter().enumerate() {
        let which = format!("{shown}: [[program]] {} ({})", i + 1, entry.path);
        let targets: Vec<PolicyRef> = match &entry.policies {
            None => policies.values().cloned().collect(),
            Some(names) if names.is_empty() => return Err(Failure::Usage(format!("{which}: policies = [] names no policy"))),
            Some(names) => names
                .iter()
                .map(|n| {
                    policies.get(n.as_str()).cloned().ok_or_else(|| {
                        let known: Vec<&str> = policies.keys().copied().collect();
                        Failure::Usage(format!("{which}: no policy named `{n}` in [policies] (known: {})", known.join(", ")))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut params = vec![];
        for (name, value) in &entry.params {
            let value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) if *n >= 0 => n.to_string(),
                other => {
                    return Err(Failure::Usage(format!(
                        "{which}: param {name} is a {}: write a string or a natural number",
                        other.type_str()
                    )))
                }
            };
            let (name, value) =
                super::build::param(&format!("{name}={value}")).map_err(|e| Failure::Usage(format!("{which}: param {e}")))?;
            params.push((name, value));
        }
        let files = expand(&entry.path, &root).map_err(|e| Failure::Usage(format!("{which}: {e}")))?;
        for file in files {
            for policy in &targets {
                jobs.push(Job { file: file.clone(), policy: policy.clone(), params: params.clone() });
            }
        }
    }
    Ok(Project { root, jobs })
}

/// A TOML error in one line, located: `vinet.toml:3:9: ...`.
fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let (line, col) = vinet_lang::diagnostics::line_col(text, span.start);
            format!("{}:{line}:{col}: {message}", file.display())
        }
        None => format!("{}: {message}", file.display()),
    }
}

/// The jobs of a command line: every input (file, directory, glob) against
/// every `--policy`.
pub fn command_line_jobs(inputs: &[String], policies: &[PathBuf], params: &[(String, String)]) -> Result<Vec<Job>, Failure> {
    if policies.is_empty() {
        return Err(Failure::Usage("name the routers' policies with --policy POLICY.toml (or run with no inputs in a project)".into()));
    }
    let mut jobs = vec![];
    for input in inputs {
        for file in expand(input, Path::new(".")).map_err(Failure::Usage)? {
            for p in policies {
                let policy = PolicyRef { name: p.display().to_string(), path: p.clone() };
                jobs.push(Job { file: file.clone(), policy, params: params.to_vec() });
            }
        }
    }
    Ok(jobs)
}

/// What one input names: itself if it is a file; the programs (`.vinet`)
/// under it if it is a directory (bundles are named, or globbed); the files it matches if it is a glob
/// (relative to `base`). Each in sorted order; an input that names nothing
/// is an error.
pub(crate) fn expand(input: &str, base: &Path) -> Result<Vec<PathBuf>, String> {
    let path = if base == Path::new(".") { PathBuf::from(input) } else { base.join(input) };
    if path.is_file() {
        return Ok(vec![path]);
    }
    if path.is_dir() {
        let mut out = vec![];
        walk(&path, &mut out).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if out.is_empty() {
            return Err(format!("{} holds no .vinet program", path.display()));
        }
        return Ok(out);
    }
    if input.contains(['*', '?', '[']) {
        let pattern = path.to_string_lossy().into_owned();
        let mut out = vec![];
        for entry in glob::glob(&pattern).map_err(|e| format!("bad pattern {input}: {e}"))? {
            let p = entry.map_err(|e| format!("{input}: {e}"))?;
            if p.is_file() {
                out.push(p);
            }
        }
        out.sort();
        if out.is_empty() {
            return Err(format!("{} matches no file", pattern));
        }
        return Ok(out);
    }
    Err(format!("{}: no such file or directory", path.display()))
}

/// The `.vinet` files under a directory, recursively, sorted,
/// skipping hidden directories (the cache among them).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        let hidden = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if p.is_dir() && !hidden {
            walk(&p, out)?;
        } else if p.is_file() && p.extension().is_some_and(|e| e == "vinet") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vinet-project-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("programs/sub")).unwrap();
        std::fs::write(d.join("programs/a.vinet"), "LIFETIME = 1 hours\n").unwrap();
        std::fs::write(d.join("programs/sub/b.vinet"), "LIFETIME = 1 hours\n").unwrap();
        std::fs::write(d.join("programs/notes.txt"), "").unwrap();
        d
    }

    fn usage(r: Result<Project, Failure>) -> String {
        match r {
            Err(Failure::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn a_project_names_programs_params_and_policies() {
        let d = scratch("ok");
        std::fs::write(
            d.join(PROJECT_FILE),
            "[policies]\nend-user = \"p/eu.toml\"\nedge = \"p/edge.toml\"\n\n[[program]]\npath = \"programs\"\nparams = { N = 8, W = \"x\" }\n\n[[program]]\npath = \"programs/*.vinet\"\npolicies = [\"edge\"]\n",
        )
        .unwrap();
        let p = load_project(&d.join(PROJECT_FILE)).unwrap();
        let got: Vec<(String, String, usize)> = p
            .jobs
            .iter()
            .map(|j| (j.file.strip_prefix(&d).unwrap().display().to_string(), j.policy.name.clone(), j.params.len()))
            .collect();
        let want = [
            ("programs/a.vinet", "edge", 2),
            ("programs/a.vinet", "end-user", 2),
            ("programs/sub/b.vinet", "edge", 2),
            ("programs/sub/b.vinet", "end-user", 2),
            ("programs/a.vinet", "edge", 0),
        ];
        assert_eq!(got, want.map(|(a, b, c)| (a.to_string(), b.to_string(), c)));
        assert_eq!(p.jobs[0].policy.path, d.join("p/edge.toml"));
        assert_eq!(p.jobs[0].params, vec![("N".to_string(), "8".to_string()), ("W".to_string(), "x".to_string())]);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_malformed_project_file_is_one_located_line() {
        let d = scratch("bad");
        let f = d.join(PROJECT_FILE);
        let cases = [
            ("[policies]\nend-user = \n", ":2:"),
            ("[policies]\na = \"x\"\n[[program]]\npath = \"programs\"\npolicys = [\"a\"]\n", "unknown field `policys`"),
            ("[policies]\na = \"x\"\n[[program]]\npath = \"programs\"\npolicies = [\"b\"]\n", "no policy named `b`"),
            ("[policies]\na = \"x\"\n[[program]]\npath = \"nothing/*.vinet\"\n", "matches no file"),
            ("[policies]\na = \"x\"\n[[program]]\npath = \"programs\"\nparams = { N = true }\n", "param N is a boolean"),
            ("[policies]\na = \"x\"\n[[program]]\npath = \"programs\"\nparams = { 9N = \"1\" }\n", "not a valid name"),
            ("[[program]]\npath = \"programs\"\n", "no [policies]"),
            ("[policies]\na = \"x\"\n", "no [[program]]"),
        ];
        for (text, want) in cases {
            std::fs::write(&f, text).unwrap();
            let m = usage(load_project(&f));
            assert!(m.contains(want), "{text:?}: {m}");
            assert_eq!(m.lines().count(), 1, "{text:?}: {m}");
        }
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn command_line_inputs_are_files_directories_and_globs() {
        let d = scratch("cli");
        let p = vec![PathBuf::from("eu.toml"), PathBuf::from("edge.toml")];
        let s = |x: &str| d.join(x).display().to_string();
        let jobs = command_line_jobs(&[s("programs/a.vinet"), s("programs"), s("programs/*/*.vinet")], &p, &[]).unwrap();
        assert_eq!(jobs.len(), 2 * (1 + 2 + 1));
        assert!(matches!(command_line_jobs(&[s("programs")], &[], &[]), Err(Failure::Usage(_))));
        assert!(matches!(command_line_jobs(&[s("missing.vinet")], &p, &[]), Err(Failure::Usage(m)) if m.contains("no such file")));
        let _ = std::fs::remove_dir_all(d);
    }
}
