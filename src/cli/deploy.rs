//! `vinetc deploy`: new (or an existing program), prove, locate and upload,
//! in one step, saying what each step did.
//!
//! Each step is the subcommand's own code path (`new::generate`,
//! `prove::run`, `locate`'s directory, `upload::run`), and prove and upload
//! get their arguments by parsing the very words of their command lines
//! (which the step prints), so deploying does exactly what the commands do
//! one after another; the first step that fails stops the run with that
//! step's exit code, and nothing after it is done.

use std::path::PathBuf;

use vinet_checker::cert::{decode_file, Bundle, BUNDLE_MAGIC};
use vinet_proto::identity::hex;
use vinet_proto::protocol::Reply;

use super::locate::{self, DirArgs};
use super::new::{self, Kind};
use super::upload;
use super::{prove, Failure};

const AFTER_HELP: &str = "\
Example:
  vinetc deploy --policy end-user.toml --directory routers.van --trust operator.key.pub \\
      --key alice.key --identity alice.vid --pay 200 \\
      firewall --block 10.9.0.66 --lifetime 3600

  vinetc deploy --program fw.vinet --source 10.9.0.66 --policy end-user.toml ...

Step 1 writes the program (`vinetc new KIND ...`; to -o, or in --out-dir
named like the kind's example: firewall.vinet, spam_filter.vinet, ...; never
replacing a file without --force) or takes --program;
step 2 proves it against --policy into a bundle beside it; step 3 finds the
router nearest --source in the directory (for a firewall with one --block,
that block is the source unless --source says otherwise); step 4 uploads
the bundle to that router, pinning the key its signed announcement gives
(without --pay, it asks the router's price first and pays that).
Exit codes are those of the step that failed (1: refused; 2: bad usage,
unreadable input or no connection).";

/// Arguments of `vinetc deploy`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP, subcommand_value_name = "KIND", subcommand_help_heading = "Kinds (as `vinetc new`)")]
pub struct Args {
    /// Deploy this program instead of generating one.
    #[arg(long, value_name = "PROG.vinet")]
    pub program: Option<PathBuf>,
    /// The program to generate, with its parameters (as `vinetc new`).
    #[command(subcommand)]
    pub kind: Option<Kind>,
    /// The router's safety policy (the program is proved against it).
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: PathBuf,
    /// The traffic's source: the program goes to the edge router in front of it.
    #[arg(long, value_name = "ADDRESS")]
    pub source: Option<String>,
    /// Where the generated program and the bundle are written [default: the current directory].
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// The directory and the trusted authorities.
    #[command(flatten)]
    pub dir: DirArgs,
    /// The client's secret key.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The client's identity certificate.
    #[arg(long, value_name = "ID.vid")]
    pub identity: PathBuf,
    /// Credits to pay (at least the price of the bundle's declared cost)
    /// [default: the located router's price, asked first].
    #[arg(long, value_name = "N")]
    pub pay: Option<u64>,
    /// Give or override a parameter of the program (when it is proved).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::build::param)]
    pub params: Vec<(String, String)>,
    /// The lemma library to send lemmas from [default: the shipped library].
    #[arg(long, value_name = "LIB")]
    pub lemmas: Option<PathBuf>,
    /// Seconds to wait for the router.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

fn step(n: u32, what: &str) {
    println!("step {n} of 4, {what}");
}

/// Run `vinetc deploy`.
pub fn run(args: Args) -> Result<(), Failure> {
    // Everything that can be refused without work is refused first.
    let trust_dir = args.dir.clone();
    let source: Option<u128> = args.source.as_deref().map(|s| locate::address("--source ", s)).transpose()?;
    let (program, from_block) = match (&args.program, &args.kind) {
        (Some(_), Some(_)) => {
            return Err(Failure::Usage("give --program PROG.vinet or a kind to generate (firewall, spam, ...), not both".into()))
        }
        (None, None) => {
            return Err(Failure::Usage("give a kind to generate (firewall, spam, multicast, worm) or --program PROG.vinet".into()))
        }
        (Some(p), None) => {
            step(1, &format!("new: using the program {} as written", p.display()));
            if !p.is_file() {
                return Err(Failure::Usage(format!("cannot read {}: not a file", p.display())));
            }
            (p.clone(), None)
        }
        (None, Some(kind)) => {
            let mut kind = kind.clone();
            let common = match &mut kind {
                Kind::Firewall(a) => &mut a.common,
                Kind::Spam(a) => &mut a.common,
                Kind::Multicast(a) => &mut a.common,
                Kind::Worm(a) => &mut a.common,
            };
            match &common.policy {
                Some(p) if *p != args.policy => {
                    return Err(Failure::Usage(format!(
                        "the program's --policy {} is not deploy's --policy {}",
                        p.display(),
                        args.policy.display()
                    )))
                }
                _ => common.policy = Some(args.policy.clone()),
            }
            let g = new::generate(&kind)?;
            let c = kind.common();
            let path = c.output.clone().unwrap_or_else(|| args.out_dir.join(g.name));
            let verb = new::write(&g, Some(&path), c.force)?;
            step(1, &format!("new: {verb} {}: {}", path.display(), g.summary));
            let block = match &kind {
                Kind::Firewall(f) if f.blocks.len() == 1 => f.blocks[0].trim().parse::<vinet_vocab::IpPrefix>().ok().map(|p| p.net()),
                _ => None,
            };
            (path, block)
        }
    };
    let Some(source) = source.or(from_block) else {
        return Err(Failure::Usage("give --source ADDRESS: the traffic's source, whose edge router is to run the program".into()));
    };
    let bundle = program.with_extension("vpc");
    let mut prove_argv = vec![program.display().to_string(), "--policy".into(), args.policy.display().to_string()];
    for (n, v) in &args.params {
        prove_argv.extend(["--param".into(), format!("{n}={v}")]);
    }
    prove_argv.extend(["-o".into(), bundle.display().to_string(), "--no-cache".into()]);
    step(2, &format!("prove: vinetc prove {}", shown(&prove_argv)));
    prove::run(parse::<prove::Args>("prove", &prove_argv)?)?;
    step(
        3,
        &format!(
            "locate: the edge router nearest {}{}",
            vinet_vocab::addr_text(source),
            if from_block.is_some() && args.source.is_none() { " (the blocked source)" } else { "" }
        ),
    );
    let dir = trust_dir.load()?;
    let (at, entry, prefix) = locate::find(&dir, source)?;
    println!("{}", locate::describe(source, at, entry, prefix));
    let router = ["--router".to_string(), entry.address.to_string(), "--router-key".into(), hex(&entry.noise_key)];
    let pay = match args.pay {
        Some(p) => p,
        None => price(&bundle, &router, args.timeout)?,
    };
    let mut upload_argv = vec![bundle.display().to_string()];
    upload_argv.extend(router);
    upload_argv.extend([
        "--key".into(),
        args.key.display().to_string(),
        "--identity".into(),
        args.identity.display().to_string(),
        "--pay".into(),
        pay.to_string(),
        "--timeout".into(),
        args.timeout.to_string(),
    ]);
    if let Some(l) = &args.lemmas {
        upload_argv.extend(["--lemmas".into(), l.display().to_string()]);
    }
    step(4, &format!("upload: vinetc upload {}", shown(&upload_argv)));
    upload::run(parse::<upload::Args>("upload", &upload_argv)?)
}

/// The router's price for the bundle's declared cost, from its public
/// status (what `vinetc upload --quote` reports), said before it is paid.
fn price(bundle: &std::path::Path, router: &[String], timeout: u64) -> Result<u64, Failure> {
    let bytes = super::read_input(bundle)?;
    let b: Bundle = decode_file(&bytes, BUNDLE_MAGIC, "bundle").map_err(|e| Failure::Usage(format!("{}: {e}", bundle.display())))?;
    let mut argv = router.to_vec();
    argv.extend(["--timeout".into(), timeout.to_string()]);
    let conn = parse::<upload::Conn>("status", &argv)?;
    let mut c = conn.connect(false)?;
    let reply = c.public_status().map_err(|e| Failure::Usage(format!("no answer from the router at {}: {e}", conn.router)))?;
    let Reply::Status(s) = reply else { return Err(upload::refusal(reply, super::Format::Text)) };
    let p = vinet_proto::protocol::price(b.declared.cost, s.cost_units_per_credit);
    println!("the router's price: {p} credits (declared cost {} at 1 credit per {} cost units)", b.declared.cost, s.cost_units_per_credit);
    Ok(p)
}

/// A subcommand's arguments, parsed from the words its command line would
/// have: each step is exactly what that command would do.
#[derive(clap::Parser, Debug)]
#[command(no_binary_name = true)]
struct Argv<A: clap::Args> {
    #[command(flatten)]
    args: A,
}

fn parse<A: clap::Args>(what: &str, argv: &[String]) -> Result<A, Failure> {
    <Argv<A> as clap::Parser>::try_parse_from(argv)
        .map(|a| a.args)
        .map_err(|e| Failure::Usage(format!("vinetc {what} {}: {}", shown(argv), e.to_string().lines().next().unwrap_or_default())))
}

/// Words as a shell would take them back (quoted when they need it).
fn shown(argv: &[String]) -> String {
    let safe = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c));
    argv.iter().map(|w| if safe(w) { w.clone() } else { format!("'{}'", w.replace('\'', "'\\''")) }).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_as_their_commands_do() {
        let argv: Vec<String> = ["fw.vinet", "--policy", "p.toml", "-o", "fw.vpc", "--no-cache"].map(String::from).to_vec();
        let p = parse::<prove::Args>("prove", &argv).unwrap();
        assert_eq!((p.inputs.inputs, p.output), (vec!["fw.vinet".to_string()], Some(PathBuf::from("fw.vpc"))));
        let bad: Vec<String> = ["--nope"].map(String::from).to_vec();
        let Err(Failure::Usage(e)) = parse::<upload::Args>("upload", &bad) else { panic!("parsed --nope") };
        assert!(e.starts_with("vinetc upload --nope: error: unexpected argument"), "{e}");
        assert_eq!(shown(&["a b".into(), "x=1".into(), "it's".into()]), "'a b' x=1 'it'\\''s'");
    }
}
