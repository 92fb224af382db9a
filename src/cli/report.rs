//! The outputs of `vinetc check` and `vinetc prove` over many jobs: text for
//! people, and for CI JSON lines, JUnit XML, SARIF 2.1.0 and GitHub Actions
//! workflow commands (CONTRACT section 8). Every diagnostic carries its file,
//! line and column in each of them.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::batch::{Finding, Outcome, Rule, Verdict};

/// Output formats of `vinetc check` and `vinetc prove`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CiFormat {
    /// For people: diagnostics on stderr, one line per accepted job on stdout.
    Text,
    /// JSON lines: one object per job on stdout.
    #[value(alias = "jsonl")]
    Json,
    /// JUnit XML on stdout: a test suite per policy, a test case per program.
    Junit,
    /// SARIF 2.1.0 on stdout, for code-scanning tools.
    Sarif,
    /// GitHub Actions workflow commands (`::error file=..,line=..,col=..::`).
    Github,
}

/// Everything to print on stdout for these outcomes (text output's
/// diagnostics go to stderr, written by the caller).
pub fn render(format: CiFormat, command: &str, outcomes: &[Outcome]) -> String {
    match format {
        CiFormat::Text => text(outcomes),
        CiFormat::Json => outcomes.iter().map(|o| json_line(o).to_string() + "\n").collect(),
        CiFormat::Junit => junit(command, outcomes),
        CiFormat::Sarif => serde_json::to_string_pretty(&sarif(outcomes)).unwrap_or_default() + "\n",
        CiFormat::Github => github(outcomes),
    }
}

fn file(o: &Outcome) -> String {
    o.job.file.display().to_string()
}

fn text(outcomes: &[Outcome]) -> String {
    let many = outcomes.len() > 1;
    let mut out = String::new();
    // A proved program has had its own line from `vinetc prove`.
    for o in outcomes.iter().filter(|o| o.proved.is_none()) {
        if let Verdict::Accepted { module, complexity, cost, .. } = &o.decided.verdict {
            let _ = write!(out, "accepted {}: module {module}, complexity {complexity} units/window, cost {cost}", file(o));
            if many {
                let _ = write!(out, ", under {}", o.job.policy.name);
                if !o.job.params.is_empty() {
                    let params: Vec<String> = o.job.params.iter().map(|(n, v)| format!("{n}={v}")).collect();
                    let _ = write!(out, ", with {}", params.join(" "));
                }
            }
            if o.cached {
                out.push_str(" (cached)");
            }
            out.push('\n');
        }
    }
    out
}

fn finding_json(o: &Outcome, f: &Finding) -> Value {
    json!({
        "file": file(o), "line": f.line, "column": f.column, "severity": f.severity,
        "rule": f.rule.id(), "message": f.message, "notes": f.notes,
    })
}

/// One job as a JSON object. A bundle's keeps the `bundle` field of the
/// one-bundle output.
pub fn json_line(o: &Outcome) -> Value {
    let mut v = json!({
        "file": file(o),
        "policy": o.job.policy.name,
        "params": o.job.params.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<String, Value>>(),
        "cached": o.cached,
        "diagnostics": o.decided.findings.iter().map(|f| finding_json(o, f)).collect::<Vec<_>>(),
    });
    let m = v.as_object_mut().expect("an object");
    if o.job.is_bundle() {
        m.insert("bundle".into(), json!(file(o)));
    }
    match &o.decided.verdict {
        Verdict::Accepted { module, complexity, cost, lifetime_secs } => {
            m.insert("accepted".into(), json!(true));
            m.insert("module".into(), json!(module));
            m.insert("complexity".into(), json!(complexity));
            m.insert("cost".into(), json!(cost));
            m.insert("lifetime_secs".into(), json!(lifetime_secs));
        }
        Verdict::Refused { reason } => {
            m.insert("accepted".into(), json!(false));
            m.insert("reason".into(), json!(reason));
        }
        Verdict::Unreadable { reason } => {
            m.insert("accepted".into(), json!(false));
            m.insert("error".into(), json!(reason));
            m.insert("reason".into(), json!(reason));
        }
    }
    v
}

/// Text as XML character data or an attribute value: escaped, and without
/// the control characters XML 1.0 cannot carry.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A finding as one block of text: `file:line:col: severity: message`, then its notes.
fn finding_text(o: &Outcome, f: &Finding) -> String {
    let mut s = format!("{}:{}:{}: {}: {}", file(o), f.line, f.column, f.severity, f.message);
    for n in &f.notes {
        let _ = write!(s, "\n  = {n}");
    }
    s
}

fn junit(command: &str, outcomes: &[Outcome]) -> String {
    let mut suites: Vec<(&str, Vec<&Outcome>)> = vec![];
    for o in outcomes {
        match suites.iter_mut().find(|(n, _)| *n == o.job.policy.name) {
            Some((_, v)) => v.push(o),
            None => suites.push((&o.job.policy.name, vec![o])),
        }
    }
    let count = |os: &[&Outcome]| {
        let failures = os.iter().filter(|o| matches!(o.decided.verdict, Verdict::Refused { .. })).count();
        let errors = os.iter().filter(|o| matches!(o.decided.verdict, Verdict::Unreadable { .. })).count();
        let time: f64 = os.iter().map(|o| o.elapsed.as_secs_f64()).sum();
        (os.len(), failures, errors, time)
    };
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let (n, f, e, t) = count(&all);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"{}\" tests=\"{n}\" failures=\"{f}\" errors=\"{e}\" time=\"{t:.3}\">", xml(command));
    for (policy, os) in &suites {
        let (n, f, e, t) = count(os);
        let _ = writeln!(out, "  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{f}\" errors=\"{e}\" time=\"{t:.3}\">", xml(policy));
        for o in os {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" time=\"{:.3}\"",
                xml(&o.job.label()),
                xml(policy),
                xml(&file(o)),
                o.elapsed.as_secs_f64()
            );
            let errors: Vec<&Finding> = o.decided.findings.iter().filter(|f| f.severity == "error").collect();
            match &o.decided.verdict {
                Verdict::Accepted { .. } => out.push_str("/>\n"),
                Verdict::Refused { reason } => {
                    let kind = errors.first().map_or(Rule::Bundle.id(), |f| f.rule.id());
                    let body: Vec<String> = errors.iter().map(|f| finding_text(o, f)).collect();
                    let body = if body.is_empty() { reason.clone() } else { body.join("\n") };
                    let _ = write!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"{kind}\">{}</failure>\n    </testcase>\n",
                        xml(reason),
                        xml(&body)
                    );
                }
                Verdict::Unreadable { reason } => {
                    let _ = write!(out, ">\n      <error message=\"{}\" type=\"unreadable\"/>\n    </testcase>\n", xml(reason));
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A relative path as a URI reference: `/` separators, no leading `./`,
/// and the characters a URI cannot hold percent-encoded.
fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    let mut out = String::new();
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b'+' | b'=' | b'@' | b',' => out.push(b as char),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn sarif_result(o: &Outcome, rule: Rule, level: &str, message: String, line: usize, column: usize) -> Value {
    json!({
        "ruleId": rule.id(),
        "ruleIndex": Rule::ALL.iter().position(|r| *r == rule).unwrap_or(0),
        "level": level,
        "message": { "text": message },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": { "uri": uri(&file(o)) },
                "region": { "startLine": line.max(1), "startColumn": column.max(1) }
            }
        }],
        "properties": { "policy": o.job.policy.name }
    })
}

/// The SARIF 2.1.0 log of these outcomes: one run, one result per diagnostic.
pub fn sarif(outcomes: &[Outcome]) -> Value {
    let mut results = vec![];
    for o in outcomes {
        let policy = &o.job.policy.name;
        for f in &o.decided.findings {
            let mut text = format!("{} (policy {policy})", f.message);
            for n in &f.notes {
                let _ = write!(text, "\n{n}");
            }
            let level = if f.severity == "error" { "error" } else { "warning" };
            results.push(sarif_result(o, f.rule, level, text, f.line, f.column));
        }
        let unlocated = match &o.decided.verdict {
            Verdict::Refused { reason } if !o.decided.findings.iter().any(|f| f.severity == "error") => Some(reason),
            Verdict::Unreadable { reason } => Some(reason),
            _ => None,
        };
        if let Some(reason) = unlocated {
            results.push(sarif_result(o, Rule::Bundle, "error", format!("{reason} (policy {policy})"), 1, 1));
        }
    }
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|r| json!({ "id": r.id(), "name": r.id().trim_start_matches("vinet/"), "shortDescription": { "text": r.describe() } }))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "vinetc",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules
            }},
            "results": results
        }]
    })
}

/// A workflow command's message: `%`, CR and LF escaped.
fn gh_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,` escaped.
fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn github(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let policy = &o.job.policy.name;
        for f in &o.decided.findings {
            let mut message = f.message.clone();
            for n in &f.notes {
                let _ = write!(message, "\n{n}");
            }
            let kind = if f.severity == "error" { "error" } else { "warning" };
            let _ = writeln!(
                out,
                "::{kind} file={},line={},col={},title={}::{}",
                gh_property(&file(o)),
                f.line,
                f.column,
                gh_property(&format!("{} under {policy}", f.rule.id())),
                gh_data(&message)
            );
        }
        match &o.decided.verdict {
            Verdict::Accepted { complexity, cost, .. } => {
                let _ = writeln!(out, "accepted {} under {policy}: complexity {complexity} units/window, cost {cost}", o.job.label());
            }
            Verdict::Refused { reason } if !o.decided.findings.iter().any(|f| f.severity == "error") => {
                let _ =
                    writeln!(out, "::error file={},title=vinet under {}::{}", gh_property(&file(o)), gh_property(policy), gh_data(reason));
            }
            Verdict::Unreadable { reason } => {
                let _ = writeln!(out, "::error file={}::{}", gh_property(&file(o)), gh_data(reason));
            }
            Verdict::Refused { .. } => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::batch::Decided;
    use crate::cli::project::{Job, PolicyRef};
    use std::path::PathBuf;
    use std::time::Duration;

    fn outcome(file: &str, verdict: Verdict, findings: Vec<Finding>) -> Outcome {
        Outcome {
            job: Job { file: PathBuf::from(file), policy: PolicyRef { name: "end-user".into(), path: "p.toml".into() }, params: vec![] },
            decided: Decided { verdict, findings, rendered: String::new() },
            cached: false,
            elapsed: Duration::from_millis(3),
            proved: None,
        }
    }

    fn refused() -> Outcome {
        let f = Finding {
            line: 7,
            column: 3,
            severity: "error".into(),
            rule: Rule::Safety,
            message: "DISCARD here could drop a packet, 100% <bad> & \"worse\"".into(),
            notes: vec!["with a, b: c".into()],
        };
        outcome("dir/a b.vinet", Verdict::Refused { reason: "not safe".into() }, vec![f])
    }

    #[test]
    fn github_commands_escape_what_the_syntax_reserves() {
        let s = github(&[refused()]);
        assert_eq!(
            s,
            "::error file=dir/a b.vinet,line=7,col=3,title=vinet/safety under end-user::DISCARD here could drop a packet, 100%25 <bad> & \"worse\"%0Awith a, b: c\n"
        );
    }

    #[test]
    fn junit_escapes_and_counts() {
        let ok = outcome("b.vinet", Verdict::Accepted { module: "m".into(), complexity: 1, cost: 2, lifetime_secs: 3 }, vec![]);
        let s = junit("vinetc check", &[refused(), ok]);
        assert!(s.contains("tests=\"2\" failures=\"1\" errors=\"0\""), "{s}");
        assert!(s.contains("dir/a b.vinet:7:3: error: DISCARD here could drop a packet, 100% &lt;bad&gt; &amp; &quot;worse&quot;"), "{s}");
        assert!(!s.contains("<bad>"), "{s}");
    }

    #[test]
    fn sarif_uris_are_uri_references() {
        assert_eq!(uri("./dir/a b.vinet"), "dir/a%20b.vinet");
        let v = sarif(&[refused()]);
        let loc = &v["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
        assert_eq!(loc["region"]["startLine"], 7);
        assert_eq!(loc["region"]["startColumn"], 3);
        assert_eq!(v["runs"][0]["results"][0]["ruleId"], "vinet/safety");
        assert_eq!(v["runs"][0]["results"][0]["ruleIndex"], 1);
    }
}
