//! `vinetc upload BUNDLE --router HOST:PORT --key KEY --identity ID --pay N [--param NAME=VALUE]...`
//!
//! Also the connection options shared by `renew`, `withdraw` and `status`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use vinet_checker::bytecode::Const;
use vinet_checker::cert::{decode_file, Bundle, Lemma, LemmaRef, BUNDLE_MAGIC};
use vinet_checker::Module;
use vinet_proto::client::Client;
use vinet_proto::identity::{parse_secret_key, SignedIdentity};
use vinet_proto::keyfile::parse_router_public;
use vinet_proto::protocol::{Op, Reply};

use vinet_vocab::params::{bind_params, ParamError};

use super::{read_input, unquote, Failure, Format};

const AFTER_HELP: &str = "\
Example:
  vinetc upload firewall.vpc --router 192.0.2.1:7700 --router-key router.key.pub \\
      --key alice.key --identity alice.vid --pay 200 --param SrcIP=203.0.113.9

The request is signed with KEY, numbered from KEY.seq (strictly increasing),
and sent over a Noise channel to the router whose key is pinned by
--router-key (the operator publishes it; `vinetd --config R.toml --print-key`
prints it). The router takes THIS_IP from the identity, schedules the program,
checks its proof and installs it. --pay must cover the price of the bundle's
declared cost; a refused upload costs nothing. If the router lacks lemmas the
certificate cites, they are sent from the lemma library once and the upload is
retried. Exit 0: admitted; 1: refused (the reason is printed); 2: bad usage,
unreadable input or no connection.";

/// How to reach and sign for a router.
#[derive(clap::Args, Debug)]
pub struct Conn {
    /// The router's request address.
    #[arg(long, value_name = "HOST:PORT")]
    pub router: String,
    /// The router's public key (its .pub file or hex) [env: VINET_ROUTER_KEY].
    #[arg(long, value_name = "KEY.pub|HEX")]
    pub router_key: Option<String>,
    /// The client's secret key.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// The client's identity certificate.
    #[arg(long, value_name = "ID.vid")]
    pub identity: Option<PathBuf>,
    /// Seconds to wait for the router.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Use this sequence number (testing replay protection).
    #[arg(long, hide = true)]
    pub seq: Option<u64>,
    /// Write the signed request sent to FILE (testing replay protection).
    #[arg(long, hide = true, value_name = "FILE")]
    pub save_request: Option<PathBuf>,
}

impl Conn {
    /// Connect; with `signed`, load the key and identity too.
    pub fn connect(&self, signed: bool) -> Result<Client, Failure> {
        let rk = match &self.router_key {
            Some(k) => k.clone(),
            None => std::env::var("VINET_ROUTER_KEY").map_err(|_| {
                Failure::Usage("no --router-key: pin the router's public key (its operator publishes it; `vinetd --config R.toml --print-key` prints it)".into())
            })?,
        };
        let text = std::fs::read_to_string(&rk).unwrap_or(rk);
        let router = parse_router_public(&text).map_err(|e| Failure::Usage(format!("--router-key: {e}")))?;
        let mut c = Client::connect(&self.router, router, Duration::from_secs(self.timeout))
            .map_err(|e| Failure::Usage(format!("cannot reach the router at {}: {e}", self.router)))?;
        if signed || self.key.is_some() {
            let (Some(kp), Some(ip)) = (&self.key, &self.identity) else {
                return Err(Failure::Usage("--key KEY and --identity ID.vid are needed".into()));
            };
            let text = std::fs::read_to_string(kp).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", kp.display())))?;
            let key = parse_secret_key(&text).map_err(|e| Failure::Usage(format!("{}: {e}", kp.display())))?;
            let id = SignedIdentity::from_file(&read_input(ip)?).map_err(|e| Failure::Usage(format!("{}: {e}", ip.display())))?;
            c = c.with_identity(key, id, Some(kp.clone()));
            c.next_seq = self.seq;
        }
        Ok(c)
    }

    /// Send a signed request; save it if asked.
    pub fn request(&self, c: &mut Client, op: Op) -> Result<Reply, Failure> {
        let r = c.request(op).map_err(|e| Failure::Usage(format!("no answer from the router at {}: {e}", self.router)))?;
        if let (Some(p), Some(b)) = (&self.save_request, &c.last_sent) {
            std::fs::write(p, b).map_err(|e| Failure::Usage(format!("cannot write {}: {e}", p.display())))?;
        }
        Ok(r)
    }
}

/// Print a refusal (and JSON) and fail with exit 1; anything else unexpected is exit 2.
pub fn refusal(reply: Reply, format: Format) -> Failure {
    match reply {
        Reply::Refused { reason, message } => {
            if let Format::Json = format {
                println!("{}", serde_json::json!({"ok": false, "refused": reason.label(), "reason": message}));
            }
            Failure::Rejected(format!("refused ({}): {message}", reason.label()))
        }
        other => Failure::Usage(format!("unexpected reply from the router: {other:?}")),
    }
}

/// "1d 23h 59m 57s" until an end time.
pub fn until(ms: u64) -> String {
    let s = ms.saturating_sub(vinet_proto::clock::now_ms()).div_ceil(1000);
    let parts = [(s / 86_400, "d"), (s / 3600 % 24, "h"), (s / 60 % 60, "m"), (s % 60, "s")];
    let v: Vec<String> = parts.iter().skip_while(|(n, _)| *n == 0).map(|(n, u)| format!("{n}{u}")).collect();
    if v.is_empty() {
        "0s".into()
    } else {
        v.join(" ")
    }
}

/// Arguments of `vinetc upload`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The bundle (from `vinetc prove`).
    #[arg(value_name = "BUNDLE.vpc")]
    pub bundle: PathBuf,
    /// Connection and signing.
    #[command(flatten)]
    pub conn: Conn,
    /// Credits to pay (at least the price of the bundle's declared cost;
    /// `--quote` tells it).
    #[arg(long, value_name = "N", required_unless_present = "quote")]
    pub pay: Option<u64>,
    /// Ask the router its price for this bundle (and, with --key and
    /// --identity, your balance) and upload nothing.
    #[arg(long)]
    pub quote: bool,
    /// Bind a parameter at install, typed by the program's declaration.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = vinet_lang::parse_param_arg)]
    pub params: Vec<(String, String)>,
    /// The lemma library to send lemmas from [default: the shipped library].
    #[arg(long, value_name = "LIB")]
    pub lemmas: Option<PathBuf>,
    /// Send FILE's bytes as the request, unchanged, and print the answer (testing the router).
    #[arg(long, hide = true, value_name = "FILE")]
    pub send_raw: Option<PathBuf>,
}

/// The lemmas of `library` that `refs` name (each the lemma whose hash it
/// begins), with what they cite, in library order.
fn lemmas_for(library: &[Lemma], refs: &[LemmaRef]) -> Vec<Lemma> {
    let mut need: HashSet<LemmaRef> = refs.iter().cloned().collect();
    let needed = |need: &HashSet<LemmaRef>, l: &Lemma| need.iter().any(|r| r.names(&l.hash()));
    for l in library.iter().rev() {
        if needed(&need, l) {
            need.extend(l.proof.lemmas.iter().cloned());
        }
    }
    library.iter().filter(|l| needed(&need, l)).cloned().collect()
}

fn library(path: Option<&PathBuf>) -> Result<Vec<Lemma>, Failure> {
    let lib = match path {
        Some(p) => vinet_checker::cert::decode_file::<vinet_checker::cert::Library>(
            &read_input(p)?,
            vinet_checker::cert::LIBRARY_MAGIC,
            "lemma library",
        )
        .map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?,
        None => vinet_prover::lemma_src::build(vinet_prover::lemma_src::BUILTIN).map_err(Failure::Usage)?.library,
    };
    Ok(lib.lemmas)
}

/// The module of a bundle, to read its parameter declarations (the router
/// checks it; here it only types the values).
fn bundle_module(bundle: &[u8]) -> Result<Module, String> {
    let b: Bundle = decode_file(bundle, BUNDLE_MAGIC, "bundle").map_err(|e| format!("cannot read its parameters: {e}"))?;
    Module::decode(&b.module).map_err(|e| format!("cannot read its parameters: {e}"))
}

/// The `--param` values to send, by name, each typed by the module's
/// declaration exactly as `vinetc run` types it (one binding, vinet-vocab's);
/// the parameters not given are left to their defaults.
fn params_to_send(module: &Module, given: &[(String, String)]) -> Result<Vec<(String, Const)>, ParamError> {
    let values = bind_params(&module.params, given, unquote)?;
    Ok(module
        .params
        .iter()
        .zip(values)
        .filter(|(p, _)| given.iter().any(|(n, _)| n == &p.name))
        .map(|(p, v)| (p.name.clone(), v))
        .collect())
}

/// `vinetc upload --quote`: the router's price for the bundle's declared
/// cost, from its status; nothing is uploaded or paid.
fn quote(args: &Args, bundle: &[u8]) -> Result<(), Failure> {
    let b: Bundle = decode_file(bundle, BUNDLE_MAGIC, "bundle").map_err(|e| Failure::Usage(format!("{}: {e}", args.bundle.display())))?;
    let mut c = args.conn.connect(false)?;
    let reply = if args.conn.key.is_some() {
        args.conn.request(&mut c, Op::Status)?
    } else {
        c.public_status().map_err(|e| Failure::Usage(format!("no answer from the router: {e}")))?
    };
    let Reply::Status(s) = reply else { return Err(refusal(reply, args.conn.format)) };
    let p = vinet_proto::protocol::price(b.declared.cost, s.cost_units_per_credit);
    match args.conn.format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"price": p, "declared_cost": b.declared.cost, "cost_units_per_credit": s.cost_units_per_credit, "balance": s.balance, "capacity": s.capacity, "load": s.load, "complexity": b.declared.complexity})
        ),
        Format::Text => {
            println!(
                "price: {p} credits (declared cost {} at 1 credit per {} cost units); complexity {} of the router's {} free units{}; nothing was uploaded",
                b.declared.cost,
                s.cost_units_per_credit,
                b.declared.complexity,
                s.capacity.saturating_sub(s.load),
                s.balance.map_or(String::new(), |b| format!("; your balance: {b} credits")),
            );
        }
    }
    Ok(())
}

/// Run `vinetc upload`.
pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(raw) = &args.send_raw {
        let mut c = args.conn.connect(false)?;
        let bytes = read_input(raw)?;
        let r = c.exchange(&bytes).map_err(|e| Failure::Usage(format!("no answer from the router: {e}")))?;
        return match r {
            Reply::Refused { .. } => Err(refusal(r, args.conn.format)),
            answer => {
                println!("answer: {answer:?}");
                Ok(())
            }
        };
    }
    // The parameters are typed before connecting: a value the program cannot
    // take is a usage error, and nothing is sent.
    let bundle = read_input(&args.bundle)?;
    let params = if args.params.is_empty() {
        Vec::new()
    } else {
        let module = bundle_module(&bundle).map_err(|e| Failure::Usage(format!("{}: {e}", args.bundle.display())))?;
        params_to_send(&module, &args.params).map_err(|e| Failure::Usage(format!("{}: {e}", args.bundle.display())))?
    };
    if args.quote {
        return quote(&args, &bundle);
    }
    let pay = args.pay.unwrap_or(0);
    let mut c = args.conn.connect(true)?;
    let op = || Op::Upload { bundle: bundle.clone(), pay, params: params.clone() };
    let mut reply = args.conn.request(&mut c, op())?;
    let mut sent = 0;
    for _ in 0..3 {
        let Reply::NeedLemmas { hashes } = &reply else { break };
        let lemmas = lemmas_for(&library(args.lemmas.as_ref())?, hashes);
        if lemmas.is_empty() {
            return Err(Failure::Rejected(format!(
                "the router needs lemmas {}, which the lemma library does not have",
                hashes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        sent += lemmas.len();
        match args.conn.request(&mut c, Op::Lemmas { lemmas })? {
            Reply::LemmasAdmitted { .. } => {}
            other => return Err(refusal(other, args.conn.format)),
        }
        reply = args.conn.request(&mut c, op())?;
    }
    match reply {
        Reply::Admitted { lease, module, complexity, expires_ms, shared, paid, balance, notice } => {
            if let Some(n) = &notice {
                eprintln!("vinetc: notice: {n}");
            }
            match args.conn.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"ok": true, "lease": lease, "module": module, "complexity": complexity, "expires_ms": expires_ms, "shared": shared, "paid": paid, "balance": balance, "lemmas_sent": sent, "notice": notice})
                ),
                Format::Text => {
                    if sent > 0 {
                        println!("sent {sent} lemmas the router lacked; they were verified and cached");
                    }
                    println!(
                        "admitted {}: lease {lease}, module {}, complexity {complexity} units/window{}, expires in {}; paid {paid}, balance {balance}",
                        args.bundle.display(),
                        &module[..12.min(module.len())],
                        if shared { " (shares a running instance: no load added)" } else { "" },
                        until(expires_ms)
                    )
                }
            }
            Ok(())
        }
        other => Err(refusal(other, args.conn.format)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spam_filter() -> Module {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/spam_filter.vinet");
        let src = std::fs::read(path).unwrap();
        vinet_lang::compile(path, &src, &[]).unwrap_or_else(|d| panic!("{d:?}")).module
    }

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn upload_types_params_by_the_declaration() {
        let m = spam_filter();
        // Word1 is declared a string: 42 is the string "42", not a number.
        assert_eq!(params_to_send(&m, &given(&[("Word1", "42")])), Ok(vec![("Word1".into(), Const::Str("42".into()))]));
        assert_eq!(
            params_to_send(&m, &given(&[("Word2", "\"a b\""), ("Word1", "10.0.0.1")])),
            Ok(vec![("Word1".into(), Const::Str("10.0.0.1".into())), ("Word2".into(), Const::Str("a b".into()))])
        );
        let e = params_to_send(&m, &given(&[("Nope", "1")])).unwrap_err().to_string();
        assert_eq!(e, "the program declares no parameter Nope (its parameters: Word1, Word2)");
        assert!(bundle_module(b"not a bundle").unwrap_err().contains("cannot read its parameters"));
    }
}
