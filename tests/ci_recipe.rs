//! The README's CI recipe ("Proofs in CI"), run on `examples/ci/` as a team's
//! repository would run it: `vinetc fmt --check`, then `vinetc check` with no
//! arguments in the project's directory. The example passes; with one program
//! changed to be unsafe, the diagnostic lands on the line at fault in every
//! output format (JSON lines, JUnit XML read by an XML parser, SARIF 2.1.0
//! checked against the schema's required and allowed properties, GitHub
//! annotations), the exit status is the contract's 1, and only the changed
//! program is proved again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh copy of `examples/ci` (without a cache or bundles a local run left).
fn example(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vinet-ci-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy(&root().join("examples/ci"), &dir);
    dir
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == ".vinet-cache" || p.extension().is_some_and(|x| x == "vpc") {
            continue;
        }
        if p.is_dir() {
            copy(&p, &to.join(name));
        } else {
            std::fs::copy(&p, to.join(name)).unwrap();
        }
    }
}

fn vinetc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vinetc")).current_dir(dir).args(args).output().expect("run vinetc")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const FIREWALL: &str = "programs/end-user/firewall.vinet";

/// Make the firewall discard what SrcIP sends to anyone: the DISCARD on
/// line 8 is no longer confined to the client's own packets.
fn break_firewall(dir: &Path) -> usize {
    let path = dir.join(FIREWALL);
    let src = std::fs::read_to_string(&path).unwrap();
    let line = src.lines().position(|l| l == "DISCARD(BadPackets);").expect("the firewall's DISCARD") + 1;
    std::fs::write(&path, src.replace("DISCARD(BadPackets);", "DISCARD(GROUP_BY_SOURCE(AllPackets, SrcIP));")).unwrap();
    line
}

fn json_lines(o: &Output) -> Vec<Value> {
    text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"))).collect()
}

#[test]
fn the_example_passes_the_recipe() {
    let dir = example("pass");
    let o = vinetc(&dir, &["fmt", "--check"]);
    assert_eq!(o.status.code(), Some(0), "fmt --check: {}{}", text(&o.stdout), text(&o.stderr));
    let o = vinetc(&dir, &["check", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(lines.iter().all(|l| l["accepted"] == true && l["cached"] == false && l["diagnostics"] == serde_json::json!([])), "{lines:?}");
    assert!(lines.iter().any(|l| l["policy"] == "edge-router"), "{lines:?}");
    // Again: everything comes from the cache.
    let o = vinetc(&dir, &["check", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(json_lines(&o).iter().all(|l| l["cached"] == true && l["accepted"] == true));
    // A cache entry that cannot be read is ignored, and the job is decided again.
    for e in std::fs::read_dir(dir.join(".vinet-cache")).unwrap().flatten() {
        std::fs::write(e.path(), b"{not json").unwrap();
    }
    let o = vinetc(&dir, &["check", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(json_lines(&o).iter().all(|l| l["cached"] == false && l["accepted"] == true));
    // From a subdirectory: the project is found in the parent, and the files
    // are named from where vinetc runs (what the diagnostics show is part of
    // what is cached, so this is a first run for the cache).
    let o = vinetc(&dir.join("programs"), &["check", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|l| l["accepted"] == true && l["file"].as_str().unwrap().starts_with("../programs/")), "{lines:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unsafe_program_is_annotated_on_its_line_in_every_format() {
    let dir = example("unsafe");
    assert_eq!(vinetc(&dir, &["check"]).status.code(), Some(0));
    let line = break_firewall(&dir);
    assert_eq!(line, 8);

    // JSON lines: only the changed program is proved again (twice: it is
    // listed with two parameter sets); the rest come from the cache.
    let o = vinetc(&dir, &["check", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let lines = json_lines(&o);
    let (fw, rest): (Vec<&Value>, Vec<&Value>) = lines.iter().partition(|l| l["file"] == FIREWALL);
    assert_eq!(fw.len(), 2);
    for l in &fw {
        assert_eq!(l["accepted"], false);
        assert_eq!(l["cached"], false);
        let d = &l["diagnostics"][0];
        assert_eq!((d["file"].as_str(), d["line"].as_u64(), d["column"].as_u64()), (Some(FIREWALL), Some(8), Some(1)), "{d}");
        assert_eq!(d["rule"], "vinet/safety");
        assert!(d["message"].as_str().unwrap().starts_with("DISCARD here could drop a packet"), "{d}");
    }
    assert!(rest.iter().all(|l| l["accepted"] == true && l["cached"] == true), "{rest:?}");

    // Text: the located diagnostic on stderr, exit 1.
    let o = vinetc(&dir, &["check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("┌─ {FIREWALL}:8:1")), "{err}");
    assert!(err.trim_end().ends_with("vinetc: 2 of 6 refused"), "{err}");

    // GitHub Actions: an error annotation on the line.
    let o = vinetc(&dir, &["check", "--format", "github"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    let annotations: Vec<&str> = out.lines().filter(|l| l.starts_with("::error ")).collect();
    assert!(
        annotations
            .iter()
            .any(|a| a.starts_with(&format!("::error file={FIREWALL},line=8,col=1,title=vinet/safety under end-user::DISCARD here"))),
        "{out}"
    );
    assert!(annotations.iter().all(|a| a.contains(&format!("file={FIREWALL},line=8,"))), "{out}");

    junit(&vinetc(&dir, &["check", "--format", "junit"]));
    sarif(&vinetc(&dir, &["check", "--format", "sarif"]));
    let _ = std::fs::remove_dir_all(dir);
}

/// The JUnit report, read by an XML parser: 6 cases in two suites, the two
/// firewall cases failed with the located diagnostic.
fn junit(o: &Output) {
    use quick_xml::events::Event;
    assert_eq!(o.status.code(), Some(1));
    let xml = text(&o.stdout);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut suites, mut cases, mut failures) = (vec![], 0, vec![]);
    let mut case_name = String::new();
    let mut in_failure = false;
    let attr = |e: &quick_xml::events::BytesStart, name: &[u8]| {
        e.try_get_attribute(name).unwrap().map(|a| a.unescape_value().unwrap().into_owned()).unwrap_or_default()
    };
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("not XML at {}: {e}\n{xml}", reader.buffer_position())) {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testsuite" => {
                suites.push((attr(&e, b"name"), attr(&e, b"tests"), attr(&e, b"failures")))
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                cases += 1;
                case_name = attr(&e, b"name");
            }
            Event::Start(e) if e.name().as_ref() == b"failure" => {
                assert_eq!(attr(&e, b"type"), "vinet/safety");
                in_failure = true;
            }
            Event::Text(t) if in_failure => {
                failures.push((case_name.clone(), t.decode().unwrap().into_owned()));
                in_failure = false;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let want =
        vec![("end-user".to_string(), "4".to_string(), "2".to_string()), ("edge-router".to_string(), "2".to_string(), "0".to_string())];
    assert_eq!(suites, want);
    assert_eq!(cases, 6);
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(failures[0].0, FIREWALL);
    assert_eq!(failures[1].0, format!("{FIREWALL} (SrcIP=192.0.2.66)"));
    for (_, body) in &failures {
        assert!(body.starts_with(&format!("{FIREWALL}:8:1: error: DISCARD here could drop a packet")), "{body}");
    }
}

/// The SARIF log against the SARIF 2.1.0 schema (sarif-schema-2.1.0.json):
/// for every object the output uses, the properties the schema requires are
/// there and no property the schema does not define is (the schema sets
/// `additionalProperties: false` on each of them), with the types and enums
/// it gives. The schema file itself is not vendored.
fn sarif(o: &Output) {
    assert_eq!(o.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&o.stdout).expect("SARIF is JSON");
    let obj = |v: &Value, what: &str, required: &[&str], allowed: &[&str]| {
        let m = v.as_object().unwrap_or_else(|| panic!("{what} is not an object: {v}"));
        for r in required {
            assert!(m.contains_key(*r), "{what} lacks the required {r}: {v}");
        }
        for k in m.keys() {
            assert!(allowed.contains(&k.as_str()) || required.contains(&k.as_str()), "{what} has {k}, which SARIF 2.1.0 does not define");
        }
    };
    obj(&log, "sarifLog", &["version", "runs"], &["$schema", "inlineExternalProperties", "properties"]);
    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"].as_str().unwrap().ends_with("sarif-2.1.0.json"));
    let runs = log["runs"].as_array().expect("runs is an array");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    obj(run, "run", &["tool"], &["results", "artifacts", "invocations", "originalUriBaseIds", "properties"]);
    obj(&run["tool"], "tool", &["driver"], &["extensions", "properties"]);
    let driver = &run["tool"]["driver"];
    obj(driver, "toolComponent", &["name"], &["version", "informationUri", "rules", "fullName", "semanticVersion", "properties"]);
    let rules = driver["rules"].as_array().unwrap();
    for r in rules {
        obj(r, "reportingDescriptor", &["id"], &["name", "shortDescription", "fullDescription", "helpUri", "help", "properties"]);
        obj(&r["shortDescription"], "multiformatMessageString", &["text"], &["markdown", "properties"]);
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "two diagnostics for each firewall case");
    for r in results {
        obj(r, "result", &["message"], &["ruleId", "ruleIndex", "level", "locations", "properties", "kind"]);
        assert!(["none", "note", "warning", "error"].contains(&r["level"].as_str().unwrap()));
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"], "ruleIndex points at the rule");
        obj(&r["message"], "message", &[], &["text", "markdown", "id", "arguments", "properties"]);
        assert!(r["message"]["text"].is_string());
        assert!(r["properties"].is_object(), "a propertyBag is an object");
        for l in r["locations"].as_array().unwrap() {
            obj(
                l,
                "location",
                &[],
                &["id", "physicalLocation", "logicalLocations", "message", "annotations", "relationships", "properties"],
            );
            let p = &l["physicalLocation"];
            obj(p, "physicalLocation", &[], &["address", "artifactLocation", "region", "contextRegion", "properties"]);
            obj(&p["artifactLocation"], "artifactLocation", &[], &["uri", "uriBaseId", "index", "description", "properties"]);
            obj(
                &p["region"],
                "region",
                &[],
                &["startLine", "startColumn", "endLine", "endColumn", "charOffset", "charLength", "snippet", "message"],
            );
            assert!(p["region"]["startLine"].as_u64().unwrap() >= 1 && p["region"]["startColumn"].as_u64().unwrap() >= 1);
            assert_eq!(p["artifactLocation"]["uri"], FIREWALL);
            assert_eq!(p["region"]["startLine"], 8);
        }
    }
    assert_eq!(results[0]["locations"][0]["physicalLocation"]["region"]["startColumn"], 1);
    assert_eq!(results[0]["ruleId"], "vinet/safety");
}

#[test]
fn fmt_check_names_the_file_that_is_not_formatted() {
    let dir = example("fmt");
    let path = dir.join(FIREWALL);
    let src = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, src.replace("DISCARD(BadPackets);", "DISCARD( BadPackets )")).unwrap();
    let o = vinetc(&dir, &["fmt", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.starts_with(&format!("{FIREWALL}:8: not formatted\n  -DISCARD( BadPackets )\n  +DISCARD(BadPackets);")), "{out}");
    assert!(text(&o.stderr).contains("1 of 5 files are not formatted"), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        src.replace("DISCARD(BadPackets);", "DISCARD( BadPackets )"),
        "--check writes nothing"
    );
    let o = vinetc(&dir, &["fmt", FIREWALL]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), src);
    assert_eq!(vinetc(&dir, &["fmt", "--check"]).status.code(), Some(0));
    // A program that does not parse is not formatted: its error, exit 1.
    std::fs::write(&path, "LIFETIME = 1 hours\nX = (;\n").unwrap();
    let o = vinetc(&dir, &["fmt", "--check", FIREWALL]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(&format!("{FIREWALL}:2:")), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_malformed_project_is_one_located_line_and_exit_2() {
    let dir = example("bad");
    std::fs::write(dir.join("vinet.toml"), "[policies]\nend-user = \"policies/end-user.toml\"\n[[program]]\npath = 7\n").unwrap();
    let o = vinetc(&dir, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("vinetc: vinet.toml:4:8: "), "{err}");
    assert!(!err.contains("panicked"));
    // No project at all: exit 2, saying what to do.
    let empty = std::env::temp_dir().join(format!("vinet-ci-none-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    if !empty.ancestors().any(|d| d.join("vinet.toml").is_file()) {
        let o = vinetc(&empty, &["check"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o.stderr).contains("no vinet.toml in"), "{}", text(&o.stderr));
    }
    let _ = std::fs::remove_dir_all(empty);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn named_inputs_are_checked_against_each_policy() {
    let dir = example("named");
    let o = vinetc(
        &dir,
        &[
            "check",
            "programs/end-user/*.vinet",
            "programs/edge-router",
            "--policy",
            "policies/end-user.toml",
            "--policy",
            "policies/edge-router.toml",
            "--format",
            "json",
        ],
    );
    // 5 programs x 2 policies; an end user's program is refused under the
    // edge router's policy and the other way round, where the programs
    // confine themselves to the other kind of client.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 10);
    let verdict = |file: &str, policy: &str| {
        lines.iter().find(|l| l["file"] == file && l["policy"] == policy).map(|l| l["accepted"].clone()).unwrap()
    };
    assert_eq!(verdict("programs/end-user/spam_filter.vinet", "policies/end-user.toml"), true);
    assert_eq!(verdict("programs/edge-router/worm_blocker.vinet", "policies/edge-router.toml"), true);
    assert_eq!(verdict("programs/edge-router/worm_blocker.vinet", "policies/end-user.toml"), false);
    assert!(!dir.join(".vinet-cache").exists(), "named inputs use no cache unless --cache-dir says where");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn prove_writes_a_bundle_per_program_and_policy_that_check_accepts() {
    let dir = example("prove");
    let o = vinetc(
        &dir,
        &["prove", "programs/end-user/firewall.vinet", "--policy", "policies/end-user.toml", "--policy", "policies/edge-router.toml"],
    );
    // The firewall confines to THIS_IP: proved for end users, refused for edge routers.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("proved programs/end-user/firewall.end-user.vpc: "), "{}", text(&o.stdout));
    assert!(!dir.join("programs/end-user/firewall.edge-router.vpc").exists());
    let o = vinetc(&dir, &["prove", "programs/edge-router", "--policy", "policies/edge-router.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = vinetc(&dir, &["check", "programs/edge-router/*.vpc", "--policy", "policies/edge-router.toml", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["accepted"] == true && l["bundle"].as_str().unwrap().ends_with(".vpc")), "{lines:?}");
    // The whole project: the firewall is listed twice (two parameter sets),
    // so no bundle overwrites another.
    let o = vinetc(&dir, &["prove", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(json_lines(&o).len(), 6);
    for b in ["firewall.end-user.1.vpc", "firewall.end-user.2.vpc", "monitor.vpc", "spam_filter.vpc"] {
        assert!(dir.join("programs/end-user").join(b).is_file(), "{b}");
    }
    let (one, two) = (
        std::fs::read(dir.join("programs/end-user/firewall.end-user.1.vpc")).unwrap(),
        std::fs::read(dir.join("programs/end-user/firewall.end-user.2.vpc")).unwrap(),
    );
    assert_ne!(one, two, "two parameter sets, two modules");
    let o = vinetc(&dir, &["prove", "programs/edge-router", "--policy", "policies/edge-router.toml", "-o", "x.vpc"]);
    assert_eq!(o.status.code(), Some(2), "-o with two programs");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_program_that_does_not_compile_is_located_too() {
    let dir = example("compile");
    let path = dir.join(FIREWALL);
    let src = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, src.replace("DISCARD(BadPackets);", "DISCARD(BadPackts);")).unwrap();
    let o = vinetc(&dir, &["check", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let lines = json_lines(&o);
    let fw = lines.iter().find(|l| l["file"] == FIREWALL).unwrap();
    assert_eq!(fw["accepted"], false);
    let d = &fw["diagnostics"][0];
    assert_eq!((d["rule"].as_str(), d["line"].as_u64(), d["column"].as_u64()), (Some("vinet/compile"), Some(8), Some(9)), "{d}");
    assert!(fw["reason"].as_str().unwrap().ends_with("does not compile (1 error)"), "{fw}");
    let o = vinetc(&dir, &["check", "--format", "github"]);
    assert!(
        text(&o.stdout).contains(&format!("::error file={FIREWALL},line=8,col=9,title=vinet/compile under end-user::")),
        "{}",
        text(&o.stdout)
    );
    let _ = std::fs::remove_dir_all(dir);
}
