//! `--param NAME=VALUE` is typed by the module's declaration, the same way
//! for `vinetc run` and for `vinetc upload` (one binding, vinet-vocab's
//! `bind_params`): the spam filter declares `PARAM Word1 = "viagra"`, so
//! `--param Word1=42` is the string "42" in both, not the number 42.
//!
//! Before the binding was shared, `run` read it as a string and `upload` as
//! a number, which the router then refused as malformed. Here `run` installs
//! and replays with it, and `upload` sends the string (read back from the
//! signed request it saved) to a real `vinetd`, which admits it.

mod router_support;

use router_support::*;
use serde_json::Value;
use vinet_checker::bytecode::Const;
use vinet_proto::protocol::{decode, Op, Request, Wire};

const END_USER: &str = "examples/policies/end-user.toml";

fn spam_filter(env: &Env) -> String {
    let out = env.p("spam_filter.vpc");
    let src = root().join("examples/spam_filter.vinet");
    vinetc(&["prove", src.to_str().unwrap(), "--policy", root().join(END_USER).to_str().unwrap(), "-o", &out]).ok();
    out
}

/// `vinetc run` of the spam filter on the shipped spam capture, JSON report.
fn run(bundle: &str, params: &[&str]) -> Value {
    let policy = root().join(END_USER);
    let pcap = root().join("examples/traffic/spam.pcap");
    let mut args = vec!["run", bundle, "--policy", policy.to_str().unwrap(), "--this-ip", "10.0.0.7"];
    args.extend(["--pcap", pcap.to_str().unwrap(), "--format", "json"]);
    for p in params {
        args.extend(["--param", p]);
    }
    serde_json::from_str(vinetc(&args).ok()).unwrap()
}

#[test]
fn run_reads_a_number_for_a_string_parameter_as_the_string() {
    let env = Env::new("params-run");
    let bundle = spam_filter(&env);
    // Exit 0 (run's `ok`) already says it is a string: the VM refuses to
    // instantiate a program with a number for a string parameter.
    let bare = run(&bundle, &["Word1=42"]);
    let p = &bare["programs"][0];
    assert_eq!(p["params"]["Word1"], "42", "{p}");
    assert_eq!(p["params"]["Word2"], "lottery", "{p}");
    // The same as the string written as a string literal.
    let quoted = run(&bundle, &["Word1=\"42\""]);
    assert_eq!(quoted["programs"][0]["discarded"], p["discarded"]);
    assert_eq!(quoted["programs"][0]["params"], p["params"]);
    // And a string of the capture's words still finds them: the value is the
    // program's Word1, whatever its text looks like.
    let words = run(&bundle, &["Word1=viagra"]);
    assert!(words["programs"][0]["discarded"].as_u64().unwrap() > 0, "{words}");
    // A name the program does not declare: a usage error naming its parameters.
    let policy = root().join(END_USER);
    let pcap = root().join("examples/traffic/spam.pcap");
    let o = vinetc(&[
        "run",
        &bundle,
        "--policy",
        policy.to_str().unwrap(),
        "--this-ip",
        "10.0.0.7",
        "--pcap",
        pcap.to_str().unwrap(),
        "--param",
        "Word3=x",
    ]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("declares no parameter Word3 (its parameters: Word1, Word2)"), "{}", o.stderr);
}

#[test]
fn upload_sends_the_string_and_the_router_admits_it() {
    let env = Env::new("params-upload");
    let cfg = env.config(&Settings::default());
    let _d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let bundle = spam_filter(&env);
    let c = env.client("c", "10.0.3.2");
    let saved = env.p("upload.req");
    let out = env.upload(&bundle, &c, 5_000, &["--param", "Word1=42", "--save-request", &saved]).ok().to_string();
    assert!(out.contains("admitted"), "{out}");
    let Wire::Signed(signed) = decode::<Wire>(&std::fs::read(&saved).unwrap()).unwrap() else { panic!("not a signed request") };
    let request: Request = decode(&signed.body).unwrap();
    let Op::Upload { params, .. } = request.op else { panic!("not an upload: {:?}", request.op) };
    assert_eq!(params, [("Word1".to_string(), Const::Str("42".into()))]);

    // Refused before anything is sent: a name the program does not declare,
    // and a value the declared type cannot take (no request is saved).
    let none = env.p("none.req");
    let e = env.upload(&bundle, &c, 5_000, &["--param", "Nope=1", "--save-request", &none]);
    assert_eq!(e.code, 2, "{e:?}");
    assert!(e.stderr.contains("declares no parameter Nope (its parameters: Word1, Word2)"), "{}", e.stderr);
    let fw = env.firewall("fw", "1 days");
    let e = env.upload(&fw, &c, 200, &["--param", "SrcIP=42", "--save-request", &none]);
    assert_eq!(e.code, 2, "{e:?}");
    assert!(e.stderr.contains("--param SrcIP=42: SrcIP is an address"), "{}", e.stderr);
    assert!(!std::path::Path::new(&none).exists());
}
